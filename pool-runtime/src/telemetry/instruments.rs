//! gRPC A66's per-call instruments (feature `metrics`): their handles are
//! taken from the recorder once per method and kept, so that a call pays
//! for no label, no allocation of a key and no lookup in the recorder.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `grpc.client.attempt.started` | counter | `grpc.method`, `grpc.target` |
//! | `grpc.client.attempt.duration` | histogram, seconds | and `grpc.status` |
//! | `grpc.client.call.duration` | histogram, seconds | and `grpc.status` |
//!
//! `grpc.target` is the pool's [`name`](crate::PoolConfig::name) (a pool
//! stands where gRPC has a channel); `grpc.method` is the call's
//! `package.Service/Method`, or `other` beyond [`MAX_METHODS`] methods (A66
//! bounds the label so); `grpc.status` is the status code's name (`OK`,
//! `UNAVAILABLE`, ...). The handles are taken at a method's first call: a
//! recorder installed after that sees nothing of the method.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use metrics::{Counter, Histogram, Label};
use tonic::Code;

use crate::code_names as status;
use crate::lock::lock;

const ATTEMPT_STARTED: &str = "grpc.client.attempt.started";
const ATTEMPT_DURATION: &str = "grpc.client.attempt.duration";
const CALL_DURATION: &str = "grpc.client.call.duration";

/// The most methods with labels of their own; more go to `other`.
pub(crate) const MAX_METHODS: usize = 1024;

/// One method's instruments; the histograms of a status are taken at its
/// first use, so a recorder shows only the statuses that happened.
pub(crate) struct MethodInstruments {
    labels: [Label; 2],
    started: Counter,
    attempt: [OnceLock<Histogram>; 17],
    call: [OnceLock<Histogram>; 17],
}

impl MethodInstruments {
    fn new(target: &str, method: &str) -> Self {
        let labels = [
            Label::new("grpc.method", method.to_owned()),
            Label::new("grpc.target", target.to_owned()),
        ];
        Self {
            started: metrics::counter!(ATTEMPT_STARTED, labels.iter()),
            labels,
            attempt: Default::default(),
            call: Default::default(),
        }
    }

    /// Counts an attempt that starts.
    pub(crate) fn attempt_started(&self) {
        self.started.increment(1);
    }

    /// Records an attempt that ended with `code` after `elapsed`.
    pub(crate) fn attempt_ended(&self, code: Code, elapsed: Duration) {
        self.histogram(&self.attempt, ATTEMPT_DURATION, code)
            .record(elapsed.as_secs_f64());
    }

    /// Records a call that ended with `code` after `elapsed`.
    pub(crate) fn call_ended(&self, code: Code, elapsed: Duration) {
        self.histogram(&self.call, CALL_DURATION, code)
            .record(elapsed.as_secs_f64());
    }

    fn histogram<'a>(
        &self,
        by_code: &'a [OnceLock<Histogram>; 17],
        name: &'static str,
        code: Code,
    ) -> &'a Histogram {
        let index = (code as usize).min(by_code.len() - 1);
        by_code[index].get_or_init(|| {
            let status = Label::new("grpc.status", status::code_name(code));
            let labels: Vec<Label> = self.labels.iter().cloned().chain([status]).collect();
            metrics::histogram!(name, labels)
        })
    }
}

/// The instruments of every method a pool has called, read without a lock.
pub(crate) struct Instruments {
    target: String,
    by_path: ArcSwap<HashMap<Box<str>, Arc<MethodInstruments>>>,
    /// Serializes additions (rare: a method's first call).
    adding: Mutex<()>,
    other: OnceLock<Arc<MethodInstruments>>,
}

impl Instruments {
    /// The instruments of the pool named `target`; describes the metrics.
    pub(crate) fn new(target: &str) -> Self {
        metrics::describe_counter!(ATTEMPT_STARTED, "call attempts started (gRPC A66)");
        metrics::describe_histogram!(
            ATTEMPT_DURATION,
            metrics::Unit::Seconds,
            "time from an attempt's start to its end (gRPC A66)"
        );
        metrics::describe_histogram!(
            CALL_DURATION,
            metrics::Unit::Seconds,
            "time from a call's start to its end, every attempt included (gRPC A66)"
        );
        Self {
            target: target.to_owned(),
            by_path: ArcSwap::default(),
            adding: Mutex::new(()),
            other: OnceLock::new(),
        }
    }

    /// The instruments of the method at `path` (`/package.Service/Method`).
    pub(crate) fn of(&self, path: &str) -> Arc<MethodInstruments> {
        if let Some(found) = self.by_path.load().get(path) {
            return found.clone();
        }
        let _adding = lock(&self.adding);
        let known = self.by_path.load_full();
        if let Some(found) = known.get(path) {
            return found.clone();
        }
        if known.len() >= MAX_METHODS {
            return self
                .other
                .get_or_init(|| Arc::new(MethodInstruments::new(&self.target, "other")))
                .clone();
        }
        let method = path.strip_prefix('/').unwrap_or(path);
        let instruments = Arc::new(MethodInstruments::new(&self.target, method));
        let mut grown = HashMap::clone(&known);
        grown.insert(path.into(), instruments.clone());
        self.by_path.store(Arc::new(grown));
        instruments
    }
}

impl std::fmt::Debug for Instruments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instruments")
            .field("methods", &self.by_path.load().len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_follow_the_codes() {
        assert_eq!(status::code_name(Code::Ok), "OK");
        assert_eq!(status::code_name(Code::Unavailable), "UNAVAILABLE");
        assert_eq!(status::code_name(Code::Unauthenticated), "UNAUTHENTICATED");
        assert_eq!(status::code_named("unavailable"), Some(Code::Unavailable));
    }

    #[test]
    fn methods_beyond_the_bound_share_other() {
        let instruments = Instruments::new("pool");
        let first = instruments.of("/a.B/M0");
        assert!(Arc::ptr_eq(&first, &instruments.of("/a.B/M0")));
        for i in 1..MAX_METHODS {
            instruments.of(&format!("/a.B/M{i}"));
        }
        let over = instruments.of("/a.B/Over");
        assert!(Arc::ptr_eq(&over, &instruments.of("/a.B/Another")));
        assert_eq!(over.labels[0].value(), "other");
    }
}
