//! When the pool opens a connection, and to which endpoint: every endpoint
//! gets its `min_connections_per_endpoint` as soon as it appears; beyond
//! that, only when every connection is at its server's stream limit and
//! calls wait (gRPC A105), to the endpoint with the fewest connections;
//! and to a full endpoint that is clearly faster than the one the pick had
//! to settle for (`grow_endpoint`).

use super::Member;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{Inner, Subchannel};
use crate::conn::DEFAULT_MAX_STREAMS;

impl Inner {
    /// Opens connections while an endpoint is below its minimum, the pool
    /// is below its own, or calls wait beyond what the free streams and the
    /// attempts under way will serve; `extra` counts demand not in the
    /// queue (a caller of `ready`).
    pub(crate) fn grow(self: &Arc<Self>, extra: usize) {
        while !self.is_closed() {
            let Some((endpoint, rebalance)) = self.next_attempt(extra) else {
                return;
            };
            if !self.still_wanted(&endpoint, extra) {
                endpoint.release_claim();
                continue;
            }
            self.fleet.connecting.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(self.clone().open(endpoint, rebalance));
        }
    }

    /// Opens one more connection to `subchannel`'s endpoint, unless an
    /// attempt is under way or backing off there, or the endpoint or the
    /// pool is at its maximum.
    pub(super) fn grow_endpoint(self: &Arc<Self>, subchannel: &Subchannel) {
        let cap = self.endpoint_cap();
        // Attempts first, then the rotation (see `needs_connection`).
        let connecting = self.connecting();
        let open = self.fleet.rotation.load().len() + connecting;
        if self.is_closed()
            || open >= self.config.max_connections
            || subchannel.connections.load().len() >= cap
        {
            return;
        }
        // The pick runs on the caller's task; a pick made outside a runtime
        // (a benchmark's thread) cannot spawn, and grows nothing.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !subchannel.endpoint.try_claim(Instant::now()) {
            return;
        }
        self.fleet.connecting.fetch_add(1, Ordering::SeqCst);
        runtime.spawn(self.clone().open(subchannel.endpoint.clone(), false));
    }

    /// Claims the endpoint the next connection attempt goes to, if one
    /// should start now, and whether the new connection replaces one of the
    /// fullest endpoint's: an endpoint back to its minimum while the pool
    /// already meets `min_connections` (another endpoint took the extra
    /// connection while this one was out) drains that extra once it is up.
    ///
    /// An attempt under way counts as a connection. Endpoints waiting out a
    /// backoff are left out, and so are those at
    /// `max_connections_per_endpoint`. Beyond the minimums, only the
    /// endpoints with the fewest connections are tried: while the emptiest
    /// one is busy connecting, the pool waits for that attempt rather than
    /// pile onto a fuller one.
    fn next_attempt(&self, extra: usize) -> Option<(Arc<Member>, bool)> {
        let endpoints = self.endpoints_in_use();
        let now = Instant::now();
        let attempts: Vec<(bool, &Arc<Member>)> = endpoints
            .iter()
            .filter_map(|e| Some((e.connecting_unless_backing_off(now)?, e)))
            .collect();
        // Read after the attempts: an attempt stops counting as under way
        // only once its connection is in the rotation, so one or the other
        // is seen, never neither.
        let rotation = self.fleet.rotation.load();
        // Each endpoint's connections, counted in one pass: a pool of
        // thousands of endpoints grows in time linear in them.
        let mut open: std::collections::HashMap<*const crate::conn::Endpoint, usize> =
            std::collections::HashMap::with_capacity(attempts.len());
        for connection in rotation.iter() {
            *open.entry(Arc::as_ptr(&connection.endpoint)).or_default() += 1;
        }
        let counts: Vec<(usize, &Arc<Member>)> = attempts
            .into_iter()
            .map(|(connecting, endpoint)| {
                let open = open
                    .get(&Arc::as_ptr(&endpoint.endpoint))
                    .copied()
                    .unwrap_or(0);
                (open + usize::from(connecting), endpoint)
            })
            .collect();
        let below_floor = counts
            .iter()
            .filter(|(count, _)| *count < self.config.min_connections_per_endpoint)
            .find(|(_, endpoint)| endpoint.try_claim(now));
        if let Some((_, endpoint)) = below_floor {
            let total = rotation.len() + self.connecting();
            return Some((Arc::clone(endpoint), total >= self.config.min_connections));
        }
        if !self.needs_connection(extra) {
            return None;
        }
        let cap = self.endpoint_cap();
        let fewest = counts.iter().map(|(count, _)| *count).min()?;
        if fewest >= cap {
            return None;
        }
        counts
            .into_iter()
            .filter(|(count, _)| *count == fewest)
            .map(|(_, endpoint)| endpoint)
            .find(|endpoint| endpoint.try_claim(now))
            .map(|endpoint| (Arc::clone(endpoint), false))
    }

    /// Whether `endpoint`, claimed, still wants the attempt it was chosen
    /// for. It was chosen on counts read before the claim, and an attempt
    /// that ended in between may have brought the very connection this one
    /// would (the maintenance tick's, racing the build's: a fresh pool
    /// opened two about once in 30,000 on a busy host). While the claim is
    /// held no other attempt adds to the endpoint, so what is read now
    /// stands.
    fn still_wanted(&self, endpoint: &Member, extra: usize) -> bool {
        let open = self.connections_to(endpoint);
        open < self.config.min_connections_per_endpoint
            || (open < self.endpoint_cap() && self.needs_connection(extra))
    }

    /// The most connections one endpoint may have:
    /// `max_connections_per_endpoint`, or else the pool's `max_connections`.
    fn endpoint_cap(&self) -> usize {
        self.config
            .max_connections_per_endpoint
            .unwrap_or(self.config.max_connections)
    }

    /// The connections to `endpoint` in the rotation.
    pub(super) fn connections_to(&self, endpoint: &Member) -> usize {
        self.fleet
            .rotation
            .load()
            .iter()
            .filter(|connection| endpoint.is(&connection.endpoint))
            .count()
    }

    /// Whether the pool as a whole wants one more connection: below
    /// `min_connections`, or calls wait beyond what the free streams and
    /// the attempts under way will serve, and below `max_connections`.
    fn needs_connection(&self, extra: usize) -> bool {
        // Attempts first, then the rotation: an attempt stops counting only
        // once its connection is in the rotation, so the two reads see it
        // in one or both, never in neither (read the other way round, a
        // connection joining in between was missed, and a fresh pool's
        // first call opened a second connection about once in thirty).
        let connecting = self.connecting();
        let rotation = self.fleet.rotation.load();
        let open = rotation.len();
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
            0 => DEFAULT_MAX_STREAMS.min(self.fleet.stream_cap),
            n => rotation.iter().map(|c| c.capacity()).sum::<usize>() / n,
        };
        let coming = connecting.saturating_mul(per_connection.max(1));
        let waiting = self.waiters.len();
        if waiting + extra <= coming {
            return false;
        }
        // Calls that a free stream will serve are no demand: a call joins
        // the queue before it serves itself from the rotation, and growth
        // that ran in between would open a second connection for it (see
        // the test `a_call_that_a_free_stream_will_serve_opens_no_connection`).
        waiting.saturating_sub(self.free_streams(&rotation)) + extra > coming
    }

    /// The streams the pick can hand out now: on the ready connections of
    /// the endpoints it draws from (ejected ones left out), or, with one
    /// endpoint, of `rotation`.
    fn free_streams(&self, rotation: &[Arc<crate::conn::Connection>]) -> usize {
        let on = |connections: &[Arc<crate::conn::Connection>]| -> usize {
            connections.iter().map(|c| c.free_streams()).sum()
        };
        if !self.fleet.choosing.load(Ordering::Acquire) {
            return on(rotation);
        }
        let now = Instant::now();
        self.fleet
            .subchannels
            .load()
            .iter()
            .filter(|subchannel| !subchannel.is_ejected(now))
            .map(|subchannel| on(&subchannel.connections.load()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    /// An HTTP/2 server on loopback that accepts connections and holds
    /// them, and a pool of it with its first connection up.
    async fn pool_with_one_connection() -> crate::Pool {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(mut connection) = h2::server::handshake(socket).await else {
                        return;
                    };
                    while let Some(Ok(_stream)) = connection.accept().await {}
                });
            }
        });
        let pool = crate::Pool::builder()
            .endpoint(format!("http://{address}"))
            .build()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), pool.ready())
            .await
            .unwrap()
            .unwrap();
        pool
    }

    /// An endpoint chosen below its minimum, whose connection joined
    /// before the claim was taken (another attempt's, ending in between),
    /// no longer wants an attempt; one without a connection does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claim_taken_after_the_connection_joined_is_given_up() {
        let pool = pool_with_one_connection().await;
        let inner = &pool.inner;
        let endpoint = inner.endpoints_in_use().remove(0);
        assert!(!inner.still_wanted(&endpoint, 0));
        // A second endpoint that takes the TCP connection and never answers
        // it: no connection of its own joins.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = format!("http://{}", silent.local_addr().unwrap());
        pool.add_endpoint(&target).unwrap();
        let added = inner
            .endpoints_in_use()
            .into_iter()
            .find(|member| member.endpoint.key.contains(&target[7..]))
            .unwrap();
        assert!(inner.still_wanted(&added, 0));
    }

    /// A call joins the queue a moment before it serves itself from the
    /// rotation; growth that runs in between (the maintenance tick, a
    /// connection's admission) must see the free stream that will serve
    /// it, not demand for a second connection.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_that_a_free_stream_will_serve_opens_no_connection() {
        let pool = pool_with_one_connection().await;
        let inner = &pool.inner;
        let waiting = inner.waiters.enqueue(16, false, None).unwrap();
        inner.grow(0);
        assert_eq!(
            inner.connecting(),
            0,
            "a second connection was opened for a call its first one will serve"
        );
        // The free stream does serve it.
        inner.serve_waiters();
        let slot = tokio::time::timeout(Duration::from_secs(10), waiting.grant)
            .await
            .unwrap()
            .unwrap();
        assert!(slot.is_ok());
        assert_eq!(pool.stats().connects_total, 1);
    }
}
