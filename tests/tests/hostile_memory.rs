//! A server whose response's gRPC length prefix says 4 GiB, followed by
//! 128 MiB of data: the call fails at the prefix with RESOURCE_EXHAUSTED
//! (doc/statuscodes.md: a message larger than a configured limit), the
//! stream is reset with CANCEL, and the client's memory stays flat. A test
//! binary of its own, so that the process's resident memory is this
//! test's alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pooled_client::Pool;
use pooled_client_tests::helloworld::{HelloRequest, PooledGreeterClient};
use pooled_client_tests::hostile::{Answer, resident_bytes, serve_scripted};
use pooled_client_tests::server::{ServerOptions, TestServer};
use pooled_client_tests::support::{bounded, wait_for_stats};
use tonic::Code;

/// A length prefix of 4 GiB - 1, then 128 MiB of data in 64 KiB chunks.
fn four_gib_prefix() -> Answer {
    let mut body = vec![Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0xff])];
    body.extend(std::iter::repeat_n(Bytes::from(vec![7u8; 64 << 10]), 2048));
    Answer {
        body,
        trailers: None,
        ..Answer::grpc(&[], 0, &[])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_four_gib_length_prefix_fails_at_once_and_holds_nothing() {
    bounded(Duration::from_secs(60), async {
        let (uri, seen) =
            serve_scripted(h2::server::Builder::new(), Arc::new(|_| four_gib_prefix())).await;
        let healthy = TestServer::start(ServerOptions::default()).await;
        let pool = Pool::builder()
            .endpoint(&uri)
            .endpoint(healthy.uri())
            .build()
            .unwrap();
        pool.ready().await.unwrap();
        let client = PooledGreeterClient::new(pool.clone()).with_timeout(Duration::from_secs(10));
        let hello = || HelloRequest {
            name: "big".into(),
            ..HelloRequest::default()
        };
        // Warm up both connections and the allocator.
        for _ in 0..20 {
            let _ = client.say_hello(hello()).await;
        }
        let before = resident_bytes();
        let (mut failed, mut slowest) = (0, Duration::ZERO);
        // The idempotent method is read whole before it is handed on; the
        // other streams its body: both must stop at the prefix.
        for i in 0..40 {
            let started = Instant::now();
            let result = if i % 2 == 0 {
                client.say_hello_again(hello()).await
            } else {
                client.say_hello(hello()).await
            };
            if let Err(status) = result {
                slowest = slowest.max(started.elapsed());
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert!(
                    status.message().contains("4294967295 bytes")
                        && status.message().contains("4194304 bytes"),
                    "{status:?}"
                );
                failed += 1;
            }
        }
        assert!(wait_for_stats(&pool, Duration::from_secs(5), |s| s.in_flight == 0).await);
        let grown = resident_bytes().saturating_sub(before);
        let cancels = seen.cancels();
        println!(
            "{failed} calls met the 4 GiB prefix; the slowest failed after {slowest:?}; resident memory grew by {} KiB; the server saw {cancels} RST_STREAM(CANCEL)",
            grown >> 10
        );
        assert!(failed > 0, "no call reached the hostile server");
        // At once, not at the 10 s deadline: the prefix decides.
        assert!(slowest < Duration::from_secs(2), "{slowest:?}");
        assert!(grown < 8 << 20, "resident memory grew by {grown} bytes");
        // Every stream the server answered was reset with CANCEL (wait
        // for the last resets to arrive).
        let all_reset = async {
            while seen.cancels() < failed {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        assert!(
            tokio::time::timeout(Duration::from_secs(5), all_reset).await.is_ok(),
            "{} CANCEL resets for {failed} calls: {:?}",
            seen.cancels(),
            seen.resets.lock().unwrap()
        );
    })
    .await;
}
