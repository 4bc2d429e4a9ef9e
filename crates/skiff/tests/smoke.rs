//! The server starts on an empty data dir, answers real kubectl, and refuses unauthenticated requests.

use skiff_testkit::{TestServer, kubectl_135};

#[test]
fn starts_and_serves_kubectl() {
    let s = TestServer::start(env!("CARGO_BIN_EXE_skiff").as_ref());
    let out = s.ok(&kubectl_135(), &["get", "namespaces", "-o", "name"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(out.contains(&format!("namespace/{ns}")), "{out}");
    }
    assert!(
        s.log().contains("admin.kubeconfig"),
        "the ready line names the kubeconfig"
    );
    assert!(s.dir.path().join("node-token").exists());
}

#[test]
fn unauthenticated_requests_get_401() {
    let s = TestServer::start(env!("CARGO_BIN_EXE_skiff").as_ref());
    let out = skiff_testkit::run_with_timeout(
        std::process::Command::new("curl").args([
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("https://127.0.0.1:{}/api/v1/namespaces", s.port),
        ]),
        None,
        std::time::Duration::from_secs(30),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");
}
