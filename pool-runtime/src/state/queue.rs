//! The bounded FIFO of calls waiting for a stream slot. A call may wait
//! for a slot in a scope of its own (an xDS cluster): it is served in
//! turn when its scope has one, and the calls behind it are served
//! meanwhile where theirs do.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::oneshot;
use tonic::Status;

use crate::lock::lock;

/// What a waiting call receives: a slot (`G`, a [`Slot`](super::Slot) in the pool),
/// or the reason it will get none.
pub(crate) type Grant<G> = Result<G, Status>;

/// Where a waiting call may be served: calls of one scope are served in
/// order, and a scope with no free slot holds only its own calls back.
pub(crate) trait Scope {
    /// Names the scope: calls of equal keys wait for the same slots.
    fn key(&self) -> &str;
}

impl Scope for () {
    fn key(&self) -> &str {
        ""
    }
}

/// Calls waiting for a stream, served first come, first served.
#[derive(Debug)]
pub(crate) struct Waiters<G, S = ()> {
    /// The queue's length, readable without the lock: the release path checks
    /// it on every call and takes the lock only when someone waits.
    len: AtomicUsize,
    queue: Mutex<VecDeque<Waiter<G, S>>>,
    next_id: AtomicU64,
}

impl<G, S> Default for Waiters<G, S> {
    fn default() -> Self {
        Self {
            len: AtomicUsize::new(0),
            queue: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(0),
        }
    }
}

#[derive(Debug)]
struct Waiter<G, S> {
    id: u64,
    grant: oneshot::Sender<Grant<G>>,
    /// gRPC's wait-for-ready: an outage does not fail it, only its own
    /// time limit or the pool's close.
    wait_for_ready: bool,
    /// Where it may be served; anywhere, for `None`.
    scope: Option<S>,
}

/// A place in the queue; the caller leaves the queue with `remove` if it
/// stops waiting before it is served.
#[derive(Debug)]
pub(crate) struct Ticket<G> {
    pub(crate) id: u64,
    pub(crate) grant: oneshot::Receiver<Grant<G>>,
}

impl<G, S: Scope> Waiters<G, S> {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Waiter<G, S>>> {
        // Every critical section leaves the queue and `len` consistent before
        // it can panic, so a poisoned lock is still sound.
        lock(&self.queue)
    }

    /// Calls waiting right now.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::SeqCst)
    }

    /// Joins the back of the queue, unless `max` calls already wait.
    pub(crate) fn enqueue(
        &self,
        max: usize,
        wait_for_ready: bool,
        scope: Option<S>,
    ) -> Option<Ticket<G>> {
        let mut queue = self.lock();
        if queue.len() >= max {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        queue.push_back(Waiter {
            id,
            grant: sender,
            wait_for_ready,
            scope,
        });
        self.len.store(queue.len(), Ordering::SeqCst);
        Some(Ticket {
            id,
            grant: receiver,
        })
    }

    /// Leaves the queue (a call that timed out or was dropped).
    pub(crate) fn remove(&self, id: u64) {
        let mut queue = self.lock();
        if let Some(position) = queue.iter().position(|w| w.id == id) {
            queue.remove(position);
            self.len.store(queue.len(), Ordering::SeqCst);
        }
    }

    /// Hands slots from `reserve` (given each call's scope) to waiting
    /// calls in order, until the queue is empty or no slot is free where
    /// the calls left wait.
    pub(crate) fn serve(&self, mut reserve: impl FnMut(Option<&S>) -> Option<G>) {
        // A slot whose waiter left meanwhile goes to the next one of its
        // scope; any slot left over is released after the lock is dropped,
        // since releasing serves the queue again.
        let mut spare: Option<(G, Option<String>)> = None;
        let mut leftover = Vec::new();
        {
            let mut queue = self.lock();
            // Calls passed over because their scope has no free slot, and
            // those scopes.
            let mut passed: VecDeque<Waiter<G, S>> = VecDeque::new();
            let mut full: Vec<String> = Vec::new();
            while let Some(waiter) = queue.pop_front() {
                if waiter.grant.is_closed() {
                    continue;
                }
                let key = waiter.scope.as_ref().map(|s| s.key().to_owned());
                if key.as_ref().is_some_and(|k| full.contains(k)) {
                    passed.push_back(waiter);
                    continue;
                }
                let guard = match spare.take() {
                    Some((guard, of)) if of == key => Some(guard),
                    other => {
                        leftover.extend(other.map(|(guard, _)| guard));
                        reserve(waiter.scope.as_ref())
                    }
                };
                let Some(guard) = guard else {
                    let Some(key) = key else {
                        // No slot anywhere: everyone behind waits too.
                        queue.push_front(waiter);
                        break;
                    };
                    full.push(key);
                    passed.push_back(waiter);
                    continue;
                };
                if let Err(Ok(guard)) = waiter.grant.send(Ok(guard)) {
                    spare = Some((guard, key));
                }
            }
            while let Some(waiter) = passed.pop_back() {
                queue.push_front(waiter);
            }
            self.len.store(queue.len(), Ordering::SeqCst);
        }
        drop(spare);
        drop(leftover);
    }

    /// Fails every waiting call with `status`; with `spare_ready`, the
    /// calls that wait for ready stay in line.
    pub(crate) fn fail_all(&self, status: &Status, spare_ready: bool) {
        let drained: VecDeque<Waiter<G, S>> = {
            let mut queue = self.lock();
            let (kept, drained): (VecDeque<_>, VecDeque<_>) = queue
                .drain(..)
                .partition(|waiter: &Waiter<G, S>| spare_ready && waiter.wait_for_ready);
            *queue = kept;
            self.len.store(queue.len(), Ordering::SeqCst);
            drained
        };
        for waiter in drained {
            // A waiter that left needs no answer.
            let _ = waiter.grant.send(Err(status.clone()));
        }
    }
}

/// An exhaustive check of the accounting that stream slots and the wait
/// queue share: every interleaving of a few callers' steps, each step one
/// call into the real `Waiters` or one atomic operation on the slots, as
/// `Shared::acquire` and `StreamGuard`'s drop make them. After every
/// interleaving no slot is over-taken, no caller is left waiting while a
/// slot is free (a lost wake-up), and all counts return to zero.
#[cfg(test)]
mod model {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::{Ticket, Waiters};

    /// A connection's stream slots, as `Connection` counts them.
    struct World {
        in_flight: AtomicUsize,
        capacity: usize,
        waiters: Waiters<Token>,
    }

    impl World {
        fn try_reserve(self: &Arc<Self>) -> Option<Token> {
            let mut current = self.in_flight.load(Ordering::SeqCst);
            loop {
                if current >= self.capacity {
                    return None;
                }
                match self.in_flight.compare_exchange(
                    current,
                    current + 1,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                ) {
                    Ok(_) => {
                        return Some(Token {
                            world: self.clone(),
                            held: true,
                        });
                    }
                    Err(actual) => current = actual,
                }
            }
        }

        fn serve(self: &Arc<Self>) {
            self.waiters.serve(|_| self.try_reserve());
        }
    }

    /// A held slot; its release is split in the two steps `StreamGuard`'s
    /// drop takes: give the slot back, then serve the queue if anyone waits.
    struct Token {
        world: Arc<World>,
        held: bool,
    }

    impl Token {
        fn give_back(&mut self) {
            if std::mem::take(&mut self.held) {
                self.world.in_flight.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    impl Drop for Token {
        fn drop(&mut self) {
            self.give_back();
            if self.world.waiters.len() > 0 {
                self.world.serve();
            }
        }
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Script {
        /// Acquire, hold, release.
        Use,
        /// Acquire; if it has to wait, it may give up instead.
        MayCancel,
    }

    enum Phase {
        Start,
        Enqueue,
        Serve(Ticket<Token>),
        Wait(Ticket<Token>),
        Holding(Token),
        Releasing(Token),
        Done,
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Move {
        Step,
        Cancel,
    }

    struct Run {
        world: Arc<World>,
        actors: Vec<(Script, Phase)>,
    }

    impl Run {
        fn new(capacity: usize, scripts: &[Script]) -> Self {
            let world = Arc::new(World {
                in_flight: AtomicUsize::new(0),
                capacity,
                waiters: Waiters::default(),
            });
            let actors = scripts.iter().map(|&s| (s, Phase::Start)).collect();
            Self { world, actors }
        }

        fn moves(&self) -> Vec<(usize, Move)> {
            let mut moves = Vec::new();
            for (index, (script, phase)) in self.actors.iter().enumerate() {
                match phase {
                    Phase::Done => {}
                    Phase::Wait(ticket) => {
                        if !ticket.grant.is_empty() || ticket.grant.is_terminated() {
                            moves.push((index, Move::Step));
                        }
                        if *script == Script::MayCancel {
                            moves.push((index, Move::Cancel));
                        }
                    }
                    _ => moves.push((index, Move::Step)),
                }
            }
            moves
        }

        fn apply(&mut self, (index, chosen): (usize, Move)) {
            let world = self.world.clone();
            let phase = std::mem::replace(&mut self.actors[index].1, Phase::Done);
            self.actors[index].1 = match (phase, chosen) {
                // `acquire`: the fast path only when nobody waits.
                (Phase::Start, _) => match (world.waiters.len() == 0)
                    .then(|| world.try_reserve())
                    .flatten()
                {
                    Some(token) => Phase::Holding(token),
                    None => Phase::Enqueue,
                },
                (Phase::Enqueue, _) => match world.waiters.enqueue(usize::MAX, false, None) {
                    Some(ticket) => Phase::Serve(ticket),
                    None => Phase::Done,
                },
                (Phase::Serve(ticket), _) => {
                    world.serve();
                    Phase::Wait(ticket)
                }
                (Phase::Wait(mut ticket), Move::Step) => match ticket.grant.try_recv() {
                    Ok(Ok(token)) => Phase::Holding(token),
                    _ => panic!("a waiter was woken without a slot"),
                },
                // Giving up: leave the queue; a slot sent meanwhile is dropped
                // with the receiver and so given back.
                (Phase::Wait(ticket), Move::Cancel) => {
                    world.waiters.remove(ticket.id);
                    drop(ticket);
                    Phase::Done
                }
                (Phase::Holding(mut token), _) => {
                    token.give_back();
                    Phase::Releasing(token)
                }
                (Phase::Releasing(token), _) => {
                    drop(token);
                    Phase::Done
                }
                (Phase::Done, _) => Phase::Done,
            };
            let in_flight = world.in_flight.load(Ordering::SeqCst);
            assert!(
                in_flight <= world.capacity,
                "{in_flight} slots taken of {}",
                world.capacity
            );
        }

        fn check_end(&self, path: &[(usize, Move)]) {
            let stuck = self
                .actors
                .iter()
                .filter(|(_, p)| !matches!(p, Phase::Done))
                .count();
            assert_eq!(
                stuck,
                0,
                "a caller waits forever (lost wake-up) after {} steps",
                path.len()
            );
            assert_eq!(self.world.in_flight.load(Ordering::SeqCst), 0);
            assert_eq!(self.world.waiters.len(), 0);
        }
    }

    /// Explores every interleaving by replaying each path from the start.
    fn explore(
        capacity: usize,
        scripts: &[Script],
        path: &mut Vec<(usize, Move)>,
        count: &mut usize,
    ) {
        let mut run = Run::new(capacity, scripts);
        for &step in path.iter() {
            run.apply(step);
        }
        let moves = run.moves();
        if moves.is_empty() {
            run.check_end(path);
            *count += 1;
            return;
        }
        drop(run);
        for step in moves {
            path.push(step);
            explore(capacity, scripts, path, count);
            path.pop();
        }
    }

    #[test]
    fn one_slot_three_callers_one_may_give_up() {
        let mut count = 0;
        explore(
            1,
            &[Script::Use, Script::MayCancel, Script::Use],
            &mut Vec::new(),
            &mut count,
        );
        println!("{count} interleavings");
        assert!(count > 1_000);
    }

    #[test]
    fn two_slots_three_callers() {
        let mut count = 0;
        explore(
            2,
            &[Script::Use, Script::Use, Script::MayCancel],
            &mut Vec::new(),
            &mut count,
        );
        println!("{count} interleavings");
        assert!(count > 1_000);
    }
}

#[cfg(test)]
mod scopes {
    use super::{Scope, Waiters};

    struct Cluster(&'static str);

    impl Scope for Cluster {
        fn key(&self) -> &str {
            self.0
        }
    }

    #[test]
    fn a_full_scope_holds_back_only_its_own_calls_and_each_scope_is_served_in_order() {
        let waiters: Waiters<&'static str, Cluster> = Waiters::default();
        let mut tickets: Vec<_> = ["a", "b", "a", "b"]
            .into_iter()
            .map(|scope| {
                waiters
                    .enqueue(10, false, Some(Cluster(scope)))
                    .expect("room")
            })
            .collect();
        // Scope "a" has no free slot, "b" has one: the first "b" call is
        // served past the "a" call ahead of it; "a" is asked once.
        let mut b_slots = 1;
        let mut asked_a = 0;
        waiters.serve(|scope| match scope.map(Cluster::key) {
            Some("b") if b_slots > 0 => {
                b_slots -= 1;
                Some("slot in b")
            }
            Some("a") => {
                asked_a += 1;
                None
            }
            _ => None,
        });
        assert_eq!(asked_a, 1);
        assert!(matches!(tickets[1].grant.try_recv(), Ok(Ok("slot in b"))));
        assert_eq!(waiters.len(), 3);
        // A slot in "a": the first "a" call takes it, then the second.
        let mut a_slots = 2;
        waiters.serve(|scope| match scope.map(Cluster::key) {
            Some("a") if a_slots > 0 => {
                a_slots -= 1;
                Some("slot in a")
            }
            _ => None,
        });
        assert!(matches!(tickets[0].grant.try_recv(), Ok(Ok("slot in a"))));
        assert!(matches!(tickets[2].grant.try_recv(), Ok(Ok("slot in a"))));
        // The last "b" call still waits, first in line.
        assert!(tickets[3].grant.try_recv().is_err());
        assert_eq!(waiters.len(), 1);
    }
}
