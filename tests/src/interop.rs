//! `grpc.testing.TestService` served by tonic as gRPC's interop test
//! descriptions define it (`doc/interop-test-descriptions.md` in grpc/grpc),
//! recording how the request stream of each streaming call ended, so that
//! tests can check what the server saw when a client cancelled.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use http::HeaderValue;
use http_body::Frame;
use tokio::sync::watch;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::interop::pb::test_service_server::{TestService, TestServiceServer};
use crate::interop::pb::{
    Empty, Payload, SimpleRequest, SimpleResponse, StreamingInputCallRequest,
    StreamingInputCallResponse, StreamingOutputCallRequest, StreamingOutputCallResponse,
};

/// The code generated from `proto/interop/grpc/testing/test.proto`.
pub mod pb {
    tonic::include_proto!("grpc.testing");
}

/// The metadata an interop server echoes: back as initial metadata, and as
/// trailing metadata.
pub const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
/// See [`ECHO_INITIAL`].
pub const ECHO_TRAILING: &str = "x-grpc-test-echo-trailing-bin";

/// What the server saw of a streaming call: its start, then how its
/// request stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The call reached its handler.
    Begun,
    /// The client said it was done sending (END_STREAM).
    Clean,
    /// The stream failed, with the status the server read (a client's
    /// RST_STREAM(CANCEL) reads as `CANCELLED`).
    Failed(Code),
    /// The handler was dropped before its request stream ended.
    Dropped,
}

/// What the server saw of every streaming call, by method, in order.
pub type CallLog = watch::Sender<Vec<(&'static str, Seen)>>;

/// The interop test service.
#[derive(Debug, Clone, Default)]
pub struct InteropService;

impl InteropService {
    /// The service ready to add to a tonic server: it echoes metadata, and
    /// records what it sees of streaming calls into `log`.
    pub fn into_server(self, log: CallLog) -> Observed<TestServiceServer<Self>> {
        Observed {
            inner: TestServiceServer::new(self),
            log,
        }
    }
}

fn payload(size: i32) -> Option<Payload> {
    Some(Payload {
        r#type: 0,
        body: vec![0; usize::try_from(size).unwrap_or(0)],
    })
}

fn echo_status(status: Option<&pb::EchoStatus>) -> Result<(), Status> {
    match status {
        Some(status) if status.code != 0 => {
            Err(Status::new(Code::from(status.code), status.message.clone()))
        }
        _ => Ok(()),
    }
}

type OutputStream = Pin<Box<dyn Stream<Item = Result<StreamingOutputCallResponse, Status>> + Send>>;

#[tonic::async_trait]
impl TestService for InteropService {
    async fn empty_call(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }

    async fn unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        let request = request.into_inner();
        echo_status(request.response_status.as_ref())?;
        Ok(Response::new(SimpleResponse {
            payload: payload(request.response_size),
        }))
    }

    type StreamingOutputCallStream = OutputStream;

    async fn streaming_output_call(
        &self,
        request: Request<StreamingOutputCallRequest>,
    ) -> Result<Response<OutputStream>, Status> {
        let request = request.into_inner();
        echo_status(request.response_status.as_ref())?;
        let responses: Vec<_> = request
            .response_parameters
            .iter()
            .map(|p| {
                Ok(StreamingOutputCallResponse {
                    payload: payload(p.size),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(futures_util::stream::iter(
            responses,
        ))))
    }

    async fn streaming_input_call(
        &self,
        request: Request<Streaming<StreamingInputCallRequest>>,
    ) -> Result<Response<StreamingInputCallResponse>, Status> {
        let mut requests = request.into_inner();
        let mut size = 0;
        // tonic reads a request stream reset with CANCEL as its end; what
        // really ended it is recorded below tonic, by `Observed`.
        while let Some(request) = requests.message().await? {
            size += request.payload.map_or(0, |p| p.body.len());
        }
        Ok(Response::new(StreamingInputCallResponse {
            aggregated_payload_size: i32::try_from(size).unwrap_or(i32::MAX),
        }))
    }

    type FullDuplexCallStream = OutputStream;

    async fn full_duplex_call(
        &self,
        request: Request<Streaming<StreamingOutputCallRequest>>,
    ) -> Result<Response<OutputStream>, Status> {
        let duplex = Duplex {
            requests: request.into_inner(),
            pending: VecDeque::new(),
        };
        Ok(Response::new(Box::pin(futures_util::stream::unfold(
            duplex,
            Duplex::next,
        ))))
    }

    async fn unimplemented_call(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        Err(Status::unimplemented(
            "UnimplementedCall is never implemented",
        ))
    }
}

/// A full-duplex call between responses.
struct Duplex {
    requests: Streaming<StreamingOutputCallRequest>,
    pending: VecDeque<pb::ResponseParameters>,
}

impl Duplex {
    /// Answers each request's responses in order, then reads the next.
    async fn next(mut self) -> Option<(Result<StreamingOutputCallResponse, Status>, Self)> {
        loop {
            if let Some(parameters) = self.pending.pop_front() {
                if parameters.interval_us > 0 {
                    let wait = u64::try_from(parameters.interval_us).unwrap_or(0);
                    tokio::time::sleep(Duration::from_micros(wait)).await;
                }
                let response = StreamingOutputCallResponse {
                    payload: payload(parameters.size),
                };
                return Some((Ok(response), self));
            }
            match self.requests.message().await {
                Ok(Some(request)) => {
                    if let Err(status) = echo_status(request.response_status.as_ref()) {
                        return Some((Err(status), self));
                    }
                    self.pending.extend(request.response_parameters);
                }
                Ok(None) => return None,
                Err(status) => return Some((Err(status), self)),
            }
        }
    }
}

/// What a tonic handler cannot do or see: echoes `x-grpc-test-echo-initial`
/// into the response headers and `x-grpc-test-echo-trailing-bin` into its
/// trailers (tonic's handlers cannot set trailers of a successful call), and
/// records how each streaming call's request stream really ended on the
/// wire (tonic's `Streaming` reads a stream reset with CANCEL as its end).
#[derive(Debug, Clone)]
pub struct Observed<S> {
    inner: S,
    log: CallLog,
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for Observed<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<B>> for Observed<S>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
        >,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let initial = request.headers().get(ECHO_INITIAL).cloned();
        let trailing = request.headers().get(ECHO_TRAILING).cloned();
        let method = match request.uri().path().rsplit('/').next() {
            Some("StreamingInputCall") => Some("StreamingInputCall"),
            Some("FullDuplexCall") => Some("FullDuplexCall"),
            _ => None,
        };
        let log = self.log.clone();
        let request = request.map(|body| match method {
            Some(method) => tonic::body::Body::new(ObservedBody::new(body, method, log)),
            None => tonic::body::Body::new(body),
        });
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            if let Some(value) = initial {
                response.headers_mut().insert(ECHO_INITIAL, value);
            }
            Ok(match trailing {
                Some(value) => {
                    response.map(|body| tonic::body::Body::new(WithTrailer { body, value }))
                }
                None => response,
            })
        })
    }
}

/// A request body that records how it ended: END_STREAM, or an error (a
/// reset, with its reason), or neither before it was dropped.
struct ObservedBody<B> {
    body: B,
    method: &'static str,
    log: CallLog,
    ending: Option<Seen>,
}

impl<B> ObservedBody<B> {
    fn new(body: B, method: &'static str, log: CallLog) -> Self {
        log.send_modify(|all| all.push((method, Seen::Begun)));
        Self {
            body,
            method,
            log,
            ending: None,
        }
    }
}

impl<B> Drop for ObservedBody<B> {
    fn drop(&mut self) {
        let ending = self.ending.unwrap_or(Seen::Dropped);
        let method = self.method;
        self.log.send_modify(|all| all.push((method, ending)));
    }
}

/// The code of a request stream's error: CANCELLED for a reset with CANCEL.
fn reset_code(error: &(dyn std::error::Error + 'static)) -> Code {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            return match h2.reason() {
                Some(h2::Reason::CANCEL) => Code::Cancelled,
                _ => Code::Internal,
            };
        }
        current = error.source();
    }
    Code::Unknown
}

impl<B> http_body::Body for ObservedBody<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, Self::Error>>> {
        let polled = std::task::ready!(Pin::new(&mut self.body).poll_frame(cx));
        let this = &mut *self;
        Poll::Ready(match polled {
            None => {
                this.ending.get_or_insert(Seen::Clean);
                None
            }
            Some(Ok(frame)) => {
                if this.body.is_end_stream() {
                    this.ending.get_or_insert(Seen::Clean);
                }
                Some(Ok(frame))
            }
            Some(Err(error)) => {
                let error = error.into();
                this.ending.get_or_insert(Seen::Failed(reset_code(&*error)));
                Some(Err(error))
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
}

/// A response body whose trailers gain `x-grpc-test-echo-trailing-bin`.
struct WithTrailer {
    body: tonic::body::Body,
    value: HeaderValue,
}

impl http_body::Body for WithTrailer {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, Status>>> {
        let value = self.value.clone();
        Pin::new(&mut self.body).poll_frame(cx).map(|frame| {
            frame.map(|frame| {
                frame.map(|frame| match frame.into_trailers() {
                    Ok(mut trailers) => {
                        trailers.insert(ECHO_TRAILING, value);
                        Frame::trailers(trailers)
                    }
                    Err(frame) => frame,
                })
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
}
