//! Hollow (simulated) nodes: many Node objects served by one process, pods that only pretend to run.
//!
//! One process owns every hollow node it was started with. The work is shared across nodes:
//! one pod watch, one node watch, one task renewing every lease and one posting every node
//! status, each spreading its writes over its interval with bounded concurrency. Pod IPs come
//! from the pod CIDR the server assigns to each node; pods wait until their node has one.

mod heartbeat;
mod lease;
mod node;
mod pod_status;
mod pods;
mod spread;
pub mod usage;

use crate::capacity::Capacity;
use crate::ipam::PodIps;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use pod_status::{ANNOTATION_EXIT_CODE, ANNOTATION_RUN_SECONDS};

/// Annotation on each hollow Node: SHA-256 of the agent's kubelet serving certificate (DER), so the
/// metrics scraper can pin it (see docs/adr/002-agent-metrics-endpoint.md).
pub const ANNOTATION_KUBELET_CERT_SHA256: &str = "hollow.skiff.dev/kubelet-cert-sha256";

#[derive(Debug, thiserror::Error)]
pub enum HollowError {
    #[error("cannot register node {node}: {source}")]
    Register {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot build node {0}: {1}")]
    NodeObject(String, serde_json::Error),
    #[error("pod watch ended")]
    PodWatchEnded,
}

/// What every hollow node of this process looks like.
#[derive(Debug, Clone)]
pub struct HollowConfig {
    pub names: Vec<String>,
    pub node_ip: IpAddr,
    pub capacity: Capacity,
    /// How long a run-to-completion pod's containers run unless annotated otherwise.
    pub pod_run_seconds: f64,
    pub lease_duration_seconds: u32,
    /// How often a node's status is compared with the API's copy (nodeStatusUpdateFrequency).
    pub node_status_update: Duration,
    /// How often a node's status is written even when unchanged (nodeStatusReportFrequency).
    pub node_status_report: Duration,
    /// The kubelet endpoint advertised in `daemonEndpoints` (and served for metrics).
    pub kubelet_port: u16,
    /// SHA-256 of the kubelet endpoint's certificate, advertised as an annotation.
    pub kubelet_cert_sha256: Option<String>,
}

/// One hollow node's identity and what the agent knows of its Node object.
#[derive(Debug)]
pub struct NodeSlot {
    pub name: String,
    pub index: usize,
    /// The Node's UID once registered (a lease's owner reference needs it).
    pub uid: Mutex<Option<String>>,
    /// The Node object exists in the API (as last seen).
    pub exists: AtomicBool,
    /// When the conditions last changed: registration, or the last time the API showed the
    /// node not Ready.
    pub ready_since: Mutex<Timestamp>,
    /// The API's copy of the node's status differs from what the agent would post.
    pub status_drift: AtomicBool,
    /// When the node's full status was last written.
    pub last_report: Mutex<Option<Instant>>,
}

impl NodeSlot {
    fn uid(&self) -> Option<String> {
        self.uid.lock().ok().and_then(|u| u.clone())
    }
    fn set_uid(&self, uid: Option<String>) {
        if let Ok(mut u) = self.uid.lock() {
            *u = uid;
        }
    }
    fn reported(&self) {
        if let Ok(mut t) = self.last_report.lock() {
            *t = Some(Instant::now());
        }
        self.status_drift.store(false, Ordering::Relaxed);
    }
}

/// What the agent keeps about a pod it runs.
#[derive(Debug, Clone)]
pub struct PodRecord {
    pub started: Timestamp,
}

/// State shared by the hollow node tasks.
pub struct Hollow {
    pub client: kube::Client,
    pub config: HollowConfig,
    pub nodes: Vec<NodeSlot>,
    pub by_name: HashMap<String, usize>,
    pub ips: Mutex<PodIps>,
    pub pods: Mutex<HashMap<String, PodRecord>>,
    /// Nodes to (re-)register.
    register_tx: mpsc::UnboundedSender<usize>,
    /// Nodes whose pods need another look: registered again, or given a pod CIDR.
    revisit_tx: mpsc::UnboundedSender<usize>,
}

impl Hollow {
    pub fn node(&self, name: &str) -> Option<&NodeSlot> {
        self.by_name.get(name).map(|&i| &self.nodes[i])
    }

    /// Asks the registrar to create the node again (it was deleted).
    fn reregister(&self, index: usize) {
        if self.nodes[index].exists.swap(false, Ordering::Relaxed) {
            tracing::info!(node = %self.nodes[index].name, "node is gone: registering it again");
        }
        let _ = self.register_tx.send(index);
    }

    /// Records the pod CIDR the server assigned to node `index` (`None`: the node is gone); the
    /// node's pods are looked at again when it changes, as the ones waiting for it can now run.
    fn learn_pod_cidr(&self, index: usize, node: Option<&Node>) {
        let spec = node.and_then(|n| n.spec.as_ref());
        // The first IPv4 range: hollow pods are single-stack.
        let cidr = spec
            .and_then(|s| s.pod_cidrs.as_ref())
            .and_then(|cs| cs.iter().find(|c| !c.contains(':')))
            .or_else(|| spec.and_then(|s| s.pod_cidr.as_ref()));
        let changed = match self.ips.lock() {
            Ok(mut ips) => ips.set_cidr(index, cidr.map(String::as_str)),
            Err(_) => return,
        };
        match changed {
            Ok(true) => {
                tracing::info!(node = %self.nodes[index].name, pod_cidr = ?cidr, "pod cidr assigned");
                let _ = self.revisit_tx.send(index);
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(node = %self.nodes[index].name, error = %e, "unusable pod cidr: the node's pods wait");
            }
        }
    }
}

/// Runs the hollow nodes until `cancel` fires. Nodes stay registered afterwards; their leases
/// simply stop being renewed.
pub async fn run(
    client: kube::Client,
    config: HollowConfig,
    usage: Arc<usage::Usage>,
    cancel: CancellationToken,
) -> Result<(), crate::AgentError> {
    let ips = PodIps::new(config.names.len());
    let now = Timestamp::now();
    let nodes: Vec<NodeSlot> = config
        .names
        .iter()
        .enumerate()
        .map(|(index, name)| NodeSlot {
            name: name.clone(),
            index,
            uid: Mutex::new(None),
            exists: AtomicBool::new(false),
            ready_since: Mutex::new(now),
            status_drift: AtomicBool::new(false),
            last_report: Mutex::new(None),
        })
        .collect();
    let by_name = nodes
        .iter()
        .map(|n| (n.name.clone(), n.index))
        .collect::<HashMap<_, _>>();
    let (register_tx, register_rx) = mpsc::unbounded_channel();
    let (revisit_tx, revisit_rx) = mpsc::unbounded_channel();
    let hollow = Arc::new(Hollow {
        client,
        config,
        nodes,
        by_name,
        ips: Mutex::new(ips),
        pods: Mutex::new(HashMap::new()),
        register_tx,
        revisit_tx,
    });
    let started = std::time::Instant::now();
    node::register_all(&hollow, &cancel).await?;
    tracing::info!(
        nodes = hollow.nodes.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "hollow nodes registered"
    );
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(node::registrar(
        hollow.clone(),
        register_rx,
        cancel.child_token(),
    ));
    tasks.spawn(node::watch(hollow.clone(), cancel.child_token()));
    tasks.spawn(lease::run(hollow.clone(), cancel.child_token()));
    tasks.spawn(heartbeat::run(hollow.clone(), cancel.child_token()));
    tasks.spawn(pods::run(
        hollow.clone(),
        usage,
        revisit_rx,
        cancel.child_token(),
    ));
    // Any task ending early is a bug or a lost watch: stop everything rather than limp on.
    let mut result = Ok(());
    tokio::select! {
        _ = cancel.cancelled() => {}
        Some(r) = tasks.join_next() => {
            if let Ok(Err(e)) = r {
                result = Err(e);
            }
            cancel.cancel();
        }
    }
    while let Some(r) = tasks.join_next().await {
        if let Ok(Err(e)) = r
            && result.is_ok()
        {
            result = Err(e);
        }
    }
    result.map_err(crate::AgentError::Hollow)
}

/// Names for `n` hollow nodes: `NAME` alone for one node with an explicit name, else `NAME-i`.
pub fn node_names(base: &str, n: u32, explicit: bool) -> Vec<String> {
    if n == 1 && explicit {
        return vec![base.to_string()];
    }
    (0..n).map(|i| format!("{base}-{i}")).collect()
}

/// Kubernetes' name for this machine's architecture.
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_nodes_by_index_unless_one_is_named() {
        assert_eq!(node_names("h", 2, false), ["h-0", "h-1"]);
        assert_eq!(node_names("h", 1, true), ["h"]);
        assert_eq!(node_names("h", 1, false), ["h-0"]);
        assert_eq!(node_names("h", 2, true), ["h-0", "h-1"]);
    }
}
