//! The benchmark server, run in its own process by the benchmark harness
//! (`cargo bench -p pooled-client-examples --bench pool`).
//!
//! `bench_server` opens one listener per scenario and prints
//! `NAME ADDR` for each, then `ready`:
//! - `limited`: 8 streams per connection, 10 ms per unary call (S1, S2, S3);
//! - `open`: no stream limit, no latency (S5, S6).
//!
//! `bench_server --fleet` opens the fleet of S7 and S8 instead: sixteen
//! `fleet` listeners that answer in 1 ms and one `slow` that answers in
//! 21 ms, each putting its index in the response header `server` (the slow
//! one's is 16), so the client can count each server's share.
//! It also opens S10's three: `steady` answers in 1 ms, and two `stalling`
//! in 1 ms but 200 ms for one call in twenty.
//! `bench_server --many N` opens N `many` listeners without latency (S9).

use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;
use pooled_client_examples::bench::bench_server::{Bench, BenchServer};
use pooled_client_examples::bench::{DownloadRequest, Payload};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

#[derive(Clone, Default)]
struct Service {
    latency: Duration,
    /// Sent back in the header `server`, when set.
    index: Option<u32>,
    /// Every this many calls, one waits 200 ms more.
    stall_every: Option<u64>,
    calls: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

type Payloads = Pin<Box<dyn Stream<Item = Result<Payload, Status>> + Send>>;

#[tonic::async_trait]
impl Bench for Service {
    async fn unary(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        let call = self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self
            .stall_every
            .is_some_and(|every| call % every == every - 1)
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if !self.latency.is_zero() {
            // tokio's timer rounds a 10 ms sleep up to the next millisecond
            // tick and more; a blocking thread's sleep keeps the latency the
            // scenario specifies, so the bound the pool is held to is real.
            let latency = self.latency;
            tokio::task::spawn_blocking(move || std::thread::sleep(latency))
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        let mut response = Response::new(request.into_inner());
        if let Some(index) = self.index {
            response.metadata_mut().insert("server", index.into());
        }
        Ok(response)
    }

    type DownloadStream = Payloads;

    async fn download(
        &self,
        request: Request<DownloadRequest>,
    ) -> Result<Response<Payloads>, Status> {
        let DownloadRequest { size, count } = request.into_inner();
        let data = bytes::Bytes::from(vec![7u8; size as usize]);
        let payloads = (0..count).map(move |_| Ok(Payload { data: data.clone() }));
        Ok(Response::new(Box::pin(futures_util::stream::iter(
            payloads,
        ))))
    }
}

async fn listen(name: &str, service: Service, max_streams: Option<u32>) -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{name} {}", listener.local_addr()?);
    tokio::spawn(
        tonic::transport::Server::builder()
            .max_concurrent_streams(max_streams)
            .add_service(BenchServer::new(service))
            // Nagle stays on, as in every earlier run of the harness, so
            // that the figures compare across runs: the server then batches
            // its answers and stays off the critical path of S5. (A tonic
            // server from `serve` sets TCP_NODELAY; the test servers do.)
            // BENCH_SERVER_NODELAY set in the environment turns it off.
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener)
                    .with_nodelay(Some(std::env::var_os("BENCH_SERVER_NODELAY").is_some())),
            ),
    );
    Ok(())
}

/// The sixteen 1 ms servers and the 21 ms one of S7 and S8.
async fn fleet() -> std::io::Result<()> {
    for index in 0..16 {
        let service = Service {
            latency: Duration::from_millis(1),
            index: Some(index),
            ..Service::default()
        };
        listen("fleet", service, None).await?;
    }
    let slow = Service {
        latency: Duration::from_millis(21),
        index: Some(16),
        ..Service::default()
    };
    listen("slow", slow, None).await?;
    let steady = Service {
        latency: Duration::from_millis(1),
        ..Service::default()
    };
    listen("steady", steady, None).await?;
    for _ in 0..2 {
        let stalling = Service {
            latency: Duration::from_millis(1),
            stall_every: Some(20),
            ..Service::default()
        };
        listen("stalling", stalling, None).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--fleet") {
        fleet().await?;
    } else if let Some(count) = args
        .iter()
        .position(|a| a == "--many")
        .and_then(|i| args.get(i + 1)?.parse::<usize>().ok())
    {
        for _ in 0..count {
            listen("many", Service::default(), None).await?;
        }
    } else {
        let limited = Service {
            latency: Duration::from_millis(10),
            ..Service::default()
        };
        let open = Service::default();
        listen("limited", limited, Some(8)).await?;
        listen("open", open, None).await?;
    }
    println!("ready");
    // Runs until the harness kills it.
    std::future::pending::<()>().await;
    Ok(())
}
