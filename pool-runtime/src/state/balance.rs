//! Keeping connections spread over the endpoints: moving one towards an
//! endpoint that has none.

use super::Member;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{Inner, Retirement};

impl Inner {
    /// Moves one connection towards an endpoint that has none (it was
    /// added, or it recovered) while another has two or more: opens one to
    /// the empty endpoint and drains one of the fullest once it is up; at
    /// `max_connections`, drains one of the fullest first, and the pool
    /// regrows towards the empty endpoint as calls need.
    pub(super) fn rebalance(self: &Arc<Self>, now: Instant) {
        if self.is_closed() {
            return;
        }
        let endpoints = self.endpoints_in_use();
        let Some((fullest, most)) = self.fullest_endpoint(&endpoints, None) else {
            return;
        };
        if most < 2 {
            return;
        }
        let rotation = self.fleet.rotation.load();
        let Some(empty) = endpoints.iter().find(|endpoint| {
            !rotation.iter().any(|c| endpoint.is(&c.endpoint)) && endpoint.may_try(now)
        }) else {
            return;
        };
        if rotation.len() + self.connecting() < self.config.max_connections {
            if empty.try_claim(now) {
                // An attempt that ended since the rotation was read may
                // have filled it (see `still_wanted`).
                if self.connections_to(empty) > 0 {
                    empty.release_claim();
                    return;
                }
                self.fleet.connecting.fetch_add(1, Ordering::SeqCst);
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
    pub(super) fn fullest_endpoint(
        &self,
        endpoints: &[Arc<Member>],
        except: Option<&Arc<Member>>,
    ) -> Option<(Arc<Member>, usize)> {
        let rotation = self.fleet.rotation.load();
        endpoints
            .iter()
            .filter(|e| except.is_none_or(|except| !Arc::ptr_eq(e, except)))
            .map(|e| {
                let count = rotation.iter().filter(|c| e.is(&c.endpoint)).count();
                (e.clone(), count)
            })
            .max_by_key(|(_, count)| *count)
    }

    /// Drains the least busy connection to `endpoint`.
    pub(super) fn drain_one(self: &Arc<Self>, endpoint: &Arc<Member>) {
        let victim = self
            .fleet
            .rotation
            .load()
            .iter()
            .filter(|c| endpoint.is(&c.endpoint))
            .min_by_key(|c| c.in_flight())
            .map(|c| c.id);
        if let Some(id) = victim {
            self.retire(id, Retirement::Rebalanced);
        }
    }
}
