//! gRPC's standard interop cases (`doc/interop-test-descriptions.md` in
//! grpc/grpc) through the generated pooled client, against a tonic server
//! and a Python grpcio server (from PyPI) serving `grpc.testing.TestService`.
//!
//! The cancel cases check what the server saw: a call the client cancelled
//! must reach the server as a cancel (RST_STREAM), never as a finished
//! upload (END_STREAM), and never end OK.

use std::path::PathBuf;
use std::time::Duration;

use pooled_client::Pool;
use pooled_client_tests::interop::pb::{
    BoolValue, EchoStatus, Empty, Payload, PooledTestServiceClient,
    PooledUnimplementedServiceClient, ResponseParameters, SimpleRequest, StreamingInputCallRequest,
    StreamingOutputCallRequest,
};
use pooled_client_tests::interop::{CallLog, ECHO_INITIAL, ECHO_TRAILING, InteropService, Seen};
use pooled_client_tests::proxy::FaultProxy;
use pooled_client_tests::server::serve_router;
use pooled_client_tests::support::{
    bounded, python_with_grpcio, spawn_grpc_go_interop_server, spawn_grpc_java_interop_server,
    spawn_listening_with_output,
};
use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{BinaryMetadataValue, MetadataValue};

/// Calls made by each cancel case.
const CANCELLED_CALLS: usize = 20;

/// A server to run the cases against, and what it saw of streaming calls.
struct Peer {
    pool: Pool,
    client: PooledTestServiceClient,
    unimplemented: PooledUnimplementedServiceClient,
    seen: watch::Receiver<Vec<(&'static str, Seen)>>,
    /// Whether the server reports what it saw (grpc-go's interop server,
    /// run unchanged, does not: the cancel cases then check the client's
    /// side only).
    reports: bool,
}

impl Peer {
    fn new(uri: &str, seen: watch::Receiver<Vec<(&'static str, Seen)>>) -> Self {
        let pool = Pool::builder().endpoint(uri).build().unwrap();
        Self {
            client: PooledTestServiceClient::new(pool.clone())
                .with_timeout(Duration::from_secs(10)),
            unimplemented: PooledUnimplementedServiceClient::new(pool.clone()),
            pool,
            seen,
            reports: true,
        }
    }

    /// A peer whose server does not report what it saw.
    fn unreported(uri: &str) -> Self {
        let (_, seen) = watch::channel(Vec::new());
        Self {
            reports: false,
            ..Self::new(uri, seen)
        }
    }

    /// What the server has seen of `method` so far.
    fn seen_of(&self, method: &str) -> Vec<Seen> {
        self.seen
            .borrow()
            .iter()
            .filter(|(m, _)| *m == method)
            .map(|(_, seen)| *seen)
            .collect()
    }

    /// How many events of `method` that `matches` the server has seen.
    fn count(&self, method: &str, matches: fn(&Seen) -> bool) -> usize {
        self.seen_of(method).iter().filter(|s| matches(s)).count()
    }

    /// Waits until the server has seen `count` events of `method` that
    /// `matches`.
    async fn wait_seen(&mut self, method: &str, count: usize, matches: fn(&Seen) -> bool) {
        self.seen
            .wait_for(|all| {
                all.iter()
                    .filter(|(m, s)| *m == method && matches(s))
                    .count()
                    >= count
            })
            .await
            .expect("the server's log is gone");
    }

    async fn run_all(&mut self) {
        macro_rules! case {
            ($name:ident) => {
                println!("{}", stringify!($name));
                $name(self).await;
            };
        }
        case!(empty_unary);
        case!(large_unary);
        case!(client_streaming);
        case!(server_streaming);
        case!(ping_pong);
        case!(empty_stream);
        case!(status_code_and_message);
        case!(special_status_message);
        case!(custom_metadata);
        case!(unimplemented_method);
        case!(unimplemented_service);
        case!(cancel_after_begin);
        case!(cancel_after_first_response);
        case!(timeout_on_sleeping_server);
        assert!(
            pooled_client_tests::support::wait_for_stats(&self.pool, Duration::from_secs(5), |s| {
                s.in_flight == 0
            })
            .await,
            "in_flight did not return to 0: {:?}",
            self.pool.stats()
        );
    }
}

fn payload(size: usize) -> Option<Payload> {
    Some(Payload {
        r#type: 0,
        body: vec![0; size],
    })
}

fn body_len(payload: Option<Payload>) -> usize {
    payload.map_or(0, |p| p.body.len())
}

fn output_request(sizes: &[i32], payload_size: usize) -> StreamingOutputCallRequest {
    StreamingOutputCallRequest {
        response_parameters: sizes
            .iter()
            .map(|&size| ResponseParameters {
                size,
                ..Default::default()
            })
            .collect(),
        payload: payload(payload_size),
        ..Default::default()
    }
}

async fn empty_unary(peer: &Peer) {
    let response = peer.client.empty_call(Empty {}).await.unwrap();
    assert_eq!(response.into_inner(), Empty {});
}

async fn large_unary(peer: &Peer) {
    let response = peer
        .client
        .unary_call(SimpleRequest {
            response_size: 314_159,
            payload: payload(271_828),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let body = response.payload.unwrap().body;
    assert_eq!(body.len(), 314_159);
    assert!(body.iter().all(|&b| b == 0));
}

async fn client_streaming(peer: &Peer) {
    let requests = [27_182, 8, 1_828, 45_904].map(|size| StreamingInputCallRequest {
        payload: payload(size),
        ..Default::default()
    });
    let response = peer
        .client
        .streaming_input_call(futures_util::stream::iter(requests))
        .await
        .unwrap();
    assert_eq!(response.into_inner().aggregated_payload_size, 74_922);
}

async fn server_streaming(peer: &Peer) {
    let sizes = [31_415, 9, 2_653, 58_979];
    let mut responses = peer
        .client
        .streaming_output_call(output_request(&sizes, 0))
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(response) = responses.message().await.unwrap() {
        got.push(body_len(response.payload));
    }
    assert_eq!(got, sizes.map(|s| s as usize));
}

async fn ping_pong(peer: &Peer) {
    let pairs = [(31_415, 27_182), (9, 8), (2_653, 1_828), (58_979, 45_904)];
    let (requests, rx) = mpsc::channel(1);
    // The first request goes with the call: some servers (grpcio) send
    // their response headers only with the first response.
    let (size, payload_size) = pairs[0];
    requests
        .send(output_request(&[size], payload_size))
        .await
        .unwrap();
    let mut responses = peer
        .client
        .full_duplex_call(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    for (i, (size, payload_size)) in pairs.into_iter().enumerate() {
        if i > 0 {
            requests
                .send(output_request(&[size], payload_size))
                .await
                .unwrap();
        }
        let response = responses.message().await.unwrap().expect("a response");
        assert_eq!(body_len(response.payload), size as usize);
    }
    drop(requests);
    assert!(responses.message().await.unwrap().is_none());
}

async fn empty_stream(peer: &Peer) {
    let mut responses = peer
        .client
        .full_duplex_call(futures_util::stream::empty())
        .await
        .unwrap()
        .into_inner();
    assert!(responses.message().await.unwrap().is_none());
}

fn echo(code: i32, message: &str) -> Option<EchoStatus> {
    Some(EchoStatus {
        code,
        message: message.to_owned(),
    })
}

/// Asks UnaryCall to answer with `UNKNOWN` and `message`, and checks that
/// the status arrives unchanged.
async fn assert_unary_echoes(peer: &Peer, message: &str) {
    let status = peer
        .client
        .unary_call(SimpleRequest {
            response_status: echo(2, message),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::Unknown, message));
}

async fn status_code_and_message(peer: &Peer) {
    let message = "test status message";
    assert_unary_echoes(peer, message).await;

    let request = StreamingOutputCallRequest {
        response_status: echo(2, message),
        ..Default::default()
    };
    let status = match peer
        .client
        .full_duplex_call(futures_util::stream::iter([request]))
        .await
    {
        Err(status) => status,
        Ok(response) => response.into_inner().message().await.unwrap_err(),
    };
    assert_eq!((status.code(), status.message()), (Code::Unknown, message));
}

async fn special_status_message(peer: &Peer) {
    let message = "\t\ntest with whitespace\r\nand Unicode BMP \u{263A} and non-BMP \u{1F608}\t\n";
    assert_unary_echoes(peer, message).await;
}

async fn custom_metadata(peer: &Peer) {
    let initial = MetadataValue::from_static("test_initial_metadata_value");
    let trailing = BinaryMetadataValue::from_bytes(&[0xab, 0xab, 0xab]);
    let with_metadata = |metadata: &mut tonic::metadata::MetadataMap| {
        metadata.insert(ECHO_INITIAL, initial.clone());
        metadata.insert_bin(ECHO_TRAILING, trailing.clone());
    };

    let mut request = tonic::Request::new(SimpleRequest {
        response_size: 314_159,
        payload: payload(271_828),
        ..Default::default()
    });
    with_metadata(request.metadata_mut());
    let response = peer.client.unary_call(request).await.unwrap();
    assert_eq!(response.metadata().get(ECHO_INITIAL), Some(&initial));
    assert_eq!(response.metadata().get_bin(ECHO_TRAILING), Some(&trailing));

    let stream = futures_util::stream::iter([output_request(&[314_159], 271_828)]);
    let mut request = tonic::Request::new(stream);
    with_metadata(request.metadata_mut());
    let response = peer.client.full_duplex_call(request).await.unwrap();
    assert_eq!(response.metadata().get(ECHO_INITIAL), Some(&initial));
    let mut responses = response.into_inner();
    let first = responses.message().await.unwrap().expect("a response");
    assert_eq!(body_len(first.payload), 314_159);
    assert!(responses.message().await.unwrap().is_none());
    let trailers = responses.trailers().await.unwrap().expect("trailers");
    assert_eq!(trailers.get_bin(ECHO_TRAILING), Some(&trailing));
}

async fn unimplemented_method(peer: &Peer) {
    let status = peer.client.unimplemented_call(Empty {}).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
}

async fn unimplemented_service(peer: &Peer) {
    let status = peer
        .unimplemented
        .unimplemented_call(Empty {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
}

/// Waits until the server has seen `count` more calls of `method` end (it
/// had seen `ended` ends, and `before` events, before them), and asserts
/// that every one ended as a cancel, never as the end of the upload.
///
/// Against the tonic server this is read off the wire, below tonic (whose
/// `Streaming` reads a reset as an end). grpcio's synchronous API cannot
/// tell END_STREAM followed at once by RST_STREAM from RST_STREAM alone, so
/// against it the check is the weaker one: the call ended cancelled, never
/// as a finished upload the server went on to answer.
async fn assert_cancelled(
    peer: &mut Peer,
    method: &str,
    before: usize,
    ended: usize,
    count: usize,
) {
    if !peer.reports {
        return;
    }
    peer.wait_seen(method, ended + count, is_end).await;
    let ends: Vec<Seen> = peer.seen_of(method)[before..]
        .iter()
        .copied()
        .filter(|s| *s != Seen::Begun)
        .collect();
    assert_eq!(ends.len(), count, "{method}: {ends:?}");
    let clean = ends.iter().filter(|s| **s == Seen::Clean).count();
    assert_eq!(
        clean, 0,
        "{method}: {clean} of {count} cancelled calls reached the server as a finished upload: {ends:?}"
    );
    assert!(
        ends.iter()
            .all(|s| matches!(s, Seen::Failed(Code::Cancelled) | Seen::Dropped)),
        "{method}: {ends:?}"
    );
}

fn is_begun(seen: &Seen) -> bool {
    *seen == Seen::Begun
}

fn is_end(seen: &Seen) -> bool {
    *seen != Seen::Begun
}

async fn cancel_after_begin(peer: &mut Peer) {
    const METHOD: &str = "StreamingInputCall";
    let before = peer.seen_of(METHOD).len();
    let begun = peer.count(METHOD, is_begun);
    let ended = peer.count(METHOD, is_end);
    for i in 0..CANCELLED_CALLS {
        let (requests, rx) = mpsc::channel::<StreamingInputCallRequest>(1);
        let client = peer.client.clone();
        let call =
            tokio::spawn(async move { client.streaming_input_call(ReceiverStream::new(rx)).await });
        // The server has the call (a server that does not say so is
        // given a moment)...
        if peer.reports {
            peer.wait_seen(METHOD, begun + i + 1, is_begun).await;
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // ...and the caller cancels it: the call is dropped while its
        // request stream is open.
        call.abort();
        assert!(call.await.unwrap_err().is_cancelled());
        drop(requests);
    }
    assert_cancelled(peer, METHOD, before, ended, CANCELLED_CALLS).await;
}

async fn cancel_after_first_response(peer: &mut Peer) {
    const METHOD: &str = "FullDuplexCall";
    let before = peer.seen_of(METHOD).len();
    let ended = peer.count(METHOD, is_end);
    for _ in 0..CANCELLED_CALLS {
        let (requests, rx) = mpsc::channel(1);
        requests
            .send(output_request(&[31_415], 27_182))
            .await
            .unwrap();
        let mut responses = peer
            .client
            .full_duplex_call(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let first = responses.message().await.unwrap().expect("a response");
        assert_eq!(body_len(first.payload), 31_415);
        // Cancel: the response stream is dropped while the request stream
        // is still open.
        drop(responses);
        drop(requests);
    }
    assert_cancelled(peer, METHOD, before, ended, CANCELLED_CALLS).await;
}

async fn timeout_on_sleeping_server(peer: &mut Peer) {
    const METHOD: &str = "FullDuplexCall";
    let before = peer.seen_of(METHOD).len();
    let ended = peer.count(METHOD, is_end);
    let (requests, rx) = mpsc::channel(1);
    requests.send(output_request(&[], 27_182)).await.unwrap();
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    request.set_timeout(Duration::from_millis(1));
    let status = match peer.client.full_duplex_call(request).await {
        Err(status) => status,
        Ok(response) => {
            let mut responses = response.into_inner();
            loop {
                match responses.message().await {
                    Err(status) => break status,
                    Ok(Some(_)) => {}
                    Ok(None) => panic!("the call ended OK past its deadline"),
                }
            }
        }
    };
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    // The call was abandoned at its deadline with its request stream open:
    // the server must see it cancelled (or end it itself), never finished.
    assert_cancelled(peer, METHOD, before, ended, 1).await;
    drop(requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_cases_against_a_tonic_server() {
    bounded(Duration::from_secs(60), async {
        let log = CallLog::new(Vec::new());
        let seen = log.subscribe();
        let router =
            tonic::transport::Server::builder().add_service(InteropService.into_server(log));
        let uri = serve_router(router).await;
        let mut peer = Peer::new(&uri, seen);
        peer.run_all().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_cases_against_a_grpcio_server() {
    let python = tokio::task::spawn_blocking(python_with_grpcio)
        .await
        .unwrap();
    bounded(Duration::from_secs(120), async {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/interop_server.py");
        let (_server, addr, output) =
            spawn_listening_with_output(tokio::process::Command::new(python).arg(script)).await;
        // The server reports what it saw on its standard output.
        let seen = reported(output);
        let mut peer = Peer::new(&format!("http://{addr}"), seen);
        peer.run_all().await;
    })
    .await;
}

/// grpc-go 1.85's own interop server (`google.golang.org/grpc/interop/server`,
/// unchanged, built by `tests/go/`): every case the pool can express. Its
/// compressed cases are not run here: grpc-go's interop server does not
/// implement them (it answers them as uncompressed); they run against
/// grpc-java (`compressed_interop_cases_against_a_grpc_java_server`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_cases_against_a_grpc_go_server() {
    bounded(Duration::from_secs(300), async {
        let (_server, port) = spawn_grpc_go_interop_server(false).await;
        println!("skipped: client_compressed_unary, server_compressed_unary, client_compressed_streaming, server_compressed_streaming (grpc-go's interop server does not implement compression; they run against grpc-java)");
        let mut peer = Peer::unreported(&format!("http://127.0.0.1:{port}"));
        peer.run_all().await;
    })
    .await;
}

/// timeout_on_sleeping_server against grpc-go 1.85, 50 times in a row:
/// grpc-go's server resets the stream with CANCEL as the deadline passes,
/// racing the pool's own timer; the call is DEADLINE_EXCEEDED either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_on_sleeping_server_against_grpc_go_fifty_times() {
    bounded(Duration::from_secs(120), async {
        let (_server, port) = spawn_grpc_go_interop_server(false).await;
        let mut peer = Peer::unreported(&format!("http://127.0.0.1:{port}"));
        for _ in 0..50 {
            timeout_on_sleeping_server(&mut peer).await;
        }
    })
    .await;
}

/// grpc-java 1.85's Netty server (`tests/java/`, a TestService written on
/// grpc-netty-shaded): every case, the cancel cases checked against what
/// the server reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_cases_against_a_grpc_java_server() {
    bounded(Duration::from_secs(300), async {
        let (_server, addr, output) = spawn_grpc_java_interop_server(None).await;
        let mut peer = Peer::new(&format!("http://{addr}"), reported(output));
        peer.run_all().await;
    })
    .await;
}

/// A `BoolValue` of the interop messages.
fn flag(value: bool) -> Option<BoolValue> {
    Some(BoolValue { value })
}

/// The response's `grpc-encoding`, if it names one.
fn encoding_of(metadata: &tonic::metadata::MetadataMap) -> Option<String> {
    metadata
        .get("grpc-encoding")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// client_compressed_unary: a request expected compressed that comes
/// uncompressed is refused with INVALID_ARGUMENT (the probe); compressed
/// with gzip it succeeds, and uncompressed when not expected so.
async fn client_compressed_unary(plain: &PooledTestServiceClient) {
    let compressing = plain.clone().send_compressed(CompressionEncoding::Gzip);
    let request = |expect| SimpleRequest {
        response_size: 314_159,
        payload: payload(271_828),
        expect_compressed: flag(expect),
        ..Default::default()
    };
    let probe = plain.unary_call(request(true)).await.unwrap_err();
    assert_eq!(probe.code(), Code::InvalidArgument, "{probe:?}");
    for (client, expect) in [(&compressing, true), (plain, false)] {
        let response = client.unary_call(request(expect)).await.unwrap();
        assert_eq!(body_len(response.into_inner().payload), 314_159);
    }
}

/// server_compressed_unary: the server compresses the response when asked
/// (the client accepts gzip), and answers it plainly when not.
async fn server_compressed_unary(accepting: &PooledTestServiceClient) {
    for compressed in [true, false] {
        let response = accepting
            .unary_call(SimpleRequest {
                response_size: 314_159,
                payload: payload(271_828),
                response_compressed: flag(compressed),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(encoding_of(response.metadata()).as_deref(), Some("gzip"));
        assert_eq!(body_len(response.into_inner().payload), 314_159);
    }
}

/// client_compressed_streaming, as far as tonic's encoder goes: the probe
/// (a first message expected compressed, sent plainly) is refused with
/// INVALID_ARGUMENT, and a stream compressed throughout, every message
/// expected so, is aggregated. The case's second half (one message
/// compressed, the next not) needs per-message compression, which tonic's
/// encoder cannot express: it compresses every message of a call or none.
async fn client_compressed_streaming(plain: &PooledTestServiceClient) {
    let message = |size, expect| StreamingInputCallRequest {
        payload: payload(size),
        expect_compressed: flag(expect),
    };
    let probe = plain
        .streaming_input_call(futures_util::stream::iter([message(27_182, true)]))
        .await
        .unwrap_err();
    assert_eq!(probe.code(), Code::InvalidArgument, "{probe:?}");
    let compressing = plain.clone().send_compressed(CompressionEncoding::Gzip);
    let stream = futures_util::stream::iter([message(27_182, true), message(45_904, true)]);
    let response = compressing.streaming_input_call(stream).await.unwrap();
    assert_eq!(response.into_inner().aggregated_payload_size, 73_086);
    println!(
        "client_compressed_streaming: the second half (one message compressed, the next not) \
         skipped: tonic's encoder compresses every message of a call or none"
    );
}

/// server_compressed_streaming: two responses, the first compressed and
/// the second not, both arrive whole. (tonic's decoder does not say which
/// message came compressed; the response's `grpc-encoding` says the server
/// compressed.)
async fn server_compressed_streaming(accepting: &PooledTestServiceClient) {
    let request = StreamingOutputCallRequest {
        response_parameters: [(31_415, true), (92_653, false)]
            .map(|(size, compressed)| ResponseParameters {
                size,
                compressed: flag(compressed),
                ..Default::default()
            })
            .to_vec(),
        ..Default::default()
    };
    let response = accepting.streaming_output_call(request).await.unwrap();
    assert_eq!(encoding_of(response.metadata()).as_deref(), Some("gzip"));
    let mut responses = response.into_inner();
    let mut got = Vec::new();
    while let Some(response) = responses.message().await.unwrap() {
        got.push(body_len(response.payload));
    }
    assert_eq!(got, [31_415, 92_653]);
}

/// The compressed cases, against grpc-java 1.85 (whose handlers compress
/// as asked and check what they expect), through the generated client with
/// tonic's gzip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_interop_cases_against_a_grpc_java_server() {
    bounded(Duration::from_secs(300), async {
        let (_server, addr, _output) = spawn_grpc_java_interop_server(None).await;
        let pool = Pool::builder()
            .endpoint(format!("http://{addr}"))
            .build()
            .unwrap();
        let plain = PooledTestServiceClient::new(pool).with_timeout(Duration::from_secs(10));
        let accepting = plain.clone().accept_compressed(CompressionEncoding::Gzip);
        client_compressed_unary(&plain).await;
        server_compressed_unary(&accepting).await;
        client_compressed_streaming(&plain).await;
        server_compressed_streaming(&accepting).await;
    })
    .await;
}

/// gRFC A105's interop case, `max_concurrent_streams_connection_scaling`,
/// against grpc-java with `maxConcurrentCallsPerConnection(2)`: calls 1
/// and 2 share a connection, call 3 opens a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_streams_connection_scaling_against_grpc_java() {
    bounded(Duration::from_secs(300), async {
        let (_server, addr, output) = spawn_grpc_java_interop_server(Some(2)).await;
        let peer = Peer::new(&format!("http://{addr}"), reported(output));
        let mut open = Vec::new();
        for call in 1..=3 {
            let (requests, rx) = mpsc::channel(1);
            requests.send(output_request(&[1], 1)).await.unwrap();
            let mut responses = peer
                .client
                .full_duplex_call(ReceiverStream::new(rx))
                .await
                .unwrap()
                .into_inner();
            responses.message().await.unwrap().expect("a response");
            let connections = peer.pool.stats().connections;
            let expected = if call <= 2 { 1 } else { 2 };
            assert_eq!(
                connections,
                expected,
                "after call {call}: {:?}",
                peer.pool.stats()
            );
            open.push((requests, responses));
        }
    })
    .await;
}

/// The events a peer reports on its standard output, as they come.
fn reported(
    output: tokio::io::BufReader<tokio::process::ChildStdout>,
) -> watch::Receiver<Vec<(&'static str, Seen)>> {
    let log = CallLog::new(Vec::new());
    let seen = log.subscribe();
    tokio::spawn(async move {
        let mut lines = output.lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(event) = parse_python_event(&line) {
                log.send_modify(|all| all.push(event));
            }
        }
    });
    seen
}

/// One line of the Python server's report: `begin METHOD`, or `ending
/// METHOD clean|cancelled|dropped|failed`.
fn parse_python_event(line: &str) -> Option<(&'static str, Seen)> {
    let mut words = line.split_whitespace();
    let kind = words.next()?;
    let method = match words.next()? {
        "StreamingInputCall" => "StreamingInputCall",
        "FullDuplexCall" => "FullDuplexCall",
        _ => return None,
    };
    let seen = match (kind, words.next()) {
        ("begin", None) => Seen::Begun,
        ("ending", Some("clean")) => Seen::Clean,
        ("ending", Some("cancelled")) => Seen::Failed(Code::Cancelled),
        ("ending", Some("dropped")) => Seen::Dropped,
        ("ending", Some(_)) => Seen::Failed(Code::Unknown),
        _ => return None,
    };
    Some((method, seen))
}

/// The two commonest setup mistakes against grpc-go 1.85's interop server,
/// each named: `http://` to its TLS port (`-use_tls`: Go's TLS server
/// closes a plaintext client's connection without a byte), and `https://`
/// to its plaintext port. With grpc-go's own CA and name, TLS works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_mix_ups_against_grpc_go_are_named() {
    bounded(Duration::from_secs(120), async {
        let (_tls, tls_port) = spawn_grpc_go_interop_server(true).await;
        let (_plain, plain_port) = spawn_grpc_go_interop_server(false).await;
        let call = |pool: Pool| async move {
            PooledTestServiceClient::new(pool)
                .empty_call(Empty {})
                .await
                .map(drop)
        };

        let plaintext_to_tls = Pool::builder()
            .endpoint(format!("http://127.0.0.1:{tls_port}"))
            .build()
            .unwrap();
        let status = call(plaintext_to_tls).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("use https://"), "{status:?}");

        let tls_to_plaintext = Pool::builder()
            .endpoint(format!("https://127.0.0.1:{plain_port}"))
            .tls(pooled_client::TlsConfig::new())
            .build()
            .unwrap();
        let status = call(tls_to_plaintext).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert!(
            status.message().contains("does not speak TLS")
                && status.message().contains("use http://"),
            "{status:?}"
        );

        // grpc-go's test CA (in its module's testdata) and the name its
        // server certificate carries: the call goes through.
        let binary = pooled_client_tests::support::grpc_go_interop_server();
        let testdata = binary
            .parent()
            .and_then(|bin| bin.parent())
            .unwrap()
            .join("path/pkg/mod/google.golang.org/grpc@v1.85.0/testdata/ca.pem");
        let ca = std::fs::read_to_string(&testdata).expect("grpc-go's test CA");
        let right = Pool::builder()
            .endpoint(format!("https://127.0.0.1:{tls_port}"))
            .tls(
                pooled_client::TlsConfig::new()
                    .ca_certificate_pem(ca)
                    .server_name("foo.test.google.fr"),
            )
            .build()
            .unwrap();
        call(right).await.unwrap();
    })
    .await;
}

/// Four real peers behind one pool: two grpc-go 1.85 interop servers
/// (which advertise no stream limit) and two grpc-java 1.85 Netty servers
/// (which advertise 2147483647), each behind the suite's TCP proxy, which
/// adds 5 ms each way to all of them so that they are of equal speed. Each
/// stack then takes half the calls (0.45 to 0.55); with one server of
/// either stack made 60 ms slower by its proxy, that server gets less than
/// a quarter of its even share. (60 ms, not 20: on a busy 2-core host four
/// servers and a JVM push every server's own latency to 6 to 8 ms, and a
/// server 20 ms slower is then only 4 to 5 times slower, a share of 0.06
/// to 0.07 against the bound of 0.0625; 60 ms keeps it 8 times slower or
/// more, which is what the property is about.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_fleet_of_grpc_go_and_grpc_java_is_balanced() {
    bounded(Duration::from_secs(300), async {
        let (_go_a, go_a) = spawn_grpc_go_interop_server(false).await;
        let (_go_b, go_b) = spawn_grpc_go_interop_server(false).await;
        let (_java_a, java_a, _) = spawn_grpc_java_interop_server(None).await;
        let (_java_b, java_b, _) = spawn_grpc_java_interop_server(None).await;
        let addresses = [
            format!("127.0.0.1:{go_a}"),
            format!("127.0.0.1:{go_b}"),
            java_a,
            java_b,
        ];
        let mut proxies = Vec::new();
        for address in &addresses {
            proxies.push(FaultProxy::start(address.parse().unwrap()).await);
        }
        // Each proxy's delay (each way): `base`, and `slow` for one server.
        let shares = |base: u64, slow: Option<(usize, u64)>| {
            let proxies = &proxies;
            async move {
                for (i, proxy) in proxies.iter().enumerate() {
                    let latency = match slow {
                        Some((server, latency)) if server == i => latency,
                        _ => base,
                    };
                    proxy.set_latency(Duration::from_millis(latency));
                }
                let pool = proxies
                    .iter()
                    .fold(Pool::builder(), |b, p| b.endpoint(p.uri()))
                    .build()
                    .unwrap();
                pool.ready().await.unwrap();
                let client = PooledTestServiceClient::new(pool.clone());
                let started = std::time::Instant::now();
                let callers: Vec<_> = (0..16)
                    .map(|_| {
                        let client = client.clone();
                        tokio::spawn(async move {
                            while started.elapsed() < Duration::from_secs(3) {
                                client.empty_call(Empty {}).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for caller in callers {
                    caller.await.unwrap();
                }
                let calls: Vec<u64> = proxies
                    .iter()
                    .map(|proxy| {
                        pool.endpoint_stats()
                            .iter()
                            .find(|e| e.target.uri() == proxy.uri())
                            .map_or(0, |e| e.calls)
                    })
                    .collect();
                let latencies: Vec<Duration> =
                    pool.endpoint_stats().iter().map(|e| e.latency).collect();
                println!("latencies {latencies:?}");
                let total: u64 = calls.iter().sum();
                calls
                    .iter()
                    .map(|&c| c as f64 / total as f64)
                    .collect::<Vec<f64>>()
            }
        };
        // A warm-up, so that the JVM's JIT has compiled the server's path.
        let _ = shares(0, None).await;
        // 5 ms each way makes the servers equal in speed on this 2-core
        // machine (the JVM's own time, up to 1.4x grpc-go's under load,
        // then hardly counts).
        let even = shares(5, None).await;
        let java = even[2] + even[3];
        println!(
            "grpc-go, grpc-go, grpc-java, grpc-java: shares {even:.3?}; grpc-java took {java:.3}"
        );
        assert!((0.45..=0.55).contains(&java), "{even:?}");
        for slow in [0, 2] {
            let shares = shares(0, Some((slow, 30))).await;
            println!("server {slow} 60 ms slower: shares {shares:.3?}");
            assert!(shares[slow] < 0.25 * 0.25, "{shares:?}");
        }
    })
    .await;
}
