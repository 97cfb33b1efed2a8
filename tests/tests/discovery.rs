//! Endpoints that change while the pool runs: added and removed by hand, and
//! fed by a discovery stream of tower `Change`s.

use std::convert::Infallible;
use std::time::Duration;

use pooled_client::Pool;
use pooled_client::discovery::{Change, Target};
use pooled_client_tests::helloworld::PooledGreeterClient;
use pooled_client_tests::proxy::FaultProxy;
use pooled_client_tests::server::{ServerOptions, TestServer};
use pooled_client_tests::support::hello;
use pooled_client_tests::support::poll_stats;
use pooled_client_tests::support::{bounded, endpoint_names, wait_for_stats};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

/// A server behind a proxy that counts its connections.
async fn counted_server() -> (TestServer, FaultProxy) {
    let server = TestServer::start(ServerOptions::default()).await;
    let proxy = FaultProxy::start(server.addr).await;
    (server, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_endpoint_takes_connections_and_a_removed_one_drains() {
    bounded(Duration::from_secs(30), async {
        let (_a, proxy_a) = counted_server().await;
        let (_b, proxy_b) = counted_server().await;
        let pool = Pool::builder()
            .endpoint(proxy_a.uri())
            .min_connections(2)
            .idle_timeout(Duration::from_millis(400))
            .build()
            .unwrap();
        let greeter = PooledGreeterClient::new(pool.clone());
        assert!(wait_for_stats(&pool, Duration::from_secs(5), |s| s.connections == 2).await);
        assert_eq!(proxy_a.open_connections(), 2);

        // B joins: the pool moves one connection to it.
        assert!(pool.add_endpoint(proxy_b.uri()).unwrap());
        assert!(!pool.add_endpoint(proxy_b.uri()).unwrap(), "added twice");
        assert_eq!(endpoint_names(&pool), vec![proxy_a.uri(), proxy_b.uri()]);
        assert!(
            poll_stats(&pool, Duration::from_secs(5), |s| s.connections == 2
                && proxy_a.open_connections() == 1
                && proxy_b.open_connections() == 1)
            .await,
            "{:?}, A {} B {}",
            pool.stats(),
            proxy_a.open_connections(),
            proxy_b.open_connections()
        );

        // A call in flight on A when A is removed finishes; A then closes.
        let slow: Vec<_> = (0..4)
            .map(|_| {
                let greeter = greeter.clone();
                tokio::spawn(async move { greeter.say_hello(hello("discovery", 300)).await })
            })
            .collect();
        assert!(wait_for_stats(&pool, Duration::from_secs(5), |s| s.in_flight == 4).await);
        assert!(pool.remove_endpoint(proxy_a.uri()));
        assert!(!pool.remove_endpoint(proxy_a.uri()), "removed twice");
        assert_eq!(endpoint_names(&pool), vec![proxy_b.uri()]);
        // New calls go to B meanwhile.
        for _ in 0..20 {
            greeter.say_hello(hello("discovery", 0)).await.unwrap();
        }
        for call in slow {
            call.await
                .unwrap()
                .expect("a call in flight on a removed endpoint finishes");
        }
        assert!(
            poll_stats(&pool, Duration::from_secs(5), |s| s.draining == 0
                && proxy_a.open_connections() == 0)
            .await,
            "{:?}, A {}",
            pool.stats(),
            proxy_a.open_connections()
        );
        // The pool keeps its minimum, now all on B.
        assert!(
            poll_stats(&pool, Duration::from_secs(5), |s| s.connections == 2
                && proxy_b.open_connections() == 2)
            .await
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_stream_adds_replaces_and_removes_endpoints() {
    bounded(Duration::from_secs(30), async {
        let (_a, proxy_a) = counted_server().await;
        let (_b, proxy_b) = counted_server().await;
        let (changes, rx) = mpsc::unbounded_channel::<Result<Change<&str, Target>, Infallible>>();
        // No endpoint yet: the pool is built on the discovery source alone.
        let pool = Pool::builder()
            .discovery(UnboundedReceiverStream::new(rx))
            .acquire_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let greeter = PooledGreeterClient::new(pool.clone());
        assert!(endpoint_names(&pool).is_empty());

        // A call made before any endpoint is known waits for one.
        let early = {
            let greeter = greeter.clone();
            tokio::spawn(async move { greeter.say_hello(hello("discovery", 0)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        changes
            .send(Ok(Change::Insert("pod-1", Target::from(proxy_a.uri()))))
            .unwrap();
        early
            .await
            .unwrap()
            .expect("the waiting call used the discovered endpoint");
        assert_eq!(endpoint_names(&pool), vec![proxy_a.uri()]);

        // The same key with a new address replaces the endpoint.
        changes
            .send(Ok(Change::Insert("pod-1", Target::from(proxy_b.uri()))))
            .unwrap();
        assert!(
            poll_stats(&pool, Duration::from_secs(5), |_| endpoint_names(&pool)
                == vec![proxy_b.uri()]
                && proxy_a.open_connections() == 0)
            .await,
            "{:?}",
            endpoint_names(&pool)
        );
        greeter.say_hello(hello("discovery", 0)).await.unwrap();
        assert!(proxy_b.accepted() >= 1);

        // A target with an address connects there but keeps its name.
        changes
            .send(Ok(Change::Insert(
                "pod-2",
                Target::new("http://greeter.test").connect_to(proxy_a.addr),
            )))
            .unwrap();
        let expected = format!("http://greeter.test at {}", proxy_a.addr);
        assert!(
            wait_for_stats(&pool, Duration::from_secs(5), |_| endpoint_names(&pool)
                .contains(&expected))
            .await
        );

        changes.send(Ok(Change::Remove("pod-1"))).unwrap();
        assert!(
            wait_for_stats(&pool, Duration::from_secs(5), |_| endpoint_names(&pool)
                == vec![expected.clone()])
            .await,
            "{:?}",
            endpoint_names(&pool)
        );
        for _ in 0..10 {
            greeter.say_hello(hello("discovery", 0)).await.unwrap();
        }
        assert!(proxy_a.open_connections() >= 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_endpoint_removed_calls_fail_with_a_clear_status() {
    bounded(Duration::from_secs(30), async {
        let (_a, proxy_a) = counted_server().await;
        let pool = Pool::builder()
            .endpoint(proxy_a.uri())
            .acquire_timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let greeter = PooledGreeterClient::new(pool.clone());
        greeter.say_hello(hello("discovery", 0)).await.unwrap();
        assert!(pool.remove_endpoint(proxy_a.uri()));
        let status = greeter.say_hello(hello("discovery", 0)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(status.message().contains("no endpoints"), "{status:?}");
    })
    .await;
}

/// A stream of changes that records when the pool drops it.
struct Watched {
    inner: UnboundedReceiverStream<Result<Change<&'static str, Target>, std::io::Error>>,
    dropped: Option<tokio::sync::oneshot::Sender<()>>,
}

impl futures_util::Stream for Watched {
    type Item = Result<Change<&'static str, Target>, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.inner).poll_next(cx)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Some(dropped) = self.dropped.take() {
            let _ = dropped.send(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_errors_and_invalid_targets_leave_endpoints_alone_and_the_source_ends_with_the_pool()
{
    bounded(Duration::from_secs(30), async {
        let (_a, proxy_a) = counted_server().await;
        let (changes, rx) = mpsc::unbounded_channel();
        let (dropped_tx, dropped) = tokio::sync::oneshot::channel();
        let pool = Pool::builder()
            .discovery(Watched {
                inner: UnboundedReceiverStream::new(rx),
                dropped: Some(dropped_tx),
            })
            .build()
            .unwrap();
        let greeter = PooledGreeterClient::new(pool.clone());
        changes
            .send(Ok(Change::Insert("a", Target::from(proxy_a.uri()))))
            .unwrap();
        greeter.say_hello(hello("discovery", 0)).await.unwrap();

        // The watcher fails, then sends nonsense: the endpoint stays.
        changes
            .send(Err(std::io::Error::other("watch connection lost")))
            .unwrap();
        changes
            .send(Ok(Change::Insert("b", Target::from("not a uri"))))
            .unwrap();
        changes.send(Ok(Change::Remove("never inserted"))).unwrap();
        // A last, valid change shows that all before it were applied.
        let by_address = Target::new("http://greeter.test").connect_to(proxy_a.addr);
        changes.send(Ok(Change::Insert("c", by_address))).unwrap();
        assert!(wait_for_stats(&pool, Duration::from_secs(5), |s| s.endpoints == 2).await);
        assert_eq!(
            endpoint_names(&pool),
            vec![
                proxy_a.uri(),
                format!("http://greeter.test at {}", proxy_a.addr)
            ]
        );
        greeter.say_hello(hello("discovery", 0)).await.unwrap();

        // Dropping the last handle to the pool stops the source, although
        // it never ended.
        drop(greeter);
        drop(pool);
        tokio::time::timeout(Duration::from_secs(5), dropped)
            .await
            .expect("the discovery source outlived its pool")
            .unwrap();
        drop(changes);
    })
    .await;
}
