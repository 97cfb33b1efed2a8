//! The pool's background work: driving connections, retrying failed
//! endpoints, and resizing for age and idleness.

use std::cmp::Reverse;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;

use crate::config::PoolConfig;
use crate::connection::Connection;
use crate::connector::Driver;
use crate::pool::Shared;
use crate::rotation::Retirement;
use crate::wire::{Link, State};

/// Drives one connection's request dispatch until it ends, then takes the
/// connection out of rotation if it is still in it (GOAWAY takes it out
/// earlier, from the read path).
pub(crate) async fn drive(driver: Driver, link: Arc<Link>, shared: Weak<Shared>, id: u64) {
    let result = driver.await;
    link.advance(State::Closed);
    let Some(shared) = shared.upgrade() else {
        return;
    };
    if shared.retire(id, Retirement::Broken) {
        match result {
            Ok(()) => tracing::info!(connection = id, "connection closed by the server"),
            Err(error) => tracing::warn!(connection = id, %error, "connection failed"),
        }
    }
}

/// Tries a failed endpoint again once its backoff has passed.
pub(crate) async fn retry_at(shared: Weak<Shared>, at: Instant) {
    tokio::time::sleep_until(at.into()).await;
    if let Some(shared) = shared.upgrade() {
        shared.grow(0);
    }
}

/// Checks ages and load periodically for as long as the pool exists.
pub(crate) async fn run(shared: Weak<Shared>) {
    let Some(period) = shared.upgrade().map(|s| tick_period(&s.config)) else {
        return;
    };
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut window = LoadWindow::new(Instant::now());
    loop {
        interval.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.is_closed() {
            return;
        }
        maintain(&shared, &mut window, Instant::now());
    }
}

/// Often enough to see an idle period or a lifetime end within an eighth
/// of it, and at least once a second.
fn tick_period(config: &PoolConfig) -> Duration {
    let shortest = config
        .max_connection_lifetime
        .map_or(config.idle_timeout, |lifetime| {
            lifetime.min(config.idle_timeout)
        });
    (shortest / 8).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// The peak load seen since the window started.
#[derive(Debug)]
struct LoadWindow {
    started: Instant,
    peak_in_flight: usize,
    saw_waiting: bool,
}

impl LoadWindow {
    fn new(started: Instant) -> Self {
        Self {
            started,
            peak_in_flight: 0,
            saw_waiting: false,
        }
    }
}

fn maintain(shared: &Arc<Shared>, window: &mut LoadWindow, now: Instant) {
    let rotation = shared.rotation.load_full();
    let mut ready = rotation.len();
    for connection in rotation.iter() {
        if connection.expires_at.is_none_or(|at| at > now) {
            continue;
        }
        // Make before break: an old connection goes once enough others are
        // ready to keep the minimum, unless the pool cannot grow anyway.
        let cannot_grow = ready + shared.connecting() >= shared.config.max_connections;
        if ready > shared.config.min_connections.max(1) || cannot_grow {
            shared.retire(connection.id, Retirement::Expired);
            ready -= 1;
        } else {
            shared.grow(1);
        }
    }

    window.peak_in_flight = window
        .peak_in_flight
        .max(rotation.iter().map(|c| c.in_flight()).sum());
    window.saw_waiting |= shared.waiters.len() > 0;

    // Shrink by at most one connection per idle period, and only when the
    // period's peak would have fit in the others with a quarter to spare:
    // without such hysteresis the size flaps (tower#456).
    if now.duration_since(window.started) >= shared.config.idle_timeout {
        if !window.saw_waiting && rotation.len() > shared.config.min_connections {
            // The least busy, then from the endpoint with the most
            // connections (so that shrinking keeps the spread), then the
            // youngest.
            let per_endpoint = |c: &Arc<Connection>| {
                rotation
                    .iter()
                    .filter(|other| Arc::ptr_eq(&other.endpoint, &c.endpoint))
                    .count()
            };
            let victim = rotation.iter().min_by_key(|c| {
                (
                    c.in_flight(),
                    Reverse(per_endpoint(c)),
                    Reverse(c.opened_at),
                )
            });
            if let Some(victim) = victim {
                let total: usize = rotation.iter().map(|c| c.capacity()).sum();
                let rest = total.saturating_sub(victim.capacity());
                if window.peak_in_flight.saturating_mul(5) / 4 < rest {
                    shared.retire(victim.id, Retirement::Idle);
                }
            }
        }
        shared.affinity.prune(now, shared.config.idle_timeout);
        *window = LoadWindow::new(now);
    }

    shared.rebalance(now);
    shared.grow(0);
    shared.publish_metrics();
}
