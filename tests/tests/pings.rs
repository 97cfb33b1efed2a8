//! A server's PINGs are answered: alone when the connection is idle (the
//! pool holds a bare PING ACK back for one turn of the runtime, so that it
//! can ride with the next request's frames), and between calls.

use std::time::Duration;

use pooled_client::Pool;
use pooled_client_tests::helloworld::{HelloRequest, PooledGreeterClient};
use pooled_client_tests::hostile::{frame, hello_reply};
use pooled_client_tests::support::bounded;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const TEST_LIMIT: Duration = Duration::from_secs(30);

/// PINGs the server sends, and how long it waits for each ACK.
const PINGS: usize = 20;
const ACK_WITHIN: Duration = Duration::from_secs(5);

/// An h2 server that answers every call OK and, on each `go`, sends a PING
/// and reports whether its ACK came within `ACK_WITHIN`.
async fn pinging_server() -> (String, mpsc::Sender<()>, mpsc::Receiver<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    let (go, mut went) = mpsc::channel::<()>(1);
    let (acked, acks) = mpsc::channel(PINGS);
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut connection = h2::server::handshake(socket).await.unwrap();
        let mut ping_pong = connection.ping_pong().unwrap();
        tokio::spawn(async move {
            while went.recv().await.is_some() {
                let pong = tokio::time::timeout(ACK_WITHIN, ping_pong.ping(h2::Ping::opaque()));
                let _ = acked.send(matches!(pong.await, Ok(Ok(_)))).await;
            }
        });
        while let Some(Ok((_, mut respond))) = connection.accept().await {
            let head = http::Response::builder()
                .header("content-type", "application/grpc")
                .body(())
                .unwrap();
            let mut stream = respond.send_response(head, false).unwrap();
            let _ = stream.send_data(frame(&hello_reply("pong")), false);
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", "0".parse().unwrap());
            let _ = stream.send_trailers(trailers);
        }
    });
    (uri, go, acks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_pings_are_answered_on_an_idle_connection_and_between_calls() {
    bounded(TEST_LIMIT, async {
        let (uri, go, mut acks) = pinging_server().await;
        let pool = Pool::builder().endpoint(uri).build().unwrap();
        pool.ready().await.unwrap();
        let greeter = PooledGreeterClient::new(pool.clone());
        for round in 0..PINGS {
            go.send(()).await.unwrap();
            assert!(acks.recv().await.unwrap(), "idle PING {round} not answered");
            let request = HelloRequest {
                name: format!("call {round}"),
                ..Default::default()
            };
            greeter.say_hello(request).await.unwrap();
        }
    })
    .await;
}
