//! The pool's settings as plain data, with their defaults, and the checks
//! `build` runs on them, each beside the type it checks (`check.rs` for
//! `PoolConfig`'s own). Nothing here imports the rest of the crate but its
//! error type; the layers below read these values.

mod backoff;
mod check;
#[cfg(feature = "dns")]
pub(crate) mod dns;
mod health_check;
mod outlier;
mod service_config;
#[cfg(feature = "tls")]
mod tls;

use std::time::Duration;

pub use self::backoff::Backoff;
#[cfg(feature = "dns")]
pub use self::dns::DnsConfig;
pub use self::health_check::HealthCheck;
pub use self::outlier::{FailurePercentageEjection, OutlierDetection, SuccessRateEjection};
pub use self::service_config::{
    HedgingPolicy, MethodConfig, MethodName, RetryPolicy, RetryThrottling, RingHash, ServiceConfig,
};
#[cfg(feature = "tls")]
pub use self::tls::TlsConfig;

/// tonic's default limit of a response message, in bytes (gRPC's default
/// receive limit too).
pub(crate) const DEFAULT_DECODING_LIMIT: usize = 4 << 20;

/// Every setting of a [`Pool`](crate::Pool), as plain data.
///
/// Build one with [`Pool::builder`](crate::Pool::builder); the builder checks
/// every value when [`build`](crate::PoolBuilder::build) is called.
///
/// With the `serde` feature it can be read from a configuration file: every
/// field is optional (missing ones take their defaults), durations are
/// written as `"5s"` or `"250ms"`, unknown fields are errors, and
/// [`Pool::from_config`](crate::Pool::from_config) checks the values as the
/// builder does.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// let config: pooled_client::PoolConfig = toml::from_str(r#"
///     endpoints = ["http://127.0.0.1:50051"]
///     max_connections = 16
///     acquire_timeout = "2s"
///     http2_keep_alive_interval = "30s"
///     keep_alive_timeout = "10s"
///     health_check = { service = "helloworld.Greeter", interval = "5s" }
/// "#).expect("valid TOML");
/// assert_eq!(config.acquire_timeout, std::time::Duration::from_secs(2));
/// let pool = pooled_client::Pool::from_config(config).expect("valid settings");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct PoolConfig {
    /// The pool's name, in logs and as the `pool` label of its metrics.
    ///
    /// Default: `"default"`.
    pub name: String,
    /// The servers to connect to, such as `http://127.0.0.1:50051`, or
    /// `unix:/run/app.sock` for a Unix domain socket.
    ///
    /// Default: none; at least one is required.
    pub endpoints: Vec<String>,
    /// Connections the pool keeps open even when idle, over all endpoints;
    /// they are opened in the background as soon as the pool is built inside a tokio runtime, or else at its first call or `ready()`.
    ///
    /// Default: 1.
    pub min_connections: usize,
    /// The most connections the pool opens, over all endpoints; never fewer
    /// than `min_connections_per_endpoint` for each endpoint, so that every
    /// server of a fleet is connected.
    ///
    /// Default: 8.
    pub max_connections: usize,
    /// Connections each endpoint keeps even when idle, so that calls can
    /// spread over every server: opened in the background as soon as the pool is built inside a tokio runtime, or else at its first call or `ready()`, and for an endpoint
    /// added later, as soon as it appears.
    ///
    /// Default: 1.
    pub min_connections_per_endpoint: usize,
    /// The most connections the pool opens to one endpoint.
    ///
    /// Default: none (`max_connections`).
    pub max_connections_per_endpoint: Option<usize>,
    /// How many of its endpoints the pool uses, for large fleets: that many,
    /// chosen by rendezvous hashing on a seed of the pool's own, so that
    /// clients spread over the fleet without each connecting to all of it,
    /// and a change of membership moves only the endpoints it must.
    ///
    /// Default: none (every endpoint).
    pub subset_size: Option<usize>,
    /// This client's index among the clients of the fleet (0, 1, 2, ...),
    /// for subsetting: clients with consecutive indices take consecutive
    /// windows of one order of the endpoints, so together they use every
    /// endpoint equally (each exactly as often when the fleet divides
    /// evenly), and a change of membership still moves at most one member
    /// of a subset. Without it, the pool's subset is its own random choice.
    ///
    /// Default: none (a random seed).
    pub subset_index: Option<u64>,
    /// How long one connection attempt (TCP, HTTP/2 handshake and the
    /// server's first SETTINGS frame) may take.
    ///
    /// Default: 5 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub connect_timeout: Duration,
    /// How long the pool must have had more connections than its peak load
    /// needed before it closes one of them (one per period, never below
    /// `min_connections`).
    ///
    /// Default: 60 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub idle_timeout: Duration,
    /// The age after which a connection stops taking new calls and is
    /// replaced; each connection's age limit is jittered by up to 10 % so that
    /// connections opened together are not all replaced together.
    ///
    /// Default: none (connections live until they break or go idle).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub max_connection_lifetime: Option<Duration>,
    /// How long a call may wait for a free stream when every connection is at
    /// its stream limit and the pool cannot grow; past it the call fails with
    /// `RESOURCE_EXHAUSTED`. While no connection is up at all, a call waits
    /// for the attempts under way instead (up to `connect_timeout`) and fails
    /// with `UNAVAILABLE`: an unreachable server is not overload.
    ///
    /// Default: 5 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub acquire_timeout: Duration,
    /// How many calls may wait for a stream at once; more fail at once with
    /// `RESOURCE_EXHAUSTED`.
    ///
    /// Default: 1,024.
    pub max_waiters: usize,
    /// The time between HTTP/2 keepalive PINGs (tonic's
    /// `http2_keep_alive_interval`): a connection whose PING is not answered
    /// within `keep_alive_timeout` is closed and replaced.
    ///
    /// Default: none (no PINGs, as in gRPC and tonic; some servers reject
    /// frequent PINGs).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub http2_keep_alive_interval: Option<Duration>,
    /// How long a keepalive PING may go unanswered (tonic's
    /// `keep_alive_timeout`).
    ///
    /// Default: 20 s (tonic's).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub keep_alive_timeout: Duration,
    /// Whether PINGs are sent while no call is in flight, so that a dead
    /// idle connection is found before a call is sent on it (tonic's
    /// `keep_alive_while_idle`).
    ///
    /// Default: false (tonic's).
    pub keep_alive_while_idle: bool,
    /// An upper bound on the streams the pool opens on one connection, below
    /// what the server advertises.
    ///
    /// Default: none (the server's `SETTINGS_MAX_CONCURRENT_STREAMS`, or 100
    /// when it advertises no limit).
    pub max_streams_per_connection: Option<usize>,
    /// The largest response message a call takes, in bytes (tonic's name,
    /// and tonic's client default): a message above it fails the call with
    /// `RESOURCE_EXHAUSTED` at its length prefix, before its bytes are read.
    /// A generated client's own `max_decoding_message_size`, and a method's
    /// `maxResponseMessageBytes` in the service config, take the place of
    /// this for their calls (the smaller of the method's and the client's
    /// applies). Raise it here for plain tonic clients whose limit you raised.
    ///
    /// Default: 4 MiB (4194304).
    pub max_decoding_message_size: usize,
    /// The retry policy of methods their proto declares safe to send twice
    /// (`option idempotency_level = IDEMPOTENT` or `NO_SIDE_EFFECTS`, which
    /// the build helper carries to the generated clients), unless the
    /// service config gives the method a policy of its own. Methods not
    /// declared so are never sent twice after they left the client, unless
    /// the service config says so. `None` turns it off. In a configuration
    /// file, written as a service config's `retryPolicy`.
    ///
    /// Default: 3 attempts, backoff from 0.1 s doubling up to 1 s, on
    /// `UNAVAILABLE` ([`RetryPolicy::default`]).
    pub idempotent_retry_policy: Option<RetryPolicy>,
    /// How reconnection attempts to a failing endpoint are spaced.
    ///
    /// Default: [`Backoff::default`].
    pub backoff: Backoff,
    /// HTTP/2 initial stream window size, in bytes.
    ///
    /// Default: hyper's, 2 MiB.
    pub initial_stream_window_size: Option<u32>,
    /// HTTP/2 initial connection window size, in bytes.
    ///
    /// Default: hyper's, 5 MiB.
    pub initial_connection_window_size: Option<u32>,
    /// Whether HTTP/2 windows adapt to the measured bandwidth-delay product
    /// (tonic's `http2_adaptive_window`; it overrides the two window sizes).
    ///
    /// Default: false.
    pub http2_adaptive_window: bool,
    /// The largest header list the pool accepts from a server (tonic's
    /// `http2_max_header_list_size`), in bytes.
    ///
    /// Default: hyper's, 16 KiB.
    pub http2_max_header_list_size: Option<u32>,
    /// The header compression table the pool lets a server's HPACK encoder
    /// use (tonic's `http2_header_table_size`, sent as
    /// `SETTINGS_HEADER_TABLE_SIZE`), in bytes.
    ///
    /// Default: none sent (HTTP/2's 4,096, as tonic).
    pub http2_header_table_size: Option<u32>,
    /// The largest frame payload the pool accepts (tonic's
    /// `max_frame_size`, sent as `SETTINGS_MAX_FRAME_SIZE`), in bytes:
    /// from 16,384 to 16,777,215.
    ///
    /// Default: hyper's, 16 KiB.
    pub max_frame_size: Option<u32>,
    /// How many streams the pool reset that it remembers, ignoring their
    /// late frames (tonic's `http2_max_concurrent_reset_streams`).
    ///
    /// Default: h2's, 50.
    pub http2_max_concurrent_reset_streams: Option<usize>,
    /// How long a stream the pool reset is remembered (tonic's
    /// `http2_reset_stream_duration`).
    ///
    /// Default: h2's, 1 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub http2_reset_stream_duration: Option<Duration>,
    /// How many streams the pool may reset for a server's errors before it
    /// closes the connection with `GOAWAY(ENHANCE_YOUR_CALM)` (tonic's
    /// `http2_max_local_error_reset_streams`); `Some(None)` sets no limit,
    /// for trusted servers only.
    ///
    /// Default: hyper's, 1,024.
    pub http2_max_local_error_reset_streams: Option<Option<usize>>,
    /// Health checking with the standard `grpc.health.v1` protocol: a new
    /// connection joins the rotation only once its server answers
    /// `SERVING`, and an endpoint whose check fails leaves the rotation
    /// until it answers `SERVING` again.
    ///
    /// Default: none.
    pub health_check: Option<HealthCheck>,
    /// Outlier detection (gRPC A50): endpoints that fail more than the
    /// others stop taking calls for a while.
    ///
    /// Default: none (off).
    pub outlier_detection: Option<OutlierDetection>,
    /// The origin whose authority every call names as `:authority`
    /// (HTTP/2's Host), instead of each endpoint's host and port (tonic's
    /// `origin`): for servers or proxies that route by name while the pool
    /// connects by address. Written as a URI, such as
    /// `http://greeter.internal`.
    ///
    /// Default: none (the endpoint's host and port).
    pub origin: Option<String>,
    /// TLS settings for `https://` endpoints (feature `tls`).
    ///
    /// Default: none (`https://` endpoints trust the bundled Mozilla roots).
    #[cfg(feature = "tls")]
    pub tls: Option<TlsConfig>,
    /// Whether connections set TCP_NODELAY (as tonic's `tcp_nodelay`):
    /// gRPC's small messages should not wait for Nagle's algorithm.
    ///
    /// Default: true.
    pub tcp_nodelay: bool,
    /// Whether a connection sends the ACK of what it read after 1 ms when
    /// no write of its own carried it (TCP_QUICKACK, Linux only), instead
    /// of letting the kernel delay it by up to 40 ms. Against a server that
    /// leaves Nagle's algorithm on, a delayed ACK stalls the server's next
    /// small write for those 40 ms. While calls flow, their requests carry
    /// the ACKs and this costs nothing; it costs a `setsockopt` when one
    /// is sent.
    ///
    /// Default: true.
    pub tcp_quickack: bool,
    /// TCP keepalive probes after this much idleness (as tonic's
    /// `tcp_keepalive`), beside HTTP/2's own PINGs.
    ///
    /// Default: none.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub tcp_keepalive: Option<Duration>,
    /// Time between TCP keepalive probes that go unanswered (tonic's
    /// `tcp_keepalive_interval`); used with `tcp_keepalive`.
    ///
    /// Default: none (the system's).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub tcp_keepalive_interval: Option<Duration>,
    /// Unanswered TCP keepalive probes before the connection counts as
    /// dead (tonic's `tcp_keepalive_retries`); used with `tcp_keepalive`.
    ///
    /// Default: none (the system's).
    pub tcp_keepalive_retries: Option<u32>,
    /// The local address connections are made from (as tonic's
    /// `local_address`); endpoints of the other IP family are skipped.
    ///
    /// Default: none (the system's choice).
    pub local_address: Option<std::net::IpAddr>,
    /// The `user-agent` of calls that set none, followed by this crate's
    /// own token (as tonic's `user_agent`, which appends `tonic/x.y`).
    ///
    /// Default: none (`pooled-client/x.y.z` alone).
    pub user_agent: Option<String>,
    /// A deadline for every call that has none of its own (from its
    /// client, its request or its method's `timeout`).
    ///
    /// Default: none.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub timeout: Option<Duration>,
    /// gRPC's service config: per-method timeouts, wait-for-ready, retry
    /// and hedging policies, message limits and retry throttling, found by
    /// each call's path. In a configuration file, the JSON config's fields
    /// under the same names (`methodConfig`, `retryThrottling`).
    ///
    /// Default: empty (no method has a policy).
    pub service_config: ServiceConfig,
    /// A host name to resolve on an interval, each address an endpoint
    /// (feature `dns`), in addition to `endpoints`: the configuration-file
    /// form of [`DnsDiscovery`](crate::dns::DnsDiscovery).
    ///
    /// Default: none.
    #[cfg(feature = "dns")]
    pub dns: Option<DnsConfig>,
    /// An xDS target, `xds:///name` (feature `xds`): the endpoints, and
    /// in time the balancing and per-route policy, come from the control
    /// plane that gRPC A27's bootstrap names (the file `GRPC_XDS_BOOTSTRAP`
    /// names, else the JSON in `GRPC_XDS_BOOTSTRAP_CONFIG`, unless the
    /// builder's `xds_bootstrap` gives one). It excludes `endpoints`, `dns`
    /// and discovery sources.
    ///
    /// Default: none.
    #[cfg(feature = "xds")]
    pub xds: Option<String>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            name: "default".to_owned(),
            endpoints: Vec::new(),
            min_connections: 1,
            max_connections: 8,
            min_connections_per_endpoint: 1,
            max_connections_per_endpoint: None,
            subset_size: None,
            subset_index: None,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_connection_lifetime: None,
            acquire_timeout: Duration::from_secs(5),
            max_waiters: 1024,
            http2_keep_alive_interval: None,
            keep_alive_timeout: Duration::from_secs(20),
            keep_alive_while_idle: false,
            max_streams_per_connection: None,
            max_decoding_message_size: DEFAULT_DECODING_LIMIT,
            idempotent_retry_policy: Some(RetryPolicy::default()),
            backoff: Backoff::default(),
            initial_stream_window_size: None,
            initial_connection_window_size: None,
            http2_adaptive_window: false,
            http2_max_header_list_size: None,
            http2_header_table_size: None,
            max_frame_size: None,
            http2_max_concurrent_reset_streams: None,
            http2_reset_stream_duration: None,
            http2_max_local_error_reset_streams: None,
            health_check: None,
            outlier_detection: None,
            origin: None,
            tcp_nodelay: true,
            tcp_quickack: true,
            tcp_keepalive: None,
            tcp_keepalive_interval: None,
            tcp_keepalive_retries: None,
            local_address: None,
            user_agent: None,
            timeout: None,
            service_config: ServiceConfig::default(),
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "dns")]
            dns: None,
            #[cfg(feature = "xds")]
            xds: None,
        }
    }
}
