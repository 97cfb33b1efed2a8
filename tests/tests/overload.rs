//! F5, overload: in a test binary of its own, so that the memory it
//! measures is its own and not that of tests running beside it.

use std::time::{Duration, Instant};

use pooled_client::Pool;
use pooled_client_tests::helloworld::greeter_client::GreeterClient;
use pooled_client_tests::support::hello;
use pooled_client_tests::support::server_and_pool;
use pooled_client_tests::support::{self, wait_for_stats as wait_for};
use tonic::Code;

async fn bounded<F: std::future::Future>(test: F) -> F::Output {
    support::bounded(Duration::from_secs(120), test).await
}

fn resident_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_overload_is_rejected_fast_and_memory_stays_flat() {
    bounded(async {
        let (_server, pool) = server_and_pool(Some(2), |b| b.max_connections(1).max_waiters(4).acquire_timeout(Duration::from_secs(60))).await;
        let mut busy = Vec::new();
        for _ in 0..6 {
            let mut client = GreeterClient::new(pool.clone());
            busy.push(tokio::spawn(async move { client.say_hello(hello("overload", 20_000)).await }));
        }
        assert!(wait_for(&pool, Duration::from_secs(5), |s| s.in_flight == 2 && s.waiting == 4).await);

        let mut client = GreeterClient::new(pool.clone());
        let reject = |client: &mut GreeterClient<Pool>| {
            let mut client = client.clone();
            async move {
                let started = Instant::now();
                let status = client.say_hello(hello("overload", 0)).await.unwrap_err();
                assert_eq!(status.code(), Code::ResourceExhausted);
                started.elapsed()
            }
        };
        for _ in 0..1_000 {
            reject(&mut client).await;
        }
        // The record of latencies is written before the first reading, so
        // that its pages do not count as growth.
        let mut latencies = vec![Duration::ZERO; 100_000];
        let before = resident_kib();
        for latency in latencies.iter_mut() {
            *latency = reject(&mut client).await;
        }
        let after = resident_kib();
        latencies.sort();
        let p99 = latencies[latencies.len() * 99 / 100];
        let worst = latencies[latencies.len() - 1];
        println!(
            "F5: 100,000 rejections: p50 {:?}, p99 {p99:?}, worst {worst:?}; resident {before} KiB -> {after} KiB",
            latencies[latencies.len() / 2]
        );
        assert!(p99 < Duration::from_millis(5), "p99 rejection took {p99:?}");
        assert!(after.saturating_sub(before) < 8 * 1024, "memory grew from {before} KiB to {after} KiB");
        assert_eq!(pool.stats().waiting, 4);
        for call in busy {
            call.abort();
        }
    })
    .await;
}
