//! Opening a connection: the byte stream, the HTTP/2 handshake, and the server's first
//! SETTINGS frame.

use std::sync::Arc;
use std::time::Duration;

use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioIo, TokioTimer};
use tracing::Instrument;

use super::dial::Dial;
use super::endpoint::Endpoint;
use super::frames::WatchedIo;
use super::link::Link;
use super::probe::{self, HealthError};
use super::request_body::RequestBody;
use super::transport::Transport;
use crate::config::PoolConfig;
use crate::error::BoxError;

/// The task that drives a connection's request dispatch; it ends when the
/// connection can take no more requests.
pub(crate) type Driver =
    http2::Connection<TokioIo<WatchedIo<Transport>>, RequestBody, SpanExecutor>;

/// Runs hyper's tasks on tokio. The first task of a connection, the one
/// hyper spawns at the handshake to drive its I/O, runs inside the span
/// current then, so that what it logs (a GOAWAY, a failure) carries the
/// connection's span. The two tasks hyper spawns per request (the request
/// body's pipe and the response's) run plain: they log nothing of their
/// own, and a span on each cost every call about 1,000 instructions in
/// moves of larger futures and span entries (S3).
#[derive(Debug, Clone, Default)]
pub(crate) struct SpanExecutor {
    /// Set once the connection's I/O task was spawned.
    spawned_io: Arc<std::sync::atomic::AtomicBool>,
}

impl<F> hyper::rt::Executor<F> for SpanExecutor
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        use std::sync::atomic::Ordering;
        if self.spawned_io.swap(true, Ordering::Relaxed) {
            tokio::spawn(future);
        } else {
            tokio::spawn(future.instrument(tracing::Span::current()));
        }
    }
}

/// A connection that completed its handshake and received the server's
/// SETTINGS, so its stream limit is known.
pub(crate) struct Connected {
    pub(crate) sender: SendRequest<RequestBody>,
    pub(crate) driver: Driver,
    pub(crate) link: Arc<Link>,
}

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connection attempt timed out after {0:?} (connect_timeout)")]
    Timeout(Duration),
    #[error("tcp connect failed: {0}")]
    Tcp(#[source] std::io::Error),
    #[error("connecting to the Unix socket {path:?} failed: {source}")]
    Unix {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the connector failed: {0}")]
    Connector(#[source] BoxError),
    #[cfg(feature = "tls")]
    #[error("tls handshake failed: {0}")]
    Tls(#[source] std::io::Error),
    #[error("endpoint is https but the pool has no TLS settings")]
    NoTls,
    #[error("http/2 handshake failed: {0}")]
    Handshake(#[source] hyper::Error),
    #[error("connection closed before the server's SETTINGS frame arrived")]
    ClosedEarly,
    #[error(transparent)]
    Unhealthy(HealthError),
}

/// Opens one connection to `endpoint`, within the configured connect timeout.
pub(crate) async fn connect(
    endpoint: &Arc<Endpoint>,
    config: &PoolConfig,
    dial: &Dial,
) -> Result<Connected, ConnectError> {
    let timeout = config.connect_timeout;
    match tokio::time::timeout(timeout, connect_unbounded(endpoint, config, dial)).await {
        Ok(result) => result,
        Err(_) => Err(ConnectError::Timeout(timeout)),
    }
}

async fn connect_unbounded(
    endpoint: &Arc<Endpoint>,
    config: &PoolConfig,
    dial: &Dial,
) -> Result<Connected, ConnectError> {
    let transport = dial.open(endpoint, config).await?;
    let link = Arc::new(Link::default());
    let io = TokioIo::new(WatchedIo::new(transport, link.clone()));

    let (sender, mut driver) = builder(config)
        .handshake(io)
        .await
        .map_err(ConnectError::Handshake)?;

    // hyper assumes 100 streams until the server's SETTINGS arrive; a burst
    // sent before then would overshoot a lower limit (dotnet/runtime#40249),
    // so the connection only joins the pool once SETTINGS have been read.
    // The driver must be polled meanwhile for a dead connection to show.
    {
        let settings = link.settings.notified();
        tokio::pin!(settings);
        settings.as_mut().enable();
        if !link.settings_seen() {
            tokio::select! {
                () = &mut settings => {}
                _ = &mut driver => return Err(ConnectError::ClosedEarly),
            }
        }
    }
    // With health checking, a connection joins only once its server says
    // it is serving.
    if let Some(settings) = &config.health_check {
        let check = probe::check(sender.clone(), endpoint.clone(), settings);
        tokio::pin!(check);
        tokio::select! {
            result = &mut check => result.map_err(ConnectError::Unhealthy)?,
            _ = &mut driver => return Err(ConnectError::ClosedEarly),
        }
    }
    Ok(Connected {
        sender,
        driver,
        link,
    })
}

fn builder(config: &PoolConfig) -> http2::Builder<SpanExecutor> {
    let mut builder = http2::Builder::new(SpanExecutor::default());
    builder.timer(TokioTimer::new());
    if let Some(interval) = config.http2_keep_alive_interval {
        builder
            .keep_alive_interval(interval)
            .keep_alive_timeout(config.keep_alive_timeout)
            .keep_alive_while_idle(config.keep_alive_while_idle);
    }
    if let Some(size) = config.http2_max_header_list_size {
        builder.max_header_list_size(size);
    }
    if config.http2_adaptive_window {
        builder.adaptive_window(true);
    } else {
        builder
            .initial_stream_window_size(config.initial_stream_window_size)
            .initial_connection_window_size(config.initial_connection_window_size);
    }
    builder
}
