//! The deadline decides the status: a server that enforces the call's
//! deadline resets the stream with CANCEL as it passes (grpc-go's server
//! does), and that reset races the pool's own timer. Whichever wins, the
//! call ends with DEADLINE_EXCEEDED, as grpc-go's client has it
//! (`handleRSTStream`); a reset before the deadline stays CANCELLED and
//! names the stream's reset, not a failed connection.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use pooled_client::{Pool, ServiceConfig};
use pooled_client_tests::helloworld::PooledGreeterClient;
use pooled_client_tests::support::bounded;
use pooled_client_tests::support::hello;
use tokio::net::TcpListener;
use tonic::Code;

/// When the server resets each stream.
#[derive(Clone, Copy)]
enum ResetAt {
    /// As the request's `grpc-timeout` passes, counted from its arrival.
    Deadline,
    /// Right away, long before any deadline.
    Once,
}

/// An HTTP/2 server that answers streaming calls with headers first, and
/// resets every stream with CANCEL at `reset`.
async fn serve_resetting(reset: ResetAt) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let _ = socket.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(socket).await else {
                    return;
                };
                while let Some(Ok((request, mut respond))) = connection.accept().await {
                    let timeout = request
                        .headers()
                        .get("grpc-timeout")
                        .and_then(|v| v.to_str().ok())
                        .and_then(grpc_timeout);
                    let streaming = request.uri().path().ends_with("SayHelloStream");
                    tokio::spawn(async move {
                        let mut stream = None;
                        if streaming {
                            let head = http::Response::builder()
                                .header("content-type", "application/grpc")
                                .body(())
                                .unwrap();
                            stream = respond.send_response(head, false).ok();
                        }
                        if let (ResetAt::Deadline, Some(timeout)) = (reset, timeout) {
                            tokio::time::sleep(timeout).await;
                        }
                        match &mut stream {
                            Some(stream) => stream.send_reset(h2::Reason::CANCEL),
                            None => respond.send_reset(h2::Reason::CANCEL),
                        }
                    });
                }
            });
        }
    });
    format!("http://{addr}")
}

/// A `grpc-timeout` value: up to 8 digits and a unit (PROTOCOL-HTTP2.md).
fn grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The hedging policy for SayHello: a second copy after 10 ms.
fn hedged() -> ServiceConfig {
    ServiceConfig::from_json(
        r#"{"methodConfig": [{
            "name": [{"service": "helloworld.Greeter", "method": "SayHello"}],
            "hedgingPolicy": {"maxAttempts": 2, "hedgingDelay": "0.01s", "nonFatalStatusCodes": []}
        }]}"#,
    )
    .unwrap()
}

/// Every kind of call against a server that resets at the deadline, 20
/// times each: unary, idempotent unary (read whole, with its retry
/// policy), server streaming (the reset after the response headers) and
/// hedged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_at_the_deadline_is_deadline_exceeded() {
    bounded(Duration::from_secs(120), async {
        let uri = serve_resetting(ResetAt::Deadline).await;
        let plain = Pool::builder().endpoint(&uri).build().unwrap();
        let hedging = Pool::builder()
            .endpoint(&uri)
            .service_config(hedged())
            .build()
            .unwrap();
        let deadline = Duration::from_millis(50);
        let client = PooledGreeterClient::new(plain).with_timeout(deadline);
        let hedged = PooledGreeterClient::new(hedging).with_timeout(deadline);
        for round in 0..20 {
            let kinds: [(&str, Result<(), tonic::Status>); 4] = [
                ("unary", client.say_hello(hello("race", 0)).await.map(drop)),
                (
                    "idempotent",
                    client.say_hello_again(hello("race", 0)).await.map(drop),
                ),
                ("streaming", streamed(&client).await),
                ("hedged", hedged.say_hello(hello("race", 0)).await.map(drop)),
            ];
            for (kind, result) in kinds {
                let status = result.expect_err("the server never answers");
                assert_eq!(
                    status.code(),
                    Code::DeadlineExceeded,
                    "{kind}, round {round}: {status:?}"
                );
            }
        }
    })
    .await;
}

async fn streamed(client: &PooledGreeterClient) -> Result<(), tonic::Status> {
    let mut stream = client
        .say_hello_stream(hello("race", 0))
        .await?
        .into_inner();
    while let Some(message) = stream.next().await {
        message?;
    }
    Ok(())
}

/// A reset well before the deadline is the server's CANCELLED, and its
/// message names the stream's reset, not a connection failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_before_the_deadline_is_cancelled_and_named_a_reset() {
    bounded(Duration::from_secs(30), async {
        let uri = serve_resetting(ResetAt::Once).await;
        let pool = Pool::builder().endpoint(&uri).build().unwrap();
        let client =
            Arc::new(PooledGreeterClient::new(pool.clone()).with_timeout(Duration::from_secs(5)));
        for result in [
            client.say_hello(hello("race", 0)).await.map(drop),
            streamed(&client).await,
        ] {
            let status = result.unwrap_err();
            assert_eq!(status.code(), Code::Cancelled, "{status:?}");
            let message = status.message();
            assert!(
                message.contains("reset the call's stream (RST_STREAM CANCEL)"),
                "{message}"
            );
            assert!(!message.contains("connection"), "{message}");
        }
        // The connection did not fail: one was ever opened.
        assert_eq!(pool.stats().connects_total, 1);
    })
    .await;
}
