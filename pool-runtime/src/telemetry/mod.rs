//! What the pool tells about itself, in one place: the statistics it hands
//! out ([`PoolStats`](stats::PoolStats) and the rest), and, with feature
//! `metrics`, the same state and gRPC's per-call metrics through the
//! `metrics` crate's facade.
//!
//! | file | what it holds |
//! |---|---|
//! | `stats.rs` | the public statistics types |
//! | `published.rs` | the pool's and each endpoint's gauges and counters, gRPC A94's and A96's series: names, help texts, units, labels |
//! | `instruments.rs` | gRPC A66's per-call instruments, by method |
//! | `clock.rs` | the call's and its attempts' clocks that feed A66's instruments |
//! | `off.rs` | the same functions, doing nothing, without the feature |
//! | `xds_status.rs` | what an xDS pool knows of its control plane (`Pool::xds_status`, feature `xds`) |
//!
//! Adding a metric touches `published.rs` (or `instruments.rs`) alone; the
//! statistics are read from the pool's state by `state/snapshot.rs`.

mod clock;
#[cfg(feature = "metrics")]
mod instruments;
#[cfg(not(feature = "metrics"))]
mod off;
#[cfg(feature = "metrics")]
mod published;
pub(crate) mod stats;
#[cfg(feature = "xds")]
pub(crate) mod xds_status;

pub(crate) use self::clock::{AttemptClock, CallClock};
#[cfg(feature = "metrics")]
pub(crate) use self::instruments::{Instruments, MethodInstruments};
#[cfg(not(feature = "metrics"))]
pub(crate) use self::off::{
    Instruments, describe, publish, record_call_hedges, record_call_retries, record_disconnection,
    record_wait,
};
#[cfg(feature = "metrics")]
pub(crate) use self::published::{
    describe, publish, record_call_hedges, record_call_retries, record_disconnection, record_wait,
};
