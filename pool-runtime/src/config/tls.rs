//! TLS settings as plain data (feature `tls`).

/// TLS settings for `https://` endpoints, as plain data: certificates are
/// kept as PEM text and checked when the pool is built.
///
/// Without any, `https://` endpoints are verified against the Mozilla root
/// certificates bundled by `webpki-roots`.
///
/// ```
/// # fn demo(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<(), pooled_client::Error> {
/// use pooled_client::TlsConfig;
///
/// let pool = pooled_client::Pool::builder()
///     .endpoint("https://10.0.0.7:443")
///     .tls(
///         TlsConfig::new()
///             .ca_certificate_pem(ca_pem)          // trust a private CA
///             .identity_pem(cert_pem, key_pem)     // present a client certificate
///             .server_name("orders.internal"),     // name to send and verify
///     )
///     .build()?;
/// # Ok(()) }
/// ```
///
/// In a configuration file (feature `serde`), certificates are given as
/// paths, read when the file is loaded:
///
/// ```toml
/// [tls]
/// ca_file = "/etc/ssl/private-ca.pem"   # roots to trust instead of the bundled ones
/// cert_file = "/etc/app/client.pem"     # client certificate chain...
/// key_file = "/etc/app/client.key"      # ...and its key
/// server_name = "orders.internal"
/// webpki_roots = false                  # also trust the bundled roots
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "TlsFiles"))]
#[non_exhaustive]
pub struct TlsConfig {
    /// PEM certificates to trust as roots. When any are given, only they
    /// are trusted unless `webpki_roots` is also set.
    ///
    /// Default: none (the bundled Mozilla roots).
    pub ca_certificates_pem: Vec<String>,
    /// Whether to trust the bundled Mozilla roots as well as
    /// `ca_certificates_pem`.
    ///
    /// Default: false (but they are used when no CA certificate is given).
    pub webpki_roots: bool,
    /// A client certificate chain and its private key, both PEM, for servers
    /// that require client authentication.
    ///
    /// Default: none.
    pub identity_pem: Option<(String, String)>,
    /// The name sent in SNI and checked against the server's certificate,
    /// instead of the endpoint's host (the `:authority` of calls is set
    /// apart, by [`PoolBuilder::origin`](crate::PoolBuilder::origin)).
    ///
    /// Default: the endpoint's host.
    pub server_name: Option<String>,
}

impl TlsConfig {
    /// Settings that trust the bundled Mozilla roots.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the certificates in `pem` (one or more) as roots.
    #[must_use]
    pub fn ca_certificate_pem(mut self, pem: impl Into<String>) -> Self {
        self.ca_certificates_pem.push(pem.into());
        self
    }

    /// Presents the certificate chain `cert_pem` with the private key
    /// `key_pem` to servers that ask for a client certificate.
    #[must_use]
    pub fn identity_pem(mut self, cert_pem: impl Into<String>, key_pem: impl Into<String>) -> Self {
        self.identity_pem = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Sends and verifies `name` instead of the endpoint's host.
    #[must_use]
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Also trusts the bundled Mozilla roots when CA certificates are given.
    #[must_use]
    pub fn with_webpki_roots(mut self) -> Self {
        self.webpki_roots = true;
        self
    }
}

/// TLS settings as written in a configuration file: paths to PEM files.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFiles {
    ca_file: Option<std::path::PathBuf>,
    cert_file: Option<std::path::PathBuf>,
    key_file: Option<std::path::PathBuf>,
    server_name: Option<String>,
    #[serde(default)]
    webpki_roots: bool,
}

#[cfg(feature = "serde")]
impl TryFrom<TlsFiles> for TlsConfig {
    type Error = String;

    fn try_from(files: TlsFiles) -> Result<Self, String> {
        let read = |name: &str, path: &std::path::Path| {
            std::fs::read_to_string(path)
                .map_err(|error| format!("cannot read tls {name} {:?}: {error}", path.display()))
        };
        let mut config = TlsConfig::new();
        if let Some(path) = &files.ca_file {
            config = config.ca_certificate_pem(read("ca_file", path)?);
        }
        match (&files.cert_file, &files.key_file) {
            (Some(cert), Some(key)) => {
                config = config.identity_pem(read("cert_file", cert)?, read("key_file", key)?);
            }
            (None, None) => {}
            _ => return Err("tls cert_file and key_file must be given together".to_owned()),
        }
        if let Some(name) = files.server_name {
            config = config.server_name(name);
        }
        config.webpki_roots = files.webpki_roots;
        Ok(config)
    }
}
