//! tonic's `Interceptor`s, shared by every clone of a pooled client or of a
//! pool: a client's `with_interceptor`, and `PoolBuilder::interceptor` for
//! every call through the pool.

use std::fmt;
use std::sync::{Arc, Mutex};

use tonic::Status;
use tonic::service::Interceptor;

use crate::lock::lock;

/// A tonic [`Interceptor`] that clones of a client or pool share: each call
/// runs it once, with the call's metadata and extensions, before it is
/// sent; an error ends the call with that status.
///
/// Closures of tonic's shape work, as they do with tonic's
/// `with_interceptor`:
///
/// ```
/// use pooled_client::SharedInterceptor;
///
/// let auth = SharedInterceptor::new(|mut request: tonic::Request<()>| {
///     request.metadata_mut().insert("authorization", "Bearer token".parse().unwrap());
///     Ok(request)
/// });
/// ```
#[derive(Clone)]
pub struct SharedInterceptor(Arc<Mutex<dyn Interceptor + Send>>);

impl SharedInterceptor {
    /// Shares `interceptor`.
    pub fn new(interceptor: impl Interceptor + Send + 'static) -> Self {
        Self(Arc::new(Mutex::new(interceptor)))
    }

    /// Runs the interceptor on `request`'s metadata and extensions.
    ///
    /// # Errors
    ///
    /// The status the interceptor refused the call with.
    pub fn intercept<T>(&self, request: tonic::Request<T>) -> Result<tonic::Request<T>, Status> {
        let (metadata, extensions, message) = request.into_parts();
        let request = tonic::Request::from_parts(metadata, extensions, ());
        let intercepted = lock(&self.0).call(request)?;
        let (metadata, extensions, ()) = intercepted.into_parts();
        Ok(tonic::Request::from_parts(metadata, extensions, message))
    }

    /// Runs the interceptor on an HTTP request's headers and extensions,
    /// as the pool sees every call.
    pub(crate) fn intercept_http<B>(
        &self,
        request: http::Request<B>,
    ) -> Result<http::Request<B>, Status> {
        let (mut parts, body) = request.into_parts();
        let headers = std::mem::take(&mut parts.headers);
        let extensions = std::mem::take(&mut parts.extensions);
        let metadata = tonic::metadata::MetadataMap::from_headers(headers);
        let request = tonic::Request::from_parts(metadata, extensions, ());
        let (metadata, extensions, ()) = lock(&self.0).call(request)?.into_parts();
        parts.headers = metadata.into_headers();
        parts.extensions = extensions;
        Ok(http::Request::from_parts(parts, body))
    }
}

impl fmt::Debug for SharedInterceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedInterceptor").finish_non_exhaustive()
    }
}
