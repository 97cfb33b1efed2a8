//! A TCP proxy for fault tests: it sits between the pool and a server on
//! loopback and can add latency, blackhole, reset and refuse connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// What the proxy does to traffic right now.
#[derive(Debug, Default)]
struct Faults {
    latency_ms: AtomicU64,
    refuse: AtomicBool,
}

/// One proxied connection; resetting it closes both sides with RST.
#[derive(Debug)]
struct Proxied {
    id: u64,
    reset: Arc<Notify>,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    faults: Faults,
    /// `true` while traffic is blackholed: sockets stay open, nothing moves.
    blackhole: watch::Sender<bool>,
    connections: Mutex<Vec<Proxied>>,
    accepted: AtomicU64,
}

/// A fault-injecting TCP proxy on a free loopback port.
#[derive(Debug)]
pub struct FaultProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Proxies connections to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            upstream,
            faults: Faults::default(),
            blackhole: watch::Sender::new(false),
            connections: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Self { addr, shared, task }
    }

    /// `http://addr`, for `Pool::builder().endpoint(..)`.
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Delays every chunk of bytes, both ways, by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.shared
            .faults
            .latency_ms
            .store(latency.as_millis() as u64, Ordering::SeqCst);
    }

    /// Stops (or resumes) forwarding anything, keeping every socket open.
    pub fn set_blackhole(&self, on: bool) {
        self.shared.blackhole.send_replace(on);
    }

    /// Resets new connections as soon as they are accepted.
    pub fn set_refuse(&self, on: bool) {
        self.shared.faults.refuse.store(on, Ordering::SeqCst);
    }

    /// Resets every open connection (RST both ways); returns how many.
    pub fn reset_all(&self) -> usize {
        let connections: Vec<Proxied> = std::mem::take(&mut *lock(&self.shared.connections));
        for connection in &connections {
            connection.reset.notify_waiters();
        }
        connections.len()
    }

    /// Resets one open connection chosen at random; returns whether there was one.
    pub fn reset_random(&self) -> bool {
        let chosen = {
            let mut connections = lock(&self.shared.connections);
            if connections.is_empty() {
                return false;
            }
            let index = fastrand::usize(0..connections.len());
            connections.swap_remove(index)
        };
        chosen.reset.notify_waiters();
        true
    }

    /// Connections open through the proxy.
    pub fn open_connections(&self) -> usize {
        lock(&self.shared.connections).len()
    }

    /// Connections accepted since the proxy started.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.reset_all();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Closes `stream` with RST instead of FIN.
fn abort_socket(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut next_id = 0;
    while let Ok((client, _)) = listener.accept().await {
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if shared.faults.refuse.load(Ordering::SeqCst) {
            abort_socket(&client);
            continue;
        }
        let Ok(server) = TcpStream::connect(shared.upstream).await else {
            abort_socket(&client);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        next_id += 1;
        let reset = Arc::new(Notify::new());
        lock(&shared.connections).push(Proxied {
            id: next_id,
            reset: reset.clone(),
        });
        tokio::spawn(proxy_connection(
            client,
            server,
            shared.clone(),
            reset,
            next_id,
        ));
    }
}

async fn proxy_connection(
    mut client: TcpStream,
    mut server: TcpStream,
    shared: Arc<Shared>,
    reset: Arc<Notify>,
    id: u64,
) {
    let reset_requested = reset.notified();
    tokio::pin!(reset_requested);
    reset_requested.as_mut().enable();
    let was_reset = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let both_ways = async {
            tokio::join!(
                pump(client_read, server_write, &shared),
                pump(server_read, client_write, &shared)
            )
        };
        tokio::select! {
            () = &mut reset_requested => true,
            _ = both_ways => false,
        }
    };
    if was_reset {
        abort_socket(&client);
        abort_socket(&server);
    }
    drop((client, server));
    lock(&shared.connections).retain(|c| c.id != id);
}

/// Copies `from` to `to`, honouring latency and blackhole.
async fn pump(mut from: ReadHalf<'_>, mut to: WriteHalf<'_>, shared: &Shared) {
    let mut blackhole = shared.blackhole.subscribe();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        while *blackhole.borrow_and_update() {
            if blackhole.changed().await.is_err() {
                return;
            }
        }
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        let latency = shared.faults.latency_ms.load(Ordering::SeqCst);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        // Bytes read just as a blackhole began are held until it ends.
        while *blackhole.borrow_and_update() {
            if blackhole.changed().await.is_err() {
                return;
            }
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
