//! Health checking each connection on an interval with the standard
//! `grpc.health.v1` protocol; a failed check takes its endpoint out.

use std::sync::Weak;

use super::{Inner, Slot};
use crate::config::HealthCheck;
use crate::conn::{Connection, probe};

/// Checks `connection`'s server every interval while the connection takes
/// calls; a failed check takes its endpoint out of the rotation.
pub(crate) async fn watch(pool: Weak<Inner>, connection: Weak<Connection>, settings: HealthCheck) {
    let mut interval = tokio::time::interval(settings.interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate, and the connection was checked just now.
    interval.tick().await;
    loop {
        interval.tick().await;
        let (Some(inner), Some(connection)) = (pool.upgrade(), connection.upgrade()) else {
            return;
        };
        if !connection.link.is_ready() || inner.is_closed() {
            return;
        }
        // The check takes a stream slot like a call; when none is free the
        // calls in flight show whether the connection works.
        if !connection.try_reserve() {
            continue;
        }
        let slot = Slot::new(connection.clone(), inner.clone());
        let result = probe(
            connection.sender().clone(),
            connection.link.clone(),
            connection.endpoint.clone(),
            &settings,
        )
        .await;
        drop(slot);
        if let Err(error) = result
            && connection.link.is_ready()
        {
            inner.endpoint_unhealthy(&connection.endpoint, Box::new(error));
            return;
        }
    }
}
