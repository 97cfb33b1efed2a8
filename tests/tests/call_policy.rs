//! Per-method call policy from gRPC's service config (gRPC A6): retries by
//! status with backoff and pushback, timeouts, wait-for-ready; found by the
//! call's path, so plain tonic clients over the pool get them too.

use std::time::{Duration, Instant};

use pooled_client::{Pool, ServiceConfig};
use pooled_client_tests::helloworld::greeter_client::GreeterClient;
use pooled_client_tests::helloworld::{HelloRequest, PooledGreeterClient};
use pooled_client_tests::scripted::ScriptedGreeter;
use pooled_client_tests::support::bounded;
use pooled_client_tests::support::hello;
use tonic::Code;

const LIMIT: Duration = Duration::from_secs(30);

/// A service config giving `SayHello` `policy` (the JSON of a method
/// config's fields besides its name).
fn config(policy: &str) -> ServiceConfig {
    ServiceConfig::from_json(&format!(
        r#"{{"methodConfig": [{{"name": [{{"service": "helloworld.Greeter", "method": "SayHello"}}], {policy}}}]}}"#
    ))
    .unwrap()
}

const RETRY_4: &str = r#""retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.01s", "maxBackoff": "0.05s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}"#;

async fn pool_with(uri: String, config: ServiceConfig) -> Pool {
    let pool = Pool::builder()
        .endpoint(uri)
        .service_config(config)
        .build()
        .unwrap();
    pool.ready().await.unwrap();
    pool
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_policy_retries_its_codes_up_to_max_attempts() {
    bounded(LIMIT, async {
        let server = ScriptedGreeter::default();
        let pool = pool_with(server.serve().await, config(RETRY_4)).await;
        let greeter = PooledGreeterClient::new(pool.clone());

        // UNAVAILABLE three times, then OK: four attempts, and it succeeds.
        let reply = greeter.say_hello(hello("three/3/14", 0)).await.unwrap();
        assert_eq!(reply.into_inner().message, "Hello three after 4 attempts");
        assert_eq!(server.attempts("three"), 4);

        // Five failures: it fails after exactly four attempts.
        let status = greeter.say_hello(hello("five/5/14", 0)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(status.message(), "scripted failure 4");
        assert_eq!(server.attempts("five"), 4);

        // INVALID_ARGUMENT is not in the list: never retried.
        let status = greeter
            .say_hello(hello("invalid/1/3", 0))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(server.attempts("invalid"), 1);

        // A plain tonic client over the pool gets the same policy.
        let mut plain = GreeterClient::new(pool.clone());
        plain.say_hello(hello("plain/2/14", 0)).await.unwrap();
        assert_eq!(server.attempts("plain"), 3);
        assert_eq!(pool.stats().in_flight, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_policy_nothing_sent_is_sent_again() {
    bounded(LIMIT, async {
        let server = ScriptedGreeter::default();
        // The policy names another method.
        let other = ServiceConfig::from_json(&format!(
            r#"{{"methodConfig": [{{"name": [{{"service": "helloworld.Greeter", "method": "Chat"}}], {RETRY_4}}}]}}"#
        ))
        .unwrap();
        let pool = pool_with(server.serve().await, other).await;
        let greeter = PooledGreeterClient::new(pool);
        let status = greeter.say_hello(hello("once/1/14", 0)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(server.attempts("once"), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_pushback_sets_the_delay_or_stops_retries() {
    bounded(LIMIT, async {
        let server = ScriptedGreeter::default();
        let pool = pool_with(server.serve().await, config(RETRY_4)).await;
        let greeter = PooledGreeterClient::new(pool);

        greeter
            .say_hello(hello("pushed/1/14/300", 0))
            .await
            .unwrap();
        let arrivals = server.arrivals_of("pushed");
        assert_eq!(arrivals.len(), 2);
        let gap = arrivals[1] - arrivals[0];
        println!("pushback of 300 ms: the second attempt came {gap:?} after the first");
        // At least the pushback (the policy's own backoff is at most 10 ms),
        // and not a backoff of seconds.
        assert!(gap >= Duration::from_millis(300), "{gap:?}");
        assert!(gap < Duration::from_secs(2), "{gap:?}");

        let status = greeter
            .say_hello(hello("stop/1/14/-1", 0))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(
            server.attempts("stop"),
            1,
            "a negative pushback stops retries"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_timeout_applies_and_a_shorter_deadline_wins() {
    bounded(LIMIT, async {
        let server = ScriptedGreeter::default();
        let pool = pool_with(server.serve().await, config(r#""timeout": "0.2s""#)).await;
        let greeter = PooledGreeterClient::new(pool.clone());
        let started = Instant::now();
        let status = greeter.say_hello(hello("slow", 1000)).await.unwrap_err();
        let took = started.elapsed();
        println!("a 0.2 s method timeout on a 1 s handler: {status:?} after {took:?}");
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_millis(900), "{took:?}");

        let hurried = greeter.clone().with_timeout(Duration::from_millis(50));
        let status = hurried.say_hello(hello("slow", 1000)).await.unwrap_err();
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert!(status.message().contains("50ms"), "{status:?}");
    })
    .await;
}

/// A loopback port with nothing listening, for a server that starts later.
async fn free_port() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_ready_waits_for_a_server_that_starts_late() {
    bounded(LIMIT, async {
        let addr = free_port().await;
        let pool = Pool::builder()
            .endpoint(format!("http://{addr}"))
            .service_config(config(r#""waitForReady": true"#))
            .backoff(pooled_client::Backoff::new(
                Duration::from_millis(100),
                1.6,
                0.2,
                Duration::from_millis(200),
            ))
            .build()
            .unwrap();
        let greeter = PooledGreeterClient::new(pool.clone());
        let call = tokio::spawn(async move { greeter.say_hello(hello("late", 0)).await });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!call.is_finished(), "the call waits for ready");
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let router = tonic::transport::Server::builder().add_service(
            pooled_client_tests::helloworld::greeter_server::GreeterServer::new(
                ScriptedGreeter::default(),
            ),
        );
        tokio::spawn(
            router.serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let reply = call
            .await
            .unwrap()
            .expect("the call went through once the server was up");
        assert_eq!(reply.into_inner().message, "Hello late after 1 attempts");

        // Without waitForReady, the same situation fails fast.
        let addr = free_port().await;
        let pool = Pool::builder()
            .endpoint(format!("http://{addr}"))
            .build()
            .unwrap();
        let _ = pool.ready().await;
        let started = Instant::now();
        let status = PooledGreeterClient::new(pool)
            .say_hello(hello("late", 0))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_throttling_stops_retries_when_most_calls_fail() {
    bounded(LIMIT, async {
        let server = ScriptedGreeter::default();
        let config = ServiceConfig::from_json(&format!(
            r#"{{"methodConfig": [{{"name": [{{"service": "helloworld.Greeter"}}], {RETRY_4}}}],
                "retryThrottling": {{"maxTokens": 10, "tokenRatio": 0.1}}}}"#
        ))
        .unwrap();
        let pool = pool_with(server.serve().await, config).await;
        let greeter = PooledGreeterClient::new(pool.clone());
        const CALLS: usize = 1000;
        for _ in 0..CALLS {
            let status = greeter
                .say_hello(hello("doomed/1000000/14", 0))
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::Unavailable);
        }
        let attempts = server.attempts("doomed");
        let stats = pool.stats();
        println!(
            "{CALLS} calls failing UNAVAILABLE, maxAttempts 4, maxTokens 10: {attempts} attempts, {} retries, {} held back",
            stats.retries_total, stats.retries_throttled_total
        );
        assert!(attempts < CALLS * 11 / 10, "{attempts} attempts");
        assert!(attempts > CALLS, "the first calls were retried: {attempts}");
        assert_eq!(stats.retries_total as usize, attempts - CALLS);
        assert!(stats.retries_throttled_total > 900, "{stats:?}");
    })
    .await;
}

/// The `authorization` and `x-pool` headers of every call, in order.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// Records the `authorization` and `x-pool` headers of every call.
fn header_recorder() -> (Seen, impl tonic::service::Interceptor + Clone) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorder = seen.clone();
    let check = move |request: tonic::Request<()>| {
        let header = |name| {
            request
                .metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        recorder
            .lock()
            .unwrap()
            .push((header("authorization"), header("x-pool")));
        Ok(request)
    };
    (seen, check)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interceptors_of_the_client_and_the_pool_reach_the_server() {
    use futures_util::StreamExt;
    use pooled_client_tests::helloworld::greeter_server::GreeterServer;
    use pooled_client_tests::server::{GreeterService, serve_router};
    bounded(LIMIT, async {
        let (seen, check) = header_recorder();
        let router = tonic::transport::Server::builder()
            .add_service(GreeterServer::with_interceptor(GreeterService, check));
        let uri = serve_router(router).await;
        let pool = Pool::builder()
            .endpoint(uri)
            .interceptor(|mut request: tonic::Request<()>| {
                request
                    .metadata_mut()
                    .insert("x-pool", "yes".parse().unwrap());
                Ok(request)
            })
            .build()
            .unwrap();
        let greeter = PooledGreeterClient::new(pool.clone()).with_interceptor(
            |mut request: tonic::Request<()>| {
                request
                    .metadata_mut()
                    .insert("authorization", "Bearer secret".parse().unwrap());
                Ok(request)
            },
        );
        greeter.clone().say_hello(hello("unary", 0)).await.unwrap();
        let mut replies = greeter
            .say_hello_stream(HelloRequest {
                name: "stream".into(),
                delay_ms: 0,
                count: 2,
            })
            .await
            .unwrap()
            .into_inner();
        while replies.next().await.is_some() {}
        let uploads = tokio_stream::iter(vec![hello("a", 0), hello("b", 0)]);
        greeter.collect_hellos(uploads).await.unwrap();
        // A plain tonic client over the pool gets the pool's only.
        GreeterClient::new(pool.clone())
            .say_hello(hello("plain", 0))
            .await
            .unwrap();
        let seen = seen.lock().unwrap().clone();
        let both = ("Bearer secret".to_owned(), "yes".to_owned());
        assert_eq!(
            seen,
            vec![
                both.clone(),
                both.clone(),
                both,
                (String::new(), "yes".to_owned())
            ]
        );

        // An interceptor's error ends the call with its status, unsent.
        let refused = PooledGreeterClient::new(pool).with_interceptor(|_: tonic::Request<()>| {
            Err(tonic::Status::unauthenticated("no token"))
        });
        let status = refused.say_hello(hello("refused", 0)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pools_timeout_applies_to_calls_without_a_deadline() {
    bounded(LIMIT, async {
        let server = ScriptedGreeter::default();
        let pool = Pool::builder()
            .endpoint(server.serve().await)
            .timeout(Duration::from_millis(150))
            .build()
            .unwrap();
        let mut plain = GreeterClient::new(pool.clone());
        let status = plain.say_hello(hello("slow", 1000)).await.unwrap_err();
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
        assert!(status.message().contains("150ms"), "{status:?}");
        // A longer deadline of the call's own wins over the pool's.
        let patient = PooledGreeterClient::new(pool).with_timeout(Duration::from_secs(5));
        patient.say_hello(hello("patient", 300)).await.unwrap();
    })
    .await;
}

/// The double order: a server dies after taking an order. `PlaceOrder`
/// (here `SayHello`, declared nothing) must not be sent again: it fails.
/// `GetOrder` (here `SayHelloAgain`, declared `IDEMPOTENT` in the proto)
/// is sent again to the other server and succeeds. One pool, no setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_methods_declared_idempotent_are_sent_twice() {
    use pooled_client_tests::proxy::FaultProxy;
    bounded(LIMIT, async {
        let server = ScriptedGreeter::default();
        let (a, b) = (server.serve().await, server.serve().await);
        let addr = |uri: &str| uri.trim_start_matches("http://").parse().unwrap();
        let proxies = [
            FaultProxy::start(addr(&a)).await,
            FaultProxy::start(addr(&b)).await,
        ];
        let pool = Pool::builder()
            .endpoint(proxies[0].uri())
            .endpoint(proxies[1].uri())
            .build()
            .unwrap();
        pool.ready().await.unwrap();
        let greeter = PooledGreeterClient::new(pool.clone());
        for round in 0..3 {
            let (place, get) = (format!("place{round}"), format!("get{round}"));
            let placing = {
                let greeter = greeter.clone();
                let place = place.clone();
                tokio::spawn(async move { greeter.say_hello(hello(&place, 300)).await })
            };
            let getting = {
                let greeter = greeter.clone();
                let get = get.clone();
                tokio::spawn(async move { greeter.say_hello_again(hello(&get, 300)).await })
            };
            // Both reached a server, which is now working on them: it dies.
            while server.attempts(&place) == 0 || server.attempts(&get) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            for proxy in &proxies {
                proxy.reset_all();
            }
            let placed = placing.await.unwrap();
            assert_eq!(
                placed.map(|_| ()).unwrap_err().code(),
                Code::Unavailable,
                "the order's fate is the caller's to decide"
            );
            assert_eq!(server.attempts(&place), 1, "PlaceOrder was sent once");
            let got = getting.await.unwrap();
            assert!(got.is_ok(), "GetOrder was sent again: {got:?}");
            assert_eq!(server.attempts(&get), 2);
        }
        let stats = pool.stats();
        println!("{stats:?}");
        assert_eq!(stats.retries_total, 3);
    })
    .await;
}

/// A scripted greeter on two ports and a pool over both that hedges
/// `SayHello` with `max_attempts` copies `delay` apart.
async fn hedging_over_two_servers(max_attempts: u32, delay: &str) -> (ScriptedGreeter, Pool) {
    let server = ScriptedGreeter::default();
    let (a, b) = (server.serve().await, server.serve().await);
    let hedging = config(&format!(
        r#""hedgingPolicy": {{"maxAttempts": {max_attempts}, "hedgingDelay": "{delay}", "nonFatalStatusCodes": ["UNAVAILABLE"]}}"#
    ));
    let pool = Pool::builder()
        .endpoint(a)
        .endpoint(b)
        .service_config(hedging)
        .build()
        .unwrap();
    pool.ready().await.unwrap();
    (server, pool)
}

/// A copy that lost a hedge race keeps counting on its server for twice as
/// long as it had run: least request then keeps calls off a server that
/// stalls, as it does when stalled calls stay in flight (unhedged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_lost_a_hedge_race_takes_no_calls_for_a_while() {
    bounded(LIMIT, async {
        let (server, pool) = hedging_over_two_servers(2, "0.5s").await;
        let greeter = PooledGreeterClient::new(pool.clone());
        greeter.say_hello(hello("first/stall", 5000)).await.unwrap();
        let ports = server.ports_of("first");
        assert_eq!(ports.len(), 2, "the call was hedged: {ports:?}");
        let (stalled, other) = (ports[0], ports[1]);
        // Both servers are idle and unmeasured (fewer than ten calls each),
        // so only the lost copy, still counted on its server for about
        // 1 s, tells them apart: without it, each call would go to either
        // at random.
        for i in 0..10 {
            greeter
                .say_hello(hello(&format!("next{i}"), 0))
                .await
                .unwrap();
            assert_eq!(
                server.ports_of(&format!("next{i}")),
                [other],
                "call {i} went to the server that lost the race"
            );
        }
        // And it ends: the server takes calls again.
        let mut call = 0;
        while server.ports_of(&format!("later{call}")) != [stalled] {
            call += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            greeter
                .say_hello(hello(&format!("later{call}"), 0))
                .await
                .unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedging_answers_from_a_second_copy_on_another_server_and_cancels_the_first() {
    bounded(LIMIT, async {
        let (server, pool) = hedging_over_two_servers(3, "0.05s").await;
        let greeter = PooledGreeterClient::new(pool.clone());
        for round in 0..5 {
            let key = format!("hedged{round}");
            let started = Instant::now();
            let reply = greeter
                .say_hello(hello(&format!("{key}/stall"), 1000))
                .await
                .unwrap();
            let took = started.elapsed();
            println!("hedged call {round}: {took:?}, {:?}", reply.get_ref().message);
            assert_eq!(reply.into_inner().message, format!("Hello {key} from attempt 2"));
            assert!(took < Duration::from_millis(500), "answered by the hedge: {took:?}");
            let ports = server.ports_of(&key);
            assert_eq!(ports.len(), 2, "one hedge was enough: {ports:?}");
            assert_ne!(ports[0], ports[1], "the hedge went to the other server");
        }
        // The stalled first copies were cancelled on the server.
        let started = Instant::now();
        while server.cancelled().len() < 5 && started.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let cancelled = server.cancelled();
        assert_eq!(cancelled.len(), 5, "{cancelled:?}");
        assert_eq!(pool.stats().hedges_total, 5);

        // A non-fatal failure sends the next copy at once (with a delay of
        // 10 s between copies, waiting for it would show); a fatal one ends
        // the call.
        let patient = config(
            r#""hedgingPolicy": {"maxAttempts": 3, "hedgingDelay": "10s", "nonFatalStatusCodes": ["UNAVAILABLE"]}"#,
        );
        let pool = pool_with(server.serve().await, patient).await;
        let greeter = PooledGreeterClient::new(pool);
        let started = Instant::now();
        greeter.say_hello(hello("nonfatal/1/14", 0)).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(server.attempts("nonfatal"), 2);
        let status = greeter.say_hello(hello("fatal/1/3", 0)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(server.attempts("fatal"), 1);
    })
    .await;
}

/// A hedged call's copies are held to the generated client's
/// `max_decoding_message_size` as an unhedged call is: the pool ends the
/// response at the message's length prefix, with the limit in its status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hedged_calls_copies_keep_the_clients_decoding_limit() {
    bounded(LIMIT, async {
        let (server, pool) = hedging_over_two_servers(2, "10s").await;
        let greeter = PooledGreeterClient::new(pool).max_decoding_message_size(64);
        let large = "z".repeat(100);
        let status = greeter.say_hello(hello(&large, 0)).await.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(
            status.message().contains("above the limit of 64 bytes"),
            "the pool's limit, not only tonic's decoder, ended it: {status:?}"
        );
        assert_eq!(server.attempts(&large), 1, "no hedge went out");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_above_the_methods_limits_fail_with_resource_exhausted() {
    bounded(LIMIT, async {
        let server = ScriptedGreeter::default();
        let limits = config(r#""maxRequestMessageBytes": 100, "maxResponseMessageBytes": 110"#);
        let pool = pool_with(server.serve().await, limits).await;
        let greeter = PooledGreeterClient::new(pool.clone());
        // Small both ways: fine.
        greeter.say_hello(hello("small", 0)).await.unwrap();

        // A request message of about 200 bytes never reaches the handler.
        let large = "x".repeat(200);
        let status = greeter.say_hello(hello(&large, 0)).await.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(status.message().contains("request message"), "{status:?}");
        assert_eq!(server.attempts(&large), 0);

        // A request within its limit (about 95 bytes) whose reply (about
        // 115 bytes) is above its own.
        let echoed = "y".repeat(90);
        let status = greeter.say_hello(hello(&echoed, 0)).await.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(status.message().contains("response message"), "{status:?}");
        assert_eq!(server.attempts(&echoed), 1);
        assert!(
            pooled_client_tests::support::wait_for_stats(&pool, Duration::from_secs(5), |s| s
                .in_flight
                == 0)
            .await,
            "the slots came back"
        );
    })
    .await;
}

/// The first copy of a hedged call is picked as any call is: calls of a
/// hedged method to idle servers spread over them, not all to the
/// first listed (which a scan for the lightest, ties to the first, did).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_of_a_hedged_method_spread_over_idle_servers() {
    bounded(LIMIT, async {
        let (server, pool) = hedging_over_two_servers(2, "5s").await;
        let greeter = PooledGreeterClient::new(pool.clone());
        let mut by_port: std::collections::HashMap<u16, usize> = Default::default();
        for i in 0..200 {
            let name = format!("spread{i}");
            greeter.say_hello(hello(&name, 0)).await.unwrap();
            for port in server.ports_of(&name) {
                *by_port.entry(port).or_default() += 1;
            }
        }
        // Two idle servers: each about half (200 calls, 0.2 is more than
        // eight standard deviations below).
        assert_eq!(by_port.len(), 2, "{by_port:?}");
        assert!(by_port.values().all(|n| *n > 40), "{by_port:?}");
    })
    .await;
}
