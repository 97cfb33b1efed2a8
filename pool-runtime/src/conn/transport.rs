//! The byte stream under a connection: TCP, a Unix domain socket, the
//! user's connector's stream, or TLS over any of them.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::tcp::{AckSignal, Tcp};

/// A byte stream a connector may return.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A connected byte stream, with TLS when the endpoint is `https`.
pub(crate) enum Transport {
    /// TCP, the common case, unboxed.
    Tcp(Tcp),
    /// A Unix domain socket, for `unix:` endpoints.
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
    /// What the user's connector returned.
    Custom(Box<dyn Io>),
    /// TLS over one of the above, for `https` endpoints.
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::client::TlsStream<Transport>>),
}

impl Transport {
    /// The signal through which the driver has the ACK of what was read
    /// sent (`tcp_quickack`): TCP's, under TLS too; none for other streams.
    pub(crate) fn ack_signal(&self) -> Option<std::sync::Arc<AckSignal>> {
        match self {
            Self::Tcp(tcp) => tcp.ack_signal(),
            #[cfg(feature = "tls")]
            Self::Tls(tls) => tls.get_ref().0.ack_signal(),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tcp(_) => "Transport::Tcp",
            #[cfg(unix)]
            Self::Unix(_) => "Transport::Unix",
            Self::Custom(_) => "Transport::Custom",
            #[cfg(feature = "tls")]
            Self::Tls(_) => "Transport::Tls",
        })
    }
}

/// Forwards a call to whichever stream the transport holds.
macro_rules! each {
    ($transport:expr, $stream:ident => $call:expr) => {
        match $transport {
            Transport::Tcp($stream) => $call,
            #[cfg(unix)]
            Transport::Unix($stream) => $call,
            Transport::Custom($stream) => $call,
            #[cfg(feature = "tls")]
            Transport::Tls($stream) => $call,
        }
    };
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self.get_mut(), stream => Pin::new(stream).poll_read(cx, buf))
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), stream => Pin::new(stream).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), stream => Pin::new(stream).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        each!(self, stream => stream.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), stream => Pin::new(stream).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), stream => Pin::new(stream).poll_shutdown(cx))
    }
}
