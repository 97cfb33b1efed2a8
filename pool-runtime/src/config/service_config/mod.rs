//! gRPC's service config (gRPC A6 and `grpc/service_config/service_config.proto`),
//! as plain data: per-method timeouts, wait-for-ready, retry and hedging
//! policies, message size limits, and retry throttling.
//!
//! [`ServiceConfig::from_json`] reads the JSON form every gRPC
//! implementation reads; the fields keep gRPC's meaning.

mod json;

use std::time::Duration;

use tonic::Code;

use super::check::{check_duration, invalid};
use crate::error::Error;

/// gRPC's service config: policies per method, found by a call's path
/// (`/pkg.Service/Method`), so that they apply to every client over the
/// pool, generated or plain tonic.
///
/// ```
/// let config = pooled_client::ServiceConfig::from_json(r#"{
///   "methodConfig": [{
///     "name": [{"service": "shop.Orders", "method": "GetOrder"}],
///     "timeout": "0.5s",
///     "retryPolicy": {
///       "maxAttempts": 3, "initialBackoff": "0.1s", "maxBackoff": "1s",
///       "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]
///     }
///   }]
/// }"#)?;
/// let pool = pooled_client::Pool::builder()
///     .endpoint("http://127.0.0.1:50051")
///     .service_config(config)
///     .build()?;
/// # Ok::<(), pooled_client::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceConfig {
    /// The method configs, in the order given. Default: none.
    pub method_config: Vec<MethodConfig>,
    /// The token bucket that stops retries and hedges when most calls
    /// fail. Default: none (no throttling).
    pub retry_throttling: Option<RetryThrottling>,
    /// `loadBalancingConfig`'s `ring_hash_experimental` (gRPC A42 and A76):
    /// calls hash onto a ring of the endpoints. Default: none (the pool's
    /// least request).
    pub ring_hash: Option<RingHash>,
}

/// Ring hash (gRPC A42) on a pool without xDS, as gRPC A76 configures
/// it: each call's hash is its `request_hash_header`'s value (xxHash64,
/// as grpc-go hashes it), so calls with one key go to one server while it
/// is up, and a grpc-go client with the same config sends the key to the
/// same server.
///
/// ```
/// let config = pooled_client::ServiceConfig::from_json(r#"{
///   "loadBalancingConfig": [{"ring_hash_experimental": {"requestHashHeader": "x-user"}}]
/// }"#)?;
/// assert_eq!(config.ring_hash.unwrap().request_hash_header.as_deref(), Some("x-user"));
/// # Ok::<(), pooled_client::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingHash {
    /// The ring's least size. Default: 1,024.
    pub min_ring_size: u64,
    /// The ring's largest size, at most 4,096 (grpc-go's cap). Default:
    /// 4,096.
    pub max_ring_size: u64,
    /// The request header whose values (joined with `,`) make a call's
    /// hash; a call without it, or with none named, takes a random hash
    /// (grpc-go fails such calls without xDS). Default: none.
    pub request_hash_header: Option<String>,
}

impl Default for RingHash {
    fn default() -> Self {
        Self {
            min_ring_size: 1024,
            max_ring_size: 4096,
            request_hash_header: None,
        }
    }
}

/// The policy of the methods it names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MethodConfig {
    /// The methods it applies to: a service and method, a whole service
    /// (no method), or every method (one name with neither). Default: none.
    pub name: Vec<MethodName>,
    /// The deadline of each call, unless the call has a shorter one.
    /// Default: none.
    pub timeout: Option<Duration>,
    /// Whether a call waits for a connection while no endpoint is
    /// reachable, instead of failing at once with `UNAVAILABLE`.
    /// Default: none (false).
    pub wait_for_ready: Option<bool>,
    /// How failed calls are retried. Default: none.
    pub retry_policy: Option<RetryPolicy>,
    /// How calls are hedged. Default: none.
    pub hedging_policy: Option<HedgingPolicy>,
    /// The largest request message, in bytes. Default: none.
    pub max_request_message_bytes: Option<usize>,
    /// The largest response message, in bytes. Default: none.
    pub max_response_message_bytes: Option<usize>,
}

/// A method config's name: `service` set and `method` set names one
/// method; `service` alone names every method of the service; neither
/// names every method.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MethodName {
    /// The fully qualified service, such as `shop.Orders`. Default: none.
    pub service: Option<String>,
    /// The method, such as `GetOrder`. Default: none.
    pub method: Option<String>,
}

/// gRPC A6's retry policy: a failed attempt whose status is retryable is
/// sent again after an exponential backoff with full jitter, until
/// `max_attempts`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included: at least 2; above 5 counts as
    /// 5, as in gRPC. Default: 3.
    pub max_attempts: u32,
    /// The ceiling of the first backoff (each backoff is random below its
    /// ceiling). Default: 100 ms.
    pub initial_backoff: Duration,
    /// The highest ceiling. Default: 1 s.
    pub max_backoff: Duration,
    /// How the ceiling grows from one attempt to the next. Default: 2.
    pub backoff_multiplier: f64,
    /// The statuses that are retried. Default: `UNAVAILABLE`.
    pub retryable_status_codes: Vec<Code>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            backoff_multiplier: 2.0,
            retryable_status_codes: vec![Code::Unavailable],
        }
    }
}

/// gRPC A6's hedging policy: another copy of the call every
/// `hedging_delay`, until `max_attempts`; the first response wins.
#[derive(Debug, Clone, PartialEq)]
pub struct HedgingPolicy {
    /// Copies in all, the first included: at least 2; above 5 counts as 5.
    /// Default: 2.
    pub max_attempts: u32,
    /// The wait before each further copy. Default: zero (all at once).
    pub hedging_delay: Duration,
    /// The statuses after which the other copies go on (any other status
    /// ends the call). Default: none.
    pub non_fatal_status_codes: Vec<Code>,
}

impl Default for HedgingPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 2,
            hedging_delay: Duration::ZERO,
            non_fatal_status_codes: Vec::new(),
        }
    }
}

/// gRPC A6's retry throttling: a bucket of `max_tokens` tokens; each failed
/// attempt takes one, each success gives back `token_ratio`; retries and
/// hedges stop while the bucket is at or below half.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryThrottling {
    /// The bucket's size, above 0 and at most 1000. Default: 10.
    pub max_tokens: u32,
    /// What a success gives back, above 0. Default: 0.1.
    pub token_ratio: f64,
}

impl Default for RetryThrottling {
    fn default() -> Self {
        Self {
            max_tokens: 10,
            token_ratio: 0.1,
        }
    }
}

impl RetryPolicy {
    /// Checks a policy given in code, as the `idempotent_retry_policy`
    /// setting, as gRPC A6 checks one in JSON (`json.rs`).
    pub(crate) fn check(&self) -> Result<(), Error> {
        let policy = self;
        if !(2..=5).contains(&policy.max_attempts) {
            return Err(invalid(
                "idempotent_retry_policy max_attempts",
                policy.max_attempts,
                "must be from 2 to 5",
            ));
        }
        check_duration(
            "idempotent_retry_policy initial_backoff",
            policy.initial_backoff,
        )?;
        check_duration("idempotent_retry_policy max_backoff", policy.max_backoff)?;
        if !(policy.backoff_multiplier > 0.0 && policy.backoff_multiplier.is_finite()) {
            return Err(invalid(
                "idempotent_retry_policy backoff_multiplier",
                policy.backoff_multiplier,
                "must be a number above zero",
            ));
        }
        if policy.retryable_status_codes.is_empty() {
            return Err(invalid(
                "idempotent_retry_policy retryable_status_codes",
                &policy.retryable_status_codes,
                "must name at least one status",
            ));
        }
        Ok(())
    }
}
