//! Taking a stream slot for a call: the lock-free pick, and the wait queue
//! when every stream is taken.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tonic::Status;

use crate::affinity::AffinityKey;
use crate::metrics;
use crate::picker::{self, StreamGuard};
use crate::pool::{Shared, closed_status};
use crate::waiters::Waiters;

impl Shared {
    /// Takes a stream slot for a call, waiting in line if none is free.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Result<StreamGuard, Status> {
        if self.is_closed() {
            return Err(closed_status());
        }
        // Callers already in line go first.
        if self.waiters.len() == 0
            && let Some(guard) = self.pick()
        {
            return Ok(guard);
        }
        // Boxed so that every call's future stays small: only calls that
        // wait carry the queue's and the timer's state.
        Box::pin(self.acquire_slow()).await
    }

    /// Takes a stream slot on the connection `key` is bound to, or binds
    /// it to the connection a plain call would take.
    pub(crate) async fn acquire_for(
        self: &Arc<Self>,
        key: AffinityKey,
    ) -> Result<StreamGuard, Status> {
        if self.is_closed() {
            return Err(closed_status());
        }
        if let Some(connection) = self.affinity.get(key) {
            connection.force_reserve();
            return Ok(StreamGuard::new(connection, self.clone()));
        }
        let guard = self.acquire().await?;
        let bound = self.affinity.bind(key, guard.connection());
        if Arc::ptr_eq(&bound, guard.connection()) {
            return Ok(guard);
        }
        // Another call with the key bound it first: follow it there.
        drop(guard);
        bound.force_reserve();
        Ok(StreamGuard::new(bound, self.clone()))
    }

    /// Joins the wait queue, growing the pool if it may.
    async fn acquire_slow(self: &Arc<Self>) -> Result<StreamGuard, Status> {
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
        if self.rotation.load().is_empty()
            && self.connecting.load(Ordering::SeqCst) == 0
            && self.all_endpoints_failing()
        {
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

    /// Reserves a slot on the least-loaded ready connection.
    #[inline]
    pub(crate) fn pick(self: &Arc<Self>) -> Option<StreamGuard> {
        let rotation = self.rotation.load();
        let connection = picker::reserve_least_loaded(&rotation)?;
        Some(StreamGuard::new(connection.clone(), self.clone()))
    }

    /// Called after a slot is given back.
    #[inline]
    pub(crate) fn on_release(self: &Arc<Self>) {
        if self.waiters.len() > 0 {
            self.serve_waiters();
        }
        if self.is_closed() {
            self.notify();
        }
    }

    pub(crate) fn serve_waiters(self: &Arc<Self>) {
        self.waiters.serve(|| self.pick());
    }
}

/// A call's place in the wait queue; leaving without a grant gives it up.
struct Place<'a> {
    waiters: &'a Waiters<StreamGuard>,
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
