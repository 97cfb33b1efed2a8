//! Health checking with the standard `grpc.health.v1` protocol, sent on the
//! connection it is about.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::call::{CallEnd, RequestBody};
use crate::config::HealthCheck;
use crate::connection::Connection;
use crate::endpoint::Endpoint;
use crate::error::BoxError;
use crate::picker::StreamGuard;
use crate::pool::Shared;
use crate::service::set_origin;

/// Why a health check failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HealthError {
    #[error("health check for {service:?} answered {status}")]
    NotServing {
        service: String,
        status: &'static str,
    },
    #[error("health check for {service:?} failed: {status}")]
    Failed {
        service: String,
        status: tonic::Status,
    },
    #[error("health check for {service:?} got no answer within {timeout:?}")]
    Timeout { service: String, timeout: Duration },
}

/// Asks the server behind `sender` whether the checked service is serving.
pub(crate) async fn check(
    sender: SendRequest<RequestBody>,
    endpoint: Arc<Endpoint>,
    settings: &HealthCheck,
) -> Result<(), HealthError> {
    let service = settings.service.clone();
    let mut client = HealthClient::new(OneConnection { sender, endpoint });
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

/// Checks `connection`'s server every interval while the connection takes
/// calls; a failed check takes its endpoint out of the rotation.
pub(crate) async fn watch(
    shared: Weak<Shared>,
    connection: Weak<Connection>,
    settings: HealthCheck,
) {
    let mut interval = tokio::time::interval(settings.interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate, and the connection was checked just now.
    interval.tick().await;
    loop {
        interval.tick().await;
        let (Some(shared), Some(connection)) = (shared.upgrade(), connection.upgrade()) else {
            return;
        };
        if !connection.link.is_ready() || shared.is_closed() {
            return;
        }
        // The check takes a stream slot like a call; when none is free the
        // calls in flight show whether the connection works.
        if !connection.try_reserve() {
            continue;
        }
        let slot = StreamGuard::new(connection.clone(), shared.clone());
        let result = check(connection.sender(), connection.endpoint.clone(), &settings).await;
        drop(slot);
        if let Err(error) = result
            && connection.link.is_ready()
        {
            shared.endpoint_unhealthy(&connection.endpoint, Box::new(error));
            return;
        }
    }
}

/// A tower service sending requests on one connection, for the health
/// client.
#[derive(Clone)]
struct OneConnection {
    sender: SendRequest<RequestBody>,
    endpoint: Arc<Endpoint>,
}

impl tower_service::Service<Request<tonic::body::Body>> for OneConnection {
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.sender.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        let mut sender = self.sender.clone();
        let endpoint = self.endpoint.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = RequestBody::new(body, Arc::new(CallEnd::default()));
            let mut request = Request::from_parts(parts, body);
            set_origin(&mut request, &endpoint)?;
            Ok(sender.send_request(request).await?)
        })
    }
}
