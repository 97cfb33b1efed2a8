//! The greeter as its own process, for tests that kill and restart a server.
//!
//! `greeter-server [ADDR] [MAX_CONCURRENT_STREAMS]` prints `listening on ADDR`
//! once it accepts connections.

use pooled_client_tests::server::{ServerOptions, TestServer};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let max_concurrent_streams = args.next().map(|n| n.parse().expect("a number of streams"));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    let server = TestServer::serve(
        listener,
        ServerOptions {
            max_concurrent_streams,
        },
    );
    println!("listening on {}", server.addr);
    std::future::pending::<()>().await;
}
