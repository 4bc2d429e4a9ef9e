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

/// A chart `scripts/install-peers.sh` extracted from a PyPI wheel: `$ENV`, or `charts/NAME`
/// in the peers directory.
fn peer_chart(env: &str, name: &str) -> std::path::PathBuf {
    let chart = std::env::var_os(env)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| skiff_testkit::peers_dir().join("charts").join(name));
    assert!(
        chart.join("Chart.yaml").exists(),
        "the {name} chart is missing at {}: run scripts/install-peers.sh",
        chart.display()
    );
    chart
}

/// The dask-kubernetes operator chart from PyPI dask-kubernetes.
fn dask_chart() -> std::path::PathBuf {
    peer_chart("SKIFF_DASK_CHART", "dask-kubernetes-operator")
}

/// A third-party chart with CRDs and cluster-scoped RBAC: the CRDs are created and served,
/// the release comes and goes, and (as helm does everywhere) the CRDs stay.
fn dask_operator_chart(helm: &Path) {
    let s = server();
    let chart = dask_chart();
    let chart = chart.to_str().expect("utf-8 chart path");
    let deployment = "dask-dask-kubernetes-operator";
    s.ok(
        helm,
        &["install", "dask", chart, "--set", "image.tag=2026.3.0"],
    );
    let crds = [
        "daskclusters",
        "daskworkergroups",
        "daskjobs",
        "daskautoscalers",
    ];
    for crd in crds {
        let obj = get_json(&s, &["crd", &format!("{crd}.kubernetes.dask.org")]);
        let established = obj["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        });
        assert!(established, "{crd} is not Established: {obj}");
        // Its custom resources are served (an empty list).
        let list = get_json(&s, &[&format!("{crd}.kubernetes.dask.org")]);
        assert_eq!(list["items"], serde_json::json!([]), "{crd}: {list}");
    }
    let image = get_json(&s, &["deployment", deployment])["spec"]["template"]["spec"]["containers"]
        [0]["image"]
        .clone();
    assert_eq!(image, "ghcr.io/dask/dask-kubernetes-operator:2026.3.0");
    get_json(
        &s,
        &["clusterrole", "dask-dask-kubernetes-operator-role-cluster"],
    );
    get_json(
        &s,
        &[
            "clusterrolebinding",
            "dask-dask-kubernetes-operator-rolebinding-cluster",
        ],
    );

    s.ok(
        helm,
        &["upgrade", "dask", chart, "--set", "image.tag=2026.3.1"],
    );
    let image = get_json(&s, &["deployment", deployment])["spec"]["template"]["spec"]["containers"]
        [0]["image"]
        .clone();
    assert_eq!(image, "ghcr.io/dask/dask-kubernetes-operator:2026.3.1");

    s.ok(helm, &["uninstall", "dask"]);
    for (kind, name) in [
        ("deployment", deployment),
        ("serviceaccount", deployment),
        ("clusterrole", "dask-dask-kubernetes-operator-role-cluster"),
        (
            "clusterrolebinding",
            "dask-dask-kubernetes-operator-rolebinding-cluster",
        ),
    ] {
        let out = s.run(&kubectl_135(), &["get", kind, name]);
        assert!(!out.status.success(), "{kind}/{name} is still there");
    }
    assert_eq!(release_secrets(&s), Vec::<String>::new());
    for crd in crds {
        get_json(&s, &["crd", &format!("{crd}.kubernetes.dask.org")]);
    }
}

#[test]
fn helm_3_dask_operator_chart() {
    dask_operator_chart(&helm_3());
}

#[test]
fn helm_4_dask_operator_chart() {
    dask_operator_chart(&helm_4());
}

/// zenml's server chart from PyPI zenml.
fn zenml_chart() -> std::path::PathBuf {
    peer_chart("SKIFF_ZENML_CHART", "zenml")
}

/// A chart whose release waits on its pods: helm 3 installs zenml's server with an external
/// database (a pre-install migration Job hook that must complete) and `--wait`s for the
/// Deployment on a hollow node, `helm test` runs the chart's test Pod to Succeeded, an
/// upgrade to two replicas and a rollback wait again, and uninstall removes the release.
#[test]
fn helm_3_zenml_chart_with_hooks_and_tests() {
    let s = server();
    let _agent = skiff_testkit::Agent::start(
        env!("CARGO_BIN_EXE_skiff").as_ref(),
        &s,
        &["--hollow", "1", "--hollow-pod-run-seconds", "1"],
    );
    let helm = helm_3();
    let chart = zenml_chart();
    let chart = chart.to_str().expect("utf-8 chart path");
    let db = "zenml.database.url=mysql://admin:password@zenml-mysql:3306/database";
    s.ok(
        &helm,
        &[
            "install",
            "zen",
            chart,
            "--set",
            db,
            "--wait",
            "--timeout",
            "60s",
        ],
    );
    let job = get_json(&s, &["job", "zen-zenml-db-migration"]);
    assert_eq!(job["status"]["succeeded"], 1, "{job}");
    let ready = get_json(&s, &["deployment", "zen-zenml"])["status"]["readyReplicas"].clone();
    assert_eq!(ready, 1);

    let out = s.ok(&helm, &["test", "zen", "--timeout", "60s"]);
    assert!(out.contains("Phase:          Succeeded"), "{out}");
    let phase = get_json(&s, &["pod", "zen-zenml-test-connection"])["status"]["phase"].clone();
    assert_eq!(phase, "Succeeded");

    s.ok(
        &helm,
        &[
            "upgrade",
            "zen",
            chart,
            "--set",
            db,
            "--set",
            "zenml.replicaCount=2",
            "--wait",
            "--timeout",
            "60s",
        ],
    );
    let ready = get_json(&s, &["deployment", "zen-zenml"])["status"]["readyReplicas"].clone();
    assert_eq!(ready, 2);
    s.ok(
        &helm,
        &["rollback", "zen", "1", "--wait", "--timeout", "60s"],
    );
    let spec = get_json(&s, &["deployment", "zen-zenml"])["spec"]["replicas"].clone();
    assert_eq!(spec, 1);

    s.ok(&helm, &["uninstall", "zen", "--wait", "--timeout", "60s"]);
    // The release's own objects go; hook objects (the migration Job's Secret) stay, as helm
    // leaves hooks without a delete policy.
    let left = s.ok(
        &kubectl_135(),
        &[
            "get",
            "deployment/zen-zenml",
            "service/zen-zenml",
            "ingress/zen-zenml",
            "secret/zen-zenml",
            "--ignore-not-found",
            "-o",
            "name",
        ],
    );
    assert_eq!(left.trim(), "", "left after uninstall: {left}");
}
