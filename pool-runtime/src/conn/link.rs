//! What a connection's I/O and the pool share: its state, the server's
//! stream limit, and what to do on GOAWAY.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

/// The stream limit assumed when a server advertises none (hyper's and
/// h2's own assumption, so the pool and h2 agree).
pub(crate) const DEFAULT_MAX_STREAMS: usize = 100;

/// A connection's lifecycle, readable without a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum State {
    /// Takes new calls.
    Ready = 0,
    /// Takes no new calls; calls in flight finish.
    Draining = 1,
    /// The connection is gone.
    Closed = 2,
}

/// Called once when the server sends GOAWAY.
pub(crate) type OnGoAway = Box<dyn Fn() + Send + Sync>;

/// What a connection's I/O and the pool share: the server's stream limit,
/// the connection's state, and what to do when the server says GOAWAY.
pub(crate) struct Link {
    state: AtomicU8,
    max_streams: AtomicUsize,
    settings_seen: AtomicBool,
    /// Signalled once, when the first SETTINGS frame has been read.
    pub(crate) settings: Notify,
    /// Takes the connection out of the pool's rotation; called from the read
    /// path so that no task has to watch for GOAWAY on every request.
    on_goaway: OnceLock<OnGoAway>,
    /// HTTP/2 streams open on the connection (keepalive PINGs an idle
    /// connection only with `keep_alive_while_idle`).
    open_streams: AtomicUsize,
    /// Response bytes read since the driver last looked, counted only
    /// while the window adapts (`http2_adaptive_window`).
    received: AtomicUsize,
    measuring: AtomicBool,
    /// Wakes the connection's driver when bytes arrive to be measured.
    driver: AtomicWaker,
    /// The waker the socket is polled with once the driver runs as a task:
    /// it tells the driver that the socket woke it.
    io_waker: OnceLock<std::task::Waker>,
    /// Set when the driver is to let the tasks already woken run before it
    /// polls the connection again (a caller queued a request, or a held
    /// ACK waits for their writes) since it last looked.
    poll_deferred: AtomicBool,
    /// The first bytes the server sent (up to `FIRST_BYTES`), to say what
    /// it is when it is not an HTTP/2 server.
    first_bytes: OnceLock<Box<[u8]>>,
}

/// The most streams one connection is taken to carry: a server that
/// advertises more (grpc-java's and Envoy's 2147483647 mean "unlimited")
/// counts as advertising none, so the pool grows past one connection to
/// it as it does for grpc-go's, which advertises none.
const PRACTICAL_MAX_STREAMS: u32 = 65_536;

/// The stream limit the pool counts for an advertised `max`.
fn practical_limit(max: u32) -> usize {
    if max > PRACTICAL_MAX_STREAMS {
        DEFAULT_MAX_STREAMS
    } else {
        max as usize
    }
}

/// How many of the server's first bytes a connection keeps.
const FIRST_BYTES: usize = 128;

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("state", &self.state())
            .field("max_streams", &self.max_streams())
            .field("settings_seen", &self.settings_seen())
            .finish_non_exhaustive()
    }
}

impl Default for Link {
    fn default() -> Self {
        Self {
            state: AtomicU8::new(State::Ready as u8),
            max_streams: AtomicUsize::new(DEFAULT_MAX_STREAMS),
            settings_seen: AtomicBool::new(false),
            settings: Notify::new(),
            on_goaway: OnceLock::new(),
            open_streams: AtomicUsize::new(0),
            received: AtomicUsize::new(0),
            measuring: AtomicBool::new(false),
            driver: AtomicWaker::new(),
            io_waker: OnceLock::new(),
            poll_deferred: AtomicBool::new(false),
            first_bytes: OnceLock::new(),
        }
    }
}

impl Link {
    /// The waker to poll the socket with, once set.
    #[inline]
    pub(crate) fn io_waker(&self) -> Option<&std::task::Waker> {
        self.io_waker.get()
    }

    /// Sets the waker to poll the socket with (once per connection).
    pub(crate) fn set_io_waker(&self, waker: std::task::Waker) {
        let _ = self.io_waker.set(waker);
    }

    /// Asks the driver to let the tasks already woken run before it polls
    /// the connection again, as after a caller queued a request: what they
    /// write then shares the driver's next write.
    #[inline]
    pub(crate) fn defer_next_poll(&self) {
        self.poll_deferred.store(true, Ordering::Relaxed);
    }

    /// Whether the next poll was deferred since the last call.
    pub(crate) fn take_deferred_poll(&self) -> bool {
        self.poll_deferred.swap(false, Ordering::Relaxed)
    }

    /// Keeps the start of the first bytes the server sent.
    pub(super) fn note_first_bytes(&self, bytes: &[u8]) {
        let _ = self
            .first_bytes
            .set(bytes[..bytes.len().min(FIRST_BYTES)].into());
    }

    /// What the server's first bytes say it is.
    pub(crate) fn first_answer(&self) -> FirstAnswer {
        let Some(bytes) = self.first_bytes.get() else {
            return FirstAnswer::Nothing;
        };
        if bytes.starts_with(b"HTTP/") {
            let line = bytes
                .split(|&b| b == b'\r' || b == b'\n')
                .next()
                .unwrap_or(bytes);
            return FirstAnswer::Http1(String::from_utf8_lossy(line).into_owned());
        }
        // A TLS record: content type 20 to 23, then version 3.x.
        if let [kind @ 20..=23, 3, ..] = **bytes {
            return FirstAnswer::Tls(kind);
        }
        FirstAnswer::Frames
    }

    /// Counts a stream that opens; the guard counts it closed.
    pub(crate) fn open_stream(self: &Arc<Self>) -> OpenStream {
        self.open_streams.fetch_add(1, Ordering::Relaxed);
        OpenStream(self.clone())
    }

    /// Streams open now.
    pub(crate) fn open_streams(&self) -> usize {
        self.open_streams.load(Ordering::Relaxed)
    }

    /// Has response bytes counted for the adaptive window.
    pub(crate) fn measure_received(&self) {
        self.measuring.store(true, Ordering::Relaxed);
    }

    /// Counts `bytes` of response data read, when the window adapts.
    #[inline]
    pub(crate) fn received(&self, bytes: usize) {
        if self.measuring.load(Ordering::Relaxed) {
            self.received.fetch_add(bytes, Ordering::Relaxed);
            self.driver.wake();
        }
    }

    /// The bytes counted since the last call.
    pub(crate) fn take_received(&self) -> usize {
        self.received.swap(0, Ordering::Relaxed)
    }

    /// Where the driver waits for bytes to measure.
    pub(crate) fn register_driver(&self, waker: &std::task::Waker) {
        self.driver.register(waker);
    }

    /// The connection's state.
    pub(crate) fn state(&self) -> State {
        match self.state.load(Ordering::Acquire) {
            0 => State::Ready,
            1 => State::Draining,
            _ => State::Closed,
        }
    }

    /// Whether new calls may use the connection.
    #[inline]
    pub(crate) fn is_ready(&self) -> bool {
        self.state.load(Ordering::Acquire) == State::Ready as u8
    }

    /// Moves to `to` if that is a step forward; returns whether it moved.
    pub(crate) fn advance(&self, to: State) -> bool {
        let to = to as u8;
        let mut current = self.state.load(Ordering::Acquire);
        while current < to {
            match self
                .state
                .compare_exchange_weak(current, to, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
        false
    }

    /// Sets what happens on GOAWAY; a GOAWAY read before this is set shows
    /// in [`state`](Self::state), which the caller checks afterwards.
    pub(crate) fn on_goaway(&self, action: OnGoAway) {
        let _ = self.on_goaway.set(action);
    }

    /// The server's advertised `SETTINGS_MAX_CONCURRENT_STREAMS`.
    #[inline]
    pub(crate) fn max_streams(&self) -> usize {
        self.max_streams.load(Ordering::Relaxed)
    }

    /// Whether the server's first SETTINGS frame has been read.
    pub(crate) fn settings_seen(&self) -> bool {
        self.settings_seen.load(Ordering::Acquire)
    }

    pub(super) fn on_frame(&self, event: FrameEvent) {
        match event {
            FrameEvent::Settings { max_streams } => {
                if let Some(max) = max_streams {
                    self.max_streams
                        .store(practical_limit(max), Ordering::Relaxed);
                }
                if !self.settings_seen.swap(true, Ordering::AcqRel) {
                    self.settings.notify_one();
                }
            }
            FrameEvent::GoAway => {
                if self.advance(State::Draining)
                    && let Some(action) = self.on_goaway.get()
                {
                    action();
                }
            }
        }
    }
}

/// What a server's first bytes say it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FirstAnswer {
    /// It sent nothing.
    Nothing,
    /// An HTTP/1 status line: it does not speak HTTP/2.
    Http1(String),
    /// A TLS record of this content type: a TLS server.
    Tls(u8),
    /// Anything else (HTTP/2 frames, as it should).
    Frames,
}

/// A frame the pool reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameEvent {
    /// A SETTINGS frame (not an ACK), with its stream limit if it set one.
    Settings {
        /// `SETTINGS_MAX_CONCURRENT_STREAMS`, if present.
        max_streams: Option<u32>,
    },
    /// A GOAWAY frame.
    GoAway,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_applies_settings_and_goaway() {
        let link = Link::default();
        assert_eq!(link.max_streams(), DEFAULT_MAX_STREAMS);
        link.on_frame(FrameEvent::Settings {
            max_streams: Some(4),
        });
        assert!(link.settings_seen());
        assert_eq!(link.max_streams(), 4);
        // "Unlimited" (grpc-java's, Envoy's) counts as no limit given.
        link.on_frame(FrameEvent::Settings {
            max_streams: Some(i32::MAX as u32),
        });
        assert_eq!(link.max_streams(), DEFAULT_MAX_STREAMS);
        link.on_frame(FrameEvent::GoAway);
        assert_eq!(link.state(), State::Draining);
        assert!(!link.advance(State::Ready), "state never moves backwards");
    }
}

/// One open HTTP/2 stream, counted on its connection's [`Link`] until
/// dropped.
#[derive(Debug)]
pub(crate) struct OpenStream(Arc<Link>);

impl OpenStream {
    /// The stream's connection.
    pub(crate) fn link(&self) -> &Link {
        &self.0
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::Relaxed);
    }
}
