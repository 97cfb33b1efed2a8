//! A resource's failed check, as the NACK carries it: every check of
//! `resources.rs`, `matcher.rs` and `balancing.rs` says what is wrong this
//! way.

use xds_client::Error as XdsError;

/// A failed check: the field's path and what is wrong, as the NACK's
/// `error_detail` carries it.
pub(super) fn nack(field: impl std::fmt::Display, reason: impl std::fmt::Display) -> XdsError {
    XdsError::Validation(format!("{field}: {reason}"))
}
