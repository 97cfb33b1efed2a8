//! Turning transport failures into the `Status` codes gRPC specifies.
//!
//! tonic reports a broken connection as `UNKNOWN`; gRPC's status-code guide
//! says a transport failure is `UNAVAILABLE`, and the pool owns the transport.

use std::error::Error as StdError;

use tonic::{Code, Status};

use super::error::TransportError;

/// The status for a call that failed in the transport.
pub(crate) fn from_transport(error: TransportError, endpoint: &str) -> Status {
    // The caller's own request failed (its stream, or its encoder): that
    // is the call's status, and no connection failed.
    if let TransportError::Body(body) = &error
        && let Some(status) = find::<Status>(&**body)
    {
        return request_status(status);
    }
    let code = code_for(&error);
    let message = match error.h2() {
        _ if error.is_timeout() => {
            format!("connection to {endpoint} missed its keepalive: {error}")
        }
        // One stream's reset is not a failed connection (PROTOCOL-HTTP2.md
        // maps the reset's code to the call's status).
        Some(h2) if h2.is_reset() && !h2.is_go_away() => {
            let reason = h2.reason().unwrap_or(h2::Reason::INTERNAL_ERROR);
            if h2.is_remote() {
                format!("the server at {endpoint} reset the call's stream (RST_STREAM {reason:?})")
            } else {
                format!("the call's stream to {endpoint} was reset (RST_STREAM {reason:?}): {h2}")
            }
        }
        _ => format!("connection to {endpoint} failed: {}", chain(&error)),
    };
    let mut status = Status::new(code, message);
    status.set_source(std::sync::Arc::new(error));
    status
}

pub(crate) fn code_for(error: &TransportError) -> Code {
    if let TransportError::Body(body) = error {
        // The caller's own stream failed: its status, if it is one.
        return find::<Status>(&**body).map_or(Code::Internal, |s| request_status(s).code());
    }
    let Some(h2) = error.h2() else {
        return Code::Unavailable;
    };
    // A stream the server reset: the mapping of gRPC's HTTP/2 spec.
    if h2.is_reset() && !h2.is_go_away() {
        return match h2.reason() {
            Some(h2::Reason::REFUSED_STREAM) => Code::Unavailable,
            Some(h2::Reason::CANCEL) => Code::Cancelled,
            Some(h2::Reason::ENHANCE_YOUR_CALM) => Code::ResourceExhausted,
            Some(h2::Reason::INADEQUATE_SECURITY) => Code::PermissionDenied,
            _ => Code::Internal,
        };
    }
    // GOAWAY, I/O errors and the connection's end: the transport is gone.
    Code::Unavailable
}

/// The status of a call whose request body failed with `status`. tonic's
/// encoder says OUT_OF_RANGE for a message above the client's
/// `max_encoding_message_size`; gRPC's `doc/statuscodes.md` gives
/// RESOURCE_EXHAUSTED for a message larger than a configured limit.
fn request_status(status: &Status) -> Status {
    if status.code() == Code::OutOfRange && status.message().starts_with(TONIC_ENCODE_LIMIT) {
        return Status::resource_exhausted(format!(
            "the request message is above the client's max_encoding_message_size, so it was not sent (its stream was reset with CANCEL): {}",
            status.message()
        ));
    }
    status.clone()
}

/// How tonic 0.14's encoder starts the message of a request above its limit.
const TONIC_ENCODE_LIMIT: &str = "Error, encoded message length too large";

/// Whether the server refused the request before processing it: a stream it
/// reset with REFUSED_STREAM, or one h2 would not open after the server's
/// GOAWAY. Such a request is safe to send again (RFC 9113, section 8.7).
pub(crate) fn refused_unprocessed(error: &TransportError) -> bool {
    error.h2().is_some_and(|h2| {
        (h2.is_go_away() && h2.is_remote())
            || (h2.is_reset() && h2.reason() == Some(h2::Reason::REFUSED_STREAM))
    })
}

fn find<'a, T: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// The error and its causes, joined with ": ".
pub(crate) fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(cause) = current {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        current = cause.source();
    }
    text
}

/// Whether `status` came from a stream the server reset (not a GOAWAY).
pub(crate) fn is_stream_reset(status: &Status) -> bool {
    status
        .source()
        .and_then(|source| source.downcast_ref::<TransportError>())
        .and_then(TransportError::h2)
        .is_some_and(|h2| h2.is_reset() && !h2.is_go_away())
}
