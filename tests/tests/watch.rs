//! `Pool::watch` and `Pool::wait_for`: waiting for the pool's state to
//! change without polling. Each wait is bounded; a change the pool did not
//! announce leaves the wait asleep and fails the test at its bound.

use std::time::Duration;

use pooled_client::{Backoff, EndpointState, Pool};
use pooled_client_tests::helloworld::PooledGreeterClient;
use pooled_client_tests::proxy::FaultProxy;
use pooled_client_tests::server::{ServerOptions, TestServer};
use pooled_client_tests::support::{bounded, hello};

/// Long enough for a busy machine; a missed wake-up waits for ever.
const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_wakes_as_calls_start_and_end() {
    bounded(Duration::from_secs(30), async {
        let server = TestServer::start(ServerOptions::default()).await;
        let pool = Pool::builder().endpoint(server.uri()).build().unwrap();
        let stats = tokio::time::timeout(LIMIT, pool.wait_for(|s| s.connections >= 1))
            .await
            .expect("the first connection is announced");
        assert!(stats.connections >= 1);
        let greeter = PooledGreeterClient::new(pool.clone());
        let calls: Vec<_> = (0..3)
            .map(|i| {
                let greeter = greeter.clone();
                tokio::spawn(async move { greeter.say_hello(hello(&format!("{i}"), 300)).await })
            })
            .collect();
        let busy = tokio::time::timeout(LIMIT, pool.wait_for(|s| s.in_flight == 3))
            .await
            .expect("calls starting are announced to a watcher");
        assert_eq!(busy.in_flight, 3);
        let idle = tokio::time::timeout(LIMIT, pool.wait_for(|s| s.in_flight == 0))
            .await
            .expect("calls ending are announced to a watcher");
        assert_eq!(idle.in_flight, 0);
        for call in calls {
            call.await.unwrap().expect("the call succeeds");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_wakes_when_an_endpoint_fails_and_when_it_comes_back() {
    bounded(Duration::from_secs(30), async {
        let (server, second) = (
            TestServer::start(ServerOptions::default()).await,
            TestServer::start(ServerOptions::default()).await,
        );
        // The second server behind a proxy that refuses connections for now.
        let proxy = FaultProxy::start(second.addr).await;
        proxy.set_refuse(true);
        let pool = Pool::builder()
            .endpoint(server.uri())
            .endpoint(proxy.uri())
            .min_connections(2)
            .backoff(Backoff::new(
                Duration::from_millis(200),
                1.0,
                0.0,
                Duration::from_millis(200),
            ))
            .build()
            .unwrap();
        let state_of_second = |pool: &Pool| {
            pool.endpoints()
                .into_iter()
                .find(|e| e.target.uri() == proxy.uri())
                .map(|e| e.state)
        };
        let mut watch = pool.watch();
        tokio::time::timeout(LIMIT, async {
            while state_of_second(&pool) != Some(EndpointState::BackingOff) {
                watch.changed().await;
            }
        })
        .await
        .expect("the failed attempt is announced");
        // It comes back: the next attempt, after the backoff, connects.
        proxy.set_refuse(false);
        tokio::time::timeout(LIMIT, async {
            while state_of_second(&pool) != Some(EndpointState::Ready) {
                watch.changed().await;
            }
        })
        .await
        .expect("the endpoint's return is announced");
    })
    .await;
}
