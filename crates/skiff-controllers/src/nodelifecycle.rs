//! Node lifecycle controller: notices nodes whose agent stopped heartbeating (its Lease and
//! Ready condition stop changing), marks them Unknown, taints nodes by condition, marks their
//! pods not ready, and evicts pods that do not tolerate a node's NoExecute taints (after their
//! tolerationSeconds), as upstream's node lifecycle and taint-eviction controllers do.

use crate::events::{EventType, Recorder};
use crate::runtime::{self, Change, Informer, Informers, Key, Queue};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// Settings (upstream kube-controller-manager flags).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// --node-monitor-grace-period: silence after which a node is Unknown.
    pub grace_period: Duration,
    /// --node-monitor-period: how often nodes are checked.
    pub monitor_period: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            grace_period: Duration::from_secs(40),
            monitor_period: Duration::from_secs(5),
        }
    }
}

pub use crate::runtime::Error;

/// What the controller last saw of a node's heartbeats, on its own clock.
#[derive(Debug, Clone)]
struct Health {
    lease_renew: Option<Timestamp>,
    ready_heartbeat: Option<Timestamp>,
    probed: Instant,
}

/// A pod's uid and when its wait on a tainted node began.
type PendingEviction = (Option<String>, Instant);

struct Ctx {
    client: kube::Client,
    nodes: Arc<Informer<Node>>,
    leases: Arc<Informer<Lease>>,
    pods: Arc<Informer<Pod>>,
    settings: Settings,
    health: Mutex<HashMap<String, Health>>,
    /// Pods (namespace, name) due for eviction, with their uid and since when.
    evictions: Mutex<HashMap<(String, String), PendingEviction>>,
    recorder: Recorder,
}

pub async fn run(informers: Arc<Informers>, settings: Settings, cancel: CancellationToken) {
    let ctx = Arc::new(Ctx {
        client: informers.client().clone(),
        nodes: informers.get::<Node>(),
        leases: informers.get::<Lease>(),
        pods: informers.get::<Pod>(),
        settings,
        health: Mutex::default(),
        evictions: Mutex::default(),
        recorder: Recorder::new(informers.client().clone(), "node-controller"),
    });
    let node_queue = Queue::new();
    let pod_queue = Queue::new();
    let node_changes = ctx.nodes.subscribe();
    let pod_changes = ctx.pods.subscribe();
    ctx.nodes.synced().await;
    ctx.leases.synced().await;
    ctx.pods.synced().await;
    for n in ctx.nodes.list() {
        node_queue.add(Key::of(&*n));
    }
    for p in ctx.pods.list() {
        pod_queue.add(Key::of(&*p));
    }
    // A node's taints changing re-examines its pods.
    let ctx2 = ctx.clone();
    let pq = pod_queue.clone();
    let nodes_fed = runtime::enqueue_changes(
        node_changes,
        node_queue.clone(),
        cancel.clone(),
        move |c: &Change<Node>| {
            let node = c.object();
            let name = node.name_any();
            let taints_changed = match c {
                Change::Applied {
                    old: Some(old),
                    new,
                } => {
                    old.spec.as_ref().and_then(|s| s.taints.clone())
                        != new.spec.as_ref().and_then(|s| s.taints.clone())
                }
                _ => true,
            };
            if taints_changed {
                for p in ctx2.pods.list_on_node(&name) {
                    pq.add(Key::of(&*p));
                }
            }
            [Key::of(&**node)]
        },
    );
    let pods_fed = runtime::enqueue_changes(
        pod_changes,
        pod_queue.clone(),
        cancel.clone(),
        |c: &Change<Pod>| match c {
            Change::Applied { new, .. }
                if new
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_ref())
                    .is_some() =>
            {
                Some(Key::of(&**new))
            }
            _ => None,
        },
    );
    // Every monitor period, every node is looked at (the heartbeat check is time-driven).
    let ticker = {
        let ctx = ctx.clone();
        let q = node_queue.clone();
        let cancel = cancel.clone();
        async move {
            let mut tick = tokio::time::interval(ctx.settings.monitor_period);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tick.tick() => {}
                }
                for n in ctx.nodes.list() {
                    q.add(Key::of(&*n));
                }
            }
        }
    };
    let ctx3 = ctx.clone();
    let node_workers = runtime::run_workers(
        "node-lifecycle-controller",
        node_queue,
        2,
        cancel.clone(),
        move |key| {
            let ctx = ctx3.clone();
            async move { sync_node(&ctx, &key).await }
        },
    );
    let ctx4 = ctx.clone();
    let pod_workers = runtime::run_workers(
        "taint-eviction-controller",
        pod_queue,
        2,
        cancel,
        move |key| {
            let ctx = ctx4.clone();
            async move { sync_pod(&ctx, &key).await }
        },
    );
    tokio::join!(nodes_fed, pods_fed, ticker, node_workers, pod_workers);
}

fn ready_condition(n: &Node) -> Option<&NodeCondition> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The taints a node should carry for its conditions and spec (pure). Returns the node's
/// taints with the condition taints reconciled.
pub fn desired_taints(n: &Node, now: Timestamp) -> Vec<Taint> {
    let current: Vec<Taint> = n
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let ready = ready_condition(n)
        .map(|c| c.status.as_str())
        .unwrap_or("Unknown");
    let conds: HashMap<&str, &str> = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|cs| {
            cs.iter()
                .map(|c| (c.type_.as_str(), c.status.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let mut want: Vec<(&str, &str)> = Vec::new();
    match ready {
        "False" => {
            want.push((NOT_READY, "NoSchedule"));
            want.push((NOT_READY, "NoExecute"));
        }
        "Unknown" => {
            want.push((UNREACHABLE, "NoSchedule"));
            want.push((UNREACHABLE, "NoExecute"));
        }
        _ => {}
    }
    for (cond, taint) in [
        ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
        ("DiskPressure", "node.kubernetes.io/disk-pressure"),
        ("PIDPressure", "node.kubernetes.io/pid-pressure"),
        (
            "NetworkUnavailable",
            "node.kubernetes.io/network-unavailable",
        ),
    ] {
        if conds.get(cond) == Some(&"True") {
            want.push((taint, "NoSchedule"));
        }
    }
    if n.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
    {
        want.push((UNSCHEDULABLE, "NoSchedule"));
    }
    let managed = [
        NOT_READY,
        UNREACHABLE,
        UNSCHEDULABLE,
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/pid-pressure",
        "node.kubernetes.io/network-unavailable",
    ];
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| {
            !managed.contains(&t.key.as_str())
                || want.iter().any(|(k, e)| *k == t.key && *e == t.effect)
        })
        .cloned()
        .collect();
    for (k, e) in want {
        if !out.iter().any(|t| t.key == k && t.effect == e) {
            out.push(Taint {
                key: k.into(),
                effect: e.into(),
                time_added: (e == "NoExecute").then_some(Time(now)),
                value: None,
            });
        }
    }
    out
}

async fn sync_node(ctx: &Ctx, key: &Key) -> Result<Option<Duration>, Error> {
    let Some(node) = ctx.nodes.get("", &key.name) else {
        ctx.health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key.name);
        return Ok(None);
    };
    let api: Api<Node> = Api::all(ctx.client.clone());
    let lease_renew = ctx.leases.get("kube-node-lease", &key.name).and_then(|l| {
        l.spec
            .as_ref()
            .and_then(|s| s.renew_time.as_ref().map(|t| t.0))
    });
    let ready_heartbeat =
        ready_condition(&node).and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0));
    // Silence is measured on our own clock from the last change we saw.
    let silent_for = {
        let mut h = ctx.health.lock().unwrap_or_else(PoisonError::into_inner);
        let e = h.entry(key.name.clone()).or_insert_with(|| Health {
            lease_renew,
            ready_heartbeat,
            probed: Instant::now(),
        });
        if e.lease_renew != lease_renew || e.ready_heartbeat != ready_heartbeat {
            e.lease_renew = lease_renew;
            e.ready_heartbeat = ready_heartbeat;
            e.probed = Instant::now();
        }
        e.probed.elapsed()
    };
    let now = Timestamp::now();
    let ready_status = ready_condition(&node).map(|c| c.status.clone());
    if silent_for > ctx.settings.grace_period && ready_status.as_deref() != Some("Unknown") {
        // The agent went quiet: every condition becomes Unknown.
        let mut conditions = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        for ty in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
            match conditions.iter_mut().find(|c| c.type_ == ty) {
                Some(c) => {
                    c.status = "Unknown".into();
                    c.reason = Some("NodeStatusUnknown".into());
                    c.message = Some("Kubelet stopped posting node status.".into());
                    c.last_transition_time = Some(Time(now));
                }
                None => conditions.push(NodeCondition {
                    type_: ty.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_transition_time: Some(Time(now)),
                    last_heartbeat_time: None,
                }),
            }
        }
        let patch = json!({"status": {"conditions": conditions}});
        match api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        ctx.recorder
            .record(
                &node.object_ref(&()),
                EventType::Normal,
                "NodeNotReady",
                &format!("Node {} status is now: NodeNotReady", key.name),
            )
            .await;
        mark_pods_not_ready(ctx, &key.name).await;
        // The taints follow on the next pass, from the updated conditions.
        return Ok(Some(Duration::from_millis(100)));
    }
    let want = desired_taints(&node, now);
    let have = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let same = want.len() == have.len()
        && want
            .iter()
            .all(|w| have.iter().any(|h| h.key == w.key && h.effect == w.effect));
    if !same {
        let mut updated = (*node).clone();
        updated.spec.get_or_insert_with(Default::default).taints =
            (!want.is_empty()).then_some(want);
        match api
            .replace(&key.name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    // Next look: when the grace period would run out.
    let left = ctx.settings.grace_period.saturating_sub(silent_for);
    Ok(Some(
        left.max(Duration::from_millis(200)) + Duration::from_millis(50),
    ))
}

async fn mark_pods_not_ready(ctx: &Ctx, node: &str) {
    let now = Timestamp::now();
    for p in ctx.pods.list_on_node(node) {
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if !ready {
            continue;
        }
        let mut conds = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        for c in conds.iter_mut().filter(|c| c.type_ == "Ready") {
            c.status = "False".into();
            c.last_transition_time = Some(Time(now));
        }
        let api: Api<Pod> = Api::namespaced(
            ctx.client.clone(),
            p.metadata.namespace.as_deref().unwrap_or(""),
        );
        let patch = json!({"status": {"conditions": conds}});
        if let Err(e) = api
            .patch_status(
                &p.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
        {
            tracing::debug!(pod = %p.name_any(), error = %e, "cannot mark pod not ready");
        }
    }
}

/// Whether `t` tolerates `taint` (upstream ToleratesTaint).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty())
        && e != taint.effect
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// How long a pod may stay on a node with these taints once the taint manager sees it
/// there (upstream's getMinTolerationTime over the first toleration of each NoExecute
/// taint): None = for ever, Some(Duration::ZERO) = not at all.
pub fn eviction_after(tolerations: &[Toleration], taints: &[Taint]) -> Option<Duration> {
    let mut min: Option<i64> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let Some(t) = tolerations.iter().find(|t| tolerates(t, taint)) else {
            return Some(Duration::ZERO);
        };
        match t.toleration_seconds {
            Some(secs) if secs <= 0 => return Some(Duration::ZERO),
            Some(secs) => min = Some(min.map_or(secs, |m| m.min(secs))),
            None => {}
        }
    }
    min.map(|secs| Duration::from_secs(secs.unsigned_abs()))
}

/// When the eviction of the pod at `key` with `uid` started: the first time it was seen
/// on a node whose taints it tolerates only for a while (upstream counts tolerationSeconds
/// from then, not from the taint's timeAdded). A new pod of the same name starts anew.
fn eviction_start(ctx: &Ctx, key: &Key, uid: Option<&str>) -> Instant {
    let mut started = ctx.evictions.lock().unwrap_or_else(PoisonError::into_inner);
    let id = (key.namespace.clone(), key.name.clone());
    let now = Instant::now();
    match started.get(&id) {
        Some((u, at)) if u.as_deref() == uid => *at,
        _ => {
            started.insert(id, (uid.map(str::to_string), now));
            now
        }
    }
}

fn forget_eviction(ctx: &Ctx, key: &Key) {
    ctx.evictions
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&(key.namespace.clone(), key.name.clone()));
}

async fn sync_pod(ctx: &Ctx, key: &Key) -> Result<Option<Duration>, Error> {
    let pod = ctx
        .pods
        .get(&key.namespace, &key.name)
        .filter(|p| p.metadata.deletion_timestamp.is_none());
    let Some(pod) = pod else {
        forget_eviction(ctx, key);
        return Ok(None);
    };
    let Some(node_name) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
        forget_eviction(ctx, key);
        return Ok(None);
    };
    let Some(node) = ctx.nodes.get("", &node_name) else {
        return Ok(None);
    };
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let left = match eviction_after(&tolerations, &taints) {
        None => {
            forget_eviction(ctx, key);
            return Ok(None);
        }
        Some(d) if d.is_zero() => d,
        Some(d) => {
            let start = eviction_start(ctx, key, pod.metadata.uid.as_deref());
            d.saturating_sub(start.elapsed())
        }
    };
    match left {
        d if !d.is_zero() => Ok(Some(d + Duration::from_millis(50))),
        _ => {
            forget_eviction(ctx, key);
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.namespace);
            let cond = json!({"status": {"conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager", "message": "Taint manager: deleting due to NoExecute taint", "lastTransitionTime": Timestamp::now().to_string()}]}});
            let _ = api
                .patch_status(&key.name, &PatchParams::default(), &Patch::Strategic(cond))
                .await;
            ctx.recorder
                .record(
                    &pod.object_ref(&()),
                    EventType::Normal,
                    "TaintManagerEviction",
                    &format!("Marking for deletion Pod {}/{}", key.namespace, key.name),
                )
                .await;
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: pod.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&key.name, &dp).await {
                Ok(_) => Ok(None),
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus};

    fn node(ready: &str, taints: Vec<Taint>) -> Node {
        Node {
            metadata: Default::default(),
            spec: Some(NodeSpec {
                taints: Some(taints),
                ..NodeSpec::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    ..NodeCondition::default()
                }]),
                ..NodeStatus::default()
            }),
        }
    }

    fn taint(key: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            value: None,
            time_added: None,
        }
    }

    #[test]
    fn condition_taints_follow_readiness_and_keep_user_taints() {
        let now = Timestamp::now();
        let t = desired_taints(
            &node("Unknown", vec![taint("dedicated", "NoSchedule")]),
            now,
        );
        let keys: Vec<(&str, &str)> = t
            .iter()
            .map(|t| (t.key.as_str(), t.effect.as_str()))
            .collect();
        assert!(keys.contains(&("dedicated", "NoSchedule")));
        assert!(keys.contains(&(UNREACHABLE, "NoExecute")));
        assert!(keys.contains(&(UNREACHABLE, "NoSchedule")));
        let t = desired_taints(&node("True", t), now);
        assert_eq!(t.len(), 1, "back to ready: only the user's taint stays");
        let t = desired_taints(&node("False", vec![]), now);
        assert!(
            t.iter()
                .any(|t| t.key == NOT_READY && t.effect == "NoExecute")
        );
    }

    #[test]
    fn eviction_waits_for_the_shortest_toleration() {
        let t = taint(UNREACHABLE, "NoExecute");
        let tol = |key: &str, secs: Option<i64>| Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: secs,
            value: None,
        };
        let one = std::slice::from_ref(&t);
        assert_eq!(eviction_after(&[], one), Some(Duration::ZERO));
        assert_eq!(eviction_after(&[tol(UNREACHABLE, None)], one), None);
        assert_eq!(
            eviction_after(&[tol(UNREACHABLE, Some(300))], one),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            eviction_after(&[tol(UNREACHABLE, Some(0))], one),
            Some(Duration::ZERO)
        );
        // The first toleration of each taint counts; the shortest bounded one wins.
        let both = [t.clone(), taint(NOT_READY, "NoExecute")];
        assert_eq!(
            eviction_after(
                &[tol(UNREACHABLE, Some(300)), tol(NOT_READY, Some(60))],
                &both
            ),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            eviction_after(&[tol(UNREACHABLE, None), tol(NOT_READY, None)], &both),
            None
        );
        assert_eq!(eviction_after(&[], &[taint("x", "NoSchedule")]), None);
        // The taint's timeAdded does not count: the wait starts when the pod is seen.
        let mut old = t.clone();
        old.time_added = Some(Time(Timestamp::UNIX_EPOCH));
        assert_eq!(
            eviction_after(&[tol(UNREACHABLE, Some(300))], &[old]),
            Some(Duration::from_secs(300))
        );
    }
}
