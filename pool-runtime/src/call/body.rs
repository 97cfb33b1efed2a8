//! The response body, which holds the call's stream slot until it ends.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tonic::Status;

use super::end::CallEnd;
use super::limit::MessageLimit;
use crate::conn::{RecvBody, TransportError, status};

/// The body of a response received through a [`Pool`](crate::Pool).
///
/// It holds the call's stream slot: the slot is released when the body ends,
/// fails, passes the call's deadline, or is dropped. Transport errors are
/// `UNAVAILABLE` statuses.
///
/// The default body is empty; tonic's interceptors answer with it when they
/// reject a call.
#[derive(Debug, Default)]
pub struct ResponseBody {
    /// A response read whole before it was handed on (see `read_whole`).
    whole: VecDeque<Frame<Bytes>>,
    /// `None` once the body has ended; dropping it resets a stream that was
    /// still open.
    inner: Option<RecvBody>,
    /// The call's slot, request stream and deadline, until the body ends.
    end: Option<CallEnd>,
    /// The method's `maxResponseMessageBytes`, if it has one.
    limit: Option<MessageLimit>,
}

impl ResponseBody {
    pub(crate) fn new(inner: RecvBody, end: CallEnd) -> Self {
        Self {
            whole: VecDeque::new(),
            inner: Some(inner),
            end: Some(end),
            limit: None,
        }
    }

    /// Holds the response's messages to `limit` bytes each.
    pub(crate) fn with_limit(mut self, limit: Option<usize>) -> Self {
        self.limit = limit.map(MessageLimit::new);
        self
    }

    /// Fails the body when `frame` carries the start of a message above
    /// the limit.
    fn over_limit(&mut self, frame: &Frame<Bytes>) -> Option<Status> {
        let limit = self.limit.as_mut()?;
        let length = limit.check(frame.data_ref()?).err()?;
        let status = limit.exceeded("response", length);
        self.finish();
        Some(status)
    }

    /// Reads a response to its end, for a call that may be retried until
    /// then; the caller holds the stream slot meanwhile.
    pub(crate) async fn read_whole(mut incoming: RecvBody) -> Result<Self, TransportError> {
        let mut whole = VecDeque::new();
        while let Some(frame) =
            std::future::poll_fn(|cx| Pin::new(&mut incoming).poll_frame(cx)).await
        {
            whole.push_back(frame?);
        }
        Ok(Self {
            whole,
            ..Self::default()
        })
    }

    /// The trailers of a response read whole, if it had any.
    pub(crate) fn whole_trailers(&self) -> Option<&http::HeaderMap> {
        self.whole.back().and_then(Frame::trailers_ref)
    }

    fn finish(&mut self) {
        self.inner = None;
        self.end = None;
    }

    fn endpoint(&self) -> String {
        self.end.as_ref().map_or_else(
            || "the server".to_owned(),
            |end| end.connection().endpoint.key.clone(),
        )
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if let Some(frame) = this.whole.pop_front() {
            if let Some(status) = this.over_limit(&frame) {
                this.whole.clear();
                return Poll::Ready(Some(Err(status)));
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if let Some(end) = this.end.as_mut()
            && end.poll_deadline(cx).is_ready()
        {
            end.set_outcome(tonic::Code::DeadlineExceeded);
            this.finish();
            return Poll::Ready(Some(Err(Status::deadline_exceeded(
                "the call's deadline passed while its response was being received",
            ))));
        }
        let frame = ready!(Pin::new(inner).poll_frame(cx));
        Poll::Ready(match frame {
            None => {
                this.finish();
                None
            }
            Some(Ok(frame)) => {
                if let Some(status) = this.over_limit(&frame) {
                    return Poll::Ready(Some(Err(status)));
                }
                if let Some(trailers) = frame.trailers_ref() {
                    // Trailers end a gRPC response: the call is done.
                    if let Some(end) = this.end.as_mut() {
                        end.set_outcome_from(trailers);
                    }
                    this.end = None;
                }
                Some(Ok(frame))
            }
            Some(Err(error)) => {
                let endpoint = this.endpoint();
                let status = status::from_transport(error, &endpoint);
                if let Some(end) = this.end.as_mut() {
                    end.set_outcome(status.code());
                }
                this.finish();
                Some(Err(status))
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.whole.is_empty() && self.inner.as_ref().is_none_or(RecvBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), RecvBody::size_hint)
    }
}
