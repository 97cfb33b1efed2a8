//! The connection settings a tonic user knows by tonic's names:
//! `user_agent`, `local_address`, `tcp_nodelay`, `tcp_keepalive`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pooled_client::{Error, Pool};
use pooled_client_tests::helloworld::greeter_server::GreeterServer;
use pooled_client_tests::helloworld::{HelloRequest, PooledGreeterClient};
use pooled_client_tests::server::{GreeterService, serve_router};
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
