//! Hedging (gRPC A6): copies of a call `hedgingDelay` apart, up to
//! `maxAttempts`, and one at once when a copy fails with a non-fatal
//! status. The first response headers, or a fatal status, commit the call;
//! the other copies are dropped, which resets their streams with CANCEL.
//! Beyond gRPC, each copy goes to another endpoint while there are others.
//!
//! Every copy carries the whole request, so only a request whose messages
//! are all there when the call starts (a unary call, or a client stream
//! already complete) is hedged, up to 64 KiB; others are sent once.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use http::request::Parts;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::time::Instant;
use tonic::Status;
use tonic::body::Body;

use super::body::ResponseBody;
use super::retry::Pushback;
use super::send::{copy_parts, send};
use crate::config::{HedgingPolicy, MethodConfig};
use crate::conn::REPLAY_LIMIT;
use crate::state::route::RoutedTo;
use crate::state::{Inner, Spread};
use crate::telemetry::CallClock;

type Outcome = Result<Response<ResponseBody>, Status>;

/// Sends `request` as `method`'s hedging policy says.
pub(super) async fn hedge(
    inner: Arc<Inner>,
    request: Request<Body>,
    deadline: Option<Instant>,
    method: Arc<MethodConfig>,
    policy: &HedgingPolicy,
    clock: CallClock,
) -> Outcome {
    let (head, body) = request.into_parts();
    let body = match buffer(body).await? {
        Buffered::Whole(bytes) => bytes,
        Buffered::Streaming(body) => {
            return send(
                inner,
                Request::from_parts(head, body),
                deadline,
                Some(method),
                clock,
            )
            .await;
        }
    };
    let mut copies = Copies {
        inner,
        head,
        body,
        deadline,
        method,
        clock,
        spread: Arc::new(Spread::default()),
        running: FuturesUnordered::new(),
        sent: 0,
    };
    copies.launch();
    copies.until_committed(policy).await
}

/// The copies of one call; dropping them cancels those still running and
/// records how many hedges the call sent.
struct Copies {
    inner: Arc<Inner>,
    head: Parts,
    body: Bytes,
    deadline: Option<Instant>,
    method: Arc<MethodConfig>,
    /// The call's clock, shared by its copies (empty without metrics).
    clock: CallClock,
    spread: Arc<Spread>,
    running: FuturesUnordered<futures_util::future::BoxFuture<'static, Outcome>>,
    sent: u32,
}

impl Drop for Copies {
    fn drop(&mut self) {
        self.inner.record_call_hedges(self.sent.saturating_sub(1));
    }
}

impl Copies {
    /// Sends one more copy, to an endpoint no other copy went to.
    fn launch(&mut self) {
        let mut request = Request::from_parts(
            copy_parts(&self.head),
            Body::new(FullBody(Some(self.body.clone()))),
        );
        request.extensions_mut().insert(self.spread.clone());
        // Every copy goes to the cluster the call was routed to.
        if let Some(to) = self.head.extensions.get::<RoutedTo>() {
            request.extensions_mut().insert(to.clone());
        }
        if self.sent > 0 {
            self.inner.count_hedge();
        }
        self.sent += 1;
        let copy = send(
            self.inner.clone(),
            request,
            self.deadline,
            Some(self.method.clone()),
            self.clock.clone(),
        );
        self.running.push(Box::pin(copy));
    }

    /// Whether another copy may go out: attempts left, the throttle allowing.
    fn may_hedge(&self, policy: &HedgingPolicy) -> bool {
        self.sent < policy.max_attempts && self.inner.retry_throttle().is_none_or(|t| t.allows())
    }

    /// Runs the copies until one commits the call, or the last fails.
    async fn until_committed(mut self, policy: &HedgingPolicy) -> Outcome {
        let mut next = Some(Instant::now() + policy.hedging_delay);
        loop {
            let timer = next.filter(|_| self.may_hedge(policy));
            tokio::select! {
                biased;
                Some(outcome) = self.running.next() => {
                    let Some(pushback) = non_fatal(&outcome, policy) else {
                        self.inner.retry_throttle().inspect(|t| t.succeeded());
                        self.spread.decide();
                        return outcome;
                    };
                    self.inner.retry_throttle().inspect(|t| t.failed());
                    next = match pushback {
                        Pushback::Stop => None,
                        Pushback::After(delay) => Some(Instant::now() + delay),
                        Pushback::None => Some(Instant::now()),
                    };
                    if self.running.is_empty() && !next.is_some_and(|_| self.may_hedge(policy)) {
                        return outcome;
                    }
                }
                () = tokio::time::sleep_until(timer.unwrap_or_else(Instant::now)), if timer.is_some() => {
                    self.launch();
                    next = Some(Instant::now() + policy.hedging_delay);
                }
                else => return Err(Status::internal("hedging: no copy of the call is running")),
            }
        }
    }
}

/// Whether `outcome` leaves the call open for other copies: a status
/// (before any response headers) that the policy lists as non-fatal; with
/// the server's pushback, if it gave one.
fn non_fatal(outcome: &Outcome, policy: &HedgingPolicy) -> Option<Pushback> {
    let (code, pushback) = match outcome {
        Err(status) => (
            status.code(),
            Pushback::from_headers(&status.metadata().clone().into_headers()),
        ),
        Ok(response) => {
            let status = Status::from_header_map(response.headers())?;
            (status.code(), Pushback::from_headers(response.headers()))
        }
    };
    policy
        .non_fatal_status_codes
        .contains(&code)
        .then_some(pushback)
}

/// A request body read up front, or handed back untouched in effect.
enum Buffered {
    /// Every message, ended: each copy can carry it.
    Whole(Bytes),
    /// More is to come later, or it is too large: sent once.
    Streaming(Body),
}

/// Reads what of `body` is there now: the whole of it if it ends without
/// waiting (after its first message) and within 64 KiB.
async fn buffer(mut body: Body) -> Result<Buffered, Status> {
    let mut read: Vec<Bytes> = Vec::new();
    let mut size = 0;
    let mut first = true;
    loop {
        let frame = if first {
            first = false;
            Some(body.frame().await)
        } else {
            body.frame().now_or_never()
        };
        let data = match frame {
            Some(None) => return Ok(Buffered::Whole(read.concat().into())),
            Some(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
            Some(Some(Err(status))) => return Err(status),
            None => break,
        };
        size += data.len();
        read.push(data);
        if size > REPLAY_LIMIT {
            break;
        }
    }
    let frames = futures_util::stream::iter(read.into_iter().map(|d| Ok(Frame::data(d))));
    let rest = http_body_util::BodyStream::new(body);
    Ok(Buffered::Streaming(Body::new(
        http_body_util::StreamBody::new(frames.chain(rest)),
    )))
}

/// A body of one chunk, sent as it is by every copy.
struct FullBody(Option<Bytes>);

impl http_body::Body for FullBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Status>>> {
        std::task::Poll::Ready(self.0.take().map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.0.as_ref().map_or(0, |d| d.len() as u64))
    }
}
