//! Which endpoint and connection a call takes, lock-free: of two endpoints
//! chosen at random the less loaded (gRPC A48 `least_request`, weighed by
//! latency), then its least-loaded ready connection; and the stream slot
//! the call then holds.

use std::sync::Arc;
use std::time::Instant;

use tonic::Status;

use super::circuit::CircuitBreaker;
use super::outage::closed_status;
use super::route::RoutedTo;
use super::subchannel::Load;
use super::weights::Subchannels;
use super::{Inner, Subchannel};
use crate::conn::{Connection, Endpoint};

impl Inner {
    /// Takes a stream slot for a call, waiting in line if none is free
    /// (calls with an affinity key take [`acquire_for`](Self::acquire_for)).
    /// While nothing can be reached, the call fails at once with
    /// `UNAVAILABLE`, unless `wait_for_ready` (gRPC's wait-for-ready) lets
    /// it wait for a connection, up to `acquire_timeout`.
    #[inline]
    pub(crate) async fn acquire(self: &Arc<Self>, wait_for_ready: bool) -> Result<Slot, Status> {
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
        Box::pin(self.acquire_slow(None, wait_for_ready)).await
    }

    /// Reserves a slot for a call: with one endpoint, on its least-loaded
    /// ready connection; with more, on the endpoint [`pick_of_two`]
    /// chooses. `None` when no stream is free.
    ///
    /// [`pick_of_two`]: Self::pick_of_two
    #[inline]
    pub(crate) fn pick(self: &Arc<Self>) -> Option<Slot> {
        if self
            .fleet
            .choosing
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return self.pick_of_two(&self.fleet.subchannels.load());
        }
        let rotation = self.fleet.rotation.load();
        let connection = reserve_least_loaded(&rotation)?;
        Some(Slot::new(connection.clone(), self.clone()))
    }

    /// gRPC's A48 `least_request` with a choice count of 2: two endpoints
    /// drawn at random, and the call goes to the less loaded, its load being
    /// its streams in flight over its capacity, weighted by its latency when
    /// the two differ clearly (see `Load::lighter_than`). Random draws break ties, so that many clients do not
    /// herd onto one server, and the cost does not grow with the number of
    /// endpoints. Only when the draws find no free stream does the pick look
    /// at every endpoint, before the call queues.
    pub(super) fn pick_of_two(self: &Arc<Self>, subchannels: &Subchannels) -> Option<Slot> {
        for _ in 0..4 {
            let (a, b) = subchannels.draw_two();
            let (chosen, connections) = match (subchannels[a].load(), subchannels[b].load()) {
                (Some((load_a, on_a)), Some((load_b, on_b))) => {
                    if load_b.lighter_than(load_a) {
                        (b, on_b)
                    } else {
                        (a, on_a)
                    }
                }
                (Some((load_a, on_a)), None) => {
                    self.settling(&subchannels[b], load_a);
                    (a, on_a)
                }
                (None, Some((load_b, on_b))) => {
                    self.settling(&subchannels[a], load_b);
                    (b, on_b)
                }
                (None, None) => continue,
            };
            if let Some(slot) = self.reserve_on(&subchannels[chosen], &connections) {
                return Some(slot);
            }
        }
        let (lightest, connections) = lightest(subchannels.iter())?;
        self.reserve_on(lightest, &connections)
    }

    /// A slot on the endpoint of `set`'s ring for `hash`, or on the next
    /// one round the ring with a free stream.
    pub(super) fn pick_on_ring(self: &Arc<Self>, set: &Subchannels, hash: u64) -> Option<Slot> {
        set.ring()?.walk(hash).find_map(|index| {
            let subchannel = &set[index];
            let (_, connections) = subchannel.load()?;
            self.reserve_on(subchannel, &connections)
        })
    }

    /// Reserves a slot for one copy of a hedged call on the least loaded
    /// endpoint no other copy of the call went to, and records it there;
    /// `None` when every endpoint was taken or is full (the copy then
    /// takes an ordinary pick: another connection at least). A routed
    /// call's copies stay in its cluster.
    pub(crate) fn pick_spread(
        self: &Arc<Self>,
        spread: &Arc<Spread>,
        routed: Option<&RoutedTo>,
    ) -> Option<Slot> {
        let all = self.fleet.subchannels.load();
        let subchannels = all.scope(routed.map(|to| &*to.cluster))?;
        let mut used = crate::lock::lock(&spread.endpoints);
        let mut slot = if used[0].is_none() && subchannels.len() > 1 {
            // The first copy is picked as any call is (two random choices):
            // the lightest of all, ties to the first listed, would send
            // every call of a hedged method to one idle server.
            self.pick_of_two(subchannels)?
        } else {
            let unused = subchannels
                .iter()
                .filter(|s| !used.iter().flatten().any(|e| Arc::ptr_eq(e, &s.endpoint)));
            let (lightest, connections) = lightest(unused)?;
            self.reserve_on(lightest, &connections)?
        };
        if let Some((subchannel, picked_at)) = &mut slot.endpoint {
            if let Some(free) = used.iter_mut().find(|e| e.is_none()) {
                *free = Some(subchannel.endpoint.clone());
            }
            // A copy that loses the race is recorded by its time: always timed.
            picked_at.get_or_insert_with(Instant::now);
        }
        slot.hedge = Some(Arc::clone(spread));
        Some(slot)
    }

    /// Reserves a slot for a retry on the least loaded endpoint none of
    /// the call's failed attempts went to; `None` when the pool has one
    /// endpoint, or every other is taken or full (the retry then takes an
    /// ordinary pick). A routed call's retry stays in its cluster.
    #[cold]
    pub(crate) fn pick_untried(
        self: &Arc<Self>,
        tried: &[Arc<Endpoint>],
        routed: Option<&RoutedTo>,
    ) -> Option<Slot> {
        // An unrouted retry has somewhere else to go only when the pool
        // has more than one endpoint.
        if routed.is_none()
            && !self
                .fleet
                .choosing
                .load(std::sync::atomic::Ordering::Acquire)
        {
            return None;
        }
        let all = self.fleet.subchannels.load();
        let subchannels = all.scope(routed.map(|to| &*to.cluster))?;
        let untried = subchannels
            .iter()
            .filter(|s| !tried.iter().any(|e| s.endpoint.is(e)));
        let (lightest, connections) = lightest(untried)?;
        self.reserve_on(lightest, &connections)
    }

    /// The pick settles for an endpoint with `chosen` load because `full`
    /// has no free stream: when `full` is clearly faster, it grows by one
    /// connection (gRPC A105 within the endpoint: all its connections are at
    /// the server's stream limit and a call wanted it), rather than send
    /// the calls that do not fit on it to a slow server.
    #[cold]
    fn settling(self: &Arc<Self>, full: &Arc<Subchannel>, chosen: Load) {
        if full.is_clearly_faster_than(chosen) {
            self.grow_endpoint(full);
        }
    }

    /// Reserves a slot on the least-loaded of `connections`, `subchannel`'s
    /// as its load read them; the slot counts the call on the endpoint and,
    /// when the call is timed, reports its latency when given back.
    pub(super) fn reserve_on(
        self: &Arc<Self>,
        subchannel: &Arc<Subchannel>,
        connections: &[Arc<Connection>],
    ) -> Option<Slot> {
        let connection = reserve_least_loaded(connections)?;
        let mut slot = Slot::new(connection.clone(), self.clone());
        let picked_at = subchannel.wants_timing().then(Instant::now);
        slot.endpoint = Some((subchannel.clone(), picked_at));
        Some(slot)
    }

    /// Called after a slot is given back: the first waiting call takes it.
    #[inline]
    fn on_release(self: &Arc<Self>) {
        if self.waiters.len() > 0 {
            self.serve_waiters();
        }
        self.call_ended();
    }
}

/// Of `subchannels`, the least loaded with a free stream, and its
/// connections as its load read them: the scan behind a pick whose random
/// draws found nothing, and behind a hedged copy's pick.
fn lightest<'a>(
    subchannels: impl Iterator<Item = &'a Arc<Subchannel>>,
) -> Option<(&'a Arc<Subchannel>, super::subchannel::Connections)> {
    // Ties are broken at random (each of `ties` equally likely), so that
    // idle endpoints share the calls that scan, not the first listed.
    let mut ties = 1u32;
    let (subchannel, (_, connections)) = subchannels
        .filter_map(|subchannel| Some((subchannel, subchannel.load()?)))
        .reduce(|best, next| {
            if next.1.0.lighter_than(best.1.0) {
                ties = 1;
                next
            } else if best.1.0.lighter_than(next.1.0) {
                best
            } else {
                ties += 1;
                if fastrand::u32(..ties) == 0 {
                    next
                } else {
                    best
                }
            }
        })?;
    Some((subchannel, connections))
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

/// The endpoints the copies of one hedged call went to, so that each copy
/// goes to another server (beyond gRPC A6, which leaves that to chance).
/// Held in place, not in a `Vec`: a hedged call makes no allocation for it.
#[derive(Debug, Default)]
pub(crate) struct Spread {
    endpoints: std::sync::Mutex<[Option<Arc<super::Member>>; SPREAD]>,
    /// Set once a copy committed the call: the others lost.
    decided: std::sync::atomic::AtomicBool,
}

/// The endpoints a `Spread` keeps: gRPC A6 caps `maxAttempts` at 5. A copy
/// sent again (a transparent retry) past that prefers none.
const SPREAD: usize = 5;

impl Spread {
    /// A copy committed the call; the others are being cancelled.
    pub(crate) fn decide(&self) {
        self.decided
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

/// One stream slot held on a connection; dropping it gives the slot back and
/// hands it to the first waiting call, so a cancelled call never leaks a count.
#[derive(Debug)]
pub(crate) struct Slot {
    connection: Arc<Connection>,
    inner: Arc<Inner>,
    /// The endpoint to count the call on, and when the call was picked if
    /// it is timed (only when the pool has endpoints to choose between).
    endpoint: Option<(Arc<Subchannel>, Option<Instant>)>,
    /// Whether the call failed as a server's trouble makes calls fail, once
    /// its outcome is known.
    failed: Option<bool>,
    /// For a copy of a hedged call, the copies' shared state.
    hedge: Option<Arc<Spread>>,
    /// The circuit breaker the attempt holds a place under, if any (see
    /// `circuit.rs`).
    pub(super) admitted: Option<Arc<CircuitBreaker>>,
}

impl Slot {
    /// Wraps a slot already reserved on `connection`.
    #[inline]
    pub(super) fn new(connection: Arc<Connection>, inner: Arc<Inner>) -> Self {
        inner.tell_watchers();
        Self {
            connection,
            inner,
            endpoint: None,
            failed: None,
            hedge: None,
            admitted: None,
        }
    }

    /// Whether the call's outcome is wanted: its endpoint is one of several.
    #[inline]
    pub(crate) fn wants_outcome(&self) -> bool {
        self.endpoint.is_some()
    }

    /// Records how the call ended, for its endpoint's outlier detection.
    pub(crate) fn set_outcome(&mut self, code: tonic::Code) {
        use tonic::Code;
        let failed = matches!(
            code,
            Code::Unavailable | Code::Internal | Code::Unknown | Code::DeadlineExceeded
        );
        self.failed.get_or_insert(failed);
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
        if let Some((subchannel, picked_at)) = self.endpoint.take() {
            subchannel.count_call();
            if let Some(picked_at) = picked_at {
                let now = Instant::now();
                let elapsed = now.saturating_duration_since(picked_at);
                let lost = self.failed.is_none()
                    && self
                        .hedge
                        .as_ref()
                        .is_some_and(|h| h.decided.load(std::sync::atomic::Ordering::Acquire));
                if lost {
                    subchannel.record_lost(elapsed, now);
                } else {
                    subchannel.record(elapsed, now);
                }
            }
            if let Some(failed) = self.failed {
                subchannel.record_outcome(failed);
            }
        }
        self.connection.release();
        if let Some(breaker) = self.admitted.take() {
            breaker.end_admitted();
        }
        self.inner.on_release();
    }
}
