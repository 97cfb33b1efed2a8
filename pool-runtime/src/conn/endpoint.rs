//! One server address the pool connects to: the URI parsed, and where its
//! connections go.

use std::net::SocketAddr;
use std::path::PathBuf;

use http::Request;
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use tonic::Status;

use crate::discovery::Target;
use crate::error::Error;

/// A parsed endpoint: what it is and where its connections go (the pool's
/// bookkeeping of it is `state::Member`).
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// What identifies the endpoint in the pool and names it in messages:
    /// the URI as given, and the address connected to when it is not the
    /// URI's host (a resolved name).
    pub(crate) key: String,
    /// The endpoint as it was given, which identifies it.
    pub(crate) target: Target,
    pub(crate) scheme: Scheme,
    pub(crate) authority: Authority,
    /// Where connections go.
    pub(crate) address: Address,
    /// The URI a user's connector is given: the endpoint's, with the
    /// address to connect to as its authority when one was given.
    pub(crate) dial_uri: Uri,
}

/// Where an endpoint's connections go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Address {
    /// `host:port`, as `TcpStream::connect` takes it.
    Tcp(String),
    /// A Unix domain socket's path (`unix:` endpoints).
    Unix(PathBuf),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(address) => f.write_str(address),
            Self::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The socket path of a `unix:` URI, in gRPC's and tonic's spellings:
/// `unix:relative/or/absolute/path` and `unix:///absolute/path`.
fn unix_path(uri: &str) -> Option<Result<PathBuf, Error>> {
    let rest = uri.strip_prefix("unix:")?;
    let path = match rest.strip_prefix("//") {
        // `unix://` must be followed by an absolute path (no host).
        Some(absolute) if absolute.starts_with('/') => absolute,
        Some(_) => {
            return Some(Err(Error::InvalidEndpoint {
                uri: uri.to_owned(),
                reason: "a unix:// URI takes an absolute path: write \"unix:///path/to.sock\"",
            }));
        }
        None => rest,
    };
    if path.is_empty() {
        return Some(Err(Error::InvalidEndpoint {
            uri: uri.to_owned(),
            reason: "it names no socket path",
        }));
    }
    Some(Ok(PathBuf::from(path)))
}

impl Endpoint {
    /// Parses and checks an endpoint URI.
    pub(crate) fn parse(uri: &str) -> Result<Self, Error> {
        if let Some(path) = unix_path(uri) {
            return Ok(Self::unix(uri, path?));
        }
        let parsed: Uri = uri.parse().map_err(|source| Error::InvalidUri {
            uri: uri.to_owned(),
            source,
        })?;
        let invalid = |reason| Error::InvalidEndpoint {
            uri: uri.to_owned(),
            reason,
        };
        let scheme = parsed
            .scheme()
            .cloned()
            .ok_or_else(|| invalid("it has no scheme: write \"http://host:port\""))?;
        let Some(default_port) = default_port(&scheme) else {
            return Err(Error::UnsupportedScheme {
                uri: uri.to_owned(),
                scheme: scheme.as_str().to_owned(),
                hint: if scheme == Scheme::HTTPS {
                    "enable the `tls` feature for https"
                } else {
                    "use \"http\" or \"https\""
                },
            });
        };
        let authority = parsed
            .authority()
            .cloned()
            .ok_or_else(|| invalid("it has no host"))?;
        if authority.host().is_empty() {
            return Err(invalid("it has no host"));
        }
        if authority.as_str().contains('@') {
            return Err(invalid(
                "user information in the authority is not supported",
            ));
        }
        if parsed.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err(invalid(
                "it has a path or query: give only scheme, host and port",
            ));
        }
        let port = authority.port_u16().unwrap_or(default_port);
        let address = format!("{}:{port}", authority.host());
        Ok(Self {
            key: uri.to_owned(),
            target: Target::new(uri),
            scheme,
            authority,
            address: Address::Tcp(address),
            dial_uri: parsed,
        })
    }

    /// A `unix:` endpoint: plain HTTP/2 over the socket at `path`, with
    /// `localhost` as the `:authority`, as gRPC's clients send.
    fn unix(uri: &str, path: PathBuf) -> Self {
        Self {
            key: uri.to_owned(),
            target: Target::new(uri),
            scheme: Scheme::HTTP,
            authority: Authority::from_static("localhost"),
            address: Address::Unix(path),
            dial_uri: Uri::from_static("http://localhost"),
        }
    }

    /// Parses `uri` but connects to `address` instead of resolving the URI's
    /// host, which stays the `:authority` (and the TLS server name).
    pub(crate) fn parse_at(uri: &str, address: Option<SocketAddr>) -> Result<Self, Error> {
        let mut endpoint = Self::parse(uri)?;
        if let Some(address) = address {
            if matches!(endpoint.address, Address::Unix(_)) {
                return Err(Error::InvalidEndpoint {
                    uri: uri.to_owned(),
                    reason: "a unix: endpoint takes no address to connect to",
                });
            }
            endpoint.address = Address::Tcp(address.to_string());
            endpoint.target = Target::new(uri).connect_to(address);
            endpoint.key = endpoint.target.to_string();
            let mut parts = endpoint.dial_uri.clone().into_parts();
            parts.authority = address.to_string().parse().ok();
            if let Ok(dial_uri) = Uri::from_parts(parts) {
                endpoint.dial_uri = dial_uri;
            }
        }
        Ok(endpoint)
    }

    /// Replaces the `:authority` every call to this endpoint sends.
    pub(crate) fn set_authority(&mut self, authority: Authority) {
        self.authority = authority;
    }

    /// Points `request` at this endpoint, keeping its path.
    pub(crate) fn address_request<B>(&self, request: &mut Request<B>) -> Result<(), Status> {
        let mut parts = std::mem::take(request.uri_mut()).into_parts();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(PathAndQuery::from_static("/"));
        }
        *request.uri_mut() = Uri::from_parts(parts)
            .map_err(|e| Status::internal(format!("cannot address {}: {e}", self.key)))?;
        Ok(())
    }

    /// Whether connections use TLS (`https`).
    pub(crate) fn is_tls(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    /// The host name for TLS: the URI's host, without IPv6 brackets.
    #[cfg(feature = "tls")]
    pub(crate) fn host(&self) -> &str {
        let host = self.authority.host();
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
    }
}

/// The port a scheme implies when the URI gives none, or `None` for a
/// scheme the pool cannot connect with (`https` needs the `tls` feature).
pub(crate) fn default_port(scheme: &Scheme) -> Option<u16> {
    if *scheme == Scheme::HTTP {
        Some(80)
    } else if *scheme == Scheme::HTTPS && cfg!(feature = "tls") {
        Some(443)
    } else {
        None
    }
}

/// Parses the `authority` setting.
pub(crate) fn parse_authority(value: &str) -> Result<Authority, Error> {
    value
        .parse::<Authority>()
        .ok()
        .filter(|a| !a.host().is_empty() && !a.as_str().contains('@'))
        .ok_or_else(|| Error::InvalidSetting {
            name: "origin",
            value: format!("{value:?}"),
            reason: "must be a host name, with an optional port".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_and_port() {
        let endpoint = Endpoint::parse("http://127.0.0.1:50051").unwrap();
        assert_eq!(endpoint.address.to_string(), "127.0.0.1:50051");
        assert_eq!(endpoint.authority.as_str(), "127.0.0.1:50051");
    }

    #[test]
    fn defaults_port_80_and_keeps_ipv6_brackets() {
        assert_eq!(
            Endpoint::parse("http://localhost")
                .unwrap()
                .address
                .to_string(),
            "localhost:80"
        );
        assert_eq!(
            Endpoint::parse("http://[::1]:9")
                .unwrap()
                .address
                .to_string(),
            "[::1]:9"
        );
    }

    #[test]
    fn parses_unix_sockets_in_both_spellings() {
        for (uri, path) in [
            ("unix:/run/app.sock", "/run/app.sock"),
            ("unix:///run/app.sock", "/run/app.sock"),
            ("unix:app.sock", "app.sock"),
        ] {
            let endpoint = Endpoint::parse(uri).unwrap();
            assert_eq!(
                endpoint.address,
                Address::Unix(PathBuf::from(path)),
                "{uri}"
            );
            assert_eq!(endpoint.authority.as_str(), "localhost");
            assert!(!endpoint.is_tls());
        }
        for uri in ["unix:", "unix://host/app.sock"] {
            assert!(
                matches!(Endpoint::parse(uri), Err(Error::InvalidEndpoint { .. })),
                "{uri}"
            );
        }
        let at = "10.0.0.1:1".parse().ok();
        assert!(Endpoint::parse_at("unix:/run/app.sock", at).is_err());
    }

    #[test]
    fn a_connector_is_given_the_address_to_connect_to() {
        let at = "10.0.0.1:443".parse().ok();
        let endpoint = Endpoint::parse_at("http://orders.internal", at).unwrap();
        assert_eq!(endpoint.dial_uri.to_string(), "http://10.0.0.1:443/");
        assert_eq!(endpoint.authority.as_str(), "orders.internal");
    }

    #[test]
    fn rejects_paths_and_https() {
        assert!(matches!(
            Endpoint::parse("http://h:1/api"),
            Err(Error::InvalidEndpoint { .. })
        ));
        assert!(matches!(
            Endpoint::parse("ftp://h:1"),
            Err(Error::UnsupportedScheme { .. })
        ));
        assert_eq!(
            Endpoint::parse("https://h:1").is_ok(),
            cfg!(feature = "tls")
        );
    }
}
