//! The pool: a cheap handle over the state every call and task shares.
//!
//! `Pool` is the public face; what it does lives in [`crate::state`] (the
//! shared state and what changes it), [`crate::call`] (one call) and
//! [`crate::conn`] (one connection).

use std::sync::Arc;

use crate::config::PoolConfig;
use crate::discovery::Target;
use crate::error::Error;
use crate::state::Inner;
use crate::telemetry::stats::{EndpointInfo, EndpointStats, PoolStats};

/// A pool of HTTP/2 connections that tonic clients share.
///
/// Each call picks the connection with the fewest streams in flight and
/// holds one of its stream slots until the response ends. The pool opens
/// another connection when every connection is at the stream limit its
/// server advertised, queues calls fairly when it cannot grow, replaces
/// broken connections, and closes connections the load no longer needs.
///
/// `Pool` is a handle: cloning it is cheap and every clone uses the same
/// connections. It implements tower's `Service`, so any tonic client takes it:
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = pooled_client::Pool::builder()
///     .endpoint("http://127.0.0.1:50051")
///     .max_connections(8)
///     .build()?;
/// pool.ready().await?;
/// // let client = GreeterClient::new(pool.clone());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Pool {
    pub(crate) inner: Arc<Inner>,
}

impl Pool {
    /// Wraps freshly built state; warms up at once when built inside a
    /// runtime, otherwise on first use.
    pub(crate) fn from_inner(inner: Inner) -> Self {
        let inner = Arc::new(inner);
        if tokio::runtime::Handle::try_current().is_ok() {
            inner.start();
        }
        Self { inner }
    }

    /// The settings the pool was built with.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// Waits until at least one connection is open.
    ///
    /// Calls do not need this: they wait for a connection themselves. It is
    /// for programs that want to fail fast at start-up.
    ///
    /// # Errors
    ///
    /// [`Error::Connect`] when every endpoint failed its connection attempt,
    /// with the last failure; [`Error::Closed`] when the pool was closed.
    pub async fn ready(&self) -> Result<(), Error> {
        self.inner.ready().await
    }

    /// What the pool holds and has done right now.
    pub fn stats(&self) -> PoolStats {
        self.inner.stats()
    }

    /// What each endpoint holds and has done right now: its connections,
    /// calls in flight, calls carried and latency estimate.
    pub fn endpoint_stats(&self) -> Vec<EndpointStats> {
        self.inner.endpoint_stats()
    }

    /// Closes the pool: new calls fail at once with `UNAVAILABLE`, calls
    /// waiting for a stream fail the same way, calls in flight finish, and
    /// then every connection closes.
    ///
    /// Returns when the last call in flight has finished. Every clone of the
    /// pool is closed.
    pub async fn close(&self) {
        self.inner.close().await;
    }

    /// Adds an endpoint while the pool runs; connections spread to it as the
    /// pool grows or replaces connections. Returns whether it was new.
    ///
    /// ```no_run
    /// # fn demo(pool: &pooled_client::Pool) -> Result<(), pooled_client::Error> {
    /// pool.add_endpoint("http://10.0.0.7:50051")?;
    /// assert!(pool.remove_endpoint("http://10.0.0.7:50051"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The same endpoint errors as [`PoolBuilder::build`](crate::PoolBuilder::build).
    pub fn add_endpoint(&self, target: impl Into<Target>) -> Result<bool, Error> {
        let endpoint = self.inner.endpoint_for(&target.into())?;
        Ok(self.inner.add_endpoint(endpoint))
    }

    /// Removes an endpoint, given as it was added (the same URI, and the
    /// same address if a [`Target`] named one; [`EndpointInfo::target`]
    /// is that): its connections take no new calls and close once their
    /// calls finish. Returns whether it was in the pool.
    pub fn remove_endpoint(&self, target: impl Into<Target>) -> bool {
        self.inner.remove_endpoint(&target.into())
    }

    /// What the discovery sources have reported: changes, errors, and the
    /// last of each.
    pub fn discovery_stats(&self) -> crate::telemetry::stats::DiscoveryStats {
        self.inner.discovery_stats()
    }

    /// The endpoints in the pool now, in the order they were added: each
    /// as it was added, where it connects, and its state.
    pub fn endpoints(&self) -> Vec<EndpointInfo> {
        self.inner.endpoint_infos()
    }

    /// Whether [`close`](Self::close) has been called.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// What an xDS pool knows of its control plane: each resource it
    /// watches (listener, route configuration, cluster, endpoints) and
    /// where it stands, and the ADS stream's last error (feature `xds`).
    /// `None` for a pool that is not steered by xDS.
    #[cfg(feature = "xds")]
    pub fn xds_status(&self) -> Option<crate::xds::XdsStatus> {
        self.inner
            .telemetry
            .xds
            .as_ref()
            .map(|board| board.snapshot())
    }
}
