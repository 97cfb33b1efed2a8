//! A tap on what the pool writes: a connector whose TCP stream counts the
//! HTTP/2 PING frames the client sends (not their ACKs).

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
const ACK: u8 = 0x1;

/// Follows the frames in the bytes the client writes.
#[derive(Debug)]
struct FrameParser {
    /// Bytes still to skip: the preface, then each frame's payload.
    skip: usize,
    header: Vec<u8>,
    pings: Arc<AtomicUsize>,
}

impl FrameParser {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
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
                if h[3] == PING && h[4] & ACK == 0 {
                    self.pings.fetch_add(1, Ordering::SeqCst);
                }
                self.skip = length;
                self.header.clear();
            }
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

/// A connector to `upstream` whose connections count the client's PINGs
/// into the returned counter.
pub fn ping_counting_connector(
    upstream: SocketAddr,
) -> (
    impl tower::Service<http::Uri, Response = Tapped, Error = io::Error, Future = impl Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static,
    Arc<AtomicUsize>,
) {
    let pings = Arc::new(AtomicUsize::new(0));
    let counter = pings.clone();
    let connector = tower::service_fn(move |_uri: http::Uri| {
        let pings = counter.clone();
        async move {
            let tcp = TcpStream::connect(upstream).await?;
            Ok(Tapped {
                tcp,
                parser: FrameParser {
                    skip: PREFACE,
                    header: Vec::with_capacity(FRAME_HEADER),
                    pings,
                },
            })
        }
    });
    (connector, pings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_pings_split_anywhere_and_not_their_acks() {
        let pings = Arc::new(AtomicUsize::new(0));
        let mut bytes = vec![0u8; PREFACE];
        // SETTINGS (empty), PING, PING ACK, DATA of 3 bytes, PING.
        bytes.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
        for (kind, flags, payload) in [(PING, 0, 8), (PING, ACK, 8), (0x0, 0, 3), (PING, 0, 8)] {
            bytes.extend_from_slice(&[0, 0, payload as u8, kind, flags, 0, 0, 0, 0]);
            bytes.extend(std::iter::repeat_n(PING, payload));
        }
        for chunk in [1, 5, 9, 1000] {
            pings.store(0, Ordering::SeqCst);
            let mut parser = FrameParser {
                skip: PREFACE,
                header: Vec::new(),
                pings: pings.clone(),
            };
            bytes.chunks(chunk).for_each(|c| parser.feed(c));
            assert_eq!(pings.load(Ordering::SeqCst), 2, "chunks of {chunk}");
        }
    }
}
