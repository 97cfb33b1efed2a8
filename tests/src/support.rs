//! Helpers every test file uses: time limits, waiting on the pool's state,
//! and starting server processes.

use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use pooled_client::{AffinityKey, Pool, PoolBuilder, PoolStats};

use crate::helloworld::{HelloRequest, PooledGreeterClient};

use crate::server::{ServerOptions, TestServer};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// A greeting for `name` that the test server answers after `delay_ms`.
pub fn hello(name: &str, delay_ms: u32) -> HelloRequest {
    HelloRequest {
        name: name.to_owned(),
        delay_ms,
        count: 0,
    }
}

/// A greeting for `name` that the streaming RPCs answer `count` times.
pub fn hello_stream(name: &str, count: u32) -> HelloRequest {
    HelloRequest {
        name: name.to_owned(),
        delay_ms: 0,
        count,
    }
}

/// Runs `test`, failing it if it takes longer than `limit`.
pub async fn bounded<F: Future>(limit: Duration, test: F) -> F::Output {
    tokio::time::timeout(limit, test)
        .await
        .expect("test exceeded its time limit")
}

/// Waits until the pool's stats satisfy `ready`, for at most `limit`;
/// returns whether they did. Woken by the pool's own changes
/// ([`Pool::wait_for`]), not by polling.
pub async fn wait_for_stats(
    pool: &Pool,
    limit: Duration,
    ready: impl Fn(&PoolStats) -> bool,
) -> bool {
    tokio::time::timeout(limit, pool.wait_for(ready))
        .await
        .is_ok()
}

/// Waits until the pool's stats and state outside the pool (a proxy's or a
/// server's connections) together satisfy `ready`, for at most `limit`;
/// returns whether they did. Polls every 5 ms: the outside state has no
/// event to wait on. Conditions on the pool alone use [`wait_for_stats`].
pub async fn poll_stats(pool: &Pool, limit: Duration, ready: impl Fn(&PoolStats) -> bool) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if ready(&pool.stats()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

/// Starts a server process that prints `listening on ADDR` once it accepts
/// connections, and returns it with that address. It is killed on drop.
pub async fn spawn_listening(command: &mut Command) -> (Child, String) {
    let (child, addr, _) = spawn_listening_with_output(command).await;
    (child, addr)
}

/// Like [`spawn_listening`], and returns the rest of the process's output.
pub async fn spawn_listening_with_output(
    command: &mut Command,
) -> (Child, String, BufReader<ChildStdout>) {
    let mut child = command
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the server process");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    let mut stdout = BufReader::new(stdout);
    stdout
        .read_line(&mut line)
        .await
        .expect("read the server's first line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected server output {line:?}"))
        .to_owned();
    (child, addr, stdout)
}

/// Starts `calls` calls through `pool` and drops each at a random point
/// within `within`: while it waits for a stream, before it is sent, mid-call,
/// with a streamed response half read, or with its request stream still
/// open. Returns when every call is gone.
pub async fn cancel_storm(pool: &Pool, calls: u32, within: Duration) {
    use crate::helloworld::HelloRequest;
    use crate::helloworld::greeter_client::GreeterClient;
    use futures_util::StreamExt;

    let tasks: Vec<_> = (0..calls)
        .map(|i| {
            let mut client = GreeterClient::new(pool.clone());
            let cancel_after = Duration::from_micros(fastrand::u64(0..within.as_micros() as u64));
            tokio::spawn(async move {
                let request = HelloRequest {
                    name: format!("{i}"),
                    delay_ms: fastrand::u32(0..5),
                    count: 4,
                };
                let _ = tokio::time::timeout(cancel_after, async {
                    match i % 3 {
                        0 => {
                            let _ = client.say_hello(request).await;
                        }
                        1 => {
                            if let Ok(response) = client.say_hello_stream(request).await {
                                let _ = response.into_inner().next().await;
                                std::future::pending::<()>().await;
                            }
                        }
                        _ => {
                            let open = futures_util::stream::iter(vec![request])
                                .chain(futures_util::stream::pending());
                            if let Ok(response) = client.chat(open).await {
                                let _ = response.into_inner().next().await;
                                std::future::pending::<()>().await;
                            }
                        }
                    }
                })
                .await;
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a call's task panicked");
    }
}

/// A greeter server that allows `max_streams` per connection (tonic's
/// default if `None`), and a pool to it, configured by `configure`, with a
/// connection up.
pub async fn server_and_pool(
    max_streams: Option<u32>,
    configure: impl FnOnce(PoolBuilder) -> PoolBuilder,
) -> (TestServer, Pool) {
    let server = TestServer::start(ServerOptions {
        max_concurrent_streams: max_streams,
    })
    .await;
    let pool = configure(Pool::builder().endpoint(server.uri()))
        .build()
        .expect("valid pool settings");
    pool.ready().await.expect("the server is up");
    (server, pool)
}

/// The Python of a virtual environment with grpcio and its health service
/// (tests/python/requirements.txt), made on first use under `target/`.
pub fn python_with_grpcio() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target"));
    let venv = target.join("grpcio-venv");
    let python = venv.join("bin/python");
    let has_grpcio = |python: &PathBuf| {
        std::process::Command::new(python)
            .args(["-c", "import grpc, grpc_health"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has_grpcio(&python) {
        let made = std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        assert!(made, "python3 -m venv failed: install python3-venv");
        let installed = std::process::Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "-r"])
            .arg(manifest.join("python/requirements.txt"))
            .status()
            .is_ok_and(|s| s.success());
        assert!(installed, "pip could not install grpcio from PyPI");
    }
    python
}

/// Held while a peer is built: tests that start in parallel and need the
/// same peer build it once, not over each other's files.
static PEER_BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// grpc-go's interop server (`google.golang.org/grpc/interop/server`, of
/// the grpc-go release `tests/go/go.mod` pins), built unchanged with the
/// machine's Go through the module proxy on first use, under `target/go/`.
pub fn grpc_go_interop_server() -> PathBuf {
    go_program("interop-server", "google.golang.org/grpc/interop/server")
}

/// The suite's xDS control plane (`tests/go/xdscp`: go-control-plane
/// v0.14.0's SnapshotCache and ADS server), built on first use under
/// `target/go/`.
pub fn xds_control_plane() -> PathBuf {
    go_program("xdscp", "./xdscp")
}

/// grpc-go 1.85's own xDS client calling the greeter (`tests/go/xdsclient`),
/// the reference the xDS tests compare the pool with; built on first use
/// under `target/go/`.
pub fn grpc_go_xds_client() -> PathBuf {
    go_program("xdsclient", "./xdsclient")
}

/// `package` of `tests/go`'s module, built with the machine's Go into
/// `target/go/bin/<binary>` unless it is there already.
fn go_program(binary: &str, package: &str) -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target"));
    let go = target.join("go");
    let path = go.join("bin").join(binary);
    let _building = PEER_BUILD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !path.exists() {
        let built = std::process::Command::new("go")
            .args(["build", "-o"])
            .arg(&path)
            .arg(package)
            .current_dir(manifest.join("go"))
            .env("GOPATH", go.join("path"))
            .env("GOMODCACHE", go.join("path/pkg/mod"))
            .env("GOCACHE", go.join("cache"))
            .env("GOFLAGS", "-modcacherw")
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            built,
            "go build of {package} (tests/go) failed (is Go 1.26 installed?)"
        );
    }
    path
}

/// Starts grpc-go's interop server on a free loopback port (with TLS and
/// grpc-go's test certificates when `tls`); the process (killed on drop)
/// and its port.
pub async fn spawn_grpc_go_interop_server(tls: bool) -> (Child, u16) {
    let binary = tokio::task::spawn_blocking(grpc_go_interop_server)
        .await
        .expect("build grpc-go's interop server");
    let mut command = Command::new(binary);
    command
        .args(["-port", "0", &format!("-use_tls={tls}")])
        // The server logs its address at info level.
        .env("GRPC_GO_LOG_SEVERITY_LEVEL", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("start grpc-go's interop server");
    let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    let port = loop {
        let line = stderr
            .next_line()
            .await
            .expect("read the server's log")
            .expect("the server exited before it listened");
        if let Some(address) = line.split("listening on ").nth(1) {
            let port = address.trim().rsplit(':').next().unwrap_or_default();
            break port.parse().expect("a port");
        }
    };
    // Keep draining its log, so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    (child, port)
}

/// grpc-java 1.85's Netty server serving `grpc.testing.TestService`
/// (`tests/java/`, every version pinned in its pom), built with Maven from
/// Maven Central on first use into `target/java/interop-server.jar`, its
/// repository under `target/m2`.
pub fn grpc_java_interop_server() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target"));
    let jar = target.join("java/interop-server.jar");
    let _building = PEER_BUILD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !jar.exists() {
        let built = std::process::Command::new("mvn")
            .args(["-q", "-B", "-f"])
            .arg(manifest.join("java/pom.xml"))
            .arg(format!(
                "-Dmaven.repo.local={}",
                target.join("m2").display()
            ))
            .arg("package")
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            built,
            "the Maven build of the grpc-java peer failed (are Java 17 and Maven installed?)"
        );
    }
    jar
}

/// Starts the grpc-java peer on a free loopback port, allowing
/// `max_calls_per_connection` streams per connection if given; the process
/// (killed on drop), its address, and the rest of its output (its report of
/// what it saw).
pub async fn spawn_grpc_java_interop_server(
    max_calls_per_connection: Option<u32>,
) -> (Child, String, BufReader<ChildStdout>) {
    let jar = tokio::task::spawn_blocking(grpc_java_interop_server)
        .await
        .expect("build the grpc-java peer");
    let mut command = Command::new("java");
    command.arg("-jar").arg(jar).arg("0");
    if let Some(max) = max_calls_per_connection {
        command.arg(max.to_string());
    }
    spawn_listening_with_output(&mut command).await
}

/// Makes `calls` concurrent `SayHello` calls that take `delay_ms` each,
/// carrying `key` if given, and returns each response's `header` (the test
/// server reports the client's port in `peer-port` and its own address in
/// `server-ip`).
pub async fn concurrent_headers(
    greeter: &PooledGreeterClient,
    calls: usize,
    delay_ms: u32,
    key: Option<AffinityKey>,
    header: &'static str,
) -> Vec<String> {
    let tasks: Vec<_> = (0..calls)
        .map(|_| {
            let greeter = greeter.clone();
            tokio::spawn(async move {
                let mut request = tonic::Request::new(HelloRequest {
                    name: "concurrent".into(),
                    delay_ms,
                    count: 0,
                });
                if let Some(key) = key {
                    key.attach(&mut request);
                }
                let response = greeter.say_hello(request).await.expect("call succeeds");
                let value = response.metadata().get(header).expect("the header");
                value.to_str().expect("ascii").to_owned()
            })
        })
        .collect();
    let mut values = Vec::with_capacity(calls);
    for task in tasks {
        values.push(task.await.expect("a call's task panicked"));
    }
    values
}

/// Runs one call of each kind (unary, server streaming, client streaming,
/// bidirectional) through `pool` with tonic's generated client, checking
/// every answer; the pool ends with no stream held.
pub async fn every_rpc_kind(pool: &Pool) {
    use futures_util::StreamExt;

    use crate::helloworld::HelloRequest;
    use crate::helloworld::greeter_client::GreeterClient;

    let hello = |name: &str| HelloRequest {
        name: name.to_owned(),
        delay_ms: 0,
        count: 0,
    };
    let mut client = GreeterClient::new(pool.clone());

    let unary = client.say_hello(hello("unary")).await.unwrap();
    assert_eq!(unary.into_inner().message, "Hello unary");

    let request = HelloRequest {
        name: "stream".into(),
        delay_ms: 0,
        count: 3,
    };
    let replies: Vec<String> = client
        .say_hello_stream(request)
        .await
        .unwrap()
        .into_inner()
        .map(|r| r.unwrap().message)
        .collect()
        .await;
    assert_eq!(
        replies,
        ["Hello stream #0", "Hello stream #1", "Hello stream #2"]
    );

    let names = futures_util::stream::iter(["a", "b", "c"].map(hello));
    let collected = client.collect_hellos(names).await.unwrap();
    assert_eq!(collected.into_inner().message, "Hello a, b, c");

    let chat = futures_util::stream::iter(["x", "y"].map(hello));
    let answers: Vec<String> = client
        .chat(chat)
        .await
        .unwrap()
        .into_inner()
        .map(|r| r.unwrap().message)
        .collect()
        .await;
    assert_eq!(answers, ["Hello x", "Hello y"]);

    assert_eq!(pool.stats().in_flight, 0, "{:?}", pool.stats());
}

/// The pool's endpoints as its messages name them: the URI, followed by
/// ` at <address>` for those given one.
pub fn endpoint_names(pool: &Pool) -> Vec<String> {
    pool.endpoints()
        .iter()
        .map(|e| e.target.to_string())
        .collect()
}
