//! The task that drives one HTTP/2 connection: h2's connection future,
//! keepalive PINGs and their timeout, the adaptive window, and the timer
//! that has an ACK no write carried sent (`tcp_quickack`, see `tcp.rs`).
//!
//! Keepalive (tonic's `http2_keep_alive_interval`, `keep_alive_timeout`,
//! `keep_alive_while_idle`): every interval a PING goes out, unless the
//! connection has no open stream and `keep_alive_while_idle` is off; a PING
//! unanswered within the timeout ends the connection.
//!
//! The adaptive window (`http2_adaptive_window`) estimates the
//! bandwidth-delay product as hyper does: the response bytes read while a
//! PING is out are what the path holds per round trip; when they reach two
//! thirds of the window, the window doubles (up to 16 MiB), for the
//! connection and for every stream.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tokio::time::{Instant, Sleep};

use super::error::TransportError;
use super::frames::WatchedIo;
use super::link::Link;
use super::tcp::{AckPoll, AckSignal, AckTimer};
use super::transport::Transport;

/// The largest window the adaptive window grows to.
const MAX_WINDOW: u32 = 16 << 20;

/// The settings of the connection's PINGs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pings {
    /// Keepalive: the interval, the timeout, and whether idle connections
    /// are pinged too.
    pub(crate) keepalive: Option<(Duration, Duration, bool)>,
    /// The adaptive window's starting size, when it is on.
    pub(crate) adaptive_from: Option<u32>,
}

/// Drives a connection until it ends; an error says why it failed.
pub(crate) struct Driver {
    connection: h2::client::Connection<WatchedIo<Transport>, Bytes>,
    link: Arc<Link>,
    ping: Option<Pinger>,
    /// Sends the ACK of what was read when no write carried it
    /// (`tcp_quickack`).
    ack: Option<AckTimer>,
}

impl Driver {
    pub(crate) fn new(
        mut connection: h2::client::Connection<WatchedIo<Transport>, Bytes>,
        link: Arc<Link>,
        pings: Pings,
        ack: Option<Arc<AckSignal>>,
    ) -> Self {
        let driven = link.clone();
        let ping = (pings.keepalive.is_some() || pings.adaptive_from.is_some())
            .then(|| connection.ping_pong())
            .flatten()
            .map(|pong| {
                if pings.adaptive_from.is_some() {
                    link.measure_received();
                }
                Pinger {
                    pong,
                    link,
                    keepalive: pings
                        .keepalive
                        .map(|(interval, timeout, while_idle)| Keepalive {
                            interval,
                            timeout,
                            while_idle,
                            next: Box::pin(tokio::time::sleep(interval)),
                        }),
                    window: pings.adaptive_from,
                    out: None,
                }
            });
        Self {
            connection,
            link: driven,
            ping,
            ack: ack.map(AckTimer::new),
        }
    }
}

impl Driver {
    /// Drives the connection until it ends, as its task.
    ///
    /// When a caller wakes the connection with a new request, the task
    /// first goes to the back of its worker's run queue, so that the
    /// tasks already woken run first: callers send from their own tasks and
    /// each wakes the connection, which a multi-thread runtime runs next (it
    /// runs the task woken last first), so without this each call's frames
    /// would take a write of their own; behind them, one write carries the
    /// frames of every caller that was ready. Anything else (the socket, a
    /// window update, a timer) is handled at once: deferring those halved
    /// S6's download rate. (tokio's
    /// `yield_now` would wait until the worker has nothing else to do,
    /// which starves a connection on a busy worker.)
    pub(crate) async fn run(mut self) -> Result<(), TransportError> {
        let woken = Arc::new(Woken::default());
        let waker = Waker::from(woken.clone());
        self.link
            .set_io_waker(Waker::from(Arc::new(SocketWoken(woken.clone()))));
        woken.flag.store(true, Ordering::Release);
        loop {
            std::future::poll_fn(|cx| woken.poll(cx)).await;
            // What the socket brings is read at once, and what is not a
            // new request (a window update, a PING) goes at once; only new
            // requests wait for the other callers' requests.
            let by_socket = woken.by_socket.swap(false, Ordering::AcqRel);
            if by_socket || !self.link.take_deferred_poll() {
                let mut relay = Context::from_waker(&waker);
                if let Poll::Ready(result) = Pin::new(&mut self).poll(&mut relay) {
                    return result;
                }
                continue;
            }
            let mut yielded = false;
            std::future::poll_fn(|cx| {
                if yielded {
                    return Poll::Ready(());
                }
                yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            })
            .await;
            // What woke the connection while it yielded (the callers'
            // requests, a finished call's stream released, the socket) is
            // all seen by the poll below, which reads, sends and registers
            // anew: a wake left marked would only poll h2 once more for
            // nothing (one poll a call at one call in flight, S11).
            woken.clear();
            self.link.take_deferred_poll();
            let mut relay = Context::from_waker(&waker);
            if let Poll::Ready(result) = Pin::new(&mut self).poll(&mut relay) {
                return result;
            }
        }
    }
}

/// Whether something woke the connection since the task last looked, and
/// whether the socket did.
#[derive(Default)]
struct Woken {
    flag: AtomicBool,
    by_socket: AtomicBool,
    task: AtomicWaker,
}

/// The waker the socket is polled with: it marks the wake as the socket's.
struct SocketWoken(Arc<Woken>);

impl Wake for SocketWoken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.by_socket.store(true, Ordering::Release);
        self.0.wake_by_ref();
    }
}

impl Woken {
    /// Forgets the wakes so far, just before a poll that answers them.
    fn clear(&self) {
        self.flag.store(false, Ordering::Release);
        self.by_socket.store(false, Ordering::Release);
    }

    fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.flag.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        self.task.register(cx.waker());
        if self.flag.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.flag.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

impl Future for Driver {
    type Output = Result<(), TransportError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(ping) = &mut this.ping {
            ping.poll(&mut this.connection, cx)?;
        }
        let polled = Pin::new(&mut this.connection).poll(cx);
        if polled.is_pending() {
            match this.ack.as_mut().map(|ack| ack.poll(cx)) {
                Some(AckPoll::Due) => {
                    // The ACK waited long enough: the connection's read sends it.
                    return Pin::new(&mut this.connection).poll(cx).map_err(Into::into);
                }
                Some(AckPoll::AfterCallers) => {
                    this.link.defer_next_poll();
                    cx.waker().wake_by_ref();
                }
                Some(AckPoll::Waiting) | None => {}
            }
        }
        polled.map_err(Into::into)
    }
}

struct Keepalive {
    interval: Duration,
    timeout: Duration,
    while_idle: bool,
    /// When the next PING is due, or, while one is out, when it times out.
    next: Pin<Box<Sleep>>,
}

/// The connection's PINGs: at most one out at a time, answering both
/// keepalive and the window's estimate.
struct Pinger {
    pong: h2::PingPong,
    link: Arc<Link>,
    keepalive: Option<Keepalive>,
    /// The window now, when it adapts.
    window: Option<u32>,
    /// The PING out: when it left, and the bytes read since.
    out: Option<(Instant, usize)>,
}

impl Pinger {
    fn poll(
        &mut self,
        connection: &mut h2::client::Connection<WatchedIo<Transport>, Bytes>,
        cx: &mut Context<'_>,
    ) -> Result<(), TransportError> {
        if self.window.is_some() {
            self.link.register_driver(cx.waker());
            let read = self.link.take_received();
            if let Some((_, bytes)) = &mut self.out {
                *bytes += read;
            } else if read > 0 {
                self.send(read)?;
            }
        }
        if let Some((_, _)) = self.out {
            match self.pong.poll_pong(cx) {
                Poll::Ready(Ok(_)) => self.answered(connection),
                Poll::Ready(Err(error)) => return Err(error.into()),
                Poll::Pending => {}
            }
        }
        self.poll_keepalive(cx)
    }

    fn send(&mut self, bytes: usize) -> Result<(), TransportError> {
        self.pong.send_ping(h2::Ping::opaque())?;
        self.out = Some((Instant::now(), bytes));
        Ok(())
    }

    /// A PING came back: keepalive is satisfied, and the window learns
    /// what one round trip carried.
    fn answered(&mut self, connection: &mut h2::client::Connection<WatchedIo<Transport>, Bytes>) {
        let Some((_, bytes)) = self.out.take() else {
            return;
        };
        if let Some(keepalive) = &mut self.keepalive {
            keepalive
                .next
                .as_mut()
                .reset(Instant::now() + keepalive.interval);
        }
        if let Some(window) = &mut self.window {
            let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
            if u64::from(bytes) * 3 >= u64::from(*window) * 2 && *window < MAX_WINDOW {
                *window = window.saturating_mul(2).min(MAX_WINDOW);
                connection.set_target_window_size(*window);
                // Only fails for a size above 2^31 - 1, which MAX_WINDOW is not.
                let _ = connection.set_initial_window_size(*window);
            }
        }
    }

    fn poll_keepalive(&mut self, cx: &mut Context<'_>) -> Result<(), TransportError> {
        let Some(keepalive) = &mut self.keepalive else {
            return Ok(());
        };
        while keepalive.next.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            if let Some((sent, _)) = self.out {
                // A PING is out (keepalive's or the window's): it times out
                // `timeout` after it left.
                if now >= sent + keepalive.timeout {
                    return Err(TransportError::KeepaliveTimeout);
                }
                keepalive.next.as_mut().reset(sent + keepalive.timeout);
            } else if keepalive.while_idle || self.link.open_streams() > 0 {
                self.pong.send_ping(h2::Ping::opaque())?;
                self.out = Some((now, 0));
                keepalive.next.as_mut().reset(now + keepalive.timeout);
            } else {
                keepalive.next.as_mut().reset(now + keepalive.interval);
            }
        }
        Ok(())
    }
}
