//! The service config's message size limits (`maxRequestMessageBytes`,
//! `maxResponseMessageBytes`), read from gRPC's length-prefixed framing as
//! the bytes pass: a message above its limit fails the call with
//! `RESOURCE_EXHAUSTED` before any of its bytes go on.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tonic::Status;

/// Follows the 5-byte prefix (compressed flag, length) of each message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MessageLimit {
    limit: usize,
    prefix: [u8; 5],
    /// Prefix bytes read of the next message.
    have: usize,
    /// Bytes of the current message still to come.
    remaining: usize,
}

impl MessageLimit {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            prefix: [0; 5],
            have: 0,
            remaining: 0,
        }
    }

    /// Follows `data`; the length of a message above the limit, if one
    /// starts in it.
    pub(crate) fn check(&mut self, mut data: &[u8]) -> Result<(), usize> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let skipped = self.remaining.min(data.len());
                self.remaining -= skipped;
                data = &data[skipped..];
                continue;
            }
            let taken = (5 - self.have).min(data.len());
            self.prefix[self.have..self.have + taken].copy_from_slice(&data[..taken]);
            self.have += taken;
            data = &data[taken..];
            if self.have == 5 {
                self.have = 0;
                let [_, a, b, c, d] = self.prefix;
                let length = u32::from_be_bytes([a, b, c, d]) as usize;
                if length > self.limit {
                    return Err(length);
                }
                self.remaining = length;
            }
        }
        Ok(())
    }

    /// The status of a call whose `direction` message was `length` bytes:
    /// RESOURCE_EXHAUSTED, as gRPC's `doc/statuscodes.md` gives for a
    /// message larger than a configured limit (tonic says OUT_OF_RANGE).
    pub(crate) fn exceeded(&self, direction: &str, length: usize) -> Status {
        Status::resource_exhausted(format!(
            "a {direction} message of {length} bytes is above the limit of {} bytes",
            self.limit
        ))
    }
}

/// A request body whose messages are held to a limit. A message above it
/// resets the stream with CANCEL (the sender resets a stream whose body
/// fails) and leaves the call's status in `exceeded`, for the attempt
/// loop to give.
pub(super) struct LimitedBody {
    inner: tonic::body::Body,
    limit: MessageLimit,
    exceeded: Arc<OnceLock<Status>>,
}

impl LimitedBody {
    pub(super) fn new(
        inner: tonic::body::Body,
        limit: usize,
        exceeded: Arc<OnceLock<Status>>,
    ) -> Self {
        Self {
            inner,
            limit: MessageLimit::new(limit),
            exceeded,
        }
    }
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
            && let Err(length) = self.limit.check(data)
        {
            let _ = self.exceeded.set(self.limit.exceeded("request", length));
            let mut reset = Status::cancelled("a request message is above the method's limit");
            reset.set_source(Arc::new(h2::Error::from(h2::Reason::CANCEL)));
            return Poll::Ready(Some(Err(reset)));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::MessageLimit;

    /// A gRPC message of `length` bytes, with its prefix.
    pub(in crate::call) fn message(length: u32) -> Vec<u8> {
        let mut framed = vec![0];
        framed.extend_from_slice(&length.to_be_bytes());
        framed.extend(std::iter::repeat_n(7, length as usize));
        framed
    }

    #[test]
    fn finds_a_large_message_across_chunks() {
        let mut stream = message(10);
        stream.extend(message(100));
        stream.extend(message(101));
        let mut limit = MessageLimit::new(100);
        // Fed three bytes at a time, prefixes split across chunks.
        let outcome = stream.chunks(3).try_for_each(|chunk| limit.check(chunk));
        assert_eq!(outcome, Err(101));
        let mut limit = MessageLimit::new(101);
        assert_eq!(limit.check(&stream), Ok(()));
    }
}
