//! An xDS pool's router (gRPC A28): the routes of the target's virtual
//! host in order, the first that matches a call takes it, and its
//! clusters' weights choose the cluster.

use std::sync::Arc;

use tonic::Status;

use super::matcher::RouteMatcher;
use crate::state::circuit::CircuitBreaker;
use crate::state::ring::hash_by;
use crate::state::route::{RoutePolicy, Routed, RoutedTo, Router};

/// The routes of the target's virtual host.
#[derive(Debug)]
pub(crate) struct XdsRouter {
    pub(crate) routes: Vec<RouteRule>,
    /// The pool's own random id, for `io.grpc.channel_id` hash policies.
    pub(crate) channel_id: u64,
}

/// One route: what it matches, its clusters, and its policy.
#[derive(Debug)]
pub(crate) struct RouteRule {
    pub(crate) matcher: RouteMatcher,
    /// Each cluster, its breaker, and the running sum of the weights up to
    /// it.
    pub(crate) clusters: Vec<WeightedCluster>,
    pub(crate) policy: Arc<RoutePolicy>,
}

/// A route's cluster with its breaker and its weights' running sum.
#[derive(Debug)]
pub(crate) struct WeightedCluster {
    pub(crate) name: Arc<str>,
    pub(crate) breaker: Arc<CircuitBreaker>,
    pub(crate) up_to: u64,
}

impl RouteRule {
    /// A cluster drawn by weight (gRPC A28's `weighted_clusters`).
    fn draw(&self) -> Option<&WeightedCluster> {
        let total = self.clusters.last()?.up_to;
        if total == 0 {
            return None;
        }
        let point = fastrand::u64(..total);
        self.clusters.iter().find(|c| point < c.up_to)
    }
}

impl Router for XdsRouter {
    fn route(&self, path: &str, headers: &http::HeaderMap) -> Result<Routed, Status> {
        let Some(rule) = self
            .routes
            .iter()
            .find(|r| r.matcher.matches(path, headers))
        else {
            // grpc-go fails such a call UNAVAILABLE too.
            return Err(Status::unavailable(format!(
                "no xDS route of the target's virtual host matches {path}"
            )));
        };
        let cluster = rule
            .draw()
            .ok_or_else(|| Status::unavailable("the xDS route has no cluster"))?;
        Ok(Routed {
            policy: Arc::clone(&rule.policy),
            to: RoutedTo {
                cluster: Arc::clone(&cluster.name),
                breaker: Arc::clone(&cluster.breaker),
                hash: hash_by(&rule.policy.hash_policy, headers, self.channel_id),
            },
        })
    }
}
