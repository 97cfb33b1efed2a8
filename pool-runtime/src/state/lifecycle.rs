//! Starting the background work, waiting until the pool can take calls,
//! and closing it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Inner, maintain, outage, outlier};
use crate::conn::State;
use crate::error::Error;
use crate::lock::lock;
use crate::telemetry as metrics;

impl Inner {
    /// Starts the background work (minimum connections, idle and age
    /// checks, discovery) once, from inside a runtime.
    pub(crate) fn start(self: &Arc<Self>) {
        if self.lifecycle.started.swap(true, Ordering::AcqRel) {
            return;
        }
        metrics::describe();
        tokio::spawn(maintain::run(Arc::downgrade(self)));
        if let Some(settings) = &self.config.outlier_detection {
            tokio::spawn(outlier::run(Arc::downgrade(self), settings.clone(), None));
        }
        let discoveries = std::mem::take(&mut *lock(&self.lifecycle.discoveries));
        for start in discoveries {
            tokio::spawn(start.run(Arc::downgrade(self), self.events()));
        }
        self.grow(0);
    }

    /// Waits until at least one connection is open (see [`Pool::ready`](crate::Pool::ready)).
    pub(crate) async fn ready(self: &Arc<Self>) -> Result<(), Error> {
        self.start();
        let mut events = self.events();
        loop {
            if self.is_closed() {
                return Err(Error::Closed);
            }
            if !self.fleet.rotation.load().is_empty() {
                return Ok(());
            }
            self.grow(1);
            if self.nothing_reachable() {
                return Err(self.connect_error());
            }
            if events.changed().await.is_err() {
                return Err(Error::Closed);
            }
        }
    }

    /// Refuses new calls, fails waiting ones, waits for calls in flight,
    /// then drains every connection (see [`Pool::close`](crate::Pool::close)).
    pub(crate) async fn close(&self) {
        if !self.lifecycle.closed.swap(true, Ordering::AcqRel) {
            self.mark_closed();
            tracing::info!(pool = %self.config.name, "pool closing");
            self.waiters.fail_all(&outage::closed_status(), false);
            self.notify();
        }
        let mut events = self.events();
        while self.in_flight() > 0 {
            if events.changed().await.is_err() {
                break;
            }
        }
        for subchannel in self.fleet.subchannels.load().iter() {
            subchannel.connections.store(Arc::new(Vec::new()));
        }
        let connections = self.fleet.rotation.swap(Arc::new(Vec::new()));
        for connection in connections.iter() {
            connection.link.advance(State::Draining);
            crate::telemetry::record_disconnection(&self.config.name, false);
        }
        drop(connections);
        tracing::info!(pool = %self.config.name, "pool closed");
    }
}
