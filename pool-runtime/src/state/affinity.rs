//! Keeping calls that share an [`AffinityKey`] on one connection: the
//! bindings, and taking a slot on the bound connection. A call routed to
//! a cluster (gRPC A28) keeps its key within that cluster: the key is bound
//! once per cluster, and a binding whose endpoint has left the cluster is
//! dropped (an endpoint that stays in another cluster keeps its
//! connections, so the binding alone would not see it go). That is checked
//! once each time the pick's sets change, not at every call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tonic::Status;

use super::route::RoutedTo;
use super::weights::Subchannels;
use super::{Inner, Slot};
use crate::affinity::AffinityKey;
use crate::conn::Connection;
use crate::lock::lock;

impl Inner {
    /// Takes a stream slot on the connection `key` is bound to (in the
    /// cluster of `routed`, if the call was routed), or binds it to the
    /// connection a plain call would take there (see
    /// [`acquire`](Self::acquire) for `wait_for_ready`).
    pub(crate) async fn acquire_for(
        self: &Arc<Self>,
        key: AffinityKey,
        routed: Option<&RoutedTo>,
        wait_for_ready: bool,
    ) -> Result<Slot, Status> {
        if self.is_closed() {
            return Err(super::outage::closed_status());
        }
        let cluster = routed.map(|to| &to.cluster);
        // Only a routed call's binding is checked against the pick's sets.
        let sets = cluster.map(|_| self.fleet.subchannels.load_full());
        let scope = cluster.zip(sets.as_ref());
        if let Some(connection) = self.affinity.get(key, scope) {
            connection.force_reserve();
            return Ok(Slot::new(connection, self.clone()));
        }
        let slot = match routed {
            Some(to) => self.acquire_routed(to, wait_for_ready).await?,
            None => self.acquire(wait_for_ready).await?,
        };
        let bound = self.affinity.bind(key, cluster, slot.connection());
        if Arc::ptr_eq(&bound, slot.connection()) {
            return Ok(slot);
        }
        // Another call with the key bound it first: follow it there.
        drop(slot);
        bound.force_reserve();
        Ok(Slot::new(bound, self.clone()))
    }
}

/// A key as it is bound: with the cluster its calls were routed to.
type Bound = (AffinityKey, Option<Arc<str>>);

/// Which connection each key is bound to.
#[derive(Debug, Default)]
pub(crate) struct Bindings {
    map: Mutex<HashMap<Bound, Binding>>,
}

#[derive(Debug)]
struct Binding {
    connection: Weak<Connection>,
    last_used: Instant,
    /// The pick's sets its endpoint was last found in its cluster in (a
    /// fresh binding has none): found again only once they change.
    checked_in: Weak<Subchannels>,
}

impl Bindings {
    /// The live connection `key` is bound to, if it still takes calls.
    /// For a call routed to a cluster, `scope` is the cluster and the
    /// pick's sets now: the binding is the key's in that cluster, and one
    /// whose endpoint has left the cluster is forgotten.
    pub(crate) fn get(
        &self,
        key: AffinityKey,
        scope: Option<(&Arc<str>, &Arc<Subchannels>)>,
    ) -> Option<Arc<Connection>> {
        let mut map = lock(&self.map);
        let bound = (key, scope.map(|(cluster, _)| cluster.clone()));
        let binding = map.get_mut(&bound)?;
        let connection = binding.connection.upgrade()?;
        if !connection.link.is_ready() {
            return None;
        }
        if let Some((cluster, sets)) = scope
            && !std::ptr::eq(binding.checked_in.as_ptr(), Arc::as_ptr(sets))
        {
            let member = sets
                .cluster(cluster)
                .is_some_and(|set| set.iter().any(|s| s.endpoint.is(&connection.endpoint)));
            if !member {
                map.remove(&bound);
                return None;
            }
            binding.checked_in = Arc::downgrade(sets);
        }
        binding.last_used = Instant::now();
        Some(connection)
    }

    /// Binds `key` to `connection` unless a call racing this one bound it
    /// first; returns the connection the key is bound to.
    pub(crate) fn bind(
        &self,
        key: AffinityKey,
        cluster: Option<&Arc<str>>,
        connection: &Arc<Connection>,
    ) -> Arc<Connection> {
        let key = (key, cluster.cloned());
        let mut map = lock(&self.map);
        let now = Instant::now();
        if let Some(binding) = map.get_mut(&key)
            && let Some(bound) = binding.connection.upgrade()
            && bound.link.is_ready()
        {
            binding.last_used = now;
            return bound;
        }
        map.insert(
            key,
            Binding {
                connection: Arc::downgrade(connection),
                last_used: now,
                checked_in: Weak::new(),
            },
        );
        connection.clone()
    }

    /// Forgets keys whose connection is gone or that were unused for `idle`.
    pub(crate) fn prune(&self, now: Instant, idle: Duration) {
        let mut map = lock(&self.map);
        map.retain(|_, binding| {
            now.duration_since(binding.last_used) < idle
                && binding
                    .connection
                    .upgrade()
                    .is_some_and(|c| c.link.is_ready())
        });
    }

    /// How many keys are bound.
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }
}
