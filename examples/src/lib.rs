//! Shared parts of the examples: the generated code and servers that start
//! in-process on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// The code generated from `proto/helloworld.proto`.
pub mod helloworld {
    #![allow(missing_docs)]
    tonic::include_proto!("helloworld");
}

/// The code generated from `proto/bench.proto`.
pub mod bench {
    #![allow(missing_docs)]
    tonic::include_proto!("bench");
}

/// The code generated from `proto/route_guide.proto`.
pub mod routeguide {
    #![allow(missing_docs)]
    tonic::include_proto!("routeguide");
}

use helloworld::greeter_server::{Greeter, GreeterServer};
use helloworld::{HelloReply, HelloRequest};

/// A greeter that takes `latency` to answer.
#[derive(Debug, Clone, Copy)]
pub struct SlowGreeter {
    /// How long each call takes on the server.
    pub latency: Duration,
}

#[tonic::async_trait]
impl Greeter for SlowGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        Ok(Response::new(HelloReply {
            message: format!("Hello {}!", request.into_inner().name),
        }))
    }
}

/// Starts a greeter server on a free loopback port and returns its address.
/// It also serves the standard `grpc.health.v1` service, reporting the
/// greeter as `SERVING`, for pools that check health.
///
/// `max_concurrent_streams` is the per-connection limit it advertises.
///
/// # Errors
///
/// When no loopback port can be bound.
pub async fn start_greeter(
    latency: Duration,
    max_concurrent_streams: Option<u32>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<GreeterServer<SlowGreeter>>().await;
    tokio::spawn(
        tonic::transport::Server::builder()
            .max_concurrent_streams(max_concurrent_streams)
            .add_service(health)
            .add_service(GreeterServer::new(SlowGreeter { latency }))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    Ok(addr)
}
