//! Publishing the pool's state through the `metrics` crate's facade
//! (feature `metrics`); without the feature these functions do nothing.
//!
//! Gauges and counters mirror [`PoolStats`]: they are published whenever a
//! connection opens, fails or leaves, and at every maintenance tick (at
//! least once a second), so the hot path pays nothing for them. Every
//! metric carries the label `pool`, the pool's [`name`](crate::PoolConfig::name).

use std::time::Duration;

use crate::stats::PoolStats;

/// Gauges: the pool's state now.
#[cfg(feature = "metrics")]
pub(crate) const GAUGES: [&str; 7] = [
    "pooled_client_connections",
    "pooled_client_draining",
    "pooled_client_connecting",
    "pooled_client_in_flight",
    "pooled_client_waiting",
    "pooled_client_capacity",
    "pooled_client_endpoints",
];

/// Counters: what the pool has done since it was built.
#[cfg(feature = "metrics")]
pub(crate) const COUNTERS: [&str; 7] = [
    "pooled_client_connects_total",
    "pooled_client_connect_failures_total",
    "pooled_client_evictions_total",
    "pooled_client_idle_closes_total",
    "pooled_client_expired_total",
    "pooled_client_unhealthy_total",
    "pooled_client_rejected_total",
];

/// The histogram of how long calls that queued waited for a stream.
#[cfg(feature = "metrics")]
pub(crate) const WAIT_SECONDS: &str = "pooled_client_wait_seconds";

/// Describes every metric to the installed recorder, once per pool.
pub(crate) fn describe() {
    #[cfg(feature = "metrics")]
    {
        use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
        let gauges = [
            "connections open and taking calls",
            "connections finishing their calls before they close",
            "connection attempts under way",
            "streams held by calls in flight",
            "calls waiting for a free stream",
            "the sum of the stream limits of the open connections",
            "endpoints in the pool",
        ];
        for (name, help) in GAUGES.into_iter().zip(gauges) {
            describe_gauge!(name, Unit::Count, help);
        }
        let counters = [
            "connections opened",
            "connection attempts that failed",
            "connections taken out of rotation because they broke or their endpoint left",
            "connections closed because the load no longer needed them",
            "connections replaced at max_connection_lifetime",
            "connections taken out of rotation by a failed health check",
            "calls refused with RESOURCE_EXHAUSTED (queue full or acquire_timeout)",
        ];
        for (name, help) in COUNTERS.into_iter().zip(counters) {
            describe_counter!(name, Unit::Count, help);
        }
        describe_histogram!(
            WAIT_SECONDS,
            Unit::Seconds,
            "how long calls that found no free stream waited for one"
        );
    }
}

/// Publishes a snapshot of the pool's state.
pub(crate) fn publish(pool: &str, stats: &PoolStats) {
    #[cfg(feature = "metrics")]
    {
        let gauges = [
            stats.connections,
            stats.draining,
            stats.connecting,
            stats.in_flight,
            stats.waiting,
            stats.capacity,
            stats.endpoints,
        ];
        for (name, value) in GAUGES.into_iter().zip(gauges) {
            metrics::gauge!(name, "pool" => pool.to_owned()).set(value as f64);
        }
        let counters = [
            stats.connects_total,
            stats.connect_failures_total,
            stats.evictions_total,
            stats.idle_closes_total,
            stats.expired_total,
            stats.unhealthy_total,
            stats.rejected_total,
        ];
        for (name, value) in COUNTERS.into_iter().zip(counters) {
            metrics::counter!(name, "pool" => pool.to_owned()).absolute(value);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (pool, stats);
}

/// Records how long a call waited for a stream.
pub(crate) fn record_wait(pool: &str, waited: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(WAIT_SECONDS, "pool" => pool.to_owned()).record(waited.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (pool, waited);
}
