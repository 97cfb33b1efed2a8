//! The request body the pool sends, and the caller's handle on it
//! ([`BodyHandle`]): ending it when the call ends, taking it back to send
//! it again.
//!
//! A streaming request's body is sent by a task of its own (see
//! `exchange.rs`) until the body ends. A call whose caller gave up (dropped
//! the call, or its response) would keep that task, and the HTTP/2 stream,
//! alive for as long as the caller's stream stays open; h2 then counts the
//! stream against the server's limit while the pool does not, and once
//! enough such streams pile up, every new request on the connection waits
//! forever. So each call's request body ends as soon as the call ends, and
//! it ends with an error that resets the stream with CANCEL: to the server,
//! a cancelled upload must never look finished.
//!
//! The body also keeps what it sent of a small request (up to
//! [`REPLAY_LIMIT`]), as gRPC's transparent retry does, so that a request the
//! server refused unprocessed can be sent again even after it was read.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};
use tonic::Status;

use crate::lock::lock;

/// The most request bytes kept for sending a refused request again; a
/// larger request is not retried once any of it was read.
pub(crate) const REPLAY_LIMIT: usize = 64 * 1024;

/// How long a retry waits for the sender to give the request body back.
const RECLAIM_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// The caller's handle on a request body being sent: it ends the body when
/// the call ends, and takes it back to send it again.
#[derive(Default)]
pub(crate) struct BodyHandle {
    ended: AtomicBool,
    waker: AtomicWaker,
    /// The body as it can be sent again, left here when the sender drops
    /// it: the untouched body if none of it was read, or the bytes read if
    /// that was the whole (small) body.
    unread: Mutex<Option<ReplayBody>>,
    /// Whether the sender has dropped the current request body, whether a retry
    /// waits for that, and the signal for it. Sequentially consistent: either
    /// the waiter sees the drop, or the drop sees the waiter.
    body_dropped: AtomicBool,
    reclaiming: AtomicBool,
    dropped: tokio::sync::Notify,
}

impl std::fmt::Debug for BodyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyHandle")
            .field("ended", &self.has_ended())
            .finish_non_exhaustive()
    }
}

impl BodyHandle {
    /// Ends the request body: the call is over. A body still open is then
    /// reset with RST_STREAM(CANCEL), never ended with END_STREAM (see
    /// [`cancelled`]).
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// The request body to send again, if the sender dropped one that can be.
    pub(crate) fn take_unread(&self) -> Option<tonic::body::Body> {
        let replay = lock(&self.unread).take()?;
        Some(match replay {
            ReplayBody {
                chunks,
                rest: Some(rest),
            } if chunks.is_empty() => rest,
            replay => tonic::body::Body::new(replay),
        })
    }

    /// The request body to send again, waiting briefly for the sender to
    /// drop it: a lost connection fails the response before the task that
    /// sends the body has noticed.
    pub(crate) async fn reclaim(&self) -> Option<tonic::body::Body> {
        let dropped = self.dropped.notified();
        tokio::pin!(dropped);
        dropped.as_mut().enable();
        self.reclaiming.store(true, Ordering::SeqCst);
        if !self.body_dropped.load(Ordering::SeqCst) {
            let _ = tokio::time::timeout(RECLAIM_WAIT, dropped).await;
        }
        self.reclaiming.store(false, Ordering::SeqCst);
        self.take_unread()
    }
}

/// The error a request body ends with when its call ended first.
///
/// gRPC's PROTOCOL-HTTP2.md: a client cancels a call with RST_STREAM(CANCEL);
/// END_STREAM means "done sending", and a server may commit an upload that
/// ends so. The sender resets a stream whose body fails with CANCEL; the
/// status carries the reason among its sources too.
fn cancelled() -> Status {
    let mut status = Status::cancelled("the call ended before its request stream did");
    status.set_source(Arc::new(h2::Error::from(h2::Reason::CANCEL)));
    status
}

/// A request body that ends when its call does, and that hands itself back
/// if it is dropped unread.
#[derive(Debug)]
pub(crate) struct RequestBody {
    /// `None` only after `drop` has handed the body back.
    inner: Option<tonic::body::Body>,
    /// What the sender has read, while it stays under [`REPLAY_LIMIT`].
    sent: Replay,
    end: Arc<BodyHandle>,
}

/// The part of a body already read, kept for sending it again.
#[derive(Debug, Default)]
enum Replay {
    /// Nothing read yet: the body itself can be sent again.
    #[default]
    Unread,
    /// These chunks were read; `complete` once the body ended.
    Chunks {
        chunks: VecDeque<Bytes>,
        size: usize,
        complete: bool,
    },
    /// Too large, or not plain data: not sent again.
    Lost,
}

impl Replay {
    fn record(&mut self, frame: &Frame<Bytes>) {
        let Some(data) = frame.data_ref() else {
            *self = Replay::Lost;
            return;
        };
        if let Replay::Unread = self {
            *self = Replay::Chunks {
                chunks: VecDeque::new(),
                size: 0,
                complete: false,
            };
        }
        if let Replay::Chunks { chunks, size, .. } = self {
            *size += data.len();
            if *size > REPLAY_LIMIT {
                *self = Replay::Lost;
            } else {
                chunks.push_back(data.clone());
            }
        }
    }

    fn finish(&mut self) {
        match self {
            Replay::Unread => {
                *self = Replay::Chunks {
                    chunks: VecDeque::new(),
                    size: 0,
                    complete: true,
                }
            }
            Replay::Chunks { complete, .. } => *complete = true,
            Replay::Lost => {}
        }
    }
}

impl RequestBody {
    /// Ready once the call has ended (the body then fails with CANCEL).
    pub(crate) fn poll_call_end(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.end.has_ended() {
            return Poll::Ready(());
        }
        self.end.waker.register(cx.waker());
        if self.end.has_ended() {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    pub(crate) fn new(inner: tonic::body::Body, end: Arc<BodyHandle>) -> Self {
        end.body_dropped.store(false, Ordering::SeqCst);
        Self {
            inner: Some(inner),
            sent: Replay::Unread,
            end,
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        // Kept as parts: most calls never need them, so no body is built.
        let again = match std::mem::take(&mut self.sent) {
            Replay::Unread => self.inner.take().map(|rest| ReplayBody {
                chunks: VecDeque::new(),
                rest: Some(rest),
            }),
            // What was read, then whatever of the body was not read yet.
            Replay::Chunks {
                chunks, complete, ..
            } => {
                let rest = if complete { None } else { self.inner.take() };
                Some(ReplayBody { chunks, rest })
            }
            Replay::Lost => None,
        };
        if let Some(again) = again {
            *lock(&self.end.unread) = Some(again);
        }
        self.end.body_dropped.store(true, Ordering::SeqCst);
        if self.end.reclaiming.load(Ordering::SeqCst) {
            self.end.dropped.notify_waiters();
        }
    }
}

/// A body made of the chunks a first attempt read, followed by what it did
/// not read.
pub(crate) struct ReplayBody {
    chunks: VecDeque<Bytes>,
    rest: Option<tonic::body::Body>,
}

impl Body for ReplayBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(chunk) = self.chunks.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && self.rest.as_ref().is_none_or(Body::is_end_stream)
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
            return Poll::Ready(Some(Err(cancelled())));
        }
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => this.sent.record(frame),
            Poll::Ready(None) => this.sent.finish(),
            Poll::Ready(Some(Err(_))) => this.sent = Replay::Lost,
            Poll::Pending => {
                // Only a body that waits needs the call's end to wake it. A
                // unary request is read whole in the caller's own task, which
                // its end must not wake again for nothing (one task poll a
                // call, S11).
                this.end.waker.register(cx.waker());
                // Checked again after registering, so an end between the
                // two checks is not missed.
                if this.end.has_ended() {
                    return Poll::Ready(Some(Err(cancelled())));
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        // Only the caller's own body ends the stream cleanly: a call that
        // ended early must not let the sender mark its last frame END_STREAM.
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::task::{Wake, Waker};

    use super::*;

    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll_once(body: &mut RequestBody, wakes: &Arc<Wakes>) -> bool {
        let waker = Waker::from(wakes.clone());
        Pin::new(body)
            .poll_frame(&mut Context::from_waker(&waker))
            .is_pending()
    }

    #[test]
    fn the_calls_end_wakes_a_body_that_waits_and_not_one_read_whole() {
        // A unary request, read whole by the caller's own task: the call's
        // end has nobody to wake.
        let handle = Arc::new(BodyHandle::default());
        let full = http_body_util::Full::new(Bytes::from_static(b"hello"));
        let mut body = RequestBody::new(tonic::body::Body::new(full), handle.clone());
        let wakes = Arc::new(Wakes::default());
        while !body.is_end_stream() {
            assert!(!poll_once(&mut body, &wakes));
        }
        handle.end();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);

        // A body waiting for its next frame is woken by the end, and then
        // fails with CANCEL.
        let handle = Arc::new(BodyHandle::default());
        // A request body whose next frame never comes (a client stream the
        // caller is still writing).
        let waiting = http_body_util::StreamBody::new(futures_util::stream::pending::<
            Result<Frame<Bytes>, Status>,
        >());
        let mut body = RequestBody::new(tonic::body::Body::new(waiting), handle.clone());
        assert!(poll_once(&mut body, &wakes));
        handle.end();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        let waker = Waker::from(wakes.clone());
        let polled = Pin::new(&mut body).poll_frame(&mut Context::from_waker(&waker));
        assert!(
            matches!(polled, Poll::Ready(Some(Err(status))) if status.code() == tonic::Code::Cancelled)
        );
    }
}
