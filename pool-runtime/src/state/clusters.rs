//! The pick's list as the pool's settings make it (its endpoints' weights,
//! a ring), and an xDS pool's clusters (gRPC A28): each cluster is a
//! subchannel set of its own over the pool's endpoints, with its own
//! weights and ring, and a routed call is picked in its cluster's set. An
//! endpoint in two clusters is one subchannel in both sets: it shares its
//! connections.

use std::collections::HashMap;
use std::sync::Arc;

use tonic::Status;

use super::ring::RingConfig;
use super::route::RoutedTo;
use super::weights::{Subchannels, Weights};
use super::{Inner, Slot, Subchannel};

/// What the pool knows of one cluster: its endpoints by the address they
/// were added with, each with its weight, and its ring when it hashes
/// calls (gRPC A42).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ClusterConfig {
    pub(crate) weights: Weights,
    pub(crate) ring: Option<RingConfig>,
    /// Whether a priority after those of `weights` stands by (gRPC A56):
    /// these endpoints failing is the discovery's cue to fail over, not
    /// the calls' verdict.
    pub(crate) fails_over: bool,
}

/// Every cluster the pool's routes name, by name.
pub(crate) type ClusterConfigs = HashMap<Arc<str>, ClusterConfig>;

impl Inner {
    /// The pool's clusters from now on: the pick's sets are rebuilt.
    #[cfg_attr(not(feature = "xds"), allow(dead_code))]
    pub(crate) fn set_clusters(self: &Arc<Self>, clusters: ClusterConfigs) {
        let _live = self.live();
        self.fleet.clusters.store(Arc::new(clusters));
        self.reweigh();
    }

    /// The pick's list again, weighed (and on a ring) as the pool now
    /// says; under the `live` lock.
    pub(super) fn reweigh(&self) {
        let list = self.fleet.subchannels.load().to_list();
        self.fleet.subchannels.store(Arc::new(self.weighed(list)));
    }

    /// `list` weighed, and on a ring, as the pool now says; cut into the
    /// pool's clusters' sets, if it has clusters.
    pub(super) fn weighed(&self, list: Vec<Arc<Subchannel>>) -> Subchannels {
        let ring = self.fleet.ring.load();
        let all = Subchannels::new(list, &self.fleet.weights.load(), ring.as_deref());
        let clusters = self.fleet.clusters.load();
        if clusters.is_empty() {
            return all;
        }
        let sets = cluster_sets(&all, &clusters);
        all.with_clusters(sets)
    }

    /// Takes a stream slot for a routed call in its cluster, waiting in
    /// line if none is free there (see [`acquire`](Self::acquire)).
    pub(crate) async fn acquire_routed(
        self: &Arc<Self>,
        to: &RoutedTo,
        wait_for_ready: bool,
    ) -> Result<Slot, Status> {
        if self.is_closed() {
            return Err(super::outage::closed_status());
        }
        if self.waiters.len() == 0
            && let Some(slot) = self.pick_routed(to)
        {
            return Ok(slot);
        }
        Box::pin(self.acquire_slow(Some(to), wait_for_ready)).await
    }

    /// Reserves a slot in `to`'s cluster: on its ring from the call's hash
    /// (a random one when the route made none), else by two random
    /// choices; `None` when no stream is free there.
    pub(super) fn pick_routed(self: &Arc<Self>, to: &RoutedTo) -> Option<Slot> {
        let all = self.fleet.subchannels.load();
        let set = all.cluster(&to.cluster)?;
        if set.ring().is_some() {
            let hash = to.hash.unwrap_or_else(|| fastrand::u64(..));
            return self.pick_on_ring(set, hash);
        }
        match set.len() {
            0 => None,
            1 => {
                let (_, connections) = set[0].load()?;
                self.reserve_on(&set[0], &connections)
            }
            _ => self.pick_of_two(set),
        }
    }

    /// Opens one more connection in `to`'s cluster, to its endpoint with
    /// the fewest, for a call that waits there (gRPC A105 within the
    /// cluster: the pool's own growth may pick another cluster's).
    pub(super) fn grow_cluster(self: &Arc<Self>, to: &RoutedTo) {
        let all = self.fleet.subchannels.load();
        let fewest = all
            .cluster(&to.cluster)
            .and_then(|set| set.iter().min_by_key(|s| s.connections.load().len()));
        if let Some(subchannel) = fewest {
            self.grow_endpoint(subchannel);
        }
    }

    /// Why a call routed to `to` cannot be served: its cluster has no
    /// endpoint with a connection up and, unless `waited`, every endpoint
    /// of it failed its last attempt (or it has none). UNAVAILABLE naming
    /// the cluster, never the overload another cluster's full streams
    /// would suggest.
    pub(super) fn cluster_unavailable(&self, to: &RoutedTo, waited: bool) -> Option<Status> {
        let all = self.fleet.subchannels.load();
        let set = all.cluster(&to.cluster);
        let members = set.map_or(&[][..], |set| &set[..]);
        let up = members
            .iter()
            .any(|s| s.connections.load().iter().any(|c| c.link.is_ready()));
        // Endpoints the cluster lists that the pool has yet to add are
        // on their way.
        let coming = members.is_empty()
            && self
                .fleet
                .clusters
                .load()
                .get(&to.cluster)
                .is_some_and(|c| !c.weights.is_empty());
        let all_failing = !coming && members.iter().all(|s| self.failed_for_good(&s.endpoint));
        if up || (!waited && !all_failing) {
            return None;
        }
        let why = if members.is_empty() {
            format!("it has no endpoints{}", self.why_no_endpoints())
        } else {
            "no connection to its endpoints is up".to_owned()
        };
        Some(Status::unavailable(format!(
            "xDS cluster {} cannot take the call: {why}",
            to.cluster
        )))
    }
}

/// The pool's list cut into each cluster's set.
fn cluster_sets(all: &Subchannels, clusters: &ClusterConfigs) -> HashMap<Arc<str>, Subchannels> {
    clusters
        .iter()
        .map(|(name, config)| {
            let members = all
                .iter()
                .filter(|s| {
                    s.endpoint
                        .target
                        .address()
                        .is_some_and(|a| config.weights.contains_key(&a))
                })
                .cloned()
                .collect();
            let set = Subchannels::of_cluster(members, &config.weights, config.ring.as_ref());
            (Arc::clone(name), set)
        })
        .collect()
}
