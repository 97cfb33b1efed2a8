//! Whether a failed attempt is sent again: gRPC's transparent retry of a
//! request the server never processed, and the retry policy of the call's
//! method (gRPC A6): the service config's, or the pool's policy for methods
//! the proto declares idempotent. Shaped like `tower::retry::Policy`: a
//! decision per failure, and the budget it spends.

use std::sync::Arc;
use std::time::Duration;

use tonic::Code;

use crate::config::MethodConfig;

/// Marks a request of a method its proto declares idempotent (or free of
/// side effects), as generated clients do: the pool's
/// `idempotent_retry_policy` applies to it, and a unary call's response is
/// read whole before it is handed on, so that a call whose connection was
/// lost mid-response can be sent again too.
#[derive(Debug, Clone, Copy)]
pub struct Idempotent {
    /// Whether the method is unary (one request, one response).
    pub unary: bool,
}

/// How a failed attempt failed, as far as retrying goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// The request never reached the server's application: it never left
    /// the client, or the server refused it unprocessed (REFUSED_STREAM, or
    /// GOAWAY before the stream; RFC 9113, section 8.7).
    Unprocessed,
    /// The request left the client and the attempt failed with `code`,
    /// before any response headers (a transport error, or a trailers-only
    /// response: gRPC A6 commits a call at its first response headers).
    Sent(Code),
}

/// The budget a retry draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Budget {
    Transparent,
    /// The method's retry policy: sent after a backoff.
    Configured,
}

/// The server's word on retrying, from `grpc-retry-pushback-ms` (gRPC A6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pushback {
    /// No pushback: the policy's backoff applies.
    None,
    /// Retry after exactly this delay.
    After(Duration),
    /// Do not retry (a negative or malformed value).
    Stop,
}

impl Pushback {
    /// Reads `grpc-retry-pushback-ms` from a response's headers.
    pub(super) fn from_headers(headers: &http::HeaderMap) -> Self {
        match headers.get("grpc-retry-pushback-ms") {
            None => Pushback::None,
            Some(value) => match value.to_str().ok().and_then(|v| v.parse::<u64>().ok()) {
                Some(ms) => Pushback::After(Duration::from_millis(ms)),
                None => Pushback::Stop,
            },
        }
    }
}

/// The retries a call has left.
#[derive(Debug)]
pub(super) struct RetryPolicy {
    /// One transparent retry per call, as gRPC's.
    transparent_left: u32,
    /// The method's config when it has a `retryPolicy`, with the attempts
    /// made under it and the ceiling of the next backoff.
    configured: Option<(Arc<MethodConfig>, u32, Duration)>,
}

impl RetryPolicy {
    /// A call's policy: transparent retries, and `method`'s `retryPolicy`
    /// if it has one.
    pub(super) fn new(method: Option<&Arc<MethodConfig>>) -> Self {
        let configured = method.filter(|m| m.retry_policy.is_some()).map(|m| {
            let initial = m
                .retry_policy
                .as_ref()
                .map_or(Duration::ZERO, |r| r.initial_backoff);
            (m.clone(), 1, initial)
        });
        Self {
            transparent_left: 1,
            configured,
        }
    }

    /// Whether the method's retry policy lists `code` (whether or not
    /// attempts are left): such a failure drains the retry throttle.
    pub(super) fn lists(&self, code: Code) -> bool {
        self.configured.as_ref().is_some_and(|(method, _, _)| {
            method
                .retry_policy
                .as_ref()
                .is_some_and(|p| p.retryable_status_codes.contains(&code))
        })
    }

    /// Whether the method has a retry policy of the service config.
    pub(super) fn is_configured(&self) -> bool {
        self.configured.is_some()
    }

    /// The budget a retry of `failure` would spend, if it may be retried.
    /// After the request was sent, only the method's `retryableStatusCodes`
    /// are retried, while attempts are left.
    pub(super) fn retry(&self, failure: Failure) -> Option<Budget> {
        match failure {
            Failure::Unprocessed if self.transparent_left > 0 => Some(Budget::Transparent),
            // gRPC A6: a transparent retry is not an attempt; once it is
            // spent, a request refused unprocessed is an UNAVAILABLE attempt
            // for the retry policy, as grpc-go's `shouldRetry` has it.
            Failure::Unprocessed => self.retry(Failure::Sent(Code::Unavailable)),
            Failure::Sent(code) => {
                let (method, attempts, _) = self.configured.as_ref()?;
                let policy = method.retry_policy.as_ref()?;
                (*attempts < policy.max_attempts && policy.retryable_status_codes.contains(&code))
                    .then_some(Budget::Configured)
            }
        }
    }

    /// Spends one retry from `budget`; the wait before sending it again.
    ///
    /// gRPC A6: the n-th retry waits a random time below
    /// min(`initialBackoff` x `backoffMultiplier`^(n-1), `maxBackoff`), or
    /// exactly the server's pushback, after which the ceiling starts over.
    pub(super) fn spend(&mut self, budget: Budget, pushback: Pushback) -> Duration {
        match budget {
            Budget::Transparent => {
                self.transparent_left = self.transparent_left.saturating_sub(1);
                Duration::ZERO
            }
            Budget::Configured => {
                let Some((method, attempts, ceiling)) = &mut self.configured else {
                    return Duration::ZERO;
                };
                let Some(policy) = method.retry_policy.as_ref() else {
                    return Duration::ZERO;
                };
                *attempts += 1;
                if let Pushback::After(delay) = pushback {
                    *ceiling = policy.initial_backoff;
                    return delay;
                }
                let wait = ceiling.mul_f64(fastrand::f64());
                *ceiling = ceiling
                    .mul_f64(policy.backoff_multiplier)
                    .min(policy.max_backoff);
                wait
            }
        }
    }

    /// Whether any retry is left, so whether the request's head is worth
    /// copying.
    pub(super) fn any_left(&self) -> bool {
        let configured = self
            .configured
            .as_ref()
            .is_some_and(|(method, attempts, _)| {
                method
                    .retry_policy
                    .as_ref()
                    .is_some_and(|p| *attempts < p.max_attempts)
            });
        configured || self.transparent_left > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MethodConfig, RetryPolicy as Configured};

    #[test]
    fn one_transparent_retry_and_nothing_sent_is_resent_without_a_policy() {
        let mut policy = RetryPolicy::new(None);
        assert_eq!(
            policy.retry(Failure::Unprocessed),
            Some(Budget::Transparent)
        );
        policy.spend(Budget::Transparent, Pushback::None);
        assert_eq!(
            policy.retry(Failure::Unprocessed),
            None,
            "no policy: no attempt"
        );
        assert_eq!(policy.retry(Failure::Sent(Code::Unavailable)), None);
        assert!(!policy.any_left());
    }

    fn configured(max_attempts: u32) -> Arc<MethodConfig> {
        Arc::new(MethodConfig {
            retry_policy: Some(Configured {
                max_attempts,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_millis(250),
                backoff_multiplier: 2.0,
                retryable_status_codes: vec![Code::Unavailable, Code::Aborted],
            }),
            ..MethodConfig::default()
        })
    }

    #[test]
    fn the_configured_policy_retries_its_codes_up_to_max_attempts_with_capped_backoff() {
        let method = configured(4);
        let mut policy = RetryPolicy::new(Some(&method));
        assert_eq!(policy.retry(Failure::Sent(Code::InvalidArgument)), None);
        let mut waits = Vec::new();
        for _ in 0..3 {
            assert_eq!(
                policy.retry(Failure::Sent(Code::Aborted)),
                Some(Budget::Configured)
            );
            waits.push(policy.spend(Budget::Configured, Pushback::None));
        }
        assert_eq!(
            policy.retry(Failure::Sent(Code::Unavailable)),
            None,
            "4 attempts made"
        );
        let ceilings = [100, 200, 250];
        for (wait, ceiling) in waits.iter().zip(ceilings) {
            assert!(*wait <= Duration::from_millis(ceiling), "{waits:?}");
        }
    }

    #[test]
    fn a_refusal_after_the_transparent_retry_is_an_unavailable_attempt() {
        let method = configured(3);
        let mut policy = RetryPolicy::new(Some(&method));
        assert_eq!(
            policy.retry(Failure::Unprocessed),
            Some(Budget::Transparent)
        );
        policy.spend(Budget::Transparent, Pushback::None);
        for _ in 0..2 {
            assert_eq!(policy.retry(Failure::Unprocessed), Some(Budget::Configured));
            policy.spend(Budget::Configured, Pushback::None);
        }
        assert_eq!(policy.retry(Failure::Unprocessed), None, "3 attempts made");
    }

    #[test]
    fn pushback_sets_the_delay() {
        let method = configured(3);
        let mut policy = RetryPolicy::new(Some(&method));
        let after = Pushback::After(Duration::from_millis(300));
        assert_eq!(
            policy.spend(Budget::Configured, after),
            Duration::from_millis(300)
        );
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-retry-pushback-ms", "-1".parse().unwrap());
        assert_eq!(Pushback::from_headers(&headers), Pushback::Stop);
        headers.insert("grpc-retry-pushback-ms", "300".parse().unwrap());
        assert_eq!(Pushback::from_headers(&headers), after);
    }
}
