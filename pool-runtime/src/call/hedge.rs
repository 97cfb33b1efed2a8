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
use futures_util::future::BoxFuture;
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
use super::send::{CopyOf, copy_parts, send};
use crate::__private::DecodingLimit;
use crate::config::{HedgingPolicy, MethodConfig};
use crate::conn::REPLAY_LIMIT;
use crate::state::route::RoutedTo;
use crate::state::{Inner, Spread};
use crate::telemetry::CallClock;

type Outcome = Result<Response<ResponseBody>, Status>;

/// Sends `request` as `method`'s hedging policy says.
///
/// Most hedged calls are answered before their first hedge is due, so the
/// first copy runs on its own and the set of further copies (a
/// `FuturesUnordered`) is made only when one goes out:
/// with S10's policy and no hedge sent, a call costs about 1.12x an
/// unhedged one's instructions, not 1.22x (docs/benchmark-notes.md).
pub(super) async fn hedge(
    inner: Arc<Inner>,
    request: Request<Body>,
    deadline: Option<Instant>,
    method: Arc<MethodConfig>,
    clock: CallClock,
) -> Outcome {
    let (head, body) = request.into_parts();
    let body = match buffer(body).await? {
        Buffered::Whole(bytes) => bytes,
        Buffered::Streaming(body) => {
            let request = Request::from_parts(head, body);
            return send(inner, request, deadline, Some(method), clock, None).await;
        }
    };
    let mut copies = Copies {
        inner,
        head: Arc::new(head),
        body,
        deadline,
        method,
        clock,
        spread: Arc::new(Spread::default()),
        later: None,
        sent: 0,
    };
    // Boxed as the later copies are: a copy's future is about 2 KiB, and
    // moved by value through the hedging's futures it would be copied
    // more than once.
    let first = Box::pin(copies.copy());
    copies.until_committed(first).await
}

/// The copies of one call; dropping them cancels those still running and
/// records how many hedges the call sent.
struct Copies {
    inner: Arc<Inner>,
    /// The call's head: each copy sends a copy of it, and copies it again
    /// only if that copy is sent again.
    head: Arc<Parts>,
    body: Bytes,
    deadline: Option<Instant>,
    method: Arc<MethodConfig>,
    /// The call's clock, shared by its copies (empty without metrics).
    clock: CallClock,
    spread: Arc<Spread>,
    /// The copies after the first, once one went out.
    later: Option<FuturesUnordered<BoxFuture<'static, Outcome>>>,
    sent: u32,
}

impl Drop for Copies {
    fn drop(&mut self) {
        self.inner.record_call_hedges(self.sent.saturating_sub(1));
    }
}

impl Copies {
    /// One more copy of the call, to an endpoint no other copy went to.
    fn copy(&mut self) -> impl Future<Output = Outcome> + Send + 'static {
        let request = Request::from_parts(
            copy_parts(&self.head),
            Body::new(FullBody(Some(self.body.clone()))),
        );
        if self.sent > 0 {
            self.inner.count_hedge();
        }
        self.sent += 1;
        // What the call's request carries in its extensions, handed over
        // as it is: the copy's head has none.
        let extensions = &self.head.extensions;
        let copy = CopyOf {
            head: self.head.clone(),
            spread: self.spread.clone(),
            decoding_limit: extensions.get::<DecodingLimit>().copied(),
            // Every copy goes to the cluster the call was routed to.
            routed: extensions.get::<RoutedTo>().cloned(),
        };
        send(
            self.inner.clone(),
            request,
            self.deadline,
            Some(self.method.clone()),
            self.clock.clone(),
            Some(copy),
        )
    }

    /// Sends one more copy beside those running.
    fn launch(&mut self) {
        let copy = Box::pin(self.copy());
        self.later
            .get_or_insert_with(FuturesUnordered::new)
            .push(copy);
    }

    /// Whether another copy may go out: attempts left, the throttle allowing.
    fn may_hedge(&self, policy: &HedgingPolicy) -> bool {
        self.sent < policy.max_attempts && self.inner.retry_throttle().is_none_or(|t| t.allows())
    }

    /// Runs the first copy, and the others as they go out, until one
    /// commits the call or the last fails.
    async fn until_committed(mut self, mut first: BoxFuture<'static, Outcome>) -> Outcome {
        let method = self.method.clone();
        let Some(policy) = method.hedging_policy.as_ref() else {
            return first.await;
        };
        let mut first_running = true;
        let next_copy = tokio::time::sleep_until(Instant::now() + policy.hedging_delay);
        tokio::pin!(next_copy);
        let mut hedge_due = true;
        let mut failed = None;
        loop {
            // Read once a turn: the retry throttle may close between turns.
            let may_hedge = hedge_due && self.may_hedge(policy);
            let later_running = self.later.as_ref().is_some_and(|l| !l.is_empty());
            if !(first_running || later_running || may_hedge) {
                break;
            }
            let outcome = tokio::select! {
                biased;
                outcome = &mut first, if first_running => {
                    first_running = false;
                    outcome
                }
                Some(outcome) = next_later(&mut self.later), if later_running => outcome,
                () = &mut next_copy, if may_hedge => {
                    self.launch();
                    next_copy.as_mut().reset(Instant::now() + policy.hedging_delay);
                    continue;
                }
                else => break,
            };
            let Some(pushback) = non_fatal(&outcome, policy) else {
                self.inner.retry_throttle().inspect(|t| t.succeeded());
                self.spread.decide();
                return outcome;
            };
            self.inner.retry_throttle().inspect(|t| t.failed());
            hedge_due = match pushback {
                Pushback::Stop => false,
                Pushback::After(delay) => {
                    next_copy.as_mut().reset(Instant::now() + delay);
                    true
                }
                Pushback::None => {
                    next_copy.as_mut().reset(Instant::now());
                    true
                }
            };
            failed = Some(outcome);
        }
        // No copy runs and none may go out: the last copy's failure is the
        // call's.
        failed.unwrap_or_else(|| Err(Status::internal("hedging: no copy of the call was sent")))
    }
}

/// The next outcome of the copies after the first, if any went out.
async fn next_later(
    later: &mut Option<FuturesUnordered<BoxFuture<'static, Outcome>>>,
) -> Option<Outcome> {
    later.as_mut()?.next().await
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
/// waiting (after its first message) and within 64 KiB. A body of one
/// chunk (a unary request) is kept as it came, not copied.
async fn buffer(mut body: Body) -> Result<Buffered, Status> {
    let mut read: Vec<Bytes> = Vec::new();
    let mut size = 0;
    loop {
        // The first frame is waited for; the others are taken if there now.
        let frame = if read.is_empty() {
            Some(body.frame().await)
        } else {
            body.frame().now_or_never()
        };
        let data = match frame {
            Some(None) if read.len() == 1 => return Ok(Buffered::Whole(read.swap_remove(0))),
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
