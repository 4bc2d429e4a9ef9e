//! kill -9 of `skiff server` under 16 concurrent writers: every acknowledged write survives and the store reopens.

use skiff_testkit::{TestServer, run_with_timeout};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn create_configmap(port: u16, token: &str, ca: &str, name: &str) -> bool {
    let body = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"k":"{name}"}}}}"#
    );
    let out = run_with_timeout(
        Command::new("curl").args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            "--cacert",
            ca,
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-H",
            "Content-Type: application/json",
            "-X",
            "POST",
            "--data",
            &body,
            &format!("https://127.0.0.1:{port}/api/v1/namespaces/default/configmaps"),
        ]),
        None,
        Duration::from_secs(10),
    );
    String::from_utf8_lossy(&out.stdout) == "201"
}

fn rounds() -> usize {
    std::env::var("SKIFF_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let mut s = TestServer::start(env!("CARGO_BIN_EXE_skiff").as_ref());
    let ca = s.dir.path().join("tls/ca.crt").display().to_string();
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    for round in 0..rounds() {
        let (port, token) = (s.port, s.token());
        let stop_at = Instant::now() + Duration::from_millis(700 + (round as u64 * 137) % 600);
        let writers: Vec<_> = (0..16)
            .map(|w| {
                let (acked, ca, token) = (acked.clone(), ca.clone(), token.clone());
                std::thread::spawn(move || {
                    let mut i = 0;
                    // Keep writing past the kill: requests then fail and are not acknowledged.
                    while Instant::now() < stop_at + Duration::from_millis(300) {
                        let name = format!("r{round}-w{w}-{i}");
                        if create_configmap(port, &token, &ca, &name) {
                            acked.lock().expect("lock").push(name);
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        while Instant::now() < stop_at {
            std::thread::sleep(Duration::from_millis(10));
        }
        s.kill9();
        for w in writers {
            w.join().expect("writer thread");
        }
        s.restart();
        let listed = s.ok(
            &skiff_testkit::kubectl_135(),
            &["get", "configmaps", "-o", "name", "--request-timeout=30s"],
        );
        let present: std::collections::HashSet<&str> = listed
            .lines()
            .filter_map(|l| l.strip_prefix("configmap/"))
            .collect();
        let acked = acked.lock().expect("lock");
        let missing: Vec<&String> = acked
            .iter()
            .filter(|n| !present.contains(n.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} acknowledged writes lost after kill -9, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        assert!(
            !acked.is_empty(),
            "no write was acknowledged in round {round}"
        );
    }
}
