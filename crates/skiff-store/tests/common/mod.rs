//! Test fixtures: a store of each backend, and a real etcd process for the etcd one.

#![allow(dead_code)]

use std::future::Future;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use skiff_store::{EtcdOptions, SqliteOptions, Store};
use tempfile::TempDir;

/// Where Debian's `etcd-server` package puts the binary.
pub const ETCD_BINARY: &str = "/usr/bin/etcd";

/// Every async test body runs under this limit.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Memory,
    Sqlite,
    Etcd,
}

/// A store plus whatever must outlive it. Fields drop in order: the store first.
pub struct Fixture {
    pub store: Store,
    _dir: Option<TempDir>,
    _etcd: Option<EtcdProcess>,
}

impl Fixture {
    pub async fn new(backend: Backend) -> Fixture {
        match backend {
            Backend::Memory => Fixture {
                store: Store::memory(),
                _dir: None,
                _etcd: None,
            },
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("create temp dir");
                let store = Store::sqlite(&dir.path().join("store.db"), SqliteOptions::default())
                    .await
                    .expect("open sqlite store");
                Fixture {
                    store,
                    _dir: Some(dir),
                    _etcd: None,
                }
            }
            Backend::Etcd => {
                let etcd = EtcdProcess::start();
                let store = etcd.connect("/skiff-test/").await;
                Fixture {
                    store,
                    _dir: None,
                    _etcd: Some(etcd),
                }
            }
        }
    }
}

/// Runs one test case against a fresh store of `backend`, under [`TEST_TIMEOUT`].
pub async fn run<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    tokio::time::timeout(TEST_TIMEOUT, async {
        let fixture = Fixture::new(backend).await;
        case(fixture.store.clone()).await;
        drop(fixture);
    })
    .await
    .expect("test timed out");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// A single-member etcd on loopback with a temp data dir, killed (by PID) on drop.
pub struct EtcdProcess {
    child: Child,
    pub endpoint: String,
    dir: TempDir,
}

impl EtcdProcess {
    pub fn start() -> EtcdProcess {
        assert!(
            Path::new(ETCD_BINARY).exists(),
            "{ETCD_BINARY} is missing: install Debian's etcd-server package \
             (apt-get install -y etcd-server)"
        );
        let dir = tempfile::tempdir().expect("create etcd data dir");
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("create etcd log");
        let child = Command::new(ETCD_BINARY)
            .args(["--name", "skiff-test"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &endpoint])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("skiff-test={peer_url}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        EtcdProcess {
            child,
            endpoint,
            dir,
        }
    }

    /// Connects once etcd answers, retrying while it starts up.
    pub async fn connect(&self, prefix: &str) -> Store {
        let opts = EtcdOptions {
            prefix: prefix.to_string(),
            connect_timeout: Duration::from_secs(1),
        };
        let mut last_error = None;
        for _ in 0..100 {
            match Store::etcd(std::slice::from_ref(&self.endpoint), opts.clone()).await {
                Ok(store) => match store.current_revision().await {
                    Ok(_) => return store,
                    Err(error) => last_error = Some(error.to_string()),
                },
                Err(error) => last_error = Some(error.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
        panic!(
            "etcd at {} did not come up: {last_error:?}\n{log}",
            self.endpoint
        );
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
