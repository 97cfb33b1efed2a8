//! `PoolConfig` read from TOML (feature `serde`): durations as "5s", the
//! defaults for what is left out, errors that name the field, and the same
//! checks as the builder through `Pool::from_config`.

use std::time::Duration;

use pooled_client::{Backoff, Pool, PoolConfig};
use pooled_client_tests::helloworld::{HelloRequest, PooledGreeterClient};
use pooled_client_tests::server::{ServerOptions, TestServer};
use pooled_client_tests::support::{bounded, endpoint_names};

const FULL: &str = r#"
endpoints = ["http://127.0.0.1:50051", "http://127.0.0.1:50052"]
min_connections = 2
max_connections = 16
connect_timeout = "2s"
idle_timeout = "1m"
max_connection_lifetime = "30m"
acquire_timeout = "750ms"
max_waiters = 512
max_streams_per_connection = 50
max_decoding_message_size = 8388608
idempotent_retry_policy = { maxAttempts = 4, initialBackoff = "0.2s", maxBackoff = "2s", backoffMultiplier = 3, retryableStatusCodes = ["UNAVAILABLE", "ABORTED"] }
timeout = "3s"
initial_stream_window_size = 1048576
initial_connection_window_size = 4194304
origin = "http://greeter.internal"
http2_keep_alive_interval = "20s"
keep_alive_timeout = "5s"
keep_alive_while_idle = true
backoff = { initial = "200ms", multiplier = 2.0, jitter = 0.1, max = "10s" }
health_check = { service = "helloworld.Greeter", interval = "5s" }

[service_config]
retryThrottling = { maxTokens = 10, tokenRatio = 0.1 }

[[service_config.methodConfig]]
name = [{ service = "helloworld.Greeter", method = "SayHello" }]
timeout = "0.2s"
retryPolicy = { maxAttempts = 3, initialBackoff = "0.1s", maxBackoff = "1s", backoffMultiplier = 2, retryableStatusCodes = ["UNAVAILABLE"] }
"#;

/// The service config of [`FULL`], as JSON.
const SERVICE_CONFIG: &str = r#"{
  "methodConfig": [{
    "name": [{"service": "helloworld.Greeter", "method": "SayHello"}],
    "timeout": "0.2s",
    "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.1s", "maxBackoff": "1s",
                    "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
  }],
  "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1}
}"#;

#[test]
fn every_setting_reads_from_toml_as_the_builder_would_set_it() {
    let from_file: PoolConfig = toml::from_str(FULL).unwrap();
    let built = Pool::builder()
        .endpoint("http://127.0.0.1:50051")
        .endpoint("http://127.0.0.1:50052")
        .min_connections(2)
        .max_connections(16)
        .connect_timeout(Duration::from_secs(2))
        .idle_timeout(Duration::from_secs(60))
        .max_connection_lifetime(Duration::from_secs(30 * 60))
        .acquire_timeout(Duration::from_millis(750))
        .max_waiters(512)
        .max_streams_per_connection(50)
        .max_decoding_message_size(8 << 20)
        .idempotent_retry_policy(Some(pooled_client::RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            backoff_multiplier: 3.0,
            retryable_status_codes: vec![tonic::Code::Unavailable, tonic::Code::Aborted],
        }))
        .timeout(Duration::from_secs(3))
        .initial_stream_window_size(1 << 20)
        .initial_connection_window_size(4 << 20)
        .origin("http://greeter.internal".parse().unwrap())
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .backoff(Backoff::new(
            Duration::from_millis(200),
            2.0,
            0.1,
            Duration::from_secs(10),
        ))
        .health_check("helloworld.Greeter", Duration::from_secs(5))
        .service_config(pooled_client::ServiceConfig::from_json(SERVICE_CONFIG).unwrap());
    assert_eq!(&from_file, built.config());
    Pool::from_config(from_file).unwrap();
}

#[test]
fn left_out_settings_take_their_defaults() {
    let config: PoolConfig = toml::from_str(r#"endpoints = ["http://[::1]:9"]"#).unwrap();
    let mut expected = PoolConfig::default();
    expected.endpoints = vec!["http://[::1]:9".into()];
    assert_eq!(config, expected);
}

#[test]
fn mistakes_in_the_file_name_the_field() {
    let bad_duration = toml::from_str::<PoolConfig>(r#"acquire_timeout = "5 parsecs""#)
        .unwrap_err()
        .to_string();
    assert!(bad_duration.contains("acquire_timeout"), "{bad_duration}");
    assert!(bad_duration.contains("parsecs"), "{bad_duration}");

    let typo = toml::from_str::<PoolConfig>("max_conections = 4")
        .unwrap_err()
        .to_string();
    assert!(typo.contains("max_conections"), "{typo}");

    let policy = toml::from_str::<PoolConfig>(
        r#"service_config = { methodConfig = [{ timeout = "1.5" }] }"#,
    )
    .unwrap_err()
    .to_string();
    assert!(policy.contains("methodConfig[0].timeout"), "{policy}");

    let nested = toml::from_str::<PoolConfig>(r#"backoff = { initial = "soon" }"#)
        .unwrap_err()
        .to_string();
    assert!(nested.contains("initial"), "{nested}");

    // The old name is gone (0.1): an unknown field, named.
    let renamed =
        toml::from_str::<PoolConfig>(r#"keepalive = { interval = "1s", timeout = "1s" }"#)
            .unwrap_err()
            .to_string();
    assert!(renamed.contains("keepalive"), "{renamed}");

    let missing_file = toml::from_str::<PoolConfig>(r#"tls = { ca_file = "/nonexistent/ca.pem" }"#)
        .unwrap_err()
        .to_string();
    assert!(
        missing_file.contains("/nonexistent/ca.pem"),
        "{missing_file}"
    );
    for message in [&bad_duration, &typo, &nested, &missing_file] {
        println!("{message}");
    }
}

#[test]
fn from_config_checks_values_as_the_builder_does() {
    for (toml_text, builder) in [
        (
            "endpoints = [\"http://h:1\"]\nmax_connections = 0",
            Pool::builder().endpoint("http://h:1").max_connections(0),
        ),
        (
            "endpoints = [\"http://h:1\"]\nacquire_timeout = \"0s\"",
            Pool::builder()
                .endpoint("http://h:1")
                .acquire_timeout(Duration::ZERO),
        ),
        (
            "endpoints = [\"ftp://h:1\"]",
            Pool::builder().endpoint("ftp://h:1"),
        ),
        ("endpoints = []", Pool::builder()),
    ] {
        let config: PoolConfig = toml::from_str(toml_text).unwrap();
        let from_file = Pool::from_config(config).unwrap_err().to_string();
        let from_builder = builder.build().unwrap_err().to_string();
        assert_eq!(from_file, from_builder);
    }
}

#[test]
fn tls_certificates_are_read_from_the_files_named() {
    let dir = std::env::temp_dir().join(format!("pooled-client-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, certified.cert.pem()).unwrap();
    let text = format!(
        "endpoints = [\"https://localhost:1\"]\n[tls]\nca_file = {:?}\nserver_name = \"pool.test\"\n",
        ca.display().to_string()
    );
    let config: PoolConfig = toml::from_str(&text).unwrap();
    let tls = config.tls.clone().unwrap();
    assert_eq!(tls.ca_certificates_pem, vec![certified.cert.pem()]);
    assert_eq!(tls.server_name.as_deref(), Some("pool.test"));
    Pool::from_config(config).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_from_a_file_makes_calls() {
    bounded(Duration::from_secs(20), async {
        let server = TestServer::start(ServerOptions::default()).await;
        let text = format!(
            "endpoints = [{:?}]\nmax_connections = 4\nacquire_timeout = \"1s\"\n",
            server.uri()
        );
        let pool = Pool::from_config(toml::from_str(&text).unwrap()).unwrap();
        let greeter = PooledGreeterClient::new(pool);
        let reply = greeter
            .say_hello(HelloRequest {
                name: "file".into(),
                delay_ms: 0,
                count: 0,
            })
            .await
            .unwrap();
        assert_eq!(reply.into_inner().message, "Hello file");
    })
    .await;
}

#[test]
fn the_example_file_loads_and_builds_a_pool() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/config/pool.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let config: PoolConfig = toml::from_str(&text).unwrap();
    assert_eq!(config.max_connections, 8);
    assert_eq!(
        config.health_check.as_ref().map(|h| h.service.as_str()),
        Some("helloworld.Greeter")
    );
    Pool::from_config(config).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_can_name_a_host_to_resolve_instead_of_endpoints() {
    bounded(Duration::from_secs(20), async {
        let server = TestServer::start(ServerOptions::default()).await;
        let dns = pooled_client_tests::dns::FakeDns::start(&[std::net::Ipv4Addr::LOCALHOST]).await;
        let text = format!(
            "[dns]\nuri = \"http://greeter.test:{}\"\nrefresh_interval = \"100ms\"\nnameservers = [\"{}\"]\n",
            server.addr.port(),
            dns.addr
        );
        let config: PoolConfig = toml::from_str(&text).unwrap();
        assert_eq!(
            config.dns.as_ref().map(|d| d.refresh_interval),
            Some(Duration::from_millis(100))
        );
        let pool = Pool::from_config(config).unwrap();
        let reply = PooledGreeterClient::new(pool.clone())
            .say_hello(HelloRequest {
                name: "dns file".into(),
                delay_ms: 0,
                count: 0,
            })
            .await
            .unwrap();
        assert_eq!(reply.into_inner().message, "Hello dns file");
        assert_eq!(
            endpoint_names(&pool),
            vec![format!(
                "http://greeter.test:{} at 127.0.0.1:{}",
                server.addr.port(),
                server.addr.port()
            )]
        );

        let zero: PoolConfig =
            toml::from_str("[dns]\nuri = \"http://greeter.test:1\"\nrefresh_interval = \"0s\"").unwrap();
        let error = Pool::from_config(zero).unwrap_err().to_string();
        assert!(error.contains("dns refresh_interval"), "{error}");
        let by_ip: PoolConfig = toml::from_str("[dns]\nuri = \"http://127.0.0.1:1\"").unwrap();
        assert!(Pool::from_config(by_ip).is_err());
    })
    .await;
}
