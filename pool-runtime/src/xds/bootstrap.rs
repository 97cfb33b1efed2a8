//! gRPC A27's bootstrap: which control plane to ask, how to reach it, and
//! who is asking.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::error::Error;

/// The variable naming the bootstrap file (gRPC A27).
pub const BOOTSTRAP_FILE_VAR: &str = "GRPC_XDS_BOOTSTRAP";
/// The variable holding the bootstrap's JSON itself (gRPC A27).
pub const BOOTSTRAP_CONFIG_VAR: &str = "GRPC_XDS_BOOTSTRAP_CONFIG";

/// gRPC A53's server feature: a resource the control plane stops sending
/// keeps serving until it sends a new one.
pub const IGNORE_RESOURCE_DELETION: &str = "ignore_resource_deletion";

/// How an xDS pool reaches its control plane and names itself to it: the
/// bootstrap of gRPC A27, as grpc-go, grpc-java and C-core read it.
///
/// A pool built with [`PoolBuilder::xds`](crate::PoolBuilder::xds) reads it
/// from the file that `GRPC_XDS_BOOTSTRAP` names, else from the JSON in
/// `GRPC_XDS_BOOTSTRAP_CONFIG`, unless
/// [`xds_bootstrap`](crate::PoolBuilder::xds_bootstrap) gives one.
///
/// ```
/// use pooled_client::xds::Bootstrap;
///
/// let bootstrap = Bootstrap::from_json(r#"{
///     "xds_servers": [{
///         "server_uri": "127.0.0.1:18000",
///         "channel_creds": [{"type": "insecure"}],
///         "server_features": ["xds_v3"]
///     }],
///     "node": {"id": "orders-7f9c", "cluster": "orders", "locality": {"zone": "eu-west-1a"}}
/// }"#).expect("a valid bootstrap");
/// assert_eq!(bootstrap.server_uri, "127.0.0.1:18000");
/// assert_eq!(bootstrap.node.id, "orders-7f9c");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Bootstrap {
    /// The control plane: `xds_servers[0].server_uri`, with or without a
    /// scheme (`127.0.0.1:18000`, the form grpc-go expects, or
    /// `http://127.0.0.1:18000`).
    ///
    /// Default: none (required).
    pub server_uri: String,
    /// How to reach it: the first of `xds_servers[0].channel_creds` that
    /// this crate supports.
    ///
    /// Default: [`ChannelCreds::Insecure`].
    pub channel_creds: ChannelCreds,
    /// `xds_servers[0].server_features`, such as `xds_v3` and gRPC A53's
    /// `ignore_resource_deletion`.
    ///
    /// Default: none.
    pub server_features: Vec<String>,
    /// Who is asking: `node`.
    ///
    /// Default: an empty node.
    pub node: Node,
}

/// How to reach the control plane (`channel_creds` of gRPC A27 and A65).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelCreds {
    /// Plaintext HTTP/2 (`{"type": "insecure"}`).
    Insecure,
    /// TLS (`{"type": "tls", "config": {...}}`, gRPC A65), with feature
    /// `tls`: the server is checked against `ca_certificate_file`, or
    /// against the Web PKI's roots without one; `certificate_file` and
    /// `private_key_file` together give the client's own identity.
    Tls {
        /// PEM roots to trust. Default: the Web PKI's roots.
        ca_certificate_file: Option<PathBuf>,
        /// The client's PEM certificate chain. Default: none.
        certificate_file: Option<PathBuf>,
        /// The client's PEM private key. Default: none.
        private_key_file: Option<PathBuf>,
    },
}

/// The `node` a client names itself by; control planes choose what to send
/// by it (Istio reads its `metadata`).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Node {
    /// `node.id`. Default: empty.
    pub id: String,
    /// `node.cluster`. Default: empty.
    pub cluster: String,
    /// `node.locality`. Default: none.
    pub locality: Option<Locality>,
    /// `node.metadata`, any JSON object. Default: empty.
    pub metadata: BTreeMap<String, Value>,
}

/// Where a node runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Locality {
    /// `region`. Default: empty.
    pub region: String,
    /// `zone`. Default: empty.
    pub zone: String,
    /// `sub_zone`. Default: empty.
    pub sub_zone: String,
}

impl Bootstrap {
    /// A bootstrap for the control plane at `server_uri`, reached in
    /// plaintext, with an empty node.
    pub fn new(server_uri: impl Into<String>) -> Self {
        Self {
            server_uri: server_uri.into(),
            channel_creds: ChannelCreds::Insecure,
            server_features: Vec::new(),
            node: Node::default(),
        }
    }

    /// Names the node (`node.id`).
    #[must_use]
    pub fn node_id(mut self, id: impl Into<String>) -> Self {
        self.node.id = id.into();
        self
    }

    /// Adds a server feature, such as [`IGNORE_RESOURCE_DELETION`].
    #[must_use]
    pub fn server_feature(mut self, feature: impl Into<String>) -> Self {
        self.server_features.push(feature.into());
        self
    }

    /// Parses a bootstrap's JSON.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidXdsBootstrap`] naming the field at fault: JSON that
    /// does not parse, no `xds_servers`, a `server_uri` missing or empty,
    /// `channel_creds` none of whose types is supported, a field of the
    /// wrong JSON type.
    pub fn from_json(json: &str) -> Result<Self, Error> {
        parse(json, "the JSON given")
    }

    /// Reads and parses the bootstrap file at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidXdsBootstrap`] naming the file: it cannot be read,
    /// or as [`from_json`](Self::from_json).
    pub fn from_file(path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path = path.into();
        read_file(&path, &format!("file {}", path.display()))
    }

    /// The bootstrap the environment gives, as gRPC A27 orders it: the
    /// file `GRPC_XDS_BOOTSTRAP` names, else the JSON in
    /// `GRPC_XDS_BOOTSTRAP_CONFIG`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidXdsBootstrap`] naming the variable: neither is set,
    /// or the one read is invalid.
    pub fn from_env() -> Result<Self, Error> {
        if let Some(path) = std::env::var_os(BOOTSTRAP_FILE_VAR) {
            let path = PathBuf::from(path);
            let origin = format!("file {} ({BOOTSTRAP_FILE_VAR})", path.display());
            return read_file(&path, &origin);
        }
        match std::env::var(BOOTSTRAP_CONFIG_VAR) {
            Ok(json) => parse(&json, BOOTSTRAP_CONFIG_VAR),
            Err(std::env::VarError::NotUnicode(_)) => Err(invalid(
                BOOTSTRAP_CONFIG_VAR,
                "(the document)",
                "is not UTF-8",
            )),
            Err(std::env::VarError::NotPresent) => Err(invalid(
                "the environment",
                "(the document)",
                format!(
                    "no xDS bootstrap: set {BOOTSTRAP_FILE_VAR} to a bootstrap file, \
                     {BOOTSTRAP_CONFIG_VAR} to its JSON, or call `xds_bootstrap(...)`"
                ),
            )),
        }
    }

    /// Whether the control plane declared `feature`.
    pub(crate) fn has_feature(&self, feature: &str) -> bool {
        self.server_features.iter().any(|f| f == feature)
    }

    /// The control plane's URI with its scheme: a bare `host:port` (the
    /// form grpc-go expects) takes the scheme its credentials imply.
    pub(crate) fn server_uri_with_scheme(&self) -> String {
        if self.server_uri.contains("://") {
            return self.server_uri.clone();
        }
        match self.channel_creds {
            ChannelCreds::Insecure => format!("http://{}", self.server_uri),
            ChannelCreds::Tls { .. } => format!("https://{}", self.server_uri),
        }
    }

    /// Checks what the builder was given as it checks a parsed one.
    pub(crate) fn check(&self) -> Result<(), Error> {
        check_server_uri(&self.server_uri, "the builder")?;
        #[cfg(not(feature = "tls"))]
        if let ChannelCreds::Tls { .. } = self.channel_creds {
            return Err(invalid(
                "the builder",
                "channel_creds",
                "TLS to the control plane needs feature `tls`",
            ));
        }
        Ok(())
    }
}

fn read_file(path: &std::path::Path, origin: &str) -> Result<Bootstrap, Error> {
    let json = std::fs::read_to_string(path)
        .map_err(|e| invalid(origin, "(the file)", format!("cannot be read: {e}")))?;
    parse(&json, origin)
}

fn invalid(origin: &str, field: impl Into<String>, reason: impl Into<Cow<'static, str>>) -> Error {
    Error::InvalidXdsBootstrap {
        origin: origin.to_owned(),
        field: field.into(),
        reason: reason.into(),
    }
}

fn parse(json: &str, origin: &str) -> Result<Bootstrap, Error> {
    let value: Value = serde_json::from_str(json)
        .map_err(|e| invalid(origin, "(the document)", format!("is not JSON: {e}")))?;
    let root = object(&value, origin, "(the document)")?;
    let servers = match root.get("xds_servers") {
        Some(Value::Array(servers)) if !servers.is_empty() => servers,
        Some(Value::Array(_)) | None => {
            return Err(invalid(origin, "xds_servers", "names no control plane"));
        }
        Some(_) => return Err(invalid(origin, "xds_servers", "is not a list")),
    };
    let server = object(&servers[0], origin, "xds_servers[0]")?;
    let server_uri = match server.get("server_uri") {
        Some(Value::String(uri)) => uri.clone(),
        Some(_) => {
            return Err(invalid(
                origin,
                "xds_servers[0].server_uri",
                "is not a string",
            ));
        }
        None => return Err(invalid(origin, "xds_servers[0].server_uri", "is missing")),
    };
    check_server_uri(&server_uri, origin)?;
    let channel_creds = parse_creds(server.get("channel_creds"), origin)?;
    let server_features = match server.get("server_features") {
        None => Vec::new(),
        Some(Value::Array(features)) => features
            .iter()
            .enumerate()
            .map(|(i, f)| {
                f.as_str().map(str::to_owned).ok_or_else(|| {
                    invalid(
                        origin,
                        format!("xds_servers[0].server_features[{i}]"),
                        "is not a string",
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(invalid(
                origin,
                "xds_servers[0].server_features",
                "is not a list",
            ));
        }
    };
    let node = match root.get("node") {
        None => Node::default(),
        Some(node) => parse_node(object(node, origin, "node")?, origin)?,
    };
    Ok(Bootstrap {
        server_uri,
        channel_creds,
        server_features,
        node,
    })
}

fn check_server_uri(uri: &str, origin: &str) -> Result<(), Error> {
    let field = "xds_servers[0].server_uri";
    if uri.is_empty() {
        return Err(invalid(origin, field, "is empty"));
    }
    let with_scheme = if uri.contains("://") {
        Cow::Borrowed(uri)
    } else {
        Cow::Owned(format!("http://{uri}"))
    };
    match with_scheme.parse::<http::Uri>() {
        Ok(parsed) if parsed.host().is_some() => Ok(()),
        Ok(_) => Err(invalid(origin, field, format!("{uri:?} names no host"))),
        Err(e) => Err(invalid(origin, field, format!("{uri:?} is not a URI: {e}"))),
    }
}

/// The first credentials of the list that this crate supports, as gRPC
/// A27 has clients choose.
fn parse_creds(value: Option<&Value>, origin: &str) -> Result<ChannelCreds, Error> {
    let field = "xds_servers[0].channel_creds";
    let creds = match value {
        None => return Ok(ChannelCreds::Insecure),
        Some(Value::Array(creds)) => creds,
        Some(_) => return Err(invalid(origin, field, "is not a list")),
    };
    let mut seen = Vec::new();
    for (i, cred) in creds.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let cred = object(cred, origin, &at)?;
        let Some(kind) = cred.get("type").and_then(Value::as_str) else {
            return Err(invalid(origin, format!("{at}.type"), "is missing"));
        };
        match kind {
            "insecure" => return Ok(ChannelCreds::Insecure),
            "tls" if cfg!(feature = "tls") => {
                let config = match cred.get("config") {
                    None => None,
                    Some(config) => Some(object(config, origin, &format!("{at}.config"))?),
                };
                let file = |name: &str| -> Result<Option<PathBuf>, Error> {
                    match config.and_then(|c| c.get(name)) {
                        None => Ok(None),
                        Some(Value::String(path)) => Ok(Some(PathBuf::from(path))),
                        Some(_) => Err(invalid(
                            origin,
                            format!("{at}.config.{name}"),
                            "is not a string",
                        )),
                    }
                };
                let certificate_file = file("certificate_file")?;
                let private_key_file = file("private_key_file")?;
                if certificate_file.is_some() != private_key_file.is_some() {
                    return Err(invalid(
                        origin,
                        format!("{at}.config"),
                        "certificate_file and private_key_file go together",
                    ));
                }
                return Ok(ChannelCreds::Tls {
                    ca_certificate_file: file("ca_certificate_file")?,
                    certificate_file,
                    private_key_file,
                });
            }
            other => seen.push(other.to_owned()),
        }
    }
    Err(invalid(
        origin,
        field,
        format!(
            "none of the types {seen:?} is supported: use \"insecure\", or \"tls\" with feature `tls`"
        ),
    ))
}

fn parse_node(node: &Map<String, Value>, origin: &str) -> Result<Node, Error> {
    let string = |field: &str, value: Option<&Value>| -> Result<String, Error> {
        match value {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(invalid(origin, field, "is not a string")),
        }
    };
    let locality = match node.get("locality") {
        None => None,
        Some(locality) => {
            let locality = object(locality, origin, "node.locality")?;
            Some(Locality {
                region: string("node.locality.region", locality.get("region"))?,
                zone: string("node.locality.zone", locality.get("zone"))?,
                sub_zone: string("node.locality.sub_zone", locality.get("sub_zone"))?,
            })
        }
    };
    let metadata = match node.get("metadata") {
        None => BTreeMap::new(),
        Some(metadata) => object(metadata, origin, "node.metadata")?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    Ok(Node {
        id: string("node.id", node.get("id"))?,
        cluster: string("node.cluster", node.get("cluster"))?,
        locality,
        metadata,
    })
}

fn object<'a>(
    value: &'a Value,
    origin: &str,
    field: &str,
) -> Result<&'a Map<String, Value>, Error> {
    value
        .as_object()
        .ok_or_else(|| invalid(origin, field, "is not a JSON object"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(json: &str) -> String {
        Bootstrap::from_json(json)
            .expect_err("an invalid bootstrap")
            .to_string()
    }

    #[test]
    fn reads_the_fields_grpc_reads() {
        let bootstrap = Bootstrap::from_json(
            r#"{"xds_servers": [{"server_uri": "cp:18000",
                 "channel_creds": [{"type": "google_default"}, {"type": "insecure"}],
                 "server_features": ["xds_v3", "ignore_resource_deletion"]}],
               "node": {"id": "n1", "cluster": "c1",
                 "locality": {"region": "r", "zone": "z", "sub_zone": "s"},
                 "metadata": {"GENERATOR": "grpc"}}}"#,
        )
        .expect("valid");
        assert_eq!(bootstrap.server_uri_with_scheme(), "http://cp:18000");
        assert_eq!(bootstrap.channel_creds, ChannelCreds::Insecure);
        assert!(bootstrap.has_feature(IGNORE_RESOURCE_DELETION));
        assert_eq!(bootstrap.node.cluster, "c1");
        assert_eq!(
            bootstrap
                .node
                .locality
                .as_ref()
                .map(|l| l.sub_zone.as_str()),
            Some("s")
        );
        assert_eq!(bootstrap.node.metadata["GENERATOR"], "grpc");
    }

    #[test]
    fn errors_name_the_origin_and_the_field() {
        let cases = [
            ("{", "(the document)"),
            ("{}", "`xds_servers`"),
            (
                r#"{"xds_servers": [{}]}"#,
                "`xds_servers[0].server_uri`: is missing",
            ),
            (
                r#"{"xds_servers": [{"server_uri": ""}]}"#,
                "`xds_servers[0].server_uri`: is empty",
            ),
            (
                r#"{"xds_servers": [{"server_uri": "cp:1", "channel_creds": [{"type": "google_default"}]}]}"#,
                "none of the types [\"google_default\"]",
            ),
            (
                r#"{"xds_servers": [{"server_uri": "cp:1"}], "node": {"id": 7}}"#,
                "`node.id`: is not a string",
            ),
        ];
        for (json, expected) in cases {
            let error = error_of(json);
            assert!(error.contains("from the JSON given"), "{error}");
            assert!(error.contains(expected), "{json}: {error}");
        }
    }

    #[test]
    fn a_file_that_cannot_be_read_is_named() {
        let error = Bootstrap::from_file("/nonexistent/bootstrap.json")
            .expect_err("no such file")
            .to_string();
        assert!(
            error.contains("file /nonexistent/bootstrap.json"),
            "{error}"
        );
    }
}
