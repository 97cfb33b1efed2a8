//! tonic's `Interceptor`s, shared by every clone of a pooled client or of a
//! pool: a client's `with_interceptor`, and `PoolBuilder::interceptor` for
//! every call through the pool.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, TryLockError};

use tonic::Status;
use tonic::service::Interceptor;

/// What an intercepted call runs: the interceptor, callable from any
/// thread at once.
type Intercept = dyn Fn(tonic::Request<()>) -> Result<tonic::Request<()>, Status> + Send + Sync;

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
///
/// Calls on many threads run it at once: tonic's `Interceptor::call` takes
/// `&mut self`, so each thread runs a copy of its own (a clone, made once
/// per thread; no lock is shared between threads, as each clone of a tonic
/// client holds its own copy). [`from_fn`](Self::from_fn) takes a `Fn`,
/// which needs no copies.
#[derive(Clone)]
pub struct SharedInterceptor(Arc<Intercept>);

impl SharedInterceptor {
    /// Shares `interceptor`; each thread runs a copy of it.
    pub fn new(interceptor: impl Interceptor + Clone + Send + Sync + 'static) -> Self {
        let copies = Copies::new(interceptor);
        Self(Arc::new(move |request| copies.call(request)))
    }

    /// Shares `interceptor`, a function every call runs as it is.
    pub fn from_fn(
        interceptor: impl Fn(tonic::Request<()>) -> Result<tonic::Request<()>, Status>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        Self(Arc::new(interceptor))
    }

    /// Runs the interceptor on `request`'s metadata and extensions (for the
    /// `#[pooled_client]` expansion).
    ///
    /// # Errors
    ///
    /// The status the interceptor refused the call with.
    #[doc(hidden)]
    pub fn intercept<T>(&self, request: tonic::Request<T>) -> Result<tonic::Request<T>, Status> {
        let (metadata, extensions, message) = request.into_parts();
        let request = tonic::Request::from_parts(metadata, extensions, ());
        let (metadata, extensions, ()) = (self.0)(request)?.into_parts();
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
        let (metadata, extensions, ()) = (self.0)(request)?.into_parts();
        parts.headers = metadata.into_headers();
        parts.extensions = extensions;
        Ok(http::Request::from_parts(parts, body))
    }
}

/// Copies of an interceptor, one per thread slot (made when the slot is
/// first used), each behind a lock of its own on a cache line of its own,
/// so that threads do not wait on one another.
struct Copies<I> {
    /// What each copy is cloned from; a call whose slot is busy (two
    /// threads sharing a slot, at once) runs a fresh clone of it.
    original: I,
    copies: Box<[Padded<OnceLock<Mutex<I>>>]>,
}

/// A value alone on its cache line (two lines: adjacent-line prefetch).
#[repr(align(128))]
struct Padded<T>(T);

/// The thread slots: threads beyond share them (the CPUs a thread may run
/// on are no guide: a pinned thread sees one).
const SLOTS: usize = 16;

impl<I: Interceptor + Clone> Copies<I> {
    fn new(original: I) -> Self {
        let copies = (0..SLOTS).map(|_| Padded(OnceLock::new())).collect();
        Self { original, copies }
    }

    fn call(&self, request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let slot = self.copies[thread_slot() % SLOTS]
            .0
            .get_or_init(|| Mutex::new(self.original.clone()));
        match slot.try_lock() {
            Ok(mut copy) => copy.call(request),
            // A panic in the interceptor poisoned the copy, which holds no
            // invariant of ours: use it as it is.
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner().call(request),
            Err(TryLockError::WouldBlock) => self.original.clone().call(request),
        }
    }
}

/// This thread's slot among the copies, given out in turn.
fn thread_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: Cell<Option<usize>> = const { Cell::new(None) };
    }
    SLOT.with(|slot| {
        slot.get().unwrap_or_else(|| {
            let next = NEXT.fetch_add(1, Ordering::Relaxed);
            slot.set(Some(next));
            next
        })
    })
}

impl fmt::Debug for SharedInterceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedInterceptor").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An interceptor with state of its own (`&mut self`), as tonic allows.
    #[derive(Clone, Default)]
    struct Numbering {
        calls: u64,
    }

    impl Interceptor for Numbering {
        fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
            self.calls += 1;
            request.metadata_mut().insert("x-call", self.calls.into());
            Ok(request)
        }
    }

    #[test]
    fn threads_at_once_each_run_a_copy_and_every_call_is_intercepted() {
        let shared = SharedInterceptor::new(Numbering::default());
        let numbers: Vec<Vec<u64>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        (0..1000)
                            .map(|_| {
                                let request = shared.intercept(tonic::Request::new(7)).unwrap();
                                assert_eq!(*request.get_ref(), 7, "the message is kept");
                                request
                                    .metadata()
                                    .get("x-call")
                                    .unwrap()
                                    .to_str()
                                    .unwrap()
                                    .parse()
                                    .unwrap()
                            })
                            .collect()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        for seen in numbers {
            assert_eq!(seen.len(), 1000);
            // A thread's own copy counts up; a call that found the copy busy
            // ran a fresh clone (1), which only another thread on the same
            // slot, at that moment, causes.
            assert!(
                seen.windows(2).all(|w| w[1] > w[0] || w[1] == 1),
                "{seen:?}"
            );
        }
    }

    #[test]
    fn a_refusal_ends_the_call_with_its_status() {
        let shared = SharedInterceptor::from_fn(|_| Err(Status::unauthenticated("no token")));
        let refused = shared.intercept(tonic::Request::new(())).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    }
}
