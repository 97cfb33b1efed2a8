//! A TCP stream that does not leave what it read unacknowledged for long
//! (`tcp_quickack`).
//!
//! Why: Linux delays an ACK by up to 40 ms when it expects to carry it on
//! the reply, and a server that leaves Nagle's algorithm on holds its next
//! small write until the last one is acknowledged. A client that read a
//! response and has nothing to send (its callers wait for the rest of what
//! the server holds back) meets such a server in 40 ms stalls: in the
//! benchmark's S6, small calls' p99 was 47 ms and downloads ran at half
//! speed.
//!
//! How: an ACK rides on the client's next write, free, as it usually does;
//! only when a burst of reads ends (the read that finds the socket empty),
//! the callers it woke have run without writing, and nothing is written
//! for [`ACK_DELAY`] after that does the connection's driver ask for the
//! ACK, and the next read sets TCP_QUICKACK, which sends it at once (the
//! kernel clears the flag by itself). Setting it after every
//! burst instead cost 5 to 15 % more CPU per call at 8 callers, for ACKs
//! that the requests would have carried.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// How long what was read may wait for a write to carry its ACK.
pub(crate) const ACK_DELAY: Duration = Duration::from_millis(1);

/// What the stream and the connection's driver tell each other about the
/// ACK of what was read.
#[derive(Debug, Default)]
pub(crate) struct AckSignal {
    /// Set by the stream: a burst of reads ended and no write has carried
    /// its ACK yet.
    waiting: AtomicBool,
    /// Set by the driver once the ACK waited [`ACK_DELAY`]: the stream's
    /// next read sends it.
    due: AtomicBool,
}

/// A connected TCP stream that sends the ACK of what it read when no write
/// carried it within [`ACK_DELAY`] (with `quickack` on).
#[derive(Debug)]
pub(crate) struct Tcp {
    stream: TcpStream,
    ack: Option<Arc<AckSignal>>,
    /// Bytes were read that no write has acknowledged.
    unacked: bool,
}

impl Tcp {
    pub(crate) fn new(stream: TcpStream, quickack: bool) -> Self {
        let supported = cfg!(any(target_os = "linux", target_os = "android"));
        Self {
            stream,
            ack: (quickack && supported).then(Arc::default),
            unacked: false,
        }
    }

    /// The signal the connection's driver watches, when `quickack` is on.
    pub(crate) fn ack_signal(&self) -> Option<Arc<AckSignal>> {
        self.ack.clone()
    }

    /// Sends the pending ACK now; a failure only means the ACK waits.
    fn ack_now(&self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let _ = socket2::SockRef::from(&self.stream).set_tcp_quickack(true);
    }

    /// A write carried the ACK of everything read so far.
    fn wrote(&mut self, written: &Poll<io::Result<usize>>) {
        if let (Some(ack), Poll::Ready(Ok(1..))) = (&self.ack, written) {
            self.unacked = false;
            ack.waiting.store(false, Ordering::Relaxed);
        }
    }
}

impl AsyncRead for Tcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        let Some(ack) = &this.ack else {
            return polled;
        };
        match polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => this.unacked = true,
            Poll::Pending if this.unacked => {
                if ack.due.swap(false, Ordering::Relaxed) {
                    this.unacked = false;
                    ack.waiting.store(false, Ordering::Relaxed);
                    this.ack_now();
                } else {
                    ack.waiting.store(true, Ordering::Relaxed);
                }
            }
            _ => {}
        }
        polled
    }
}

impl AsyncWrite for Tcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.wrote(&written);
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.wrote(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The driver's side: a timer armed when an ACK starts waiting.
pub(crate) struct AckTimer {
    signal: Arc<AckSignal>,
    timer: Pin<Box<Sleep>>,
    state: AckState,
}

/// Where the ACK of the last burst of reads is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckState {
    /// None waits, or the timer is not needed yet.
    Idle,
    /// One waits; the callers the response woke run first.
    AfterCallers,
    /// One still waited after they ran: the timer runs.
    Armed,
}

/// What the driver is to do about the ACK of what was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckPoll {
    /// Nothing now.
    Waiting,
    /// Poll again once the tasks already woken have run (their requests
    /// usually carry the ACK).
    AfterCallers,
    /// The ACK waited [`ACK_DELAY`]: poll the connection, whose read sends it.
    Due,
}

impl AckTimer {
    pub(crate) fn new(signal: Arc<AckSignal>) -> Self {
        Self {
            signal,
            timer: Box::pin(tokio::time::sleep(ACK_DELAY)),
            state: AckState::Idle,
        }
    }

    fn waiting(&self) -> bool {
        self.signal.waiting.load(Ordering::Relaxed)
    }

    /// Where the ACK of the last burst of reads is, arming the timer once
    /// the callers had their turn and none of their writes carried it.
    ///
    /// The turn first, because a closed-loop caller's next request nearly
    /// always carries the ACK: arming a timer for every response cost one
    /// wake-up of the runtime (the timer's registration) and one expiry a
    /// millisecond, about 9 % of a call's CPU at one call in flight (S11).
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> AckPoll {
        match self.state {
            AckState::Idle if !self.waiting() => return AckPoll::Waiting,
            AckState::Idle => {
                self.state = AckState::AfterCallers;
                return AckPoll::AfterCallers;
            }
            AckState::AfterCallers if !self.waiting() => {
                self.state = AckState::Idle;
                return AckPoll::Waiting;
            }
            AckState::AfterCallers => {
                self.timer.as_mut().reset(Instant::now() + ACK_DELAY);
                self.state = AckState::Armed;
            }
            AckState::Armed => {}
        }
        if self.timer.as_mut().poll(cx).is_pending() {
            return AckPoll::Waiting;
        }
        self.state = AckState::Idle;
        if !self.waiting() {
            return AckPoll::Waiting;
        }
        self.signal.due.store(true, Ordering::Relaxed);
        AckPoll::Due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn poll(timer: &mut AckTimer) -> AckPoll {
        std::future::poll_fn(|cx| Poll::Ready(timer.poll(cx))).await
    }

    #[tokio::test]
    async fn the_ack_waits_for_the_callers_turn_then_for_its_delay() {
        let signal = Arc::new(AckSignal::default());
        let mut timer = AckTimer::new(signal.clone());
        assert_eq!(poll(&mut timer).await, AckPoll::Waiting);

        // A burst of reads ended: the callers run first, and the request
        // one of them wrote carried the ACK.
        signal.waiting.store(true, Ordering::Relaxed);
        assert_eq!(poll(&mut timer).await, AckPoll::AfterCallers);
        signal.waiting.store(false, Ordering::Relaxed);
        assert_eq!(poll(&mut timer).await, AckPoll::Waiting);
        assert_eq!(timer.state, AckState::Idle);

        // None of them wrote: the timer runs, and once it is out the ACK
        // is due.
        signal.waiting.store(true, Ordering::Relaxed);
        assert_eq!(poll(&mut timer).await, AckPoll::AfterCallers);
        assert_eq!(poll(&mut timer).await, AckPoll::Waiting);
        assert_eq!(timer.state, AckState::Armed);
        tokio::time::sleep(ACK_DELAY * 5).await;
        assert_eq!(poll(&mut timer).await, AckPoll::Due);
        assert!(signal.due.load(Ordering::Relaxed));
        assert_eq!(timer.state, AckState::Idle);
    }
}
