//! A real `skiff agent --hollow N` process joined to a [`TestServer`], stopped by PID.

use crate::TestServer;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `skiff agent` child process; killed by PID on drop.
pub struct Agent {
    child: Option<Child>,
    log: PathBuf,
}

impl Agent {
    /// Starts `bin agent --server … --token … --kubelet-port 0 EXTRA…` with the server's join token.
    pub fn start(bin: &Path, server: &TestServer, extra: &[&str]) -> Agent {
        // The server writes its join token shortly after its kubeconfig.
        let token = wait_for(30, "node-token", || {
            std::fs::read_to_string(server.dir.path().join("node-token"))
                .ok()
                .filter(|t| !t.trim().is_empty())
        });
        let log = server.dir.path().join(format!(
            "agent-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        let child = Command::new(bin)
            .args([
                "agent",
                "--server",
                &format!("https://127.0.0.1:{}", server.port),
                "--token",
                token.trim(),
                "--kubelet-port",
                "0",
            ])
            .args(extra)
            .env("SKIFF_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("agent log"))
            .spawn()
            .expect("spawn skiff agent");
        Agent {
            child: Some(child),
            log,
        }
    }

    /// SIGTERM by PID, then wait (SIGKILL after 10 s): a clean stop.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
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

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL by PID: the agent vanishes as a crashed machine would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 200 ms until it returns `Some`, for at most `secs`.
#[track_caller]
pub fn wait_for<T>(secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s: {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
