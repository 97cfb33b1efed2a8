//! How a call waits when no stream is free: it joins the fair queue, the
//! pool grows if it may, and the call gets a slot, an outage status, or
//! `RESOURCE_EXHAUSTED` past `acquire_timeout`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tonic::Status;

use super::queue::Waiters;
use super::{Inner, Slot, metrics};

impl Inner {
    /// Joins the wait queue, growing the pool if it may.
    pub(super) async fn acquire_slow(self: &Arc<Self>) -> Result<Slot, Status> {
        self.start();
        let Some(ticket) = self.waiters.enqueue(self.config.max_waiters) else {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(Status::resource_exhausted(format!(
                "no stream is free and {} calls already wait for one (max_waiters); {}",
                self.config.max_waiters,
                self.describe()
            )));
        };
        let mut place = Place {
            waiters: &self.waiters,
            id: ticket.id,
            served: false,
        };
        self.serve_waiters();
        self.grow(0);
        if self.nothing_reachable() {
            return Err(self.unavailable_status());
        }
        let timeout = self.config.acquire_timeout;
        let queued_at = Instant::now();
        match tokio::time::timeout(timeout, ticket.grant).await {
            Ok(Ok(grant)) => {
                place.served = true;
                metrics::record_wait(&self.config.name, queued_at.elapsed());
                grant
            }
            Ok(Err(_)) => {
                place.served = true;
                Err(Status::unavailable(
                    "the pool was dropped while the call waited",
                ))
            }
            // Nothing to connect to is an outage, not overload.
            Err(_) if self.endpoints.load().is_empty() => Err(Status::unavailable(format!(
                "the pool has no endpoints and none was discovered within {timeout:?} (acquire_timeout)"
            ))),
            Err(_) => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                metrics::record_wait(&self.config.name, queued_at.elapsed());
                Err(Status::resource_exhausted(format!(
                    "no stream became free within {timeout:?} (acquire_timeout); {}",
                    self.describe()
                )))
            }
        }
    }

    /// Hands free slots to waiting calls, first come first served.
    pub(super) fn serve_waiters(self: &Arc<Self>) {
        self.waiters.serve(|| self.pick());
    }
}

/// A call's place in the wait queue; leaving without a grant gives it up.
struct Place<'a> {
    waiters: &'a Waiters<Slot>,
    id: u64,
    served: bool,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if !self.served {
            self.waiters.remove(self.id);
        }
    }
}
