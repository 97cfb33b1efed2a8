//! The pool's error type.

/// The boxed error type used for causes.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong when building or using a [`Pool`](crate::Pool).
///
/// Calls made through the pool fail with a [`tonic::Status`] instead; this
/// type is for building the pool and for [`Pool::ready`](crate::Pool::ready).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `build()` was called without any endpoint.
    #[error("no endpoint configured: call `endpoint(uri)` at least once")]
    NoEndpoint,
    /// An endpoint is not a valid URI.
    #[error("invalid endpoint URI {uri:?}: {source}")]
    InvalidUri {
        /// The URI as given.
        uri: String,
        /// Why it did not parse.
        #[source]
        source: http::uri::InvalidUri,
    },
    /// An endpoint parsed but cannot be used.
    #[error("invalid endpoint {uri:?}: {reason}")]
    InvalidEndpoint {
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An endpoint's scheme is not supported.
    #[error("endpoint {uri:?} has unsupported scheme {scheme:?}: {hint}")]
    UnsupportedScheme {
        /// The URI as given.
        uri: String,
        /// The scheme it names.
        scheme: String,
        /// What to do instead.
        hint: &'static str,
    },
    /// A setting has a value the pool cannot work with.
    #[error("invalid setting `{name}` = {value}: {reason}")]
    InvalidSetting {
        /// The setting's name, as the builder method that sets it.
        name: &'static str,
        /// The rejected value, formatted.
        value: String,
        /// The rule it breaks, with the other values involved.
        reason: std::borrow::Cow<'static, str>,
    },
    /// A service config breaks one of gRPC's rules (see
    /// [`ServiceConfig::from_json`](crate::ServiceConfig::from_json)).
    #[error("invalid service config: `{field}` = {value}: {reason}")]
    InvalidServiceConfig {
        /// Where in the config, such as `methodConfig[0].retryPolicy.maxAttempts`.
        field: String,
        /// The rejected value, as written.
        value: String,
        /// The rule it breaks.
        reason: std::borrow::Cow<'static, str>,
    },
    /// An xDS bootstrap (gRPC A27) is missing or breaks a rule; `origin`
    /// names where it was read (a file and the variable that named it,
    /// `GRPC_XDS_BOOTSTRAP_CONFIG`, or the builder).
    #[cfg(feature = "xds")]
    #[error("invalid xDS bootstrap from {origin}: `{field}`: {reason}")]
    InvalidXdsBootstrap {
        /// Where the bootstrap came from.
        origin: String,
        /// The field at fault, such as `xds_servers[0].server_uri`.
        field: String,
        /// What is wrong with it.
        reason: std::borrow::Cow<'static, str>,
    },
    /// The pool was closed.
    #[error("the pool is closed")]
    Closed,
    /// Every endpoint failed its connection attempt.
    #[error("could not connect to {endpoint}: {source}")]
    Connect {
        /// The endpoint whose attempt failed last.
        endpoint: String,
        /// Why it failed.
        #[source]
        source: BoxError,
    },
}
