//! Lists that every call reads without a lock and that change rarely:
//! each change stores a new copy.

use std::sync::Arc;

use arc_swap::ArcSwap;

/// Adds `item` to a list that readers load without a lock; the caller holds
/// the `live` lock, which serializes changes.
pub(super) fn push_onto<T>(list: &ArcSwap<Vec<Arc<T>>>, item: Arc<T>) {
    let mut next = Vec::clone(&list.load());
    next.push(item);
    list.store(Arc::new(next));
}

/// Takes the first item that `matches` out of a list that readers load
/// without a lock; the caller holds the `live` lock.
pub(super) fn take_from<T>(
    list: &ArcSwap<Vec<Arc<T>>>,
    matches: impl Fn(&T) -> bool,
) -> Option<Arc<T>> {
    let current = list.load();
    let position = current.iter().position(|item| matches(item))?;
    let mut next = Vec::clone(&current);
    let removed = next.remove(position);
    list.store(Arc::new(next));
    Some(removed)
}
