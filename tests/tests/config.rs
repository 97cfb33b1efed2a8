//! Invalid configurations are rejected by `build()` with a typed error.

use std::time::Duration;

use pooled_client::{Backoff, Error, Pool, PoolBuilder};

fn valid() -> PoolBuilder {
    Pool::builder().endpoint("http://127.0.0.1:50051")
}

#[test]
fn invalid_configurations_are_rejected_with_the_bad_value() {
    type Check = fn(&Error) -> bool;
    let second = Duration::from_secs(1);
    let cases: Vec<(&str, PoolBuilder, Check)> = vec![
        ("no endpoint", Pool::builder(), |e| {
            matches!(e, Error::NoEndpoint)
        }),
        (
            "unparsable uri",
            Pool::builder().endpoint("http://exa mple:1"),
            |e| matches!(e, Error::InvalidUri { uri, .. } if uri == "http://exa mple:1"),
        ),
        (
            "no scheme",
            Pool::builder().endpoint("127.0.0.1:50051"),
            |e| matches!(e, Error::InvalidEndpoint { .. } | Error::InvalidUri { .. }),
        ),
        (
            "unsupported scheme",
            Pool::builder().endpoint("ftp://h:1"),
            |e| matches!(e, Error::UnsupportedScheme { scheme, .. } if scheme == "ftp"),
        ),
        (
            "path",
            Pool::builder().endpoint("http://h:1/prefix"),
            |e| matches!(e, Error::InvalidEndpoint { uri, .. } if uri == "http://h:1/prefix"),
        ),
        ("one bad among good", valid().endpoint("nope://x"), |e| {
            matches!(e, Error::UnsupportedScheme { .. })
        }),
        (
            "max_connections 0",
            valid().max_connections(0),
            |e| matches!(e, Error::InvalidSetting { name: "max_connections", value, .. } if value == "0"),
        ),
        (
            "min above max",
            valid().min_connections(9).max_connections(8),
            |e| matches!(e, Error::InvalidSetting { name: "min_connections", value, .. } if value == "9"),
        ),
        (
            "zero connect_timeout",
            valid().connect_timeout(Duration::ZERO),
            |e| {
                matches!(
                    e,
                    Error::InvalidSetting {
                        name: "connect_timeout",
                        ..
                    }
                )
            },
        ),
        (
            "absurd idle_timeout",
            valid().idle_timeout(Duration::from_secs(365 * 86_400)),
            |e| {
                matches!(
                    e,
                    Error::InvalidSetting {
                        name: "idle_timeout",
                        ..
                    }
                )
            },
        ),
        (
            "zero acquire_timeout",
            valid().acquire_timeout(Duration::ZERO),
            |e| {
                matches!(
                    e,
                    Error::InvalidSetting {
                        name: "acquire_timeout",
                        ..
                    }
                )
            },
        ),
        (
            "zero lifetime",
            valid().max_connection_lifetime(Duration::ZERO),
            |e| {
                matches!(
                    e,
                    Error::InvalidSetting {
                        name: "max_connection_lifetime",
                        ..
                    }
                )
            },
        ),
        (
            "zero keepalive timeout",
            valid()
                .http2_keep_alive_interval(second)
                .keep_alive_timeout(Duration::ZERO),
            |e| {
                matches!(
                    e,
                    Error::InvalidSetting {
                        name: "keep_alive_timeout",
                        ..
                    }
                )
            },
        ),
        (
            "zero streams per connection",
            valid().max_streams_per_connection(0),
            |e| {
                matches!(
                    e,
                    Error::InvalidSetting {
                        name: "max_streams_per_connection",
                        ..
                    }
                )
            },
        ),
        (
            "a zero response limit",
            valid().max_decoding_message_size(0),
            |e| {
                matches!(
                    e,
                    Error::InvalidSetting {
                        name: "max_decoding_message_size",
                        ..
                    }
                )
            },
        ),
        ("too many waiters", valid().max_waiters(usize::MAX), |e| {
            matches!(
                e,
                Error::InvalidSetting {
                    name: "max_waiters",
                    ..
                }
            )
        }),
        (
            "shrinking backoff",
            valid().backoff(Backoff::new(second, 0.5, 0.2, second * 5)),
            |e| {
                matches!(
                    e,
                    Error::InvalidSetting {
                        name: "backoff multiplier",
                        ..
                    }
                )
            },
        ),
        (
            "too many attempts",
            valid().idempotent_retry_policy(Some(pooled_client::RetryPolicy {
                max_attempts: 9,
                ..Default::default()
            })),
            |e| matches!(e, Error::InvalidSetting { name: "idempotent_retry_policy max_attempts", value, .. } if value == "9"),
        ),
        (
            "a retry policy that retries nothing",
            valid().idempotent_retry_policy(Some(pooled_client::RetryPolicy {
                retryable_status_codes: Vec::new(),
                ..Default::default()
            })),
            |e| {
                matches!(
                    e,
                    Error::InvalidSetting {
                        name: "idempotent_retry_policy retryable_status_codes",
                        ..
                    }
                )
            },
        ),
        (
            "a zero pool timeout",
            valid().timeout(Duration::ZERO),
            |e| {
                matches!(
                    e,
                    Error::InvalidSetting {
                        name: "timeout",
                        ..
                    }
                )
            },
        ),
        (
            "jitter above 1",
            valid().backoff(Backoff::new(second, 1.6, 1.5, second * 5)),
            |e| {
                matches!(
                    e,
                    Error::InvalidSetting {
                        name: "backoff jitter",
                        ..
                    }
                )
            },
        ),
    ];
    assert!(cases.len() >= 10);
    for (what, builder, check) in cases {
        match builder.build() {
            Ok(_) => panic!("{what}: accepted"),
            Err(error) => {
                assert!(check(&error), "{what}: unexpected error {error:?}");
                assert!(!error.to_string().is_empty());
            }
        }
    }
}

#[test]
fn errors_name_the_setting_and_value() {
    let error = valid().max_connections(0).build().unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid setting `max_connections` = 0: must be at least 1"
    );
}

#[test]
fn errors_about_two_settings_give_both_values() {
    let error = valid()
        .min_connections(10)
        .max_connections(4)
        .build()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid setting `min_connections` = 10: must not exceed max_connections = 4"
    );
    let backoff = pooled_client::Backoff::new(
        std::time::Duration::from_secs(2),
        1.6,
        0.2,
        std::time::Duration::from_secs(1),
    );
    let error = valid().backoff(backoff).build().unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid setting `backoff max` = 1s: must not be below backoff initial = 2s"
    );
}

#[test]
fn build_does_no_io_and_needs_no_runtime() {
    // Nothing listens there, and there is no tokio runtime here.
    let pool = valid().min_connections(2).build().unwrap();
    assert_eq!(pool.stats().connections, 0);
    assert_eq!(pool.stats().connecting, 0);
}
