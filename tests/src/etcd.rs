//! A real etcd server (Debian's `etcd-server`) on loopback ports with a
//! data directory of its own, for the discovery tests.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An etcd process; dropping it kills it and removes its data.
pub struct Etcd {
    child: Child,
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Etcd {
    /// Starts etcd, or says loudly why it cannot: `None` outside CI when the
    /// `etcd` binary is missing, a panic in CI (where `.ci/run` installs it).
    pub async fn start() -> Option<Self> {
        if Command::new("etcd").arg("--version").output().is_err() {
            let message = "etcd is not installed (Debian: apt-get install etcd-server)";
            if std::env::var_os("CI").is_some() {
                panic!("{message}: CI installs it, so this is a failure");
            }
            eprintln!("\n*** SKIPPED: {message} ***\n");
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "pooled-client-etcd-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let mut etcd = Self {
            child: Command::new("true").spawn().expect("true"),
            dir,
            client_port: free_port(),
            peer_port: free_port(),
        };
        etcd.launch().await;
        Some(etcd)
    }

    /// The client URL, such as `http://127.0.0.1:2379`.
    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Kills etcd and starts it again on the same ports and data.
    pub async fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.launch().await;
    }

    async fn launch(&mut self) {
        let client = self.uri();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        self.child = Command::new("etcd")
            .args(["--name", "test", "--data-dir"])
            .arg(&self.dir)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("test={peer}")])
            .args(["--logger", "zap", "--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        // Ready once it answers: a registration under a key of its own.
        let started = Instant::now();
        loop {
            let probe = pooled_client::etcd::register(
                [client.as_str()],
                "readiness",
                "probe",
                Duration::from_secs(5),
            )
            .await;
            if let Ok(registration) = probe {
                let _ = registration.deregister().await;
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "etcd did not answer within 20 s: {probe:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
