//! Ending a call's request stream when the call ends.
//!
//! hyper sends a request body from a task of its own until the body ends.
//! A streaming request whose caller gave up (dropped the call, or its
//! response) would keep that task, and the HTTP/2 stream, alive for as long
//! as the caller's stream stays open; h2 then counts the stream against the
//! server's limit while the pool does not, and once enough such streams pile
//! up, every new request on the connection queues inside hyper forever. So
//! each call's request body ends as soon as its stream slot is given back.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};
use tonic::Status;

/// Whether a call has ended, shared by its request body and its stream slot.
#[derive(Debug, Default)]
pub(crate) struct CallEnd {
    ended: AtomicBool,
    waker: AtomicWaker,
}

impl CallEnd {
    /// Marks the call ended and wakes its request body.
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
}

/// A request body that ends when its call does.
#[derive(Debug)]
pub(crate) struct RequestBody {
    inner: tonic::body::Body,
    end: Arc<CallEnd>,
}

impl RequestBody {
    pub(crate) fn new(inner: tonic::body::Body, end: Arc<CallEnd>) -> Self {
        Self { inner, end }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.end.has_ended() {
            return Poll::Ready(None);
        }
        self.end.waker.register(cx.waker());
        // Checked again after registering, so an end between the two checks
        // is not missed.
        if self.end.has_ended() {
            return Poll::Ready(None);
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.end.has_ended() || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
