//! One request and its response on an HTTP/2 stream, on h2 directly.
//!
//! The caller's task sends the headers and, while the request body has
//! frames ready, its data: a unary or server-streaming call (one message)
//! spawns no task at all. A request body that has to wait for its next
//! frame (a client stream still being written) is handed to one task that
//! sends the rest within flow control; the call's own future then only
//! waits for the response. Either way a call that ends early resets its
//! stream with RST_STREAM(CANCEL), never END_STREAM: h2 resets a stream
//! whose handles are all dropped, and the pump resets it when the call's
//! end reaches the request body.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::FutureExt;
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame};

use super::error::TransportError;
use super::link::Link;
use super::recv_body::RecvBody;
use super::request_body::RequestBody;

/// The handle that opens streams on one connection.
pub(crate) type Sender = h2::client::SendRequest<Bytes>;

/// The most request bytes the caller's task sends before the stream's
/// flow control has to be respected (by the pump task): a unary request
/// fits, a long client stream does not buffer without bound.
const INLINE_BYTES: usize = 1 << 20;

/// Why a request could not be exchanged, and what is left of it.
#[derive(Debug)]
pub(crate) struct SendError {
    pub(crate) error: TransportError,
    /// The whole request, when it never left the client. Boxed: only a
    /// connection that failed first hands one back, and every call's
    /// future holds an answer's room (S11).
    pub(crate) unsent: Option<Box<Request<RequestBody>>>,
    /// Whether its headers went out (if not, the server never saw it).
    pub(crate) sent: bool,
}

impl SendError {
    fn before_headers(error: h2::Error, unsent: Option<Request<RequestBody>>) -> Self {
        Self {
            error: error.into(),
            unsent: unsent.map(Box::new),
            sent: false,
        }
    }

    /// A failure after the headers went out: the server may have acted.
    pub(crate) fn after_headers(error: TransportError) -> Self {
        Self {
            error,
            unsent: None,
            sent: true,
        }
    }
}

/// Sends `request` on the connection behind `sender` and waits for the
/// response's headers.
///
/// The headers go out when the future is made, not at its first poll, so
/// that the future holds what the answer needs (the response to wait for,
/// the body to send), never the request beside them: every call's future
/// is this one's size (S11). Callers await it at once.
pub(crate) fn exchange<'a>(
    sender: &'a Sender,
    link: &'a Arc<Link>,
    request: Request<RequestBody>,
) -> impl Future<Output = Result<Response<RecvBody>, SendError>> + Send + 'a {
    let started = start(sender, request);
    async move {
        let (mut response, stream, body, end_stream) = match started {
            Started::Sent(sent) => sent,
            Started::Failed(error) => return Err(error),
            Started::Waiting(mut sender, request) => {
                if let Err(error) = std::future::poll_fn(|cx| sender.poll_ready(cx)).await {
                    return Err(SendError::before_headers(error, Some(*request)));
                }
                send_head(&mut sender, *request)
                    .map_err(|error| SendError::before_headers(error, None))?
            }
        };
        let open = link.open_stream();
        // The driver lets the other callers queue theirs before it writes.
        link.defer_next_poll();
        if !end_stream {
            let mut pump = Pump {
                body,
                stream,
                waiting: None,
                held: None,
                inline: 0,
            };
            match std::future::poll_fn(|cx| Poll::Ready(pump.send_ready(cx))).await {
                Inline::Done => {}
                Inline::Failed(error) => {
                    return early_answer(&mut response, error)
                        .map(|response| RecvBody::checked(response, open))
                        .map_err(SendError::after_headers);
                }
                Inline::Wait => {
                    tokio::spawn(pump);
                }
            }
        }
        match response.await {
            Ok(response) => Ok(RecvBody::checked(response, open)),
            Err(error) => Err(SendError::after_headers(error.into())),
        }
    }
}

/// How far a request got before its exchange's future was made.
enum Started {
    /// Its headers went out.
    Sent(HeadSent),
    /// The connection failed first.
    Failed(SendError),
    /// The sender was not ready. A fresh clone of h2's sender always is
    /// (h2 makes a sender wait only for a request of its own still waiting
    /// to open), so this is a fallback, boxed to keep every call's future
    /// small.
    Waiting(Sender, Box<Request<RequestBody>>),
}

/// Sends the headers of `request` if the connection takes a stream now.
fn start(sender: &Sender, request: Request<RequestBody>) -> Started {
    let mut sender = sender.clone();
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match sender.poll_ready(&mut cx) {
        Poll::Pending => Started::Waiting(sender, Box::new(request)),
        Poll::Ready(Err(error)) => Started::Failed(SendError::before_headers(error, Some(request))),
        // The body, dropped with a refused request, keeps itself for
        // sending again.
        Poll::Ready(Ok(())) => match send_head(&mut sender, request) {
            Ok(sent) => Started::Sent(sent),
            Err(error) => Started::Failed(SendError::before_headers(error, None)),
        },
    }
}

/// A request's headers, sent: the response to wait for, the stream and
/// the body to send on it, and whether the headers ended the stream.
type HeadSent = (
    h2::client::ResponseFuture,
    h2::SendStream<Bytes>,
    RequestBody,
    bool,
);

/// Sends the headers of `request` on a `sender` that is ready.
fn send_head(
    sender: &mut Sender,
    mut request: Request<RequestBody>,
) -> Result<HeadSent, h2::Error> {
    strip_connection_headers(request.headers_mut());
    let (head, body) = request.into_parts();
    let end_stream = body.is_end_stream();
    let (response, stream) = sender.send_request(Request::from_parts(head, ()), end_stream)?;
    Ok((response, stream, body, end_stream))
}

/// What ends a call whose request body failed to go out. The server may
/// have answered and closed the stream before the body went out (tonic
/// answers an unknown service with its status at once, then resets the
/// stream): its answer is the call's, as hyper has it, not the failed send.
fn early_answer(
    response: &mut h2::client::ResponseFuture,
    error: TransportError,
) -> Result<Response<h2::RecvStream>, TransportError> {
    match response.now_or_never() {
        Some(Ok(response)) => Ok(response),
        // The server reset the stream first (h2 then calls the body's send
        // "inactive stream"): its reset is what happened, REFUSED_STREAM
        // included, which a transparent retry may send again.
        Some(Err(reset)) if reset.is_remote() => Err(reset.into()),
        _ => Err(error),
    }
}

/// Headers HTTP/2 forbids (RFC 9113, section 8.2.2); h2 refuses a request
/// that carries one, so they are dropped, as hyper does.
fn strip_connection_headers(headers: &mut HeaderMap) {
    // One pass over the few names a gRPC request has, compared as
    // constants, instead of a hashed lookup per forbidden name: a request
    // almost never carries one.
    if !headers.keys().any(is_connection_header) {
        return;
    }
    let forbidden: Vec<_> = headers
        .keys()
        .filter(|name| is_connection_header(name))
        .cloned()
        .collect();
    for name in forbidden {
        headers.remove(&name);
    }
}

/// The connection-specific headers HTTP/2 forbids (RFC 9113 section 8.2.2).
fn is_connection_header(name: &http::HeaderName) -> bool {
    *name == http::header::CONNECTION
        || *name == http::header::TRANSFER_ENCODING
        || *name == http::header::UPGRADE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// How far the caller's task got with the request body.
enum Inline {
    /// All of it is sent.
    Done,
    /// It failed; the stream is reset.
    Failed(TransportError),
    /// Its next frame is not ready (or the inline budget is spent): the
    /// pump task sends the rest.
    Wait,
}

/// Sends a request body on its stream: first from the caller's task while
/// frames are ready, then, if need be, as a task of its own.
struct Pump {
    body: RequestBody,
    stream: h2::SendStream<Bytes>,
    /// A chunk waiting for flow-control capacity, and whether it ends the
    /// body.
    waiting: Option<(Bytes, bool)>,
    /// A data chunk the caller's task read but has not sent: whether it
    /// ends the body is known at the next poll (see `send_ready`).
    held: Option<Bytes>,
    /// Bytes the caller's task sent.
    inline: usize,
}

impl Pump {
    /// Sends the frames that are ready now, without waiting for capacity
    /// (h2 buffers them). A data chunk is held until the body's next poll
    /// says whether it is the last, so that a unary request is HEADERS and
    /// one DATA frame with END_STREAM, as grpc-go sends it, not a third,
    /// empty DATA frame for the end.
    fn send_ready(&mut self, cx: &mut Context<'_>) -> Inline {
        while self.inline <= INLINE_BYTES {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => break,
                Poll::Ready(frame) => match self.send(frame) {
                    Ok(true) => return Inline::Done,
                    Ok(false) => {}
                    Err(error) => return Inline::Failed(error),
                },
            }
        }
        match self.release_held() {
            Ok(()) => Inline::Wait,
            Err(error) => Inline::Failed(error),
        }
    }

    /// Sends the held chunk, if there is one, as not the last.
    fn release_held(&mut self) -> Result<(), TransportError> {
        if let Some(held) = self.held.take() {
            self.stream.send_data(held, false)?;
        }
        Ok(())
    }

    /// Sends one frame of the body (`None`: its end); whether the body is
    /// done.
    fn send(
        &mut self,
        frame: Option<Result<Frame<Bytes>, tonic::Status>>,
    ) -> Result<bool, TransportError> {
        match frame {
            None => {
                match self.held.take() {
                    Some(last) => self.stream.send_data(last, true)?,
                    None => self.stream.send_data(Bytes::new(), true)?,
                }
                Ok(true)
            }
            Some(Err(status)) => {
                // The caller's stream failed, or the call ended first: to
                // the server, the upload must not look finished.
                self.held = None;
                self.stream.send_reset(h2::Reason::CANCEL);
                Err(TransportError::Body(Box::new(status)))
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    self.release_held()?;
                    self.inline += data.len();
                    if self.body.is_end_stream() {
                        self.stream.send_data(data, true)?;
                        return Ok(true);
                    }
                    self.held = Some(data);
                    Ok(false)
                }
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => {
                        self.release_held()?;
                        self.stream.send_trailers(trailers)?;
                        Ok(true)
                    }
                    Err(_) => Ok(false),
                },
            },
        }
    }

    /// Waits for capacity for the chunk that waits, then sends it.
    fn poll_waiting(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, TransportError>> {
        let Some((chunk, end)) = self.waiting.as_ref() else {
            return Poll::Ready(Ok(false));
        };
        while self.stream.capacity() == 0 {
            match ready!(self.stream.poll_capacity(cx)) {
                Some(Ok(_)) => {}
                Some(Err(error)) => return Poll::Ready(Err(error.into())),
                None => return Poll::Ready(Err(h2::Error::from(h2::Reason::CANCEL).into())),
            }
        }
        let end = *end;
        let chunk = chunk.clone();
        self.waiting = None;
        self.stream.send_data(chunk, end)?;
        Poll::Ready(Ok(end))
    }
}

/// The pump as a task: the rest of the body, within flow control, until it
/// ends, the server resets the stream, or the call ends.
impl Future for Pump {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            if this.stream.poll_reset(cx).is_ready() || this.body.poll_call_end(cx).is_ready() {
                // The server is done with the request, or the caller with
                // the call: reset (a no-op on a stream already reset).
                this.stream.send_reset(h2::Reason::CANCEL);
                return Poll::Ready(());
            }
            match this.poll_waiting(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_) | Ok(true)) => return Poll::Ready(()),
                Poll::Ready(Ok(false)) => {}
            }
            let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
            match frame {
                Some(Ok(frame)) if frame.is_data() => {
                    let Ok(chunk) = frame.into_data() else {
                        continue;
                    };
                    let end = this.body.is_end_stream();
                    this.stream.reserve_capacity(chunk.len().max(1));
                    this.waiting = Some((chunk, end));
                }
                frame => match this.send(frame) {
                    Ok(false) => {}
                    Ok(true) | Err(_) => return Poll::Ready(()),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_headers_are_dropped_and_the_rest_kept() {
        let mut headers = HeaderMap::new();
        headers.insert("te", "trailers".parse().unwrap());
        headers.insert("content-type", "application/grpc".parse().unwrap());
        headers.insert(http::header::CONNECTION, "close".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("proxy-connection", "keep-alive".parse().unwrap());
        headers.insert(http::header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        headers.append(http::header::UPGRADE, "h2c".parse().unwrap());
        headers.append(http::header::UPGRADE, "websocket".parse().unwrap());
        strip_connection_headers(&mut headers);
        let mut left: Vec<_> = headers.keys().map(|name| name.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "te"]);

        let mut plain = HeaderMap::new();
        plain.insert("content-type", "application/grpc".parse().unwrap());
        let before = plain.clone();
        strip_connection_headers(&mut plain);
        assert_eq!(plain, before);
    }
}
