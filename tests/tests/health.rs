//! Health checking with grpc.health.v1: an endpoint whose server says
//! NOT_SERVING leaves the rotation and comes back on SERVING; against
//! tonic-health's server and against Python grpcio's.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pooled_client::{Backoff, Pool};
use pooled_client_tests::helloworld::PooledGreeterClient;
use pooled_client_tests::helloworld::greeter_server::GreeterServer;
use pooled_client_tests::proxy::FaultProxy;
use pooled_client_tests::server::{GreeterService, TestServer};
use pooled_client_tests::support::hello;
use pooled_client_tests::support::poll_stats;
use pooled_client_tests::support::{
    bounded, python_with_grpcio, server_and_pool, spawn_listening_with_output, wait_for_stats,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdout, Command};
use tonic_health::ServingStatus;

const GREETER: &str = "helloworld.Greeter";

/// Backoff short enough for a test to see an endpoint come back.
fn quick_backoff() -> Backoff {
    Backoff::new(
        Duration::from_millis(100),
        1.0,
        0.0,
        Duration::from_millis(100),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_saying_not_serving_leaves_the_rotation_and_returns_on_serving() {
    bounded(Duration::from_secs(30), async {
        let (server_a, reporter_a) = TestServer::start_with_health().await;
        let (server_b, _reporter_b) = TestServer::start_with_health().await;
        let proxy_a = FaultProxy::start(server_a.addr).await;
        let proxy_b = FaultProxy::start(server_b.addr).await;
        let interval = Duration::from_millis(100);
        let pool = Pool::builder()
            .endpoint(proxy_a.uri())
            .endpoint(proxy_b.uri())
            .min_connections(2)
            .health_check(GREETER, interval)
            .backoff(quick_backoff())
            .build()
            .unwrap();
        let greeter = PooledGreeterClient::new(pool.clone());
        assert!(
            wait_for_stats(&pool, Duration::from_secs(5), |s| s.connections == 2).await,
            "{:?}",
            pool.stats()
        );
        assert_eq!(proxy_a.open_connections(), 1);

        // A says NOT_SERVING: its connection leaves within about one interval.
        let said = Instant::now();
        reporter_a
            .set_not_serving::<GreeterServer<GreeterService>>()
            .await;
        assert!(
            wait_for_stats(&pool, Duration::from_secs(5), |s| s.unhealthy_total >= 1).await,
            "{:?}",
            pool.stats()
        );
        let left_after = said.elapsed();
        println!("left the rotation {left_after:?} after NOT_SERVING (interval {interval:?})");
        assert!(left_after < interval * 3, "took {left_after:?}");

        // While A is not serving, every call goes to B, and none fails.
        let accepted_a = proxy_a.accepted();
        for _ in 0..50 {
            greeter.say_hello(hello("health", 0)).await.unwrap();
        }
        let stats = pool.stats();
        assert!(stats.connections >= 1, "{stats:?}");
        // A new connection to A may be attempted, but it never joins.
        assert!(
            poll_stats(&pool, Duration::from_secs(2), |_| proxy_a
                .open_connections()
                == 0)
            .await
                || proxy_a.accepted() > accepted_a,
            "A's connection stayed open"
        );

        // A serves again: it rejoins after the backoff.
        let back = Instant::now();
        reporter_a
            .set_serving::<GreeterServer<GreeterService>>()
            .await;
        let balanced = || proxy_a.open_connections() == 1 && proxy_b.open_connections() == 1;
        assert!(
            poll_stats(&pool, Duration::from_secs(5), |s| s.connections == 2
                && balanced())
            .await,
            "{:?}, A {} B {}",
            pool.stats(),
            proxy_a.open_connections(),
            proxy_b.open_connections()
        );
        println!("rejoined {:?} after SERVING", back.elapsed());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_joins_only_once_its_server_says_serving() {
    bounded(Duration::from_secs(30), async {
        let (server, reporter) = TestServer::start_with_health().await;
        reporter
            .set_service_status(GREETER, ServingStatus::NotServing)
            .await;
        let pool = Pool::builder()
            .endpoint(server.uri())
            .health_check(GREETER, Duration::from_millis(100))
            .backoff(quick_backoff())
            .build()
            .unwrap();
        let error = pool.ready().await.unwrap_err();
        let message = format!("{error}");
        println!("{message}");
        assert!(message.contains("NOT_SERVING"), "{message}");
        let status = PooledGreeterClient::new(pool.clone())
            .say_hello(hello("health", 0))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(status.message().contains("NOT_SERVING"), "{status:?}");

        reporter
            .set_service_status(GREETER, ServingStatus::Serving)
            .await;
        assert!(wait_for_stats(&pool, Duration::from_secs(5), |s| s.connections == 1).await);
        PooledGreeterClient::new(pool.clone())
            .say_hello(hello("health", 0))
            .await
            .unwrap();
    })
    .await;
}

/// Sets the Python server's status and waits for its acknowledgement.
async fn set_python_status(
    stdin: &mut tokio::process::ChildStdin,
    stdout: &mut BufReader<ChildStdout>,
    status: &str,
) {
    stdin
        .write_all(format!("{status}\n").as_bytes())
        .await
        .unwrap();
    stdin.flush().await.unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).await.unwrap();
    assert_eq!(line.trim(), format!("set {status}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_work_against_a_grpcio_health_server() {
    let python = tokio::task::spawn_blocking(python_with_grpcio)
        .await
        .unwrap();
    bounded(Duration::from_secs(60), async {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/health_server.py");
        let mut command = Command::new(python);
        command
            .arg(script)
            .arg("127.0.0.1:0")
            .arg(GREETER)
            .stdin(std::process::Stdio::piped());
        let (mut child, addr, mut stdout) = spawn_listening_with_output(&mut command).await;
        let mut stdin = child.stdin.take().unwrap();
        let pool = Pool::builder()
            .endpoint(format!("http://{addr}"))
            .health_check(GREETER, Duration::from_millis(100))
            .backoff(quick_backoff())
            .build()
            .unwrap();

        // NOT_SERVING from the start: no connection joins.
        let error = pool.ready().await.unwrap_err();
        assert!(format!("{error}").contains("NOT_SERVING"), "{error}");

        set_python_status(&mut stdin, &mut stdout, "SERVING").await;
        assert!(wait_for_stats(&pool, Duration::from_secs(5), |s| s.connections == 1).await);

        set_python_status(&mut stdin, &mut stdout, "NOT_SERVING").await;
        assert!(
            wait_for_stats(&pool, Duration::from_secs(5), |s| s.connections == 0
                && s.unhealthy_total == 1)
            .await,
            "{:?}",
            pool.stats()
        );

        set_python_status(&mut stdin, &mut stdout, "SERVING").await;
        assert!(
            wait_for_stats(&pool, Duration::from_secs(5), |s| s.connections == 1).await,
            "{:?}",
            pool.stats()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_the_health_service_counts_as_serving() {
    bounded(Duration::from_secs(20), async {
        let (_server, pool) =
            server_and_pool(None, |b| b.health_check(GREETER, Duration::from_millis(50))).await;
        let greeter = PooledGreeterClient::new(pool.clone());
        for _ in 0..5 {
            greeter.say_hello(hello("health", 0)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stats = pool.stats();
        assert_eq!(stats.unhealthy_total, 0, "{stats:?}");
        assert_eq!(stats.connects_total, 1, "{stats:?}");
    })
    .await;
}
