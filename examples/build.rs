//! Compiles the example protos with the build helper, as a user would.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    pooled_client::build::compile_protos("proto/helloworld.proto")?;
    pooled_client::build::compile_protos("proto/route_guide.proto")?;
    // The benchmark's payloads are `Bytes`, so large messages are not copied.
    pooled_client::build::configure()
        .bytes(["."])
        .compile_protos(&["proto/bench.proto"], &["proto"])?;
    // grpc's BenchmarkService, for S11 against grpc-go's benchmark server.
    pooled_client::build::compile_protos("proto/grpc_benchmark.proto")?;
    Ok(())
}
