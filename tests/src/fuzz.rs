//! The response fuzzer: arbitrary server answers (response heads and
//! trailers as arbitrary maps, body bytes with and without gRPC framing,
//! SETTINGS values, raw frames) from an in-process server, through a pool,
//! asserting that nothing panics, every call gets a status within its
//! deadline, and the pool holds no call afterwards.
//!
//! Cases are structured (`arbitrary`), generated from random bytes and kept
//! as JSON: the committed corpus (`tests/fuzz/corpus/`) is replayed by a
//! test and by the fuzzer, which then runs random cases for as long as it
//! is given (`cargo run -p pooled-client-tests --bin fuzz_response --
//! --seconds 60`), writing any case that fails to `tests/fuzz/failures/`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::Bytes;
use futures_util::StreamExt;
use pooled_client::Pool;
use serde::{Deserialize, Serialize};

use crate::helloworld::{HelloRequest, PooledGreeterClient};
use crate::hostile::{self, Answer};

/// One fuzz case: what the server does, and which kind of call meets it.
#[derive(Debug, Clone, Arbitrary, Serialize, Deserialize)]
pub struct Case {
    /// The server's behaviour.
    pub server: Server,
    /// 0: unary; 1: unary, idempotent (read whole); else server streaming.
    pub rpc: u8,
}

/// A server's behaviour.
#[derive(Debug, Clone, Arbitrary, Serialize, Deserialize)]
pub enum Server {
    /// An HTTP/2 server (h2's) with these settings and this answer.
    H2 {
        settings: Settings,
        status: u16,
        headers: Vec<(Name, Vec<u8>)>,
        body: Vec<Chunk>,
        trailers: Option<Vec<(Name, Vec<u8>)>>,
        /// Keep the stream open after the body.
        hang: bool,
    },
    /// Raw bytes: a SETTINGS frame with these entries, then whatever
    /// follows (frames h2 would never write).
    Raw {
        settings: Vec<(u16, u32)>,
        then: Vec<u8>,
    },
}

/// The settings an h2 server advertises (clamped to what h2 accepts).
#[derive(Debug, Clone, Default, Arbitrary, Serialize, Deserialize)]
pub struct Settings {
    pub max_concurrent_streams: Option<u32>,
    pub initial_window_size: Option<u32>,
    pub initial_connection_window_size: Option<u32>,
    pub max_frame_size: Option<u32>,
    pub max_header_list_size: Option<u32>,
}

/// A header name: one the client reads, or any.
#[derive(Debug, Clone, Arbitrary, Serialize, Deserialize)]
pub enum Name {
    Known(u8),
    Any(String),
}

const KNOWN_NAMES: [&str; 9] = [
    "content-type",
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "grpc-encoding",
    "grpc-accept-encoding",
    "content-length",
    "grpc-retry-pushback-ms",
    "te",
];

impl Name {
    fn as_str(&self) -> String {
        match self {
            Name::Known(i) => KNOWN_NAMES[usize::from(*i) % KNOWN_NAMES.len()].to_owned(),
            Name::Any(name) => name.to_ascii_lowercase(),
        }
    }
}

/// A piece of the response body.
#[derive(Debug, Clone, Arbitrary, Serialize, Deserialize)]
pub enum Chunk {
    /// A gRPC message: its flag byte, a length prefix (the payload's own
    /// when `None`) and its payload.
    Message {
        flag: u8,
        declared: Option<u32>,
        payload: Vec<u8>,
    },
    /// Bytes as they come.
    Bytes(Vec<u8>),
}

impl Chunk {
    fn encode(&self) -> Bytes {
        match self {
            Chunk::Message {
                flag,
                declared,
                payload,
            } => {
                let length = declared.unwrap_or(payload.len() as u32);
                let mut bytes = vec![*flag];
                bytes.extend_from_slice(&length.to_be_bytes());
                bytes.extend_from_slice(payload);
                bytes.into()
            }
            Chunk::Bytes(bytes) => Bytes::copy_from_slice(bytes),
        }
    }
}

/// Every panic in the process, counted by the hook [`count_panics`] sets.
pub static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts panics (and prints them as the default hook does).
pub fn count_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
}

/// The deadline of each call.
const DEADLINE: Duration = Duration::from_millis(300);

/// Runs `case`: a server that behaves so, a pool to it, one call. An error
/// says what went wrong: a panic, no status in time, a call left counted.
pub async fn run(case: &Case) -> Result<(), String> {
    let panics = PANICS.load(Ordering::SeqCst);
    let uri = serve(case).await;
    let pool = Pool::builder()
        .endpoint(&uri)
        .connect_timeout(Duration::from_millis(500))
        .acquire_timeout(Duration::from_millis(500))
        .build()
        .map_err(|e| format!("pool: {e}"))?;
    let client = PooledGreeterClient::new(pool.clone()).with_timeout(DEADLINE);
    let rpc = case.rpc;
    let call = tokio::spawn(async move {
        let request = HelloRequest {
            name: "fuzz".into(),
            ..HelloRequest::default()
        };
        match rpc {
            0 => client.say_hello(request).await.map(drop),
            1 => client.say_hello_again(request).await.map(drop),
            _ => {
                let mut stream = client.say_hello_stream(request).await?.into_inner();
                // Bounded: a stream that never ends meets its deadline.
                for _ in 0..10_000 {
                    match stream.next().await {
                        Some(Ok(_)) => {}
                        Some(Err(status)) => return Err(status),
                        None => break,
                    }
                }
                Ok(())
            }
        }
    });
    let outcome = tokio::time::timeout(DEADLINE + Duration::from_secs(3), call).await;
    let result = match outcome {
        Err(_) => Err("the call got no status within its deadline and 3 s".to_owned()),
        Ok(Err(join)) if join.is_panic() => Err(format!("the call panicked: {join}")),
        Ok(Err(join)) => Err(format!("the call's task failed: {join}")),
        Ok(Ok(_status_or_reply)) => Ok(()),
    };
    result?;
    let released = async {
        while pool.stats().in_flight > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(2), released)
        .await
        .is_err()
    {
        return Err(format!("calls left in flight: {:?}", pool.stats()));
    }
    pool.close().await;
    if PANICS.load(Ordering::SeqCst) != panics {
        return Err("a task panicked".to_owned());
    }
    Ok(())
}

async fn serve(case: &Case) -> String {
    match &case.server {
        Server::H2 {
            settings,
            status,
            headers,
            body,
            trailers,
            hang,
        } => {
            let answer = Answer {
                status: 200 + status % 400,
                headers: headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.clone()))
                    .collect(),
                body: body.iter().map(Chunk::encode).collect(),
                trailers: trailers
                    .as_ref()
                    .map(|t| t.iter().map(|(n, v)| (n.as_str(), v.clone())).collect()),
                pause: Duration::ZERO,
                hang: *hang,
            };
            let (uri, _) =
                hostile::serve_scripted(builder(settings), Arc::new(move |_| answer.clone())).await;
            uri
        }
        Server::Raw { settings, then } => {
            let payload: Vec<u8> = settings
                .iter()
                .take(32)
                .flat_map(|(id, value)| {
                    let mut entry = id.to_be_bytes().to_vec();
                    entry.extend_from_slice(&value.to_be_bytes());
                    entry
                })
                .collect();
            let mut bytes = hostile::h2_frame(0x4, 0, 0, &payload);
            bytes.extend_from_slice(then);
            let (uri, _) = hostile::serve_raw(bytes).await;
            uri
        }
    }
}

/// h2's server builder with `settings`, clamped to what h2 accepts (it
/// asserts on a frame size out of range).
fn builder(settings: &Settings) -> h2::server::Builder {
    let mut builder = h2::server::Builder::new();
    if let Some(max) = settings.max_concurrent_streams {
        builder.max_concurrent_streams(max);
    }
    if let Some(size) = settings.initial_window_size {
        builder.initial_window_size(size.min((1 << 31) - 1));
    }
    if let Some(size) = settings.initial_connection_window_size {
        builder.initial_connection_window_size(size.min((1 << 31) - 1));
    }
    if let Some(size) = settings.max_frame_size {
        builder.max_frame_size(size.clamp(16_384, 16_777_215));
    }
    if let Some(size) = settings.max_header_list_size {
        builder.max_header_list_size(size);
    }
    builder
}

/// A case made from `bytes`.
pub fn case_from(bytes: &[u8]) -> Option<Case> {
    Case::arbitrary(&mut arbitrary::Unstructured::new(bytes)).ok()
}

/// The committed corpus: every case in `tests/fuzz/corpus/`, by file name.
pub fn corpus() -> Vec<(String, Case)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut cases: Vec<(String, Case)> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let text = std::fs::read_to_string(entry.path()).ok()?;
                    let case = serde_json::from_str(&text).ok()?;
                    Some((entry.file_name().to_string_lossy().into_owned(), case))
                })
                .collect()
        })
        .unwrap_or_default();
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    cases
}
