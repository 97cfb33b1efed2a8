//! Re-resolving an endpoint's host name on an interval (feature `dns`), so
//! that the pool follows a service whose addresses change and spreads its
//! connections over every address.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::Stream;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::rdata::SRV;
use hickory_resolver::proto::rr::{RData, RecordType};

pub use crate::config::DnsConfig;
use crate::config::dns::DEFAULT_REFRESH;
use crate::conn::{Endpoint, default_port};
use crate::discovery::Announced;
use crate::discovery::{Change, Target};
use crate::error::{BoxError, Error};

/// The shortest refresh interval: one rule for both ways of setting it (the
/// builder method raises shorter ones to it, a configuration file that asks
/// for less is an error).
const MIN_REFRESH: Duration = Duration::from_millis(10);

/// A discovery source that resolves a URI's host name every
/// `refresh_interval` and makes each address an endpoint: new addresses are
/// added, vanished ones drained. Every connection still sends the host name
/// as its `:authority` and TLS server name.
///
/// A failed lookup keeps the addresses known before, so a DNS outage does not
/// empty the pool.
///
/// ```no_run
/// use std::time::Duration;
/// use pooled_client::dns::DnsDiscovery;
///
/// # fn demo() -> Result<(), pooled_client::Error> {
/// let pool = pooled_client::Pool::builder()
///     .discovery(
///         DnsDiscovery::new("http://greeter.internal:50051")?
///             .refresh_interval(Duration::from_secs(30))
///             .into_stream(),
///     )
///     .min_connections(3)
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DnsDiscovery {
    uri: String,
    scheme: String,
    host: String,
    port: u16,
    refresh_interval: Duration,
    nameservers: Vec<SocketAddr>,
    /// Whether `host` names SRV records rather than addresses.
    srv: bool,
}

impl DnsDiscovery {
    /// Resolves the host of `uri` (such as `http://greeter.internal:50051`)
    /// with the system's resolver settings, every 30 s.
    ///
    /// # Errors
    ///
    /// The endpoint errors of [`PoolBuilder::build`](crate::PoolBuilder::build),
    /// and [`Error::InvalidEndpoint`] when the host is an IP address.
    pub fn new(uri: impl Into<String>) -> Result<Self, Error> {
        let uri = uri.into();
        let endpoint = Endpoint::parse(&uri)?;
        let host = endpoint.authority.host().to_owned();
        if host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok()
        {
            return Err(Error::InvalidEndpoint {
                uri,
                reason: "its host is an IP address: there is no name to resolve",
            });
        }
        let port = endpoint
            .authority
            .port_u16()
            .or_else(|| default_port(&endpoint.scheme))
            .unwrap_or(80);
        Ok(Self {
            uri,
            scheme: endpoint.scheme.to_string(),
            host,
            port,
            refresh_interval: DEFAULT_REFRESH,
            nameservers: Vec::new(),
            srv: false,
        })
    }

    /// Resolves the SRV records of the host of `uri` (such as
    /// `http://_grpc._tcp.orders.internal`, as Kubernetes headless services
    /// and Consul publish them) every 30 s: each record's target and port is
    /// an endpoint, its target's addresses resolved as [`new`](Self::new)
    /// resolves a host. Only the records of the lowest priority are used, as
    /// RFC 2782 says; their weights are ignored (the pool balances by load).
    /// Each connection sends its target's name as `:authority`.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn srv(uri: impl Into<String>) -> Result<Self, Error> {
        let mut discovery = Self::new(uri)?;
        discovery.srv = true;
        Ok(discovery)
    }

    /// How often the name is resolved again, at least every 10 ms (shorter
    /// intervals are raised to it). Default: 30 s.
    #[must_use]
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval.max(MIN_REFRESH);
        self
    }

    /// Asks the DNS server at `address` (UDP, then TCP) instead of the
    /// system's; call it again to add more. Default: the system's servers.
    #[must_use]
    pub fn nameserver(mut self, address: SocketAddr) -> Self {
        self.nameservers.push(address);
        self
    }

    /// The stream of endpoint changes, for
    /// [`PoolBuilder::discovery`](crate::PoolBuilder::discovery).
    pub fn into_stream(
        self,
    ) -> impl Stream<Item = Result<Change<SocketAddr, Target>, BoxError>> + Send + 'static {
        let state = Resolving {
            discovery: self,
            resolver: None,
            known: Announced::new(),
            ready: VecDeque::new(),
            first: true,
        };
        crate::discovery::stream_of(state)
    }

    fn resolver(&self) -> Result<TokioResolver, BoxError> {
        let mut builder = if self.nameservers.is_empty() {
            TokioResolver::builder_tokio()?
        } else {
            let servers = self
                .nameservers
                .iter()
                .map(|address| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = address.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = address.port();
                    NameServerConfig::new(address.ip(), true, vec![udp, tcp])
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, Vec::new(), servers),
                TokioRuntimeProvider::default(),
            )
        };
        // Answers are not kept past the refresh, so each refresh sees changes.
        let options = builder.options_mut();
        options.positive_max_ttl = Some(self.refresh_interval);
        options.negative_max_ttl = Some(self.refresh_interval);
        Ok(builder.build()?)
    }
}

impl DnsConfig {
    /// The discovery source these settings describe.
    ///
    /// # Errors
    ///
    /// As [`DnsDiscovery::new`], and [`Error::InvalidSetting`] for a
    /// refresh interval under 10 ms.
    pub fn discovery(&self) -> Result<DnsDiscovery, Error> {
        if self.refresh_interval < MIN_REFRESH {
            return Err(Error::InvalidSetting {
                name: "dns refresh_interval",
                value: format!("{:?}", self.refresh_interval),
                reason: "must be at least 10ms".into(),
            });
        }
        let mut discovery =
            DnsDiscovery::new(self.uri.clone())?.refresh_interval(self.refresh_interval);
        for server in &self.nameservers {
            discovery = discovery.nameserver(*server);
        }
        Ok(discovery)
    }
}

/// The state of a DNS discovery stream between items.
struct Resolving {
    discovery: DnsDiscovery,
    resolver: Option<TokioResolver>,
    /// The addresses announced to the pool, with the URI each names.
    known: Announced<SocketAddr, String>,
    ready: VecDeque<Change<SocketAddr, Target>>,
    first: bool,
}

impl crate::discovery::Source for Resolving {
    type Item = Result<Change<SocketAddr, Target>, BoxError>;

    fn next(&mut self) -> impl std::future::Future<Output = Self::Item> + Send + '_ {
        self.next_change()
    }
}

impl Resolving {
    /// The next change, resolving again (after the interval) when none is
    /// left; a failed lookup is reported once per attempt.
    async fn next_change(&mut self) -> Result<Change<SocketAddr, Target>, BoxError> {
        loop {
            if let Some(change) = self.ready.pop_front() {
                return Ok(change);
            }
            if !std::mem::take(&mut self.first) {
                tokio::time::sleep(self.discovery.refresh_interval).await;
            }
            let addresses = self.lookup().await.map_err(|error| -> BoxError {
                format!("resolving {:?} failed: {error}", self.discovery.host).into()
            })?;
            self.diff(addresses);
        }
    }

    /// The addresses the name resolves to now, each with the URI its
    /// connections name.
    async fn lookup(&mut self) -> Result<BTreeMap<SocketAddr, String>, BoxError> {
        let resolver = match &self.resolver {
            Some(resolver) => resolver,
            None => self.resolver.insert(self.discovery.resolver()?),
        };
        let discovery = &self.discovery;
        let mut found = BTreeMap::new();
        if !discovery.srv {
            let answer = resolver.lookup_ip(discovery.host.as_str()).await?;
            for ip in answer.iter() {
                found.insert(SocketAddr::new(ip, discovery.port), discovery.uri.clone());
            }
            return Ok(found);
        }
        let records = resolver
            .lookup(discovery.host.as_str(), RecordType::SRV)
            .await?;
        let srv: Vec<&SRV> = records
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::SRV(srv) => Some(srv),
                _ => None,
            })
            .collect();
        // RFC 2782: only the lowest priority is used while it answers.
        let lowest = srv.iter().map(|s| s.priority).min();
        for record in srv.into_iter().filter(|s| Some(s.priority) == lowest) {
            let target = record.target.to_utf8();
            let target = target.trim_end_matches('.');
            let uri = format!("{}://{target}:{}", discovery.scheme, record.port);
            for ip in resolver.lookup_ip(target).await?.iter() {
                found.insert(SocketAddr::new(ip, record.port), uri.clone());
            }
        }
        Ok(found)
    }

    /// Queues insertions of new addresses, then removals of vanished ones
    /// (so that the pool can connect to the new before it drains the old).
    fn diff(&mut self, found: BTreeMap<SocketAddr, String>) {
        let (new, gone) = self.known.replace_all(found);
        if !new.is_empty() || !gone.is_empty() {
            tracing::debug!(host = %self.discovery.host, ?new, ?gone, "resolved new addresses");
        }
        for (address, uri) in new {
            let target = Target::new(uri).connect_to(address);
            self.ready.push_back(Change::Insert(address, target));
        }
        self.ready.extend(gone.into_iter().map(Change::Remove));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolving() -> Resolving {
        Resolving {
            discovery: DnsDiscovery::new("http://greeter.test:7").unwrap(),
            resolver: None,
            known: Announced::new(),
            ready: VecDeque::new(),
            first: true,
        }
    }

    fn addresses(last_octets: &[u8]) -> BTreeMap<SocketAddr, String> {
        last_octets
            .iter()
            .map(|o| {
                (
                    SocketAddr::from(([10, 0, 0, *o], 7)),
                    "http://greeter.test:7".to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn new_addresses_are_inserted_before_vanished_ones_are_removed() {
        let mut state = resolving();
        state.diff(addresses(&[1, 2]));
        state.ready.clear();
        state.diff(addresses(&[2, 3]));
        let changes: Vec<String> = state
            .ready
            .iter()
            .map(|change| match change {
                Change::Insert(address, target) => {
                    assert_eq!(target.uri(), "http://greeter.test:7");
                    assert_eq!(target.address(), Some(*address));
                    format!("insert {address}")
                }
                Change::Remove(address) => format!("remove {address}"),
            })
            .collect();
        assert_eq!(changes, ["insert 10.0.0.3:7", "remove 10.0.0.1:7"]);
        // The same answer again changes nothing.
        state.ready.clear();
        state.diff(addresses(&[2, 3]));
        assert!(state.ready.is_empty());
    }

    #[test]
    fn the_port_defaults_by_scheme() {
        assert_eq!(DnsDiscovery::new("http://h.test").unwrap().port, 80);
        assert_eq!(DnsDiscovery::new("http://h.test:9").unwrap().port, 9);
    }
}
