//! TLS for `https://` endpoints, through rustls (feature `tls`): checking
//! the settings and running the handshake.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::endpoint::Endpoint;
use super::transport::Transport;
use crate::config::TlsConfig;
use crate::error::Error;

fn invalid(name: &'static str, value: String, reason: &'static str) -> Error {
    Error::InvalidSetting {
        name,
        value,
        reason: reason.into(),
    }
}

/// A verifier of servers' certificates that replaces rustls' own (see
/// `PoolBuilder::tls_with_verifier`).
pub(crate) type Verifier = Arc<dyn rustls::client::danger::ServerCertVerifier>;

/// The checked TLS settings, ready to connect with.
#[derive(Clone)]
pub(crate) struct Tls {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Checks `config` and builds the rustls client configuration; with
    /// `verifier`, it verifies servers' certificates in place of the roots.
    pub(crate) fn new(config: &TlsConfig, verifier: Option<Verifier>) -> Result<Self, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|_| invalid("tls", String::new(), "no TLS version is available"))?;
        let builder = match verifier {
            Some(verifier) => {
                // As tonic's `tls_config_with_verifier`: the roots are the
                // verifier's business, so settings for them are a mistake.
                if !config.ca_certificates_pem.is_empty() || config.webpki_roots {
                    return Err(invalid(
                        "tls_with_verifier",
                        "ca_certificates_pem or webpki_roots".to_owned(),
                        "the custom verifier replaces the roots: set neither",
                    ));
                }
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(verifier)
            }
            None => builder.with_root_certificates(roots(config)?),
        };
        let mut client = match &config.identity_pem {
            None => builder.with_no_client_auth(),
            Some((cert_pem, key_pem)) => {
                let chain = certificates(cert_pem, "tls identity certificate")?;
                let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| {
                    invalid(
                        "tls identity key",
                        "<private key>".to_owned(),
                        "is not a PEM private key (PKCS#8, PKCS#1 or SEC1)",
                    )
                })?;
                builder.with_client_auth_cert(chain, key).map_err(|_| {
                    invalid(
                        "tls identity",
                        excerpt(cert_pem),
                        "the private key does not match the certificate",
                    )
                })?
            }
        };
        client.alpn_protocols = vec![b"h2".to_vec()];
        let server_name = match &config.server_name {
            None => None,
            Some(name) => Some(ServerName::try_from(name.clone()).map_err(|_| {
                invalid(
                    "tls server_name",
                    name.clone(),
                    "is not a DNS name or IP address",
                )
            })?),
        };
        Ok(Self {
            connector: TlsConnector::from(Arc::new(client)),
            server_name,
        })
    }

    /// Runs the TLS handshake on `raw`, offering HTTP/2.
    pub(crate) async fn connect(
        &self,
        endpoint: &Endpoint,
        raw: Transport,
    ) -> std::io::Result<TlsStream<Transport>> {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => ServerName::try_from(endpoint.host().to_owned()).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{:?} is not a valid TLS server name", endpoint.host()),
                )
            })?,
        };
        let stream = self
            .connector
            .connect(name, raw)
            .await
            .map_err(plaintext_named)?;
        if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the server did not agree to HTTP/2 over TLS (ALPN h2)",
            ));
        }
        Ok(stream)
    }
}

fn certificates(pem: &str, name: &'static str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| invalid(name, excerpt(pem), "is not valid PEM"))?;
    if certificates.is_empty() {
        return Err(invalid(name, excerpt(pem), "holds no PEM certificate"));
    }
    Ok(certificates)
}

/// The start of a PEM text, for error messages.
fn excerpt(pem: &str) -> String {
    let line = pem.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    line.chars().take(40).collect()
}

/// A handshake that met bytes no TLS record starts with (an HTTP/2 frame,
/// an HTTP/1 answer): the server does not speak TLS, which rustls calls a
/// corrupt message of type InvalidContentType.
fn plaintext_named(error: std::io::Error) -> std::io::Error {
    let plaintext = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|e| {
            matches!(
                e,
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
            )
        });
    if plaintext {
        return std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the server does not speak TLS (it answered in plaintext): use http://",
        );
    }
    error
}

/// The roots `config` trusts: its CA certificates, the bundled Mozilla
/// roots when it gives none or asks for them too.
fn roots(config: &TlsConfig) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    if config.ca_certificates_pem.is_empty() || config.webpki_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    for pem in &config.ca_certificates_pem {
        let certificates = certificates(pem, "tls ca_certificate_pem")?;
        let (_, ignored) = roots.add_parsable_certificates(certificates);
        if ignored > 0 {
            return Err(invalid(
                "tls ca_certificate_pem",
                excerpt(pem),
                "holds a certificate rustls cannot use as a root",
            ));
        }
    }
    Ok(roots)
}
