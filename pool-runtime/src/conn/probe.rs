//! One `grpc.health.v1` check, sent on the connection it is about: at
//! connect time, and on an interval by the pool.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::endpoint::Endpoint;
use super::error::HealthError;
use super::exchange::{Sender, exchange};
use super::link::Link;
use super::recv_body::RecvBody;
use super::request_body::{BodyHandle, RequestBody};
use crate::config::HealthCheck;
use crate::error::BoxError;

/// Asks the server behind `sender` whether the checked service is serving.
pub(crate) async fn check(
    sender: Sender,
    link: Arc<Link>,
    endpoint: Arc<Endpoint>,
    settings: &HealthCheck,
) -> Result<(), HealthError> {
    let service = settings.service.clone();
    let mut client = HealthClient::new(OneConnection {
        sender,
        link,
        endpoint,
    });
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: service.clone(),
    });
    request.set_timeout(settings.timeout);
    match tokio::time::timeout(settings.timeout, client.check(request)).await {
        Err(_) => Err(HealthError::Timeout {
            service,
            timeout: settings.timeout,
        }),
        // As gRPC's own client-side health checking does (A17), a server
        // without the health service counts as healthy, so that turning
        // checks on cannot take down a pool of servers that lack it.
        Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
            tracing::warn!(
                service,
                "the server does not implement grpc.health.v1; treating it as serving"
            );
            Ok(())
        }
        Ok(Err(status)) => Err(HealthError::Failed { service, status }),
        Ok(Ok(response)) => match response.into_inner().status() {
            ServingStatus::Serving => Ok(()),
            other => Err(HealthError::NotServing {
                service,
                status: other.as_str_name(),
            }),
        },
    }
}

/// A tower service sending requests on one connection, for the health
/// client.
#[derive(Clone)]
struct OneConnection {
    sender: Sender,
    link: Arc<Link>,
    endpoint: Arc<Endpoint>,
}

impl tower_service::Service<Request<tonic::body::Body>> for OneConnection {
    type Response = Response<RecvBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RecvBody>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        let sender = self.sender.clone();
        let link = self.link.clone();
        let endpoint = self.endpoint.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = RequestBody::new(body, Arc::new(BodyHandle::default()));
            let mut request = Request::from_parts(parts, body);
            endpoint.address_request(&mut request)?;
            exchange(&sender, &link, request)
                .await
                .map_err(|failed| failed.error.into())
        })
    }
}
