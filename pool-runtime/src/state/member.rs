//! An endpoint as the pool keeps it: the parsed endpoint (`conn`'s, which
//! dials it), whether it is still in the pool, and its connection attempts
//! with their backoff. Its connections and load, for the pick, are its
//! [`Subchannel`](super::Subchannel)'s.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::config::Backoff;
use crate::conn::Endpoint;
use crate::error::BoxError;
use crate::lock::lock;

/// One endpoint in the pool.
#[derive(Debug)]
pub(crate) struct Member {
    /// What it is and where its connections go.
    pub(crate) endpoint: Arc<Endpoint>,
    /// Set when the endpoint leaves the pool, so that an attempt under way
    /// does not add a connection to it.
    removed: AtomicBool,
    attempts: Mutex<Attempts>,
}

impl Deref for Member {
    type Target = Endpoint;

    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

/// The state of an endpoint's connection attempts.
#[derive(Debug, Default)]
pub(crate) struct Attempts {
    /// An attempt is under way (at most one per endpoint).
    pub(crate) connecting: bool,
    /// Attempts that failed in a row since the last success.
    pub(crate) failures: u32,
    /// No attempt before this instant.
    pub(crate) retry_at: Option<Instant>,
    /// Why the last attempt failed.
    pub(crate) last_error: Option<Arc<BoxError>>,
}

impl Attempts {
    /// Counts one more failure and returns when the next attempt may start.
    fn back_off(&mut self, error: BoxError, backoff: &Backoff) -> Instant {
        self.failures = self.failures.saturating_add(1);
        let retry_at = Instant::now() + backoff.delay(self.failures, fastrand::f64());
        self.retry_at = Some(retry_at);
        self.last_error = Some(Arc::new(error));
        retry_at
    }
}

impl Member {
    /// Whether `endpoint` (a connection's) is this member's.
    pub(crate) fn is(&self, endpoint: &Arc<Endpoint>) -> bool {
        Arc::ptr_eq(&self.endpoint, endpoint)
    }

    pub(crate) fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint: Arc::new(endpoint),
            removed: AtomicBool::new(false),
            attempts: Mutex::new(Attempts::default()),
        }
    }

    /// Marks the endpoint as no longer in the pool.
    pub(crate) fn remove(&self) {
        self.removed.store(true, Ordering::Release);
    }

    /// Whether the endpoint left the pool.
    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    /// The attempt bookkeeping; never held across an await.
    pub(crate) fn attempts(&self) -> MutexGuard<'_, Attempts> {
        lock(&self.attempts)
    }

    /// Whether an attempt may start now; claims the endpoint if so.
    pub(crate) fn try_claim(&self, now: Instant) -> bool {
        let mut attempts = self.attempts();
        if attempts.connecting || attempts.retry_at.is_some_and(|at| at > now) {
            return false;
        }
        attempts.connecting = true;
        true
    }

    /// Whether an attempt is under way, or `None` while the endpoint waits
    /// out a backoff.
    pub(crate) fn connecting_unless_backing_off(&self, now: Instant) -> Option<bool> {
        let attempts = self.attempts();
        if attempts.retry_at.is_some_and(|at| at > now) && !attempts.connecting {
            return None;
        }
        Some(attempts.connecting)
    }

    /// Whether an attempt could start now, without claiming the endpoint.
    pub(crate) fn may_try(&self, now: Instant) -> bool {
        self.connecting_unless_backing_off(now) == Some(false)
    }

    /// Gives up a claim without an attempt: what made it wanted had
    /// changed by the time it was held (see `Inner::grow`).
    pub(crate) fn release_claim(&self) {
        self.attempts().connecting = false;
    }

    /// Records a successful attempt.
    pub(crate) fn succeeded(&self) {
        let mut attempts = self.attempts();
        attempts.connecting = false;
        attempts.failures = 0;
        attempts.retry_at = None;
        attempts.last_error = None;
    }

    /// Records a failed attempt and returns when to try again.
    pub(crate) fn failed(&self, error: BoxError, backoff: &Backoff) -> Instant {
        let mut attempts = self.attempts();
        attempts.connecting = false;
        attempts.back_off(error, backoff)
    }

    /// Records that the endpoint failed its health check: attempts wait as
    /// after a failed connection attempt, without touching one under way.
    pub(crate) fn unhealthy(&self, error: BoxError, backoff: &Backoff) -> Instant {
        self.attempts().back_off(error, backoff)
    }

    /// Whether the last attempt failed (and none has succeeded since).
    pub(crate) fn is_failing(&self) -> bool {
        self.attempts().failures > 0
    }
}
