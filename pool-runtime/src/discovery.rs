//! Endpoints that come and go while the pool runs.
//!
//! A discovery source is a stream of tower's [`Change`]s: Kubernetes,
//! Consul or etcd watchers turn their events into `Change::Insert(key,
//! target)` and `Change::Remove(key)` and hand the stream to
//! [`PoolBuilder::discovery`](crate::PoolBuilder::discovery). The `dns`
//! feature's `dns::DnsDiscovery` is one such source.

use std::net::SocketAddr;

pub use tower::discover::Change;

/// An endpoint as a discovery source names it: a URI, and optionally the
/// address to connect to instead of resolving the URI's host.
///
/// With an address, the URI's host is still the `:authority` of every call
/// and the server name TLS checks, so a source that knows a pod's IP can
/// still reach `https://orders.internal` by name.
///
/// ```
/// use pooled_client::discovery::Target;
///
/// let by_name = Target::from("http://orders.internal:50051");
/// let by_address = Target::new("https://orders.internal")
///     .connect_to("10.1.2.3:443".parse().unwrap());
/// assert_eq!(by_address.address(), Some("10.1.2.3:443".parse().unwrap()));
/// # let _ = by_name;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    uri: String,
    address: Option<SocketAddr>,
}

impl Target {
    /// A target reached by resolving `uri`'s host.
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            address: None,
        }
    }

    /// Connects to `address` instead of resolving the URI's host.
    #[must_use]
    pub fn connect_to(mut self, address: SocketAddr) -> Self {
        self.address = Some(address);
        self
    }

    /// The URI, such as `http://10.0.0.1:50051`.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The address connected to, when it is not the URI's host.
    pub fn address(&self) -> Option<SocketAddr> {
        self.address
    }
}

/// The URI, followed by ` at <address>` when one was given, as logs and
/// messages name the endpoint.
impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.address {
            None => f.write_str(&self.uri),
            Some(address) => write!(f, "{} at {address}", self.uri),
        }
    }
}

impl From<&Target> for Target {
    fn from(target: &Target) -> Self {
        target.clone()
    }
}

impl From<String> for Target {
    fn from(uri: String) -> Self {
        Self::new(uri)
    }
}

impl From<&str> for Target {
    fn from(uri: &str) -> Self {
        Self::new(uri)
    }
}

impl From<&String> for Target {
    fn from(uri: &String) -> Self {
        Self::new(uri.as_str())
    }
}
