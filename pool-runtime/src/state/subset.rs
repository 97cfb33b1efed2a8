//! Subsetting for large fleets (in the spirit of gRPC A68): with
//! `subset_size`, the pool uses only that many of its endpoints, so that a
//! thousand clients of a thousand servers do not open a million
//! connections, different clients choose different servers, and a change
//! of membership moves only the endpoints that must move.
//!
//! Without an index, a pool chooses by rendezvous hashing on a seed of its
//! own: unbiased, but independent choices leave some endpoints with more
//! clients than others (fifty pools of 10 of 100 endpoints: uses from about
//! 1 to 11). With `subset_index`, clients agree on one order of the
//! endpoints per round (rendezvous scores on the round's number) and client
//! `i` takes the `i`-th window of `size` endpoints in it: each round of
//! clients covers every endpoint once (the last window wrapping around),
//! and removing an endpoint shifts each window by at most one place, so at
//! most one member changes (unless the fleet crosses a multiple of `size`,
//! when the rounds are drawn again).

use super::Member;
use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use super::{Inner, Retirement, Subchannel};

impl Inner {
    /// Recomputes the endpoints in use after the endpoints changed; the
    /// caller holds the `live` lock. Returns those that left the subset, whose
    /// connections the caller retires once the lock is released.
    pub(super) fn resubset(&self) -> Vec<Arc<Member>> {
        let endpoints = self.fleet.endpoints.load();
        let chosen = in_use(&endpoints, &self.config, self.fleet.seed);
        let current = self.fleet.subchannels.load();
        // By endpoint, so that a change costs the number of endpoints, not
        // its square (an xDS update of thousands of endpoints).
        let by_endpoint: HashMap<*const Member, &Arc<Subchannel>> = current
            .iter()
            .map(|s| (Arc::as_ptr(&s.endpoint), s))
            .collect();
        let next: Vec<Arc<Subchannel>> = chosen
            .iter()
            .map(|endpoint| {
                by_endpoint
                    .get(&Arc::as_ptr(endpoint))
                    .map(|s| Arc::clone(s))
                    .unwrap_or_else(|| Arc::new(Subchannel::new(Arc::clone(endpoint))))
            })
            .collect();
        let staying: HashSet<*const Member> =
            next.iter().map(|n| Arc::as_ptr(&n.endpoint)).collect();
        let left = current
            .iter()
            .filter(|s| !staying.contains(&Arc::as_ptr(&s.endpoint)))
            .map(|s| s.endpoint.clone())
            .collect();
        self.fleet
            .choosing
            .store(next.len() > 1, std::sync::atomic::Ordering::Release);
        self.fleet.subchannels.store(Arc::new(self.weighed(next)));
        left
    }

    /// The endpoints in use: all of them, or the subset.
    pub(super) fn endpoints_in_use(&self) -> Vec<Arc<Member>> {
        self.fleet
            .subchannels
            .load()
            .iter()
            .map(|s| s.endpoint.clone())
            .collect()
    }

    /// Drains the connections of endpoints that left the subset.
    pub(super) fn leave_subset(self: &Arc<Self>, left: &[Arc<Member>]) {
        for endpoint in left {
            tracing::debug!(endpoint = %endpoint.key, "endpoint left the subset");
            self.retire_endpoint(endpoint, Retirement::Rebalanced);
        }
    }
}

/// The endpoints a pool with `config` and `seed` uses: by its index in the
/// fleet's clients if it has one, else by its seed.
pub(super) fn in_use(
    endpoints: &[Arc<Member>],
    config: &crate::config::PoolConfig,
    seed: u64,
) -> Vec<Arc<Member>> {
    match config.subset_index {
        Some(index) => choose_window(endpoints, config.subset_size, index),
        None => choose(endpoints, config.subset_size, seed),
    }
}

/// The endpoints a pool with `seed` uses: all of them, or the `size` that
/// score highest under rendezvous hashing, in the order given.
pub(super) fn choose(
    endpoints: &[Arc<Member>],
    size: Option<usize>,
    seed: u64,
) -> Vec<Arc<Member>> {
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

/// The endpoints client `index` uses: all of them, or its window of `size`
/// in the order of its round (see the module's documentation), in the
/// order given.
pub(super) fn choose_window(
    endpoints: &[Arc<Member>],
    size: Option<usize>,
    index: u64,
) -> Vec<Arc<Member>> {
    let Some(size) = size.filter(|&size| size < endpoints.len()) else {
        return endpoints.to_vec();
    };
    // A round is as many clients as windows it takes to cover the fleet;
    // it changes only when the fleet crosses a multiple of `size`, so
    // removing one endpoint leaves every client in its round and place.
    let per_round = (endpoints.len().div_ceil(size)) as u64;
    let round = index / per_round;
    // Every client of a round agrees on its order: scores on the round's
    // number, not on a seed of its own.
    let mut order: Vec<(u64, usize)> = endpoints
        .iter()
        .enumerate()
        .map(|(position, endpoint)| (score(round ^ ROUND_SALT, &endpoint.key), position))
        .collect();
    order.sort_unstable();
    let offset = ((index % per_round) as usize) * size;
    let mut kept: Vec<usize> = (0..size)
        .map(|step| order[(offset + step) % order.len()].1)
        .collect();
    kept.sort_unstable();
    kept.into_iter()
        .map(|position| endpoints[position].clone())
        .collect()
}

/// Keeps the rounds' scores apart from the random seeds'.
const ROUND_SALT: u64 = 0x005E_ED0F_C0FF_EE00;

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

    fn endpoints(count: usize) -> Vec<Arc<Member>> {
        (0..count)
            .map(|i| {
                Arc::new(Member::new(
                    crate::conn::Endpoint::parse(&format!(
                        "http://10.0.{}.{}:50051",
                        i / 250,
                        i % 250
                    ))
                    .unwrap(),
                ))
            })
            .collect()
    }

    fn keys(chosen: &[Arc<Member>]) -> Vec<String> {
        chosen.iter().map(|e| e.key.clone()).collect()
    }

    #[test]
    fn clients_with_consecutive_indices_tile_the_fleet_and_move_little() {
        // The case: 50 pools of 10 of 100 endpoints cover all 100,
        // each exactly five times.
        let all = endpoints(100);
        let mut uses = std::collections::HashMap::new();
        for index in 0..50u64 {
            for endpoint in choose_window(&all, Some(10), index) {
                *uses.entry(endpoint.key.clone()).or_insert(0) += 1;
            }
        }
        assert_eq!(uses.len(), 100);
        assert!(uses.values().all(|&u| u == 5), "{uses:?}");
        // A fleet that does not divide evenly: every round still covers
        // every endpoint, and the last window's wrap adds at most one use
        // per round, so no endpoint has twice the uses of another.
        let odd = endpoints(97);
        let mut uses = std::collections::HashMap::new();
        for index in 0..50u64 {
            for endpoint in choose_window(&odd, Some(10), index) {
                *uses.entry(endpoint.key.clone()).or_insert(0) += 1;
            }
        }
        let (low, high) = (uses.values().min().unwrap(), uses.values().max().unwrap());
        assert_eq!(uses.len(), 97);
        assert!(*low >= 5 && *high <= 2 * low, "uses from {low} to {high}");
        // Removing any endpoint changes at most one member of any subset.
        for index in 0..50u64 {
            let before = keys(&choose_window(&all, Some(10), index));
            for removed in 0..100 {
                let mut fewer = all.clone();
                fewer.remove(removed);
                let after = keys(&choose_window(&fewer, Some(10), index));
                let lost = before.iter().filter(|k| !after.contains(k)).count();
                assert!(
                    lost <= 1,
                    "index {index}, removed {removed}: {before:?} -> {after:?}"
                );
            }
        }
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
