//! Choosing a connection for a call and holding its stream slot.

use std::sync::Arc;

use crate::call::CallEnd;
use crate::connection::Connection;
use crate::pool::Shared;

/// Picks the ready connection with the fewest streams in flight and reserves
/// a slot on it in the same step, so that concurrent picks spread instead of
/// all landing on the connection that looked emptiest (grpc-gcp-java #234).
///
/// Ties go to the older connection. Returns `None` when every connection is
/// at its limit.
#[inline]
pub(crate) fn reserve_least_loaded(connections: &[Arc<Connection>]) -> Option<&Arc<Connection>> {
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
pub(crate) struct StreamGuard {
    connection: Arc<Connection>,
    shared: Arc<Shared>,
    /// Ended when the slot is given back, so the request body stops too.
    call: Option<Arc<CallEnd>>,
}

impl StreamGuard {
    /// Wraps a slot already reserved on `connection`.
    pub(crate) fn new(connection: Arc<Connection>, shared: Arc<Shared>) -> Self {
        Self {
            connection,
            shared,
            call: None,
        }
    }

    /// Ends `call` when this slot is given back.
    pub(crate) fn bind(&mut self, call: Arc<CallEnd>) {
        self.call = Some(call);
    }

    /// Gives the slot back without ending the call (it is sent again elsewhere).
    pub(crate) fn release_for_retry(mut self) {
        self.call = None;
    }

    /// The connection the slot is on.
    pub(crate) fn connection(&self) -> &Arc<Connection> {
        &self.connection
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.end();
        }
        self.connection.release();
        self.shared.on_release();
    }
}
