//! `skiff server --datastore etcd://...` keeps the cluster's state in a real etcd: objects
//! survive a server restart, and a second server on the same etcd sees the first one's writes.

use skiff_testkit::{Etcd, TestServer, kubectl_135};

#[test]
fn state_lives_in_etcd() {
    let etcd = Etcd::start();
    let ds = etcd.datastore();
    let bin = env!("CARGO_BIN_EXE_skiff");
    let mut a = TestServer::start_with(bin.as_ref(), &["--datastore", &ds]);
    let k = kubectl_135();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: in-etcd\ndata:\n  k: v\n";
    let out = a.run_stdin(&k, &["apply", "-f", "-"], Some(cm));
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        a.log()
    );
    a.restart();
    assert_eq!(
        a.ok(&k, &["get", "cm", "in-etcd", "-o", "jsonpath={.data.k}"]),
        "v"
    );
    // A second server (its own certificates) on the same etcd sees the object and its changes.
    let b = TestServer::start_with(bin.as_ref(), &["--datastore", &ds]);
    assert_eq!(
        b.ok(&k, &["get", "cm", "in-etcd", "-o", "jsonpath={.data.k}"]),
        "v"
    );
    a.ok(
        &k,
        &["patch", "cm", "in-etcd", "-p", r#"{"data":{"k":"w"}}"#],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if b.ok(&k, &["get", "cm", "in-etcd", "-o", "jsonpath={.data.k}"]) == "w" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the second server never saw the change"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
