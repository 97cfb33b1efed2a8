//! The pool scaling live against a server that allows 8 streams per
//! connection and takes 10 ms per call: callers ramp up from 8 to 128 and
//! back down, and a table shows each second what the pool holds. Then the
//! same 128 callers on one tonic `Channel`, for comparison.
//!
//! Run: `cargo run --release -p pooled-client-examples --bin demo`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pooled_client::Pool;
use pooled_client_examples::helloworld::HelloRequest;
use pooled_client_examples::helloworld::greeter_client::GreeterClient;
use pooled_client_examples::start_greeter;
use tonic::transport::Channel;

const MAX_CALLERS: usize = 128;
const SERVER_LATENCY: Duration = Duration::from_millis(10);
const SERVER_STREAMS: u32 = 8;
/// How many callers are active in each second of the pool's run.
const RAMP: [usize; 10] = [8, 32, 64, 128, 128, 128, 16, 16, 16, 16];
/// Seconds of the Channel's run, all at `MAX_CALLERS`.
const CHANNEL_SECONDS: usize = 3;

/// Callers that make calls while their index is below `active`.
struct Load {
    active: AtomicUsize,
    ok: AtomicU64,
    failed: AtomicU64,
}

/// Starts `MAX_CALLERS` callers on clones of `client`, for `seconds`.
fn start<T>(
    client: GreeterClient<T>,
    seconds: usize,
) -> (Arc<Load>, Vec<tokio::task::JoinHandle<()>>)
where
    T: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + 'static,
    T::Future: Send,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let load = Arc::new(Load {
        active: AtomicUsize::new(0),
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let end = Instant::now() + Duration::from_secs(seconds as u64);
    let callers = (0..MAX_CALLERS)
        .map(|i| {
            let mut client = client.clone();
            let load = load.clone();
            tokio::spawn(async move {
                while Instant::now() < end {
                    if i >= load.active.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    let request = HelloRequest {
                        name: format!("caller {i}"),
                    };
                    match client.say_hello(request).await {
                        Ok(_) => load.ok.fetch_add(1, Ordering::Relaxed),
                        Err(_) => load.failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    (load, callers)
}

/// Sets the active callers each second from `ramp`, calling `row` with the
/// second, the callers and the calls completed in it; returns the calls per
/// second over the seconds at `MAX_CALLERS`.
async fn run(load: &Load, ramp: &[usize], mut row: impl FnMut(usize, usize, u64)) -> f64 {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.tick().await;
    let mut last = 0;
    let (mut full_calls, mut full_seconds) = (0, 0);
    for (second, &callers) in ramp.iter().enumerate() {
        load.active.store(callers, Ordering::Relaxed);
        ticks.tick().await;
        let now = load.ok.load(Ordering::Relaxed);
        let calls = now - last;
        last = now;
        row(second + 1, callers, calls);
        if callers == MAX_CALLERS {
            full_calls += calls;
            full_seconds += 1;
        }
    }
    load.active.store(0, Ordering::Relaxed);
    full_calls as f64 / full_seconds.max(1) as f64
}

async fn finish(load: &Load, callers: Vec<tokio::task::JoinHandle<()>>) {
    for caller in callers {
        let _ = caller.await;
    }
    let failed = load.failed.load(Ordering::Relaxed);
    if failed > 0 {
        println!("  {failed} calls failed");
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = start_greeter(SERVER_LATENCY, Some(SERVER_STREAMS)).await?;
    let uri = format!("http://{addr}");
    let bound = MAX_CALLERS as f64 / SERVER_LATENCY.as_secs_f64();
    println!(
        "embedded server on {uri}: {SERVER_STREAMS} streams per connection, {SERVER_LATENCY:?} per call"
    );
    println!(
        "at {MAX_CALLERS} callers the bound is {bound:.0} calls/s ({MAX_CALLERS} / {SERVER_LATENCY:?}), \
         which needs {} connections\n",
        MAX_CALLERS / SERVER_STREAMS as usize
    );

    println!("pooled-client, max_connections 16, idle_timeout 500 ms:");
    println!("  second  callers  connections  in flight  waiting   calls/s");
    let pool = Pool::builder()
        .endpoint(uri.as_str())
        .max_connections(16)
        .idle_timeout(Duration::from_millis(500))
        .build()?;
    pool.ready().await?;
    let (load, callers) = start(GreeterClient::new(pool.clone()), RAMP.len() + 1);
    let pooled = run(&load, &RAMP, |second, active, calls| {
        let s = pool.stats();
        println!(
            "  {second:>6}  {active:>7}  {:>11}  {:>9}  {:>7}  {calls:>8}",
            s.connections, s.in_flight, s.waiting
        );
    })
    .await;
    finish(&load, callers).await;
    let stats = pool.stats();
    pool.close().await;

    println!("\none tonic Channel:");
    println!("  second  callers   calls/s");
    let channel = Channel::from_shared(uri)?.connect().await?;
    let (load, callers) = start(GreeterClient::new(channel), CHANNEL_SECONDS + 1);
    let single = run(
        &load,
        &[MAX_CALLERS; CHANNEL_SECONDS],
        |second, active, calls| {
            println!("  {second:>6}  {active:>7}  {calls:>8}");
        },
    )
    .await;
    finish(&load, callers).await;

    println!("\nsummary at {MAX_CALLERS} callers");
    println!(
        "  pooled-client  {pooled:>8.0} calls/s ({:.0} % of the bound); {} connections opened, {} closed when idle",
        100.0 * pooled / bound,
        stats.connects_total,
        stats.idle_closes_total
    );
    println!(
        "  tonic Channel  {single:>8.0} calls/s ({:.0} % of the bound)",
        100.0 * single / bound
    );
    println!("  ratio          {:>8.1}x", pooled / single.max(1.0));
    Ok(())
}
