//! The pool: a cheap handle over the state every call and task shares.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tonic::Status;
use tracing::Instrument;

use crate::affinity::{AffinityKey, Bindings};
use crate::builder::{Checked, PoolBuilder};
use crate::config::PoolConfig;
use crate::connection::Connection;
use crate::connector;
use crate::connector::Tls;
use crate::discovery::{self, Target};
use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::maintenance;
use crate::metrics;
use crate::picker::{self, StreamGuard};
use crate::stats::PoolStats;
use crate::status;
use crate::waiters::Waiters;
use crate::wire::{DEFAULT_MAX_STREAMS, State};

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
    pub(crate) shared: Arc<Shared>,
}

impl Pool {
    /// Starts configuring a pool.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }

    /// Builds a pool from settings read elsewhere, such as a configuration
    /// file (see [`PoolConfig`] and the `serde` feature), checking them as
    /// [`PoolBuilder::build`] does.
    ///
    /// # Errors
    ///
    /// The same as [`PoolBuilder::build`].
    pub fn from_config(config: PoolConfig) -> Result<Self, Error> {
        PoolBuilder::from_config(config).build()
    }

    pub(crate) fn from_parts(
        config: PoolConfig,
        checked: Checked,
        discoveries: Vec<discovery::Start>,
    ) -> Self {
        let shared = Arc::new(Shared::new(config, checked, discoveries));
        // Warm up at once when built inside a runtime; otherwise on first use.
        if tokio::runtime::Handle::try_current().is_ok() {
            shared.start();
        }
        Self { shared }
    }

    /// The settings the pool was built with.
    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
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
        let shared = &self.shared;
        shared.start();
        let mut events = shared.events.subscribe();
        loop {
            if shared.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            if !shared.rotation.load().is_empty() {
                return Ok(());
            }
            shared.grow(1);
            if shared.connecting.load(Ordering::SeqCst) == 0 && shared.all_endpoints_failing() {
                return Err(shared.connect_error());
            }
            if events.changed().await.is_err() {
                return Err(Error::Closed);
            }
        }
    }

    /// What the pool holds and has done right now.
    pub fn stats(&self) -> PoolStats {
        self.shared.stats()
    }

    /// Closes the pool: new calls fail at once with `UNAVAILABLE`, calls
    /// waiting for a stream fail the same way, calls in flight finish, and
    /// then every connection closes.
    ///
    /// Returns when the last call in flight has finished. Every clone of the
    /// pool is closed.
    pub async fn close(&self) {
        let shared = &self.shared;
        if !shared.closed.swap(true, Ordering::AcqRel) {
            tracing::info!(pool = %shared.config.name, "pool closing");
            shared.waiters.fail_all(&closed_status());
            shared.notify();
        }
        let mut events = shared.events.subscribe();
        while shared.in_flight() > 0 {
            if events.changed().await.is_err() {
                break;
            }
        }
        let connections = shared.rotation.swap(Arc::new(Vec::new()));
        for connection in connections.iter() {
            connection.link.advance(State::Draining);
        }
        drop(connections);
        tracing::info!(pool = %shared.config.name, "pool closed");
    }

    /// Takes a stream slot and gives it back at once, returning whether one
    /// was free: the pool's hot path without any I/O, for benchmarks.
    #[doc(hidden)]
    pub fn bench_pick_release(&self) -> bool {
        self.shared.pick().is_some()
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
    /// The same endpoint errors as [`PoolBuilder::build`].
    pub fn add_endpoint(&self, target: impl Into<Target>) -> Result<bool, Error> {
        let target = target.into();
        let endpoint = Endpoint::for_target(&target, &self.shared.config)?;
        Ok(self.shared.add_endpoint(endpoint))
    }

    /// Removes an endpoint, named as it was added: its connections take no
    /// new calls and close once their calls finish. Returns whether it was
    /// in the pool.
    pub fn remove_endpoint(&self, uri: &str) -> bool {
        self.shared.remove_endpoint(uri)
    }

    /// The endpoints the pool connects to now: their URIs, followed by
    /// `" at <address>"` for those given an address to connect to.
    pub fn endpoints(&self) -> Vec<String> {
        self.shared
            .endpoints
            .load()
            .iter()
            .map(|e| e.key.clone())
            .collect()
    }

    /// Whether [`close`](Self::close) has been called.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

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

#[derive(Debug, Default)]
struct Counters {
    connects: AtomicU64,
    connect_failures: AtomicU64,
    evictions: AtomicU64,
    idle_closes: AtomicU64,
    expired: AtomicU64,
    unhealthy: AtomicU64,
    rejected: AtomicU64,
}

/// The state behind every clone of a [`Pool`].
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: PoolConfig,
    /// The endpoints connections may go to; changed under the `live` lock.
    endpoints: ArcSwap<Vec<Arc<Endpoint>>>,
    /// The checked TLS settings, for `https` endpoints.
    tls: Option<Tls>,
    /// Discovery sources, started with the background work.
    discoveries: Mutex<Vec<discovery::Start>>,
    /// The connections taking calls, read lock-free on every call.
    pub(crate) rotation: ArcSwap<Vec<Arc<Connection>>>,
    /// Every connection not yet dropped, including draining ones; the lock
    /// also serializes changes to `rotation`.
    live: Mutex<Vec<Weak<Connection>>>,
    pub(crate) waiters: Waiters<StreamGuard>,
    /// Which connection each affinity key is bound to.
    pub(crate) affinity: Bindings,
    connecting: AtomicUsize,
    closed: AtomicBool,
    started: AtomicBool,
    /// Bumped when connections come, go or fail, or a call ends after close.
    events: watch::Sender<u64>,
    counters: Counters,
    next_id: AtomicU64,
    stream_cap: usize,
}

impl Shared {
    fn new(config: PoolConfig, checked: Checked, discoveries: Vec<discovery::Start>) -> Self {
        let stream_cap = config.max_streams_per_connection.unwrap_or(usize::MAX);
        Self {
            config,
            tls: checked.tls,
            endpoints: ArcSwap::from_pointee(checked.endpoints.into_iter().map(Arc::new).collect()),
            discoveries: Mutex::new(discoveries),
            rotation: ArcSwap::from_pointee(Vec::new()),
            live: Mutex::new(Vec::new()),
            waiters: Waiters::default(),
            affinity: Bindings::default(),
            connecting: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            started: AtomicBool::new(false),
            events: watch::Sender::new(0),
            counters: Counters::default(),
            next_id: AtomicU64::new(1),
            stream_cap,
        }
    }

    fn live(&self) -> MutexGuard<'_, Vec<Weak<Connection>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self) {
        self.events
            .send_modify(|generation| *generation = generation.wrapping_add(1));
        self.publish_metrics();
    }

    /// Publishes the pool's state to the `metrics` facade (feature
    /// `metrics`).
    pub(crate) fn publish_metrics(&self) {
        if cfg!(feature = "metrics") {
            metrics::publish(&self.config.name, &self.stats());
        }
    }

    /// Subscribes to the pool's events (connections coming, going, failing).
    pub(crate) fn events(&self) -> watch::Receiver<u64> {
        self.events.subscribe()
    }

    /// Adds `endpoint` unless one with its key is in the pool already.
    pub(crate) fn add_endpoint(self: &Arc<Self>, endpoint: Endpoint) -> bool {
        {
            let _live = self.live();
            if self.endpoints.load().iter().any(|e| e.key == endpoint.key) {
                return false;
            }
            tracing::info!(endpoint = %endpoint.key, "endpoint added");
            push_onto(&self.endpoints, Arc::new(endpoint));
        }
        self.notify();
        self.grow(0);
        self.rebalance(Instant::now());
        true
    }

    /// Removes the endpoint with `key` and drains its connections.
    pub(crate) fn remove_endpoint(self: &Arc<Self>, key: &str) -> bool {
        let removed = {
            let _live = self.live();
            let Some(removed) = take_from(&self.endpoints, |e| e.key == key) else {
                return false;
            };
            removed.remove();
            removed
        };
        tracing::info!(endpoint = %removed.key, "endpoint removed");
        self.retire_endpoint(&removed, Retirement::Removed);
        self.notify();
        self.grow(0);
        true
    }

    /// Takes every connection to `endpoint` out of rotation.
    pub(crate) fn retire_endpoint(self: &Arc<Self>, endpoint: &Arc<Endpoint>, why: Retirement) {
        let ids: Vec<u64> = self
            .rotation
            .load()
            .iter()
            .filter(|c| Arc::ptr_eq(&c.endpoint, endpoint))
            .map(|c| c.id)
            .collect();
        for id in ids {
            self.retire(id, why);
        }
    }

    /// Takes `endpoint` out of rotation after a failed health check; it is
    /// tried again after the usual backoff.
    pub(crate) fn endpoint_unhealthy(
        self: &Arc<Self>,
        endpoint: &Arc<Endpoint>,
        error: crate::error::BoxError,
    ) {
        tracing::warn!(endpoint = %endpoint.key, error = %error, "endpoint failed its health check");
        let retry_at = endpoint.unhealthy(error, &self.config.backoff);
        self.retire_endpoint(endpoint, Retirement::Unhealthy);
        tokio::spawn(maintenance::retry_at(Arc::downgrade(self), retry_at));
    }

    /// Connection attempts under way.
    pub(crate) fn connecting(&self) -> usize {
        self.connecting.load(Ordering::SeqCst)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Starts the background work (minimum connections, idle and age
    /// checks) once, from inside a runtime.
    pub(crate) fn start(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        metrics::describe();
        tokio::spawn(maintenance::run(Arc::downgrade(self)));
        let discoveries =
            std::mem::take(&mut *self.discoveries.lock().unwrap_or_else(|p| p.into_inner()));
        for start in discoveries {
            tokio::spawn(start.run(Arc::downgrade(self), self.events()));
        }
        self.grow(0);
    }

    /// Takes a stream slot for a call, waiting in line if none is free.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Result<StreamGuard, Status> {
        if self.is_closed() {
            return Err(closed_status());
        }
        // Callers already in line go first.
        if self.waiters.len() == 0
            && let Some(guard) = self.pick()
        {
            return Ok(guard);
        }
        // Boxed so that every call's future stays small: only calls that
        // wait carry the queue's and the timer's state.
        Box::pin(self.acquire_slow()).await
    }

    /// Takes a stream slot on the connection `key` is bound to, or binds
    /// it to the connection a plain call would take.
    pub(crate) async fn acquire_for(
        self: &Arc<Self>,
        key: AffinityKey,
    ) -> Result<StreamGuard, Status> {
        if self.is_closed() {
            return Err(closed_status());
        }
        if let Some(connection) = self.affinity.get(key) {
            connection.force_reserve();
            return Ok(StreamGuard::new(connection, self.clone()));
        }
        let guard = self.acquire().await?;
        let bound = self.affinity.bind(key, guard.connection());
        if Arc::ptr_eq(&bound, guard.connection()) {
            return Ok(guard);
        }
        // Another call with the key bound it first: follow it there.
        drop(guard);
        bound.force_reserve();
        Ok(StreamGuard::new(bound, self.clone()))
    }

    /// Joins the wait queue, growing the pool if it may.
    async fn acquire_slow(self: &Arc<Self>) -> Result<StreamGuard, Status> {
        self.start();
        let Some(ticket) = self.waiters.enqueue(self.config.max_waiters) else {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(Status::resource_exhausted(format!(
                "no stream is free and {} calls already wait for one (max_waiters); {}",
                self.config.max_waiters,
                self.describe()
            )));
        };
        let mut place = Place {
            waiters: &self.waiters,
            id: ticket.id,
            served: false,
        };
        self.serve_waiters();
        self.grow(0);
        if self.rotation.load().is_empty()
            && self.connecting.load(Ordering::SeqCst) == 0
            && self.all_endpoints_failing()
        {
            return Err(self.unavailable_status());
        }
        let timeout = self.config.acquire_timeout;
        let queued_at = Instant::now();
        match tokio::time::timeout(timeout, ticket.grant).await {
            Ok(Ok(grant)) => {
                place.served = true;
                metrics::record_wait(&self.config.name, queued_at.elapsed());
                grant
            }
            Ok(Err(_)) => {
                place.served = true;
                Err(Status::unavailable(
                    "the pool was dropped while the call waited",
                ))
            }
            // Nothing to connect to is an outage, not overload.
            Err(_) if self.endpoints.load().is_empty() => Err(Status::unavailable(format!(
                "the pool has no endpoints and none was discovered within {timeout:?} (acquire_timeout)"
            ))),
            Err(_) => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                metrics::record_wait(&self.config.name, queued_at.elapsed());
                Err(Status::resource_exhausted(format!(
                    "no stream became free within {timeout:?} (acquire_timeout); {}",
                    self.describe()
                )))
            }
        }
    }

    /// Reserves a slot on the least-loaded ready connection.
    #[inline]
    pub(crate) fn pick(self: &Arc<Self>) -> Option<StreamGuard> {
        let rotation = self.rotation.load();
        let connection = picker::reserve_least_loaded(&rotation)?;
        Some(StreamGuard::new(connection.clone(), self.clone()))
    }

    /// Called after a slot is given back.
    #[inline]
    pub(crate) fn on_release(self: &Arc<Self>) {
        if self.waiters.len() > 0 {
            self.serve_waiters();
        }
        if self.closed.load(Ordering::Relaxed) {
            self.notify();
        }
    }

    fn serve_waiters(self: &Arc<Self>) {
        self.waiters.serve(|| self.pick());
    }

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

    /// Claims the endpoint with the fewest connections among those that may
    /// be tried now.
    ///
    /// An attempt under way counts as a connection, and only the endpoints
    /// with the fewest are tried: while the emptiest endpoint is busy
    /// connecting, the pool waits for that attempt rather than pile onto a
    /// fuller one. Endpoints waiting out a backoff are left out.
    fn claim_endpoint(&self) -> Option<Arc<Endpoint>> {
        let rotation = self.rotation.load();
        let endpoints = self.endpoints.load();
        let now = Instant::now();
        let loads: Vec<(usize, &Arc<Endpoint>)> = endpoints
            .iter()
            .filter_map(|endpoint| {
                let connecting = endpoint.connecting_unless_backing_off(now)?;
                let open = rotation
                    .iter()
                    .filter(|c| Arc::ptr_eq(&c.endpoint, endpoint))
                    .count();
                Some((open + usize::from(connecting), endpoint))
            })
            .collect();
        let fewest = loads.iter().map(|(load, _)| *load).min()?;
        loads
            .into_iter()
            .filter(|(load, _)| *load == fewest)
            .map(|(_, endpoint)| endpoint)
            .find(|endpoint| endpoint.try_claim(now))
            .cloned()
    }

    /// Moves one connection towards an endpoint that has none (it was
    /// added, or it recovered) while another has two or more: opens one to
    /// the empty endpoint and drains one of the fullest once it is up; at
    /// `max_connections`, drains one of the fullest first, and the pool
    /// regrows towards the empty endpoint as calls need.
    pub(crate) fn rebalance(self: &Arc<Self>, now: Instant) {
        if self.is_closed() {
            return;
        }
        let endpoints = self.endpoints.load();
        let Some((fullest, most)) = self.fullest_endpoint(&endpoints, None) else {
            return;
        };
        if most < 2 {
            return;
        }
        let rotation = self.rotation.load();
        let Some(empty) = endpoints.iter().find(|endpoint| {
            !rotation.iter().any(|c| Arc::ptr_eq(&c.endpoint, endpoint)) && endpoint.may_try(now)
        }) else {
            return;
        };
        if rotation.len() + self.connecting() < self.config.max_connections {
            if empty.try_claim(now) {
                self.connecting.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(self.clone().open(empty.clone(), true));
            }
        } else if !empty.is_failing() {
            // A busy pool gives up a working connection only for an
            // endpoint that has not failed; a failing one is tried again
            // when there is room.
            self.drain_one(&fullest);
        }
    }

    /// The endpoint with the most connections in rotation, and how many,
    /// leaving out `except`.
    fn fullest_endpoint(
        &self,
        endpoints: &[Arc<Endpoint>],
        except: Option<&Arc<Endpoint>>,
    ) -> Option<(Arc<Endpoint>, usize)> {
        let rotation = self.rotation.load();
        endpoints
            .iter()
            .filter(|e| except.is_none_or(|except| !Arc::ptr_eq(e, except)))
            .map(|e| {
                let count = rotation
                    .iter()
                    .filter(|c| Arc::ptr_eq(&c.endpoint, e))
                    .count();
                (e.clone(), count)
            })
            .max_by_key(|(_, count)| *count)
    }

    /// Drains the least busy connection to `endpoint`.
    fn drain_one(self: &Arc<Self>, endpoint: &Arc<Endpoint>) {
        let victim = self
            .rotation
            .load()
            .iter()
            .filter(|c| Arc::ptr_eq(&c.endpoint, endpoint))
            .min_by_key(|c| c.in_flight())
            .map(|c| c.id);
        if let Some(id) = victim {
            self.retire(id, Retirement::Rebalanced);
        }
    }

    /// One connection attempt to `endpoint`; `rebalance` says it replaces
    /// a connection of the endpoint that has the most.
    async fn open(self: Arc<Self>, endpoint: Arc<Endpoint>, rebalance: bool) {
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

    async fn open_connection(self: Arc<Self>, endpoint: Arc<Endpoint>, rebalance: bool, id: u64) {
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
                    endpoint = %endpoint.uri,
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
                tracing::warn!(endpoint = %endpoint.uri, error = %error, "connection attempt failed");
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

    /// Whether every endpoint failed its last attempt; false while the pool
    /// has no endpoints, so that calls wait for discovery to supply some.
    fn all_endpoints_failing(&self) -> bool {
        let endpoints = self.endpoints.load();
        !endpoints.is_empty() && endpoints.iter().all(|e| e.is_failing())
    }

    fn last_failure(&self) -> Option<(String, String)> {
        self.endpoints.load().iter().rev().find_map(|endpoint| {
            let attempts = endpoint.attempts();
            let error = attempts.last_error.as_ref()?;
            Some((endpoint.key.clone(), status::chain(&***error)))
        })
    }

    fn unavailable_status(&self) -> Status {
        if self.endpoints.load().is_empty() {
            return Status::unavailable("the pool has no endpoints");
        }
        match self.last_failure() {
            Some((uri, error)) => Status::unavailable(format!(
                "no connection is available; the last attempt, to {uri}, failed: {error}"
            )),
            None => Status::unavailable("no connection is available"),
        }
    }

    fn connect_error(&self) -> Error {
        let (endpoint, error) = self
            .last_failure()
            .unwrap_or_else(|| ("every endpoint".to_owned(), "unknown error".to_owned()));
        Error::Connect {
            endpoint,
            source: error.into(),
        }
    }

    /// Streams held over every live connection, draining ones included.
    pub(crate) fn in_flight(&self) -> usize {
        self.live()
            .iter()
            .filter_map(Weak::upgrade)
            .map(|c| c.in_flight())
            .sum()
    }

    fn describe(&self) -> String {
        let stats = self.stats();
        format!(
            "pool state: {} endpoints, {} connections (max_connections {}), {} connecting, {} of {} streams in flight, {} calls waiting",
            self.endpoints.load().len(),
            stats.connections,
            self.config.max_connections,
            stats.connecting,
            stats.in_flight,
            stats.capacity,
            stats.waiting
        )
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let rotation = self.rotation.load();
        let live: Vec<Arc<Connection>> = self.live().iter().filter_map(Weak::upgrade).collect();
        let draining = live
            .iter()
            .filter(|c| !rotation.iter().any(|r| r.id == c.id))
            .count();
        PoolStats {
            connections: rotation.len(),
            draining,
            connecting: self.connecting.load(Ordering::SeqCst),
            in_flight: live.iter().map(|c| c.in_flight()).sum(),
            waiting: self.waiters.len(),
            capacity: rotation.iter().map(|c| c.capacity()).sum(),
            connects_total: self.counters.connects.load(Ordering::Relaxed),
            connect_failures_total: self.counters.connect_failures.load(Ordering::Relaxed),
            evictions_total: self.counters.evictions.load(Ordering::Relaxed),
            idle_closes_total: self.counters.idle_closes.load(Ordering::Relaxed),
            expired_total: self.counters.expired.load(Ordering::Relaxed),
            unhealthy_total: self.counters.unhealthy.load(Ordering::Relaxed),
            rejected_total: self.counters.rejected.load(Ordering::Relaxed),
            affinity_keys: self.affinity.len(),
            endpoints: self.endpoints.load().len(),
        }
    }
}

/// Adds `item` to a list that readers load without a lock; the caller holds
/// the `live` lock, which serializes changes.
fn push_onto<T>(list: &ArcSwap<Vec<Arc<T>>>, item: Arc<T>) {
    let mut next = Vec::clone(&list.load());
    next.push(item);
    list.store(Arc::new(next));
}

/// Takes the first item that `matches` out of a list that readers load
/// without a lock; the caller holds the `live` lock.
fn take_from<T>(list: &ArcSwap<Vec<Arc<T>>>, matches: impl Fn(&T) -> bool) -> Option<Arc<T>> {
    let current = list.load();
    let position = current.iter().position(|item| matches(item))?;
    let mut next = Vec::clone(&current);
    let removed = next.remove(position);
    list.store(Arc::new(next));
    Some(removed)
}

/// A call's place in the wait queue; leaving without a grant gives it up.
struct Place<'a> {
    waiters: &'a Waiters<StreamGuard>,
    id: u64,
    served: bool,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if !self.served {
            self.waiters.remove(self.id);
        }
    }
}

pub(crate) fn closed_status() -> Status {
    Status::unavailable("the pool is closed")
}
