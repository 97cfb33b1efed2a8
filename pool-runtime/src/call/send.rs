//! The attempt loop: take a slot, send on its connection, and on failure
//! ask the retry policy whether to send again.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use http::request::Parts;
use http::{Request, Response};
use tokio::time::Instant;
use tonic::body::Body;
use tonic::{Code, Status};

use super::body::ResponseBody;
use super::end::CallEnd;
use super::limit::LimitedBody;
use super::retry::{Budget, Failure, Idempotent, Pushback, RetryPolicy};
use crate::__private::DecodingLimit;
use crate::affinity::AffinityKey;
use crate::config::MethodConfig;
use crate::conn::{BodyHandle, Endpoint, RecvBody, RequestBody, SendError, TransportError, status};
use crate::state::circuit;
use crate::state::route::RoutedTo;
use crate::state::{Inner, Slot, Spread};
use crate::telemetry::CallClock;

/// Sends `request` on the least-loaded connection, again elsewhere when the
/// retry policy allows it, until it has a response or a final status.
///
/// One attempt is written out here rather than in a function of its own: the
/// loop's future is every call's, and another layer of future costs every
/// call a copy of its state (S3 in docs/benchmarks.md). Only the choice of
/// a slot is a future of its own ([`Call::slot`], 152 bytes, alive only
/// while a call waits for its slot).
pub(super) fn send(
    inner: Arc<Inner>,
    request: Request<Body>,
    deadline: Option<Instant>,
    method: Option<Arc<MethodConfig>>,
    clock: CallClock,
    copy: Option<CopyOf>,
) -> impl Future<Output = Result<Response<ResponseBody>, Status>> + Send {
    // The call's state is made here, not in the future: an `async fn` would
    // keep the request it was given beside the one it sends (S11).
    let (mut call, mut request) = Call::new(&inner, request, method.as_ref(), copy);
    // A ring-hash pool's hash (gRPC A42): every attempt starts from it.
    let hash = inner.ring_hash(request.headers());
    async move {
        loop {
            // An attempt is a block of its own, the retry awaited after it:
            // a value held across two awaits has a place of its own in the
            // loop's future, every call's (S11).
            let again = {
                // Every attempt counts against its cluster's breaker (gRPC
                // A32, as grpc-go's picker counts) and is picked in its
                // cluster (A28).
                let admission = call.admit()?;
                let slot = call.slot(&inner, hash).await?;
                let mut end =
                    CallEnd::new(admission.hold(slot), call.handle.clone(), clock.attempt());
                end.connection().endpoint.address_request(&mut request)?;
                let limit = call.response_limit(&inner);
                match end.connection().send(request).await {
                    Ok(response) if call.read_whole => match read_whole(response, limit).await {
                        Ok(Err(too_large)) => {
                            end.set_outcome(too_large.code());
                            return Err(too_large);
                        }
                        Ok(Ok(response)) => match call.answered(&inner, end, &response) {
                            Ok(again) => again,
                            Err(mut end) => return Ok(finish_whole(&mut end, response, limit)),
                        },
                        Err(error) => Again::Failed(Failed {
                            failure: SendError::after_headers(error),
                            end,
                        }),
                    },
                    Ok(response) => match call.answered(&inner, end, &response) {
                        Ok(again) => again,
                        Err(end) => return Ok(streamed(end, response, deadline, limit)),
                    },
                    Err(failure) => Again::Failed(Failed { failure, end }),
                }
            };
            request = call.again(&inner, again).await?;
        }
    }
}

/// Why an attempt is followed by another, if the policy allows one.
enum Again {
    /// The attempt failed: its error, and what is left of it.
    Failed(Failed),
    /// The server answered with a status the method's retry policy lists.
    After(StatusRetry),
}

/// A head to send a request again with.
// Unboxed: `Own` is every call's, where a box would cost each an allocation.
#[allow(clippy::large_enum_variant)]
enum SpareHead {
    /// The call's own copy, made before the request went out.
    Own(Parts),
    /// A hedged call's head, which its copies share: copied only when a
    /// copy is sent again.
    Shared(Arc<Parts>),
}

/// What a copy of a hedged call carries over from the call, whose request's
/// extensions it does not copy (a map of its own for every copy).
pub(super) struct CopyOf {
    /// The call's head, from which the copy's was copied.
    pub(super) head: Arc<Parts>,
    /// The endpoints the call's copies took.
    pub(super) spread: Arc<Spread>,
    /// The generated client's `max_decoding_message_size`, if it set one.
    pub(super) decoding_limit: Option<DecodingLimit>,
    /// The cluster an xDS pool's router sent the call to.
    pub(super) routed: Option<RoutedTo>,
}

/// What only some calls carry: a hedged copy's spread, the method's message
/// limits, and the retries made.
#[derive(Default)]
struct Rare {
    /// For a copy of a hedged call: the endpoints the other copies took.
    spread: Option<Arc<Spread>>,
    /// The method's `maxResponseMessageBytes`, or the generated client's
    /// `max_decoding_message_size` (the smaller when both are set).
    response_limit: Option<usize>,
    /// Set when a request message was above `maxRequestMessageBytes`.
    request_exceeded: Option<Arc<OnceLock<Status>>>,
    /// The retries made, for gRPC A96's per-call metrics.
    made: Made,
    /// The endpoints of the attempts that failed: a retry goes elsewhere
    /// while the pool has others (beyond gRPC A6, as Envoy's
    /// `previous_hosts` retry predicate).
    tried: Vec<Arc<Endpoint>>,
    /// The cluster an xDS pool's router sent the call to.
    routed: Option<RoutedTo>,
}

impl Rare {
    /// What `request` of `method` (or, for a copy of a hedged call, the
    /// call) carries, if anything.
    fn of<B>(
        request: &Request<B>,
        method: Option<&Arc<MethodConfig>>,
        copy: Option<CopyOf>,
    ) -> Option<Box<Self>> {
        let extensions = request.extensions();
        let (spread, client_limit, routed) = match copy {
            Some(copy) => (Some(copy.spread), copy.decoding_limit, copy.routed),
            None => (
                None,
                extensions.get::<DecodingLimit>().copied(),
                extensions.get::<RoutedTo>().cloned(),
            ),
        };
        let client_limit = client_limit.map(|l| l.0);
        let method_limit = method.and_then(|m| m.max_response_message_bytes);
        let response_limit = match (method_limit, client_limit) {
            (Some(method), Some(client)) => Some(method.min(client)),
            (method, client) => method.or(client),
        };
        let limited = method.is_some_and(|m| m.max_request_message_bytes.is_some());
        (spread.is_some() || response_limit.is_some() || limited || routed.is_some()).then(|| {
            Box::new(Self {
                spread,
                response_limit,
                routed,
                ..Self::default()
            })
        })
    }
}

/// The retries a call made, recorded as gRPC A96's per-call histograms when
/// the call ends (its attempt loop's state is dropped).
#[derive(Default)]
struct Made {
    retries: u32,
    transparent: u32,
    waited: std::time::Duration,
    /// The pool, once the call made a retry (so calls that make none carry
    /// nothing more).
    pool: Option<Arc<Inner>>,
}

impl Made {
    fn count(&mut self, inner: &Arc<Inner>, budget: Budget, waited: std::time::Duration) {
        match budget {
            Budget::Transparent => self.transparent += 1,
            Budget::Configured => self.retries += 1,
        }
        self.waited += waited;
        self.pool.get_or_insert_with(|| inner.clone());
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.record_call_retries(self.retries, self.transparent, self.waited);
        }
    }
}

/// A trailers-only response the method's retry policy sends again.
struct StatusRetry {
    budget: Budget,
    pushback: Pushback,
    /// What the server said, for the caller if the request cannot be sent
    /// again.
    status: Status,
}

/// A response read whole, handed on: its status recorded for the
/// endpoint, its messages held to the method's limit.
/// The response of an attempt that stands, its body streamed to the caller
/// under the call's deadline and response limit.
fn streamed(
    mut end: CallEnd,
    response: Response<RecvBody>,
    deadline: Option<Instant>,
    limit: usize,
) -> Response<ResponseBody> {
    // A trailers-only response carries its status here.
    end.set_outcome_from(response.headers());
    let end = end.with_deadline(deadline);
    response.map(|body| ResponseBody::new(body, end).with_limit(limit))
}

fn finish_whole(
    end: &mut CallEnd,
    response: Response<ResponseBody>,
    limit: usize,
) -> Response<ResponseBody> {
    if let Some(trailers) = response.body().whole_trailers() {
        end.set_outcome_from(trailers);
    }
    response.map(|body| body.with_limit(limit))
}

/// What a failed attempt leaves: its error, the request if it never left
/// the client, and the call's hold on the connection.
struct Failed {
    failure: SendError,
    end: CallEnd,
}

/// Reads a response to its end, for a call that may be retried until then;
/// the caller holds the call's slot meanwhile and gives it back after.
async fn read_whole(
    response: Response<RecvBody>,
    limit: usize,
) -> Result<Result<Response<ResponseBody>, Status>, TransportError> {
    let (head, incoming) = response.into_parts();
    let body = ResponseBody::read_whole(incoming, limit).await?;
    Ok(body.map(|body| Response::from_parts(head, body)))
}

/// What the attempt loop keeps between attempts.
struct Call {
    handle: Arc<BodyHandle>,
    policy: RetryPolicy,
    /// A head for sending the request again; the body comes back unsent
    /// or through `handle`.
    spare_head: Option<SpareHead>,
    /// A unary call of an idempotent method with a retry policy is read
    /// whole before it is handed on, so that a connection lost
    /// mid-response can be retried too.
    read_whole: bool,
    affinity: Option<AffinityKey>,
    /// What only some calls carry, boxed so that every call's future
    /// stays small (S3): `None` for most.
    rare: Option<Box<Rare>>,
    /// The method's `waitForReady`: wait for a connection while nothing can
    /// be reached, instead of failing at once.
    wait_for_ready: bool,
}

impl Call {
    /// The call's state and its first request; `method` is the service
    /// config's for the call's method. A method the config does not name,
    /// declared idempotent, takes the pool's `idempotent_retry_policy`.
    fn new(
        inner: &Inner,
        request: Request<Body>,
        method: Option<&Arc<MethodConfig>>,
        copy: Option<CopyOf>,
    ) -> (Self, Request<RequestBody>) {
        let idempotent = request.extensions().get::<Idempotent>().copied();
        let retrying = match (method, idempotent) {
            (Some(method), _) => Some(method),
            (None, Some(_)) => inner.idempotent_policy(),
            (None, None) => None,
        };
        let policy = RetryPolicy::new(retrying);
        let call = Self {
            handle: Arc::new(BodyHandle::default()),
            read_whole: policy.is_configured() && idempotent.is_some_and(|i| i.unary),
            policy,
            spare_head: Some(match &copy {
                Some(copy) => SpareHead::Shared(copy.head.clone()),
                None => SpareHead::Own(copy_head(&request)),
            }),
            affinity: request.extensions().get::<AffinityKey>().copied(),
            rare: Rare::of(&request, method, copy),
            wait_for_ready: method.and_then(|m| m.wait_for_ready).unwrap_or(false),
        };
        let mut call = call;
        let request_limit = method.and_then(|m| m.max_request_message_bytes);
        let request = request.map(|body| {
            let body = match request_limit {
                Some(limit) => {
                    let exceeded = Arc::new(OnceLock::new());
                    call.rare_mut().request_exceeded = Some(exceeded.clone());
                    Body::new(LimitedBody::new(body, limit, exceeded))
                }
                None => body,
            };
            RequestBody::new(body, call.handle.clone())
        });
        (call, request)
    }

    /// For a copy of a hedged call, a slot on an endpoint no other copy
    /// took; for a retry, one on an endpoint no failed attempt took; if
    /// one is free.
    fn preferred_slot(&self, inner: &Arc<Inner>) -> Option<Slot> {
        let rare = self.rare.as_ref()?;
        let routed = rare.routed.as_ref();
        match &rare.spread {
            Some(spread) => inner.pick_spread(spread, routed),
            None if rare.tried.is_empty() => None,
            None => inner.pick_untried(&rare.tried, routed),
        }
    }

    /// The slot of the next attempt: the endpoint a hedged copy or a retry
    /// prefers, if one is free there; else the key's connection, the
    /// route's cluster, the ring's endpoint or the plain pick, waiting in
    /// line if need be.
    async fn slot(&self, inner: &Arc<Inner>, hash: Option<u64>) -> Result<Slot, Status> {
        if let Some(slot) = self.preferred_slot(inner) {
            return Ok(slot);
        }
        let wait = self.wait_for_ready;
        match (self.affinity, self.routed(), hash) {
            (Some(key), routed, _) => inner.acquire_for(key, routed, wait).await,
            (None, Some(to), _) => inner.acquire_routed(to, wait).await,
            (None, None, Some(hash)) => inner.acquire_hashed(hash, wait).await,
            (None, None, None) => inner.acquire(wait).await,
        }
    }

    /// Admits one attempt under the call's cluster's breaker (none for a
    /// call that was not routed).
    #[inline]
    fn admit(&self) -> Result<circuit::Admission, Status> {
        match self.routed() {
            Some(to) => to.breaker.admit(),
            None => Ok(circuit::unlimited()),
        }
    }

    /// The cluster the call was routed to, on an xDS pool.
    #[inline]
    fn routed(&self) -> Option<&RoutedTo> {
        self.rare.as_ref()?.routed.as_ref()
    }

    /// The attempt on `end` was answered with `response`: what follows if
    /// the method's retry policy sends the call again, else `end` back, for
    /// the answer to stand.
    fn answered<B>(
        &mut self,
        inner: &Inner,
        end: CallEnd,
        response: &Response<B>,
    ) -> Result<Again, CallEnd> {
        match self.retry_for(inner, response) {
            Some(retry) => {
                self.failed_with(end, &retry);
                Ok(Again::After(retry))
            }
            None => Err(end),
        }
    }

    /// The attempt on `end` failed with a status the policy retries: its
    /// endpoint and the metrics count it so, not as cancelled, and its
    /// slot goes back.
    fn failed_with(&mut self, mut end: CallEnd, retry: &StatusRetry) {
        end.set_outcome(retry.status.code());
        self.tried(&end);
        end.release_for_retry();
    }

    /// Remembers the endpoint of `end`'s attempt, which failed and is
    /// sent again.
    fn tried(&mut self, end: &CallEnd) {
        let endpoint = &end.connection().endpoint;
        let tried = &mut self.rare_mut().tried;
        if !tried.iter().any(|e| Arc::ptr_eq(e, endpoint)) {
            tried.push(endpoint.clone());
        }
    }

    fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// The largest response message the call takes: the method's or the
    /// client's limit, else the pool's `max_decoding_message_size`.
    fn response_limit(&self, inner: &Inner) -> usize {
        self.rare
            .as_ref()
            .and_then(|r| r.response_limit)
            .unwrap_or(inner.config.max_decoding_message_size)
    }

    /// The request to send after `again`, or the call's final status.
    /// Boxed: only failed attempts carry the retry's state (a timer, a copy
    /// of the head), so every call's future stays small.
    fn again<'a>(
        &'a mut self,
        inner: &'a Arc<Inner>,
        again: Again,
    ) -> Pin<Box<dyn Future<Output = Result<Request<RequestBody>, Status>> + Send + 'a>> {
        match again {
            Again::Failed(failed) => Box::pin(self.after_failure(inner, failed)),
            Again::After(retry) => Box::pin(self.again_after(inner, retry)),
        }
    }

    /// The request to send next after `failed`, or the call's final status.
    async fn after_failure(
        &mut self,
        inner: &Arc<Inner>,
        failed: Failed,
    ) -> Result<Request<RequestBody>, Status> {
        let exceeded = self.rare.as_ref().and_then(|r| r.request_exceeded.as_ref());
        if let Some(status) = exceeded.and_then(|e| e.get()) {
            return Err(status.clone());
        }
        let Failed {
            failure:
                SendError {
                    error,
                    unsent,
                    sent,
                },
            mut end,
        } = failed;
        end.set_outcome(status::code_for(&error));
        // Never sent, or refused unprocessed: the server did not act on it.
        let refused = !sent || status::refused_unprocessed(&error);
        if unsent.is_some() || refused || error.is_closed() {
            end.retire_connection();
        }
        let failure = if unsent.is_some() || refused {
            Failure::Unprocessed
        } else {
            Failure::Sent(status::code_for(&error))
        };
        let endpoint = end.connection().endpoint.key.clone();
        let again = match self.policy.retry(failure) {
            Some(budget) => self.recover(unsent).await.map(|again| (budget, again)),
            None => None,
        };
        // Dropping `end` here ends the call: no retry.
        let Some((budget, again)) = again else {
            return Err(status::from_transport(error, &endpoint));
        };
        self.tried(&end);
        let wait = self.policy.spend(budget, Pushback::None);
        tracing::debug!(endpoint = %endpoint, ?failure, ?wait, "sending the request again");
        self.count_retry(inner, budget, wait, &again);
        tokio::time::sleep(wait).await;
        end.release_for_retry();
        Ok(again)
    }

    /// What every retry does before it waits and is sent: counts it, and
    /// keeps a spare head if the policy allows another attempt after it.
    fn count_retry(
        &mut self,
        inner: &Arc<Inner>,
        budget: Budget,
        wait: std::time::Duration,
        again: &Request<RequestBody>,
    ) {
        inner.count_retry(budget == Budget::Transparent);
        self.rare_mut().made.count(inner, budget, wait);
        if self.spare_head.is_none() && self.policy.any_left() {
            self.spare_head = Some(SpareHead::Own(copy_head(again)));
        }
    }

    /// Whether to send the call again after a trailers-only `response` (a
    /// status before any response headers: gRPC A6 has not committed the
    /// call) whose code the method's retry policy lists, the retry throttle
    /// allowing. Every answer of a method with a policy feeds the throttle.
    fn retry_for<B>(&self, inner: &Inner, response: &Response<B>) -> Option<StatusRetry> {
        if !self.policy.is_configured() {
            return None;
        }
        let throttle = inner.retry_throttle();
        let failed = Status::from_header_map(response.headers()).filter(|s| s.code() != Code::Ok);
        let Some(status) = failed else {
            throttle.inspect(|t| t.succeeded());
            return None;
        };
        if !self.policy.lists(status.code()) {
            return None;
        }
        if let Some(throttle) = throttle {
            throttle.failed();
            if !throttle.allows() {
                inner.count_throttled_retry();
                return None;
            }
        }
        let budget = self.policy.retry(Failure::Sent(status.code()))?;
        let pushback = Pushback::from_headers(response.headers());
        (pushback != Pushback::Stop).then_some(StatusRetry {
            budget,
            pushback,
            status,
        })
    }

    /// The request to send again after `retry`, once the policy's backoff
    /// or the server's pushback has passed; the server's status if the
    /// request cannot be sent again.
    async fn again_after(
        &mut self,
        inner: &Arc<Inner>,
        retry: StatusRetry,
    ) -> Result<Request<RequestBody>, Status> {
        let Some(again) = self.recover(None).await else {
            return Err(retry.status);
        };
        let wait = self.policy.spend(retry.budget, retry.pushback);
        tracing::debug!(code = ?retry.status.code(), ?wait, "retrying under the method's retry policy");
        self.count_retry(inner, retry.budget, wait, &again);
        tokio::time::sleep(wait).await;
        Ok(again)
    }

    /// The request to send again: the one handed back unsent, or the
    /// spare head with the body taken back through `handle`.
    async fn recover(
        &mut self,
        unsent: Option<Box<Request<RequestBody>>>,
    ) -> Option<Request<RequestBody>> {
        if let Some(unsent) = unsent {
            return Some(*unsent);
        }
        let head = match self.spare_head.take()? {
            SpareHead::Own(head) => head,
            SpareHead::Shared(head) => {
                let copy = copy_parts(&head);
                self.spare_head = Some(SpareHead::Shared(head));
                copy
            }
        };
        let body = self.handle.reclaim().await?;
        Some(Request::from_parts(
            head,
            RequestBody::new(body, self.handle.clone()),
        ))
    }
}

/// A copy of a request's head for sending it again (see [`copy_parts`]).
fn copy_head<B>(request: &Request<B>) -> Parts {
    copy_parts_of(
        request.method(),
        request.uri(),
        request.version(),
        request.headers(),
    )
}

/// A copy of a request head already taken apart (for the copies of a
/// hedged call). Extensions are left out: they cost a map copy on every
/// call, and the layers that read them ran before the pool.
pub(super) fn copy_parts(parts: &Parts) -> Parts {
    copy_parts_of(&parts.method, &parts.uri, parts.version, &parts.headers)
}

fn copy_parts_of(
    method: &http::Method,
    uri: &http::Uri,
    version: http::Version,
    headers: &http::HeaderMap,
) -> Parts {
    let (mut head, ()) = Request::new(()).into_parts();
    head.method = method.clone();
    head.uri = uri.clone();
    head.version = version;
    head.headers = headers.clone();
    head
}
