//! What the `#[pooled_client]` expansion refers to, so that it needs nothing
//! else from the user's crate. Not a public API.

pub use tonic;

pub use crate::call::Idempotent;
pub use crate::{Error, Pool, SharedInterceptor};

/// Marks `request` as one of a method declared idempotent (`#[idempotent]`),
/// when the pool has a policy for such methods (the mark costs an
/// allocation, so only then).
pub fn mark_idempotent<T>(pool: &Pool, request: &mut tonic::Request<T>, unary: bool) {
    if pool.config().idempotent_retry_policy.is_some() {
        request.extensions_mut().insert(Idempotent { unary });
    }
}

/// The response limit a generated client's `max_decoding_message_size`
/// set, carried to the pool (which cannot see the tonic client's).
#[derive(Debug, Clone, Copy)]
pub struct DecodingLimit(pub usize);

/// Tells the pool the client's `max_decoding_message_size`, when it set one.
pub fn apply_decoding_limit<T>(request: &mut tonic::Request<T>, limit: Option<usize>) {
    if let Some(limit) = limit {
        request.extensions_mut().insert(DecodingLimit(limit));
    }
}

/// Gives `request` the client's default deadline unless it has its own.
pub fn apply_default_timeout<T>(
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
