//! A snapshot of what the pool is doing.

use crate::discovery::Target;

/// What a [`Pool`](crate::Pool) holds and has done, from
/// [`Pool::stats`](crate::Pool::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Connections open and taking new calls.
    pub connections: usize,
    /// Connections taking no new calls while their calls finish (GOAWAY,
    /// age, idleness or shutdown).
    pub draining: usize,
    /// Connection attempts under way.
    pub connecting: usize,
    /// Streams held right now, over all connections.
    pub in_flight: usize,
    /// Calls queued for a stream.
    pub waiting: usize,
    /// The sum of the stream limits of the connections taking calls.
    pub capacity: usize,
    /// Connections opened since the pool was built.
    pub connects_total: u64,
    /// Connection attempts that failed.
    pub connect_failures_total: u64,
    /// Connections taken out of rotation because they broke (an error,
    /// a GOAWAY from the server, or a missed keepalive) or their endpoint
    /// was removed.
    pub evictions_total: u64,
    /// Connections closed by the pool because the load no longer needed them.
    pub idle_closes_total: u64,
    /// Connections replaced because they reached `max_connection_lifetime`.
    pub expired_total: u64,
    /// Connections taken out of rotation because their endpoint failed a
    /// health check.
    pub unhealthy_total: u64,
    /// Endpoints in the pool.
    pub endpoints: usize,
    /// Calls refused with `RESOURCE_EXHAUSTED`: the wait queue was full, or
    /// no stream became free within `acquire_timeout`.
    pub rejected_total: u64,
    /// Affinity keys bound to a connection.
    pub affinity_keys: usize,
    /// Attempts sent again under a method's retry policy (the service
    /// config's, or `idempotent_retry_policy`).
    pub retries_total: u64,
    /// Requests the server never processed, sent again (gRPC's transparent
    /// retry).
    pub transparent_retries_total: u64,
    /// Retries the service config's `retryThrottling` held back.
    pub retries_throttled_total: u64,
    /// Copies of hedged calls sent beyond the first (gRPC A6 hedging).
    pub hedges_total: u64,
}

/// What one endpoint of a [`Pool`](crate::Pool) holds and has done, from
/// [`Pool::endpoint_stats`](crate::Pool::endpoint_stats).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// The endpoint, as it was added (and as
    /// [`Pool::endpoints`](crate::Pool::endpoints) names it).
    pub target: Target,
    /// Its connections taking calls.
    pub connections: usize,
    /// Streams held on those connections right now.
    pub in_flight: usize,
    /// Calls it has carried since it joined, while the pool had endpoints to
    /// choose between (a pool of one endpoint does not count them).
    pub calls: u64,
    /// Of those calls, the ones that failed as a server's trouble makes calls
    /// fail (`UNAVAILABLE`, `INTERNAL`, `UNKNOWN`, `DEADLINE_EXCEEDED`).
    pub failures: u64,
    /// Whether outlier detection has taken it out of the pick for now.
    pub ejected: bool,
    /// Its latency estimate (the time from pick to the end of the
    /// response: the fastest of its first ten calls, then a moving average
    /// that fades back towards zero while it takes no calls), which weighs
    /// its load when calls choose an endpoint; zero until ten calls were
    /// measured.
    pub latency: std::time::Duration,
}

/// One endpoint of a [`Pool`](crate::Pool), from
/// [`Pool::endpoints`](crate::Pool::endpoints): what it was added as,
/// where its connections go, and how it stands.
///
/// ```no_run
/// # fn demo(pool: &pooled_client::Pool) {
/// use pooled_client::EndpointState;
///
/// for endpoint in pool.endpoints() {
///     if endpoint.state == EndpointState::BackingOff {
///         // Give it back as it came: the URI, and its address if any.
///         pool.remove_endpoint(endpoint.target.clone());
///     }
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointInfo {
    /// The endpoint as it was added: its URI, and the address to connect
    /// to when one was given. [`Pool::remove_endpoint`](crate::Pool::remove_endpoint)
    /// takes it back.
    pub target: Target,
    /// Where its connections go: `host:port` (the given address, or the
    /// URI's host and port, resolved at each attempt), or a `unix:`
    /// endpoint's socket path.
    pub connects_to: String,
    /// How it stands right now.
    pub state: EndpointState,
}

impl EndpointInfo {
    /// The URI it was added with, such as `http://10.0.0.1:50051`.
    pub fn uri(&self) -> &str {
        self.target.uri()
    }
}

/// How an endpoint stands, in [`EndpointInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndpointState {
    /// It has connections taking calls.
    Ready,
    /// A connection attempt is under way and none is up yet.
    Connecting,
    /// Its last connection attempt or health check failed; the next
    /// attempt waits out the backoff.
    BackingOff,
    /// Outlier detection has taken it out of the pick for now.
    Ejected,
    /// No connection and none under way: the pool has not needed one yet
    /// (before the first call, outside a runtime).
    Idle,
    /// In the pool but outside the subset this pool connects to
    /// (`subset_size`); it takes no calls until the subset changes.
    Standby,
}

/// What the pool's discovery sources (a stream given to
/// [`PoolBuilder::discovery`](crate::PoolBuilder::discovery), DNS, etcd)
/// have reported, from [`Pool::discovery_stats`](crate::Pool::discovery_stats).
/// A failing source never empties the pool: its endpoints stay until it
/// says otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiscoveryStats {
    /// Endpoints added or removed by the sources.
    pub changes_total: u64,
    /// When the last of those changes came.
    pub last_change_at: Option<std::time::SystemTime>,
    /// Errors the sources reported (a lookup or a watch that failed, a
    /// value that is not an endpoint).
    pub errors_total: u64,
    /// The last error, and when it came.
    pub last_error: Option<(std::time::SystemTime, String)>,
}
