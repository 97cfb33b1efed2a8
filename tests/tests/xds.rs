//! A pool steered by a real xDS control plane (Envoy's go-control-plane
//! v0.14.0, `tests/go/xdscp`) over tonic servers on loopback: the
//! endpoints follow EDS without a failed call, a resource that fails its
//! checks is NACKed while the last good one serves, the pool outlives its
//! control plane, and a bootstrap or target that is wrong fails `build`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::cluster::LbPolicy;
use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use envoy_types::pb::google::protobuf::Any;
use pooled_client::xds::{Bootstrap, XdsResourceKind, XdsResourceState, XdsStatus};
use pooled_client::{AffinityKey, Pool, PoolConfig};
use pooled_client_tests::helloworld::{HelloRequest, PooledGreeterClient};
use pooled_client_tests::server::{ServerOptions, TestServer, serve_failing_half};
use pooled_client_tests::support::{bounded, wait_for_stats};
use pooled_client_tests::xds::{self, ControlPlane, LocalityOf, grpc_go_calls, grpc_go_slow_calls};

const LIMIT: Duration = Duration::from_secs(90);

/// The tests that measure shares or timings run one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn servers(count: usize) -> Vec<TestServer> {
    let mut servers = Vec::with_capacity(count);
    for _ in 0..count {
        servers.push(TestServer::start(ServerOptions::default()).await);
    }
    servers
}

fn addresses(servers: &[TestServer]) -> Vec<SocketAddr> {
    servers.iter().map(|s| s.addr).collect()
}

/// A pool for `xds:///greeter` steered by `control_plane`.
fn xds_pool(control_plane: &ControlPlane) -> Pool {
    Pool::builder()
        .xds("xds:///greeter")
        .xds_bootstrap(control_plane.bootstrap())
        .build()
        .expect("valid settings")
}

/// A control plane serving `resources` and a pool it steers, once the
/// pool has `endpoints` connected endpoints.
async fn steered(resources: &[Any], endpoints: usize) -> (ControlPlane, Pool) {
    let mut control_plane = ControlPlane::start().await;
    control_plane.set(resources).await.expect("snapshot taken");
    let pool = xds_pool(&control_plane);
    wait_for_endpoints(&pool, endpoints).await;
    (control_plane, pool)
}

/// Serves `resources` from now on and waits until the pool took the new
/// version of the `kind` resource, and a moment more: the cascade applies
/// it right after (no event announces that).
async fn update(
    control_plane: &mut ControlPlane,
    pool: &Pool,
    resources: &[Any],
    kind: XdsResourceKind,
) {
    let updated = std::time::SystemTime::now();
    control_plane.set(resources).await.expect("snapshot taken");
    wait_for_status(pool, |s| {
        s.resources
            .iter()
            .any(|r| r.kind == kind && r.state == XdsResourceState::Acked && r.since > updated)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Waits until the pool has exactly `count` endpoints, each connected.
async fn wait_for_endpoints(pool: &Pool, count: usize) {
    assert!(
        wait_for_stats(pool, Duration::from_secs(30), |s| s.endpoints == count
            && s.connections >= count)
        .await,
        "the pool never had {count} connected endpoints: {:?}\n{:#?}",
        pool.stats(),
        pool.xds_status()
    );
}

/// Polls the xDS status (no event announces its changes) until `ready`.
async fn wait_for_status(pool: &Pool, ready: impl Fn(&XdsStatus) -> bool) -> XdsStatus {
    let started = Instant::now();
    loop {
        let status = pool.xds_status().expect("an xDS pool has a status");
        if ready(&status) {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the status never got there: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn state_of(status: &XdsStatus, kind: XdsResourceKind) -> Option<&XdsResourceState> {
    status
        .resources
        .iter()
        .find(|r| r.kind == kind)
        .map(|r| &r.state)
}

/// One call's answer: the server's port and the client port it came from
/// (one per connection).
#[derive(Debug, Clone, Copy)]
struct Answer {
    /// When the call was made.
    sent: Instant,
    /// When it was answered.
    at: Instant,
    server_port: u16,
    client_port: u16,
}

async fn call(greeter: &PooledGreeterClient) -> Result<Answer, tonic::Status> {
    let sent = Instant::now();
    let response = greeter
        .say_hello(HelloRequest {
            name: "xds".into(),
            delay_ms: 0,
            count: 0,
        })
        .await?;
    let port = |key: &str| -> u16 {
        response
            .metadata()
            .get(key)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("the test server names its ports")
    };
    Ok(Answer {
        sent,
        at: Instant::now(),
        server_port: port("server-port"),
        client_port: port("peer-port"),
    })
}

/// `callers` callers make calls until `stop` is set (at most `max_calls`
/// each); every answer and every failure.
fn callers(
    pool: &Pool,
    callers: usize,
    max_calls: usize,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<Result<Answer, tonic::Status>>>> {
    (0..callers)
        .map(|_| {
            let greeter =
                PooledGreeterClient::new(pool.clone()).with_timeout(Duration::from_secs(10));
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) && answers.len() < max_calls {
                    answers.push(call(&greeter).await);
                }
                answers
            })
        })
        .collect()
}

async fn gather(
    tasks: Vec<tokio::task::JoinHandle<Vec<Result<Answer, tonic::Status>>>>,
) -> (Vec<Answer>, Vec<tonic::Status>) {
    let mut answers = Vec::new();
    let mut failures = Vec::new();
    for task in tasks {
        for result in task.await.expect("a caller panicked") {
            match result {
                Ok(answer) => answers.push(answer),
                Err(status) => failures.push(status),
            }
        }
    }
    (answers, failures)
}

fn shares(answers: &[Answer]) -> HashMap<u16, f64> {
    let mut counts: HashMap<u16, usize> = HashMap::new();
    for answer in answers {
        *counts.entry(answer.server_port).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(port, n)| (port, n as f64 / answers.len() as f64))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_steered_by_xds_spreads_calls_over_the_clusters_endpoints() {
    bounded(LIMIT, async {
        let _one = ONE_AT_A_TIME.lock().await;
        let servers = servers(4).await;
        let mut control_plane = ControlPlane::start().await;
        control_plane
            .set(&xds::service(
                "greeter",
                LbPolicy::RoundRobin,
                &[LocalityOf::healthy("a", &addresses(&servers))],
            ))
            .await
            .expect("the control plane takes the snapshot");
        let pool = xds_pool(&control_plane);
        wait_for_endpoints(&pool, 4).await;

        let status = pool.xds_status().expect("an xDS pool has a status");
        let kinds: Vec<_> = status
            .resources
            .iter()
            .map(|r| (r.kind, r.name.as_str(), r.state.clone()))
            .collect();
        assert_eq!(
            kinds,
            [
                (
                    XdsResourceKind::Listener,
                    "greeter",
                    XdsResourceState::Acked
                ),
                (
                    XdsResourceKind::RouteConfiguration,
                    "greeter",
                    XdsResourceState::Acked
                ),
                (XdsResourceKind::Cluster, "greeter", XdsResourceState::Acked),
                (
                    XdsResourceKind::ClusterLoadAssignment,
                    "greeter",
                    XdsResourceState::Acked
                ),
            ]
        );
        assert!(status.connected, "{status:#?}");

        // 8 callers, 2,000 calls: gRPC's ROUND_ROBIN gives 0.250 each
        // (grpc-go 1.85's own xDS client, on the same control plane, in
        // this test); least request on equal servers comes to the same.
        let (answers, failures) = gather(callers(&pool, 8, 250, Arc::default())).await;
        assert!(failures.is_empty(), "failed calls: {failures:?}");
        let go = grpc_go_calls(&control_plane, 8, 250, 0).await;
        assert_eq!((go.ok, go.errors), (2000, 0), "grpc-go: {}", go.first_error);
        for (who, shares) in [("the pool", shares(&answers)), ("grpc-go", go.shares())] {
            eprintln!("{who}: shares by server port: {shares:?}");
            assert_eq!(shares.len(), 4, "{who}: {shares:?}");
            for (port, share) in &shares {
                assert!(
                    (0.19..=0.31).contains(share),
                    "{who}: server {port} took {share:.3} of the calls: {shares:?}"
                );
            }
        }
    })
    .await;
}

/// Both the pool's and grpc-go's shares of the calls, by server, 8
/// callers of 250 calls each on the same control plane.
async fn both_shares(pool: &Pool, control_plane: &ControlPlane) -> [HashMap<u16, f64>; 2] {
    let (answers, failures) = gather(callers(pool, 8, 250, Arc::default())).await;
    assert!(failures.is_empty(), "failed calls: {failures:?}");
    let go = grpc_go_calls(control_plane, 8, 250, 0).await;
    assert_eq!((go.ok, go.errors), (2000, 0), "grpc-go: {}", go.first_error);
    [shares(&answers), go.shares()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localities_share_the_calls_by_weight_and_endpoint_weights_go_unused_as_in_grpc_go() {
    bounded(LIMIT, async {
        let _one = ONE_AT_A_TIME.lock().await;
        let fleet = servers(3).await;
        let all = addresses(&fleet);
        let mut control_plane = ControlPlane::start().await;

        // Three localities of weights 1:1:2: grpc-go 0.25 / 0.25 / 0.50.
        let localities: Vec<LocalityOf> = all
            .iter()
            .zip([1, 1, 2])
            .enumerate()
            .map(|(i, (address, weight))| LocalityOf {
                weight,
                ..LocalityOf::healthy(&format!("zone-{i}"), &[*address])
            })
            .collect();
        control_plane
            .set(&xds::service("greeter", LbPolicy::RoundRobin, &localities))
            .await
            .expect("snapshot taken");
        let pool = xds_pool(&control_plane);
        wait_for_endpoints(&pool, 3).await;
        for (who, shares) in ["the pool", "grpc-go"]
            .iter()
            .zip(both_shares(&pool, &control_plane).await)
        {
            eprintln!("localities 1:1:2, {who}: {shares:?}");
            for (address, expected) in all.iter().zip([0.25, 0.25, 0.5]) {
                let share = shares.get(&address.port()).copied().unwrap_or(0.0);
                assert!(
                    (share - expected).abs() < 0.06,
                    "{who}: {address} took {share:.3}, not {expected}: {shares:?}"
                );
            }
        }

        // One locality, endpoint weights 1:1:2, ROUND_ROBIN: grpc-go does
        // not read them (0.333 each), nor does the pool.
        let updated = std::time::SystemTime::now();
        control_plane
            .set(&xds::service(
                "greeter",
                LbPolicy::RoundRobin,
                &[LocalityOf {
                    endpoint_weights: vec![1, 1, 2],
                    ..LocalityOf::healthy("a", &all)
                }],
            ))
            .await
            .expect("snapshot taken");
        wait_for_status(&pool, |s| {
            s.resources.iter().any(|r| {
                r.kind == XdsResourceKind::ClusterLoadAssignment
                    && r.state == XdsResourceState::Acked
                    && r.since > updated
            })
        })
        .await;
        // The cascade weighs the endpoints right after it records the
        // update; no event announces weights.
        tokio::time::sleep(Duration::from_millis(50)).await;
        for (who, shares) in ["the pool", "grpc-go"]
            .iter()
            .zip(both_shares(&pool, &control_plane).await)
        {
            eprintln!("endpoint weights 1:1:2, {who}: {shares:?}");
            for address in &all {
                let share = shares.get(&address.port()).copied().unwrap_or(0.0);
                assert!(
                    (share - 1.0 / 3.0).abs() < 0.06,
                    "{who}: {address} took {share:.3}: {shares:?}"
                );
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_sends_each_key_to_the_server_grpc_go_sends_it_to() {
    bounded(LIMIT, async {
        let _one = ONE_AT_A_TIME.lock().await;
        let fleet = servers(3).await;
        let all = addresses(&fleet);
        let mut control_plane = ControlPlane::start().await;
        let mut resources = xds::service(
            "greeter",
            LbPolicy::RingHash,
            &[LocalityOf {
                endpoint_weights: vec![1, 1, 2],
                ..LocalityOf::healthy("a", &all)
            }],
        );

        // No hash policy: each call a random place on the ring, where
        // endpoints come up as often as their weights (grpc-go 1.85:
        // 0.27 / 0.25 / 0.49).
        control_plane.set(&resources).await.expect("snapshot taken");
        let pool = xds_pool(&control_plane);
        wait_for_endpoints(&pool, 3).await;
        for (who, shares) in ["the pool", "grpc-go"]
            .iter()
            .zip(both_shares(&pool, &control_plane).await)
        {
            eprintln!("ring hash, weights 1:1:2, random hashes, {who}: {shares:?}");
            for (address, expected) in all.iter().zip([0.25, 0.25, 0.5]) {
                let share = shares.get(&address.port()).copied().unwrap_or(0.0);
                assert!(
                    (share - expected).abs() < 0.08,
                    "{who}: {address} took {share:.3}, not about {expected}: {shares:?}"
                );
            }
        }

        // The route hashes by x-user: each of 32 keys on one server, and
        // on the server grpc-go's own client sends it to.
        resources[1] = xds::route_hashing("greeter", "greeter", "greeter", "x-user");
        update(
            &mut control_plane,
            &pool,
            &resources,
            XdsResourceKind::RouteConfiguration,
        )
        .await;
        let greeter = PooledGreeterClient::new(pool.clone());
        let mut ours: HashMap<String, HashSet<u16>> = HashMap::new();
        for round in 0..4 {
            for key in 0..32 {
                let key = format!("key-{key}");
                let mut request = tonic::Request::new(HelloRequest {
                    name: format!("round {round}"),
                    delay_ms: 0,
                    count: 0,
                });
                request
                    .metadata_mut()
                    .insert("x-user", key.parse().expect("ascii"));
                let response = greeter.say_hello(request).await.expect("the call succeeds");
                let port: u16 = response
                    .metadata()
                    .get("server-port")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .expect("server-port");
                ours.entry(key).or_default().insert(port);
            }
        }
        let go = grpc_go_calls(&control_plane, 4, 32, 32).await;
        assert_eq!(go.errors, 0, "grpc-go: {}", go.first_error);
        let mut servers_used: HashSet<u16> = HashSet::new();
        for (key, ports) in &ours {
            assert_eq!(ports.len(), 1, "{key} went to {ports:?}");
            let go_ports: HashSet<u16> = go.keys[key]
                .keys()
                .map(|p| p.parse().expect("a port"))
                .collect();
            assert_eq!(
                ports, &go_ports,
                "{key}: the pool {ports:?}, grpc-go {go_ports:?}"
            );
            servers_used.extend(ports);
        }
        eprintln!(
            "ring hash on x-user: 32 keys over {} servers, each on one, the same map as grpc-go's",
            servers_used.len()
        );
        assert!(servers_used.len() >= 2, "{servers_used:?}");

        // The same ring asked for by gRPC A52's load_balancing_policy (a
        // policy neither client knows, then ring_hash, which wins over the
        // cluster's ROUND_ROBIN): every key stays where it was, for both
        // clients.
        resources[2] = xds::cluster_ring_hash_by_a52("greeter");
        update(
            &mut control_plane,
            &pool,
            &resources,
            XdsResourceKind::Cluster,
        )
        .await;
        for key in ours.keys() {
            let mut request = tonic::Request::new(HelloRequest {
                name: "a52".into(),
                delay_ms: 0,
                count: 0,
            });
            request
                .metadata_mut()
                .insert("x-user", key.parse().expect("ascii"));
            let response = greeter.say_hello(request).await.expect("the call succeeds");
            let port: Option<u16> = response
                .metadata()
                .get("server-port")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            assert!(
                port.is_some_and(|p| ours[key].contains(&p)),
                "{key} moved to {port:?} under A52's ring_hash"
            );
        }
        let go_a52 = grpc_go_calls(&control_plane, 4, 32, 32).await;
        assert_eq!(go_a52.errors, 0, "grpc-go: {}", go_a52.first_error);
        for (key, ports) in &go_a52.keys {
            let ports: HashSet<u16> = ports.keys().map(|p| p.parse().expect("a port")).collect();
            assert_eq!(&ports, &ours[key], "grpc-go moved {key} under A52");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eds_update_that_drops_an_endpoint_fails_no_call_and_keeps_the_others_connections() {
    bounded(LIMIT, async {
        let _one = ONE_AT_A_TIME.lock().await;
        let servers = servers(4).await;
        let all = addresses(&servers);
        let (mut control_plane, pool) = steered(
            &xds::service(
                "greeter",
                LbPolicy::RoundRobin,
                &[LocalityOf::healthy("a", &all)],
            ),
            4,
        )
        .await;

        let stop = Arc::new(AtomicBool::new(false));
        let tasks = callers(&pool, 8, 200_000, stop.clone());
        tokio::time::sleep(Duration::from_millis(500)).await;
        let update = Instant::now();
        control_plane
            .set(&xds::service(
                "greeter",
                LbPolicy::RoundRobin,
                &[LocalityOf::healthy("a", &all[1..])],
            ))
            .await
            .expect("snapshot taken");
        assert!(
            wait_for_stats(&pool, Duration::from_secs(10), |s| s.endpoints == 3).await,
            "the pool never dropped the endpoint"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        let (answers, failures) = gather(tasks).await;
        assert!(failures.is_empty(), "failed calls: {failures:?}");

        let dropped = all[0].port();
        let last_reply = answers
            .iter()
            .filter(|a| a.server_port == dropped)
            .map(|a| a.at)
            .max()
            .expect("the dropped server took calls before");
        let after = last_reply.saturating_duration_since(update);
        eprintln!("the dropped endpoint's last reply came {after:?} after the EDS update");
        // grpc-go 1.85: within 1.0 s. Asserted loosely (a busy machine);
        // the figure is printed and measured in the README.
        assert!(after < Duration::from_secs(5), "{after:?}");

        // No connection to the endpoints that stay was reopened: each
        // answered after the update on connections it had before.
        let mut before: HashMap<u16, HashSet<u16>> = HashMap::new();
        for a in answers.iter().filter(|a| a.at < update) {
            before
                .entry(a.server_port)
                .or_default()
                .insert(a.client_port);
        }
        for a in answers
            .iter()
            .filter(|a| a.at > update && a.server_port != dropped)
        {
            assert!(
                before[&a.server_port].contains(&a.client_port),
                "server {} answered on a new connection {} after the update",
                a.server_port,
                a.client_port
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_that_fails_its_checks_is_nacked_and_the_last_good_one_serves() {
    bounded(LIMIT, async {
        let servers = servers(2).await;
        let all = addresses(&servers);
        let mut control_plane = ControlPlane::start().await;
        let good = xds::service(
            "greeter",
            LbPolicy::RoundRobin,
            &[LocalityOf::healthy("a", &all)],
        );
        control_plane.set(&good).await.expect("snapshot taken");
        let pool = xds_pool(&control_plane);
        wait_for_endpoints(&pool, 2).await;
        let greeter = PooledGreeterClient::new(pool.clone());

        // A cluster whose policy gRPC does not have.
        let mut bad_cluster = good.clone();
        bad_cluster[2] = xds::cluster("greeter", LbPolicy::Maglev);
        control_plane
            .set(&bad_cluster)
            .await
            .expect("snapshot taken");
        let status = wait_for_status(&pool, |s| {
            matches!(
                state_of(s, XdsResourceKind::Cluster),
                Some(XdsResourceState::Nacked { .. })
            )
        })
        .await;
        let Some(XdsResourceState::Nacked { error }) = state_of(&status, XdsResourceKind::Cluster)
        else {
            unreachable!()
        };
        assert!(
            error.contains("Cluster \"greeter\".lb_policy") && error.contains("MAGLEV"),
            "{error}"
        );

        // Endpoints whose priorities skip 0.
        let mut bad_endpoints = good.clone();
        let mut skipping = LocalityOf::healthy("a", &all[..1]);
        skipping.priority = 1;
        bad_endpoints[3] = xds::endpoints("greeter", &[skipping]);
        control_plane
            .set(&bad_endpoints)
            .await
            .expect("snapshot taken");
        let status = wait_for_status(&pool, |s| {
            matches!(
                state_of(s, XdsResourceKind::ClusterLoadAssignment),
                Some(XdsResourceState::Nacked { .. })
            )
        })
        .await;
        let Some(XdsResourceState::Nacked { error }) =
            state_of(&status, XdsResourceKind::ClusterLoadAssignment)
        else {
            unreachable!()
        };
        assert!(error.contains("priority 0 is missing"), "{error}");

        // The last good resources still serve: both endpoints, every call.
        assert_eq!(pool.stats().endpoints, 2);
        let mut ports = HashSet::new();
        for _ in 0..50 {
            ports.insert(call(&greeter).await.expect("the call succeeds").server_port);
        }
        assert_eq!(ports.len(), 2, "{ports:?}");

        // A good version is taken again.
        control_plane.set(&good).await.expect("snapshot taken");
        wait_for_status(&pool, |s| {
            s.resources
                .iter()
                .all(|r| r.state == XdsResourceState::Acked)
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_serves_on_when_its_control_plane_dies() {
    bounded(LIMIT, async {
        let servers = servers(2).await;
        let (mut control_plane, pool) = steered(
            &xds::service(
                "greeter",
                LbPolicy::RoundRobin,
                &[LocalityOf::healthy("a", &addresses(&servers))],
            ),
            2,
        )
        .await;

        control_plane.kill().await;
        let status = wait_for_status(&pool, |s| !s.connected).await;
        assert!(status.server_failures >= 1, "{status:#?}");
        let (answers, failures) = gather(callers(&pool, 4, 100, Arc::default())).await;
        assert!(failures.is_empty(), "failed calls: {failures:?}");
        assert_eq!(answers.len(), 400);
        assert_eq!(pool.stats().endpoints, 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lowest_priority_with_a_healthy_endpoint_takes_the_calls() {
    bounded(LIMIT, async {
        let servers = servers(3).await;
        let all = addresses(&servers);
        let mut control_plane = ControlPlane::start().await;
        let zero = |health: HealthStatus| LocalityOf {
            zone: "a".into(),
            priority: 0,
            weight: 1,
            endpoints: all[..2].iter().map(|a| (*a, health)).collect(),
            endpoint_weights: Vec::new(),
        };
        let one = LocalityOf {
            zone: "b".into(),
            priority: 1,
            weight: 1,
            endpoints: vec![(all[2], HealthStatus::Healthy)],
            endpoint_weights: Vec::new(),
        };
        control_plane
            .set(&xds::service(
                "greeter",
                LbPolicy::RoundRobin,
                &[zero(HealthStatus::Unhealthy), one.clone()],
            ))
            .await
            .expect("snapshot taken");
        let pool = xds_pool(&control_plane);
        wait_for_endpoints(&pool, 1).await;
        let greeter = PooledGreeterClient::new(pool.clone());
        for _ in 0..20 {
            assert_eq!(call(&greeter).await.expect("ok").server_port, all[2].port());
        }

        // Priority 0 recovers: it takes the calls back.
        control_plane
            .set(&xds::service(
                "greeter",
                LbPolicy::RoundRobin,
                &[zero(HealthStatus::Healthy), one],
            ))
            .await
            .expect("snapshot taken");
        // New endpoints are added before old ones leave: wait for the
        // one of priority 1 to have left, not for a count.
        let only_priority_zero = |_: &pooled_client::PoolStats| {
            let endpoints = pool.endpoints();
            endpoints.len() == 2 && endpoints.iter().all(|e| e.target.address() != Some(all[2]))
        };
        assert!(
            wait_for_stats(&pool, Duration::from_secs(10), only_priority_zero).await,
            "priority 0 never came back"
        );
        for _ in 0..20 {
            let port = call(&greeter).await.expect("ok").server_port;
            assert!(port != all[2].port(), "priority 1 still took a call");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clusters_max_requests_bounds_the_calls_in_flight_and_names_itself() {
    bounded(LIMIT, async {
        let _one = ONE_AT_A_TIME.lock().await;
        let (server, concurrency) = TestServer::start_counting().await;
        let mut control_plane = ControlPlane::start().await;
        let mut resources = xds::service(
            "greeter",
            LbPolicy::RoundRobin,
            &[LocalityOf::healthy("a", &[server.addr])],
        );
        resources[2] = xds::cluster_with_max_requests("greeter", LbPolicy::RoundRobin, 10);
        control_plane.set(&resources).await.expect("snapshot taken");
        let pool = xds_pool(&control_plane);
        wait_for_endpoints(&pool, 1).await;

        // 50 callers, each call 20 ms at the server (grpc-go 1.85 let 11
        // reach the server and failed the rest with "max requests 10
        // exceeded on service c").
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let greeter = PooledGreeterClient::new(pool.clone());
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    for _ in 0..10 {
                        outcomes.push(
                            greeter
                                .say_hello(HelloRequest {
                                    name: "limited".into(),
                                    delay_ms: 20,
                                    count: 0,
                                })
                                .await
                                .map(|_| ()),
                        );
                    }
                    outcomes
                })
            })
            .collect();
        let mut ok = 0;
        let mut refused = Vec::new();
        for task in tasks {
            for outcome in task.await.expect("a caller panicked") {
                match outcome {
                    Ok(()) => ok += 1,
                    Err(status) => refused.push(status),
                }
            }
        }
        let peak = concurrency.peak.load(Ordering::Acquire);
        eprintln!(
            "max_requests 10: {ok} ok, {} refused, at most {peak} in the server",
            refused.len()
        );
        assert!(peak <= 10, "{peak} calls in the server at once");
        assert!(
            ok > 0 && !refused.is_empty(),
            "{ok} ok, {} refused",
            refused.len()
        );
        for status in &refused {
            assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
            assert!(
                status
                    .message()
                    .contains("max requests 10 exceeded on cluster greeter"),
                "{status:?}"
            );
        }
        // Every place is given back: the next calls are admitted.
        let greeter = PooledGreeterClient::new(pool.clone());
        for _ in 0..20 {
            call(&greeter)
                .await
                .expect("admitted once the load is gone");
        }

        // grpc-go 1.85's own client on the same cluster, for the record:
        // its picker counts a call from pick to done, and lets one more
        // reach the server now and then (11 measured before).
        concurrency.peak.store(0, Ordering::Release);
        let go = grpc_go_slow_calls(&control_plane, 50, 10, 0, 20).await;
        eprintln!(
            "grpc-go, max_requests 10: {} ok, {} refused (\"{}\"), at most {} in the server",
            go.ok,
            go.errors,
            go.first_error,
            concurrency.peak.load(Ordering::Acquire)
        );
        assert!(go.errors > 0, "grpc-go refused nothing: is the limit read?");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_restart_under_load_fails_no_call() {
    bounded(LIMIT, async {
        let _one = ONE_AT_A_TIME.lock().await;
        let servers = servers(2).await;
        let resources = xds::service(
            "greeter",
            LbPolicy::RoundRobin,
            &[LocalityOf::healthy("a", &addresses(&servers))],
        );
        let mut control_plane = ControlPlane::start().await;
        control_plane.set(&resources).await.expect("snapshot taken");
        let pool = xds_pool(&control_plane);
        wait_for_endpoints(&pool, 2).await;

        let stop = Arc::new(AtomicBool::new(false));
        let tasks = callers(&pool, 4, 200_000, stop.clone());
        control_plane.kill().await;
        wait_for_status(&pool, |s| !s.connected).await;
        control_plane.restart(&resources).await;
        // The client reconnects (with backoff) and subscribes again: every
        // resource is ACKed anew on the new stream.
        let status = wait_for_status(&pool, |s| s.connected).await;
        assert!(status.server_failures >= 1, "{status:#?}");
        stop.store(true, Ordering::Relaxed);
        let (answers, failures) = gather(tasks).await;
        assert!(failures.is_empty(), "failed calls: {failures:?}");
        eprintln!("control-plane restart: {} calls, 0 failed", answers.len());
        assert!(!answers.is_empty());
        assert_eq!(pool.stats().endpoints, 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_request_with_the_latency_weight_keeps_calls_off_a_slow_server() {
    bounded(LIMIT, async {
        let _one = ONE_AT_A_TIME.lock().await;
        // Three servers of 2 ms and one of 100 ms (grpc-go was measured
        // with 40 ms; on a busy machine, where 2 ms calls take 10 or more,
        // 40 ms is no longer clearly slower, for any balancer).
        let mut fleet = Vec::new();
        for delay in [2, 2, 2, 100] {
            fleet.push(TestServer::start_slow(Duration::from_millis(delay)).await.0);
        }
        let slow = fleet[3].addr.port();
        let (control_plane, pool) = steered(&xds::service(
                "greeter",
                LbPolicy::LeastRequest,
                &[LocalityOf::healthy("a", &addresses(&fleet))],
            ), 4).await;

        let started = Instant::now();
        let (answers, failures) = gather(callers(&pool, 16, 150, Arc::default())).await;
        let pool_rate = answers.len() as f64 / started.elapsed().as_secs_f64();
        assert!(failures.is_empty(), "failed calls: {failures:?}");
        let pool_slow = shares(&answers).get(&slow).copied().unwrap_or(0.0);

        let go = grpc_go_calls(&control_plane, 16, 150, 0).await;
        assert_eq!(go.errors, 0, "grpc-go: {}", go.first_error);
        let go_slow = go.shares().get(&slow).copied().unwrap_or(0.0);
        let go_rate = go.ok as f64 / go.seconds;
        eprintln!(
            "LEAST_REQUEST, one server 100 ms: the pool sent it {pool_slow:.3} at {pool_rate:.0} ok/s; \
             grpc-go {go_slow:.3} at {go_rate:.0} ok/s"
        );
        // grpc-go's least_request compares outstanding calls only; the
        // pool weighs latency too. Less than a quarter of its even share
        // (0.25), busy machine or not; grpc-go's share is printed beside.
        assert!(pool_slow < 0.0625, "the slow server took {pool_slow:.3}");

    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_one_takes_the_calls_while_priority_zero_is_down_and_gives_them_back() {
    bounded(LIMIT, async {
        let _one = ONE_AT_A_TIME.lock().await;
        let mut zero = servers(2).await;
        let one = TestServer::start(ServerOptions::default()).await;
        let zero_addresses = addresses(&zero);
        let (_control_plane, pool) = steered(
            &xds::service(
                "greeter",
                LbPolicy::RoundRobin,
                &[
                    LocalityOf::healthy("a", &zero_addresses),
                    LocalityOf {
                        priority: 1,
                        ..LocalityOf::healthy("b", &[one.addr])
                    },
                ],
            ),
            2,
        )
        .await;

        let stop = Arc::new(AtomicBool::new(false));
        let tasks = callers(&pool, 8, 200_000, stop.clone());
        tokio::time::sleep(Duration::from_millis(800)).await;
        // Priority 0's servers stop (gracefully: GOAWAY, calls in flight
        // finish); EDS does not change.
        let down = Instant::now();
        for server in zero.drain(..) {
            server.shutdown().await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // They come back on the same addresses.
        let up = Instant::now();
        for address in &zero_addresses {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .expect("the address is free again");
            zero.push(TestServer::serve(listener, ServerOptions::default()));
        }
        // Gone from the endpoints and from the pick (its subchannel; the
        // pool drops the one, then the other).
        let only_zero = |_: &pooled_client::PoolStats| {
            let endpoints = pool.endpoints();
            endpoints.len() == 2
                && endpoints
                    .iter()
                    .all(|e| e.target.address() != Some(one.addr))
                && pool
                    .endpoint_stats()
                    .iter()
                    .all(|e| e.target.address() != Some(one.addr))
        };
        assert!(
            wait_for_stats(&pool, Duration::from_secs(20), only_zero).await,
            "priority 0 never took the calls back: {:?}",
            pool.endpoints()
        );
        let back = up.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        let (answers, failures) = gather(tasks).await;
        assert!(
            failures.is_empty(),
            "{} failed calls: {:?}",
            failures.len(),
            &failures[..failures.len().min(3)]
        );

        // By when each call was made: one made before a change may be
        // answered after it.
        let to_one = |from: Instant, to: Instant| {
            let window: Vec<_> = answers
                .iter()
                .filter(|a| a.sent > from && a.sent < to)
                .collect();
            let ones = window
                .iter()
                .filter(|a| a.server_port == one.addr.port())
                .count();
            (ones, window.len())
        };
        // A call stamped just before the stop may be picked after it (a
        // busy host delays a task by milliseconds): the window before ends
        // 200 ms short of it.
        let (before_ones, before) = to_one(
            down - Duration::from_millis(600),
            down - Duration::from_millis(200),
        );
        let (while_ones, during) = to_one(down + Duration::from_millis(500), up);
        let (after_ones, after) = to_one(up + back, Instant::now());
        eprintln!(
            "priority failover: before {before_ones}/{before} calls to priority 1, \
             while 0 was down {while_ones}/{during}, after it was back {after_ones}/{after}; \
             priority 0 took the calls back {back:?} after its servers returned"
        );
        assert_eq!(before_ones, 0, "priority 1 took calls while 0 was up");
        assert!(
            during > 0 && while_ones == during,
            "{while_ones} of {during}"
        );
        let late: Vec<_> = answers
            .iter()
            .filter(|a| a.sent > up + back && a.server_port == one.addr.port())
            .map(|a| (a.sent - (up + back), a.at - (up + back)))
            .collect();
        assert_eq!(
            after_ones, 0,
            "priority 1 kept calls after 0 was back: {late:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clusters_outlier_detection_ejects_the_server_failing_half_its_calls() {
    bounded(LIMIT, async {
        let _one = ONE_AT_A_TIME.lock().await;
        let mut fleet = servers(3).await;
        let failing: SocketAddr = serve_failing_half()
            .await
            .trim_start_matches("http://")
            .parse()
            .expect("an address");
        let mut all = addresses(&fleet);
        all.push(failing);
        let mut control_plane = ControlPlane::start().await;
        let mut resources = xds::service(
            "greeter",
            LbPolicy::RoundRobin,
            &[LocalityOf::healthy("a", &all)],
        );
        // grpc-go 1.85 on the same settings: ejected within 1 to 2
        // intervals, no failed call after.
        let interval = Duration::from_millis(1000);
        resources[2] = xds::cluster_with_failure_percentage("greeter", 1000, 25, 10);
        control_plane.set(&resources).await.expect("snapshot taken");
        let pool = xds_pool(&control_plane);
        wait_for_endpoints(&pool, 4).await;

        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let tasks = callers(&pool, 4, 200_000, stop.clone());
        let ejected = |_: &pooled_client::PoolStats| {
            pool.endpoint_stats()
                .iter()
                .any(|e| e.ejected && e.target.address() == Some(failing))
        };
        assert!(
            wait_for_stats(&pool, Duration::from_secs(20), ejected).await,
            "the failing server was never ejected"
        );
        let ejected_at = Instant::now();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        stop.store(true, Ordering::Relaxed);
        // Every answer, and when each failure's call was made.
        let mut failed_before = 0;
        let mut answered = 0;
        for task in tasks {
            for outcome in task.await.expect("a caller panicked") {
                match outcome {
                    Ok(_) => answered += 1,
                    Err(status) if status.code() == tonic::Code::Unavailable => failed_before += 1,
                    Err(status) => panic!("unexpected failure {status:?}"),
                }
            }
        }
        let took = ejected_at - started;
        eprintln!(
            "outlier detection: ejected {took:?} after the load began ({:.1} intervals); \
             {failed_before} calls failed before, {answered} answered",
            took.as_secs_f64() / interval.as_secs_f64()
        );
        assert!(took < interval * 4, "ejected only after {took:?}");
        // No failed call was made after the ejection.
        let greeter = PooledGreeterClient::new(pool.clone());
        for _ in 0..200 {
            let answer = call(&greeter)
                .await
                .expect("no call fails once it is ejected");
            assert!(answer.server_port != failing.port());
        }
        fleet.clear();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_that_sends_garbage_never_costs_the_pool_its_service() {
    bounded(LIMIT, async {
        let servers = servers(2).await;
        let all = addresses(&servers);
        let mut control_plane = ControlPlane::start().await;

        // A listener whose routes name a configuration that never comes:
        // calls fail UNAVAILABLE at once, naming what is missing.
        control_plane
            .set(&[
                xds::listener("greeter", "never-sent"),
                xds::cluster("greeter", LbPolicy::RoundRobin),
            ])
            .await
            .expect("snapshot taken");
        let pool = Pool::builder()
            .xds("xds:///greeter")
            .xds_bootstrap(control_plane.bootstrap())
            .acquire_timeout(Duration::from_millis(300))
            .connect_timeout(Duration::from_millis(300))
            .build()
            .expect("valid settings");
        wait_for_status(&pool, |s| {
            s.resources.iter().any(|r| {
                r.kind == XdsResourceKind::RouteConfiguration
                    && r.name == "never-sent"
                    && r.state == XdsResourceState::Requested
            })
        })
        .await;
        let greeter = PooledGreeterClient::new(pool.clone());
        let status = call(&greeter).await.expect_err("no endpoints");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(
            status.message().contains(
                "xDS RouteConfiguration \"never-sent\" is requested and not received yet"
            ),
            "{status:?}"
        );

        // A cluster with no endpoints: the same, naming the endpoints.
        control_plane
            .set(&xds::service("greeter", LbPolicy::RoundRobin, &[]))
            .await
            .expect("snapshot taken");
        wait_for_status(&pool, |s| {
            s.resources.len() == 4
                && s.resources
                    .iter()
                    .all(|r| r.state == XdsResourceState::Acked)
        })
        .await;
        let status = call(&greeter).await.expect_err("no endpoints");
        assert!(
            status
                .message()
                .contains("lists no endpoint that can take calls"),
            "{status:?}"
        );

        // Endpoints come: calls are served.
        let good = xds::service(
            "greeter",
            LbPolicy::RoundRobin,
            &[LocalityOf::healthy("a", &all)],
        );
        control_plane.set(&good).await.expect("snapshot taken");
        wait_for_endpoints(&pool, 2).await;
        call(&greeter).await.expect("served");

        // A listener that does not decode is NACKed; the last good one,
        // and every call, go on.
        let mut garbage = good.clone();
        garbage[0] = xds::listener_that_does_not_decode("greeter");
        control_plane.set(&garbage).await.expect("snapshot taken");
        let status = wait_for_status(&pool, |s| {
            matches!(
                state_of(s, XdsResourceKind::Listener),
                Some(XdsResourceState::Nacked { .. })
            )
        })
        .await;
        let Some(XdsResourceState::Nacked { error }) = state_of(&status, XdsResourceKind::Listener)
        else {
            unreachable!()
        };
        assert!(error.contains("does not decode"), "{error}");
        for _ in 0..50 {
            call(&greeter).await.expect("the last good listener serves");
        }
        assert_eq!(pool.stats().endpoints, 2);

        // A route whose weighted clusters' weights add to 0 (gRPC A28):
        // NACKed, naming the field, and the last good routes serve.
        let mut zero = good.clone();
        zero[1] = xds::routes(
            "greeter",
            "greeter",
            vec![xds::weighted_route(
                xds::prefix_match(""),
                &[("greeter", 0)],
            )],
        );
        control_plane.set(&zero).await.expect("snapshot taken");
        let status = wait_for_status(&pool, |s| {
            matches!(
                state_of(s, XdsResourceKind::RouteConfiguration),
                Some(XdsResourceState::Nacked { .. })
            )
        })
        .await;
        let Some(XdsResourceState::Nacked { error }) =
            state_of(&status, XdsResourceKind::RouteConfiguration)
        else {
            unreachable!()
        };
        assert!(
            error.contains("route.weighted_clusters: the weights add to 0"),
            "{error}"
        );
        for _ in 0..50 {
            call(&greeter).await.expect("the last good routes serve");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_overloads_drop_their_share_of_the_calls_at_once() {
    bounded(LIMIT, async {
        let servers = servers(2).await;
        let all = addresses(&servers);
        let mut control_plane = ControlPlane::start().await;
        let mut resources = xds::service(
            "greeter",
            LbPolicy::RoundRobin,
            &[LocalityOf::healthy("a", &all)],
        );
        resources[3] =
            xds::endpoints_dropping("greeter", &[LocalityOf::healthy("a", &all)], "throttle", 30);
        control_plane.set(&resources).await.expect("snapshot taken");
        let pool = xds_pool(&control_plane);
        wait_for_endpoints(&pool, 2).await;
        let greeter = PooledGreeterClient::new(pool.clone());
        let mut dropped = 0;
        for _ in 0..1000 {
            if let Err(status) = call(&greeter).await {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                assert!(
                    status
                        .message()
                        .contains("drop_overloads: category throttle, 30 %"),
                    "{status:?}"
                );
                dropped += 1;
            }
        }
        // 30 % of 1,000: 300, and 4 standard deviations (58) either way.
        assert!((242..=358).contains(&dropped), "{dropped} of 1,000 dropped");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routes_retry_policy_and_max_stream_duration_apply_to_its_calls() {
    use envoy_types::pb::envoy::config::route::v3 as route;
    use envoy_types::pb::google::protobuf::{Duration as ProtoDuration, UInt32Value};
    bounded(LIMIT, async {
        // One server failing every other call with UNAVAILABLE.
        let failing: SocketAddr = serve_failing_half()
            .await
            .trim_start_matches("http://")
            .parse()
            .expect("an address");
        let mut control_plane = ControlPlane::start().await;
        let mut resources = xds::service(
            "greeter",
            LbPolicy::RoundRobin,
            &[LocalityOf::healthy("a", &[failing])],
        );
        // gRPC A44: retry UNAVAILABLE twice more.
        resources[1] = xds::route_with("greeter", "greeter", "greeter", |action| {
            action.retry_policy = Some(route::RetryPolicy {
                retry_on: "unavailable,5xx".to_owned(),
                num_retries: Some(UInt32Value { value: 2 }),
                ..Default::default()
            });
        });
        control_plane.set(&resources).await.expect("snapshot taken");
        let pool = xds_pool(&control_plane);
        wait_for_endpoints(&pool, 1).await;
        let greeter = PooledGreeterClient::new(pool.clone());
        for _ in 0..40 {
            call(&greeter)
                .await
                .expect("the route's retries carry every call");
        }
        assert!(pool.stats().retries_total >= 10, "{:?}", pool.stats());

        // gRPC A31: the route bounds every call's deadline to 200 ms; a
        // call of 2 s without a deadline of its own ends DEADLINE_EXCEEDED.
        resources[1] = xds::route_with("greeter", "greeter", "greeter", |action| {
            action.max_stream_duration = Some(route::route_action::MaxStreamDuration {
                max_stream_duration: Some(ProtoDuration {
                    seconds: 0,
                    nanos: 200_000_000,
                }),
                ..Default::default()
            });
        });
        update(
            &mut control_plane,
            &pool,
            &resources,
            XdsResourceKind::RouteConfiguration,
        )
        .await;
        let mut bounded_calls = 0;
        for _ in 0..4 {
            let outcome = greeter
                .say_hello(HelloRequest {
                    name: "slow".into(),
                    delay_ms: 2000,
                    count: 0,
                })
                .await;
            match outcome {
                Err(status) if status.code() == tonic::Code::DeadlineExceeded => bounded_calls += 1,
                // The failing half answers UNAVAILABLE at once, unretried now.
                Err(status) if status.code() == tonic::Code::Unavailable => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(bounded_calls >= 1, "no call was bounded");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_not_received_within_15_s_counts_as_absent() {
    bounded(LIMIT, async {
        let mut control_plane = ControlPlane::start().await;
        control_plane
            .set(&[xds::listener("greeter", "never-sent")])
            .await
            .expect("snapshot taken");
        let pool = Pool::builder()
            .xds("xds:///greeter")
            .xds_bootstrap(control_plane.bootstrap())
            .acquire_timeout(Duration::from_millis(200))
            .connect_timeout(Duration::from_millis(200))
            .build()
            .expect("valid settings");
        let asked = Instant::now();
        // gRPC A57: 15 s after it was asked for, a resource that never
        // came does not exist.
        let started = Instant::now();
        let status = loop {
            let status = pool.xds_status().expect("an xDS pool has a status");
            let absent = status
                .resources
                .iter()
                .any(|r| r.name == "never-sent" && r.state == XdsResourceState::DoesNotExist);
            if absent || started.elapsed() > Duration::from_secs(30) {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let waited = asked.elapsed();
        assert!(
            status
                .resources
                .iter()
                .any(|r| r.name == "never-sent" && r.state == XdsResourceState::DoesNotExist),
            "{status:#?}"
        );
        assert!(waited >= Duration::from_secs(14), "absent after {waited:?}");
        let greeter = PooledGreeterClient::new(pool.clone());
        let refused = call(&greeter).await.expect_err("no endpoints");
        assert!(
            refused.message().contains(
                "xDS RouteConfiguration \"never-sent\" does not exist at the control plane"
            ),
            "{refused:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn build_refuses_what_an_xds_pool_cannot_be() {
    let bootstrap = Bootstrap::new("127.0.0.1:1");
    let error = |builder: pooled_client::PoolBuilder| {
        builder
            .build()
            .expect_err("an invalid xDS pool")
            .to_string()
    };

    let beside_endpoint = error(
        Pool::builder()
            .xds("xds:///greeter")
            .xds_bootstrap(bootstrap.clone())
            .endpoint("http://127.0.0.1:50051"),
    );
    assert!(
        beside_endpoint.contains("takes its endpoints from the control plane alone")
            && beside_endpoint.contains("http://127.0.0.1:50051"),
        "{beside_endpoint}"
    );

    let federated = error(
        Pool::builder()
            .xds("xds://authority.example/greeter")
            .xds_bootstrap(bootstrap.clone()),
    );
    assert!(federated.contains("federation"), "{federated}");

    let empty_uri = error(
        Pool::builder()
            .xds("xds:///greeter")
            .xds_bootstrap(Bootstrap::new("")),
    );
    assert!(
        empty_uri.contains("`xds_servers[0].server_uri`: is empty"),
        "{empty_uri}"
    );

    // This test process sets neither GRPC_XDS_BOOTSTRAP nor
    // GRPC_XDS_BOOTSTRAP_CONFIG.
    if std::env::var_os("GRPC_XDS_BOOTSTRAP").is_none()
        && std::env::var_os("GRPC_XDS_BOOTSTRAP_CONFIG").is_none()
    {
        let missing = error(Pool::builder().xds("xds:///greeter"));
        assert!(
            missing.contains("GRPC_XDS_BOOTSTRAP") && missing.contains("xds_bootstrap"),
            "{missing}"
        );
    }
}

#[test]
fn a_configuration_file_names_the_xds_target() {
    let config: PoolConfig = toml::from_str(r#"xds = "xds:///greeter""#).expect("valid TOML");
    assert_eq!(config.xds.as_deref(), Some("xds:///greeter"));
}

/// The target's routes: SayHello calls with `x-tier: gold` to cluster
/// "gold", the other SayHello calls to `clusters` by weight.
fn gold_or(clusters: &[(&str, u32)]) -> Any {
    let say_hello = "/helloworld.Greeter/SayHello";
    xds::routes(
        "greeter",
        "greeter",
        vec![
            xds::weighted_route(
                xds::path_and_header_match(say_hello, "x-tier", "gold"),
                &[("gold", 1)],
            ),
            xds::weighted_route(xds::path_match(say_hello), clusters),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_send_calls_by_path_header_and_weight_to_clusters_that_share_endpoints() {
    let _one = ONE_AT_A_TIME.lock().await;
    bounded(LIMIT, async {
        let servers = servers(3).await;
        let [s1, s2, s3] = [servers[0].addr, servers[1].addr, servers[2].addr];
        // gRPC A28: calls with `x-tier: gold` go to cluster "gold" ({s3});
        // the others to "a" ({s1}) and "b" ({s2, s3}), weighed 1:3; s3 is
        // in two clusters. No route takes SayHelloAgain.
        let resources = vec![
            xds::listener("greeter", "greeter"),
            gold_or(&[("a", 1), ("b", 3)]),
            xds::cluster("a", LbPolicy::RoundRobin),
            xds::cluster("b", LbPolicy::RoundRobin),
            xds::cluster("gold", LbPolicy::RoundRobin),
            xds::endpoints("a", &[LocalityOf::healthy("a", &[s1])]),
            xds::endpoints("b", &[LocalityOf::healthy("b", &[s2, s3])]),
            xds::endpoints("gold", &[LocalityOf::healthy("g", &[s3])]),
        ];
        let (control_plane, pool) = steered(&resources, 3).await;
        // Every resource, three clusters' and assignments' included, in
        // use at the version the control plane sent (its first).
        wait_for_status(&pool, |s| {
            s.resources.len() == 8
                && s.resources.iter().all(|r| {
                    r.state == XdsResourceState::Acked && r.version.as_deref() == Some("1")
                })
        })
        .await;

        let (answers, failures) = gather(callers(&pool, 8, 250, Arc::default())).await;
        assert!(failures.is_empty(), "{:?}", failures.first());
        let go = grpc_go_calls(&control_plane, 8, 250, 0).await;
        assert_eq!(go.errors, 0, "grpc-go: {}", go.first_error);
        for (client, share) in [("pool", shares(&answers)), ("grpc-go", go.shares())] {
            let of = |a: SocketAddr| share.get(&a.port()).copied().unwrap_or(0.0);
            eprintln!(
                "{client}: cluster a (s1) {:.3}, cluster b (s2 {:.3}, s3 {:.3})",
                of(s1),
                of(s2),
                of(s3)
            );
            // 2,000 calls: 0.06 is six standard deviations of a 0.25 share.
            assert!((of(s1) - 0.25).abs() < 0.06, "{client}: {share:?}");
            assert!((of(s2) + of(s3) - 0.75).abs() < 0.06, "{client}: {share:?}");
        }

        // Every gold call goes to the gold cluster's one endpoint.
        let greeter = PooledGreeterClient::new(pool.clone());
        for _ in 0..50 {
            let mut request = tonic::Request::new(HelloRequest {
                name: "gold".into(),
                delay_ms: 0,
                count: 0,
            });
            request
                .metadata_mut()
                .insert("x-tier", "gold".parse().expect("ascii"));
            let reply = greeter.say_hello(request).await.expect("served");
            let port = reply.metadata().get("server-port").map(|v| v.to_str().ok());
            assert_eq!(port, Some(Some(s3.port().to_string().as_str())));
        }
        // tonic's own generated client on the same pool is routed alike.
        let mut plain =
            pooled_client_tests::helloworld::greeter_client::GreeterClient::new(pool.clone());
        let mut request = tonic::Request::new(HelloRequest {
            name: "plain gold".into(),
            delay_ms: 0,
            count: 0,
        });
        request
            .metadata_mut()
            .insert("x-tier", "gold".parse().expect("ascii"));
        let reply = plain.say_hello(request).await.expect("served");
        let port = reply.metadata().get("server-port").map(|v| v.to_str().ok());
        assert_eq!(port, Some(Some(s3.port().to_string().as_str())));
        let go_gold = xds::grpc_go_calls_with_header(&control_plane, 2, 50, "x-tier=gold").await;
        assert_eq!(go_gold.errors, 0, "grpc-go: {}", go_gold.first_error);
        assert_eq!(go_gold.shares().get(&s3.port()).copied(), Some(1.0));

        // s3, in two clusters, is one endpoint of the pool: its clusters
        // share its connection.
        let stats = pool.stats();
        assert_eq!((stats.endpoints, stats.connections), (3, 3), "{stats:?}");

        // A call no route takes fails at once, UNAVAILABLE, naming its path.
        let status = greeter
            .say_hello_again(HelloRequest {
                name: "lost".into(),
                delay_ms: 0,
                count: 0,
            })
            .await
            .expect_err("no route");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(
            status.message().contains("no xDS route")
                && status
                    .message()
                    .contains("/helloworld.Greeter/SayHelloAgain"),
            "{status:?}"
        );
    })
    .await;
}

/// The servers that answered `calls` sequential calls with `key`, sent
/// to cluster "gold" when `gold`.
async fn keyed_ports(
    greeter: &PooledGreeterClient,
    key: AffinityKey,
    gold: bool,
    calls: usize,
) -> HashSet<u16> {
    let mut ports = HashSet::new();
    for _ in 0..calls {
        let mut request = tonic::Request::new(HelloRequest {
            name: "keyed".into(),
            delay_ms: 0,
            count: 0,
        });
        if gold {
            request
                .metadata_mut()
                .insert("x-tier", "gold".parse().expect("ascii"));
        }
        key.attach(&mut request);
        let reply = greeter.say_hello(request).await.expect("served");
        let port = reply
            .metadata()
            .get("server-port")
            .and_then(|v| v.to_str().ok())
            .and_then(|p| p.parse().ok())
            .expect("server-port");
        ports.insert(port);
    }
    ports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_affinity_key_never_takes_a_call_out_of_its_routes_cluster() {
    bounded(LIMIT, async {
        let servers = servers(3).await;
        let [s1, s2, s3] = [servers[0].addr, servers[1].addr, servers[2].addr];
        // `x-tier: gold` goes to cluster "gold", the other calls to "a".
        let resources = |a: &[SocketAddr], gold: &[SocketAddr]| {
            vec![
                xds::listener("greeter", "greeter"),
                gold_or(&[("a", 1)]),
                xds::cluster("a", LbPolicy::RoundRobin),
                xds::cluster("gold", LbPolicy::RoundRobin),
                xds::endpoints("a", &[LocalityOf::healthy("a", a)]),
                xds::endpoints("gold", &[LocalityOf::healthy("g", gold)]),
            ]
        };
        let (mut control_plane, pool) = steered(&resources(&[s1, s2], &[s1]), 2).await;
        let greeter = PooledGreeterClient::new(pool.clone());

        // A key whose calls to cluster a went to s2, which gold lacks.
        let mut key = None;
        for n in 0..64 {
            let candidate = AffinityKey::from_u64(n);
            let ports = keyed_ports(&greeter, candidate, false, 5).await;
            assert_eq!(ports.len(), 1, "one key, one server: {ports:?}");
            if ports.contains(&s2.port()) {
                key = Some(candidate);
                break;
            }
        }
        let key = key.expect("one of 64 keys bound to s2 (each has an even chance)");
        // Its gold calls stay in gold, and its calls to a stay on s2.
        let gold = keyed_ports(&greeter, key, true, 10).await;
        assert_eq!(gold, HashSet::from([s1.port()]));
        let plain = keyed_ports(&greeter, key, false, 10).await;
        assert_eq!(plain, HashSet::from([s2.port()]));

        // s2 leaves cluster a but stays in the pool, in gold: the key's
        // calls to a move to one server that a still has.
        update(
            &mut control_plane,
            &pool,
            &resources(&[s1, s3], &[s1, s2]),
            XdsResourceKind::ClusterLoadAssignment,
        )
        .await;
        wait_for_endpoints(&pool, 3).await;
        let moved = keyed_ports(&greeter, key, false, 20).await;
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert!(
            !moved.contains(&s2.port()),
            "a call went to s2, no longer in a"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_of_100_000_endpoints_is_nacked_and_the_last_good_one_serves() {
    bounded(LIMIT, async {
        let servers = servers(2).await;
        let good = xds::service(
            "greeter",
            LbPolicy::RoundRobin,
            &[LocalityOf::healthy("a", &addresses(&servers))],
        );
        let (mut control_plane, pool) = steered(&good, 2).await;
        let rss_before = resident_kib();
        let mut huge = good.clone();
        huge[3] = xds::endpoints_many("greeter", 100_000);
        control_plane.set(&huge).await.expect("snapshot taken");
        let status = wait_for_status(&pool, |s| {
            matches!(
                state_of(s, XdsResourceKind::ClusterLoadAssignment),
                Some(XdsResourceState::Nacked { .. })
            )
        })
        .await;
        let Some(XdsResourceState::Nacked { error }) =
            state_of(&status, XdsResourceKind::ClusterLoadAssignment)
        else {
            unreachable!()
        };
        assert!(
            error.contains("100000 endpoints, above the 10000 one cluster may list"),
            "{error}"
        );
        // The listener of the same snapshot is ACKed at its version; the
        // assignment's version in use stays the last good one.
        let status = wait_for_status(&pool, |s| {
            s.resources
                .iter()
                .any(|r| r.kind == XdsResourceKind::Listener && r.version.as_deref() == Some("2"))
        })
        .await;
        let assignment = status
            .resources
            .iter()
            .find(|r| r.kind == XdsResourceKind::ClusterLoadAssignment)
            .expect("watched");
        assert_eq!(assignment.version.as_deref(), Some("1"), "{assignment:?}");
        let greeter = PooledGreeterClient::new(pool.clone());
        for _ in 0..50 {
            call(&greeter).await.expect("the last good endpoints serve");
        }
        assert_eq!(pool.stats().endpoints, 2);
        eprintln!(
            "resident memory before the 100,000 endpoints: {rss_before} KiB, after: {} KiB",
            resident_kib()
        );
    })
    .await;
}

/// This process's resident memory, for the record.
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cluster_detects_its_own_outliers_with_its_own_settings() {
    bounded(LIMIT, async {
        let _one = ONE_AT_A_TIME.lock().await;
        let fleet = servers(4).await;
        let mut failing = Vec::new();
        for _ in 0..2 {
            let address: SocketAddr = serve_failing_half()
                .await
                .trim_start_matches("http://")
                .parse()
                .expect("an address");
            failing.push(address);
        }
        let good = addresses(&fleet);
        // Cluster "a" ejects by failure percentage; cluster "b" does not
        // detect outliers: its server failing half its calls stays.
        let in_a = [good[0], good[1], good[2], failing[0]];
        let in_b = [good[3], failing[1]];
        let resources = vec![
            xds::listener("greeter", "greeter"),
            xds::routes(
                "greeter",
                "greeter",
                vec![xds::weighted_route(
                    xds::prefix_match(""),
                    &[("a", 1), ("b", 1)],
                )],
            ),
            xds::cluster_with_failure_percentage("a", 500, 25, 10),
            xds::cluster("b", LbPolicy::RoundRobin),
            xds::endpoints("a", &[LocalityOf::healthy("a", &in_a)]),
            xds::endpoints("b", &[LocalityOf::healthy("b", &in_b)]),
        ];
        let (_control_plane, pool) = steered(&resources, 6).await;
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = callers(&pool, 4, 200_000, stop.clone());
        let ejected = |address: SocketAddr| {
            pool.endpoint_stats()
                .iter()
                .any(|e| e.ejected && e.target.address() == Some(address))
        };
        assert!(
            wait_for_stats(&pool, Duration::from_secs(20), |_| ejected(failing[0])).await,
            "cluster a's failing server was never ejected"
        );
        // Four more of a's intervals: b's failing server is weighed by no
        // one, and keeps taking b's calls.
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            assert!(!ejected(failing[1]), "cluster b has no outlier detection");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.store(true, Ordering::Relaxed);
        let (answers, _failures) = gather(tasks).await;
        let late = answers
            .iter()
            .filter(|a| a.sent > until - Duration::from_secs(1))
            .filter(|a| a.server_port == failing[1].port())
            .count();
        assert!(late > 0, "b's failing server took b's calls to the end");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_over_tls_steers_the_pool_and_an_untrusted_one_does_not() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    bounded(LIMIT, async {
        let authority = || {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a key")).expect("a CA")
        };
        let (trusted, other) = (authority(), authority());
        let key = KeyPair::generate().expect("a key");
        let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("params")
            .signed_by(&key, &trusted)
            .expect("a certificate");
        let nonce = std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("xds-tls-{}-{nonce}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory");
        let file = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("written");
            path
        };
        let (cert, key) = (
            file("server.pem", server.pem()),
            file("server.key", key.serialize_pem()),
        );
        let (trusted_ca, other_ca) = (
            file("ca.pem", trusted.pem()),
            file("other.pem", other.pem()),
        );

        let fleet = servers(2).await;
        let mut control_plane = ControlPlane::start_tls(&cert, &key).await;
        control_plane
            .set(&xds::service(
                "greeter",
                LbPolicy::RoundRobin,
                &[LocalityOf::healthy("a", &addresses(&fleet))],
            ))
            .await
            .expect("snapshot taken");
        // gRPC A65's `tls` credentials: the control plane checked against
        // the CA file.
        let pool_trusting = |ca: &std::path::Path| {
            let json = format!(
                r#"{{"xds_servers": [{{"server_uri": "127.0.0.1:{}",
                    "channel_creds": [{{"type": "tls", "config": {{"ca_certificate_file": {:?}}}}}],
                    "server_features": ["xds_v3"]}}],
                  "node": {{"id": "tls-test"}}}}"#,
                control_plane.port,
                ca.display().to_string()
            );
            Pool::builder()
                .xds("xds:///greeter")
                .xds_bootstrap(Bootstrap::from_json(&json).expect("a valid bootstrap"))
                .acquire_timeout(Duration::from_millis(300))
                .build()
                .expect("valid settings")
        };
        let pool = pool_trusting(&trusted_ca);
        wait_for_endpoints(&pool, 2).await;
        call(&PooledGreeterClient::new(pool.clone()))
            .await
            .expect("served through a control plane over TLS");

        // A CA that did not issue the control plane's certificate: the
        // pool never hears from it, and its calls say so.
        let untrusting = pool_trusting(&other_ca);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let status = untrusting.xds_status().expect("an xDS pool");
        assert!(!status.connected, "{status:?}");
        assert_eq!(untrusting.stats().endpoints, 0);
        let error = call(&PooledGreeterClient::new(untrusting.clone()))
            .await
            .expect_err("no endpoints");
        assert_eq!(error.code(), tonic::Code::Unavailable, "{error:?}");
        assert!(error.message().contains("not connected"), "{error:?}");
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

/// Priority 0's only endpoint refuses connections, priority 1's serves: a
/// call made as the pool starts is served by priority 1, as grpc-go's
/// priority balancer serves it (it fails over within the balancer, before
/// any call is told that nothing can be reached).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_made_as_the_pool_starts_is_served_by_priority_one_when_priority_zero_refuses() {
    bounded(LIMIT, async {
        let _one = ONE_AT_A_TIME.lock().await;
        let one = TestServer::start(ServerOptions::default()).await;
        let refusing = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port");
        let mut control_plane = ControlPlane::start().await;
        control_plane
            .set(&xds::service(
                "greeter",
                LbPolicy::RoundRobin,
                &[
                    LocalityOf::healthy("a", &[refusing]),
                    LocalityOf {
                        priority: 1,
                        ..LocalityOf::healthy("b", &[one.addr])
                    },
                ],
            ))
            .await
            .expect("snapshot taken");
        let pool = xds_pool(&control_plane);
        let greeter = PooledGreeterClient::new(pool.clone());
        // Made before the pool has its endpoints: it waits for them.
        let answer = call(&greeter).await.expect("priority 1 serves the call");
        assert_eq!(answer.server_port, one.addr.port());
    })
    .await;
}
