//! A real xDS control plane for the tests (go-control-plane v0.14.0, run
//! as `tests/go/xdscp`), and the Envoy resources they give it, built with
//! envoy-types as any Rust control plane would build them.

use std::net::SocketAddr;
use std::process::Stdio;

use base64::Engine;
use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::google::protobuf::{Any, UInt32Value};
use pooled_client::xds::Bootstrap;
use prost::{Message, Name};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::support::{grpc_go_xds_client, xds_control_plane};

/// go-control-plane serving the snapshots the test sets.
#[derive(Debug)]
pub struct ControlPlane {
    child: Child,
    stdin: ChildStdin,
    answers: Lines<BufReader<ChildStdout>>,
    /// Its ADS port on loopback.
    pub port: u16,
    version: u64,
}

impl ControlPlane {
    /// Starts a control plane with an empty snapshot.
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// Starts a control plane serving ADS over TLS with the certificate
    /// and key in these PEM files.
    pub async fn start_tls(cert_file: &std::path::Path, key_file: &std::path::Path) -> Self {
        let tls = [
            "-tls_cert".to_owned(),
            cert_file.display().to_string(),
            "-tls_key".to_owned(),
            key_file.display().to_string(),
        ];
        Self::start_with(0, &tls).await
    }

    /// Starts a control plane on `port` (a free one for 0).
    async fn start_on(port: u16) -> Self {
        Self::start_with(port, &[]).await
    }

    async fn start_with(port: u16, args: &[String]) -> Self {
        let binary = tokio::task::spawn_blocking(xds_control_plane)
            .await
            .expect("build the control plane");
        let mut child = Command::new(binary)
            .args(["-port", &port.to_string()])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the control plane");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut answers = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let first = answers
            .next_line()
            .await
            .expect("read the control plane")
            .expect("the control plane exited before it listened");
        let port = first
            .strip_prefix("ADS ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        Self {
            child,
            stdin,
            answers,
            port,
            version: 0,
        }
    }

    /// A bootstrap naming this control plane as grpc-go's would
    /// (`host:port`, no scheme).
    pub fn bootstrap(&self) -> Bootstrap {
        Bootstrap::from_json(&self.bootstrap_json()).expect("a valid bootstrap")
    }

    /// The bootstrap's JSON.
    pub fn bootstrap_json(&self) -> String {
        format!(
            r#"{{"xds_servers": [{{"server_uri": "127.0.0.1:{}",
                "channel_creds": [{{"type": "insecure"}}],
                "server_features": ["xds_v3"]}}],
              "node": {{"id": "pooled-client-test", "cluster": "tests"}}}}"#,
            self.port
        )
    }

    /// Serves `resources` to every node from now on, as a new version;
    /// the control plane's refusal, if it refuses them.
    pub async fn set(&mut self, resources: &[Any]) -> Result<(), String> {
        self.version += 1;
        let engine = base64::engine::general_purpose::STANDARD;
        let line = serde_json::json!({
            "version": self.version.to_string(),
            "resources": resources.iter().map(|r| serde_json::json!({
                "type_url": r.type_url,
                "value": engine.encode(&r.value),
            })).collect::<Vec<_>>(),
        });
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        self.stdin
            .write_all(&bytes)
            .await
            .expect("write a snapshot");
        self.stdin.flush().await.expect("flush the snapshot");
        let answer = self
            .answers
            .next_line()
            .await
            .expect("read the answer")
            .expect("the control plane exited");
        if answer == "ok" { Ok(()) } else { Err(answer) }
    }

    /// Stops it at once, as a crashed control plane stops.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// A new control plane on the same port, serving `resources` (a
    /// restarted control plane has lost its state until it is given it
    /// again; this one is given it before it answers).
    pub async fn restart(&mut self, resources: &[Any]) {
        self.kill().await;
        let mut next = Self::start_on(self.port).await;
        next.version = self.version;
        next.set(resources).await.expect("snapshot taken");
        *self = next;
    }
}

/// What grpc-go's xDS client saw: its calls, and the server ports (and,
/// with keys, each key's ports) that answered.
#[derive(Debug, serde::Deserialize)]
pub struct GoCalls {
    pub ok: usize,
    pub errors: usize,
    pub first_error: String,
    pub ports: std::collections::HashMap<String, usize>,
    /// From the first call's start to the last call's end.
    pub seconds: f64,
    #[serde(default)]
    pub keys: std::collections::HashMap<String, std::collections::HashMap<String, bool>>,
}

impl GoCalls {
    /// Each server port's share of the calls.
    pub fn shares(&self) -> std::collections::HashMap<u16, f64> {
        self.ports
            .iter()
            .map(|(port, n)| {
                (
                    port.parse().expect("a port"),
                    *n as f64 / self.ok.max(1) as f64,
                )
            })
            .collect()
    }
}

/// Runs grpc-go 1.85's xDS client for `xds:///greeter` against
/// `control_plane`: `callers` goroutines of `calls` calls each (with
/// `keys` distinct `x-user` values, if any).
pub async fn grpc_go_calls(
    control_plane: &ControlPlane,
    callers: usize,
    calls: usize,
    keys: usize,
) -> GoCalls {
    grpc_go_slow_calls(control_plane, callers, calls, keys, 0).await
}

/// [`grpc_go_calls`] whose every call asks the server to take `delay_ms`.
pub async fn grpc_go_slow_calls(
    control_plane: &ControlPlane,
    callers: usize,
    calls: usize,
    keys: usize,
    delay_ms: u32,
) -> GoCalls {
    grpc_go_run(
        control_plane,
        &[
            "-callers",
            &callers.to_string(),
            "-calls",
            &calls.to_string(),
            "-keys",
            &keys.to_string(),
            "-delay_ms",
            &delay_ms.to_string(),
        ],
    )
    .await
}

/// [`grpc_go_calls`] whose every call carries `header` (`name=value`).
pub async fn grpc_go_calls_with_header(
    control_plane: &ControlPlane,
    callers: usize,
    calls: usize,
    header: &str,
) -> GoCalls {
    grpc_go_run(
        control_plane,
        &[
            "-callers",
            &callers.to_string(),
            "-calls",
            &calls.to_string(),
            "-header",
            header,
        ],
    )
    .await
}

/// Runs grpc-go's xDS client with `args`.
async fn grpc_go_run(control_plane: &ControlPlane, args: &[&str]) -> GoCalls {
    let binary = tokio::task::spawn_blocking(grpc_go_xds_client)
        .await
        .expect("build grpc-go's xDS client");
    let output = Command::new(binary)
        .args(args)
        .env("GRPC_XDS_BOOTSTRAP_CONFIG", control_plane.bootstrap_json())
        .stderr(Stdio::inherit())
        .output()
        .await
        .expect("run grpc-go's xDS client");
    assert!(output.status.success(), "grpc-go's xDS client failed");
    serde_json::from_slice(&output.stdout).expect("grpc-go's client prints its JSON line")
}

fn any<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

fn ads() -> core::ConfigSource {
    core::ConfigSource {
        config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Ads(
            core::AggregatedConfigSource {},
        )),
        resource_api_version: core::ApiVersion::V3 as i32,
        ..Default::default()
    }
}

/// An API listener `name` whose routes come over RDS as `route_name`, with
/// the router filter gRPC requires last.
pub fn listener(name: &str, route_name: &str) -> Any {
    let manager = hcm::HttpConnectionManager {
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(
            hcm::Rds {
                config_source: Some(ads()),
                route_config_name: route_name.to_owned(),
            },
        )),
        http_filters: vec![hcm::HttpFilter {
            name: "router".to_owned(),
            config_type: Some(hcm::http_filter::ConfigType::TypedConfig(any(
                &Router::default(),
            ))),
            ..Default::default()
        }],
        ..Default::default()
    };
    any(&listener::Listener {
        name: name.to_owned(),
        api_listener: Some(listener::ApiListener {
            api_listener: Some(any(&manager)),
        }),
        ..Default::default()
    })
}

/// An API listener `name` whose HttpConnectionManager does not decode: a
/// control plane's garbage.
pub fn listener_that_does_not_decode(name: &str) -> Any {
    any(&listener::Listener {
        name: name.to_owned(),
        api_listener: Some(listener::ApiListener {
            api_listener: Some(Any {
                type_url: hcm::HttpConnectionManager::type_url(),
                value: vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0x01],
            }),
        }),
        ..Default::default()
    })
}

/// A route configuration `name` with one virtual host for `domain` whose
/// one route sends every path to `cluster`.
pub fn route(name: &str, domain: &str, cluster: &str) -> Any {
    any(&route::RouteConfiguration {
        name: name.to_owned(),
        virtual_hosts: vec![route::VirtualHost {
            name: "vh".to_owned(),
            domains: vec![domain.to_owned()],
            routes: vec![route::Route {
                r#match: Some(route::RouteMatch {
                    path_specifier: Some(route::route_match::PathSpecifier::Prefix(String::new())),
                    ..Default::default()
                }),
                action: Some(route::route::Action::Route(route::RouteAction {
                    cluster_specifier: Some(route::route_action::ClusterSpecifier::Cluster(
                        cluster.to_owned(),
                    )),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    })
}

/// A route configuration `name` with one virtual host for `domain` and
/// these routes, in order (gRPC A28).
pub fn routes(name: &str, domain: &str, routes: Vec<route::Route>) -> Any {
    any(&route::RouteConfiguration {
        name: name.to_owned(),
        virtual_hosts: vec![route::VirtualHost {
            name: "vh".to_owned(),
            domains: vec![domain.to_owned()],
            routes,
            ..Default::default()
        }],
        ..Default::default()
    })
}

/// A route of calls `matcher` takes to `clusters`, each with its weight.
pub fn weighted_route(matcher: route::RouteMatch, clusters: &[(&str, u32)]) -> route::Route {
    route::Route {
        r#match: Some(matcher),
        action: Some(route::route::Action::Route(route::RouteAction {
            cluster_specifier: Some(route::route_action::ClusterSpecifier::WeightedClusters(
                route::WeightedCluster {
                    clusters: clusters
                        .iter()
                        .map(|(name, weight)| route::weighted_cluster::ClusterWeight {
                            name: (*name).to_owned(),
                            weight: Some(UInt32Value { value: *weight }),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// A match of calls whose path starts with `prefix`.
pub fn prefix_match(prefix: &str) -> route::RouteMatch {
    route::RouteMatch {
        path_specifier: Some(route::route_match::PathSpecifier::Prefix(prefix.to_owned())),
        ..Default::default()
    }
}

/// A match of calls to exactly `path`.
pub fn path_match(path: &str) -> route::RouteMatch {
    route::RouteMatch {
        path_specifier: Some(route::route_match::PathSpecifier::Path(path.to_owned())),
        ..Default::default()
    }
}

/// A match of calls to exactly `path` that carry `header` with `value`.
pub fn path_and_header_match(path: &str, header: &str, value: &str) -> route::RouteMatch {
    use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
    route::RouteMatch {
        path_specifier: Some(route::route_match::PathSpecifier::Path(path.to_owned())),
        headers: vec![route::HeaderMatcher {
            name: header.to_owned(),
            header_match_specifier: Some(route::header_matcher::HeaderMatchSpecifier::StringMatch(
                StringMatcher {
                    match_pattern: Some(string_matcher::MatchPattern::Exact(value.to_owned())),
                    ignore_case: false,
                },
            )),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// [`route()`] whose one route's action `change` changes.
pub fn route_with(
    name: &str,
    domain: &str,
    cluster: &str,
    change: impl FnOnce(&mut route::RouteAction),
) -> Any {
    let mut config =
        route::RouteConfiguration::decode(route(name, domain, cluster).value.as_slice())
            .expect("our own route");
    if let Some(route::route::Action::Route(action)) = &mut config.virtual_hosts[0].routes[0].action
    {
        change(action);
    }
    any(&config)
}

/// [`route()`] whose route hashes each call by its `header` (gRPC A42's
/// `hash_policy`), for a ring-hash cluster.
pub fn route_hashing(name: &str, domain: &str, cluster: &str, header: &str) -> Any {
    route_with(name, domain, cluster, |action| {
        action.hash_policy = vec![route::route_action::HashPolicy {
            policy_specifier: Some(route::route_action::hash_policy::PolicySpecifier::Header(
                route::route_action::hash_policy::Header {
                    header_name: header.to_owned(),
                    regex_rewrite: None,
                },
            )),
            terminal: false,
        }];
    })
}

/// An EDS cluster `name` balanced by `lb_policy`, its endpoints the
/// load assignment of the same name.
pub fn cluster(name: &str, lb_policy: cluster::cluster::LbPolicy) -> Any {
    any(&cluster_message(name, lb_policy))
}

/// [`cluster()`] whose `lb_policy` says ROUND_ROBIN but whose
/// `load_balancing_policy` (gRPC A52, which wins) lists a policy no client
/// knows, then `ring_hash`.
pub fn cluster_ring_hash_by_a52(name: &str) -> Any {
    use envoy_types::pb::envoy::extensions::load_balancing_policies::ring_hash::v3 as ring_hash;
    let typed = |config: Any| cluster::load_balancing_policy::Policy {
        typed_extension_config: Some(core::TypedExtensionConfig {
            name: config.type_url.clone(),
            typed_config: Some(config),
        }),
    };
    let ring = ring_hash::RingHash {
        hash_function: ring_hash::ring_hash::HashFunction::XxHash as i32,
        ..Default::default()
    };
    let unknown = Any {
        type_url: "type.googleapis.com/example.NoSuchPolicy".to_owned(),
        value: Vec::new(),
    };
    any(&cluster::Cluster {
        load_balancing_policy: Some(cluster::LoadBalancingPolicy {
            policies: vec![typed(unknown), typed(any(&ring))],
        }),
        ..cluster_message(name, cluster::cluster::LbPolicy::RoundRobin)
    })
}

/// [`cluster()`] with `circuit_breakers` allowing `max_requests` in flight
/// (gRPC A32).
pub fn cluster_with_max_requests(
    name: &str,
    lb_policy: cluster::cluster::LbPolicy,
    max_requests: u32,
) -> Any {
    any(&cluster::Cluster {
        circuit_breakers: Some(cluster::CircuitBreakers {
            thresholds: vec![cluster::circuit_breakers::Thresholds {
                max_requests: Some(UInt32Value {
                    value: max_requests,
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..cluster_message(name, lb_policy)
    })
}

/// [`cluster()`] with gRPC A50's failure-percentage ejection: every
/// `interval_ms`, an endpoint of `request_volume` calls or more failing
/// more than `threshold` percent of them is ejected (at most one).
pub fn cluster_with_failure_percentage(
    name: &str,
    interval_ms: i32,
    threshold: u32,
    request_volume: u32,
) -> Any {
    use envoy_types::pb::google::protobuf::Duration;
    let u32_value = |value| Some(UInt32Value { value });
    any(&cluster::Cluster {
        outlier_detection: Some(cluster::OutlierDetection {
            interval: Some(Duration {
                seconds: i64::from(interval_ms / 1000),
                nanos: (interval_ms % 1000) * 1_000_000,
            }),
            base_ejection_time: Some(Duration {
                seconds: 30,
                nanos: 0,
            }),
            max_ejection_percent: u32_value(25),
            enforcing_success_rate: u32_value(0),
            enforcing_failure_percentage: u32_value(100),
            failure_percentage_threshold: u32_value(threshold),
            failure_percentage_minimum_hosts: u32_value(2),
            failure_percentage_request_volume: u32_value(request_volume),
            ..Default::default()
        }),
        ..cluster_message(name, cluster::cluster::LbPolicy::RoundRobin)
    })
}

fn cluster_message(name: &str, lb_policy: cluster::cluster::LbPolicy) -> cluster::Cluster {
    cluster::Cluster {
        name: name.to_owned(),
        cluster_discovery_type: Some(cluster::cluster::ClusterDiscoveryType::Type(
            cluster::cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::cluster::EdsClusterConfig {
            eds_config: Some(ads()),
            service_name: String::new(),
        }),
        lb_policy: lb_policy as i32,
        ..Default::default()
    }
}

/// One locality of endpoints: its priority, weight and addresses with
/// their health.
#[derive(Debug, Clone)]
pub struct LocalityOf {
    pub zone: String,
    pub priority: u32,
    pub weight: u32,
    pub endpoints: Vec<(SocketAddr, core::HealthStatus)>,
    /// Each endpoint's `load_balancing_weight`, in order; none if empty.
    pub endpoint_weights: Vec<u32>,
}

impl LocalityOf {
    /// A locality of priority 0 and weight 1 whose endpoints are healthy.
    pub fn healthy(zone: &str, addresses: &[SocketAddr]) -> Self {
        Self {
            zone: zone.to_owned(),
            priority: 0,
            weight: 1,
            endpoints: addresses
                .iter()
                .map(|a| (*a, core::HealthStatus::Healthy))
                .collect(),
            endpoint_weights: Vec::new(),
        }
    }
}

/// The load assignment `name` of these localities.
pub fn endpoints(name: &str, localities: &[LocalityOf]) -> Any {
    any(&endpoint::ClusterLoadAssignment {
        cluster_name: name.to_owned(),
        endpoints: localities
            .iter()
            .map(|locality| endpoint::LocalityLbEndpoints {
                locality: Some(core::Locality {
                    zone: locality.zone.clone(),
                    ..Default::default()
                }),
                lb_endpoints: locality
                    .endpoints
                    .iter()
                    .enumerate()
                    .map(|(i, (address, health))| endpoint::LbEndpoint {
                        load_balancing_weight: locality
                            .endpoint_weights
                            .get(i)
                            .map(|value| UInt32Value { value: *value }),
                        host_identifier: Some(endpoint::lb_endpoint::HostIdentifier::Endpoint(
                            endpoint::Endpoint {
                                address: Some(core::Address {
                                    address: Some(core::address::Address::SocketAddress(
                                        core::SocketAddress {
                                            address: address.ip().to_string(),
                                            port_specifier: Some(
                                                core::socket_address::PortSpecifier::PortValue(
                                                    u32::from(address.port()),
                                                ),
                                            ),
                                            ..Default::default()
                                        },
                                    )),
                                }),
                                ..Default::default()
                            },
                        )),
                        health_status: *health as i32,
                        ..Default::default()
                    })
                    .collect(),
                load_balancing_weight: Some(UInt32Value {
                    value: locality.weight,
                }),
                priority: locality.priority,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}

/// The load assignment `name` of one locality of `count` endpoints on
/// 10.x.y.z:443 (addresses nothing listens on): a control plane's
/// oversized answer.
pub fn endpoints_many(name: &str, count: u32) -> Any {
    let addresses: Vec<SocketAddr> = (0..count)
        .map(|i| SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 443)))
        .collect();
    endpoints(name, &[LocalityOf::healthy("many", &addresses)])
}

/// [`endpoints()`] whose policy drops `percent` of the calls as `category`
/// (`drop_overloads`).
pub fn endpoints_dropping(
    name: &str,
    localities: &[LocalityOf],
    category: &str,
    percent: u32,
) -> Any {
    use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
    let mut assignment =
        endpoint::ClusterLoadAssignment::decode(endpoints(name, localities).value.as_slice())
            .expect("our own assignment");
    assignment.policy = Some(endpoint::cluster_load_assignment::Policy {
        drop_overloads: vec![endpoint::cluster_load_assignment::policy::DropOverload {
            category: category.to_owned(),
            drop_percentage: Some(FractionalPercent {
                numerator: percent,
                denominator: 0, // HUNDRED
            }),
        }],
        ..Default::default()
    });
    any(&assignment)
}

/// The four resources of a service `name` whose cluster `name` balances
/// by `lb_policy` over these localities (listener, route and cluster all
/// named `name`).
pub fn service(
    name: &str,
    lb_policy: cluster::cluster::LbPolicy,
    localities: &[LocalityOf],
) -> Vec<Any> {
    vec![
        listener(name, name),
        route(name, name, name),
        cluster(name, lb_policy),
        endpoints(name, localities),
    ]
}
