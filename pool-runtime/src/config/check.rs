//! The checks of [`PoolConfig`] that `build` runs before any I/O, and the
//! helpers every type's checks share; each setting type's own checks are
//! beside it (`Backoff::check` in `backoff.rs`, ...).

use std::time::Duration;

use super::PoolConfig;
use crate::error::Error;

/// The longest duration a timeout setting accepts.
pub(super) const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);
/// The most connections one pool may open.
const MAX_CONNECTIONS: usize = 10_000;
/// The most calls that may wait at once.
const MAX_WAITERS: usize = 1 << 24;

/// HTTP/2's bounds of `SETTINGS_MAX_FRAME_SIZE` (RFC 9113, 6.5.2); h2
/// panics outside them, so the builder refuses them.
const MIN_FRAME_SIZE: u32 = 16_384;
const MAX_FRAME_SIZE: u32 = 16_777_215;

impl PoolConfig {
    /// Checks every setting, naming the first one out of range.
    pub(crate) fn check(&self) -> Result<(), Error> {
        check_limits(self)?;
        check_durations(self)
    }
}

pub(super) fn invalid(
    name: &'static str,
    value: impl std::fmt::Debug,
    reason: impl Into<std::borrow::Cow<'static, str>>,
) -> Error {
    Error::InvalidSetting {
        name,
        value: format!("{value:?}"),
        reason: reason.into(),
    }
}

pub(super) fn check_duration(name: &'static str, value: Duration) -> Result<(), Error> {
    if value.is_zero() {
        return Err(invalid(name, value, "must be greater than zero"));
    }
    if value > MAX_DURATION {
        return Err(invalid(name, value, "must be at most 24 hours"));
    }
    Ok(())
}

/// Checks the name and the counts.
fn check_limits(config: &PoolConfig) -> Result<(), Error> {
    if config.name.is_empty() {
        return Err(invalid("name", "", "must not be empty"));
    }
    if config.max_connections == 0 {
        return Err(invalid("max_connections", 0, "must be at least 1"));
    }
    if config.max_connections > MAX_CONNECTIONS {
        return Err(invalid(
            "max_connections",
            config.max_connections,
            "must be at most 10000",
        ));
    }
    if config.min_connections > config.max_connections {
        return Err(invalid(
            "min_connections",
            config.min_connections,
            format!(
                "must not exceed max_connections = {}",
                config.max_connections
            ),
        ));
    }
    check_per_endpoint(config)?;
    if config.max_waiters > MAX_WAITERS {
        return Err(invalid(
            "max_waiters",
            config.max_waiters,
            "must be at most 16777216",
        ));
    }
    if config.max_decoding_message_size == 0 {
        return Err(invalid(
            "max_decoding_message_size",
            0,
            "must be at least 1",
        ));
    }
    if let Some(size) = config.max_frame_size
        && !(MIN_FRAME_SIZE..=MAX_FRAME_SIZE).contains(&size)
    {
        return Err(invalid(
            "max_frame_size",
            size,
            "must be from 16384 to 16777215 (HTTP/2's bounds)",
        ));
    }
    if config.max_streams_per_connection == Some(0) {
        return Err(invalid(
            "max_streams_per_connection",
            0,
            "must be at least 1",
        ));
    }
    if let Some(policy) = &config.idempotent_retry_policy {
        policy.check()?;
    }
    Ok(())
}

/// Checks the settings that apply to each endpoint, and the subset size.
fn check_per_endpoint(config: &PoolConfig) -> Result<(), Error> {
    if let Some(max) = config.max_connections_per_endpoint {
        if max == 0 {
            return Err(invalid(
                "max_connections_per_endpoint",
                0,
                "must be at least 1",
            ));
        }
        if config.min_connections_per_endpoint > max {
            return Err(invalid(
                "min_connections_per_endpoint",
                config.min_connections_per_endpoint,
                format!("must not exceed max_connections_per_endpoint = {max}"),
            ));
        }
    }
    if config.subset_size == Some(0) {
        return Err(invalid("subset_size", 0, "must be at least 1"));
    }
    if config.min_connections_per_endpoint > MAX_CONNECTIONS {
        return Err(invalid(
            "min_connections_per_endpoint",
            config.min_connections_per_endpoint,
            "must be at most 10000",
        ));
    }
    Ok(())
}

/// Checks every duration, and the backoff.
fn check_durations(config: &PoolConfig) -> Result<(), Error> {
    check_duration("connect_timeout", config.connect_timeout)?;
    check_duration("idle_timeout", config.idle_timeout)?;
    check_duration("acquire_timeout", config.acquire_timeout)?;
    if let Some(lifetime) = config.max_connection_lifetime {
        check_duration("max_connection_lifetime", lifetime)?;
    }
    if let Some(timeout) = config.timeout {
        check_duration("timeout", timeout)?;
    }
    if let Some(idle) = config.tcp_keepalive {
        check_duration("tcp_keepalive", idle)?;
    }
    if let Some(interval) = config.tcp_keepalive_interval {
        check_duration("tcp_keepalive_interval", interval)?;
    }
    if let Some(duration) = config.http2_reset_stream_duration {
        check_duration("http2_reset_stream_duration", duration)?;
    }
    if let Some(agent) = &config.user_agent
        && http::HeaderValue::from_str(agent).is_err()
    {
        return Err(invalid(
            "user_agent",
            agent,
            "must be visible ASCII, as an HTTP header value",
        ));
    }
    if let Some(interval) = config.http2_keep_alive_interval {
        check_duration("http2_keep_alive_interval", interval)?;
        check_duration("keep_alive_timeout", config.keep_alive_timeout)?;
    }
    config.backoff.check()?;
    if let Some(check) = &config.health_check {
        check.check()?;
    }
    if let Some(detection) = &config.outlier_detection {
        detection.check()?;
    }
    Ok(())
}
