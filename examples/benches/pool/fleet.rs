//! S7 to S9, against fleets of servers: how calls spread (S7), the latency
//! of calls when one server of four is slow (S8), and what the pick and an
//! idle connection cost as the fleet grows (S9).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use pooled_client::Pool;
use pooled_client_examples::bench::bench_client::BenchClient;
use pooled_client_examples::bench::{Payload, PooledBenchClient};
use tonic::transport::{Channel, Endpoint};

use crate::measure::{closed_loop, median, percentile};
use crate::scenarios::{Section, ns_per_op, small};
use crate::{Context, Server, chart, start_server};

/// The fleet process's servers: sixteen 1 ms ones, then the 21 ms one.
const SERVERS: usize = 17;
/// The slow server's index.
const SLOW: usize = 16;
/// Load before the measured rounds, so that every client has connected and
/// the pool has measured its endpoints.
const WARM_UP: Duration = Duration::from_millis(500);

/// Calls counted per server, by the index each puts in its `server` header.
#[derive(Default)]
struct Tally {
    calls: [AtomicU64; SERVERS],
}

impl Tally {
    fn count(&self, metadata: &tonic::metadata::MetadataMap) {
        let index = metadata
            .get("server")
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        if let Some(counter) = index.and_then(|i| self.calls.get(i)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts of `servers` since the last take; every count restarts.
    fn take(&self, servers: &[usize]) -> Vec<u64> {
        let all: Vec<u64> = self
            .calls
            .iter()
            .map(|c| c.swap(0, Ordering::Relaxed))
            .collect();
        servers.iter().map(|&s| all[s]).collect()
    }
}

/// One way of reaching the fleet.
#[derive(Clone)]
enum Client {
    Pool(PooledBenchClient),
    /// tonic's `Channel::balance_list`.
    Balanced(BenchClient<Channel>),
    /// One Channel per server, one picked at random per call.
    Random(Vec<BenchClient<Channel>>),
}

impl Client {
    async fn unary(&self) -> Result<tonic::Response<Payload>, tonic::Status> {
        match self {
            Client::Pool(c) => c.unary(small()).await,
            Client::Balanced(c) => c.clone().unary(small()).await,
            Client::Random(cs) => cs[fastrand::usize(..cs.len())].clone().unary(small()).await,
        }
    }
}

/// Caller `i` calls through `clients[i % len]`, counting which server
/// answered and how long the call took.
fn calls(
    clients: Vec<Client>,
    tally: Arc<Tally>,
    latencies: Arc<Mutex<Vec<Duration>>>,
) -> impl Fn(usize) -> BoxFuture<'static, bool> + Clone + Send + 'static {
    move |caller| {
        let client = clients[caller % clients.len()].clone();
        let (tally, latencies) = (tally.clone(), latencies.clone());
        Box::pin(async move {
            let started = Instant::now();
            let Ok(response) = client.unary().await else {
                return false;
            };
            let took = started.elapsed();
            tally.count(response.metadata());
            latencies.lock().expect("latencies").push(took);
            true
        })
    }
}

/// A pool with defaults over `uris`, once it has a connection to each.
async fn fleet_pool(uris: &[String]) -> Pool {
    let pool = uris
        .iter()
        .fold(Pool::builder(), |b, uri| b.endpoint(uri.as_str()))
        .acquire_timeout(Duration::from_secs(30))
        .build()
        .expect("pool settings");
    let started = Instant::now();
    while pool.stats().connections < uris.len() && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pool
}

/// The URIs of `servers` (indices into the fleet process's listeners).
fn fleet_uris(fleet: &Server, servers: &[usize]) -> Vec<String> {
    let mut all = fleet.uris("fleet");
    all.extend(fleet.uris("slow"));
    servers.iter().map(|&s| all[s].clone()).collect()
}

/// One S7 scenario: servers, pools (separate clients) and callers.
struct Spread {
    label: &'static str,
    servers: Vec<usize>,
    pools: usize,
    callers: usize,
    /// The bounds each server's share must stay within, relative to even.
    bounds: (f64, f64),
}

fn spreads() -> Vec<Spread> {
    vec![
        Spread {
            label: "4 servers, 8 callers",
            servers: (0..4).collect(),
            pools: 1,
            callers: 8,
            bounds: (0.8, 1.2),
        },
        Spread {
            label: "two pools, 4 servers, 8 callers each",
            servers: (0..4).collect(),
            pools: 2,
            callers: 16,
            bounds: (0.8, 1.2),
        },
        Spread {
            label: "16 servers, 32 callers",
            servers: (0..16).collect(),
            pools: 1,
            callers: 32,
            bounds: (0.5, 1.5),
        },
        Spread {
            label: "1 of 4 servers 20 ms slower (listed first)",
            servers: vec![SLOW, 0, 1, 2],
            pools: 1,
            callers: 8,
            bounds: (0.0, 0.25),
        },
    ]
}

/// Each server's share of `counts`, relative to an even share (1.0).
fn relative(counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    let even = total.max(1) as f64 / counts.len() as f64;
    counts.iter().map(|&c| c as f64 / even).collect()
}

/// Runs one spread: a warm-up, then `ctx.rounds` rounds; each round's
/// relative shares, server by server.
async fn spread_rounds(ctx: &Context, fleet: &Server, spread: &Spread) -> Vec<Vec<f64>> {
    let uris = fleet_uris(fleet, &spread.servers);
    let mut pools = Vec::new();
    for _ in 0..spread.pools {
        pools.push(fleet_pool(&uris).await);
    }
    let clients = pools
        .iter()
        .map(|p| Client::Pool(PooledBenchClient::new(p.clone())))
        .collect();
    let tally = Arc::new(Tally::default());
    let load = calls(clients, tally.clone(), Arc::default());
    closed_loop(spread.callers, WARM_UP, fleet.pid(), load.clone()).await;
    tally.take(&spread.servers);
    let mut rounds = Vec::new();
    for _ in 0..ctx.rounds {
        closed_loop(spread.callers, ctx.round, fleet.pid(), load.clone()).await;
        rounds.push(relative(&tally.take(&spread.servers)));
    }
    for pool in pools {
        pool.close().await;
    }
    rounds
}

/// S7: each server's share of the calls in the four scenarios of the
/// load-balancing issue.
pub(crate) async fn s7(ctx: &Context, fleet: &Server, out: &str) -> Section {
    let mut body = format!(
        "Servers answer small unary calls in 1 ms (the slow one in 21 ms), all in one process \
         pinned to core 1; pools with default settings. After {WARM_UP:?} of warm-up, {} rounds of \
         {:?}; a share is a server's fraction of a round's calls relative to an even share (1.0). \
         The slow server is listed first, where a pool that favours the first endpoint would send \
         everything.\n\n\
         | scenario | median shares, server by server | lowest and highest of any round | bounds |\n|---|---|---|---|\n",
        ctx.rounds, ctx.round
    );
    let mut targets = Vec::new();
    let mut bars = Vec::new();
    for spread in spreads() {
        let rounds = spread_rounds(ctx, fleet, &spread).await;
        let medians: Vec<f64> = (0..spread.servers.len())
            .map(|s| median(rounds.iter().map(|r| r[s]).collect()))
            .collect();
        let (low, high) = if spread.servers[0] == SLOW {
            let slow: Vec<f64> = rounds.iter().map(|r| r[0]).collect();
            (
                slow.iter().copied().fold(f64::MAX, f64::min),
                slow.iter().copied().fold(0.0, f64::max),
            )
        } else {
            let all = rounds.iter().flatten().copied();
            (
                all.clone().fold(f64::MAX, f64::min),
                all.fold(0.0, f64::max),
            )
        };
        let shown: Vec<String> = medians.iter().map(|m| format!("{m:.2}")).collect();
        let _ = writeln!(
            body,
            "| {} | {} | {low:.2} to {high:.2}{} | {} to {} |",
            spread.label,
            shown.join(" "),
            if spread.servers[0] == SLOW {
                " (the slow server)"
            } else {
                ""
            },
            spread.bounds.0,
            spread.bounds.1
        );
        targets.push((
            format!(
                "{}: every round within {} to {} ({low:.2} to {high:.2})",
                spread.label, spread.bounds.0, spread.bounds.1
            ),
            low >= spread.bounds.0 && high <= spread.bounds.1,
        ));
        bars.push((spread.label, medians));
    }
    let path = format!("{out}/s7-spread.svg");
    match chart::bars(
        &path,
        "S7: each server's share of the calls (1.0 = even)",
        &bars,
    ) {
        Ok(()) => body.push_str("\n![each server's share of calls](s7-spread.svg)\n"),
        Err(e) => eprintln!("S7 chart: {e}"),
    }
    Section {
        title: "S7: spread over a fleet".into(),
        body,
        targets,
    }
}

/// `callers` loops of `client`'s calls for `duration`: their latencies,
/// sorted; `tally` counts the servers that answered.
async fn sorted_latencies(
    fleet: &Server,
    client: &Client,
    callers: usize,
    duration: Duration,
    tally: Arc<Tally>,
) -> Vec<Duration> {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let load = calls(vec![client.clone()], tally, latencies.clone());
    closed_loop(callers, duration, fleet.pid(), load).await;
    let mut latencies = std::mem::take(&mut *latencies.lock().expect("latencies"));
    latencies.sort();
    latencies
}

/// One S8 round's figures for one client: p50, p99, and the slow server's
/// fraction of the calls.
type LatencyRound = (Duration, Duration, f64);

/// S8's three clients over the slow server and three fast ones.
async fn s8_clients(uris: &[String]) -> (Pool, Vec<(&'static str, Client)>) {
    let pool = fleet_pool(uris).await;
    let endpoints = uris
        .iter()
        .map(|u| Endpoint::from_shared(u.clone()).expect("uri"));
    let balanced = BenchClient::new(Channel::balance_list(endpoints));
    let mut per_server = Vec::new();
    for uri in uris {
        let channel = Endpoint::from_shared(uri.clone())
            .expect("uri")
            .connect()
            .await
            .expect("connect a Channel");
        per_server.push(BenchClient::new(channel));
    }
    let clients = vec![
        (
            "pooled-client",
            Client::Pool(PooledBenchClient::new(pool.clone())),
        ),
        ("tonic `Channel::balance_list`", Client::Balanced(balanced)),
        (
            "one Channel per server, picked at random",
            Client::Random(per_server),
        ),
    ];
    (pool, clients)
}

/// One round of `client`: 8 callers for `duration`.
async fn latency_round(fleet: &Server, client: &Client, duration: Duration) -> LatencyRound {
    let tally = Arc::new(Tally::default());
    let latencies = sorted_latencies(fleet, client, 8, duration, tally.clone()).await;
    let counts = tally.take(&[SLOW, 0, 1, 2]);
    let slow = counts[0] as f64 / counts.iter().sum::<u64>().max(1) as f64;
    (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        slow,
    )
}

/// S8: the latency of calls when one server of four answers 20 ms slower.
pub(crate) async fn s8(ctx: &Context, fleet: &Server) -> Section {
    let uris = fleet_uris(fleet, &[SLOW, 0, 1, 2]);
    let (pool, clients) = s8_clients(&uris).await;
    for (_, client) in &clients {
        latency_round(fleet, client, WARM_UP).await;
    }
    let mut rounds: Vec<Vec<LatencyRound>> = vec![Vec::new(); clients.len()];
    for round in 0..ctx.rounds {
        // Each client goes first in turn.
        for i in 0..clients.len() {
            let i = (i + round) % clients.len();
            rounds[i].push(latency_round(fleet, &clients[i].1, ctx.round).await);
        }
    }
    pool.close().await;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut body = format!(
        "Three servers answer small unary calls in 1 ms and one (listed first) in 21 ms; 8 callers. \
         After {WARM_UP:?} of warm-up each, {} interleaved rounds of {:?}; medians over rounds. tonic's \
         `balance_list` is tower's power of two choices over connections whose load is always 0, so \
         it picks at random.\n\n\
         | client | p50 | p99 | slow server's share of calls |\n|---|---:|---:|---:|\n",
        ctx.rounds, ctx.round
    );
    for ((label, _), rounds) in clients.iter().zip(&rounds) {
        let p50 = median(rounds.iter().map(|r| ms(r.0)).collect());
        let p99 = median(rounds.iter().map(|r| ms(r.1)).collect());
        let slow = median(rounds.iter().map(|r| r.2).collect());
        let _ = writeln!(
            body,
            "| {label} | {p50:.2} ms | {p99:.2} ms | {:.1} % |",
            slow * 100.0
        );
    }
    let ratio = median(
        rounds[1]
            .iter()
            .zip(&rounds[0])
            .map(|(balanced, pool)| ms(balanced.1) / ms(pool.1))
            .collect(),
    );
    let _ = writeln!(
        body,
        "\nMedian of per-round ratios: `balance_list` p99 / pool p99 = **{ratio:.1}x**."
    );
    Section {
        title: "S8: one slow server of four".into(),
        body,
        targets: vec![(
            format!("pool p99 at least 3x lower than balance_list's ({ratio:.1}x)"),
            ratio >= 3.0,
        )],
    }
}

/// S10's service configs: none, a retry policy, and hedging 50 ms apart.
fn s10_configs() -> [(&'static str, pooled_client::ServiceConfig); 3] {
    let method = |policy: &str| {
        pooled_client::ServiceConfig::from_json(&format!(
            r#"{{"methodConfig": [{{"name": [{{"service": "bench.Bench", "method": "Unary"}}], {policy}}}]}}"#
        ))
        .expect("a valid service config")
    };
    [
        ("no policy", pooled_client::ServiceConfig::default()),
        (
            "retryPolicy (3 attempts on UNAVAILABLE)",
            method(
                r#""retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}"#,
            ),
        ),
        (
            "hedgingPolicy (2 copies, 50 ms apart)",
            method(
                r#""hedgingPolicy": {"maxAttempts": 2, "hedgingDelay": "0.05s", "nonFatalStatusCodes": ["UNAVAILABLE"]}"#,
            ),
        ),
    ]
}

/// S10: one of two servers stalls one call in twenty for 200 ms (the
/// issue's scenario), with few callers and with many, then both do.
pub(crate) async fn s10(ctx: &Context, fleet: &Server) -> Section {
    let stalling = fleet.uris("stalling");
    let mut body = format!(
        "Servers answer small unary calls in 1 ms; a stalling one takes 200 ms more for one call \
         in twenty. Callers loop through a pool over two servers, with each service config in \
         turn; {} interleaved rounds of {:?} after {WARM_UP:?} of warm-up; medians over rounds. \
         \"Slow calls\" are those of 40 ms or more: the calls that met a stall, whether a hedge \
         cut them short (at about 50 ms) or not (200 ms).\n\n\
         Least request keeps most calls off the stalling server by itself: its stalled calls \
         stay in flight for 200 ms, so it looks busy; in equilibrium it takes about a tenth of \
         the calls, and about 0.5 % of all calls meet a stall, too few to reach the p99 (which \
         is then the servers' own time, and no hedge can shorten it) but all of the p99.9. A \
         copy that loses a hedge race is cancelled early; it keeps counting on its server for \
         twice as long as it ran, or the stalling server would look idle sooner and take twice \
         as many calls.\n\n\
         The callers loop (a closed loop), so a stall holds its caller: without hedging, a caller \
         that met a stall waits 200 ms, with it about 50 ms. Hedging thus keeps more callers \
         calling, and the servers busier: compare the calls/s before the percentiles, which are \
         those of more calls in flight.\n",
        ctx.rounds, ctx.round
    );
    let mut targets = Vec::new();
    let one_of_two = [fleet.uri("steady"), stalling[0].clone()];
    for (scenario, uris, callers) in [
        (
            "one of two servers stalls, 8 callers",
            one_of_two.clone(),
            8,
        ),
        ("one of two servers stalls, 64 callers", one_of_two, 64),
        (
            "both servers stall, 8 callers",
            [stalling[0].clone(), stalling[1].clone()],
            8,
        ),
    ] {
        let (table, ratio) = s10_scenario(ctx, fleet, &uris, callers).await;
        let _ = write!(body, "\n### {scenario}\n\n{table}");
        targets.push((
            format!("{scenario}: hedged p99 at most 0.5x the unhedged ({ratio:.2}x)"),
            ratio <= 0.5,
        ));
    }
    Section {
        title: "S10: hedging servers that stall".into(),
        body,
        targets,
    }
}

/// One S10 round's figures for one client.
#[derive(Debug, Clone, Copy)]
struct StallRound {
    p50: Duration,
    p99: Duration,
    p999: Duration,
    /// The fraction of calls that took 40 ms or more.
    slow: f64,
    /// Calls completed per second.
    rate: f64,
}

/// One S10 round of `client`: `callers` loops for `duration`.
async fn stall_round(
    fleet: &Server,
    client: &Client,
    callers: usize,
    duration: Duration,
) -> StallRound {
    let latencies = sorted_latencies(fleet, client, callers, duration, Arc::default()).await;
    let slow = latencies
        .iter()
        .filter(|l| **l >= Duration::from_millis(40))
        .count();
    StallRound {
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        p999: percentile(&latencies, 0.999),
        slow: slow as f64 / latencies.len().max(1) as f64,
        rate: latencies.len() as f64 / duration.as_secs_f64(),
    }
}

/// One S10 scenario over `uris` with `callers`: its table, and the median
/// ratio of the hedged p99 to the unhedged.
async fn s10_scenario(
    ctx: &Context,
    fleet: &Server,
    uris: &[String],
    callers: usize,
) -> (String, f64) {
    let mut clients = Vec::new();
    for (label, config) in s10_configs() {
        let pool = uris
            .iter()
            .fold(Pool::builder(), |b, uri| b.endpoint(uri.as_str()))
            .service_config(config)
            .build()
            .expect("pool settings");
        pool.ready().await.expect("pool ready");
        let client = Client::Pool(PooledBenchClient::new(pool.clone()));
        stall_round(fleet, &client, callers, WARM_UP).await;
        clients.push((label, pool, client));
    }
    let mut rounds: Vec<Vec<StallRound>> = vec![Vec::new(); clients.len()];
    for round in 0..ctx.rounds {
        for i in 0..clients.len() {
            let i = (i + round) % clients.len();
            rounds[i].push(stall_round(fleet, &clients[i].2, callers, ctx.round).await);
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut table =
        "| service config | calls/s | p50 | p99 | p99.9 | slow calls | hedges per call |\n\
        |---|---:|---:|---:|---:|---:|---:|\n"
            .to_owned();
    for ((label, pool, _), rounds) in clients.iter().zip(&rounds) {
        let of = |f: &dyn Fn(&StallRound) -> f64| median(rounds.iter().map(f).collect());
        let calls: u64 = pool.endpoint_stats().iter().map(|e| e.calls).sum();
        let hedges = pool.stats().hedges_total as f64 / calls.max(1) as f64;
        let _ = writeln!(
            table,
            "| {label} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} % | {hedges:.3} |",
            of(&|r| r.rate),
            of(&|r| ms(r.p50)),
            of(&|r| ms(r.p99)),
            of(&|r| ms(r.p999)),
            of(&|r| r.slow * 100.0),
        );
    }
    let ratio_of = |f: fn(&StallRound) -> Duration| {
        median(
            rounds[2]
                .iter()
                .zip(&rounds[0])
                .map(|(hedged, none)| ms(f(hedged)) / ms(f(none)))
                .collect(),
        )
    };
    let ratio = ratio_of(|r| r.p99);
    let _ = writeln!(
        table,
        "\nMedian of per-round ratios: hedged p99 / unhedged p99 = **{ratio:.2}x**; \
         hedged p99.9 / unhedged p99.9 = **{:.2}x**.",
        ratio_of(|r| r.p999)
    );
    for (_, pool, _) in clients {
        pool.close().await;
    }
    (table, ratio)
}

/// The resident set of this process, in kB.
fn resident_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// Re-executed by S9: opens one idle connection to each URI of `uri_file`
/// (a pool, or one tonic Channel each) and prints the resident set's growth.
pub(crate) fn s9_memory_client(kind: &str, uri_file: &str) {
    let uris: Vec<String> = std::fs::read_to_string(uri_file)
        .expect("read the URI file")
        .lines()
        .map(str::to_owned)
        .collect();
    let runtime = crate::measure::one_worker_runtime();
    runtime.block_on(async {
        let before = resident_kb();
        let held: Box<dyn std::any::Any> = if kind == "pool" {
            Box::new(fleet_pool(&uris).await)
        } else {
            let mut channels = Vec::new();
            for uri in &uris {
                let endpoint = Endpoint::from_shared(uri.clone()).expect("uri");
                channels.push(endpoint.connect().await.expect("connect a Channel"));
            }
            Box::new(channels)
        };
        // Let the connections' tasks settle into idleness.
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!("rss_growth_kb {}", resident_kb().saturating_sub(before));
        drop(held);
    });
}

/// Runs this harness again as an S9 memory client; the growth in kB.
fn memory_growth(kind: &str, uri_file: &str) -> Option<u64> {
    let output = std::process::Command::new(std::env::current_exe().ok()?)
        .args(["--s9-memory", kind, "--uri-file", uri_file])
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("rss_growth_kb ")?.trim().parse().ok())
}

/// S9: the pick's cost against the number of endpoints, and the memory of
/// an idle connection.
pub(crate) async fn s9(ctx: &Context, cores: usize) -> Section {
    const ENDPOINTS: usize = 1000;
    let many = start_server(cores, &["--many", &ENDPOINTS.to_string()]);
    let uris = many.uris("many");
    let mut picks = Vec::new();
    for n in [1, 2, 10, 100, ENDPOINTS] {
        let pool = fleet_pool(&uris[..n]).await;
        let connections = pool.stats().connections;
        let per_round = (0..ctx.rounds)
            .map(|_| {
                tokio::task::block_in_place(|| {
                    ns_per_op(1, 1_000_000, || {
                        assert!(pooled_client::__private::bench_pick_release(&pool));
                    })
                })
            })
            .collect();
        picks.push((n, connections, median(per_round)));
        pool.close().await;
    }
    let uri_file = std::env::temp_dir().join(format!("s9-uris-{}", std::process::id()));
    let _ = std::fs::write(&uri_file, uris.join("\n"));
    let uri_file = uri_file.to_string_lossy().into_owned();
    let pool_kb = memory_growth("pool", &uri_file);
    let channel_kb = memory_growth("channel", &uri_file);
    let _ = std::fs::remove_file(&uri_file);
    drop(many);
    s9_section(ctx, &picks, pool_kb, channel_kb)
}

fn s9_section(
    ctx: &Context,
    picks: &[(usize, usize, f64)],
    pool_kb: Option<u64>,
    channel_kb: Option<u64>,
) -> Section {
    let mut body = format!(
        "Idle servers without latency, one listener each, in one process pinned to core 1. The \
         pick: median over {} rounds of nanoseconds per pick-and-release on one thread, with a \
         pool of default settings connected to every endpoint. A pool of one endpoint skips the \
         choice of endpoint altogether (no draw, no load, no timing), so the figure to compare the \
         fleets with is the one for two endpoints.\n\n\
         | endpoints | connections | pick + release |\n|---:|---:|---:|\n",
        ctx.rounds
    );
    for (n, connections, ns) in picks {
        let _ = writeln!(body, "| {n} | {connections} | {ns:.1} ns |");
    }
    let single = picks.first().map_or(f64::NAN, |p| p.2);
    let two = picks.get(1).map_or(f64::NAN, |p| p.2);
    let largest = picks.last().map_or(f64::NAN, |p| p.2);
    let per_connection = |kb: Option<u64>| {
        kb.map_or_else(
            || "not measured".to_owned(),
            |kb| format!("{:.1} kB", kb as f64 / 1000.0),
        )
    };
    let _ = write!(
        body,
        "\nMemory: the resident set's growth of a fresh process that opens 1,000 idle connections, \
         one to each server, divided by 1,000 (it includes what the pool keeps per endpoint).\n\n\
         | client | per idle connection |\n|---|---:|\n\
         | pooled-client, 1,000 endpoints | {} |\n\
         | 1,000 tonic Channels | {} |\n",
        per_connection(pool_kb),
        per_connection(channel_kb)
    );
    Section {
        title: "S9: scale".into(),
        body,
        targets: vec![
            (
                format!(
                    "the pick at 1,000 endpoints within 2x of one ({largest:.1} ns against {single:.1} ns)"
                ),
                largest <= 2.0 * single,
            ),
            (
                format!(
                    "the pick at 1,000 endpoints within 2x of two ({largest:.1} ns against {two:.1} ns)"
                ),
                largest <= 2.0 * two,
            ),
        ],
    }
}
