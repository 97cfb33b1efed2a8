//! The scenarios S1 to S6, each returning its section of the report.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use pooled_client::Pool;
use pooled_client_examples::bench::bench_client::BenchClient;
use pooled_client_examples::bench::{DownloadRequest, Payload, PooledBenchClient};
use tonic::transport::{Channel, Endpoint};

use crate::measure::{Series, closed_loop, cpu_time, median, median_ratio, percentile};
use crate::{Context, chart, pin_current_thread};

/// One scenario's part of the report.
pub(crate) struct Section {
    pub(crate) title: String,
    pub(crate) body: String,
    /// Each target, and whether it was met.
    pub(crate) targets: Vec<(String, bool)>,
}

pub(crate) fn small() -> Payload {
    Payload {
        data: Bytes::from_static(b"0123456789abcdef"),
    }
}

async fn channel(uri: &str) -> Channel {
    Endpoint::from_shared(uri.to_owned())
        .expect("uri")
        .connect()
        .await
        .expect("connect a Channel")
}

async fn pool(
    uri: &str,
    configure: impl FnOnce(pooled_client::PoolBuilder) -> pooled_client::PoolBuilder,
) -> Pool {
    let pool = configure(
        Pool::builder()
            .endpoint(uri)
            .acquire_timeout(Duration::from_secs(30)),
    )
    .build()
    .expect("pool settings");
    pool.ready().await.expect("pool ready");
    pool
}

/// A load that makes small unary calls through the pooled wrapper.
fn pooled_calls(
    client: &PooledBenchClient,
) -> impl Fn(usize) -> futures_util::future::BoxFuture<'static, bool> + Clone + Send + 'static {
    let client = client.clone();
    move |_| {
        let client = client.clone();
        Box::pin(async move { client.unary(small()).await.is_ok() })
    }
}

/// A load that makes small unary calls on clones of one tonic client.
fn channel_calls(
    client: &BenchClient<Channel>,
) -> impl Fn(usize) -> futures_util::future::BoxFuture<'static, bool> + Clone + Send + 'static {
    let client = client.clone();
    move |_| {
        let mut client = client.clone();
        Box::pin(async move { client.unary(small()).await.is_ok() })
    }
}

fn table_row(out: &mut String, series: &Series, bound: Option<f64>, connections: &str) {
    let rate = series.median_per_second();
    let (client_cpu, server_cpu) = series.median_cpu_per_call();
    let share = bound.map_or_else(|| "".to_owned(), |b| format!("{:.0} %", 100.0 * rate / b));
    let _ = writeln!(
        out,
        "| {} | {rate:.0} | {share} | {client_cpu:.1} | {server_cpu:.1} | {connections} | {} |",
        series.label,
        series.failures()
    );
}

const TABLE_HEAD: &str = "| configuration | median calls/s | of bound | client CPU µs/call | server CPU µs/call | connections | failed calls |\n|---|---:|---:|---:|---:|---:|---:|\n";

/// S1: a server that allows 8 streams per connection, 10 ms per call, 128 callers.
pub(crate) async fn s1(ctx: &Context, out: &str) -> Section {
    const CALLERS: usize = 128;
    let bound = CALLERS as f64 / 0.010;
    let pool = pool(&ctx.limited, |b| b.max_connections(16)).await;
    let pooled = PooledBenchClient::new(pool.clone());
    let single = BenchClient::new(channel(&ctx.limited).await);
    let mut sixteen = Vec::new();
    for _ in 0..16 {
        sixteen.push(BenchClient::new(channel(&ctx.limited).await));
    }
    let sixteen = Arc::new(sixteen);
    let next = Arc::new(AtomicUsize::new(0));
    let round_robin = move |_| {
        let mut client = sixteen[next.fetch_add(1, Ordering::Relaxed) % 16].clone();
        Box::pin(async move { client.unary(small()).await.is_ok() })
            as futures_util::future::BoxFuture<'static, bool>
    };

    let warm = Duration::from_millis(500);
    closed_loop(CALLERS, warm, ctx.server_pid, pooled_calls(&pooled)).await;
    closed_loop(CALLERS, warm, ctx.server_pid, channel_calls(&single)).await;
    closed_loop(CALLERS, warm, ctx.server_pid, round_robin.clone()).await;

    let mut a = Series::new("pooled-client, max_connections 16");
    let mut b = Series::new("one tonic Channel");
    let mut c = Series::new("16 tonic Channels, round robin");
    // The pool runs first in even rounds and last in odd ones, so that
    // whatever the order favours does not favour one side.
    for round in 0..ctx.rounds {
        if round % 2 == 0 {
            a.rounds
                .push(closed_loop(CALLERS, ctx.round, ctx.server_pid, pooled_calls(&pooled)).await);
        }
        b.rounds
            .push(closed_loop(CALLERS, ctx.round, ctx.server_pid, channel_calls(&single)).await);
        c.rounds
            .push(closed_loop(CALLERS, ctx.round, ctx.server_pid, round_robin.clone()).await);
        if round % 2 == 1 {
            a.rounds
                .push(closed_loop(CALLERS, ctx.round, ctx.server_pid, pooled_calls(&pooled)).await);
        }
    }
    let stats = pool.stats();

    // The chart: the pool and one Channel across concurrency levels.
    let mut pool_points = Vec::new();
    let mut channel_points = Vec::new();
    for callers in [1usize, 4, 16, 32, 64, 128, 256] {
        let second = Duration::from_secs(1);
        let p = closed_loop(callers, second, ctx.server_pid, pooled_calls(&pooled)).await;
        let s = closed_loop(callers, second, ctx.server_pid, channel_calls(&single)).await;
        pool_points.push((callers as f64, p.per_second()));
        channel_points.push((callers as f64, s.per_second()));
    }
    let svg = format!("{out}/s1-concurrency.svg");
    let chart_note = match chart::draw(
        &svg,
        "S1: 8 streams per connection, 10 ms per call",
        &[
            ("pooled-client (max 16)", pool_points.clone()),
            ("one tonic Channel", channel_points.clone()),
        ],
        Some(bound),
    ) {
        Ok(()) => "![calls per second against concurrent callers](s1-concurrency.svg)\n".to_owned(),
        Err(error) => format!("(chart not drawn: {error})\n"),
    };
    pool.close().await;

    let mut body = format!(
        "The server advertises `SETTINGS_MAX_CONCURRENT_STREAMS = 8` and takes 10 ms per call; \
         {CALLERS} callers loop on small unary calls. Little's law bounds the rate at \
         {CALLERS} / 10 ms = {bound:.0} calls/s (tokio's timer adds up to 1 ms to each 10 ms wait, \
         so about {:.0} calls/s is the practical bound).\n\n{TABLE_HEAD}",
        CALLERS as f64 / 0.0105
    );
    table_row(
        &mut body,
        &a,
        Some(bound),
        &stats.connects_total.to_string(),
    );
    table_row(&mut body, &b, Some(bound), "1");
    table_row(&mut body, &c, Some(bound), "16");
    let vs_single = median_ratio(&a, &b);
    let vs_sixteen = median_ratio(&a, &c);
    let _ = write!(
        body,
        "\nMedian of per-round ratios: pool / one Channel = **{vs_single:.1}x**; \
         pool / 16 Channels = **{vs_sixteen:.2}x**.\n\n{chart_note}\n\
         | callers | pooled-client calls/s | one Channel calls/s |\n|---:|---:|---:|\n"
    );
    for ((callers, p), (_, s)) in pool_points.iter().zip(&channel_points) {
        let _ = writeln!(body, "| {callers:.0} | {p:.0} | {s:.0} |");
    }
    let rate = a.median_per_second();
    Section {
        title: "S1: a server that limits streams".into(),
        body,
        targets: vec![
            (
                format!(
                    "pool at least 85 % of the bound ({:.0} %)",
                    100.0 * rate / bound
                ),
                rate >= 0.85 * bound,
            ),
            (
                format!("pool at least 10x one Channel ({vs_single:.1}x)"),
                vs_single >= 10.0,
            ),
            (
                format!(
                    "no more connections than needed ({} opened for 128 / 8 = 16)",
                    stats.connects_total
                ),
                stats.connects_total <= 16,
            ),
        ],
    }
}

/// S2: the pool against dialing a new connection for every call.
pub(crate) async fn s2(ctx: &Context) -> Section {
    const CALLERS: usize = 16;
    let pool = pool(&ctx.open, |b| b).await;
    let pooled = PooledBenchClient::new(pool.clone());
    let uri = ctx.open.clone();
    let dial = move |_| {
        let uri = uri.clone();
        Box::pin(async move {
            let Ok(endpoint) = Endpoint::from_shared(uri) else {
                return false;
            };
            match endpoint.connect().await {
                Ok(channel) => BenchClient::new(channel).unary(small()).await.is_ok(),
                Err(_) => false,
            }
        }) as futures_util::future::BoxFuture<'static, bool>
    };
    let round = ctx.round.min(Duration::from_secs(1));
    closed_loop(
        CALLERS,
        Duration::from_millis(300),
        ctx.server_pid,
        pooled_calls(&pooled),
    )
    .await;
    closed_loop(
        CALLERS,
        Duration::from_millis(300),
        ctx.server_pid,
        dial.clone(),
    )
    .await;
    let mut a = Series::new("pooled-client");
    let mut b = Series::new("Endpoint::connect per call");
    for index in 0..ctx.rounds {
        if index % 2 == 0 {
            a.rounds
                .push(closed_loop(CALLERS, round, ctx.server_pid, pooled_calls(&pooled)).await);
        }
        b.rounds
            .push(closed_loop(CALLERS, round, ctx.server_pid, dial.clone()).await);
        if index % 2 == 1 {
            a.rounds
                .push(closed_loop(CALLERS, round, ctx.server_pid, pooled_calls(&pooled)).await);
        }
    }
    let connections = pool.stats().connects_total;
    pool.close().await;
    let mut body = format!(
        "{CALLERS} callers make small unary calls to a server without latency; rounds of {round:?}.\n\n{TABLE_HEAD}"
    );
    table_row(&mut body, &a, None, &connections.to_string());
    table_row(&mut body, &b, None, "one per call");
    let ratio = median_ratio(&a, &b);
    let _ = writeln!(
        body,
        "\nMedian of per-round ratios: pool / dial per call = **{ratio:.1}x**."
    );
    Section {
        title: "S2: dialing per call".into(),
        body,
        targets: vec![(
            format!("pool at least 20x dialing per call ({ratio:.1}x)"),
            ratio >= 20.0,
        )],
    }
}

/// The client that S3 runs under callgrind: `calls` sequential unary calls.
pub(crate) fn s3_client(kind: &str, calls: usize, uri: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        #[cfg(feature = "metrics")]
        if kind == "pool-metrics" {
            // A recorder as a service would install one: gRPC A66's
            // per-call metrics are then recorded for every call.
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .expect("the only recorder");
        }
        match kind {
            "pool" | "pool-config" | "pool-metrics" => {
                let mut builder = Pool::builder().endpoint(uri);
                if kind == "pool-config" {
                    builder = builder.service_config(other_methods_config());
                }
                let pool = builder.build().expect("pool");
                let client = PooledBenchClient::new(pool);
                for _ in 0..calls {
                    client.unary(small()).await.expect("call");
                }
            }
            "pick" => {
                // S4's pick and release alone, counted by callgrind.
                let pool = Pool::builder().endpoint(uri).build().expect("pool");
                pool.ready().await.expect("ready");
                for _ in 0..calls {
                    assert!(pooled_client::__private::bench_pick_release(&pool));
                }
            }
            "h2-direct" => {
                let addr = uri.trim_start_matches("http://");
                let transport = crate::h2direct::H2Direct::connect(addr)
                    .await
                    .expect("connect");
                let origin: http::Uri = uri.parse().expect("uri");
                let mut client = BenchClient::with_origin(transport, origin);
                for _ in 0..calls {
                    client.unary(small()).await.expect("call");
                }
            }
            _ => {
                let mut client = BenchClient::new(channel(uri).await);
                for _ in 0..calls {
                    client.unary(small()).await.expect("call");
                }
            }
        }
    });
}

/// A service config that names methods other than the one S3 calls, as a
/// real one would: S3 measures what looking the call's method up costs.
fn other_methods_config() -> pooled_client::ServiceConfig {
    pooled_client::ServiceConfig::from_json(
        r#"{"methodConfig": [
            {"name": [{"service": "bench.Bench", "method": "Download"}], "timeout": "10s",
             "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.1s", "maxBackoff": "1s",
                             "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}},
            {"name": [{"service": "other.Service"}], "waitForReady": true}
        ]}"#,
    )
    .expect("a valid service config")
}

/// Runs one configuration's small unary calls alone and prints the rate.
pub(crate) fn load_alone(kind: &str, callers: usize, duration: Duration, uri: &str) {
    let runtime = crate::measure::one_worker_runtime();
    runtime.block_on(async {
        let round = if kind == "pool" || kind == "pool-no-quickack" {
            let quickack = kind == "pool";
            let pooled = PooledBenchClient::new(pool(uri, |b| b.tcp_quickack(quickack)).await);
            closed_loop(callers, duration, 0, pooled_calls(&pooled)).await
        } else {
            let single = BenchClient::new(channel(uri).await);
            closed_loop(callers, duration, 0, channel_calls(&single)).await
        };
        println!(
            "{kind}: {} calls, {:.0} calls/s",
            round.calls,
            round.per_second()
        );
    });
}

fn callgrind_instructions(kind: &str, calls: usize, uri: &str) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = std::process::Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(exe)
        .args([
            "--s3-client",
            kind,
            "--calls",
            &calls.to_string(),
            "--uri",
            uri,
        ])
        .output()
        .map_err(|e| format!("valgrind: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "valgrind failed: {}",
            stderr.lines().last().unwrap_or("")
        ));
    }
    stderr
        .lines()
        .find_map(|line| {
            line.split_once("Collected :")
                .map(|(_, n)| n.trim().to_owned())
        })
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| "no 'Collected' line in callgrind's output".to_owned())
}

/// S3: instructions per unary call in the client, pooled wrapper against a Channel.
pub(crate) fn s3(ctx: &Context) -> Section {
    const FEW: usize = 1_000;
    const MANY: usize = 3_000;
    let mut body = format!(
        "Instructions executed by the client process, counted by `valgrind --tool=callgrind` for \
         {FEW} and {MANY} sequential unary calls on a current-thread runtime; \
         (I({MANY}) - I({FEW})) / {} cancels start-up and connection set-up. The counts \
         are repeatable run to run.\n\n| client | I({FEW}) | I({MANY}) | instructions per call |\n|---|---:|---:|---:|\n",
        MANY - FEW
    );
    let mut per_call = Vec::new();
    for (kind, label) in [
        ("pool", "PooledBenchClient over Pool"),
        ("channel", "BenchClient over one Channel"),
        (
            "pool-config",
            "PooledBenchClient over Pool with a service config naming other methods",
        ),
    ] {
        let few = callgrind_instructions(kind, FEW, &ctx.open);
        let many = callgrind_instructions(kind, MANY, &ctx.open);
        match (few, many) {
            (Ok(few), Ok(many)) => {
                let each = (many.saturating_sub(few)) as f64 / (MANY - FEW) as f64;
                let _ = writeln!(body, "| {label} | {few} | {many} | {each:.0} |");
                per_call.push(each);
            }
            (Err(e), _) | (_, Err(e)) => {
                let _ = writeln!(body, "| {label} | not measured: {e} | | |");
            }
        }
    }
    let targets = if let [pool, channel, configured] = per_call[..] {
        let ratio = pool / channel;
        let config_ratio = configured / pool;
        let _ = writeln!(
            body,
            "\npool / Channel = **{ratio:.3}x** instructions per call; with the service config / \
             without = **{config_ratio:.3}x**."
        );
        vec![
            (
                format!("at most 0.9x the Channel's instructions ({ratio:.3}x)"),
                ratio <= 0.9,
            ),
            (format!("never above 1.05x ({ratio:.3}x)"), ratio <= 1.05),
            (
                format!(
                    "a service config naming other methods costs at most 3 % ({config_ratio:.3}x)"
                ),
                config_ratio <= 1.03,
            ),
        ]
    } else {
        vec![(
            "instructions measured (valgrind missing?)".to_owned(),
            false,
        )]
    };
    Section {
        title: "S3: client cost per call".into(),
        body,
        targets,
    }
}

struct Trivial;

impl deadpool::managed::Manager for Trivial {
    type Type = u64;
    type Error = std::convert::Infallible;

    async fn create(&self) -> Result<u64, Self::Error> {
        Ok(0)
    }

    async fn recycle(
        &self,
        _: &mut u64,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Self::Error> {
        Ok(())
    }
}

struct TrivialBb8;

impl bb8::ManageConnection for TrivialBb8 {
    type Connection = u64;
    type Error = std::convert::Infallible;

    async fn connect(&self) -> Result<u64, Self::Error> {
        Ok(0)
    }

    async fn is_valid(&self, _: &mut u64) -> Result<(), Self::Error> {
        Ok(())
    }

    fn has_broken(&self, _: &mut u64) -> bool {
        false
    }
}

/// Nanoseconds per operation of `op` run `n` times on each of `threads` threads.
pub(crate) fn ns_per_op(threads: usize, n: u64, op: impl Fn() + Sync) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let op = &op;
            scope.spawn(move || {
                if threads > 1 {
                    pin_current_thread(&t.to_string());
                }
                for _ in 0..n {
                    op();
                }
            });
        }
    });
    started.elapsed().as_nanos() as f64 / n as f64
}

/// S4: the pick: take a stream slot and give it back, against deadpool and bb8.
pub(crate) async fn s4(ctx: &Context, cores: usize) -> Section {
    const N: u64 = 1_000_000;
    let pool = pool(&ctx.open, |b| b.max_connections(1)).await;
    let deadpool: deadpool::managed::Pool<Trivial> = deadpool::managed::Pool::builder(Trivial)
        .max_size(16)
        .build()
        .expect("deadpool");
    let bb8 = bb8::Pool::builder()
        .max_size(16)
        .build(TrivialBb8)
        .await
        .expect("bb8");
    let handle = tokio::runtime::Handle::current();

    let mut rows = Vec::new();
    let thread_counts: &[usize] = if cores >= 2 { &[1, 2] } else { &[1] };
    for &threads in thread_counts {
        let mut ours = Vec::new();
        let mut dp = Vec::new();
        let mut b8 = Vec::new();
        for _ in 0..ctx.rounds {
            ours.push(tokio::task::block_in_place(|| {
                ns_per_op(threads, N, || {
                    assert!(pooled_client::__private::bench_pick_release(&pool));
                })
            }));
            dp.push(tokio::task::block_in_place(|| {
                ns_per_op(threads, N / 10, || {
                    handle.block_on(async { drop(deadpool.get().await.expect("deadpool get")) });
                })
            }));
            b8.push(tokio::task::block_in_place(|| {
                ns_per_op(threads, N / 10, || {
                    handle.block_on(async { drop(bb8.get().await.expect("bb8 get")) });
                })
            }));
        }
        rows.push((threads, median(ours), median(dp), median(b8)));
    }
    pool.close().await;
    let mut body = format!(
        "Median over {} rounds of nanoseconds per take-and-give-back, per thread, with every thread \
         doing it at once (2 threads pinned to 2 cores). pooled-client's pick reserves a stream slot on \
         the least-loaded connection (here 1 connection) and its drop guard releases it; deadpool's \
         and bb8's `get` check an object out of a pool of 16 trivial objects and return it on drop \
         (their numbers include a `block_on`, which their async API needs).\n\n\
         | threads | pooled-client pick + release | deadpool get + return | bb8 get + return |\n|---:|---:|---:|---:|\n",
        ctx.rounds
    );
    for (threads, ours, dp, b8) in &rows {
        let _ = writeln!(
            body,
            "| {threads} | {ours:.1} ns | {dp:.1} ns | {b8:.1} ns |"
        );
    }
    let single = rows.first().map_or(f64::NAN, |r| r.1);
    Section {
        title: "S4: the pick".into(),
        body,
        targets: vec![(
            format!("at most 25 ns single-threaded ({single:.1} ns)"),
            single <= 25.0,
        )],
    }
}

/// `message` as gRPC frames it on the wire: not compressed, its 4-byte
/// length, then the message.
pub(crate) fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

fn h2load(uri: &str, callers: usize, seconds: u64) -> Result<f64, String> {
    // The protobuf Payload h2load sends, framed.
    let message = [0x0a, 16]
        .iter()
        .copied()
        .chain(*b"0123456789abcdef")
        .collect::<Vec<u8>>();
    let frame = grpc_frame(&message);
    let body = std::env::temp_dir().join("pooled-client-bench-frame.bin");
    std::fs::write(&body, frame).map_err(|e| e.to_string())?;
    let output = std::process::Command::new("taskset")
        .args(["-c", "0", "h2load", "-c", "1", "-m"])
        .arg(callers.to_string())
        .args(["-D", &seconds.to_string(), "-d"])
        .arg(&body)
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .arg(format!("{uri}/bench.Bench/Unary"))
        .output()
        .map_err(|e| format!("h2load: {e} (install Debian's nghttp2-client)"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find(|line| line.starts_with("finished in"))
        .and_then(|line| line.split(',').nth(1))
        .and_then(|part| part.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            format!(
                "unexpected h2load output: {}",
                text.lines().take(3).collect::<Vec<_>>().join(" / ")
            )
        })
}

/// S5: a server without limits or latency, 64 callers; h2load as the physical reference.
pub(crate) async fn s5(ctx: &Context) -> Section {
    const CALLERS: usize = 64;
    let pool = pool(&ctx.open, |b| b).await;
    let pooled = PooledBenchClient::new(pool.clone());
    let single = BenchClient::new(channel(&ctx.open).await);
    let warm = Duration::from_millis(500);
    closed_loop(CALLERS, warm, ctx.server_pid, pooled_calls(&pooled)).await;
    closed_loop(CALLERS, warm, ctx.server_pid, channel_calls(&single)).await;
    let mut a = Series::new("pooled-client (defaults)");
    let mut b = Series::new("one tonic Channel");
    let mut reference = Vec::new();
    let mut reference_error = None;
    for round in 0..ctx.rounds {
        if round % 2 == 0 {
            a.rounds
                .push(closed_loop(CALLERS, ctx.round, ctx.server_pid, pooled_calls(&pooled)).await);
        }
        b.rounds
            .push(closed_loop(CALLERS, ctx.round, ctx.server_pid, channel_calls(&single)).await);
        if round % 2 == 1 {
            a.rounds
                .push(closed_loop(CALLERS, ctx.round, ctx.server_pid, pooled_calls(&pooled)).await);
        }
        let seconds = ctx.round.as_secs().max(1);
        let uri = ctx.open.clone();
        match tokio::task::spawn_blocking(move || h2load(&uri, CALLERS, seconds)).await {
            Ok(Ok(rate)) => reference.push(rate),
            Ok(Err(e)) => reference_error = Some(e),
            Err(e) => reference_error = Some(e.to_string()),
        }
    }
    let connections = pool.stats().connects_total;
    pool.close().await;
    let mut body =
        format!("{CALLERS} callers, small unary calls, no server latency.\n\n{TABLE_HEAD}");
    table_row(&mut body, &a, None, &connections.to_string());
    table_row(&mut body, &b, None, "1");
    let ratio = median_ratio(&a, &b);
    let _ = writeln!(
        body,
        "\nMedian of per-round ratios: pool / one Channel = **{ratio:.2}x**."
    );
    if reference.is_empty() {
        let _ = writeln!(
            body,
            "\nh2load not measured: {}",
            reference_error.unwrap_or_default()
        );
    } else {
        let h2 = median(reference);
        let _ = writeln!(
            body,
            "\nh2load (C, nghttp2) with the same connections ({connections}) and {CALLERS} streams: \
             median **{h2:.0} calls/s**; pool / h2load = **{:.2}x**.",
            a.median_per_second() / h2
        );
    }
    Section {
        title: "S5: an unconstrained server".into(),
        body,
        targets: vec![(
            format!("pool at least matches the Channel ({ratio:.2}x)"),
            ratio >= 1.0,
        )],
    }
}

/// The bytes a download call brought, 0 if it failed.
async fn downloaded_bytes(
    response: Result<tonic::Response<tonic::Streaming<Payload>>, tonic::Status>,
) -> u64 {
    let Ok(response) = response else {
        return 0;
    };
    response
        .into_inner()
        .map(|p| p.map_or(0, |p| p.data.len() as u64))
        .fold(0, |a, b| async move { a + b })
        .await
}

/// One S6 round: 4 callers download 1 MiB messages while 32 make small calls.
async fn mixed_round(
    small_calls: impl Fn(usize) -> futures_util::future::BoxFuture<'static, bool>
    + Clone
    + Send
    + 'static,
    download: impl Fn() -> futures_util::future::BoxFuture<'static, u64> + Clone + Send + 'static,
    duration: Duration,
    server_pid: u32,
) -> MixedRound {
    let server = server_pid.to_string();
    let (client_before, server_before) = (cpu_time("self"), cpu_time(&server));
    let end = Instant::now() + duration;
    let bytes = Arc::new(AtomicU64::new(0));
    let downloaders: Vec<_> = (0..4)
        .map(|_| {
            let download = download.clone();
            let bytes = bytes.clone();
            tokio::spawn(async move {
                while Instant::now() < end {
                    bytes.fetch_add(download().await, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let callers: Vec<_> = (0..32)
        .map(|i| {
            let call = small_calls.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < end {
                    let started = Instant::now();
                    if call(i).await {
                        latencies.push(started.elapsed());
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for caller in callers {
        latencies.extend(caller.await.unwrap_or_default());
    }
    for downloader in downloaders {
        let _ = downloader.await;
    }
    latencies.sort();
    MixedRound {
        latencies,
        bytes: bytes.load(Ordering::Relaxed),
        client_cpu: cpu_time("self").saturating_sub(client_before),
        server_cpu: cpu_time(&server).saturating_sub(server_before),
    }
}

/// What one S6 round measured.
struct MixedRound {
    /// The small calls' latencies, sorted.
    latencies: Vec<Duration>,
    /// The bytes the downloads brought.
    bytes: u64,
    client_cpu: Duration,
    server_cpu: Duration,
}

/// A download of 4 messages of 1 MiB through the pooled wrapper.
fn pooled_downloads(
    client: &PooledBenchClient,
) -> impl Fn() -> futures_util::future::BoxFuture<'static, u64> + Clone + Send + 'static {
    let client = client.clone();
    move || {
        let client = client.clone();
        Box::pin(async move { downloaded_bytes(client.download(MIXED_DOWNLOAD).await).await })
    }
}

/// A download of 4 messages of 1 MiB through tonic's client over a Channel.
fn channel_downloads(
    client: &BenchClient<Channel>,
) -> impl Fn() -> futures_util::future::BoxFuture<'static, u64> + Clone + Send + 'static {
    let client = client.clone();
    move || {
        let mut client = client.clone();
        Box::pin(async move { downloaded_bytes(client.download(MIXED_DOWNLOAD).await).await })
    }
}

/// What every S6 download asks for.
const MIXED_DOWNLOAD: DownloadRequest = DownloadRequest {
    size: 1 << 20,
    count: 4,
};

/// S6's pool: 4 connections open, `tcp_quickack` as given.
async fn mixed_pool(uri: &str, quickack: bool) -> (Pool, PooledBenchClient) {
    let pool = pool(uri, |b| {
        b.min_connections(4)
            .max_connections(4)
            .tcp_quickack(quickack)
    })
    .await;
    while pool.stats().connections < 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let client = PooledBenchClient::new(pool.clone()).max_decoding_message_size(2 << 20);
    (pool, client)
}

/// S6: small calls' latency while large messages stream.
pub(crate) async fn s6(ctx: &Context) -> Section {
    let (pool, pooled) = mixed_pool(&ctx.open, true).await;
    let (slow_pool, slow_acks) = mixed_pool(&ctx.open, false).await;
    let single = BenchClient::new(channel(&ctx.open).await).max_decoding_message_size(2 << 20);
    let mut rows: [[Vec<f64>; 6]; 3] = Default::default();
    for _ in 0..ctx.rounds {
        let (round, pid) = (ctx.round, ctx.server_pid);
        let sides = [
            mixed_round(pooled_calls(&pooled), pooled_downloads(&pooled), round, pid).await,
            mixed_round(
                pooled_calls(&slow_acks),
                pooled_downloads(&slow_acks),
                round,
                pid,
            )
            .await,
            mixed_round(
                channel_calls(&single),
                channel_downloads(&single),
                round,
                pid,
            )
            .await,
        ];
        let seconds = round.as_secs_f64();
        for (row, side) in rows.iter_mut().zip(sides) {
            row[0].push(percentile(&side.latencies, 0.5).as_secs_f64() * 1e3);
            row[1].push(percentile(&side.latencies, 0.99).as_secs_f64() * 1e3);
            row[2].push(side.bytes as f64 / f64::from(1u32 << 20) / seconds);
            row[3].push(side.latencies.len() as f64 / seconds);
            row[4].push(side.client_cpu.as_secs_f64() / seconds * 100.0);
            row[5].push(side.server_cpu.as_secs_f64() / seconds * 100.0);
        }
    }
    pool.close().await;
    slow_pool.close().await;
    let mut body = "4 callers download 1 MiB messages (4 per call) in a loop while 32 callers make \
        small unary calls; latency of the small calls, medians over rounds. The pool is set to 4 \
        connections (`min_connections(4)`), so the small calls spread over connections that the \
        downloads do not fill; with default settings it would keep them on one connection, like a \
        Channel, since 36 streams fit in one. The client's and the server's CPU are each pinned \
        to one core, so the small calls and the downloads share them: a client whose small calls \
        are quicker makes more of them. The benchmark server leaves Nagle's algorithm on; the \
        second row shows the pool without `tcp_quickack`, when the server's small writes wait \
        for the client's delayed ACKs.\n\n\
        | configuration | small calls p50 | small calls p99 | downloaded MiB/s | small calls/s | client CPU | server CPU |\n\
        |---|---:|---:|---:|---:|---:|---:|\n"
        .to_owned();
    let labels = [
        "pooled-client, 4 connections",
        "pooled-client, 4 connections, `tcp_quickack(false)`",
        "one tonic Channel",
    ];
    let mut p99s = Vec::new();
    for (label, row) in labels.iter().zip(rows) {
        let [p50, p99, rate, calls, client, server] = row.map(median);
        p99s.push(p99);
        let _ = writeln!(
            body,
            "| {label} | {p50:.2} ms | {p99:.2} ms | {rate:.0} | {calls:.0} | {client:.0} % | {server:.0} % |"
        );
    }
    Section {
        title: "S6: mixed payloads".into(),
        body,
        targets: vec![(
            format!(
                "report only (p99 pool {:.2} ms vs Channel {:.2} ms)",
                p99s[0], p99s[2]
            ),
            true,
        )],
    }
}

fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model}, Linux {}", kernel.trim())
}

/// The whole report.
pub(crate) fn report(
    sections: &[Section],
    args: &[String],
    took: Duration,
    cores: usize,
    rounds: usize,
    seconds: f64,
) -> String {
    let extra: Vec<&str> = args
        .iter()
        .skip(1)
        .filter(|a| *a != "--bench")
        .map(String::as_str)
        .collect();
    let command = if extra.is_empty() {
        "cargo bench -p pooled-client-examples --bench pool".to_owned()
    } else {
        format!(
            "cargo bench -p pooled-client-examples --bench pool -- {}",
            extra.join(" ")
        )
    };
    let mut out = format!(
        "# Benchmarks\n\nProduced by `{command}` in {took:.0?}.\n\n\
         Machine: {cores} cores, {}. The server runs in its own process pinned to core 1; the \
         client is pinned to core 0 with a one-worker tokio runtime. Each comparison alternates its \
         configurations for {rounds} rounds of {seconds} s after a warm-up, the pool first in even \
         rounds and last in odd ones, and reports medians; ratios are the median of per-round ratios. CPU time per call comes from /proc (user + system, \
         the scheduler's nanoseconds per thread from `schedstat`).\n\n## Targets\n\n| target | met |\n|---|---|\n",
        machine()
    );
    for section in sections {
        for (target, met) in &section.targets {
            let _ = writeln!(
                out,
                "| {}: {target} | {} |",
                section.title.split(':').next().unwrap_or(""),
                if *met { "yes" } else { "**no**" }
            );
        }
    }
    for section in sections {
        let _ = write!(out, "\n## {}\n\n{}", section.title, section.body);
    }
    out
}
