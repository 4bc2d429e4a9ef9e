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

#[test]
fn two_servers_never_hand_out_the_same_service_ip_or_node_port() {
    let etcd = Etcd::start();
    let ds = etcd.datastore();
    let bin = env!("CARGO_BIN_EXE_skiff");
    let servers = [
        TestServer::start_with(bin.as_ref(), &["--datastore", &ds]),
        TestServer::start_with(bin.as_ref(), &["--datastore", &ds]),
    ];
    let k = kubectl_135();
    std::thread::scope(|scope| {
        for (i, s) in servers.iter().enumerate() {
            let k = &k;
            scope.spawn(move || {
                for j in 0..15 {
                    s.ok(
                        k,
                        &[
                            "create",
                            "service",
                            "nodeport",
                            &format!("s{i}-{j}"),
                            "--tcp=80:8080",
                        ],
                    );
                }
            });
        }
    });
    let ips = servers[0].ok(
        &k,
        &[
            "get",
            "svc",
            "-o",
            "jsonpath={range .items[*]}{.spec.clusterIP}{\"\\n\"}{end}",
        ],
    );
    let ips: Vec<&str> = ips.lines().collect();
    let unique: std::collections::HashSet<&&str> = ips.iter().collect();
    assert_eq!(ips.len(), 31, "30 services and kubernetes: {ips:?}");
    assert_eq!(
        unique.len(),
        ips.len(),
        "a cluster IP was handed out twice: {ips:?}"
    );
    let ports = servers[1].ok(
        &k,
        &[
            "get",
            "svc",
            "-o",
            "jsonpath={range .items[*]}{.spec.ports[0].nodePort}{\"\\n\"}{end}",
        ],
    );
    let ports: Vec<&str> = ports.lines().filter(|p| !p.is_empty()).collect();
    let unique: std::collections::HashSet<&&str> = ports.iter().collect();
    assert_eq!(ports.len(), 30);
    assert_eq!(
        unique.len(),
        30,
        "a node port was handed out twice: {ports:?}"
    );
    // Every address is claimed by an IPAddress object, as upstream's allocator does.
    let claimed = servers[0].ok(&k, &["get", "ipaddresses", "-o", "name"]);
    assert_eq!(claimed.lines().count(), 31, "{claimed}");
    // Deleting a service gives its address back.
    servers[0].ok(&k, &["delete", "svc", "s0-0"]);
    let claimed = servers[1].ok(&k, &["get", "ipaddresses", "-o", "name"]);
    assert_eq!(claimed.lines().count(), 30, "{claimed}");
}

/// `/readyz` and `/livez` follow the datastore: while etcd answers nothing they fail (500,
/// naming the check, reason withheld), a single check says why, excluding the datastore
/// checks passes, and once etcd runs again the server is ready again.
#[test]
fn health_checks_follow_the_datastore() {
    let etcd = Etcd::start();
    let s = TestServer::start_with(
        env!("CARGO_BIN_EXE_skiff").as_ref(),
        &["--datastore", &etcd.datastore()],
    );
    let (code, body) = s.probe("/readyz?verbose");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("[+]etcd ok\n"), "{body}");
    assert!(body.ends_with("readyz check passed\n"), "{body}");

    etcd.pause();
    let (code, body) = s.probe("/readyz");
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("[-]etcd failed: reason withheld\n"), "{body}");
    assert!(body.contains("[+]ping ok\n"), "{body}");
    assert!(body.ends_with("readyz check failed\n"), "{body}");
    let (code, body) = s.probe("/livez/etcd");
    assert_eq!(code, 500, "{body}");
    assert!(body.starts_with("internal server error: "), "{body}");
    assert_eq!(s.probe("/livez/ping"), (200, "ok".to_string()));
    assert_eq!(
        s.probe("/readyz?exclude=etcd&exclude=etcd-readiness"),
        (200, "ok".to_string())
    );

    etcd.resume();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (code, body) = s.probe("/readyz");
        if code == 200 {
            assert_eq!(body, "ok");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not ready 30 s after etcd resumed: {code} {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // The server still serves reads and writes through the datastore.
    s.ok(&kubectl_135(), &["create", "configmap", "after-pause"]);
}
