//! The four xDS resources gRPC reads, decoded from Envoy's protos and
//! checked as gRPC A27 (and grpc-go 1.85) checks them: a resource that
//! fails is NACKed with the field at fault, and the last good one stays.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::google::protobuf::UInt32Value;
use prost::Message;
use xds_client::resource::TypeUrl;
use xds_client::{Error as XdsError, Resource};

pub(crate) use super::balancing::LbPolicy;
use super::balancing::{Balancing, balancing};
use super::matcher::{RouteMatcher, per_million};
use super::nack::nack;
use crate::config::{
    FailurePercentageEjection, OutlierDetection, RetryPolicy, SuccessRateEjection,
};
pub(crate) use crate::state::ring::{HashPolicy, HashSource};
use crate::state::route::RoutePolicy;

const HCM_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// An LDS `Listener`: where its routes come from.
#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) routes: RouteSource,
    /// The HttpConnectionManager's `common_http_protocol_options`
    /// `max_stream_duration`: a route that sets none takes it (gRPC A31).
    pub(crate) max_stream_duration: Option<Duration>,
}

/// A listener's routes: named for RDS, or inline.
#[derive(Debug)]
pub(crate) enum RouteSource {
    Rds(String),
    Inline(RouteTable),
}

impl Resource for Listener {
    type Message = listener::Listener;
    const TYPE_URL: TypeUrl = TypeUrl::new("type.googleapis.com/envoy.config.listener.v3.Listener");

    fn deserialize(bytes: Bytes) -> Result<Self::Message, XdsError> {
        Ok(Self::Message::decode(bytes)?)
    }

    fn name(message: &Self::Message) -> &str {
        &message.name
    }

    fn validate(message: Self::Message) -> Result<Self, XdsError> {
        let name = &message.name;
        let any = message
            .api_listener
            .and_then(|api| api.api_listener)
            .ok_or_else(|| {
                nack(
                    format!("Listener {name:?}.api_listener"),
                    "missing: a gRPC client reads API listeners",
                )
            })?;
        if any.type_url != HCM_TYPE_URL {
            return Err(nack(
                format!("Listener {name:?}.api_listener.api_listener"),
                format!("{} is not an HttpConnectionManager", any.type_url),
            ));
        }
        let manager = hcm::HttpConnectionManager::decode(any.value.as_slice()).map_err(|e| {
            nack(
                format!("Listener {name:?}.api_listener.api_listener"),
                format!("does not decode: {e}"),
            )
        })?;
        let max_stream_duration = manager
            .common_http_protocol_options
            .and_then(|options| options.max_stream_duration)
            .map(|d| {
                let at = format!("Listener {name:?} HttpConnectionManager.common_http_protocol_options.max_stream_duration");
                to_duration(d, &at)
            })
            .transpose()?;
        let routes = route_source(manager.route_specifier, name)?;
        Ok(Self {
            routes,
            max_stream_duration,
        })
    }
}

/// Where an HttpConnectionManager's routes come from: RDS (over ADS or
/// self, as gRPC asks the one ADS stream) or inline.
fn route_source(
    specifier: Option<hcm::http_connection_manager::RouteSpecifier>,
    name: &str,
) -> Result<RouteSource, XdsError> {
    Ok(match specifier {
        Some(hcm::http_connection_manager::RouteSpecifier::Rds(rds)) => {
            use core::config_source::ConfigSourceSpecifier;
            match rds
                .config_source
                .and_then(|source| source.config_source_specifier)
            {
                Some(ConfigSourceSpecifier::Ads(_) | ConfigSourceSpecifier::Self_(_)) => {}
                _ => {
                    return Err(nack(
                        format!("Listener {name:?} HttpConnectionManager.rds.config_source"),
                        "is neither ads nor self (gRPC asks the one ADS stream)",
                    ));
                }
            }
            if rds.route_config_name.is_empty() {
                return Err(nack(
                    format!("Listener {name:?} HttpConnectionManager.rds.route_config_name"),
                    "is empty",
                ));
            }
            RouteSource::Rds(rds.route_config_name)
        }
        Some(hcm::http_connection_manager::RouteSpecifier::RouteConfig(config)) => {
            RouteSource::Inline(RouteTable::check(
                config,
                &format!("Listener {name:?} HttpConnectionManager.route_config"),
            )?)
        }
        _ => {
            return Err(nack(
                format!("Listener {name:?} HttpConnectionManager.route_specifier"),
                "is neither rds nor route_config",
            ));
        }
    })
}

/// An RDS `RouteConfiguration`'s virtual hosts.
#[derive(Debug)]
pub(crate) struct RouteTable {
    pub(crate) virtual_hosts: Vec<VirtualHost>,
}

/// A virtual host: the domains it answers for and its routes in order.
#[derive(Debug)]
pub(crate) struct VirtualHost {
    pub(crate) domains: Vec<String>,
    pub(crate) routes: Vec<Route>,
}

/// A route gRPC can take: what it matches, and the clusters it sends to.
#[derive(Debug)]
pub(crate) struct Route {
    /// What calls it takes (gRPC A28).
    pub(crate) matcher: RouteMatcher,
    /// Its clusters with their weights (one at weight 1 for `cluster`).
    pub(crate) clusters: Vec<(String, u32)>,
    /// Its retries (A44, its own or its virtual host's), its deadline
    /// bound (A31) and how a call's hash is made for a ring-hash cluster
    /// (A42).
    pub(crate) policy: RoutePolicy,
}

impl Resource for RouteTable {
    type Message = route::RouteConfiguration;
    const TYPE_URL: TypeUrl =
        TypeUrl::new("type.googleapis.com/envoy.config.route.v3.RouteConfiguration");

    fn deserialize(bytes: Bytes) -> Result<Self::Message, XdsError> {
        Ok(Self::Message::decode(bytes)?)
    }

    fn name(message: &Self::Message) -> &str {
        &message.name
    }

    fn validate(message: Self::Message) -> Result<Self, XdsError> {
        let at = format!("RouteConfiguration {:?}", message.name);
        Self::check(message, &at)
    }
}

impl RouteTable {
    fn check(config: route::RouteConfiguration, at: &str) -> Result<Self, XdsError> {
        let mut virtual_hosts = Vec::with_capacity(config.virtual_hosts.len());
        for (v, host) in config.virtual_hosts.into_iter().enumerate() {
            let at = format!("{at}.virtual_hosts[{v}]");
            let host_retry = host
                .retry_policy
                .map(|policy| retry_policy(policy, &format!("{at}.retry_policy")))
                .transpose()?
                .flatten();
            let mut routes = Vec::with_capacity(host.routes.len());
            for (r, route) in host.routes.into_iter().enumerate() {
                if let Some(mut route) = Route::check(route, &format!("{at}.routes[{r}]"))? {
                    if route.policy.retry.is_none() {
                        route.policy.retry = host_retry.clone();
                    }
                    routes.push(route);
                }
            }
            virtual_hosts.push(VirtualHost {
                domains: host.domains,
                routes,
            });
        }
        Ok(Self { virtual_hosts })
    }

    /// The virtual host for `authority`, as Envoy and gRPC A27 choose it:
    /// an exact domain, else the longest `*.suffix`, else the longest
    /// `prefix.*`, else `*`.
    pub(crate) fn virtual_host_for(&self, authority: &str) -> Option<&VirtualHost> {
        let authority = authority.to_ascii_lowercase();
        self.virtual_hosts
            .iter()
            .filter_map(|host| {
                host.domains
                    .iter()
                    .filter_map(|domain| domain_match(&domain.to_ascii_lowercase(), &authority))
                    .max()
                    .map(|rank| (rank, host))
            })
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, host)| host)
    }
}

/// How well `domain` matches `authority`: higher is more specific.
fn domain_match(domain: &str, authority: &str) -> Option<(u8, usize)> {
    if domain == authority {
        Some((3, domain.len()))
    } else if domain == "*" {
        Some((0, 0))
    } else if let Some(suffix) = domain.strip_prefix('*') {
        authority.ends_with(suffix).then_some((2, domain.len()))
    } else if let Some(prefix) = domain.strip_suffix('*') {
        authority.starts_with(prefix).then_some((1, domain.len()))
    } else {
        None
    }
}

impl Route {
    /// A route gRPC takes, `None` for one it passes over (an action other
    /// than forwarding to clusters, or a match on query parameters, as
    /// grpc-go passes over them), or a NACK.
    fn check(route: route::Route, at: &str) -> Result<Option<Self>, XdsError> {
        use route::route::Action;
        let matcher = route
            .r#match
            .ok_or_else(|| nack(format!("{at}.match"), "is missing"))?;
        let Some(matcher) = RouteMatcher::check(&matcher, at)? else {
            return Ok(None);
        };
        let Some(Action::Route(action)) = route.action else {
            return Ok(None);
        };
        let Some(clusters) = clusters_of(action.cluster_specifier, at)? else {
            return Ok(None);
        };
        let mut policy = route_policy(action.retry_policy, action.max_stream_duration, at)?;
        policy.hash_policy = hash_policies(action.hash_policy, at)?;
        Ok(Some(Self {
            matcher,
            clusters,
            policy,
        }))
    }
}

/// A route action's clusters with their weights (one at weight 1 for
/// `cluster`); `None` for a specifier gRPC does not read (the route is
/// passed over); a NACK for an empty name or weights adding to 0 or past
/// 2^32 - 1 (gRPC A28).
fn clusters_of(
    specifier: Option<route::route_action::ClusterSpecifier>,
    at: &str,
) -> Result<Option<Vec<(String, u32)>>, XdsError> {
    use route::route_action::ClusterSpecifier;
    match specifier {
        Some(ClusterSpecifier::Cluster(name)) if !name.is_empty() => Ok(Some(vec![(name, 1)])),
        Some(ClusterSpecifier::Cluster(_)) => Err(nack(format!("{at}.route.cluster"), "is empty")),
        Some(ClusterSpecifier::WeightedClusters(weighted)) => {
            let clusters: Vec<(String, u32)> = weighted
                .clusters
                .into_iter()
                .map(|c| (c.name, c.weight.map_or(0, |w| w.value)))
                .collect();
            let total: u64 = clusters.iter().map(|(_, w)| u64::from(*w)).sum();
            let at = format!("{at}.route.weighted_clusters");
            if total == 0 {
                return Err(nack(at, "the weights add to 0"));
            }
            if total > u64::from(u32::MAX) {
                return Err(nack(
                    at,
                    format!("the weights add to {total}, above 2^32 - 1 (gRPC A28)"),
                ));
            }
            Ok(Some(clusters))
        }
        _ => Ok(None),
    }
}

/// A route's retries (A44) and deadline bound (A31).
fn route_policy(
    retry: Option<route::RetryPolicy>,
    limits: Option<route::route_action::MaxStreamDuration>,
    at: &str,
) -> Result<RoutePolicy, XdsError> {
    let retry = retry
        .map(|policy| retry_policy(policy, &format!("{at}.route.retry_policy")))
        .transpose()?
        .flatten();
    let duration = |value: Option<envoy_types::pb::google::protobuf::Duration>, field: &str| {
        value
            .map(|d| to_duration(d, &format!("{at}.route.max_stream_duration.{field}")))
            .transpose()
    };
    let (max_stream_duration, grpc_timeout_header_max) = match limits {
        Some(limits) => (
            duration(limits.max_stream_duration, "max_stream_duration")?,
            duration(limits.grpc_timeout_header_max, "grpc_timeout_header_max")?,
        ),
        None => (None, None),
    };
    Ok(RoutePolicy {
        retry,
        max_stream_duration,
        grpc_timeout_header_max,
        hash_policy: Vec::new(),
    })
}

/// A protobuf duration, or a NACK naming `field`.
fn to_duration(
    value: envoy_types::pb::google::protobuf::Duration,
    field: &str,
) -> Result<Duration, XdsError> {
    u64::try_from(value.seconds)
        .ok()
        .zip(
            u32::try_from(value.nanos)
                .ok()
                .filter(|n| *n < 1_000_000_000),
        )
        .map(|(seconds, nanos)| Duration::new(seconds, nanos))
        .ok_or_else(|| nack(field, "is not a duration of 0 or more"))
}

/// A route's (or virtual host's) `retry_policy` as gRPC A44 reads it: the
/// gRPC codes of `retry_on` (`cancelled`, `deadline-exceeded`, `internal`,
/// `resource-exhausted`, `unavailable`; no policy when it names none),
/// `num_retries` (default 1) more attempts, backoff from `base_interval`
/// (default 25 ms) to `max_interval` (default ten times it), doubling.
fn retry_policy(policy: route::RetryPolicy, at: &str) -> Result<Option<RetryPolicy>, XdsError> {
    use tonic::Code;
    let codes: Vec<Code> = policy
        .retry_on
        .split(',')
        .filter_map(|on| match on.trim() {
            "cancelled" => Some(Code::Cancelled),
            "deadline-exceeded" => Some(Code::DeadlineExceeded),
            "internal" => Some(Code::Internal),
            "resource-exhausted" => Some(Code::ResourceExhausted),
            "unavailable" => Some(Code::Unavailable),
            _ => None,
        })
        .collect();
    if codes.is_empty() {
        return Ok(None);
    }
    let retries = policy.num_retries.map_or(1, |n| n.value);
    if retries == 0 {
        return Err(nack(format!("{at}.num_retries"), "is 0"));
    }
    let (base, max) = match policy.retry_back_off {
        Some(back_off) => {
            let base = back_off
                .base_interval
                .map(|d| to_duration(d, &format!("{at}.retry_back_off.base_interval")))
                .transpose()?
                .ok_or_else(|| nack(format!("{at}.retry_back_off.base_interval"), "is missing"))?;
            let max = back_off
                .max_interval
                .map(|d| to_duration(d, &format!("{at}.retry_back_off.max_interval")))
                .transpose()?
                .unwrap_or(base * 10);
            (base, max)
        }
        None => (Duration::from_millis(25), Duration::from_millis(250)),
    };
    if base.is_zero() || max < base {
        return Err(nack(
            format!("{at}.retry_back_off"),
            format!("base_interval {base:?} must be above 0 and max_interval {max:?} at least it"),
        ));
    }
    Ok(Some(RetryPolicy {
        // gRPC caps attempts at 5, as the pool's engine does.
        max_attempts: retries.saturating_add(1).min(5),
        initial_backoff: base,
        max_backoff: max,
        backoff_multiplier: 2.0,
        retryable_status_codes: codes,
    }))
}

/// A route's `hash_policy` as gRPC A42 reads it: headers (but `-bin`
/// ones, whose values are not text) and the filter state
/// `io.grpc.channel_id`; the other kinds are Envoy's, passed over.
fn hash_policies(
    policies: Vec<route::route_action::HashPolicy>,
    at: &str,
) -> Result<Vec<HashPolicy>, XdsError> {
    use route::route_action::hash_policy::PolicySpecifier;
    let mut read = Vec::new();
    for (i, policy) in policies.into_iter().enumerate() {
        let source = match policy.policy_specifier {
            Some(PolicySpecifier::Header(header)) => {
                if header.header_name.ends_with("-bin") {
                    continue;
                }
                let name =
                    http::HeaderName::from_bytes(header.header_name.as_bytes()).map_err(|_| {
                        nack(
                            format!("{at}.route.hash_policy[{i}].header.header_name"),
                            format!("{:?} is not a header name", header.header_name),
                        )
                    })?;
                HashSource::Header(name)
            }
            Some(PolicySpecifier::FilterState(state)) if state.key == "io.grpc.channel_id" => {
                HashSource::ChannelId
            }
            _ => continue,
        };
        read.push(HashPolicy {
            source,
            terminal: policy.terminal,
        });
    }
    Ok(read)
}

/// gRPC A32: a cluster without `max_requests` allows 1,024 attempts in
/// flight.
const DEFAULT_MAX_REQUESTS: u32 = 1024;

/// A CDS `Cluster` of type EDS.
#[derive(Debug)]
pub(crate) struct Cluster {
    /// The EDS resource to ask for: `eds_cluster_config.service_name`, or
    /// the cluster's name.
    pub(crate) eds_service_name: String,
    pub(crate) lb_policy: LbPolicy,
    /// gRPC A32's `circuit_breakers` `max_requests` (default priority),
    /// 1,024 when the cluster sets none.
    pub(crate) max_requests: u32,
    /// gRPC A50's outlier detection, when the cluster asks for it.
    pub(crate) outlier_detection: Option<OutlierDetection>,
    /// A RING_HASH cluster's ring size bounds (gRPC A42).
    pub(crate) ring_size: (u64, u64),
}

impl Resource for Cluster {
    type Message = cluster::Cluster;
    const TYPE_URL: TypeUrl = TypeUrl::new("type.googleapis.com/envoy.config.cluster.v3.Cluster");

    fn deserialize(bytes: Bytes) -> Result<Self::Message, XdsError> {
        Ok(Self::Message::decode(bytes)?)
    }

    fn name(message: &Self::Message) -> &str {
        &message.name
    }

    fn validate(message: Self::Message) -> Result<Self, XdsError> {
        let at = format!("Cluster {:?}", message.name);
        check_eds(message.cluster_discovery_type.clone(), &at)?;
        let Balancing {
            policy: lb_policy,
            ring_size,
        } = balancing(&message, &at)?;
        let eds_service_name = message
            .eds_cluster_config
            .map(|eds| eds.service_name)
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| message.name.clone());
        let max_requests = message
            .circuit_breakers
            .and_then(|breakers| {
                breakers
                    .thresholds
                    .into_iter()
                    .find(|t| t.priority == core::RoutingPriority::Default as i32)
                    .and_then(|t| t.max_requests)
                    .map(|m| m.value)
            })
            .unwrap_or(DEFAULT_MAX_REQUESTS);
        let outlier_detection = message
            .outlier_detection
            .map(|detection| outlier_detection(detection, &at))
            .transpose()?;
        Ok(Self {
            eds_service_name,
            lb_policy,
            max_requests,
            outlier_detection,
            ring_size,
        })
    }
}

/// A NACK unless the cluster is of type EDS, the one this client reads.
fn check_eds(
    kind: Option<cluster::cluster::ClusterDiscoveryType>,
    at: &str,
) -> Result<(), XdsError> {
    use cluster::cluster::{ClusterDiscoveryType, DiscoveryType};
    let (field, name) = match kind {
        Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Eds as i32 => return Ok(()),
        Some(ClusterDiscoveryType::Type(t)) => (
            "type",
            DiscoveryType::try_from(t)
                .map_or("unknown", |t| t.as_str_name())
                .to_owned(),
        ),
        Some(ClusterDiscoveryType::ClusterType(custom)) => {
            ("cluster_type", format!("{:?}", custom.name))
        }
        None => ("type", "STATIC".to_owned()),
    };
    Err(nack(
        format!("{at}.{field}"),
        format!("{name} is not supported: this client reads EDS clusters"),
    ))
}

/// A cluster's `outlier_detection` as gRPC A50 reads it: each field's
/// default where it is unset, success-rate ejection on unless
/// `enforcing_success_rate` is 0, failure-percentage ejection on only when
/// `enforcing_failure_percentage` is above 0; the consecutive-5xx rules
/// are Envoy's alone.
fn outlier_detection(
    detection: cluster::OutlierDetection,
    at: &str,
) -> Result<OutlierDetection, XdsError> {
    let fields = Fields(format!("{at}.outlier_detection"));
    let defaults = OutlierDetection::default();
    let base_ejection_time = fields.duration(
        detection.base_ejection_time,
        "base_ejection_time",
        defaults.base_ejection_time,
    )?;
    Ok(OutlierDetection {
        interval: fields.duration(detection.interval, "interval", defaults.interval)?,
        base_ejection_time,
        max_ejection_time: fields.duration(
            detection.max_ejection_time,
            "max_ejection_time",
            defaults.max_ejection_time.max(base_ejection_time),
        )?,
        max_ejection_percent: fields.percent(
            detection.max_ejection_percent,
            "max_ejection_percent",
            defaults.max_ejection_percent,
        )?,
        success_rate: success_rate_ejection(&detection, &fields)?,
        failure_percentage: failure_percentage_ejection(&detection, &fields)?,
    })
}

/// A50's success-rate ejection: on unless `enforcing_success_rate` is 0.
fn success_rate_ejection(
    detection: &cluster::OutlierDetection,
    fields: &Fields,
) -> Result<Option<SuccessRateEjection>, XdsError> {
    let defaults = SuccessRateEjection::default();
    let enforcing = fields.percent(
        detection.enforcing_success_rate,
        "enforcing_success_rate",
        defaults.enforcement_percentage,
    )?;
    Ok((enforcing > 0).then(|| SuccessRateEjection {
        stdev_factor: value_or(detection.success_rate_stdev_factor, defaults.stdev_factor),
        enforcement_percentage: enforcing,
        minimum_hosts: value_or(detection.success_rate_minimum_hosts, defaults.minimum_hosts),
        request_volume: value_or(
            detection.success_rate_request_volume,
            defaults.request_volume,
        ),
    }))
}

/// A50's failure-percentage ejection: on only when
/// `enforcing_failure_percentage` is above 0.
fn failure_percentage_ejection(
    detection: &cluster::OutlierDetection,
    fields: &Fields,
) -> Result<Option<FailurePercentageEjection>, XdsError> {
    let defaults = FailurePercentageEjection::default();
    let enforcing = fields.percent(
        detection.enforcing_failure_percentage,
        "enforcing_failure_percentage",
        0,
    )?;
    if enforcing == 0 {
        return Ok(None);
    }
    Ok(Some(FailurePercentageEjection {
        threshold: fields.percent(
            detection.failure_percentage_threshold,
            "failure_percentage_threshold",
            defaults.threshold,
        )?,
        enforcement_percentage: enforcing,
        minimum_hosts: value_or(
            detection.failure_percentage_minimum_hosts,
            defaults.minimum_hosts,
        ),
        request_volume: value_or(
            detection.failure_percentage_request_volume,
            defaults.request_volume,
        ),
    }))
}

/// A wrapped `u32`'s value, or `default` when unset.
fn value_or(value: Option<UInt32Value>, default: u32) -> u32 {
    value.map_or(default, |v| v.value)
}

/// The fields of one message, read under its path (`at`) for NACKs.
struct Fields(String);

impl Fields {
    /// A duration, `default` when unset.
    fn duration(
        &self,
        value: Option<envoy_types::pb::google::protobuf::Duration>,
        field: &str,
        default: Duration,
    ) -> Result<Duration, XdsError> {
        value.map_or(Ok(default), |value| {
            to_duration(value, &format!("{}.{field}", self.0))
        })
    }

    /// A percentage, `default` when unset; a NACK above 100.
    fn percent(
        &self,
        value: Option<UInt32Value>,
        field: &str,
        default: u32,
    ) -> Result<u32, XdsError> {
        let value = value_or(value, default);
        if value > 100 {
            return Err(nack(
                format!("{}.{field}", self.0),
                format!("{value} is above 100"),
            ));
        }
        Ok(value)
    }
}

/// The most endpoints one `ClusterLoadAssignment` may list: a control
/// plane's answer is untrusted input, and every endpoint costs the pool
/// its state (and a connection); a cluster above it is NACKed, and the
/// last good one serves.
pub(crate) const MAX_ENDPOINTS: usize = 10_000;

/// An EDS `ClusterLoadAssignment`: its localities, each of a priority,
/// and the share of calls the control plane drops.
#[derive(Debug)]
pub(crate) struct Endpoints {
    pub(crate) localities: Vec<LocalityEndpoints>,
    /// `policy.drop_overloads`: each category and its calls dropped per
    /// million.
    pub(crate) drops: Vec<(String, u32)>,
}

/// One locality's endpoints that may take calls (HEALTHY or UNKNOWN).
#[derive(Debug)]
pub(crate) struct LocalityEndpoints {
    pub(crate) priority: u32,
    pub(crate) weight: u32,
    pub(crate) addresses: Vec<SocketAddr>,
    /// Each address's `load_balancing_weight` (1 when unset), in order.
    pub(crate) endpoint_weights: Vec<u32>,
}

impl Resource for Endpoints {
    type Message = endpoint::ClusterLoadAssignment;
    const TYPE_URL: TypeUrl =
        TypeUrl::new("type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment");

    fn deserialize(bytes: Bytes) -> Result<Self::Message, XdsError> {
        Ok(Self::Message::decode(bytes)?)
    }

    fn name(message: &Self::Message) -> &str {
        &message.cluster_name
    }

    fn validate(message: Self::Message) -> Result<Self, XdsError> {
        let at = format!("ClusterLoadAssignment {:?}", message.cluster_name);
        let listed: usize = message.endpoints.iter().map(|l| l.lb_endpoints.len()).sum();
        if listed > MAX_ENDPOINTS {
            return Err(nack(
                format!("{at}.endpoints"),
                format!(
                    "{listed} endpoints, above the {MAX_ENDPOINTS} one cluster may list here \
                     (each would be an endpoint of the pool)"
                ),
            ));
        }
        let mut seen = HashSet::new();
        let mut localities = Vec::with_capacity(message.endpoints.len());
        for (l, locality) in message.endpoints.into_iter().enumerate() {
            let at = format!("{at}.endpoints[{l}]");
            if let Some(read) = LocalityEndpoints::check(locality, &at, &mut seen)? {
                localities.push(read);
            }
        }
        // gRPC A27: priorities run from 0 without a gap.
        let priorities: HashSet<u32> = localities.iter().map(|l| l.priority).collect();
        if let Some(gap) = (0..priorities.len() as u32).find(|p| !priorities.contains(p)) {
            return Err(nack(
                format!("{at}.endpoints"),
                format!("priority {gap} is missing (priorities run from 0 without a gap)"),
            ));
        }
        let drops = drop_overloads(message.policy, &at)?;
        Ok(Self { localities, drops })
    }
}

impl LocalityEndpoints {
    /// A locality's endpoints that may take calls (HEALTHY or UNKNOWN);
    /// `None` for a locality without a weight, or of weight 0, which
    /// takes no calls (gRPC A27); a NACK for an address that is not an
    /// IP and port, or is in `seen` already.
    fn check(
        locality: endpoint::LocalityLbEndpoints,
        at: &str,
        seen: &mut HashSet<SocketAddr>,
    ) -> Result<Option<Self>, XdsError> {
        let weight = value_or(locality.load_balancing_weight, 0);
        let mut addresses = Vec::with_capacity(locality.lb_endpoints.len());
        let mut endpoint_weights = Vec::with_capacity(locality.lb_endpoints.len());
        for (e, lb_endpoint) in locality.lb_endpoints.into_iter().enumerate() {
            let at = format!("{at}.lb_endpoints[{e}]");
            let address = endpoint_address(lb_endpoint.host_identifier, &at)?;
            if !seen.insert(address) {
                return Err(nack(at, format!("{address} is listed twice")));
            }
            let usable = matches!(
                core::HealthStatus::try_from(lb_endpoint.health_status),
                Ok(core::HealthStatus::Unknown | core::HealthStatus::Healthy)
            );
            if usable {
                addresses.push(address);
                endpoint_weights.push(value_or(lb_endpoint.load_balancing_weight, 1).max(1));
            }
        }
        Ok((weight > 0).then_some(Self {
            priority: locality.priority,
            weight,
            addresses,
            endpoint_weights,
        }))
    }
}

/// `policy.drop_overloads`: each category and its calls dropped per
/// million; a NACK for a category without a name.
fn drop_overloads(
    policy: Option<endpoint::cluster_load_assignment::Policy>,
    at: &str,
) -> Result<Vec<(String, u32)>, XdsError> {
    let overloads = policy.map(|p| p.drop_overloads).unwrap_or_default();
    let mut drops = Vec::with_capacity(overloads.len());
    for (i, drop) in overloads.into_iter().enumerate() {
        if drop.category.is_empty() {
            return Err(nack(
                format!("{at}.policy.drop_overloads[{i}].category"),
                "is empty",
            ));
        }
        let per_million = drop.drop_percentage.as_ref().map_or(0, per_million);
        drops.push((drop.category, per_million));
    }
    Ok(drops)
}

fn endpoint_address(
    host: Option<endpoint::lb_endpoint::HostIdentifier>,
    at: &str,
) -> Result<SocketAddr, XdsError> {
    use core::address::Address;
    use core::socket_address::PortSpecifier;
    let Some(endpoint::lb_endpoint::HostIdentifier::Endpoint(endpoint)) = host else {
        return Err(nack(format!("{at}.endpoint"), "is missing"));
    };
    let Some(Address::SocketAddress(socket)) = endpoint.address.and_then(|a| a.address) else {
        return Err(nack(
            format!("{at}.endpoint.address"),
            "is not a socket_address",
        ));
    };
    let ip: IpAddr = socket.address.parse().map_err(|_| {
        nack(
            format!("{at}.endpoint.address.socket_address.address"),
            format!("{:?} is not an IP address", socket.address),
        )
    })?;
    let port = match socket.port_specifier {
        Some(PortSpecifier::PortValue(port)) => u16::try_from(port).ok().filter(|p| *p != 0),
        _ => None,
    }
    .ok_or_else(|| {
        nack(
            format!("{at}.endpoint.address.socket_address.port_value"),
            "is not a port from 1 to 65535",
        )
    })?;
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(domains: &[&str]) -> VirtualHost {
        VirtualHost {
            domains: domains.iter().map(|d| (*d).to_owned()).collect(),
            routes: Vec::new(),
        }
    }

    fn eds_cluster() -> cluster::Cluster {
        cluster::Cluster {
            name: "c".to_owned(),
            cluster_discovery_type: Some(cluster::cluster::ClusterDiscoveryType::Type(
                cluster::cluster::DiscoveryType::Eds as i32,
            )),
            ..Default::default()
        }
    }

    fn nack_of(cluster: cluster::Cluster) -> String {
        Cluster::validate(cluster).expect_err("a NACK").to_string()
    }

    #[test]
    fn a_cluster_is_read_with_grpcs_defaults_and_nacked_with_the_field() {
        let read = Cluster::validate(eds_cluster()).expect("valid");
        assert_eq!(read.eds_service_name, "c");
        assert_eq!(read.max_requests, 1024);
        assert!(read.outlier_detection.is_none());

        let static_cluster = cluster::Cluster {
            cluster_discovery_type: Some(cluster::cluster::ClusterDiscoveryType::Type(
                cluster::cluster::DiscoveryType::Static as i32,
            )),
            ..eds_cluster()
        };
        assert!(nack_of(static_cluster).contains("Cluster \"c\".type: STATIC is not supported"));
        // An aggregate cluster (gRPC A37) names other clusters, and a
        // control plane could make them a cycle: NACKed, as every type
        // but EDS.
        let aggregate = cluster::Cluster {
            cluster_discovery_type: Some(cluster::cluster::ClusterDiscoveryType::ClusterType(
                cluster::cluster::CustomClusterType {
                    name: "envoy.clusters.aggregate".to_owned(),
                    typed_config: None,
                },
            )),
            ..eds_cluster()
        };
        assert!(
            nack_of(aggregate).contains(
                "Cluster \"c\".cluster_type: \"envoy.clusters.aggregate\" is not supported"
            )
        );

        let over_100 = cluster::Cluster {
            outlier_detection: Some(cluster::OutlierDetection {
                enforcing_failure_percentage: Some(
                    envoy_types::pb::google::protobuf::UInt32Value { value: 150 },
                ),
                ..Default::default()
            }),
            ..eds_cluster()
        };
        assert!(nack_of(over_100).contains(
            "Cluster \"c\".outlier_detection.enforcing_failure_percentage: 150 is above 100"
        ));

        let detection = Cluster::validate(cluster::Cluster {
            outlier_detection: Some(cluster::OutlierDetection::default()),
            ..eds_cluster()
        })
        .expect("valid")
        .outlier_detection
        .expect("on");
        // gRPC A50: success rate on by default, failure percentage off.
        assert!(detection.success_rate.is_some() && detection.failure_percentage.is_none());
    }

    #[test]
    fn weighted_clusters_whose_weights_add_to_0_are_nacked() {
        let route = route::Route {
            r#match: Some(route::RouteMatch {
                path_specifier: Some(route::route_match::PathSpecifier::Prefix(String::new())),
                ..Default::default()
            }),
            action: Some(route::route::Action::Route(route::RouteAction {
                cluster_specifier: Some(route::route_action::ClusterSpecifier::WeightedClusters(
                    route::WeightedCluster {
                        clusters: vec![route::weighted_cluster::ClusterWeight {
                            name: "a".to_owned(),
                            weight: Some(envoy_types::pb::google::protobuf::UInt32Value {
                                value: 0,
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                )),
                ..Default::default()
            })),
            ..Default::default()
        };
        let error = Route::check(route, "r").expect_err("a NACK").to_string();
        assert!(
            error.contains("r.route.weighted_clusters: the weights add to 0"),
            "{error}"
        );
    }

    #[test]
    fn the_most_specific_domain_wins() {
        let table = RouteTable {
            virtual_hosts: vec![
                host(&["*"]),
                host(&["greeter.*"]),
                host(&["*.internal"]),
                host(&["greeter"]),
            ],
        };
        let chosen = |authority: &str| {
            table
                .virtual_host_for(authority)
                .map(|h| h.domains[0].clone())
        };
        assert_eq!(chosen("greeter").as_deref(), Some("greeter"));
        assert_eq!(chosen("orders.internal").as_deref(), Some("*.internal"));
        assert_eq!(chosen("greeter.eu").as_deref(), Some("greeter.*"));
        assert_eq!(chosen("other").as_deref(), Some("*"));
    }
}
