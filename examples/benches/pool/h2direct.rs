//! A client transport on h2 directly, without hyper's client connection:
//! the floor for #13 (what a call costs when the caller's task sends the
//! headers and the one data frame itself and reads the response, with no
//! dispatch task and no task spawned per request). For S3, and for S11's
//! "tonic on h2 alone" floors (`connect_batched` adds the pool's write
//! batching and nothing else): a unary request's body is sent whole from
//! the caller's task; no flow-control wait, no keepalive, no cancellation
//! bookkeeping, no pool.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One HTTP/2 connection, driven by a task of its own.
#[derive(Clone)]
pub(crate) struct H2Direct {
    send: h2::client::SendRequest<Bytes>,
    /// Set when the connection's task batches: each request asks it to
    /// let the other ready callers queue theirs before it writes.
    batch: Option<Arc<Woken>>,
}

impl H2Direct {
    /// Connects to `addr` (`host:port`) and spawns the connection's task.
    pub(crate) async fn connect(addr: &str) -> Result<Self, BoxError> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (send, connection) = h2::client::handshake(tcp).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self { send, batch: None })
    }

    /// As `connect`, with the pool's write batching and nothing else of
    /// the pool: the connection's task, woken by a new request, first goes
    /// once to the back of the run queue (as `pool-runtime`'s driver does),
    /// and a unary request's one data frame carries END_STREAM. The floor
    /// of any pool that batches as this one does, under tonic's clients.
    pub(crate) async fn connect_batched(addr: &str) -> Result<Self, BoxError> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let woken = Arc::new(Woken::default());
        let io = SocketWatched {
            inner: tcp,
            waker: Waker::from(Arc::new(SocketWoken(woken.clone()))),
        };
        let (send, connection) = h2::client::handshake(io).await?;
        tokio::spawn(drive_batched(connection, woken.clone()));
        Ok(Self {
            send,
            batch: Some(woken),
        })
    }
}

/// What woke the batched connection's task: anything, the socket, and
/// whether a caller queued a request since it last looked. The same as
/// `pool-runtime`'s `conn/driver.rs` on purpose: the floor has the pool's
/// batching without depending on the pool's private types.
#[derive(Default)]
pub(crate) struct Woken {
    flag: AtomicBool,
    by_socket: AtomicBool,
    request: AtomicBool,
    task: AtomicWaker,
}

impl Woken {
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

struct SocketWoken(Arc<Woken>);

impl Wake for SocketWoken {
    fn wake(self: Arc<Self>) {
        self.0.by_socket.store(true, Ordering::Release);
        self.0.wake_by_ref();
    }
}

async fn drive_batched(
    mut connection: h2::client::Connection<SocketWatched, Bytes>,
    woken: Arc<Woken>,
) {
    let waker = Waker::from(woken.clone());
    woken.flag.store(true, Ordering::Release);
    loop {
        std::future::poll_fn(|cx| woken.poll(cx)).await;
        let by_socket = woken.by_socket.swap(false, Ordering::AcqRel);
        let request = woken.request.swap(false, Ordering::AcqRel);
        if request && !by_socket {
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
            woken.flag.store(false, Ordering::Release);
            woken.by_socket.store(false, Ordering::Release);
            woken.request.store(false, Ordering::Release);
        }
        let mut relay = Context::from_waker(&waker);
        if Pin::new(&mut connection).poll(&mut relay).is_ready() {
            return;
        }
    }
}

/// The socket, polled with the waker that marks a wake as the socket's.
pub(crate) struct SocketWatched {
    inner: tokio::net::TcpStream,
    waker: Waker,
}

impl tokio::io::AsyncRead for SocketWatched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        Pin::new(&mut this.inner).poll_read(&mut Context::from_waker(&this.waker), buf)
    }
}

impl tokio::io::AsyncWrite for SocketWatched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        Pin::new(&mut this.inner).poll_write(&mut Context::from_waker(&this.waker), buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        Pin::new(&mut this.inner).poll_write_vectored(&mut Context::from_waker(&this.waker), bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        Pin::new(&mut this.inner).poll_flush(&mut Context::from_waker(&this.waker))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        Pin::new(&mut this.inner).poll_shutdown(&mut Context::from_waker(&this.waker))
    }
}

impl tower_service::Service<http::Request<tonic::body::Body>> for H2Direct {
    type Response = http::Response<RecvBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let send = self.send.clone();
        let batch = self.batch.clone();
        Box::pin(async move {
            let mut send = send.ready().await?;
            let (head, mut body) = request.into_parts();
            if let Some(woken) = &batch {
                woken.request.store(true, Ordering::Release);
                return send_held(&mut send, head, body).await;
            }
            let (response, mut stream) =
                send.send_request(http::Request::from_parts(head, ()), false)?;
            // The request's frames, sent from this task as they come.
            let mut ended = false;
            while let Some(frame) = body.frame().await {
                let frame = frame?;
                match frame.into_data() {
                    Ok(data) => {
                        ended = body.is_end_stream();
                        stream.send_data(data, ended)?;
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            stream.send_trailers(trailers)?;
                            ended = true;
                        }
                    }
                }
            }
            if !ended {
                stream.send_data(Bytes::new(), true)?;
            }
            let response = response.await?;
            Ok(response.map(|recv| RecvBody {
                recv,
                data_done: false,
            }))
        })
    }
}

/// Sends the request holding each data chunk until the next frame says
/// whether it is the last, so a unary request is HEADERS and one DATA
/// with END_STREAM (as the pool sends it).
async fn send_held(
    send: &mut h2::client::SendRequest<Bytes>,
    head: http::request::Parts,
    mut body: tonic::body::Body,
) -> Result<http::Response<RecvBody>, BoxError> {
    let (response, mut stream) = send.send_request(http::Request::from_parts(head, ()), false)?;
    let mut held: Option<Bytes> = None;
    loop {
        match body.frame().await {
            Some(frame) => match frame?.into_data() {
                Ok(data) => {
                    if let Some(previous) = held.replace(data) {
                        stream.send_data(previous, false)?;
                    }
                }
                Err(frame) => {
                    if let Some(previous) = held.take() {
                        stream.send_data(previous, false)?;
                    }
                    if let Ok(trailers) = frame.into_trailers() {
                        stream.send_trailers(trailers)?;
                        break;
                    }
                }
            },
            None => {
                stream.send_data(held.take().unwrap_or_default(), true)?;
                break;
            }
        }
    }
    let response = response.await?;
    Ok(response.map(|recv| RecvBody {
        recv,
        data_done: false,
    }))
}

/// A response body read from h2 directly, giving back flow-control
/// capacity as data is read.
pub(crate) struct RecvBody {
    recv: h2::RecvStream,
    data_done: bool,
}

impl Body for RecvBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if !self.data_done {
            match self.recv.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(None) => self.data_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        match self.recv.poll_trailers(cx) {
            Poll::Ready(Ok(Some(trailers))) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(error)) => Poll::Ready(Some(Err(error))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }
}
