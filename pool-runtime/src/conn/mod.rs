//! One HTTP/2 connection, knowing nothing of the pool: the server it goes
//! to, opening it, what its I/O learns, sending on it, and turning its
//! failures into gRPC statuses.
//!
//! | file | what |
//! |---|---|
//! | `endpoint.rs` | a server address and the bookkeeping of attempts to it |
//! | `dial.rs` | the byte stream: TCP, a Unix socket or the user's connector, then TLS |
//! | `connect.rs` | the HTTP/2 handshake over it (h2) and the first SETTINGS |
//! | `driver.rs` | the connection's task: h2, keepalive PINGs, the adaptive window |
//! | `exchange.rs` | one request and its response on a stream, the request body sent from the caller's task |
//! | `recv_body.rs` | a response body read from h2 |
//! | `answer.rs` | a server's answer checked before tonic reads it: not gRPC, bad status details, a message that is not UTF-8 |
//! | `error.rs` | transport errors, and why a connection attempt or a health check failed |
//! | `tls.rs` | rustls glue (feature `tls`) |
//! | `transport.rs` | the byte stream's kinds as one type |
//! | `tcp.rs` | a TCP stream that sends the ACK of what it read when no write carries it |
//! | `frames.rs` | the frame scanner that reads SETTINGS and GOAWAY |
//! | `link.rs` | what the connection's I/O and its users share |
//! | `probe.rs` | a `grpc.health.v1` check sent on one connection |
//! | `connection.rs` | an open connection: send handle, stream count, limit |
//! | `request_body.rs` | the request body, and the caller's handle on it |
//! | `status.rs` | transport errors as gRPC statuses |

mod answer;
mod connect;
mod connection;
mod dial;
mod driver;
mod endpoint;
mod error;
mod exchange;
mod frames;
mod link;
mod probe;
mod recv_body;
mod request_body;
pub(crate) mod status;
mod tcp;
#[cfg(feature = "tls")]
mod tls;
mod transport;

pub(crate) use self::answer::{is_cancelled, status_of};
pub(crate) use self::connect::{Connected, connect};
pub(crate) use self::connection::Connection;
pub(crate) use self::dial::{Connector, Dial};
pub(crate) use self::driver::Driver;
#[cfg(feature = "dns")]
pub(crate) use self::endpoint::default_port;
pub(crate) use self::endpoint::{Endpoint, parse_authority};
pub(crate) use self::error::{ConnectError, TransportError};
pub(crate) use self::exchange::SendError;
pub(crate) use self::link::{DEFAULT_MAX_STREAMS, Link, State};
pub(crate) use self::probe::check as probe;
pub(crate) use self::recv_body::RecvBody;
pub(crate) use self::request_body::{BodyHandle, REPLAY_LIMIT, RequestBody};
#[cfg(feature = "tls")]
pub(crate) use self::tls::{Tls, Verifier};

/// Without the `tls` feature there are no TLS settings.
#[cfg(not(feature = "tls"))]
#[derive(Debug, Clone)]
pub(crate) enum Tls {}
