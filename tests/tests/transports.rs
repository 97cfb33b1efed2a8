//! Transports other than TCP: `unix:` endpoints, and a user's connector
//! reaching a server in memory with no listener at all.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use pooled_client::discovery::Change;
use pooled_client::{EndpointState, Pool};
use pooled_client_tests::helloworld::HelloRequest;
use pooled_client_tests::helloworld::greeter_client::GreeterClient;
use pooled_client_tests::memory::{InMemory, UnixServer};
use pooled_client_tests::support::{bounded, every_rpc_kind};
use tonic::Code;

const TEST_LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_endpoints_run_every_rpc_kind_in_both_spellings() {
    bounded(TEST_LIMIT, async {
        let server = UnixServer::start();
        let path = server.path().display().to_string();
        for uri in [format!("unix://{path}"), format!("unix:{path}")] {
            let pool = Pool::builder().endpoint(uri.clone()).build().unwrap();
            every_rpc_kind(&pool).await;
            assert_eq!(pool.stats().connects_total, 1, "{uri}");
            assert_eq!(pool.stats().connect_failures_total, 0, "{uri}");
            let endpoints = pool.endpoints();
            assert_eq!(endpoints[0].uri(), uri);
            assert_eq!(endpoints[0].connects_to, path);
            assert_eq!(endpoints[0].state, EndpointState::Ready);
            assert!(pool.remove_endpoint(uri.as_str()));
            assert!(pool.endpoints().is_empty());
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_unix_socket_is_unavailable_and_named() {
    bounded(TEST_LIMIT, async {
        let path =
            std::env::temp_dir().join(format!("pooled-client-absent-{}.sock", fastrand::u64(..)));
        let pool = Pool::builder()
            .endpoint(format!("unix://{}", path.display()))
            .build()
            .unwrap();
        let status = GreeterClient::new(pool)
            .say_hello(HelloRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(
            status.message().contains(&path.display().to_string()),
            "the socket's path is in the message: {status:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_memory_connector_runs_every_rpc_kind_with_no_listener() {
    bounded(TEST_LIMIT, async {
        let server = InMemory::start();
        let pool = Pool::builder()
            .endpoint("http://greeter.in-memory")
            .connector(server.connector())
            .build()
            .unwrap();
        every_rpc_kind(&pool).await;
        let dialed = server.dialed.lock().unwrap().clone();
        assert_eq!(dialed.len(), 1, "one connection: {dialed:?}");
        assert_eq!(dialed[0].host(), Some("greeter.in-memory"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_is_given_each_targets_address_and_grows_like_tcp() {
    bounded(TEST_LIMIT, async {
        let server = InMemory::start();
        let at = |port: u16| {
            pooled_client::discovery::Target::new("http://orders.internal")
                .connect_to(std::net::SocketAddr::from(([10, 0, 0, 1], port)))
        };
        let targets = futures_util::stream::iter(
            [1, 2].map(|port| Ok::<_, Infallible>(Change::Insert(port, at(port)))),
        );
        let pool = Pool::builder()
            .connector(server.connector())
            .discovery(targets)
            .max_streams_per_connection(2)
            .max_connections(8)
            .build()
            .unwrap();
        pool.ready().await.unwrap();
        // Eight slow calls at two streams per connection need four
        // connections; all of them come from the connector.
        let started = Instant::now();
        let calls: Vec<_> = (0..8)
            .map(|i| {
                let mut client = GreeterClient::new(pool.clone());
                tokio::spawn(async move {
                    client
                        .say_hello(HelloRequest {
                            name: format!("{i}"),
                            delay_ms: 200,
                            count: 0,
                        })
                        .await
                })
            })
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
        let dialed = server.dialed.lock().unwrap().clone();
        let mut authorities: Vec<String> = dialed
            .iter()
            .map(|u| u.authority().unwrap().to_string())
            .collect();
        authorities.sort();
        authorities.dedup();
        assert_eq!(authorities, ["10.0.0.1:1", "10.0.0.1:2"], "{dialed:?}");
        assert!(dialed.len() >= 4, "{dialed:?}");
        println!(
            "8 calls over {} in-memory connections in {:?}",
            dialed.len(),
            started.elapsed()
        );
    })
    .await;
}
