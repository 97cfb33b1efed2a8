//! The pool's background work: driving connections, retrying failed
//! endpoints, and the periodic tick (lifetimes, shrinking, rebalancing).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;

use super::shrink::LoadWindow;
use super::{Inner, Retirement};
use crate::config::PoolConfig;
use crate::conn::{Driver, Link, State};

/// Drives one connection's request dispatch until it ends, then takes the
/// connection out of rotation if it is still in it (GOAWAY takes it out
/// earlier, from the read path).
pub(super) async fn drive(driver: Driver, link: Arc<Link>, pool: Weak<Inner>, id: u64) {
    let result = driver.run().await;
    link.advance(State::Closed);
    let Some(inner) = pool.upgrade() else {
        return;
    };
    if inner.retire(id, Retirement::Broken) {
        match result {
            Ok(()) => tracing::info!(connection = id, "connection closed by the server"),
            Err(error) => tracing::warn!(connection = id, %error, "connection failed"),
        }
    }
}

/// Tries a failed endpoint again once its backoff has passed.
pub(super) async fn retry_at(pool: Weak<Inner>, at: Instant) {
    tokio::time::sleep_until(at.into()).await;
    if let Some(inner) = pool.upgrade() {
        // The endpoint's backoff ended: its state changed.
        inner.notify();
        inner.grow(0);
    }
}

/// Tells the pool's watchers at `at` that a state that ends by itself
/// (an ejection) has ended.
pub(super) async fn notify_at(pool: Weak<Inner>, at: Instant) {
    tokio::time::sleep_until(at.into()).await;
    if let Some(inner) = pool.upgrade() {
        inner.notify();
    }
}

/// Ticks for as long as the pool exists and is open.
pub(super) async fn run(pool: Weak<Inner>) {
    let Some(period) = pool.upgrade().map(|inner| tick_period(&inner.config)) else {
        return;
    };
    let mut window = LoadWindow::new(Instant::now());
    every(pool, period, move |inner, now| inner.tick(&mut window, now)).await;
}

/// Calls `work` now and then every `period`, for as long as the pool exists
/// and is open.
pub(super) async fn every(
    pool: Weak<Inner>,
    period: Duration,
    mut work: impl FnMut(&Arc<Inner>, Instant),
) {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(inner) = pool.upgrade() else {
            return;
        };
        if inner.is_closed() {
            return;
        }
        work(&inner, Instant::now());
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

impl Inner {
    /// One maintenance tick.
    fn tick(self: &Arc<Self>, window: &mut LoadWindow, now: Instant) {
        self.replace_expired(now);
        self.shrink_if_idle(window, now);
        self.rebalance(now);
        for subchannel in self.fleet.subchannels.load().iter() {
            subchannel.fade(now);
        }
        self.grow(0);
        self.publish_metrics(true);
    }

    /// Drains connections past their lifetime, made before broken: an old
    /// connection goes once enough others are ready to keep the minimum,
    /// unless the pool cannot grow anyway.
    fn replace_expired(self: &Arc<Self>, now: Instant) {
        let rotation = self.fleet.rotation.load_full();
        let mut ready = rotation.len();
        for connection in rotation.iter() {
            if connection.expires_at.is_none_or(|at| at > now) {
                continue;
            }
            let cannot_grow = ready + self.connecting() >= self.config.max_connections;
            if ready > self.config.min_connections.max(1) || cannot_grow {
                self.retire(connection.id, Retirement::Expired);
                ready -= 1;
            } else {
                self.grow(1);
            }
        }
    }
}
