//! What an xDS pool knows of its control plane, as
//! [`Pool::xds_status`](crate::Pool::xds_status) shows it: written by the
//! xDS cascade (`crate::xds`), read by the pool's handle and by the
//! messages of calls that find no endpoint.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

/// The xDS resources a pool watches, and the control plane's last word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct XdsStatus {
    /// Each resource watched, by type then name.
    pub resources: Vec<XdsResource>,
    /// Whether the ADS stream to the control plane is up (gRPC A78's
    /// `grpc.xds_client.connected`). While it is down the pool serves
    /// from what it has, and the client reconnects with backoff.
    pub connected: bool,
    /// How often the control plane went from reachable to not (A78's
    /// `grpc.xds_client.server_failure`).
    pub server_failures: u64,
    /// Why the ADS client could not start, if it could not.
    pub start_error: Option<String>,
}

/// One watched resource.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct XdsResource {
    /// Its type.
    pub kind: XdsResourceKind,
    /// Its name.
    pub name: String,
    /// Where it stands.
    pub state: XdsResourceState,
    /// When its state last changed.
    pub since: SystemTime,
    /// The version of the last response of its type the client ACKed:
    /// in xDS's state of the world that response held every resource of
    /// the type, this one's version in use (a NACKed resource's last good
    /// one) included. `None` before any was ACKed.
    pub version: Option<String>,
}

/// The four resource types gRPC reads, LDS to EDS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum XdsResourceKind {
    /// LDS: `envoy.config.listener.v3.Listener`.
    Listener,
    /// RDS: `envoy.config.route.v3.RouteConfiguration`.
    RouteConfiguration,
    /// CDS: `envoy.config.cluster.v3.Cluster`.
    Cluster,
    /// EDS: `envoy.config.endpoint.v3.ClusterLoadAssignment`.
    ClusterLoadAssignment,
}

impl std::fmt::Display for XdsResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Listener => "Listener",
            Self::RouteConfiguration => "RouteConfiguration",
            Self::Cluster => "Cluster",
            Self::ClusterLoadAssignment => "ClusterLoadAssignment",
        })
    }
}

/// Where a watched resource stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum XdsResourceState {
    /// Asked for; nothing received yet.
    Requested,
    /// Received, valid, ACKed, and in use.
    Acked,
    /// The last version received failed a check and was NACKed with this
    /// error; the last good version, if one came, is still in use.
    Nacked {
        /// The NACK's `error_detail`: the resource, the field, the rule.
        error: String,
    },
    /// The control plane does not have it (it never came within 15 s, or
    /// a state-of-the-world response left it out).
    DoesNotExist,
}

/// The status, written by the cascade and read by the pool's handle.
#[derive(Debug, Default)]
pub(crate) struct Board {
    state: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    resources: BTreeMap<(XdsResourceKind, String), (XdsResourceState, SystemTime)>,
    /// Each type's last ACKed version.
    versions: BTreeMap<XdsResourceKind, String>,
    connected: bool,
    server_failures: u64,
    start_error: Option<String>,
}

impl Board {
    pub(crate) fn set(&self, kind: XdsResourceKind, name: &str, state: XdsResourceState) {
        crate::lock::lock(&self.state)
            .resources
            .insert((kind, name.to_owned()), (state, SystemTime::now()));
    }

    pub(crate) fn forget(&self, kind: XdsResourceKind, name: &str) {
        crate::lock::lock(&self.state)
            .resources
            .remove(&(kind, name.to_owned()));
    }

    /// The client ACKed `version` of `kind`'s resources.
    pub(crate) fn acked(&self, kind: XdsResourceKind, version: &str) {
        let mut inner = crate::lock::lock(&self.state);
        if inner.versions.get(&kind).is_none_or(|v| v != version) {
            inner.versions.insert(kind, version.to_owned());
        }
    }

    pub(crate) fn connected(&self, connected: bool) {
        crate::lock::lock(&self.state).connected = connected;
    }

    pub(crate) fn server_failed(&self) {
        crate::lock::lock(&self.state).server_failures += 1;
    }

    pub(crate) fn start_failed(&self, error: String) {
        crate::lock::lock(&self.state).start_error = Some(error);
    }

    /// What the pool still lacks, LDS to EDS: the first resource not in
    /// use, or the endpoints that are none; `None` when all is there.
    pub(crate) fn lacking(&self) -> Option<String> {
        let inner = crate::lock::lock(&self.state);
        if let Some(error) = &inner.start_error {
            return Some(format!("the xDS client could not start: {error}"));
        }
        let unreached = if inner.connected {
            ""
        } else {
            " (the control plane is not connected)"
        };
        let found = inner
            .resources
            .iter()
            .find(|(_, (state, _))| *state != XdsResourceState::Acked);
        Some(match found {
            Some(((kind, name), (state, _))) => match state {
                XdsResourceState::Requested => {
                    format!("xDS {kind} {name:?} is requested and not received yet{unreached}")
                }
                XdsResourceState::DoesNotExist => {
                    format!("xDS {kind} {name:?} does not exist at the control plane")
                }
                XdsResourceState::Nacked { error } => {
                    format!("xDS {kind} {name:?} was NACKed: {error}")
                }
                XdsResourceState::Acked => return None,
            },
            None => match inner
                .resources
                .keys()
                .find(|(kind, _)| *kind == XdsResourceKind::ClusterLoadAssignment)
            {
                Some((_, name)) => format!(
                    "xDS ClusterLoadAssignment {name:?} lists no endpoint that can take calls (HEALTHY or UNKNOWN, in a locality of weight above 0)"
                ),
                None if inner.resources.is_empty() => {
                    format!("nothing received from the xDS control plane yet{unreached}")
                }
                None => format!("the xDS resources name no cluster for this target{unreached}"),
            },
        })
    }

    pub(crate) fn snapshot(&self) -> XdsStatus {
        let inner = crate::lock::lock(&self.state);
        XdsStatus {
            resources: inner
                .resources
                .iter()
                .map(|((kind, name), (state, since))| XdsResource {
                    kind: *kind,
                    name: name.clone(),
                    state: state.clone(),
                    since: *since,
                    version: inner.versions.get(kind).cloned(),
                })
                .collect(),
            connected: inner.connected,
            server_failures: inner.server_failures,
            start_error: inner.start_error.clone(),
        }
    }
}
