//! DNS re-resolution (feature `dns`): a host name whose addresses change is
//! followed, and connections spread over every address. A DNS server on
//! loopback gives the answers; greeter servers listen on several loopback
//! addresses with one port.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use pooled_client::Pool;
use pooled_client::dns::DnsDiscovery;
use pooled_client_tests::dns::FakeDns;
use pooled_client_tests::helloworld::PooledGreeterClient;
use pooled_client_tests::server::{ServerOptions, TestServer};
use pooled_client_tests::support::{bounded, concurrent_headers, endpoint_names, wait_for_stats};
use tokio::net::TcpListener;

const IPS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(127, 0, 0, 1),
    Ipv4Addr::new(127, 0, 0, 2),
    Ipv4Addr::new(127, 0, 0, 3),
];

/// Greeter servers on 127.0.0.1, .2 and .3, all on one port.
async fn servers_on_one_port() -> (u16, Vec<TestServer>) {
    for _ in 0..20 {
        let first = TcpListener::bind((IPS[0], 0)).await.unwrap();
        let port = first.local_addr().unwrap().port();
        let mut listeners = vec![first];
        for ip in &IPS[1..] {
            if let Ok(listener) = TcpListener::bind((*ip, port)).await {
                listeners.push(listener);
            }
        }
        if listeners.len() == IPS.len() {
            let servers = listeners
                .into_iter()
                .map(|l| TestServer::serve(l, ServerOptions::default()))
                .collect();
            return (port, servers);
        }
    }
    panic!("no port free on all three loopback addresses");
}

/// The server addresses that answered `calls` concurrent slow calls.
async fn server_ips(greeter: &PooledGreeterClient, calls: usize) -> HashSet<String> {
    concurrent_headers(greeter, calls, 20, None, "server-ip")
        .await
        .into_iter()
        .collect()
}

fn ips(list: &[&str]) -> HashSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_follows_a_name_whose_addresses_change() {
    bounded(Duration::from_secs(30), async {
        let (port, _servers) = servers_on_one_port().await;
        let dns = FakeDns::start(&IPS[..2]).await;
        let uri = format!("http://greeter.test:{port}");
        let pool = Pool::builder()
            .discovery(
                DnsDiscovery::new(&uri)
                    .unwrap()
                    .nameserver(dns.addr)
                    .refresh_interval(Duration::from_millis(100))
                    .into_stream(),
            )
            .min_connections(2)
            .build()
            .unwrap();
        let greeter = PooledGreeterClient::new(pool.clone());
        let at = |ip: Ipv4Addr| format!("{uri} at {}", SocketAddr::from((ip, port)));

        // Both addresses become endpoints, with a connection each.
        assert!(
            wait_for_stats(&pool, Duration::from_secs(5), |s| s.endpoints == 2
                && s.connections == 2)
            .await,
            "{:?} {:?}",
            pool.stats(),
            endpoint_names(&pool)
        );
        assert_eq!(endpoint_names(&pool), vec![at(IPS[0]), at(IPS[1])]);
        assert_eq!(
            server_ips(&greeter, 16).await,
            ips(&["127.0.0.1", "127.0.0.2"])
        );

        // The name moves to .2 and .3: .1 drains, .3 takes a connection.
        dns.set(&IPS[1..]);
        let changed = std::time::Instant::now();
        assert!(
            wait_for_stats(&pool, Duration::from_secs(5), |s| s.connections == 2
                && s.draining == 0
                && endpoint_names(&pool) == vec![at(IPS[1]), at(IPS[2])])
            .await,
            "{:?} {:?}",
            pool.stats(),
            endpoint_names(&pool)
        );
        println!(
            "followed the new answer {:?} after it changed (refresh every 100 ms)",
            changed.elapsed()
        );
        let mut seen = HashSet::new();
        for _ in 0..10 {
            seen.extend(server_ips(&greeter, 16).await);
            if seen.len() == 2 {
                break;
            }
        }
        assert_eq!(seen, ips(&["127.0.0.2", "127.0.0.3"]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_lookup_keeps_the_known_addresses() {
    bounded(Duration::from_secs(30), async {
        let (port, _servers) = servers_on_one_port().await;
        let dns = FakeDns::start(&IPS[..1]).await;
        let pool = Pool::builder()
            .discovery(
                DnsDiscovery::new(format!("http://greeter.test:{port}"))
                    .unwrap()
                    .nameserver(dns.addr)
                    .refresh_interval(Duration::from_millis(50))
                    .into_stream(),
            )
            .build()
            .unwrap();
        let greeter = PooledGreeterClient::new(pool.clone());
        assert_eq!(server_ips(&greeter, 2).await, ips(&["127.0.0.1"]));
        // The DNS server goes away: lookups fail, the endpoint stays.
        drop(dns);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(pool.stats().endpoints, 1);
        assert_eq!(server_ips(&greeter, 2).await, ips(&["127.0.0.1"]));
    })
    .await;
}

#[test]
fn ip_addresses_and_bad_uris_are_refused() {
    assert!(DnsDiscovery::new("http://127.0.0.1:50051").is_err());
    assert!(DnsDiscovery::new("http://[::1]:50051").is_err());
    assert!(DnsDiscovery::new("greeter.test:50051").is_err());
    assert!(DnsDiscovery::new("http://greeter.test:50051").is_ok());
}

/// SRV records (`dns:///_grpc._tcp...` style, as Kubernetes headless
/// services and Consul publish them): two ports on 127.0.0.1 and one on
/// 127.0.0.2, and a backup of lower priority that is not used; a changed
/// answer is followed at the next refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_records_give_host_and_port_and_changes_are_followed() {
    bounded(Duration::from_secs(30), async {
        let a1 = TestServer::start(ServerOptions::default()).await;
        let a2 = TestServer::start(ServerOptions::default()).await;
        let b = TestServer::serve(
            TcpListener::bind((IPS[1], 0)).await.unwrap(),
            ServerOptions::default(),
        );
        let backup = TcpListener::bind((IPS[0], 0)).await.unwrap();
        let backup_port = backup.local_addr().unwrap().port();
        let dns = FakeDns::start(&[]).await;
        dns.host("a.test", &[IPS[0]]);
        dns.host("b.test", &[IPS[1]]);
        let (p1, p2, pb) = (a1.addr.port(), a2.addr.port(), b.addr.port());
        dns.set_srv(&[
            (10, 5, p1, "a.test."),
            (10, 5, p2, "a.test."),
            (10, 5, pb, "b.test."),
            (20, 1, backup_port, "a.test."),
        ]);
        let refresh = Duration::from_millis(100);
        let discovery = DnsDiscovery::srv("http://_grpc._tcp.greeter.test")
            .unwrap()
            .nameserver(dns.addr)
            .refresh_interval(refresh);
        let pool = Pool::builder()
            .discovery(discovery.into_stream())
            .build()
            .unwrap();
        let expected = |ports: &[(&str, u16, Ipv4Addr)]| -> HashSet<String> {
            ports
                .iter()
                .map(|(host, port, ip)| format!("http://{host}:{port} at {ip}:{port}"))
                .collect()
        };
        let all = expected(&[
            ("a.test", p1, IPS[0]),
            ("a.test", p2, IPS[0]),
            ("b.test", pb, IPS[1]),
        ]);
        assert!(
            wait_for_stats(&pool, Duration::from_secs(5), |s| s.connections == 3).await,
            "{:?}",
            endpoint_names(&pool)
        );
        let endpoints: HashSet<String> = endpoint_names(&pool).into_iter().collect();
        assert_eq!(
            endpoints, all,
            "the lowest priority only, each with its port"
        );

        // One record goes: followed at the next refresh.
        dns.set_srv(&[(10, 5, p1, "a.test."), (10, 5, pb, "b.test.")]);
        let changed = std::time::Instant::now();
        let two = expected(&[("a.test", p1, IPS[0]), ("b.test", pb, IPS[1])]);
        while endpoint_names(&pool).into_iter().collect::<HashSet<_>>() != two {
            assert!(
                changed.elapsed() < Duration::from_secs(5),
                "{:?}",
                endpoint_names(&pool)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        println!(
            "an SRV change was followed {:?} after it was made (refresh {refresh:?})",
            changed.elapsed()
        );
        drop(backup);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builders_dns_setting_finds_the_endpoints() {
    bounded(Duration::from_secs(30), async {
        let (port, _servers) = servers_on_one_port().await;
        let dns = FakeDns::start(&IPS[..2]).await;
        let uri = format!("http://greeter.test:{port}");
        let mut settings = pooled_client::dns::DnsConfig::new(&uri);
        settings.nameservers = vec![dns.addr];
        settings.refresh_interval = Duration::from_millis(100);
        let pool = Pool::builder().dns(settings).build().unwrap();
        assert_eq!(
            pool.config().dns.as_ref().map(|d| d.uri.as_str()),
            Some(uri.as_str())
        );
        assert!(
            wait_for_stats(&pool, Duration::from_secs(5), |s| s.endpoints == 2
                && s.connections == 2)
            .await,
            "{:?} {:?}",
            pool.stats(),
            endpoint_names(&pool)
        );
        let greeter = PooledGreeterClient::new(pool.clone());
        assert_eq!(
            server_ips(&greeter, 16).await,
            ips(&["127.0.0.1", "127.0.0.2"])
        );
    })
    .await;
}
