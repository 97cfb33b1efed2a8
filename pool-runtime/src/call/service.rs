//! `Pool` as a tower `Service`: what every tonic client calls.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use futures_util::future::Either;
use http::header::USER_AGENT;
use http::{Request, Response};
use tonic::Status;
use tonic::body::Body;

use super::body::ResponseBody;
use super::{deadline, hedge, send};
use crate::config::MethodConfig;
use crate::conn::status;
use crate::pool::Pool;
use crate::state::Inner;
use crate::state::route::RoutePolicy;
use crate::telemetry::CallClock;

impl tower_service::Service<Request<Body>> for Pool {
    type Response = Response<ResponseBody>;
    type Error = Status;
    type Future = ResponseFuture;

    /// Always ready: a call waits for a stream inside its own future, with
    /// its own timeout. (tonic's generated clients turn an error from here
    /// into `UNKNOWN`, so errors are reported by the call instead.)
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> ResponseFuture {
        ResponseFuture {
            inner: Box::pin(call(self.inner.clone(), request)),
            started: false,
        }
    }
}

/// The future of one call through a [`Pool`].
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Status>> + Send>>,
    /// Whether the call has spent its unit of the task's budget.
    started: bool,
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody>, Status>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // A call spends a unit of its task's budget as it starts, as tokio's
        // own resources do when they make progress. Some calls end at once
        // (UNAVAILABLE while nothing can be reached and the pool backs off,
        // a breaker's refusal), and a caller retrying them in a loop would
        // otherwise never give its thread back: the tasks beside it, the
        // pool's reconnection among them, would starve. Once a call, not on
        // every poll: the budget lives in a thread-local (S11).
        if !self.started {
            std::task::ready!(tokio::task::coop::poll_proceed(cx)).made_progress();
            self.started = true;
        }
        self.inner.as_mut().poll(cx)
    }
}

/// One call, its deadline enforced over the whole of it: waiting for a
/// stream, the response headers and the body (tonic's own transport does
/// the same; a pool under tonic's transport must too). The deadline is the
/// request's `grpc-timeout`, or its method's `timeout` in the service
/// config when that is shorter, or else the pool's `timeout` (what the pool
/// imposes is sent as the call's `grpc-timeout`). The pool's interceptor
/// runs first.
///
/// Not an `async fn` but the attempts' future with the deadline's timer
/// beside it: an `async fn` around them would hold a second copy of their
/// state, and every call moves its future into a box (S11).
fn call(
    inner: Arc<Inner>,
    request: Request<Body>,
) -> impl Future<Output = Result<Response<ResponseBody>, Status>> + Send {
    let Prepared {
        request,
        policy,
        deadline,
        clock,
    } = match prepare(&inner, request) {
        Ok(prepared) => prepared,
        Err(status) => return Either::Left(std::future::ready(Err(status))),
    };
    match deadline {
        None => {
            let sent = dispatch(inner, request, None, policy, clock.clone());
            Either::Right(Either::Left(sent.map(move |result| ended(&clock, result))))
        }
        Some((timeout, at)) => {
            let sent = dispatch(inner.clone(), request, Some(at), policy, clock.clone());
            let judged = tokio::time::timeout_at(at, sent).map(move |result| {
                let result = match result {
                    Ok(result) => within_deadline(&inner, result, timeout, at),
                    Err(_) => Err(inner.deadline_status(timeout)),
                };
                ended(&clock, result)
            });
            Either::Right(Either::Right(judged))
        }
    }
}

/// What a call carries once its interceptor ran and its policies and
/// deadline are known.
struct Prepared {
    request: Request<Body>,
    policy: Option<Arc<MethodConfig>>,
    /// The call's timeout, and when it passes.
    deadline: Option<(std::time::Duration, tokio::time::Instant)>,
    clock: CallClock,
}

/// Runs the pool's interceptor, sets the `user-agent` a call without one
/// sends, and finds the call's policies and deadline.
fn prepare(inner: &Inner, mut request: Request<Body>) -> Result<Prepared, Status> {
    if let Some(interceptor) = &inner.calls.interceptor {
        request = interceptor.intercept_http(request)?;
    }
    // Once for the call, so that every attempt and every copy of a hedged
    // call, and the heads they are sent again with, carry it.
    request
        .headers_mut()
        .entry(USER_AGENT)
        .or_insert_with(|| inner.calls.user_agent.clone());
    let (policy, route) = policies(inner, &mut request)?;
    let deadline = call_timeout(inner, &mut request, policy.as_deref(), route.as_deref())
        .map(|timeout| (timeout, tokio::time::Instant::now() + timeout));
    let clock = CallClock::start(
        &inner.telemetry.instruments,
        request.uri().path(),
        deadline.map(|(_, at)| at),
    );
    Ok(Prepared {
        request,
        policy,
        deadline,
        clock,
    })
}

/// The result of a call that ended before its deadline's timer fired: a
/// server that enforces the deadline too may have answered first.
fn within_deadline(
    inner: &Inner,
    result: Result<Response<ResponseBody>, Status>,
    timeout: std::time::Duration,
    at: tokio::time::Instant,
) -> Result<Response<ResponseBody>, Status> {
    let passed = || tokio::time::Instant::now() >= at;
    match result {
        // tonic's servers answer CANCELLED: the deadline is what happened.
        Ok(response) if passed() && crate::conn::is_cancelled(response.headers()) => {
            Err(inner.deadline_status(timeout))
        }
        // A server that enforces the deadline resets the stream as it
        // passes (grpc-go with CANCEL); a reset that arrives once the
        // deadline has passed is the deadline, as grpc-go's client has it
        // (`handleRSTStream`).
        Err(status) if passed() && status::is_stream_reset(&status) => {
            Err(inner.deadline_status(timeout))
        }
        result => result,
    }
}

/// The status the caller gets is the call's; a response's status comes
/// from its attempt, when its body ends.
fn ended(
    clock: &CallClock,
    result: Result<Response<ResponseBody>, Status>,
) -> Result<Response<ResponseBody>, Status> {
    if let Err(status) = &result {
        clock.set_code(status.code());
    }
    result
}

/// A call's method config, and its route's policy on an xDS pool.
type Policies = (Option<Arc<MethodConfig>>, Option<Arc<RoutePolicy>>);

/// The call's method config and, on an xDS pool, its route's policy: the
/// pool routes the call (gRPC A28), whose attempts are then picked in the
/// route's cluster, and the route's retry policy stands in for the service
/// config's (A44; and for hedging, which a route does not have).
fn policies(inner: &Inner, request: &mut Request<Body>) -> Result<Policies, Status> {
    let policy = inner.method_policy(request.uri().path()).cloned();
    let Some(routed) = inner.route(request.uri().path(), request.headers())? else {
        return Ok((policy, None));
    };
    request.extensions_mut().insert(routed.to);
    let Some(retry) = routed.policy.retry.clone() else {
        return Ok((policy, Some(routed.policy)));
    };
    let method = MethodConfig {
        retry_policy: Some(retry),
        hedging_policy: None,
        ..policy.as_deref().cloned().unwrap_or_default()
    };
    Ok((Some(Arc::new(method)), Some(routed.policy)))
}

/// The call's timeout: the request's `grpc-timeout`, or its method's
/// `timeout` when shorter, or else the pool's; what the pool imposes is set
/// as the request's `grpc-timeout`.
fn call_timeout(
    inner: &Inner,
    request: &mut Request<Body>,
    method: Option<&MethodConfig>,
    route: Option<&RoutePolicy>,
) -> Option<std::time::Duration> {
    let timeout = deadline::from_headers(request.headers());
    let mut imposed = match method.and_then(|m| m.timeout) {
        Some(method) if timeout.is_none_or(|t| method < t) => Some(method),
        Some(_) => None,
        None if timeout.is_none() => inner.config.timeout,
        None => None,
    };
    // gRPC A31: an xDS route bounds the deadline.
    if let Some(route) = route {
        let own = imposed.or(timeout);
        let bounded = route.bound(own);
        if bounded != own {
            imposed = bounded;
        }
    }
    if let Some(imposed) = imposed {
        deadline::set(request.headers_mut(), imposed);
        return Some(imposed);
    }
    timeout
}

/// Sends the call once (with its retries) or hedged, as its method says;
/// not an `async fn` of its own, which would cost every call a copy of its
/// state (S3), and hedged calls, the rare ones, are boxed.
fn dispatch(
    inner: Arc<Inner>,
    request: Request<Body>,
    deadline: Option<tokio::time::Instant>,
    method: Option<Arc<MethodConfig>>,
    clock: CallClock,
) -> impl Future<Output = Result<Response<ResponseBody>, Status>> {
    match method {
        Some(method) if method.hedging_policy.is_some() => Either::Right(Box::pin(hedge::hedge(
            inner, request, deadline, method, clock,
        ))),
        method => Either::Left(send::send(inner, request, deadline, method, clock, None)),
    }
}
