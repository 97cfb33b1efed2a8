//! When the pool opens a connection, and to which endpoint (gRPC A105: only
//! when every connection is at its server's stream limit and calls wait).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::Inner;
use crate::conn::{DEFAULT_MAX_STREAMS, Endpoint};

impl Inner {
    /// Opens connections while the pool is below its minimum or calls wait
    /// beyond what the attempts under way will serve; `extra` counts demand
    /// not in the queue (a caller of `ready`).
    pub(crate) fn grow(self: &Arc<Self>, extra: usize) {
        while !self.is_closed() && self.needs_connection(extra) {
            let Some(endpoint) = self.claim_endpoint() else {
                return;
            };
            self.connecting.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(self.clone().open(endpoint, false));
        }
    }

    /// Whether one more connection attempt should start now.
    fn needs_connection(&self, extra: usize) -> bool {
        let rotation = self.rotation.load();
        let open = rotation.len();
        let connecting = self.connecting();
        if open + connecting >= self.config.max_connections {
            return false;
        }
        if open + connecting < self.config.min_connections {
            return true;
        }
        // Count what the attempts under way will bring (Envoy does the
        // same) so a burst does not open a herd of connections; a new
        // connection is expected to allow as many streams as the open ones.
        let per_connection = match open {
            0 => DEFAULT_MAX_STREAMS.min(self.stream_cap),
            n => rotation.iter().map(|c| c.capacity()).sum::<usize>() / n,
        };
        let coming = connecting.saturating_mul(per_connection.max(1));
        self.waiters.len() + extra > coming
    }

    /// Claims the endpoint with the fewest connections among those that may
    /// be tried now.
    ///
    /// An attempt under way counts as a connection, and only the endpoints
    /// with the fewest are tried: while the emptiest endpoint is busy
    /// connecting, the pool waits for that attempt rather than pile onto a
    /// fuller one. Endpoints waiting out a backoff are left out.
    fn claim_endpoint(&self) -> Option<Arc<Endpoint>> {
        let rotation = self.rotation.load();
        let endpoints = self.endpoints.load();
        let now = Instant::now();
        let loads: Vec<(usize, &Arc<Endpoint>)> = endpoints
            .iter()
            .filter_map(|endpoint| {
                let connecting = endpoint.connecting_unless_backing_off(now)?;
                let open = rotation
                    .iter()
                    .filter(|c| Arc::ptr_eq(&c.endpoint, endpoint))
                    .count();
                Some((open + usize::from(connecting), endpoint))
            })
            .collect();
        let fewest = loads.iter().map(|(load, _)| *load).min()?;
        loads
            .into_iter()
            .filter(|(load, _)| *load == fewest)
            .map(|(_, endpoint)| endpoint)
            .find(|endpoint| endpoint.try_claim(now))
            .cloned()
    }
}
