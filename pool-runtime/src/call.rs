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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};
use tonic::Status;

/// Whether a call has ended, shared by its request body and its stream slot.
#[derive(Default)]
pub(crate) struct CallEnd {
    ended: AtomicBool,
    waker: AtomicWaker,
    /// A body that hyper dropped before reading any of it, kept so that a
    /// request the server refused can be sent again.
    unread: Mutex<Option<tonic::body::Body>>,
}

impl std::fmt::Debug for CallEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallEnd")
            .field("ended", &self.has_ended())
            .finish_non_exhaustive()
    }
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

    /// The request body, if hyper dropped it without reading any of it.
    pub(crate) fn take_unread(&self) -> Option<tonic::body::Body> {
        self.unread.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// A request body that ends when its call does, and that hands itself back
/// if it is dropped unread.
#[derive(Debug)]
pub(crate) struct RequestBody {
    /// `None` only after `drop` has handed the body back.
    inner: Option<tonic::body::Body>,
    read: bool,
    end: Arc<CallEnd>,
}

impl RequestBody {
    pub(crate) fn new(inner: tonic::body::Body, end: Arc<CallEnd>) -> Self {
        Self {
            inner: Some(inner),
            read: false,
            end,
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if !self.read
            && let Some(inner) = self.inner.take()
        {
            *self.end.unread.lock().unwrap_or_else(|p| p.into_inner()) = Some(inner);
        }
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
        self.read = true;
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.end.has_ended() || self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}
