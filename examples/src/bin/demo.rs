//! The pool against one tonic `Channel`, on a server that allows 8 streams
//! per connection and takes 10 ms per call, with 128 concurrent callers.
//!
//! Run: `cargo run --release -p pooled-client-examples --bin demo`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pooled_client::Pool;
use pooled_client_examples::helloworld::HelloRequest;
use pooled_client_examples::helloworld::greeter_client::GreeterClient;
use pooled_client_examples::start_greeter;
use tonic::transport::Channel;

const CALLERS: usize = 128;
const PHASE: Duration = Duration::from_secs(3);
const SERVER_LATENCY: Duration = Duration::from_millis(10);
const SERVER_STREAMS: u32 = 8;

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

/// Runs `CALLERS` loops of calls on clones of `client` for `PHASE`, calling
/// `report` every second; returns calls per second.
async fn load<T>(client: GreeterClient<T>, mut report: impl FnMut(u64)) -> f64
where
    T: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + 'static,
    T::Future: Send,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let end = started + PHASE;
    let callers: Vec<_> = (0..CALLERS)
        .map(|i| {
            let mut client = client.clone();
            let counts = counts.clone();
            tokio::spawn(async move {
                while Instant::now() < end {
                    let request = HelloRequest {
                        name: format!("caller {i}"),
                    };
                    match client.say_hello(request).await {
                        Ok(_) => counts.ok.fetch_add(1, Ordering::Relaxed),
                        Err(_) => counts.failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    let mut last = 0;
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    while Instant::now() + Duration::from_millis(500) < end {
        ticks.tick().await;
        let now = counts.ok.load(Ordering::Relaxed);
        report(now - last);
        last = now;
    }
    for caller in callers {
        let _ = caller.await;
    }
    let failed = counts.failed.load(Ordering::Relaxed);
    if failed > 0 {
        println!("  {failed} calls failed");
    }
    counts.ok.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = start_greeter(SERVER_LATENCY, Some(SERVER_STREAMS)).await?;
    let uri = format!("http://{addr}");
    let bound = CALLERS as f64 / SERVER_LATENCY.as_secs_f64();
    println!(
        "server on {uri}: {SERVER_STREAMS} streams per connection, {SERVER_LATENCY:?} per call; \
         {CALLERS} callers; Little's law bound {bound:.0} calls/s\n"
    );

    println!("pooled-client (max_connections 16):");
    let pool = Pool::builder()
        .endpoint(uri.as_str())
        .max_connections(16)
        .build()?;
    pool.ready().await?;
    let pooled = load(GreeterClient::new(pool.clone()), |calls| {
        let s = pool.stats();
        println!(
            "  {calls:>6} calls/s  connections {:>2}  in flight {:>3}  waiting {:>3}",
            s.connections, s.in_flight, s.waiting
        );
    })
    .await;
    let stats = pool.stats();
    pool.close().await;

    println!("\none tonic Channel:");
    let channel = Channel::from_shared(uri)?.connect().await?;
    let single = load(GreeterClient::new(channel), |calls| {
        println!("  {calls:>6} calls/s")
    })
    .await;

    println!("\nsummary");
    println!(
        "  pooled-client  {pooled:>8.0} calls/s ({:.0} % of the bound), {} connections opened",
        100.0 * pooled / bound,
        stats.connects_total
    );
    println!(
        "  tonic Channel  {single:>8.0} calls/s ({:.0} % of the bound)",
        100.0 * single / bound
    );
    println!("  ratio          {:>8.1}x", pooled / single);
    Ok(())
}
