//! A server process killed and started again: calls fail fast with
//! UNAVAILABLE meanwhile, and succeed again soon after it is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pooled_client::Pool;
use pooled_client_tests::helloworld::HelloRequest;
use pooled_client_tests::helloworld::greeter_client::GreeterClient;
use pooled_client_tests::support::spawn_listening;
use tokio::process::{Child, Command};
use tonic::Code;

/// Starts the greeter server process on `addr` and waits for it to listen.
async fn start_server(addr: &str) -> (Child, String) {
    spawn_listening(Command::new(env!("CARGO_BIN_EXE_greeter-server")).arg(addr)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_fast_during_an_outage_and_recover_after_restart() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (mut server, addr) = start_server("127.0.0.1:0").await;
        let pool = Pool::builder()
            .endpoint(format!("http://{addr}"))
            .build()
            .unwrap();
        let mut client = GreeterClient::new(pool.clone());
        let request = || HelloRequest {
            name: "x".into(),
            delay_ms: 0,
            count: 0,
        };
        client.say_hello(request()).await.expect("server is up");

        server.kill().await.expect("SIGKILL the server");
        // Every call during the outage fails, with UNAVAILABLE, and none hangs.
        for _ in 0..20 {
            let started = Instant::now();
            let error = client.say_hello(request()).await.unwrap_err();
            assert_eq!(error.code(), Code::Unavailable, "{error:?}");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "a call hung for {:?}",
                started.elapsed()
            );
        }

        let (_server, _) = start_server(&addr).await;
        let back = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            match client.say_hello(request()).await {
                Ok(_) => break,
                Err(error) => {
                    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
                    assert!(attempts < 1_000, "no success within {attempts} attempts");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        let recovery = back.elapsed();
        println!("first success {recovery:?} after the server was back ({attempts} attempts)");
        // The default backoff starts at 1 s with 20 % jitter.
        assert!(
            recovery < Duration::from_millis(1_500),
            "recovery took {recovery:?}"
        );
        let stats = pool.stats();
        assert_eq!(stats.in_flight, 0);
        assert!(stats.evictions_total >= 1, "{stats:?}");
    })
    .await
    .expect("test exceeded its time limit");
}

/// A call that fails at once (nothing can be reached, and the pool backs
/// off) still gives its thread back now and then, as tokio's own resources
/// do. A caller that retries such calls at once must not starve the tasks
/// beside it, among them the pool's own reconnection.
#[tokio::test(flavor = "current_thread")]
async fn a_caller_retrying_at_once_during_an_outage_leaves_its_thread_to_other_tasks() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let pool = Pool::builder()
        .endpoint(format!("http://{closed}"))
        // Long enough that no attempt starts (and no call waits) meanwhile.
        .backoff(pooled_client::Backoff::new(
            Duration::from_secs(60),
            1.6,
            0.2,
            Duration::from_secs(60),
        ))
        .build()
        .unwrap();
    let mut client = GreeterClient::new(pool);
    let request = || HelloRequest {
        name: "x".into(),
        delay_ms: 0,
        count: 0,
    };
    // The first call waits for the attempt, which is refused.
    let error = client.say_hello(request()).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");

    let ran = Arc::new(AtomicBool::new(false));
    let beside = ran.clone();
    tokio::spawn(async move { beside.store(true, Ordering::SeqCst) });
    // Bounded by the clock and a count, not by a timer: a starved
    // runtime fires none.
    let started = Instant::now();
    let mut calls = 0;
    while !ran.load(Ordering::SeqCst) {
        let error = client.say_hello(request()).await.unwrap_err();
        assert_eq!(error.code(), Code::Unavailable, "{error:?}");
        calls += 1;
        assert!(
            calls < 20_000 && started.elapsed() < Duration::from_secs(20),
            "the task beside the caller did not run in {calls} failed calls ({:?})",
            started.elapsed()
        );
    }
    println!("the task beside ran after {calls} failed calls");
}
