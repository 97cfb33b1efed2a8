//! A stream-aware HTTP/2 connection pool for [tonic] gRPC clients.
//!
//! One tonic `Channel` is one HTTP/2 connection behind one worker task: the
//! server's `SETTINGS_MAX_CONCURRENT_STREAMS` queues every call beyond it,
//! and a dead connection stalls every call. A [`Pool`] shares several
//! connections among all callers:
//!
//! - each call takes a stream slot on the ready connection with the fewest
//!   calls in flight and gives it back when its response ends or is dropped;
//! - the pool opens another connection only when every connection is at the
//!   stream limit its server advertised (gRPC's proposal A105), one attempt
//!   at a time per endpoint, and closes spare ones when the load falls;
//! - when it cannot grow, calls wait in a bounded first-come-first-served
//!   queue and fail with `RESOURCE_EXHAUSTED` past `acquire_timeout` (and
//!   with `UNAVAILABLE` when no connection could be made at all);
//! - broken connections (reset, GOAWAY, missed keepalive) leave the rotation
//!   at once and are replaced with exponential backoff and jitter; transport
//!   failures are `UNAVAILABLE`, as gRPC specifies.
//!
//! ```no_run
//! # #[cfg(feature = "runtime")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//!
//! let pool = pooled_client::Pool::builder()
//!     .endpoint("http://127.0.0.1:50051")
//!     .max_connections(8)
//!     .acquire_timeout(Duration::from_secs(2))
//!     .build()?;
//! // Any tonic client works over the pool:
//! // let mut greeter = GreeterClient::new(pool.clone());
//! println!("{:?}", pool.stats());
//! # Ok(()) }
//! ```
//!
//! Beyond the core: health checking with `grpc.health.v1`
//! ([`PoolBuilder::health_check`]), endpoints added and removed at run time
//! and fed by discovery sources ([`Pool::add_endpoint`],
//! [`PoolBuilder::discovery`], [`discovery`]), affinity keys
//! ([`AffinityKey`]), and a tracing span per connection.
//!
//! # Metrics
//!
//! With the `metrics` feature every pool publishes its state through the
//! [`metrics`](https://docs.rs/metrics) facade, to whichever recorder the
//! program installs (Prometheus, StatsD, OpenTelemetry...), labelled with the
//! pool's [`name`](PoolBuilder::name): gauges `pooled_client_connections`,
//! `_draining`, `_connecting`, `_in_flight`, `_waiting`, `_capacity` and
//! `_endpoints`; counters `pooled_client_connects_total`,
//! `_connect_failures_total`, `_evictions_total`, `_idle_closes_total`,
//! `_expired_total`, `_unhealthy_total` and `_rejected_total`; and the
//! histogram `pooled_client_wait_seconds` of calls that had to queue. Gauges
//! and counters mirror [`Pool::stats`] at every connection change and at
//! least once a second, so calls pay nothing for them.
//!
//! ```no_run
//! # #[cfg(feature = "metrics")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // Any recorder; this one keeps the values in memory.
//! let recorder = metrics_util::debugging::DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! recorder.install()?;
//!
//! let pool = pooled_client::Pool::builder()
//!     .name("orders")
//!     .endpoint("http://127.0.0.1:50051")
//!     .build()?;
//! pool.ready().await?;
//! for (key, _, _, value) in snapshotter.snapshot().into_vec() {
//!     println!("{} {:?}", key.key().name(), value); // pooled_client_connections Gauge(1.0) ...
//! }
//! # Ok(()) }
//! ```
//!
//! # Features
//! - `runtime` (default): the pool and the `#[pooled_client]` attribute.
//! - `build`: the module `pooled_client::build`, the build-script helper that compiles protos into
//!   tonic clients and pooled wrappers, without tokio or h2.
//! - `tls`: `https://` endpoints through rustls (`TlsConfig`).
//! - `dns`: `dns::DnsDiscovery`, re-resolving a host name on an
//!   interval and spreading connections over its addresses (hickory-resolver).
//! - `serde`: [`PoolConfig`] from configuration files, durations as `"5s"`, with
//!   [`Pool::from_config`].
//! - `metrics`: gauges, counters and a wait-time histogram through the `metrics` crate's facade.
//! - `xds`: endpoints from an xDS control plane (`Pool::builder().xds("xds:///name")`, gRPC A27's
//!   bootstrap), with the `xds-client` crate; see [`xds`].
#![cfg_attr(docsrs, feature(doc_cfg))]
//!
//! # Layout
//!
//! The crate is built in layers, each importing only from those below it:
//! `conn` (one HTTP/2 connection, knowing nothing of the pool), `state` (the
//! pool's shared state and one file per behaviour: pick, wait, grow, shrink,
//! balance...), `call` (one call: the tower `Service`, the attempt loop, the
//! response body), and the public faces at the top (`Pool`, `PoolBuilder`,
//! `PoolStats`...). `config` is plain data that every layer reads, and
//! `telemetry` what the pool tells about itself (its statistics, and its
//! metrics with feature `metrics`).

#[cfg(feature = "runtime")]
#[doc(hidden)]
pub mod __private;
#[cfg(feature = "runtime")]
mod affinity;
#[cfg(feature = "build")]
pub mod build;
#[cfg(feature = "runtime")]
mod builder;
#[cfg(feature = "runtime")]
mod call;
#[cfg(feature = "runtime")]
mod code_names;
#[cfg(feature = "runtime")]
mod config;
#[cfg(feature = "runtime")]
mod conn;
#[cfg(feature = "runtime")]
pub mod discovery;
#[cfg(feature = "dns")]
pub mod dns;
#[cfg(feature = "runtime")]
mod error;
#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "runtime")]
mod interceptor;
#[cfg(feature = "runtime")]
mod lock;
#[cfg(feature = "runtime")]
mod pool;
#[cfg(feature = "runtime")]
mod rpc;
#[cfg(feature = "runtime")]
mod state;
#[cfg(feature = "runtime")]
mod telemetry;
#[cfg(feature = "runtime")]
mod watch;
#[cfg(feature = "xds")]
pub mod xds;

#[cfg(feature = "tls")]
pub use crate::config::TlsConfig;
#[cfg(feature = "runtime")]
pub use crate::{
    affinity::AffinityKey,
    builder::PoolBuilder,
    call::{ResponseBody, ResponseFuture},
    config::{
        Backoff, FailurePercentageEjection, HealthCheck, HedgingPolicy, MethodConfig, MethodName,
        OutlierDetection, PoolConfig, RetryPolicy, RetryThrottling, RingHash, ServiceConfig,
        SuccessRateEjection,
    },
    error::Error,
    interceptor::SharedInterceptor,
    pool::Pool,
    rpc::{BidiStreaming, ClientStreaming, ServerStreaming, Unary},
    telemetry::stats::{DiscoveryStats, EndpointInfo, EndpointState, EndpointStats, PoolStats},
    watch::PoolWatch,
};

/// Turns a struct that lists a tonic client's RPCs into a pooled client.
///
/// Each named field declares one RPC: its name is the tonic client's method
/// name and its type is [`Unary`], [`ServerStreaming`], [`ClientStreaming`]
/// or [`BidiStreaming`] of the request and response types. `client = path`
/// names the tonic-generated client type, without its generic parameter.
///
/// ```
/// use pooled_client::{pooled_client, ServerStreaming, Unary};
/// use tonic_health::pb::health_client;
/// use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
///
/// /// Pooled client for the standard health service.
/// #[pooled_client(client = health_client::HealthClient)]
/// pub struct PooledHealthClient {
///     /// Asks whether a service is serving.
///     check: Unary<HealthCheckRequest, HealthCheckResponse>,
///     /// Streams the service's status as it changes.
///     watch: ServerStreaming<HealthCheckRequest, HealthCheckResponse>,
/// }
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = pooled_client::Pool::builder().endpoint("http://127.0.0.1:50051").build()?;
/// let health = PooledHealthClient::new(pool.clone())
///     .with_timeout(std::time::Duration::from_secs(1));
/// let status = health.check(HealthCheckRequest { service: String::new() }).await?;
/// # Ok(()) }
/// ```
///
/// The struct keeps its name, visibility, attributes and doc comments, and
/// becomes `Clone + Send + Sync + Debug`, holding the tonic client over a
/// [`Pool`]. It gets:
/// - `new(pool)`, `async connect(uri)` (a pool with default settings, once a
///   connection is up) and `pool()`;
/// - tonic's per-client settings `send_compressed`, `accept_compressed`,
///   `max_decoding_message_size`, `max_encoding_message_size`, and
///   `with_timeout(duration)`, a deadline for calls that set none;
/// - one `async fn` per field with tonic's own signature but `&self`, so the
///   client can be shared: field doc comments and `#[deprecated]` carry over.
///
/// A crate that re-exports this one (an SDK whose users depend on it
/// alone) says where to find it with `crate = path`, as serde's
/// `crate = "..."`: `#[my_sdk::pooled_client::pooled_client(client = ...,
/// crate = my_sdk::pooled_client)]` (the path may also be a string). The
/// build helper writes the same when given
/// `build::Builder::pooled_client_path`.
///
/// Mistakes are compile errors that point at the token at fault: a tuple or
/// unit struct, generics, a field type other than the four above, a missing
/// or malformed `client = ...`, or a method declared twice.
#[cfg(feature = "runtime")]
pub use pooled_client_macros::pooled_client;
