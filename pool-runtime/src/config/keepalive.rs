//! HTTP/2 keepalive settings.

use std::time::Duration;

/// HTTP/2 keepalive settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
#[non_exhaustive]
pub struct Keepalive {
    /// Time between PINGs.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub interval: Duration,
    /// How long to wait for a PING's acknowledgement before the connection
    /// is considered dead.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub timeout: Duration,
    /// Whether PINGs are sent while no call is in flight, so that a dead idle
    /// connection is found before a call is sent on it.
    ///
    /// Default: true.
    #[cfg_attr(feature = "serde", serde(default = "yes"))]
    pub while_idle: bool,
}

#[cfg(feature = "serde")]
fn yes() -> bool {
    true
}

impl Keepalive {
    /// Keepalive with the given interval and timeout, pinging while idle.
    pub fn new(interval: Duration, timeout: Duration) -> Self {
        Self {
            interval,
            timeout,
            while_idle: true,
        }
    }
}
