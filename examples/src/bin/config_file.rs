//! A pool configured from a TOML file (feature `serde`): starts a greeter
//! with the standard health service in-process, loads
//! `examples/config/pool.toml` (or the file named on the command line),
//! points it at that server, and makes calls.
//!
//! Run: `cargo run -p pooled-client-examples --bin config_file [-- path/to/pool.toml]`

use std::time::Duration;

use pooled_client::{Pool, PoolConfig};
use pooled_client_examples::helloworld::{HelloRequest, PooledGreeterClient};
use pooled_client_examples::start_greeter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/config/pool.toml").to_owned());
    let text =
        std::fs::read_to_string(&path).map_err(|error| format!("cannot read {path}: {error}"))?;
    let mut config: PoolConfig =
        toml::from_str(&text).map_err(|error| format!("{path}: {error}"))?;

    let addr = start_greeter(Duration::ZERO, None).await?;
    println!(
        "{path} lists {:?}; using the embedded server at {addr} instead",
        config.endpoints
    );
    config.endpoints = vec![format!("http://{addr}")];

    let pool = Pool::from_config(config)?;
    pool.ready().await?;
    println!("settings: {:#?}", pool.config());
    let greeter = PooledGreeterClient::new(pool.clone());
    for name in ["file", "config", "toml"] {
        let reply = greeter
            .say_hello(HelloRequest { name: name.into() })
            .await?;
        println!("{}", reply.into_inner().message);
    }
    println!("{:?}", pool.stats());
    Ok(())
}
