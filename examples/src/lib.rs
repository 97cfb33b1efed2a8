//! Shared parts of the examples: the generated code and servers that start
//! in-process on loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
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

/// The code generated from `proto/grpc_benchmark.proto`: grpc's
/// BenchmarkService, as grpc-go's benchmark server serves it.
pub mod grpc_benchmark {
    #![allow(missing_docs)]
    tonic::include_proto!("grpc.testing");
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
            .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true))),
    );
    Ok(addr)
}

/// A greeter of the demo's fleet: its latency can change while it runs,
/// and it counts the calls it answers.
#[derive(Debug, Clone, Default)]
pub struct FleetGreeter {
    /// How long each call takes on the server, in milliseconds.
    pub latency_ms: Arc<AtomicU64>,
    /// Calls answered so far.
    pub calls: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl Greeter for FleetGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let latency = self.latency_ms.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(latency)).await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(HelloReply {
            message: format!("Hello {}!", request.into_inner().name),
        }))
    }
}

/// A server of the demo's fleet, which can go away (gracefully: its
/// connections get GOAWAY and finish their calls) and come back on the same
/// port.
#[derive(Debug)]
pub struct FleetServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its greeter, whose latency the demo changes and whose calls it counts.
    pub greeter: FleetGreeter,
    max_concurrent_streams: Option<u32>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FleetServer {
    /// Starts a server on a free loopback port.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start(
        latency: Duration,
        max_concurrent_streams: Option<u32>,
    ) -> std::io::Result<Self> {
        let greeter = FleetGreeter::default();
        greeter
            .latency_ms
            .store(latency.as_millis() as u64, Ordering::Relaxed);
        let mut server = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            greeter,
            max_concurrent_streams,
            shutdown: None,
        };
        server.serve()?;
        Ok(server)
    }

    /// Whether it is serving.
    pub fn is_up(&self) -> bool {
        self.shutdown.is_some()
    }

    /// Stops accepting calls: open connections get GOAWAY and finish the
    /// calls they carry.
    pub fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Serves again on the same port.
    ///
    /// # Errors
    ///
    /// When the port cannot be bound again.
    pub fn restart(&mut self) -> std::io::Result<()> {
        if self.shutdown.is_none() {
            self.serve()?;
        }
        Ok(())
    }

    fn serve(&mut self) -> std::io::Result<()> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(self.addr)?;
        let listener = socket.listen(1024)?;
        self.addr = listener.local_addr()?;
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(
            tonic::transport::Server::builder()
                .max_concurrent_streams(self.max_concurrent_streams)
                .add_service(GreeterServer::new(self.greeter.clone()))
                .serve_with_incoming_shutdown(
                    // Without TCP_NODELAY, a lone small answer can wait for
                    // the client's delayed ACK (40 ms) at low load.
                    TcpIncoming::from(listener).with_nodelay(Some(true)),
                    async move {
                        let _ = stopped.await;
                    },
                ),
        );
        self.shutdown = Some(shutdown);
        Ok(())
    }
}
