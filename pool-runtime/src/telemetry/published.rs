//! Publishing the pool's state through the `metrics` crate's facade
//! (feature `metrics`; without it, `off.rs` stands in).
//!
//! Gauges and counters mirror [`PoolStats`]: they are published whenever a
//! connection opens, fails or leaves, and at every maintenance tick (at
//! least once a second), so the hot path pays nothing for them. Every
//! metric carries the label `pool`, the pool's [`name`](crate::PoolConfig::name).
//!
//! The `pooled_client_endpoint_*` series mirror [`EndpointStats`] and carry
//! the label `endpoint` as well. Their cardinality is bounded by the
//! endpoints the pool connects to (`subset_size` bounds it for a large
//! fleet); the pool-wide series, and the wait histogram, stay unlabelled by
//! endpoint. A recorder keeps the last values of an endpoint that has left:
//! the `metrics` facade cannot remove a series.
//!
//! The same state also goes out under the names of gRPC A94, labelled
//! `grpc.target` (the pool's name), so that dashboards built for grpc-go
//! or grpc-java work unchanged: `grpc.subchannel.connection_attempts_succeeded`
//! and `_failed`, `grpc.subchannel.open_connections` (open and draining),
//! and `grpc.subchannel.disconnections`, counted as connections leave,
//! labelled `grpc.disconnect_error` (`unknown` for a connection that broke
//! or was told GOAWAY, `subchannel shutdown` for one the pool closed).
//! A66's per-call metrics are in `instruments.rs`, their clocks in `clock.rs`.

use std::time::Duration;

use super::stats::{EndpointStats, PoolStats};

/// A metric: its name, its help text, and where its value comes from.
type Metric<S, T> = (&'static str, &'static str, fn(&S) -> T);

/// Gauges: the pool's state now.
const GAUGES: [Metric<PoolStats, usize>; 7] = [
    (
        "pooled_client_connections",
        "connections open and taking calls",
        |s| s.connections,
    ),
    (
        "pooled_client_draining",
        "connections finishing their calls before they close",
        |s| s.draining,
    ),
    (
        "pooled_client_connecting",
        "connection attempts under way",
        |s| s.connecting,
    ),
    (
        "pooled_client_in_flight",
        "streams held by calls in flight",
        |s| s.in_flight,
    ),
    (
        "pooled_client_waiting",
        "calls waiting for a free stream",
        |s| s.waiting,
    ),
    (
        "pooled_client_capacity",
        "the sum of the stream limits of the open connections",
        |s| s.capacity,
    ),
    ("pooled_client_endpoints", "endpoints in the pool", |s| {
        s.endpoints
    }),
];

/// Counters: what the pool has done since it was built.
const COUNTERS: [Metric<PoolStats, u64>; 11] = [
    ("pooled_client_connects_total", "connections opened", |s| {
        s.connects_total
    }),
    (
        "pooled_client_connect_failures_total",
        "connection attempts that failed",
        |s| s.connect_failures_total,
    ),
    (
        "pooled_client_evictions_total",
        "connections taken out of rotation because they broke or their endpoint left",
        |s| s.evictions_total,
    ),
    (
        "pooled_client_idle_closes_total",
        "connections closed because the load no longer needed them",
        |s| s.idle_closes_total,
    ),
    (
        "pooled_client_expired_total",
        "connections replaced at max_connection_lifetime",
        |s| s.expired_total,
    ),
    (
        "pooled_client_unhealthy_total",
        "connections taken out of rotation by a failed health check",
        |s| s.unhealthy_total,
    ),
    (
        "pooled_client_retries_total",
        "attempts sent again under a method's retry policy",
        |s| s.retries_total,
    ),
    (
        "pooled_client_transparent_retries_total",
        "requests the server never processed, sent again",
        |s| s.transparent_retries_total,
    ),
    (
        "pooled_client_retries_throttled_total",
        "retries held back by the service config's retryThrottling",
        |s| s.retries_throttled_total,
    ),
    (
        "pooled_client_hedges_total",
        "copies of hedged calls sent beyond the first",
        |s| s.hedges_total,
    ),
    (
        "pooled_client_rejected_total",
        "calls refused with RESOURCE_EXHAUSTED (queue full or acquire_timeout)",
        |s| s.rejected_total,
    ),
];

/// Gauges per endpoint, labelled `endpoint`.
const ENDPOINT_GAUGES: [Metric<EndpointStats, f64>; 4] = [
    (
        "pooled_client_endpoint_connections",
        "the endpoint's connections taking calls",
        |s| s.connections as f64,
    ),
    (
        "pooled_client_endpoint_in_flight",
        "streams held on the endpoint's connections",
        |s| s.in_flight as f64,
    ),
    (
        "pooled_client_endpoint_ejected",
        "1 while outlier detection keeps the endpoint out of the pick",
        |s| f64::from(u8::from(s.ejected)),
    ),
    (
        "pooled_client_endpoint_latency_seconds",
        "the endpoint's latency estimate, which weighs its load in the pick",
        |s| s.latency.as_secs_f64(),
    ),
];

/// Counters per endpoint, labelled `endpoint`.
const ENDPOINT_COUNTERS: [Metric<EndpointStats, u64>; 2] = [
    (
        "pooled_client_endpoint_calls_total",
        "calls the endpoint carried (counted when the pool has several endpoints)",
        |s| s.calls,
    ),
    (
        "pooled_client_endpoint_failures_total",
        "calls the endpoint carried that failed with UNAVAILABLE, INTERNAL, UNKNOWN or DEADLINE_EXCEEDED",
        |s| s.failures,
    ),
];

/// gRPC A94's names of the connection counters, and where they come from.
const A94_COUNTERS: [Metric<PoolStats, u64>; 2] = [
    (
        "grpc.subchannel.connection_attempts_succeeded",
        "connection attempts that succeeded (gRPC A94)",
        |s| s.connects_total,
    ),
    (
        "grpc.subchannel.connection_attempts_failed",
        "connection attempts that failed (gRPC A94)",
        |s| s.connect_failures_total,
    ),
];
const A94_OPEN_CONNECTIONS: &str = "grpc.subchannel.open_connections";
const A94_DISCONNECTIONS: &str = "grpc.subchannel.disconnections";

/// The histogram of how long calls that queued waited for a stream.
const WAIT_SECONDS: &str = "pooled_client_wait_seconds";

/// Describes every metric to the installed recorder, once per pool.
pub(crate) fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    for (name, help, _) in GAUGES {
        describe_gauge!(name, Unit::Count, help);
    }
    for (name, help, _) in COUNTERS {
        describe_counter!(name, Unit::Count, help);
    }
    for (name, help, _) in ENDPOINT_GAUGES {
        let unit = if name.ends_with("_seconds") {
            Unit::Seconds
        } else {
            Unit::Count
        };
        describe_gauge!(name, unit, help);
    }
    for (name, help, _) in ENDPOINT_COUNTERS {
        describe_counter!(name, Unit::Count, help);
    }
    for (name, help, _) in A94_COUNTERS {
        describe_counter!(name, Unit::Count, help);
    }
    describe_gauge!(
        A94_OPEN_CONNECTIONS,
        Unit::Count,
        "connections open, draining ones included (gRPC A94)"
    );
    describe_counter!(
        A94_DISCONNECTIONS,
        Unit::Count,
        "connections that closed or broke (gRPC A94)"
    );
    for (name, help) in [
        (CALL_RETRIES, "retries a call made (gRPC A96)"),
        (
            CALL_TRANSPARENT_RETRIES,
            "transparent retries a call made (gRPC A96)",
        ),
        (CALL_HEDGES, "hedges a call sent (gRPC A96)"),
    ] {
        describe_histogram!(name, Unit::Count, help);
    }
    describe_histogram!(
        CALL_RETRY_DELAY,
        Unit::Seconds,
        "time a call spent waiting between attempts (gRPC A96)"
    );
    describe_histogram!(
        WAIT_SECONDS,
        Unit::Seconds,
        "how long calls that found no free stream waited for one"
    );
}

/// Publishes a snapshot of the pool's state and of each endpoint's.
pub(crate) fn publish(pool: &str, stats: &PoolStats, endpoints: &[EndpointStats]) {
    for (name, _, value) in GAUGES {
        metrics::gauge!(name, "pool" => pool.to_owned()).set(value(stats) as f64);
    }
    for (name, _, value) in COUNTERS {
        metrics::counter!(name, "pool" => pool.to_owned()).absolute(value(stats));
    }
    for (name, _, value) in A94_COUNTERS {
        metrics::counter!(name, "grpc.target" => pool.to_owned()).absolute(value(stats));
    }
    metrics::gauge!(A94_OPEN_CONNECTIONS, "grpc.target" => pool.to_owned())
        .set((stats.connections + stats.draining) as f64);
    for endpoint in endpoints {
        let labels = [
            ("pool", pool.to_owned()),
            ("endpoint", endpoint.target.to_string()),
        ];
        for (name, _, value) in ENDPOINT_GAUGES {
            metrics::gauge!(name, &labels).set(value(endpoint));
        }
        for (name, _, value) in ENDPOINT_COUNTERS {
            metrics::counter!(name, &labels).absolute(value(endpoint));
        }
    }
}

/// gRPC A96's per-call histograms, labelled `grpc.target` as every gRPC
/// series is (the pool's name): how many retries,
/// transparent retries and hedges a call made (not recorded when none),
/// and how long it waited between attempts, in seconds.
const CALL_RETRIES: &str = "grpc.client.call.retries";
const CALL_TRANSPARENT_RETRIES: &str = "grpc.client.call.transparent_retries";
const CALL_HEDGES: &str = "grpc.client.call.hedges";
const CALL_RETRY_DELAY: &str = "grpc.client.call.retry_delay";

/// Records, at a call's end, the retries it made (gRPC A96).
pub(crate) fn record_call_retries(pool: &str, retries: u32, transparent: u32, delay: Duration) {
    let label = || ("grpc.target", pool.to_owned());
    if retries > 0 {
        metrics::histogram!(CALL_RETRIES, &[label()]).record(f64::from(retries));
        metrics::histogram!(CALL_RETRY_DELAY, &[label()]).record(delay.as_secs_f64());
    }
    if transparent > 0 {
        metrics::histogram!(CALL_TRANSPARENT_RETRIES, &[label()]).record(f64::from(transparent));
    }
}

/// Records, at a hedged call's end, the copies it sent beyond the first.
pub(crate) fn record_call_hedges(pool: &str, hedges: u32) {
    if hedges > 0 {
        metrics::histogram!(CALL_HEDGES, "grpc.target" => pool.to_owned())
            .record(f64::from(hedges));
    }
}

/// Counts a connection that left the pool (gRPC A94): `broke` when it
/// failed or the server sent GOAWAY, not when the pool closed it.
pub(crate) fn record_disconnection(pool: &str, broke: bool) {
    let error = if broke {
        "unknown"
    } else {
        "subchannel shutdown"
    };
    metrics::counter!(
        A94_DISCONNECTIONS,
        "grpc.target" => pool.to_owned(),
        "grpc.disconnect_error" => error
    )
    .increment(1);
}

/// Records how long a call waited for a stream.
pub(crate) fn record_wait(pool: &str, waited: Duration) {
    metrics::histogram!(WAIT_SECONDS, "pool" => pool.to_owned()).record(waited.as_secs_f64());
}
