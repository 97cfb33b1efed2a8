//! Hello world with a pooled client: starts a greeter server in-process,
//! then calls it through `PooledGreeterClient`.
//!
//! Run: `cargo run -p pooled-client-examples --bin hello`

use std::time::Duration;

use pooled_client::Pool;
use pooled_client_examples::helloworld::{HelloRequest, PooledGreeterClient};
use pooled_client_examples::start_greeter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = start_greeter(Duration::ZERO, None).await?;

    let pool = Pool::builder()
        .endpoint(format!("http://{addr}"))
        .max_connections(4)
        .build()?;
    // Clone + Send + Sync, with `&self` methods: share one client everywhere.
    let greeter = PooledGreeterClient::new(pool.clone()).with_timeout(Duration::from_secs(1));

    let reply = greeter
        .say_hello(HelloRequest {
            name: "pool".into(),
        })
        .await?;
    println!("{}", reply.into_inner().message);

    let calls = (0..100).map(|i| {
        let greeter = greeter.clone();
        tokio::spawn(async move {
            greeter
                .say_hello(HelloRequest {
                    name: format!("caller {i}"),
                })
                .await
        })
    });
    let mut answered = 0;
    for call in calls {
        call.await??;
        answered += 1;
    }
    println!(
        "{answered} concurrent calls answered; pool: {:?}",
        pool.stats()
    );
    pool.close().await;
    Ok(())
}
