//! An endpoint as the pick sees it (gRPC calls it a subchannel): its
//! connections in the rotation, and how fast it has been answering.

use super::Member;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use arc_swap::Guard;

use super::latency::{Ewma, since_epoch};
use crate::conn::Connection;
use crate::telemetry::stats::EndpointStats;

/// An endpoint's connections in the rotation, as one pick read them.
pub(super) type Connections = Guard<Arc<Vec<Arc<Connection>>>>;

/// One endpoint's connections that take calls, and its latency estimate.
#[derive(Debug)]
pub(crate) struct Subchannel {
    pub(crate) endpoint: Arc<Member>,
    /// This endpoint's connections in the rotation; changed under the
    /// pool's `live` lock, read lock-free by every pick.
    pub(super) connections: ArcSwap<Vec<Arc<Connection>>>,
    latency: Ewma,
    /// Copies of hedged calls that lost the race here, counted in flight
    /// for a while after they were cancelled (see [`Subchannel::record_lost`]).
    lingering: AtomicUsize,
    /// Calls it carried, counted as their latency is recorded.
    calls: AtomicU64,
    /// Calls whose outcome was seen in the current outlier-detection
    /// interval, and those of them that failed.
    outcomes: AtomicU64,
    interval_failures: AtomicU64,
    /// Calls that failed since it joined.
    failures: AtomicU64,
    /// Until when it is ejected, in nanoseconds since [`epoch`]; 0 when not.
    ejected_until: AtomicU64,
    /// How many times in a row it was ejected (gRPC A50's multiplier).
    ejections: AtomicU64,
    /// Its weight beside the others' (see `weights.rs`), an `f64`'s bits.
    weight: AtomicU64,
}

impl Subchannel {
    pub(super) fn new(endpoint: Arc<Member>) -> Self {
        Self {
            endpoint,
            connections: ArcSwap::from_pointee(Vec::new()),
            latency: Ewma::default(),
            lingering: AtomicUsize::new(0),
            calls: AtomicU64::new(0),
            outcomes: AtomicU64::new(0),
            interval_failures: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            ejected_until: AtomicU64::new(0),
            ejections: AtomicU64::new(0),
            weight: AtomicU64::new(1.0f64.to_bits()),
        }
    }

    /// Its weight beside the others'.
    #[inline]
    pub(super) fn weight(&self) -> f64 {
        f64::from_bits(self.weight.load(Ordering::Relaxed))
    }

    pub(super) fn set_weight(&self, weight: f64) {
        self.weight.store(weight.to_bits(), Ordering::Relaxed);
    }

    /// How loaded the endpoint is, with its connections as read, or `None`
    /// when no connection of it has a free stream. Costs a look at this
    /// endpoint's connections only, and no clock read unless it has been
    /// ejected.
    #[inline]
    pub(super) fn load(&self) -> Option<(Load, Connections)> {
        if self.ejected_until.load(Ordering::Relaxed) != 0 && self.is_ejected(Instant::now()) {
            return None;
        }
        let connections = self.connections.load();
        let (mut in_flight, mut free) = (0usize, false);
        for connection in connections.iter() {
            if !connection.link.is_ready() {
                continue;
            }
            let held = connection.in_flight();
            in_flight += held;
            free |= held < connection.capacity();
        }
        if !free {
            return None;
        }
        in_flight += self.lingering.load(Ordering::Relaxed);
        let load = Load {
            in_flight: in_flight as f64,
            latency: self.latency.estimate_nanos(),
            weight: self.weight(),
        };
        Some((load, connections))
    }

    /// Whether this endpoint, full or not, is known to answer clearly
    /// faster than one with `other` load (and is not ejected).
    pub(super) fn is_clearly_faster_than(&self, other: Load) -> bool {
        let mine = self.latency.estimate_nanos();
        mine > 0.0
            && other.latency > mine
            && !same_latency(mine, other.latency)
            && !self.is_ejected(Instant::now())
    }

    /// Whether the call being placed should be timed: every call until the
    /// estimate has its first samples or while it is stale, then one in
    /// [`SAMPLE_ONE_IN`]. A
    /// clock read costs about as much as the rest of the pick, and a moving
    /// average needs no more.
    #[inline]
    pub(super) fn wants_timing(&self) -> bool {
        self.latency.wants_sample()
    }

    /// Fades the latency estimate for the time it went without a sample;
    /// called by the maintenance tick, so that the pick reads no clock.
    pub(super) fn fade(&self, now: Instant) {
        self.latency.fade(now);
    }

    /// Counts a call it carried.
    #[inline]
    pub(super) fn count_call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long a timed call on this endpoint took, from its pick
    /// to the release of its stream.
    pub(super) fn record(&self, elapsed: Duration, now: Instant) {
        self.latency.record(elapsed, now, false);
    }

    /// Records a copy of a hedged call that lost to a copy on another
    /// endpoint: it took at least `elapsed`, and counts in full (not
    /// clipped as a lone stall is), so that a server whose stalls hedging
    /// hides still looks as slow as it was.
    ///
    /// It also counts as in flight for [`LINGER`] times `elapsed` more: A48's
    /// least request keeps calls off a server that stalls because its
    /// stalled calls stay in flight; a hedge cancels them early, and without
    /// this the server would look idle sooner, take more calls and stall
    /// more of them (S10, 64 callers: 1.1 % of hedged calls met a stall
    /// against 0.6 % unhedged, and the hedged p99 was the hedging delay).
    pub(super) fn record_lost(self: &Arc<Self>, elapsed: Duration, now: Instant) {
        self.latency.record(elapsed, now, true);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.lingering.fetch_add(1, Ordering::Relaxed);
        let subchannel = Arc::clone(self);
        runtime.spawn(async move {
            tokio::time::sleep(elapsed * LINGER).await;
            subchannel.lingering.fetch_sub(1, Ordering::Relaxed);
        });
    }

    /// Records how a call ended: whether it failed as a server's trouble
    /// makes calls fail (see [`OutlierDetection`](crate::OutlierDetection)).
    pub(super) fn record_outcome(&self, failed: bool) {
        self.outcomes.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.interval_failures.fetch_add(1, Ordering::Relaxed);
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether outlier detection has taken it out of the pick at `now`.
    #[inline]
    pub(super) fn is_ejected(&self, now: Instant) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        until != 0 && since_epoch(now) < until
    }

    /// What the endpoint holds and has done.
    /// The calls whose outcome was seen in the outlier-detection interval
    /// now ending, and those of them that failed; the next interval starts
    /// from zero.
    pub(super) fn take_interval(&self) -> (u64, u64) {
        (
            self.outcomes.swap(0, Ordering::Relaxed),
            self.interval_failures.swap(0, Ordering::Relaxed),
        )
    }

    /// Whether an ejection was recorded (its time may be up, not yet
    /// returned by the detector).
    pub(super) fn has_ejection(&self) -> bool {
        self.ejected_until.load(Ordering::Relaxed) != 0
    }

    /// An interval spent in the pick lowers the ejection multiplier (A50).
    pub(super) fn lower_ejection_multiplier(&self) {
        let _ = self
            .ejections
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Back in the pick: its ejection is over.
    pub(super) fn return_from_ejection(&self) {
        self.ejected_until.store(0, Ordering::Relaxed);
    }

    /// Counts one more ejection in a row; how many, this one included
    /// (A50's multiplier of the ejection time).
    pub(super) fn count_ejection(&self) -> u64 {
        self.ejections.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Ejects it until `until`.
    pub(super) fn eject_until(&self, until: Instant) {
        self.ejected_until
            .store(since_epoch(until).max(1), Ordering::Relaxed);
    }

    pub(super) fn stats(&self) -> EndpointStats {
        let connections = self.connections.load();
        EndpointStats {
            target: self.endpoint.target.clone(),
            connections: connections.len(),
            in_flight: connections.iter().map(|c| c.in_flight()).sum(),
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            ejected: self.is_ejected(Instant::now()),
            latency: Duration::from_nanos(self.latency.estimate_nanos() as u64),
        }
    }
}

/// An endpoint's load as the pick weighs it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Load {
    /// The streams in flight.
    in_flight: f64,
    /// The latency estimate in nanoseconds; 0 when unknown.
    latency: f64,
    /// The endpoint's weight: its load counts as `in_flight / weight`, so
    /// that endpoints settle at loads in proportion to their weights.
    weight: f64,
}

/// Latencies within this factor of each other count as equal: on a busy
/// host the same server answers 1 ms calls in 1 to 2 ms, and weighing that
/// noise would skew an even fleet; a server that is really slower (20 ms
/// against 1 ms) is far outside it.
const SAME_LATENCY: f64 = 4.0;

/// Nor does a gap below this count, however large the factor: a busy host
/// delays a 1 ms call by a few milliseconds now and then.
const SAME_LATENCY_GAP: f64 = 5e6;

/// Whether two latencies (in nanoseconds) count as the same.
fn same_latency(a: f64, b: f64) -> bool {
    (a <= b * SAME_LATENCY && b <= a * SAME_LATENCY) || (a - b).abs() < SAME_LATENCY_GAP
}

impl Load {
    /// Whether `self` is the lighter of two endpoints. Endpoints of about
    /// the same latency compare by their calls in flight (gRPC A48's
    /// outstanding requests; idle ones tie, and the random draw breaks the
    /// tie), not by a fraction of what their servers advertise: a server
    /// that advertises "unlimited" streams (grpc-java's and Envoy's
    /// 2147483647) is not idler than one that advertises none (grpc-go's).
    /// The advertised limit decides only whether a connection is full and
    /// when to grow (A105). Endpoints of clearly different latency compare
    /// by the calls in flight, the one being placed included, times
    /// latency, as tower's `PeakEwma` balancer, Finagle and linkerd weigh
    /// load. An endpoint not yet measured borrows the other's latency, so
    /// that a new server is neither flooded nor starved.
    pub(super) fn lighter_than(self, other: Load) -> bool {
        let known = |l: f64, fallback: f64| if l > 0.0 { l } else { fallback.max(1.0) };
        let (mine, theirs) = (
            known(self.latency, other.latency),
            known(other.latency, self.latency),
        );
        // Each side's load over its weight, multiplied out.
        if same_latency(mine, theirs) {
            self.in_flight * other.weight < other.in_flight * self.weight
        } else {
            (self.in_flight + 1.0) * mine * other.weight
                < (other.in_flight + 1.0) * theirs * self.weight
        }
    }
}

/// How long a copy that lost a hedge race keeps counting in flight on its
/// server, in multiples of the time it ran. How much of a stall is left
/// when a hedge cuts it short is unknown; measured on S10 (one server of
/// two stalling, 64 callers), as long again (1) left 0.5 to 1.2 % of calls
/// slow, at the 1 % where they reach the p99, and twice as long 0.4 %,
/// as without hedging. A server that lost a race by chance loses one
/// call's share for that long, no more.
const LINGER: u32 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    /// A load of `in_flight` calls on an endpoint whose connections allow
    /// `_capacity` (which the comparison does not read: gRPC A48 compares
    /// outstanding requests).
    fn load(in_flight: f64, _capacity: f64, latency_ms: f64) -> Load {
        Load {
            in_flight,
            latency: latency_ms * 1e6,
            weight: 1.0,
        }
    }

    #[test]
    fn similar_latencies_compare_by_load_and_far_ones_by_cost() {
        assert!(load(1.0, 100.0, 1.9).lighter_than(load(2.0, 100.0, 1.0)));
        assert!(
            !load(2.0, 100.0, 1.0).lighter_than(load(2.0, 100.0, 1.5)),
            "a tie"
        );
        assert!(load(5.0, 100.0, 1.0).lighter_than(load(1.0, 100.0, 21.0)));
        assert!(load(0.0, 100.0, 21.0).lighter_than(load(25.0, 100.0, 1.0)));
        // Not yet measured: it borrows the other's latency.
        assert!(load(1.0, 100.0, 0.0).lighter_than(load(2.0, 100.0, 21.0)));
        // A fast server allowing two streams beats an idle slow one
        // allowing two hundred: latency weighs absolute calls in flight.
        assert!(load(1.0, 2.0, 1.0).lighter_than(load(0.0, 200.0, 50.0)));
        // 1 ms against 5 ms is a factor of five but a gap a busy host
        // makes: the same latency, compared by load.
        assert!(load(1.0, 100.0, 5.0).lighter_than(load(2.0, 100.0, 1.0)));
        // A server advertising "unlimited" streams is not idler than one
        // advertising 100 with fewer calls in flight.
        assert!(load(3.0, 100.0, 1.0).lighter_than(load(4.0, 2_147_483_647.0, 1.0)));
    }
}
