//! Compiles the test protos with the build helper, as a user would, with no
//! protoc on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    pooled_client::build::compile_protos("proto/helloworld.proto")?;
    pooled_client::build::configure()
        .type_attribute("a.b.v1.ItemRef", "#[derive(PartialOrd)]")
        .compile_protos(&["proto/codegen/a/b/v1/catalog.proto"], &["proto/codegen"])?;
    // As an SDK that re-exports pooled-client would: the generated code
    // names the crate by the re-export (`crate::sdk::pooled_client`, in
    // src/lib.rs). The protos and includes are of different types.
    pooled_client::build::configure()
        .pooled_client_path("crate::sdk::pooled_client")
        .compile_protos(
            &[std::path::PathBuf::from(
                "proto/interop/grpc/testing/test.proto",
            )],
            &["proto/interop"],
        )?;
    Ok(())
}
