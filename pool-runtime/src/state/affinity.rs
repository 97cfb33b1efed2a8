//! Keeping calls that share an [`AffinityKey`] on one connection: the
//! bindings, and taking a slot on the bound connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tonic::Status;

use super::{Inner, Slot};
use crate::affinity::AffinityKey;
use crate::conn::Connection;
use crate::lock::lock;

impl Inner {
    /// Takes a stream slot on the connection `key` is bound to, or binds
    /// it to the connection a plain call would take (see
    /// [`acquire`](Self::acquire) for `wait_for_ready`).
    pub(crate) async fn acquire_for(
        self: &Arc<Self>,
        key: AffinityKey,
        wait_for_ready: bool,
    ) -> Result<Slot, Status> {
        if self.is_closed() {
            return Err(super::outage::closed_status());
        }
        if let Some(connection) = self.affinity.get(key) {
            connection.force_reserve();
            return Ok(Slot::new(connection, self.clone()));
        }
        let slot = self.acquire(wait_for_ready).await?;
        let bound = self.affinity.bind(key, slot.connection());
        if Arc::ptr_eq(&bound, slot.connection()) {
            return Ok(slot);
        }
        // Another call with the key bound it first: follow it there.
        drop(slot);
        bound.force_reserve();
        Ok(Slot::new(bound, self.clone()))
    }
}

/// Which connection each key is bound to.
#[derive(Debug, Default)]
pub(crate) struct Bindings {
    map: Mutex<HashMap<AffinityKey, Binding>>,
}

#[derive(Debug)]
struct Binding {
    connection: Weak<Connection>,
    last_used: Instant,
}

impl Bindings {
    /// The live connection `key` is bound to, if it still takes calls.
    pub(crate) fn get(&self, key: AffinityKey) -> Option<Arc<Connection>> {
        let mut map = lock(&self.map);
        let binding = map.get_mut(&key)?;
        let connection = binding.connection.upgrade()?;
        if !connection.link.is_ready() {
            return None;
        }
        binding.last_used = Instant::now();
        Some(connection)
    }

    /// Binds `key` to `connection` unless a call racing this one bound it
    /// first; returns the connection the key is bound to.
    pub(crate) fn bind(&self, key: AffinityKey, connection: &Arc<Connection>) -> Arc<Connection> {
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
