//! Misbehaving servers: whatever a server sends, the caller gets a
//! bounded, honest status, nothing panics, the pool's counts come back to
//! zero, and a healthy endpoint in the same pool answers throughout. Each
//! case names the misbehaviour and the status it expects, with its source.
//! (The 4 GiB length prefix, which measures the process's memory, has a
//! test binary of its own: `hostile_memory.rs`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pooled_client::{
    Backoff, FailurePercentageEjection, OutlierDetection, Pool, PoolBuilder, RetryPolicy,
};
use pooled_client_tests::helloworld::greeter_client::GreeterClient;
use pooled_client_tests::helloworld::{HelloRequest, PooledGreeterClient};
use pooled_client_tests::hostile::{
    self, Answer, Script, hello_reply, serve_raw, serve_scripted, serve_silent,
    settings_then_goaway,
};
use pooled_client_tests::scripted::ScriptedGreeter;
use pooled_client_tests::server::{ServerOptions, TestServer};
use pooled_client_tests::support::hello;
use pooled_client_tests::support::{bounded, wait_for_stats};
use tonic::{Code, Status};

const LIMIT: Duration = Duration::from_secs(60);

/// Runs one hostile case within the time limit, and checks what every case
/// must hold: no panic anywhere in the process (the pool's own tasks
/// included), and the process's resident memory up by less than 64 MiB.
/// The cases run one at a time, so that the memory is the case's own (17
/// cases at once grew the process by 156 MiB of allocator arenas and
/// servers between them); the 4 GiB prefix, held to 8 MiB, has a binary of
/// its own (`hostile_memory.rs`).
async fn hostile_case<F: std::future::Future<Output = ()>>(case: F) {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _alone = ONE_AT_A_TIME.lock().await;
    count_panics();
    let panics = PANICS.load(Ordering::SeqCst);
    let before = hostile::resident_bytes();
    bounded(LIMIT, case).await;
    let grown = hostile::resident_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "resident memory grew by {grown} bytes");
    assert_eq!(PANICS.load(Ordering::SeqCst), panics, "a task panicked");
}

/// Panics anywhere in the process, counted once the hook is set.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// The hostile server beside a healthy one in one pool: every call
/// succeeds (on the healthy one), and none stays counted.
async fn healthy_alongside(hostile: &str) {
    let healthy = TestServer::start(ServerOptions::default()).await;
    let pool = pool_over(hostile, &healthy, |b| b);
    let client = PooledGreeterClient::new(pool.clone()).with_timeout(Duration::from_secs(5));
    for _ in 0..20 {
        let reply = client
            .say_hello(hello("hostile", 0))
            .await
            .expect("the healthy server answers");
        assert_eq!(reply.get_ref().message, "Hello hostile");
    }
    assert!(wait_for_stats(&pool, Duration::from_secs(5), |s| s.in_flight == 0).await);
}

fn script(answer: impl Fn() -> Answer + Send + Sync + 'static) -> Script {
    Arc::new(move |_| answer())
}

/// A pool over the hostile server and a healthy one; no retries, so that
/// every call shows what its one server did.
fn pool_over(
    hostile: &str,
    healthy: &TestServer,
    configure: impl FnOnce(PoolBuilder) -> PoolBuilder,
) -> Pool {
    configure(
        Pool::builder()
            .endpoint(hostile)
            .endpoint(healthy.uri())
            .idempotent_retry_policy(None),
    )
    .build()
    .unwrap()
}

/// Sends `calls` calls through a pool over `hostile` and a healthy
/// server: each is either the healthy server's answer or a status that
/// `expected` accepts; both happen; the pool holds no call afterwards.
async fn hostile_and_healthy(
    hostile: &str,
    calls: usize,
    expected: impl Fn(&Status) -> bool,
) -> Vec<Status> {
    let healthy = TestServer::start(ServerOptions::default()).await;
    let pool = pool_over(hostile, &healthy, |b| b);
    let client = PooledGreeterClient::new(pool.clone());
    let (mut answered, mut statuses) = (0, Vec::new());
    for _ in 0..calls {
        match client.say_hello(hello("hostile", 0)).await {
            Ok(reply) => {
                assert_eq!(reply.get_ref().message, "Hello hostile");
                answered += 1;
            }
            Err(status) => {
                assert!(expected(&status), "unexpected status: {status:?}");
                statuses.push(status);
            }
        }
    }
    assert!(
        answered > 0,
        "the healthy server answered none of {calls} calls"
    );
    assert!(!statuses.is_empty(), "no call reached the hostile server");
    assert!(
        wait_for_stats(&pool, Duration::from_secs(5), |s| s.in_flight == 0).await,
        "calls left in flight: {:?}",
        pool.stats()
    );
    statuses
}

/// A proxy's error pages, with no grpc-status: the code comes from the HTTP
/// status, whatever the body (gRPC's doc/http-grpc-status-mapping.md);
/// tonic's Channel reads the HTML as gRPC framing and says INTERNAL
/// "invalid compression flag: 60".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_error_pages_map_from_their_http_status() {
    hostile_case(async {
        for (http, code) in [
            (502, Code::Unavailable),
            (503, Code::Unavailable),
            (404, Code::Unimplemented),
            (401, Code::Unauthenticated),
            (403, Code::PermissionDenied),
            (429, Code::Unavailable),
            (200, Code::Unknown),
        ] {
            let (uri, seen) = serve_scripted(
                h2::server::Builder::new(),
                script(move || Answer::html(http)),
            )
            .await;
            let statuses = hostile_and_healthy(&uri, 20, |s| s.code() == code).await;
            let message = statuses[0].message();
            assert!(
                message.contains("text/html") && message.contains(&http.to_string()),
                "{message}"
            );
            // The body was not read: the stream was reset (CANCEL), or the
            // page had ended it already.
            let _ = seen;
        }
    })
    .await;
}

/// A grpc-status-details-bin that is not base64: tonic's
/// `Status::from_header_map` panics on it; the pool drops it and the call
/// gets the server's code and message, 1,000 times over, in a trailers-only
/// answer and in trailers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_details_that_are_not_base64_never_panic() {
    hostile_case(async {
        let bad: &[(&str, &[u8])] = &[
            ("grpc-message", b"denied%20here"),
            ("grpc-status-details-bin", b"***not base64***"),
        ];
        let (uri, _) = serve_scripted(
            h2::server::Builder::new(),
            Arc::new(move |head: &http::request::Parts| {
                if head.uri.path().ends_with("SayHello") && fastrand::bool() {
                    Answer::trailers_only(7, bad)
                } else {
                    Answer::grpc(&[], 7, bad)
                }
            }),
        )
        .await;
        let statuses = hostile_and_healthy(&uri, 1_000, |s| {
            s.code() == Code::PermissionDenied && s.message() == "denied here"
        })
        .await;
        println!(
            "{} of 1000 calls reached the hostile server",
            statuses.len()
        );
    })
    .await;
}

/// A grpc-message that is not UTF-8 once percent-decoded: the code stands
/// and the message is decoded lossily (doc/PROTOCOL-HTTP2.md: "When
/// decoding invalid values, implementations MUST NOT error or throw away
/// the message"); tonic turns the code into UNKNOWN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_is_not_utf8_keeps_its_code() {
    hostile_case(async {
        let (uri, _) = serve_scripted(
            h2::server::Builder::new(),
            script(|| Answer::trailers_only(5, &[("grpc-message", b"gone %FF%FE")])),
        )
        .await;
        hostile_and_healthy(&uri, 20, |s| {
            s.code() == Code::NotFound && s.message() == "gone \u{fffd}\u{fffd}"
        })
        .await;
    })
    .await;
}

/// A response message above the limit is RESOURCE_EXHAUSTED
/// (doc/statuscodes.md), where tonic's decoder says OUT_OF_RANGE; and the
/// limit is the client's `max_decoding_message_size` when it set one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_above_the_limit_is_resource_exhausted() {
    hostile_case(async {
        let big = hello_reply(&"x".repeat(2_000));
        let (uri, _) = serve_scripted(
            h2::server::Builder::new(),
            script(move || Answer::grpc(&[&big], 0, &[])),
        )
        .await;
        let pool = Pool::builder().endpoint(&uri).build().unwrap();
        let client = PooledGreeterClient::new(pool.clone()).max_decoding_message_size(1_000);
        for status in [
            client.say_hello(hello("hostile", 0)).await.unwrap_err(),
            // Idempotent: read whole before it is handed on.
            client
                .say_hello_again(hello("hostile", 0))
                .await
                .unwrap_err(),
        ] {
            assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
            let size = format!("{} bytes", hello_reply(&"x".repeat(2_000)).len());
            assert!(
                status.message().contains(&size) && status.message().contains("1000"),
                "{status:?}"
            );
        }
        // Within the limit, the same answer passes.
        let roomy = PooledGreeterClient::new(pool.clone());
        assert_eq!(
            roomy
                .say_hello(hello("hostile", 0))
                .await
                .unwrap()
                .get_ref()
                .message
                .len(),
            2_000
        );
    })
    .await;
}

/// A server that answers the HTTP/2 preface with an HTTP/1.1 error: the
/// status says the server does not speak HTTP/2 and what it answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_answer_says_the_server_does_not_speak_http2() {
    hostile_case(async {
        let (uri, _) = serve_raw(
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec(),
        )
        .await;
        let pool = Pool::builder().endpoint(&uri).build().unwrap();
        let status = PooledGreeterClient::new(pool)
            .say_hello(hello("hostile", 0))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert!(
            status.message().contains("does not speak HTTP/2")
                && status.message().contains("HTTP/1.1 400 Bad Request"),
            "{status:?}"
        );
        healthy_alongside(&uri).await;
    })
    .await;
}

/// A server that sends SETTINGS and then GOAWAY at once: the status names
/// the GOAWAY, its code and its debug data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goaway_at_start_is_named() {
    hostile_case(async {
        // ENHANCE_YOUR_CALM (0xb), as an overloaded server says it.
        let (uri, _) = serve_raw(settings_then_goaway(0xb, b"too many clients")).await;
        let pool = Pool::builder().endpoint(&uri).build().unwrap();
        let status = PooledGreeterClient::new(pool)
            .say_hello(hello("hostile", 0))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        let message = status.message();
        assert!(
            message.contains("GOAWAY") && message.contains("ENHANCE_YOUR_CALM"),
            "{message}"
        );
        assert!(message.contains("too many clients"), "{message}");
        healthy_alongside(&uri).await;
    })
    .await;
}

/// `http://` to a TLS server: the status says the server answered with TLS.
/// (A TLS server that meets a plaintext preface sends an alert record.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_answer_to_plaintext_says_https() {
    hostile_case(async {
        // A TLS 1.2 alert record: handshake_failure.
        let (uri, _) = serve_raw(vec![21, 3, 3, 0, 2, 2, 40]).await;
        let pool = Pool::builder().endpoint(&uri).build().unwrap();
        let status = PooledGreeterClient::new(pool)
            .say_hello(hello("hostile", 0))
            .await
            .unwrap_err();
        assert!(status.message().contains("https://"), "{status:?}");
        healthy_alongside(&uri).await;
    })
    .await;
}

/// A server that allows 0 concurrent streams: the status says so, and the
/// pool treats it as a failed attempt with backoff (not `max_connections`
/// connections at once, each with room for nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_allowing_no_streams_is_named_and_backed_off() {
    hostile_case(async {
        let mut builder = h2::server::Builder::new();
        builder.max_concurrent_streams(0);
        let (uri, seen) = serve_scripted(builder, script(|| Answer::grpc(&[], 0, &[]))).await;
        let backoff = Backoff::new(Duration::from_millis(500), 1.6, 0.2, Duration::from_secs(5));
        let pool = Pool::builder()
            .endpoint(&uri)
            .max_connections(8)
            .backoff(backoff)
            .build()
            .unwrap();
        let client = PooledGreeterClient::new(pool.clone());
        let started = Instant::now();
        let status = client.say_hello(hello("hostile", 0)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert!(
            status.message().contains("allows 0 concurrent streams"),
            "{status:?}"
        );
        // Keep calling for 5 s: the attempts follow the backoff.
        while started.elapsed() < Duration::from_secs(5) {
            let _ = client.say_hello(hello("hostile", 0)).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let attempts = seen.connections.load(Ordering::SeqCst);
        let allowed = attempts_allowed(&backoff, Duration::from_secs(5));
        println!("{attempts} connection attempts in 5 s; the backoff allows {allowed}");
        assert!(
            attempts <= allowed,
            "{attempts} attempts, backoff allows {allowed}"
        );
        assert_eq!(seen.requests.load(Ordering::SeqCst), 0);
        healthy_alongside(&uri).await;
    })
    .await;
}

/// The most attempts `backoff` allows within `window`: the first at once,
/// then each after the shortest delay its jitter gives.
fn attempts_allowed(backoff: &Backoff, window: Duration) -> usize {
    let (mut at, mut delay, mut attempts) = (Duration::ZERO, backoff.initial, 1);
    loop {
        at += delay.mul_f64(1.0 - backoff.jitter);
        if at > window {
            return attempts;
        }
        attempts += 1;
        delay = delay.mul_f64(backoff.multiplier).min(backoff.max);
    }
}

/// A request above the client's own `max_encoding_message_size` is the
/// call's own RESOURCE_EXHAUSTED (doc/statuscodes.md), never "connection
/// failed"; the endpoint is not counted as failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_side_encode_limit_is_the_calls_own_error() {
    hostile_case(async {
        let server = TestServer::start(ServerOptions::default()).await;
        let pool = Pool::builder().endpoint(server.uri()).build().unwrap();
        let client = PooledGreeterClient::new(pool.clone()).max_encoding_message_size(10);
        let status = client
            .say_hello(HelloRequest {
                name: "far too long a name".into(),
                ..hello("hostile", 0)
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(
            status.message().contains("max_encoding_message_size"),
            "{status:?}"
        );
        assert!(!status.message().contains("connection"), "{status:?}");
        // The connection is fine: the next call goes out on it.
        let roomy = PooledGreeterClient::new(pool.clone());
        roomy.say_hello(hello("hostile", 0)).await.unwrap();
        assert_eq!(pool.stats().connects_total, 1);
    })
    .await;
}

/// A deadline that passes before any connection is up says so, and names
/// the attempt under way; nothing was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_before_any_connection_says_nothing_was_sent() {
    hostile_case(async {
        let (uri, _) = serve_silent().await;
        let pool = Pool::builder()
            .endpoint(&uri)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let mut request = tonic::Request::new(hello("hostile", 0));
        request.set_timeout(Duration::from_millis(300));
        let status = PooledGreeterClient::new(pool)
            .say_hello(request)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::DeadlineExceeded);
        let message = status.message();
        assert!(
            message.contains("before any connection was ready"),
            "{message}"
        );
        assert!(
            message.contains("1 connection attempt(s) under way"),
            "{message}"
        );
        healthy_alongside(&uri).await;
    })
    .await;
}

/// A server that refuses every stream (RST_STREAM REFUSED_STREAM): the call
/// gets its one transparent retry, which is not an attempt (gRPC A6), and
/// then the idempotent method's policy (3 attempts on UNAVAILABLE), as
/// grpc-go's `shouldRetry` treats a refusal after the transparent retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_streams_get_the_transparent_retry_and_then_the_policy() {
    hostile_case(async {
        let (uri, seen, _) = serve_refusing().await;
        let pool = Pool::builder().endpoint(&uri).build().unwrap();
        let client = PooledGreeterClient::new(pool.clone());
        let status = client
            .say_hello_again(hello("hostile", 0))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(
            seen.load(Ordering::SeqCst),
            4,
            "1 + 1 transparent + 2 retries"
        );
        let stats = pool.stats();
        assert_eq!(
            (stats.transparent_retries_total, stats.retries_total),
            (1, 2)
        );
        // A method not declared idempotent: the transparent retry only.
        let status = client.say_hello(hello("hostile", 0)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(seen.load(Ordering::SeqCst), 6);
        healthy_alongside(&uri).await;
    })
    .await;
}

/// A hedged call's copies get their transparent retry too (a copy sent
/// again copies the head the call's copies share), and a refused copy is
/// a non-fatal failure that sends the next copy at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_copies_of_a_hedged_call_get_the_transparent_retry() {
    hostile_case(async {
        let (uri, seen, without_agent) = serve_refusing().await;
        let hedging = pooled_client::ServiceConfig::from_json(
            r#"{"methodConfig": [{"name": [{"service": "helloworld.Greeter", "method": "SayHello"}],
                "hedgingPolicy": {"maxAttempts": 2, "hedgingDelay": "10s", "nonFatalStatusCodes": ["UNAVAILABLE"]}}]}"#,
        )
        .unwrap();
        let pool = Pool::builder()
            .endpoint(&uri)
            .service_config(hedging)
            .build()
            .unwrap();
        let client = PooledGreeterClient::new(pool.clone());
        let status = client.say_hello(hello("hostile", 0)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(
            seen.load(Ordering::SeqCst),
            4,
            "2 copies, each refused and sent once more"
        );
        assert_eq!(
            without_agent.load(Ordering::SeqCst),
            0,
            "every copy, and every copy sent again, carried the user-agent"
        );
        let stats = pool.stats();
        assert_eq!((stats.transparent_retries_total, stats.hedges_total), (2, 1));
        healthy_alongside(&uri).await;
    })
    .await;
}

/// An HTTP/2 server that resets every stream with REFUSED_STREAM; its URI,
/// how many streams it refused, and how many of them had no `user-agent`.
async fn serve_refusing() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let refused = Arc::new(AtomicUsize::new(0));
    let without_agent = Arc::new(AtomicUsize::new(0));
    let (counter, agentless) = (refused.clone(), without_agent.clone());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (counter, agentless) = (counter.clone(), agentless.clone());
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(socket).await else {
                    return;
                };
                while let Some(Ok((request, mut respond))) = connection.accept().await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    if !request.headers().contains_key(http::header::USER_AGENT) {
                        agentless.fetch_add(1, Ordering::SeqCst);
                    }
                    respond.send_reset(h2::Reason::REFUSED_STREAM);
                }
            });
        }
    });
    (format!("http://{addr}"), refused, without_agent)
}

/// A trailers-only OK for a unary call (no message): the spec leaves the
/// client's answer to the implementation; the pool answers as tonic's
/// Channel does, checked side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_only_ok_for_a_unary_call_answers_as_tonic() {
    hostile_case(async {
        let (uri, _) = serve_scripted(
            h2::server::Builder::new(),
            script(|| Answer::trailers_only(0, &[])),
        )
        .await;
        let pool = Pool::builder().endpoint(&uri).build().unwrap();
        let pooled = PooledGreeterClient::new(pool)
            .say_hello(hello("hostile", 0))
            .await
            .unwrap_err();
        let channel = tonic::transport::Endpoint::from_shared(uri)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let tonic = GreeterClient::new(channel)
            .say_hello(hello("hostile", 0))
            .await
            .unwrap_err();
        assert_eq!(pooled.code(), tonic.code());
        assert_eq!(pooled.message(), tonic.message());
    })
    .await;
}

/// A server that stops mid-frame (a torn DATA frame, then silence): the
/// call ends at its deadline with DEADLINE_EXCEEDED and gives its slot
/// back; a healthy endpoint keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_message_then_silence_ends_at_the_deadline() {
    hostile_case(async {
        let reply = hello_reply("torn");
        let (uri, _) = serve_scripted(
            h2::server::Builder::new(),
            script(move || Answer {
                // Half a message, then nothing more.
                body: vec![hostile::frame(&reply).slice(..6)],
                trailers: None,
                hang: true,
                ..Answer::grpc(&[], 0, &[])
            }),
        )
        .await;
        let healthy = TestServer::start(ServerOptions::default()).await;
        let pool = pool_over(&uri, &healthy, |b| b);
        let client =
            PooledGreeterClient::new(pool.clone()).with_timeout(Duration::from_millis(300));
        let (mut ok, mut expired) = (0, 0);
        // Until both servers had calls (the pick avoids the slow one once
        // it has timed it), at most 60.
        for _ in 0..60 {
            if ok > 0 && expired > 0 {
                break;
            }
            match client.say_hello(hello("hostile", 0)).await {
                Ok(_) => ok += 1,
                Err(status) => {
                    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
                    expired += 1;
                }
            }
        }
        assert!(ok > 0 && expired > 0, "{ok} answered, {expired} expired");
        assert!(wait_for_stats(&pool, Duration::from_secs(5), |s| s.in_flight == 0).await);
    })
    .await;
}

/// A server that pushes a long response fast at a reader that does not
/// read: what the client holds is bounded by its flow-control windows, not
/// by what the server would send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_pusher_is_held_to_the_window() {
    hostile_case(async {
        let chunk = bytes::Bytes::from(vec![0u8; 64 << 10]);
        let (uri, _) = serve_scripted(
            h2::server::Builder::new(),
            script(move || Answer {
                body: vec![chunk.clone(); 1024], // 64 MiB on offer
                ..Answer::grpc(&[], 0, &[])
            }),
        )
        .await;
        let pool = Pool::builder().endpoint(&uri).build().unwrap();
        let client = PooledGreeterClient::new(pool.clone());
        let before = hostile::resident_bytes();
        let mut stream = client
            .say_hello_stream(hello("hostile", 0))
            .await
            .unwrap()
            .into_inner();
        // Do not read for a while: the server fills the windows and waits.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let grown = hostile::resident_bytes().saturating_sub(before);
        println!(
            "resident memory grew by {} KiB with 64 MiB on offer",
            grown >> 10
        );
        assert!(grown < 32 << 20, "grew by {grown} bytes");
        drop(stream.message().await);
        drop(stream);
        assert!(wait_for_stats(&pool, Duration::from_secs(5), |s| s.in_flight == 0).await);
    })
    .await;
}

/// A server that floods PINGs: h2 answers them; calls go on, and the pool
/// holds nothing afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_does_not_stop_calls() {
    hostile_case(async {
        let mut flood = h2_settings();
        for i in 0..10_000u64 {
            flood.extend(hostile::h2_frame(0x6, 0, 0, &i.to_be_bytes()));
        }
        // The raw server sends its SETTINGS and the PINGs, then no
        // answer to any request: a call ends at its deadline.
        let (uri, _) = serve_raw(flood).await;
        let healthy = TestServer::start(ServerOptions::default()).await;
        let pool = pool_over(&uri, &healthy, |b| b);
        let client =
            PooledGreeterClient::new(pool.clone()).with_timeout(Duration::from_millis(300));
        let (mut ok, mut other) = (0, 0);
        for _ in 0..20 {
            match client.say_hello(hello("hostile", 0)).await {
                Ok(_) => ok += 1,
                Err(status) => {
                    assert!(
                        matches!(status.code(), Code::DeadlineExceeded | Code::Unavailable),
                        "{status:?}"
                    );
                    other += 1;
                }
            }
        }
        assert!(ok > 0, "{ok} answered, {other} failed");
        assert!(wait_for_stats(&pool, Duration::from_secs(5), |s| s.in_flight == 0).await);
    })
    .await;
}

/// An empty server SETTINGS frame.
fn h2_settings() -> Vec<u8> {
    hostile::h2_frame(0x4, 0, 0, &[])
}

/// A server that says GOAWAY on every connection as it starts, over and
/// over: calls go to the healthy endpoint, attempts to the bad one follow
/// the backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goaway_loop_is_backed_off() {
    hostile_case(async {
        let (uri, accepted) = serve_raw(settings_then_goaway(0, b"")).await;
        let healthy = TestServer::start(ServerOptions::default()).await;
        let backoff = Backoff::new(Duration::from_millis(200), 1.6, 0.2, Duration::from_secs(5));
        let pool = pool_over(&uri, &healthy, |b| b.backoff(backoff));
        let client = PooledGreeterClient::new(pool.clone());
        let started = Instant::now();
        let mut failed = 0;
        while started.elapsed() < Duration::from_secs(3) {
            if client.say_hello(hello("hostile", 0)).await.is_err() {
                failed += 1;
            }
        }
        let attempts = accepted.load(Ordering::SeqCst);
        let allowed = attempts_allowed(&backoff, Duration::from_secs(3));
        println!("{attempts} attempts to the GOAWAY server in 3 s (backoff allows {allowed}); {failed} calls failed");
        assert_eq!(failed, 0, "calls failed while a healthy endpoint was up");
        assert!(attempts <= allowed, "{attempts} attempts, backoff allows {allowed}");
    })
    .await;
}

/// The pool of the retry test: the failing server first, two healthy
/// ones, the idempotent policy retrying UNAVAILABLE after 1 ms or less.
fn retrying_pool(
    failing: &str,
    healthy: &[TestServer],
    detection: Option<OutlierDetection>,
) -> Pool {
    let mut builder = Pool::builder()
        .endpoint(failing)
        .idempotent_retry_policy(Some(RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
            backoff_multiplier: 1.0,
            retryable_status_codes: vec![Code::Unavailable],
        }));
    for server in healthy {
        builder = builder.endpoint(server.uri());
    }
    if let Some(detection) = detection {
        builder = builder.outlier_detection(detection);
    }
    builder.build().unwrap()
}

/// Calls `say_hello_again` (idempotent) `calls` times from 4 callers; a
/// fifth of the names fail every attempt at the scripted server with
/// UNAVAILABLE (and pass elsewhere). Stops early when `done`.
async fn fifth_failing_load(pool: &Pool, calls: usize, done: impl Fn(&Pool) -> bool) -> usize {
    let client = PooledGreeterClient::new(pool.clone());
    let mut made = 0;
    while made < calls && !done(pool) {
        let batch: Vec<_> = (made..made + 4)
            .map(|i| {
                let client = client.clone();
                let name = if i % 5 == 0 {
                    format!("fail{i}/1000000/14")
                } else {
                    format!("ok{i}")
                };
                tokio::spawn(async move {
                    client
                        .say_hello_again(HelloRequest {
                            name,
                            ..hello("hostile", 0)
                        })
                        .await
                })
            })
            .collect();
        for call in batch {
            assert!(
                call.await.unwrap().is_ok(),
                "every call succeeds on a healthy server"
            );
        }
        made += 4;
    }
    made
}

/// Every attempt counts, and a retry goes elsewhere: a server failing a
/// fifth of an idempotent method's attempts with UNAVAILABLE, all retried
/// (every call succeeds), is seen by outlier detection (gRPC A50) and
/// ejected within two intervals at a 10 % failure-percentage threshold;
/// and no retry goes back to the server that just failed it while the
/// pool has others (beyond gRPC A6, as Envoy's `previous_hosts`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_failures_count_and_retries_go_elsewhere() {
    hostile_case(async {
        let scripted = ScriptedGreeter::default();
        let failing = scripted.serve().await;
        let healthy = [
            TestServer::start(ServerOptions::default()).await,
            TestServer::start(ServerOptions::default()).await,
        ];

        // Without detection: where the retries went.
        let pool = retrying_pool(&failing, &healthy, None);
        pool.ready().await.unwrap();
        let calls = fifth_failing_load(&pool, 1_200, |_| false).await;
        let failed_keys: Vec<String> = (0..calls).step_by(5).map(|i| format!("fail{i}")).collect();
        let failed_there = failed_keys.iter().filter(|k| scripted.attempts(k) >= 1).count();
        let back_again = failed_keys.iter().filter(|k| scripted.attempts(k) >= 2).count();
        let stats = &pool.endpoint_stats()[0];
        println!(
            "{calls} calls; {failed_there} failed at the failing server; {back_again} of their retries went back to it; its stats: {} calls, {} failures; retries {}",
            stats.calls,
            stats.failures,
            pool.stats().retries_total
        );
        assert!(failed_there > 0, "the failing server failed no call");
        assert_eq!(back_again, 0, "a retry went back to the server that failed it");
        assert!(stats.failures >= failed_there as u64, "failed attempts not counted: {stats:?}");

        // With detection every 500 ms at a 10 % threshold: ejected within
        // two intervals.
        let interval = Duration::from_millis(500);
        let detection = OutlierDetection {
            interval,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_percent: 50,
            success_rate: None,
            failure_percentage: Some(FailurePercentageEjection {
                threshold: 10,
                minimum_hosts: 3,
                request_volume: 20,
                ..Default::default()
            }),
            ..Default::default()
        };
        let pool = retrying_pool(&failing, &healthy, Some(detection));
        pool.ready().await.unwrap();
        let started = Instant::now();
        let ejected = |pool: &Pool| pool.endpoint_stats()[0].ejected;
        let calls = fifth_failing_load(&pool, 100_000, |p| ejected(p) || started.elapsed() > 4 * interval).await;
        let took = started.elapsed();
        println!("ejected: {} after {took:?} ({calls} calls)", ejected(&pool));
        assert!(ejected(&pool), "not ejected: {:?}", pool.endpoint_stats());
        assert!(took <= 2 * interval + Duration::from_millis(250), "{took:?}");
    })
    .await;
}
