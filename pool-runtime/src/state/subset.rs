//! Subsetting for large fleets (in the spirit of gRPC A68): with
//! `subset_size`, the pool uses only that many of its endpoints, chosen by
//! rendezvous hashing on a seed of its own, so that a thousand clients of a
//! thousand servers do not open a million connections, different clients
//! choose different servers, and a change of membership moves only the
//! endpoints that must move.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use super::{Inner, Retirement, Subchannel};
use crate::conn::Endpoint;

impl Inner {
    /// Recomputes the endpoints in use after the endpoints changed; the
    /// caller holds the `live` lock. Returns those that left the subset, whose
    /// connections the caller retires once the lock is released.
    pub(super) fn resubset(&self) -> Vec<Arc<Endpoint>> {
        let endpoints = self.endpoints.load();
        let chosen = choose(&endpoints, self.config.subset_size, self.seed);
        let current = self.subchannels.load();
        let next: Vec<Arc<Subchannel>> = chosen
            .iter()
            .map(|endpoint| {
                current
                    .iter()
                    .find(|s| Arc::ptr_eq(&s.endpoint, endpoint))
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Subchannel::new(Arc::clone(endpoint))))
            })
            .collect();
        let left = current
            .iter()
            .filter(|s| !next.iter().any(|n| Arc::ptr_eq(&n.endpoint, &s.endpoint)))
            .map(|s| s.endpoint.clone())
            .collect();
        self.choosing
            .store(next.len() > 1, std::sync::atomic::Ordering::Release);
        self.subchannels.store(Arc::new(next));
        left
    }

    /// The endpoints in use: all of them, or the subset.
    pub(super) fn endpoints_in_use(&self) -> Vec<Arc<Endpoint>> {
        self.subchannels
            .load()
            .iter()
            .map(|s| s.endpoint.clone())
            .collect()
    }

    /// Drains the connections of endpoints that left the subset.
    pub(super) fn leave_subset(self: &Arc<Self>, left: &[Arc<Endpoint>]) {
        for endpoint in left {
            tracing::debug!(endpoint = %endpoint.key, "endpoint left the subset");
            self.retire_endpoint(endpoint, Retirement::Rebalanced);
        }
    }
}

/// The endpoints a pool with `seed` uses: all of them, or the `size` that
/// score highest under rendezvous hashing, in the order given.
pub(super) fn choose(
    endpoints: &[Arc<Endpoint>],
    size: Option<usize>,
    seed: u64,
) -> Vec<Arc<Endpoint>> {
    let Some(size) = size.filter(|&size| size < endpoints.len()) else {
        return endpoints.to_vec();
    };
    let mut scored: Vec<(u64, usize)> = endpoints
        .iter()
        .enumerate()
        .map(|(index, endpoint)| (score(seed, &endpoint.key), index))
        .collect();
    scored.sort_unstable_by(|a, b| b.cmp(a));
    let mut kept: Vec<usize> = scored[..size].iter().map(|&(_, index)| index).collect();
    kept.sort_unstable();
    kept.into_iter()
        .map(|index| endpoints[index].clone())
        .collect()
}

/// Rendezvous (highest-random-weight) score of an endpoint for a seed.
fn score(seed: u64, key: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    seed.hash(&mut hasher);
    key.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(count: usize) -> Vec<Arc<Endpoint>> {
        (0..count)
            .map(|i| {
                Arc::new(
                    Endpoint::parse(&format!("http://10.0.{}.{}:50051", i / 250, i % 250)).unwrap(),
                )
            })
            .collect()
    }

    fn keys(chosen: &[Arc<Endpoint>]) -> Vec<String> {
        chosen.iter().map(|e| e.key.clone()).collect()
    }

    #[test]
    fn many_pools_use_every_endpoint_about_equally() {
        // Rendezvous hashing chooses without bias: over a thousand pools of
        // 10 of 100 endpoints, each endpoint is chosen about 100 times. (Fifty
        // pools choosing independently cannot promise more than chance does:
        // uses then range from about 1 to 11, as a Poisson of mean 5.)
        let all = endpoints(100);
        let mut uses = std::collections::HashMap::new();
        for pool in 0..1000u64 {
            let seed = pool.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let chosen = choose(&all, Some(10), seed);
            assert_eq!(chosen.len(), 10);
            for endpoint in chosen {
                *uses.entry(endpoint.key.clone()).or_insert(0u32) += 1;
            }
        }
        assert_eq!(uses.len(), 100, "every endpoint is used by some pool");
        let most = *uses.values().max().unwrap();
        let least = *uses.values().min().unwrap();
        println!("1000 pools of 10 over 100 endpoints: uses from {least} to {most}");
        assert!(most <= 2 * least, "most {most}, least {least}");
    }

    #[test]
    fn removing_an_endpoint_moves_at_most_two_members() {
        let all = endpoints(100);
        for seed in 0..20u64 {
            let before = keys(&choose(&all, Some(10), seed));
            for removed in 0..all.len() {
                let mut rest = all.clone();
                rest.remove(removed);
                let after = keys(&choose(&rest, Some(10), seed));
                let moved = after.iter().filter(|k| !before.contains(k)).count();
                assert!(
                    moved <= 1,
                    "seed {seed}, removed {removed}: {moved} new members"
                );
                let lost = before.iter().filter(|k| !after.contains(k)).count();
                assert!(lost + moved <= 2, "seed {seed}, removed {removed}");
            }
        }
    }

    #[test]
    fn without_a_size_every_endpoint_is_used() {
        let all = endpoints(5);
        assert_eq!(keys(&choose(&all, None, 1)), keys(&all));
        assert_eq!(keys(&choose(&all, Some(9), 1)), keys(&all));
    }
}
