//! A greeter whose answers follow a script written in each request's name,
//! for the call-policy tests: which attempts fail, with which status, and
//! what pushback the server gives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::helloworld::greeter_server::{Greeter, GreeterServer};
use crate::helloworld::{HelloReply, HelloRequest};
use crate::server::serve_router;

/// Reads the script `KEY/FAILURES/CODE[/PUSHBACK]` from the request's name:
/// the first FAILURES calls named KEY fail with status CODE (a number),
/// with `grpc-retry-pushback-ms: PUSHBACK` when given; later ones succeed
/// after the request's `delay_ms`. A name without `/` always succeeds.
/// Every call is recorded by key, with the time it arrived.
#[derive(Debug, Clone, Default)]
pub struct ScriptedGreeter {
    arrivals: Arc<Mutex<HashMap<String, Vec<Instant>>>>,
}

impl ScriptedGreeter {
    /// How many calls named `key` arrived.
    pub fn attempts(&self, key: &str) -> usize {
        self.arrivals_of(key).len()
    }

    /// When each call named `key` arrived.
    pub fn arrivals_of(&self, key: &str) -> Vec<Instant> {
        self.arrivals
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    /// Serves this greeter on a free loopback port; its `http://` URI.
    pub async fn serve(&self) -> String {
        let router =
            tonic::transport::Server::builder().add_service(GreeterServer::new(self.clone()));
        serve_router(router).await
    }
}

#[tonic::async_trait]
impl Greeter for ScriptedGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let request = request.into_inner();
        let mut script = request.name.split('/');
        let key = script.next().unwrap_or_default().to_owned();
        let attempt = {
            let mut arrivals = self.arrivals.lock().unwrap();
            let seen = arrivals.entry(key.clone()).or_default();
            seen.push(Instant::now());
            seen.len()
        };
        let failures: usize = script.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        let code: i32 = script.next().and_then(|c| c.parse().ok()).unwrap_or(14);
        if attempt <= failures {
            let mut status = Status::new(
                tonic::Code::from_i32(code),
                format!("scripted failure {attempt}"),
            );
            if let Some(pushback) = script.next() {
                let value: MetadataValue<_> = pushback.parse().expect("an ASCII pushback");
                status
                    .metadata_mut()
                    .insert("grpc-retry-pushback-ms", value);
            }
            return Err(status);
        }
        tokio::time::sleep(Duration::from_millis(u64::from(request.delay_ms))).await;
        Ok(Response::new(HelloReply {
            message: format!("Hello {key} after {attempt} attempts"),
        }))
    }

    async fn say_hello_again(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        self.say_hello(request).await
    }

    type SayHelloStreamStream = crate::server::ReplyStream;

    async fn say_hello_stream(
        &self,
        _: Request<HelloRequest>,
    ) -> Result<Response<Self::SayHelloStreamStream>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn collect_hellos(
        &self,
        _: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<HelloReply>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    type ChatStream = crate::server::ReplyStream;

    async fn chat(
        &self,
        _: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        Err(Status::unimplemented("not scripted"))
    }
}
