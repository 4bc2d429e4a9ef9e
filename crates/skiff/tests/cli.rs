//! The built-in kubectl verbs (`skiff get|apply|...`) against a real server, compared with
//! what real kubectl 1.35 prints for the same objects.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use skiff_testkit::{Agent, TestServer, kubectl_135, run_with_timeout, wait_for};

const APP: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
  annotations:
    note: a long description that goes on and on, well past the eighty column limit of the emitter
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.14.2
        ports:
        - containerPort: 80
        env:
        - name: A
          value: \"yes\"
---
apiVersion: v1
kind: Service
metadata:
  name: web
  labels:
    app: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  labels:
    app: web
data:
  key: value
  multi: |
    line one
    line two
";

fn skiff_bin() -> &'static str {
    env!("CARGO_BIN_EXE_skiff")
}

/// Runs `skiff ARGS --kubeconfig K` with a 60 s bound.
fn skiff(s: &TestServer, args: &[&str]) -> Output {
    skiff_stdin(s, args, None)
}

fn skiff_stdin(s: &TestServer, args: &[&str], stdin: Option<&str>) -> Output {
    run_with_timeout(
        Command::new(skiff_bin())
            .args(args)
            .arg("--kubeconfig")
            .arg(s.kubeconfig())
            .env_remove("KUBECONFIG"),
        stdin,
        Duration::from_secs(60),
    )
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn ok(s: &TestServer, args: &[&str]) -> String {
    let out = skiff(s, args);
    assert!(
        out.status.success(),
        "skiff {args:?} failed: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A failure: exit code 1 and exactly one line on stderr, never a panic.
#[track_caller]
fn fails(s: &TestServer, args: &[&str]) -> String {
    let out = skiff(s, args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "skiff {args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "skiff {args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Blanks the AGE column (found by its header) so two tables taken moments apart compare.
/// Blanks the AGE column of every table in `output` (several kinds print one table each,
/// separated by a blank line, each with its own column widths).
fn mask_age(output: &str) -> String {
    output
        .split("\n\n")
        .map(mask_age_table)
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn mask_age_table(table: &str) -> String {
    let mut lines = table.lines();
    let Some(header) = lines.next() else {
        return String::new();
    };
    let Some(start) = header.find("AGE") else {
        return table.to_string();
    };
    let end = header[start..]
        .find(|c: char| c.is_ascii_whitespace())
        .and_then(|i| {
            header[start + i..]
                .find(|c: char| !c.is_ascii_whitespace())
                .map(|j| start + i + j)
        });
    let mut out = vec![header.to_string()];
    for l in lines {
        let chars: Vec<char> = l.chars().collect();
        let stop = end.unwrap_or(chars.len()).min(chars.len());
        let mut m: String = chars[..start.min(chars.len())].iter().collect();
        m.push_str("<age>");
        if end.is_some() {
            m.push_str("   ");
            m.extend(&chars[stop..]);
        }
        out.push(m);
    }
    out.join("\n")
}

/// Waits until the deployment's status reflects its spec and stays put for a moment.
fn settle_deployment(s: &TestServer, kubectl: &std::path::Path, name: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let read = || {
        s.ok(
            kubectl,
            &["get", "deploy", name, "-o", "jsonpath={.metadata.generation} {.status.observedGeneration} {.spec.replicas} {.status.updatedReplicas} {.status.replicas}"],
        )
    };
    loop {
        let a = read();
        let f: Vec<&str> = a.split_whitespace().collect();
        let converged = f.len() == 5 && f[0] == f[1] && f[2] == f[3] && f[2] == f[4];
        std::thread::sleep(std::time::Duration::from_millis(300));
        if converged && read() == a {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "deployment {name} did not settle: {a}"
        );
    }
}

#[test]
fn apply_get_and_change_like_kubectl() {
    let s = TestServer::start(skiff_bin().as_ref());
    let kubectl = kubectl_135();
    let file = s.dir.path().join("app.yaml");
    std::fs::write(&file, APP).expect("write manifest");
    let f = file.to_str().expect("utf-8 path");

    assert_eq!(
        ok(&s, &["apply", "-f", f]),
        "deployment.apps/web created\nservice/web created\nconfigmap/web-config created\n"
    );
    assert_eq!(
        ok(&s, &["apply", "-f", f]),
        "deployment.apps/web unchanged\nservice/web unchanged\nconfigmap/web-config unchanged\n"
    );
    // kubectl agrees that what skiff applied is what the file says.
    assert_eq!(
        s.ok(&kubectl, &["apply", "-f", f]),
        "deployment.apps/web unchanged\nservice/web unchanged\nconfigmap/web-config unchanged\n"
    );
    std::fs::write(&file, APP.replace("replicas: 2", "replicas: 3")).expect("write");
    assert_eq!(
        ok(&s, &["apply", "-f", f]),
        "deployment.apps/web configured\nservice/web unchanged\nconfigmap/web-config unchanged\n"
    );
    // A directory and stdin work too.
    let dir = s.dir.path().to_str().expect("utf-8 path");
    assert!(ok(&s, &["apply", "-f", dir]).contains("deployment.apps/web unchanged"));
    let out = skiff_stdin(&s, &["apply", "-f", "-"], Some(APP));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("deployment.apps/web configured"));
    // The deployment controller is at work: compare once its status stops changing.
    settle_deployment(&s, &kubectl, "web");

    for args in [
        &["get", "deploy", "-o", "wide"][..],
        &["get", "deploy,svc,cm"],
        &["get", "svc", "-A"],
        &["get", "cm", "-l", "app=web", "--show-labels"],
        &["get", "ns"],
    ] {
        let mine = ok(&s, args);
        let theirs = s.ok(&kubectl, args);
        assert_eq!(mask_age(&mine), mask_age(&theirs), "{args:?}");
    }
    for args in [
        &["get", "deploy", "web", "-o", "yaml"][..],
        &["get", "deploy", "-o", "json"],
        &["get", "cm", "web-config", "-o", "yaml"],
        &["get", "svc", "web", "-o", "json"],
        &["get", "deploy,svc", "-o", "name"],
        &[
            "get",
            "deploy",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}:{.spec.replicas}{\"\\n\"}{end}",
        ],
        &["get", "cm", "-o", "jsonpath={.items[*].metadata.name}"],
        &[
            "get",
            "deploy",
            "-o",
            "custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas,NONE:.spec.nothing",
        ],
        &[
            "get",
            "deploy",
            "--field-selector",
            "metadata.name=web",
            "-o",
            "name",
        ],
    ] {
        let mine = ok(&s, args);
        let theirs = s.ok(&kubectl, args);
        assert_eq!(mask_age(&mine), mask_age(&theirs), "{args:?}");
    }

    // The deployment's pods (Pending: no nodes) print as kubectl prints them.
    let mine = ok(&s, &["get", "pods", "-l", "app=web"]);
    assert_eq!(mine.lines().count(), 3, "{mine}");
    assert_eq!(
        mask_age(&mine),
        mask_age(&s.ok(&kubectl, &["get", "pods", "-l", "app=web"]))
    );
    let out = skiff(&s, &["get", "pods", "-n", "kube-public"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "No resources found in kube-public namespace.\n"
    );

    assert_eq!(
        ok(&s, &["label", "deploy", "web", "tier=front"]),
        "deployment.apps/web labeled\n"
    );
    let err = fails(&s, &["label", "deploy", "web", "tier=back"]);
    assert!(err.contains("--overwrite is false"), "{err}");
    assert_eq!(
        ok(&s, &["label", "deploy/web", "tier=back", "--overwrite"]),
        "deployment.apps/web labeled\n"
    );
    assert_eq!(
        ok(&s, &["annotate", "deploy", "web", "owner=me"]),
        "deployment.apps/web annotated\n"
    );
    assert_eq!(
        ok(
            &s,
            &[
                "get",
                "deploy",
                "web",
                "-o",
                "jsonpath={.metadata.labels.tier} {.metadata.annotations.owner}"
            ]
        ),
        "back me"
    );
    assert_eq!(
        ok(&s, &["label", "deploy", "web", "tier-"]),
        "deployment.apps/web unlabeled\n"
    );
    assert_eq!(
        ok(&s, &["scale", "deploy", "web", "--replicas=5"]),
        "deployment.apps/web scaled\n"
    );
    assert_eq!(
        ok(
            &s,
            &[
                "wait",
                "deploy/web",
                "--for=jsonpath={.spec.replicas}=5",
                "--timeout=20s"
            ]
        ),
        "deployment.apps/web condition met\n"
    );
    let err = fails(
        &s,
        &[
            "wait",
            "deploy/web",
            "--for=jsonpath={.spec.replicas}=9",
            "--timeout=1s",
        ],
    );
    assert!(err.starts_with("error: timed out waiting"), "{err}");

    // describe shows the object's events.
    let uid = ok(
        &s,
        &["get", "deploy", "web", "-o", "jsonpath={.metadata.uid}"],
    );
    let event = format!(
        "apiVersion: v1
kind: Event
metadata:
  name: web.1
involvedObject:
  apiVersion: apps/v1
  kind: Deployment
  name: web
  namespace: default
  uid: {uid}
reason: ScalingReplicaSet
message: Scaled up replica set web-abc to 5
type: Normal
count: 1
firstTimestamp: \"2024-01-01T00:00:00Z\"
lastTimestamp: \"2024-01-01T00:00:00Z\"
source:
  component: deployment-controller
"
    );
    let out = skiff_stdin(&s, &["create", "-f", "-"], Some(&event));
    assert_eq!(
        text(&out.stdout),
        "event/web.1 created\n",
        "{}",
        text(&out.stderr)
    );
    let d = ok(&s, &["describe", "deploy", "web"]);
    assert!(
        d.starts_with("Name:                   web\nNamespace:              default\n"),
        "{d}"
    );
    assert!(d.contains("Replicas:               5 desired"), "{d}");
    assert!(
        d.contains("Events:\n  Type    Reason             Age"),
        "{d}"
    );
    assert!(
        d.contains("Normal  ScalingReplicaSet  ")
            && d.contains("deployment-controller  Scaled up replica set web-abc to 5"),
        "{d}"
    );
    let d = ok(&s, &["describe", "cm", "web-config"]);
    assert_eq!(d, s.ok(&kubectl, &["describe", "cm", "web-config"]));

    assert_eq!(
        ok(&s, &["delete", "cm", "-l", "app=web"]),
        "configmap \"web-config\" deleted from default namespace\n"
    );
    let out = skiff(&s, &["get", "cm", "-l", "app=web"]);
    assert_eq!(
        text(&out.stderr),
        "No resources found in default namespace.\n"
    );
    assert_eq!(
        ok(&s, &["delete", "svc/web"]),
        "service \"web\" deleted from default namespace\n"
    );
    let api = ok(&s, &["api-resources"]);
    assert!(
        api.lines().next().is_some_and(|h| h.starts_with("NAME")),
        "{api}"
    );
    assert!(
        api.contains("deployments                         deploy       apps/v1"),
        "{api}"
    );
    let v = ok(&s, &["version"]);
    assert!(v.contains("Server Version: v1.35"), "{v}");
}

#[test]
fn bad_input_is_one_line_and_exit_1() {
    let s = TestServer::start(skiff_bin().as_ref());
    let missing = s.dir.path().join("missing.yaml");
    let err = fails(&s, &["apply", "-f", missing.to_str().expect("utf-8")]);
    assert!(err.starts_with("error: the path"), "{err}");
    let bad = s.dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: [unclosed\n  name: x: y\n",
    )
    .expect("write");
    let err = fails(&s, &["apply", "-f", bad.to_str().expect("utf-8")]);
    assert!(err.starts_with("error: error parsing"), "{err}");
    let err = fails(&s, &["create", "-f", bad.to_str().expect("utf-8")]);
    assert!(err.starts_with("error: error parsing"), "{err}");
    let err = fails(&s, &["get", "nosuchtype"]);
    assert_eq!(
        err,
        "error: the server doesn't have a resource type \"nosuchtype\"\n"
    );
    let err = fails(&s, &["get", "deploy", "nope"]);
    assert_eq!(
        err,
        "Error from server (NotFound): deployments.apps \"nope\" not found\n"
    );
    let err = fails(&s, &["delete", "deploy", "nope"]);
    assert_eq!(
        err,
        "Error from server (NotFound): deployments.apps \"nope\" not found\n"
    );
    let err = fails(&s, &["get", "deploy", "x", "-l", "a=b"]);
    assert_eq!(
        err,
        "error: name cannot be provided when a selector is specified\n"
    );
    let err = fails(&s, &["get", "deploy", "-o", "bogus"]);
    assert!(err.starts_with("error: unable to match a printer"), "{err}");
    let err = fails(&s, &["get", "deploy", "-o", "jsonpath={.a"]);
    assert!(err.starts_with("error: error parsing jsonpath"), "{err}");
    let no_kind = s.dir.path().join("nokind.yaml");
    std::fs::write(&no_kind, "metadata:\n  name: x\n").expect("write");
    let err = fails(&s, &["apply", "-f", no_kind.to_str().expect("utf-8")]);
    assert!(err.starts_with("error:"), "{err}");
    // A kubeconfig that does not exist.
    let out = run_with_timeout(
        Command::new(skiff_bin())
            .args(["get", "pods", "--kubeconfig", "/nonexistent/kubeconfig"])
            .env_remove("KUBECONFIG"),
        None,
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).lines().count(),
        1,
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn get_watch_sees_a_change() {
    let s = TestServer::start(skiff_bin().as_ref());
    let mut child = Command::new(skiff_bin())
        .args(["get", "cm", "-w", "--kubeconfig"])
        .arg(s.kubeconfig())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn skiff get -w");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    all.extend_from_slice(&buf[..n]);
                    if String::from_utf8_lossy(&all).contains("watched") {
                        break;
                    }
                }
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    std::thread::sleep(Duration::from_millis(500));
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\n";
    let out = skiff_stdin(&s, &["apply", "-f", "-"], Some(cm));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let seen = reader.join().unwrap_or_default();
    assert!(
        seen.contains("kube-root-ca.crt") || seen.contains("NAME"),
        "{seen}"
    );
    assert!(seen.lines().any(|l| l.starts_with("watched ")), "{seen}");
}

#[test]
fn edit_puts_back_and_reopens_on_error() {
    let s = TestServer::start(skiff_bin().as_ref());
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ed\ndata:\n  k: before\n";
    let out = skiff_stdin(&s, &["apply", "-f", "-"], Some(cm));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let edit = |editor: &str, args: &[&str]| {
        run_with_timeout(
            Command::new(skiff_bin())
                .args(args)
                .arg("--kubeconfig")
                .arg(s.kubeconfig())
                .env("EDITOR", editor)
                .env_remove("KUBE_EDITOR"),
            None,
            Duration::from_secs(60),
        )
    };
    let out = edit("sed -i s/before/after/", &["edit", "cm", "ed"]);
    assert_eq!(
        text(&out.stdout),
        "configmap/ed edited\n",
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        ok(&s, &["get", "cm", "ed", "-o", "jsonpath={.data.k}"]),
        "after"
    );
    let out = edit("true", &["edit", "cm/ed"]);
    assert_eq!(text(&out.stdout), "Edit cancelled, no changes made.\n");
    // An invalid name is rejected by the server; the same file again cancels with exit 1.
    let out = edit(
        "sed -i s/name:\\ ed/name:\\ Bad_Name/",
        &["edit", "cm", "ed"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(!text(&out.stderr).contains("panicked"));
}

const ROLLOUT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: stuck
spec:
  replicas: 2
  selector:
    matchLabels:
      app: stuck
  template:
    metadata:
      labels:
        app: stuck
    spec:
      nodeSelector:
        nowhere: \"true\"
      containers:
      - name: nginx
        image: nginx:1.25
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: plain
";

const SETS: &str = "\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels:
      app: agent
  template:
    metadata:
      labels:
        app: agent
    spec:
      containers:
      - name: a
        image: busybox:1.36
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  replicas: 2
  serviceName: db
  selector:
    matchLabels:
      app: db
  template:
    metadata:
      labels:
        app: db
    spec:
      containers:
      - name: d
        image: postgres:16
";

/// A server with two hollow nodes, so pods run and become Ready.
fn server_with_nodes() -> (TestServer, Agent) {
    let s = TestServer::start(skiff_bin().as_ref());
    let agent = Agent::start(
        skiff_bin().as_ref(),
        &s,
        &["--hollow", "2", "--node-name", "n"],
    );
    let kubectl = kubectl_135();
    wait_for(30, "2 Ready hollow nodes", || {
        let nodes = s.ok(&kubectl, &["get", "nodes", "--no-headers"]);
        (nodes.lines().filter(|l| l.contains(" Ready ")).count() == 2).then_some(())
    });
    (s, agent)
}

/// stdout, stderr and exit code, to compare a skiff run with a kubectl run.
fn outcome(out: &Output) -> (String, String, Option<i32>) {
    (text(&out.stdout), text(&out.stderr), out.status.code())
}

/// The same command from skiff and kubectl, on an unchanged cluster, prints the same.
#[track_caller]
fn same(s: &TestServer, kubectl: &std::path::Path, args: &[&str]) -> String {
    let theirs = outcome(&s.run(kubectl, args));
    let mine = outcome(&skiff(s, args));
    assert_eq!(mine, theirs, "{args:?}");
    mine.0
}

/// A command that changes deployment `web`: kubectl's run, then `reverse` by kubectl, then
/// skiff's run must print the same.
#[track_caller]
fn same_change(
    s: &TestServer,
    kubectl: &std::path::Path,
    args: &[&str],
    reverse: &[&str],
) -> String {
    let theirs = outcome(&s.run(kubectl, args));
    s.ok(kubectl, reverse);
    // The controller renumbers revisions after an undo: let it catch up first.
    settle_deployment(s, kubectl, "web");
    let mine = outcome(&skiff(s, args));
    assert_eq!(mine, theirs, "{args:?}");
    mine.0
}

/// `rollout status` from both: the same last line, stderr and exit code (the number of
/// progress lines depends on timing).
#[track_caller]
fn same_status(s: &TestServer, kubectl: &std::path::Path, args: &[&str]) -> String {
    let last = |o: (String, String, Option<i32>)| {
        let line = o.0.lines().last().unwrap_or_default().to_string();
        (line, o.1, o.2)
    };
    let theirs = last(outcome(&s.run(kubectl, args)));
    let mine = last(outcome(&skiff(s, args)));
    assert_eq!(mine, theirs, "{args:?}");
    mine.0
}

#[test]
fn rollout_deployments_like_kubectl() {
    let (s, _agent) = server_with_nodes();
    let kubectl = kubectl_135();
    let out = skiff_stdin(&s, &["apply", "-f", "-"], Some(ROLLOUT));
    assert!(out.status.success(), "{}", text(&out.stderr));

    let status = ["rollout", "status", "deploy/web", "--timeout=60s"];
    assert_eq!(
        same_status(&s, &kubectl, &status),
        "deployment \"web\" successfully rolled out"
    );
    same(&s, &kubectl, &["rollout", "history", "deploy/web"]);
    s.ok(
        &kubectl,
        &["set", "image", "deploy/web", "nginx=nginx:1.26"],
    );
    s.ok(
        &kubectl,
        &[
            "annotate",
            "deploy/web",
            "kubernetes.io/change-cause=image 1.26",
        ],
    );
    assert_eq!(
        same_status(&s, &kubectl, &status),
        "deployment \"web\" successfully rolled out"
    );
    let history = same(&s, &kubectl, &["rollout", "history", "deploy/web"]);
    assert_eq!(
        history,
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n2         image 1.26\n\n"
    );
    let rev2 = same(
        &s,
        &kubectl,
        &["rollout", "history", "deploy/web", "--revision=2"],
    );
    assert!(
        rev2.starts_with("deployment.apps/web with revision #2\nPod Template:\n"),
        "{rev2}"
    );
    assert!(rev2.contains("\tpod-template-hash="), "{rev2}");
    for args in [
        &["rollout", "history", "deploy/web", "--revision=1"][..],
        &["rollout", "history", "deploy"],
        &["rollout", "history", "deploy/web", "-o", "name"],
        &["rollout", "history", "deploy/web", "--revision=9"],
        &["rollout", "history", "deploy/web", "--revision=-1"],
        &["rollout", "history", "cm/plain"],
        &["rollout", "history", "deploy/nope"],
        &["rollout", "history"],
        &["rollout", "status", "cm/plain"],
        &["rollout", "undo", "cm/plain"],
        &["rollout", "pause", "cm/plain"],
        &["rollout", "restart", "cm/plain"],
        &["rollout", "status", "deploy", "-n", "kube-system"],
        &["rollout", "pause", "deploy", "-n", "kube-system"],
        &["rollout", "undo", "deploy/web", "--to-revision=7"],
        &["rollout", "undo", "deploy/web", "--to-revision=2"],
        &["rollout", "undo", "deploy/web", "--dry-run=client"],
        &["rollout", "status", "deploy/web", "--revision=1"],
    ] {
        same(&s, &kubectl, args);
    }

    // pause and resume, and what a paused deployment refuses.
    let paused = same_change(
        &s,
        &kubectl,
        &["rollout", "pause", "deploy/web"],
        &["rollout", "resume", "deploy/web"],
    );
    assert_eq!(paused, "deployment.apps/web paused\n");
    for args in [
        &["rollout", "pause", "deploy/web"][..],
        &["rollout", "restart", "deploy/web"],
        &["rollout", "undo", "deploy/web"],
    ] {
        same(&s, &kubectl, args);
        fails(&s, args);
    }
    let resumed = same_change(
        &s,
        &kubectl,
        &["rollout", "resume", "deploy/web"],
        &["rollout", "pause", "deploy/web"],
    );
    assert_eq!(resumed, "deployment.apps/web resumed\n");
    same(&s, &kubectl, &["rollout", "resume", "deploy/web"]);

    // restart stamps the template and rolls every pod.
    assert_eq!(
        ok(&s, &["rollout", "restart", "deploy/web"]),
        "deployment.apps/web restarted\n"
    );
    let stamp = s.ok(
        &kubectl,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
        ],
    );
    // RFC 3339 to the second, as kubectl stamps it: 2006-01-02T15:04:05Z07:00.
    assert!(
        stamp.len() >= 20 && stamp.as_bytes()[10] == b'T' && !stamp.contains('.'),
        "{stamp}"
    );
    assert_eq!(
        same_status(&s, &kubectl, &status),
        "deployment \"web\" successfully rolled out"
    );
    same(&s, &kubectl, &["rollout", "history", "deploy/web"]);
    same(
        &s,
        &kubectl,
        &["rollout", "history", "deploy/web", "--revision=3"],
    );

    // undo goes back to the revision before, and to a chosen one.
    let undone = same_change(
        &s,
        &kubectl,
        &["rollout", "undo", "deploy/web"],
        &["rollout", "undo", "deploy/web"],
    );
    assert_eq!(undone, "deployment.apps/web rolled back\n");
    assert_eq!(
        same_status(&s, &kubectl, &status),
        "deployment \"web\" successfully rolled out"
    );
    same(&s, &kubectl, &["rollout", "history", "deploy/web"]);
    assert_eq!(
        ok(&s, &["rollout", "undo", "deploy/web", "--to-revision=1"]),
        "deployment.apps/web rolled back\n"
    );
    wait_for(30, "the first image back in the template", || {
        let image = s.ok(
            &kubectl,
            &[
                "get",
                "deploy",
                "web",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}",
            ],
        );
        (image == "nginx:1.25").then_some(())
    });
    assert_eq!(
        same_status(&s, &kubectl, &status),
        "deployment \"web\" successfully rolled out"
    );
    let history = same(&s, &kubectl, &["rollout", "history", "deploy/web"]);
    let newest = history.trim_end().lines().last().unwrap_or_default();
    assert!(newest.ends_with("<none>"), "{history}");
    // The change cause left with the revision it belonged to.
    let cause = s.ok(
        &kubectl,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.annotations}",
        ],
    );
    assert!(!cause.contains("change-cause"), "{cause}");

    // A rollout that cannot finish: the timeout, --watch=false, then the progress deadline.
    let stuck = ["rollout", "status", "deploy/stuck", "--timeout=2s"];
    let line = same_status(&s, &kubectl, &stuck);
    assert!(
        line.ends_with("0 of 2 updated replicas are available..."),
        "{line}"
    );
    assert_eq!(
        text(&skiff(&s, &stuck).stderr),
        "error: timed out waiting for the condition\n"
    );
    same(
        &s,
        &kubectl,
        &["rollout", "status", "deploy/stuck", "--watch=false"],
    );
    s.ok(
        &kubectl,
        &[
            "patch",
            "deploy",
            "stuck",
            "-p",
            "{\"spec\":{\"progressDeadlineSeconds\":1}}",
        ],
    );
    wait_for(30, "the progress deadline to pass", || {
        let reason = s.ok(
            &kubectl,
            &[
                "get",
                "deploy",
                "stuck",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}",
            ],
        );
        (reason == "ProgressDeadlineExceeded").then_some(())
    });
    let args = ["rollout", "status", "deploy/stuck", "--timeout=10s"];
    same(&s, &kubectl, &args);
    assert_eq!(
        fails(&s, &args),
        "error: deployment \"stuck\" exceeded its progress deadline\n"
    );
}

#[test]
fn rollout_daemon_and_stateful_sets_like_kubectl() {
    let (s, _agent) = server_with_nodes();
    let kubectl = kubectl_135();
    let out = skiff_stdin(&s, &["apply", "-f", "-"], Some(SETS));
    assert!(out.status.success(), "{}", text(&out.stderr));
    for name in ["ds/agent", "sts/db"] {
        same_status(&s, &kubectl, &["rollout", "status", name, "--timeout=60s"]);
    }
    s.ok(&kubectl, &["set", "image", "ds/agent", "a=busybox:1.37"]);
    s.ok(&kubectl, &["set", "image", "sts/db", "d=postgres:17"]);
    for name in ["ds/agent", "sts/db"] {
        let line = same_status(&s, &kubectl, &["rollout", "status", name, "--timeout=60s"]);
        assert!(
            line.contains("complete") || line.contains("successfully"),
            "{line}"
        );
        wait_for(30, "the second revision", || {
            let h = s.ok(&kubectl, &["rollout", "history", name]);
            h.contains("\n2 ").then_some(())
        });
        for args in [
            &["rollout", "history", name][..],
            &["rollout", "history", name, "--revision=1"],
            &["rollout", "history", name, "--revision=2"],
            &["rollout", "history", name, "--revision=5"],
            &["rollout", "undo", name, "--dry-run=client"],
            &["rollout", "undo", name, "--to-revision=9"],
            &["rollout", "pause", name],
            &["rollout", "resume", name],
        ] {
            same(&s, &kubectl, args);
        }
    }
    same(&s, &kubectl, &["rollout", "history", "ds,sts"]);
    assert_eq!(
        ok(&s, &["rollout", "undo", "ds/agent"]),
        "daemonset.apps/agent rolled back\n"
    );
    wait_for(30, "the first image back", || {
        let image = s.ok(
            &kubectl,
            &[
                "get",
                "ds",
                "agent",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}",
            ],
        );
        (image == "busybox:1.36").then_some(())
    });
    same_status(
        &s,
        &kubectl,
        &["rollout", "status", "ds/agent", "--timeout=60s"],
    );
    assert_eq!(
        ok(&s, &["rollout", "restart", "ds/agent", "sts/db"]),
        "daemonset.apps/agent restarted\nstatefulset.apps/db restarted\n"
    );
    for name in ["ds/agent", "sts/db"] {
        same_status(&s, &kubectl, &["rollout", "status", name, "--timeout=60s"]);
        same(&s, &kubectl, &["rollout", "history", name]);
    }
}
