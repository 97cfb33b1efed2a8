//! Where connections go: the endpoints the pool connects to, which one the
//! next connection attempt goes to, and moving connections between them so
//! that they stay spread.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::endpoint::Endpoint;
use crate::maintenance;
use crate::pool::{Shared, push_onto, take_from};
use crate::rotation::Retirement;

impl Shared {
    /// Adds `endpoint` unless one with its key is in the pool already.
    pub(crate) fn add_endpoint(self: &Arc<Self>, endpoint: Endpoint) -> bool {
        {
            let _live = self.live();
            if self.endpoints.load().iter().any(|e| e.key == endpoint.key) {
                return false;
            }
            tracing::info!(endpoint = %endpoint.key, "endpoint added");
            push_onto(&self.endpoints, Arc::new(endpoint));
        }
        self.notify();
        self.grow(0);
        self.rebalance(Instant::now());
        true
    }

    /// Removes the endpoint with `key` and drains its connections.
    pub(crate) fn remove_endpoint(self: &Arc<Self>, key: &str) -> bool {
        let removed = {
            let _live = self.live();
            let Some(removed) = take_from(&self.endpoints, |e| e.key == key) else {
                return false;
            };
            removed.remove();
            removed
        };
        tracing::info!(endpoint = %removed.key, "endpoint removed");
        self.retire_endpoint(&removed, Retirement::Removed);
        self.notify();
        self.grow(0);
        true
    }

    /// Takes every connection to `endpoint` out of rotation.
    pub(crate) fn retire_endpoint(self: &Arc<Self>, endpoint: &Arc<Endpoint>, why: Retirement) {
        let ids: Vec<u64> = self
            .rotation
            .load()
            .iter()
            .filter(|c| Arc::ptr_eq(&c.endpoint, endpoint))
            .map(|c| c.id)
            .collect();
        for id in ids {
            self.retire(id, why);
        }
    }

    /// Takes `endpoint` out of rotation after a failed health check; it is
    /// tried again after the usual backoff.
    pub(crate) fn endpoint_unhealthy(
        self: &Arc<Self>,
        endpoint: &Arc<Endpoint>,
        error: crate::error::BoxError,
    ) {
        tracing::warn!(endpoint = %endpoint.key, error = %error, "endpoint failed its health check");
        let retry_at = endpoint.unhealthy(error, &self.config.backoff);
        self.retire_endpoint(endpoint, Retirement::Unhealthy);
        tokio::spawn(maintenance::retry_at(Arc::downgrade(self), retry_at));
    }

    /// Claims the endpoint with the fewest connections among those that may
    /// be tried now.
    ///
    /// An attempt under way counts as a connection, and only the endpoints
    /// with the fewest are tried: while the emptiest endpoint is busy
    /// connecting, the pool waits for that attempt rather than pile onto a
    /// fuller one. Endpoints waiting out a backoff are left out.
    pub(crate) fn claim_endpoint(&self) -> Option<Arc<Endpoint>> {
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

    /// Moves one connection towards an endpoint that has none (it was
    /// added, or it recovered) while another has two or more: opens one to
    /// the empty endpoint and drains one of the fullest once it is up; at
    /// `max_connections`, drains one of the fullest first, and the pool
    /// regrows towards the empty endpoint as calls need.
    pub(crate) fn rebalance(self: &Arc<Self>, now: Instant) {
        if self.is_closed() {
            return;
        }
        let endpoints = self.endpoints.load();
        let Some((fullest, most)) = self.fullest_endpoint(&endpoints, None) else {
            return;
        };
        if most < 2 {
            return;
        }
        let rotation = self.rotation.load();
        let Some(empty) = endpoints.iter().find(|endpoint| {
            !rotation.iter().any(|c| Arc::ptr_eq(&c.endpoint, endpoint)) && endpoint.may_try(now)
        }) else {
            return;
        };
        if rotation.len() + self.connecting() < self.config.max_connections {
            if empty.try_claim(now) {
                self.connecting.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(self.clone().open(empty.clone(), true));
            }
        } else if !empty.is_failing() {
            // A busy pool gives up a working connection only for an
            // endpoint that has not failed; a failing one is tried again
            // when there is room.
            self.drain_one(&fullest);
        }
    }

    /// The endpoint with the most connections in rotation, and how many,
    /// leaving out `except`.
    pub(crate) fn fullest_endpoint(
        &self,
        endpoints: &[Arc<Endpoint>],
        except: Option<&Arc<Endpoint>>,
    ) -> Option<(Arc<Endpoint>, usize)> {
        let rotation = self.rotation.load();
        endpoints
            .iter()
            .filter(|e| except.is_none_or(|except| !Arc::ptr_eq(e, except)))
            .map(|e| {
                let count = rotation
                    .iter()
                    .filter(|c| Arc::ptr_eq(&c.endpoint, e))
                    .count();
                (e.clone(), count)
            })
            .max_by_key(|(_, count)| *count)
    }

    /// Drains the least busy connection to `endpoint`.
    pub(crate) fn drain_one(self: &Arc<Self>, endpoint: &Arc<Endpoint>) {
        let victim = self
            .rotation
            .load()
            .iter()
            .filter(|c| Arc::ptr_eq(&c.endpoint, endpoint))
            .min_by_key(|c| c.in_flight())
            .map(|c| c.id);
        if let Some(id) = victim {
            self.retire(id, Retirement::Rebalanced);
        }
    }
}
