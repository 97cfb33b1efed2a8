//! Support for the integration tests: generated code, a greeter service
//! with every RPC shape, and servers on loopback.
#![allow(missing_docs)]

pub mod dns;
pub mod etcd;
pub mod frames;
pub mod fuzz;
pub mod hostile;
pub mod interop;
pub mod memory;
pub mod proxy;
pub mod scripted;
pub mod server;
pub mod support;
pub mod xds;

/// pooled-client re-exported, as an SDK crate would; the interop protos'
/// generated clients name it by this path (`pooled_client_path`).
pub mod sdk {
    pub use ::pooled_client;
}

/// The code generated from `proto/helloworld.proto`.
pub mod helloworld {
    tonic::include_proto!("helloworld");
}

/// The code generated from `proto/codegen/a/b/v1/catalog.proto`: a dotted
/// package that imports another package and well-known types.
pub mod a {
    pub mod b {
        pub mod v1 {
            tonic::include_proto!("a.b.v1");
        }
    }
}

/// The code generated from `proto/codegen/common/v1/types.proto`.
pub mod common {
    pub mod v1 {
        tonic::include_proto!("common.v1");
    }
}
