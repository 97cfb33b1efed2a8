//! Faults, overload and cancellation, through real servers and a real TCP
//! proxy on loopback. Each test names the fault it injects.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pooled_client::Pool;
use pooled_client_tests::helloworld::greeter_client::GreeterClient;
use pooled_client_tests::helloworld::{HelloRequest, PooledGreeterClient};
use pooled_client_tests::proxy::FaultProxy;
use pooled_client_tests::server::{ServerOptions, TestServer};
use pooled_client_tests::support::hello;
use pooled_client_tests::support::server_and_pool;
use pooled_client_tests::support::{self, spawn_listening, wait_for_stats as wait_for};
use tokio::process::{Child, Command};
use tonic::{Code, Request};

const TEST_LIMIT: Duration = Duration::from_secs(120);

fn with_deadline(delay_ms: u32, deadline: Duration) -> Request<HelloRequest> {
    let mut request = Request::new(hello("fault", delay_ms));
    request.set_timeout(deadline);
    request
}

async fn bounded<F: std::future::Future>(test: F) -> F::Output {
    support::bounded(TEST_LIMIT, test).await
}

/// How calls of a load ended.
#[derive(Debug, Default)]
struct Outcomes {
    ok: AtomicU64,
    unavailable: AtomicU64,
    deadline_exceeded: AtomicU64,
    other: AtomicU64,
    /// The longest a call took, in microseconds.
    slowest_us: AtomicU64,
    /// When the last success happened, in microseconds since `epoch`.
    last_ok_us: AtomicU64,
    /// The first few failures other than UNAVAILABLE, for the test's message.
    unexpected: std::sync::Mutex<Vec<String>>,
}

impl Outcomes {
    fn record(&self, epoch: Instant, started: Instant, result: Result<(), tonic::Status>) {
        let took = started.elapsed().as_micros() as u64;
        self.slowest_us.fetch_max(took, Ordering::SeqCst);
        if let Err(status) = &result
            && status.code() != Code::Unavailable
        {
            let mut unexpected = self.unexpected.lock().unwrap();
            if unexpected.len() < 5 {
                unexpected.push(format!("{status:?} after {:?}", started.elapsed()));
            }
        }
        let counter = match result.map_err(|s| s.code()) {
            Ok(()) => {
                self.last_ok_us
                    .fetch_max(epoch.elapsed().as_micros() as u64, Ordering::SeqCst);
                &self.ok
            }
            Err(Code::Unavailable) => &self.unavailable,
            Err(Code::DeadlineExceeded) => &self.deadline_exceeded,
            Err(_) => &self.other,
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }

    /// Calls in all, calls that succeeded, and the share that did.
    fn success_rate(&self) -> (u64, u64, f64) {
        let total = self.total();
        let ok = self.ok.load(Ordering::SeqCst);
        (total, ok, ok as f64 / total as f64)
    }

    fn total(&self) -> u64 {
        [
            &self.ok,
            &self.unavailable,
            &self.deadline_exceeded,
            &self.other,
        ]
        .iter()
        .map(|c| c.load(Ordering::SeqCst))
        .sum()
    }
}

/// Runs `callers` loops of unary calls with `deadline` until `stop` is set.
fn start_load(
    pool: &Pool,
    callers: usize,
    deadline: Duration,
    stop: Arc<AtomicBool>,
    outcomes: Arc<Outcomes>,
    epoch: Instant,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..callers)
        .map(|_| {
            let mut client = GreeterClient::new(pool.clone());
            let (stop, outcomes) = (stop.clone(), outcomes.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let result = client.say_hello(with_deadline(2, deadline)).await;
                    let failed = result.is_err();
                    outcomes.record(epoch, started, result.map(|_| ()));
                    if failed {
                        // A real client backs off too; this keeps the test from spinning.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            })
        })
        .collect()
}

async fn spawn_server(addr: &str) -> (Child, String) {
    spawn_listening(Command::new(env!("CARGO_BIN_EXE_greeter-server")).arg(addr)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_server_killed_and_restarted_twice_under_load() {
    bounded(async {
        let (mut server, addr) = spawn_server("127.0.0.1:0").await;
        let pool = Pool::builder()
            .endpoint(format!("http://{addr}"))
            .max_connections(8)
            .build()
            .unwrap();
        pool.ready().await.unwrap();
        let deadline = Duration::from_secs(1);
        let (stop, outcomes, epoch) = (Arc::new(AtomicBool::new(false)), Arc::new(Outcomes::default()), Instant::now());
        let load = start_load(&pool, 64, deadline, stop.clone(), outcomes.clone(), epoch);

        let mut recoveries = Vec::new();
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            server.kill().await.expect("SIGKILL");
            tokio::time::sleep(Duration::from_millis(300)).await;
            let (restarted, _) = spawn_server(&addr).await;
            server = restarted;
            let back = epoch.elapsed().as_micros() as u64;
            let recovered = async {
                while outcomes.last_ok_us.load(Ordering::SeqCst) <= back {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            };
            tokio::time::timeout(Duration::from_secs(10), recovered)
                .await
                .expect("calls succeed again after the restart");
            let first_ok = outcomes.last_ok_us.load(Ordering::SeqCst);
            recoveries.push(Duration::from_micros(first_ok.saturating_sub(back)));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::SeqCst);
        for task in load {
            task.await.unwrap();
        }
        let slowest = Duration::from_micros(outcomes.slowest_us.load(Ordering::SeqCst));
        println!(
            "F1: {} calls: {} ok, {} unavailable, {} deadline exceeded, {} other; slowest {slowest:?}; \
             first success after each restart {recoveries:?}",
            outcomes.total(),
            outcomes.ok.load(Ordering::SeqCst),
            outcomes.unavailable.load(Ordering::SeqCst),
            outcomes.deadline_exceeded.load(Ordering::SeqCst),
            outcomes.other.load(Ordering::SeqCst),
        );
        assert_eq!(outcomes.other.load(Ordering::SeqCst), 0, "only UNAVAILABLE or DEADLINE_EXCEEDED");
        assert!(slowest <= deadline + Duration::from_millis(100), "a call took {slowest:?}");
        for recovery in &recoveries {
            assert!(*recovery <= Duration::from_millis(1_500), "recovery took {recovery:?}");
        }
        let stats = pool.stats();
        assert!(stats.connections <= 8, "{stats:?}");
        assert_eq!(stats.in_flight, 0, "{stats:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_blackholed_endpoint_is_found_by_keepalive_and_traffic_moves() {
    bounded(async {
        let silent_server = TestServer::start(ServerOptions::default()).await;
        let healthy_server = TestServer::start(ServerOptions::default()).await;
        let silent = FaultProxy::start(silent_server.addr).await;
        let healthy = FaultProxy::start(healthy_server.addr).await;
        let (interval, timeout) = (Duration::from_millis(200), Duration::from_millis(200));
        let pool = Pool::builder()
            .endpoint(silent.uri())
            .endpoint(healthy.uri())
            .min_connections(2)
            .http2_keep_alive_interval(interval)
            .keep_alive_timeout(timeout)
            .keep_alive_while_idle(true)
            .build()
            .unwrap();
        assert!(wait_for(&pool, Duration::from_secs(5), |s| s.connections == 2).await);

        silent.set_blackhole(true);
        let blackholed = Instant::now();
        // Calls still land on the silent connection until it is found out;
        // they fail by their deadline.
        let mut client = GreeterClient::new(pool.clone());
        let deadline = Duration::from_millis(300);
        let mut failures = 0;
        for _ in 0..10 {
            let started = Instant::now();
            if let Err(status) = client.say_hello(with_deadline(0, deadline)).await {
                assert!(
                    matches!(status.code(), Code::DeadlineExceeded | Code::Unavailable),
                    "{status:?}"
                );
                assert!(started.elapsed() <= deadline + Duration::from_millis(100));
                failures += 1;
            }
        }
        assert!(
            wait_for(&pool, Duration::from_secs(5), |s| s.evictions_total >= 1).await,
            "keepalive never evicted the silent connection: {:?}",
            pool.stats()
        );
        let detected = blackholed.elapsed();
        println!("F3: silent connection evicted {detected:?} after the blackhole began; {failures} of 10 calls failed meanwhile");
        // Interval + timeout, with 100 ms for timers and the 5 ms polling above.
        assert!(
            detected <= interval + timeout + Duration::from_millis(100),
            "took {detected:?}"
        );
        for _ in 0..50 {
            client
                .say_hello(with_deadline(0, deadline))
                .await
                .expect("traffic moved to the healthy endpoint");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f4_graceful_shutdown_mid_load_fails_no_call() {
    bounded(async {
        let leaving = TestServer::start(ServerOptions::default()).await;
        let staying = TestServer::start(ServerOptions::default()).await;
        let pool = Pool::builder()
            .endpoint(leaving.uri())
            .endpoint(staying.uri())
            .min_connections(2)
            .build()
            .unwrap();
        assert!(wait_for(&pool, Duration::from_secs(5), |s| s.connections == 2).await);
        let (stop, outcomes, epoch) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(Outcomes::default()),
            Instant::now(),
        );
        let load = start_load(
            &pool,
            16,
            Duration::from_secs(5),
            stop.clone(),
            outcomes.clone(),
            epoch,
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        leaving.shutdown().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::SeqCst);
        for task in load {
            task.await.unwrap();
        }
        println!(
            "F4: {} calls, {} ok; {:?}",
            outcomes.total(),
            outcomes.ok.load(Ordering::SeqCst),
            pool.stats()
        );
        assert_eq!(
            outcomes.ok.load(Ordering::SeqCst),
            outcomes.total(),
            "{outcomes:?}"
        );
        assert!(pool.stats().evictions_total >= 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f6_ten_thousand_calls_dropped_anywhere_leak_nothing() {
    bounded(async {
        let (_server, pool) = server_and_pool(Some(4), |b| {
            b.max_connections(2)
                .max_waiters(20_000)
                .acquire_timeout(Duration::from_secs(60))
        })
        .await;
        support::cancel_storm(&pool, 10_000, Duration::from_millis(50)).await;
        let stats = pool.stats();
        println!("F6: after 10,000 dropped calls: {stats:?}");
        assert_eq!(stats.in_flight, 0, "{stats:?}");
        assert_eq!(stats.waiting, 0, "{stats:?}");
        GreeterClient::new(pool.clone())
            .say_hello(hello("fault", 0))
            .await
            .expect("the pool still works");
    })
    .await;
}

/// A server at 8 streams per connection behind a fault proxy, and a ready
/// pool of 4 to 8 connections to it with default settings otherwise.
async fn behind_proxy() -> (TestServer, FaultProxy, Pool) {
    let server = TestServer::start(ServerOptions {
        max_concurrent_streams: Some(8),
    })
    .await;
    let proxy = FaultProxy::start(server.addr).await;
    let pool = Pool::builder()
        .endpoint(proxy.uri())
        .min_connections(4)
        .max_connections(8)
        .build()
        .unwrap();
    assert!(wait_for(&pool, Duration::from_secs(5), |s| s.connections == 4).await);
    (server, proxy, pool)
}

/// Resets a random connection ten times a second for five seconds while
/// `load` runs, then stops the load and waits for it; returns how many
/// resets found a connection.
async fn reset_storm(
    proxy: &FaultProxy,
    stop: &AtomicBool,
    load: Vec<tokio::task::JoinHandle<()>>,
) -> usize {
    let mut resets = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        resets += usize::from(proxy.reset_random());
    }
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }
    resets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f2_random_resets_under_load_and_the_pool_recovers_its_size() {
    bounded(async {
        let (_server, proxy, pool) = behind_proxy().await;
        let (stop, outcomes, epoch) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(Outcomes::default()),
            Instant::now(),
        );
        let load = start_load(
            &pool,
            32,
            Duration::from_secs(2),
            stop.clone(),
            outcomes.clone(),
            epoch,
        );
        let resets = reset_storm(&proxy, &stop, load).await;
        let (total, ok, rate) = outcomes.success_rate();
        println!(
            "F2: {resets} resets; {total} calls, {ok} ok ({:.3} %), {} unavailable, {} other; {:?}",
            100.0 * rate,
            outcomes.unavailable.load(Ordering::SeqCst),
            outcomes.other.load(Ordering::SeqCst)
                + outcomes.deadline_exceeded.load(Ordering::SeqCst),
            pool.stats()
        );
        // A reset fails the calls in flight on that connection: they left
        // the client, so retrying them could run them twice. Nothing else
        // may fail: no call on another connection, none that was never sent.
        let unavailable = outcomes.unavailable.load(Ordering::SeqCst);
        assert_eq!(
            outcomes.other.load(Ordering::SeqCst)
                + outcomes.deadline_exceeded.load(Ordering::SeqCst),
            0,
            "{:?}",
            outcomes.unexpected.lock().unwrap()
        );
        assert!(
            unavailable <= resets as u64 * 8,
            "{unavailable} failures for {resets} resets of connections holding at most 8 calls each"
        );
        assert!(rate >= 0.9, "success rate {rate}");
        assert!(
            wait_for(&pool, Duration::from_secs(10), |s| s.connections >= 4
                && s.in_flight == 0)
            .await,
            "the pool returns to its size: {:?}",
            pool.stats()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_streams_with_open_request_streams_do_not_wedge_the_connection() {
    bounded(async {
        // Two streams per connection and one connection: two leaked streams
        // would block every later call.
        let (_server, pool) = server_and_pool(Some(2), |b| b.max_connections(1)).await;
        let mut client = GreeterClient::new(pool.clone());
        for _ in 0..10 {
            // The request stream never ends; the caller reads one reply and
            // gives up on the call.
            let requests = futures_util::stream::iter(vec![hello("fault", 0)])
                .chain(futures_util::stream::pending());
            let mut replies = client.chat(requests).await.unwrap().into_inner();
            replies.next().await.unwrap().unwrap();
            drop(replies);
        }
        let answer =
            tokio::time::timeout(Duration::from_secs(5), client.say_hello(hello("fault", 0))).await;
        assert!(
            matches!(answer, Ok(Ok(_))),
            "the connection is wedged: {answer:?}"
        );
        assert_eq!(pool.stats().in_flight, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f2_resets_with_idempotent_retries_lose_almost_no_call() {
    bounded(async {
        let (_server, proxy, pool) = behind_proxy().await;
        let (stop, outcomes, epoch) = (Arc::new(AtomicBool::new(false)), Arc::new(Outcomes::default()), Instant::now());
        // SayHelloAgain is declared IDEMPOTENT in the proto: the generated
        // client marks its calls, so the pool's default policy for such
        // methods retries them, and reads their responses whole so that it
        // can retry even a call whose response had begun. No setting needed.
        let load: Vec<_> = (0..32)
            .map(|_| {
                let greeter = PooledGreeterClient::new(pool.clone());
                let (stop, outcomes) = (stop.clone(), outcomes.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let started = Instant::now();
                        let result = greeter.say_hello_again(with_deadline(2, Duration::from_secs(2))).await;
                        let failed = result.is_err();
                        outcomes.record(epoch, started, result.map(|_| ()));
                        if failed {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                })
            })
            .collect();
        let resets = reset_storm(&proxy, &stop, load).await;
        let (total, ok, rate) = outcomes.success_rate();
        println!(
            "F2 with retries: {resets} resets; {total} calls, {ok} ok ({:.3} %), {} unavailable; {:?}",
            100.0 * rate,
            outcomes.unavailable.load(Ordering::SeqCst),
            pool.stats()
        );
        assert!(resets >= 45, "the proxy had connections to reset");
        assert!(rate >= 0.999, "success rate {rate}");
        assert!(
            wait_for(&pool, Duration::from_secs(10), |s| s.connections >= 4 && s.in_flight == 0).await,
            "the pool returns to its size: {:?}",
            pool.stats()
        );
    })
    .await;
}
