//! One call through the pool, above the pool's state: the tower `Service`
//! and its future, the attempt loop and its retry policy, the deadline,
//! what a call holds until it ends, and the response body.
//!
//! | file | what |
//! |---|---|
//! | `service.rs` | `impl Service for Pool`, `ResponseFuture`, the call's deadline |
//! | `deadline.rs` | the `grpc-timeout` header |
//! | `send.rs` | the attempt loop |
//! | `retry.rs` | whether a failed attempt is sent again |
//! | `hedge.rs` | hedging: copies of a call, the first answer wins |
//! | `limit.rs` | the service config's message size limits |
//! | `end.rs` | `CallEnd`: the slot, the request stream and the deadline |
//! | `body.rs` | `ResponseBody`, which holds the `CallEnd` until it ends |

mod body;
mod deadline;
mod end;
mod hedge;
mod limit;
mod retry;
mod send;
mod service;

pub use self::body::ResponseBody;
pub use self::retry::Idempotent;
pub use self::service::ResponseFuture;
