//! F8, a peer nobody here wrote: a Python grpcio server (from PyPI) behind a
//! generated pooled client; the server is killed and started again.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pooled_client::Pool;
use pooled_client_tests::helloworld::PooledGreeterClient;
use pooled_client_tests::support::hello_stream;
use pooled_client_tests::support::{python_with_grpcio, spawn_listening};
use tokio::process::{Child, Command};
use tonic::Code;

async fn start_python_server(python: &PathBuf, addr: &str) -> (Child, String) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/greeter_server.py");
    spawn_listening(Command::new(python).arg(script).arg(addr)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f8_pooled_client_talks_to_grpcio_and_recovers_from_its_restart() {
    let python = tokio::task::spawn_blocking(python_with_grpcio)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        let (mut server, addr) = start_python_server(&python, "127.0.0.1:0").await;
        let pool = Pool::builder()
            .endpoint(format!("http://{addr}"))
            .build()
            .unwrap();
        let greeter = PooledGreeterClient::new(pool.clone()).with_timeout(Duration::from_secs(5));

        let reply = greeter
            .say_hello(hello_stream("python", 0))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.message, "Hello python");
        let streamed: Vec<String> = greeter
            .say_hello_stream(hello_stream("python", 3))
            .await
            .unwrap()
            .into_inner()
            .map(|r| r.unwrap().message)
            .collect()
            .await;
        assert_eq!(
            streamed,
            ["Hello python #0", "Hello python #1", "Hello python #2"]
        );
        // Concurrent calls share the pool's connection to the Python server.
        let calls: Vec<_> = (0..32)
            .map(|_| {
                let greeter = greeter.clone();
                tokio::spawn(async move { greeter.say_hello(hello_stream("python", 0)).await })
            })
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }

        server.kill().await.unwrap();
        let error = greeter
            .say_hello(hello_stream("python", 0))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::Unavailable, "{error:?}");

        let (_server, _) = start_python_server(&python, &addr).await;
        let back = Instant::now();
        loop {
            match greeter.say_hello(hello_stream("python", 0)).await {
                Ok(reply) => {
                    assert_eq!(reply.into_inner().message, "Hello python");
                    break;
                }
                Err(error) => {
                    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
                    assert!(back.elapsed() < Duration::from_secs(10), "no recovery");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        println!(
            "F8: first success {:?} after the grpcio server was back",
            back.elapsed()
        );
        assert_eq!(pool.stats().in_flight, 0);
    })
    .await
    .expect("test exceeded its time limit");
}
