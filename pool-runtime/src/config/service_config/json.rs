//! Reading gRPC's JSON service config into [`ServiceConfig`], with every
//! rule of gRPC A6 checked and each error naming the field and its value.

use std::borrow::Cow;
use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Map, Value};
use tonic::Code;

use super::{
    HedgingPolicy, MethodConfig, MethodName, RetryPolicy, RetryThrottling, RingHash, ServiceConfig,
};
use crate::error::Error;

/// gRPC caps attempts at 5, whatever a config asks.
const MAX_ATTEMPTS: u32 = 5;

impl ServiceConfig {
    /// Parses gRPC's JSON service config.
    ///
    /// Supported: `methodConfig[]` with `name`, `timeout`, `waitForReady`,
    /// `retryPolicy`, `hedgingPolicy`, `maxRequestMessageBytes` and
    /// `maxResponseMessageBytes`, and top-level `retryThrottling`. Other
    /// fields are ignored, as gRPC ignores them: those gRPC defines and
    /// this pool does not use (such as `loadBalancingConfig`) with a debug
    /// log, any other (a misspelling such as `retryPolicyy`, which would
    /// turn retries off in silence) with a warning that gives its path.
    /// [`from_json_strict`](Self::from_json_strict) refuses the latter.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidServiceConfig`] naming the field and its value: JSON
    /// that does not parse, a duration without its `s` ("1.5" for "1.5s"),
    /// an unknown status code, `maxAttempts` below 2, a method with both a
    /// retry and a hedging policy, a name given twice.
    pub fn from_json(json: &str) -> Result<Self, Error> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| invalid("(the document)", excerpt(json), e.to_string()))?;
        parse_service_config(&value, &mut Unknown::Warn)
    }

    /// Parses gRPC's JSON service config as [`from_json`](Self::from_json)
    /// does, but refuses a field that gRPC does not define.
    ///
    /// # Errors
    ///
    /// Those of [`from_json`](Self::from_json), and
    /// [`Error::InvalidServiceConfig`] naming the first unknown field by
    /// its path (`methodConfig[0].retryPolicyy`).
    pub fn from_json_strict(json: &str) -> Result<Self, Error> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| invalid("(the document)", excerpt(json), e.to_string()))?;
        let mut unknown = Unknown::Collect(Vec::new());
        let config = parse_service_config(&value, &mut unknown)?;
        match unknown {
            Unknown::Collect(fields) if !fields.is_empty() => Err(invalid(
                fields.join(", "),
                "(unknown)",
                "gRPC's service config has no such field (from_json ignores it with a warning)",
            )),
            _ => Ok(config),
        }
    }
}

/// Reads the service config from any serde format (a TOML pool config, for
/// one) as [`ServiceConfig::from_json`] reads JSON, with the same checks.
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for ServiceConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        parse_service_config(&value, &mut Unknown::Warn).map_err(serde::de::Error::custom)
    }
}

/// Reads a retry policy written as a service config's `retryPolicy`
/// (`maxAttempts`, `initialBackoff` and the rest), as `PoolConfig`'s
/// `idempotent_retry_policy` is in a configuration file.
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for RetryPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        parse_retry(&value, "idempotent_retry_policy", &mut Unknown::Warn)
            .map_err(serde::de::Error::custom)
    }
}

fn invalid(
    field: impl Into<String>,
    value: impl Into<String>,
    reason: impl Into<Cow<'static, str>>,
) -> Error {
    Error::InvalidServiceConfig {
        field: field.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

fn excerpt(json: &str) -> String {
    json.chars().take(40).collect()
}

fn object<'a>(value: &'a Value, field: &str) -> Result<&'a Map<String, Value>, Error> {
    value
        .as_object()
        .ok_or_else(|| invalid(field, value.to_string(), "must be an object"))
}

/// What becomes of fields gRPC does not define.
enum Unknown {
    /// Logged at warn level, and ignored (`from_json`).
    Warn,
    /// Their paths kept, for `from_json_strict` to refuse.
    Collect(Vec<String>),
}

/// Fields gRPC's service config defines that this pool does not use:
/// ignored with a debug log, never refused.
const DEFINED_UNUSED: [&str; 4] = [
    "loadBalancingConfig",
    "loadBalancingPolicy",
    "healthCheckConfig",
    "perAttemptRecvTimeout",
];

/// Passes over the fields of `object` (at `field`) that are not in `known`.
fn ignore_unknown(object: &Map<String, Value>, field: &str, known: &[&str], unknown: &mut Unknown) {
    for name in object.keys().filter(|k| !known.contains(&k.as_str())) {
        if DEFINED_UNUSED.contains(&name.as_str()) {
            tracing::debug!(
                field,
                name,
                "service config: ignoring a field this pool does not use"
            );
            continue;
        }
        let path = format!("{field}.{name}").replace("(the document).", "");
        match unknown {
            Unknown::Warn => tracing::warn!(
                field = %path,
                "service config: ignoring a field gRPC does not define (misspelt?)"
            ),
            Unknown::Collect(paths) => paths.push(path),
        }
    }
}

fn parse_service_config(value: &Value, unknown: &mut Unknown) -> Result<ServiceConfig, Error> {
    let top = object(value, "(the document)")?;
    ignore_unknown(
        top,
        "(the document)",
        &["methodConfig", "retryThrottling", "loadBalancingConfig"],
        unknown,
    );
    let mut config = ServiceConfig::default();
    if let Some(methods) = top.get("methodConfig") {
        let methods = methods
            .as_array()
            .ok_or_else(|| invalid("methodConfig", methods.to_string(), "must be an array"))?;
        for (i, method) in methods.iter().enumerate() {
            config.method_config.push(parse_method_config(
                method,
                &format!("methodConfig[{i}]"),
                unknown,
            )?);
        }
    }
    check_unique_names(&config.method_config)?;
    if let Some(throttling) = top.get("retryThrottling") {
        config.retry_throttling = Some(parse_throttling(throttling, unknown)?);
    }
    if let Some(policies) = top.get("loadBalancingConfig") {
        config.ring_hash = parse_balancing(policies)?;
    }
    Ok(config)
}

/// The policies that pick as this pool does: its least request stands in
/// for gRPC's own.
const LEAST_REQUEST_ALIKE: [&str; 4] = [
    "round_robin",
    "pick_first",
    "least_request_experimental",
    "weighted_round_robin",
];

/// `loadBalancingConfig`: the first policy of the list that the pool
/// knows, as gRPC takes it; `ring_hash_experimental` hashes calls, the
/// others pick by least request.
fn parse_balancing(value: &Value) -> Result<Option<RingHash>, Error> {
    let field = "loadBalancingConfig";
    let list = value
        .as_array()
        .ok_or_else(|| invalid(field, value.to_string(), "must be an array"))?;
    for (i, policy) in list.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let policy = object(policy, &at)?;
        let Some((name, config)) = policy.iter().next().filter(|_| policy.len() == 1) else {
            return Err(invalid(
                at,
                Value::Object(policy.clone()).to_string(),
                "must name one policy",
            ));
        };
        if LEAST_REQUEST_ALIKE.contains(&name.as_str()) {
            return Ok(None);
        }
        if name == "ring_hash_experimental" {
            return parse_ring_hash(config, &format!("{at}.ring_hash_experimental")).map(Some);
        }
    }
    if list.is_empty() {
        return Ok(None);
    }
    Err(invalid(
        field,
        excerpt(&value.to_string()),
        "names no policy this pool has (round_robin, pick_first, least_request_experimental, weighted_round_robin, ring_hash_experimental)",
    ))
}

/// gRPC A42's ring sizes (1 <= min <= max <= 8,388,608; the largest
/// capped at 4,096 as grpc-go caps it) and A76's `requestHashHeader`.
fn parse_ring_hash(value: &Value, at: &str) -> Result<RingHash, Error> {
    const UPPER_BOUND: u64 = 8 * 1024 * 1024;
    const CAP: u64 = 4096;
    let fields = object(value, at)?;
    let size = |name: &str, default: u64| -> Result<u64, Error> {
        let Some(value) = fields.get(name) else {
            return Ok(default);
        };
        value
            .as_u64()
            .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
            .filter(|n| (1..=UPPER_BOUND).contains(n))
            .ok_or_else(|| {
                invalid(
                    format!("{at}.{name}"),
                    value.to_string(),
                    "must be a whole number from 1 to 8388608",
                )
            })
    };
    let min = size("minRingSize", 1024)?;
    let max = size("maxRingSize", UPPER_BOUND)?;
    if min > max {
        return Err(invalid(
            format!("{at}.minRingSize"),
            min.to_string(),
            format!("is above maxRingSize {max}"),
        ));
    }
    let request_hash_header = match fields.get("requestHashHeader") {
        None => None,
        Some(Value::String(name)) if name.is_empty() => None,
        Some(Value::String(name)) => {
            if name.starts_with(':')
                || name.ends_with("-bin")
                || http::HeaderName::from_bytes(name.as_bytes()).is_err()
            {
                return Err(invalid(
                    format!("{at}.requestHashHeader"),
                    format!("{name:?}"),
                    "must be a header name, neither a pseudo-header nor a -bin one (gRPC A76)",
                ));
            }
            Some(name.to_ascii_lowercase())
        }
        Some(other) => {
            return Err(invalid(
                format!("{at}.requestHashHeader"),
                other.to_string(),
                "must be a string",
            ));
        }
    };
    Ok(RingHash {
        min_ring_size: min.min(CAP),
        max_ring_size: max.min(CAP),
        request_hash_header,
    })
}

/// The fields a method config may have.
const METHOD_FIELDS: [&str; 7] = [
    "name",
    "timeout",
    "waitForReady",
    "retryPolicy",
    "hedgingPolicy",
    "maxRequestMessageBytes",
    "maxResponseMessageBytes",
];

fn parse_method_config(
    value: &Value,
    at: &str,
    unknown: &mut Unknown,
) -> Result<MethodConfig, Error> {
    let fields = object(value, at)?;
    ignore_unknown(fields, at, &METHOD_FIELDS, unknown);
    let field = |name: &str| format!("{at}.{name}");
    let mut method = MethodConfig {
        name: parse_names(fields.get("name"), at, unknown)?,
        ..MethodConfig::default()
    };
    if let Some(timeout) = fields.get("timeout") {
        method.timeout = Some(duration(timeout, &field("timeout"))?);
    }
    if let Some(ready) = fields.get("waitForReady") {
        let ready = ready.as_bool().ok_or_else(|| {
            invalid(
                field("waitForReady"),
                ready.to_string(),
                "must be true or false",
            )
        })?;
        method.wait_for_ready = Some(ready);
    }
    if let Some(policy) = fields.get("retryPolicy") {
        method.retry_policy = Some(parse_retry(policy, &field("retryPolicy"), unknown)?);
    }
    if let Some(policy) = fields.get("hedgingPolicy") {
        if method.retry_policy.is_some() {
            return Err(invalid(
                field("hedgingPolicy"),
                policy.to_string(),
                "a method has a retryPolicy or a hedgingPolicy, not both",
            ));
        }
        method.hedging_policy = Some(parse_hedging(policy, &field("hedgingPolicy"), unknown)?);
    }
    let bytes = |name: &str| fields.get(name).map(|b| count(b, &field(name))).transpose();
    method.max_request_message_bytes = bytes("maxRequestMessageBytes")?;
    method.max_response_message_bytes = bytes("maxResponseMessageBytes")?;
    Ok(method)
}

/// A method config's `name` list.
fn parse_names(
    names: Option<&Value>,
    at: &str,
    unknown: &mut Unknown,
) -> Result<Vec<MethodName>, Error> {
    let Some(names) = names else {
        return Ok(Vec::new());
    };
    let list = names
        .as_array()
        .ok_or_else(|| invalid(format!("{at}.name"), names.to_string(), "must be an array"))?;
    list.iter()
        .enumerate()
        .map(|(i, name)| parse_name(name, &format!("{at}.name[{i}]"), unknown))
        .collect()
}

fn parse_name(value: &Value, at: &str, unknown: &mut Unknown) -> Result<MethodName, Error> {
    let fields = object(value, at)?;
    ignore_unknown(fields, at, &["service", "method"], unknown);
    let text = |name: &str| -> Result<Option<String>, Error> {
        match fields.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(invalid(
                format!("{at}.{name}"),
                other.to_string(),
                "must be a string",
            )),
        }
    };
    let name = MethodName {
        service: text("service")?,
        method: text("method")?,
    };
    if name.service.is_none() && name.method.is_some() {
        return Err(invalid(
            format!("{at}.method"),
            value.to_string(),
            "a method needs its service",
        ));
    }
    Ok(name)
}

/// A name may appear once in the whole config (gRPC A6).
fn check_unique_names(methods: &[MethodConfig]) -> Result<(), Error> {
    let mut seen = HashSet::new();
    for (i, method) in methods.iter().enumerate() {
        for (j, name) in method.name.iter().enumerate() {
            if !seen.insert(name) {
                return Err(invalid(
                    format!("methodConfig[{i}].name[{j}]"),
                    format!("{name:?}"),
                    "this name is already in an earlier method config",
                ));
            }
        }
    }
    Ok(())
}

fn required<'a>(fields: &'a Map<String, Value>, at: &str, name: &str) -> Result<&'a Value, Error> {
    fields
        .get(name)
        .ok_or_else(|| invalid(format!("{at}.{name}"), "(missing)", "is required"))
}

/// `maxAttempts`: at least 2, and above 5 counts as 5.
fn attempts(value: &Value, field: &str) -> Result<u32, Error> {
    let n = value
        .as_u64()
        .ok_or_else(|| invalid(field, value.to_string(), "must be a whole number"))?;
    if n < 2 {
        return Err(invalid(field, n.to_string(), "must be at least 2"));
    }
    Ok(u32::try_from(n).unwrap_or(MAX_ATTEMPTS).min(MAX_ATTEMPTS))
}

fn parse_retry(value: &Value, at: &str, unknown: &mut Unknown) -> Result<RetryPolicy, Error> {
    let fields = object(value, at)?;
    let known = [
        "maxAttempts",
        "initialBackoff",
        "maxBackoff",
        "backoffMultiplier",
        "retryableStatusCodes",
    ];
    ignore_unknown(fields, at, &known, unknown);
    let field = |name: &str| format!("{at}.{name}");
    let positive = |name: &str| -> Result<Duration, Error> {
        let d = duration(required(fields, at, name)?, &field(name))?;
        if d.is_zero() {
            return Err(invalid(field(name), format!("{d:?}"), "must be above zero"));
        }
        Ok(d)
    };
    let multiplier = required(fields, at, "backoffMultiplier")?;
    let backoff_multiplier = multiplier
        .as_f64()
        .filter(|m| *m > 0.0 && m.is_finite())
        .ok_or_else(|| {
            invalid(
                field("backoffMultiplier"),
                multiplier.to_string(),
                "must be a number above zero",
            )
        })?;
    let retryable_status_codes = codes(
        required(fields, at, "retryableStatusCodes")?,
        &field("retryableStatusCodes"),
    )?;
    if retryable_status_codes.is_empty() {
        return Err(invalid(
            field("retryableStatusCodes"),
            "[]",
            "must name at least one status",
        ));
    }
    Ok(RetryPolicy {
        max_attempts: attempts(required(fields, at, "maxAttempts")?, &field("maxAttempts"))?,
        initial_backoff: positive("initialBackoff")?,
        max_backoff: positive("maxBackoff")?,
        backoff_multiplier,
        retryable_status_codes,
    })
}

fn parse_hedging(value: &Value, at: &str, unknown: &mut Unknown) -> Result<HedgingPolicy, Error> {
    let fields = object(value, at)?;
    ignore_unknown(
        fields,
        at,
        &["maxAttempts", "hedgingDelay", "nonFatalStatusCodes"],
        unknown,
    );
    let field = |name: &str| format!("{at}.{name}");
    let mut policy = HedgingPolicy {
        max_attempts: attempts(required(fields, at, "maxAttempts")?, &field("maxAttempts"))?,
        ..HedgingPolicy::default()
    };
    if let Some(delay) = fields.get("hedgingDelay") {
        policy.hedging_delay = duration(delay, &field("hedgingDelay"))?;
    }
    if let Some(non_fatal) = fields.get("nonFatalStatusCodes") {
        policy.non_fatal_status_codes = codes(non_fatal, &field("nonFatalStatusCodes"))?;
    }
    Ok(policy)
}

fn parse_throttling(value: &Value, unknown: &mut Unknown) -> Result<RetryThrottling, Error> {
    let at = "retryThrottling";
    let fields = object(value, at)?;
    ignore_unknown(fields, at, &["maxTokens", "tokenRatio"], unknown);
    let tokens = required(fields, at, "maxTokens")?;
    let max_tokens = tokens
        .as_u64()
        .filter(|t| (1..=1000).contains(t))
        .ok_or_else(|| {
            invalid(
                "retryThrottling.maxTokens",
                tokens.to_string(),
                "must be a whole number from 1 to 1000",
            )
        })?;
    let ratio = required(fields, at, "tokenRatio")?;
    let token_ratio = ratio
        .as_f64()
        .filter(|r| *r > 0.0 && r.is_finite())
        .ok_or_else(|| {
            invalid(
                "retryThrottling.tokenRatio",
                ratio.to_string(),
                "must be a number above zero",
            )
        })?;
    Ok(RetryThrottling {
        max_tokens: max_tokens as u32,
        // gRPC keeps three decimal places.
        token_ratio: (token_ratio * 1000.0).trunc() / 1000.0,
    })
}

/// A protobuf JSON duration: seconds with up to nine decimals and an `s`,
/// such as "1s", "0.05s", "1.500s"; never negative.
fn duration(value: &Value, field: &str) -> Result<Duration, Error> {
    let bad = |reason: &'static str| invalid(field, value.to_string(), reason);
    let text = value
        .as_str()
        .ok_or_else(|| bad("must be a string of seconds such as \"0.5s\""))?;
    let seconds = text
        .strip_suffix('s')
        .ok_or_else(|| bad("must end in \"s\", such as \"0.5s\""))?;
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 9 {
        return Err(bad(
            "must be seconds with at most nine decimals and an \"s\", such as \"0.5s\"",
        ));
    }
    let whole: u64 = whole.parse().map_err(|_| bad("is too large"))?;
    let nanos: u32 = format!("{fraction:0<9}").parse().unwrap_or(0);
    Ok(Duration::new(whole, nanos))
}

/// A non-negative whole number.
fn count(value: &Value, field: &str) -> Result<usize, Error> {
    value
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| invalid(field, value.to_string(), "must be a whole number of bytes"))
}

/// Status codes, by name ("UNAVAILABLE") or number (14).
fn codes(value: &Value, field: &str) -> Result<Vec<Code>, Error> {
    let list = value
        .as_array()
        .ok_or_else(|| invalid(field, value.to_string(), "must be an array of status codes"))?;
    list.iter()
        .map(|code| {
            let parsed = match code {
                Value::String(name) => crate::code_names::code_named(name),
                Value::Number(n) => n
                    .as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .filter(|n| (0..=16).contains(n))
                    .map(Code::from_i32),
                _ => None,
            };
            parsed.ok_or_else(|| {
                invalid(
                    field,
                    code.to_string(),
                    "is not a gRPC status code (such as \"UNAVAILABLE\" or 14)",
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(json: &str) -> String {
        ServiceConfig::from_json(json).unwrap_err().to_string()
    }

    #[test]
    fn reads_every_supported_field() {
        let config = ServiceConfig::from_json(
            r#"{
              "loadBalancingConfig": [{"round_robin": {}}],
              "methodConfig": [
                {"name": [{"service": "shop.Orders", "method": "GetOrder"}, {"service": "shop.Stock"}],
                 "timeout": "1.5s", "waitForReady": true,
                 "retryPolicy": {"maxAttempts": 9, "initialBackoff": "0.1s", "maxBackoff": "1s",
                                 "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE", 4]},
                 "maxRequestMessageBytes": 1024, "maxResponseMessageBytes": 2048},
                {"name": [{}], "hedgingPolicy": {"maxAttempts": 3, "hedgingDelay": "0.05s",
                                                  "nonFatalStatusCodes": ["unavailable"]}}
              ],
              "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1234}
            }"#,
        )
        .unwrap();
        let orders = &config.method_config[0];
        assert_eq!(orders.name.len(), 2);
        assert_eq!(orders.name[1].method, None);
        assert_eq!(orders.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(orders.wait_for_ready, Some(true));
        let retry = orders.retry_policy.as_ref().unwrap();
        assert_eq!(retry.max_attempts, 5, "clamped to 5, as gRPC does");
        assert_eq!(
            retry.retryable_status_codes,
            [Code::Unavailable, Code::DeadlineExceeded]
        );
        assert_eq!(orders.max_request_message_bytes, Some(1024));
        let hedging = config.method_config[1].hedging_policy.as_ref().unwrap();
        assert_eq!(hedging.hedging_delay, Duration::from_millis(50));
        assert_eq!(hedging.non_fatal_status_codes, [Code::Unavailable]);
        assert_eq!(config.retry_throttling.unwrap().token_ratio, 0.123);
    }

    #[test]
    fn a_misspelt_field_is_ignored_by_default_and_refused_when_strict() {
        let json = r#"{"methodConfig": [{"name": [{"service": "s"}],
            "retryPolicyy": {"maxAttempts": 3}}], "loadBalancingConfig": [{"round_robin": {}}]}"#;
        let lenient = ServiceConfig::from_json(json).unwrap();
        assert!(lenient.method_config[0].retry_policy.is_none());
        let refused = ServiceConfig::from_json_strict(json)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("methodConfig[0].retryPolicyy"),
            "{refused}"
        );
        // A field gRPC defines and the pool does not use is never refused.
        assert!(!refused.contains("loadBalancingConfig"), "{refused}");
        let defined = r#"{"loadBalancingConfig": [{"round_robin": {}}]}"#;
        ServiceConfig::from_json_strict(defined).unwrap();
    }

    #[test]
    fn errors_name_the_field_and_the_value() {
        let retry = r#""retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}"#;
        let hedge = r#""hedgingPolicy": {"maxAttempts": 2}"#;
        let cases = [
            (
                r#"{"methodConfig": [{"timeout": "1.5"}]}"#.to_owned(),
                "`methodConfig[0].timeout` = \"1.5\"",
            ),
            (
                format!(r#"{{"methodConfig": [{{{retry}, {hedge}}}]}}"#),
                "not both",
            ),
            (
                r#"{"methodConfig": [{"hedgingPolicy": {"maxAttempts": 1}}]}"#.to_owned(),
                "`methodConfig[0].hedgingPolicy.maxAttempts` = 1: must be at least 2",
            ),
            (
                r#"{"methodConfig": [{"hedgingPolicy": {"maxAttempts": 2, "nonFatalStatusCodes": ["UNAVAILABLEX"]}}]}"#.to_owned(),
                "\"UNAVAILABLEX\"",
            ),
            (
                r#"{"methodConfig": [{"name": [{"service": "a.B"}]}, {"name": [{"service": "a.B"}]}]}"#.to_owned(),
                "`methodConfig[1].name[0]`",
            ),
            (
                r#"{"retryThrottling": {"maxTokens": 0, "tokenRatio": 0.1}}"#.to_owned(),
                "`retryThrottling.maxTokens` = 0",
            ),
            ("{not json".to_owned(), "invalid service config"),
        ];
        for (json, expected) in cases {
            let error = error_of(&json);
            assert!(error.contains(expected), "{json}: {error}");
        }
    }
}
