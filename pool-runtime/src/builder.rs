//! Building a pool: the setters, and `build`, which checks every setting
//! (each type's checks live beside it in `config/`) before any I/O.

use std::time::Duration;

use crate::config::{
    Backoff, HealthCheck, OutlierDetection, PoolConfig, RetryPolicy, ServiceConfig,
};
use crate::conn::{Connector, Dial, Endpoint, Tls};
use crate::discovery::{Change, Target};
use crate::error::Error;
use crate::interceptor::SharedInterceptor;
use crate::pool::Pool;
use crate::state::discover::{self, Start};
use crate::state::{Inner, endpoint_for};

// The builder is the one constructor: `Pool`'s two ways in live here, beside
// it, so that `pool.rs` (the handle) does not reach back for the builder.
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
}

/// Configures a [`Pool`]; [`build`](Self::build) checks the settings.
///
/// ```
/// use std::time::Duration;
///
/// let pool = pooled_client::Pool::builder()
///     .endpoint("http://127.0.0.1:50051")
///     .max_connections(16)
///     .acquire_timeout(Duration::from_secs(1))
///     .build()
///     .expect("valid settings");
/// assert_eq!(pool.config().max_connections, 16);
/// ```
#[derive(Default)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct PoolBuilder {
    config: PoolConfig,
    discoveries: Vec<Start>,
    interceptor: Option<SharedInterceptor>,
    connector: Option<Connector>,
    /// Verifies servers' certificates in place of rustls' own.
    #[cfg(feature = "tls")]
    verifier: Option<crate::conn::Verifier>,
    /// The xDS bootstrap, when given rather than read from the environment.
    #[cfg(feature = "xds")]
    xds_bootstrap: Option<crate::xds::Bootstrap>,
}

impl std::fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("config", &self.config)
            .field("discoveries", &self.discoveries.len())
            .field("interceptor", &self.interceptor.is_some())
            .field("connector", &self.connector.is_some())
            .finish_non_exhaustive()
    }
}

impl PoolBuilder {
    /// A builder with every setting at its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder starting from `config`.
    pub fn from_config(config: PoolConfig) -> Self {
        Self {
            config,
            discoveries: Vec::new(),
            interceptor: None,
            connector: None,
            #[cfg(feature = "tls")]
            verifier: None,
            #[cfg(feature = "xds")]
            xds_bootstrap: None,
        }
    }

    /// Names the pool in logs and in the `pool` label of its metrics.
    /// Default: `"default"`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// Adds a server, such as `"http://127.0.0.1:50051"`, `"https://host"`
    /// (feature `tls`) or a Unix domain socket, `"unix:/run/app.sock"` or
    /// `"unix:///run/app.sock"`; call it once per server. Connections are
    /// spread over the endpoints.
    pub fn endpoint(mut self, uri: impl Into<String>) -> Self {
        self.config.endpoints.push(uri.into());
        self
    }

    /// Connections kept open even when idle, over all endpoints, opened as
    /// [`PoolConfig::min_connections`] says. Default: 1.
    pub fn min_connections(mut self, min: usize) -> Self {
        self.config.min_connections = min;
        self
    }

    /// The most connections the pool opens, over all endpoints (never fewer
    /// than one per endpoint, see
    /// [`min_connections_per_endpoint`](Self::min_connections_per_endpoint)).
    /// Default: 8.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.config.max_connections = max;
        self
    }

    /// Connections each endpoint keeps, opened as
    /// [`PoolConfig::min_connections_per_endpoint`] says. Default: 1.
    pub fn min_connections_per_endpoint(mut self, min: usize) -> Self {
        self.config.min_connections_per_endpoint = min;
        self
    }

    /// The most connections the pool opens to one endpoint. Default:
    /// `max_connections`.
    pub fn max_connections_per_endpoint(mut self, max: usize) -> Self {
        self.config.max_connections_per_endpoint = Some(max);
        self
    }

    /// Uses only `size` of the endpoints, chosen by rendezvous hashing on
    /// the pool's own random seed (see [`PoolConfig::subset_size`]).
    /// Default: every endpoint.
    pub fn subset_size(mut self, size: usize) -> Self {
        self.config.subset_size = Some(size);
        self
    }

    /// This client's index among the fleet's clients (0, 1, 2, ...), so that
    /// subsets tile the endpoints evenly (see [`PoolConfig::subset_index`]).
    /// Default: none (a random choice).
    pub fn subset_index(mut self, index: u64) -> Self {
        self.config.subset_index = Some(index);
        self
    }

    /// How long one connection attempt may take. Default: 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// How long the pool must have had a spare connection before closing it.
    /// Default: 60 s.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// The age at which a connection is drained and replaced. Default: none.
    pub fn max_connection_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.max_connection_lifetime = Some(lifetime);
        self
    }

    /// How long a call may wait for a free stream. Default: 5 s.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.config.acquire_timeout = timeout;
        self
    }

    /// How many calls may wait for a stream at once. Default: 1,024.
    pub fn max_waiters(mut self, max: usize) -> Self {
        self.config.max_waiters = max;
        self
    }

    /// Sends HTTP/2 PINGs every `interval` (tonic's name); a connection
    /// whose PING goes unanswered for `keep_alive_timeout` is replaced.
    /// Default: off.
    pub fn http2_keep_alive_interval(mut self, interval: Duration) -> Self {
        self.config.http2_keep_alive_interval = Some(interval);
        self
    }

    /// How long a keepalive PING may go unanswered (tonic's name).
    /// Default: 20 s.
    pub fn keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.config.keep_alive_timeout = timeout;
        self
    }

    /// Whether PINGs go out while no call is in flight (tonic's name).
    /// Default: false.
    pub fn keep_alive_while_idle(mut self, enabled: bool) -> Self {
        self.config.keep_alive_while_idle = enabled;
        self
    }

    /// Caps the streams per connection below the server's limit. Default:
    /// the server's limit.
    pub fn max_streams_per_connection(mut self, max: usize) -> Self {
        self.config.max_streams_per_connection = Some(max);
        self
    }

    /// The largest response message a call takes, in bytes (tonic's name):
    /// above it the call fails with `RESOURCE_EXHAUSTED` at the message's
    /// length prefix. A generated client's `max_decoding_message_size`
    /// takes its place for that client's calls. Default: 4 MiB (tonic's).
    pub fn max_decoding_message_size(mut self, limit: usize) -> Self {
        self.config.max_decoding_message_size = limit;
        self
    }

    /// The retry policy of methods their proto declares idempotent, unless
    /// the service config names them (see
    /// [`PoolConfig::idempotent_retry_policy`]); `None` turns it off.
    /// Default: 3 attempts, backoff from 0.1 s doubling up to 1 s, on
    /// `UNAVAILABLE`.
    pub fn idempotent_retry_policy(mut self, policy: Option<RetryPolicy>) -> Self {
        self.config.idempotent_retry_policy = policy;
        self
    }

    /// How reconnection attempts are spaced. Default: [`Backoff::default`].
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.config.backoff = backoff;
        self
    }

    /// HTTP/2 initial stream window size, in bytes (tonic's name).
    /// Default: hyper's, 2 MiB.
    pub fn initial_stream_window_size(mut self, size: u32) -> Self {
        self.config.initial_stream_window_size = Some(size);
        self
    }

    /// HTTP/2 initial connection window size, in bytes (tonic's name).
    /// Default: hyper's, 5 MiB.
    pub fn initial_connection_window_size(mut self, size: u32) -> Self {
        self.config.initial_connection_window_size = Some(size);
        self
    }

    /// Lets HTTP/2 windows follow the measured bandwidth-delay product
    /// (tonic's name). Default: false.
    pub fn http2_adaptive_window(mut self, enabled: bool) -> Self {
        self.config.http2_adaptive_window = enabled;
        self
    }

    /// The largest header list accepted from a server, in bytes (tonic's
    /// name). Default: hyper's, 16 KiB.
    pub fn http2_max_header_list_size(mut self, size: u32) -> Self {
        self.config.http2_max_header_list_size = Some(size);
        self
    }

    /// The header compression table a server's HPACK encoder may use
    /// (tonic's `http2_header_table_size`, sent as
    /// `SETTINGS_HEADER_TABLE_SIZE`), in bytes. Default: none sent
    /// (HTTP/2's 4,096).
    pub fn http2_header_table_size(mut self, size: u32) -> Self {
        self.config.http2_header_table_size = Some(size);
        self
    }

    /// The largest frame payload accepted (tonic's `max_frame_size`, sent
    /// as `SETTINGS_MAX_FRAME_SIZE`), from 16,384 to 16,777,215 bytes.
    /// Default: hyper's, 16 KiB.
    pub fn max_frame_size(mut self, size: u32) -> Self {
        self.config.max_frame_size = Some(size);
        self
    }

    /// How many reset streams are remembered, their late frames ignored
    /// (tonic's `http2_max_concurrent_reset_streams`). Default: h2's, 50.
    pub fn http2_max_concurrent_reset_streams(mut self, max: usize) -> Self {
        self.config.http2_max_concurrent_reset_streams = Some(max);
        self
    }

    /// How long a reset stream is remembered (tonic's
    /// `http2_reset_stream_duration`). Default: h2's, 1 s.
    pub fn http2_reset_stream_duration(mut self, duration: Duration) -> Self {
        self.config.http2_reset_stream_duration = Some(duration);
        self
    }

    /// How many streams may be reset for a server's errors before the
    /// connection closes with `GOAWAY(ENHANCE_YOUR_CALM)` (tonic's
    /// `http2_max_local_error_reset_streams`); `None` sets no limit, for
    /// trusted servers only. Default: hyper's, 1,024.
    pub fn http2_max_local_error_reset_streams(mut self, max: impl Into<Option<usize>>) -> Self {
        self.config.http2_max_local_error_reset_streams = Some(max.into());
        self
    }

    /// Checks each connection's server with the standard `grpc.health.v1`
    /// protocol every `interval`, for `service` (`""` for the whole server);
    /// see [`HealthCheck`] for what a failed check does. Default: off.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let pool = pooled_client::Pool::builder()
    ///     .endpoint("http://127.0.0.1:50051")
    ///     .health_check("helloworld.Greeter", Duration::from_secs(5))
    ///     .build()
    ///     .expect("valid settings");
    /// ```
    pub fn health_check(mut self, service: impl Into<String>, interval: Duration) -> Self {
        self.config.health_check = Some(HealthCheck::new(service, interval));
        self
    }

    /// Feeds the pool endpoints from a discovery source: a stream of tower's
    /// [`Change`]s, keyed by whatever the source uses to name an endpoint,
    /// such as a Kubernetes pod name or a Consul service ID. `Insert` adds an
    /// endpoint (replacing the one inserted before under the same key),
    /// `Remove` drains it. An `Err` from the stream is logged and the
    /// endpoints stay as they are; the source may end, and its endpoints
    /// stay. With a discovery source, the pool needs no fixed endpoint:
    /// calls wait (up to `acquire_timeout`) for the first.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use pooled_client::discovery::Change;
    ///
    /// let changes = futures_util::stream::iter([
    ///     Ok::<_, Infallible>(Change::Insert("pod-a", "http://10.0.0.1:50051")),
    ///     Ok(Change::Insert("pod-b", "http://10.0.0.2:50051")),
    ///     Ok(Change::Remove("pod-a")),
    /// ]);
    /// let pool = pooled_client::Pool::builder()
    ///     .discovery(changes)
    ///     .build()
    ///     .expect("valid settings");
    /// ```
    pub fn discovery<S, K, V, E>(mut self, changes: S) -> Self
    where
        S: futures_util::Stream<Item = Result<Change<K, V>, E>> + Send + 'static,
        K: std::hash::Hash + Eq + Send + 'static,
        V: Into<Target>,
        E: Into<crate::error::BoxError>,
    {
        self.discoveries.push(discover::start(changes));
        self
    }

    /// Lets an xDS control plane steer the pool (feature `xds`): `target`
    /// is `xds:///name`, and the endpoints are those of the cluster that
    /// the listener `name` routes to ([`PoolConfig::xds`]; see
    /// [`crate::xds`]). The control plane is the one
    /// [`xds_bootstrap`](Self::xds_bootstrap) gives, else the one the
    /// environment's bootstrap names (gRPC A27).
    ///
    /// ```
    /// use pooled_client::xds::Bootstrap;
    ///
    /// let pool = pooled_client::Pool::builder()
    ///     .xds("xds:///greeter")
    ///     .xds_bootstrap(Bootstrap::new("127.0.0.1:18000"))
    ///     .build()
    ///     .expect("valid settings");
    /// # drop(pool);
    /// ```
    ///
    /// `build` fails when endpoints, `dns` or a discovery source are set
    /// too: an xDS pool's endpoints are the control plane's alone.
    #[cfg(feature = "xds")]
    pub fn xds(mut self, target: impl Into<String>) -> Self {
        self.config.xds = Some(target.into());
        self
    }

    /// The bootstrap of an xDS pool (feature `xds`), in place of the
    /// environment's (`GRPC_XDS_BOOTSTRAP`, `GRPC_XDS_BOOTSTRAP_CONFIG`).
    #[cfg(feature = "xds")]
    pub fn xds_bootstrap(mut self, bootstrap: crate::xds::Bootstrap) -> Self {
        self.xds_bootstrap = Some(bootstrap);
        self
    }

    /// Finds the endpoints by resolving `dns`'s name every
    /// `refresh_interval` (feature `dns`; [`PoolConfig::dns`], as a
    /// configuration file's `[dns]` sets it), in addition to any endpoint
    /// and discovery given. Default: none.
    ///
    /// ```no_run
    /// use pooled_client::dns::DnsConfig;
    ///
    /// let pool = pooled_client::Pool::builder()
    ///     .dns(DnsConfig::new("http://greeter.internal:50051"))
    ///     .build()
    ///     .expect("valid settings");
    /// ```
    #[cfg(feature = "dns")]
    pub fn dns(mut self, dns: crate::config::DnsConfig) -> Self {
        self.config.dns = Some(dns);
        self
    }

    /// Takes endpoints that fail more than the others out of the pick for
    /// a while (gRPC A50; see [`OutlierDetection`]). Default: off.
    pub fn outlier_detection(mut self, detection: OutlierDetection) -> Self {
        self.config.outlier_detection = Some(detection);
        self
    }

    /// Runs `interceptor` (tonic's [`Interceptor`](tonic::service::Interceptor),
    /// such as a closure taking and returning a `tonic::Request<()>`) on
    /// every call through the pool, plain tonic clients' included, and
    /// after any client's own; an error ends the call with that status. A second
    /// call replaces the first. Calls on many threads run it at once, each
    /// a clone of it (see [`SharedInterceptor`]). Default: none.
    pub fn interceptor(
        mut self,
        interceptor: impl tonic::service::Interceptor + Clone + Send + Sync + 'static,
    ) -> Self {
        self.interceptor = Some(SharedInterceptor::new(interceptor));
        self
    }

    /// Opens every connection's byte stream with `connector`, as tonic's
    /// `Endpoint::connect_with_connector`: a `tower::Service` that takes
    /// the endpoint's URI (with the address to connect to as its authority
    /// when a [`Target`] names one) and returns any
    /// `AsyncRead + AsyncWrite` stream. Use it for proxies, custom name
    /// resolution, or tests that run a server in memory with no port.
    /// HTTP/2 and, for `https` endpoints, TLS run on top of the stream;
    /// `local_address`, `tcp_nodelay` and `tcp_keepalive` are then the
    /// connector's business. `unix:` endpoints connect to their socket
    /// without it. A second call replaces the first. Default: none (TCP).
    ///
    /// ```no_run
    /// use tokio::net::UnixStream;
    ///
    /// // Every endpoint's calls go through one Unix socket.
    /// let connector = tower::service_fn(|_uri: http::Uri| UnixStream::connect("/run/app.sock"));
    /// let pool = pooled_client::Pool::builder()
    ///     .endpoint("http://app.internal")
    ///     .connector(connector)
    ///     .build()
    ///     .expect("valid settings");
    /// # let _ = pool;
    /// ```
    pub fn connector<C>(mut self, connector: C) -> Self
    where
        C: tower_service::Service<http::Uri> + Clone + Send + Sync + 'static,
        C::Response: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
        C::Error: Into<crate::error::BoxError>,
        C::Future: Send + 'static,
    {
        self.connector = Some(Connector::new(connector));
        self
    }

    /// Whether connections set TCP_NODELAY, as tonic's `tcp_nodelay`.
    /// Default: true.
    pub fn tcp_nodelay(mut self, enabled: bool) -> Self {
        self.config.tcp_nodelay = enabled;
        self
    }

    /// Whether connections send the ACK of what they read after 1 ms when
    /// no write carried it (TCP_QUICKACK, Linux only), so that a server
    /// with Nagle's algorithm on never waits 40 ms for a delayed ACK.
    /// Default: true.
    pub fn tcp_quickack(mut self, enabled: bool) -> Self {
        self.config.tcp_quickack = enabled;
        self
    }

    /// TCP keepalive probes after `idle` without traffic, as tonic's
    /// `tcp_keepalive`. Default: none.
    pub fn tcp_keepalive(mut self, idle: Option<Duration>) -> Self {
        self.config.tcp_keepalive = idle;
        self
    }

    /// Time between unanswered TCP keepalive probes (tonic's
    /// `tcp_keepalive_interval`), with `tcp_keepalive`. Default: the
    /// system's.
    pub fn tcp_keepalive_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.tcp_keepalive_interval = interval;
        self
    }

    /// Unanswered TCP keepalive probes before the connection counts as dead
    /// (tonic's `tcp_keepalive_retries`), with `tcp_keepalive`. Default:
    /// the system's.
    pub fn tcp_keepalive_retries(mut self, retries: Option<u32>) -> Self {
        self.config.tcp_keepalive_retries = retries;
        self
    }

    /// Makes connections from `address`, as tonic's `local_address`.
    /// Default: none (the system's choice).
    pub fn local_address(mut self, address: Option<std::net::IpAddr>) -> Self {
        self.config.local_address = address;
        self
    }

    /// The `user-agent` of calls that set none, followed by this crate's
    /// token (`my-app/1.0 pooled-client/0.1.0`), as tonic's `user_agent`.
    /// Default: `pooled-client/0.1.0` alone.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.config.user_agent = Some(user_agent.into());
        self
    }

    /// A default deadline for every call that has none of its own (from
    /// its client, its request, or its method's `timeout` in the service
    /// config): the pool's twin of tonic's `Endpoint::timeout`. Default:
    /// none.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = Some(timeout);
        self
    }

    /// Applies gRPC's service config (see [`ServiceConfig`]): per-method
    /// timeouts, wait-for-ready, retries, hedging and message limits, found
    /// by each call's path, so they apply to plain tonic clients over the
    /// pool as well as to generated ones. Default: empty.
    pub fn service_config(mut self, config: ServiceConfig) -> Self {
        self.config.service_config = config;
        self
    }

    /// Sends the authority of `origin` (such as `http://greeter.internal`)
    /// as the `:authority` (HTTP/2's Host) of every call instead of each
    /// endpoint's host and port, as tonic's `origin`. Default: none.
    pub fn origin(mut self, origin: http::Uri) -> Self {
        let written = match (origin.scheme_str(), origin.authority()) {
            (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
            _ => origin.to_string(),
        };
        self.config.origin = Some(written);
        self
    }

    /// TLS settings for `https://` endpoints: roots to trust, a client
    /// certificate, the server name. Default: the bundled Mozilla roots.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::config::TlsConfig) -> Self {
        self.config.tls = Some(tls);
        self
    }

    /// TLS settings for `https://` endpoints whose servers' certificates
    /// `verifier` checks in place of rustls' verification against roots
    /// (tonic's `tls_config_with_verifier`; rustls 0.23's
    /// `ServerCertVerifier`, feature `tls`): for private PKIs, pinned
    /// certificates, SPIFFE identities. The verifier decides what is
    /// trusted, so `tls` must name no roots: `ca_certificates_pem` or
    /// `webpki_roots` set is an [`Error::InvalidSetting`] at
    /// [`build`](Self::build). SNI (`server_name`) and the client identity
    /// still apply. Only use it if you know rustls' verifier contract.
    /// Default: none (rustls verifies against the roots).
    #[cfg(feature = "tls")]
    pub fn tls_with_verifier(
        mut self,
        tls: crate::config::TlsConfig,
        verifier: std::sync::Arc<dyn rustls::client::danger::ServerCertVerifier>,
    ) -> Self {
        self.config.tls = Some(tls);
        self.verifier = Some(verifier);
        self
    }

    /// The settings as they stand.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Checks every setting and builds the pool. No I/O happens in this
    /// call: the minimum connections (`min_connections`, and
    /// `min_connections_per_endpoint` for each endpoint) open in the background as soon as the pool is built inside a tokio runtime, or else at its first call or `ready()`; more open as calls need them.
    ///
    /// # Errors
    ///
    /// [`Error::NoEndpoint`], [`Error::InvalidUri`], [`Error::InvalidEndpoint`]
    /// or [`Error::UnsupportedScheme`] for the endpoints, and
    /// [`Error::InvalidSetting`] naming the first setting out of range.
    pub fn build(self) -> Result<Pool, Error> {
        let mut discoveries = self.discoveries;
        #[cfg(feature = "xds")]
        let steering = match &self.config.xds {
            Some(target) => {
                refuse_beside_xds(&self.config, !discoveries.is_empty())?;
                let (discovery, steering) = crate::xds::steering(target, self.xds_bootstrap)?;
                discoveries.push(discovery);
                Some(steering)
            }
            None => None,
        };
        discoveries.extend(configured_discoveries(&self.config)?);
        #[cfg(feature = "tls")]
        let verifier = self.verifier;
        #[cfg(not(feature = "tls"))]
        let verifier = None;
        let Checked { endpoints, tls } = validate(&self.config, !discoveries.is_empty(), verifier)?;
        let dial = Dial {
            tls,
            connector: self.connector,
        };
        #[allow(unused_mut)] // mutated with feature `xds` only
        let mut inner = Inner::new(self.config, endpoints, dial, discoveries, self.interceptor);
        #[cfg(feature = "xds")]
        if let Some(steering) = steering {
            inner.telemetry.xds = Some(steering.board);
        }
        Ok(Pool::from_inner(inner))
    }
}

/// The discovery sources the settings themselves name (`dns`).
fn configured_discoveries(config: &PoolConfig) -> Result<Vec<Start>, Error> {
    #[cfg(feature = "dns")]
    if let Some(dns) = &config.dns {
        return Ok(vec![discover::start(dns.discovery()?.into_stream())]);
    }
    let _ = config;
    Ok(Vec::new())
}

/// An xDS pool's endpoints are the control plane's alone: refuses any
/// other source beside it.
#[cfg(feature = "xds")]
fn refuse_beside_xds(config: &PoolConfig, discovery: bool) -> Result<(), Error> {
    let refuse = |other: &str| Error::InvalidSetting {
        name: "xds",
        value: format!("{:?}", config.xds.as_deref().unwrap_or_default()),
        reason: format!(
            "an xDS pool takes its endpoints from the control plane alone; remove {other}"
        )
        .into(),
    };
    if !config.endpoints.is_empty() {
        return Err(refuse(&format!("the endpoints {:?}", config.endpoints)));
    }
    #[cfg(feature = "dns")]
    if config.dns.is_some() {
        return Err(refuse("`dns`"));
    }
    if discovery {
        return Err(refuse("the `discovery(...)` source"));
    }
    if config.outlier_detection.is_some() {
        return Err(Error::InvalidSetting {
            name: "outlier_detection",
            value: "Some(..)".to_owned(),
            reason: "an xDS pool's outlier detection is its cluster's (gRPC A50): set it on the \
                     cluster, or remove it here"
                .into(),
        });
    }
    Ok(())
}

/// A custom certificate verifier: rustls' with feature `tls`, none without.
#[cfg(feature = "tls")]
type Verifier = crate::conn::Verifier;
#[cfg(not(feature = "tls"))]
type Verifier = std::convert::Infallible;

/// Settings checked and turned into what the pool works with.
#[derive(Debug)]
struct Checked {
    endpoints: Vec<Endpoint>,
    tls: Option<Tls>,
}

/// Checks the settings and parses the endpoints; `discovered` says whether
/// a discovery source will supply endpoints.
fn validate(
    config: &PoolConfig,
    discovered: bool,
    verifier: Option<Verifier>,
) -> Result<Checked, Error> {
    if config.endpoints.is_empty() && !discovered {
        return Err(Error::NoEndpoint);
    }
    let endpoints = config
        .endpoints
        .iter()
        .map(|uri| endpoint_for(&Target::from(uri.as_str()), config))
        .collect::<Result<Vec<_>, _>>()?;
    #[cfg(feature = "tls")]
    let tls = Some(Tls::new(&config.tls.clone().unwrap_or_default(), verifier)?);
    #[cfg(not(feature = "tls"))]
    let tls = {
        let _: Option<Verifier> = verifier;
        None
    };
    config.check()?;
    Ok(Checked { endpoints, tls })
}
