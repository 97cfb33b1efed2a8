//! S11: the pool against grpc-go 1.85's own client, on grpc-go's own
//! benchmark server (`google.golang.org/grpc/benchmark/server` and
//! `benchmark/client`, unchanged, from the Go module in `tests/go/`).
//!
//! Closed-loop unary calls with 1-byte messages at 1, 8 and 64 calls in
//! flight on one connection; the server pinned to core 1, each client to
//! core 0 (the pool and the Channel on the harness's one-worker runtime,
//! grpc-go's client by `taskset`, which its runtime's GOMAXPROCS follows).
//! The clients alternate within each round; medians of the rounds. CPU per
//! call comes from /proc (grpc-go's client reports its own, from the same
//! clock); the server's reads and writes per call from /proc/PID/io.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pooled_client::Pool;
use pooled_client_examples::grpc_benchmark::benchmark_service_client::BenchmarkServiceClient;
use pooled_client_examples::grpc_benchmark::{
    Payload, PooledBenchmarkServiceClient, SimpleRequest,
};
use tonic::transport::Endpoint;

use crate::Context;
use crate::h2direct::H2Direct;
use crate::measure::{Round, closed_loop, cpu_time, median};
use crate::scenarios::Section;

/// The calls in flight compared.
const CONCURRENCY: [usize; 3] = [1, 8, 64];

/// The 1-byte request grpc-go's benchmark client sends (`-req 1 -resp 1`).
fn request() -> SimpleRequest {
    SimpleRequest {
        response_type: 0,
        response_size: 1,
        payload: Some(Payload {
            r#type: 0,
            body: vec![0],
        }),
    }
}

/// grpc-go's benchmark binaries, built on first use as `.ci/run` builds
/// the interop server.
fn go_binaries() -> Result<(PathBuf, PathBuf), String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let go = root.join("target/go");
    let mut built = Vec::new();
    for (tool, name) in [
        ("server", "benchmark-server"),
        ("client", "benchmark-client"),
    ] {
        let binary = go.join("bin").join(name);
        if !binary.exists() {
            let status = Command::new("go")
                .args(["build", "-o"])
                .arg(&binary)
                .arg(format!("google.golang.org/grpc/benchmark/{tool}"))
                .current_dir(root.join("tests/go"))
                .env("GOPATH", go.join("path"))
                .env("GOMODCACHE", go.join("path/pkg/mod"))
                .env("GOCACHE", go.join("cache"))
                .env("GOFLAGS", "-modcacherw")
                .status()
                .map_err(|e| format!("go: {e}"))?;
            if !status.success() {
                return Err(format!("go build of grpc-go's benchmark {tool} failed"));
            }
        }
        built.push(binary);
    }
    Ok((built[0].clone(), built[1].clone()))
}

/// A free loopback port (grpc-go's benchmark server takes a port, not 0).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(50_051, |a| a.port())
}

/// Reads and writes a process made so far (`syscr`, `syscw`).
fn syscalls(pid: &str) -> (u64, u64) {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let field = |name: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("syscr:"), field("syscw:"))
}

/// One round of one client, with the server's syscalls per call and the
/// client's writes per call.
struct Measured {
    round: Round,
    server_io: (f64, f64),
    client_writes: f64,
}

struct Config {
    label: &'static str,
    rounds: Vec<Measured>,
}

impl Config {
    fn median(&self, f: impl Fn(&Measured) -> f64) -> f64 {
        median(self.rounds.iter().map(f).collect())
    }
}

/// Runs `load` with the server's and this process's syscalls counted.
async fn counted<F: std::future::Future<Output = Round>>(server: u32, load: F) -> Measured {
    let server = server.to_string();
    let (sr, sw) = syscalls(&server);
    let (_, cw) = syscalls("self");
    let round = load.await;
    let (sr2, sw2) = syscalls(&server);
    let (_, cw2) = syscalls("self");
    let calls = round.calls.max(1) as f64;
    Measured {
        server_io: ((sr2 - sr) as f64 / calls, (sw2 - sw) as f64 / calls),
        client_writes: (cw2 - cw) as f64 / calls,
        round,
    }
}

/// One run of grpc-go's benchmark client: `concurrency` calls on one
/// connection for `seconds`.
fn go_client(
    client: &PathBuf,
    port: u16,
    concurrency: usize,
    seconds: u64,
    server: u32,
) -> Measured {
    let server = server.to_string();
    let (server_before, (sr, sw)) = (cpu_time(&server), syscalls(&server));
    let mut child = Command::new("taskset")
        .args(["-c", "0"])
        .arg(client)
        .args([
            "-port",
            &port.to_string(),
            "-c",
            "1",
            "-r",
            &concurrency.to_string(),
        ])
        .args([
            "-w",
            "0",
            "-d",
            &seconds.to_string(),
            "-req",
            "1",
            "-resp",
            "1",
        ])
        .args(["-rpc_type", "unary", "-test_name", "s11-grpc-go-client"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start grpc-go's benchmark client");
    // Its writes, sampled while it runs (its own report has none).
    let pid = child.id().to_string();
    std::thread::sleep(Duration::from_millis(300));
    let (_, w1) = syscalls(&pid);
    let sampled_at = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds).saturating_sub(Duration::from_millis(600)));
    let (_, w2) = syscalls(&pid);
    let sampled = sampled_at.elapsed();
    let output = wait_output(&mut child);
    let qps = field(&output, "qps:").unwrap_or(0.0);
    let client_cpu = output
        .lines()
        .find_map(|l| l.strip_prefix("Client CPU utilization:"))
        .and_then(|v| parse_go_duration(v.trim()))
        .unwrap_or_default();
    let calls = (qps * seconds as f64) as u64;
    let (sr2, sw2) = syscalls(&server);
    let per = calls.max(1) as f64;
    Measured {
        round: Round {
            calls,
            failures: 0,
            elapsed: Duration::from_secs(seconds),
            client_cpu,
            server_cpu: cpu_time(&server).saturating_sub(server_before),
        },
        server_io: ((sr2 - sr) as f64 / per, (sw2 - sw) as f64 / per),
        client_writes: (w2 - w1) as f64 / (qps * sampled.as_secs_f64()).max(1.0),
    }
}

fn wait_output(child: &mut Child) -> String {
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
    }
    let _ = child.wait();
    out
}

fn field(output: &str, name: &str) -> Option<f64> {
    output
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

/// Go's `time.Duration` text: "488.250281ms", "1.2s", "950µs".
fn parse_go_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => value,
        "ms" => value / 1e3,
        "µs" | "us" => value / 1e6,
        "ns" => value / 1e9,
        "m" => value * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

/// S11: the pool, one tonic Channel and grpc-go's client, on grpc-go's
/// benchmark server; and two floors, so that each run shows where they lie
/// against grpc-go's client on the host as it is that day: h2 alone (every
/// client built on h2 and tokio) and tonic on h2 alone (every pool that
/// serves tonic's generated clients).
pub(crate) async fn s11(ctx: &Context) -> Section {
    let title = "S11: against grpc-go's own client, on grpc-go's benchmark server".to_owned();
    let (server_binary, client_binary) = match go_binaries() {
        Ok(binaries) => binaries,
        Err(error) => {
            return Section {
                title,
                body: format!("Not measured: {error}.\n"),
                targets: Vec::new(),
            };
        }
    };
    let port = free_port();
    let mut server = Command::new("taskset")
        .args(["-c", "1"])
        .arg(&server_binary)
        .args([
            "-port",
            &port.to_string(),
            "-test_name",
            "s11-grpc-go-server",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start grpc-go's benchmark server");
    let server_pid = server.id();
    let uri = format!("http://127.0.0.1:{port}");
    // It listens within a moment of starting.
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        && started.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let pool = Pool::builder()
        .endpoint(&uri)
        .max_connections(1)
        .build()
        .expect("pool settings");
    pool.ready().await.expect("pool ready");
    let pooled = PooledBenchmarkServiceClient::new(pool.clone());
    let channel = BenchmarkServiceClient::new(
        Endpoint::from_shared(uri.clone())
            .expect("uri")
            .connect()
            .await
            .expect("connect a Channel"),
    );
    let h2 = BareH2::connect(&uri).await;
    let tonic_h2 = tonic_on_h2(&uri, false).await;
    let tonic_h2_batched = tonic_on_h2(&uri, true).await;
    let seconds = ctx.round.as_secs().max(1);
    let mut body = format!(
        "grpc-go 1.85's `benchmark/server`; closed-loop unary calls, 1-byte request and response, one connection; \
         {} rounds of {seconds} s, the six clients alternating, medians. \
         \"h2 alone\" makes the same call on h2 directly (the request encoded once, no tonic, no pool): the least CPU \
         a client on h2 and tokio spends. \"tonic on h2 alone\" is tonic's generated client on one h2 connection, no pool \
         in between, and \"batched\" the same with the pool's write batching (its connection's task lets the ready callers queue their \
         requests before it writes, and a unary request is HEADERS and one DATA with END_STREAM) and nothing else of the pool: \
         the least a pool that serves tonic's generated clients, unbatched or batched as this one, could spend. CPU per call: the client's (grpc-go's client \
         reports its own) and the server's; the server's reads and writes per call, and each client's writes per call.\n\n\
         | C | client | calls/s | client CPU µs/call | server CPU µs/call | server reads/call | server writes/call | client writes/call |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|\n",
        ctx.rounds
    );
    let mut targets = Vec::new();
    let mut floors = String::new();
    for concurrency in CONCURRENCY {
        let mut configs = [
            Config {
                label: "pooled-client",
                rounds: Vec::new(),
            },
            Config {
                label: "one tonic Channel",
                rounds: Vec::new(),
            },
            Config {
                label: "grpc-go's client",
                rounds: Vec::new(),
            },
            Config {
                label: "h2 alone (the floor)",
                rounds: Vec::new(),
            },
            Config {
                label: "tonic on h2 alone",
                rounds: Vec::new(),
            },
            Config {
                label: "tonic on h2 alone, batched",
                rounds: Vec::new(),
            },
        ];
        let pooled_load = |duration| {
            let pooled = pooled.clone();
            closed_loop(concurrency, duration, server_pid, move |_| {
                let pooled = pooled.clone();
                async move { pooled.unary_call(request()).await.is_ok() }
            })
        };
        let channel_load = |duration| {
            let channel = channel.clone();
            closed_loop(concurrency, duration, server_pid, move |_| {
                let mut channel = channel.clone();
                async move { channel.unary_call(request()).await.is_ok() }
            })
        };
        let h2_load = |duration| {
            let h2 = h2.clone();
            closed_loop(concurrency, duration, server_pid, move |_| {
                let h2 = h2.clone();
                async move { h2.unary_call().await.is_some() }
            })
        };
        // The two tonic-on-h2 floors: the same client on either transport.
        let on_h2_load = |client: &BenchmarkServiceClient<H2Direct>, duration| {
            let client = client.clone();
            closed_loop(concurrency, duration, server_pid, move |_| {
                let mut client = client.clone();
                async move { client.unary_call(request()).await.is_ok() }
            })
        };
        let tonic_h2_load = |duration| on_h2_load(&tonic_h2, duration);
        let batched_load = |duration| on_h2_load(&tonic_h2_batched, duration);
        // Warm-up.
        pooled_load(Duration::from_millis(300)).await;
        batched_load(Duration::from_millis(300)).await;
        channel_load(Duration::from_millis(300)).await;
        h2_load(Duration::from_millis(300)).await;
        tonic_h2_load(Duration::from_millis(300)).await;
        for round in 0..ctx.rounds {
            // Each client goes first in turn.
            for turn in 0..configs.len() {
                match (round + turn) % configs.len() {
                    0 => configs[0]
                        .rounds
                        .push(counted(server_pid, pooled_load(Duration::from_secs(seconds))).await),
                    1 => configs[1].rounds.push(
                        counted(server_pid, channel_load(Duration::from_secs(seconds))).await,
                    ),
                    3 => configs[3]
                        .rounds
                        .push(counted(server_pid, h2_load(Duration::from_secs(seconds))).await),
                    4 => configs[4].rounds.push(
                        counted(server_pid, tonic_h2_load(Duration::from_secs(seconds))).await,
                    ),
                    5 => configs[5].rounds.push(
                        counted(server_pid, batched_load(Duration::from_secs(seconds))).await,
                    ),
                    _ => {
                        let client = client_binary.clone();
                        let measured = tokio::task::spawn_blocking(move || {
                            go_client(&client, port, concurrency, seconds, server_pid)
                        })
                        .await
                        .expect("grpc-go's client run");
                        configs[2].rounds.push(measured);
                    }
                }
            }
        }
        for config in &configs {
            let _ = writeln!(
                body,
                "| {concurrency} | {} | {:.0} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} |",
                config.label,
                config.median(|m| m.round.per_second()),
                config.median(|m| m.round.cpu_per_call().0),
                config.median(|m| m.round.cpu_per_call().1),
                config.median(|m| m.server_io.0),
                config.median(|m| m.server_io.1),
                config.median(|m| m.client_writes),
            );
        }
        // Each client against grpc-go's (configs[2]).
        let against_go =
            |config: &Config, of: fn(&Measured) -> f64| config.median(of) / configs[2].median(of);
        let client = |m: &Measured| m.round.cpu_per_call().0;
        let server = |m: &Measured| m.round.cpu_per_call().1;
        let rate = against_go(&configs[0], |m| m.round.per_second());
        let client_cpu = against_go(&configs[0], client);
        let server_cpu = against_go(&configs[0], server);
        let (tonic_h2, batched) = (
            against_go(&configs[4], client),
            against_go(&configs[5], client),
        );
        let _ = writeln!(
            floors,
            "- C = {concurrency}: client CPU per call against grpc-go's client: h2 alone {:.2}x, tonic on h2 alone {tonic_h2:.2}x, batched {batched:.2}x, the pool {client_cpu:.2}x; \
             server CPU per call: tonic on h2 alone {:.2}x, batched {:.2}x, the pool {server_cpu:.2}x.",
            against_go(&configs[3], client),
            against_go(&configs[4], server),
            against_go(&configs[5], server),
        );
        // The least any pool under tonic's generated clients could spend:
        // the cheaper of the two tonic-on-h2 clients.
        let floor = tonic_h2.min(batched);
        targets.push((format!("S11 C={concurrency}: client CPU per call at most 0.6x grpc-go's client ({client_cpu:.2}x; tonic on h2 with no pool: {floor:.2}x)"), client_cpu <= 0.6));
        targets.push((
            format!("S11 C={concurrency}: calls/s at least 1.0x grpc-go's client ({rate:.2}x)"),
            rate >= 1.0,
        ));
        targets.push((format!("S11 C={concurrency}: server CPU per call no higher than with grpc-go's client ({server_cpu:.2}x)"), server_cpu <= 1.0));
    }
    body.push('\n');
    body.push_str(&floors);
    pool.close().await;
    let _ = server.kill();
    let _ = server.wait();
    Section {
        title,
        body,
        targets,
    }
}

/// `--load grpcgo-pool|grpcgo-pool-no-quickack|grpcgo-pool-hedged|grpcgo-channel|grpcgo-h2|grpcgo-tonic-h2|grpcgo-tonic-h2-batched`: one client's unary calls on grpc-go's
/// benchmark service at `uri` alone, to profile it from outside.
pub(crate) fn load_alone(kind: &str, callers: usize, duration: Duration, uri: &str) {
    let runtime = crate::measure::one_worker_runtime();
    runtime.block_on(async {
        let round = if kind == "grpcgo-h2" {
            let h2 = BareH2::connect(uri).await;
            closed_loop(callers, duration, 0, move |_| {
                let h2 = h2.clone();
                async move { h2.unary_call().await.is_some() }
            })
            .await
        } else if kind == "grpcgo-tonic-h2" || kind == "grpcgo-tonic-h2-batched" {
            let client = tonic_on_h2(uri, kind == "grpcgo-tonic-h2-batched").await;
            closed_loop(callers, duration, 0, move |_| {
                let mut client = client.clone();
                async move { client.unary_call(request()).await.is_ok() }
            })
            .await
        } else if kind.starts_with("grpcgo-pool") {
            let mut builder = Pool::builder()
                .endpoint(uri)
                .max_connections(1)
                .tcp_quickack(kind != "grpcgo-pool-no-quickack");
            if kind == "grpcgo-pool-hedged" {
                // S10's hedging policy on the benchmark's method: no hedge
                // goes out (calls take well under 50 ms), so this is what
                // the policy costs every call.
                builder = builder.service_config(
                    pooled_client::ServiceConfig::from_json(
                        r#"{"methodConfig": [{"name": [{"service": "grpc.testing.BenchmarkService", "method": "UnaryCall"}],
                            "hedgingPolicy": {"maxAttempts": 2, "hedgingDelay": "0.05s", "nonFatalStatusCodes": ["UNAVAILABLE"]}}]}"#,
                    )
                    .expect("a valid service config"),
                );
            }
            let pool = builder.build().expect("pool settings");
            pool.ready().await.expect("pool ready");
            let pooled = PooledBenchmarkServiceClient::new(pool);
            closed_loop(callers, duration, 0, move |_| {
                let pooled = pooled.clone();
                async move { pooled.unary_call(request()).await.is_ok() }
            })
            .await
        } else {
            let channel = BenchmarkServiceClient::new(
                Endpoint::from_shared(uri.to_owned())
                    .expect("uri")
                    .connect()
                    .await
                    .expect("connect a Channel"),
            );
            closed_loop(callers, duration, 0, move |_| {
                let mut channel = channel.clone();
                async move { channel.unary_call(request()).await.is_ok() }
            })
            .await
        };
        let (client, _) = round.cpu_per_call();
        println!(
            "{kind}: {} calls, {:.0} calls/s, {client:.1} us client CPU per call",
            round.calls,
            round.per_second()
        );
    });
}

/// tonic's generated client on one h2 connection, no pool in between: the
/// floor of any pool that, as this one, serves tonic's generated clients;
/// `batched`, with the pool's write batching and nothing else of it.
async fn tonic_on_h2(uri: &str, batched: bool) -> BenchmarkServiceClient<H2Direct> {
    let addr = uri.trim_start_matches("http://");
    let transport = if batched {
        H2Direct::connect_batched(addr).await
    } else {
        H2Direct::connect(addr).await
    }
    .expect("connect");
    let origin: http::Uri = uri.parse().expect("uri");
    BenchmarkServiceClient::with_origin(transport, origin)
}

/// The floor of the Rust stack under tonic and the pool: grpc-go's
/// benchmark call made on h2 directly, with the request encoded once and
/// the response decoded by prost, as tonic would. No pool, no tonic, no
/// checks of the answer: what h2 and tokio alone cost a call.
#[derive(Clone)]
struct BareH2 {
    sender: h2::client::SendRequest<bytes::Bytes>,
    uri: http::Uri,
    request: bytes::Bytes,
}

impl BareH2 {
    async fn connect(uri: &str) -> Self {
        let base: http::Uri = uri.parse().expect("uri");
        let authority = base.authority().expect("authority").as_str().to_owned();
        let tcp = tokio::net::TcpStream::connect(&authority)
            .await
            .expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let (sender, connection) = h2::client::handshake(tcp).await.expect("handshake");
        tokio::spawn(connection);
        let framed = crate::scenarios::grpc_frame(&prost::Message::encode_to_vec(&request()));
        Self {
            sender,
            uri: format!("http://{authority}/grpc.testing.BenchmarkService/UnaryCall")
                .parse()
                .expect("uri"),
            request: framed.into(),
        }
    }

    async fn unary_call(&self) -> Option<()> {
        let request = http::Request::post(self.uri.clone())
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .ok()?;
        let mut sender = self.sender.clone().ready().await.ok()?;
        let (response, mut stream) = sender.send_request(request, false).ok()?;
        stream.send_data(self.request.clone(), true).ok()?;
        let mut body = response.await.ok()?.into_body();
        let mut message = bytes::BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.ok()?;
            let _ = body.flow_control().release_capacity(chunk.len());
            message.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await.ok()??;
        let reply: pooled_client_examples::grpc_benchmark::SimpleResponse =
            prost::Message::decode(message.get(5..)?).ok()?;
        drop(reply);
        (trailers.get("grpc-status")? == "0").then_some(())
    }
}
