//! Which connection a call takes: the lock-free pick of the least-loaded
//! ready connection, and the stream slot the call then holds.

use std::sync::Arc;

use tonic::Status;

use super::Inner;
use super::outage::closed_status;
use crate::conn::Connection;

impl Inner {
    /// Takes a stream slot for a call, waiting in line if none is free
    /// (calls with an affinity key take [`acquire_for`](Self::acquire_for)).
    #[inline]
    pub(crate) async fn acquire(self: &Arc<Self>) -> Result<Slot, Status> {
        if self.is_closed() {
            return Err(closed_status());
        }
        // Callers already in line go first.
        if self.waiters.len() == 0
            && let Some(slot) = self.pick()
        {
            return Ok(slot);
        }
        // Boxed so that every call's future stays small: only calls that
        // wait carry the queue's and the timer's state.
        Box::pin(self.acquire_slow()).await
    }

    /// Reserves a slot on the least-loaded ready connection.
    #[inline]
    pub(crate) fn pick(self: &Arc<Self>) -> Option<Slot> {
        let rotation = self.rotation.load();
        let connection = reserve_least_loaded(&rotation)?;
        Some(Slot::new(connection.clone(), self.clone()))
    }

    /// Called after a slot is given back: the first waiting call takes it.
    #[inline]
    fn on_release(self: &Arc<Self>) {
        if self.waiters.len() > 0 {
            self.serve_waiters();
        }
        if self.is_closed() {
            self.notify();
        }
    }
}

/// Picks the ready connection with the fewest streams in flight and reserves
/// a slot on it in the same step, so that concurrent picks spread instead of
/// all landing on the connection that looked emptiest (grpc-gcp-java #234).
///
/// Ties go to the older connection. Returns `None` when every connection is
/// at its limit.
#[inline]
fn reserve_least_loaded(connections: &[Arc<Connection>]) -> Option<&Arc<Connection>> {
    // A lost race for the chosen slot means another caller took it; look
    // again, but a bounded number of times: the caller then queues.
    for _ in 0..4 {
        let mut best: Option<(&Arc<Connection>, usize)> = None;
        for connection in connections {
            let load = connection.in_flight();
            if load < connection.capacity()
                && connection.link.is_ready()
                && best.is_none_or(|(_, best_load)| load < best_load)
            {
                best = Some((connection, load));
            }
        }
        let (connection, _) = best?;
        if connection.try_reserve() {
            return Some(connection);
        }
    }
    None
}

/// One stream slot held on a connection; dropping it gives the slot back and
/// hands it to the first waiting call, so a cancelled call never leaks a count.
#[derive(Debug)]
pub(crate) struct Slot {
    connection: Arc<Connection>,
    inner: Arc<Inner>,
}

impl Slot {
    /// Wraps a slot already reserved on `connection`.
    pub(super) fn new(connection: Arc<Connection>, inner: Arc<Inner>) -> Self {
        Self { connection, inner }
    }

    /// The connection the slot is on.
    pub(crate) fn connection(&self) -> &Arc<Connection> {
        &self.connection
    }

    /// Takes `connection` out of the rotation: a call saw it break.
    pub(crate) fn retire_connection(&self) {
        self.inner
            .retire(self.connection.id, super::Retirement::Broken);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connection.release();
        self.inner.on_release();
    }
}
