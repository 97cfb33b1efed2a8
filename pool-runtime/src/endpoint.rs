//! One server address the pool connects to, and the health of its attempts.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use http::uri::{Authority, Scheme, Uri};

use crate::config::Backoff;
use crate::error::{BoxError, Error};

/// A parsed endpoint and the bookkeeping of its connection attempts.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// The URI as the user wrote it, for messages.
    pub(crate) uri: String,
    pub(crate) scheme: Scheme,
    pub(crate) authority: Authority,
    /// `host:port`, as `TcpStream::connect` takes it.
    pub(crate) address: String,
    attempts: Mutex<Attempts>,
}

/// The state of an endpoint's connection attempts.
#[derive(Debug, Default)]
pub(crate) struct Attempts {
    /// An attempt is under way (at most one per endpoint).
    pub(crate) connecting: bool,
    /// Attempts that failed in a row since the last success.
    pub(crate) failures: u32,
    /// No attempt before this instant.
    pub(crate) retry_at: Option<Instant>,
    /// Why the last attempt failed.
    pub(crate) last_error: Option<Arc<BoxError>>,
}

impl Endpoint {
    /// Parses and checks an endpoint URI.
    pub(crate) fn parse(uri: &str) -> Result<Self, Error> {
        let parsed: Uri = uri.parse().map_err(|source| Error::InvalidUri {
            uri: uri.to_owned(),
            source,
        })?;
        let invalid = |reason| Error::InvalidEndpoint {
            uri: uri.to_owned(),
            reason,
        };
        let scheme = parsed
            .scheme()
            .cloned()
            .ok_or_else(|| invalid("it has no scheme: write \"http://host:port\""))?;
        if scheme != Scheme::HTTP {
            return Err(Error::UnsupportedScheme {
                uri: uri.to_owned(),
                scheme: scheme.as_str().to_owned(),
            });
        }
        let authority = parsed
            .authority()
            .cloned()
            .ok_or_else(|| invalid("it has no host"))?;
        if authority.host().is_empty() {
            return Err(invalid("it has no host"));
        }
        if authority.as_str().contains('@') {
            return Err(invalid(
                "user information in the authority is not supported",
            ));
        }
        if parsed.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err(invalid(
                "it has a path or query: give only scheme, host and port",
            ));
        }
        let port = authority.port_u16().unwrap_or(80);
        let address = format!("{}:{port}", authority.host());
        Ok(Self {
            uri: uri.to_owned(),
            scheme,
            authority,
            address,
            attempts: Mutex::new(Attempts::default()),
        })
    }

    /// The attempt bookkeeping; never held across an await.
    pub(crate) fn attempts(&self) -> MutexGuard<'_, Attempts> {
        // A panic while holding this lock cannot leave the counters torn,
        // so a poisoned lock is still usable.
        self.attempts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether an attempt may start now; claims the endpoint if so.
    pub(crate) fn try_claim(&self, now: Instant) -> bool {
        let mut attempts = self.attempts();
        if attempts.connecting || attempts.retry_at.is_some_and(|at| at > now) {
            return false;
        }
        attempts.connecting = true;
        true
    }

    /// Records a successful attempt.
    pub(crate) fn succeeded(&self) {
        let mut attempts = self.attempts();
        attempts.connecting = false;
        attempts.failures = 0;
        attempts.retry_at = None;
        attempts.last_error = None;
    }

    /// Records a failed attempt and returns when to try again.
    pub(crate) fn failed(&self, error: BoxError, backoff: &Backoff) -> Instant {
        let mut attempts = self.attempts();
        attempts.connecting = false;
        attempts.failures = attempts.failures.saturating_add(1);
        let retry_at = Instant::now() + backoff.delay(attempts.failures, fastrand::f64());
        attempts.retry_at = Some(retry_at);
        attempts.last_error = Some(Arc::new(error));
        retry_at
    }

    /// Whether the last attempt failed (and none has succeeded since).
    pub(crate) fn is_failing(&self) -> bool {
        self.attempts().failures > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_and_port() {
        let endpoint = Endpoint::parse("http://127.0.0.1:50051").unwrap();
        assert_eq!(endpoint.address, "127.0.0.1:50051");
        assert_eq!(endpoint.authority.as_str(), "127.0.0.1:50051");
    }

    #[test]
    fn defaults_port_80_and_keeps_ipv6_brackets() {
        assert_eq!(
            Endpoint::parse("http://localhost").unwrap().address,
            "localhost:80"
        );
        assert_eq!(
            Endpoint::parse("http://[::1]:9").unwrap().address,
            "[::1]:9"
        );
    }

    #[test]
    fn rejects_paths_and_https() {
        assert!(matches!(
            Endpoint::parse("http://h:1/api"),
            Err(Error::InvalidEndpoint { .. })
        ));
        assert!(matches!(
            Endpoint::parse("https://h:1"),
            Err(Error::UnsupportedScheme { .. })
        ));
    }
}
