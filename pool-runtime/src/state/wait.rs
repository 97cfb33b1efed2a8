//! How a call waits when no stream is free: it joins the fair queue, the
//! pool grows if it may, and the call gets a slot, an outage status, or
//! `RESOURCE_EXHAUSTED` past `acquire_timeout`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tonic::Status;

use super::route::RoutedTo;
use super::{Inner, Slot};
use crate::telemetry as metrics;

impl Inner {
    /// Joins the wait queue (for a slot in `routed`'s cluster, when the
    /// call was routed), growing the pool if it may; a call that does not
    /// wait for ready fails at once while nothing can be reached.
    pub(super) async fn acquire_slow(
        self: &Arc<Self>,
        routed: Option<&RoutedTo>,
        wait_for_ready: bool,
    ) -> Result<Slot, Status> {
        self.start();
        let Some(ticket) =
            self.waiters
                .enqueue(self.config.max_waiters, wait_for_ready, routed.cloned())
        else {
            return Err(self.queue_full_status());
        };
        let mut place = Place {
            inner: self,
            id: ticket.id,
            served: false,
        };
        // Watchers see `waiting` grow (it shrinks as the call is served,
        // which starts it, or as it ends).
        self.tell_watchers();
        self.serve_waiters();
        match routed {
            Some(to) => {
                self.grow_cluster(to);
                if !wait_for_ready && let Some(status) = self.cluster_unavailable(to, false) {
                    return Err(status);
                }
            }
            None => {
                self.grow(0);
                if !wait_for_ready && self.nothing_reachable() {
                    return Err(self.unavailable_status());
                }
            }
        }
        let limit = if wait_for_ready {
            self.config.acquire_timeout
        } else {
            self.wait_limit()
        };
        let queued_at = Instant::now();
        match tokio::time::timeout(limit, ticket.grant).await {
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
            Err(_) => Err(routed
                .and_then(|to| self.cluster_unavailable(to, true))
                .unwrap_or_else(|| self.wait_expired_status(limit, queued_at))),
        }
    }

    /// How long a call waits for a stream: `acquire_timeout` while
    /// connections are up and full. While none is up, long enough for the
    /// attempts under way to end (`connect_timeout`), so that a server that
    /// cannot be reached fails calls with UNAVAILABLE and the attempt's
    /// error, never with RESOURCE_EXHAUSTED: nothing is exhausted.
    fn wait_limit(&self) -> Duration {
        if self.fleet.rotation.load().is_empty() {
            self.config.acquire_timeout.max(self.config.connect_timeout)
        } else {
            self.config.acquire_timeout
        }
    }

    /// The status of a call that waited `limit` in vain: an outage while no
    /// connection is up, overload (RESOURCE_EXHAUSTED) only when connections
    /// are up and every stream stayed taken.
    fn wait_expired_status(&self, limit: Duration, queued_at: Instant) -> Status {
        if self.fleet.endpoints.load().is_empty() {
            return Status::unavailable(format!(
                "the pool has no endpoints and none was discovered within {limit:?}{}",
                self.why_no_endpoints()
            ));
        }
        if self.fleet.rotation.load().is_empty() {
            return self.no_connection_status(limit);
        }
        self.telemetry
            .counters
            .rejected
            .fetch_add(1, Ordering::Relaxed);
        metrics::record_wait(&self.config.name, queued_at.elapsed());
        Status::resource_exhausted(format!(
            "no stream became free within {limit:?} (acquire_timeout); {}",
            self.describe()
        ))
    }

    /// The status of a call refused because `max_waiters` calls wait: an
    /// outage while no connection is up, overload otherwise.
    fn queue_full_status(&self) -> Status {
        if self.fleet.rotation.load().is_empty() && !self.fleet.endpoints.load().is_empty() {
            return Status::unavailable(format!(
                "no connection is up yet and {} calls already wait for one (max_waiters); {}",
                self.config.max_waiters,
                self.describe()
            ));
        }
        self.telemetry
            .counters
            .rejected
            .fetch_add(1, Ordering::Relaxed);
        Status::resource_exhausted(format!(
            "no stream is free and {} calls already wait for one (max_waiters); {}",
            self.config.max_waiters,
            self.describe()
        ))
    }

    /// Hands free slots to waiting calls, first come first served.
    pub(super) fn serve_waiters(self: &Arc<Self>) {
        self.waiters.serve(|routed| match routed {
            Some(to) => self.pick_routed(to),
            None => self.pick(),
        });
    }
}

/// A call's place in the wait queue; leaving without a grant gives it up.
struct Place<'a> {
    inner: &'a Inner,
    id: u64,
    served: bool,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if !self.served {
            self.inner.waiters.remove(self.id);
            // Watchers see `waiting` shrink.
            self.inner.tell_watchers();
        }
    }
}
