//! Connections joining and leaving the rotation: when the pool grows, one
//! connection attempt from start to finish, and retiring a connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tracing::Instrument;

use crate::connection::Connection;
use crate::connector;
use crate::endpoint::Endpoint;
use crate::maintenance;
use crate::pool::{Shared, push_onto, take_from};
use crate::wire::{DEFAULT_MAX_STREAMS, State};

/// Why a connection leaves the rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retirement {
    /// It failed or the server sent GOAWAY.
    Broken,
    /// The load no longer needs it.
    Idle,
    /// It reached its lifetime.
    Expired,
    /// Its endpoint failed a health check.
    Unhealthy,
    /// Its endpoint left the pool.
    Removed,
    /// It moved to an endpoint that had no connection.
    Rebalanced,
}

impl Shared {
    /// Opens connections while the pool is below its minimum or calls wait
    /// beyond what the attempts under way will serve; `extra` counts demand
    /// not in the queue (a caller of `ready`).
    pub(crate) fn grow(self: &Arc<Self>, extra: usize) {
        loop {
            if self.is_closed() {
                return;
            }
            let rotation = self.rotation.load();
            let open = rotation.len();
            let connecting = self.connecting.load(Ordering::SeqCst);
            if open + connecting >= self.config.max_connections {
                return;
            }
            let below_min = open + connecting < self.config.min_connections;
            let demand = self.waiters.len() + extra;
            // Count what the attempts under way will bring (Envoy does the
            // same) so a burst does not open a herd of connections; a new
            // connection is expected to allow as many streams as the open
            // ones do.
            let per_connection = match open {
                0 => DEFAULT_MAX_STREAMS.min(self.stream_cap),
                n => rotation.iter().map(|c| c.capacity()).sum::<usize>() / n,
            };
            drop(rotation);
            let coming = connecting.saturating_mul(per_connection.max(1));
            if !below_min && demand <= coming {
                return;
            }
            let Some(endpoint) = self.claim_endpoint() else {
                return;
            };
            self.connecting.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(self.clone().open(endpoint, false));
        }
    }

    /// One connection attempt to `endpoint`; `rebalance` says it replaces
    /// a connection of the endpoint that has the most.
    pub(crate) async fn open(self: Arc<Self>, endpoint: Arc<Endpoint>, rebalance: bool) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Everything the connection logs, from its attempt to its end,
        // carries the pool, the connection and the endpoint.
        let span = tracing::info_span!(
            "connection",
            pool = %self.config.name,
            id,
            endpoint = %endpoint.key
        );
        self.open_connection(endpoint, rebalance, id)
            .instrument(span)
            .await;
    }

    pub(crate) async fn open_connection(
        self: Arc<Self>,
        endpoint: Arc<Endpoint>,
        rebalance: bool,
        id: u64,
    ) {
        let result = connector::connect(&endpoint, &self.config, self.tls.as_ref()).await;
        match result {
            Ok(connected) => {
                endpoint.succeeded();
                self.counters.connects.fetch_add(1, Ordering::Relaxed);
                let expires_at = self
                    .config
                    .max_connection_lifetime
                    .map(|lifetime| Instant::now() + lifetime.mul_f64(1.0 - 0.1 * fastrand::f64()));
                let connection = Arc::new(Connection::new(
                    id,
                    endpoint.clone(),
                    connected.link.clone(),
                    connected.sender,
                    self.stream_cap,
                    expires_at,
                ));
                tracing::debug!(
                    endpoint = %endpoint.key,
                    connection = id,
                    max_streams = connection.capacity(),
                    "connection opened"
                );
                let weak = Arc::downgrade(&self);
                // Called from h2's read path, inside h2's own root span, so
                // the connection's span is named as the parent.
                let span = tracing::Span::current();
                connected.link.on_goaway(Box::new(move || {
                    if let Some(shared) = weak.upgrade()
                        && shared.retire(id, Retirement::Broken)
                    {
                        tracing::info!(parent: &span, connection = id, "server sent GOAWAY; draining");
                    }
                }));
                tokio::spawn(
                    maintenance::drive(
                        connected.driver,
                        connected.link.clone(),
                        Arc::downgrade(&self),
                        id,
                    )
                    .instrument(tracing::Span::current()),
                );
                {
                    let mut live = self.live();
                    live.retain(|weak| weak.strong_count() > 0);
                    live.push(Arc::downgrade(&connection));
                    if self.is_closed() || endpoint.is_removed() {
                        connection.link.advance(State::Draining);
                    } else {
                        push_onto(&self.rotation, connection.clone());
                    }
                }
                self.connecting.fetch_sub(1, Ordering::SeqCst);
                if let Some(check) = &self.config.health_check {
                    tokio::spawn(
                        crate::health::watch(
                            Arc::downgrade(&self),
                            Arc::downgrade(&connection),
                            check.clone(),
                        )
                        .instrument(tracing::Span::current()),
                    );
                }
                // A GOAWAY read before the callback was set left the state
                // behind; act on it now.
                if !connected.link.is_ready() {
                    self.retire(id, Retirement::Broken);
                }
                if rebalance
                    && let Some((fullest, most)) =
                        self.fullest_endpoint(&self.endpoints.load(), Some(&endpoint))
                    && most >= 2
                {
                    self.drain_one(&fullest);
                }
                self.notify();
                self.serve_waiters();
                self.grow(0);
            }
            Err(error) => {
                self.counters
                    .connect_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(endpoint = %endpoint.key, error = %error, "connection attempt failed");
                let retry_at = endpoint.failed(error.into(), &self.config.backoff);
                self.connecting.fetch_sub(1, Ordering::SeqCst);
                if self.rotation.load().is_empty()
                    && self.connecting.load(Ordering::SeqCst) == 0
                    && self.all_endpoints_failing()
                {
                    self.waiters.fail_all(&self.unavailable_status());
                }
                self.notify();
                tokio::spawn(maintenance::retry_at(Arc::downgrade(&self), retry_at));
                self.grow(0);
            }
        }
    }

    /// Takes connection `id` out of rotation; returns whether it was in it.
    pub(crate) fn retire(self: &Arc<Self>, id: u64, why: Retirement) -> bool {
        let removed = {
            let _live = self.live();
            let Some(removed) = take_from(&self.rotation, |c| c.id == id) else {
                return false;
            };
            removed
        };
        removed.link.advance(State::Draining);
        let counter = match why {
            Retirement::Broken => &self.counters.evictions,
            Retirement::Idle => &self.counters.idle_closes,
            Retirement::Expired => &self.counters.expired,
            Retirement::Unhealthy => &self.counters.unhealthy,
            Retirement::Removed => &self.counters.evictions,
            Retirement::Rebalanced => &self.counters.idle_closes,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            endpoint = %removed.endpoint.key,
            connection = id,
            reason = ?why,
            in_flight = removed.in_flight(),
            "connection left the rotation"
        );
        drop(removed);
        self.notify();
        if matches!(why, Retirement::Broken | Retirement::Expired) {
            self.grow(0);
        }
        true
    }
}
