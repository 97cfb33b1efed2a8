//! Every pooled method the build helper generates, called against a real
//! tonic server; and the attribute written by hand on a client from
//! another crate.

use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use pooled_client::{Pool, ServerStreaming, Unary, pooled_client};
use pooled_client_tests::a::b::v1::catalog_server::{Catalog, CatalogServer};
use pooled_client_tests::a::b::v1::inventory_server::{Inventory, InventoryServer};
use pooled_client_tests::a::b::v1::{ItemRef, PooledCatalogClient, PooledInventoryClient, Total};
use pooled_client_tests::common::v1::Item;
use pooled_client_tests::helloworld::{HelloRequest, PooledGreeterClient};
use pooled_client_tests::server::{ServerOptions, TestServer, serve_router};
use pooled_client_tests::support::server_and_pool;
use tonic::transport::Server;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

const TEST_LIMIT: Duration = Duration::from_secs(60);

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[derive(Clone, Copy)]
struct Shop;

fn item(id: &str) -> Item {
    Item {
        id: id.to_owned(),
        created: Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
    }
}

#[tonic::async_trait]
impl Catalog for Shop {
    async fn r#type(&self, request: Request<ItemRef>) -> Result<Response<Item>, Status> {
        Ok(Response::new(item(&request.into_inner().id)))
    }

    async fn r#match(&self, _: Request<()>) -> Result<Response<prost_types::Timestamp>, Status> {
        Ok(Response::new(prost_types::Timestamp {
            seconds: 42,
            nanos: 7,
        }))
    }

    type ListStream = BoxStream<Item>;

    async fn list(&self, _: Request<()>) -> Result<Response<BoxStream<Item>>, Status> {
        let items = ["a", "b", "c"].map(|id| Ok(item(id)));
        Ok(Response::new(Box::pin(futures_util::stream::iter(items))))
    }

    async fn legacy(&self, request: Request<ItemRef>) -> Result<Response<ItemRef>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

#[tonic::async_trait]
impl Inventory for Shop {
    async fn count(&self, request: Request<Streaming<ItemRef>>) -> Result<Response<Total>, Status> {
        let count = request.into_inner().count().await as u64;
        Ok(Response::new(Total { count }))
    }

    type SyncStream = BoxStream<Total>;

    async fn sync(
        &self,
        request: Request<Streaming<ItemRef>>,
    ) -> Result<Response<BoxStream<Total>>, Status> {
        let totals = request.into_inner().enumerate().map(|(i, item)| {
            item.map(|_| Total {
                count: i as u64 + 1,
            })
        });
        Ok(Response::new(Box::pin(totals)))
    }
}

fn refs(ids: &[&str]) -> impl Stream<Item = ItemRef> + Send + 'static {
    let refs: Vec<ItemRef> = ids
        .iter()
        .map(|id| ItemRef {
            id: (*id).to_owned(),
        })
        .collect();
    futures_util::stream::iter(refs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_generated_method_reaches_a_real_server() {
    tokio::time::timeout(TEST_LIMIT, async {
        let uri = serve_router(
            Server::builder()
                .add_service(CatalogServer::new(Shop))
                .add_service(InventoryServer::new(Shop)),
        )
        .await;
        let pool = Pool::builder().endpoint(uri).build().unwrap();
        let catalog = PooledCatalogClient::new(pool.clone());
        let inventory = PooledInventoryClient::new(pool.clone());

        // A keyword-named unary RPC across packages.
        let found = catalog
            .r#type(ItemRef { id: "x".into() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(found, item("x"));
        // google.protobuf.Empty in, Timestamp out.
        let time = catalog.r#match(()).await.unwrap().into_inner();
        assert_eq!((time.seconds, time.nanos), (42, 7));
        // Server streaming.
        let ids: Vec<String> = catalog
            .list(())
            .await
            .unwrap()
            .into_inner()
            .map(|item| item.unwrap().id)
            .collect()
            .await;
        assert_eq!(ids, ["a", "b", "c"]);
        // A deprecated RPC still works (and warns where it is called).
        #[allow(deprecated)]
        let echoed = catalog.legacy(ItemRef { id: "old".into() }).await.unwrap();
        assert_eq!(echoed.into_inner().id, "old");
        // Client streaming, on the second service of the same file.
        let total = inventory.count(refs(&["1", "2", "3", "4"])).await.unwrap();
        assert_eq!(total.into_inner().count, 4);
        // Bidirectional streaming.
        let totals: Vec<u64> = inventory
            .sync(refs(&["p", "q"]))
            .await
            .unwrap()
            .into_inner()
            .map(|total| total.unwrap().count)
            .collect()
            .await;
        assert_eq!(totals, [1, 2]);

        assert_eq!(pool.stats().in_flight, 0);
    })
    .await
    .expect("test exceeded its time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_greeter_client_is_shared_across_tasks() {
    tokio::time::timeout(TEST_LIMIT, async {
        let server = TestServer::start(ServerOptions::default()).await;
        let greeter = PooledGreeterClient::connect(server.uri())
            .await
            .unwrap()
            .max_decoding_message_size(1 << 20)
            .with_timeout(Duration::from_secs(5));
        fn assert_shareable<T: Clone + Send + Sync + std::fmt::Debug + 'static>(_: &T) {}
        assert_shareable(&greeter);

        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let greeter = greeter.clone();
                tokio::spawn(async move {
                    let request = HelloRequest {
                        name: format!("{i}"),
                        delay_ms: 5,
                        count: 2,
                    };
                    let unary = greeter.say_hello(request.clone()).await.unwrap();
                    assert_eq!(unary.into_inner().message, format!("Hello {i}"));
                    let streamed = greeter
                        .say_hello_stream(request.clone())
                        .await
                        .unwrap()
                        .into_inner()
                        .count()
                        .await;
                    assert_eq!(streamed, 2);
                    let collected = greeter
                        .collect_hellos(futures_util::stream::iter(vec![
                            request.clone(),
                            request.clone(),
                        ]))
                        .await
                        .unwrap();
                    assert_eq!(collected.into_inner().message, format!("Hello {i}, {i}"));
                    let chatted = greeter
                        .chat(futures_util::stream::iter(vec![request]))
                        .await
                        .unwrap()
                        .into_inner()
                        .count()
                        .await;
                    assert_eq!(chatted, 1);
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(greeter.pool().stats().in_flight, 0);
    })
    .await
    .expect("test exceeded its time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_timeout_applies_when_the_request_sets_none() {
    tokio::time::timeout(TEST_LIMIT, async {
        let (_server, pool) = server_and_pool(None, |b| b).await;
        let greeter = PooledGreeterClient::new(pool).with_timeout(Duration::from_millis(50));
        let slow = HelloRequest {
            name: "slow".into(),
            delay_ms: 2_000,
            count: 0,
        };
        let error = greeter.say_hello(slow.clone()).await.unwrap_err();
        // The client's deadline fires, or the server's first: tonic's server
        // enforces the `grpc-timeout` it received and answers CANCELLED.
        let server_timed_out =
            error.code() == Code::Cancelled && error.message().contains("Timeout");
        assert!(
            error.code() == Code::DeadlineExceeded || server_timed_out,
            "{error:?}"
        );
        // A request's own deadline wins over the client's default.
        let mut request = Request::new(HelloRequest {
            delay_ms: 100,
            ..slow
        });
        request.set_timeout(Duration::from_secs(5));
        greeter
            .say_hello(request)
            .await
            .expect("its own, longer deadline");
    })
    .await
    .expect("test exceeded its time limit");
}

/// Pooled client for the standard health service, written by hand over a
/// client from another crate.
#[pooled_client(client = health_client::HealthClient)]
pub struct PooledHealthClient {
    /// Asks whether a service is serving.
    check: Unary<HealthCheckRequest, HealthCheckResponse>,
    /// Streams a service's status as it changes.
    watch: ServerStreaming<HealthCheckRequest, HealthCheckResponse>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_written_attribute_pools_tonic_healths_client() {
    tokio::time::timeout(TEST_LIMIT, async {
        let (reporter, health_service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("shop", tonic_health::ServingStatus::Serving)
            .await;
        let uri = serve_router(Server::builder().add_service(health_service)).await;
        let health = PooledHealthClient::new(Pool::builder().endpoint(uri).build().unwrap());

        let ask = || HealthCheckRequest {
            service: "shop".into(),
        };
        let status = health.check(ask()).await.unwrap().into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32);

        let mut watch = health.watch(ask()).await.unwrap().into_inner();
        let first = watch.next().await.unwrap().unwrap();
        assert_eq!(first.status, ServingStatus::Serving as i32);
        reporter
            .set_service_status("shop", tonic_health::ServingStatus::NotServing)
            .await;
        let changed = watch.next().await.unwrap().unwrap();
        assert_eq!(changed.status, ServingStatus::NotServing as i32);
        drop(watch);

        let unknown = health
            .check(HealthCheckRequest {
                service: "nope".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), Code::NotFound);
        assert_eq!(health.pool().stats().in_flight, 0);
    })
    .await
    .expect("test exceeded its time limit");
}
