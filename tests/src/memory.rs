//! Servers reached without a port: in memory through the pool's connector
//! (a `tokio::io::duplex` pair per connection), or on a Unix socket.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{UnboundedReceiverStream, UnixListenerStream};

use crate::helloworld::greeter_server::GreeterServer;
use crate::server::GreeterService;

/// How many bytes each direction of an in-memory connection buffers.
const PIPE_BYTES: usize = 64 * 1024;

/// A greeter served in memory, and the connector that reaches it: every
/// connection the pool opens is a fresh duplex pair whose other end the
/// server accepts. The URIs the connector was given are kept.
#[derive(Clone)]
pub struct InMemory {
    accept: mpsc::UnboundedSender<Result<DuplexStream, io::Error>>,
    pub dialed: Arc<Mutex<Vec<http::Uri>>>,
}

impl InMemory {
    /// Starts the server; it runs until the runtime ends.
    pub fn start() -> Self {
        let (accept, incoming) = mpsc::unbounded_channel();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(GreeterServer::new(GreeterService))
                .serve_with_incoming(UnboundedReceiverStream::new(incoming)),
        );
        Self {
            accept,
            dialed: Arc::default(),
        }
    }

    /// The connector to give `PoolBuilder::connector`.
    pub fn connector(
        &self,
    ) -> impl tower::Service<
        http::Uri,
        Response = DuplexStream,
        Error = io::Error,
        Future = impl Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static {
        let this = self.clone();
        tower::service_fn(move |uri: http::Uri| {
            this.dialed.lock().unwrap().push(uri);
            let (client, server) = tokio::io::duplex(PIPE_BYTES);
            let accepted = this
                .accept
                .send(Ok(server))
                .map_err(|_| io::Error::other("the in-memory server has stopped"));
            async move { accepted.map(|()| client) }
        })
    }
}

/// A greeter on a Unix domain socket in a fresh directory; the socket is
/// removed when this is dropped.
pub struct UnixServer {
    pub path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl UnixServer {
    /// Binds a socket in a new directory under the system's temp dir.
    pub fn start() -> Self {
        let path = std::env::temp_dir()
            .join(format!(
                "pooled-client-{}-{}",
                std::process::id(),
                fastrand::u64(..)
            ))
            .join("greeter.sock");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(GreeterServer::new(GreeterService))
                .serve_with_incoming(UnixListenerStream::new(listener))
                .await;
        });
        Self { path, task }
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UnixServer {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
