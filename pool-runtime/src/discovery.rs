//! Endpoints that come and go while the pool runs.
//!
//! A discovery source is a stream of tower's [`Change`]s: Kubernetes,
//! Consul or etcd watchers turn their events into `Change::Insert(key,
//! target)` and `Change::Remove(key)` and hand the stream to
//! [`PoolBuilder::discovery`](crate::PoolBuilder::discovery). The `dns`
//! feature's `dns::DnsDiscovery` is one such source.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Weak;

use futures_util::{Stream, StreamExt};
use tokio::sync::watch;

pub use tower::discover::Change;

use crate::endpoint::Endpoint;
use crate::error::BoxError;
use crate::pool::Shared;

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

type Run = Box<
    dyn FnOnce(Weak<Shared>, watch::Receiver<u64>) -> Pin<Box<dyn Future<Output = ()> + Send>>
        + Send,
>;

/// A discovery source waiting for the pool's background work to start.
pub(crate) struct Start(Run);

impl Start {
    /// The task applying the source's changes to the pool.
    pub(crate) fn run(
        self,
        shared: Weak<Shared>,
        events: watch::Receiver<u64>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        (self.0)(shared, events)
    }
}

impl std::fmt::Debug for Start {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DiscoverySource")
    }
}

/// Wraps a stream of changes for the pool to start.
pub(crate) fn start<S, K, V, E>(changes: S) -> Start
where
    S: Stream<Item = Result<Change<K, V>, E>> + Send + 'static,
    K: Hash + Eq + Send + 'static,
    V: Into<Target>,
    E: Into<BoxError>,
{
    let changes = changes.map(|item| match item {
        Ok(Change::Insert(key, target)) => Ok(Change::Insert(key, target.into())),
        Ok(Change::Remove(key)) => Ok(Change::Remove(key)),
        Err(error) => Err(error.into()),
    });
    Start(Box::new(move |shared, events| {
        Box::pin(run(shared, events, changes))
    }))
}

/// Applies changes until the source ends or the pool closes or is dropped.
async fn run<S, K>(shared: Weak<Shared>, mut events: watch::Receiver<u64>, changes: S)
where
    S: Stream<Item = Result<Change<K, Target>, BoxError>> + Send,
    K: Hash + Eq,
{
    let mut changes = std::pin::pin!(changes);
    // Endpoint keys by the source's keys, to remove what the source removes.
    let mut known: HashMap<K, String> = HashMap::new();
    loop {
        let next = tokio::select! {
            next = changes.next() => next,
            () = pool_gone(&shared, &mut events) => return,
        };
        let Some(change) = next else {
            tracing::debug!("endpoint discovery ended; its endpoints stay");
            return;
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match change {
            Ok(Change::Insert(key, target)) => {
                match Endpoint::for_target(&target, &shared.config) {
                    Ok(endpoint) => {
                        let new_key = endpoint.key.clone();
                        if let Some(old) = known.insert(key, new_key.clone())
                            && old != new_key
                        {
                            shared.remove_endpoint(&old);
                        }
                        shared.add_endpoint(endpoint);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "endpoint discovery supplied an invalid endpoint; ignored");
                    }
                }
            }
            Ok(Change::Remove(key)) => {
                if let Some(old) = known.remove(&key) {
                    shared.remove_endpoint(&old);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "endpoint discovery failed; endpoints unchanged");
            }
        }
    }
}

/// Resolves once the pool is closed or dropped.
async fn pool_gone(shared: &Weak<Shared>, events: &mut watch::Receiver<u64>) {
    loop {
        match shared.upgrade() {
            Some(shared) if !shared.is_closed() => {}
            _ => return,
        }
        if events.changed().await.is_err() {
            return;
        }
    }
}
