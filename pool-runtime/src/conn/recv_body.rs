//! A response body read from h2: data as it arrives, its flow-control
//! capacity given back as it is read, then the trailers.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::answer;
use super::error::TransportError;
use super::link::OpenStream;

/// The body of a response on one HTTP/2 stream. Dropping it before its end
/// resets the stream with CANCEL (h2 does so for a stream no handle
/// refers to any more).
#[derive(Debug)]
pub(crate) struct RecvBody {
    /// `None` for an answer the pool turned into a trailers-only status
    /// (one that was not gRPC): its stream was reset and the body is empty.
    recv: Option<h2::RecvStream>,
    data_done: bool,
    /// The stream, counted open on its connection until the body goes.
    stream: OpenStream,
}

impl RecvBody {
    pub(crate) fn new(recv: h2::RecvStream, stream: OpenStream) -> Self {
        Self {
            recv: Some(recv),
            data_done: false,
            stream,
        }
    }

    /// An answer that is not gRPC (see `answer.rs`): its head becomes a
    /// trailers-only status and its body is dropped unread, which resets
    /// the stream with CANCEL.
    pub(crate) fn checked(
        response: http::Response<h2::RecvStream>,
        stream: OpenStream,
    ) -> http::Response<Self> {
        let (mut head, recv) = response.into_parts();
        if let Some((code, message)) = answer::check_head(head.status, &mut head.headers) {
            tracing::debug!(status = %head.status, ?code, "the server's answer is not gRPC");
            answer::trailers_only(&mut head.headers, code, &message);
            drop(recv);
            let body = Self {
                recv: None,
                data_done: true,
                stream,
            };
            return http::Response::from_parts(head, body);
        }
        http::Response::from_parts(head, Self::new(recv, stream))
    }
}

impl Body for RecvBody {
    type Data = Bytes;
    type Error = TransportError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TransportError>>> {
        let this = &mut *self;
        let Some(recv) = this.recv.as_mut() else {
            return Poll::Ready(None);
        };
        if !this.data_done {
            match recv.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    let read = data.len();
                    // Giving the capacity back can only fail on a stream
                    // that is gone, which the next poll reports.
                    let _ = recv.flow_control().release_capacity(read);
                    this.stream.link().received(read);
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error.into()))),
                Poll::Ready(None) => this.data_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        match recv.poll_trailers(cx) {
            Poll::Ready(Ok(Some(mut trailers))) => {
                answer::repair(&mut trailers);
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(error)) => Poll::Ready(Some(Err(error.into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.as_ref().is_none_or(h2::RecvStream::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
