//! The service config's method configs, indexed by the path a call names
//! (`/pkg.Service/Method`): the method's own, else its service's, else the
//! default (a name with neither service nor method), as gRPC A6 matches.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::{MethodConfig, RetryPolicy, RetryThrottling, ServiceConfig};

/// Each method config, by the names it gives, and the retry throttle.
#[derive(Debug, Default)]
pub(crate) struct MethodPolicies {
    by_method: HashMap<String, Arc<MethodConfig>>,
    by_service: HashMap<String, Arc<MethodConfig>>,
    default: Option<Arc<MethodConfig>>,
    throttle: Option<Throttle>,
    /// The pool's `idempotent_retry_policy`, as a method config.
    idempotent: Option<Arc<MethodConfig>>,
}

/// gRPC A6's retry throttling: a bucket of tokens, in thousandths (the
/// ratio has three decimal places), that failed attempts drain and
/// successes refill; retries and hedges stop while it is at or below half.
#[derive(Debug)]
pub(crate) struct Throttle {
    milli_tokens: AtomicU64,
    max: u64,
    ratio: u64,
}

impl Throttle {
    fn new(config: RetryThrottling) -> Self {
        let max = u64::from(config.max_tokens) * 1000;
        Self {
            milli_tokens: AtomicU64::new(max),
            max,
            ratio: (config.token_ratio * 1000.0).round() as u64,
        }
    }

    /// An attempt failed with a status its policy lists.
    pub(crate) fn failed(&self) {
        let _ = self
            .milli_tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_sub(1000))
            });
    }

    /// An attempt succeeded.
    pub(crate) fn succeeded(&self) {
        let _ = self
            .milli_tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some((t + self.ratio).min(self.max))
            });
    }

    /// Whether a retry or hedge may go out now.
    pub(crate) fn allows(&self) -> bool {
        self.milli_tokens.load(Ordering::Relaxed) > self.max / 2
    }
}

impl MethodPolicies {
    pub(crate) fn new(config: &ServiceConfig, idempotent: Option<&RetryPolicy>) -> Self {
        let mut policies = Self {
            throttle: config.retry_throttling.map(Throttle::new),
            idempotent: idempotent.map(|policy| {
                Arc::new(MethodConfig {
                    retry_policy: Some(policy.clone()),
                    ..MethodConfig::default()
                })
            }),
            ..Self::default()
        };
        for method in &config.method_config {
            let shared = Arc::new(method.clone());
            for name in &method.name {
                match (&name.service, &name.method) {
                    (Some(service), Some(method)) => {
                        let path = format!("/{service}/{method}");
                        policies.by_method.insert(path, shared.clone());
                    }
                    (Some(service), None) => {
                        policies.by_service.insert(service.clone(), shared.clone());
                    }
                    _ => policies.default = Some(shared.clone()),
                }
            }
        }
        policies
    }

    /// The policy of methods declared idempotent that the service config
    /// does not name.
    pub(crate) fn idempotent(&self) -> Option<&Arc<MethodConfig>> {
        self.idempotent.as_ref()
    }

    /// The retry throttle, when the service config has one.
    pub(crate) fn throttle(&self) -> Option<&Throttle> {
        self.throttle.as_ref()
    }

    /// The method config for a call to `path`, if any applies.
    #[inline]
    pub(crate) fn find(&self, path: &str) -> Option<&Arc<MethodConfig>> {
        if self.by_method.is_empty() && self.by_service.is_empty() {
            return self.default.as_ref();
        }
        if let Some(policy) = self.by_method.get(path) {
            return Some(policy);
        }
        let service = path.strip_prefix('/').and_then(|p| p.split_once('/'));
        service
            .and_then(|(service, _)| self.by_service.get(service))
            .or(self.default.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_method_then_its_service_then_the_default() {
        let config = ServiceConfig::from_json(
            r#"{"methodConfig": [
                {"name": [{"service": "shop.Orders", "method": "GetOrder"}], "timeout": "1s"},
                {"name": [{"service": "shop.Orders"}], "timeout": "2s"},
                {"name": [{}], "timeout": "3s"}
            ]}"#,
        )
        .unwrap();
        let policies = MethodPolicies::new(&config, None);
        let timeout = |path| {
            policies
                .find(path)
                .and_then(|p| p.timeout)
                .map(|t| t.as_secs())
        };
        assert_eq!(timeout("/shop.Orders/GetOrder"), Some(1));
        assert_eq!(timeout("/shop.Orders/PlaceOrder"), Some(2));
        assert_eq!(timeout("/shop.Stock/Count"), Some(3));
        assert_eq!(timeout("not a path"), Some(3));
        assert!(
            MethodPolicies::default()
                .find("/shop.Orders/GetOrder")
                .is_none()
        );
    }

    #[test]
    fn the_throttle_stops_retries_at_half_and_successes_refill_it() {
        let throttle = Throttle::new(RetryThrottling {
            max_tokens: 10,
            token_ratio: 0.5,
        });
        for _ in 0..4 {
            throttle.failed();
        }
        assert!(throttle.allows(), "6 of 10 tokens");
        throttle.failed();
        assert!(!throttle.allows(), "5 of 10: at half");
        throttle.succeeded();
        assert!(throttle.allows(), "5.5 of 10");
        for _ in 0..100 {
            throttle.succeeded();
        }
        assert_eq!(
            throttle.milli_tokens.load(Ordering::Relaxed),
            10_000,
            "never above max"
        );
    }
}
