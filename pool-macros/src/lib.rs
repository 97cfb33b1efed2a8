//! The `#[pooled_client]` attribute; use it through the `pooled-client` crate.
