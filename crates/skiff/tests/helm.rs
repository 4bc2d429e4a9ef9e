//! Real helm 3 and helm 4 install, upgrade, roll back and uninstall a chart against `skiff server`.

use serde_json::Value;
use skiff_testkit::{TestServer, helm_3, helm_4, kubectl_135};
use std::path::Path;

fn server() -> TestServer {
    TestServer::start(env!("CARGO_BIN_EXE_skiff").as_ref())
}

fn get_json(s: &TestServer, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = s.ok(&kubectl_135(), &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl get {args:?}: {e}: {out}"))
}

fn replicas(s: &TestServer) -> i64 {
    get_json(s, &["deployment", "demo"])["spec"]["replicas"]
        .as_i64()
        .expect("spec.replicas is a number")
}

/// The operations (`Apply` or `Update`) helm's field manager recorded on the Deployment.
fn helm_operations(s: &TestServer) -> Vec<String> {
    let d = get_json(s, &["deployment", "demo", "--show-managed-fields"]);
    d["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .filter(|m| m["manager"].as_str().is_some_and(|n| n.starts_with("helm")))
        .filter_map(|m| m["operation"].as_str().map(str::to_string))
        .collect()
}

fn release_secrets(s: &TestServer) -> Vec<String> {
    get_json(s, &["secrets", "-l", "owner=helm"])["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

/// The whole life of a release made from `helm create`'s chart; pods need not run.
fn chart_lifecycle(helm: &Path, expected_operation: &str) {
    let s = server();
    let chart = s.dir.path().join("demo");
    let chart = chart.to_str().expect("utf-8 temp path");
    s.ok(helm, &["create", chart]);

    let out = s.ok(helm, &["install", "demo", chart]);
    assert!(out.contains("STATUS: deployed"), "{out}");
    assert_eq!(replicas(&s), 1);
    for kind in ["service", "serviceaccount"] {
        let obj = get_json(&s, &[kind, "demo"]);
        assert_eq!(
            obj["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm",
            "{kind}: {obj}"
        );
    }
    assert_eq!(release_secrets(&s), ["sh.helm.release.v1.demo.v1"]);
    let ops = helm_operations(&s);
    assert!(
        ops.iter().any(|o| o == expected_operation),
        "helm's managedFields operations on the Deployment: {ops:?}"
    );

    s.ok(helm, &["upgrade", "demo", chart, "--set", "replicaCount=2"]);
    assert_eq!(replicas(&s), 2);

    s.ok(helm, &["rollback", "demo", "1"]);
    assert_eq!(replicas(&s), 1, "rollback restores revision 1's replicas");

    let history = s.ok(helm, &["history", "demo"]);
    for want in ["Install complete", "Upgrade complete", "Rollback to 1"] {
        assert!(history.contains(want), "{history}");
    }
    let list: Value =
        serde_json::from_str(&s.ok(helm, &["list", "-o", "json"])).expect("helm list json");
    assert_eq!(list[0]["name"], "demo", "{list}");
    assert_eq!(list[0]["revision"], "3", "{list}");
    assert_eq!(list[0]["status"], "deployed", "{list}");
    assert_eq!(release_secrets(&s).len(), 3);

    let out = s.ok(helm, &["uninstall", "demo"]);
    assert!(out.contains("uninstalled"), "{out}");
    for kind in ["deployment", "service", "serviceaccount"] {
        let out = s.run(&kubectl_135(), &["get", kind, "demo"]);
        assert!(!out.status.success(), "{kind}/demo is still there");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("NotFound") || err.contains("not found"),
            "{err}"
        );
    }
    assert_eq!(release_secrets(&s), Vec::<String>::new());
    let list = s.ok(helm, &["list", "-q"]);
    assert_eq!(list.trim(), "");
}

#[test]
fn helm_3_chart_lifecycle() {
    // helm 3 patches with strategic merge patch (an Update in managedFields).
    chart_lifecycle(&helm_3(), "Update");
}

#[test]
fn helm_4_chart_lifecycle() {
    // helm 4 applies server-side.
    chart_lifecycle(&helm_4(), "Apply");
}
