//! Ring hash without xDS (gRPC A42 as A76 configures it): a service
//! config's `ring_hash_experimental` with `requestHashHeader` sends every
//! call with one key to one server, against real tonic servers on
//! loopback. (The same ring against grpc-go's own client: `xds.rs`.)

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use pooled_client::{Pool, ServiceConfig};
use pooled_client_tests::helloworld::{HelloRequest, PooledGreeterClient};
use pooled_client_tests::server::{ServerOptions, TestServer};
use pooled_client_tests::support::{bounded, wait_for_stats};

async fn server_port_of(greeter: &PooledGreeterClient, key: Option<&str>) -> u16 {
    let mut request = tonic::Request::new(HelloRequest {
        name: "ring".into(),
        delay_ms: 0,
        count: 0,
    });
    if let Some(key) = key {
        request
            .metadata_mut()
            .insert("x-user", key.parse().expect("ascii"));
    }
    let response = greeter.say_hello(request).await.expect("the call succeeds");
    response
        .metadata()
        .get("server-port")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("server-port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_calls_stay_on_one_server_and_calls_without_a_key_spread() {
    bounded(Duration::from_secs(60), async {
        let mut servers = Vec::new();
        for _ in 0..3 {
            servers.push(TestServer::start(ServerOptions::default()).await);
        }
        let config = ServiceConfig::from_json(
            r#"{"loadBalancingConfig": [{"ring_hash_experimental": {"requestHashHeader": "x-user"}}]}"#,
        )
        .expect("a valid service config");
        let mut builder = Pool::builder().service_config(config);
        for server in &servers {
            builder = builder.endpoint(server.uri());
        }
        let pool = builder.build().expect("valid settings");
        assert!(
            wait_for_stats(&pool, Duration::from_secs(10), |s| s.connections >= 3).await,
            "every server connected"
        );
        let greeter = PooledGreeterClient::new(pool.clone());

        let mut by_key: HashMap<String, HashSet<u16>> = HashMap::new();
        for _ in 0..4 {
            for key in 0..32 {
                let key = format!("key-{key}");
                let port = server_port_of(&greeter, Some(&key)).await;
                by_key.entry(key).or_default().insert(port);
            }
        }
        let used: HashSet<u16> = by_key.values().flatten().copied().collect();
        for (key, ports) in &by_key {
            assert_eq!(ports.len(), 1, "{key} went to {ports:?}");
        }
        assert!(used.len() >= 2, "32 keys all on {used:?}");

        // Without the header, each call takes a random place on the ring.
        let mut spread = HashSet::new();
        for _ in 0..60 {
            spread.insert(server_port_of(&greeter, None).await);
        }
        assert_eq!(spread.len(), 3, "{spread:?}");

        // A server that leaves takes its keys to the next on the ring; the
        // others keep theirs.
        let gone = servers[0].addr.port();
        servers.remove(0).shutdown().await;
        assert!(
            wait_for_stats(&pool, Duration::from_secs(10), |s| s.connections == 2).await,
            "the stopped server's connection left"
        );
        for (key, ports) in &by_key {
            let before = *ports.iter().next().expect("a port");
            let now = server_port_of(&greeter, Some(key)).await;
            if before == gone {
                assert_ne!(now, gone);
            } else {
                assert_eq!(now, before, "{key} moved though its server stayed");
            }
        }
    })
    .await;
}

#[test]
fn the_service_config_is_checked_as_grpc_checks_it() {
    let error = |json: &str| {
        ServiceConfig::from_json(json)
            .expect_err("invalid")
            .to_string()
    };
    assert!(
        error(r#"{"loadBalancingConfig": [{"ring_hash_experimental": {"minRingSize": 10, "maxRingSize": 5}}]}"#)
            .contains("is above maxRingSize 5")
    );
    assert!(
        error(r#"{"loadBalancingConfig": [{"ring_hash_experimental": {"requestHashHeader": "x-key-bin"}}]}"#)
            .contains("requestHashHeader")
    );
    assert!(error(r#"{"loadBalancingConfig": [{"grpclb": {}}]}"#).contains("names no policy"));
    // The first policy the pool knows is taken, as gRPC takes it.
    let config = ServiceConfig::from_json(
        r#"{"loadBalancingConfig": [{"grpclb": {}}, {"round_robin": {}}, {"ring_hash_experimental": {}}]}"#,
    )
    .expect("valid");
    assert!(config.ring_hash.is_none());
    let ring = ServiceConfig::from_json(
        r#"{"loadBalancingConfig": [{"ring_hash_experimental": {"maxRingSize": "100000"}}]}"#,
    )
    .expect("valid")
    .ring_hash
    .expect("ring hash");
    assert_eq!((ring.min_ring_size, ring.max_ring_size), (1024, 4096));
}
