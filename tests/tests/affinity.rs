//! Affinity keys: calls that carry the same key go to the same connection
//! while it lives, even when its streams are all taken; other calls spread.

use std::collections::HashSet;
use std::time::Duration;

use pooled_client::{AffinityKey, Pool};
use pooled_client_tests::helloworld::PooledGreeterClient;
use pooled_client_tests::proxy::FaultProxy;
use pooled_client_tests::server::{ServerOptions, TestServer};
use pooled_client_tests::support::{bounded, concurrent_headers, wait_for_stats};

/// The client ports (one per connection) that `calls` concurrent calls
/// came from, with `key` if given.
async fn ports_used(
    greeter: &PooledGreeterClient,
    key: Option<AffinityKey>,
    calls: usize,
    delay_ms: u32,
) -> Vec<String> {
    concurrent_headers(greeter, calls, delay_ms, key, "peer-port").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_with_one_key_share_a_connection_until_it_breaks() {
    bounded(Duration::from_secs(30), async {
        // Four connections of four streams each.
        let server = TestServer::start(ServerOptions {
            max_concurrent_streams: Some(4),
        })
        .await;
        let proxy = FaultProxy::start(server.addr).await;
        let pool = Pool::builder()
            .endpoint(proxy.uri())
            .min_connections(4)
            .max_connections(4)
            .build()
            .unwrap();
        assert!(wait_for_stats(&pool, Duration::from_secs(5), |s| s.connections == 4).await);
        let greeter = PooledGreeterClient::new(pool.clone());

        // Without a key, 16 concurrent calls spread over the connections.
        let spread: HashSet<String> = ports_used(&greeter, None, 16, 50)
            .await
            .into_iter()
            .collect();
        assert_eq!(spread.len(), 4, "{spread:?}");

        // With a key, 12 concurrent calls (three times the connection's
        // limit) all go to one connection, and all succeed.
        let session = AffinityKey::new("session-1");
        let keyed: HashSet<String> = ports_used(&greeter, Some(session), 12, 50)
            .await
            .into_iter()
            .collect();
        assert_eq!(keyed.len(), 1, "{keyed:?}");
        let bound = keyed.iter().next().unwrap().clone();
        // ... and the same connection later.
        let again: HashSet<String> = ports_used(&greeter, Some(session), 3, 0)
            .await
            .into_iter()
            .collect();
        assert_eq!(again, keyed);
        assert_eq!(pool.stats().affinity_keys, 1);
        assert_eq!(pool.stats().in_flight, 0);

        // Another key is bound on its own, possibly elsewhere.
        let other: HashSet<String> = ports_used(&greeter, Some(AffinityKey::from_u64(7)), 6, 20)
            .await
            .into_iter()
            .collect();
        assert_eq!(other.len(), 1, "{other:?}");
        assert_eq!(pool.stats().affinity_keys, 2);

        // When the bound connection breaks, the key moves to a live one and
        // stays there.
        proxy.reset_all();
        assert!(
            wait_for_stats(&pool, Duration::from_secs(5), |s| s.evictions_total >= 4
                && s.connections == 4)
            .await,
            "{:?}",
            pool.stats()
        );
        let moved: HashSet<String> = ports_used(&greeter, Some(session), 8, 20)
            .await
            .into_iter()
            .collect();
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_ne!(moved, HashSet::from([bound]));
        let stays: HashSet<String> = ports_used(&greeter, Some(session), 4, 0)
            .await
            .into_iter()
            .collect();
        assert_eq!(stays, moved);
    })
    .await;
}
