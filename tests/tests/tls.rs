//! `https://` endpoints through rustls, against a tonic server using a
//! certificate made here: custom roots, server name override, client
//! certificates, and the errors when verification fails.

use std::time::Duration;

use pooled_client::{Pool, TlsConfig};
use pooled_client_tests::helloworld::PooledGreeterClient;
use pooled_client_tests::helloworld::greeter_server::GreeterServer;
use pooled_client_tests::server::GreeterService;
use pooled_client_tests::support::bounded;
use pooled_client_tests::support::hello;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

/// A certificate authority, and PEM certificates with keys it issued.
struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let issue = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca_pem: ca.pem(),
        server: issue(vec!["localhost".into(), "pool.test".into()]),
        client: issue(vec!["client.test".into()]),
    }
}

/// Serves the greeter over TLS on a free loopback port; with `client_ca`,
/// clients must present a certificate it issued. Returns the port.
async fn tls_server(pki: &Pki, client_ca: bool) -> u16 {
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(&pki.server.0, &pki.server.1));
    if client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(&pki.ca_pem));
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = Server::builder()
        .tls_config(tls)
        .unwrap()
        .add_service(GreeterServer::new(GreeterService));
    tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
    port
}

async fn call(pool: &Pool) -> Result<String, tonic::Status> {
    let greeter = PooledGreeterClient::new(pool.clone()).with_timeout(Duration::from_secs(5));
    Ok(greeter
        .say_hello(hello("tls", 0))
        .await?
        .into_inner()
        .message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_endpoint_with_a_custom_root_works_and_unknown_issuers_fail() {
    bounded(Duration::from_secs(30), async {
        let pki = pki();
        let port = tls_server(&pki, false).await;
        let pool = Pool::builder()
            .endpoint(format!("https://localhost:{port}"))
            .tls(TlsConfig::new().ca_certificate_pem(pki.ca_pem.clone()))
            .build()
            .unwrap();
        assert_eq!(call(&pool).await.unwrap(), "Hello tls");
        // Many calls share the TLS connection.
        for _ in 0..20 {
            call(&pool).await.unwrap();
        }
        assert_eq!(pool.stats().connects_total, 1);

        // With only the bundled public roots, the private CA is not trusted.
        let untrusted = Pool::builder()
            .endpoint(format!("https://localhost:{port}"))
            .build()
            .unwrap();
        let error = untrusted.ready().await.unwrap_err();
        let message = format!("{error}");
        println!("{message}");
        assert!(message.contains("tls handshake failed"), "{message}");
        assert!(message.contains("UnknownIssuer"), "{message}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_name_override_verifies_a_name_the_address_lacks() {
    bounded(Duration::from_secs(30), async {
        let pki = pki();
        let port = tls_server(&pki, false).await;
        // The certificate names localhost and pool.test, not 127.0.0.1.
        let by_address = Pool::builder()
            .endpoint(format!("https://127.0.0.1:{port}"))
            .tls(TlsConfig::new().ca_certificate_pem(pki.ca_pem.clone()))
            .build()
            .unwrap();
        let error = format!("{}", by_address.ready().await.unwrap_err());
        assert!(error.contains("not valid for name"), "{error}");

        let overridden = Pool::builder()
            .endpoint(format!("https://127.0.0.1:{port}"))
            .tls(
                TlsConfig::new()
                    .ca_certificate_pem(pki.ca_pem.clone())
                    .server_name("pool.test"),
            )
            .origin("https://pool.test".parse().unwrap())
            .build()
            .unwrap();
        assert_eq!(call(&overridden).await.unwrap(), "Hello tls");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_presented_when_the_server_requires_them() {
    bounded(Duration::from_secs(30), async {
        let pki = pki();
        let port = tls_server(&pki, true).await;
        let uri = format!("https://localhost:{port}");
        let anonymous = Pool::builder()
            .endpoint(&uri)
            .tls(TlsConfig::new().ca_certificate_pem(pki.ca_pem.clone()))
            .build()
            .unwrap();
        let status = call(&anonymous).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");

        let identified = Pool::builder()
            .endpoint(&uri)
            .tls(
                TlsConfig::new()
                    .ca_certificate_pem(pki.ca_pem.clone())
                    .identity_pem(pki.client.0.clone(), pki.client.1.clone()),
            )
            .build()
            .unwrap();
        assert_eq!(call(&identified).await.unwrap(), "Hello tls");
    })
    .await;
}

#[test]
fn bad_tls_settings_are_rejected_when_the_pool_is_built() {
    let pki = pki();
    let build = |tls: TlsConfig| {
        Pool::builder()
            .endpoint("https://localhost:1")
            .tls(tls)
            .build()
            .unwrap_err()
            .to_string()
    };
    let not_pem = build(TlsConfig::new().ca_certificate_pem("not a certificate"));
    assert!(not_pem.contains("tls ca_certificate_pem"), "{not_pem}");
    let wrong_key =
        build(TlsConfig::new().identity_pem(pki.client.0.clone(), pki.server.1.clone()));
    assert!(wrong_key.contains("tls identity"), "{wrong_key}");
    let no_key = build(TlsConfig::new().identity_pem(pki.client.0.clone(), "nothing"));
    assert!(no_key.contains("tls identity key"), "{no_key}");
    let bad_name = build(TlsConfig::new().server_name("not a name!"));
    assert!(bad_name.contains("tls server_name"), "{bad_name}");
}

/// An `https` endpoint through the user's connector: the connector gives
/// the byte stream (here, TCP it opened itself, as a proxy's tunnel would
/// be), and the pool runs TLS over it, verifying the endpoint's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_runs_over_the_byte_stream_a_connector_returns() {
    use std::sync::{Arc, Mutex};
    bounded(Duration::from_secs(30), async {
        let pki = pki();
        let port = tls_server(&pki, false).await;
        let dialed = Arc::new(Mutex::new(Vec::new()));
        let seen = dialed.clone();
        let connector = tower::service_fn(move |uri: http::Uri| {
            seen.lock().unwrap().push(uri.to_string());
            let address = format!("127.0.0.1:{}", uri.port_u16().unwrap_or(443));
            tokio::net::TcpStream::connect(address)
        });
        let pool = Pool::builder()
            .endpoint(format!("https://localhost:{port}"))
            .tls(TlsConfig::new().ca_certificate_pem(pki.ca_pem.clone()))
            .connector(connector.clone())
            .build()
            .unwrap();
        assert_eq!(call(&pool).await.unwrap(), "Hello tls");
        assert_eq!(
            *dialed.lock().unwrap(),
            [format!("https://localhost:{port}/")],
            "the connector opened the one connection"
        );
        // TLS is the pool's: a certificate its roots do not trust fails the
        // handshake over the connector's stream too.
        let untrusted = Pool::builder()
            .endpoint(format!("https://localhost:{port}"))
            .connector(connector)
            .build()
            .unwrap();
        let message = format!("{}", untrusted.ready().await.unwrap_err());
        assert!(message.contains("UnknownIssuer"), "{message}");
    })
    .await;
}

/// A verifier of the test's own: trusts exactly one certificate (pinned),
/// whoever issued it, and counts the certificates it was shown.
#[derive(Debug)]
struct Pinned {
    certificate: Vec<u8>,
    shown: std::sync::atomic::AtomicUsize,
    provider: std::sync::Arc<rustls::crypto::CryptoProvider>,
}

impl Pinned {
    fn new(pem: &str) -> std::sync::Arc<Self> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        std::sync::Arc::new(Self {
            certificate: CertificateDer::from_pem_slice(pem.as_bytes())
                .unwrap()
                .to_vec(),
            shown: std::sync::atomic::AtomicUsize::new(0),
            provider: std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        })
    }
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.shown.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if end_entity.as_ref() == self.certificate.as_slice() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the pinned certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// tonic's `tls_config_with_verifier`, by the pool: a custom verifier
/// decides what is trusted, in place of the roots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_verifier_decides_which_servers_are_trusted() {
    bounded(Duration::from_secs(30), async {
        let pki = pki();
        let port = tls_server(&pki, false).await;
        // The server's own certificate pinned: trusted, no CA configured.
        let pinned = Pinned::new(&pki.server.0);
        let pool = Pool::builder()
            .endpoint(format!("https://localhost:{port}"))
            .tls_with_verifier(TlsConfig::new(), pinned.clone())
            .build()
            .unwrap();
        assert_eq!(call(&pool).await.unwrap(), "Hello tls");
        assert_eq!(pinned.shown.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Another certificate pinned: the server is refused, and the
        // verifier's reason is in the status.
        let other = Pinned::new(&pki.client.0);
        let refused = Pool::builder()
            .endpoint(format!("https://localhost:{port}"))
            .tls_with_verifier(TlsConfig::new(), other.clone())
            .build()
            .unwrap();
        let status = call(&refused).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(
            status.message().contains("not the pinned certificate"),
            "{status:?}"
        );
        assert!(other.shown.load(std::sync::atomic::Ordering::SeqCst) >= 1);

        // Roots beside a verifier are a mistake, named when built.
        let error = Pool::builder()
            .endpoint(format!("https://localhost:{port}"))
            .tls_with_verifier(
                TlsConfig::new().ca_certificate_pem(pki.ca_pem.clone()),
                Pinned::new(&pki.server.0),
            )
            .build()
            .unwrap_err();
        assert!(error.to_string().contains("tls_with_verifier"), "{error}");
    })
    .await;
}
