//! One HTTP/2 connection in the pool: its send handle, stream count and limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use http::{Request, Response};

use super::endpoint::Endpoint;
use super::exchange::{SendError, Sender, exchange};
use super::link::Link;
use super::recv_body::RecvBody;
use super::request_body::RequestBody;

/// A connection shared by every call that picks it; never checked out.
#[derive(Debug)]
pub(crate) struct Connection {
    /// Unique within the pool, for logs and removal.
    pub(crate) id: u64,
    /// The endpoint it is connected to.
    pub(crate) endpoint: Arc<Endpoint>,
    /// State and stream limit, as the connection's I/O learns them.
    pub(crate) link: Arc<Link>,
    sender: Sender,
    in_flight: AtomicUsize,
    /// The user's cap on streams per connection (`usize::MAX` if none).
    stream_cap: usize,
    pub(crate) opened_at: Instant,
    /// When the connection is to be drained for age, if ever.
    pub(crate) expires_at: Option<Instant>,
}

impl Connection {
    pub(crate) fn new(
        id: u64,
        endpoint: Arc<Endpoint>,
        link: Arc<Link>,
        sender: Sender,
        stream_cap: usize,
        expires_at: Option<Instant>,
    ) -> Self {
        Self {
            id,
            endpoint,
            link,
            sender,
            in_flight: AtomicUsize::new(0),
            stream_cap,
            opened_at: Instant::now(),
            expires_at,
        }
    }

    /// How many streams the pool may hold on this connection at once.
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.link.max_streams().min(self.stream_cap)
    }

    /// The streams a new call could take on it now: none unless it is
    /// ready.
    pub(crate) fn free_streams(&self) -> usize {
        if self.link.is_ready() {
            self.capacity().saturating_sub(self.in_flight())
        } else {
            0
        }
    }

    /// Streams held right now.
    #[inline]
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Takes one stream slot if the connection is ready and below capacity.
    #[inline]
    pub(crate) fn try_reserve(&self) -> bool {
        let capacity = self.capacity();
        let mut current = self.in_flight.load(Ordering::SeqCst);
        loop {
            if current >= capacity || !self.link.is_ready() {
                return false;
            }
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// Takes one stream slot even past the connection's limit: a call bound
    /// to this connection by its affinity key waits in HTTP/2's queue here
    /// rather than move.
    #[inline]
    pub(crate) fn force_reserve(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    /// Gives back a slot taken by [`try_reserve`](Self::try_reserve).
    ///
    /// Sequentially consistent, paired with the wait queue's length: either a
    /// releaser sees a caller that queued, or that caller sees the freed slot.
    #[inline]
    pub(crate) fn release(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// Sends `request` on this connection and waits for the response's
    /// headers.
    ///
    /// Not an `async fn`: that would keep a second copy of the request in
    /// every call's future (an `async fn` stores its arguments apart from
    /// the locals it moves them into).
    #[inline]
    pub(crate) fn send(
        &self,
        request: Request<RequestBody>,
    ) -> impl Future<Output = Result<Response<RecvBody>, SendError>> + Send + '_ {
        exchange(&self.sender, &self.link, request)
    }

    /// The handle that opens streams on this connection.
    pub(crate) fn sender(&self) -> &Sender {
        &self.sender
    }
}
