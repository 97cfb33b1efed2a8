//! The bounded FIFO of calls waiting for a stream slot.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::oneshot;
use tonic::Status;

use crate::picker::StreamGuard;

/// What a waiting call receives: a slot, or the reason it will get none.
pub(crate) type Grant = Result<StreamGuard, Status>;

/// Calls waiting for a stream, served first come, first served.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    /// The queue's length, readable without the lock: the release path checks
    /// it on every call and takes the lock only when someone waits.
    len: AtomicUsize,
    queue: Mutex<VecDeque<Waiter>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    grant: oneshot::Sender<Grant>,
}

/// A place in the queue; dropping it leaves the queue.
#[derive(Debug)]
pub(crate) struct Ticket {
    pub(crate) id: u64,
    pub(crate) grant: oneshot::Receiver<Grant>,
}

impl Waiters {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Waiter>> {
        // Every critical section leaves the queue and `len` consistent before
        // it can panic, so a poisoned lock is still sound.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Calls waiting right now.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::SeqCst)
    }

    /// Joins the back of the queue, unless `max` calls already wait.
    pub(crate) fn enqueue(&self, max: usize) -> Option<Ticket> {
        let mut queue = self.lock();
        if queue.len() >= max {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        queue.push_back(Waiter { id, grant: sender });
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

    /// Hands slots from `reserve` to waiting calls in order, until the queue
    /// is empty or no slot is free.
    pub(crate) fn serve(&self, mut reserve: impl FnMut() -> Option<StreamGuard>) {
        // A slot whose waiter left meanwhile goes to the next one; any slot
        // left over is released after the lock is dropped, since releasing
        // serves the queue again.
        let mut spare: Option<StreamGuard> = None;
        {
            let mut queue = self.lock();
            while let Some(waiter) = queue.pop_front() {
                if waiter.grant.is_closed() {
                    continue;
                }
                let Some(guard) = spare.take().or_else(&mut reserve) else {
                    queue.push_front(waiter);
                    break;
                };
                if let Err(Ok(guard)) = waiter.grant.send(Ok(guard)) {
                    spare = Some(guard);
                }
            }
            self.len.store(queue.len(), Ordering::SeqCst);
        }
        drop(spare);
    }

    /// Fails every waiting call with `status`.
    pub(crate) fn fail_all(&self, status: &Status) {
        let drained: Vec<Waiter> = {
            let mut queue = self.lock();
            let drained = queue.drain(..).collect();
            self.len.store(0, Ordering::SeqCst);
            drained
        };
        for waiter in drained {
            // A waiter that left needs no answer.
            let _ = waiter.grant.send(Err(status.clone()));
        }
    }
}
