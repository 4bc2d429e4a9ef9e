//! CustomResourceDefinitions with real kubectl: the custom resources are served, discoverable,
//! and removed with their definition.

use skiff_testkit::{TestServer, kubectl_120, kubectl_135};
use std::path::Path;

fn manifests() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/manifests")
}

fn crd_roundtrip(kubectl: &Path) {
    let s = TestServer::start(env!("CARGO_BIN_EXE_skiff").as_ref());
    let crd = manifests().join("crontab-crd.yaml");
    let out = s.ok(kubectl, &["apply", "-f", crd.to_str().expect("utf-8 path")]);
    assert!(
        out.contains(
            "customresourcedefinition.apiextensions.k8s.io/crontabs.stable.example.com created"
        ),
        "{out}"
    );
    s.ok(
        kubectl,
        &[
            "wait",
            "--for=condition=Established",
            "crd/crontabs.stable.example.com",
            "--timeout=20s",
        ],
    );
    let ct = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: my-new-cron-object\nspec:\n  cronSpec: \"* * * * */5\"\n  image: my-awesome-cron-image\n";
    let out = s.run_stdin(kubectl, &["apply", "-f", "-"], Some(ct));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.run_stdin(kubectl, &["apply", "-f", "-"], Some(ct));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("unchanged"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let got = s.ok(
        kubectl,
        &[
            "get",
            "ct",
            "my-new-cron-object",
            "-o",
            "jsonpath={.spec.image}",
        ],
    );
    assert_eq!(got, "my-awesome-cron-image");
    // The structural schema: defaults applied, unknown fields pruned, bad values refused.
    assert_eq!(
        s.ok(
            kubectl,
            &[
                "get",
                "ct",
                "my-new-cron-object",
                "-o",
                "jsonpath={.spec.replicas}"
            ]
        ),
        "1"
    );
    let odd = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: odd\nspec:\n  image: i\n  bogus: 1\n";
    let out = s.run_stdin(
        kubectl,
        &["create", "--validate=false", "-f", "-"],
        Some(odd),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        s.ok(kubectl, &["get", "ct", "odd", "-o", "jsonpath={.spec}"]),
        r#"{"image":"i","replicas":1}"#
    );
    let bad = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: bad\nspec:\n  replicas: -3\n";
    let out = s.run_stdin(kubectl, &["create", "-f", "-"], Some(bad));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("spec.replicas") && err.contains("is invalid"),
        "{err}"
    );
    let listed = s.ok(kubectl, &["get", "crontabs"]);
    assert!(listed.contains("my-new-cron-object"), "{listed}");
    // additionalPrinterColumns make the table.
    let header: Vec<&str> = listed
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "SPEC", "REPLICAS", "AGE"], "{listed}");
    let row = listed
        .lines()
        .find(|l| l.starts_with("my-new-cron-object"))
        .unwrap_or_default();
    assert!(
        row.contains("* * * * */5") && row.split_whitespace().nth(6) == Some("1"),
        "{listed}"
    );
    // kubectl explain finds the CRD's schema (1.35 reads /openapi/v3), and 1.35's default
    // server-side field validation (Strict) refuses unknown fields instead of pruning them.
    if kubectl == kubectl_135().as_path() {
        let strict = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: strict\nspec:\n  image: i\n  bogus: 1\n";
        let out = s.run_stdin(kubectl, &["create", "-f", "-"], Some(strict));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(r#"unknown field "spec.bogus""#),
            "{err}"
        );
        // A custom resource's update must name the resourceVersion it replaces, as
        // upstream's strategy demands; kubectl replace fills it in.
        let path = "/apis/stable.example.com/v1/namespaces/default/crontabs/odd";
        let replaced = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: odd\nspec:\n  image: j\n";
        let raw = r#"{"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "odd"}, "spec": {"image": "j"}}"#;
        let out = s.run_stdin(kubectl, &["replace", "--raw", path, "-f", "-"], Some(raw));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && err.contains(
                    "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
                ),
            "{err}"
        );
        // A custom resource is not created by an update.
        let missing = raw.replace("\"odd\"", "\"missing\"");
        let out = s.run_stdin(
            kubectl,
            &[
                "replace",
                "--raw",
                &path.replace("/odd", "/missing"),
                "-f",
                "-",
            ],
            Some(&missing),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && err.contains("NotFound")
                && err.contains("\"missing\" not found"),
            "{err}"
        );
        let out = s.run_stdin(kubectl, &["replace", "-f", "-"], Some(replaced));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            s.ok(
                kubectl,
                &["get", "ct", "odd", "-o", "jsonpath={.spec.image}"]
            ),
            "j"
        );
        let explained = s.ok(kubectl, &["explain", "crontabs.spec"]);
        assert!(
            explained.contains("cronSpec") && explained.contains("replicas"),
            "{explained}"
        );
    }
    // Every kubectl explains custom resources: 1.20 reads /openapi/v2, 1.35 /openapi/v3.
    let explained = s.ok(kubectl, &["explain", "crontabs.spec"]);
    assert!(
        explained.contains("cronSpec") && explained.contains("replicas"),
        "{explained}"
    );
    let resources = s.ok(
        kubectl,
        &["api-resources", "--api-group=stable.example.com"],
    );
    assert!(
        resources.contains("crontabs") && resources.contains("ct"),
        "{resources}"
    );
    s.ok(kubectl, &["delete", "crd", "crontabs.stable.example.com"]);
    let out = s.run(kubectl, &["get", "crontabs.stable.example.com"]);
    assert!(
        !out.status.success(),
        "crontabs still served after the CRD was deleted"
    );
    // Recreating the definition does not bring old objects back.
    s.ok(kubectl, &["apply", "-f", crd.to_str().expect("utf-8 path")]);
    let listed = s.ok(kubectl, &["get", "crontabs", "-o", "name"]);
    assert!(
        listed.trim().is_empty(),
        "custom resources survived their definition: {listed}"
    );
}

#[test]
fn crd_with_kubectl_135() {
    crd_roundtrip(&kubectl_135());
}

#[test]
fn crd_with_kubectl_120() {
    crd_roundtrip(&kubectl_120());
}
