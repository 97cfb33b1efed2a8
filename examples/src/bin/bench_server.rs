//! The benchmark server, run in its own process by the benchmark harness
//! (`cargo bench -p pooled-client-examples --bench pool`).
//!
//! `bench_server` opens one listener per scenario and prints
//! `NAME ADDR` for each, then `ready`:
//! - `limited`: 8 streams per connection, 10 ms per unary call (S1, S2, S3);
//! - `open`: no stream limit, no latency (S5, S6).

use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;
use pooled_client_examples::bench::bench_server::{Bench, BenchServer};
use pooled_client_examples::bench::{DownloadRequest, Payload};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

#[derive(Clone, Copy)]
struct Service {
    latency: Duration,
}

type Payloads = Pin<Box<dyn Stream<Item = Result<Payload, Status>> + Send>>;

#[tonic::async_trait]
impl Bench for Service {
    async fn unary(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        if !self.latency.is_zero() {
            // tokio's timer rounds a 10 ms sleep up to the next millisecond
            // tick and more; a blocking thread's sleep keeps the latency the
            // scenario specifies, so the bound the pool is held to is real.
            let latency = self.latency;
            tokio::task::spawn_blocking(move || std::thread::sleep(latency))
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        Ok(Response::new(request.into_inner()))
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

async fn listen(name: &str, latency: Duration, max_streams: Option<u32>) -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{name} {}", listener.local_addr()?);
    tokio::spawn(
        tonic::transport::Server::builder()
            .max_concurrent_streams(max_streams)
            .add_service(BenchServer::new(Service { latency }))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    listen("limited", Duration::from_millis(10), Some(8)).await?;
    listen("open", Duration::ZERO, None).await?;
    println!("ready");
    // Runs until the harness kills it.
    std::future::pending::<()>().await;
    Ok(())
}
