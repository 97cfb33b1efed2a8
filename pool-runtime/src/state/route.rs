//! What an xDS route sets for every call it takes: its retries (gRPC A44,
//! in place of the service config's) and a bound on its deadline (A31's
//! `max_stream_duration` and `grpc_timeout_header_max`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Inner;
use crate::config::RetryPolicy;

/// A route's policy for its calls.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RoutePolicy {
    /// The route's retry policy (A44), or none.
    pub(crate) retry: Option<RetryPolicy>,
    /// A31: the longest a call may last.
    pub(crate) max_stream_duration: Option<Duration>,
    /// A31: when set, a call with a deadline of its own keeps it, capped
    /// at this (not at all for zero), instead of `max_stream_duration`.
    pub(crate) grpc_timeout_header_max: Option<Duration>,
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

impl Inner {
    /// Applies `policy` to every call from now on (none: the pool's own).
    #[cfg_attr(not(feature = "xds"), allow(dead_code))]
    pub(crate) fn set_route_policy(&self, policy: Option<RoutePolicy>) {
        let on = policy.is_some();
        self.calls.route.store(policy.map(Arc::new));
        self.calls.routed.store(on, Ordering::Release);
    }

    /// The route's policy for a call, when one is set (one load otherwise).
    #[inline]
    pub(crate) fn route_policy(&self) -> Option<Arc<RoutePolicy>> {
        if !self.calls.routed.load(Ordering::Acquire) {
            return None;
        }
        self.calls.route.load_full()
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
