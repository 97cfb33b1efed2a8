//! Compiles the example protos with the build helper, as a user would.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    pooled_client::build::compile_protos("proto/helloworld.proto")?;
    pooled_client::build::compile_protos("proto/route_guide.proto")?;
    Ok(())
}
