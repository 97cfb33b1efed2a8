//! What the pool holds and has done, as a [`PoolStats`] snapshot, a line
//! for messages, and the `metrics` facade.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use std::time::Instant;

use super::subchannel::Subchannel;
use super::{Inner, Member};
use crate::conn::Connection;
use crate::telemetry as metrics;
use crate::telemetry::stats::{EndpointInfo, EndpointState, EndpointStats, PoolStats};

/// How `endpoint` stands; `subchannel` is its place in the subset, if it
/// has one.
fn state_of(endpoint: &Member, subchannel: Option<&Subchannel>, now: Instant) -> EndpointState {
    let Some(subchannel) = subchannel else {
        return EndpointState::Standby;
    };
    if subchannel.is_ejected(now) {
        return EndpointState::Ejected;
    }
    if !subchannel.connections.load().is_empty() {
        return EndpointState::Ready;
    }
    match endpoint.connecting_unless_backing_off(now) {
        Some(true) => EndpointState::Connecting,
        None => EndpointState::BackingOff,
        Some(false) if endpoint.is_failing() => EndpointState::BackingOff,
        Some(false) => EndpointState::Idle,
    }
}

impl Inner {
    /// Streams held over every live connection, draining ones included.
    pub(super) fn in_flight(&self) -> usize {
        self.live()
            .iter()
            .filter_map(Weak::upgrade)
            .map(|c| c.in_flight())
            .sum()
    }

    /// The pool's state in one line, for messages.
    pub(super) fn describe(&self) -> String {
        let stats = self.stats();
        format!(
            "pool state: {} endpoints, {} connections (max_connections {}), {} connecting, {} of {} streams in flight, {} calls waiting",
            self.fleet.endpoints.load().len(),
            stats.connections,
            self.config.max_connections,
            stats.connecting,
            stats.in_flight,
            stats.capacity,
            stats.waiting
        )
    }

    /// A snapshot of the pool's state and counters.
    pub(crate) fn stats(&self) -> PoolStats {
        let rotation = self.fleet.rotation.load();
        let live: Vec<Arc<Connection>> = self.live().iter().filter_map(Weak::upgrade).collect();
        let draining = live
            .iter()
            .filter(|c| !rotation.iter().any(|r| r.id == c.id))
            .count();
        let counters = &self.telemetry.counters;
        PoolStats {
            connections: rotation.len(),
            draining,
            connecting: self.connecting(),
            in_flight: live.iter().map(|c| c.in_flight()).sum(),
            waiting: self.waiters.len(),
            capacity: rotation.iter().map(|c| c.capacity()).sum(),
            connects_total: counters.connects.load(Ordering::Relaxed),
            connect_failures_total: counters.connect_failures.load(Ordering::Relaxed),
            evictions_total: counters.evictions.load(Ordering::Relaxed),
            idle_closes_total: counters.idle_closes.load(Ordering::Relaxed),
            expired_total: counters.expired.load(Ordering::Relaxed),
            unhealthy_total: counters.unhealthy.load(Ordering::Relaxed),
            rejected_total: counters.rejected.load(Ordering::Relaxed),
            affinity_keys: self.affinity.len(),
            retries_total: counters.retries.load(Ordering::Relaxed),
            transparent_retries_total: counters.transparent_retries.load(Ordering::Relaxed),
            retries_throttled_total: counters.retries_throttled.load(Ordering::Relaxed),
            hedges_total: counters.hedges.load(Ordering::Relaxed),
            endpoints: self.fleet.endpoints.load().len(),
        }
    }

    /// Each endpoint as it was added, where it connects, and its state.
    pub(crate) fn endpoint_infos(&self) -> Vec<EndpointInfo> {
        self.endpoints_with_states()
            .into_iter()
            .map(|(endpoint, state)| EndpointInfo {
                target: endpoint.target.clone(),
                connects_to: endpoint.address.to_string(),
                state,
            })
            .collect()
    }

    /// Each endpoint's state, by the address it was added with (those
    /// added by URI alone are left out): what xDS's priority failover
    /// reads at every change, without the strings of
    /// [`endpoint_infos`](Self::endpoint_infos).
    #[cfg(feature = "xds")]
    pub(crate) fn endpoint_states(
        &self,
    ) -> std::collections::HashMap<std::net::SocketAddr, EndpointState> {
        self.endpoints_with_states()
            .into_iter()
            .filter_map(|(endpoint, state)| Some((endpoint.target.address()?, state)))
            .collect()
    }

    /// Each endpoint and its state, its subchannel found by pointer, so
    /// that a pool of thousands of endpoints does not search the list for
    /// each.
    fn endpoints_with_states(&self) -> Vec<(Arc<super::Member>, EndpointState)> {
        let now = Instant::now();
        let subchannels = self.fleet.subchannels.load();
        let by_endpoint: std::collections::HashMap<*const super::Member, &Arc<super::Subchannel>> =
            subchannels
                .iter()
                .map(|s| (Arc::as_ptr(&s.endpoint), s))
                .collect();
        self.fleet
            .endpoints
            .load()
            .iter()
            .map(|endpoint| {
                let subchannel = by_endpoint.get(&Arc::as_ptr(endpoint)).map(|s| &***s);
                (Arc::clone(endpoint), state_of(endpoint, subchannel, now))
            })
            .collect()
    }

    /// What each endpoint holds and has done.
    pub(crate) fn endpoint_stats(&self) -> Vec<EndpointStats> {
        self.fleet
            .subchannels
            .load()
            .iter()
            .map(|s| s.stats())
            .collect()
    }

    /// Records the retries a call made (gRPC A96's histograms, feature
    /// `metrics`).
    pub(crate) fn record_call_retries(
        &self,
        retries: u32,
        transparent: u32,
        waited: std::time::Duration,
    ) {
        metrics::record_call_retries(&self.config.name, retries, transparent, waited);
    }

    /// Records the hedges a call sent (gRPC A96, feature `metrics`).
    pub(crate) fn record_call_hedges(&self, hedges: u32) {
        metrics::record_call_hedges(&self.config.name, hedges);
    }

    /// Publishes the pool's state to the `metrics` facade (feature
    /// `metrics`), each endpoint's too with `endpoints`: the pool's at
    /// every change, each endpoint's at the maintenance tick, so that a
    /// change costs a look at the pool, not at its thousands of endpoints.
    pub(super) fn publish_metrics(&self, endpoints: bool) {
        if cfg!(feature = "metrics") {
            let endpoints = if endpoints {
                self.endpoint_stats()
            } else {
                Vec::new()
            };
            metrics::publish(&self.config.name, &self.stats(), &endpoints);
        }
    }
}
