//! `Pool` as a tower `Service`: what every tonic client calls.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::header::{HeaderValue, USER_AGENT};
use http::{Request, Response, Uri};
use tonic::Status;
use tonic::body::Body;

use crate::affinity::AffinityKey;
use crate::body::ResponseBody;
use crate::call::{CallEnd, RequestBody};
use crate::endpoint::Endpoint;
use crate::grpc_timeout;
use crate::pool::{Pool, Shared};
use crate::rotation::Retirement;
use crate::status;

const DEFAULT_USER_AGENT: &str = concat!("pooled-client/", env!("CARGO_PKG_VERSION"));

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
            inner: Box::pin(send(self.shared.clone(), request)),
        }
    }
}

/// The future of one call through a [`Pool`].
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Status>> + Send>>,
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody>, Status>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

/// Sends one request, enforcing its `grpc-timeout` over the whole call:
/// waiting for a stream, the response headers and the body.
async fn send(
    shared: Arc<Shared>,
    request: Request<Body>,
) -> Result<Response<ResponseBody>, Status> {
    let Some(timeout) = grpc_timeout::from_headers(request.headers()) else {
        return send_once_or_retry(shared, request, None).await;
    };
    let deadline = tokio::time::Instant::from_std(Instant::now() + timeout);
    match tokio::time::timeout_at(
        deadline,
        send_once_or_retry(shared, request, Some(deadline)),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(Status::deadline_exceeded(format!(
            "the call's deadline of {timeout:?} passed before the server answered"
        ))),
    }
}

/// Sends on the least-loaded connection; a request that never left the
/// client (its connection closed first) is sent once more elsewhere.
async fn send_once_or_retry(
    shared: Arc<Shared>,
    mut request: Request<Body>,
    deadline: Option<tokio::time::Instant>,
) -> Result<Response<ResponseBody>, Status> {
    if !request.headers().contains_key(USER_AGENT) {
        request
            .headers_mut()
            .insert(USER_AGENT, HeaderValue::from_static(DEFAULT_USER_AGENT));
    }
    let end = Arc::new(CallEnd::default());
    let (parts, body) = request.into_parts();
    // A copy of the head for sending the request again; the body comes back
    // from hyper or from `end`.
    let mut spare_head = Some(copy_head(&parts));
    let mut request = Request::from_parts(parts, RequestBody::new(body, end.clone()));
    // One transparent retry of a request the server never processed, and
    // the retries the user allowed for idempotent calls.
    let mut transparent_left = 1u32;
    let mut idempotent_left = shared.config.idempotent_retries;
    // A unary call of an idempotent method is read whole before it is
    // handed on, so that a connection lost mid-response can be retried too.
    let read_whole = shared.config.idempotent_retries > 0
        && request
            .extensions()
            .get::<crate::codegen::UnaryCall>()
            .is_some();
    let affinity = request.extensions().get::<AffinityKey>().copied();
    loop {
        let mut guard = match affinity {
            None => shared.acquire().await?,
            Some(key) => shared.acquire_for(key).await?,
        };
        guard.bind(end.clone());
        let connection = guard.connection().clone();
        set_origin(&mut request, &connection.endpoint)?;
        let (unsent, error) = match connection.sender().try_send_request(request).await {
            Ok(response) if read_whole => {
                let (head, incoming) = response.into_parts();
                match ResponseBody::read_whole(incoming).await {
                    Ok(body) => return Ok(Response::from_parts(head, body)),
                    Err(error) => (None, error),
                }
            }
            Ok(response) => {
                let deadline = deadline.map(|at| Box::pin(tokio::time::sleep_until(at)));
                return Ok(response.map(|body| ResponseBody::new(body, guard, deadline)));
            }
            Err(mut error) => (error.take_message(), error.into_error()),
        };
        let endpoint = connection.endpoint.key.clone();
        let refused = status::refused_unprocessed(&error);
        if unsent.is_some() || refused || error.is_closed() {
            shared.retire(connection.id, Retirement::Broken);
        }
        let unprocessed = unsent.is_some() || refused;
        let allowed = if unprocessed {
            transparent_left > 0
        } else {
            idempotent_left > 0 && status::code_for(&error) == tonic::Code::Unavailable
        };
        let again = match (unsent, spare_head.take()) {
            (Some(unsent), head) if allowed => {
                spare_head = head;
                Some(unsent)
            }
            (None, Some(head)) if allowed => end
                .reclaim()
                .await
                .map(|body| Request::from_parts(head, RequestBody::new(body, end.clone()))),
            _ => None,
        };
        let Some(again) = again else {
            return Err(status::from_transport(error, &endpoint));
        };
        if unprocessed {
            transparent_left -= 1;
        } else {
            idempotent_left -= 1;
        }
        tracing::debug!(endpoint = %endpoint, unprocessed, "sending the request again");
        guard.release_for_retry();
        let (head, body) = again.into_parts();
        if spare_head.is_none() && transparent_left + idempotent_left > 0 {
            spare_head = Some(copy_head(&head));
        }
        request = Request::from_parts(head, body);
    }
}

/// A copy of a request's head for sending it again. Extensions are left
/// out: they cost a map copy on every call, and the layers that read them
/// ran before the pool.
fn copy_head(parts: &http::request::Parts) -> http::request::Parts {
    let (mut head, ()) = Request::new(()).into_parts();
    head.method = parts.method.clone();
    head.uri = parts.uri.clone();
    head.version = parts.version;
    head.headers = parts.headers.clone();
    head
}

/// Points the request at the connection's endpoint, keeping its path.
pub(crate) fn set_origin<B>(request: &mut Request<B>, target: &Endpoint) -> Result<(), Status> {
    let mut parts = std::mem::take(request.uri_mut()).into_parts();
    parts.scheme = Some(target.scheme.clone());
    parts.authority = Some(target.authority.clone());
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    *request.uri_mut() = Uri::from_parts(parts)
        .map_err(|e| Status::internal(format!("cannot address {}: {e}", target.key)))?;
    Ok(())
}
