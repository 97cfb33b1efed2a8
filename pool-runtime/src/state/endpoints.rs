//! The endpoints the pool connects to: added, removed, and taken out for a
//! while when they fail their health check.

use super::Member;
use std::sync::Arc;
use std::time::Instant;

use super::list::{push_onto, take_from};
use super::{Inner, Retirement, maintain};
use crate::conn::{Endpoint, parse_authority};
use crate::discovery::Target;
use crate::error::{BoxError, Error};

impl Inner {
    /// The endpoint for `target` with the pool's settings applied.
    pub(crate) fn endpoint_for(&self, target: &Target) -> Result<Endpoint, Error> {
        endpoint_for(target, &self.config)
    }

    /// Adds `endpoint` unless one added as the same target is in the pool
    /// already.
    pub(crate) fn add_endpoint(self: &Arc<Self>, endpoint: Endpoint) -> bool {
        let left = {
            let _live = self.live();
            if self
                .fleet
                .endpoints
                .load()
                .iter()
                .any(|e| e.target == endpoint.target)
            {
                return false;
            }
            tracing::info!(endpoint = %endpoint.key, "endpoint added");
            push_onto(&self.fleet.endpoints, Arc::new(Member::new(endpoint)));
            self.resubset()
        };
        self.leave_subset(&left);
        self.notify();
        self.grow(0);
        self.rebalance(Instant::now());
        true
    }

    /// Removes the endpoint added as `target` and drains its connections.
    pub(crate) fn remove_endpoint(self: &Arc<Self>, target: &Target) -> bool {
        let removed = {
            let _live = self.live();
            let Some(removed) = take_from(&self.fleet.endpoints, |e| e.target == *target) else {
                return false;
            };
            removed.remove();
            // Its subchannel leaves with it; its connections, and those of
            // any endpoint that leaves the subset, retire below.
            (removed, self.resubset())
        };
        let (removed, left) = removed;
        tracing::info!(endpoint = %removed.key, "endpoint removed");
        self.retire_endpoint(&removed, Retirement::Removed);
        self.leave_subset(&left);
        self.notify();
        self.grow(0);
        true
    }

    /// Takes every connection to `endpoint` out of rotation.
    pub(crate) fn retire_endpoint(self: &Arc<Self>, endpoint: &Arc<Member>, why: Retirement) {
        let ids: Vec<u64> = self
            .fleet
            .rotation
            .load()
            .iter()
            .filter(|c| endpoint.is(&c.endpoint))
            .map(|c| c.id)
            .collect();
        for id in ids {
            self.retire(id, why);
        }
    }

    /// Takes `endpoint` out of rotation after a failed health check; it is
    /// tried again after the usual backoff.
    pub(crate) fn endpoint_unhealthy(
        self: &Arc<Self>,
        endpoint: &Arc<crate::conn::Endpoint>,
        error: BoxError,
    ) {
        tracing::warn!(endpoint = %endpoint.key, error = %error, "endpoint failed its health check");
        let Some(endpoint) = &self.member_of(endpoint) else {
            // It left the pool meanwhile: nothing to back off.
            return;
        };
        let retry_at = endpoint.unhealthy(error, &self.config.backoff);
        self.retire_endpoint(endpoint, Retirement::Unhealthy);
        tokio::spawn(maintain::retry_at(Arc::downgrade(self), retry_at));
    }
}

/// The authority of `origin`, a URI such as `http://greeter.internal` (or
/// a bare `host:port`).
fn origin_authority(origin: &str) -> Result<http::uri::Authority, Error> {
    let authority = origin
        .parse::<http::Uri>()
        .ok()
        .and_then(|uri| uri.authority().cloned());
    match authority {
        Some(authority) => Ok(authority),
        None => parse_authority(origin),
    }
}

/// The endpoint for `target` with `config`'s settings applied: where it
/// connects, and the `:authority` its calls send.
pub(crate) fn endpoint_for(
    target: &Target,
    config: &crate::config::PoolConfig,
) -> Result<Endpoint, Error> {
    let mut endpoint = Endpoint::parse_at(target.uri(), target.address())?;
    if let Some(origin) = &config.origin {
        endpoint.set_authority(origin_authority(origin)?);
    }
    Ok(endpoint)
}
