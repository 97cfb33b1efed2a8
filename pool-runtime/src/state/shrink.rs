//! Closing a connection the load no longer needs, with hysteresis: at most
//! one per idle period, and only when the period's peak would have fit in
//! the others with a quarter to spare (without it the size flaps, tower#456).

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Instant;

use super::{Inner, Retirement};
use crate::conn::Connection;

/// The peak load seen since the window started.
#[derive(Debug)]
pub(super) struct LoadWindow {
    started: Instant,
    peak_in_flight: usize,
    saw_waiting: bool,
}

impl LoadWindow {
    pub(super) fn new(started: Instant) -> Self {
        Self {
            started,
            peak_in_flight: 0,
            saw_waiting: false,
        }
    }
}

impl Inner {
    /// Records the load; at the end of each idle period, closes one
    /// connection if the period's peak did not need it.
    pub(super) fn shrink_if_idle(self: &Arc<Self>, window: &mut LoadWindow, now: Instant) {
        let rotation = self.fleet.rotation.load_full();
        window.peak_in_flight = window
            .peak_in_flight
            .max(rotation.iter().map(|c| c.in_flight()).sum());
        window.saw_waiting |= self.waiters.len() > 0;
        if now.duration_since(window.started) < self.config.idle_timeout {
            return;
        }
        if !window.saw_waiting
            && rotation.len() > self.config.min_connections
            && let Some(victim) = idle_victim(&rotation, self.config.min_connections_per_endpoint)
        {
            let total: usize = rotation.iter().map(|c| c.capacity()).sum();
            let rest = total.saturating_sub(victim.capacity());
            if window.peak_in_flight.saturating_mul(5) / 4 < rest {
                self.retire(victim.id, Retirement::Idle);
            }
        }
        self.affinity.prune(now, self.config.idle_timeout);
        *window = LoadWindow::new(now);
    }
}

/// The connection to close: the least busy, then from the endpoint with the
/// most connections (so that shrinking keeps the spread), then the youngest;
/// never one that would leave its endpoint below `floor`.
fn idle_victim(rotation: &[Arc<Connection>], floor: usize) -> Option<&Arc<Connection>> {
    let per_endpoint = |c: &Arc<Connection>| {
        rotation
            .iter()
            .filter(|other| Arc::ptr_eq(&other.endpoint, &c.endpoint))
            .count()
    };
    rotation
        .iter()
        .filter(|c| per_endpoint(c) > floor)
        .min_by_key(|c| {
            (
                c.in_flight(),
                Reverse(per_endpoint(c)),
                Reverse(c.opened_at),
            )
        })
}
