//! When a call ends, and what it gives back.
//!
//! Every way a call ends early resets its HTTP/2 stream with
//! RST_STREAM(CANCEL), never END_STREAM (gRPC's PROTOCOL-HTTP2.md: END_STREAM
//! means "done sending", and a server may commit an upload that ends so):
//!
//! | the call ends because | where | how the stream is reset |
//! |---|---|---|
//! | the caller drops it before the response | `send.rs`: the future holding the `CallEnd` is dropped | `CallEnd::drop` ends the request body with CANCEL; h2 also resets a stream whose handles are all dropped |
//! | the caller drops the response (stream) | `body.rs`: `ResponseBody` drops its `CallEnd` and the stream | the same; h2 resets an open stream whose handles are gone with CANCEL |
//! | its deadline passes (`DEADLINE_EXCEEDED` locally, as gRPC) | `service.rs` (before the response) and `body.rs` (while reading it) | the same as a drop |
//! | the attempt fails and is not sent again | `send.rs`, `Call::again` | the `CallEnd` is dropped: the same |
//! | the attempt fails and is sent again | `send.rs`, `Call::again` | the stream already failed; `release_for_retry` keeps the body for the next attempt |
//! | the server ends the response first | `body.rs`, on trailers | a request stream still open is reset with CANCEL |
//!
//! The pool's `close()` cancels nothing: calls in flight finish. A
//! connection that breaks under a call takes its streams with it, and one
//! that receives GOAWAY lets them finish.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

use crate::conn::{BodyHandle, Connection};
use crate::state::Slot;
use crate::telemetry::AttemptClock;

/// Everything a call holds until it ends, given back in one place when it
/// is dropped: the stream slot (to the pool and the first waiting call),
/// and the request stream (ended, so that its sender stops sending it). It also
/// carries the call's deadline while the response is read.
///
/// A call ends when its response ends or fails, when its deadline passes,
/// or when the caller drops the call or its response.
#[derive(Debug)]
pub(crate) struct CallEnd {
    slot: Slot,
    /// `None` once the attempt was given up to send the request again.
    request: Option<Arc<BodyHandle>>,
    deadline: Option<Pin<Box<Sleep>>>,
    /// The attempt's clock, for gRPC A66's metrics (empty without them).
    clock: AttemptClock,
}

impl CallEnd {
    /// An attempt holding `slot` and sending the request behind `request`,
    /// timed by `clock`.
    pub(crate) fn new(slot: Slot, request: Arc<BodyHandle>, clock: AttemptClock) -> Self {
        Self {
            slot,
            request: Some(request),
            deadline: None,
            clock,
        }
    }

    /// Ends the call at `deadline` too.
    pub(crate) fn with_deadline(mut self, deadline: Option<Instant>) -> Self {
        self.deadline = deadline.map(|at| Box::pin(tokio::time::sleep_until(at)));
        self
    }

    /// The connection the call is on.
    pub(crate) fn connection(&self) -> &Arc<Connection> {
        self.slot.connection()
    }

    /// Takes the call's connection out of the rotation: it broke under it.
    pub(crate) fn retire_connection(&self) {
        self.slot.retire_connection();
    }

    /// Records the call's status for its endpoint's outlier detection, if
    /// its endpoint is one of several, and for the metrics.
    pub(crate) fn set_outcome(&mut self, code: tonic::Code) {
        self.slot.set_outcome(code);
        self.clock.set_code(code);
    }

    /// Records the status the trailers (or a trailers-only response's
    /// headers) carry, if the outcome is wanted.
    pub(crate) fn set_outcome_from(&mut self, headers: &http::HeaderMap) {
        if (self.slot.wants_outcome() || self.clock.wants_code())
            && let Some(status) = crate::conn::status_of(headers)
            && let Ok(code) = std::str::from_utf8(status).unwrap_or("").parse::<i32>()
        {
            self.set_outcome(tonic::Code::from_i32(code));
        }
    }

    /// Gives the slot back but keeps the request: it is sent again.
    pub(crate) fn release_for_retry(mut self) {
        self.request = None;
    }

    /// Whether the call's deadline has passed.
    pub(crate) fn deadline_passed(&self) -> bool {
        // The instant, not the timer: tokio's timer fires up to a
        // millisecond late, and a server's reset can come in between.
        self.deadline
            .as_ref()
            .is_some_and(|d| Instant::now() >= d.deadline())
    }

    /// Ready once the call's deadline has passed; never without one.
    pub(crate) fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self.deadline.as_mut() {
            Some(deadline) => deadline.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

impl Drop for CallEnd {
    fn drop(&mut self) {
        // The request stream first, then the slot (released when `slot`
        // drops right after): a waiting call that takes the slot must not
        // find this call's stream still open.
        if let Some(request) = self.request.take() {
            request.end();
        }
    }
}
