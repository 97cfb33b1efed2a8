//! One connection attempt, from start to joining the rotation, or to the
//! endpoint's backoff when it fails.

use super::Member;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tracing::Instrument;

use super::list::push_onto;
use super::{Inner, Retirement, health, maintain};
use crate::conn::{self, ConnectError, Connected, Connection, State};

impl Inner {
    /// One connection attempt to `endpoint`, whose claim the caller holds;
    /// `rebalance` says it replaces a connection of the endpoint that has
    /// the most.
    pub(super) async fn open(self: Arc<Self>, endpoint: Arc<Member>, rebalance: bool) {
        let id = self.fleet.next_id.fetch_add(1, Ordering::Relaxed);
        // Everything the connection logs, from its attempt to its end,
        // carries the pool, the connection and the endpoint.
        let span = tracing::info_span!(
            "connection",
            pool = %self.config.name,
            id,
            endpoint = %endpoint.key
        );
        async move {
            match conn::connect(&endpoint.endpoint, &self.config, &self.fleet.dial).await {
                Ok(connected) => self.admit(endpoint, connected, id, rebalance),
                Err(error) => self.attempt_failed(&endpoint, error),
            }
        }
        .instrument(span)
        .await;
    }

    /// Puts a fresh connection to work: watched, in the rotation, serving
    /// the calls that wait.
    fn admit(
        self: &Arc<Self>,
        endpoint: Arc<Member>,
        connected: Connected,
        id: u64,
        rebalance: bool,
    ) {
        self.telemetry
            .counters
            .connects
            .fetch_add(1, Ordering::Relaxed);
        let connection = self.new_connection(id, endpoint.clone(), &connected);
        tracing::debug!(
            endpoint = %endpoint.key,
            connection = id,
            max_streams = connection.capacity(),
            "connection opened"
        );
        self.watch(&connection, connected);
        self.join_rotation(&connection);
        // The calls that wait get their streams while the attempt still
        // counts as under way: growth counts a waiting call as demand unless
        // an attempt will serve it, and would open a second connection for
        // a call about to be served by this one (a fresh pool's first call
        // did, about once in thirty). Calls that queue after this serve
        // themselves: they find the connection in the rotation.
        self.serve_waiters();
        // Only now, with the connection counted in the rotation, does the
        // endpoint stop counting an attempt under way: in between, growth
        // would see neither and open a second connection to it.
        endpoint.succeeded();
        self.fleet.connecting.fetch_sub(1, Ordering::SeqCst);
        // A GOAWAY read before the watch was set left the state behind; act
        // on it now.
        if !connection.link.is_ready() {
            self.retire(id, Retirement::Broken);
        }
        if rebalance
            && let Some((fullest, most)) =
                self.fullest_endpoint(&self.endpoints_in_use(), Some(&endpoint))
            && most >= 2
        {
            self.drain_one(&fullest);
        }
        self.notify();
        self.grow(0);
    }

    /// The pool's record of a connection, with its lifetime jittered by up
    /// to 10 % so that connections opened together do not expire together.
    fn new_connection(
        &self,
        id: u64,
        endpoint: Arc<Member>,
        connected: &Connected,
    ) -> Arc<Connection> {
        let expires_at = self
            .config
            .max_connection_lifetime
            .map(|lifetime| Instant::now() + lifetime.mul_f64(1.0 - 0.1 * fastrand::f64()));
        Arc::new(Connection::new(
            id,
            endpoint.endpoint.clone(),
            connected.link.clone(),
            connected.sender.clone(),
            self.fleet.stream_cap,
            expires_at,
        ))
    }

    /// Watches the connection for its end: GOAWAY (from the read path), the
    /// end of its I/O task, and failed health checks.
    fn watch(self: &Arc<Self>, connection: &Arc<Connection>, connected: Connected) {
        let id = connection.id;
        let weak = Arc::downgrade(self);
        // Called from h2's read path, inside h2's own root span, so the
        // connection's span is named as the parent.
        let span = tracing::Span::current();
        connected.link.on_goaway(Box::new(move || {
            if let Some(inner) = weak.upgrade()
                && inner.retire(id, Retirement::Broken)
            {
                tracing::info!(parent: &span, connection = id, "server sent GOAWAY; draining");
            }
        }));
        let drive = maintain::drive(connected.driver, connected.link, Arc::downgrade(self), id);
        tokio::spawn(drive.instrument(tracing::Span::current()));
        if let Some(check) = &self.config.health_check {
            let watch = health::watch(
                Arc::downgrade(self),
                Arc::downgrade(connection),
                check.clone(),
            );
            tokio::spawn(watch.instrument(tracing::Span::current()));
        }
    }

    /// Adds the connection to the rotation, unless the pool closed or its
    /// endpoint left meanwhile (then it only drains).
    fn join_rotation(&self, connection: &Arc<Connection>) {
        let mut live = self.live();
        live.retain(|weak| weak.strong_count() > 0);
        live.push(Arc::downgrade(connection));
        match self.subchannel_of(&connection.endpoint) {
            Some(subchannel) if !self.is_closed() && !subchannel.endpoint.is_removed() => {
                push_onto(&self.fleet.rotation, connection.clone());
                push_onto(&subchannel.connections, connection.clone());
            }
            _ => {
                connection.link.advance(State::Draining);
            }
        }
    }

    /// Puts the endpoint in backoff after a failed attempt; when nothing is
    /// reachable any more, waiting calls fail at once.
    fn attempt_failed(self: &Arc<Self>, endpoint: &Arc<Member>, error: ConnectError) {
        self.telemetry
            .counters
            .connect_failures
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(endpoint = %endpoint.key, error = %error, "connection attempt failed");
        let retry_at = endpoint.failed(error.into(), &self.config.backoff);
        self.fleet.connecting.fetch_sub(1, Ordering::SeqCst);
        if self.nothing_reachable() {
            self.waiters.fail_all(&self.unavailable_status(), true);
        }
        self.notify();
        tokio::spawn(maintain::retry_at(Arc::downgrade(self), retry_at));
        self.grow(0);
    }
}
