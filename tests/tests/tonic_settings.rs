//! The connection settings a tonic user knows by tonic's names:
//! `user_agent`, `local_address`, `tcp_nodelay`, `keep_alive_while_idle`
//! (`tcp_keepalive` is read back from the socket in the crate's own test
//! of the dialer).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pooled_client::{Error, Pool};
use pooled_client_tests::frames::ping_counting_connector;
use pooled_client_tests::helloworld::greeter_server::GreeterServer;
use pooled_client_tests::helloworld::{HelloRequest, PooledGreeterClient};
use pooled_client_tests::server::{GreeterService, ServerOptions, TestServer, serve_router};
use pooled_client_tests::support::bounded;

/// What the server saw of each call: its `user-agent` and its peer's IP.
type Seen = Arc<Mutex<Vec<(String, Option<IpAddr>)>>>;

async fn recording_server() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let recorder = seen.clone();
    let check = move |request: tonic::Request<()>| {
        let agent = request
            .metadata()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let peer = request.remote_addr().map(|a| a.ip());
        recorder.lock().unwrap().push((agent, peer));
        Ok(request)
    };
    let router = tonic::transport::Server::builder()
        .add_service(GreeterServer::with_interceptor(GreeterService, check));
    (serve_router(router).await, seen)
}

fn hello() -> HelloRequest {
    HelloRequest {
        name: "settings".into(),
        delay_ms: 0,
        count: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_agent_and_local_address_reach_the_server() {
    bounded(Duration::from_secs(30), async {
        let (uri, seen) = recording_server().await;
        let pool = Pool::builder()
            .endpoint(uri.clone())
            .user_agent("orders-client/2.1")
            .local_address(Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))))
            .tcp_nodelay(true)
            .tcp_keepalive(Some(Duration::from_secs(30)))
            .build()
            .unwrap();
        PooledGreeterClient::new(pool)
            .say_hello(hello())
            .await
            .unwrap();
        let version = env!("CARGO_PKG_VERSION");
        let (agent, peer) = seen.lock().unwrap()[0].clone();
        assert_eq!(agent, format!("orders-client/2.1 pooled-client/{version}"));
        assert_eq!(peer, Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))));

        // Defaults: the crate's token alone, Nagle off, and the system's
        // choice of local address.
        let pool = Pool::builder()
            .endpoint(uri)
            .tcp_nodelay(false)
            .build()
            .unwrap();
        PooledGreeterClient::new(pool)
            .say_hello(hello())
            .await
            .unwrap();
        let (agent, peer) = seen.lock().unwrap()[1].clone();
        assert_eq!(agent, format!("pooled-client/{version}"));
        assert_eq!(peer, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    })
    .await;
}

#[test]
fn a_user_agent_that_is_no_header_value_is_refused_at_build() {
    let error = Pool::builder()
        .endpoint("http://127.0.0.1:1")
        .user_agent("line\nbreak")
        .build()
        .unwrap_err();
    assert!(
        matches!(
            &error,
            Error::InvalidSetting {
                name: "user_agent",
                ..
            }
        ),
        "{error}"
    );
}

/// Counts the PINGs a pool sends over an idle connection, with keepalive
/// every 50 ms.
async fn idle_pings(while_idle: bool) -> Arc<AtomicUsize> {
    let server = TestServer::start(ServerOptions::default()).await;
    let (connector, pings) = ping_counting_connector(server.addr);
    let pool = Pool::builder()
        .endpoint(server.uri())
        .connector(connector)
        .http2_keep_alive_interval(Duration::from_millis(50))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(while_idle)
        .build()
        .unwrap();
    pool.ready().await.unwrap();
    if while_idle {
        // The signal: PINGs arrive.
        let deadline = Instant::now() + Duration::from_secs(10);
        while pings.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    } else {
        // No signal for an absence: ten intervals with no PING.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The connection was idle throughout, and stays up.
    assert_eq!(pool.stats().connections, 1);
    assert_eq!(pool.stats().connects_total, 1);
    pings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_while_idle_decides_whether_idle_connections_are_pinged() {
    bounded(Duration::from_secs(30), async {
        let silent = idle_pings(false).await;
        assert_eq!(
            silent.load(Ordering::SeqCst),
            0,
            "no PING on an idle connection by default"
        );
        let pinged = idle_pings(true).await;
        assert!(
            pinged.load(Ordering::SeqCst) >= 3,
            "PINGs with keep_alive_while_idle(true)"
        );
    })
    .await;
}
