//! Opening a connection: the byte stream, the HTTP/2 handshake, and the server's first
//! SETTINGS frame.

use std::sync::Arc;

use super::dial::Dial;
use super::driver::{Driver, Pings};
use super::endpoint::Endpoint;
use super::error::ConnectError;
use super::exchange::Sender;
use super::frames::WatchedIo;
use super::link::Link;
use super::probe;
use crate::config::PoolConfig;

/// The stream window when none is set (hyper's default, kept).
const STREAM_WINDOW: u32 = 2 << 20;
/// The connection window when none is set (hyper's default, kept).
const CONNECTION_WINDOW: u32 = 5 << 20;
/// HTTP/2's initial window, where the adaptive window starts.
const SPEC_WINDOW: u32 = 65_535;
/// The largest response header list accepted when none is set (hyper's
/// default, kept).
const HEADER_LIST: u32 = 16 << 10;

/// A connection that completed its handshake and received the server's
/// SETTINGS, so its stream limit is known.
pub(crate) struct Connected {
    pub(crate) sender: Sender,
    pub(crate) driver: Driver,
    pub(crate) link: Arc<Link>,
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
    let ack = transport.ack_signal();
    let link = Arc::new(Link::default());
    let io = WatchedIo::new(transport, link.clone());
    let (sender, connection) = builder(config)
        .handshake(io)
        .await
        .map_err(ConnectError::Handshake)?;
    let mut driver = Driver::new(connection, link.clone(), pings(config), ack);

    await_settings(&link, &mut driver).await?;
    admit(endpoint, &link, &mut driver).await?;
    // With health checking, a connection joins only once its server says
    // it is serving.
    if let Some(settings) = &config.health_check {
        let check = probe::check(sender.clone(), link.clone(), endpoint.clone(), settings);
        tokio::pin!(check);
        tokio::select! {
            result = &mut check => result.map_err(ConnectError::Unhealthy)?,
            result = &mut driver => return Err(closed_early(&link, result.err())),
        }
    }
    Ok(Connected {
        sender,
        driver,
        link,
    })
}

/// Waits for the server's SETTINGS, driving the connection meanwhile.
///
/// h2 assumes 100 streams until the server's SETTINGS arrive; a burst
/// sent before then would overshoot a lower limit (dotnet/runtime#40249),
/// so the connection only joins the pool once SETTINGS have been read.
/// The driver must be polled meanwhile for a dead connection to show.
async fn await_settings(link: &Link, driver: &mut Driver) -> Result<(), ConnectError> {
    let settings = link.settings.notified();
    tokio::pin!(settings);
    settings.as_mut().enable();
    if !link.settings_seen() {
        tokio::select! {
            // The driver first: when the server's SETTINGS and its
            // GOAWAY (or a broken connection) come together, the
            // connection is not up, and the error says why.
            biased;
            result = &mut *driver => return Err(closed_early(link, result.err())),
            () = &mut settings => {}
        }
    }
    Ok(())
}

/// Whether what the SETTINGS said lets calls go on the connection.
async fn admit(endpoint: &Endpoint, link: &Link, driver: &mut Driver) -> Result<(), ConnectError> {
    // gRPC's servers advertise a limit or none; 0 means no call can go
    // here, so the attempt fails and the endpoint backs off, as for a
    // server that refuses connections.
    if link.max_streams() == 0 {
        return Err(ConnectError::NoStreams {
            endpoint: endpoint.key.clone(),
        });
    }
    if !link.is_ready() {
        // GOAWAY came with the SETTINGS: the driver's error, if it ends
        // with one soon, says why.
        let ended = tokio::time::timeout(GOAWAY_GRACE, &mut *driver).await;
        return Err(closed_early(link, ended.ok().and_then(Result::err)));
    }
    Ok(())
}

/// The error of a connection that ended, or went away, before it was
/// ready: what h2 saw, and what the server sent if it is not HTTP/2.
fn closed_early(link: &Link, cause: Option<super::TransportError>) -> ConnectError {
    ConnectError::ClosedEarly {
        cause,
        answered: link.first_answer(),
        goaway: link.state() != super::State::Ready,
    }
}

/// How long a connection told GOAWAY with its SETTINGS is given to end
/// with h2's error, for the attempt's message.
const GOAWAY_GRACE: std::time::Duration = std::time::Duration::from_millis(50);

/// hyper's client frame size (tonic's default), advertised as hyper does.
const FRAME_SIZE: u32 = 16 << 10;

/// hyper's limit of streams reset for the server's errors (tonic's default).
const LOCAL_ERROR_RESETS: usize = 1024;

/// h2's settings for a connection, from tonic's names in the config.
pub(crate) fn builder(config: &PoolConfig) -> h2::client::Builder {
    let mut builder = h2::client::Builder::new();
    builder
        .enable_push(false)
        .max_header_list_size(config.http2_max_header_list_size.unwrap_or(HEADER_LIST))
        .max_frame_size(config.max_frame_size.unwrap_or(FRAME_SIZE));
    if let Some(size) = config.http2_header_table_size {
        builder.header_table_size(size);
    }
    if let Some(max) = config.http2_max_concurrent_reset_streams {
        builder.max_concurrent_reset_streams(max);
    }
    if let Some(duration) = config.http2_reset_stream_duration {
        builder.reset_stream_duration(duration);
    }
    builder.max_local_error_reset_streams(
        config
            .http2_max_local_error_reset_streams
            .unwrap_or(Some(LOCAL_ERROR_RESETS)),
    );
    if config.http2_adaptive_window {
        builder
            .initial_window_size(SPEC_WINDOW)
            .initial_connection_window_size(SPEC_WINDOW);
    } else {
        builder
            .initial_window_size(config.initial_stream_window_size.unwrap_or(STREAM_WINDOW))
            .initial_connection_window_size(
                config
                    .initial_connection_window_size
                    .unwrap_or(CONNECTION_WINDOW),
            );
    }
    builder
}

/// What the connection's PINGs are for.
fn pings(config: &PoolConfig) -> Pings {
    Pings {
        keepalive: config.http2_keep_alive_interval.map(|interval| {
            (
                interval,
                config.keep_alive_timeout,
                config.keep_alive_while_idle,
            )
        }),
        adaptive_from: config.http2_adaptive_window.then_some(SPEC_WINDOW),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What no frame shows, the h2 builder the connections are made with
    /// carries: the reset-stream settings, by tonic's names.
    #[test]
    fn the_reset_stream_settings_reach_h2() {
        let config = PoolConfig {
            http2_max_concurrent_reset_streams: Some(77),
            http2_reset_stream_duration: Some(std::time::Duration::from_millis(2500)),
            http2_max_local_error_reset_streams: Some(Some(33)),
            ..PoolConfig::default()
        };
        let built = format!("{:?}", builder(&config));
        for expected in [
            "reset_stream_max: 77",
            "reset_stream_duration: 2.5s",
            "local_max_error_reset_streams: Some(33)",
        ] {
            assert!(built.contains(expected), "{expected} not in {built}");
        }
        // tonic's defaults: h2's 50 and 1 s, hyper's 1,024.
        let built = format!("{:?}", builder(&PoolConfig::default()));
        for expected in [
            "reset_stream_max: 50",
            "reset_stream_duration: 1s",
            "local_max_error_reset_streams: Some(1024)",
        ] {
            assert!(built.contains(expected), "{expected} not in {built}");
        }
        let unlimited = PoolConfig {
            http2_max_local_error_reset_streams: Some(None),
            ..PoolConfig::default()
        };
        assert!(
            format!("{:?}", builder(&unlimited)).contains("local_max_error_reset_streams: None")
        );
    }
}
