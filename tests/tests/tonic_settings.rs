//! The connection settings a tonic user knows by tonic's names:
//! `user_agent`, `local_address`, `tcp_nodelay`, `keep_alive_while_idle`,
//! and our `tcp_quickack` (`tcp_keepalive` is read back from the socket in the crate's own test
//! of the dialer).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pooled_client::{Error, Pool};
use pooled_client_tests::frames::{Seen as Sent, tapping_connector};
use pooled_client_tests::helloworld::greeter_server::GreeterServer;
use pooled_client_tests::helloworld::{HelloRequest, PooledGreeterClient};
use pooled_client_tests::server::{GreeterService, ServerOptions, TestServer, serve_router};
use pooled_client_tests::support::bounded;
use pooled_client_tests::support::hello;

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
            .say_hello(hello("settings", 0))
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
            .say_hello(hello("settings", 0))
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
async fn idle_pings(while_idle: bool) -> usize {
    let server = TestServer::start(ServerOptions::default()).await;
    let (connector, seen) = tapping_connector(server.addr);
    let pings = || seen.pings.load(Ordering::SeqCst);
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
        while pings() < 3 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    } else {
        // No signal for an absence: ten intervals with no PING.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The connection was idle throughout, and stays up.
    assert_eq!(pool.stats().connections, 1);
    assert_eq!(pool.stats().connects_total, 1);
    pings()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_while_idle_decides_whether_idle_connections_are_pinged() {
    bounded(Duration::from_secs(30), async {
        assert_eq!(
            idle_pings(false).await,
            0,
            "no PING on an idle connection by default"
        );
        assert!(
            idle_pings(true).await >= 3,
            "PINGs with keep_alive_while_idle(true)"
        );
    })
    .await;
}

/// SETTINGS parameters (RFC 9113, section 6.5.2).
const INITIAL_WINDOW_SIZE: u16 = 0x4;
const MAX_HEADER_LIST_SIZE: u16 = 0x6;
const HEADER_TABLE_SIZE: u16 = 0x1;
const MAX_FRAME_SIZE: u16 = 0x5;

/// A pool over a tapped connection to a fresh greeter, built by `configure`,
/// after one call; what the client sent.
async fn tapped(
    configure: impl FnOnce(pooled_client::PoolBuilder) -> pooled_client::PoolBuilder,
) -> (Pool, Arc<Sent>, TestServer) {
    let server = TestServer::start(ServerOptions::default()).await;
    let (connector, seen) = tapping_connector(server.addr);
    let pool = configure(Pool::builder().endpoint(server.uri()).connector(connector))
        .build()
        .unwrap();
    PooledGreeterClient::new(pool.clone())
        .say_hello(hello("settings", 0))
        .await
        .unwrap();
    (pool, seen, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_sizes_and_the_header_list_limit_are_announced() {
    bounded(Duration::from_secs(30), async {
        let (_pool, seen, _server) = tapped(|b| {
            b.initial_stream_window_size(1 << 20)
                .initial_connection_window_size(3 << 20)
                .http2_max_header_list_size(32 << 10)
        })
        .await;
        assert_eq!(seen.setting(INITIAL_WINDOW_SIZE), Some(1 << 20));
        assert_eq!(seen.setting(MAX_HEADER_LIST_SIZE), Some(32 << 10));
        // The connection window opens from HTTP/2's 65,535 to the setting.
        assert_eq!(
            seen.connection_window.load(Ordering::SeqCst),
            (3 << 20) - 65_535
        );

        // Defaults: hyper's, kept (2 MiB per stream, 5 MiB per connection,
        // 16 KiB of headers).
        let (_pool, seen, _server) = tapped(|b| b).await;
        assert_eq!(seen.setting(INITIAL_WINDOW_SIZE), Some(2 << 20));
        assert_eq!(seen.setting(MAX_HEADER_LIST_SIZE), Some(16 << 10));
        assert_eq!(
            seen.connection_window.load(Ordering::SeqCst),
            (5 << 20) - 65_535
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adaptive_window_grows_while_a_stream_downloads() {
    bounded(Duration::from_secs(30), async {
        let (pool, seen, _server) = tapped(|b| b.http2_adaptive_window(true)).await;
        // It starts at HTTP/2's window.
        assert_eq!(seen.setting(INITIAL_WINDOW_SIZE), Some(65_535));
        let mut client =
            pooled_client_tests::helloworld::greeter_client::GreeterClient::new(pool.clone());
        // Rounds of a long server stream until the window has grown (each
        // round reads a few MiB; the estimate needs a round trip's worth of
        // data read while a PING is out).
        let deadline = Instant::now() + Duration::from_secs(20);
        let grown = || {
            seen.setting(INITIAL_WINDOW_SIZE)
                .is_some_and(|w| w > 65_535)
        };
        while !grown() && Instant::now() < deadline {
            let mut stream = client
                .say_hello_stream(HelloRequest {
                    name: "x".repeat(1000),
                    delay_ms: 0,
                    count: 2000,
                })
                .await
                .unwrap()
                .into_inner();
            while stream.message().await.unwrap().is_some() {}
        }
        assert!(grown(), "settings: {:?}", seen.settings.lock().unwrap());
        assert!(seen.connection_window.load(Ordering::SeqCst) > 0);
    })
    .await;
}

/// A greeter whose connections leave Nagle's algorithm on (TCP_NODELAY
/// off), as a server behind `serve_with_incoming` does unless told.
async fn nagle_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(false));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(GreeterServer::new(GreeterService))
            .serve_with_incoming(incoming),
    );
    uri
}

/// The longest wait between two replies of a stream of small replies the
/// server writes 2 ms apart; the least of three streams, so that one
/// scheduling hiccup of a busy machine does not decide.
async fn longest_gap(uri: &str, quickack: bool) -> Duration {
    use futures_util::StreamExt;
    let pool = Pool::builder()
        .endpoint(uri)
        .tcp_quickack(quickack)
        .build()
        .unwrap();
    let client = PooledGreeterClient::new(pool.clone());
    // Past the start of the connection, when Linux still acknowledges
    // every segment at once.
    for _ in 0..20 {
        client.say_hello(hello("settings", 0)).await.unwrap();
    }
    let mut gaps = Vec::new();
    for _ in 0..3 {
        let request = HelloRequest {
            delay_ms: 2,
            count: 20,
            ..hello("settings", 0)
        };
        let mut replies = client.say_hello_stream(request).await.unwrap().into_inner();
        let mut last = Instant::now();
        let mut longest = Duration::ZERO;
        while let Some(reply) = replies.next().await {
            reply.unwrap();
            longest = longest.max(last.elapsed());
            last = Instant::now();
        }
        gaps.push(longest);
    }
    pool.close().await;
    gaps.into_iter().min().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_quickack_keeps_a_nagle_server_from_waiting_for_delayed_acks() {
    bounded(Duration::from_secs(30), async {
        let uri = nagle_server().await;
        // Without the setting, the scenario must show the stall (Linux
        // delays an ACK by at least 40 ms), or this test proves nothing.
        let without = longest_gap(&uri, false).await;
        assert!(
            without >= Duration::from_millis(30),
            "no delayed-ACK stall without tcp_quickack: longest gap {without:?}"
        );
        // With it, replies come about as the server writes them (2 ms
        // apart, and an ACK no write carried goes out after 1 ms); 20 ms
        // leaves room for a busy machine and none for a stall.
        let with = longest_gap(&uri, true).await;
        println!("longest gap: {without:?} without tcp_quickack, {with:?} with it");
        assert!(
            with < Duration::from_millis(20),
            "a reply waited {with:?} with tcp_quickack (without: {without:?})"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_table_and_the_frame_size_are_announced() {
    bounded(Duration::from_secs(30), async {
        let (_pool, seen, _server) =
            tapped(|b| b.http2_header_table_size(8192).max_frame_size(1 << 20)).await;
        assert_eq!(seen.setting(HEADER_TABLE_SIZE), Some(8192));
        assert_eq!(seen.setting(MAX_FRAME_SIZE), Some(1 << 20));

        // Defaults, tonic's: no table size sent (HTTP/2's 4,096), and
        // hyper's 16 KiB frames advertised.
        let (_pool, seen, _server) = tapped(|b| b).await;
        assert_eq!(seen.setting(HEADER_TABLE_SIZE), None);
        assert_eq!(seen.setting(MAX_FRAME_SIZE), Some(16 << 10));
    })
    .await;
}

#[test]
fn a_frame_size_outside_http2s_bounds_is_refused_when_built() {
    for size in [16_383, 16_777_216] {
        let error = Pool::builder()
            .endpoint("http://127.0.0.1:1")
            .max_frame_size(size)
            .build()
            .unwrap_err();
        assert!(
            matches!(
                &error,
                Error::InvalidSetting {
                    name: "max_frame_size",
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains(&size.to_string()), "{error}");
    }
}

/// tonic 0.14.7's `Request::cancellation_handle`: a call cancelled through
/// it reaches the server as RST_STREAM(CANCEL) through the pool too, and
/// gives its stream back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cancelled_by_its_handle_is_reset_with_cancel() {
    use futures_util::StreamExt;
    use pooled_client_tests::hostile::{Answer, frame, hello_reply, serve_scripted};

    bounded(Duration::from_secs(30), async {
        // The server answers one message and keeps the stream open.
        let script: pooled_client_tests::hostile::Script = Arc::new(|_| Answer {
            status: 200,
            headers: vec![("content-type".into(), b"application/grpc".to_vec())],
            body: vec![frame(&hello_reply("first"))],
            trailers: None,
            hang: true,
            ..Answer::default()
        });
        let (uri, seen) = serve_scripted(h2::server::Builder::new(), script).await;
        let pool = Pool::builder().endpoint(&uri).build().unwrap();
        let greeter = PooledGreeterClient::new(pool.clone());
        // The request stream stays open: the call is under way at both ends.
        let open = futures_util::stream::iter([hello("settings", 0)])
            .chain(futures_util::stream::pending());
        let mut request = tonic::Request::new(open);
        let handle = request.cancellation_handle();
        let mut replies = greeter.chat(request).await.unwrap().into_inner();
        let first = replies.message().await.unwrap().unwrap();
        assert_eq!(first.message, "first");
        assert_eq!(pool.stats().in_flight, 1);

        handle.cancel();
        let reset = async {
            while seen.cancels() == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), reset)
            .await
            .unwrap_or_else(|_| panic!("no RST_STREAM(CANCEL): {:?}", seen.resets));
        drop(replies);
        let idle =
            tokio::time::timeout(Duration::from_secs(5), pool.wait_for(|s| s.in_flight == 0));
        assert!(idle.await.is_ok(), "{:?}", pool.stats());
    })
    .await;
}
