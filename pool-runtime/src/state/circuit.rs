//! Circuit breaking (gRPC A32): at most `max_requests` attempts in flight
//! to a cluster; one more fails `UNAVAILABLE` at once, naming the cluster
//! and the limit, and is not retried (as grpc-go drops it). Each xDS
//! cluster has its breaker, set by its `circuit_breakers`, and a routed
//! call's attempts count against its cluster's; other pools have no
//! limit. Here too, the control plane's `drop_overloads`: a share of the
//! attempts dropped at once, by category.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tonic::Status;

use super::Slot;

/// A limit on attempts in flight, and the count it limits.
#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    /// The limit; `usize::MAX` for none.
    max: AtomicUsize,
    /// Attempts admitted and not yet ended.
    in_flight: AtomicUsize,
    /// Whose limit it is, for the message.
    cluster: Mutex<Arc<str>>,
    /// The categories of attempts dropped and how many per million, when
    /// any (`dropping` says so without a lock).
    drops: Mutex<Arc<[(String, u32)]>>,
    dropping: std::sync::atomic::AtomicBool,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self {
            max: AtomicUsize::new(usize::MAX),
            in_flight: AtomicUsize::new(0),
            cluster: Mutex::new(Arc::from("")),
            drops: Mutex::new(Arc::from(Vec::new())),
            dropping: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl CircuitBreaker {
    /// Limits `cluster`'s attempts in flight to `max` (none for `None`).
    /// Attempts admitted before stay admitted.
    #[cfg_attr(not(feature = "xds"), allow(dead_code))]
    pub(crate) fn set(&self, cluster: &str, max: Option<u32>) {
        *crate::lock::lock(&self.cluster) = Arc::from(cluster);
        let max = max.map_or(usize::MAX, |m| m as usize);
        self.max.store(max, Ordering::Release);
    }

    /// Drops `per_million` of the attempts in each category from now on
    /// (an xDS cluster's `drop_overloads`).
    #[cfg_attr(not(feature = "xds"), allow(dead_code))]
    pub(crate) fn set_drops(&self, drops: Vec<(String, u32)>) {
        let dropping = drops.iter().any(|(_, per_million)| *per_million > 0);
        *crate::lock::lock(&self.drops) = Arc::from(drops);
        self.dropping.store(dropping, Ordering::Release);
    }

    /// The category that drops this attempt, if one does: each category
    /// draws on its own, as grpc-go's picker draws.
    fn dropped(&self) -> Option<Status> {
        let drops = crate::lock::lock(&self.drops).clone();
        drops.iter().find_map(|(category, per_million)| {
            (fastrand::u32(..1_000_000) < *per_million).then(|| {
                Status::unavailable(format!(
                    "dropped by the control plane's drop_overloads: category {category}, {} %",
                    f64::from(*per_million) / 10_000.0
                ))
            })
        })
    }

    fn refused(&self, max: usize) -> Status {
        let cluster = crate::lock::lock(&self.cluster).clone();
        Status::unavailable(format!(
            "max requests {max} exceeded on cluster {cluster} (its circuit_breakers, gRPC A32)"
        ))
    }
}

/// An attempt admitted under the limit: given back when dropped, unless
/// [`hold`](Self::hold) hands it to the attempt's slot.
#[must_use]
pub(crate) struct Admission(Option<Arc<CircuitBreaker>>);

impl Admission {
    /// The slot carries the admission from now on, and gives it back when
    /// the attempt ends.
    #[inline]
    pub(crate) fn hold(mut self, mut slot: Slot) -> Slot {
        slot.admitted = self.0.take();
        slot
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(breaker) = self.0.take() {
            breaker.end_admitted();
        }
    }
}

impl CircuitBreaker {
    /// Admits one attempt, or refuses it: dropped by a `drop_overloads`
    /// category, or over the limit.
    #[inline]
    pub(crate) fn admit(self: &Arc<Self>) -> Result<Admission, Status> {
        if self.dropping.load(Ordering::Acquire)
            && let Some(dropped) = self.dropped()
        {
            return Err(dropped);
        }
        let max = self.max.load(Ordering::Acquire);
        if max == usize::MAX {
            return Ok(Admission(None));
        }
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= max {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(self.refused(max));
        }
        Ok(Admission(Some(Arc::clone(self))))
    }

    /// Gives back an admitted attempt's place, as its slot goes.
    pub(crate) fn end_admitted(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An attempt with no breaker over it (a call that was not routed).
pub(crate) fn unlimited() -> Admission {
    Admission(None)
}
