//! The pool's settings as plain data, with their defaults.

use std::time::Duration;

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
///     keepalive = { interval = "30s", timeout = "10s" }
///     health_check = { service = "helloworld.Greeter", interval = "5s" }
/// "#).expect("valid TOML");
/// assert_eq!(config.acquire_timeout, std::time::Duration::from_secs(2));
/// let pool = pooled_client::Pool::from_config(config).expect("valid settings");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct PoolConfig {
    /// The pool's name, in logs and as the `pool` label of its metrics.
    ///
    /// Default: `"default"`.
    pub name: String,
    /// The servers to connect to, such as `http://127.0.0.1:50051`.
    ///
    /// Default: none; at least one is required.
    pub endpoints: Vec<String>,
    /// Connections the pool keeps open even when idle; they are opened in the
    /// background once the pool is first used.
    ///
    /// Default: 1.
    pub min_connections: usize,
    /// The most connections the pool opens, over all endpoints.
    ///
    /// Default: 8.
    pub max_connections: usize,
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
    /// its stream limit and the pool cannot grow.
    ///
    /// Default: 5 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub acquire_timeout: Duration,
    /// How many calls may wait for a stream at once; more fail at once with
    /// `RESOURCE_EXHAUSTED`.
    ///
    /// Default: 1,024.
    pub max_waiters: usize,
    /// HTTP/2 keepalive PINGs: a connection whose PING is not answered within
    /// the timeout is closed and replaced.
    ///
    /// Default: none (no PINGs, as in gRPC; some servers reject frequent PINGs).
    pub keepalive: Option<Keepalive>,
    /// An upper bound on the streams the pool opens on one connection, below
    /// what the server advertises.
    ///
    /// Default: none (the server's `SETTINGS_MAX_CONCURRENT_STREAMS`, or 100
    /// when it advertises no limit).
    pub max_streams_per_connection: Option<usize>,
    /// How many times a call that failed with `UNAVAILABLE` after it left
    /// the client (its connection was reset or lost) is sent again, on
    /// another connection. Only for services whose methods are idempotent:
    /// the server may have run the first attempt. Only requests of up to
    /// 64 KiB are resent, and only failures before the response began.
    /// Requests that never left the client, or that the server refused
    /// unprocessed, are retried once whatever this says.
    ///
    /// Default: 0.
    #[cfg_attr(feature = "serde", serde(alias = "retry_idempotent"))]
    pub idempotent_retries: u32,
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
    /// (this overrides the two window sizes).
    ///
    /// Default: false.
    pub adaptive_window: bool,
    /// Health checking with the standard `grpc.health.v1` protocol: a new
    /// connection joins the rotation only once its server answers
    /// `SERVING`, and an endpoint whose check fails leaves the rotation
    /// until it answers `SERVING` again.
    ///
    /// Default: none.
    pub health_check: Option<HealthCheck>,
    /// The `:authority` (HTTP/2's Host) of every call, instead of each
    /// endpoint's host and port: for servers or proxies that route by name
    /// while the pool connects by address.
    ///
    /// Default: none (the endpoint's host and port).
    pub authority: Option<String>,
    /// TLS settings for `https://` endpoints (feature `tls`).
    ///
    /// Default: none (`https://` endpoints trust the bundled Mozilla roots).
    #[cfg(feature = "tls")]
    pub tls: Option<crate::tls::TlsConfig>,
    /// A host name to resolve on an interval, each address an endpoint
    /// (feature `dns`), in addition to `endpoints`: the configuration-file
    /// form of [`DnsDiscovery`](crate::dns::DnsDiscovery).
    ///
    /// Default: none.
    #[cfg(feature = "dns")]
    pub dns: Option<crate::dns::DnsConfig>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            name: "default".to_owned(),
            endpoints: Vec::new(),
            min_connections: 1,
            max_connections: 8,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_connection_lifetime: None,
            acquire_timeout: Duration::from_secs(5),
            max_waiters: 1024,
            keepalive: None,
            max_streams_per_connection: None,
            idempotent_retries: 0,
            backoff: Backoff::default(),
            initial_stream_window_size: None,
            initial_connection_window_size: None,
            adaptive_window: false,
            health_check: None,
            authority: None,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "dns")]
            dns: None,
        }
    }
}

/// HTTP/2 keepalive settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
#[non_exhaustive]
pub struct Keepalive {
    /// Time between PINGs.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub interval: Duration,
    /// How long to wait for a PING's acknowledgement before the connection
    /// is considered dead.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub timeout: Duration,
    /// Whether PINGs are sent while no call is in flight, so that a dead idle
    /// connection is found before a call is sent on it.
    ///
    /// Default: true.
    #[cfg_attr(feature = "serde", serde(default = "yes"))]
    pub while_idle: bool,
}

#[cfg(feature = "serde")]
fn yes() -> bool {
    true
}

impl Keepalive {
    /// Keepalive with the given interval and timeout, pinging while idle.
    pub fn new(interval: Duration, timeout: Duration) -> Self {
        Self {
            interval,
            timeout,
            while_idle: true,
        }
    }
}

/// Exponential backoff with jitter between connection attempts to an
/// endpoint whose previous attempt failed.
///
/// The first reconnection after a working connection breaks is immediate;
/// after `n` failures in a row the next attempt waits
/// `min(initial * multiplier^(n-1), max)`, randomly spread by `± jitter`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct Backoff {
    /// Delay after the first failure. Default: 1 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub initial: Duration,
    /// Growth factor per further failure. Default: 1.6.
    pub multiplier: f64,
    /// Relative spread, between 0 and 1. Default: 0.2.
    pub jitter: f64,
    /// The longest delay. Default: 5 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub max: Duration,
}

impl Eq for Backoff {}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            multiplier: 1.6,
            jitter: 0.2,
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// A backoff with the given delays, multiplier and jitter.
    pub fn new(initial: Duration, multiplier: f64, jitter: f64, max: Duration) -> Self {
        Self {
            initial,
            multiplier,
            jitter,
            max,
        }
    }

    /// The delay before the next attempt after `failures` failures in a row
    /// (at least 1), before jitter.
    pub fn base_delay(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(64) as i32;
        let secs = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        Duration::from_secs_f64(secs.min(self.max.as_secs_f64()))
    }

    /// The delay before the next attempt after `failures` failures in a row,
    /// spread by a random factor in `1 ± jitter` drawn from `unit` in `[0, 1)`.
    pub fn delay(&self, failures: u32, unit: f64) -> Duration {
        let spread = 1.0 + self.jitter * (2.0 * unit - 1.0);
        self.base_delay(failures).mul_f64(spread.max(0.0))
    }
}

/// Health checking settings: which service to ask about, and how often.
///
/// Each connection sends `grpc.health.v1.Health/Check` for `service` once
/// per `interval` (skipped while every stream of the connection is taken:
/// the calls in flight show whether it works). An answer other than
/// `SERVING`, an error or no answer within `timeout` takes every connection
/// to that endpoint out of the rotation; the pool then reconnects with its
/// backoff, and a new connection joins only once the server answers
/// `SERVING`. A server that does not implement the health service
/// (`UNIMPLEMENTED`) counts as serving, as in gRPC's own health checking.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(from = "HealthCheckFields"))]
#[non_exhaustive]
pub struct HealthCheck {
    /// The service name to check; the empty string asks about the server
    /// as a whole.
    pub service: String,
    /// Time between checks on one connection.
    pub interval: Duration,
    /// How long to wait for an answer. Default: the interval, at most 5 s.
    pub timeout: Duration,
}

impl HealthCheck {
    /// Checks `service` every `interval`, waiting up to the interval (at
    /// most 5 s) for each answer.
    pub fn new(service: impl Into<String>, interval: Duration) -> Self {
        Self {
            service: service.into(),
            interval,
            timeout: interval.min(Duration::from_secs(5)),
        }
    }

    /// Sets how long to wait for each answer.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// A health check as written in a file: the timeout may be left out.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthCheckFields {
    #[serde(default)]
    service: String,
    #[serde(with = "humantime_serde")]
    interval: Duration,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
}

#[cfg(feature = "serde")]
impl From<HealthCheckFields> for HealthCheck {
    fn from(fields: HealthCheckFields) -> Self {
        let check = HealthCheck::new(fields.service, fields.interval);
        match fields.timeout {
            Some(timeout) => check.timeout(timeout),
            None => check,
        }
    }
}
