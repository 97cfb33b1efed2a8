//! Locks that survive a panic elsewhere.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, taking it over even if a thread panicked while holding
/// it: every lock in the crate guards data that a panic cannot leave torn
/// (lists and counters updated in one step), so refusing it would turn one
/// panic into a pool that fails every call.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
