//! The `grpc-timeout` request header, which the client must enforce itself.

use std::time::Duration;

use http::HeaderMap;
use http::header::HeaderName;

/// A ready-made name: looking up a `&str` would parse it on every call.
static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The timeout a request carries, if it carries a valid one.
///
/// The format is up to 8 digits followed by a unit: `H`, `M`, `S`, `m`
/// (milliseconds), `u` (microseconds) or `n` (nanoseconds).
pub(crate) fn from_headers(headers: &HeaderMap) -> Option<Duration> {
    parse(headers.get(&GRPC_TIMEOUT)?.as_bytes())
}

/// Sets the request's `grpc-timeout` to `timeout`, so that the server knows
/// the deadline the pool enforces: in the finest unit that fits the
/// header's eight digits.
pub(crate) fn set(headers: &mut HeaderMap, timeout: Duration) {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    let (amount, unit) = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ]
    .into_iter()
    .map(|(per, unit)| (nanos.div_ceil(per), unit))
    .find(|(amount, _)| *amount <= MAX)
    .unwrap_or((MAX, 'H'));
    if let Ok(value) = http::HeaderValue::from_str(&format!("{amount}{unit}")) {
        headers.insert(GRPC_TIMEOUT.clone(), value);
    }
}

fn parse(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::parse;
    use std::time::Duration;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse(b"2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse(b"3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse(b"10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse(b"250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse(b"99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(parse(b"5n"), Some(Duration::from_nanos(5)));
    }

    #[test]
    fn writes_the_finest_unit_that_fits() {
        let written = |timeout| {
            let mut headers = http::HeaderMap::new();
            super::set(&mut headers, timeout);
            headers["grpc-timeout"].to_str().unwrap().to_owned()
        };
        assert_eq!(written(Duration::from_millis(200)), "200000u");
        assert_eq!(written(Duration::from_secs(5)), "5000000u");
        assert_eq!(written(Duration::from_secs(500)), "500000m");
        assert_eq!(
            written(Duration::from_secs(86_400 * 365 * 10_000)),
            "87600000H"
        );
        assert_eq!(
            parse(written(Duration::from_millis(1234)).as_bytes()),
            Some(Duration::from_millis(1234))
        );
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in [
            &b""[..],
            b"S",
            b"10",
            b"123456789S",
            b"1.5S",
            b"10s",
            b"-1S",
        ] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
