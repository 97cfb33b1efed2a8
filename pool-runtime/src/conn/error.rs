//! Why a call failed in the transport (an HTTP/2 error, a missed
//! keepalive, or the request body's own failure), why a connection
//! attempt failed, and why a health check did.

use std::fmt;

use super::link::FirstAnswer;
use std::time::Duration;

/// A transport failure of one request or of its connection.
#[derive(Debug)]
pub(crate) enum TransportError {
    /// What h2 reported: a stream reset, a GOAWAY, an I/O error, a
    /// connection that ended.
    H2(h2::Error),
    /// The server did not answer a keepalive PING within
    /// `keep_alive_timeout`.
    KeepaliveTimeout,
    /// The request body failed (the caller's stream, or the call ended
    /// first).
    Body(crate::error::BoxError),
}

impl TransportError {
    /// Whether the connection missed its keepalive.
    pub(crate) fn is_timeout(&self) -> bool {
        matches!(self, Self::KeepaliveTimeout)
    }

    /// Whether the connection is gone (closed, broken, or told GOAWAY):
    /// nothing more can be sent on it.
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Self::H2(error) => error.is_io() || error.is_go_away() || !error.is_reset(),
            Self::KeepaliveTimeout => true,
            Self::Body(_) => false,
        }
    }

    /// The h2 error behind this one, if any.
    pub(crate) fn h2(&self) -> Option<&h2::Error> {
        match self {
            Self::H2(error) => Some(error),
            _ => None,
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::H2(error) => write!(f, "http2 error: {error}"),
            Self::KeepaliveTimeout => f.write_str("keep-alive timed out"),
            Self::Body(error) => write!(f, "request body failed: {error}"),
        }
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::H2(error) => Some(error),
            Self::KeepaliveTimeout => None,
            Self::Body(error) => Some(&**error),
        }
    }
}

impl From<h2::Error> for TransportError {
    fn from(error: h2::Error) -> Self {
        Self::H2(error)
    }
}

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connection attempt timed out after {0:?} (connect_timeout)")]
    Timeout(Duration),
    #[error("tcp connect failed: {0}")]
    Tcp(#[source] std::io::Error),
    #[error("connecting to the Unix socket {path:?} failed: {source}")]
    Unix {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the connector failed: {0}")]
    Connector(#[source] crate::error::BoxError),
    #[cfg(feature = "tls")]
    #[error("tls handshake failed: {0}")]
    Tls(#[source] std::io::Error),
    #[error("endpoint is https but the pool has no TLS settings")]
    NoTls,
    #[error("http/2 handshake failed: {0}")]
    Handshake(#[source] h2::Error),
    /// The connection ended before it could take calls: `cause` is what
    /// h2 saw, `answered` what the server sent if it is not HTTP/2.
    #[error("{}", closed_early(.cause.as_ref(), .answered, *.goaway))]
    ClosedEarly {
        #[source]
        cause: Option<TransportError>,
        answered: FirstAnswer,
        /// Whether the server sent GOAWAY (h2 may end without an error
        /// after a graceful one).
        goaway: bool,
    },
    #[error(
        "the server at {endpoint} allows 0 concurrent streams (SETTINGS_MAX_CONCURRENT_STREAMS = 0): the connection can carry no call"
    )]
    NoStreams { endpoint: String },
    #[error(transparent)]
    Unhealthy(HealthError),
}

/// Why a health check failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HealthError {
    #[error("health check for {service:?} answered {status}")]
    NotServing {
        service: String,
        status: &'static str,
    },
    #[error("health check for {service:?} failed: {status}")]
    Failed {
        service: String,
        status: tonic::Status,
    },
    #[error("health check for {service:?} got no answer within {timeout:?}")]
    Timeout { service: String, timeout: Duration },
}

/// What a connection that ended before it was ready says.
fn closed_early(cause: Option<&TransportError>, answered: &FirstAnswer, goaway: bool) -> String {
    match answered {
        FirstAnswer::Http1(line) => {
            return format!("the server does not speak HTTP/2 (it answered: {line})");
        }
        FirstAnswer::Tls(kind) => {
            return format!(
                "the server answered with TLS (a record of type {kind}): use https:// (and a TlsConfig)"
            );
        }
        FirstAnswer::Nothing => {
            return "the server closed the connection without sending a byte (a TLS server closes so on a plaintext client: if it serves TLS, use https:// and a TlsConfig)".to_owned();
        }
        FirstAnswer::Frames => {}
    }
    match cause.and_then(TransportError::h2) {
        Some(h2) if h2.is_go_away() && h2.is_remote() => {
            let reason = h2.reason().unwrap_or(h2::Reason::NO_ERROR);
            format!("the server sent GOAWAY ({reason:?}) before the connection was ready: {h2}")
        }
        Some(h2) => {
            format!("the connection failed before the server's SETTINGS frame arrived: {h2}")
        }
        None => match cause {
            Some(cause) => format!("the connection failed before it was ready: {cause}"),
            None if goaway => "the server sent GOAWAY before the connection took a call".to_owned(),
            None => "the server closed the connection before its SETTINGS frame arrived".to_owned(),
        },
    }
}
