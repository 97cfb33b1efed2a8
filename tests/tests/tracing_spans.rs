//! A tracing span per connection: what a connection logs, from its attempt
//! to its end, names the pool, the connection and the endpoint. (A file of
//! its own: tracing caches per call site whether anyone listens, and a test
//! running beside this one without a subscriber would spoil that cache.)

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pooled_client_tests::support::{bounded, server_and_pool, wait_for_stats};

/// A writer that keeps what the log subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// One thread, so that the pool's tasks log to this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn connection_events_are_logged_inside_a_span_naming_pool_connection_and_endpoint() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    bounded(Duration::from_secs(30), async {
        let (server, pool) = server_and_pool(None, |b| b.name("traced")).await;
        let uri = server.uri();
        drop(server);
        assert!(wait_for_stats(&pool, Duration::from_secs(5), |s| s.evictions_total == 1).await);
        let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        println!("{logs}");
        let span = format!("connection{{pool=traced id=1 endpoint={uri}}}");
        let opened = logs
            .lines()
            .find(|l| l.contains("connection opened"))
            .expect("an 'opened' line");
        assert!(opened.contains(&span), "{opened}");
        let ended = logs
            .lines()
            .find(|l| {
                [
                    "server sent GOAWAY",
                    "closed by the server",
                    "connection failed",
                ]
                .iter()
                .any(|end| l.contains(end))
            })
            .expect("an 'ended' line");
        assert!(ended.contains(&span), "{ended}");
    })
    .await;
}
