//! A TCP stream that acknowledges what it read as soon as the socket is
//! drained (`tcp_quickack`).
//!
//! Why: Linux delays an ACK by up to 40 ms when it expects to carry it on
//! the reply, and a server that leaves Nagle's algorithm on holds its next
//! small segment until the last one is acknowledged. A pooled client
//! often has nothing to send right after reading (its callers' next
//! requests wait in their own tasks, and the connection's writes are
//! batched), so the two meet in 40 ms stalls: in the benchmark's S6 (a
//! server with Nagle on), small calls' p99 was 47 ms and downloads ran at
//! half speed. Setting TCP_QUICKACK once a burst of reads ends (the read
//! that finds the socket empty) sends the pending ACK at once; it costs one
//! `setsockopt` per burst, not per read. The kernel clears the flag by
//! itself, which is why it is set again after every burst.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A connected TCP stream, acknowledging each burst of reads at once when
/// `quickack` is on.
#[derive(Debug)]
pub(crate) struct Tcp {
    stream: TcpStream,
    quickack: bool,
    /// Bytes were read since the socket was last found empty.
    unacked: bool,
}

impl Tcp {
    pub(crate) fn new(stream: TcpStream, quickack: bool) -> Self {
        Self {
            stream,
            quickack: quickack && cfg!(any(target_os = "linux", target_os = "android")),
            unacked: false,
        }
    }

    /// Sends the pending ACK now; a failure only means the ACK waits.
    fn ack_now(&self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let _ = socket2::SockRef::from(&self.stream).set_tcp_quickack(true);
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
        if this.quickack {
            match polled {
                Poll::Ready(Ok(())) if buf.filled().len() > before => this.unacked = true,
                Poll::Pending if this.unacked => {
                    this.unacked = false;
                    this.ack_now();
                }
                _ => {}
            }
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
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
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
