//! Compiles the test protos with the build helper, as a user would, with no
//! protoc on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    pooled_client::build::compile_protos("proto/helloworld.proto")?;
    pooled_client::build::configure()
        .type_attribute("a.b.v1.ItemRef", "#[derive(PartialOrd)]")
        .compile_protos(&["proto/codegen/a/b/v1/catalog.proto"], &["proto/codegen"])?;
    pooled_client::build::configure().compile_protos(
        &["proto/interop/grpc/testing/test.proto"],
        &["proto/interop"],
    )?;
    Ok(())
}
