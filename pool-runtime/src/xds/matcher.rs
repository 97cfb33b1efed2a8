//! What a route matches (gRPC A28): the call's path (`prefix`, `path` or
//! `safe_regex`, case-sensitive unless it says otherwise), its headers,
//! and a `runtime_fraction` of the calls. Checked when the resource comes,
//! so that matching a call never fails.

use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
use regex::Regex;
use xds_client::Error as XdsError;

use super::nack::nack;

/// The most memory one regex of a route may take compiled: a control
/// plane's regex is untrusted input.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A route's conditions on a call.
#[derive(Debug, Clone)]
pub(crate) struct RouteMatcher {
    path: PathMatch,
    headers: Vec<HeaderMatch>,
    /// The share of the calls it takes, per million (gRPC A28's
    /// `runtime_fraction` default value).
    per_million: Option<u32>,
}

#[derive(Debug, Clone)]
enum PathMatch {
    Prefix {
        prefix: String,
        case_sensitive: bool,
    },
    Exact {
        path: String,
        case_sensitive: bool,
    },
    Regex(Regex),
}

/// One header condition, and whether it is inverted.
#[derive(Debug, Clone)]
struct HeaderMatch {
    name: String,
    rule: HeaderRule,
    invert: bool,
}

#[derive(Debug, Clone)]
enum HeaderRule {
    Text(TextMatch),
    Range { start: i64, end: i64 },
    Present(bool),
}

/// A string condition (Envoy's `StringMatcher`).
#[derive(Debug, Clone)]
enum TextMatch {
    Exact(String, bool),
    Prefix(String, bool),
    Suffix(String, bool),
    Contains(String, bool),
    Regex(Regex),
}

impl RouteMatcher {
    /// A route's `match`, checked; a NACK for a condition gRPC cannot
    /// read, `None` for a route gRPC passes over (one that matches query
    /// parameters, which gRPC calls do not have).
    pub(crate) fn check(matcher: &route::RouteMatch, at: &str) -> Result<Option<Self>, XdsError> {
        use route::route_match::PathSpecifier;
        if !matcher.query_parameters.is_empty() {
            return Ok(None);
        }
        let case_sensitive = matcher.case_sensitive.as_ref().is_none_or(|b| b.value);
        let path = match &matcher.path_specifier {
            Some(PathSpecifier::Prefix(prefix)) => PathMatch::Prefix {
                prefix: prefix.clone(),
                case_sensitive,
            },
            Some(PathSpecifier::Path(path)) => PathMatch::Exact {
                path: path.clone(),
                case_sensitive,
            },
            Some(PathSpecifier::SafeRegex(regex)) => {
                PathMatch::Regex(full_regex(&regex.regex, &format!("{at}.match.safe_regex"))?)
            }
            None => return Err(nack(format!("{at}.match.path_specifier"), "is missing")),
            Some(_) => {
                return Err(nack(
                    format!("{at}.match.path_specifier"),
                    "is not prefix, path or safe_regex, the ones gRPC reads",
                ));
            }
        };
        let headers = matcher
            .headers
            .iter()
            .enumerate()
            .map(|(h, header)| HeaderMatch::check(header, &format!("{at}.match.headers[{h}]")))
            .collect::<Result<_, _>>()?;
        let per_million = matcher
            .runtime_fraction
            .as_ref()
            .and_then(|f| f.default_value.as_ref())
            .map(per_million);
        Ok(Some(Self {
            path,
            headers,
            per_million,
        }))
    }

    /// Whether a call to `path` with `headers` takes this route.
    pub(crate) fn matches(&self, path: &str, headers: &http::HeaderMap) -> bool {
        let path_matches = match &self.path {
            PathMatch::Prefix {
                prefix,
                case_sensitive: true,
            } => path.starts_with(prefix.as_str()),
            PathMatch::Prefix { prefix, .. } => path
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix)),
            PathMatch::Exact {
                path: exact,
                case_sensitive: true,
            } => path == exact,
            PathMatch::Exact { path: exact, .. } => path.eq_ignore_ascii_case(exact),
            PathMatch::Regex(regex) => regex.is_match(path),
        };
        path_matches
            && self.headers.iter().all(|h| h.matches(headers))
            && self
                .per_million
                .is_none_or(|p| fastrand::u32(..1_000_000) < p)
    }
}

impl HeaderMatch {
    fn check(header: &route::HeaderMatcher, at: &str) -> Result<Self, XdsError> {
        use route::header_matcher::HeaderMatchSpecifier as Spec;
        #[allow(deprecated)]
        let rule = match &header.header_match_specifier {
            Some(Spec::ExactMatch(value)) => {
                HeaderRule::Text(TextMatch::Exact(value.clone(), false))
            }
            Some(Spec::PrefixMatch(value)) => {
                HeaderRule::Text(TextMatch::Prefix(value.clone(), false))
            }
            Some(Spec::SuffixMatch(value)) => {
                HeaderRule::Text(TextMatch::Suffix(value.clone(), false))
            }
            Some(Spec::ContainsMatch(value)) => {
                HeaderRule::Text(TextMatch::Contains(value.clone(), false))
            }
            Some(Spec::SafeRegexMatch(regex)) => HeaderRule::Text(TextMatch::Regex(full_regex(
                &regex.regex,
                &format!("{at}.safe_regex_match"),
            )?)),
            Some(Spec::RangeMatch(range)) => HeaderRule::Range {
                start: range.start,
                end: range.end,
            },
            Some(Spec::PresentMatch(present)) => HeaderRule::Present(*present),
            Some(Spec::StringMatch(string)) => {
                HeaderRule::Text(TextMatch::check(string, &format!("{at}.string_match"))?)
            }
            None => return Err(nack(format!("{at}.header_match_specifier"), "is missing")),
        };
        Ok(Self {
            name: header.name.to_ascii_lowercase(),
            rule,
            invert: header.invert_match,
        })
    }

    /// The header's values joined with `,` (gRPC A28); binary headers and
    /// gRPC's own are not matched, as gRPC's metadata does not hold them.
    fn matches(&self, headers: &http::HeaderMap) -> bool {
        let hidden = self.name.ends_with("-bin") || self.name.starts_with("grpc-");
        let mut values = headers
            .get_all(self.name.as_str())
            .iter()
            .filter(|_| !hidden)
            .filter_map(|v| v.to_str().ok());
        let value = values.next().map(|first| {
            values.fold(first.to_owned(), |mut joined, next| {
                joined.push(',');
                joined.push_str(next);
                joined
            })
        });
        let matched = match (&self.rule, value) {
            (HeaderRule::Present(present), value) => value.is_some() == *present,
            (_, None) => false,
            (HeaderRule::Text(text), Some(value)) => text.matches(&value),
            (HeaderRule::Range { start, end }, Some(value)) => {
                value.parse::<i64>().is_ok_and(|v| *start <= v && v < *end)
            }
        };
        matched != self.invert
    }
}

impl TextMatch {
    fn check(string: &matcher::StringMatcher, at: &str) -> Result<Self, XdsError> {
        use matcher::string_matcher::MatchPattern;
        let ignore_case = string.ignore_case;
        let lowered = |s: &str| {
            if ignore_case {
                s.to_ascii_lowercase()
            } else {
                s.to_owned()
            }
        };
        Ok(match &string.match_pattern {
            Some(MatchPattern::Exact(s)) => Self::Exact(lowered(s), ignore_case),
            Some(MatchPattern::Prefix(s)) => Self::Prefix(lowered(s), ignore_case),
            Some(MatchPattern::Suffix(s)) => Self::Suffix(lowered(s), ignore_case),
            Some(MatchPattern::Contains(s)) => Self::Contains(lowered(s), ignore_case),
            Some(MatchPattern::SafeRegex(regex)) => {
                Self::Regex(full_regex(&regex.regex, &format!("{at}.safe_regex"))?)
            }
            _ => {
                return Err(nack(
                    format!("{at}.match_pattern"),
                    "is missing or not one gRPC reads",
                ));
            }
        })
    }

    fn matches(&self, value: &str) -> bool {
        let text = |ignore_case: bool| {
            if ignore_case {
                std::borrow::Cow::Owned(value.to_ascii_lowercase())
            } else {
                std::borrow::Cow::Borrowed(value)
            }
        };
        match self {
            Self::Exact(s, i) => text(*i) == s.as_str(),
            Self::Prefix(s, i) => text(*i).starts_with(s.as_str()),
            Self::Suffix(s, i) => text(*i).ends_with(s.as_str()),
            Self::Contains(s, i) => text(*i).contains(s.as_str()),
            Self::Regex(regex) => regex.is_match(value),
        }
    }
}

/// A regex that must match the whole text (Envoy's `safe_regex`), its
/// compiled size bounded; a NACK when it does not compile within it.
fn full_regex(pattern: &str, at: &str) -> Result<Regex, XdsError> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| nack(format!("{at}.regex"), format!("does not compile: {e}")))
}

/// A fraction as calls per million (a route's `runtime_fraction`, an
/// assignment's `drop_overloads`).
pub(super) fn per_million(fraction: &FractionalPercent) -> u32 {
    use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
    let scale = match DenominatorType::try_from(fraction.denominator) {
        Ok(DenominatorType::Hundred) => 10_000,
        Ok(DenominatorType::TenThousand) => 100,
        _ => 1,
    };
    fraction.numerator.saturating_mul(scale).min(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use route::route_match::PathSpecifier;

    fn route_match(path: PathSpecifier, headers: Vec<route::HeaderMatcher>) -> route::RouteMatch {
        route::RouteMatch {
            path_specifier: Some(path),
            headers,
            ..Default::default()
        }
    }

    fn header(
        name: &str,
        spec: route::header_matcher::HeaderMatchSpecifier,
    ) -> route::HeaderMatcher {
        route::HeaderMatcher {
            name: name.to_owned(),
            header_match_specifier: Some(spec),
            ..Default::default()
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn paths_and_headers_match_as_grpc_matches_them() {
        use route::header_matcher::HeaderMatchSpecifier as Spec;
        let checked =
            |m: route::RouteMatch| RouteMatcher::check(&m, "r").expect("valid").expect("taken");
        let method = "/helloworld.Greeter/SayHello";
        let prefix = checked(route_match(
            PathSpecifier::Prefix("/helloworld.Greeter/".into()),
            vec![],
        ));
        assert!(prefix.matches(method, &headers(&[])));
        assert!(!prefix.matches("/other.Service/Call", &headers(&[])));

        let regex = checked(route_match(
            PathSpecifier::SafeRegex(matcher::RegexMatcher {
                regex: "/helloworld\\.Greeter/Say.*".into(),
                ..Default::default()
            }),
            vec![],
        ));
        assert!(regex.matches(method, &headers(&[])));
        // A whole-path match: a regex that matches a part does not.
        assert!(!regex.matches(&format!("/x{method}"), &headers(&[])));

        let by_header = checked(route_match(
            PathSpecifier::Prefix("/".into()),
            vec![
                header(
                    "x-tier",
                    Spec::StringMatch(matcher::StringMatcher {
                        match_pattern: Some(matcher::string_matcher::MatchPattern::Exact(
                            "Gold".into(),
                        )),
                        ignore_case: true,
                    }),
                ),
                header("x-canary", Spec::PresentMatch(false)),
            ],
        ));
        assert!(by_header.matches(method, &headers(&[("x-tier", "gold")])));
        assert!(!by_header.matches(method, &headers(&[("x-tier", "silver")])));
        assert!(!by_header.matches(method, &headers(&[("x-tier", "gold"), ("x-canary", "1")])));

        // Several values are joined with a comma; ranges read integers.
        let joined = checked(route_match(
            PathSpecifier::Prefix("/".into()),
            vec![header(
                "x-ids",
                Spec::StringMatch(matcher::StringMatcher {
                    match_pattern: Some(matcher::string_matcher::MatchPattern::Exact("1,2".into())),
                    ignore_case: false,
                }),
            )],
        ));
        assert!(joined.matches(method, &headers(&[("x-ids", "1"), ("x-ids", "2")])));
        let range = checked(route_match(
            PathSpecifier::Prefix("/".into()),
            vec![header(
                "x-n",
                Spec::RangeMatch(envoy_types::pb::envoy::r#type::v3::Int64Range {
                    start: 10,
                    end: 20,
                }),
            )],
        ));
        assert!(range.matches(method, &headers(&[("x-n", "19")])));
        assert!(!range.matches(method, &headers(&[("x-n", "20")])));
        assert!(!range.matches(method, &headers(&[("x-n", "ten")])));
    }

    #[test]
    fn a_runtime_fraction_takes_its_share_of_the_calls() {
        use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
        let quarter = route::RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix("/".into())),
            runtime_fraction: Some(RuntimeFractionalPercent {
                default_value: Some(FractionalPercent {
                    numerator: 25,
                    denominator: 0, // HUNDRED
                }),
                runtime_key: String::new(),
            }),
            ..Default::default()
        };
        let matcher = RouteMatcher::check(&quarter, "r")
            .expect("valid")
            .expect("taken");
        let taken = (0..40_000)
            .filter(|_| matcher.matches("/a/b", &headers(&[])))
            .count();
        // 40,000 draws: 0.01 is more than four standard deviations.
        let share = taken as f64 / 40_000.0;
        assert!((share - 0.25).abs() < 0.01, "{share}");
    }

    #[test]
    fn a_regex_that_does_not_compile_or_is_too_large_is_nacked() {
        let with_regex = |regex: &str| {
            route_match(
                PathSpecifier::SafeRegex(matcher::RegexMatcher {
                    regex: regex.into(),
                    ..Default::default()
                }),
                vec![],
            )
        };
        let error = RouteMatcher::check(&with_regex("(unclosed"), "r")
            .expect_err("a NACK")
            .to_string();
        assert!(
            error.contains("r.match.safe_regex.regex: does not compile"),
            "{error}"
        );
        // Untrusted input: a regex whose program would take gigabytes.
        let error = RouteMatcher::check(&with_regex("(\\w{1000}){1000}"), "r")
            .expect_err("a NACK")
            .to_string();
        assert!(error.contains("does not compile"), "{error}");
    }
}
