//! A response body read from h2: data as it arrives, its flow-control
//! capacity given back as it is read, then the trailers.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::error::TransportError;
use super::link::OpenStream;

/// The body of a response on one HTTP/2 stream. Dropping it before its end
/// resets the stream with CANCEL (h2 does so for a stream no handle
/// refers to any more).
#[derive(Debug)]
pub(crate) struct RecvBody {
    recv: h2::RecvStream,
    data_done: bool,
    /// The stream, counted open on its connection until the body goes.
    stream: OpenStream,
}

impl RecvBody {
    pub(crate) fn new(recv: h2::RecvStream, stream: OpenStream) -> Self {
        Self {
            recv,
            data_done: false,
            stream,
        }
    }
}

impl Body for RecvBody {
    type Data = Bytes;
    type Error = TransportError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TransportError>>> {
        if !self.data_done {
            match self.recv.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    let read = data.len();
                    // Giving the capacity back can only fail on a stream
                    // that is gone, which the next poll reports.
                    let _ = self.recv.flow_control().release_capacity(read);
                    self.stream.link().received(read);
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error.into()))),
                Poll::Ready(None) => self.data_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        match self.recv.poll_trailers(cx) {
            Poll::Ready(Ok(Some(trailers))) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(error)) => Poll::Ready(Some(Err(error.into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
