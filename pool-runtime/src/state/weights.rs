//! Endpoint weights: how large a share of the calls each endpoint should
//! take beside the others (an xDS locality's weight, gRPC A27's
//! `wrr_locality`), and the pick's draw that honours them. Without
//! weights, or with equal ones, the draw is the uniform one of gRPC A48.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use super::ring::{Ring, RingConfig};
use super::{Inner, Subchannel};

/// Weights by the address an endpoint was added with; one absent is 1.
pub(crate) type Weights = HashMap<SocketAddr, f64>;

/// The endpoints the pick chooses from, and their weights' running sums
/// when they differ.
#[derive(Debug)]
pub(crate) struct Subchannels {
    list: Vec<Arc<Subchannel>>,
    /// `cumulative[i]`: the weights of endpoints `0..=i`; `None` when every
    /// weight is the same.
    cumulative: Option<Box<[f64]>>,
    /// The ring calls hash onto, when the pool hashes them (gRPC A42).
    ring: Option<Ring>,
    /// An xDS pool's clusters' sets, by name (see `clusters.rs`).
    clusters: HashMap<Arc<str>, Subchannels>,
}

impl Deref for Subchannels {
    type Target = [Arc<Subchannel>];

    fn deref(&self) -> &Self::Target {
        &self.list
    }
}

impl Subchannels {
    /// `list`, each endpoint weighed by `weights` (and given that weight
    /// for the pick's load comparisons), on a ring if `ring` says how to
    /// build one.
    pub(super) fn new(
        list: Vec<Arc<Subchannel>>,
        weights: &Weights,
        ring: Option<&RingConfig>,
    ) -> Self {
        for (subchannel, weight) in list.iter().zip(Self::weights_of(&list, weights)) {
            subchannel.set_weight(weight);
        }
        Self::of_cluster(list, weights, ring)
    }

    /// A cluster's set: `list` drawn by `weights`, on a ring if `ring`
    /// says how to build one; the endpoints' own weights untouched (an
    /// endpoint in two clusters has the pool's).
    pub(super) fn of_cluster(
        list: Vec<Arc<Subchannel>>,
        weights: &Weights,
        ring: Option<&RingConfig>,
    ) -> Self {
        let mut sum = 0.0;
        let mut cumulative = Vec::with_capacity(list.len());
        let mut first = None;
        let mut uneven = false;
        for weight in Self::weights_of(&list, weights) {
            sum += weight;
            cumulative.push(sum);
            uneven |= *first.get_or_insert(weight) != weight;
        }
        let ring = ring.and_then(|config| {
            // Each endpoint's hash key is where it connects, `ip:port` (as
            // grpc-go hashes the address).
            let endpoints: Vec<(String, u32)> = list
                .iter()
                .map(|s| {
                    let weight = s
                        .endpoint
                        .target
                        .address()
                        .and_then(|a| config.weights.get(&a).copied())
                        .unwrap_or(1);
                    (s.endpoint.address.to_string(), weight)
                })
                .collect();
            Ring::build(&endpoints, config)
        });
        Self {
            list,
            cumulative: uneven.then(|| cumulative.into_boxed_slice()),
            ring,
            clusters: HashMap::new(),
        }
    }

    /// Each endpoint's weight in `weights`, by its address (1 when absent
    /// or not a positive number).
    fn weights_of<'a>(
        list: &'a [Arc<Subchannel>],
        weights: &'a Weights,
    ) -> impl Iterator<Item = f64> + 'a {
        list.iter().map(|subchannel| {
            subchannel
                .endpoint
                .target
                .address()
                .and_then(|a| weights.get(&a).copied())
                .filter(|w| w.is_finite() && *w > 0.0)
                .unwrap_or(1.0)
        })
    }

    /// The endpoints, in the pick's order.
    pub(super) fn to_list(&self) -> Vec<Arc<Subchannel>> {
        self.list.clone()
    }

    /// The same set, cut into these clusters' sets.
    pub(super) fn with_clusters(mut self, clusters: HashMap<Arc<str>, Subchannels>) -> Self {
        self.clusters = clusters;
        self
    }

    /// The set of the cluster `name`, when the pool has such a cluster.
    #[inline]
    pub(super) fn cluster(&self, name: &str) -> Option<&Subchannels> {
        self.clusters.get(name)
    }

    /// The set a call is picked in: the cluster it was routed to (`None`
    /// when the pool has no such cluster), or every endpoint.
    #[inline]
    pub(super) fn scope(&self, cluster: Option<&str>) -> Option<&Subchannels> {
        match cluster {
            Some(name) => self.cluster(name),
            None => Some(self),
        }
    }

    /// The ring calls hash onto, if the pool hashes them.
    pub(super) fn ring(&self) -> Option<&Ring> {
        self.ring.as_ref()
    }

    /// Two different endpoints drawn at random, each as likely as its
    /// weight makes it (uniformly when the weights are equal); there must
    /// be at least two.
    #[inline]
    pub(super) fn draw_two(&self) -> (usize, usize) {
        let n = self.list.len();
        let other = |a: usize| (a + 1 + fastrand::usize(..n - 1)) % n;
        let Some(cumulative) = &self.cumulative else {
            let a = fastrand::usize(..n);
            return (a, other(a));
        };
        let total = cumulative[n - 1];
        let draw = || {
            let point = fastrand::f64() * total;
            cumulative.partition_point(|c| *c <= point).min(n - 1)
        };
        let a = draw();
        let b = draw();
        (a, if b == a { other(a) } else { b })
    }
}

impl Inner {
    /// Weighs the endpoints by `weights` from now on: those added later
    /// too, by the address they are added with.
    #[cfg_attr(not(feature = "xds"), allow(dead_code))]
    pub(crate) fn set_weights(self: &Arc<Self>, weights: Weights) {
        let _live = self.live();
        self.fleet.weights.store(Arc::new(weights));
        self.reweigh();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_weights_draw_uniformly_and_uneven_ones_by_weight() {
        let list: Vec<Arc<Subchannel>> = (0..3u16)
            .map(|i| {
                let target = crate::discovery::Target::new("http://greeter")
                    .connect_to(SocketAddr::from(([127, 0, 0, 1], 1000 + i)));
                let endpoint =
                    super::super::endpoint_for(&target, &Default::default()).expect("valid target");
                Arc::new(Subchannel::new(Arc::new(super::super::Member::new(
                    endpoint,
                ))))
            })
            .collect();
        assert!(
            Subchannels::new(list.clone(), &Weights::new(), None)
                .cumulative
                .is_none()
        );

        let weights: Weights = [(SocketAddr::from(([127, 0, 0, 1], 1002)), 2.0)]
            .into_iter()
            .collect();
        let weighted = Subchannels::new(list, &weights, None);
        let mut drawn = [0usize; 3];
        for _ in 0..40_000 {
            let (a, b) = weighted.draw_two();
            assert_ne!(a, b);
            drawn[a] += 1;
        }
        // Weights 1:1:2 draw the first of two 0.25, 0.25 and 0.5 of the
        // time.
        let share = |i: usize| drawn[i] as f64 / 40_000.0;
        assert!((share(2) - 0.5).abs() < 0.03, "{drawn:?}");
        assert!((share(0) - 0.25).abs() < 0.03, "{drawn:?}");
    }
}
