//! When nothing can be reached: the one test for it, and what calls and
//! `ready()` are told.

use std::time::Duration;

use tonic::Status;

use super::{Inner, Member};
use crate::conn::status;
use crate::error::Error;

impl Inner {
    /// Whether every endpoint failed its last attempt for good (see
    /// [`failed_for_good`](Self::failed_for_good)); false while the pool
    /// has no endpoints, so that calls wait for discovery to supply some.
    pub(super) fn all_endpoints_failing(&self) -> bool {
        let endpoints = self.fleet.endpoints.load();
        !endpoints.is_empty() && endpoints.iter().all(|e| self.failed_for_good(e))
    }

    /// Whether `member` failed its last attempt with nothing standing by
    /// for it. When an xDS cluster's next priority stands by for it (gRPC
    /// A56), its failure is the cue to fail over, not the calls' verdict:
    /// calls wait for the failover, as grpc-go's priority balancer fails
    /// over before any call hears that nothing can be reached.
    pub(super) fn failed_for_good(&self, member: &Member) -> bool {
        member.is_failing()
            && !member.target.address().is_some_and(|address| {
                self.fleet
                    .clusters
                    .load()
                    .values()
                    .any(|c| c.fails_over && c.weights.contains_key(&address))
            })
    }

    /// Whether no call can be served soon: no connection takes calls, no
    /// attempt is under way, and every endpoint failed its last attempt.
    /// Calls then fail at once with `UNAVAILABLE` rather than wait.
    pub(super) fn nothing_reachable(&self) -> bool {
        self.fleet.rotation.load().is_empty()
            && self.connecting() == 0
            && self.all_endpoints_failing()
    }

    /// The endpoint that failed last, and why.
    fn last_failure(&self) -> Option<(String, String)> {
        self.fleet
            .endpoints
            .load()
            .iter()
            .rev()
            .find_map(|endpoint| {
                let attempts = endpoint.attempts();
                let error = attempts.last_error.as_ref()?;
                Some((endpoint.key.clone(), status::chain(&***error)))
            })
    }

    /// That the pool has no endpoints, and why when it knows.
    fn no_endpoints(&self) -> String {
        format!("the pool has no endpoints{}", self.why_no_endpoints())
    }

    /// Why the pool has no endpoints, as `: reason`, when it knows: an xDS
    /// pool names the resource it still lacks.
    pub(super) fn why_no_endpoints(&self) -> String {
        #[cfg(feature = "xds")]
        if let Some(why) = self
            .telemetry
            .xds
            .as_ref()
            .and_then(|board| board.lacking())
        {
            return format!(": {why}");
        }
        String::new()
    }

    /// The status of a call that nothing can serve.
    pub(super) fn unavailable_status(&self) -> Status {
        if self.fleet.endpoints.load().is_empty() {
            return Status::unavailable(self.no_endpoints());
        }
        match self.last_failure() {
            Some((uri, error)) => Status::unavailable(format!(
                "no connection is available; the last attempt, to {uri}, failed: {error}"
            )),
            None => Status::unavailable("no connection is available"),
        }
    }

    /// The status of a call that found no connection up within `limit`
    /// (at least `connect_timeout`): the last attempt's error if one failed,
    /// else the attempts that are timing out (a server that accepts and
    /// never answers).
    pub(super) fn no_connection_status(&self, limit: Duration) -> Status {
        if self.fleet.endpoints.load().is_empty() {
            return Status::unavailable(format!("{} (waited {limit:?})", self.no_endpoints()));
        }
        match self.last_failure() {
            Some((uri, error)) => Status::unavailable(format!(
                "no connection came up within {limit:?}; the last attempt, to {uri}, failed: {error}"
            )),
            None => Status::unavailable(format!(
                "no connection came up within {limit:?}: {} connection attempt(s) timed out after {:?} (connect_timeout)",
                self.connecting().max(1),
                self.config.connect_timeout
            )),
        }
    }

    /// The status of a call whose deadline of `timeout` passed before it
    /// had an answer: when no connection was up, it says so (nothing was
    /// sent) and names the attempts under way or the last one's error.
    pub(crate) fn deadline_status(&self, timeout: Duration) -> Status {
        if self.fleet.endpoints.load().is_empty() {
            return Status::deadline_exceeded(format!(
                "the call's deadline of {timeout:?} passed while {}, so it was not sent",
                self.no_endpoints()
                    .replacen("the pool has", "the pool had", 1)
            ));
        }
        if !self.fleet.rotation.load().is_empty() {
            return Status::deadline_exceeded(format!(
                "the call's deadline of {timeout:?} passed before the server answered"
            ));
        }
        let attempts = match (self.connecting(), self.last_failure()) {
            (0, Some((uri, error))) => {
                format!("the last connection attempt, to {uri}, failed: {error}")
            }
            (0, None) => "no connection attempt is under way".to_owned(),
            (n, _) => format!(
                "{n} connection attempt(s) under way (connect_timeout {:?})",
                self.config.connect_timeout
            ),
        };
        Status::deadline_exceeded(format!(
            "the call's deadline of {timeout:?} passed before any connection was ready, so it was not sent; {attempts}"
        ))
    }

    /// The error of `ready()` when nothing can be reached.
    pub(super) fn connect_error(&self) -> Error {
        let (endpoint, error) = self
            .last_failure()
            .unwrap_or_else(|| ("every endpoint".to_owned(), "unknown error".to_owned()));
        Error::Connect {
            endpoint,
            source: error.into(),
        }
    }
}

/// The status of a call made after the pool was closed.
pub(crate) fn closed_status() -> Status {
    Status::unavailable("the pool is closed")
}
