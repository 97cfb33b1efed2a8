//! A client transport on h2 directly, without hyper's client connection:
//! the floor for #13 (what a call costs when the caller's task sends the
//! headers and the one data frame itself and reads the response, with no
//! dispatch task and no task spawned per request). Only for S3: a unary
//! request's body is sent whole from the caller's task; no flow-control
//! wait, no keepalive, no cancellation bookkeeping, no pool.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One HTTP/2 connection, driven by a task of its own.
#[derive(Clone)]
pub(crate) struct H2Direct {
    send: h2::client::SendRequest<Bytes>,
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
        Ok(Self { send })
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
        Box::pin(async move {
            let mut send = send.ready().await?;
            let (head, mut body) = request.into_parts();
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
