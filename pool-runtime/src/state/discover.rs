//! Applying a discovery source's changes to the pool, from the moment the
//! pool starts until the source ends or the pool closes.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Weak;

use futures_util::{Stream, StreamExt};
use tokio::sync::watch;

use super::Inner;
use crate::discovery::{Change, Target};
use crate::error::BoxError;

type Run = Box<
    dyn FnOnce(Weak<Inner>, watch::Receiver<u64>) -> Pin<Box<dyn Future<Output = ()> + Send>>
        + Send,
>;

/// A discovery source waiting for the pool's background work to start.
pub(crate) struct Start(Run);

impl Start {
    /// The task applying the source's changes to the pool.
    pub(crate) fn run(
        self,
        pool: Weak<Inner>,
        events: watch::Receiver<u64>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        (self.0)(pool, events)
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
    Start(Box::new(move |pool, events| {
        Box::pin(run(pool, events, changes))
    }))
}

/// Wraps a source that reads the endpoints' states as it goes (xDS's
/// priority failover): `make` is given a view of the pool when the pool's
/// background work starts.
#[cfg(feature = "xds")]
pub(crate) fn start_viewing<F, S, K, V, E>(make: F) -> Start
where
    F: FnOnce(PoolView) -> S + Send + 'static,
    S: Stream<Item = Result<Change<K, V>, E>> + Send + 'static,
    K: Hash + Eq + Send + 'static,
    V: Into<Target>,
    E: Into<BoxError>,
{
    Start(Box::new(move |pool, events| {
        let view = PoolView {
            pool: pool.clone(),
            events: events.clone(),
        };
        let changes = make(view).map(|item| match item {
            Ok(Change::Insert(key, target)) => Ok(Change::Insert(key, target.into())),
            Ok(Change::Remove(key)) => Ok(Change::Remove(key)),
            Err(error) => Err(error.into()),
        });
        Box::pin(run(pool, events, changes))
    }))
}

/// What a discovery source may read of the pool: its endpoints' states,
/// and a wake-up when they change.
#[cfg(feature = "xds")]
#[derive(Debug)]
pub(crate) struct PoolView {
    pool: Weak<Inner>,
    events: watch::Receiver<u64>,
}

#[cfg(feature = "xds")]
impl PoolView {
    /// Each endpoint's state, by the address it was added with.
    pub(crate) fn states(
        &self,
    ) -> HashMap<std::net::SocketAddr, crate::telemetry::stats::EndpointState> {
        let Some(inner) = self.pool.upgrade() else {
            return HashMap::new();
        };
        inner.endpoint_states()
    }

    /// Runs each cluster's outlier detection with the settings `settings`
    /// holds, as they change (see `outlier.rs`).
    pub(crate) fn follow_outlier_detection(
        &self,
        settings: watch::Receiver<super::outlier::ClusterDetection>,
    ) {
        tokio::spawn(super::outlier::follow(self.pool.clone(), settings));
    }

    /// Weighs the endpoints by `weights` (see `weights.rs`).
    pub(crate) fn set_weights(&self, weights: super::weights::Weights) {
        if let Some(inner) = self.pool.upgrade() {
            inner.set_weights(weights);
        }
    }

    /// The pool's clusters from now on (see `clusters.rs`).
    pub(crate) fn set_clusters(&self, clusters: super::clusters::ClusterConfigs) {
        if let Some(inner) = self.pool.upgrade() {
            inner.set_clusters(clusters);
        }
    }

    /// Routes every call through `router` (see `route.rs`).
    pub(crate) fn set_router(&self, router: Option<Box<dyn super::route::Router>>) {
        if let Some(inner) = self.pool.upgrade() {
            inner.set_router(router);
        }
    }

    /// Waits for the pool's next change; `false` once it is gone.
    pub(crate) async fn changed(&mut self) -> bool {
        self.events.changed().await.is_ok() && self.pool.strong_count() > 0
    }
}

/// Applies changes until the source ends or the pool closes or is dropped.
async fn run<S, K>(pool: Weak<Inner>, mut events: watch::Receiver<u64>, changes: S)
where
    S: Stream<Item = Result<Change<K, Target>, BoxError>> + Send,
    K: Hash + Eq,
{
    let mut changes = std::pin::pin!(changes);
    // Endpoint keys by the source's keys, to remove what the source removes.
    let mut known: HashMap<K, Target> = HashMap::new();
    loop {
        let next = tokio::select! {
            next = changes.next() => next,
            () = pool_gone(&pool, &mut events) => return,
        };
        let Some(change) = next else {
            tracing::debug!("endpoint discovery ended; its endpoints stay");
            return;
        };
        let Some(inner) = pool.upgrade() else {
            return;
        };
        inner.count_discovery(change.as_ref().err());
        match change {
            Ok(Change::Insert(key, target)) => match inner.endpoint_for(&target) {
                Ok(endpoint) => {
                    let new_target = endpoint.target.clone();
                    if let Some(old) = known.insert(key, new_target.clone())
                        && old != new_target
                    {
                        inner.remove_endpoint(&old);
                    }
                    inner.add_endpoint(endpoint);
                }
                Err(error) => {
                    tracing::warn!(%error, "endpoint discovery supplied an invalid endpoint; ignored");
                }
            },
            Ok(Change::Remove(key)) => {
                if let Some(old) = known.remove(&key) {
                    inner.remove_endpoint(&old);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "endpoint discovery failed; endpoints unchanged");
            }
        }
    }
}

impl Inner {
    /// Counts a source's change, or its error.
    fn count_discovery(&self, error: Option<&BoxError>) {
        let mut stats = crate::lock::lock(&self.telemetry.discovery_stats);
        let now = std::time::SystemTime::now();
        match error {
            None => {
                stats.changes_total += 1;
                stats.last_change_at = Some(now);
            }
            Some(error) => {
                stats.errors_total += 1;
                stats.last_error = Some((now, error.to_string()));
            }
        }
    }
}

/// Resolves once the pool is closed or dropped.
async fn pool_gone(pool: &Weak<Inner>, events: &mut watch::Receiver<u64>) {
    loop {
        match pool.upgrade() {
            Some(inner) if !inner.is_closed() => {}
            _ => return,
        }
        if events.changed().await.is_err() {
            return;
        }
    }
}
