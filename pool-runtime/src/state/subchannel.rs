//! An endpoint as the pick sees it (gRPC calls it a subchannel): its
//! connections in the rotation, and how fast it has been answering.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::conn::{Connection, Endpoint};
use crate::stats::EndpointStats;

/// One endpoint's connections that take calls, and its latency estimate.
#[derive(Debug)]
pub(crate) struct Subchannel {
    pub(crate) endpoint: Arc<Endpoint>,
    /// This endpoint's connections in the rotation; changed under the
    /// pool's `live` lock, read lock-free by every pick.
    pub(super) connections: ArcSwap<Vec<Arc<Connection>>>,
    latency: Ewma,
    /// Calls it carried, counted as their latency is recorded.
    calls: AtomicU64,
}

impl Subchannel {
    pub(super) fn new(endpoint: Arc<Endpoint>) -> Self {
        Self {
            endpoint,
            connections: ArcSwap::from_pointee(Vec::new()),
            latency: Ewma::default(),
            calls: AtomicU64::new(0),
        }
    }

    /// How loaded the endpoint is, or `None` when no connection of it has
    /// a free stream. Costs a look at this endpoint's connections only.
    #[inline]
    pub(super) fn load(&self, now: Instant) -> Option<Load> {
        let connections = self.connections.load();
        let (mut in_flight, mut capacity, mut free) = (0usize, 0usize, false);
        for connection in connections.iter() {
            if !connection.link.is_ready() {
                continue;
            }
            let (held, allowed) = (connection.in_flight(), connection.capacity());
            in_flight += held;
            capacity += allowed;
            free |= held < allowed;
        }
        if !free {
            return None;
        }
        Some(Load {
            busy: (in_flight + 1) as f64 / capacity as f64,
            latency: self.latency.estimate_nanos(now),
        })
    }

    /// Records how long a call on this endpoint took, from its pick to the
    /// release of its stream.
    pub(super) fn record(&self, elapsed: Duration, now: Instant) {
        self.latency.record(elapsed, now);
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// What the endpoint holds and has done.
    pub(super) fn stats(&self) -> EndpointStats {
        let connections = self.connections.load();
        EndpointStats {
            endpoint: self.endpoint.key.clone(),
            connections: connections.len(),
            in_flight: connections.iter().map(|c| c.in_flight()).sum(),
            calls: self.calls.load(Ordering::Relaxed),
            latency: Duration::from_nanos(self.latency.estimate_nanos(Instant::now()) as u64),
        }
    }
}

/// An endpoint's load as the pick weighs it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Load {
    /// The streams in flight, plus the call being placed, over the streams
    /// the endpoint's connections allow.
    busy: f64,
    /// The latency estimate in nanoseconds; 0 when unknown.
    latency: f64,
}

/// Latencies within this factor of each other count as equal: on a busy
/// host the same server answers 1 ms calls in 1 to 2 ms, and weighing that
/// noise would skew an even fleet; a server that is really slower (20 ms
/// against 1 ms) is far outside it.
const SAME_LATENCY: f64 = 4.0;

impl Load {
    /// Whether `self` is the lighter of two endpoints. Endpoints of about
    /// the same latency compare by how busy they are (gRPC A48's least
    /// request, relative to capacity); otherwise by busy times latency, as
    /// tower's `PeakEwma` balancer, Finagle and linkerd weigh load. An
    /// endpoint not yet measured borrows the other's latency, so that a new
    /// server is neither flooded nor starved.
    pub(super) fn lighter_than(self, other: Load) -> bool {
        let known = |l: f64, fallback: f64| if l > 0.0 { l } else { fallback.max(1.0) };
        let (mine, theirs) = (
            known(self.latency, other.latency),
            known(other.latency, self.latency),
        );
        if mine <= theirs * SAME_LATENCY && theirs <= mine * SAME_LATENCY {
            self.busy < other.busy
        } else {
            self.busy * mine < other.busy * theirs
        }
    }
}

/// An endpoint's latency estimate: an exponentially weighted moving average
/// of its calls' latencies, which fades with time when no call refreshes it,
/// so that a server avoided for being slow is tried again (tower's
/// `PeakEwma` fades the same way).
#[derive(Debug, Default)]
struct Ewma {
    /// The estimate in nanoseconds, as `f64` bits; 0 until the first call.
    nanos: AtomicU64,
    /// When it was last updated, in nanoseconds since [`epoch`].
    updated: AtomicU64,
}

/// The weight of each call. A peak EWMA (tower's, jumping to any slower
/// call) skewed an even fleet of 1 ms servers by up to 25 % on this 2-core
/// host, where a 1 ms call sometimes takes 5; an even weight keeps the fleet
/// within 8 % and still sends a server 20 ms slower 1 % of an even share
/// (tests/tests/balance.rs).
const WEIGHT: f64 = 0.1;
/// How fast an estimate fades without calls: to 1/e in this time.
const FADE: Duration = Duration::from_secs(2);

/// The instant the estimates' clocks count from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Ewma {
    /// The estimate at `now`, faded since its last update.
    fn estimate_nanos(&self, now: Instant) -> f64 {
        let estimate = f64::from_bits(self.nanos.load(Ordering::Relaxed));
        if estimate == 0.0 {
            return 0.0;
        }
        let now = now.saturating_duration_since(epoch()).as_nanos() as f64;
        let idle = (now - self.updated.load(Ordering::Relaxed) as f64).max(0.0);
        estimate * (-idle / FADE.as_nanos() as f64).exp()
    }

    fn record(&self, elapsed: Duration, now: Instant) {
        let sample = elapsed.as_nanos() as f64;
        let current = self.estimate_nanos(now);
        let next = if current == 0.0 {
            sample
        } else {
            current + (sample - current) * WEIGHT
        };
        // Racing updates may overwrite each other: an estimate, not a sum.
        self.nanos.store(next.to_bits(), Ordering::Relaxed);
        let stamp = now.saturating_duration_since(epoch()).as_nanos() as u64;
        self.updated.store(stamp, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(busy: f64, latency_ms: f64) -> Load {
        Load {
            busy,
            latency: latency_ms * 1e6,
        }
    }

    #[test]
    fn the_estimate_averages_and_fades() {
        let ewma = Ewma::default();
        let now = Instant::now();
        ewma.record(Duration::from_millis(1), now);
        assert_eq!(ewma.estimate_nanos(now), 1e6);
        ewma.record(Duration::from_millis(21), now);
        assert!((ewma.estimate_nanos(now) - 3e6).abs() < 1.0);
        ewma.record(Duration::from_millis(1), now);
        assert!((ewma.estimate_nanos(now) - 2.8e6).abs() < 1.0);
        let faded = ewma.estimate_nanos(now + FADE);
        let expected = 2.8e6 / std::f64::consts::E;
        assert!((faded - expected).abs() < expected * 1e-3, "{faded}");
    }

    #[test]
    fn similar_latencies_compare_by_load_and_far_ones_by_cost() {
        assert!(load(0.01, 1.9).lighter_than(load(0.02, 1.0)));
        assert!(!load(0.02, 1.0).lighter_than(load(0.02, 1.5)), "a tie");
        assert!(load(0.05, 1.0).lighter_than(load(0.01, 21.0)));
        assert!(load(0.01, 21.0).lighter_than(load(0.25, 1.0)));
        // Not yet measured: it borrows the other's latency.
        assert!(load(0.01, 0.0).lighter_than(load(0.02, 21.0)));
    }
}
