//! What the `#[pooled_client]` expansion refers to, so that it needs nothing
//! else from the user's crate. Not a public API.

pub use tonic;

pub use crate::call::Idempotent;
pub use crate::{Error, Pool, SharedInterceptor};

/// What a generated method does to its request before tonic's client sees
/// it: runs the client's interceptor, then gives the request the client's
/// default deadline and decoding limit. By value, as [`mark_idempotent`]: a
/// request the method's body borrowed would keep a place in the method's
/// future beside the one in tonic's (S11).
///
/// # Errors
///
/// The interceptor's status, when it refuses the request.
pub fn prepare<T>(
    mut request: tonic::Request<T>,
    interceptor: Option<&SharedInterceptor>,
    timeout: Option<core::time::Duration>,
    decoding_limit: Option<usize>,
) -> Result<tonic::Request<T>, tonic::Status> {
    if let Some(interceptor) = interceptor {
        request = interceptor.intercept(request)?;
    }
    apply_default_timeout(&mut request, timeout);
    if let Some(limit) = decoding_limit {
        request.extensions_mut().insert(DecodingLimit(limit));
    }
    Ok(request)
}

/// Marks `request` as one of a method declared idempotent (`#[idempotent]`),
/// when the pool has a policy for such methods (the mark costs an
/// allocation, so only then).
pub fn mark_idempotent<T>(
    pool: &Pool,
    mut request: tonic::Request<T>,
    unary: bool,
) -> tonic::Request<T> {
    if pool.config().idempotent_retry_policy.is_some() {
        request.extensions_mut().insert(Idempotent { unary });
    }
    request
}

/// The response limit a generated client's `max_decoding_message_size`
/// set, carried to the pool (which cannot see the tonic client's).
#[derive(Debug, Clone, Copy)]
pub struct DecodingLimit(pub usize);

/// Gives `request` the client's default deadline unless it has its own.
fn apply_default_timeout<T>(
    request: &mut tonic::Request<T>,
    timeout: Option<core::time::Duration>,
) {
    if let Some(timeout) = timeout
        && !request.metadata().contains_key("grpc-timeout")
    {
        request.set_timeout(timeout);
    }
}

/// A pool with default settings for `uri`, once its first connection is up.
///
/// # Errors
///
/// When `uri` is not a valid endpoint or cannot be reached.
pub async fn connect(uri: String) -> Result<Pool, Error> {
    let pool = Pool::builder().endpoint(uri).build()?;
    pool.ready().await?;
    Ok(pool)
}

/// Takes a stream slot and gives it back at once, returning whether one
/// was free: the pool's hot path without any I/O, for the benchmarks.
#[doc(hidden)]
pub fn bench_pick_release(pool: &Pool) -> bool {
    pool.inner.pick().is_some()
}
