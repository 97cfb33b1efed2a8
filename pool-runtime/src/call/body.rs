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
    /// The largest response message the call takes (see
    /// `Call::response_limit`); `None` only for a default body.
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
    pub(crate) fn with_limit(mut self, limit: usize) -> Self {
        self.limit = Some(MessageLimit::new(limit));
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

    /// Reads a unary response to its end, for a call that may be retried
    /// until then; the caller holds the stream slot meanwhile. What it holds
    /// is bounded: a message above `limit` ends the read at its length
    /// prefix with RESOURCE_EXHAUSTED (dropping `incoming` resets the
    /// stream with CANCEL), and of the messages only the first is kept, as
    /// tonic's unary client reads the first and drops the rest.
    pub(crate) async fn read_whole(
        mut incoming: RecvBody,
        limit: usize,
    ) -> Result<Result<Self, Status>, TransportError> {
        let mut whole = VecDeque::new();
        let mut first = FirstMessage::new(limit);
        while let Some(frame) =
            std::future::poll_fn(|cx| Pin::new(&mut incoming).poll_frame(cx)).await
        {
            match frame?.into_data() {
                Ok(data) => match first.keep(data) {
                    Ok(Some(kept)) => whole.push_back(Frame::data(kept)),
                    Ok(None) => {}
                    Err(length) => return Ok(Err(first.limit.exceeded("response", length))),
                },
                Err(frame) => whole.push_back(frame),
            }
        }
        Ok(Ok(Self {
            whole,
            ..Self::default()
        }))
    }

    /// The trailers of a response read whole, if it had any.
    pub(crate) fn whole_trailers(&self) -> Option<&http::HeaderMap> {
        self.whole.back().and_then(Frame::trailers_ref)
    }

    /// Ends the call with DEADLINE_EXCEEDED: its deadline passed while its
    /// response was being received.
    fn deadline_exceeded(&mut self) -> Status {
        if let Some(end) = self.end.as_mut() {
            end.set_outcome(tonic::Code::DeadlineExceeded);
        }
        self.finish();
        Status::deadline_exceeded(
            "the call's deadline passed while its response was being received",
        )
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
            return Poll::Ready(Some(Err(this.deadline_exceeded())));
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
                    // Trailers end a gRPC response: the call is done. A
                    // CANCELLED that a server enforcing the deadline sent
                    // once it passed is the deadline.
                    if let Some(end) = this.end.as_mut() {
                        if end.deadline_passed() && crate::conn::is_cancelled(trailers) {
                            return Poll::Ready(Some(Err(this.deadline_exceeded())));
                        }
                        end.set_outcome_from(trailers);
                    }
                    this.end = None;
                }
                Some(Ok(frame))
            }
            Some(Err(error)) => {
                // A reset that arrives once the deadline has passed is the
                // deadline (as grpc-go's client has it).
                if this.end.as_ref().is_some_and(CallEnd::deadline_passed) {
                    return Poll::Ready(Some(Err(this.deadline_exceeded())));
                }
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

/// What a response read whole keeps of its data: the first message, each
/// message checked against the limit at its length prefix.
struct FirstMessage {
    limit: MessageLimit,
    /// Data bytes seen so far.
    seen: usize,
    prefix: [u8; 5],
    /// Where the first message ends in the data, once its prefix is read.
    end: Option<usize>,
}

impl FirstMessage {
    fn new(limit: usize) -> Self {
        Self {
            limit: MessageLimit::new(limit),
            seen: 0,
            prefix: [0; 5],
            end: None,
        }
    }

    /// The part of `data` to keep; the length of a message above the
    /// limit, if one starts in it.
    fn keep(&mut self, data: Bytes) -> Result<Option<Bytes>, usize> {
        self.limit.check(&data)?;
        let start = self.seen;
        self.seen += data.len();
        if self.end.is_none() {
            for (i, byte) in data.iter().take(5usize.saturating_sub(start)).enumerate() {
                self.prefix[start + i] = *byte;
            }
            if self.seen >= 5 {
                let [_, a, b, c, d] = self.prefix;
                self.end = Some(5 + u32::from_be_bytes([a, b, c, d]) as usize);
            }
        }
        let end = self.end.unwrap_or(usize::MAX);
        if start >= end {
            return Ok(None);
        }
        let kept = (end - start).min(data.len());
        Ok(Some(data.slice(..kept)))
    }
}

#[cfg(test)]
mod tests {
    use super::FirstMessage;
    use crate::call::limit::tests::message;
    use bytes::Bytes;

    #[test]
    fn keeps_the_first_message_only_however_the_data_is_split() {
        let mut stream = message(10);
        stream.extend(message(20));
        for piece in [1, 3, 7, 40] {
            let mut first = FirstMessage::new(100);
            let kept: Vec<u8> = stream
                .chunks(piece)
                .filter_map(|chunk| first.keep(Bytes::copy_from_slice(chunk)).unwrap())
                .flat_map(|b| b.to_vec())
                .collect();
            assert_eq!(kept, message(10), "pieces of {piece}");
        }
    }

    #[test]
    fn a_prefix_above_the_limit_fails_at_once() {
        let mut first = FirstMessage::new(4 << 20);
        let prefix = [0, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            first.keep(Bytes::copy_from_slice(&prefix)),
            Err(u32::MAX as usize)
        );
    }
}
