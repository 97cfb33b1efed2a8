//! The response fuzzer (see `pooled_client_tests::fuzz`): replays the
//! committed corpus, then runs random cases, several at a time, until the
//! time is up. `fuzz_response [--seconds N] [--write-seeds N]`: `--seconds`
//! (default 60) bounds the random part; `--write-seeds N` writes the
//! hand-made seeds and N random cases to the corpus and exits. A failing
//! case is written to `tests/fuzz/failures/` and the run exits non-zero.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pooled_client_tests::fuzz::{self, Case, Chunk, Name, Server, Settings};

/// Cases run at once.
const PARALLEL: usize = 4;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    if let Some(random) = flag("--write-seeds") {
        write_seeds(random as usize);
        return;
    }
    let seconds = flag("--seconds").unwrap_or(60);
    fuzz::count_panics();
    let started = Instant::now();
    let mut failures = 0;
    let corpus = fuzz::corpus();
    for chunk in corpus.chunks(PARALLEL) {
        let runs = chunk
            .iter()
            .map(|(name, case)| async move { (name.clone(), case.clone(), fuzz::run(case).await) });
        for (name, case, result) in futures_util::future::join_all(runs).await {
            if let Err(error) = result {
                failures += 1;
                report(&format!("corpus {name}"), &case, &error);
            }
        }
    }
    println!("corpus: {} cases in {:?}", corpus.len(), started.elapsed());
    let random_started = Instant::now();
    let mut random = 0u64;
    while random_started.elapsed() < Duration::from_secs(seconds) {
        let cases: Vec<Case> = (0..PARALLEL).filter_map(|_| random_case()).collect();
        let runs = cases
            .iter()
            .map(|case| async move { (case, fuzz::run(case).await) });
        for (case, result) in futures_util::future::join_all(runs).await {
            random += 1;
            if let Err(error) = result {
                failures += 1;
                report("random", case, &error);
            }
        }
    }
    println!(
        "random: {random} cases in {:?}; {failures} failed; {} panics",
        random_started.elapsed(),
        fuzz::PANICS.load(std::sync::atomic::Ordering::SeqCst)
    );
    if failures > 0 || fuzz::PANICS.load(std::sync::atomic::Ordering::SeqCst) > 0 {
        std::process::exit(1);
    }
}

fn random_case() -> Option<Case> {
    let length = fastrand::usize(0..2048);
    let bytes: Vec<u8> = std::iter::repeat_with(|| fastrand::u8(..))
        .take(length)
        .collect();
    fuzz::case_from(&bytes)
}

fn report(origin: &str, case: &Case, error: &str) {
    eprintln!("FAILED ({origin}): {error}\n{case:?}");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/failures");
    let _ = std::fs::create_dir_all(&dir);
    let name = format!("failure-{}.json", fastrand::u64(..));
    if let Ok(json) = serde_json::to_string_pretty(case) {
        let _ = std::fs::write(dir.join(name), json);
    }
}

/// A gRPC answer with `body` and `trailers`, from an h2 server with
/// default settings.
fn grpc(body: Vec<Chunk>, trailers: Vec<(Name, Vec<u8>)>) -> Server {
    Server::H2 {
        settings: Settings::default(),
        status: 0, // 200
        headers: vec![(Name::Known(0), b"application/grpc".to_vec())],
        body,
        trailers: Some(trailers),
        hang: false,
    }
}

fn status(code: &str) -> (Name, Vec<u8>) {
    (Name::Known(1), code.as_bytes().to_vec())
}

/// The misbehaviours of the hostile suite, as seeds.
fn seeds() -> Vec<(&'static str, Server)> {
    let hello = vec![10, 5, b'h', b'e', b'l', b'l', b'o'];
    vec![
        (
            "ok",
            grpc(
                vec![Chunk::Message {
                    flag: 0,
                    declared: None,
                    payload: hello.clone(),
                }],
                vec![status("0")],
            ),
        ),
        (
            "four-gib-prefix",
            grpc(
                vec![Chunk::Message {
                    flag: 0,
                    declared: Some(u32::MAX),
                    payload: vec![7; 4096],
                }],
                vec![status("0")],
            ),
        ),
        (
            "details-not-base64",
            grpc(
                vec![],
                vec![
                    status("7"),
                    (Name::Known(3), b"***".to_vec()),
                    (Name::Known(2), b"%FF%zz".to_vec()),
                ],
            ),
        ),
        (
            "html-502",
            Server::H2 {
                settings: Settings::default(),
                status: 302, // 200 + 302 = 502
                headers: vec![(Name::Known(0), b"text/html".to_vec())],
                body: vec![Chunk::Bytes(b"<html>bad gateway</html>".to_vec())],
                trailers: None,
                hang: false,
            },
        ),
        (
            "compressed-without-encoding",
            grpc(
                vec![Chunk::Message {
                    flag: 1,
                    declared: None,
                    payload: hello.clone(),
                }],
                vec![status("0")],
            ),
        ),
        (
            "unknown-encoding",
            Server::H2 {
                settings: Settings::default(),
                status: 0,
                headers: vec![
                    (Name::Known(0), b"application/grpc".to_vec()),
                    (Name::Known(4), b"snappy-or-so".to_vec()),
                ],
                body: vec![Chunk::Message {
                    flag: 1,
                    declared: None,
                    payload: hello.clone(),
                }],
                trailers: Some(vec![status("0")]),
                hang: false,
            },
        ),
        (
            "status-not-a-number",
            grpc(vec![], vec![status("fourteen")]),
        ),
        (
            "two-messages-for-unary",
            grpc(
                vec![
                    Chunk::Message {
                        flag: 0,
                        declared: None,
                        payload: hello.clone(),
                    },
                    Chunk::Message {
                        flag: 0,
                        declared: None,
                        payload: hello,
                    },
                ],
                vec![status("0")],
            ),
        ),
        (
            "zero-window-zero-streams",
            Server::H2 {
                settings: Settings {
                    max_concurrent_streams: Some(0),
                    initial_window_size: Some(0),
                    ..Settings::default()
                },
                status: 0,
                headers: vec![],
                body: vec![],
                trailers: None,
                hang: true,
            },
        ),
        (
            "settings-garbage-then-junk",
            Server::Raw {
                settings: vec![(0x4, u32::MAX), (0x5, 1), (0x3, 0), (0xff, 7)],
                then: b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x7f\xff\xff\xffjunk".to_vec(),
            },
        ),
        (
            "http1-answer",
            Server::Raw {
                settings: vec![],
                then: b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
            },
        ),
    ]
}

fn write_seeds(random: usize) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, server) in seeds() {
        for rpc in 0..3u8 {
            let case = Case {
                server: server.clone(),
                rpc,
            };
            let json = serde_json::to_string_pretty(&case).unwrap();
            std::fs::write(dir.join(format!("{name}-rpc{rpc}.json")), json).unwrap();
        }
    }
    let mut written = 0;
    while written < random {
        if let Some(case) = random_case() {
            let json = serde_json::to_string_pretty(&case).unwrap();
            std::fs::write(dir.join(format!("random-{written:03}.json")), json).unwrap();
            written += 1;
        }
    }
}
