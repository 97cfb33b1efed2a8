//! Health checking settings.

use std::time::Duration;

use super::check::check_duration;
use crate::error::Error;

/// Health checking settings: which service to ask about, and how often.
///
/// Each connection sends `grpc.health.v1.Health/Check` for `service` once
/// per `interval` (skipped while every stream of the connection is taken:
/// the calls in flight show whether it works). An answer other than
/// `SERVING`, an error or no answer within `timeout` takes every connection
/// to that endpoint out of the rotation; the pool then reconnects with its
/// backoff, and a new connection joins only once the server answers
/// `SERVING`. A server that does not implement the health service
/// (`UNIMPLEMENTED`) counts as serving, as in gRPC's own health checking.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(from = "HealthCheckFields"))]
#[non_exhaustive]
pub struct HealthCheck {
    /// The service name to check; the empty string asks about the server
    /// as a whole.
    pub service: String,
    /// Time between checks on one connection.
    pub interval: Duration,
    /// How long to wait for an answer. Default: the interval, at most 5 s.
    pub timeout: Duration,
}

impl HealthCheck {
    /// Checks `service` every `interval`, waiting up to the interval (at
    /// most 5 s) for each answer.
    pub fn new(service: impl Into<String>, interval: Duration) -> Self {
        Self {
            service: service.into(),
            interval,
            timeout: interval.min(Duration::from_secs(5)),
        }
    }

    /// Sets how long to wait for each answer.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// A health check as written in a file: the timeout may be left out.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthCheckFields {
    #[serde(default)]
    service: String,
    #[serde(with = "humantime_serde")]
    interval: Duration,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
}

#[cfg(feature = "serde")]
impl From<HealthCheckFields> for HealthCheck {
    fn from(fields: HealthCheckFields) -> Self {
        let check = HealthCheck::new(fields.service, fields.interval);
        match fields.timeout {
            Some(timeout) => check.timeout(timeout),
            None => check,
        }
    }
}

impl HealthCheck {
    /// Checks the interval and the timeout.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let check = self;
        check_duration("health_check interval", check.interval)?;
        check_duration("health_check timeout", check.timeout)?;
        Ok(())
    }
}
