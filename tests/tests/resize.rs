//! Shrinking when the load falls, and replacing connections at their age.

use std::time::{Duration, Instant};

use pooled_client::Pool;
use pooled_client_tests::helloworld::greeter_client::GreeterClient;
use pooled_client_tests::proxy::FaultProxy;
use pooled_client_tests::server::{ServerOptions, TestServer};
use pooled_client_tests::support::hello;
use pooled_client_tests::support::poll_stats;
use pooled_client_tests::support::server_and_pool;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spare_connections_close_one_per_idle_period_down_to_the_minimum() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let idle = Duration::from_millis(300);
        let (_server, pool) = server_and_pool(Some(4), |b| {
            b.min_connections(1)
                .max_connections(8)
                .idle_timeout(idle)
                .acquire_timeout(Duration::from_secs(10))
        })
        .await;
        // 16 slow calls at 4 streams per connection: the pool grows to 4.
        burst(&pool, 16, 200).await;
        let grown = pool.stats().connections;
        assert_eq!(grown, 4, "{:?}", pool.stats());

        // Idle now: the size steps down, never by more than one per period.
        let started = Instant::now();
        let mut sizes = vec![(Duration::ZERO, grown)];
        while pool.stats().connections > 1 && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = pool.stats().connections;
            if now != sizes.last().map_or(0, |s| s.1) {
                sizes.push((started.elapsed(), now));
            }
        }
        println!("sizes over time: {sizes:?}");
        assert_eq!(
            pool.stats().connections,
            1,
            "never below min_connections, and down to it"
        );
        assert_eq!(pool.stats().idle_closes_total, 3);
        for pair in sizes.windows(2) {
            assert_eq!(pair[0].1 - pair[1].1, 1, "one at a time: {sizes:?}");
        }
        // Hysteresis: the shrinks are spread over at least two further periods.
        let spread = sizes.last().unwrap().0 - sizes[1].0;
        assert!(spread >= idle * 2 - Duration::from_millis(100), "{sizes:?}");
        // And the pool still serves.
        GreeterClient::new(pool.clone())
            .say_hello(hello("resize", 0))
            .await
            .unwrap();
    })
    .await
    .expect("test exceeded its time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_replaced_at_their_lifetime_without_failing_calls() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (_server, pool) = server_and_pool(None, |b| {
            b.min_connections(1)
                .max_connection_lifetime(Duration::from_millis(300))
        })
        .await;
        let mut client = GreeterClient::new(pool.clone());
        let started = Instant::now();
        let mut calls = 0;
        let mut fewest = usize::MAX;
        while started.elapsed() < Duration::from_millis(1_500) {
            client
                .say_hello(hello("resize", 5))
                .await
                .expect("no call fails across replacements");
            calls += 1;
            // Make before break: the replacement is ready before the old one goes.
            fewest = fewest.min(pool.stats().connections);
        }
        assert!(
            fewest >= 1,
            "the pool had no connection during a replacement"
        );
        let stats = pool.stats();
        println!("{calls} calls; {stats:?}");
        assert!(stats.expired_total >= 2, "{stats:?}");
        assert!(stats.connects_total >= 3, "{stats:?}");
        assert!(stats.connections >= 1);
    })
    .await
    .expect("test exceeded its time limit");
}

/// `calls` concurrent calls of `delay_ms` each, all succeeding.
async fn burst(pool: &Pool, calls: usize, delay_ms: u32) {
    let tasks: Vec<_> = (0..calls)
        .map(|_| {
            let mut client = GreeterClient::new(pool.clone());
            tokio::spawn(async move { client.say_hello(hello("resize", delay_ms)).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shrinking_keeps_connections_spread_over_endpoints_without_reconnecting() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let options = ServerOptions {
            max_concurrent_streams: Some(2),
        };
        let server_a = TestServer::start(options).await;
        let server_b = TestServer::start(options).await;
        let proxy_a = FaultProxy::start(server_a.addr).await;
        let proxy_b = FaultProxy::start(server_b.addr).await;
        let open = || (proxy_a.open_connections(), proxy_b.open_connections());
        let pool = Pool::builder()
            .endpoint(proxy_a.uri())
            .min_connections(2)
            .max_connections(6)
            .idle_timeout(Duration::from_millis(300))
            .acquire_timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        // A alone grows to 4; B joins and takes one over; the next burst
        // grows both: A's first connections are the oldest, B's all young.
        burst(&pool, 8, 200).await;
        assert_eq!(open(), (4, 0));
        pool.add_endpoint(proxy_b.uri()).unwrap();
        assert!(poll_stats(&pool, Duration::from_secs(5), |_| open() == (3, 1)).await);
        burst(&pool, 12, 200).await;
        assert_eq!(pool.stats().connections, 6, "{:?}", pool.stats());
        assert!(open().1 >= 2, "{:?}", open());
        let opened = pool.stats().connects_total;

        // Idle: down to 2, one on each endpoint, closing only: taking the
        // youngest first would empty B, and moving a connection back to it
        // would reconnect.
        assert!(
            poll_stats(&pool, Duration::from_secs(10), |s| s.connections == 2
                && s.draining == 0
                && open().0 + open().1 == 2)
            .await,
            "{:?} {:?}",
            pool.stats(),
            open()
        );
        assert_eq!(open(), (1, 1));
        assert_eq!(
            pool.stats().connects_total,
            opened,
            "no connection was reopened"
        );
    })
    .await
    .expect("test exceeded its time limit");
}
