//! gRPC's names of its status codes (`statuscodes.md`): read in a service
//! config (`"UNAVAILABLE"`), written in metrics' `grpc.status` label.

use tonic::Code;

/// gRPC's names of the status codes, by value (`statuscodes.md`).
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// gRPC's name of `code`, such as `UNAVAILABLE`.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) fn code_name(code: Code) -> &'static str {
    CODE_NAMES.get(code as usize).copied().unwrap_or("UNKNOWN")
}

/// The code gRPC names `name` (in any case), if any.
pub(crate) fn code_named(name: &str) -> Option<Code> {
    let index = CODE_NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(name))?;
    Some(Code::from_i32(index as i32))
}
