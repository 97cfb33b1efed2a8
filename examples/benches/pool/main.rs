//! The benchmark harness: every scenario of docs/benchmarks.md, in one command.
//!
//! `cargo bench -p pooled-client-examples --bench pool` starts the benchmark
//! server in its own process pinned to core 1, pins itself to core 0, runs
//! S1 to S6 alternating the configurations it compares for several rounds,
//! then S7 to S10 against fleets of servers (a second server process), S11
//! against grpc-go's own benchmark client and server (built from `tests/go/`), S12
//! (an interceptor on two threads), and
//! writes `docs/benchmarks.md`, `docs/s1-concurrency.svg` and
//! `docs/s7-spread.svg`.
//!
//! Options: `--rounds N` (default 5), `--seconds S` per round (default 2),
//! `--only S1,S3` to run some scenarios, `--out DIR` (default `docs`).
//! `--load pool|pool-no-quickack|channel --callers N --seconds S --uri URI`
//! runs one configuration's small unary calls alone, to profile it from
//! outside; `--load grpcgo-pool|grpcgo-pool-no-quickack|grpcgo-channel|grpcgo-h2|grpcgo-tonic-h2`
//! does the same on grpc-go's benchmark service (S11's server; `grpcgo-h2`
//! is the call on h2 alone, the floor of a client on h2 and tokio;
//! `grpcgo-tonic-h2` tonic's generated client on h2 alone, the floor of a
//! pool under tonic's generated clients).

mod chart;
mod fleet;
mod grpcgo;
mod h2direct;
mod interceptor;
mod measure;
mod scenarios;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// What every scenario needs.
pub(crate) struct Context {
    pub(crate) limited: String,
    pub(crate) open: String,
    pub(crate) server_pid: u32,
    pub(crate) rounds: usize,
    pub(crate) round: Duration,
}

/// A `bench_server` process and the listeners it printed.
pub(crate) struct Server {
    child: Child,
    listeners: Vec<(String, String)>,
}

impl Server {
    /// The URIs of the listeners named `name`, in the order printed.
    pub(crate) fn uris(&self, name: &str) -> Vec<String> {
        self.listeners
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, addr)| format!("http://{addr}"))
            .collect()
    }

    /// The URI of the first listener named `name`.
    pub(crate) fn uri(&self, name: &str) -> String {
        self.uris(name).into_iter().next().unwrap_or_default()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the benchmark server with `args`, on core 1 (when there is one).
pub(crate) fn start_server(cores: usize, args: &[&str]) -> Server {
    let binary = env!("CARGO_BIN_EXE_bench_server");
    let mut command = if cores >= 2 {
        let mut c = Command::new("taskset");
        c.args(["-c", "1", binary]);
        c
    } else {
        Command::new(binary)
    };
    let mut child = command
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start bench_server");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut listeners = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read bench_server");
        if line == "ready" {
            break;
        }
        if let Some((name, addr)) = line.split_once(' ') {
            listeners.push((name.to_owned(), addr.to_owned()));
        }
    }
    Server { child, listeners }
}

/// Pins the calling thread to `cores` (a taskset list such as "0").
pub(crate) fn pin_current_thread(cores: &str) {
    let Ok(link) = std::fs::read_link("/proc/thread-self") else {
        return;
    };
    let Some(tid) = link.file_name().and_then(|t| t.to_str()).map(str::to_owned) else {
        return;
    };
    let _ = Command::new("taskset")
        .args(["-p", "-c", cores, &tid])
        .stdout(Stdio::null())
        .status();
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(kind) = arg(&args, "--s3-client") {
        // Re-executed under callgrind by S3.
        let calls = arg(&args, "--calls")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1000);
        let uri = arg(&args, "--uri").expect("--uri");
        scenarios::s3_client(&kind, calls, &uri);
        return;
    }
    if let Some(kind) = arg(&args, "--s9-memory") {
        // Re-executed by S9, so that each figure starts from a fresh heap.
        let uris = arg(&args, "--uri-file").expect("--uri-file");
        fleet::s9_memory_client(&kind, &uris);
        return;
    }
    if let Some(kind) = arg(&args, "--load") {
        // One configuration alone, for profiling it from outside (strace,
        // perf), or from inside: with RUST_LOG set (`h2=debug` logs every
        // frame), its log goes to stderr.
        if std::env::var_os("RUST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_writer(std::io::stderr)
                .init();
        }
        let callers = arg(&args, "--callers")
            .and_then(|n| n.parse().ok())
            .unwrap_or(64);
        let seconds = arg(&args, "--seconds")
            .and_then(|n| n.parse().ok())
            .unwrap_or(2.0);
        let uri = arg(&args, "--uri").expect("--uri");
        let duration = Duration::from_secs_f64(seconds);
        if kind.starts_with("grpcgo-") {
            grpcgo::load_alone(&kind, callers, duration, &uri);
        } else {
            scenarios::load_alone(&kind, callers, duration, &uri);
        }
        return;
    }
    let rounds = arg(&args, "--rounds")
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    let seconds: f64 = arg(&args, "--seconds")
        .and_then(|n| n.parse().ok())
        .unwrap_or(2.0);
    let only = arg(&args, "--only");
    let out = arg(&args, "--out")
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../docs").to_owned());
    let wanted = |name: &str| {
        only.as_ref()
            .is_none_or(|o| o.split(',').any(|s| s == name))
    };

    std::fs::create_dir_all(&out).expect("create the output folder");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let server = start_server(cores, &[]);
    if cores >= 2 {
        pin_current_thread("0");
    }
    let context = Context {
        limited: server.uri("limited"),
        open: server.uri("open"),
        server_pid: server.pid(),
        rounds,
        round: Duration::from_secs_f64(seconds),
    };
    let runtime = crate::measure::one_worker_runtime();

    let mut sections = Vec::new();
    let started = std::time::Instant::now();
    if wanted("S1") {
        sections.push(runtime.block_on(scenarios::s1(&context, &out)));
    }
    if wanted("S2") {
        sections.push(runtime.block_on(scenarios::s2(&context)));
    }
    if wanted("S3") {
        sections.push(scenarios::s3(&context));
    }
    if wanted("S4") {
        sections.push(runtime.block_on(scenarios::s4(&context, cores)));
    }
    if wanted("S5") {
        sections.push(runtime.block_on(scenarios::s5(&context)));
    }
    if wanted("S6") {
        sections.push(runtime.block_on(scenarios::s6(&context)));
    }
    drop(server);
    let fleet =
        (wanted("S7") || wanted("S8") || wanted("S10")).then(|| start_server(cores, &["--fleet"]));
    if let Some(fleet) = &fleet {
        if wanted("S7") {
            sections.push(runtime.block_on(fleet::s7(&context, fleet, &out)));
        }
        if wanted("S8") {
            sections.push(runtime.block_on(fleet::s8(&context, fleet)));
        }
    }
    if wanted("S9") {
        sections.push(runtime.block_on(fleet::s9(&context, cores)));
    }
    if let Some(fleet) = &fleet
        && wanted("S10")
    {
        sections.push(runtime.block_on(fleet::s10(&context, fleet)));
    }
    drop(fleet);
    if wanted("S11") {
        sections.push(runtime.block_on(grpcgo::s11(&context)));
    }
    if wanted("S12") {
        sections.push(interceptor::s12(&context, cores));
    }
    let took = started.elapsed();

    let mut report = scenarios::report(&sections, &args, took, cores, rounds, seconds);
    // The hand-written reading of the figures travels with every new run.
    if let Ok(notes) = std::fs::read_to_string(format!("{out}/benchmark-notes.md")) {
        report.push('\n');
        report.push_str(&notes);
    }
    let path = format!("{out}/benchmarks.md");
    std::fs::write(&path, report).expect("write benchmarks.md");
    println!("wrote {path} in {took:.0?}");
}
