//! A pool a control plane steers, over xDS (feature `xds`).
//!
//! `Pool::builder().xds("xds:///greeter")` asks the control plane that the
//! [`Bootstrap`] names for the listener `greeter`, follows it to its route
//! configuration, cluster and endpoints (LDS → RDS → CDS → EDS, as gRPC
//! reads them), and keeps the pool's endpoints those of the cluster: new
//! ones are connected before old ones drain, and when the control plane
//! goes away the pool serves from what it has while the client reconnects
//! with backoff. [`Pool::xds_status`](crate::Pool::xds_status) shows each
//! resource: requested, ACKed, NACKed with the field at fault (the last
//! good one still serving), or absent.
//!
//! ```no_run
//! # async fn run() -> Result<(), pooled_client::Error> {
//! use pooled_client::xds::Bootstrap;
//!
//! let pool = pooled_client::Pool::builder()
//!     .xds("xds:///greeter")
//!     .xds_bootstrap(Bootstrap::new("127.0.0.1:18000").node_id("orders-1"))
//!     .build()?;
//! pool.ready().await?;
//! # Ok(()) }
//! ```
//!
//! A cluster's policy is the pool's: priorities fail over by the
//! endpoints' states (gRPC A56), localities share calls by weight, a
//! RING_HASH cluster hashes calls as grpc-go does (A42), `max_requests`
//! bounds the calls in flight (A32), `outlier_detection` ejects (A50),
//! `drop_overloads` drops; the route's retries (A44) and deadline bound
//! (A31) apply to every call. What is read and what is not yet (per-call
//! route matching among several clusters) is listed in the README's
//! section "xDS".

mod balancing;
mod bootstrap;
mod cascade;
mod client;
mod matcher;
mod nack;
mod recorder;
mod resources;
mod router;

use std::sync::Arc;

pub use self::bootstrap::{
    BOOTSTRAP_CONFIG_VAR, BOOTSTRAP_FILE_VAR, Bootstrap, ChannelCreds, IGNORE_RESOURCE_DELETION,
    Locality, Node,
};
pub(crate) use crate::telemetry::xds_status::Board;
pub use crate::telemetry::xds_status::{XdsResource, XdsResourceKind, XdsResourceState, XdsStatus};

use crate::error::Error;
use crate::state::discover::{self, Start};

/// An `xds:///name` target, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct XdsTarget {
    /// The target as given, `xds:///name` (gRPC A78's `grpc.target`).
    pub(crate) given: String,
    /// The listener to ask for: the target's path without its `/`.
    pub(crate) listener: String,
    /// The name calls carry as `:authority`, and virtual hosts match.
    pub(crate) authority: String,
    /// Each endpoint's URI (`http://` and the authority).
    pub(crate) uri: String,
}

impl XdsTarget {
    /// Reads `xds:///name` (gRPC A27; a named authority, gRPC A47's
    /// federation, is not supported).
    pub(crate) fn parse(target: &str) -> Result<Self, Error> {
        let invalid = |reason: &'static str| Error::InvalidSetting {
            name: "xds",
            value: format!("{target:?}"),
            reason: reason.into(),
        };
        let Some(rest) = target.strip_prefix("xds://") else {
            return Err(invalid(
                "an xDS target is `xds:///name`, such as `xds:///greeter`",
            ));
        };
        let Some(name) = rest.strip_prefix('/') else {
            return Err(invalid(
                "an authority in an xDS target (federation, gRPC A47) is not supported: use `xds:///name`",
            ));
        };
        if name.is_empty() {
            return Err(invalid("the target names no listener: use `xds:///name`"));
        }
        let uri = format!("http://{name}");
        match uri.parse::<http::Uri>() {
            Ok(parsed) if parsed.path() == "/" && parsed.host().is_some() => {}
            _ => {
                return Err(invalid(
                    "the listener's name must be a host name with an optional port, as calls carry it as :authority",
                ));
            }
        }
        Ok(Self {
            given: target.to_owned(),
            listener: name.to_owned(),
            authority: name.to_owned(),
            uri,
        })
    }
}

/// What an xDS pool's state holds of its steering: the board its status
/// is on.
pub(crate) struct Steering {
    pub(crate) board: Arc<Board>,
}

/// Reads the target and the bootstrap (the builder's, else the
/// environment's): the discovery source that feeds the pool the
/// cluster's endpoints, and the rest of the pool's steering.
pub(crate) fn steering(
    target: &str,
    bootstrap: Option<Bootstrap>,
) -> Result<(Start, Steering), Error> {
    let target = XdsTarget::parse(target)?;
    let bootstrap = match bootstrap {
        Some(bootstrap) => {
            bootstrap.check()?;
            bootstrap
        }
        None => Bootstrap::from_env()?,
    };
    let steering = Steering {
        board: Arc::new(Board::default()),
    };
    let board = Arc::clone(&steering.board);
    let discovery =
        discover::start_viewing(move |view| cascade::changes(target, bootstrap, board, view));
    Ok((discovery, steering))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_read_as_grpc_reads_them() {
        let target = XdsTarget::parse("xds:///greeter:50051").expect("valid");
        assert_eq!(target.listener, "greeter:50051");
        assert_eq!(target.uri, "http://greeter:50051");
        for bad in [
            "dns:///greeter",
            "xds://authority/greeter",
            "xds:///",
            "xds:///a b",
        ] {
            let error = XdsTarget::parse(bad).expect_err(bad).to_string();
            assert!(error.contains("`xds`"), "{bad}: {error}");
        }
    }
}
