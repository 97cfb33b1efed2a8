//! The ADS client a bootstrap describes: hyperium's `xds-client` (state of
//! the world, version and nonce per type, ACK and NACK, gRPC A88's flow
//! control, A57's resource timers, reconnection with backoff) over its
//! tonic transport.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use xds_client::codec::XdsCodec;
use xds_client::message::{DiscoveryRequest, DiscoveryResponse, MetadataValue};
use xds_client::{
    ClientConfig, ProstCodec, Resource, ServerConfig, TokioRuntime, TonicTransportBuilder,
    XdsClient,
};

use super::bootstrap::{Bootstrap, ChannelCreds};
use super::recorder::Recorder;
use super::resources::{Cluster, Endpoints, Listener, RouteTable};
use crate::telemetry::xds_status::{Board, XdsResourceKind};

/// gRPC A57: a resource not received within 15 s of being asked for
/// counts as absent (xds-client's own default is 30 s).
const RESOURCE_TIMEOUT: Duration = Duration::from_secs(15);

/// The largest ADS response read: room for about 100,000 endpoints (some
/// 60 bytes each), and a bound on what a control plane can make the pool
/// hold at once.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Starts the ADS client (its worker task runs on the current runtime).
pub(crate) fn start(
    bootstrap: &Bootstrap,
    target: &str,
    board: Arc<Board>,
) -> Result<XdsClient, String> {
    let config = ClientConfig::with_servers(
        node(bootstrap),
        vec![ServerConfig::new(bootstrap.server_uri_with_scheme())],
    )
    .with_resource_initial_timeout(Some(RESOURCE_TIMEOUT))
    .with_target(target);
    let transport = TonicTransportBuilder::new()
        .with_max_decoding_message_size(MAX_RESPONSE_BYTES)
        .with_connect_timeout(Duration::from_secs(5));
    let transport = with_creds(transport, &bootstrap.channel_creds)?;
    Ok(XdsClient::builder(
        config,
        transport,
        VersionedCodec(Arc::clone(&board)),
        TokioRuntime,
    )
    .with_metrics_recorder(Arc::new(Recorder::new(board)))
    .build())
}

/// Prost's codec, noting on the board each version the client ACKs: the
/// client's watchers do not tell a resource's version, and an ACK (a
/// request with the response's version and no error) is where it shows.
struct VersionedCodec(Arc<Board>);

impl XdsCodec for VersionedCodec {
    fn encode_request(&self, request: &DiscoveryRequest<'_>) -> xds_client::Result<Bytes> {
        let kind = match request.type_url {
            url if url == Listener::TYPE_URL.as_str() => Some(XdsResourceKind::Listener),
            url if url == RouteTable::TYPE_URL.as_str() => {
                Some(XdsResourceKind::RouteConfiguration)
            }
            url if url == Cluster::TYPE_URL.as_str() => Some(XdsResourceKind::Cluster),
            url if url == Endpoints::TYPE_URL.as_str() => {
                Some(XdsResourceKind::ClusterLoadAssignment)
            }
            _ => None,
        };
        if let Some(kind) = kind
            && request.error_detail.is_none()
            && !request.version_info.is_empty()
        {
            self.0.acked(kind, request.version_info);
        }
        ProstCodec.encode_request(request)
    }

    fn decode_response(&self, bytes: Bytes) -> xds_client::Result<DiscoveryResponse> {
        ProstCodec.decode_response(bytes)
    }
}

#[cfg(feature = "tls")]
fn with_creds(
    transport: TonicTransportBuilder,
    creds: &ChannelCreds,
) -> Result<TonicTransportBuilder, String> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let ChannelCreds::Tls {
        ca_certificate_file,
        certificate_file,
        private_key_file,
    } = creds
    else {
        return Ok(transport);
    };
    let read = |path: &std::path::PathBuf| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let mut tls = ClientTlsConfig::new();
    tls = match ca_certificate_file {
        Some(path) => tls.ca_certificate(Certificate::from_pem(read(path)?)),
        None => tls.with_webpki_roots(),
    };
    if let (Some(cert), Some(key)) = (certificate_file, private_key_file) {
        tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(transport.with_tls_config(tls))
}

#[cfg(not(feature = "tls"))]
fn with_creds(
    transport: TonicTransportBuilder,
    creds: &ChannelCreds,
) -> Result<TonicTransportBuilder, String> {
    match creds {
        ChannelCreds::Insecure => Ok(transport),
        ChannelCreds::Tls { .. } => Err("TLS to the control plane needs feature `tls`".to_owned()),
    }
}

/// The bootstrap's node, as the ADS requests carry it; the user agent is
/// this crate's.
fn node(bootstrap: &Bootstrap) -> xds_client::Node {
    let given = &bootstrap.node;
    let mut node = xds_client::Node::new("pooled-client", env!("CARGO_PKG_VERSION"));
    if !given.id.is_empty() {
        node = node.with_id(given.id.clone());
    }
    if !given.cluster.is_empty() {
        node = node.with_cluster(given.cluster.clone());
    }
    if let Some(locality) = &given.locality {
        node = node.with_locality(xds_client::Locality {
            region: locality.region.clone(),
            zone: locality.zone.clone(),
            sub_zone: locality.sub_zone.clone(),
        });
    }
    node.with_metadata(
        given
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), metadata(v)))
            .collect(),
    )
}

fn metadata(value: &Value) -> MetadataValue {
    match value {
        Value::Null => MetadataValue::Null,
        Value::Bool(b) => MetadataValue::Bool(*b),
        Value::Number(n) => MetadataValue::Number(n.as_f64().unwrap_or_default()),
        Value::String(s) => MetadataValue::String(s.clone()),
        Value::Array(items) => MetadataValue::Array(items.iter().map(metadata).collect()),
        Value::Object(fields) => MetadataValue::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), metadata(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}
