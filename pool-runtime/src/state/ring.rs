//! Ring hash (gRPC A42): each call's hash finds its endpoint on a ring of
//! the endpoints' hashes, so that calls with the same key go to the same
//! server while it is up, and a client in another language on the same
//! endpoints sends the key to the same server. The ring is built as
//! grpc-go 1.85 builds it (`balancer/ringhash/ring.go`): each endpoint's
//! `ip:port` hashed with xxHash64 as `"ip:port_N"`, entries in proportion
//! to its weight, the least weighted getting a whole number of them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tonic::Status;

use super::{Inner, Slot};

/// One way a route makes a call's hash (gRPC A42's `hash_policy`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "xds"), allow(dead_code))]
pub(crate) enum HashSource {
    /// The values of this request header, joined with `,`.
    Header(http::HeaderName),
    /// The pool's own random id: every call of the pool hashes alike.
    ChannelId,
}

/// One hash policy: its source, and whether a hash made by it (or before
/// it) ends the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HashPolicy {
    pub(crate) source: HashSource,
    pub(crate) terminal: bool,
}

/// How a pool hashes its calls onto a ring: the ring's size bounds, each
/// endpoint's weight on it, and the call's hash policies.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RingConfig {
    pub(crate) min_ring_size: u64,
    pub(crate) max_ring_size: u64,
    /// Weights by address; one absent is 1.
    pub(crate) weights: HashMap<SocketAddr, u32>,
    pub(crate) policies: Vec<HashPolicy>,
}

/// The ring: entries sorted by hash, each naming an endpoint by its index
/// in the pick's list.
#[derive(Debug)]
pub(crate) struct Ring {
    entries: Box<[(u64, u32)]>,
}

fn xxhash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh64::xxh64(bytes, 0)
}

impl Ring {
    /// The ring of `endpoints` (hash key, `ip:port`, and weight, by their
    /// index in the pick's list), as grpc-go's `newRing` builds it.
    pub(super) fn build(endpoints: &[(String, u32)], config: &RingConfig) -> Option<Self> {
        let total: u64 = endpoints.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return None;
        }
        // grpc-go sorts by the hash key so that the ring is the same
        // whatever order the endpoints came in.
        let mut keyed: Vec<(String, f64, u32)> = endpoints
            .iter()
            .enumerate()
            .map(|(index, (key, weight))| {
                (key.clone(), f64::from(*weight) / total as f64, index as u32)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let smallest = keyed.iter().map(|k| k.1).fold(1.0, f64::min);
        let scale = ((smallest * config.min_ring_size as f64).ceil() / smallest)
            .min(config.max_ring_size as f64);
        let mut entries = Vec::with_capacity(scale.ceil() as usize);
        let (mut current, mut target) = (0.0, 0.0);
        for (key, weight, index) in &keyed {
            target += scale * weight;
            let mut n = 0u64;
            while current < target {
                entries.push((xxhash(format!("{key}_{n}").as_bytes()), *index));
                n += 1;
                current += 1.0;
            }
        }
        entries.sort_by_key(|entry| entry.0);
        Some(Self {
            entries: entries.into_boxed_slice(),
        })
    }

    /// The entries from the first whose hash is at least `hash` (the
    /// first of all past the last), once round the ring: the endpoints'
    /// indexes in the order a call tries them.
    pub(super) fn walk(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let start = self.entries.partition_point(|e| e.0 < hash);
        let n = self.entries.len();
        (0..n).map(move |i| self.entries[(start + i) % n].1 as usize)
    }
}

impl RingConfig {
    /// The ring a service config's `ring_hash_experimental` asks for
    /// (gRPC A76): every endpoint of weight 1, the hash the request
    /// header's.
    pub(crate) fn from_service_config(ring: &crate::config::RingHash) -> Self {
        Self {
            min_ring_size: ring.min_ring_size,
            max_ring_size: ring.max_ring_size,
            weights: HashMap::new(),
            policies: ring
                .request_hash_header
                .as_deref()
                .and_then(|name| http::HeaderName::from_bytes(name.as_bytes()).ok())
                .map(|name| HashPolicy {
                    source: HashSource::Header(name),
                    terminal: false,
                })
                .into_iter()
                .collect(),
        }
    }

    /// A call's hash by the pool's policies (see [`hash_by`]).
    pub(crate) fn hash_of(&self, headers: &http::HeaderMap, channel_id: u64) -> Option<u64> {
        hash_by(&self.policies, headers, channel_id)
    }
}

/// A call's hash by a route's policies (grpc-go's `generateHash`): each
/// policy that makes one is folded in, rotated so that two alike do not
/// cancel; `None` when none made one (the call then takes a random hash).
pub(crate) fn hash_by(
    policies: &[HashPolicy],
    headers: &http::HeaderMap,
    channel_id: u64,
) -> Option<u64> {
    let mut hash: Option<u64> = None;
    for policy in policies {
        let made = match &policy.source {
            HashSource::Header(name) => {
                let mut values = headers.get_all(name).iter();
                values.next().map(|first| {
                    let mut joined = first.as_bytes().to_vec();
                    for value in values {
                        joined.push(b',');
                        joined.extend_from_slice(value.as_bytes());
                    }
                    xxhash(&joined)
                })
            }
            HashSource::ChannelId => Some(channel_id),
        };
        if let Some(made) = made {
            hash = Some(hash.unwrap_or(0).rotate_left(1) ^ made);
        }
        // A terminal policy ends the list once any policy made a hash.
        if policy.terminal && hash.is_some() {
            break;
        }
    }
    hash
}

impl Inner {
    /// The call's hash, when the pool hashes calls onto a ring: the route's
    /// policies', or a random one when they make none (a random place on
    /// the ring, where endpoints come up as often as their weights).
    #[inline]
    pub(crate) fn ring_hash(&self, headers: &http::HeaderMap) -> Option<u64> {
        if !self
            .fleet
            .hashing
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return None;
        }
        let config = self.fleet.ring.load();
        let config = config.as_ref()?;
        Some(
            config
                .hash_of(headers, self.fleet.seed)
                .unwrap_or_else(|| fastrand::u64(..)),
        )
    }

    /// A slot on the endpoint the ring gives `hash`, or on the next one
    /// round the ring that has a free stream (gRPC A61: endpoints that
    /// failed are passed over); an ordinary pick when the ring has none.
    pub(crate) async fn acquire_hashed(
        self: &Arc<Self>,
        hash: u64,
        wait_for_ready: bool,
    ) -> Result<Slot, Status> {
        if self.is_closed() {
            return Err(super::outage::closed_status());
        }
        let slot = self.pick_on_ring(&self.fleet.subchannels.load(), hash);
        match slot {
            Some(slot) => Ok(slot),
            None => self.acquire(wait_for_ready).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RingConfig {
        RingConfig {
            min_ring_size: 1024,
            max_ring_size: 4096,
            weights: HashMap::new(),
            policies: vec![HashPolicy {
                source: HashSource::Header(http::HeaderName::from_static("x-user")),
                terminal: false,
            }],
        }
    }

    #[test]
    fn the_ring_follows_the_weights_and_a_key_keeps_its_endpoint() {
        let endpoints: Vec<(String, u32)> = [(1, 1), (2, 1), (3, 2)]
            .into_iter()
            .map(|(i, w)| (format!("10.0.0.{i}:50051"), w))
            .collect();
        let ring = Ring::build(&endpoints, &config()).expect("a ring");
        // The least weighted gets ceil(0.25 * 1024) = 256 entries; scale
        // 1024, so 1,024 in all.
        assert_eq!(ring.entries.len(), 1024);
        let mut per_endpoint = [0usize; 3];
        for entry in ring.entries.iter() {
            per_endpoint[entry.1 as usize] += 1;
        }
        assert_eq!(per_endpoint, [256, 256, 512]);

        // The same endpoints in another order: the same ring.
        let mut reversed = endpoints.clone();
        reversed.reverse();
        let again = Ring::build(&reversed, &config()).expect("a ring");
        let key = xxhash(b"user-7");
        assert_eq!(
            endpoints[ring.walk(key).next().expect("an entry")].0,
            reversed[again.walk(key).next().expect("an entry")].0
        );
        assert_eq!(ring.walk(key).count(), 1024, "once round the ring");
    }

    #[test]
    fn a_calls_hash_is_its_headers_as_grpc_go_makes_it() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(config().hash_of(&headers, 7), None);
        headers.append("x-user", "a".parse().expect("a value"));
        headers.append("x-user", "b".parse().expect("a value"));
        assert_eq!(config().hash_of(&headers, 7), Some(xxhash(b"a,b")));
        let mut with_channel = config();
        with_channel.policies.push(HashPolicy {
            source: HashSource::ChannelId,
            terminal: false,
        });
        assert_eq!(
            with_channel.hash_of(&headers, 7),
            Some(xxhash(b"a,b").rotate_left(1) ^ 7)
        );
    }
}
