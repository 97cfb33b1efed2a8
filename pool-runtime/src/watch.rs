//! Waiting for the pool's state to change, without polling: for readiness
//! probes, start-up checks and tests.

use std::sync::Arc;

use tokio::sync::watch;

use crate::pool::Pool;
use crate::state::Inner;
use crate::telemetry::stats::PoolStats;

/// A subscription to a pool's changes, from [`Pool::watch`].
///
/// [`changed`](Self::changed) returns when something the pool reports may
/// have changed since the subscription was made or since it last returned:
/// a connection opened, closed or failed; an endpoint was added, removed,
/// ejected, or began or ended its backoff; a call started, began to wait
/// for a stream, or ended; the pool closed. Check first, then wait, and no change is missed:
///
/// ```no_run
/// # async fn demo(pool: pooled_client::Pool) {
/// use pooled_client::EndpointState;
///
/// let mut watch = pool.watch();
/// while !pool.endpoints().iter().all(|e| e.state == EndpointState::Ready) {
///     watch.changed().await;
/// }
/// # }
/// ```
///
/// While a watch lives, each call's start and end wakes it; drop it when
/// done (it costs the calls nothing otherwise).
#[derive(Debug)]
pub struct PoolWatch {
    inner: Arc<Inner>,
    events: watch::Receiver<u64>,
}

impl PoolWatch {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        let events = inner.subscribe_watcher();
        Self { inner, events }
    }

    /// Waits for the next change. Several changes before the wait ends are
    /// one wake-up: read the state again after each.
    pub async fn changed(&mut self) {
        // The sender lives as long as the pool's state, which this holds.
        if self.events.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for PoolWatch {
    fn drop(&mut self) {
        self.inner.unwatch();
    }
}

impl Pool {
    /// Subscribes to the pool's changes (see [`PoolWatch`]).
    pub fn watch(&self) -> PoolWatch {
        PoolWatch::new(self.inner.clone())
    }

    /// Waits until `condition` holds for the pool's [`stats`](Self::stats),
    /// checking them at once and after each change, and returns the stats
    /// that met it. It waits for as long as it takes: give it a bound with
    /// `tokio::time::timeout`.
    ///
    /// ```no_run
    /// # async fn demo(pool: pooled_client::Pool) -> Result<(), tokio::time::error::Elapsed> {
    /// use std::time::Duration;
    ///
    /// // A readiness check: two connections up within 5 s.
    /// tokio::time::timeout(Duration::from_secs(5), pool.wait_for(|s| s.connections >= 2)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for(&self, mut condition: impl FnMut(&PoolStats) -> bool) -> PoolStats {
        self.inner.start();
        let mut watch = self.watch();
        loop {
            let stats = self.stats();
            if condition(&stats) {
                return stats;
            }
            watch.changed().await;
        }
    }
}
