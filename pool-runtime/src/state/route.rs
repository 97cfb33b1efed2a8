//! Which route and cluster a call takes, and what the route sets for its
//! calls: its retries (gRPC A44, in place of the service config's), a
//! bound on its deadline (A31's `max_stream_duration` and
//! `grpc_timeout_header_max`) and how a call hashes onto a ring (A42). An
//! xDS pool routes every call (A28): its [`Router`] matches the call's
//! path and headers to a route, and the route's weights choose a cluster,
//! whose endpoints the call is picked from.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tonic::Status;

use super::Inner;
use super::circuit::CircuitBreaker;
use super::ring::HashPolicy;
use crate::config::RetryPolicy;

/// A route's policy for its calls.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct RoutePolicy {
    /// The route's retry policy (A44), or none.
    pub(crate) retry: Option<RetryPolicy>,
    /// A31: the longest a call may last.
    pub(crate) max_stream_duration: Option<Duration>,
    /// A31: when set, a call with a deadline of its own keeps it, capped
    /// at this (not at all for zero), instead of `max_stream_duration`.
    pub(crate) grpc_timeout_header_max: Option<Duration>,
    /// How a call's hash is made, for a ring-hash cluster (A42).
    pub(crate) hash_policy: Vec<HashPolicy>,
}

impl RoutePolicy {
    /// The call's timeout under this route, given its own (`None`: none).
    pub(crate) fn bound(&self, own: Option<Duration>) -> Option<Duration> {
        let cap = match (self.grpc_timeout_header_max, own) {
            (Some(max), Some(_)) => (!max.is_zero()).then_some(max),
            _ => self.max_stream_duration.filter(|d| !d.is_zero()),
        };
        match (own, cap) {
            (Some(own), Some(cap)) => Some(own.min(cap)),
            (own, cap) => own.or(cap),
        }
    }
}

/// Chooses each call's route and cluster (an xDS pool's route table).
pub(crate) trait Router: Send + Sync + std::fmt::Debug {
    /// The route and cluster a call to `path` with `headers` takes; a
    /// status for a call no route takes.
    fn route(&self, path: &str, headers: &http::HeaderMap) -> Result<Routed, Status>;
}

/// Where a call was routed: its route's policy, and its cluster.
#[derive(Debug, Clone)]
pub(crate) struct Routed {
    pub(crate) policy: Arc<RoutePolicy>,
    pub(crate) to: RoutedTo,
}

/// The cluster a call's attempts are picked in; carried in the request's
/// extensions from the route to the pick.
#[derive(Debug, Clone)]
pub(crate) struct RoutedTo {
    pub(crate) cluster: Arc<str>,
    /// The cluster's limit on attempts in flight (gRPC A32) and its drops.
    pub(crate) breaker: Arc<CircuitBreaker>,
    /// The call's hash by its route's `hash_policy` (A42), when they make
    /// one; a ring-hash cluster draws a random one otherwise.
    pub(crate) hash: Option<u64>,
}

impl super::queue::Scope for RoutedTo {
    fn key(&self) -> &str {
        &self.cluster
    }
}

/// The pool's router, boxed to sit behind one atomic pointer.
#[derive(Debug)]
pub(crate) struct Routing(pub(crate) Box<dyn Router>);

impl Inner {
    /// Routes every call through `router` from now on (none: calls are not
    /// routed).
    #[cfg_attr(not(feature = "xds"), allow(dead_code))]
    pub(crate) fn set_router(&self, router: Option<Box<dyn Router>>) {
        let on = router.is_some();
        self.calls
            .router
            .store(router.map(|r| Arc::new(Routing(r))));
        self.calls.routed.store(on, Ordering::Release);
    }

    /// Where a call goes, when the pool routes calls (one load otherwise).
    #[inline]
    pub(crate) fn route(
        &self,
        path: &str,
        headers: &http::HeaderMap,
    ) -> Result<Option<Routed>, Status> {
        if !self.calls.routed.load(Ordering::Acquire) {
            return Ok(None);
        }
        match self.calls.router.load().as_deref() {
            Some(routing) => routing.0.route(path, headers).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a31_bounds_the_deadline() {
        let s = Duration::from_secs;
        let route = |max: Option<u64>, header_max: Option<u64>| RoutePolicy {
            retry: None,
            max_stream_duration: max.map(s),
            grpc_timeout_header_max: header_max.map(s),
            hash_policy: Vec::new(),
        };
        // max_stream_duration alone: the shorter of it and the call's own.
        assert_eq!(route(Some(5), None).bound(None), Some(s(5)));
        assert_eq!(route(Some(5), None).bound(Some(s(9))), Some(s(5)));
        assert_eq!(route(Some(5), None).bound(Some(s(2))), Some(s(2)));
        // grpc_timeout_header_max caps a call's own deadline instead...
        assert_eq!(route(Some(5), Some(7)).bound(Some(s(9))), Some(s(7)));
        // ...or leaves it whole at 0...
        assert_eq!(route(Some(5), Some(0)).bound(Some(s(9))), Some(s(9)));
        // ...and a call without one takes max_stream_duration.
        assert_eq!(route(Some(5), Some(7)).bound(None), Some(s(5)));
        assert_eq!(route(None, None).bound(None), None);
    }
}
