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

#[test]
fn events_expire_after_their_ttl() {
    let s = TestServer::start_with(env!("CARGO_BIN_EXE_skiff").as_ref(), &["--event-ttl", "2"]);
    let ev = "apiVersion: v1\nkind: Event\nmetadata:\n  name: e1\ninvolvedObject:\n  kind: Pod\n  name: p\n  namespace: default\nreason: Test\nmessage: hello\ntype: Normal\n";
    let out = s.run_stdin(&kubectl_135(), &["create", "-f", "-"], Some(ev));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        s.ok(&kubectl_135(), &["get", "events", "-o", "name"])
            .contains("e1")
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let names = s.ok(&kubectl_135(), &["get", "events", "-o", "name"]);
        if !names.contains("e1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "event still there after 15 s with a 2 s TTL"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

#[test]
fn new_objects_get_empty_status_like_upstream() {
    let s = TestServer::start(env!("CARGO_BIN_EXE_skiff").as_ref());
    let k = kubectl_135();
    // The object as created (the deployment controller fills the status right after).
    assert_eq!(
        s.ok(
            &k,
            &[
                "create",
                "deployment",
                "web",
                "--image=nginx:1.25",
                "-o",
                "jsonpath={.status}"
            ]
        ),
        "{}"
    );
    s.ok(
        &k,
        &["create", "service", "clusterip", "web", "--tcp=80:8080"],
    );
    assert_eq!(
        s.ok(&k, &["get", "svc", "web", "-o", "jsonpath={.status}"]),
        r#"{"loadBalancer":{}}"#
    );
}

/// The health endpoints answer without credentials as upstream's do: `ok`, the checks one
/// per line with `?verbose`, a single check by path, 404 for a check that does not exist.
#[test]
fn health_endpoints_list_their_checks() {
    let s = TestServer::start(env!("CARGO_BIN_EXE_skiff").as_ref());
    for endpoint in ["healthz", "livez", "readyz"] {
        assert_eq!(s.probe(&format!("/{endpoint}")), (200, "ok".to_string()));
    }
    let (code, body) = s.probe("/livez?verbose");
    assert_eq!(code, 200);
    assert_eq!(
        body,
        "[+]ping ok\n[+]log ok\n[+]etcd ok\nlivez check passed\n"
    );
    let (code, body) = s.probe("/readyz?verbose&exclude=log&exclude=nope");
    assert_eq!(code, 200);
    assert_eq!(
        body,
        "[+]ping ok\n[+]log excluded: ok\n[+]etcd ok\n[+]etcd-readiness ok\n[+]shutdown ok\n\
         warning: some health checks cannot be excluded: no matches for \"nope\"\n\
         readyz check passed\n"
    );
    assert_eq!(s.probe("/readyz/shutdown"), (200, "ok".to_string()));
    assert_eq!(s.probe("/livez/nope").0, 404);
    assert_eq!(
        s.probe("/livez/shutdown").0,
        404,
        "shutdown is a readiness check"
    );
}

/// The API server keeps the `kubernetes` Service and the default ServiceCIDR, and the
/// Service's Endpoints and EndpointSlice list the
/// server's address (from its identity Lease), so pods can reach the API; a deleted
/// `kubernetes` Service comes back.
#[test]
fn the_kubernetes_service_and_its_endpoints_are_kept() {
    let s = TestServer::start(env!("CARGO_BIN_EXE_skiff").as_ref());
    let k = kubectl_135();
    let wait_for = |args: &[&str], want: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let out = s.run(&k, args);
            let got = String::from_utf8_lossy(&out.stdout).into_owned();
            if got == want {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{args:?}: {got:?}, want {want:?}; {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let address = format!("127.0.0.1:{}", s.port);
    wait_for(
        &[
            "get",
            "endpoints",
            "kubernetes",
            "-o",
            "jsonpath={.subsets[0].addresses[0].ip}:{.subsets[0].ports[0].port}",
        ],
        &address,
    );
    wait_for(
        &[
            "get",
            "endpointslice",
            "kubernetes",
            "-o",
            "jsonpath={.endpoints[0].addresses[0]}:{.ports[0].port} {.metadata.labels.kubernetes\\.io/service-name}",
        ],
        &format!("{address} kubernetes"),
    );
    let leases = s.ok(
        &k,
        &[
            "get",
            "leases",
            "-n",
            "kube-system",
            "-l",
            "apiserver.kubernetes.io/identity=kube-apiserver",
            "-o",
            "name",
        ],
    );
    assert_eq!(leases.lines().count(), 1, "{leases}");
    wait_for(
        &[
            "get",
            "servicecidr",
            "kubernetes",
            "-o",
            "jsonpath={.spec.cidrs[0]}",
        ],
        "10.43.0.0/16",
    );
    s.ok(&k, &["delete", "service", "kubernetes"]);
    wait_for(
        &[
            "get",
            "service",
            "kubernetes",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
        "10.43.0.1",
    );
}
