//! A small fleet, live: four embedded greeter servers that allow 8 streams
//! per connection and take 10 ms per call. Callers ramp from 8 to 128 and
//! back; server C turns slow for a while, server D goes away and comes back.
//! Each second a line shows what the pool holds and each server's share of
//! the calls. Then the same script through tonic's `Channel::balance_list`,
//! for comparison.
//!
//! Run: `cargo run --release -p pooled-client-examples --bin demo`

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pooled_client::Pool;
use pooled_client_examples::FleetServer;
use pooled_client_examples::helloworld::HelloRequest;
use pooled_client_examples::helloworld::greeter_client::GreeterClient;
use tonic::transport::{Channel, Endpoint};

const NAMES: [&str; 4] = ["A", "B", "C", "D"];
const LATENCY: Duration = Duration::from_millis(10);
const SLOW: Duration = Duration::from_millis(50);
const STREAMS: u32 = 8;
const MAX_CALLERS: usize = 128;

/// What happens at the start of a second.
#[derive(Clone, Copy)]
enum Event {
    Nothing,
    Slow(usize),
    Fast(usize),
    Down(usize),
    Up(usize),
}

/// Each second: the active callers and the event that starts it.
const SCRIPT: [(usize, Event); 14] = [
    (8, Event::Nothing),
    (32, Event::Nothing),
    (128, Event::Nothing),
    (128, Event::Slow(2)),
    (128, Event::Nothing),
    (128, Event::Nothing),
    (128, Event::Fast(2)),
    (128, Event::Down(3)),
    (128, Event::Nothing),
    (128, Event::Nothing),
    (128, Event::Up(3)),
    (128, Event::Nothing),
    (32, Event::Nothing),
    (8, Event::Nothing),
];

/// Callers that make calls while their index is below `active`.
#[derive(Default)]
struct Load {
    active: AtomicUsize,
    failed: AtomicU64,
    /// The latencies of the calls that succeeded since the last second.
    latencies: Mutex<Vec<Duration>>,
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
    let load = Arc::new(Load::default());
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
                    let started = Instant::now();
                    match client.say_hello(request).await {
                        Ok(_) => load.latencies.lock().unwrap().push(started.elapsed()),
                        Err(_) => drop(load.failed.fetch_add(1, Ordering::Relaxed)),
                    }
                }
            })
        })
        .collect();
    (load, callers)
}

/// Applies `event` to the fleet; what to print for it.
fn apply(fleet: &mut [FleetServer], event: Event) -> String {
    match event {
        Event::Nothing => String::new(),
        Event::Slow(i) => {
            let ms = SLOW.as_millis() as u64;
            fleet[i].greeter.latency_ms.store(ms, Ordering::Relaxed);
            format!("{} slows to {SLOW:?}", NAMES[i])
        }
        Event::Fast(i) => {
            let ms = LATENCY.as_millis() as u64;
            fleet[i].greeter.latency_ms.store(ms, Ordering::Relaxed);
            format!("{} back to {LATENCY:?}", NAMES[i])
        }
        Event::Down(i) => {
            fleet[i].stop();
            format!("{} goes away", NAMES[i])
        }
        Event::Up(i) => match fleet[i].restart() {
            Ok(()) => format!(
                "{} listens again: clients reconnect at their next attempt, after the backoff its failures earned (up to 5 s)",
                NAMES[i]
            ),
            Err(e) => format!("{} cannot come back: {e}", NAMES[i]),
        },
    }
}

/// What one run saw: the seconds at full load, and the slow seconds' p99s.
#[derive(Default)]
struct Summary {
    full_calls: u64,
    full_seconds: u64,
    slow_p99s: Vec<Duration>,
}

/// Plays the script against `fleet`, printing a line per second; `pool`
/// adds the pool's columns.
async fn run(fleet: &mut [FleetServer], load: &Load, pool: Option<&Pool>) -> Summary {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.tick().await;
    let mut summary = Summary::default();
    let mut seen: Vec<u64> = fleet
        .iter()
        .map(|s| s.greeter.calls.load(Ordering::Relaxed))
        .collect();
    let mut slow = false;
    for (second, &(callers, event)) in SCRIPT.iter().enumerate() {
        let happened = apply(fleet, event);
        slow = matches!(event, Event::Slow(_)) || (slow && !matches!(event, Event::Fast(_)));
        load.active.store(callers, Ordering::Relaxed);
        ticks.tick().await;
        let mut latencies = std::mem::take(&mut *load.latencies.lock().unwrap());
        latencies.sort();
        let p99 = latencies
            .get(latencies.len() * 99 / 100)
            .copied()
            .unwrap_or_default();
        let now: Vec<u64> = fleet
            .iter()
            .map(|s| s.greeter.calls.load(Ordering::Relaxed))
            .collect();
        let served: Vec<u64> = now.iter().zip(&seen).map(|(n, s)| n - s).collect();
        seen = now;
        let total = served.iter().sum::<u64>().max(1);
        let shares: Vec<String> = served
            .iter()
            .map(|&n| format!("{:>4.0}%", 100.0 * n as f64 / total as f64))
            .collect();
        let held = pool.map_or_else(String::new, |p| {
            let s = p.stats();
            format!("{:>5} {:>7}", s.connections, s.waiting)
        });
        println!(
            "  {:>3} {callers:>7} {held} {:>7} {:>7.1} {}  {happened}",
            second + 1,
            latencies.len(),
            p99.as_secs_f64() * 1e3,
            shares.join(" ")
        );
        if callers == MAX_CALLERS {
            summary.full_calls += latencies.len() as u64;
            summary.full_seconds += 1;
        }
        if slow {
            summary.slow_p99s.push(p99);
        }
    }
    load.active.store(0, Ordering::Relaxed);
    summary
}

/// Waits for the callers; prints the failures.
async fn finish(load: &Load, callers: Vec<tokio::task::JoinHandle<()>>) -> u64 {
    for caller in callers {
        let _ = caller.await;
    }
    let failed = load.failed.load(Ordering::Relaxed);
    println!("  {failed} calls failed");
    failed
}

fn report(name: &str, summary: &Summary, failed: u64) {
    let rate = summary.full_calls as f64 / summary.full_seconds.max(1) as f64;
    let worst = summary.slow_p99s.iter().max().copied().unwrap_or_default();
    println!(
        "  {name:<30} {rate:>7.0} calls/s at {MAX_CALLERS} callers, p99 while C is slow up to {:>5.1} ms, {failed} failed calls",
        worst.as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut fleet = Vec::new();
    for _ in NAMES {
        fleet.push(FleetServer::start(LATENCY, Some(STREAMS)).await?);
    }
    let uris: Vec<String> = fleet.iter().map(|s| format!("http://{}", s.addr)).collect();
    println!(
        "four embedded servers A to D ({}): {STREAMS} streams per connection, {LATENCY:?} per call",
        uris.join(", ")
    );
    println!(
        "at {MAX_CALLERS} callers the bound is {:.0} calls/s, which needs {} connections in all\n",
        MAX_CALLERS as f64 / LATENCY.as_secs_f64(),
        MAX_CALLERS / STREAMS as usize
    );
    println!("pooled-client, every setting at its default but max_connections 32 (8 per server):");
    println!(
        "  (conns: connections open; waiting: calls queued for a free stream, which stays 0 while\n   \
         the pool can open connections, since it grows before calls wait; A to D: each server's share)"
    );
    let header = "  sec callers conns waiting calls/s p99(ms)    A     B     C     D";
    println!("{header}");
    let pool = uris
        .iter()
        .fold(Pool::builder(), |b, uri| b.endpoint(uri.as_str()))
        .max_connections(32)
        .build()?;
    pool.ready().await?;
    let (load, callers) = start(GreeterClient::new(pool.clone()), SCRIPT.len() + 1);
    let pooled = run(&mut fleet, &load, Some(&pool)).await;
    let pooled_failed = finish(&load, callers).await;
    pool.close().await;

    println!("\ntonic Channel::balance_list over the same servers (one connection each):");
    println!("{}", header.replace(" conns waiting", ""));
    let endpoints = uris.iter().map(|u| Endpoint::from_shared(u.clone()));
    let channel = Channel::balance_list(endpoints.collect::<Result<Vec<_>, _>>()?.into_iter());
    let (load, callers) = start(GreeterClient::new(channel), SCRIPT.len() + 1);
    let balanced = run(&mut fleet, &load, None).await;
    let balanced_failed = finish(&load, callers).await;

    println!("\nsummary");
    report("pooled-client", &pooled, pooled_failed);
    report("tonic Channel::balance_list", &balanced, balanced_failed);
    Ok(())
}
