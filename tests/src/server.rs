//! A greeter service and ways to run it on loopback.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;
use tonic::transport::server::TcpIncoming;

use futures_util::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status, Streaming};
use tonic_health::server::HealthReporter;

use crate::helloworld::greeter_server::{Greeter, GreeterServer};
use crate::helloworld::{HelloReply, HelloRequest};

/// Greets, after the delay each request asks for.
#[derive(Debug, Default, Clone)]
pub struct GreeterService;

fn reply(request: &HelloRequest) -> HelloReply {
    HelloReply {
        message: format!("Hello {}", request.name),
    }
}

async fn delay(request: &HelloRequest) {
    if request.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(u64::from(request.delay_ms))).await;
    }
}

/// The stream of replies the streaming RPCs answer with.
pub type ReplyStream = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send>>;

#[tonic::async_trait]
impl Greeter for GreeterService {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        // Which client port the call came from, so that tests can tell
        // connections apart.
        // and which server address it reached.
        let peer = request.remote_addr();
        let local = request.local_addr();
        let request = request.into_inner();
        delay(&request).await;
        let mut response = Response::new(reply(&request));
        if let Some(peer) = peer
            && let Ok(value) = peer.port().to_string().parse()
        {
            response.metadata_mut().insert("peer-port", value);
        }
        if let Some(local) = local
            && let Ok(value) = local.ip().to_string().parse()
        {
            response.metadata_mut().insert("server-ip", value);
        }
        if let Some(local) = local
            && let Ok(value) = local.port().to_string().parse()
        {
            response.metadata_mut().insert("server-port", value);
        }
        Ok(response)
    }

    async fn say_hello_again(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        self.say_hello(request).await
    }

    type SayHelloStreamStream = ReplyStream;

    async fn say_hello_stream(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<ReplyStream>, Status> {
        let request = request.into_inner();
        let count = request.count;
        let stream = futures_util::stream::iter(0..count).then(move |i| {
            let request = request.clone();
            async move {
                delay(&request).await;
                Ok(HelloReply {
                    message: format!("Hello {} #{i}", request.name),
                })
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn collect_hellos(
        &self,
        request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<HelloReply>, Status> {
        let mut stream = request.into_inner();
        let mut names = Vec::new();
        while let Some(request) = stream.next().await {
            names.push(request?.name);
        }
        Ok(Response::new(HelloReply {
            message: format!("Hello {}", names.join(", ")),
        }))
    }

    type ChatStream = ReplyStream;

    async fn chat(
        &self,
        request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<ReplyStream>, Status> {
        let stream = request.into_inner().then(|request| async move {
            let request = request?;
            delay(&request).await;
            Ok(reply(&request))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// How a test server behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerOptions {
    /// The `SETTINGS_MAX_CONCURRENT_STREAMS` it advertises (tonic's default
    /// otherwise).
    pub max_concurrent_streams: Option<u32>,
}

/// A greeter server running in this process; dropping it stops it abruptly.
#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Starts a server on a free loopback port.
    pub async fn start(options: ServerOptions) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        Self::serve(listener, options)
    }

    /// Serves on `listener`.
    pub fn serve(listener: TcpListener, options: ServerOptions) -> Self {
        // h2 closes a connection whose client resets more than 20 streams
        // the server has not accepted yet (its rapid-reset guard): the
        // suite's cancel storms (1,000 calls cancelled within 20 ms) set it
        // off, and a call racing the close failed "broken pipe" in about
        // one run in six. The tests of cancelled calls measure the pool's
        // bookkeeping, so the servers let them; servers that close are in
        // `faults.rs` and `hostile.rs`.
        let router = tonic::transport::Server::builder()
            .max_concurrent_streams(options.max_concurrent_streams)
            .http2_max_pending_accept_reset_streams(Some(100_000))
            .add_service(GreeterServer::new(GreeterService));
        Self::serve_router(listener, router)
    }

    /// Starts a greeter server on a free loopback port that also serves the
    /// standard health service; the greeter starts `SERVING`, and the
    /// reporter changes that.
    pub async fn start_with_health() -> (Self, HealthReporter) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_serving::<GreeterServer<GreeterService>>()
            .await;
        let router = tonic::transport::Server::builder()
            .add_service(health)
            .add_service(GreeterServer::new(GreeterService));
        (Self::serve_router(listener, router), reporter)
    }

    fn serve_router(listener: TcpListener, router: tonic::transport::server::Router) -> Self {
        let addr = listener.local_addr().expect("local addr");
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = router
                .serve_with_incoming_shutdown(
                    TcpIncoming::from(listener).with_nodelay(Some(true)),
                    async {
                        let _ = shutdown_rx.await;
                    },
                )
                .await;
        });
        Self {
            addr,
            shutdown: Some(shutdown),
            task,
        }
    }

    /// `http://addr`, for `Pool::builder().endpoint(..)`.
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shuts down gracefully: GOAWAY, calls in flight finish.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` on a free loopback port until the task is dropped with
/// the runtime; returns the `http://` URI.
pub async fn serve_router(router: tonic::transport::server::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(router.serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true))));
    format!("http://{addr}")
}

/// How many `SayHello` calls a [`CountingGreeter`] serves at once, and the
/// most it ever served at once.
#[derive(Debug, Default)]
pub struct Concurrency {
    now: std::sync::atomic::AtomicUsize,
    /// The most calls in the server at one time.
    pub peak: std::sync::atomic::AtomicUsize,
}

/// The greeter, counting its `SayHello` calls in progress, each of which
/// takes `delay` more than the request asks (a slower server).
#[derive(Debug, Clone, Default)]
pub struct CountingGreeter {
    pub concurrency: std::sync::Arc<Concurrency>,
    pub delay: Duration,
}

#[tonic::async_trait]
impl Greeter for CountingGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        use std::sync::atomic::Ordering;
        let now = self.concurrency.now.fetch_add(1, Ordering::AcqRel) + 1;
        self.concurrency.peak.fetch_max(now, Ordering::AcqRel);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let answer = GreeterService.say_hello(request).await;
        self.concurrency.now.fetch_sub(1, Ordering::AcqRel);
        answer
    }

    async fn say_hello_again(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        GreeterService.say_hello_again(request).await
    }

    type SayHelloStreamStream = ReplyStream;

    async fn say_hello_stream(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<ReplyStream>, Status> {
        GreeterService.say_hello_stream(request).await
    }

    async fn collect_hellos(
        &self,
        request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<HelloReply>, Status> {
        GreeterService.collect_hellos(request).await
    }

    type ChatStream = ReplyStream;

    async fn chat(
        &self,
        request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<ReplyStream>, Status> {
        GreeterService.chat(request).await
    }
}

impl TestServer {
    /// Starts a greeter on a free loopback port that counts its calls in
    /// progress.
    pub async fn start_counting() -> (Self, std::sync::Arc<Concurrency>) {
        Self::start_slow(Duration::ZERO).await
    }

    /// Starts a greeter on a free loopback port whose every `SayHello`
    /// takes `delay` more, counting its calls in progress.
    pub async fn start_slow(delay: Duration) -> (Self, std::sync::Arc<Concurrency>) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let greeter = CountingGreeter {
            delay,
            ..CountingGreeter::default()
        };
        let concurrency = greeter.concurrency.clone();
        let router = tonic::transport::Server::builder().add_service(GreeterServer::new(greeter));
        (Self::serve_router(listener, router), concurrency)
    }
}

/// A greeter that answers every other call with `UNAVAILABLE` while its
/// connections stay up: a server in trouble, for outlier detection.
#[derive(Debug, Clone)]
pub struct FailingHalf<S> {
    inner: S,
    calls: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<S> FailingHalf<S> {
    /// Fails every other call that `inner` would serve.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            calls: Default::default(),
        }
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for FailingHalf<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<B>> for FailingHalf<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let call = self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if call % 2 == 1 {
            // A trailers-only response: the status in the headers.
            let response = http::Response::builder()
                .header("content-type", "application/grpc")
                .header("grpc-status", "14")
                .header("grpc-message", "failing half")
                .body(tonic::body::Body::empty())
                .expect("a valid response");
            return Box::pin(async move { Ok(response) });
        }
        Box::pin(self.inner.call(request))
    }
}

/// Serves a greeter that fails every other call on a free loopback port;
/// returns the `http://` URI.
pub async fn serve_failing_half() -> String {
    let router = tonic::transport::Server::builder()
        .add_service(FailingHalf::new(GreeterServer::new(GreeterService)));
    serve_router(router).await
}
