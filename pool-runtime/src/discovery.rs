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

/// A discovery source's state between the items of its stream: DNS's and
/// etcd's, made a stream by [`stream_of`].
#[cfg(any(feature = "dns", feature = "etcd"))]
pub(crate) trait Source: Send + 'static {
    /// What the stream yields.
    type Item: Send;
    /// The next item, waiting for one as long as it takes.
    fn next(&mut self) -> impl std::future::Future<Output = Self::Item> + Send + '_;
}

/// The endless stream of `source`'s items.
#[cfg(any(feature = "dns", feature = "etcd"))]
pub(crate) fn stream_of<S: Source>(source: S) -> impl futures_util::Stream<Item = S::Item> + Send {
    futures_util::stream::unfold(source, |mut source| async move {
        let item = source.next().await;
        Some((item, source))
    })
}

/// What a discovery source has announced to the pool, by key, and the
/// changes that bring it to what the source finds now.
#[cfg(any(feature = "dns", feature = "etcd", feature = "xds"))]
#[derive(Debug)]
pub(crate) struct Announced<K, V> {
    known: std::collections::BTreeMap<K, V>,
}

#[cfg(any(feature = "dns", feature = "etcd", feature = "xds"))]
impl<K: Ord + Clone, V: PartialEq + Clone> Announced<K, V> {
    pub(crate) fn new() -> Self {
        Self {
            known: std::collections::BTreeMap::new(),
        }
    }

    /// Records `key` as `value`; whether that is news (a new key, or a
    /// new value) to announce as an insertion.
    pub(crate) fn insert(&mut self, key: K, value: V) -> bool {
        if self.known.get(&key) == Some(&value) {
            return false;
        }
        self.known.insert(key, value);
        true
    }

    /// Forgets `key`; whether it was known (a removal to announce).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn remove(&mut self, key: &K) -> bool {
        self.known.remove(key).is_some()
    }

    /// Makes `found` what is known: the insertions to announce (new or
    /// changed keys), then the removals (keys no longer found), in that
    /// order so that the pool can connect to the new before it drains the
    /// old.
    pub(crate) fn replace_all(
        &mut self,
        found: std::collections::BTreeMap<K, V>,
    ) -> (Vec<(K, V)>, Vec<K>) {
        let gone: Vec<K> = self
            .known
            .keys()
            .filter(|key| !found.contains_key(key))
            .cloned()
            .collect();
        let new: Vec<(K, V)> = found
            .into_iter()
            .filter(|(key, value)| self.insert(key.clone(), value.clone()))
            .collect();
        for key in &gone {
            self.known.remove(key);
        }
        (new, gone)
    }
}
