//! A connection leaving the rotation: it takes no new calls, its calls in
//! flight finish, and it closes once the last is gone.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Inner;
use super::list::take_from;
use crate::conn::State;

/// Why a connection leaves the rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retirement {
    /// It failed or the server sent GOAWAY.
    Broken,
    /// The load no longer needs it.
    Idle,
    /// It reached its lifetime.
    Expired,
    /// Its endpoint failed a health check.
    Unhealthy,
    /// Its endpoint left the pool.
    Removed,
    /// It moved to an endpoint that had no connection.
    Rebalanced,
}

impl Inner {
    /// Takes connection `id` out of rotation; returns whether it was in it.
    pub(crate) fn retire(self: &Arc<Self>, id: u64, why: Retirement) -> bool {
        let removed = {
            let _live = self.live();
            let Some(removed) = take_from(&self.fleet.rotation, |c| c.id == id) else {
                return false;
            };
            if let Some(subchannel) = self.subchannel_of(&removed.endpoint) {
                take_from(&subchannel.connections, |c| c.id == id);
            }
            removed
        };
        removed.link.advance(State::Draining);
        let counter = match why {
            Retirement::Broken | Retirement::Removed => &self.telemetry.counters.evictions,
            Retirement::Idle | Retirement::Rebalanced => &self.telemetry.counters.idle_closes,
            Retirement::Expired => &self.telemetry.counters.expired,
            Retirement::Unhealthy => &self.telemetry.counters.unhealthy,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        crate::telemetry::record_disconnection(&self.config.name, why == Retirement::Broken);
        tracing::debug!(
            endpoint = %removed.endpoint.key,
            connection = id,
            reason = ?why,
            in_flight = removed.in_flight(),
            "connection left the rotation"
        );
        drop(removed);
        self.notify();
        if matches!(why, Retirement::Broken | Retirement::Expired) {
            self.grow(0);
        }
        true
    }
}
