//! An xDS pool of 1,000 endpoints, measured (issue 26's "also measure"):
//! the memory the pool and its xDS client take with 1,000 connected
//! endpoints, and an EDS update that replaces 100 of them: the CPU it
//! costs, how long it takes, and that no connection to the 900 that stay
//! is closed or reopened.
//!
//! `cargo run --release -p pooled-client-tests --bin xds_scale`
//!
//! The servers run in a child process (this binary again, `--serve N`),
//! so that the memory measured is the client's alone; the control plane is
//! go-control-plane v0.14.0 (`tests/go/xdscp`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::cluster::LbPolicy;
use pooled_client::Pool;
use pooled_client_tests::xds::{self, ControlPlane, LocalityOf};
use tokio::io::{AsyncBufReadExt, BufReader};

const ENDPOINTS: usize = 1000;
const REPLACED: usize = 100;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    if let Some(count) = args
        .iter()
        .position(|a| a == "--serve")
        .map(|i| &args[i + 1])
    {
        runtime.block_on(serve(count.parse().expect("a count")));
        return;
    }
    runtime.block_on(measure());
}

/// Serves the greeter on `count` loopback ports, printing each, until
/// standard input closes.
async fn serve(count: usize) {
    use pooled_client_tests::server::{ServerOptions, TestServer};
    let mut servers = Vec::with_capacity(count);
    for _ in 0..count {
        let server = TestServer::start(ServerOptions::default()).await;
        println!("port {}", server.addr.port());
        servers.push(server);
    }
    println!("ready");
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
            line.clear();
        }
    })
    .await;
}

/// The process's resident set, in kB.
fn resident_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// The process's CPU time (user and system) so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and
    // stime are the 12th and 13th of them, in clock ticks (100 a second).
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

async fn measure() {
    let mut servers = tokio::process::Command::new(std::env::current_exe().expect("this binary"))
        .args(["--serve", &(ENDPOINTS + REPLACED).to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the servers");
    let mut lines = BufReader::new(servers.stdout.take().expect("piped")).lines();
    let mut addresses: Vec<SocketAddr> = Vec::new();
    while let Some(line) = lines.next_line().await.expect("read the servers") {
        if line == "ready" {
            break;
        }
        if let Some(port) = line.strip_prefix("port ") {
            addresses.push(SocketAddr::from((
                [127, 0, 0, 1],
                port.parse().expect("a port"),
            )));
        }
    }
    assert_eq!(addresses.len(), ENDPOINTS + REPLACED);
    let mut control_plane = ControlPlane::start().await;
    let first = &addresses[..ENDPOINTS];
    control_plane
        .set(&xds::service(
            "greeter",
            LbPolicy::RoundRobin,
            &[LocalityOf::healthy("a", first)],
        ))
        .await
        .expect("snapshot taken");

    let before = resident_kb();
    let started = Instant::now();
    let pool = Pool::builder()
        .xds("xds:///greeter")
        .xds_bootstrap(control_plane.bootstrap())
        .max_connections(2 * ENDPOINTS)
        .build()
        .expect("valid settings");
    poll(|| {
        let stats = pool.stats();
        stats.endpoints == ENDPOINTS && stats.connections == ENDPOINTS
    })
    .await;
    let up = started.elapsed();
    // Let the connections settle into idleness, as S9 does.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let grown = resident_kb().saturating_sub(before);
    println!(
        "1,000 xDS endpoints: connected {up:?} after build; resident set grew {grown} kB ({:.1} kB an endpoint)",
        grown as f64 / ENDPOINTS as f64
    );

    // Replace 100: the first 100 leave, 100 new ones come.
    let connects_before = pool.stats().connects_total;
    let kept: Vec<SocketAddr> = addresses[REPLACED..ENDPOINTS].to_vec();
    let kept_ports_before = client_ports(&pool, &kept);
    let second: Vec<SocketAddr> = addresses[REPLACED..].to_vec();
    let cpu_before = cpu_time();
    let update = Instant::now();
    control_plane
        .set(&xds::service(
            "greeter",
            LbPolicy::RoundRobin,
            &[LocalityOf::healthy("a", &second)],
        ))
        .await
        .expect("snapshot taken");
    let second_set: std::collections::HashSet<SocketAddr> = second.iter().copied().collect();
    poll(|| {
        let stats = pool.stats();
        stats.connections == ENDPOINTS
            && stats.draining == 0
            && pool
                .endpoints()
                .iter()
                .all(|e| e.target.address().is_some_and(|a| second_set.contains(&a)))
    })
    .await;
    let took = update.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    let new_connections = pool.stats().connects_total - connects_before;
    let kept_ports_after = client_ports(&pool, &kept);
    println!(
        "EDS update replacing {REPLACED} of {ENDPOINTS}: applied in {took:?}, {cpu:?} of CPU; \
         {new_connections} connections opened; the {} kept endpoints' connections {}",
        kept.len(),
        if kept_ports_before == kept_ports_after {
            "unchanged"
        } else {
            "CHANGED"
        }
    );
    if new_connections != REPLACED as u64 {
        let not_one: Vec<String> = pool
            .endpoint_stats()
            .iter()
            .filter(|e| e.connections != 1)
            .map(|e| format!("{} has {}", e.target, e.connections))
            .collect();
        println!(
            "note: {new_connections} connections opened for {REPLACED} new endpoints; \
             endpoints without exactly one: {not_one:?}"
        );
    }
    assert_eq!(
        kept_ports_before, kept_ports_after,
        "a kept endpoint's connections changed"
    );
    pool.close().await;
    drop(servers);
}

/// Waits until `done`, looking every 50 ms (not at every change of the
/// pool, which would cost the measurement a look at 1,000 endpoints a
/// change), for at most two minutes.
async fn poll(done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never got there"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How many connections each endpoint of `addresses` has, in order.
fn client_ports(pool: &Pool, addresses: &[SocketAddr]) -> Vec<usize> {
    let stats = pool.endpoint_stats();
    addresses
        .iter()
        .map(|a| {
            stats
                .iter()
                .find(|e| e.target.address() == Some(*a))
                .map_or(0, |e| e.connections)
        })
        .collect()
}
