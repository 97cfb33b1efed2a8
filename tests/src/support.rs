//! Helpers every test file uses: time limits, waiting on the pool's state,
//! and starting server processes.

use std::future::Future;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pooled_client::{Pool, PoolStats};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Runs `test`, failing it if it takes longer than `limit`.
pub async fn bounded<F: Future>(limit: Duration, test: F) -> F::Output {
    tokio::time::timeout(limit, test)
        .await
        .expect("test exceeded its time limit")
}

/// Waits until the pool's stats satisfy `ready`, polling, for at most
/// `limit`; returns whether they did. The pool has no event to wait on for
/// these conditions.
pub async fn wait_for_stats(
    pool: &Pool,
    limit: Duration,
    ready: impl Fn(&PoolStats) -> bool,
) -> bool {
    let started = Instant::now();
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
    let mut child = command
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the server process");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .expect("read the server's first line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected server output {line:?}"))
        .to_owned();
    (child, addr)
}
