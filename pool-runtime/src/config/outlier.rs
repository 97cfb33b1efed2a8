//! Outlier detection settings (gRPC A50).

use std::time::Duration;

use super::check::{check_duration, invalid};
use crate::error::Error;

/// Takes servers that fail more than the others out of the pick for a
/// while, as gRPC's outlier detection (A50) does.
///
/// Every `interval`, each endpoint's calls of that interval are weighed.
/// Failures are the statuses a server's own trouble produces: `UNAVAILABLE`,
/// `INTERNAL`, `UNKNOWN` and `DEADLINE_EXCEEDED` as the client sees them,
/// never a call the caller cancelled. An endpoint found an outlier takes no
/// new calls for `base_ejection_time` times the number of times it was
/// ejected (at most `max_ejection_time`); `max_ejection_percent` of the
/// endpoints, and at least one, may be out at once, so that a general
/// outage never empties the pool. Counting needs a choice between
/// endpoints: a pool of one endpoint ejects nothing.
///
/// ```
/// use std::time::Duration;
/// use pooled_client::{FailurePercentageEjection, OutlierDetection};
///
/// let detection = OutlierDetection {
///     interval: Duration::from_secs(5),
///     failure_percentage: Some(FailurePercentageEjection { threshold: 50, ..Default::default() }),
///     ..Default::default()
/// };
/// let pool = pooled_client::Pool::builder()
///     .endpoint("http://10.0.0.1:50051")
///     .endpoint("http://10.0.0.2:50051")
///     .outlier_detection(detection)
///     .build()
///     .expect("valid settings");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct OutlierDetection {
    /// How often endpoints are weighed.
    ///
    /// Default: 10 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub interval: Duration,
    /// How long an endpoint stays out the first time; each further ejection
    /// adds as much again.
    ///
    /// Default: 30 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub base_ejection_time: Duration,
    /// The longest an endpoint stays out (or `base_ejection_time`, if that
    /// is longer).
    ///
    /// Default: 300 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub max_ejection_time: Duration,
    /// The most endpoints out at once, as a percentage of all of them; at
    /// least one may always be ejected.
    ///
    /// Default: 10.
    pub max_ejection_percent: u32,
    /// Ejection of endpoints whose success rate is far below the others'.
    ///
    /// Default: on, with [`SuccessRateEjection::default`].
    pub success_rate: Option<SuccessRateEjection>,
    /// Ejection of endpoints whose failures pass a threshold.
    ///
    /// Default: on, with [`FailurePercentageEjection::default`].
    pub failure_percentage: Option<FailurePercentageEjection>,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
            success_rate: Some(SuccessRateEjection::default()),
            failure_percentage: Some(FailurePercentageEjection::default()),
        }
    }
}

/// Success-rate ejection: an endpoint whose success rate is more than
/// `stdev_factor / 1000` standard deviations below the mean of the
/// endpoints' rates is an outlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct SuccessRateEjection {
    /// Standard deviations below the mean, in thousandths.
    ///
    /// Default: 1900 (1.9 standard deviations).
    pub stdev_factor: u32,
    /// The chance, in percent, that an outlier found is ejected.
    ///
    /// Default: 100.
    pub enforcement_percentage: u32,
    /// How many endpoints must have `request_volume` calls in the interval
    /// for the rates to be compared at all.
    ///
    /// Default: 5.
    pub minimum_hosts: u32,
    /// Calls an endpoint needs in the interval to be weighed.
    ///
    /// Default: 100.
    pub request_volume: u32,
}

impl Default for SuccessRateEjection {
    fn default() -> Self {
        Self {
            stdev_factor: 1900,
            enforcement_percentage: 100,
            minimum_hosts: 5,
            request_volume: 100,
        }
    }
}

/// Failure-percentage ejection: an endpoint whose calls in the interval
/// failed more than `threshold` percent of the time is an outlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct FailurePercentageEjection {
    /// The failure percentage above which an endpoint is an outlier.
    ///
    /// Default: 85.
    pub threshold: u32,
    /// The chance, in percent, that an outlier found is ejected.
    ///
    /// Default: 100.
    pub enforcement_percentage: u32,
    /// How many endpoints must have `request_volume` calls in the interval
    /// for any to be weighed.
    ///
    /// Default: 5.
    pub minimum_hosts: u32,
    /// Calls an endpoint needs in the interval to be weighed.
    ///
    /// Default: 50.
    pub request_volume: u32,
}

impl Default for FailurePercentageEjection {
    fn default() -> Self {
        Self {
            threshold: 85,
            enforcement_percentage: 100,
            minimum_hosts: 5,
            request_volume: 50,
        }
    }
}

impl OutlierDetection {
    /// Checks the durations and the percentages.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let detection = self;
        check_duration("outlier_detection interval", detection.interval)?;
        check_duration(
            "outlier_detection base_ejection_time",
            detection.base_ejection_time,
        )?;
        check_duration(
            "outlier_detection max_ejection_time",
            detection.max_ejection_time,
        )?;
        let percent = |name: &'static str, value: u32| {
            if value > 100 {
                return Err(invalid(name, value, "must be a percentage, at most 100"));
            }
            Ok(())
        };
        percent(
            "outlier_detection max_ejection_percent",
            detection.max_ejection_percent,
        )?;
        if let Some(rate) = &detection.success_rate {
            percent(
                "outlier_detection success_rate enforcement_percentage",
                rate.enforcement_percentage,
            )?;
        }
        if let Some(failures) = &detection.failure_percentage {
            percent(
                "outlier_detection failure_percentage threshold",
                failures.threshold,
            )?;
            percent(
                "outlier_detection failure_percentage enforcement_percentage",
                failures.enforcement_percentage,
            )?;
        }
        Ok(())
    }
}
