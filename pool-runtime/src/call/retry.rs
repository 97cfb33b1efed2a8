//! Whether a failed attempt is sent again: gRPC's transparent retry of a
//! request the server never processed, and the retries the user allowed for
//! idempotent calls. Shaped like `tower::retry::Policy`: a decision per
//! failure, and the budget it spends.

use tonic::Code;

/// Marks a request as a unary call: with `retry_idempotent`, the pool reads
/// such a response whole before handing it on, so that it can retry a call
/// whose connection was lost mid-response.
#[derive(Debug, Clone, Copy)]
pub struct UnaryCall;

/// How a failed attempt failed, as far as retrying goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// The request never reached the server's application: it never left
    /// the client, or the server refused it unprocessed (REFUSED_STREAM, or
    /// GOAWAY before the stream; RFC 9113, section 8.7).
    Unprocessed,
    /// The request left the client and the attempt failed with `code`.
    Sent(Code),
}

/// The budget a retry draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Budget {
    Transparent,
    Idempotent,
}

/// The retries a call has left.
#[derive(Debug)]
pub(super) struct RetryPolicy {
    /// One transparent retry per call, as gRPC's.
    transparent_left: u32,
    idempotent_left: u32,
}

impl RetryPolicy {
    /// A call's policy when the pool allows `idempotent_retries`.
    pub(super) fn new(idempotent_retries: u32) -> Self {
        Self {
            transparent_left: 1,
            idempotent_left: idempotent_retries,
        }
    }

    /// The budget a retry of `failure` would spend, if it may be retried.
    /// Only `UNAVAILABLE` (a reset or lost connection) is retried after the
    /// request was sent, and only when the user declared calls idempotent.
    pub(super) fn retry(&self, failure: Failure) -> Option<Budget> {
        match failure {
            Failure::Unprocessed if self.transparent_left > 0 => Some(Budget::Transparent),
            Failure::Sent(Code::Unavailable) if self.idempotent_left > 0 => {
                Some(Budget::Idempotent)
            }
            _ => None,
        }
    }

    /// Spends one retry from `budget`.
    pub(super) fn spend(&mut self, budget: Budget) {
        let left = match budget {
            Budget::Transparent => &mut self.transparent_left,
            Budget::Idempotent => &mut self.idempotent_left,
        };
        *left = left.saturating_sub(1);
    }

    /// Whether any retry is left, so whether the request's head is worth
    /// copying.
    pub(super) fn any_left(&self) -> bool {
        self.transparent_left + self.idempotent_left > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_transparent_retry_and_the_idempotent_ones_allowed() {
        let mut policy = RetryPolicy::new(2);
        assert_eq!(
            policy.retry(Failure::Unprocessed),
            Some(Budget::Transparent)
        );
        policy.spend(Budget::Transparent);
        assert_eq!(policy.retry(Failure::Unprocessed), None);
        assert_eq!(policy.retry(Failure::Sent(Code::Internal)), None);
        for _ in 0..2 {
            assert_eq!(
                policy.retry(Failure::Sent(Code::Unavailable)),
                Some(Budget::Idempotent)
            );
            policy.spend(Budget::Idempotent);
        }
        assert_eq!(policy.retry(Failure::Sent(Code::Unavailable)), None);
        assert!(!policy.any_left());
    }

    #[test]
    fn nothing_sent_is_resent_without_idempotent_retries() {
        let policy = RetryPolicy::new(0);
        assert_eq!(policy.retry(Failure::Sent(Code::Unavailable)), None);
    }
}
