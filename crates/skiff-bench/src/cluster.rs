//! Whole-cluster scenarios on hollow nodes: a release `skiff server`, one `skiff agent --hollow N`
//! process, Deployments created through the API, and how long until all their pods run.

use super::{Proc, Server, percentile, rss_mb, start_skiff_with};
use crate::client::Client;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Label on every Deployment and pod the scenarios create (URL-encoded selector below).
const LABEL: &str = "skiff-bench";
const SELECTOR: &str = "skiff-bench%3D1";
/// Hollow nodes carry this label (URL-encoded for a label selector).
const HOLLOW_SELECTOR: &str = "node.kubernetes.io/instance-type%3Dhollow";
/// Pods in one Deployment, at most. Each Deployment has a namespace of its own, as
/// clusterloader2 spreads its load: controllers list pods per namespace, so one namespace of
/// 150,000 pods would measure that listing more than the cluster.
const REPLICAS_PER_DEPLOYMENT: usize = 1_000;

fn namespace(deployment: usize) -> String {
    format!("bench-{deployment}")
}
/// Pod addresses in a node's /24.
const MAX_PODS_PER_NODE: usize = 250;

/// A server and one hollow agent process; both are killed by PID when dropped.
pub(crate) struct Cluster {
    pub(crate) server: Server,
    agent: Proc,
    agent_log: PathBuf,
}

impl Cluster {
    pub(crate) async fn start(
        skiff: &Path,
        nodes: usize,
        pods_per_node: usize,
        server_args: &[&str],
    ) -> Result<Cluster, String> {
        let server = start_skiff_with(skiff, server_args, true).await?;
        let token_path = server.dir.path().join("node-token");
        let deadline = Instant::now() + Duration::from_secs(30);
        let token = loop {
            match std::fs::read_to_string(&token_path) {
                Ok(t) if !t.trim().is_empty() => break t.trim().to_string(),
                _ if Instant::now() > deadline => {
                    return Err("the server wrote no node-token in 30 s".into());
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let agent_log = server.dir.path().join("agent.log");
        let log = std::fs::File::create(&agent_log).map_err(|e| e.to_string())?;
        let child = Command::new(skiff)
            .args([
                "agent",
                "--server",
                &format!("https://127.0.0.1:{}", server.port),
                "--token",
                &token,
                "--hollow",
                &nodes.to_string(),
                "--node-name",
                "hollow",
                "--kubelet-port",
                "0",
                "--hollow-capacity",
                &format!("cpu=4,memory=16Gi,pods={pods_per_node}"),
            ])
            .env("SKIFF_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {} agent: {e}", skiff.display()))?;
        Ok(Cluster {
            server,
            agent: Proc(child),
            agent_log,
        })
    }

    pub(crate) fn server_pid(&self) -> u32 {
        self.server.proc.0.id()
    }

    pub(crate) fn agent_pid(&self) -> u32 {
        self.agent.0.id()
    }

    /// The last lines of both logs, to explain a failure.
    fn logs(&self) -> String {
        let tail = |p: &Path| {
            let s = std::fs::read_to_string(p).unwrap_or_default();
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(10)..].join("\n")
        };
        format!(
            "\n--- server log (tail) ---\n{}\n--- agent log (tail) ---\n{}",
            tail(&self.server.dir.path().join("server.log")),
            tail(&self.agent_log)
        )
    }
}

/// Waits until `n` hollow nodes are Ready and have a pod CIDR.
pub(crate) async fn wait_nodes(c: &Client, n: usize, timeout: Duration) -> Result<(), String> {
    let t0 = Instant::now();
    let every = Duration::from_millis(500 + n as u64);
    let path = format!("/api/v1/nodes?labelSelector={HOLLOW_SELECTOR}");
    let mut last_report = Instant::now();
    loop {
        let (code, body) = c.status(http::Method::GET, &path, None).await?;
        if code != 200 {
            return Err(format!("node list answered {code}"));
        }
        let list: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let items = list["items"].as_array().map_or(&[][..], Vec::as_slice);
        let ready = items
            .iter()
            .filter(|node| {
                node["spec"]["podCIDR"].is_string()
                    && node["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .count();
        if ready >= n {
            return Ok(());
        }
        if t0.elapsed() > timeout {
            return Err(format!(
                "{ready}/{n} nodes Ready with a pod CIDR after {} s ({} registered)",
                timeout.as_secs(),
                items.len()
            ));
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            eprintln!(
                "  {:>5.0} s: {} nodes registered, {ready} Ready with a pod CIDR",
                t0.elapsed().as_secs_f64(),
                items.len()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(every).await;
    }
}

/// What the pod watch has seen: distinct pods created, bound and Running with Ready=True.
#[derive(Default)]
struct Progress {
    expected: usize,
    resource_version: String,
    created: HashSet<String>,
    bound: HashSet<String>,
    ready: HashSet<String>,
    first_pod: Option<String>,
    all_created: Option<Instant>,
    all_bound: Option<Instant>,
    all_ready: Option<Instant>,
    /// The server ended the watch with 410 Gone: it fell too far behind.
    expired: bool,
    error: Option<String>,
}

impl Progress {
    /// Takes one watch line; returns whether to stop watching (all ready, or an error).
    fn apply(&mut self, line: &[u8]) -> bool {
        let Ok(ev) = serde_json::from_slice::<Value>(line) else {
            return false;
        };
        let obj = &ev["object"];
        if let Some(rv) = obj["metadata"]["resourceVersion"].as_str() {
            self.resource_version = rv.to_string();
        }
        let name = format!(
            "{}/{}",
            obj["metadata"]["namespace"].as_str().unwrap_or_default(),
            obj["metadata"]["name"].as_str().unwrap_or_default()
        );
        let name = name.as_str();
        match ev["type"].as_str() {
            Some("ADDED" | "MODIFIED") => {
                if self.first_pod.is_none() {
                    self.first_pod = Some(name.to_string());
                }
                self.created.insert(name.to_string());
                if obj["spec"]["nodeName"]
                    .as_str()
                    .is_some_and(|n| !n.is_empty())
                {
                    self.bound.insert(name.to_string());
                }
                let ready = obj["status"]["phase"] == "Running"
                    && obj["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True");
                if ready {
                    self.ready.insert(name.to_string());
                } else {
                    self.ready.remove(name);
                }
            }
            Some("DELETED") => {
                self.bound.remove(name);
                self.ready.remove(name);
            }
            Some("ERROR") if obj["code"] == 410 => {
                self.expired = true;
                return true;
            }
            Some("ERROR") => {
                self.error = Some(format!(
                    "pod watch error: {}",
                    String::from_utf8_lossy(line)
                ));
                return true;
            }
            _ => {}
        }
        let now = Instant::now();
        let n = self.expected;
        if self.all_created.is_none() && self.created.len() >= n {
            self.all_created = Some(now);
        }
        if self.all_bound.is_none() && self.bound.len() >= n {
            self.all_bound = Some(now);
        }
        if self.all_ready.is_none() && self.ready.len() >= n {
            self.all_ready = Some(now);
        }
        self.all_ready.is_some()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Watches the scenario's pods from `resource_version` until all expected pods are ready,
/// resuming where it left off when the server ends a watch, and starting over from the
/// current state (a watch that sends every pod first) when it ends it with 410 Gone, as an
/// informer re-lists.
async fn track(c: Arc<Client>, progress: Arc<Mutex<Progress>>) -> Result<(), String> {
    let mut relist = false;
    loop {
        let path = if relist {
            format!(
                "/api/v1/pods?watch=1&labelSelector={SELECTOR}&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=600"
            )
        } else {
            let rv = lock(&progress).resource_version.clone();
            format!(
                "/api/v1/pods?watch=1&labelSelector={SELECTOR}&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds=600"
            )
        };
        let stopped = c
            .watch_each(&path, |line| lock(&progress).apply(line))
            .await?;
        let mut p = lock(&progress);
        if let Some(e) = &p.error {
            return Err(e.clone());
        }
        relist = p.expired;
        if relist {
            // The watch that follows sends every pod again.
            eprintln!("pod watch expired (410); watching again from the current state");
            p.expired = false;
            p.created.clear();
            p.bound.clear();
            p.ready.clear();
        } else if stopped {
            return Ok(());
        }
    }
}

/// Latencies of the fixed set of API calls made while the cluster is under load.
#[derive(Default)]
struct Samples {
    get_pod: Vec<Duration>,
    list_pods: Vec<Duration>,
    get_node: Vec<Duration>,
    /// Samples taken after the load ended, to reach the minimum count.
    after_load: usize,
    failures: usize,
}

impl Samples {
    fn len(&self) -> usize {
        self.get_pod
            .len()
            .min(self.list_pods.len())
            .min(self.get_node.len())
    }
    fn row(lat: &mut [Duration]) -> String {
        lat.sort();
        format!(
            "p50 {:.1} ms, p99 {:.1} ms",
            percentile(lat, 0.5).as_secs_f64() * 1000.0,
            percentile(lat, 0.99).as_secs_f64() * 1000.0
        )
    }
}

async fn timed(c: &Client, path: &str, into: &mut Vec<Duration>) -> bool {
    let t = Instant::now();
    match c.status(http::Method::GET, path, None).await {
        Ok((200, _)) => {
            into.push(t.elapsed());
            true
        }
        _ => false,
    }
}

/// Every `every`, GETs a pod, LISTs pods with limit=500 and GETs a node, until `done` is set
/// and at least `min` samples of each were taken.
async fn sample(
    c: Client,
    progress: Arc<Mutex<Progress>>,
    done: tokio::sync::watch::Receiver<bool>,
    every: Duration,
    min: usize,
) -> Samples {
    let mut s = Samples::default();
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let finished = *done.borrow();
        if finished && s.len() >= min {
            return s;
        }
        let Some(pod) = lock(&progress).first_pod.clone() else {
            continue;
        };
        let Some((ns, name)) = pod.split_once('/') else {
            continue;
        };
        let pod_path = format!("/api/v1/namespaces/{ns}/pods/{name}");
        let got_pod = timed(&c, &pod_path, &mut s.get_pod).await;
        let listed = timed(&c, "/api/v1/pods?limit=500", &mut s.list_pods).await;
        let got_node = timed(&c, "/api/v1/nodes/hollow-0", &mut s.get_node).await;
        if !(got_pod && listed && got_node) {
            s.failures += 1;
        }
        if finished {
            s.after_load += 1;
        }
    }
}

fn deployment(name: &str, namespace: &str, replicas: usize) -> String {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {LABEL: "1"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, LABEL: "1"}},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    })
    .to_string()
}

/// Sum of `status.availableReplicas` over the scenario's Deployments.
async fn available(c: &Client) -> Result<usize, String> {
    let (code, body) = c
        .status(
            http::Method::GET,
            &format!("/apis/apps/v1/deployments?labelSelector={SELECTOR}"),
            None,
        )
        .await?;
    if code != 200 {
        return Err(format!("deployment list answered {code}"));
    }
    let v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    Ok(v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| d["status"]["availableReplicas"].as_u64().unwrap_or(0) as usize)
        .sum())
}

/// A workload's figures.
struct Outcome {
    nodes_ready: Duration,
    rss_nodes: f64,
    created: Option<Duration>,
    bound: Option<Duration>,
    ready: Duration,
    available: Duration,
    rss_end: f64,
    rss_peak: f64,
    agent_rss: f64,
    samples: Option<Samples>,
}

/// Starts the cluster, creates `pods` pods as Deployments of at most 1,000 replicas (one
/// namespace each) and waits until all run and are available.
async fn workload(
    skiff: &Path,
    nodes: usize,
    pods: usize,
    server_args: &[&str],
    sample_every: Option<Duration>,
    timeout: Duration,
) -> Result<Outcome, String> {
    let per_node = pods.div_ceil(nodes.max(1)) * 2;
    if pods.div_ceil(nodes.max(1)) > MAX_PODS_PER_NODE {
        return Err(format!(
            "{pods} pods do not fit on {nodes} nodes of at most {MAX_PODS_PER_NODE} pods"
        ));
    }
    let cluster = Cluster::start(
        skiff,
        nodes,
        per_node.clamp(110, MAX_PODS_PER_NODE),
        server_args,
    )
    .await?;
    eprintln!(
        "skiff server pid {}, agent pid {} (--hollow {nodes})",
        cluster.server_pid(),
        cluster.agent_pid()
    );
    let result = drive(&cluster, nodes, pods, sample_every, timeout).await;
    result.map_err(|e| format!("{e}{}", cluster.logs()))
}

async fn drive(
    cluster: &Cluster,
    nodes: usize,
    pods: usize,
    sample_every: Option<Duration>,
    timeout: Duration,
) -> Result<Outcome, String> {
    let c = cluster.server.client().await?;
    let t_nodes = Instant::now();
    wait_nodes(&c, nodes, Duration::from_secs(120 + nodes as u64 / 5)).await?;
    let nodes_ready = t_nodes.elapsed();
    let rss_nodes = rss_mb(cluster.server_pid());
    eprintln!(
        "{nodes} nodes Ready in {:.1} s; server RSS {rss_nodes:.0} MB, agent RSS {:.0} MB",
        nodes_ready.as_secs_f64(),
        rss_mb(cluster.agent_pid())
    );

    let deployments = pods.div_ceil(REPLICAS_PER_DEPLOYMENT).max(1);
    for d in 0..deployments {
        let ns =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace(d)}});
        let (code, body) = c
            .status(
                http::Method::POST,
                "/api/v1/namespaces",
                Some(ns.to_string()),
            )
            .await?;
        if code != 201 {
            return Err(format!(
                "namespace create answered {code}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
    }
    let (code, body) = c
        .status(
            http::Method::GET,
            &format!("/api/v1/pods?limit=1&labelSelector={SELECTOR}"),
            None,
        )
        .await?;
    if code != 200 {
        return Err(format!("pod list answered {code}"));
    }
    let rv = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| {
            v["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default();
    let progress = Arc::new(Mutex::new(Progress {
        expected: pods,
        resource_version: rv,
        ..Progress::default()
    }));
    // Both sets abort their task when dropped, on every way out of this function.
    let mut tracker = tokio::task::JoinSet::new();
    let mut sampler = tokio::task::JoinSet::new();
    let watcher = Arc::new(cluster.server.client().await?);
    tracker.spawn(track(watcher, progress.clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(every) = sample_every {
        let conn = cluster.server.client().await?;
        sampler.spawn(sample(conn, progress.clone(), stop_rx, every, 200));
    }

    let t0 = Instant::now();
    for d in 0..deployments {
        let replicas = pods / deployments + usize::from(d < pods % deployments);
        let ns = namespace(d);
        let (code, body) = c
            .status(
                http::Method::POST,
                &format!("/apis/apps/v1/namespaces/{ns}/deployments"),
                Some(deployment(&format!("web-{d}"), &ns, replicas)),
            )
            .await?;
        if code != 201 {
            return Err(format!(
                "deployment create answered {code}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
    }
    eprintln!(
        "{deployments} Deployments ({pods} pods, one namespace each) created in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let mut rss_peak = rss_mb(cluster.server_pid());
    let deadline = t0 + timeout;
    let mut last_print = Instant::now();
    let tracked = loop {
        if Instant::now() > deadline {
            let p = lock(&progress);
            return Err(format!(
                "not all pods ran within {} s: {} created, {} bound, {} Running and Ready",
                timeout.as_secs(),
                p.created.len(),
                p.bound.len(),
                p.ready.len()
            ));
        }
        tokio::select! {
            r = tracker.join_next() => break r,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        if last_print.elapsed() >= Duration::from_secs(10) {
            let rss = rss_mb(cluster.server_pid());
            rss_peak = rss_peak.max(rss);
            let p = lock(&progress);
            eprintln!(
                "  {:>5.0} s: {:>7} created, {:>7} bound, {:>7} ready; server RSS {rss:.0} MB, agent RSS {:.0} MB",
                t0.elapsed().as_secs_f64(),
                p.created.len(),
                p.bound.len(),
                p.ready.len(),
                rss_mb(cluster.agent_pid())
            );
            last_print = Instant::now();
        }
    };
    match tracked {
        Some(Ok(r)) => r?,
        Some(Err(e)) => return Err(format!("pod watch task: {e}")),
        None => return Err("no pod watch task".into()),
    }
    let (created, bound, ready) = {
        let p = lock(&progress);
        let since = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(t0));
        (
            since(p.all_created),
            since(p.all_bound),
            since(p.all_ready).unwrap_or_else(|| t0.elapsed()),
        )
    };
    // Available replicas follow readiness through the ReplicaSet and Deployment controllers.
    let avail_deadline = Instant::now() + Duration::from_secs(120);
    let available_after = loop {
        if available(&c).await? >= pods {
            break t0.elapsed();
        }
        if Instant::now() > avail_deadline {
            return Err(format!(
                "all pods ready but availableReplicas short of {pods} 120 s later"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let rss_end = rss_mb(cluster.server_pid());
    let _ = stop_tx.send(true);
    let samples = match tokio::time::timeout(Duration::from_secs(600), sampler.join_next()).await {
        Ok(Some(Ok(s))) => Some(s),
        Ok(Some(Err(e))) => return Err(format!("sampler task: {e}")),
        Ok(None) => None,
        Err(_) => return Err("the sampler did not finish in 600 s".into()),
    };
    Ok(Outcome {
        nodes_ready,
        rss_nodes,
        created,
        bound,
        ready,
        available: available_after,
        rss_end,
        rss_peak: rss_peak.max(rss_end),
        agent_rss: rss_mb(cluster.agent_pid()),
        samples,
    })
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1} s", d.as_secs_f64()))
}

/// `--deployment-1000`: 100 hollow nodes, one Deployment of 1,000 replicas.
pub async fn deployment_1000(skiff: &Path) -> Result<String, String> {
    let (nodes, pods) = (100, 1_000);
    let o = workload(skiff, nodes, pods, &[], None, Duration::from_secs(600)).await?;
    Ok(format!(
        "| Deployment of 1,000 replicas on {nodes} hollow nodes, create to all Running and Ready | {:.1} s (all created {}, all bound {}; availableReplicas = 1000 at {:.1} s; server RSS {:.0} MB) | none measured here (k3s would need its own run) | |\n",
        o.ready.as_secs_f64(),
        secs(o.created),
        secs(o.bound),
        o.available.as_secs_f64(),
        o.rss_end,
    ))
}

/// `--scale`: `nodes` hollow nodes, then `pods` pods as Deployments of 1,000 replicas, with API
/// latencies sampled under the load.
pub async fn scale(skiff: &Path, nodes: usize, pods: usize) -> Result<String, String> {
    let o = workload(
        skiff,
        nodes,
        pods,
        &["--cluster-cidr", "10.0.0.0/8"],
        Some(Duration::from_secs(1)),
        Duration::from_secs(3_600),
    )
    .await?;
    let per_10k = (o.rss_end - o.rss_nodes) / pods.max(1) as f64 * 10_000.0;
    let mut out = format!(
        "| {nodes} hollow nodes Ready (one agent) | {:.1} s; server RSS {:.0} MB | | |\n\
         | {pods} pods ({} Deployments) create to all Running and Ready | {:.1} s (all created {}, all bound {}; available {:.1} s) | | |\n\
         | server RSS with {pods} pods | {:.0} MB (peak {:.0} MB; {per_10k:.0} MB per 10k pods); agent RSS {:.0} MB | | ≤ 4 GB |\n",
        o.nodes_ready.as_secs_f64(),
        o.rss_nodes,
        pods.div_ceil(REPLICAS_PER_DEPLOYMENT),
        o.ready.as_secs_f64(),
        secs(o.created),
        secs(o.bound),
        o.available.as_secs_f64(),
        o.rss_end,
        o.rss_peak,
        o.agent_rss,
    );
    if let Some(mut s) = o.samples {
        let n = s.len();
        out.push_str(&format!(
            "| API latency under the load ({n} samples each, {} after it, {} failed) | GET pod {}; LIST pods limit=500 {}; GET node {} | | |\n",
            s.after_load,
            s.failures,
            Samples::row(&mut s.get_pod),
            Samples::row(&mut s.list_pods),
            Samples::row(&mut s.get_node),
        ));
    }
    Ok(out)
}
