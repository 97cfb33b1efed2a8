//! Examples of pooled-client.
