//! Real kubectl 1.20, 1.33 and 1.35 against `skiff server --no-agent`, with their default validation:
//! the seeds' manifests and one of every common kind through apply, get, watch, describe,
//! label, annotate, scale, explain, diff and the three delete propagation policies.

use serde_json::{Value, json};
use skiff_testkit::{TestServer, kubectl_120, kubectl_135};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every call also carries this, so that no request can hang the test (TestServer::run adds a
/// 120 s limit on the process).
const REQUEST_TIMEOUT: &str = "--request-timeout=20s";

/// The manifests `apply -f` creates, in the order kubectl reports them, with what it prints.
const MANIFESTS: &[(&str, &str)] = &[
    ("deployment-services.yaml", "deployment.apps/services"),
    (
        "rc-quote-frontend.yaml",
        "replicationcontroller/quote-frontend",
    ),
    ("srv-quote-frontend.yaml", "service/quote-frontend"),
    ("srv-quote-store.yaml", "service/quote-store"),
    ("pod-quote-store.yaml", "pod/quote-store"),
    ("configmap.yaml", "configmap/app-config"),
    ("secret.yaml", "secret/app-secret"),
    ("namespace.yaml", "namespace/staging"),
    ("job.yaml", "job.batch/pi"),
    ("cronjob.yaml", "cronjob.batch/hello"),
    ("ingress.yaml", "ingress.networking.k8s.io/quote"),
    ("statefulset.yaml", "statefulset.apps/web"),
    ("daemonset.yaml", "daemonset.apps/node-logger"),
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Version {
    V120,
    V135,
}

struct Kubectl {
    server: TestServer,
    bin: PathBuf,
    version: Version,
}

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/manifests")
}

fn manifest(name: &str) -> String {
    manifests().join(name).display().to_string()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Collapses runs of spaces, so that table rows compare independently of column widths.
fn squash(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Kubectl {
    fn start(bin: PathBuf, version: Version) -> Kubectl {
        Kubectl {
            server: TestServer::start(env!("CARGO_BIN_EXE_skiff").as_ref()),
            bin,
            version,
        }
    }

    fn with_timeout<'a>(args: &[&'a str]) -> Vec<&'a str> {
        let mut all = args.to_vec();
        all.push(REQUEST_TIMEOUT);
        all
    }

    fn run(&self, args: &[&str]) -> Output {
        self.server.run(&self.bin, &Self::with_timeout(args))
    }

    fn run_stdin(&self, args: &[&str], stdin: &str) -> Output {
        self.server
            .run_stdin(&self.bin, &Self::with_timeout(args), Some(stdin))
    }

    fn describe(&self, args: &[&str], out: &Output) -> String {
        format!(
            "kubectl {:?} {args:?} ({}):\nstdout: {}\nstderr: {}\nserver log tail: {}",
            self.version,
            out.status,
            text(&out.stdout),
            text(&out.stderr),
            self.server
                .log()
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        )
    }

    /// Runs and asserts success; returns stdout.
    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{}", self.describe(args, &out));
        text(&out.stdout)
    }

    #[track_caller]
    fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run_stdin(args, stdin);
        assert!(out.status.success(), "{}", self.describe(args, &out));
        text(&out.stdout)
    }

    /// Runs and asserts the exit code; returns the output.
    #[track_caller]
    fn exits(&self, code: i32, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}",
            self.describe(args, &out)
        );
        out
    }

    /// Runs, asserts exit code 1 and that stderr says `needle`.
    #[track_caller]
    fn fails_with(&self, args: &[&str], needle: impl AsRef<str>) {
        let out = self.exits(1, args);
        assert!(
            text(&out.stderr).contains(needle.as_ref()),
            "{}",
            self.describe(args, &out)
        );
    }

    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }

    /// `json`, with managedFields, which kubectl hides by default since 1.21.
    #[track_caller]
    fn json_with_managed_fields(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        if self.version != Version::V120 {
            all.push("--show-managed-fields");
        }
        self.json(&all)
    }

    #[track_caller]
    fn jsonpath(&self, args: &[&str], path: &str) -> String {
        let mut all = args.to_vec();
        let expr = format!("jsonpath={path}");
        all.extend(["-o", &expr]);
        self.ok(&all)
    }

    /// The header and the row named `name` of `get KIND -o wide`, squashed.
    #[track_caller]
    fn wide(&self, args: &[&str], name: &str) -> (String, String) {
        let mut all = vec!["get"];
        all.extend(args);
        all.extend(["-o", "wide"]);
        let out = self.ok(&all);
        let mut lines = out.lines();
        let header = squash(lines.next().unwrap_or_default());
        let row = lines
            .map(squash)
            .find(|l| l.split(' ').next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name} in {args:?}:\n{out}"));
        (header, row)
    }

    fn write(&self, file: &str, contents: &str) -> String {
        let p = self.server.dir.path().join(file);
        std::fs::write(&p, contents).expect("write a manifest into the temp dir");
        p.display().to_string()
    }

    fn apply_args(extra: &[&'static str]) -> Vec<String> {
        let mut args = vec!["apply".to_string()];
        for (file, _) in MANIFESTS {
            args.push("-f".into());
            args.push(manifest(file));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }
}

/// A manifest from `tests/manifests` with `from` replaced by `to` (which must occur).
#[track_caller]
fn edited(file: &str, edits: &[(&str, &str)]) -> String {
    let mut s = std::fs::read_to_string(manifests().join(file)).expect("read manifest");
    for (from, to) in edits {
        assert!(s.contains(from), "{file} has no {from:?}");
        s = s.replace(from, to);
    }
    s
}

/// `kubectl get -w` in the background: its stdout is collected until it is killed by PID.
struct Watcher {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Watcher {
    fn start(k: &Kubectl, args: &[&str]) -> Watcher {
        let mut child = Command::new(&k.bin)
            .args(args)
            .arg(REQUEST_TIMEOUT)
            .env("KUBECONFIG", k.server.kubeconfig())
            .env("HOME", k.server.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kubectl get -w");
        let out = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stdout.take().expect("piped stdout");
        let sink = Arc::clone(&out);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        Watcher { child, out }
    }

    fn output(&self) -> String {
        self.out.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits (at most 30 s) until a squashed line of the output satisfies `pred`.
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.output();
            if out.lines().map(squash).any(|l| pred(&l)) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "kubectl get -w never showed {what}; it printed:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // Child::kill signals this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn api_resources(k: &Kubectl) {
    let out = k.ok(&["api-resources"]);
    let header = squash(out.lines().next().unwrap_or_default());
    assert_eq!(
        header, "NAME SHORTNAMES APIVERSION NAMESPACED KIND",
        "{out}"
    );
    let rows: Vec<String> = out.lines().map(squash).collect();
    for want in [
        "pods po v1 true Pod",
        "services svc v1 true Service",
        "replicationcontrollers rc v1 true ReplicationController",
        "configmaps cm v1 true ConfigMap",
        "secrets v1 true Secret",
        "namespaces ns v1 false Namespace",
        "events ev v1 true Event",
        "deployments deploy apps/v1 true Deployment",
        "statefulsets sts apps/v1 true StatefulSet",
        "daemonsets ds apps/v1 true DaemonSet",
        "replicasets rs apps/v1 true ReplicaSet",
        "jobs batch/v1 true Job",
        "cronjobs cj batch/v1 true CronJob",
        "ingresses ing networking.k8s.io/v1 true Ingress",
        "customresourcedefinitions crd,crds apiextensions.k8s.io/v1 false CustomResourceDefinition",
    ] {
        assert!(
            rows.iter().any(|r| r == want),
            "api-resources has no row {want:?}:\n{out}"
        );
    }
    let apps = k.ok(&["api-resources", "--api-group=apps", "-o", "name"]);
    for r in [
        "deployments.apps",
        "statefulsets.apps",
        "daemonsets.apps",
        "replicasets.apps",
        "controllerrevisions.apps",
    ] {
        assert!(apps.lines().any(|l| l == r), "no {r} in:\n{apps}");
    }
}

fn apply_creates_then_unchanged(k: &Kubectl) {
    let args = Kubectl::apply_args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = k.ok(&args);
    let want: Vec<String> = MANIFESTS
        .iter()
        .map(|(_, obj)| format!("{obj} created"))
        .collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), want, "{out}");

    // Every object as the seeds describe it.
    let d = k.json(&["get", "deployment", "services"]);
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        4200
    );
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate", "defaulted");
    let rc = k.json(&["get", "rc", "quote-frontend"]);
    assert_eq!(
        rc["spec"]["template"]["spec"]["containers"][0]["env"][0],
        serde_json::json!({"name": "GET_HOSTS_FROM", "value": "env"})
    );
    let pod = k.json(&["get", "pod", "quote-store"]);
    assert_eq!(
        pod["spec"]["volumes"][0],
        serde_json::json!({"name": "quote-store-volume", "emptyDir": {}})
    );
    assert_eq!(pod["status"]["phase"], "Pending");
    let ns = k.json(&["get", "namespace", "staging"]);
    assert_eq!(ns["status"]["phase"], "Active");

    // Applying the same files again changes nothing.
    let again = k.ok(&args);
    let want: Vec<String> = MANIFESTS
        .iter()
        .map(|(_, obj)| format!("{obj} unchanged"))
        .collect();
    assert_eq!(again.lines().collect::<Vec<_>>(), want, "{again}");
    let d2 = k.json(&["get", "deployment", "services"]);
    assert_eq!(
        d2["metadata"]["resourceVersion"], d["metadata"]["resourceVersion"],
        "an unchanged apply writes nothing"
    );
}

fn validation_is_on(k: &Kubectl) {
    let out = k.run(&["apply", "-f", &manifest("extra/deployment-invalid.yaml")]);
    assert!(
        !out.status.success(),
        "a typo must be refused: {}",
        k.describe(&["apply"], &out)
    );
    let err = text(&out.stderr);
    assert!(err.contains("replicaz"), "{err}");
    match k.version {
        // 1.20 validates on the client, against /openapi/v2 in protobuf.
        Version::V120 => assert!(
            err.contains("error validating") && err.contains("unknown field \"replicaz\""),
            "{err}"
        ),
        // 1.35 asks the server for fieldValidation=Strict.
        Version::V135 => assert!(err.contains("strict decoding error"), "{err}"),
    }
    k.exits(1, &["get", "deployment", "typo"]);
}

fn apply_patches_a_change(k: &Kubectl) {
    let deployment = edited(
        "deployment-services.yaml",
        &[
            (
                "image: recipher/ap-docker-services",
                "image: recipher/ap-docker-services:v2\n        env:\n        - name: PORT\n          value: \"4200\"",
            ),
            ("replicas: 1", "replicas: 2"),
        ],
    );
    let configmap = edited(
        "configmap.yaml",
        &[("  LOG_LEVEL: info\n", ""), ("color=blue", "color=green")],
    );
    let d = k.write("deployment-v2.yaml", &deployment);
    let c = k.write("configmap-v2.yaml", &configmap);
    let out = k.ok(&["apply", "-f", &d, "-f", &c]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "deployment.apps/services configured",
            "configmap/app-config configured"
        ],
        "{out}"
    );
    let dep = k.json(&["get", "deployment", "services"]);
    let container = &dep["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "recipher/ap-docker-services:v2");
    assert_eq!(
        container["env"],
        serde_json::json!([{"name": "PORT", "value": "4200"}])
    );
    assert_eq!(
        container["ports"][0]["containerPort"], 4200,
        "merged by name"
    );
    assert_eq!(dep["spec"]["replicas"], 2);
    assert_eq!(dep["metadata"]["generation"], 2);
    let (_, row) = k.wide(&["deployments"], "services");
    assert!(
        row.contains(" services recipher/ap-docker-services:v2 app=ap-docker"),
        "{row}"
    );
    let cm = k.json(&["get", "configmap", "app-config"]);
    assert_eq!(
        cm["data"],
        serde_json::json!({"app.properties": "greeting=hello\ncolor=green\n"}),
        "a key dropped from the manifest is removed; a changed one is updated"
    );
    let again = k.ok(&["apply", "-f", &d, "-f", &c]);
    assert!(again.lines().all(|l| l.ends_with(" unchanged")), "{again}");
}

fn secret_string_data(k: &Kubectl) {
    k.ok(&["apply", "-f", &manifest("extra/secret-stringdata.yaml")]);
    let s = k.json(&["get", "secret", "db-credentials"]);
    assert_eq!(
        s["data"],
        serde_json::json!({"host": "ZGIuZXhhbXBsZQ==", "username": "cXVvdGVz", "password": "aHVudGVyMg=="}),
        "stringData is folded into data"
    );
    assert_eq!(s.get("stringData"), None, "stringData is never stored");
    let (header, row) = k.wide(&["secrets"], "db-credentials");
    assert_eq!(header, "NAME TYPE DATA AGE");
    assert!(row.starts_with("db-credentials Opaque 3 "), "{row}");
    // Typed secrets hold their keys; an immutable ConfigMap keeps its data.
    let tls = r#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "half-tls"},
        "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}"#;
    let out = k.run_stdin(&["apply", "-f", "-"], tls);
    assert!(
        text(&out.stderr).contains("data[tls.key]: Required value"),
        "{}",
        k.describe(&["apply", "-f", "-"], &out)
    );
    let frozen = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "frozen"},
        "immutable": true, "data": {"a": "b"}}"#;
    k.ok_stdin(&["apply", "-f", "-"], frozen);
    let thaw = [
        "patch",
        "configmap",
        "frozen",
        "-p",
        r#"{"data":{"a":"c"}}"#,
    ];
    k.fails_with(
        &thaw,
        "data: Forbidden: field is immutable when `immutable` is set",
    );
    k.ok(&["label", "configmap", "frozen", "still=mutable"]);
}

fn apply_server_side(k: &Kubectl) {
    let file = manifest("extra/configmap-ssa.yaml");
    let out = k.ok(&["apply", "--server-side", "-f", &file]);
    assert_eq!(out.trim(), "configmap/ssa-config serverside-applied");
    let cm = k.json_with_managed_fields(&["get", "configmap", "ssa-config"]);
    assert_eq!(cm["data"]["mode"], "server-side");
    let managers = cm["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        managers
            .iter()
            .any(|m| m["manager"] == "kubectl" && m["operation"] == "Apply"),
        "{managers:?}"
    );
    assert!(
        cm["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_null(),
        "server-side apply keeps no last-applied annotation"
    );
    // Applying again is idempotent.
    let rv = cm["metadata"]["resourceVersion"].clone();
    k.ok(&["apply", "--server-side", "-f", &file]);
    let cm = k.json(&["get", "configmap", "ssa-config"]);
    assert_eq!(cm["metadata"]["resourceVersion"], rv, "no-op apply");

    // Another manager changing an owned field conflicts, unless it forces.
    let other = k.write(
        "configmap-ssa-other.yaml",
        &edited(
            "extra/configmap-ssa.yaml",
            &[("replicas: \"3\"", "replicas: \"5\"")],
        ),
    );
    let out = k.exits(
        1,
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "-f",
            &other,
        ],
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"kubectl\": .data.replicas"),
        "{err}"
    );
    k.ok(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        &other,
    ]);
    assert_eq!(
        k.jsonpath(&["get", "configmap", "ssa-config"], "{.data.replicas}"),
        "5"
    );

    // A client-side applied object can be taken over by server-side apply.
    let out = k.ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        &manifest("daemonset.yaml"),
    ]);
    assert_eq!(out.trim(), "daemonset.apps/node-logger serverside-applied");
}

fn get_output_formats(k: &Kubectl) {
    // Headers are upstream's for each kind (kubernetes/pkg/printers/internalversion). Rows are
    // checked only as far as no controller or node changes them (no agent runs here).
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "deployments",
            "services",
            "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR",
            "services 0/2 ",
        ),
        (
            "replicationcontrollers",
            "quote-frontend",
            "NAME DESIRED CURRENT READY AGE CONTAINERS IMAGES SELECTOR",
            "quote-frontend 2 ",
        ),
        (
            "services",
            "quote-frontend",
            "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE SELECTOR",
            "quote-frontend NodePort 10.43.",
        ),
        (
            "services",
            "quote-store",
            "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE SELECTOR",
            "quote-store ClusterIP 10.43.",
        ),
        (
            "pods",
            "quote-store",
            "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES",
            "quote-store 0/1 Pending 0",
        ),
        ("configmaps", "app-config", "NAME DATA AGE", "app-config 1 "),
        (
            "secrets",
            "app-secret",
            "NAME TYPE DATA AGE",
            "app-secret Opaque 2 ",
        ),
        (
            "namespaces",
            "staging",
            "NAME STATUS AGE",
            "staging Active ",
        ),
        (
            "jobs",
            "pi",
            "NAME STATUS COMPLETIONS DURATION AGE CONTAINERS IMAGES SELECTOR",
            "pi Running 0/1 ",
        ),
        (
            "cronjobs",
            "hello",
            "NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE CONTAINERS IMAGES SELECTOR",
            "hello 0 0 1 1 * <none> False 0 <none> ",
        ),
        (
            "ingresses",
            "quote",
            "NAME CLASS HOSTS ADDRESS PORTS AGE",
            "quote <none> quotes.example.com 80 ",
        ),
        (
            "statefulsets",
            "web",
            "NAME READY AGE CONTAINERS IMAGES",
            "web 0/2 ",
        ),
        (
            "daemonsets",
            "node-logger",
            "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE CONTAINERS IMAGES SELECTOR",
            "node-logger 0 0 0 0 0 <none> ",
        ),
    ];
    for (kind, name, header, row_start) in cases {
        let (h, row) = k.wide(&[kind], name);
        assert_eq!(&h, header, "get {kind} -o wide");
        assert!(
            row.starts_with(row_start),
            "get {kind} -o wide: row {row:?} does not start with {row_start:?}"
        );
    }
    let (_, row) = k.wide(&["services"], "quote-frontend");
    assert!(
        row.contains(":3") && row.contains("/TCP") && row.contains(" 8000:"),
        "a NodePort service shows PORT:NODEPORT/TCP: {row}"
    );
    assert!(row.ends_with("app=quote-api,role=frontend"), "{row}");
    let (_, row) = k.wide(&["statefulsets"], "web");
    assert!(row.ends_with(" nginx nginx:1.27"), "{row}");
    let (_, row) = k.wide(&["jobs"], "pi");
    assert!(
        row.contains(" pi perl:5.34 batch.kubernetes.io/controller-uid="),
        "{row}"
    );
    let (_, row) = k.wide(&["daemonsets"], "node-logger");
    assert!(
        row.ends_with(" logger busybox:1.36 app=node-logger"),
        "{row}"
    );

    // Several kinds at once print one table per kind, each named kind/name.
    let out = k.ok(&["get", "deploy,rc,svc"]);
    for want in [
        "deployment.apps/services",
        "replicationcontroller/quote-frontend",
        "service/quote-frontend",
        "service/quote-store",
        "service/kubernetes",
    ] {
        assert!(out.contains(want), "{want} missing from:\n{out}");
    }

    // -o yaml and -o json carry the whole object.
    let yaml = k.ok(&["get", "deployment", "services", "-o", "yaml"]);
    for want in [
        "apiVersion: apps/v1\n",
        "kind: Deployment\n",
        "  name: services\n",
        "  namespace: default\n",
        "  uid: ",
        "  resourceVersion: \"",
        "  creationTimestamp: \"",
        "      app: ap-docker\n",
        "        image: recipher/ap-docker-services:v2\n",
        // Defaulted when the image had no tag, and kept when the apply changed the image.
        "        imagePullPolicy: Always\n",
        "        - containerPort: 4200\n",
    ] {
        assert!(yaml.contains(want), "{want:?} missing from:\n{yaml}");
    }
    let list = k.json(&["get", "pods,services"]);
    assert_eq!(list["kind"], "List");
    let names: Vec<&str> = list["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["metadata"]["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    for n in ["quote-store", "quote-frontend", "kubernetes"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let svc = k.json(&["get", "service", "quote-frontend"]);
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap_or(0);
    assert!((30000..=32767).contains(&node_port), "{svc}");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
    let names = k.ok(&["get", "pods", "-o", "name"]);
    assert!(names.lines().any(|l| l == "pod/quote-store"), "{names}");
    // The RC's pods (made by the replication controller) carry its template's labels.
    let by_label = k.ok(&[
        "get",
        "pods,rc,svc",
        "-l",
        "app=quote-api,role!=frontend",
        "-o",
        "name",
    ]);
    assert_eq!(by_label.lines().collect::<Vec<_>>(), ["pod/quote-store"]);
    let by_label = k.ok(&["get", "rc,svc", "-l", "app=quote-api", "-o", "name"]);
    assert_eq!(
        by_label.lines().collect::<Vec<_>>(),
        ["replicationcontroller/quote-frontend"],
        "the RC's labels are defaulted from its template; the services have none"
    );
}

fn watch_sees_a_change(k: &Kubectl) {
    let w = Watcher::start(k, &["get", "deployment", "services", "-w"]);
    w.wait_for("the initial row", |l| l.starts_with("services 0/2 "));
    k.ok(&["scale", "deployment", "services", "--replicas=5"]);
    let out = w.wait_for("the scaled deployment", |l| l.starts_with("services 0/5 "));
    assert!(
        out.lines()
            .next()
            .is_some_and(|h| squash(h).starts_with("NAME READY UP-TO-DATE")),
        "{out}"
    );
    drop(w);

    // A watch of a whole kind sees an object appear and change.
    let w = Watcher::start(k, &["get", "configmaps", "-w", "-o", "wide"]);
    w.wait_for("the existing configmaps", |l| l.starts_with("app-config "));
    k.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\ndata:\n  a: \"1\"\n",
    );
    w.wait_for("the new configmap", |l| l.starts_with("watched 1 "));
    k.ok(&[
        "patch",
        "configmap",
        "watched",
        "-p",
        r#"{"data":{"b":"2"}}"#,
    ]);
    w.wait_for("the patched configmap", |l| l.starts_with("watched 2 "));
    drop(w);
    k.ok(&["scale", "deployment", "services", "--replicas=2"]);
}

fn describe_shows_objects_and_events(k: &Kubectl) {
    let uid = k.jsonpath(&["get", "deployment", "services"], "{.metadata.uid}");
    let event = std::fs::read_to_string(manifests().join("extra/event-services.yaml"))
        .expect("read event manifest")
        .replace("uid: UID", &format!("uid: {uid}"));
    k.ok_stdin(&["create", "-f", "-"], &event);

    let out = k.ok(&["describe", "deployment/services"]);
    for want in [
        "Name: services",
        "Namespace: default",
        "Labels: app=ap-docker",
        "Selector: app=ap-docker",
        "Replicas: 2 desired | ",
        "StrategyType: RollingUpdate",
        "RollingUpdateStrategy: 25% max unavailable, 25% max surge",
        "Image: recipher/ap-docker-services:v2",
        "Port: 4200/TCP",
        "Type Reason Age From Message",
        "Normal ScalingReplicaSet",
        "deployment-controller Scaled up replica set services-6d5f8 to 1",
    ] {
        assert!(
            out.lines().map(squash).any(|l| l.contains(want)),
            "describe deployment: {want:?} missing from:\n{out}"
        );
    }

    let out = k.ok(&["describe", "pod", "quote-store"]);
    for want in [
        "Name: quote-store",
        "Status: Pending",
        "/data/redis from quote-store-volume (rw)",
        "quote-store-volume:",
        "Type: EmptyDir (a temporary directory that shares a pod's lifetime)",
        "QoS Class: BestEffort",
    ] {
        assert!(
            out.lines().map(squash).any(|l| l.contains(want)),
            "describe pod: {want:?} missing from:\n{out}"
        );
    }

    let out = k.ok(&["describe", "rc", "quote-frontend"]);
    for want in [
        "Name: quote-frontend",
        "Selector: app=quote-api,role=frontend",
        " current / 2 desired",
        "Image: g1g1/quote-service",
        "GET_HOSTS_FROM: env",
    ] {
        assert!(
            out.lines().map(squash).any(|l| l.contains(want)),
            "describe rc: {want:?} missing from:\n{out}"
        );
    }

    let out = k.ok(&["describe", "service", "quote-frontend"]);
    for want in [
        "Name: quote-frontend",
        "Selector: app=quote-api,role=frontend",
        "Type: NodePort",
        "Port: <unset> 8000/TCP",
        "TargetPort: 80/TCP",
        "NodePort: <unset> 3",
    ] {
        assert!(
            out.lines().map(squash).any(|l| l.contains(want)),
            "describe service: {want:?} missing from:\n{out}"
        );
    }
    let out = k.ok(&["describe", "namespace", "staging"]);
    assert!(
        out.lines().map(squash).any(|l| l == "Status: Active"),
        "{out}"
    );

    // Every other kind of the manifests describes too.
    for (what, wants) in [
        (
            "secret/app-secret",
            &[
                "Name: app-secret",
                "Type: Opaque",
                "password: 6 bytes",
                "username: 5 bytes",
            ][..],
        ),
        (
            "configmap/app-config",
            &["Name: app-config", "app.properties:", "greeting=hello"][..],
        ),
        (
            "job/pi",
            &["Name: pi", "Completions: 1", "Image: perl:5.34"][..],
        ),
        (
            "statefulset/web",
            &["Name: web", "Replicas: 2 desired", "Image: nginx:1.27"][..],
        ),
        (
            "daemonset/node-logger",
            &[
                "Name: node-logger",
                "Selector: app=node-logger",
                "Image: busybox:1.36",
            ][..],
        ),
        (
            "ingress/quote",
            &["Name: quote", "quotes.example.com", "/ quote-frontend:8000"][..],
        ),
        (
            "service/quote-store",
            &[
                "Name: quote-store",
                "Type: ClusterIP",
                "TargetPort: 6379/TCP",
            ][..],
        ),
    ] {
        let out = k.ok(&["describe", what]);
        for want in wants {
            assert!(
                out.lines().map(squash).any(|l| l.contains(want)),
                "describe {what}: {want:?} missing from:\n{out}"
            );
        }
    }
    match k.version {
        // kubectl 1.20 describes CronJobs through batch/v1beta1, which Kubernetes stopped
        // serving in 1.25; a real 1.35 cluster answers it the same way.
        Version::V120 => {
            let out = k.exits(1, &["describe", "cronjob/hello"]);
            assert!(
                text(&out.stderr).contains("the server could not find the requested resource"),
                "{}",
                text(&out.stderr)
            );
        }
        Version::V135 => {
            let out = k.ok(&["describe", "cronjob/hello"]);
            for want in [
                "Name: hello",
                "Schedule: 0 0 1 1 *",
                "Suspend: False",
                "Image: busybox:1.36",
            ] {
                assert!(
                    out.lines().map(squash).any(|l| l.contains(want)),
                    "describe cronjob: {want:?} missing from:\n{out}"
                );
            }
        }
    }
}

fn label_and_annotate(k: &Kubectl) {
    let out = k.ok(&["label", "deployment", "services", "tier=backend"]);
    assert_eq!(out.trim(), "deployment.apps/services labeled");
    let out = k.ok(&["get", "deployments", "-l", "tier=backend", "-o", "name"]);
    assert_eq!(out.trim(), "deployment.apps/services");
    let (header, row) = k.wide(&["deployments", "-L", "tier"], "services");
    assert!(header.ends_with(" SELECTOR TIER"), "{header}");
    assert!(row.ends_with(" app=ap-docker backend"), "{row}");
    // An existing label is changed only with --overwrite.
    k.exits(1, &["label", "deployment", "services", "tier=frontend"]);
    k.ok(&[
        "label",
        "deployment",
        "services",
        "tier=frontend",
        "--overwrite",
    ]);
    assert_eq!(
        k.jsonpath(
            &["get", "deployment", "services"],
            "{.metadata.labels.tier}"
        ),
        "frontend"
    );
    k.ok(&["label", "deployment", "services", "tier-"]);
    let labels = k.json(&["get", "deployment", "services"])["metadata"]["labels"].clone();
    assert_eq!(labels, serde_json::json!({"app": "ap-docker"}));
    k.ok(&["label", "pods", "--all", "checked=yes"]);
    // Every pod was labelled: the bare one and those the controllers made.
    let checked = k.ok(&["get", "pods", "-l", "checked=yes", "-o", "name"]);
    assert!(checked.lines().any(|l| l == "pod/quote-store"), "{checked}");
    assert!(
        checked
            .lines()
            .any(|l| l.starts_with("pod/quote-frontend-")),
        "{checked}"
    );

    let out = k.ok(&[
        "annotate",
        "deployment",
        "services",
        "owner=quotes-team",
        "description=the ap-docker services",
    ]);
    assert_eq!(out.trim(), "deployment.apps/services annotated");
    let ann = k.json(&["get", "deployment", "services"])["metadata"]["annotations"].clone();
    assert_eq!(ann["owner"], "quotes-team");
    assert_eq!(ann["description"], "the ap-docker services");
    assert!(
        ann["kubectl.kubernetes.io/last-applied-configuration"].is_string(),
        "annotate keeps the last-applied annotation"
    );
    k.exits(1, &["annotate", "deployment", "services", "owner=someone"]);
    k.ok(&["annotate", "deployment", "services", "owner-"]);
    let ann = k.json(&["get", "deployment", "services"])["metadata"]["annotations"].clone();
    assert!(ann.get("owner").is_none(), "{ann}");
}

fn scale(k: &Kubectl) {
    for (kind, name, replicas, printed) in [
        (
            "deployment",
            "services",
            "3",
            "deployment.apps/services scaled",
        ),
        (
            "rc",
            "quote-frontend",
            "1",
            "replicationcontroller/quote-frontend scaled",
        ),
        ("statefulset", "web", "1", "statefulset.apps/web scaled"),
    ] {
        let out = k.ok(&["scale", kind, name, &format!("--replicas={replicas}")]);
        assert_eq!(out.trim(), printed);
        assert_eq!(
            k.jsonpath(&["get", kind, name], "{.spec.replicas}"),
            replicas
        );
    }
    // The precondition is checked.
    k.exits(
        1,
        &[
            "scale",
            "deployment",
            "services",
            "--current-replicas=7",
            "--replicas=1",
        ],
    );
    k.ok(&[
        "scale",
        "deployment",
        "services",
        "--current-replicas=3",
        "--replicas=2",
    ]);
    assert_eq!(
        k.jsonpath(&["get", "deployment", "services"], "{.spec.replicas}"),
        "2"
    );
    // A kind without a scale subresource is refused.
    k.exits(1, &["scale", "configmap", "app-config", "--replicas=2"]);
    if k.version == Version::V135 {
        // `get --subresource=scale` prints the Scale's own table.
        let (header, row) = k.wide(
            &["deployment", "services", "--subresource=scale"],
            "services",
        );
        assert_eq!(header, "NAME DESIRED AVAILABLE AGE");
        assert!(row.starts_with("services 2 "), "{row}");
    }
}

fn explain(k: &Kubectl) {
    let out = k.ok(&["explain", "deployment.spec"]);
    let squashed: Vec<String> = out.lines().map(squash).collect();
    let has = |want: &str| squashed.iter().any(|l| l.starts_with(want));
    match k.version {
        // 1.20 reads /openapi/v2.
        Version::V120 => {
            assert!(has("KIND: Deployment"), "{out}");
            assert!(has("VERSION: apps/v1"), "{out}");
            assert!(has("RESOURCE: spec <Object>"), "{out}");
        }
        // 1.35 reads /openapi/v3/apis/apps/v1.
        Version::V135 => {
            assert!(has("GROUP: apps"), "{out}");
            assert!(has("KIND: Deployment"), "{out}");
            assert!(has("VERSION: v1"), "{out}");
            assert!(has("FIELD: spec <DeploymentSpec>"), "{out}");
        }
    }
    for want in [
        "DESCRIPTION:",
        "FIELDS:",
        "replicas <integer>",
        "template <Object> -required-",
        "strategy <Object>",
        "minReadySeconds <integer>",
    ] {
        let want = match (k.version, want) {
            (Version::V135, "template <Object> -required-") => {
                "template <PodTemplateSpec> -required-"
            }
            (Version::V135, "strategy <Object>") => "strategy <DeploymentStrategy>",
            _ => want,
        };
        assert!(has(want), "explain deployment.spec: no {want:?} in:\n{out}");
    }
    let out = k.ok(&["explain", "deployment.spec.strategy.type"]);
    assert!(out.contains("Recreate"), "{out}");
    let out = k.ok(&["explain", "pods.spec.volumes.emptyDir"]);
    assert!(
        out.lines()
            .map(squash)
            .any(|l| l.starts_with("sizeLimit <")),
        "{out}"
    );
}

fn diff(k: &Kubectl) {
    // The live objects equal these manifests: no diff, exit 0.
    let configmap = edited(
        "configmap.yaml",
        &[("  LOG_LEVEL: info\n", ""), ("color=blue", "color=green")],
    );
    let same = k.write("configmap-v2.yaml", &configmap);
    let out = k.exits(0, &["diff", "-f", &same]);
    assert_eq!(text(&out.stdout), "", "no diff expected");
    k.exits(0, &["diff", "-f", &manifest("ingress.yaml")]);

    // A changed manifest: exit 1 and a unified diff of what apply would change.
    let changed = k.write(
        "configmap-v3.yaml",
        &configmap.replace("color=green", "color=red"),
    );
    let out = k.exits(1, &["diff", "-f", &changed]);
    let diff = text(&out.stdout);
    assert!(
        diff.contains("-    color=green") && diff.contains("+    color=red"),
        "{diff}"
    );
    assert!(diff.contains("v1.ConfigMap.default.app-config"), "{diff}");
    // diff is a dry run: nothing changed.
    assert_eq!(
        k.jsonpath(
            &["get", "configmap", "app-config"],
            "{.data.app\\.properties}"
        ),
        "greeting=hello\ncolor=green\n"
    );
    // A new object diffs against nothing.
    let new = k.write(
        "configmap-new.yaml",
        &configmap.replace("name: app-config", "name: not-yet"),
    );
    let out = k.exits(1, &["diff", "-f", &new]);
    assert!(
        text(&out.stdout).contains("+  name: not-yet"),
        "{}",
        text(&out.stdout)
    );
    k.exits(1, &["get", "configmap", "not-yet"]);
}

/// A finalizer of the test's own: it holds an object that is being deleted, so that the states
/// in between stay observable however fast the garbage collector is.
const HOLD: &str = "skiff.test/hold";

/// Creates a pod owned by `kind/name` (a dependent for the garbage collector), held by `HOLD`.
fn owned_pod(k: &Kubectl, pod: &str, api: &str, kind: &str, resource: &str, name: &str) {
    let uid = k.jsonpath(&["get", resource, name], "{.metadata.uid}");
    let m = std::fs::read_to_string(manifests().join("extra/pod-owned.yaml"))
        .expect("read pod manifest")
        .replace("name: NAME", &format!("name: {pod}"))
        .replace("HOLD", HOLD)
        .replace("OWNER_API", api)
        .replace("OWNER_KIND", kind)
        .replace("OWNER_NAME", name)
        .replace("OWNER_UID", &uid);
    k.ok_stdin(&["create", "-f", "-"], &m);
}

/// Creates a ConfigMap owned by `kind/name`, held by `HOLD`: a dependent that no workload
/// controller claims or releases (a pod would be released by a ReplicationController or
/// StatefulSet whose selector it does not match, as upstream's controllers do).
fn owned_configmap(k: &Kubectl, cm: &str, api: &str, kind: &str, resource: &str, name: &str) {
    let uid = k.jsonpath(&["get", resource, name], "{.metadata.uid}");
    let pod = std::fs::read_to_string(manifests().join("extra/pod-owned.yaml"))
        .expect("read pod manifest");
    let head = pod.split("\nspec:").next().unwrap_or_default();
    let m = head
        .replace("kind: Pod", "kind: ConfigMap")
        .replace("name: NAME", &format!("name: {cm}"))
        .replace("HOLD", HOLD)
        .replace("OWNER_API", api)
        .replace("OWNER_KIND", kind)
        .replace("OWNER_NAME", name)
        .replace("OWNER_UID", &uid);
    k.ok_stdin(&["create", "-f", "-"], &m);
}

/// Polls `get -o json` (at most 30 s) until `pred` holds for the object.
#[track_caller]
fn wait_until(k: &Kubectl, what: &str, args: &[&str], pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = k.json(args);
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "never saw {what}: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls (at most 30 s) until every `kind/name` answers NotFound. (`kubectl wait --for=delete`
/// of 1.20 fails when the object is already gone, so the test polls itself.)
#[track_caller]
fn wait_gone(k: &Kubectl, objects: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for o in objects {
        loop {
            let out = k.run(&["get", o]);
            let err = text(&out.stderr);
            if !out.status.success() && err.contains("NotFound") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{o} is still there: {}",
                k.describe(&["get", o], &out)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn finalizers(v: &Value) -> Vec<&str> {
    v["metadata"]["finalizers"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn being_deleted(v: &Value) -> bool {
    v["metadata"]["deletionTimestamp"].is_string()
}

/// Drops `HOLD` (and any other finalizer) from an object.
fn release(k: &Kubectl, resource: &str, name: &str) {
    k.ok(&[
        "patch",
        resource,
        name,
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
}

fn delete_with_propagation(k: &Kubectl) {
    owned_pod(
        k,
        "services-dep",
        "apps/v1",
        "Deployment",
        "deployment",
        "services",
    );
    owned_configmap(
        k,
        "web-held",
        "apps/v1",
        "StatefulSet",
        "statefulset",
        "web",
    );
    owned_configmap(
        k,
        "quote-frontend-dep",
        "v1",
        "ReplicationController",
        "rc",
        "quote-frontend",
    );

    // Foreground: the API server marks the owner (deletionTimestamp and the foregroundDeletion
    // finalizer); the garbage collector deletes the dependents that block it, then removes the
    // finalizer. services-dep is held, so the owner must still be there, marked.
    let out = k.ok(&[
        "delete",
        "deployment",
        "services",
        "--cascade=foreground",
        "--wait=false",
    ]);
    assert!(
        out.starts_with("deployment.apps \"services\" deleted"),
        "{out}"
    );
    let d = k.json(&["get", "deployment", "services"]);
    assert!(being_deleted(&d), "{d}");
    assert_eq!(finalizers(&d), ["foregroundDeletion"]);
    wait_until(
        k,
        "the collector deleting the dependent services-dep",
        &["get", "pod", "services-dep"],
        being_deleted,
    );
    let d = k.json(&["get", "deployment", "services"]);
    assert_eq!(
        finalizers(&d),
        ["foregroundDeletion"],
        "the owner waits for its blocking dependent"
    );
    release(k, "pod", "services-dep");
    wait_gone(k, &["pod/services-dep", "deployment/services"]);

    // Background: the owner goes at once, then the collector deletes its dependents.
    let out = k.ok(&["delete", "statefulset", "web", "--cascade=background"]);
    assert!(out.starts_with("statefulset.apps \"web\" deleted"), "{out}");
    k.exits(1, &["get", "statefulset", "web"]);
    wait_until(
        k,
        "the collector deleting the dependent web-held",
        &["get", "configmap", "web-held"],
        being_deleted,
    );
    release(k, "configmap", "web-held");
    wait_gone(k, &["configmap/web-held"]);

    // Orphan: the API server adds the orphan finalizer; the collector removes the owner
    // references from the dependents, then that finalizer. The RC is held to observe this.
    k.ok(&[
        "patch",
        "rc",
        "quote-frontend",
        "--type=merge",
        "-p",
        &format!(r#"{{"metadata":{{"finalizers":["{HOLD}"]}}}}"#),
    ]);
    let out = k.ok(&[
        "delete",
        "rc",
        "quote-frontend",
        "--cascade=orphan",
        "--wait=false",
    ]);
    assert!(
        out.starts_with("replicationcontroller \"quote-frontend\" deleted"),
        "{out}"
    );
    let rc = k.json(&["get", "rc", "quote-frontend"]);
    assert!(being_deleted(&rc), "{rc}");
    assert!(finalizers(&rc).contains(&HOLD), "{rc}");
    let pod = wait_until(
        k,
        "the collector orphaning quote-frontend-dep",
        &["get", "configmap", "quote-frontend-dep"],
        |p| {
            p["metadata"]["ownerReferences"]
                .as_array()
                .is_none_or(Vec::is_empty)
        },
    );
    assert!(!being_deleted(&pod), "an orphan is not deleted: {pod}");
    wait_until(
        k,
        "the collector removing the orphan finalizer",
        &["get", "rc", "quote-frontend"],
        |rc| finalizers(rc) == [HOLD],
    );
    release(k, "rc", "quote-frontend");
    wait_gone(k, &["rc/quote-frontend"]);
    k.ok(&["get", "configmap", "quote-frontend-dep"]);

    // Plain deletes of the rest, by file: kubectl sends propagationPolicy=Background.
    let mut args = vec!["delete".to_string()];
    for f in [
        "configmap.yaml",
        "secret.yaml",
        "job.yaml",
        "cronjob.yaml",
        "ingress.yaml",
        "daemonset.yaml",
        "srv-quote-frontend.yaml",
        "srv-quote-store.yaml",
    ] {
        args.push("-f".into());
        args.push(manifest(f));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = k.ok(&args);
    assert_eq!(out.lines().count(), 8, "{out}");
    for gone in [
        "configmap/app-config",
        "secret/app-secret",
        "job/pi",
        "cronjob/hello",
        "ingress/quote",
        "daemonset/node-logger",
        "service/quote-frontend",
        "service/quote-store",
    ] {
        k.exits(1, &["get", gone]);
    }

    // A namespace goes with everything in it (the namespace controller empties it first).
    k.ok(&[
        "create",
        "configmap",
        "in-staging",
        "-n",
        "staging",
        "--from-literal=a=b",
    ]);
    let out = k.ok(&["delete", "namespace", "staging", "--wait=false"]);
    assert!(out.starts_with("namespace \"staging\" deleted"), "{out}");
    wait_gone(k, &["namespace/staging"]);
    k.exits(1, &["get", "configmap", "in-staging", "-n", "staging"]);
}

/// The in-process scheduler and controllers write under their upstream names, so that
/// managedFields (and apply conflicts) name `kube-scheduler` and `kube-controller-manager`.
fn components_manage_their_writes(k: &Kubectl) {
    let managers = |v: &Value| -> Vec<(String, String)> {
        v["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let field = |f: &str| m[f].as_str().unwrap_or("").to_string();
                (field("manager"), field("subresource"))
            })
            .collect()
    };
    let shown = |args: &[&'static str]| {
        let mut all = args.to_vec();
        if k.version == Version::V135 {
            all.push("--show-managed-fields");
        }
        all
    };
    let scheduled = ("kube-scheduler".to_string(), "status".to_string());
    wait_until(
        k,
        "the scheduler's status write on pod/quote-store",
        &shown(&["get", "pod", "quote-store"]),
        |v| managers(v).contains(&scheduled),
    );
    let rolled = ("kube-controller-manager".to_string(), "status".to_string());
    wait_until(
        k,
        "the deployment controller's status write",
        &shown(&["get", "deployment", "services"]),
        |v| managers(v).contains(&rolled),
    );
}

/// `kubectl auth can-i` and `auth whoami` send review objects; `--as` impersonates. Under
/// the admin-only policy the admin may do everything and anyone else only the basics.
fn auth_reviews_and_impersonation(k: &Kubectl) {
    assert_eq!(k.ok(&["auth", "can-i", "create", "pods"]).trim(), "yes");
    assert_eq!(
        k.ok(&["auth", "can-i", "*", "*", "--all-namespaces"])
            .trim(),
        "yes"
    );
    let out = k.exits(1, &["auth", "can-i", "get", "pods", "--as=alice"]);
    assert_eq!(text(&out.stdout).trim(), "no");
    let yes = [
        "auth",
        "can-i",
        "delete",
        "nodes",
        "--as=alice",
        "--as-group=system:masters",
    ];
    assert_eq!(k.ok(&yes).trim(), "yes");
    let out = k.exits(1, &["get", "pods", "--as=alice"]);
    assert!(
        text(&out.stderr).contains(
            "pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        ),
        "{}",
        k.describe(&["get", "pods", "--as=alice"], &out)
    );
    let admin = k.ok(&["auth", "can-i", "--list"]);
    assert!(
        admin.lines().map(squash).any(|l| l == "*.* [] [] [*]"),
        "{admin}"
    );
    let bob = k.ok(&["auth", "can-i", "--list", "--as=bob"]);
    assert!(
        bob.lines()
            .map(squash)
            .any(|l| l == "selfsubjectaccessreviews.authorization.k8s.io [] [] [create]"),
        "{bob}"
    );
    assert!(!bob.contains("*.*"), "{bob}");
    // The reviews are answered, never stored.
    k.exits(1, &["get", "selfsubjectaccessreviews"]);
    if k.version == Version::V135 {
        let me = k.json(&["auth", "whoami"]);
        assert_eq!(me["status"]["userInfo"]["username"], "system:admin");
        let alice = k.json(&["auth", "whoami", "--as=alice", "--as-group=devs"]);
        assert_eq!(
            alice["status"]["userInfo"]["groups"],
            json!(["devs", "system:authenticated"])
        );
    }
}

/// ResourceQuota and LimitRange as upstream's admission plugins and quota controller handle
/// them: defaults from the LimitRange, its maximum enforced, usage counted into the quota's
/// status, a create past the quota refused with upstream's message, usage given back when
/// a pod goes; `get` and `describe` (kubectl's and skiff's) show them as upstream.
fn quotas_and_limit_ranges(k: &Kubectl) {
    k.ok(&["create", "namespace", "quota-ns"]);
    let ns = ["-n", "quota-ns"];
    let with_ns = |args: &[&'static str]| -> Vec<&'static str> {
        let mut all = args.to_vec();
        all.extend(ns);
        all
    };
    // Every namespace gets the cluster CA to verify the API server with.
    let ca = |v: &Value| {
        v["data"]["ca.crt"]
            .as_str()
            .is_some_and(|c| c.starts_with("-----BEGIN CERTIFICATE-----"))
    };
    let root_ca = ["get", "configmap", "kube-root-ca.crt", "-n", "quota-ns"];
    wait_until(k, "the namespace's root CA", &root_ca, ca);
    k.ok(&with_ns(&[
        "create",
        "quota",
        "q1",
        "--hard=pods=2,requests.cpu=1,limits.memory=1Gi,count/configmaps=3",
    ]));
    let limits = r#"{"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr"},
        "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
        "defaultRequest": {"cpu": "250m"}, "max": {"cpu": "1"}}]}}"#;
    k.ok_stdin(&with_ns(&["apply", "-f", "-"]), limits);
    let counted = |v: &Value| v["status"]["used"]["pods"] == "0";
    wait_until(
        k,
        "the quota counted",
        &with_ns(&["get", "quota", "q1"]),
        counted,
    );
    // The default request of memory comes from its default limit.
    let lr = k.json(&with_ns(&["get", "limitrange", "lr"]));
    assert_eq!(
        lr["spec"]["limits"][0]["defaultRequest"],
        json!({"cpu": "250m", "memory": "256Mi"})
    );
    k.ok(&with_ns(&["run", "p1", "--image=nginx"]));
    let p1 = k.json(&with_ns(&["get", "pod", "p1"]));
    assert_eq!(
        p1["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "250m", "memory": "256Mi"}})
    );
    assert_eq!(
        p1["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container p1; cpu, memory limit for container p1"
    );
    assert_eq!(p1["status"]["qosClass"], "Burstable");
    let too_big = with_ns(&[
        "run",
        "big",
        "--image=nginx",
        r#"--overrides={"spec":{"containers":[{"name":"big","image":"nginx","resources":{"limits":{"cpu":"2"}}}]}}"#,
    ]);
    k.fails_with(
        &too_big,
        "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2",
    );
    // A server-side dry run is checked but not charged.
    k.ok(&with_ns(&[
        "run",
        "p2",
        "--image=nginx",
        "--dry-run=server",
    ]));
    k.ok(&with_ns(&["run", "p2", "--image=nginx"]));
    let p3 = with_ns(&["run", "p3", "--image=nginx"]);
    k.fails_with(&p3, "pods \"p3\" is forbidden: exceeded quota: q1, requested: pods=1, used: pods=2, limited: pods=2");
    // The namespace's kube-root-ca.crt counts as a configmap, as upstream's.
    let (header, row) = k.wide(&with_ns(&["quota"]), "q1");
    assert_eq!(header, "NAME AGE REQUEST LIMIT");
    assert!(
        row.ends_with(
            "count/configmaps: 1/3, pods: 2/2, requests.cpu: 500m/1 limits.memory: 512Mi/1Gi"
        ),
        "{row}"
    );
    let described = k.ok(&with_ns(&["describe", "quota", "q1"]));
    let rows: Vec<String> = described.lines().map(squash).collect();
    for want in ["Resource Used Hard", "limits.memory 512Mi 1Gi", "pods 2 2"] {
        assert!(rows.iter().any(|r| r == want), "{want} in\n{described}");
    }
    let skiff = k.server.run(
        env!("CARGO_BIN_EXE_skiff").as_ref(),
        &with_ns(&["describe", "quota", "q1"]),
    );
    assert_eq!(text(&skiff.stdout), described, "skiff describe quota");
    // Deleting a pod gives its usage back.
    k.ok(&with_ns(&["delete", "pod", "p1", "--wait=false"]));
    let released = |v: &Value| v["status"]["used"]["pods"] == "1";
    let q = wait_until(
        k,
        "the pod's usage released",
        &with_ns(&["get", "quota", "q1"]),
        released,
    );
    assert_eq!(q["status"]["used"]["requests.cpu"], "250m");
    // So does deleting any other object a quota counts (a configmap here).
    k.ok(&with_ns(&["create", "configmap", "counted"]));
    let charged = |v: &Value| v["status"]["used"]["count/configmaps"] == "2";
    wait_until(
        k,
        "the configmap charged",
        &with_ns(&["get", "quota", "q1"]),
        charged,
    );
    k.ok(&with_ns(&["delete", "configmap", "counted"]));
    let freed = |v: &Value| v["status"]["used"]["count/configmaps"] == "1";
    wait_until(
        k,
        "the configmap's count released",
        &with_ns(&["get", "quota", "q1"]),
        freed,
    );
    // An update is charged for what it adds: a service turned NodePort needs node ports.
    k.ok(&with_ns(&[
        "create",
        "quota",
        "ports",
        "--hard=services.nodeports=1",
    ]));
    let counted = |v: &Value| v["status"]["used"]["services.nodeports"] == "0";
    wait_until(
        k,
        "node ports counted",
        &with_ns(&["get", "quota", "ports"]),
        counted,
    );
    k.ok(&with_ns(&[
        "create",
        "service",
        "clusterip",
        "web",
        "--tcp=80:80,443:443",
    ]));
    let patch = with_ns(&[
        "patch",
        "service",
        "web",
        "-p",
        r#"{"spec":{"type":"NodePort"}}"#,
    ]);
    k.fails_with(&patch, "services \"web\" is forbidden: exceeded quota: ports, requested: services.nodeports=2, used: services.nodeports=0, limited: services.nodeports=1");
    k.ok(&["delete", "namespace", "quota-ns", "--wait=false"]);
}

/// `kubectl get componentstatuses` (deprecated, still served): the scheduler and controller
/// manager are healthy while their leases are held, the datastore while it answers.
fn component_statuses(k: &Kubectl) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = k.run(&["get", "componentstatuses"]);
        let rows: Vec<String> = text(&out.stdout).lines().map(squash).collect();
        let want = [
            "NAME STATUS MESSAGE ERROR",
            "controller-manager Healthy ok",
            "etcd-0 Healthy ok",
            "scheduler Healthy ok",
        ];
        if out.status.success() && rows == want {
            assert!(
                text(&out.stderr).contains("v1 ComponentStatus is deprecated in v1.19+"),
                "{}",
                k.describe(&["get", "componentstatuses"], &out)
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            k.describe(&["get", "componentstatuses"], &out)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let etcd = k.json(&["get", "componentstatus", "etcd-0"]);
    assert_eq!(etcd["conditions"][0]["type"], "Healthy");
    k.exits(1, &["get", "componentstatus", "nothing"]);
}

/// A Secret of type `kubernetes.io/service-account-token` gets a long-lived token of its
/// account (with the CA and namespace), which authenticates while the secret holds it.
fn legacy_token_secrets(k: &Kubectl) {
    k.ok(&["create", "serviceaccount", "admin-user"]);
    let secret = r#"{"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": {"name": "admin-user-token", "annotations": {"kubernetes.io/service-account.name": "admin-user"}}}"#;
    k.ok_stdin(&["apply", "-f", "-"], secret);
    let s = k.json(&["get", "secret", "admin-user-token"]);
    let data = |key: &str| {
        let template = format!(r#"go-template={{{{index .data "{key}" | base64decode}}}}"#);
        k.ok(&["get", "secret", "admin-user-token", "-o", &template])
    };
    assert_eq!(data("namespace"), "default");
    assert!(data("ca.crt").starts_with("-----BEGIN CERTIFICATE-----"));
    let sa = k.json(&["get", "serviceaccount", "admin-user"]);
    assert_eq!(
        s["metadata"]["annotations"]["kubernetes.io/service-account.uid"],
        sa["metadata"]["uid"]
    );
    let flag = format!("--token={}", data("token"));
    // Re-applying the manifest keeps the token.
    let again = k.ok_stdin(&["apply", "-f", "-"], secret);
    assert_eq!(again.trim(), "secret/admin-user-token unchanged");
    let out = k.run(&["get", "pods", &flag]);
    assert!(
        text(&out.stderr).contains("User \"system:serviceaccount:default:admin-user\" cannot list"),
        "{}",
        k.describe(&["get", "pods", "--token"], &out)
    );
    k.ok(&["delete", "secret", "admin-user-token"]);
    let out = k.run(&["get", "pods", &flag]);
    assert!(
        text(&out.stderr).contains("Unauthorized"),
        "{}",
        k.describe(&["get", "pods", "--token"], &out)
    );
    let unnamed = r#"{"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token", "metadata": {"name": "nameless"}}"#;
    let out = k.run_stdin(&["apply", "-f", "-"], unnamed);
    assert!(
        text(&out.stderr)
            .contains("metadata.annotations[kubernetes.io/service-account.name]: Required value"),
        "{}",
        k.describe(&["apply", "-f", "-"], &out)
    );
    // A token secret lives only as long as its account: one naming an account that does not
    // exist is deleted, and so is the account's own when the account goes.
    let token_secret = |name: &str, account: &str| {
        format!(
            r#"{{"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
            "metadata": {{"name": "{name}", "annotations": {{"kubernetes.io/service-account.name": "{account}"}}}}}}"#
        )
    };
    k.ok_stdin(
        &["create", "-f", "-"],
        &token_secret("stray-token", "nobody"),
    );
    k.ok_stdin(
        &["create", "-f", "-"],
        &token_secret("kept-token", "admin-user"),
    );
    wait_gone(k, &["secret/stray-token"]);
    k.ok(&["get", "secret", "kept-token"]);
    k.ok(&["delete", "serviceaccount", "admin-user"]);
    wait_gone(k, &["secret/kept-token"]);
}

/// Pods run as the `default` service account unless they name one, which must exist.
fn pods_run_as_service_accounts(k: &Kubectl) {
    let pod = k.json(&["get", "pod", "quote-store"]);
    assert_eq!(pod["spec"]["serviceAccountName"], "default");
    assert_eq!(pod["spec"]["serviceAccount"], "default");
    let ghost = [
        "run",
        "haunted",
        "--image=nginx",
        r#"--overrides={"spec":{"serviceAccountName":"ghost"}}"#,
    ];
    k.fails_with(&ghost, "pods \"haunted\" is forbidden: error looking up service account default/ghost: serviceaccount \"ghost\" not found");
}

/// `kubectl create token` (1.24+): a signed service account token that authenticates as
/// the account (which, without RBAC bindings, may do only the basics) until the account
/// goes; TokenReview checks its audiences.
fn service_account_tokens(k: &Kubectl) {
    if k.version != Version::V135 {
        return;
    }
    k.ok(&["create", "serviceaccount", "robot"]);
    let token = k.ok(&["create", "token", "robot"]).trim().to_string();
    let as_robot = |args: &[&str]| -> Output {
        let flag = format!("--token={token}");
        let mut all = args.to_vec();
        all.push(&flag);
        k.run(&all)
    };
    let me = as_robot(&["auth", "whoami", "-o", "json"]);
    let me: Value = serde_json::from_slice(&me.stdout).expect("whoami json");
    assert_eq!(
        me["status"]["userInfo"]["username"],
        "system:serviceaccount:default:robot"
    );
    assert_eq!(
        me["status"]["userInfo"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    let out = as_robot(&["get", "pods"]);
    assert!(
        text(&out.stderr)
            .contains("User \"system:serviceaccount:default:robot\" cannot list resource \"pods\""),
        "{}",
        k.describe(&["get", "pods"], &out)
    );
    let review = |audiences: &str| {
        let body = format!(
            r#"{{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {{"token": "{token}", "audiences": {audiences}}}}}"#
        );
        let out = k.ok_stdin(&["create", "-f", "-", "-o", "json"], &body);
        serde_json::from_str::<Value>(&out).expect("token review json")
    };
    let ok = review("[]");
    assert_eq!(ok["status"]["authenticated"], true);
    assert_eq!(
        ok["status"]["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    assert_eq!(
        review(r#"["elsewhere"]"#)["status"]["authenticated"],
        Value::Null
    );
    let short = ["create", "token", "robot", "--duration=5m"];
    k.fails_with(&short, "spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes");
    k.exits(1, &["create", "token", "nobody"]);
    // Issuer discovery: the account may read the OIDC configuration and the key set, and the
    // published key is the one its token names.
    let config = as_robot(&["get", "--raw", "/.well-known/openid-configuration"]);
    let config: Value = serde_json::from_slice(&config.stdout).expect("openid configuration");
    assert_eq!(
        config["issuer"],
        "https://kubernetes.default.svc.cluster.local"
    );
    assert_eq!(
        config["jwks_uri"],
        "https://kubernetes.default.svc.cluster.local/openid/v1/jwks"
    );
    assert_eq!(
        config["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
    let keys = as_robot(&["get", "--raw", "/openid/v1/jwks"]);
    let keys: Value = serde_json::from_slice(&keys.stdout).expect("key set");
    let header = token.split('.').next().expect("header");
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header)
            .expect("base64url header"),
    )
    .expect("header json");
    assert_eq!(keys["keys"][0]["kid"], header["kid"], "{keys}");
    assert_eq!(keys["keys"][0]["alg"], "ES256");
    let raw = ["get", "--raw", "/openid/v1/jwks", "--as=bob"];
    k.fails_with(&raw, "Forbidden");
    // The token dies with its account.
    k.ok(&["delete", "serviceaccount", "robot"]);
    let out = as_robot(&["auth", "whoami"]);
    assert!(
        text(&out.stderr).contains("Unauthorized"),
        "{}",
        k.describe(&["auth", "whoami"], &out)
    );
}

/// A PEM certificate request for `cn` in organization `org`, and its key.
fn certificate_request(cn: &str, org: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, org);
    let csr = params.serialize_request(&key).expect("request");
    (csr.pem().expect("pem"), key.serialize_pem())
}

fn csr_manifest(name: &str, request_pem: &str, usage: &str) -> String {
    let request = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, request_pem);
    format!(
        r#"{{"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {{"name": "{name}"}},
        "spec": {{"request": "{request}", "signerName": "kubernetes.io/kube-apiserver-client",
                 "expirationSeconds": 86400, "usages": ["{usage}"]}}}}"#
    )
}

/// The user-creation workflow of the Kubernetes docs: a CertificateSigningRequest records its
/// requester, `kubectl certificate approve` approves it, the cluster CA signs it, and the
/// certificate authenticates its subject (who, without RBAC bindings, may do only the
/// basics); the signer's rules fail a request with the wrong usage, and a denial shows.
fn certificate_signing_requests(k: &Kubectl) {
    let (request, key) = certificate_request("alice", "dev");
    k.ok_stdin(
        &["create", "-f", "-"],
        &csr_manifest("alice", &request, "client auth"),
    );
    let (header, row) = k.wide(&["csr"], "alice");
    assert_eq!(
        squash(&header),
        "NAME AGE SIGNERNAME REQUESTOR REQUESTEDDURATION CONDITION"
    );
    assert!(
        squash(&row).ends_with("kubernetes.io/kube-apiserver-client system:admin 24h Pending"),
        "{row}"
    );
    let approved = k.ok(&["certificate", "approve", "alice"]);
    assert!(approved.contains("approved"), "{approved}");
    let csr = wait_until(k, "alice's certificate", &["get", "csr", "alice"], |v| {
        v["status"]["certificate"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    });
    assert_eq!(csr["status"]["conditions"][0]["type"], "Approved");
    assert_eq!(csr["status"]["conditions"][0]["reason"], "KubectlApprove");
    assert_eq!(csr["spec"]["username"], "system:admin");
    let (_, row) = k.wide(&["csr"], "alice");
    assert!(squash(&row).ends_with("Approved,Issued"), "{row}");
    let cert = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        csr["status"]["certificate"].as_str().unwrap_or(""),
    )
    .expect("base64 certificate");
    let dir = k.server.dir.path();
    std::fs::write(dir.join("alice.crt"), cert).expect("write certificate");
    std::fs::write(dir.join("alice.key"), key).expect("write key");
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{}\n    certificate-authority: {}\nusers:\n- name: alice\n  user:\n    client-certificate: {}\n    client-key: {}\ncontexts:\n- name: a\n  context: {{cluster: c, user: alice}}\ncurrent-context: a\n",
        k.server.port,
        dir.join("tls/ca.crt").display(),
        dir.join("alice.crt").display(),
        dir.join("alice.key").display(),
    );
    let alice = dir.join("alice.kubeconfig");
    std::fs::write(&alice, kubeconfig).expect("write kubeconfig");
    let as_alice = format!("--kubeconfig={}", alice.display());
    if k.version == Version::V135 {
        let me = k.ok(&["auth", "whoami", "-o", "json", &as_alice]);
        let me: Value = serde_json::from_str(&me).expect("whoami json");
        assert_eq!(me["status"]["userInfo"]["username"], "alice");
        assert_eq!(
            me["status"]["userInfo"]["groups"],
            json!(["dev", "system:authenticated"])
        );
    }
    let out = k.run(&["get", "pods", &as_alice]);
    assert!(
        text(&out.stderr).contains("User \"alice\" cannot list resource \"pods\""),
        "{}",
        k.describe(&["get", "pods", "--kubeconfig=alice"], &out)
    );

    // A server-side apply that creates a request records the requester too.
    let (request, _) = certificate_request("dave", "dev");
    k.ok_stdin(
        &["apply", "--server-side", "-f", "-"],
        &csr_manifest("dave", &request, "client auth"),
    );
    assert_eq!(
        k.jsonpath(&["get", "csr", "dave"], "{.spec.username}"),
        "system:admin"
    );
    let (request, _) = certificate_request("mallory", "dev");
    k.ok_stdin(
        &["create", "-f", "-"],
        &csr_manifest("mallory", &request, "server auth"),
    );
    k.ok(&["certificate", "approve", "mallory"]);
    let failed = wait_until(k, "mallory's failure", &["get", "csr", "mallory"], |v| {
        v["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Failed"))
    });
    assert!(failed["status"].get("certificate").is_none(), "{failed}");
    let (request, _) = certificate_request("eve", "dev");
    k.ok_stdin(
        &["create", "-f", "-"],
        &csr_manifest("eve", &request, "client auth"),
    );
    k.ok(&["certificate", "deny", "eve"]);
    let (_, row) = k.wide(&["csr"], "eve");
    assert!(squash(&row).ends_with("Denied"), "{row}");
    // The status subresource does not approve (kubectl 1.20 has no --subresource).
    if k.version != Version::V135 {
        return;
    }
    k.ok(&[
        "patch",
        "csr",
        "eve",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Approved","status":"True"}]}}"#,
    ]);
    let (_, row) = k.wide(&["csr"], "eve");
    assert!(squash(&row).ends_with("Denied"), "{row}");
}

/// kubectl's columns for storage classes, network policies, RBAC objects and runtime classes.
fn more_columns(k: &Kubectl) {
    let objects = r#"{"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
         "metadata": {"name": "fast", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
         "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "db-only"},
         "spec": {"podSelector": {"matchLabels": {"app": "db"}}}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "reader"},
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "read-pods"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
         "subjects": [{"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"},
                      {"kind": "ServiceAccount", "name": "robot", "namespace": "default"}]},
        {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "gvisor"}, "handler": "runsc"}
    ]}"#;
    k.ok_stdin(&["apply", "-f", "-"], objects);
    let (header, row) = k.wide(&["storageclass"], "fast");
    assert_eq!(
        header,
        "NAME PROVISIONER RECLAIMPOLICY VOLUMEBINDINGMODE ALLOWVOLUMEEXPANSION AGE"
    );
    assert!(
        row.starts_with("fast (default) rancher.io/local-path Delete WaitForFirstConsumer false "),
        "{row}"
    );
    let (header, row) = k.wide(&["networkpolicy"], "db-only");
    assert_eq!(header, "NAME POD-SELECTOR AGE");
    assert!(row.starts_with("db-only app=db "), "{row}");
    let (header, _) = k.wide(&["clusterrole", "reader"], "reader");
    assert_eq!(header, "NAME CREATED AT");
    let (header, row) = k.wide(&["rolebinding"], "read-pods");
    assert_eq!(header, "NAME ROLE AGE USERS GROUPS SERVICEACCOUNTS");
    assert!(row.starts_with("read-pods ClusterRole/reader "), "{row}");
    assert!(row.ends_with(" jane default/robot"), "{row}");
    let (header, row) = k.wide(&["runtimeclass"], "gvisor");
    assert_eq!(header, "NAME HANDLER AGE");
    assert!(row.starts_with("gvisor runsc "), "{row}");
}

/// APIServices get an `Available` condition: local ones and the group-versions skiff serves
/// itself (metrics.k8s.io, as the metrics-server chart registers it) are available; skiff
/// does not proxy aggregated APIs, so others are not, and say why.
fn apiservice_availability(k: &Kubectl) {
    let objects = r#"{"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1beta1.metrics.k8s.io"},
         "spec": {"service": {"name": "metrics-server", "namespace": "kube-system"}, "group": "metrics.k8s.io",
                  "version": "v1beta1", "insecureSkipTLSVerify": true, "groupPriorityMinimum": 100, "versionPriority": 100}},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1alpha1.wardle.example.com"},
         "spec": {"service": {"name": "wardle", "namespace": "default"}, "group": "wardle.example.com",
                  "version": "v1alpha1", "groupPriorityMinimum": 1000, "versionPriority": 15}},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1.local.example.com"},
         "spec": {"group": "local.example.com", "version": "v1", "groupPriorityMinimum": 1000, "versionPriority": 15}}
    ]}"#;
    k.ok_stdin(&["apply", "-f", "-"], objects);
    for name in ["v1beta1.metrics.k8s.io", "v1.local.example.com"] {
        k.ok(&[
            "wait",
            "--for=condition=Available",
            &format!("apiservice/{name}"),
            "--timeout=30s",
        ]);
    }
    k.ok(&[
        "wait",
        "--for=condition=Available=false",
        "apiservice/v1alpha1.wardle.example.com",
        "--timeout=30s",
    ]);
    let (header, row) = k.wide(&["apiservice"], "v1alpha1.wardle.example.com");
    assert_eq!(header, "NAME SERVICE AVAILABLE AGE");
    assert!(
        row.starts_with("v1alpha1.wardle.example.com default/wardle False (ServiceNotFound) "),
        "{row}"
    );
    let (_, row) = k.wide(&["apiservice"], "v1.local.example.com");
    assert!(row.starts_with("v1.local.example.com Local True "), "{row}");
    k.ok(&[
        "delete",
        "apiservice",
        "v1beta1.metrics.k8s.io",
        "v1alpha1.wardle.example.com",
        "v1.local.example.com",
    ]);
}

/// The system namespaces cannot be deleted, as upstream's NamespaceLifecycle admission says.
fn system_namespaces_stay(k: &Kubectl) {
    for ns in ["default", "kube-system", "kube-public"] {
        let args = ["delete", "namespace", ns];
        k.fails_with(
            &args,
            format!("namespaces \"{ns}\" is forbidden: this namespace may not be deleted"),
        );
    }
    k.ok(&["get", "namespace", "default"]);
}

/// Behaviours upstream's own kubectl tests (`test/cmd` of kubernetes) check against
/// kube-apiserver.
fn upstream_cmd_behaviours(k: &Kubectl) {
    // kubectl's server-side apply takes over what its client-side apply set, without a
    // conflict, and keeps the last-applied annotation in step for a later client-side apply.
    let pod = |image: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: csa-pod\n  labels:\n    name: csa\nspec:\n  serviceAccountName: default\n  containers:\n  - name: pause\n    image: {image}\n"
        )
    };
    let v1 = k.write("csa-pod-v1.yaml", &pod("registry.k8s.io/pause:3.9"));
    let v2 = k.write("csa-pod-v2.yaml", &pod("registry.k8s.io/pause:3.10"));
    let v3 = k.write("csa-pod-v3.yaml", &pod("registry.k8s.io/pause:3.8"));
    k.ok(&["apply", "-f", &v1]);
    let out = k.exits(1, &["diff", "--server-side", "-f", &v2]);
    assert!(
        text(&out.stdout).contains("+  - image: registry.k8s.io/pause:3.10"),
        "{}",
        text(&out.stdout)
    );
    let out = k.ok(&["apply", "--server-side", "-f", &v2]);
    assert_eq!(out.trim(), "pod/csa-pod serverside-applied");
    let last = k.jsonpath(
        &["get", "pod", "csa-pod"],
        "{.metadata.annotations.kubectl\\.kubernetes\\.io/last-applied-configuration}",
    );
    let last: Value = serde_json::from_str(&last).unwrap_or(Value::Null);
    assert_eq!(
        last["spec"]["containers"][0]["image"], "registry.k8s.io/pause:3.10",
        "{last}"
    );
    let out = k.ok(&["apply", "-f", &v3]);
    assert_eq!(out.trim(), "pod/csa-pod configured");
    // Another field manager still conflicts with the client-side apply's fields.
    let out = k.exits(
        1,
        &["apply", "--server-side", "--field-manager=other", "-f", &v2],
    );
    assert!(
        text(&out.stderr).contains("conflict"),
        "{}",
        text(&out.stderr)
    );

    // kubectl 1.26+ moves what its client-side apply owned to its server-side apply
    // (rewriting managedFields with a JSON patch), so a field the configuration then
    // drops is removed. What admission added at create (the pod's service account) was
    // never the creator's, so the pod's own manifest applies without it.
    if k.version == Version::V135 {
        let cm = |extra: &str| {
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: migrated\ndata:\n  key: value\n{extra}"
            )
        };
        let with = k.write("migrated-1.yaml", &cm("  legacy: unused\n"));
        let without = k.write("migrated-2.yaml", &cm(""));
        k.ok(&["apply", "-f", &with]);
        k.ok(&["apply", "--server-side", "-f", &with]);
        let cm_json = k.json_with_managed_fields(&["get", "configmap", "migrated"]);
        let managers: Vec<&str> = cm_json["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert!(
            !managers.contains(&"kubectl-client-side-apply"),
            "{managers:?}"
        );
        k.ok(&["apply", "--server-side", "-f", &without]);
        assert_eq!(
            k.jsonpath(&["get", "configmap", "migrated"], "{.data}"),
            r#"{"key":"value"}"#
        );
        k.ok(&["delete", "configmap", "migrated"]);
        let no_account = k.write(
            "csa-pod-plain.yaml",
            &pod("registry.k8s.io/pause:3.9").replace("  serviceAccountName: default\n", ""),
        );
        k.ok(&["apply", "--server-side", "-f", &no_account]);
        assert_eq!(
            k.jsonpath(&["get", "pod", "csa-pod"], "{.spec.serviceAccountName}"),
            "default"
        );
    }

    // Replacing a pod with its manifest keeps what admission added at create.
    let out = k.ok(&["replace", "--save-config", "-f", &v3]);
    assert_eq!(out.trim(), "pod/csa-pod replaced");
    assert_eq!(
        k.jsonpath(&["get", "pod", "csa-pod"], "{.spec.tolerations[*].key}"),
        "node.kubernetes.io/not-ready node.kubernetes.io/unreachable"
    );
    k.ok(&["delete", "pod", "csa-pod", "--wait=false"]);

    // A strategic merge patch that gives a field the wrong type is refused as upstream's
    // converter words it; a replace with resourceVersion "0" is unconditional.
    k.ok(&["create", "configmap", "typed"]);
    let out = k.exits(
        1,
        &[
            "patch",
            "configmap",
            "typed",
            "-p",
            r#"{"metadata":{"labels":"invalid"}}"#,
        ],
    );
    assert!(
        text(&out.stderr).contains("cannot restore map from string"),
        "{}",
        text(&out.stderr)
    );
    // JSON and merge patches answer with the JSON decoder's words, a create too.
    for (kind, patch) in [
        ("merge", r#"{"data":"x"}"#),
        ("json", r#"[{"op":"add","path":"/data","value":"x"}]"#),
    ] {
        let out = k.exits(
            1,
            &["patch", "configmap", "typed", "--type", kind, "-p", patch],
        );
        let err = text(&out.stderr);
        assert!(
            err.contains("The request is invalid: patch: Invalid value: ")
                && err.contains(
                    "json: cannot unmarshal string into Go struct field ConfigMap.data of type map[string]string"
                ),
            "{err}"
        );
    }
    let bad_pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":"x"},"spec":{"containers":[{"name":"a","image":"b"}]}}"#;
    let out = k.exits(
        1,
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/pods",
            "-f",
            &k.write("bad-pod.json", bad_pod),
        ],
    );
    assert!(
        text(&out.stderr).contains(
            r#"Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field ObjectMeta.metadata.labels of type map[string]string"#
        ),
        "{}",
        text(&out.stderr)
    );
    // fieldValidation: unknown and repeated fields fail a Strict request, are warnings by
    // default (Warn), and unknown fields are dropped; server-side apply refuses them.
    let deployment = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"fv"},
        "spec":{"unknownField":"foo","selector":{"matchLabels":{"app":"fv"}},
        "template":{"metadata":{"labels":{"app":"fv"}},"spec":{"containers":[{"name":"c","image":"nginx"}]}},
        "replicas":2,"replicas":3}}"#;
    let deployment = k.write("fv.json", deployment);
    let path = "/apis/apps/v1/namespaces/default/deployments";
    let out = k.exits(
        1,
        &[
            "create",
            "--raw",
            &format!("{path}?fieldValidation=Strict"),
            "-f",
            &deployment,
        ],
    );
    assert!(
        text(&out.stderr).contains(
            r#"strict decoding error: unknown field "spec.unknownField", duplicate field "spec.replicas""#
        ),
        "{}",
        text(&out.stderr)
    );
    let out = k.run(&["create", "--raw", path, "-f", &deployment]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(r#"Warning: unknown field "spec.unknownField""#)
            && text(&out.stderr).contains(r#"Warning: duplicate field "spec.replicas""#),
        "{}",
        text(&out.stderr)
    );
    let stored = k.ok(&["get", "deployment", "fv", "-o", "json"]);
    assert!(!stored.contains("unknownField"), "{stored}");
    assert_eq!(
        k.jsonpath(&["get", "deployment", "fv"], "{.spec.replicas}"),
        "3"
    );
    k.ok(&["delete", "deployment", "fv"]);
    let odd = k.write(
        "odd-cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: odd\n  bogusMeta: x\nbogus: 1\ndata:\n  a: b\n",
    );
    let out = k.exits(
        1,
        &["apply", "--server-side", "--validate=false", "-f", &odd],
    );
    assert!(
        text(&out.stderr).contains(
            "failed to create typed patch object (default/odd; /v1, Kind=ConfigMap): errors:\n  .bogus: field not declared in schema\n  .metadata.bogusMeta: field not declared in schema"
        ),
        "{}",
        text(&out.stderr)
    );
    k.ok(&["create", "--validate=false", "-f", &odd]);
    let stored = k.ok(&["get", "configmap", "odd", "-o", "json"]);
    assert!(!stored.contains("bogus"), "{stored}");
    k.ok(&["delete", "configmap", "odd"]);
    let replaced = r#"{"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "typed", "annotations": {"a": "b"}, "resourceVersion": "0"}}"#;
    k.ok(&["replace", "-f", &k.write("typed.json", replaced)]);
    assert_eq!(
        k.jsonpath(&["get", "configmap", "typed"], "{.metadata.annotations.a}"),
        "b"
    );
    k.ok(&["delete", "configmap", "typed"]);

    // A Service's cluster IP may not change once set.
    k.ok(&["create", "service", "clusterip", "fixed-ip", "--tcp=80"]);
    let ip = k.jsonpath(&["get", "service", "fixed-ip"], "{.spec.clusterIP}");
    let other = if ip.ends_with(".250") {
        ip.replace(".250", ".251")
    } else {
        format!("{}.250", ip.rsplit_once('.').map_or("", |(net, _)| net))
    };
    let out = k.exits(
        1,
        &[
            "patch",
            "service",
            "fixed-ip",
            "-p",
            &format!(r#"{{"spec":{{"clusterIP":"{other}"}}}}"#),
        ],
    );
    assert!(
        text(&out.stderr).contains(&format!(
            r#"spec.clusterIPs[0]: Invalid value: []string{{"{other}"}}: may not change once set"#
        )),
        "{}",
        text(&out.stderr)
    );
    k.ok(&["delete", "service", "fixed-ip"]);

    // A volume that names no source is an emptyDir.
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: no-source\nspec:\n  selector:\n    matchLabels:\n      app: no-source\n  template:\n    metadata:\n      labels:\n        app: no-source\n    spec:\n      containers:\n      - name: c\n        image: nginx\n      volumes:\n      - name: scratch\n";
    k.ok(&["apply", "-f", &k.write("no-source.yaml", deployment)]);
    assert_eq!(
        k.jsonpath(
            &["get", "deployment", "no-source"],
            "{.spec.template.spec.volumes[0].emptyDir}"
        ),
        "{}"
    );

    // `kubectl autoscale` without targets: at least one replica, 80 % CPU.
    k.ok(&["autoscale", "deployment", "no-source", "--max=3"]);
    assert_eq!(
        k.jsonpath(
            &["get", "hpa.v2.autoscaling", "no-source"],
            "{.spec.minReplicas} {.spec.maxReplicas} {.spec.metrics[0].resource.target.averageUtilization}"
        ),
        "1 3 80"
    );
    let hpa_v1 = k.ok(&[
        "get",
        "--raw",
        "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/no-source",
    ]);
    let hpa_v1: Value = serde_json::from_str(&hpa_v1).unwrap_or(Value::Null);
    assert_eq!(
        hpa_v1["spec"]["targetCPUUtilizationPercentage"], 80,
        "{hpa_v1}"
    );
    k.ok(&["delete", "hpa", "no-source"]);
    k.ok(&["delete", "deployment", "no-source"]);

    // A body that is not JSON, posted raw, names the kind the endpoint expects.
    let out = k.exits(1, &["create", "--raw", "/api/v1/namespaces", "-f", &v1]);
    assert!(
        text(&out.stderr)
            .contains("the object provided is unrecognized (must be of type Namespace)"),
        "{}",
        text(&out.stderr)
    );

    // The default RBAC roles exist, and admin, edit and view aggregate labelled roles.
    assert_eq!(
        k.jsonpath(
            &["get", "clusterrole", "cluster-admin"],
            "{.rules[0].verbs[0]} {.rules[1].nonResourceURLs[0]}"
        ),
        "* *"
    );
    assert_eq!(
        k.jsonpath(
            &["get", "clusterrolebinding", "cluster-admin"],
            "{.subjects[0].kind}/{.subjects[0].name}"
        ),
        "Group/system:masters"
    );
    k.ok(&[
        "get",
        "clusterrole",
        "system:auth-delegator",
        "admin",
        "edit",
        "view",
    ]);
    k.ok(&[
        "get",
        "role",
        "-n",
        "kube-system",
        "extension-apiserver-authentication-reader",
    ]);
    let has_leases = |v: &Value| {
        v["rules"].as_array().is_some_and(|rules| {
            rules
                .iter()
                .any(|r| r["resources"] == json!(["leases"]) && r["verbs"] == json!(["watch"]))
        })
    };
    let reader = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: lease-watcher\n  labels:\n    rbac.authorization.k8s.io/aggregate-to-view: \"true\"\nrules:\n- apiGroups: [coordination.k8s.io]\n  resources: [leases]\n  verbs: [watch]\n";
    k.ok(&["apply", "-f", &k.write("lease-watcher.yaml", reader)]);
    for role in ["view", "edit", "admin"] {
        wait_until(
            k,
            "the aggregated rule",
            &["get", "clusterrole", role],
            has_leases,
        );
    }
    k.ok(&["delete", "clusterrole", "lease-watcher"]);
    wait_until(k, "the rule gone", &["get", "clusterrole", "admin"], |v| {
        !has_leases(v)
    });

    // Discovery names the storage version of every stored resource.
    let core = k.ok(&["get", "--raw", "/api/v1"]);
    assert!(
        core.contains(r#""shortNames":["cm"],"storageVersionHash":"qFsyl6wFWjQ=""#),
        "{core}"
    );
}

fn exercise(bin: PathBuf, version: Version) {
    let k = Kubectl::start(bin, version);
    api_resources(&k);
    apply_creates_then_unchanged(&k);
    components_manage_their_writes(&k);
    validation_is_on(&k);
    apply_patches_a_change(&k);
    secret_string_data(&k);
    apply_server_side(&k);
    get_output_formats(&k);
    watch_sees_a_change(&k);
    describe_shows_objects_and_events(&k);
    label_and_annotate(&k);
    scale(&k);
    explain(&k);
    diff(&k);
    delete_with_propagation(&k);
    auth_reviews_and_impersonation(&k);
    quotas_and_limit_ranges(&k);
    component_statuses(&k);
    pods_run_as_service_accounts(&k);
    service_account_tokens(&k);
    legacy_token_secrets(&k);
    certificate_signing_requests(&k);
    system_namespaces_stay(&k);
    more_columns(&k);
    apiservice_availability(&k);
    upstream_cmd_behaviours(&k);
}

#[test]
fn kubectl_1_20() {
    exercise(kubectl_120(), Version::V120);
}

#[test]
fn kubectl_1_35() {
    exercise(kubectl_135(), Version::V135);
}

/// kubectl 1.33 (shipped with helm 3.18, see PEERS.md) behaves as 1.35 does in everything
/// these tests look at.
#[test]
fn kubectl_1_33() {
    exercise(
        skiff_testkit::peer("SKIFF_KUBECTL_133", "kubectl-1.33"),
        Version::V135,
    );
}
