//! Reaching a server's byte stream: TCP as the settings say, a Unix
//! domain socket, or the user's own connector; then TLS for `https`.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use http::Uri;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tower_service::Service;

use super::Tls;
use super::endpoint::{Address, Endpoint};
use super::error::ConnectError;
use super::tcp::Tcp;
use super::transport::{Io, Transport};
use crate::config::PoolConfig;
use crate::error::BoxError;

type Dialing = Pin<Box<dyn Future<Output = Result<Box<dyn Io>, BoxError>> + Send>>;

/// A user's connector (`PoolBuilder::connector`), its types erased: given
/// an endpoint's URI, it opens the byte stream HTTP/2 runs on.
#[derive(Clone)]
pub(crate) struct Connector(Arc<dyn Fn(Uri) -> Dialing + Send + Sync>);

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connector")
    }
}

impl Connector {
    /// Wraps a `tower::Service<Uri>`; each connection clones it, as
    /// tonic's connectors are used.
    pub(crate) fn new<C>(connector: C) -> Self
    where
        C: Service<Uri> + Clone + Send + Sync + 'static,
        C::Response: AsyncRead + AsyncWrite + Send + Unpin + 'static,
        C::Error: Into<BoxError>,
        C::Future: Send + 'static,
    {
        Self(Arc::new(move |uri| {
            let mut connector = connector.clone();
            Box::pin(async move {
                std::future::poll_fn(|cx| connector.poll_ready(cx))
                    .await
                    .map_err(Into::into)?;
                let io = connector.call(uri).await.map_err(Into::into)?;
                Ok(Box::new(io) as Box<dyn Io>)
            })
        }))
    }
}

/// How the pool reaches its servers: TLS settings for `https` endpoints
/// and the user's connector, if any.
#[derive(Debug, Clone, Default)]
pub(crate) struct Dial {
    pub(crate) tls: Option<Tls>,
    pub(crate) connector: Option<Connector>,
}

impl Dial {
    /// Opens the byte stream to `endpoint`, with TLS when it is `https`.
    pub(crate) async fn open(
        &self,
        endpoint: &Endpoint,
        config: &PoolConfig,
    ) -> Result<Transport, ConnectError> {
        let raw = match (&endpoint.address, &self.connector) {
            (Address::Unix(path), _) => open_unix(path).await?,
            (Address::Tcp(_), Some(connector)) => {
                let io = (connector.0)(endpoint.dial_uri.clone())
                    .await
                    .map_err(ConnectError::Connector)?;
                Transport::Custom(io)
            }
            (Address::Tcp(address), None) => {
                let stream = open_tcp(address, config).await.map_err(ConnectError::Tcp)?;
                Transport::Tcp(Tcp::new(stream, config.tcp_quickack))
            }
        };
        self.secure(endpoint, raw).await
    }

    /// Runs the TLS handshake when the endpoint is `https`.
    async fn secure(&self, endpoint: &Endpoint, raw: Transport) -> Result<Transport, ConnectError> {
        if !endpoint.is_tls() {
            return Ok(raw);
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            let stream = tls
                .connect(endpoint, raw)
                .await
                .map_err(ConnectError::Tls)?;
            return Ok(Transport::Tls(Box::new(stream)));
        }
        // Without the feature, `Tls` has no values.
        #[cfg(not(feature = "tls"))]
        let _ = &self.tls;
        Err(ConnectError::NoTls)
    }
}

#[cfg(unix)]
async fn open_unix(path: &Path) -> Result<Transport, ConnectError> {
    tokio::net::UnixStream::connect(path)
        .await
        .map(Transport::Unix)
        .map_err(|source| ConnectError::Unix {
            path: path.to_owned(),
            source,
        })
}

#[cfg(not(unix))]
async fn open_unix(path: &Path) -> Result<Transport, ConnectError> {
    Err(ConnectError::Unix {
        path: path.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "Unix domain sockets need a Unix system",
        ),
    })
}

/// Opens the TCP connection as the settings say: from `local_address`,
/// with TCP_NODELAY and keepalive as set.
pub(crate) async fn open_tcp(address: &str, config: &PoolConfig) -> std::io::Result<TcpStream> {
    let tcp = match config.local_address {
        None => TcpStream::connect(address).await?,
        Some(local) => connect_from(local, address).await?,
    };
    tcp.set_nodelay(config.tcp_nodelay)?;
    if let Some(idle) = config.tcp_keepalive {
        let keepalive = socket2::TcpKeepalive::new().with_time(idle);
        #[cfg(any(
            target_os = "linux",
            target_os = "android",
            target_os = "macos",
            target_os = "windows"
        ))]
        let keepalive = match config.tcp_keepalive_interval {
            Some(interval) => keepalive.with_interval(interval),
            None => keepalive,
        };
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "macos"))]
        let keepalive = match config.tcp_keepalive_retries {
            Some(retries) => keepalive.with_retries(retries),
            None => keepalive,
        };
        socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive)?;
    }
    Ok(tcp)
}

/// Connects to `address` from `local`, trying its addresses of the same
/// family in turn.
async fn connect_from(local: std::net::IpAddr, address: &str) -> std::io::Result<TcpStream> {
    let mut last = None;
    for remote in tokio::net::lookup_host(address).await? {
        if remote.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if remote.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(std::net::SocketAddr::new(local, 0))?;
        match socket.connect(remote).await {
            Ok(tcp) => return Ok(tcp),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("no address of {address} is of local_address {local}'s family"),
        )
    }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// `tcp_keepalive` and `tcp_nodelay` are set on the socket itself, as
    /// `getsockopt` reads them back.
    #[tokio::test]
    async fn tcp_settings_are_on_the_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let config = PoolConfig {
            tcp_keepalive: Some(Duration::from_secs(37)),
            tcp_keepalive_interval: Some(Duration::from_secs(7)),
            tcp_keepalive_retries: Some(4),
            ..PoolConfig::default()
        };
        let tcp = open_tcp(&address, &config).await.unwrap();
        let socket = socket2::SockRef::from(&tcp);
        assert!(socket.keepalive().unwrap());
        assert_eq!(
            socket.tcp_keepalive_time().unwrap(),
            Duration::from_secs(37)
        );
        #[cfg(target_os = "linux")]
        {
            assert_eq!(
                socket.tcp_keepalive_interval().unwrap(),
                Duration::from_secs(7)
            );
            assert_eq!(socket.tcp_keepalive_retries().unwrap(), 4);
        }
        assert!(tcp.nodelay().unwrap());

        let config = PoolConfig {
            tcp_nodelay: false,
            ..PoolConfig::default()
        };
        let tcp = open_tcp(&address, &config).await.unwrap();
        assert!(!socket2::SockRef::from(&tcp).keepalive().unwrap());
        assert!(!tcp.nodelay().unwrap());
    }
}
