//! A server's answer checked before tonic reads it: everything a server
//! sends is untrusted input.
//!
//! - A response that is not gRPC (an error page from a proxy: no
//!   `grpc-status`, and an HTTP status other than 200 or a content-type other
//!   than `application/grpc`) takes its status from the HTTP status, as gRPC's
//!   `doc/http-grpc-status-mapping.md` gives it, whatever its body; read as
//!   gRPC framing, an HTML body would say "invalid compression flag: 60".
//! - A `grpc-status-details-bin` that is not base64 is dropped: tonic's
//!   `Status::from_header_map` panics on it.
//! - A `grpc-message` that is not UTF-8 once percent-decoded is replaced by
//!   its lossy decoding, percent-encoded again: tonic would turn the call's
//!   code into UNKNOWN, where `doc/PROTOCOL-HTTP2.md` has the code stand
//!   ("When decoding invalid values, implementations MUST NOT error or throw
//!   away the message").

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tonic::Code;

/// The names as values, so that a lookup does not parse them (every call
/// makes these lookups).
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
const GRPC_STATUS_DETAILS: HeaderName = HeaderName::from_static("grpc-status-details-bin");

/// The `grpc-status` an answer's trailers (or a trailers-only head)
/// carry, as sent: `b"0"` for OK.
pub(crate) fn status_of(headers: &HeaderMap) -> Option<&[u8]> {
    headers.get(GRPC_STATUS).map(HeaderValue::as_bytes)
}

/// Whether an answer's trailers (or trailers-only head) end the call with
/// CANCELLED.
pub(crate) fn is_cancelled(headers: &HeaderMap) -> bool {
    status_of(headers) == Some(b"1")
}

/// The engine tonic 0.14 decodes `grpc-status-details-bin` with (padding
/// optional), so that what passes here decodes there.
const DETAILS: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Checks a response's head (its HTTP `status` and `headers`): a head that
/// carries a status (trailers-only) is repaired as trailers are; one that
/// is not gRPC (no `grpc-status`, and an HTTP status other than 200 or a
/// content-type other than `application/grpc`) gives the status its HTTP
/// status maps to.
#[inline]
pub(crate) fn check_head(status: StatusCode, headers: &mut HeaderMap) -> Option<(Code, String)> {
    // One pass over the head's few headers costs less than two hashed
    // lookups (S3: about 200 instructions a call).
    let (mut has_status, mut content_type) = (false, None);
    for (name, value) in headers.iter() {
        if name == http::header::CONTENT_TYPE {
            content_type = Some(value);
        } else if name == GRPC_STATUS {
            has_status = true;
        }
    }
    if has_status {
        repair_slow(headers);
        return None;
    }
    if status == StatusCode::OK && content_type.is_some_and(|v| is_grpc(v.as_bytes())) {
        return None;
    }
    non_grpc(status, content_type)
}

/// The status of a response that is not gRPC, by its HTTP status.
#[cold]
fn non_grpc(status: StatusCode, content_type: Option<&HeaderValue>) -> Option<(Code, String)> {
    let code = from_http(status);
    let content_type =
        content_type.map_or_else(|| "none".into(), |v| String::from_utf8_lossy(v.as_bytes()));
    Some((
        code,
        format!(
            "the server's answer is not gRPC: HTTP status {status}, content-type {content_type:?}, no grpc-status (mapped per gRPC's http-grpc-status-mapping.md)"
        ),
    ))
}

/// Whether `content_type` is gRPC's: `application/grpc`, alone or followed by
/// `+` (a codec) or `;` (parameters).
fn is_grpc(content_type: &[u8]) -> bool {
    content_type
        .strip_prefix(b"application/grpc")
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'+' || rest[0] == b';')
}

/// gRPC's `doc/http-grpc-status-mapping.md`: the code of a response without
/// `grpc-status` by its HTTP status.
pub(crate) fn from_http(status: StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// A trailers-only head that carries `code` and `message`, for a response
/// that is not gRPC.
pub(crate) fn trailers_only(headers: &mut HeaderMap, code: Code, message: &str) {
    headers.clear();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(GRPC_STATUS, HeaderValue::from(code as i32));
    if let Ok(message) = HeaderValue::from_str(&percent_encode(message.as_bytes())) {
        headers.insert(GRPC_MESSAGE, message);
    }
}

/// Repairs what tonic would panic on or misread in a status's `headers`
/// (trailers, or a trailers-only head): drops a `grpc-status-details-bin`
/// that is not base64, and makes `grpc-message` UTF-8. Headers with only a
/// `grpc-status` (tonic's OK trailers) cost one length check; grpc-go's,
/// which add an empty `grpc-message`, a walk over the two.
#[inline]
pub(crate) fn repair(headers: &mut HeaderMap) {
    if headers.len() > 1 && needs_repair(headers) {
        repair_slow(headers);
    }
}

#[cold]
fn repair_slow(headers: &mut HeaderMap) {
    if let Some(details) = headers.get(GRPC_STATUS_DETAILS)
        && DETAILS.decode(details.as_bytes()).is_err()
    {
        tracing::debug!(
            length = details.len(),
            "dropped a grpc-status-details-bin that is not base64"
        );
        headers.remove(GRPC_STATUS_DETAILS);
    }
    if let Some(message) = headers.get(GRPC_MESSAGE)
        && !is_plain_ascii(message.as_bytes())
    {
        let decoded = percent_encoding::percent_decode(message.as_bytes()).collect::<Vec<u8>>();
        if std::str::from_utf8(&decoded).is_err() {
            let lossy = String::from_utf8_lossy(&decoded);
            tracing::debug!(message = %lossy, "replaced a grpc-message that is not UTF-8");
            match HeaderValue::from_str(&percent_encode(lossy.as_bytes())) {
                Ok(value) => headers.insert(GRPC_MESSAGE, value),
                Err(_) => headers.remove(GRPC_MESSAGE),
            };
        }
    }
}

/// Whether `headers` carry a status detail that is not base64 or a message
/// that may not be UTF-8: one walk over their few entries, where a hashed
/// lookup per name cost every grpc-go answer two (1 % of a call's
/// instructions at 64 calls in flight).
fn needs_repair(headers: &HeaderMap) -> bool {
    headers.iter().any(|(name, value)| {
        (*name == GRPC_STATUS_DETAILS && DETAILS.decode(value.as_bytes()).is_err())
            || (*name == GRPC_MESSAGE && !is_plain_ascii(value.as_bytes()))
    })
}

/// A message with no escapes and no byte above ASCII is UTF-8 as it is:
/// nothing to decode (nearly every message, the empty one included).
fn is_plain_ascii(bytes: &[u8]) -> bool {
    bytes.iter().all(|&byte| byte.is_ascii() && byte != b'%')
}

/// gRPC's percent-encoding of a `grpc-message`: bytes outside printable
/// ASCII, and `%`, as `%XX`.
fn percent_encode(bytes: &[u8]) -> String {
    let mut encoded = String::with_capacity(bytes.len());
    for &byte in bytes {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(headers: &HeaderMap) -> tonic::Status {
        tonic::Status::from_header_map(headers).expect("a grpc-status")
    }

    #[test]
    fn proxy_error_pages_map_from_their_http_status() {
        let mut html = HeaderMap::new();
        html.insert("content-type", HeaderValue::from_static("text/html"));
        for (status, code) in [
            (502, Code::Unavailable),
            (503, Code::Unavailable),
            (404, Code::Unimplemented),
            (401, Code::Unauthenticated),
            (403, Code::PermissionDenied),
            (429, Code::Unavailable),
            (200, Code::Unknown),
            (500, Code::Unknown),
        ] {
            let status = StatusCode::from_u16(status).unwrap();
            let (found, message) = check_head(status, &mut html.clone()).expect("not gRPC");
            assert_eq!(found, code, "{status}");
            assert!(message.contains("text/html"), "{message}");
        }
    }

    #[test]
    fn grpc_answers_pass() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        assert!(check_head(StatusCode::OK, &mut headers.clone()).is_none());
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/grpc+proto"),
        );
        assert!(check_head(StatusCode::OK, &mut headers.clone()).is_none());
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/grpcx"),
        );
        assert!(check_head(StatusCode::OK, &mut headers.clone()).is_some());
        // A grpc-status decides, whatever the rest says.
        headers.insert("grpc-status", HeaderValue::from_static("14"));
        assert!(check_head(StatusCode::BAD_GATEWAY, &mut headers.clone()).is_none());
    }

    #[test]
    fn bad_details_are_dropped_and_the_status_stands() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static("9"));
        headers.insert("grpc-message", HeaderValue::from_static("no%20way"));
        headers.insert(
            "grpc-status-details-bin",
            HeaderValue::from_static("!!not base64!!"),
        );
        repair(&mut headers);
        let status = status_of(&headers);
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(status.message(), "no way");
        assert!(status.details().is_empty());
    }

    #[test]
    fn good_details_are_kept() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static("9"));
        headers.insert("grpc-status-details-bin", HeaderValue::from_static("AQID"));
        repair(&mut headers);
        assert_eq!(status_of(&headers).details(), &[1, 2, 3]);
    }

    #[test]
    fn plain_messages_pass_and_a_raw_byte_above_ascii_is_repaired() {
        for plain in ["", "not found", "100 percent sure"] {
            let mut headers = HeaderMap::new();
            headers.insert("grpc-status", HeaderValue::from_static("5"));
            headers.insert("grpc-message", HeaderValue::from_static(plain));
            let before = headers.clone();
            repair(&mut headers);
            assert_eq!(headers, before);
        }
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static("5"));
        headers.insert(
            "grpc-message",
            HeaderValue::from_bytes(b"bad \xff").unwrap(),
        );
        repair(&mut headers);
        assert_eq!(headers["grpc-message"], "bad %EF%BF%BD");
        assert_eq!(status_of(&headers).message(), "bad \u{fffd}");
    }

    #[test]
    fn a_message_that_is_not_utf8_is_decoded_lossily_and_the_code_stands() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static("5"));
        headers.insert("grpc-message", HeaderValue::from_static("bad %FF%FE byte"));
        repair(&mut headers);
        let status = status_of(&headers);
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "bad \u{fffd}\u{fffd} byte");
    }

    #[test]
    fn a_synthesised_head_reads_back() {
        let mut headers = HeaderMap::new();
        trailers_only(&mut headers, Code::Unavailable, "100% \"down\"");
        let status = status_of(&headers);
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "100% \"down\"");
    }
}
