//! Services change type the way upstream's do: node ports are allocated when a Service becomes
//! NodePort, given back when it stops being one, and never handed out twice.

use skiff_testkit::{TestServer, kubectl_135};

#[test]
fn node_ports_follow_the_service_type() {
    let s = TestServer::start(env!("CARGO_BIN_EXE_skiff").as_ref());
    let k = kubectl_135();
    s.ok(
        &k,
        &["create", "service", "clusterip", "web", "--tcp=80:8080"],
    );
    s.ok(
        &k,
        &[
            "patch",
            "svc",
            "web",
            "-p",
            r#"{"spec":{"type":"NodePort"}}"#,
        ],
    );
    let port = s.ok(
        &k,
        &[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ],
    );
    let port: u16 = port
        .parse()
        .unwrap_or_else(|_| panic!("no node port after becoming NodePort: {port:?}"));
    assert!((30000..=32767).contains(&port));
    // Taken: another Service cannot have it.
    let other = format!(
        r#"{{"apiVersion":"v1","kind":"Service","metadata":{{"name":"other"}},"spec":{{"type":"NodePort","ports":[{{"port":81,"nodePort":{port}}}]}}}}"#
    );
    let out = s.run_stdin(&k, &["create", "-f", "-"], Some(&other));
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("provided port is already allocated"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Back to ClusterIP: the node port goes away and is free again.
    s.ok(
        &k,
        &[
            "patch",
            "svc",
            "web",
            "-p",
            r#"{"spec":{"type":"ClusterIP"}}"#,
        ],
    );
    assert_eq!(
        s.ok(
            &k,
            &[
                "get",
                "svc",
                "web",
                "-o",
                "jsonpath={.spec.ports[0].nodePort}"
            ]
        ),
        ""
    );
    let out = s.run_stdin(&k, &["create", "-f", "-"], Some(&other));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        s.ok(
            &k,
            &[
                "get",
                "svc",
                "other",
                "-o",
                "jsonpath={.spec.ports[0].nodePort}"
            ]
        ),
        port.to_string()
    );
}
