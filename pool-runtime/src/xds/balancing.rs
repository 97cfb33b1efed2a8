//! How a CDS cluster says to balance its endpoints: the `lb_policy` enum
//! with its `lb_config`, or gRPC A52's `load_balancing_policy`, a list of
//! typed policies of which the first one gRPC knows is taken.

use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::extensions::load_balancing_policies::{
    least_request::v3 as least_request, ring_hash::v3 as ring_hash, wrr_locality::v3 as wrr,
};
use envoy_types::pb::google::protobuf::{Any, UInt32Value, UInt64Value};
use prost::Message;
use xds_client::Error as XdsError;

use super::nack::nack;

const ROUND_ROBIN: &str =
    "type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin";
const LEAST_REQUEST: &str =
    "type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest";
const RING_HASH: &str =
    "type.googleapis.com/envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash";
const WRR_LOCALITY: &str =
    "type.googleapis.com/envoy.extensions.load_balancing_policies.wrr_locality.v3.WrrLocality";

/// gRPC A52: policies nested deeper than this (`wrr_locality` inside
/// `wrr_locality` ...) are NACKed, as grpc-go bounds its conversion.
const MAX_DEPTH: usize = 16;

/// gRPC A42's ring sizes: the defaults, the most a cluster may ask, and
/// grpc-go's cap on what it builds (its `GRPC_RING_HASH_CAP`).
const RING_MIN_DEFAULT: u64 = 1024;
const RING_UPPER_BOUND: u64 = 8 * 1024 * 1024;
const RING_CAP: u64 = 4096;

/// How a cluster balances its endpoints (of the policies gRPC reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LbPolicy {
    RoundRobin,
    LeastRequest,
    RingHash,
}

/// A cluster's balancing: the policy, and a RING_HASH cluster's ring size
/// bounds (gRPC A42).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Balancing {
    pub(crate) policy: LbPolicy,
    pub(crate) ring_size: (u64, u64),
}

/// The cluster's balancing: its `load_balancing_policy` when it has one
/// (gRPC A52: it wins over `lb_policy`), else `lb_policy` with its
/// `lb_config`; a NACK for a policy gRPC does not read.
pub(crate) fn balancing(message: &cluster::Cluster, at: &str) -> Result<Balancing, XdsError> {
    if let Some(policy) = &message.load_balancing_policy {
        return typed_policies(&policy.policies, &format!("{at}.load_balancing_policy"), 0);
    }
    let policy = lb_policy(message.lb_policy, at)?;
    if policy == LbPolicy::LeastRequest
        && let Some(cluster::cluster::LbConfig::LeastRequestLbConfig(config)) = &message.lb_config
    {
        check_choice_count(
            config.choice_count.as_ref(),
            &format!("{at}.least_request_lb_config"),
        )?;
    }
    let ring_size = match &message.lb_config {
        Some(cluster::cluster::LbConfig::RingHashLbConfig(config)) => {
            use cluster::cluster::ring_hash_lb_config::HashFunction;
            let at = format!("{at}.ring_hash_lb_config");
            if config.hash_function != HashFunction::XxHash as i32 {
                return Err(nack(
                    format!("{at}.hash_function"),
                    "is not XX_HASH, the one gRPC uses",
                ));
            }
            ring_size(
                config.minimum_ring_size.as_ref(),
                config.maximum_ring_size.as_ref(),
                &at,
            )?
        }
        _ => (RING_MIN_DEFAULT, RING_CAP),
    };
    Ok(Balancing { policy, ring_size })
}

/// The cluster's `lb_policy`, of the three gRPC reads; a NACK otherwise.
fn lb_policy(policy: i32, at: &str) -> Result<LbPolicy, XdsError> {
    use cluster::cluster::LbPolicy as Policy;
    match Policy::try_from(policy) {
        Ok(Policy::RoundRobin) => Ok(LbPolicy::RoundRobin),
        Ok(Policy::LeastRequest) => Ok(LbPolicy::LeastRequest),
        Ok(Policy::RingHash) => Ok(LbPolicy::RingHash),
        Ok(other) => Err(nack(
            format!("{at}.lb_policy"),
            format!(
                "{} is not supported (ROUND_ROBIN, LEAST_REQUEST and RING_HASH are)",
                other.as_str_name()
            ),
        )),
        Err(_) => Err(nack(
            format!("{at}.lb_policy"),
            format!("{policy} is not a known policy"),
        )),
    }
}

/// gRPC A52: the first of `policies` that gRPC reads; those it does not
/// know are passed over, and a list with none it knows is NACKed.
fn typed_policies(
    policies: &[cluster::load_balancing_policy::Policy],
    at: &str,
    depth: usize,
) -> Result<Balancing, XdsError> {
    if depth >= MAX_DEPTH {
        return Err(nack(at, format!("policies nest deeper than {MAX_DEPTH}")));
    }
    for (i, policy) in policies.iter().enumerate() {
        let at = format!("{at}.policies[{i}].typed_extension_config");
        let Some(config) = policy
            .typed_extension_config
            .as_ref()
            .and_then(|c| c.typed_config.as_ref())
        else {
            return Err(nack(at, "is missing"));
        };
        if let Some(balancing) = typed_policy(config, &at, depth)? {
            return Ok(balancing);
        }
    }
    Err(nack(
        at,
        "names no policy this client reads (round_robin, least_request, ring_hash, wrr_locality)",
    ))
}

/// One typed policy: `None` for a type gRPC does not read, a NACK for
/// one it reads that does not decode or check.
fn typed_policy(config: &Any, at: &str, depth: usize) -> Result<Option<Balancing>, XdsError> {
    let does_not_decode = |e: prost::DecodeError| nack(at, format!("does not decode: {e}"));
    let default_ring = (RING_MIN_DEFAULT, RING_CAP);
    let balancing = match config.type_url.as_str() {
        ROUND_ROBIN => Balancing {
            policy: LbPolicy::RoundRobin,
            ring_size: default_ring,
        },
        LEAST_REQUEST => {
            let config = least_request::LeastRequest::decode(config.value.as_slice())
                .map_err(does_not_decode)?;
            check_choice_count(config.choice_count.as_ref(), at)?;
            Balancing {
                policy: LbPolicy::LeastRequest,
                ring_size: default_ring,
            }
        }
        RING_HASH => {
            use ring_hash::ring_hash::HashFunction;
            let config =
                ring_hash::RingHash::decode(config.value.as_slice()).map_err(does_not_decode)?;
            let function = config.hash_function;
            if function != HashFunction::DefaultHash as i32
                && function != HashFunction::XxHash as i32
            {
                return Err(nack(
                    format!("{at}.hash_function"),
                    "is neither DEFAULT_HASH nor XX_HASH, the one gRPC uses",
                ));
            }
            Balancing {
                policy: LbPolicy::RingHash,
                ring_size: ring_size(
                    config.minimum_ring_size.as_ref(),
                    config.maximum_ring_size.as_ref(),
                    at,
                )?,
            }
        }
        WRR_LOCALITY => {
            // Localities are weighed whatever the endpoints' policy (see
            // the cascade's `addresses`): the endpoints' policy decides.
            let config =
                wrr::WrrLocality::decode(config.value.as_slice()).map_err(does_not_decode)?;
            let inner = config.endpoint_picking_policy.unwrap_or_default();
            let at = format!("{at}.endpoint_picking_policy");
            typed_policies(&inner.policies, &at, depth + 1)?
        }
        _ => return Ok(None),
    };
    Ok(Some(balancing))
}

/// gRPC A48: a `choice_count` below 2 is NACKed (the pool draws 2, the
/// count grpc-go defaults to; a larger one is read and drawn as 2).
fn check_choice_count(count: Option<&UInt32Value>, at: &str) -> Result<(), XdsError> {
    match count {
        Some(count) if count.value < 2 => Err(nack(
            format!("{at}.choice_count"),
            format!("{} is below 2", count.value),
        )),
        _ => Ok(()),
    }
}

/// gRPC A42's ring size bounds, defaults 1,024 and 8,388,608 (the most
/// it allows), the largest capped at 4,096 as grpc-go caps it.
fn ring_size(
    min: Option<&UInt64Value>,
    max: Option<&UInt64Value>,
    at: &str,
) -> Result<(u64, u64), XdsError> {
    let min = min.map_or(RING_MIN_DEFAULT, |v| v.value);
    let max = max.map_or(RING_UPPER_BOUND, |v| v.value);
    if min == 0 || max > RING_UPPER_BOUND || min > max {
        return Err(nack(
            at,
            format!(
                "minimum_ring_size {min} and maximum_ring_size {max}: 1 <= min <= max <= {RING_UPPER_BOUND}"
            ),
        ));
    }
    Ok((min.min(RING_CAP), max.min(RING_CAP)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::load_balancing_policy::Policy;
    use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;

    fn typed(type_url: &str, value: Vec<u8>) -> Policy {
        Policy {
            typed_extension_config: Some(TypedExtensionConfig {
                name: "policy".to_owned(),
                typed_config: Some(Any {
                    type_url: type_url.to_owned(),
                    value,
                }),
            }),
        }
    }

    fn with_policies(policies: Vec<Policy>) -> cluster::Cluster {
        cluster::Cluster {
            load_balancing_policy: Some(cluster::LoadBalancingPolicy { policies }),
            // A52: the typed list wins over the enum.
            lb_policy: cluster::cluster::LbPolicy::Maglev as i32,
            ..Default::default()
        }
    }

    #[test]
    fn the_first_policy_grpc_reads_is_taken_and_wrr_locality_unwrapped() {
        let ring = ring_hash::RingHash {
            minimum_ring_size: Some(UInt64Value { value: 64 }),
            maximum_ring_size: Some(UInt64Value { value: 128 }),
            ..Default::default()
        };
        let wrapped = wrr::WrrLocality {
            endpoint_picking_policy: Some(cluster::LoadBalancingPolicy {
                policies: vec![
                    typed("type.googleapis.com/custom.Unknown", Vec::new()),
                    typed(RING_HASH, ring.encode_to_vec()),
                ],
            }),
        };
        let cluster = with_policies(vec![
            typed("type.googleapis.com/xds.type.v3.TypedStruct", Vec::new()),
            typed(WRR_LOCALITY, wrapped.encode_to_vec()),
            typed(ROUND_ROBIN, Vec::new()),
        ]);
        assert_eq!(
            balancing(&cluster, "Cluster \"c\"").expect("read"),
            Balancing {
                policy: LbPolicy::RingHash,
                ring_size: (64, 128)
            }
        );
    }

    #[test]
    fn policies_grpc_cannot_read_are_nacked_with_the_field() {
        let error = |cluster: cluster::Cluster| {
            balancing(&cluster, "Cluster \"c\"")
                .expect_err("a NACK")
                .to_string()
        };
        let unknown = with_policies(vec![typed("type.googleapis.com/custom.Unknown", vec![])]);
        assert!(
            error(unknown).contains("Cluster \"c\".load_balancing_policy: names no policy"),
            "unknown only"
        );
        let one_choice = least_request::LeastRequest {
            choice_count: Some(UInt32Value { value: 1 }),
            ..Default::default()
        };
        let message = error(with_policies(vec![typed(
            LEAST_REQUEST,
            one_choice.encode_to_vec(),
        )]));
        assert!(
            message.contains("policies[0].typed_extension_config.choice_count: 1 is below 2"),
            "{message}"
        );
        // wrr_locality inside itself, deeper than grpc-go goes.
        let mut nested = typed(ROUND_ROBIN, Vec::new());
        for _ in 0..20 {
            let inner = wrr::WrrLocality {
                endpoint_picking_policy: Some(cluster::LoadBalancingPolicy {
                    policies: vec![nested],
                }),
            };
            nested = typed(WRR_LOCALITY, inner.encode_to_vec());
        }
        let message = error(with_policies(vec![nested]));
        assert!(
            message.contains("policies nest deeper than 16"),
            "{message}"
        );
        let maglev = cluster::Cluster {
            lb_policy: cluster::cluster::LbPolicy::Maglev as i32,
            ..Default::default()
        };
        assert!(error(maglev).contains("lb_policy: MAGLEV is not supported"));
    }
}
