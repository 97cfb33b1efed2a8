//! Metrics through the `metrics` facade (feature `metrics`).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use pooled_client_tests::helloworld::{HelloRequest, PooledGreeterClient};
use pooled_client_tests::support::hello;
use pooled_client_tests::support::{bounded, endpoint_names, server_and_pool};

/// Every snapshot drains the recorder's histograms, whichever pool they
/// belong to: the tests of this file take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The process-wide recorder every test here reads.
fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("the only recorder");
        snapshotter
    })
}

/// The values of the metrics labelled `pool = pool` (the pool's own series)
/// or `grpc.target = pool` (gRPC's), by name.
fn metrics_of(pool: &str) -> HashMap<String, DebugValue> {
    snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            key.key()
                .labels()
                .any(|l| (l.key() == "pool" || l.key() == "grpc.target") && l.value() == pool)
        })
        .map(|(key, _, _, value)| (key.key().name().to_owned(), value))
        .collect()
}

/// Reads the pool's metrics until `until` holds (they are published at every
/// maintenance tick), keeping every wait sample seen on the way.
async fn metrics_until(
    pool: &str,
    waits: &mut Vec<f64>,
    until: impl Fn(&HashMap<String, DebugValue>, usize) -> bool,
) -> HashMap<String, DebugValue> {
    let started = std::time::Instant::now();
    loop {
        let now = metrics_of(pool);
        if let Some(DebugValue::Histogram(samples)) = now.get("pooled_client_wait_seconds") {
            waits.extend(samples.iter().map(|s| s.0));
        }
        if until(&now, waits.len()) || started.elapsed() > Duration::from_secs(5) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn gauge(metrics: &HashMap<String, DebugValue>, name: &str) -> f64 {
    match metrics.get(name) {
        Some(DebugValue::Gauge(value)) => value.0,
        _ => f64::NAN,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gauges_counters_and_the_wait_histogram_follow_the_pool() {
    snapshotter();
    let _turn = ONE_AT_A_TIME.lock().await;
    bounded(Duration::from_secs(30), async {
        // One connection of one stream: of four concurrent calls, three wait.
        // A short idle period makes the maintenance tick (and so the
        // publishing) every 100 ms.
        let (_server, pool) = server_and_pool(Some(1), |b| {
            b.name("metrics-test")
                .max_connections(1)
                .idle_timeout(Duration::from_millis(800))
                .acquire_timeout(Duration::from_secs(10))
        })
        .await;
        let greeter = PooledGreeterClient::new(pool.clone());
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let greeter = greeter.clone();
                tokio::spawn(async move { greeter.say_hello(hello("metrics", 500)).await })
            })
            .collect();
        let mut waits = Vec::new();
        // A tick publishes the gauges before the counters: a snapshot taken
        // between the two has the one and not yet the other.
        let busy = metrics_until("metrics-test", &mut waits, |m, _| {
            gauge(m, "pooled_client_waiting") == 3.0
                && gauge(m, "pooled_client_in_flight") == 1.0
                && m.contains_key("pooled_client_connects_total")
        })
        .await;
        println!("{busy:#?}");
        assert_eq!(gauge(&busy, "pooled_client_waiting"), 3.0);
        assert_eq!(gauge(&busy, "pooled_client_in_flight"), 1.0);
        assert_eq!(gauge(&busy, "pooled_client_connections"), 1.0);
        assert_eq!(gauge(&busy, "pooled_client_capacity"), 1.0);
        assert_eq!(gauge(&busy, "pooled_client_endpoints"), 1.0);
        assert_eq!(busy["pooled_client_connects_total"], DebugValue::Counter(1));
        for call in calls {
            call.await.unwrap().unwrap();
        }
        // Three calls waited: three samples, each at least one call long.
        let after = metrics_until("metrics-test", &mut waits, |m, waited| {
            gauge(m, "pooled_client_in_flight") == 0.0 && waited >= 3
        })
        .await;
        assert_eq!(waits.len(), 3, "{waits:?}");
        assert!(waits.iter().all(|w| *w >= 0.45), "{waits:?}");
        assert_eq!(gauge(&after, "pooled_client_waiting"), 0.0);
        for name in [
            "pooled_client_draining",
            "pooled_client_connecting",
            "pooled_client_connect_failures_total",
            "pooled_client_evictions_total",
            "pooled_client_idle_closes_total",
            "pooled_client_expired_total",
            "pooled_client_unhealthy_total",
            "pooled_client_rejected_total",
        ] {
            assert!(after.contains_key(name), "{name} missing: {after:#?}");
        }
    })
    .await;
}

/// The values of the `pooled_client_endpoint_*` series of pool `pool`, by
/// endpoint and name.
fn endpoint_metrics_of(pool: &str) -> HashMap<(String, String), DebugValue> {
    snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let key = key.key();
            let label = |name: &str| {
                key.labels()
                    .find(|l| l.key() == name)
                    .map(|l| l.value().to_owned())
            };
            (label("pool")? == pool && key.name().starts_with("pooled_client_endpoint_"))
                .then_some(((label("endpoint")?, key.name().to_owned()), value))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_endpoint_has_its_own_labelled_series() {
    snapshotter();
    let _turn = ONE_AT_A_TIME.lock().await;
    bounded(Duration::from_secs(30), async {
        use pooled_client_tests::server::{ServerOptions, TestServer};
        let a = TestServer::start(ServerOptions::default()).await;
        let b = TestServer::start(ServerOptions::default()).await;
        let pool = pooled_client::Pool::builder()
            .name("endpoint-metrics")
            .endpoint(a.uri())
            .endpoint(b.uri())
            .idle_timeout(Duration::from_millis(800))
            .build()
            .unwrap();
        pool.ready().await.unwrap();
        let greeter = PooledGreeterClient::new(pool.clone());
        for _ in 0..40 {
            greeter.say_hello(hello("metrics", 0)).await.unwrap();
        }
        let names = endpoint_names(&pool);
        assert_eq!(names.len(), 2, "{names:?}");
        // Published at the next maintenance tick (every 100 ms here). Each
        // snapshot of the debugging recorder drains what it reads, so one
        // taken while a tick is publishing leaves the next with part of the
        // series at 0 (CI saw it): wait for a snapshot of a whole tick.
        let started = std::time::Instant::now();
        let seen = loop {
            let seen = endpoint_metrics_of("endpoint-metrics");
            let calls = |endpoint: &String| match seen
                .get(&(endpoint.clone(), "pooled_client_endpoint_calls_total".into()))
            {
                Some(DebugValue::Counter(n)) => *n,
                _ => 0,
            };
            let connected = |endpoint: &String| {
                seen.get(&(endpoint.clone(), "pooled_client_endpoint_connections".into()))
                    == Some(&DebugValue::Gauge(1.0.into()))
            };
            let whole = names.iter().map(calls).sum::<u64>() == 40 && names.iter().all(connected);
            if whole || started.elapsed() > Duration::from_secs(5) {
                break seen;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        for endpoint in &names {
            let value = |name: &str| seen.get(&(endpoint.clone(), name.to_owned()));
            assert_eq!(
                value("pooled_client_endpoint_connections"),
                Some(&DebugValue::Gauge(1.0.into())),
                "{endpoint}: {seen:#?}"
            );
            assert!(
                matches!(value("pooled_client_endpoint_calls_total"), Some(DebugValue::Counter(n)) if *n > 0),
                "both endpoints carried calls: {seen:#?}"
            );
            for name in [
                "pooled_client_endpoint_in_flight",
                "pooled_client_endpoint_ejected",
                "pooled_client_endpoint_latency_seconds",
                "pooled_client_endpoint_failures_total",
            ] {
                assert!(value(name).is_some(), "{endpoint} lacks {name}: {seen:#?}");
            }
        }
    })
    .await;
}

/// A pool named `name` over `server`, whose greeter methods are retried
/// on UNAVAILABLE up to 4 attempts, 10 ms apart.
async fn retrying_pool(
    name: &str,
    server: &pooled_client_tests::scripted::ScriptedGreeter,
) -> pooled_client::PoolBuilder {
    let config = pooled_client::ServiceConfig::from_json(
        r#"{"methodConfig": [{"name": [{"service": "helloworld.Greeter"}],
            "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.01s", "maxBackoff": "0.01s",
                            "backoffMultiplier": 1, "retryableStatusCodes": ["UNAVAILABLE"]}}]}"#,
    )
    .unwrap();
    pooled_client::Pool::builder()
        .name(name)
        .endpoint(server.serve().await)
        .service_config(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_recorded_under_grpcs_a96_names() {
    snapshotter();
    let _turn = ONE_AT_A_TIME.lock().await;
    bounded(Duration::from_secs(30), async {
        let server = pooled_client_tests::scripted::ScriptedGreeter::default();
        let pool = retrying_pool("a96", &server)
            .await
            .idle_timeout(Duration::from_millis(800))
            .build()
            .unwrap();
        let greeter = PooledGreeterClient::new(pool);
        greeter.say_hello(hello("twice/2/14", 0)).await.unwrap();
        greeter.say_hello(hello("never", 0)).await.unwrap();
        // Histograms are drained by every snapshot: keep their samples.
        let (mut retries, mut delays) = (Vec::new(), Vec::new());
        let started = std::time::Instant::now();
        let seen = loop {
            let now = metrics_of("a96");
            let samples = |name: &str| match now.get(name) {
                Some(DebugValue::Histogram(samples)) => samples.iter().map(|s| s.0).collect(),
                _ => Vec::new(),
            };
            retries.extend(samples("grpc.client.call.retries"));
            delays.extend(samples("grpc.client.call.retry_delay"));
            let counted = now.get("pooled_client_retries_total") == Some(&DebugValue::Counter(2));
            if counted || started.elapsed() > Duration::from_secs(5) {
                break now;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(retries, [2.0], "one call made two retries; the other none");
        assert_eq!(delays.len(), 1, "{delays:?}");
        assert_eq!(seen["pooled_client_retries_total"], DebugValue::Counter(2));
    })
    .await;
}

/// The series labelled `grpc.target = target`, by name and by their
/// `grpc.method` and `grpc.status` labels (empty when absent).
fn grpc_metrics_of(target: &str) -> HashMap<(String, String, String), DebugValue> {
    snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            key.key()
                .labels()
                .any(|l| l.key() == "grpc.target" && l.value() == target)
        })
        .map(|(key, _, _, value)| {
            let label = |name: &str| {
                key.key()
                    .labels()
                    .find(|l| l.key() == name)
                    .map_or_else(String::new, |l| l.value().to_owned())
            };
            let name = key.key().name().to_owned();
            let status = match name.as_str() {
                "grpc.subchannel.disconnections" => label("grpc.disconnect_error"),
                _ => label("grpc.status"),
            };
            ((name, label("grpc.method"), status), value)
        })
        .collect()
}

/// What successive snapshots showed of one `grpc.target`: the largest value
/// of each counter and gauge, and every histogram sample.
#[derive(Debug, Default)]
struct Observed(HashMap<(String, String, String), DebugValue>);

impl Observed {
    /// Takes snapshots until `done` holds (or 5 s pass).
    async fn until(&mut self, target: &str, done: impl Fn(&Self) -> bool) {
        let started = std::time::Instant::now();
        loop {
            for (key, value) in grpc_metrics_of(target) {
                match (self.0.get_mut(&key), value) {
                    (Some(DebugValue::Counter(old)), DebugValue::Counter(new)) => {
                        *old = (*old).max(new)
                    }
                    (Some(DebugValue::Gauge(old)), DebugValue::Gauge(new)) => {
                        *old = (*old).max(new)
                    }
                    (Some(DebugValue::Histogram(old)), DebugValue::Histogram(new)) => {
                        old.extend(new)
                    }
                    (_, value) => {
                        self.0.insert(key, value);
                    }
                }
            }
            if done(self) || started.elapsed() > Duration::from_secs(5) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn get(&self, name: &str, method: &str, status: &str) -> Option<&DebugValue> {
        self.0
            .get(&(name.to_owned(), method.to_owned(), status.to_owned()))
    }

    fn counter(&self, name: &str, method: &str, status: &str) -> u64 {
        match self.get(name, method, status) {
            Some(DebugValue::Counter(n)) => *n,
            _ => 0,
        }
    }

    fn gauge(&self, name: &str) -> f64 {
        match self.get(name, "", "") {
            Some(DebugValue::Gauge(value)) => value.0,
            _ => f64::NAN,
        }
    }

    fn samples(&self, name: &str, method: &str, status: &str) -> usize {
        match self.get(name, method, status) {
            Some(DebugValue::Histogram(samples)) => samples.len(),
            _ => 0,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_connections_are_recorded_under_grpcs_a66_and_a94_names() {
    snapshotter();
    let _turn = ONE_AT_A_TIME.lock().await;
    bounded(Duration::from_secs(30), async {
        let server = pooled_client_tests::scripted::ScriptedGreeter::default();
        let pool = retrying_pool("a66", &server).await.build().unwrap();
        let greeter = PooledGreeterClient::new(pool.clone());
        // Three attempts (two UNAVAILABLE, then OK) make one OK call.
        greeter.say_hello(hello("twice/2/14", 0)).await.unwrap();
        // A call past its deadline.
        let mut late = tonic::Request::new(HelloRequest {
            name: "late/stall".into(),
            delay_ms: 2_000,
            count: 0,
        });
        late.set_timeout(Duration::from_millis(100));
        let status = greeter.say_hello(late).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        // A method the server does not have, through a plain tonic client.
        let mut health = tonic_health::pb::health_client::HealthClient::new(pool.clone());
        let status = health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented);

        // Every snapshot drains the recorder: keep what each one shows.
        let mut seen = Observed::default();
        // Until a whole tick is seen: a snapshot taken while one publishes
        // can show the attempt counted and the gauge not yet set.
        seen.until("a66", |o| {
            o.counter("grpc.subchannel.connection_attempts_succeeded", "", "") >= 1
                && o.gauge("grpc.subchannel.open_connections") >= 1.0
        })
        .await;
        let hello = "helloworld.Greeter/SayHello";
        let check = "grpc.health.v1.Health/Check";
        assert_eq!(
            seen.counter("grpc.client.attempt.started", hello, ""),
            4,
            "{seen:#?}"
        );
        // (histogram, method, status, samples, what the count shows)
        let attempt = "grpc.client.attempt.duration";
        let call = "grpc.client.call.duration";
        for (name, method, status, samples, why) in [
            (attempt, hello, "UNAVAILABLE", 2, "the two retried attempts"),
            (attempt, hello, "OK", 1, "the attempt that succeeded"),
            (
                attempt,
                hello,
                "DEADLINE_EXCEEDED",
                1,
                "the attempt the deadline cut short",
            ),
            (call, hello, "OK", 1, "the retried call"),
            (
                call,
                hello,
                "DEADLINE_EXCEEDED",
                1,
                "the call past its deadline",
            ),
            (
                call,
                check,
                "UNIMPLEMENTED",
                1,
                "the plain tonic client's call",
            ),
            (
                call,
                hello,
                "UNAVAILABLE",
                0,
                "a retried attempt's status is not the call's",
            ),
        ] {
            assert_eq!(
                seen.samples(name, method, status),
                samples,
                "{name} {method} {status}: {why}: {seen:#?}"
            );
        }

        // A94: the pool's connection, and its end when the pool closes.
        assert_eq!(
            seen.counter("grpc.subchannel.connection_attempts_succeeded", "", ""),
            1
        );
        assert_eq!(
            seen.counter("grpc.subchannel.connection_attempts_failed", "", ""),
            0
        );
        assert_eq!(
            seen.gauge("grpc.subchannel.open_connections"),
            1.0,
            "{seen:#?}"
        );
        pool.close().await;
        let shutdown = "subchannel shutdown";
        seen.until("a66", |o| {
            o.counter("grpc.subchannel.disconnections", "", shutdown) >= 1
        })
        .await;
        assert_eq!(
            seen.counter("grpc.subchannel.disconnections", "", shutdown),
            1
        );
        assert_eq!(
            seen.counter("grpc.subchannel.disconnections", "", "unknown"),
            0
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_duration_has_its_unit_and_every_help_text_stands_alone() {
    let _turn = ONE_AT_A_TIME.lock().await;
    bounded(Duration::from_secs(30), async {
        let server = pooled_client_tests::scripted::ScriptedGreeter::default();
        let pool = retrying_pool("units", &server).await.build().unwrap();
        let greeter = PooledGreeterClient::new(pool.clone());
        greeter.say_hello(hello("twice/2/14", 0)).await.unwrap();
        let described: Vec<_> = snapshotter()
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, unit, help, _)| (key.key().name().to_owned(), unit, help))
            .collect();
        let names: std::collections::HashSet<&str> =
            described.iter().map(|(name, ..)| name.as_str()).collect();
        for expected in [
            "grpc.client.call.retry_delay",
            "grpc.client.attempt.duration",
            "pooled_client_endpoint_latency_seconds",
        ] {
            assert!(names.contains(expected), "{expected} not seen in {names:?}");
        }
        for (name, unit, help) in &described {
            let duration = name.ends_with("_seconds")
                || name.ends_with(".duration")
                || name.ends_with("_delay")
                || name.ends_with(".retry_delay");
            if duration {
                assert_eq!(*unit, Some(metrics::Unit::Seconds), "{name}");
            }
            let help = help.as_ref().map(|h| h.to_string()).unwrap_or_default();
            assert!(!help.is_empty(), "{name} has no help text");
            assert!(
                !help.starts_with("of those") && !help.starts_with(','),
                "{name}: {help:?} does not stand alone"
            );
        }
    })
    .await;
}

/// gRPC A78's xDS client instruments reach the facade, labelled with the
/// target, for a pool a control plane steers (feature `xds`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xds_pool_reports_grpc_a78s_instruments() {
    use envoy_types::pb::envoy::config::cluster::v3::cluster::LbPolicy;
    use pooled_client_tests::server::{ServerOptions, TestServer};
    use pooled_client_tests::xds::{self, ControlPlane, LocalityOf};
    bounded(Duration::from_secs(60), async {
        let _turn = ONE_AT_A_TIME.lock().await;
        // The recorder first: what is recorded before it is lost.
        let _ = snapshotter();
        let server = TestServer::start(ServerOptions::default()).await;
        let mut control_plane = ControlPlane::start().await;
        control_plane
            .set(&xds::service(
                "greeter",
                LbPolicy::RoundRobin,
                &[LocalityOf::healthy("a", &[server.addr])],
            ))
            .await
            .expect("snapshot taken");
        let pool = pooled_client::Pool::builder()
            .xds("xds:///greeter")
            .xds_bootstrap(control_plane.bootstrap())
            .build()
            .expect("valid settings");
        pool.ready().await.expect("the endpoint is up");
        // The recorder drains what it reads: add up the counts seen, and
        // keep whether the stream was ever seen up.
        let started = std::time::Instant::now();
        let (mut valid, mut connected) = (0, false);
        while (valid < 4 || !connected) && started.elapsed() < Duration::from_secs(10) {
            // Every series of the target: one a resource type.
            for (key, _, _, value) in snapshotter().snapshot().into_vec() {
                let ours = key
                    .key()
                    .labels()
                    .any(|l| l.key() == "grpc.target" && l.value() == "xds:///greeter");
                match (ours, key.key().name(), value) {
                    (true, "grpc.xds_client.resource_updates_valid", DebugValue::Counter(n)) => {
                        valid += n;
                    }
                    (true, "grpc.xds_client.connected", DebugValue::Gauge(up)) => {
                        connected |= up.into_inner() == 1.0;
                    }
                    _ => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(connected, "grpc.xds_client.connected never 1");
        assert!(
            valid >= 4,
            "the listener, route, cluster and endpoints counted: {valid}"
        );
    })
    .await;
}
