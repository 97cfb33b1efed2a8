//! The clocks behind gRPC A66's per-call metrics (feature `metrics`): one
//! per call, shared by its attempts, and one per attempt. Without the
//! feature both are empty types and every method is a no-op, so a call
//! carries nothing for them.
//!
//! A call's status is the last one an attempt learned (a retried attempt's
//! is replaced by the next one's; a hedged copy cancelled by the pool
//! learns none), or the final status the call returns; a call that ends
//! with none was dropped by its caller: `CANCELLED`. An attempt that learned
//! no status was cut short: by the call's deadline (`DEADLINE_EXCEEDED`,
//! as grpc-go and grpc-java record it) or else by its caller or a hedge
//! that won (`CANCELLED`); a `CANCELLED` learned past the deadline (a
//! server enforcing it too) counts as `DEADLINE_EXCEEDED` as well.

#[cfg(feature = "metrics")]
pub(crate) use self::on::{AttemptClock, CallClock};

#[cfg(not(feature = "metrics"))]
pub(crate) use self::off::{AttemptClock, CallClock};

#[cfg(feature = "metrics")]
mod on {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI32, Ordering};
    use std::time::Instant;

    use tonic::Code;

    use super::super::{Instruments, MethodInstruments};

    /// No status learned yet.
    const NONE: i32 = -1;

    /// One call's clock and last known status.
    struct Call {
        instruments: Arc<MethodInstruments>,
        started: Instant,
        deadline: Option<tokio::time::Instant>,
        code: AtomicI32,
    }

    impl Drop for Call {
        fn drop(&mut self) {
            let code = match self.code.load(Ordering::Relaxed) {
                NONE => Code::Cancelled,
                code => Code::from_i32(code),
            };
            self.instruments.call_ended(code, self.started.elapsed());
        }
    }

    /// The clock of a call, cloned into each of its attempts.
    #[derive(Clone)]
    pub(crate) struct CallClock(Arc<Call>);

    impl CallClock {
        /// Starts the clock of a call to `path`, due by `deadline`.
        pub(crate) fn start(
            instruments: &Instruments,
            path: &str,
            deadline: Option<tokio::time::Instant>,
        ) -> Self {
            Self(Arc::new(Call {
                instruments: instruments.of(path),
                started: Instant::now(),
                deadline,
                code: AtomicI32::new(NONE),
            }))
        }

        /// The call ends with `code`.
        pub(crate) fn set_code(&self, code: Code) {
            self.0.code.store(code as i32, Ordering::Relaxed);
        }

        /// Starts an attempt's clock; counts the attempt.
        pub(crate) fn attempt(&self) -> AttemptClock {
            self.0.instruments.attempt_started();
            AttemptClock {
                call: self.0.clone(),
                started: Instant::now(),
                code: None,
            }
        }
    }

    /// One attempt's clock; it records the attempt when dropped.
    pub(crate) struct AttemptClock {
        call: Arc<Call>,
        started: Instant,
        code: Option<Code>,
    }

    impl AttemptClock {
        /// The attempt ends with `code` (the first one learned stays).
        pub(crate) fn set_code(&mut self, code: Code) {
            self.code.get_or_insert(code);
        }

        /// Whether the attempt's status is wanted.
        pub(crate) fn wants_code(&self) -> bool {
            true
        }
    }

    impl Drop for AttemptClock {
        fn drop(&mut self) {
            // Cut short, or CANCELLED by a server that enforces the
            // deadline too (tonic's answer): past the deadline, the
            // deadline is what happened, as the call's status says.
            let code = match self.code {
                Some(code) if code != Code::Cancelled => code,
                learned => match self.call.deadline {
                    Some(at) if tokio::time::Instant::now() >= at => Code::DeadlineExceeded,
                    _ => learned.unwrap_or(Code::Cancelled),
                },
            };
            self.call
                .instruments
                .attempt_ended(code, self.started.elapsed());
            if let Some(code) = self.code {
                self.call.code.store(code as i32, Ordering::Relaxed);
            }
        }
    }

    impl std::fmt::Debug for AttemptClock {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("AttemptClock")
                .field("code", &self.code)
                .finish_non_exhaustive()
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod off {
    use tonic::Code;

    use super::super::Instruments;

    /// Nothing: the `metrics` feature is off. (Not `Copy`, so that the
    /// code that clones it reads alike with the feature on.)
    #[derive(Clone)]
    pub(crate) struct CallClock;

    impl CallClock {
        #[inline]
        pub(crate) fn start(
            _instruments: &Instruments,
            _path: &str,
            _deadline: Option<tokio::time::Instant>,
        ) -> Self {
            Self
        }

        #[inline]
        pub(crate) fn set_code(&self, _code: Code) {}

        #[inline]
        pub(crate) fn attempt(&self) -> AttemptClock {
            AttemptClock
        }
    }

    /// Nothing: the `metrics` feature is off.
    #[derive(Debug)]
    pub(crate) struct AttemptClock;

    impl AttemptClock {
        #[inline]
        pub(crate) fn set_code(&mut self, _code: Code) {}

        #[inline]
        pub(crate) fn wants_code(&self) -> bool {
            false
        }
    }
}
