//! An endpoint's latency estimate, which weighs its load in the pick when
//! endpoints answer at clearly different speeds (see `Load::lighter_than`).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// An endpoint's latency estimate: an exponentially weighted moving average
/// of its calls' latencies, which fades with time when no call refreshes it,
/// so that a server avoided for being slow is tried again (tower's
/// `PeakEwma` fades the same way). The fade is applied by the maintenance
/// tick (at least once a second), not computed at every pick.
#[derive(Debug, Default)]
pub(super) struct Ewma {
    /// The estimate in nanoseconds, as `f64` bits; 0 until the first call.
    nanos: AtomicU64,
    /// When it was last updated, in nanoseconds since [`epoch`].
    updated: AtomicU64,
    /// Calls measured so far.
    samples: AtomicU64,
    /// Set by the maintenance tick when no call was measured for
    /// [`STALE_AFTER`], cleared by the next measured call: until then every
    /// call is timed, so that an endpoint avoided for being slow is
    /// measured by its first call when its faded estimate lets calls back.
    stale: AtomicBool,
}

/// How long without a measured call makes an estimate stale.
const STALE_AFTER: Duration = Duration::from_millis(100);

/// The weight of each call once the estimate has settled.
///
/// A peak EWMA (tower's, jumping to any slower call) skewed an even fleet
/// of 1 ms servers by up to 25 % on this 2-core host, where a 1 ms call
/// sometimes takes 5; an even weight keeps the fleet within 8 % and still
/// sends a server 20 ms slower about 1 % of an even share
/// (tests/tests/balance.rs).
const WEIGHT: f64 = 0.1;

/// Calls measured before the estimate counts: until then an endpoint
/// borrows the other's latency, and the estimate is the fastest of its
/// calls, so that slow first calls (a cold server, a busy host) do not brand
/// a server slow before it has been measured.
pub(super) const MIN_SAMPLES: u64 = 10;

/// Once measured, one call in this many is timed.
pub(super) const SAMPLE_ONE_IN: u32 = 4;

/// The most a single call counts, as a multiple of the estimate.
const SPIKE: f64 = 4.0;

/// How fast an estimate fades without calls: to 1/e in this time.
const FADE: Duration = Duration::from_secs(2);

/// The instant the estimates' clocks count from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `now` in nanoseconds since [`epoch`], for clocks kept in atomics.
pub(super) fn since_epoch(now: Instant) -> u64 {
    now.saturating_duration_since(epoch()).as_nanos() as u64
}

impl Ewma {
    /// Whether the next call should be timed: while the estimate has its
    /// first samples or is stale, every call; then one in
    /// [`SAMPLE_ONE_IN`].
    pub(super) fn wants_sample(&self) -> bool {
        self.samples.load(Ordering::Relaxed) < MIN_SAMPLES
            || self.stale.load(Ordering::Relaxed)
            || fastrand::u32(..SAMPLE_ONE_IN) == 0
    }

    /// The estimate, or 0 while too few calls were measured.
    pub(super) fn estimate_nanos(&self) -> f64 {
        if self.samples.load(Ordering::Relaxed) < MIN_SAMPLES {
            return 0.0;
        }
        f64::from_bits(self.nanos.load(Ordering::Relaxed))
    }

    /// The stored estimate, faded since its last update.
    fn faded(&self, now: Instant) -> f64 {
        let estimate = f64::from_bits(self.nanos.load(Ordering::Relaxed));
        if estimate == 0.0 {
            return 0.0;
        }
        let idle = since_epoch(now).saturating_sub(self.updated.load(Ordering::Relaxed));
        estimate * (-(idle as f64) / FADE.as_nanos() as f64).exp()
    }

    /// Stores the estimate faded to `now`.
    pub(super) fn fade(&self, now: Instant) {
        let idle = since_epoch(now).saturating_sub(self.updated.load(Ordering::Relaxed));
        if idle > STALE_AFTER.as_nanos() as u64 {
            self.stale.store(true, Ordering::Relaxed);
        }
        let faded = self.faded(now);
        // A call recorded meanwhile may be overwritten: an estimate.
        self.nanos.store(faded.to_bits(), Ordering::Relaxed);
        self.updated.store(since_epoch(now), Ordering::Relaxed);
    }

    pub(super) fn record(&self, elapsed: Duration, now: Instant, in_full: bool) {
        self.stale.store(false, Ordering::Relaxed);
        let sample = elapsed.as_nanos() as f64;
        let count = self.samples.fetch_add(1, Ordering::Relaxed) + 1;
        let current = self.faded(now);
        let next = if count <= MIN_SAMPLES || current == 0.0 {
            // The fastest of the first calls: a busy host only ever adds
            // to a server's latency.
            if current == 0.0 {
                sample
            } else {
                current.min(sample)
            }
        } else {
            // Then an exponential average of calls counted at most
            // `SPIKE` times the estimate: one stalled call moves it a
            // little, a server that turned slow moves it within a few calls.
            let counted = if in_full {
                sample
            } else {
                sample.min(current * SPIKE)
            };
            current + (counted - current) * WEIGHT
        };
        // Racing updates may overwrite each other: an estimate, not a sum.
        self.nanos.store(next.to_bits(), Ordering::Relaxed);
        self.updated.store(since_epoch(now), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_takes_the_fastest_first_calls_then_weighs_and_fades() {
        let ewma = Ewma::default();
        let now = Instant::now();
        ewma.record(Duration::from_millis(19), now, false);
        assert_eq!(ewma.estimate_nanos(), 0.0, "not measured enough yet");
        for _ in 1..MIN_SAMPLES {
            ewma.record(Duration::from_millis(1), now, false);
        }
        assert_eq!(ewma.estimate_nanos(), 1e6, "the fastest of the first calls");
        // A stalled call counts as at most 4 times the estimate.
        ewma.record(Duration::from_millis(21), now, false);
        let weighed = ewma.estimate_nanos();
        assert!((weighed - 1.3e6).abs() < 1.0, "{weighed}");
        ewma.fade(now + FADE);
        let faded = ewma.estimate_nanos();
        let expected = weighed / std::f64::consts::E;
        assert!((faded - expected).abs() < expected * 1e-3, "{faded}");
    }
}
