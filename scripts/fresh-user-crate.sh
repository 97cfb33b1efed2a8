#!/usr/bin/env bash
# Sets up a crate outside the workspace exactly as a user would (a path
# dependency, and the build helper as a build-dependency with the `build`
# feature), builds it with no protoc, and runs it against a server it starts.
# One of its protos imports google/protobuf/timestamp.proto, with the
# README's dependency lines (prost-types).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT

mkdir -p "$dir/proto" "$dir/src"
cp "$repo/examples/proto/helloworld.proto" "$dir/proto/"
cat > "$dir/proto/clock.proto" <<'PROTO'
syntax = "proto3";
package clock;
import "google/protobuf/timestamp.proto";
service Clock {
  rpc Stamp (StampRequest) returns (Stamped);
}
message StampRequest { string name = 1; }
message Stamped {
  string name = 1;
  google.protobuf.Timestamp at = 2;
}
PROTO
cat > "$dir/Cargo.toml" <<TOML
[package]
name = "fresh-user"
version = "0.1.0"
edition = "2021"

[dependencies]
pooled-client = { path = "$repo/pool-runtime" }
tonic = "0.14"
tonic-prost = "0.14"
prost = "0.14"
prost-types = "0.14"
tokio = { version = "1", features = ["macros", "rt-multi-thread", "net"] }
tokio-stream = { version = "0.1", features = ["net"] }

[build-dependencies]
pooled-client = { path = "$repo/pool-runtime", default-features = false, features = ["build"] }

[workspace]
TOML
cat > "$dir/build.rs" <<'RS'
fn main() -> Result<(), Box<dyn std::error::Error>> {
    pooled_client::build::compile_protos("proto/helloworld.proto")?;
    pooled_client::build::compile_protos("proto/clock.proto")?;
    Ok(())
}
RS
cat > "$dir/src/main.rs" <<'RS'
pub mod helloworld {
    tonic::include_proto!("helloworld");
}
pub mod clock {
    tonic::include_proto!("clock");
}
use clock::clock_server::{Clock, ClockServer};
use clock::{PooledClockClient, StampRequest, Stamped};

struct Stamper;

#[tonic::async_trait]
impl Clock for Stamper {
    async fn stamp(
        &self,
        request: tonic::Request<StampRequest>,
    ) -> Result<tonic::Response<Stamped>, tonic::Status> {
        let at = prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 };
        Ok(tonic::Response::new(Stamped { name: request.into_inner().name, at: Some(at) }))
    }
}
use helloworld::greeter_server::{Greeter, GreeterServer};
use helloworld::{HelloReply, HelloRequest, PooledGreeterClient};

struct Hello;

#[tonic::async_trait]
impl Greeter for Hello {
    async fn say_hello(
        &self,
        request: tonic::Request<HelloRequest>,
    ) -> Result<tonic::Response<HelloReply>, tonic::Status> {
        let message = format!("Hello {}!", request.into_inner().name);
        Ok(tonic::Response::new(HelloReply { message }))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(GreeterServer::new(Hello))
            .add_service(ClockServer::new(Stamper))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let pool = pooled_client::Pool::builder().endpoint(format!("http://{addr}")).max_connections(8).build()?;
    let greeter = PooledGreeterClient::new(pool.clone());
    let reply = greeter.say_hello(HelloRequest { name: "fresh crate".into() }).await?;
    let stamped = PooledClockClient::new(pool).stamp(StampRequest { name: "t".into() }).await?;
    assert_eq!(stamped.into_inner().at.map(|at| at.seconds), Some(1_700_000_000));
    println!("{}", reply.into_inner().message);
    Ok(())
}
RS
cp "$repo/Cargo.lock" "$dir/Cargo.lock"
if command -v protoc >/dev/null 2>&1; then
  echo "warning: protoc is on PATH; the build helper does not use it"
fi
output="$(cd "$dir" && CARGO_TARGET_DIR="$repo/target/fresh-user" cargo run --quiet)"
echo "$output"
[ "$output" = "Hello fresh crate!" ]
echo "fresh user crate: ok"
