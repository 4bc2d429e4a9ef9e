//! Issue 3's acceptance: the real kubectl 1.35 against `skiff server` with hollow nodes
//! (`skiff agent --hollow`): deployments roll, replication controllers, jobs and cron jobs,
//! daemon sets, stateful sets, preemption, drain with a disruption budget, node failure, HPA.

use serde_json::Value;
use skiff_testkit::{Agent, TestServer, kubectl_135, wait_for};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

fn bin() -> &'static Path {
    env!("CARGO_BIN_EXE_skiff").as_ref()
}

/// Server flags that make failure detection and autoscaling fast enough for a test.
const FAST: &[&str] = &[
    "--node-monitor-grace-period",
    "4",
    "--default-unreachable-toleration-seconds",
    "2",
    "--default-not-ready-toleration-seconds",
    "2",
    "--metrics-resolution",
    "1s",
    "--horizontal-pod-autoscaler-sync-period",
    "1",
];

/// Agent flags: heartbeats every second (lease 4 s), small nodes.
fn agent_args<'a>(n: &'a str, name: &'a str, capacity: &'a str) -> Vec<&'a str> {
    vec![
        "--hollow",
        n,
        "--node-name",
        name,
        "--lease-duration-seconds",
        "4",
        "--hollow-capacity",
        capacity,
        "--hollow-pod-run-seconds",
        "1",
    ]
}

fn k(s: &TestServer, args: &[&str]) -> String {
    s.ok(&kubectl_135(), args)
}

fn k_stdin(s: &TestServer, args: &[&str], stdin: &str) -> String {
    let out = s.run_stdin(&kubectl_135(), args, Some(stdin));
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(s: &TestServer, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&k(s, &a)).expect("kubectl prints JSON")
}

/// Pods matching `selector` that are not terminating.
fn live_pods(s: &TestServer, selector: &str) -> Vec<Value> {
    json(s, &["get", "pods", "-l", selector])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .collect()
}

fn ready(p: &Value) -> bool {
    p.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn running_ready(s: &TestServer, selector: &str, n: usize) -> bool {
    let pods = live_pods(s, selector);
    pods.len() == n && pods.iter().all(ready)
}

fn start_nodes(s: &TestServer) -> (Agent, Agent) {
    let a = Agent::start(
        bin(),
        s,
        &agent_args("2", "node-a", "cpu=2,memory=4Gi,pods=20"),
    );
    let b = Agent::start(
        bin(),
        s,
        &agent_args("1", "node-b", "cpu=2,memory=4Gi,pods=20"),
    );
    wait_for(30, "3 Ready nodes", || {
        let nodes = json(s, &["get", "nodes"]);
        let ready = nodes["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|n| {
                        n.pointer("/status/conditions")
                            .and_then(Value::as_array)
                            .is_some_and(|cs| {
                                cs.iter()
                                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
                            })
                            && n.pointer("/spec/podCIDR").is_some()
                    })
                    .count()
            })
            .unwrap_or(0);
        (ready == 3).then_some(())
    });
    (a, b)
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 5
  selector:
    matchLabels: {app: web}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 1}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports: [{containerPort: 80}]
        resources: {requests: {cpu: 50m, memory: 32Mi}}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
"#;

fn endpoint_ips(s: &TestServer, name: &str) -> Vec<String> {
    let ep = json(s, &["get", "endpoints", name]);
    let mut ips: Vec<String> = ep["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|ss| ss["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["ip"].as_str().map(String::from))
        .collect();
    ips.sort();
    ips
}

fn pod_ips(pods: &[Value]) -> Vec<String> {
    let mut ips: Vec<String> = pods
        .iter()
        .filter_map(|p| {
            p.pointer("/status/podIP")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .collect();
    ips.sort();
    ips
}

#[test]
fn deployments_scale_roll_and_heal() {
    let s = TestServer::start_with(bin(), FAST);
    let _nodes = start_nodes(&s);
    k_stdin(&s, &["apply", "-f", "-"], WEB);
    wait_for(60, "5 pods running and ready", || {
        running_ready(&s, "app=web", 5).then_some(())
    });
    // The service's endpoints list the 5 pods.
    wait_for(30, "endpoints list the 5 pods", || {
        let pods = live_pods(&s, "app=web");
        (endpoint_ips(&s, "web") == pod_ips(&pods) && pods.len() == 5).then_some(())
    });
    let nodes_used: std::collections::BTreeSet<String> = live_pods(&s, "app=web")
        .iter()
        .filter_map(|p| {
            p.pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .collect();
    assert!(nodes_used.len() >= 2, "spread over nodes: {nodes_used:?}");

    // Scale to 10 and back.
    k(&s, &["scale", "deployment/web", "--replicas=10"]);
    wait_for(60, "10 pods", || {
        running_ready(&s, "app=web", 10).then_some(())
    });
    k(&s, &["scale", "deployment/web", "--replicas=5"]);
    wait_for(60, "back to 5 pods", || {
        running_ready(&s, "app=web", 5).then_some(())
    });

    // A new image rolls out within maxSurge 1 / maxUnavailable 1 at every observed step.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let watcher = {
        let kubeconfig = s.kubeconfig();
        let stop = stop.clone();
        let seen = seen.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let out = std::process::Command::new(kubectl_135())
                    .args(["--kubeconfig"])
                    .arg(&kubeconfig)
                    .args(["get", "pods", "-l", "app=web", "-o", "json"])
                    .output();
                if let Ok(out) = out
                    && let Ok(v) = serde_json::from_slice::<Value>(&out.stdout)
                {
                    let pods: Vec<&Value> = v["items"]
                        .as_array()
                        .map(|a| a.iter().collect())
                        .unwrap_or_default();
                    let total = pods
                        .iter()
                        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
                        .count();
                    let ready_n = pods
                        .iter()
                        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none() && ready(p))
                        .count();
                    if total > 6 || ready_n < 4 {
                        seen.lock()
                            .expect("lock")
                            .push(format!("{total} pods, {ready_n} ready"));
                    }
                }
            }
        })
    };
    k(&s, &["set", "image", "deployment/web", "nginx=nginx:1.26"]);
    let status = k(
        &s,
        &["rollout", "status", "deployment/web", "--timeout=90s"],
    );
    assert!(status.contains("successfully rolled out"), "{status}");
    stop.store(true, Ordering::Relaxed);
    watcher.join().expect("watcher thread");
    let broken = seen.lock().expect("lock").clone();
    assert!(broken.is_empty(), "rollout bounds broken: {broken:?}");
    let images: Vec<String> = live_pods(&s, "app=web")
        .iter()
        .map(|p| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(images, vec!["nginx:1.26"; 5]);
    let history = k(&s, &["rollout", "history", "deployment/web"]);
    assert!(
        history.contains("1 ") && history.contains("2 "),
        "{history}"
    );

    // Undo goes back to the first template.
    k(&s, &["rollout", "undo", "deployment/web"]);
    k(
        &s,
        &["rollout", "status", "deployment/web", "--timeout=90s"],
    );
    wait_for(60, "old image back", || {
        let pods = live_pods(&s, "app=web");
        (pods.len() == 5
            && pods
                .iter()
                .all(|p| p["spec"]["containers"][0]["image"] == "nginx:1.25"))
        .then_some(())
    });
    let d = json(&s, &["get", "deployment", "web"]);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );

    // A deleted pod is replaced.
    let victim = live_pods(&s, "app=web")[0]["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    k(&s, &["delete", "pod", &victim]);
    wait_for(60, "replacement pod", || {
        let pods = live_pods(&s, "app=web");
        (pods.len() == 5
            && pods.iter().all(ready)
            && pods
                .iter()
                .all(|p| p["metadata"]["name"] != victim.as_str()))
        .then_some(())
    });
    let described = k(&s, &["describe", "deployment", "web"]);
    assert!(described.contains("ScalingReplicaSet"), "{described}");
}

#[test]
fn replication_controllers_jobs_and_cron_jobs_complete() {
    let s = TestServer::start_with(bin(), FAST);
    let _nodes = start_nodes(&s);
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/manifests");
    let rc = manifests.join("rc-quote-frontend.yaml");
    k(&s, &["apply", "-f", rc.to_str().unwrap_or_default()]);
    wait_for(60, "seed 002's 2 replicas", || {
        running_ready(&s, "app=quote-api,role=frontend", 2).then_some(())
    });
    let first = live_pods(&s, "role=frontend")[0]["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    k(&s, &["delete", "pod", &first]);
    wait_for(60, "still 2 replicas", || {
        let pods = live_pods(&s, "role=frontend");
        (pods.len() == 2
            && pods.iter().all(ready)
            && pods.iter().all(|p| p["metadata"]["name"] != first.as_str()))
        .then_some(())
    });

    // A Job of 3 completions runs to completion.
    k_stdin(
        &s,
        &["apply", "-f", "-"],
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: pi}
spec:
  completions: 3
  parallelism: 2
  backoffLimit: 4
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: pi, image: "perl:5.34", command: ["perl", "-Mbignum=bpi", "-wle", "print bpi(100)"]}
"#,
    );
    k(
        &s,
        &[
            "wait",
            "--for=condition=complete",
            "job/pi",
            "--timeout=90s",
        ],
    );
    let job = json(&s, &["get", "job", "pi"]);
    assert_eq!(job["status"]["succeeded"], 3);

    // A CronJob fires (every minute) and its Job completes.
    k_stdin(
        &s,
        &["apply", "-f", "-"],
        r#"
apiVersion: batch/v1
kind: CronJob
metadata: {name: hello}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - {name: hello, image: "busybox:1.36", command: ["sh", "-c", "date; echo Hello"]}
"#,
    );
    let job = wait_for(90, "the cron job's Job completes", || {
        let jobs = json(&s, &["get", "jobs"]);
        jobs["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|j| {
                let owned =
                    j.pointer("/metadata/ownerReferences/0/kind") == Some(&Value::from("CronJob"));
                let done = j
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Complete" && c["status"] == "True")
                    });
                (owned && done).then(|| j["metadata"]["name"].as_str().unwrap_or("").to_string())
            })
    });
    assert!(job.starts_with("hello-"), "{job}");
    wait_for(30, "lastSuccessfulTime", || {
        json(&s, &["get", "cronjob", "hello"])
            .pointer("/status/lastSuccessfulTime")
            .map(|_| ())
    });
}

#[test]
fn daemon_sets_and_stateful_sets() {
    let s = TestServer::start_with(bin(), FAST);
    let _nodes = start_nodes(&s);
    k(&s, &["taint", "nodes", "node-b", "dedicated=db:NoSchedule"]);
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/manifests");
    let ds = manifests.join("daemonset.yaml");
    k(&s, &["apply", "-f", ds.to_str().unwrap_or_default()]);
    wait_for(60, "one logger on each untainted node", || {
        let pods = live_pods(&s, "app=node-logger");
        let mut nodes: Vec<String> = pods
            .iter()
            .filter(|p| ready(p))
            .filter_map(|p| {
                p.pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .collect();
        nodes.sort();
        (nodes == ["node-a-0", "node-a-1"]).then_some(())
    });
    let ds = json(&s, &["get", "daemonset", "node-logger"]);
    assert_eq!(ds["status"]["desiredNumberScheduled"], 2);

    // A StatefulSet with claims: ordered pods, one PVC each.
    k_stdin(
        &s,
        &["apply", "-f", "-"],
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: pg
        image: postgres:16
        volumeMounts: [{name: data, mountPath: /var/lib/postgresql/data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#,
    );
    wait_for(90, "db-0..db-2 ready", || {
        running_ready(&s, "app=db", 3).then_some(())
    });
    let created: Vec<(String, String)> = {
        let mut v: Vec<(String, String)> = live_pods(&s, "app=db")
            .iter()
            .map(|p| {
                (
                    p["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let names: Vec<&str> = created.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["db-0", "db-1", "db-2"], "created in order");
    let pvcs = k(&s, &["get", "pvc", "-o", "name"]);
    for i in 0..3 {
        assert!(
            pvcs.contains(&format!("persistentvolumeclaim/data-db-{i}")),
            "{pvcs}"
        );
    }
}

#[test]
fn preemption_drain_and_node_failure() {
    let s = TestServer::start_with(bin(), FAST);
    let (_a, mut b) = start_nodes(&s);
    // Fill the cluster (3 nodes × 2 CPUs) with low-priority pods of 1 CPU each.
    k_stdin(
        &s,
        &["apply", "-f", "-"],
        r#"
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: low}
value: 10
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: filler}
spec:
  replicas: 6
  selector: {matchLabels: {app: filler}}
  template:
    metadata: {labels: {app: filler}}
    spec:
      priorityClassName: low
      containers:
      - {name: c, image: "busybox:1.36", resources: {requests: {cpu: "1"}}}
"#,
    );
    wait_for(60, "the cluster is full", || {
        running_ready(&s, "app=filler", 6).then_some(())
    });
    k_stdin(
        &s,
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata: {name: important, labels: {app: important}}
spec:
  priorityClassName: high
  containers:
  - {name: c, image: "busybox:1.36", resources: {requests: {cpu: "1"}}}
"#,
    );
    wait_for(60, "the high-priority pod runs", || {
        let p = json(&s, &["get", "pod", "important"]);
        ready(&p).then_some(())
    });
    let events = k(
        &s,
        &["get", "events", "--field-selector", "reason=Preempted"],
    );
    assert!(events.contains("Preempted"), "{events}");
    // The preempted replica is recreated and cannot fit: it is Pending, FailedScheduling.
    wait_for(30, "a pending filler with FailedScheduling", || {
        let ev = k(
            &s,
            &[
                "get",
                "events",
                "--field-selector",
                "reason=FailedScheduling",
            ],
        );
        ev.contains("Insufficient cpu").then_some(())
    });
    k(&s, &["delete", "pod", "important"]);
    wait_for(60, "fillers back to 6", || {
        running_ready(&s, "app=filler", 6).then_some(())
    });

    // Drain respects a disruption budget.
    k(
        &s,
        &[
            "create",
            "pdb",
            "filler",
            "--selector=app=filler",
            "--min-available=6",
        ],
    );
    wait_for(30, "budget computed", || {
        (json(&s, &["get", "pdb", "filler"]).pointer("/status/currentHealthy")
            == Some(&Value::from(6)))
        .then_some(())
    });
    let out = s.run(
        &kubectl_135(),
        &["drain", "node-a-0", "--ignore-daemonsets", "--timeout=8s"],
    );
    assert!(!out.status.success(), "drain must not violate the budget");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("disruption budget"), "{err}");
    assert!(running_ready(&s, "app=filler", 6), "no filler was evicted");
    k(&s, &["delete", "pdb", "filler"]);
    k(&s, &["uncordon", "node-a-0"]);

    // node-b stops heartbeating: it turns Unknown and its pods move to the other nodes.
    k(&s, &["delete", "deployment", "filler"]);
    k(&s, &["cordon", "node-a-0"]);
    k(&s, &["cordon", "node-a-1"]);
    k_stdin(
        &s,
        &["apply", "-f", "-"],
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: moved}
spec:
  replicas: 3
  selector: {matchLabels: {app: moved}}
  template:
    metadata: {labels: {app: moved}}
    spec:
      containers:
      - {name: c, image: "busybox:1.36", resources: {requests: {cpu: 100m}}}
"#,
    );
    wait_for(60, "3 pods on node-b", || {
        let pods = live_pods(&s, "app=moved");
        (pods.len() == 3
            && pods.iter().all(ready)
            && pods
                .iter()
                .all(|p| p.pointer("/spec/nodeName") == Some(&Value::from("node-b"))))
        .then_some(())
    });
    k(&s, &["uncordon", "node-a-0"]);
    k(&s, &["uncordon", "node-a-1"]);
    b.kill();
    wait_for(60, "node-b Unknown and tainted", || {
        let n = json(&s, &["get", "node", "node-b"]);
        let unknown = n
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "Unknown")
            });
        let tainted = n
            .pointer("/spec/taints")
            .and_then(Value::as_array)
            .is_some_and(|ts| {
                ts.iter().any(|t| {
                    t["key"] == "node.kubernetes.io/unreachable" && t["effect"] == "NoExecute"
                })
            });
        (unknown && tainted).then_some(())
    });
    wait_for(90, "the pods moved off node-b", || {
        let pods = live_pods(&s, "app=moved");
        (pods.len() == 3
            && pods.iter().all(ready)
            && pods
                .iter()
                .all(|p| p.pointer("/spec/nodeName") != Some(&Value::from("node-b"))))
        .then_some(())
    });
    let nodes = k(&s, &["get", "nodes"]);
    assert!(nodes.contains("NotReady"), "{nodes}");
}

#[test]
fn horizontal_pod_autoscaler_follows_hollow_usage() {
    let s = TestServer::start_with(bin(), FAST);
    let _nodes = start_nodes(&s);
    k_stdin(
        &s,
        &["apply", "-f", "-"],
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata:
      labels: {app: api}
      annotations: {hollow.skiff.dev/cpu: "90m"}
    spec:
      containers:
      - {name: c, image: "busybox:1.36", resources: {requests: {cpu: 100m}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: api}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: api}
  minReplicas: 1
  maxReplicas: 6
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  behavior:
    scaleDown: {stabilizationWindowSeconds: 0}
"#,
    );
    // 90 % of the request against a 50 % target: more replicas.
    wait_for(90, "scaled up", || {
        let d = json(&s, &["get", "deployment", "api"]);
        (d.pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            >= 4)
            .then_some(())
    });
    let hpa = k(&s, &["get", "hpa", "api"]);
    let row = hpa
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>();
    // NAME REFERENCE TARGETS(cpu: x%/50%) MINPODS MAXPODS REPLICAS AGE, as kubectl 1.35 shows.
    assert_eq!(row.get(1), Some(&"Deployment/api"), "{hpa}");
    assert_eq!(row.get(2), Some(&"cpu:"), "{hpa}");
    assert!(row.get(3).is_some_and(|t| t.ends_with("/50%")), "{hpa}");
    // Usage falls: every pod now reports 5 % of its request.
    wait_for(90, "scaled back down", || {
        for p in live_pods(&s, "app=api") {
            let name = p["metadata"]["name"].as_str().unwrap_or("").to_string();
            let _ = s.run(
                &kubectl_135(),
                &[
                    "annotate",
                    "pod",
                    &name,
                    "--overwrite",
                    "hollow.skiff.dev/cpu=5m",
                ],
            );
        }
        let d = json(&s, &["get", "deployment", "api"]);
        (d.pointer("/spec/replicas").and_then(Value::as_i64) == Some(1)).then_some(())
    });
    let events = k(&s, &["describe", "hpa", "api"]);
    assert!(events.contains("SuccessfulRescale"), "{events}");
    // Below minReplicas the target is raised even when no metric can be read (no memory
    // request here), as upstream's controller checks the bounds before the metrics.
    k(
        &s,
        &[
            "patch",
            "hpa",
            "api",
            "--type=merge",
            "-p",
            r#"{"spec":{"minReplicas":3,"metrics":[{"type":"Resource","resource":{"name":"memory","target":{"type":"Utilization","averageUtilization":50}}}]}}"#,
        ],
    );
    wait_for(60, "raised to minReplicas", || {
        let d = json(&s, &["get", "deployment", "api"]);
        (d.pointer("/spec/replicas").and_then(Value::as_i64) == Some(3)).then_some(())
    });
    let events = k(&s, &["describe", "hpa", "api"]);
    assert!(
        events.contains("Current number of replicas below Spec.MinReplicas"),
        "{events}"
    );
}
