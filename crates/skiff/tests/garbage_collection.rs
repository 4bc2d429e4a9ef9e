//! Real kubectl against `skiff server`: cascading deletion (foreground, background, orphan) and
//! namespace deletion, carried out by the in-process garbage collector and namespace controller.

use skiff_testkit::{TestServer, kubectl_120, kubectl_135};
use std::path::Path;
use std::time::{Duration, Instant};

fn deployment(name: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
"#
    )
}

fn replicaset(name: &str, owner: &str, uid: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: {name}
  labels: {{app: {owner}}}
  ownerReferences:
  - apiVersion: apps/v1
    kind: Deployment
    name: {owner}
    uid: {uid}
    controller: true
    blockOwnerDeletion: true
spec:
  replicas: 0
  selector:
    matchLabels: {{app: {owner}}}
  template:
    metadata:
      labels: {{app: {owner}}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
"#
    )
}

/// A Deployment and a ReplicaSet it owns (blockOwnerDeletion), made with `kubectl`.
fn deployment_with_replicaset(s: &TestServer, kubectl: &Path, name: &str) {
    let out = s.run_stdin(kubectl, &["apply", "-f", "-"], Some(&deployment(name)));
    assert!(out.status.success(), "{out:?}");
    let uid = s.ok(
        kubectl,
        &["get", "deploy", name, "-o", "jsonpath={.metadata.uid}"],
    );
    let rs = replicaset(&format!("{name}-rs"), name, uid.trim());
    let out = s.run_stdin(kubectl, &["apply", "-f", "-"], Some(&rs));
    assert!(out.status.success(), "{out:?}");
}

fn exists(s: &TestServer, kubectl: &Path, args: &[&str]) -> bool {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "name"]);
    s.run(kubectl, &a).status.success()
}

#[track_caller]
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn kubectl_cascading_deletion() {
    let s = TestServer::start(env!("CARGO_BIN_EXE_skiff").as_ref());
    for (kubectl, tag) in [(kubectl_135(), "k135"), (kubectl_120(), "k120")] {
        // Foreground: kubectl returns once the owner is gone, and it goes after its dependents.
        let name = format!("fg-{tag}");
        deployment_with_replicaset(&s, &kubectl, &name);
        s.ok(
            &kubectl,
            &[
                "delete",
                "deploy",
                &name,
                "--cascade=foreground",
                "--timeout=60s",
            ],
        );
        assert!(!exists(&s, &kubectl, &["deploy", &name]));
        assert!(
            !exists(&s, &kubectl, &["rs", &format!("{name}-rs")]),
            "the blocking ReplicaSet is gone before its owner"
        );

        // Background: the owner goes at once, the collector removes the ReplicaSet after.
        let name = format!("bg-{tag}");
        deployment_with_replicaset(&s, &kubectl, &name);
        s.ok(
            &kubectl,
            &["delete", "deploy", &name, "--cascade=background"],
        );
        eventually("the ReplicaSet is collected", || {
            !exists(&s, &kubectl, &["rs", &format!("{name}-rs")])
        });

        // Orphan: the ReplicaSet stays without its ownerReference.
        let name = format!("or-{tag}");
        deployment_with_replicaset(&s, &kubectl, &name);
        s.ok(
            &kubectl,
            &[
                "delete",
                "deploy",
                &name,
                "--cascade=orphan",
                "--timeout=60s",
            ],
        );
        assert!(!exists(&s, &kubectl, &["deploy", &name]));
        let refs = s.ok(
            &kubectl,
            &[
                "get",
                "rs",
                &format!("{name}-rs"),
                "-o",
                "jsonpath={.metadata.ownerReferences}",
            ],
        );
        assert_eq!(
            refs.trim(),
            "",
            "the orphaned ReplicaSet keeps no reference"
        );
    }
}

#[test]
fn kubectl_deletes_a_namespace_and_its_content() {
    let s = TestServer::start(env!("CARGO_BIN_EXE_skiff").as_ref());
    let kubectl = kubectl_135();
    s.ok(&kubectl, &["create", "namespace", "foo"]);
    s.ok(
        &kubectl,
        &[
            "-n",
            "foo",
            "create",
            "configmap",
            "one",
            "--from-literal=a=b",
        ],
    );
    s.ok(
        &kubectl,
        &[
            "-n",
            "foo",
            "create",
            "secret",
            "generic",
            "two",
            "--from-literal=a=b",
        ],
    );
    let out = s.run_stdin(
        &kubectl,
        &["-n", "foo", "apply", "-f", "-"],
        Some(&deployment("web")),
    );
    assert!(out.status.success(), "{out:?}");
    // kubectl waits until the namespace is gone.
    s.ok(&kubectl, &["delete", "ns", "foo", "--timeout=60s"]);
    assert!(!exists(&s, &kubectl, &["ns", "foo"]));
    // Recreated, it is empty.
    s.ok(&kubectl, &["create", "namespace", "foo"]);
    let left = s.ok(
        &kubectl,
        &[
            "-n",
            "foo",
            "get",
            "configmaps,secrets,deployments",
            "-o",
            "name",
        ],
    );
    // Only the root CA the publisher gives every new namespace.
    let left: Vec<&str> = left
        .lines()
        .filter(|l| *l != "configmap/kube-root-ca.crt")
        .collect();
    assert!(
        left.is_empty(),
        "nothing of the old namespace survives: {left:?}"
    );
}
