//! The pool: a cheap handle over the state every call and task shares.
//!
//! What that state does is split by concern, each an `impl Shared` of its
//! own: taking a stream slot (`acquire.rs`), connections joining and leaving
//! the rotation (`rotation.rs`), the endpoints and how connections spread
//! over them (`balance.rs`), and the background work (`maintenance.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tonic::Status;

use crate::affinity::Bindings;
use crate::builder::{Checked, PoolBuilder};
use crate::config::PoolConfig;
use crate::connection::Connection;
use crate::connector::Tls;
use crate::discovery::{self, Target};
use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::maintenance;
use crate::metrics;
use crate::picker::StreamGuard;
use crate::stats::PoolStats;
use crate::status;
use crate::waiters::Waiters;
use crate::wire::State;

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

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connects: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) idle_closes: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) unhealthy: AtomicU64,
    pub(crate) rejected: AtomicU64,
}

/// The state behind every clone of a [`Pool`].
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: PoolConfig,
    /// The endpoints connections may go to; changed under the `live` lock.
    pub(crate) endpoints: ArcSwap<Vec<Arc<Endpoint>>>,
    /// The checked TLS settings, for `https` endpoints.
    pub(crate) tls: Option<Tls>,
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
    pub(crate) connecting: AtomicUsize,
    closed: AtomicBool,
    started: AtomicBool,
    /// Bumped when connections come, go or fail, or a call ends after close.
    events: watch::Sender<u64>,
    pub(crate) counters: Counters,
    pub(crate) next_id: AtomicU64,
    pub(crate) stream_cap: usize,
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

    pub(crate) fn live(&self) -> MutexGuard<'_, Vec<Weak<Connection>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn notify(&self) {
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

    /// Whether every endpoint failed its last attempt; false while the pool
    /// has no endpoints, so that calls wait for discovery to supply some.
    pub(crate) fn all_endpoints_failing(&self) -> bool {
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

    pub(crate) fn unavailable_status(&self) -> Status {
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

    pub(crate) fn describe(&self) -> String {
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
pub(crate) fn push_onto<T>(list: &ArcSwap<Vec<Arc<T>>>, item: Arc<T>) {
    let mut next = Vec::clone(&list.load());
    next.push(item);
    list.store(Arc::new(next));
}

/// Takes the first item that `matches` out of a list that readers load
/// without a lock; the caller holds the `live` lock.
pub(crate) fn take_from<T>(
    list: &ArcSwap<Vec<Arc<T>>>,
    matches: impl Fn(&T) -> bool,
) -> Option<Arc<T>> {
    let current = list.load();
    let position = current.iter().position(|item| matches(item))?;
    let mut next = Vec::clone(&current);
    let removed = next.remove(position);
    list.store(Arc::new(next));
    Some(removed)
}

pub(crate) fn closed_status() -> Status {
    Status::unavailable("the pool is closed")
}
