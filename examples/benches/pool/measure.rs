//! Measuring: CPU time from /proc, closed-loop load, medians.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// CPU time (user + system) used so far by process `pid` ("self" for this one):
/// the nanoseconds the scheduler counted on a CPU for each of its threads
/// (`/proc/PID/task/*/schedstat`), not /proc/PID/stat's 10 ms ticks, which
/// over a 2 s round blur a 1 % difference in the server's CPU per call.
/// (A thread that exits within a round takes its time with it; the servers
/// measured keep theirs, and getrusage, which grpc-go's client reports
/// from, counts the same clock.) Falls back to the ticks where schedstat
/// is missing.
pub(crate) fn cpu_time(pid: &str) -> Duration {
    scheduled_time(pid).unwrap_or_else(|| ticked_time(pid))
}

fn scheduled_time(pid: &str) -> Option<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut nanos = 0u64;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue; // the thread ended meanwhile
        };
        nanos += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(nanos))
}

fn ticked_time(pid: &str) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// One timed run of a load.
#[derive(Debug, Clone, Default)]
pub(crate) struct Round {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) elapsed: Duration,
    pub(crate) client_cpu: Duration,
    pub(crate) server_cpu: Duration,
}

impl Round {
    pub(crate) fn per_second(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }

    /// CPU microseconds per call, client and server.
    pub(crate) fn cpu_per_call(&self) -> (f64, f64) {
        let calls = self.calls.max(1) as f64;
        (
            self.client_cpu.as_secs_f64() * 1e6 / calls,
            self.server_cpu.as_secs_f64() * 1e6 / calls,
        )
    }
}

/// Runs `callers` loops of `call` for `duration`; each loop stops by itself.
pub(crate) async fn closed_loop<F, Fut>(
    callers: usize,
    duration: Duration,
    server_pid: u32,
    call: F,
) -> Round
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let server = server_pid.to_string();
    let (client_before, server_before) = (cpu_time("self"), cpu_time(&server));
    let started = Instant::now();
    let end = started + duration;
    let tasks: Vec<_> = (0..callers)
        .map(|i| {
            let call = call.clone();
            let (ok, failed) = (ok.clone(), failed.clone());
            tokio::spawn(async move {
                while Instant::now() < end {
                    if call(i).await {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    Round {
        calls: ok.load(Ordering::Relaxed),
        failures: failed.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        client_cpu: cpu_time("self").saturating_sub(client_before),
        server_cpu: cpu_time(&server).saturating_sub(server_before),
    }
}

/// The client's runtime in every scenario: one worker, pinned with the
/// harness to its core.
pub(crate) fn one_worker_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// A labelled set of rounds of one configuration.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub(crate) label: String,
    pub(crate) rounds: Vec<Round>,
}

impl Series {
    pub(crate) fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            rounds: Vec::new(),
        }
    }

    pub(crate) fn median_per_second(&self) -> f64 {
        median(self.rounds.iter().map(Round::per_second).collect())
    }

    pub(crate) fn median_cpu_per_call(&self) -> (f64, f64) {
        (
            median(self.rounds.iter().map(|r| r.cpu_per_call().0).collect()),
            median(self.rounds.iter().map(|r| r.cpu_per_call().1).collect()),
        )
    }

    pub(crate) fn failures(&self) -> u64 {
        self.rounds.iter().map(|r| r.failures).sum()
    }
}

/// The median over rounds of `a`'s rate divided by `b`'s in the same round.
pub(crate) fn median_ratio(a: &Series, b: &Series) -> f64 {
    median(
        a.rounds
            .iter()
            .zip(&b.rounds)
            .map(|(a, b)| a.per_second() / b.per_second())
            .collect(),
    )
}
