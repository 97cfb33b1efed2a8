//! The pool's shared state, [`Inner`], and what changes it: one file per
//! behaviour, each an `impl Inner` of its own.
//!
//! | file | what it answers |
//! |---|---|
//! | `pick.rs` | which endpoint and connection a call takes, and the slot it holds |
//! | `member.rs` | an endpoint as the pool keeps it: in the pool or not, its attempts and their backoff |
//! | `subchannel.rs` | an endpoint as the pick sees it: its connections, its load, its outlier counters |
//! | `latency.rs` | an endpoint's latency estimate (a fading EWMA) |
//! | `subset.rs` | which endpoints a pool uses, with `subset_size` (rendezvous hashing) |
//! | `weights.rs` | endpoint weights (an xDS locality's), and the pick's weighted draw |
//! | `ring.rs` | ring hash (gRPC A42): a call's hash picks its endpoint |
//! | `route.rs` | which route and cluster a call takes (an xDS pool's router), and the route's retries (A44), deadline bound (A31) and hash policy (A42) |
//! | `clusters.rs` | an xDS pool's clusters (A28): each a set of the pool's endpoints of its own, a routed call picked in its cluster |
//! | `wait.rs`, `queue.rs` | how a call waits when no stream is free |
//! | `affinity.rs` | keeping calls with one key on one connection |
//! | `circuit.rs` | circuit breaking (gRPC A32): a limit on attempts in flight |
//! | `grow.rs` | when the pool opens a connection, and to which endpoint |
//! | `join.rs` | one connection attempt, up to joining the rotation |
//! | `retire.rs` | a connection leaving the rotation |
//! | `endpoints.rs` | endpoints added, removed, failing their health check |
//! | `balance.rs` | moving connections so that they stay spread |
//! | `shrink.rs` | closing a connection the load no longer needs |
//! | `maintain.rs` | the periodic tick: lifetimes, shrinking, rebalancing |
//! | `health.rs` | health-checking each connection on an interval |
//! | `outlier.rs` | outlier detection (gRPC A50): ejecting endpoints that fail more |
//! | `discover.rs` | applying a discovery source's changes |
//! | `lifecycle.rs` | starting, waiting until ready, closing |
//! | `outage.rs` | what calls are told when nothing can be reached |
//! | `policy.rs` | the service config's method configs, found by a call's path |
//! | `snapshot.rs` | the statistics, read from the state (published by `crate::telemetry`) |

mod affinity;
mod balance;
pub(crate) mod circuit;
pub(crate) mod clusters;
pub(crate) mod discover;
mod endpoints;
mod grow;
mod health;
mod join;
mod latency;
mod lifecycle;
mod list;
mod maintain;
mod member;
mod outage;
pub(crate) mod outlier;
mod pick;
pub(crate) mod policy;
mod queue;
mod retire;
pub(crate) mod ring;
pub(crate) mod route;
mod shrink;
mod snapshot;
mod subchannel;
mod subset;
mod wait;
pub(crate) mod weights;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Mutex, MutexGuard, Weak};

use arc_swap::ArcSwap;
use std::sync::Arc;
use tokio::sync::watch;

pub(crate) use self::affinity::Bindings;
pub(crate) use self::endpoints::endpoint_for;
pub(crate) use self::member::Member;
pub(crate) use self::pick::{Slot, Spread};
use self::policy::MethodPolicies;
use self::queue::Waiters;
pub(crate) use self::retire::Retirement;
pub(crate) use self::subchannel::Subchannel;
use crate::config::PoolConfig;
use crate::conn::{Connection, Dial, Endpoint};
use crate::lock::lock;

/// What the pool has done, counted as it happens.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connects: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) idle_closes: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) unhealthy: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) transparent_retries: AtomicU64,
    pub(crate) retries_throttled: AtomicU64,
    pub(crate) hedges: AtomicU64,
}

/// The state behind every clone of a [`Pool`](crate::Pool), in named
/// parts: what it connects to and holds ([`Fleet`]), its life and who is
/// told of changes ([`Lifecycle`]), what every call reads ([`Calls`]), and
/// what it counts ([`Telemetry`]). Each behaviour file touches the parts
/// it needs.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: PoolConfig,
    pub(crate) fleet: Fleet,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) calls: Calls,
    pub(crate) telemetry: Telemetry,
    /// Calls waiting for a stream, first come, first served.
    waiters: Waiters<Slot, route::RoutedTo>,
    /// Which connection each affinity key is bound to.
    affinity: Bindings,
}

/// The endpoints, their subchannels and the connections.
#[derive(Debug)]
pub(crate) struct Fleet {
    /// The endpoints connections may go to; changed under the `live` lock.
    pub(crate) endpoints: ArcSwap<Vec<Arc<Member>>>,
    /// The endpoints in use (all of them, or the subset), as the pick sees
    /// them, each with its connections in the rotation; changed with
    /// `endpoints` and `rotation`.
    subchannels: ArcSwap<weights::Subchannels>,
    /// The endpoints' weights (an xDS pool's localities'); none elsewhere.
    weights: ArcSwap<weights::Weights>,
    /// How calls hash onto a ring (a service config's `ring_hash_experimental`,
    /// gRPC A76; an xDS pool's clusters have rings of their own); none
    /// elsewhere.
    ring: arc_swap::ArcSwapOption<ring::RingConfig>,
    /// Whether `ring` is set, readable without loading it.
    hashing: AtomicBool,
    /// An xDS pool's clusters; none elsewhere.
    clusters: ArcSwap<clusters::ClusterConfigs>,
    /// Whether `subchannels` holds more than one endpoint, readable without
    /// loading it: a pool of one endpoint picks as if it had no others.
    choosing: AtomicBool,
    /// This pool's seed for choosing its subset.
    seed: u64,
    /// How connections reach their servers: the checked TLS settings and
    /// the user's connector.
    dial: Dial,
    /// The connections taking calls, read lock-free on every call.
    rotation: ArcSwap<Vec<Arc<Connection>>>,
    /// Every connection not yet dropped, including draining ones; the lock
    /// also serializes changes to `rotation` and `endpoints`.
    live: Mutex<Vec<Weak<Connection>>>,
    /// Connection attempts under way.
    connecting: AtomicUsize,
    /// The next connection's id.
    next_id: AtomicU64,
    /// The user's cap on streams per connection (`usize::MAX` if none).
    stream_cap: usize,
}

/// Starting, closing, and telling waiters of changes.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    started: AtomicBool,
    closed: AtomicBool,
    /// Discovery sources, started with the background work.
    discoveries: Mutex<Vec<discover::Start>>,
    /// Bumped when connections come, go or fail, an endpoint's state
    /// changes, or a call ends after close; also when a call starts,
    /// waits or ends while someone watches (`attention`).
    events: watch::Sender<u64>,
    /// What a call's start and end must tell, in one word so that each
    /// reads one load: [`CLOSED`] once the pool closed, plus
    /// [`WATCHER`] for each [`PoolWatch`](crate::PoolWatch) alive.
    attention: AtomicUsize,
}

/// What every call reads besides the config.
#[derive(Debug)]
pub(crate) struct Calls {
    /// The service config's method configs, by path.
    policies: MethodPolicies,
    /// Run on every call, before it is sent.
    pub(crate) interceptor: Option<crate::interceptor::SharedInterceptor>,
    /// The `user-agent` of calls that set none.
    pub(crate) user_agent: http::HeaderValue,
    /// An xDS pool's router, and whether there is one.
    router: arc_swap::ArcSwapOption<route::Routing>,
    routed: AtomicBool,
}

/// What the pool counts and reports.
#[derive(Debug)]
pub(crate) struct Telemetry {
    counters: Counters,
    /// What the discovery sources reported.
    pub(crate) discovery_stats: Mutex<crate::telemetry::stats::DiscoveryStats>,
    /// gRPC A66's per-call instruments, by method.
    pub(crate) instruments: crate::telemetry::Instruments,
    /// What an xDS pool knows of its control plane.
    #[cfg(feature = "xds")]
    pub(crate) xds: Option<Arc<crate::telemetry::xds_status::Board>>,
}

/// `attention`'s bit for a closed pool.
const CLOSED: usize = 1;
/// `attention`'s count of watchers, in units above [`CLOSED`].
const WATCHER: usize = 2;

/// This crate's token in every `user-agent` it sets.
const USER_AGENT_TOKEN: &str = concat!("pooled-client/", env!("CARGO_PKG_VERSION"));

/// The `user-agent` of calls that set none: the configured one, then this
/// crate's token (as tonic appends its own), or the token alone.
fn user_agent(config: &PoolConfig) -> http::HeaderValue {
    config
        .user_agent
        .as_ref()
        .and_then(|agent| http::HeaderValue::from_str(&format!("{agent} {USER_AGENT_TOKEN}")).ok())
        .unwrap_or_else(|| http::HeaderValue::from_static(USER_AGENT_TOKEN))
}

impl Fleet {
    /// The fleet of a new pool: its endpoints, none connected yet, and
    /// the ring its service config asks for, if any.
    fn new(config: &PoolConfig, endpoints: Vec<Endpoint>, dial: Dial) -> Self {
        let endpoints: Vec<Arc<Member>> = endpoints
            .into_iter()
            .map(|endpoint| Arc::new(Member::new(endpoint)))
            .collect();
        let seed = fastrand::u64(..);
        let subchannels: Vec<Arc<Subchannel>> = subset::in_use(&endpoints, config, seed)
            .into_iter()
            .map(|endpoint| Arc::new(Subchannel::new(endpoint)))
            .collect();
        let ring = config
            .service_config
            .ring_hash
            .as_ref()
            .map(ring::RingConfig::from_service_config);
        Self {
            choosing: AtomicBool::new(subchannels.len() > 1),
            endpoints: ArcSwap::from_pointee(endpoints),
            subchannels: ArcSwap::from_pointee(weights::Subchannels::new(
                subchannels,
                &weights::Weights::new(),
                ring.as_ref(),
            )),
            weights: ArcSwap::default(),
            hashing: AtomicBool::new(ring.is_some()),
            clusters: ArcSwap::default(),
            ring: arc_swap::ArcSwapOption::new(ring.map(Arc::new)),
            seed,
            dial,
            rotation: ArcSwap::from_pointee(Vec::new()),
            live: Mutex::new(Vec::new()),
            connecting: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            stream_cap: config.max_streams_per_connection.unwrap_or(usize::MAX),
        }
    }
}

impl Calls {
    fn new(
        config: &PoolConfig,
        interceptor: Option<crate::interceptor::SharedInterceptor>,
    ) -> Self {
        Self {
            policies: MethodPolicies::new(
                &config.service_config,
                config.idempotent_retry_policy.as_ref(),
            ),
            interceptor,
            user_agent: user_agent(config),
            router: arc_swap::ArcSwapOption::empty(),
            routed: AtomicBool::new(false),
        }
    }
}

impl Telemetry {
    fn new(config: &PoolConfig) -> Self {
        Self {
            counters: Counters::default(),
            discovery_stats: Mutex::default(),
            instruments: crate::telemetry::Instruments::new(&config.name),
            #[cfg(feature = "xds")]
            xds: None,
        }
    }
}

impl Lifecycle {
    fn new(discoveries: Vec<discover::Start>) -> Self {
        Self {
            started: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            discoveries: Mutex::new(discoveries),
            events: watch::Sender::new(0),
            attention: AtomicUsize::new(0),
        }
    }
}

impl Inner {
    /// The retry policy of methods declared idempotent that the service
    /// config does not name (`idempotent_retry_policy`), if any.
    #[inline]
    pub(crate) fn idempotent_policy(&self) -> Option<&Arc<crate::config::MethodConfig>> {
        self.calls.policies.idempotent()
    }

    /// The service config's retry throttle, if it has one.
    #[inline]
    pub(crate) fn retry_throttle(&self) -> Option<&policy::Throttle> {
        self.calls.policies.throttle()
    }

    /// The service config's policy for a call to `path`, if one applies.
    #[inline]
    pub(crate) fn method_policy(&self, path: &str) -> Option<&Arc<crate::config::MethodConfig>> {
        self.calls.policies.find(path)
    }

    /// The state of a new pool; nothing starts until [`start`](Self::start).
    pub(crate) fn new(
        config: PoolConfig,
        endpoints: Vec<Endpoint>,
        dial: Dial,
        discoveries: Vec<discover::Start>,
        interceptor: Option<crate::interceptor::SharedInterceptor>,
    ) -> Self {
        Self {
            waiters: Waiters::default(),
            affinity: Bindings::default(),
            calls: Calls::new(&config, interceptor),
            telemetry: Telemetry::new(&config),
            lifecycle: Lifecycle::new(discoveries),
            fleet: Fleet::new(&config, endpoints, dial),
            config,
        }
    }

    /// Every live connection; holding the guard serializes changes to the
    /// rotation and the endpoints.
    fn live(&self) -> MutexGuard<'_, Vec<Weak<Connection>>> {
        lock(&self.fleet.live)
    }

    /// Tells whoever waits on the pool's events that something changed.
    fn notify(&self) {
        self.lifecycle
            .events
            .send_modify(|generation| *generation = generation.wrapping_add(1));
        self.publish_metrics(false);
    }

    /// Subscribes to the pool's events (connections coming, going, failing).
    pub(crate) fn events(&self) -> watch::Receiver<u64> {
        self.lifecycle.events.subscribe()
    }

    /// Subscribes a watcher, who also hears of calls starting and ending
    /// until [`unwatch`](Self::unwatch).
    pub(crate) fn subscribe_watcher(&self) -> watch::Receiver<u64> {
        self.lifecycle
            .attention
            .fetch_add(WATCHER, std::sync::atomic::Ordering::Relaxed);
        self.lifecycle.events.subscribe()
    }

    /// A watcher went away.
    pub(crate) fn unwatch(&self) {
        self.lifecycle
            .attention
            .fetch_sub(WATCHER, std::sync::atomic::Ordering::Relaxed);
    }

    /// What a call's start or end must tell: nonzero when the pool closed
    /// or someone watches.
    #[inline]
    fn attention(&self) -> usize {
        // Acquire, as `is_closed` reads: a call that ends after `close`
        // marked the pool sees the mark.
        self.lifecycle
            .attention
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// A call started, or began or gave up waiting for a stream: the
    /// stats changed, and watchers hear of it.
    #[inline]
    fn tell_watchers(&self) {
        if self.attention() >= WATCHER {
            self.bump_events();
        }
    }

    /// A call ended: watchers hear of it, and, once the pool closed, so
    /// does `close` (which waits for the last call).
    #[inline]
    fn call_ended(&self) {
        let attention = self.attention();
        if attention != 0 {
            self.call_ended_with(attention);
        }
    }

    #[cold]
    fn call_ended_with(&self, attention: usize) {
        if attention & CLOSED != 0 {
            self.notify();
        } else {
            self.bump_events();
        }
    }

    /// Wakes whoever waits on the events, publishing nothing.
    fn bump_events(&self) {
        self.lifecycle
            .events
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// Marks the pool closed for the calls' ends to see.
    pub(super) fn mark_closed(&self) {
        self.lifecycle
            .attention
            .fetch_or(CLOSED, std::sync::atomic::Ordering::Release);
    }

    /// The subchannel of `endpoint`, if it is still in the pool; the caller
    /// holds the `live` lock.
    fn subchannel_of(&self, endpoint: &Arc<Endpoint>) -> Option<Arc<Subchannel>> {
        self.fleet
            .subchannels
            .load()
            .iter()
            .find(|s| s.endpoint.is(endpoint))
            .cloned()
    }

    /// The member whose endpoint `endpoint` (a connection's) is, if it is
    /// still in the pool.
    fn member_of(&self, endpoint: &Arc<Endpoint>) -> Option<Arc<Member>> {
        self.fleet
            .endpoints
            .load()
            .iter()
            .find(|m| m.is(endpoint))
            .cloned()
    }

    /// Connection attempts under way.
    fn connecting(&self) -> usize {
        self.fleet
            .connecting
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Counts a retry sent (a transparent one: its request never reached
    /// the server's application), for [`PoolStats`](crate::PoolStats).
    pub(crate) fn count_retry(&self, transparent: bool) {
        let counter = if transparent {
            &self.telemetry.counters.transparent_retries
        } else {
            &self.telemetry.counters.retries
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts a retry the retry throttle held back.
    pub(crate) fn count_throttled_retry(&self) {
        self.telemetry
            .counters
            .retries_throttled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts a hedged copy sent beyond the first.
    pub(crate) fn count_hedge(&self) {
        self.telemetry
            .counters
            .hedges
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// What the discovery sources have reported.
    pub(crate) fn discovery_stats(&self) -> crate::telemetry::stats::DiscoveryStats {
        lock(&self.telemetry.discovery_stats).clone()
    }

    /// Whether the pool was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.lifecycle
            .closed
            .load(std::sync::atomic::Ordering::Acquire)
    }
}
