//! Spacing reconnection attempts.

use std::time::Duration;

use super::check::{check_duration, invalid};
use crate::error::Error;

/// Exponential backoff with jitter between connection attempts to an
/// endpoint whose previous attempt failed.
///
/// The first reconnection after a working connection breaks is immediate;
/// after `n` failures in a row the next attempt waits
/// `min(initial * multiplier^(n-1), max)`, randomly spread by `± jitter`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct Backoff {
    /// Delay after the first failure. Default: 1 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub initial: Duration,
    /// Growth factor per further failure. Default: 1.6.
    pub multiplier: f64,
    /// Relative spread, between 0 and 1. Default: 0.2.
    pub jitter: f64,
    /// The longest delay. Default: 5 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            multiplier: 1.6,
            jitter: 0.2,
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// A backoff with the given delays, multiplier and jitter.
    pub fn new(initial: Duration, multiplier: f64, jitter: f64, max: Duration) -> Self {
        Self {
            initial,
            multiplier,
            jitter,
            max,
        }
    }

    /// The delay before the next attempt after `failures` failures in a row
    /// (at least 1), before jitter.
    pub fn base_delay(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(64) as i32;
        let secs = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        Duration::from_secs_f64(secs.min(self.max.as_secs_f64()))
    }

    /// The delay before the next attempt after `failures` failures in a row,
    /// spread by a random factor in `1 ± jitter` drawn from `unit` in `[0, 1)`.
    pub fn delay(&self, failures: u32, unit: f64) -> Duration {
        let spread = 1.0 + self.jitter * (2.0 * unit - 1.0);
        self.base_delay(failures).mul_f64(spread.max(0.0))
    }
}

impl Backoff {
    /// Checks the delays, the multiplier and the jitter.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let backoff = self;
        check_duration("backoff initial", backoff.initial)?;
        check_duration("backoff max", backoff.max)?;
        if backoff.max < backoff.initial {
            return Err(invalid(
                "backoff max",
                backoff.max,
                format!("must not be below backoff initial = {:?}", backoff.initial),
            ));
        }
        if !(backoff.multiplier.is_finite() && backoff.multiplier >= 1.0) {
            return Err(invalid(
                "backoff multiplier",
                backoff.multiplier,
                "must be a finite number of at least 1",
            ));
        }
        if !(0.0..=1.0).contains(&backoff.jitter) {
            return Err(invalid(
                "backoff jitter",
                backoff.jitter,
                "must be between 0 and 1",
            ));
        }
        Ok(())
    }
}
