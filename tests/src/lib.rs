//! Support for the integration tests: generated code, a greeter service
//! with every RPC shape, and servers on loopback.
#![allow(missing_docs)]

pub mod server;

/// The code generated from `proto/helloworld.proto`.
pub mod helloworld {
    tonic::include_proto!("helloworld");
}
