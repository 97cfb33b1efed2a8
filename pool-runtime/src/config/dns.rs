//! DNS discovery settings as plain data (feature `dns`).

use std::net::SocketAddr;
use std::time::Duration;

/// DNS discovery as plain data, for [`PoolConfig::dns`](crate::PoolConfig)
/// and configuration files:
///
/// ```toml
/// [dns]
/// uri = "http://greeter.internal:50051"
/// refresh_interval = "30s"          # optional
/// nameservers = ["10.0.0.2:53"]     # optional: the system's by default
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
#[non_exhaustive]
pub struct DnsConfig {
    /// The URI whose host is resolved, such as `http://greeter.internal:50051`.
    pub uri: String,
    /// How often the name is resolved again.
    ///
    /// Default: 30 s.
    #[cfg_attr(
        feature = "serde",
        serde(default = "default_refresh", with = "humantime_serde")
    )]
    pub refresh_interval: Duration,
    /// DNS servers to ask instead of the system's.
    ///
    /// Default: none (the system's).
    #[cfg_attr(feature = "serde", serde(default))]
    pub nameservers: Vec<SocketAddr>,
}

#[cfg(feature = "serde")]
fn default_refresh() -> Duration {
    DEFAULT_REFRESH
}

/// How often a name is resolved again unless set.
pub(crate) const DEFAULT_REFRESH: Duration = Duration::from_secs(30);

impl DnsConfig {
    /// Resolves `uri`'s host every 30 s with the system's servers.
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            refresh_interval: DEFAULT_REFRESH,
            nameservers: Vec::new(),
        }
    }
}
