//! Without feature `metrics`: the same functions as `published.rs` and
//! `instruments.rs`, doing nothing, so that callers need no `cfg` of their
//! own and a call carries nothing for metrics.

use std::time::Duration;

use super::stats::{EndpointStats, PoolStats};

/// Stands where the A66 instruments are with the feature.
#[derive(Debug, Default)]
pub(crate) struct Instruments;

impl Instruments {
    pub(crate) fn new(_target: &str) -> Self {
        Self
    }
}

#[inline]
pub(crate) fn describe() {}

#[inline]
pub(crate) fn publish(_pool: &str, _stats: &PoolStats, _endpoints: &[EndpointStats]) {}

#[inline]
pub(crate) fn record_call_retries(_pool: &str, _retries: u32, _transparent: u32, _delay: Duration) {
}

#[inline]
pub(crate) fn record_call_hedges(_pool: &str, _hedges: u32) {}

#[inline]
pub(crate) fn record_disconnection(_pool: &str, _broke: bool) {}

#[inline]
pub(crate) fn record_wait(_pool: &str, _waited: Duration) {}
