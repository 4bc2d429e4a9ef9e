//! Disruption controller: computes each PodDisruptionBudget's status (healthy pods, how many
//! may be disrupted) so the eviction subresource can honour it, as upstream's does.

use crate::runtime::selector::Selector;
use crate::runtime::{self, Change, Informer, Informers, Key, Queue};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long an eviction recorded in disruptedPods counts before the pod must be gone.
const DELETION_TIMEOUT: i64 = 120;

pub use crate::runtime::Error;

struct Ctx {
    client: kube::Client,
    pdbs: Arc<Informer<PodDisruptionBudget>>,
    pods: Arc<Informer<Pod>>,
    rss: Arc<Informer<ReplicaSet>>,
    deployments: Arc<Informer<Deployment>>,
    rcs: Arc<Informer<ReplicationController>>,
    sts: Arc<Informer<StatefulSet>>,
}

pub async fn run(informers: Arc<Informers>, cancel: CancellationToken) {
    let ctx = Arc::new(Ctx {
        client: informers.client().clone(),
        pdbs: informers.get::<PodDisruptionBudget>(),
        pods: informers.get::<Pod>(),
        rss: informers.get::<ReplicaSet>(),
        deployments: informers.get::<Deployment>(),
        rcs: informers.get::<ReplicationController>(),
        sts: informers.get::<StatefulSet>(),
    });
    let queue = Queue::new();
    let pdb_changes = ctx.pdbs.subscribe();
    let pod_changes = ctx.pods.subscribe();
    ctx.pdbs.synced().await;
    ctx.pods.synced().await;
    ctx.rss.synced().await;
    ctx.deployments.synced().await;
    ctx.rcs.synced().await;
    ctx.sts.synced().await;
    for p in ctx.pdbs.list() {
        queue.add(Key::of(&*p));
    }
    let pdbs = runtime::enqueue_changes(
        pdb_changes,
        queue.clone(),
        cancel.clone(),
        |c: &Change<PodDisruptionBudget>| [Key::of(&**c.object())],
    );
    let ctx2 = ctx.clone();
    let pods = runtime::enqueue_changes(
        pod_changes,
        queue.clone(),
        cancel.clone(),
        move |c: &Change<Pod>| {
            let pod = c.object();
            let ns = pod.metadata.namespace.as_deref().unwrap_or("");
            ctx2.pdbs
                .list_namespace(ns)
                .iter()
                .filter(|b| selector(b).matches(pod.metadata.labels.as_ref()))
                .map(|b| Key::of(&**b))
                .collect::<Vec<_>>()
        },
    );
    let ctx3 = ctx.clone();
    let workers = runtime::run_workers("disruption-controller", queue, 2, cancel, move |key| {
        let ctx = ctx3.clone();
        async move { sync(&ctx, &key).await }
    });
    tokio::join!(pdbs, pods, workers);
}

fn selector(b: &PodDisruptionBudget) -> Selector {
    Selector::from_label_selector(b.spec.as_ref().and_then(|s| s.selector.as_ref()))
        .unwrap_or(Selector::Nothing)
}

fn resolve(v: &IntOrString, total: i32, round_up: bool) -> Option<i32> {
    match v {
        IntOrString::Int(i) => Some(*i),
        IntOrString::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
            let n = pct * i64::from(total);
            Some(if round_up { (n + 99) / 100 } else { n / 100 } as i32)
        }
    }
}

/// The scale of the controller of a pod (for percentages and maxUnavailable): a ReplicaSet's
/// Deployment, a ReplicaSet, a ReplicationController or a StatefulSet.
fn controller_scale(ctx: &Ctx, pod: &Pod) -> Option<(String, i32)> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let r = pod
        .metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))?;
    match r.kind.as_str() {
        "ReplicaSet" => {
            let rs = ctx
                .rss
                .get(ns, &r.name)
                .filter(|rs| rs.metadata.uid.as_deref() == Some(r.uid.as_str()))?;
            if let Some(d) = rs.metadata.owner_references.as_ref().and_then(|o| {
                o.iter()
                    .find(|o| o.controller == Some(true) && o.kind == "Deployment")
            }) && let Some(dep) = ctx.deployments.get(ns, &d.name)
            {
                return Some((
                    d.uid.clone(),
                    dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                ));
            }
            Some((
                r.uid.clone(),
                rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            ))
        }
        "ReplicationController" => ctx.rcs.get(ns, &r.name).map(|rc| {
            (
                r.uid.clone(),
                rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            )
        }),
        "StatefulSet" => ctx.sts.get(ns, &r.name).map(|s| {
            (
                r.uid.clone(),
                s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            )
        }),
        _ => None,
    }
}

/// (expected pods, desired healthy), or None when a controller's scale is unknown.
fn expected(ctx: &Ctx, pdb: &PodDisruptionBudget, pods: &[Arc<Pod>]) -> Option<(i32, i32)> {
    let spec = pdb.spec.clone().unwrap_or_default();
    let scaled = || -> Option<i32> {
        let mut seen = HashSet::new();
        let mut total = 0;
        for p in pods {
            let (uid, n) = controller_scale(ctx, p)?;
            if seen.insert(uid) {
                total += n;
            }
        }
        Some(total)
    };
    if let Some(mu) = spec.max_unavailable.as_ref() {
        let expected = scaled()?;
        let max = resolve(mu, expected, true)?;
        return Some((expected, (expected - max).max(0)));
    }
    match spec.min_available.as_ref() {
        Some(IntOrString::Int(n)) => Some((pods.len() as i32, *n)),
        Some(v @ IntOrString::String(_)) => {
            let expected = scaled()?;
            Some((expected, resolve(v, expected, true)?))
        }
        None => Some((pods.len() as i32, 0)),
    }
}

async fn sync(ctx: &Ctx, key: &Key) -> Result<Option<Duration>, Error> {
    let Some(pdb) = ctx.pdbs.get(&key.namespace, &key.name) else {
        return Ok(None);
    };
    let sel = selector(&pdb);
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .list_namespace(&key.namespace)
        .into_iter()
        .filter(|p| sel.matches(p.metadata.labels.as_ref()))
        .collect();
    let now = Timestamp::now();
    let old = pdb.status.clone().unwrap_or_default();
    // Evictions still in flight: recorded, the pod not yet terminating, not yet expired.
    let mut disrupted: BTreeMap<String, Time> = BTreeMap::new();
    let mut next_expiry: Option<Duration> = None;
    for (name, at) in old.disrupted_pods.clone().unwrap_or_default() {
        let Some(p) = pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
        else {
            continue;
        };
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Ok(expires) =
            at.0.checked_add(SignedDuration::from_secs(DELETION_TIMEOUT))
        else {
            continue;
        };
        let left = expires.duration_since(now);
        if !left.is_positive() {
            continue;
        }
        let left = left.unsigned_abs();
        next_expiry = Some(next_expiry.map_or(left, |n: Duration| n.min(left)));
        disrupted.insert(name, at);
    }
    let healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && crate::pod_util::is_ready(p))
        .filter(|p| !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or("")))
        .count() as i32;
    let generation = pdb.metadata.generation;
    let (expected_pods, desired, allowed, reason) = match expected(ctx, &pdb, &pods) {
        Some((expected_pods, desired)) => {
            let allowed = if expected_pods <= 0 {
                0
            } else {
                (healthy - desired).max(0)
            };
            let reason = if allowed > 0 {
                "SufficientPods"
            } else {
                "InsufficientPods"
            };
            (expected_pods, desired, allowed, reason)
        }
        None => (0, 0, 0, "SyncFailed"),
    };
    let prev = old.conditions.clone().unwrap_or_default();
    let status_word = if allowed > 0 { "True" } else { "False" };
    let transition = prev
        .iter()
        .find(|c| c.type_ == "DisruptionAllowed")
        .filter(|c| c.status == status_word)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    let status = PodDisruptionBudgetStatus {
        observed_generation: generation,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        disruptions_allowed: allowed,
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods,
        conditions: Some(vec![Condition {
            type_: "DisruptionAllowed".into(),
            status: status_word.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: generation,
            last_transition_time: transition,
        }]),
    };
    if pdb.status.as_ref() != Some(&status) {
        let mut updated = (*pdb).clone();
        updated.status = Some(status);
        let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &key.namespace);
        match api
            .replace_status(&key.name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(next_expiry.map(|d| d + Duration::from_millis(50)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_up() {
        assert_eq!(
            resolve(&IntOrString::String("50%".into()), 5, true),
            Some(3)
        );
        assert_eq!(resolve(&IntOrString::Int(2), 5, true), Some(2));
        assert_eq!(resolve(&IntOrString::String("half".into()), 5, true), None);
    }
}
