//! A bounded soak: mixed faults at load, with counts by outcome and the
//! pool's stats each second. `soak [--seconds N]` (default 60; CI runs 14, each fault once).
//!
//! Faults cycle every two seconds: random connection resets, the endpoint
//! moved to another address and back (the old one drains), a burst of
//! cancelled calls, added latency, a burst of excess calls that must be
//! rejected, a blackhole that keepalive must find, and refused connections.
//! It exits non-zero if a call ends in an unexpected way or the pool leaks a
//! stream or a place in line.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pooled_client::Pool;
use pooled_client_tests::helloworld::HelloRequest;
use pooled_client_tests::helloworld::greeter_client::GreeterClient;
use pooled_client_tests::proxy::FaultProxy;
use pooled_client_tests::server::{ServerOptions, TestServer};
use tonic::Code;

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    unavailable: AtomicU64,
    deadline: AtomicU64,
    exhausted: AtomicU64,
    cancelled_by_us: AtomicU64,
    other: AtomicU64,
}

impl Counts {
    fn record(&self, result: Result<(), Code>) {
        let counter = match result {
            Ok(()) => &self.ok,
            Err(Code::Unavailable) => &self.unavailable,
            Err(Code::DeadlineExceeded) => &self.deadline,
            Err(Code::ResourceExhausted) => &self.exhausted,
            // tonic's server answers CANCELLED when the deadline it was sent passes.
            Err(Code::Cancelled) => &self.deadline,
            Err(_) => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn line(&self) -> String {
        format!(
            "ok {:>7}  unavailable {:>5}  deadline {:>5}  exhausted {:>5}  dropped {:>5}  other {}",
            self.ok.load(Ordering::Relaxed),
            self.unavailable.load(Ordering::Relaxed),
            self.deadline.load(Ordering::Relaxed),
            self.exhausted.load(Ordering::Relaxed),
            self.cancelled_by_us.load(Ordering::Relaxed),
            self.other.load(Ordering::Relaxed),
        )
    }
}

fn request(delay_ms: u32) -> tonic::Request<HelloRequest> {
    let mut request = tonic::Request::new(HelloRequest {
        name: "soak".into(),
        delay_ms,
        count: 0,
    });
    request.set_timeout(Duration::from_secs(1));
    request
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);

    let server = TestServer::start(ServerOptions {
        max_concurrent_streams: Some(16),
    })
    .await;
    let proxy = Arc::new(FaultProxy::start(server.addr).await);
    // A second way to the same server, for moving the endpoint under load.
    let detour = FaultProxy::start(server.addr).await;
    let pool = Pool::builder()
        .endpoint(proxy.uri())
        .min_connections(2)
        .max_connections(8)
        .max_waiters(256)
        .acquire_timeout(Duration::from_millis(500))
        .http2_keep_alive_interval(Duration::from_millis(300))
        .keep_alive_timeout(Duration::from_millis(300))
        .keep_alive_while_idle(true)
        .build()
        .expect("valid settings");
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let end = Instant::now() + Duration::from_secs(seconds);

    let callers: Vec<_> = (0..32)
        .map(|_| {
            let mut client = GreeterClient::new(pool.clone());
            let (counts, stop) = (counts.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let result = client.say_hello(request(fastrand::u32(0..3))).await;
                    let failed = result.is_err();
                    counts.record(result.map(|_| ()).map_err(|s| s.code()));
                    if failed {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            })
        })
        .collect();

    let faults = [
        "resets",
        "endpoint move",
        "cancel storm",
        "latency",
        "overload",
        "blackhole",
        "refuse",
    ];
    let started = Instant::now();
    let mut second = 0u64;
    while Instant::now() < end {
        let fault = faults[(second / 2) as usize % faults.len()];
        let tick = tokio::time::sleep(Duration::from_secs(1));
        tokio::pin!(tick);
        match fault {
            "resets" => {
                for _ in 0..10 {
                    proxy.reset_random();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            "endpoint move" => {
                // To the detour and back; calls on the removed endpoint finish.
                let pause = Duration::from_millis(150);
                for (from, to) in [(proxy.uri(), detour.uri()), (detour.uri(), proxy.uri())] {
                    let _ = pool.add_endpoint(to);
                    tokio::time::sleep(pause).await;
                    pool.remove_endpoint(&from);
                    tokio::time::sleep(pause).await;
                }
            }
            "latency" => proxy.set_latency(Duration::from_millis(20)),
            "blackhole" => proxy.set_blackhole(true),
            "refuse" => proxy.set_refuse(true),
            "cancel storm" => {
                for _ in 0..500 {
                    let mut client = GreeterClient::new(pool.clone());
                    let counts = counts.clone();
                    tokio::spawn(async move {
                        let wait = Duration::from_micros(fastrand::u64(0..20_000));
                        if tokio::time::timeout(wait, client.say_hello(request(5)))
                            .await
                            .is_err()
                        {
                            counts.cancelled_by_us.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            }
            _ => {
                for _ in 0..500 {
                    let mut client = GreeterClient::new(pool.clone());
                    let counts = counts.clone();
                    tokio::spawn(async move {
                        let result = client.say_hello(request(50)).await;
                        counts.record(result.map(|_| ()).map_err(|s| s.code()));
                    });
                }
            }
        }
        tick.await;
        proxy.set_latency(Duration::ZERO);
        proxy.set_blackhole(false);
        proxy.set_refuse(false);
        second += 1;
        println!(
            "{:>3}s {fault:<12} {}  {:?}",
            started.elapsed().as_secs(),
            counts.line(),
            pool.stats()
        );
    }

    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        let _ = caller.await;
    }
    // Calls spawned by the last bursts end within their 1 s deadline.
    let settle = Instant::now();
    while pool.stats().in_flight > 0 && settle.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = pool.stats();
    println!("end: {}  {stats:?}", counts.line());
    let other = counts.other.load(Ordering::Relaxed);
    if other > 0 || stats.in_flight != 0 || stats.waiting != 0 {
        eprintln!(
            "soak failed: {other} unexpected outcomes, {} streams and {} waiters left",
            stats.in_flight, stats.waiting
        );
        std::process::exit(1);
    }
    println!("soak passed");
}
