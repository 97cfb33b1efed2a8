//! Discovery from a real etcd (Debian's `etcd-server`, which `.ci/run`
//! installs; outside CI the tests skip loudly when it is missing): servers
//! register with leases, the pool follows them, and etcd restarts under
//! load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pooled_client::Pool;
use pooled_client::etcd::{EtcdDiscovery, register};
use pooled_client_tests::etcd::Etcd;
use pooled_client_tests::helloworld::{HelloRequest, PooledGreeterClient};
use pooled_client_tests::proxy::FaultProxy;
use pooled_client_tests::server::{ServerOptions, TestServer};
use pooled_client_tests::support::{bounded, endpoint_names};

const PREFIX: &str = "services/greeter";
const TTL: Duration = Duration::from_secs(2);

/// A greeter behind a proxy (so that it can die abruptly), registered in
/// etcd under the proxy's address.
struct Registered {
    server: TestServer,
    proxy: FaultProxy,
    registration: Option<pooled_client::etcd::Registration>,
}

async fn registered(etcd: &Etcd) -> Registered {
    let server = TestServer::start(ServerOptions::default()).await;
    let proxy = FaultProxy::start(server.addr).await;
    let registration = register([etcd.uri()], PREFIX, &proxy.addr.to_string(), TTL)
        .await
        .expect("register");
    Registered {
        server,
        proxy,
        registration: Some(registration),
    }
}

/// Callers that keep calling, counting calls per server port and failures.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    by_port: Mutex<HashMap<u16, usize>>,
    failures: Mutex<Vec<(Instant, tonic::Status)>>,
}

impl Load {
    fn start(self: &Arc<Self>, pool: &Pool) -> Vec<tokio::task::JoinHandle<()>> {
        (0..6)
            .map(|_| {
                let greeter = PooledGreeterClient::new(pool.clone());
                let load = self.clone();
                tokio::spawn(async move {
                    while !load.stop.load(Ordering::Relaxed) {
                        let request = HelloRequest {
                            name: "etcd".into(),
                            delay_ms: 2,
                            count: 0,
                        };
                        match greeter.say_hello(request).await {
                            Ok(response) => {
                                let port = response.metadata().get("server-port");
                                let port = port.and_then(|p| p.to_str().ok()?.parse().ok());
                                *load
                                    .by_port
                                    .lock()
                                    .unwrap()
                                    .entry(port.unwrap_or(0))
                                    .or_insert(0) += 1;
                            }
                            Err(status) => {
                                load.failures.lock().unwrap().push((Instant::now(), status));
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                        }
                    }
                })
            })
            .collect()
    }

    fn calls_to(&self, port: u16) -> usize {
        *self.by_port.lock().unwrap().get(&port).unwrap_or(&0)
    }

    fn failures(&self) -> usize {
        self.failures.lock().unwrap().len()
    }
}

/// Waits until `condition` holds, for at most `limit`; how long it took.
async fn until(limit: Duration, condition: impl Fn() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if condition() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_follows_servers_registered_in_etcd_and_survives_its_restart() {
    let Some(mut etcd) = Etcd::start().await else {
        return;
    };
    bounded(Duration::from_secs(60), async {
        let mut servers = Vec::new();
        for _ in 0..3 {
            servers.push(registered(&etcd).await);
        }
        let discovery = EtcdDiscovery::new([etcd.uri()], PREFIX).unwrap();
        let pool = Pool::builder()
            .discovery(discovery.into_stream())
            .build()
            .unwrap();
        let found = until(Duration::from_secs(5), || pool.stats().connections == 3).await;
        assert!(found.is_some(), "all three found: {:?}", endpoint_names(&pool));
        let load = Arc::new(Load::default());
        let callers = load.start(&pool);

        // Calls spread over all three.
        // Calls are counted by the port of the server that answered.
        let ports: Vec<u16> = servers.iter().map(|s| s.server.addr.port()).collect();
        let spread = until(Duration::from_secs(5), || {
            ports.iter().all(|port| load.calls_to(*port) > 20)
        })
        .await;
        assert!(spread.is_some(), "{:?}", load.by_port.lock().unwrap());

        // The first dies: its connections break, nothing answers, and its
        // lease is no longer kept alive.
        let dead = &mut servers[0];
        dead.proxy.set_refuse(true);
        dead.proxy.reset_all();
        drop(dead.registration.take());
        let died = Instant::now();
        let dead_uri = format!("http://{}", dead.proxy.addr);
        let gone = until(TTL * 3, || !endpoint_names(&pool).iter().any(|e| e.starts_with(&dead_uri))).await;
        println!("the dead server left the pool {gone:?} after it died (lease TTL {TTL:?})");
        assert!(gone.is_some_and(|t| t <= TTL + Duration::from_secs(2)), "{gone:?}");
        let failed_at_death = load.failures();
        assert!(failed_at_death <= 6, "only calls in flight on it failed: {:?}", load.failures.lock().unwrap());

        // A fourth registers and takes calls.
        let registering = Instant::now();
        let fourth = registered(&etcd).await;
        let port = fourth.server.addr.port();
        let taking = until(Duration::from_secs(5), || load.calls_to(port) > 0).await;
        println!("a new server took calls {:?} after it registered", registering.elapsed());
        assert!(taking.is_some_and(|t| t <= Duration::from_secs(1)), "{taking:?}");

        // etcd restarts under load: calls go on, and the watch resumes.
        let before = load.failures();
        etcd.restart().await;
        let fifth = registered(&etcd).await;
        let port = fifth.server.addr.port();
        let resumed = until(Duration::from_secs(10), || load.calls_to(port) > 0).await;
        println!("after etcd restarted, a new server took calls {resumed:?} after it registered; died at {:?}", died.elapsed());
        assert!(resumed.is_some(), "the watch resumed: {:?}", endpoint_names(&pool));
        assert_eq!(load.failures(), before, "no call failed while etcd restarted");
        let reported = pool.discovery_stats();
        println!("{reported:?}");
        assert!(reported.changes_total >= 6, "{reported:?}");
        let (_, error) = reported.last_error.expect("the broken watch was reported");
        assert!(error.contains("etcd"), "{error}");

        load.stop.store(true, Ordering::Relaxed);
        for caller in callers {
            caller.await.unwrap();
        }
        drop((fourth, fifth));
    })
    .await;
}

/// etcd's `Put`, written by hand as grpc-go's tools would send it.
#[derive(Clone, PartialEq, prost::Message)]
struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PutResponse {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_written_in_grpc_gos_format_is_found() {
    let Some(etcd) = Etcd::start().await else {
        return;
    };
    bounded(Duration::from_secs(30), async {
        let server = TestServer::start(ServerOptions::default()).await;
        let etcd_pool = Pool::builder().endpoint(etcd.uri()).build().unwrap();
        let mut grpc = tonic::client::Grpc::new(etcd_pool);
        grpc.ready().await.unwrap();
        let put = PutRequest {
            key: format!("services/by-hand/{}", server.addr).into_bytes(),
            value: format!(r#"{{"Addr":"{}"}}"#, server.addr).into_bytes(),
        };
        let path = http::uri::PathAndQuery::from_static("/etcdserverpb.KV/Put");
        let codec = tonic_prost::ProstCodec::<PutRequest, PutResponse>::default();
        grpc.unary(tonic::Request::new(put), path, codec)
            .await
            .unwrap();

        let discovery = EtcdDiscovery::new([etcd.uri()], "services/by-hand").unwrap();
        let pool = Pool::builder()
            .discovery(discovery.into_stream())
            .build()
            .unwrap();
        pool.ready().await.unwrap();
        assert_eq!(
            endpoint_names(&pool),
            vec![format!("http://{}", server.addr)]
        );
        PooledGreeterClient::new(pool)
            .say_hello(HelloRequest {
                name: "by hand".into(),
                delay_ms: 0,
                count: 0,
            })
            .await
            .unwrap();
    })
    .await;
}
