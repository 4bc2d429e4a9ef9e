//! Dev-only helpers: a real `skiff server` on a temp dir, and the real peers (kubectl, helm, Python) to drive it.

mod agent;

pub use agent::{Agent, wait_for};

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where `scripts/install-peers.sh` put the peers.
pub fn peers_dir() -> PathBuf {
    std::env::var_os("SKIFF_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/skiff-peers"))
}

/// A peer binary by its env var (e.g. `SKIFF_KUBECTL_135`) or its file under `peers_dir()/bin`.
/// Panics with the install command when it is missing: tests must not pass without their peer.
pub fn peer(env: &str, file: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env)
        .map(PathBuf::from)
        .filter(|p| p.exists())
    {
        return p;
    }
    let p = peers_dir().join("bin").join(file);
    assert!(
        p.exists(),
        "{file} is missing: run scripts/install-peers.sh (looked for ${env} and {})",
        p.display()
    );
    p
}

pub fn kubectl_120() -> PathBuf {
    peer("SKIFF_KUBECTL_120", "kubectl-1.20")
}
pub fn kubectl_135() -> PathBuf {
    peer("SKIFF_KUBECTL_135", "kubectl-1.35")
}
pub fn helm_3() -> PathBuf {
    peer("SKIFF_HELM_3", "helm-3")
}
pub fn helm_4() -> PathBuf {
    peer("SKIFF_HELM_4", "helm-4")
}
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SKIFF_PYTHON")
        .map(PathBuf::from)
        .filter(|p| p.exists())
    {
        return p;
    }
    let p = peers_dir().join("venv/bin/python");
    assert!(
        p.exists(),
        "the test venv is missing: run scripts/install-peers.sh"
    );
    p
}

/// A `skiff server --no-agent` process on a temp data dir and a free loopback port; killed on drop.
pub struct TestServer {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub extra_args: Vec<String>,
    bin: PathBuf,
}

impl TestServer {
    /// Starts the server binary `bin` and waits until `/readyz` answers.
    pub fn start(bin: &Path) -> TestServer {
        TestServer::start_with(bin, &[])
    }

    pub fn start_with(bin: &Path, extra: &[&str]) -> TestServer {
        let dir = tempfile::Builder::new()
            .prefix("skiff-test-")
            .tempdir()
            .expect("temp dir");
        let mut s = TestServer {
            child: None,
            dir,
            port: 0,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            bin: bin.to_path_buf(),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log file");
        let _ = std::fs::remove_file(self.kubeconfig());
        let port = if self.port == 0 {
            "0".to_string()
        } else {
            self.port.to_string()
        };
        let child = Command::new(&self.bin)
            .args([
                "server",
                "--no-agent",
                "--bind-address",
                "127.0.0.1",
                "--https-port",
                &port,
                "--data-dir",
            ])
            .arg(self.dir.path())
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn skiff server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(k) = std::fs::read_to_string(self.kubeconfig())
                && let Some(port) = k
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("server: https://127.0.0.1:"))
                    .and_then(|p| p.trim().parse::<u16>().ok())
            {
                self.port = port;
                break;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("skiff server exited early ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "skiff server did not write its kubeconfig in 30 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The admin bearer token from the kubeconfig.
    pub fn token(&self) -> String {
        let k = std::fs::read_to_string(self.kubeconfig()).unwrap_or_default();
        k.lines()
            .find_map(|l| l.trim().strip_prefix("token: "))
            .unwrap_or_default()
            .to_string()
    }

    /// Kills the process with SIGKILL (by PID) and waits for it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops with SIGTERM, waiting up to 10 s, then SIGKILL.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the same server again on the same data dir and port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Runs `tool` (kubectl or helm) with this server's kubeconfig, under a 120 s timeout.
    pub fn run(&self, tool: &Path, args: &[&str]) -> Output {
        self.run_stdin(tool, args, None)
    }

    pub fn run_stdin(&self, tool: &Path, args: &[&str], stdin: Option<&str>) -> Output {
        run_with_timeout(
            Command::new(tool)
                .args(args)
                .env("KUBECONFIG", self.kubeconfig())
                .env("HOME", self.dir.path())
                .env("HELM_CACHE_HOME", self.dir.path().join("helm-cache"))
                .env("HELM_CONFIG_HOME", self.dir.path().join("helm-config"))
                .env("HELM_DATA_HOME", self.dir.path().join("helm-data")),
            stdin,
            Duration::from_secs(120),
        )
    }

    /// GETs `path` (with its query) over HTTPS without credentials, as load balancers probe
    /// `/readyz`; returns the status code and the body.
    pub fn probe(&self, path: &str) -> (u16, String) {
        let out = run_with_timeout(
            Command::new("curl").args([
                "-sk",
                "--max-time",
                "20",
                "-w",
                "\n%{http_code}",
                &format!("https://127.0.0.1:{}{path}", self.port),
            ]),
            None,
            Duration::from_secs(30),
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// Runs and asserts success; returns stdout.
    #[track_caller]
    pub fn ok(&self, tool: &Path, args: &[&str]) -> String {
        let out = self.run(tool, args);
        assert!(
            out.status.success(),
            "{} {:?} failed ({}):\nstdout: {}\nstderr: {}\nserver log tail: {}",
            tool.display(),
            args,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log(), 20)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs a command with a hard timeout; the child is killed (by PID) when it expires.
pub fn run_with_timeout(cmd: &mut Command, stdin: Option<&str>, timeout: Duration) -> Output {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        let input = input.to_string();
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out_pipe.read_to_end(&mut b);
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err_pipe.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let s = child.wait().expect("wait after kill");
            panic!("{cmd:?} timed out after {timeout:?} (killed, {s})");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

/// A real etcd (Debian's `etcd-server`) on free loopback ports and a temp data dir; killed by PID on drop.
pub struct Etcd {
    child: Child,
    _dir: tempfile::TempDir,
    pub client_port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Etcd {
    pub fn start() -> Etcd {
        let bin = peer("SKIFF_ETCD", "etcd");
        let dir = tempfile::Builder::new()
            .prefix("skiff-etcd-")
            .tempdir()
            .expect("temp dir");
        let (client_port, peer_port) = (free_port(), free_port());
        let child = Command::new(&bin)
            .arg("--data-dir")
            .arg(dir.path())
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{client_port}"),
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{client_port}"),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{peer_port}"),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer_port}"),
                "--initial-cluster",
                &format!("default=http://127.0.0.1:{peer_port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} (Debian package etcd-server): {e}",
                    bin.display()
                )
            });
        let etcd = Etcd {
            child,
            _dir: dir,
            client_port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", client_port)).is_err() {
            assert!(Instant::now() < deadline, "etcd did not listen within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        etcd
    }

    /// Freezes the etcd process (SIGSTOP by PID): it keeps its connections but answers nothing.
    pub fn pause(&self) {
        signal(self.child.id(), "-STOP");
    }

    /// Lets a paused etcd run again (SIGCONT).
    pub fn resume(&self) {
        signal(self.child.id(), "-CONT");
    }

    /// The `--datastore` value for skiff server.
    pub fn datastore(&self) -> String {
        format!("etcd://127.0.0.1:{}", self.client_port)
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill {sig} {pid} failed");
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
