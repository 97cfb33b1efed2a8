//! A tap on what the pool writes: a connector whose TCP stream reads the
//! HTTP/2 frames the client sends: PINGs (not their ACKs), the settings
//! it announces, and the connection window it opens.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The client connection preface before the first frame.
const PREFACE: usize = 24;
const FRAME_HEADER: usize = 9;
const PING: u8 = 0x6;
const SETTINGS: u8 = 0x4;
const WINDOW_UPDATE: u8 = 0x8;
const ACK: u8 = 0x1;

/// What the client sent, as the tap read it.
#[derive(Debug, Default)]
pub struct Seen {
    /// PINGs (not ACKs).
    pub pings: AtomicUsize,
    /// Every SETTINGS parameter the client sent, in order: (id, value).
    pub settings: std::sync::Mutex<Vec<(u16, u32)>>,
    /// The sum of the connection-level WINDOW_UPDATE increments.
    pub connection_window: AtomicUsize,
}

impl Seen {
    /// The last value the client announced for SETTINGS parameter `id`.
    pub fn setting(&self, id: u16) -> Option<u32> {
        self.settings
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| *v)
    }
}

/// Follows the frames in the bytes the client writes.
#[derive(Debug)]
struct FrameParser {
    /// Bytes still to skip: the preface, then each frame's payload.
    skip: usize,
    header: Vec<u8>,
    /// The payload being collected, for frames whose payload is read.
    payload: Option<(u8, u32, usize, Vec<u8>)>,
    seen: Arc<Seen>,
}

impl FrameParser {
    fn new(seen: Arc<Seen>) -> Self {
        Self {
            skip: PREFACE,
            header: Vec::with_capacity(FRAME_HEADER),
            payload: None,
            seen,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if let Some((kind, stream, length, collected)) = &mut self.payload {
                let n = (*length - collected.len()).min(bytes.len());
                collected.extend_from_slice(&bytes[..n]);
                bytes = &bytes[n..];
                if collected.len() == *length {
                    let (kind, stream) = (*kind, *stream);
                    let payload = std::mem::take(collected);
                    self.payload = None;
                    self.read(kind, stream, &payload);
                }
                continue;
            }
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (FRAME_HEADER - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.header.len() == FRAME_HEADER {
                let h = &self.header;
                let length =
                    (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
                let (kind, flags) = (h[3], h[4]);
                let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
                if kind == PING && flags & ACK == 0 {
                    self.seen.pings.fetch_add(1, Ordering::SeqCst);
                }
                let read = (kind == SETTINGS && flags & ACK == 0)
                    || (kind == WINDOW_UPDATE && stream == 0);
                if read && length > 0 {
                    self.payload = Some((kind, stream, length, Vec::with_capacity(length)));
                } else {
                    self.skip = length;
                }
                self.header.clear();
            }
        }
    }

    fn read(&self, kind: u8, _stream: u32, payload: &[u8]) {
        if kind == SETTINGS {
            let mut settings = self.seen.settings.lock().unwrap();
            for entry in payload.chunks_exact(6) {
                let id = u16::from_be_bytes([entry[0], entry[1]]);
                let value = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
                settings.push((id, value));
            }
        } else if kind == WINDOW_UPDATE && payload.len() == 4 {
            let increment =
                u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff;
            self.seen
                .connection_window
                .fetch_add(increment as usize, Ordering::SeqCst);
        }
    }
}

/// A TCP stream whose writes pass through a frame parser that counts PINGs.
pub struct Tapped {
    tcp: TcpStream,
    parser: FrameParser,
}

impl AsyncRead for Tapped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tapped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.tcp).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            this.parser.feed(&buf[..n]);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// A connector to `upstream` whose connections record what the client
/// sends into the returned [`Seen`].
pub fn tapping_connector(
    upstream: SocketAddr,
) -> (
    impl tower::Service<http::Uri, Response = Tapped, Error = io::Error, Future = impl Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static,
    Arc<Seen>,
) {
    let seen = Arc::new(Seen::default());
    let tap = seen.clone();
    let connector = tower::service_fn(move |_uri: http::Uri| {
        let seen = tap.clone();
        async move {
            let tcp = TcpStream::connect(upstream).await?;
            tcp.set_nodelay(true)?;
            Ok(Tapped {
                tcp,
                parser: FrameParser::new(seen),
            })
        }
    });
    (connector, seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_frames_split_anywhere() {
        let mut bytes = vec![0u8; PREFACE];
        // SETTINGS (INITIAL_WINDOW_SIZE = 1 MiB), WINDOW_UPDATE on the
        // connection, then PING, PING ACK, DATA of 3 bytes, PING.
        bytes.extend_from_slice(&[0, 0, 6, SETTINGS, 0, 0, 0, 0, 0, 0, 4, 0, 0x10, 0, 0]);
        bytes.extend_from_slice(&[0, 0, 4, WINDOW_UPDATE, 0, 0, 0, 0, 0, 0, 0, 0x10, 0]);
        for (kind, flags, payload) in [(PING, 0, 8), (PING, ACK, 8), (0x0, 0, 3), (PING, 0, 8)] {
            bytes.extend_from_slice(&[0, 0, payload as u8, kind, flags, 0, 0, 0, 0]);
            bytes.extend(std::iter::repeat_n(PING, payload));
        }
        for chunk in [1, 5, 9, 1000] {
            let seen = Arc::new(Seen::default());
            let mut parser = FrameParser::new(seen.clone());
            bytes.chunks(chunk).for_each(|c| parser.feed(c));
            assert_eq!(seen.pings.load(Ordering::SeqCst), 2, "chunks of {chunk}");
            assert_eq!(seen.setting(4), Some(1 << 20), "chunks of {chunk}");
            assert_eq!(seen.connection_window.load(Ordering::SeqCst), 4096);
        }
    }
}
