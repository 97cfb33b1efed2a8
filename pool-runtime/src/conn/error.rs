//! Why a call failed in the transport: an HTTP/2 error, a missed
//! keepalive, or the request body's own failure.

use std::fmt;

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
