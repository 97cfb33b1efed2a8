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
/// after the request's `delay_ms`. A name without `/` always succeeds
/// after `delay_ms`; `KEY/stall` waits `delay_ms` on its first call only.
/// Every call is recorded by key, with the time it arrived and the port
/// it reached, and so is every call dropped before it answered.
#[derive(Debug, Clone, Default)]
pub struct ScriptedGreeter {
    arrivals: Arc<Mutex<HashMap<String, Vec<Instant>>>>,
    ports: Arc<Mutex<HashMap<String, Vec<u16>>>>,
    cancelled: Arc<Mutex<Vec<String>>>,
}

/// Records a call as cancelled unless it answered.
struct Answering {
    key: String,
    cancelled: Arc<Mutex<Vec<String>>>,
    answered: bool,
}

impl Drop for Answering {
    fn drop(&mut self) {
        if !self.answered {
            self.cancelled.lock().unwrap().push(self.key.clone());
        }
    }
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

    /// The ports the calls named `key` reached, in order.
    pub fn ports_of(&self, key: &str) -> Vec<u16> {
        self.ports
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    /// The calls dropped before they answered (the client cancelled them).
    pub fn cancelled(&self) -> Vec<String> {
        self.cancelled.lock().unwrap().clone()
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
        let port = request.local_addr().map_or(0, |a| a.port());
        let request = request.into_inner();
        let mut script = request.name.split('/');
        let key = script.next().unwrap_or_default().to_owned();
        let attempt = {
            let mut arrivals = self.arrivals.lock().unwrap();
            let seen = arrivals.entry(key.clone()).or_default();
            seen.push(Instant::now());
            seen.len()
        };
        self.ports
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_default()
            .push(port);
        let mut answering = Answering {
            key: key.clone(),
            cancelled: self.cancelled.clone(),
            answered: false,
        };
        if request.name.ends_with("/stall") {
            if attempt == 1 {
                tokio::time::sleep(Duration::from_millis(u64::from(request.delay_ms))).await;
            }
            answering.answered = true;
            return Ok(Response::new(HelloReply {
                message: format!("Hello {key} from attempt {attempt}"),
            }));
        }
        let failures: usize = script.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        let code: i32 = script.next().and_then(|c| c.parse().ok()).unwrap_or(14);
        answering.answered = true;
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
        answering.answered = false;
        tokio::time::sleep(Duration::from_millis(u64::from(request.delay_ms))).await;
        answering.answered = true;
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
