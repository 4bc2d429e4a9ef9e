//! Hollow Node objects: what they look like, registering them, and watching them for deletion,
//! the pod CIDR the server assigns, and status the API shows differently from the agent.

use super::{Hollow, HollowConfig, HollowError, NodeSlot};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, NodeStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Registrations in flight at once.
const REGISTER_CONCURRENCY: usize = 32;

pub const INSTANCE_TYPE_LABEL: &str = "node.kubernetes.io/instance-type";

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// RFC 3339 with seconds, as `metav1.Time` serializes.
pub fn time(t: &Timestamp) -> String {
    k8s_openapi::jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", *t).unwrap_or_default()
}

/// The node's conditions: Ready, and no pressure of any kind.
pub fn conditions(transition: &Timestamp, heartbeat: &Timestamp) -> Value {
    let (t, h) = (time(transition), time(heartbeat));
    let c = |ty: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": ty,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": h,
            "lastTransitionTime": t,
        })
    };
    json!([
        c(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        c(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        c(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        c(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status"
        ),
    ])
}

/// The node's full status.
pub fn status(config: &HollowConfig, slot: &NodeSlot, transition: &Timestamp) -> Value {
    let resources = &config.capacity.resources;
    json!({
        "capacity": resources,
        "allocatable": resources,
        "conditions": conditions(transition, &Timestamp::now()),
        "addresses": [
            {"type": "InternalIP", "address": config.node_ip.to_string()},
            {"type": "Hostname", "address": slot.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": config.kubelet_port}},
        "nodeInfo": {
            "machineID": format!("{:032x}", slot.index),
            "systemUUID": format!("00000000-0000-0000-0000-{:012x}", slot.index),
            "bootID": format!("{:032x}", slot.index),
            "kernelVersion": kernel_version(),
            "osImage": "skiff hollow node",
            "containerRuntimeVersion": "skiff-hollow://0.1",
            "kubeletVersion": "v1.35.0",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": super::arch(),
        },
    })
}

/// Labels and annotations the agent owns on its Node.
pub fn metadata(config: &HollowConfig, slot: &NodeSlot) -> Value {
    let mut annotations = json!({
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    });
    if let Some(h) = &config.kubelet_cert_sha256 {
        annotations[super::ANNOTATION_KUBELET_CERT_SHA256] = json!(h);
    }
    json!({
        "name": slot.name,
        "labels": {
            "kubernetes.io/hostname": slot.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": super::arch(),
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": super::arch(),
            INSTANCE_TYPE_LABEL: "hollow",
        },
        "annotations": annotations,
    })
}

/// The condition types the agent owns.
const CONDITION_TYPES: [&str; 4] = ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"];

/// The parts of a node status the agent owns, without heartbeat and transition times: two
/// statuses with the same signature need no write.
pub fn status_signature(status: &NodeStatus) -> Value {
    let v = serde_json::to_value(status).unwrap_or_default();
    let mut conditions: Vec<(String, Value)> = v["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let ty = c["type"].as_str()?;
            CONDITION_TYPES.contains(&ty).then(|| {
                (
                    ty.to_string(),
                    json!([c["status"], c["reason"], c["message"]]),
                )
            })
        })
        .collect();
    conditions.sort_by(|a, b| a.0.cmp(&b.0));
    json!({
        "conditions": conditions,
        "capacity": v["capacity"],
        "allocatable": v["allocatable"],
        "addresses": v["addresses"],
        "daemonEndpoints": v["daemonEndpoints"],
        "nodeInfo": v["nodeInfo"],
    })
}

/// Whether the API's copy of the node's status differs from what the agent would write.
pub fn status_drifted(config: &HollowConfig, slot: &NodeSlot, observed: &Node) -> bool {
    let desired = serde_json::from_value::<NodeStatus>(status(config, slot, &Timestamp::now()));
    let observed = observed.status.clone().unwrap_or_default();
    match desired {
        Ok(d) => status_signature(&d) != status_signature(&observed),
        Err(_) => false,
    }
}

/// The status of the node's Ready condition as the API shows it.
fn ready_status(node: &Node) -> Option<&str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

/// A new Node object for `slot`. It has no pod CIDR: the server's node IPAM controller assigns
/// one (agents choosing their own would collide with each other).
pub fn object(config: &HollowConfig, slot: &NodeSlot, transition: &Timestamp) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": metadata(config, slot),
        "spec": {
            "providerID": format!("hollow://{}", slot.name),
        },
        "status": status(config, slot, transition),
    })
}

fn has_pod_cidr(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_ref())
        .is_some()
}

/// Creates the node, or brings an existing one (an agent restart) up to date; then its lease.
#[tracing::instrument(skip_all, fields(node = %hollow.nodes[index].name))]
pub async fn register(hollow: &Hollow, index: usize) -> Result<(), HollowError> {
    let slot = &hollow.nodes[index];
    let api: Api<Node> = Api::all(hollow.client.clone());
    let now = Timestamp::now();
    let err = |source| HollowError::Register {
        node: slot.name.clone(),
        source,
    };
    let obj = object(&hollow.config, slot, &now);
    let node: Node = serde_json::from_value(obj.clone())
        .map_err(|e| HollowError::NodeObject(slot.name.clone(), e))?;
    let created = match api.create(&PostParams::default(), &node).await {
        Ok(n) => n,
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let params = PatchParams::default();
            let mut meta = json!({"metadata": obj["metadata"]});
            // providerID is immutable once set; set it only where it is missing.
            let existing = api.get(&slot.name).await.map_err(err)?;
            if existing
                .spec
                .as_ref()
                .and_then(|s| s.provider_id.as_ref())
                .is_none()
            {
                meta["spec"] = obj["spec"].clone();
            }
            api.patch(&slot.name, &params, &Patch::Merge(&meta))
                .await
                .map_err(err)?;
            api.patch_status(
                &slot.name,
                &params,
                &Patch::Merge(&json!({"status": obj["status"]})),
            )
            .await
            .map_err(err)?
        }
        Err(e) => return Err(err(e)),
    };
    if let Ok(mut t) = slot.ready_since.lock() {
        *t = now;
    }
    slot.set_uid(created.metadata.uid.clone());
    slot.exists.store(true, Ordering::Relaxed);
    slot.reported();
    // Only a range learns here: a fresh node has none yet, and clearing one is the watch's job
    // (this answer may be older than what the watch already saw).
    if has_pod_cidr(&created) {
        hollow.learn_pod_cidr(index, Some(&created));
    }
    super::lease::renew(hollow, index).await;
    tracing::debug!("registered");
    Ok(())
}

/// Registers every node, a bounded number at a time.
pub async fn register_all(
    hollow: &Arc<Hollow>,
    cancel: &CancellationToken,
) -> Result<(), HollowError> {
    let work = futures::stream::iter(0..hollow.nodes.len())
        .map(|i| async move { register(hollow, i).await })
        .buffer_unordered(REGISTER_CONCURRENCY)
        .try_collect::<Vec<()>>();
    tokio::select! {
        r = work => r.map(|_| ()),
        _ = cancel.cancelled() => Ok(()),
    }
}

/// Registers nodes again when they are found deleted; tells the pod worker once they are back.
pub async fn registrar(
    hollow: Arc<Hollow>,
    mut rx: mpsc::UnboundedReceiver<usize>,
    cancel: CancellationToken,
) -> Result<(), HollowError> {
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            i = rx.recv() => match i {
                Some(i) => i,
                None => return Ok(()),
            },
        };
        let mut batch = HashSet::from([first]);
        while let Ok(i) = rx.try_recv() {
            batch.insert(i);
        }
        let hollow_ref = &hollow;
        let work = futures::stream::iter(batch)
            .map(|i| async move {
                match register(hollow_ref, i).await {
                    Ok(()) => {
                        let _ = hollow_ref.revisit_tx.send(i);
                    }
                    Err(e) => {
                        tracing::warn!(error = %crate::error_chain(&e), "registration failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        let _ = hollow_ref.register_tx.send(i);
                    }
                }
            })
            .buffer_unordered(REGISTER_CONCURRENCY)
            .collect::<Vec<()>>();
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = work => {}
        }
    }
}

/// What the watch shows of one of our nodes: its pod CIDR, and whether its status drifted.
fn observe(hollow: &Hollow, slot: &NodeSlot, node: &Node) {
    hollow.learn_pod_cidr(slot.index, Some(node));
    if !slot.exists.load(Ordering::Relaxed) {
        return;
    }
    if ready_status(node) != Some("True")
        && let Ok(mut t) = slot.ready_since.lock()
    {
        *t = Timestamp::now();
    }
    if status_drifted(&hollow.config, slot, node) {
        slot.status_drift.store(true, Ordering::Relaxed);
    }
}

/// Watches hollow Nodes; one of ours deleted is registered again.
pub async fn watch(hollow: Arc<Hollow>, cancel: CancellationToken) -> Result<(), HollowError> {
    use kube::runtime::WatchStreamExt;
    let api: Api<Node> = Api::all(hollow.client.clone());
    let config = watcher::Config::default().labels(&format!("{INSTANCE_TYPE_LABEL}=hollow"));
    let stream = watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    let mut seen: HashSet<usize> = HashSet::new();
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            e = stream.next() => e,
        };
        let event = match event {
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "node watch error; retrying");
                continue;
            }
            None => return Ok(()),
        };
        match event {
            watcher::Event::Init => seen.clear(),
            watcher::Event::InitApply(n) => {
                if let Some(slot) = n.metadata.name.as_deref().and_then(|m| hollow.node(m)) {
                    seen.insert(slot.index);
                    observe(&hollow, slot, &n);
                }
            }
            watcher::Event::InitDone => {
                for slot in &hollow.nodes {
                    if !seen.contains(&slot.index) && slot.exists.load(Ordering::Relaxed) {
                        hollow.learn_pod_cidr(slot.index, None);
                        hollow.reregister(slot.index);
                    }
                }
                seen.clear();
            }
            watcher::Event::Apply(n) => {
                if let Some(slot) = n.metadata.name.as_deref().and_then(|m| hollow.node(m)) {
                    if n.metadata.uid.is_some()
                        && slot.uid() != n.metadata.uid
                        && slot.exists.load(Ordering::Relaxed)
                    {
                        slot.set_uid(n.metadata.uid.clone());
                    }
                    observe(&hollow, slot, &n);
                }
            }
            watcher::Event::Delete(n) => {
                if let Some(slot) = n.metadata.name.as_deref().and_then(|m| hollow.node(m))
                    && (n.metadata.uid.is_none() || slot.uid() == n.metadata.uid)
                {
                    hollow.learn_pod_cidr(slot.index, None);
                    hollow.reregister(slot.index);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;

    fn config() -> HollowConfig {
        HollowConfig {
            names: vec!["h-0".into()],
            node_ip: "127.0.0.1".parse().unwrap(),
            capacity: "cpu=4,memory=16Gi,pods=110".parse().unwrap(),
            pod_run_seconds: 2.0,
            lease_duration_seconds: 40,
            node_status_update: std::time::Duration::from_secs(10),
            node_status_report: std::time::Duration::from_secs(300),
            kubelet_port: 10250,
            kubelet_cert_sha256: Some("ab".into()),
        }
    }

    fn slot() -> NodeSlot {
        NodeSlot {
            name: "h-0".into(),
            index: 0,
            uid: Mutex::new(None),
            exists: AtomicBool::new(false),
            ready_since: Mutex::new(Timestamp::UNIX_EPOCH),
            status_drift: AtomicBool::new(false),
            last_report: Mutex::new(None),
        }
    }

    #[test]
    fn builds_a_ready_node_that_decodes() {
        let obj = object(&config(), &slot(), &Timestamp::UNIX_EPOCH);
        let node: Node = serde_json::from_value(obj.clone()).unwrap();
        let status = node.status.unwrap();
        assert_eq!(status.capacity, status.allocatable);
        assert_eq!(status.capacity.unwrap()["pods"].0, "110");
        let ready = status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("True", Some("KubeletReady"))
        );
        let spec = node.spec.unwrap();
        assert_eq!(spec.pod_cidr, None, "the server assigns pod CIDRs");
        assert_eq!(spec.provider_id.as_deref(), Some("hollow://h-0"));
        let info = status.node_info.unwrap();
        assert_eq!(info.kubelet_version, "v1.35.0");
        assert_eq!(info.container_runtime_version, "skiff-hollow://0.1");
        let labels = node.metadata.labels.unwrap();
        assert_eq!(labels[INSTANCE_TYPE_LABEL], "hollow");
        assert_eq!(labels["kubernetes.io/hostname"], "h-0");
        assert_eq!(
            status
                .daemon_endpoints
                .unwrap()
                .kubelet_endpoint
                .unwrap()
                .port,
            10250
        );
        assert_eq!(
            node.metadata.annotations.unwrap()[super::super::ANNOTATION_KUBELET_CERT_SHA256],
            "ab"
        );
    }

    #[test]
    fn status_drift_ignores_heartbeats_but_not_a_lost_ready() {
        let (config, slot) = (config(), slot());
        let node: Node =
            serde_json::from_value(object(&config, &slot, &Timestamp::UNIX_EPOCH)).unwrap();
        assert!(!status_drifted(&config, &slot, &node), "only times differ");
        let mut unknown = node.clone();
        for c in unknown
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()
        {
            if c.type_ == "Ready" {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
            }
        }
        assert_eq!(ready_status(&unknown), Some("Unknown"));
        assert!(status_drifted(&config, &slot, &unknown));
        let mut other = node.clone();
        other
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()
            .push(
                serde_json::from_value(json!({"type": "NetworkUnavailable", "status": "False"}))
                    .unwrap(),
            );
        assert!(
            !status_drifted(&config, &slot, &other),
            "conditions of others are theirs"
        );
        let mut smaller = node;
        smaller.status.as_mut().unwrap().capacity = None;
        assert!(status_drifted(&config, &slot, &smaller));
    }
}
