//! What the pool learns from the bytes a server sends.
//!
//! h2 hides the HTTP/2 frames it reads, but the pool needs two of them the
//! moment they arrive: the server's first SETTINGS frame (its stream limit,
//! and the sign that the connection is really up) and GOAWAY (stop sending new
//! calls here). [`WatchedIo`] wraps the socket below h2 and scans frame
//! headers as they are read; it skips payloads by length, so the cost is a
//! few instructions per frame.
//!
//! It also holds back a write that is nothing but PING ACKs for one turn of
//! the runtime. A server's PING (grpc-go's BDP estimator sends one with
//! nearly every response) arrives with the response it rides on; h2 acks
//! it in the same poll, one write of 17 bytes, and the caller's next
//! request, a moment later, takes a second write. Held back, the ACK goes
//! out in the same write as that request, as grpc-go's own client sends
//! it: one write per call instead of two, and one read fewer for the
//! server (S11 in `docs/benchmarks.md`). When nothing else comes, the ACK
//! goes alone at the next turn.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::link::{FrameEvent, Link};

const FRAME_HEADER_LEN: usize = 9;
const TYPE_SETTINGS: u8 = 0x4;
const TYPE_GOAWAY: u8 = 0x7;
const TYPE_PING: u8 = 0x6;
/// A PING frame: its header and its 8 bytes of opaque data.
const PING_FRAME_LEN: usize = FRAME_HEADER_LEN + 8;
/// The most PING ACK bytes held back at once.
const MAX_HELD_ACKS: usize = 4 * PING_FRAME_LEN;
const FLAG_ACK: u8 = 0x1;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
/// SETTINGS frames longer than this are not collected (a legal SETTINGS
/// frame holds a handful of 6-byte entries).
const MAX_SETTINGS_PAYLOAD: usize = 16 * 1024;

/// An incremental scanner of HTTP/2 frame headers in a byte stream.
#[derive(Debug, Default)]
pub(crate) struct FrameScanner {
    header: [u8; FRAME_HEADER_LEN],
    header_len: usize,
    /// Payload bytes of the current frame still to come.
    remaining: usize,
    /// The payload of the SETTINGS frame being read, if one is.
    settings: Option<Vec<u8>>,
}

impl FrameScanner {
    /// Feeds bytes read from the server; calls `on` for each frame of interest.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], mut on: impl FnMut(FrameEvent)) {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let take = self.remaining.min(bytes.len());
                if let Some(payload) = self.settings.as_mut()
                    && payload.len() + take <= MAX_SETTINGS_PAYLOAD
                {
                    payload.extend_from_slice(&bytes[..take]);
                }
                self.remaining -= take;
                bytes = &bytes[take..];
                if self.remaining == 0 {
                    self.finish_frame(&mut on);
                }
                continue;
            }
            let take = (FRAME_HEADER_LEN - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&bytes[..take]);
            self.header_len += take;
            bytes = &bytes[take..];
            if self.header_len == FRAME_HEADER_LEN {
                self.header_len = 0;
                self.start_frame(&mut on);
            }
        }
    }

    fn start_frame(&mut self, on: &mut impl FnMut(FrameEvent)) {
        let [l0, l1, l2, kind, flags, ..] = self.header;
        self.remaining = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
        match kind {
            TYPE_SETTINGS if flags & FLAG_ACK == 0 => {
                self.settings = Some(Vec::with_capacity(self.remaining.min(64)));
                if self.remaining == 0 {
                    self.finish_frame(on);
                }
            }
            TYPE_GOAWAY => on(FrameEvent::GoAway),
            _ => {}
        }
    }

    fn finish_frame(&mut self, on: &mut impl FnMut(FrameEvent)) {
        if let Some(payload) = self.settings.take() {
            let max_streams = payload
                .chunks_exact(6)
                .filter(|entry| {
                    u16::from_be_bytes([entry[0], entry[1]]) == SETTINGS_MAX_CONCURRENT_STREAMS
                })
                .map(|entry| u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]))
                .next_back();
            on(FrameEvent::Settings { max_streams });
        }
    }
}

pin_project_lite::pin_project! {
    /// A socket whose reads are scanned for the frames in [`FrameEvent`].
    #[derive(Debug)]
    pub(crate) struct WatchedIo<T> {
        #[pin]
        inner: T,
        scanner: FrameScanner,
        link: std::sync::Arc<Link>,
        // Whether the server has sent anything yet.
        started: bool,
        // PING ACKs written by h2 and not yet by the socket.
        held_acks: HeldAcks,
    }
}

/// PING ACK frames held back for one turn of the runtime (see the module's
/// notes).
#[derive(Debug, Default)]
struct HeldAcks {
    bytes: Vec<u8>,
    /// Whether a flush already waited a turn for them.
    waited: bool,
}

/// Whether `buf` is one or a few whole PING ACK frames and nothing else.
fn only_ping_acks(buf: &[u8]) -> bool {
    !buf.is_empty()
        && buf.len() <= MAX_HELD_ACKS
        && buf.len().is_multiple_of(PING_FRAME_LEN)
        && buf
            .chunks_exact(PING_FRAME_LEN)
            .all(|frame| frame[..5] == [0, 0, 8, TYPE_PING, FLAG_ACK])
}

impl<T> WatchedIo<T> {
    pub(crate) fn new(inner: T, link: std::sync::Arc<Link>) -> Self {
        Self {
            inner,
            scanner: FrameScanner::default(),
            link,
            started: false,
            held_acks: HeldAcks::default(),
        }
    }
}

/// Polls the socket with the waker that tells the connection's driver the
/// socket woke it (see `Driver::run`), once the driver runs as a task.
fn with_io_waker<R>(
    link: &Link,
    cx: &mut Context<'_>,
    poll: impl FnOnce(&mut Context<'_>) -> R,
) -> R {
    match link.io_waker() {
        Some(waker) => poll(&mut Context::from_waker(waker)),
        None => poll(cx),
    }
}

impl<T: AsyncRead> AsyncRead for WatchedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let mut inner = this.inner;
        let result = with_io_waker(this.link, cx, |cx| inner.as_mut().poll_read(cx, buf));
        if let Poll::Ready(Ok(())) = result {
            let link = &**this.link;
            let read = &buf.filled()[before..];
            if !*this.started && !read.is_empty() {
                *this.started = true;
                link.note_first_bytes(read);
            }
            this.scanner.feed(read, |event| link.on_frame(event));
        }
        result
    }
}

/// The most slices of a vectored write passed on behind held ACKs.
const MAX_SLICES: usize = 16;

impl<T: AsyncWrite> WatchedIo<T> {
    /// Takes `buf` into the held ACKs when it is nothing but PING ACKs and
    /// none are held yet; whether it did.
    fn hold_if_only_acks(self: Pin<&mut Self>, buf: &[u8]) -> bool {
        let held = self.project().held_acks;
        if !held.bytes.is_empty() || !only_ping_acks(buf) {
            return false;
        }
        held.bytes.extend_from_slice(buf);
        held.waited = false;
        true
    }

    /// Writes the held ACKs, all of them, before anything else is written.
    fn poll_write_held(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let mut inner = this.inner;
        let held = &mut this.held_acks.bytes;
        while !held.is_empty() {
            let written = ready!(with_io_waker(this.link, cx, |cx| inner
                .as_mut()
                .poll_write(cx, held)))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            held.drain(..written);
        }
        Poll::Ready(Ok(()))
    }

    /// Writes `bufs`, behind the held ACKs if there are any (in the same
    /// write when the socket takes vectored writes); how many bytes of
    /// `bufs` went.
    fn poll_write_slices(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if !self.held_acks.bytes.is_empty() && self.inner.is_write_vectored() {
            let this = self.as_mut().project();
            let mut inner = this.inner;
            let held = &mut this.held_acks.bytes;
            let mut slices = [io::IoSlice::new(&[]); MAX_SLICES];
            slices[0] = io::IoSlice::new(held);
            let count = bufs.len().min(MAX_SLICES - 1);
            slices[1..=count].copy_from_slice(&bufs[..count]);
            let written = ready!(with_io_waker(this.link, cx, |cx| inner
                .as_mut()
                .poll_write_vectored(cx, &slices[..=count])))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let acks = held.len().min(written);
            held.drain(..acks);
            if written > acks {
                return Poll::Ready(Ok(written - acks));
            }
        }
        ready!(self.as_mut().poll_write_held(cx))?;
        let this = self.project();
        let mut inner = this.inner;
        with_io_waker(this.link, cx, |cx| match bufs {
            [buf] => inner.as_mut().poll_write(cx, buf),
            _ => inner.as_mut().poll_write_vectored(cx, bufs),
        })
    }
}

impl<T: AsyncWrite> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.as_mut().hold_if_only_acks(buf) {
            return Poll::Ready(Ok(buf.len()));
        }
        self.poll_write_slices(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let [buf] = bufs
            && self.as_mut().hold_if_only_acks(buf)
        {
            return Poll::Ready(Ok(buf.len()));
        }
        self.poll_write_slices(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.held_acks.bytes.is_empty() {
            let held = &mut self.as_mut().project().held_acks;
            if !held.waited {
                // One turn for the callers the response woke to send: the
                // driver yields before it polls again, as it does for a
                // new request (see `Driver::run`).
                held.waited = true;
                self.link.defer_next_poll();
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ready!(self.as_mut().poll_write_held(cx))?;
        }
        let this = self.project();
        let mut inner = this.inner;
        with_io_waker(this.link, cx, |cx| inner.as_mut().poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_write_held(cx))?;
        let this = self.project();
        let mut inner = this.inner;
        with_io_waker(this.link, cx, |cx| inner.as_mut().poll_shutdown(cx))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut bytes = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            flags,
            0,
            0,
            0,
            0,
        ];
        bytes.extend_from_slice(payload);
        bytes
    }

    fn scan_in_pieces(bytes: &[u8], piece: usize) -> Vec<FrameEvent> {
        let mut scanner = FrameScanner::default();
        let mut events = Vec::new();
        for chunk in bytes.chunks(piece) {
            scanner.feed(chunk, |e| events.push(e));
        }
        events
    }

    #[test]
    fn finds_stream_limit_and_goaway_however_the_bytes_are_split() {
        let mut bytes = frame(TYPE_SETTINGS, 0, &[0, 4, 0, 1, 0, 0, 0, 3, 0, 0, 0, 8]);
        bytes.extend(frame(0x0, 0, &[7; 300])); // DATA
        bytes.extend(frame(TYPE_SETTINGS, FLAG_ACK, &[]));
        bytes.extend(frame(TYPE_GOAWAY, 0, &[0; 8]));
        let expected = vec![
            FrameEvent::Settings {
                max_streams: Some(8),
            },
            FrameEvent::GoAway,
        ];
        for piece in [1, 2, 5, 9, 10, 64, bytes.len()] {
            assert_eq!(
                scan_in_pieces(&bytes, piece),
                expected,
                "piece size {piece}"
            );
        }
    }

    #[test]
    fn empty_settings_frame_means_no_limit_given() {
        let events = scan_in_pieces(&frame(TYPE_SETTINGS, 0, &[]), 3);
        assert_eq!(events, vec![FrameEvent::Settings { max_streams: None }]);
    }

    #[test]
    fn only_whole_ping_acks_are_held_back() {
        let ack = frame(TYPE_PING, FLAG_ACK, &[7; 8]);
        assert!(only_ping_acks(&ack));
        assert!(only_ping_acks(&[ack.clone(), ack.clone()].concat()));
        // A PING of our own (keepalive) goes at once, as does an ACK with
        // anything else, a cut one, or more than a few.
        assert!(!only_ping_acks(&frame(TYPE_PING, 0, &[7; 8])));
        assert!(!only_ping_acks(
            &[ack.clone(), frame(0x0, 0, &[1])].concat()
        ));
        assert!(!only_ping_acks(&ack[..10]));
        assert!(!only_ping_acks(&ack.repeat(5)));
        assert!(!only_ping_acks(&[]));
    }
}
