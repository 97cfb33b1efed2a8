//! The field types that declare RPCs in a `#[pooled_client]` struct.

use std::fmt;
use std::marker::PhantomData;

macro_rules! rpc_kinds {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        pub struct $name<Request, Response>(PhantomData<fn(Request) -> Response>);

        impl<Request, Response> fmt::Debug for $name<Request, Response> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(stringify!($name))
            }
        }
    )*};
}

rpc_kinds! {
    /// Declares a unary RPC: one request, one response.
    ///
    /// The method takes `impl tonic::IntoRequest<Request>` and returns
    /// `tonic::Response<Response>`.
    Unary;
    /// Declares a server-streaming RPC: one request, a stream of responses.
    ///
    /// The method returns `tonic::Response<tonic::Streaming<Response>>`.
    ServerStreaming;
    /// Declares a client-streaming RPC: a stream of requests, one response.
    ///
    /// The method takes `impl tonic::IntoStreamingRequest<Message = Request>`.
    ClientStreaming;
    /// Declares a bidirectional-streaming RPC: streams both ways.
    BidiStreaming;
}
