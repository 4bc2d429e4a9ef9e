//! Deployment controller: rolls a Deployment's pods from ReplicaSet to ReplicaSet
//! (RollingUpdate or Recreate), scales proportionally, keeps revision history, and reports
//! status and conditions as upstream does.

pub mod util;

use crate::events::{EventType, Recorder};
use crate::pod_util;
use crate::runtime::selector::Selector;
use crate::runtime::{self, Change, Informer, Informers, Key, Queue};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use util::*;

pub use crate::runtime::Error;

pub struct Ctx {
    pub client: kube::Client,
    pub deployments: Arc<Informer<Deployment>>,
    pub replica_sets: Arc<Informer<ReplicaSet>>,
    pub pods: Arc<Informer<Pod>>,
    pub recorder: Recorder,
}

/// Runs the controller until `cancel` fires.
pub async fn run(informers: Arc<Informers>, workers: usize, cancel: CancellationToken) {
    let ctx = Arc::new(Ctx {
        client: informers.client().clone(),
        deployments: informers.get::<Deployment>(),
        replica_sets: informers.get::<ReplicaSet>(),
        pods: informers.get::<Pod>(),
        recorder: Recorder::new(informers.client().clone(), "deployment-controller"),
    });
    let queue = Queue::new();
    let d_changes = ctx.deployments.subscribe();
    let rs_changes = ctx.replica_sets.subscribe();
    let pod_changes = ctx.pods.subscribe();
    ctx.deployments.synced().await;
    ctx.replica_sets.synced().await;
    ctx.pods.synced().await;
    for d in ctx.deployments.list() {
        queue.add(Key::of(&*d));
    }
    let ds = runtime::enqueue_changes(
        d_changes,
        queue.clone(),
        cancel.clone(),
        |c: &Change<Deployment>| [Key::of(&**c.object())],
    );
    let ctx2 = ctx.clone();
    let rss = runtime::enqueue_changes(
        rs_changes,
        queue.clone(),
        cancel.clone(),
        move |c: &Change<ReplicaSet>| {
            let rs = c.object();
            let mut keys: Vec<Key> = runtime::controller_of(&**rs, "Deployment")
                .into_iter()
                .collect();
            if let Change::Applied { old: Some(old), .. } = c
                && let Some(k) = runtime::controller_of(&**old, "Deployment")
                && !keys.contains(&k)
            {
                keys.push(k);
            }
            if keys.is_empty() && matches!(c, Change::Applied { .. }) {
                // An orphan: the deployments that would adopt it.
                let ns = rs.metadata.namespace.as_deref().unwrap_or("");
                for d in ctx2.deployments.list_namespace(ns) {
                    if selector(&d).matches(rs.metadata.labels.as_ref()) {
                        keys.push(Key::of(&*d));
                    }
                }
            }
            keys
        },
    );
    // Recreate waits for old pods to be gone: their deletions wake the deployment.
    let ctx3 = ctx.clone();
    let pods = runtime::enqueue_changes(
        pod_changes,
        queue.clone(),
        cancel.clone(),
        move |c: &Change<Pod>| {
            let Change::Deleted(pod) = c else { return None };
            let rs_key = runtime::controller_of(&**pod, "ReplicaSet")?;
            let rs = ctx3.replica_sets.get(&rs_key.namespace, &rs_key.name)?;
            let d = runtime::controller_of(&*rs, "Deployment")?;
            let dep = ctx3.deployments.get(&d.namespace, &d.name)?;
            is_recreate(&dep).then_some(d)
        },
    );
    let ctx4 = ctx.clone();
    let workers = runtime::run_workers(
        "deployment-controller",
        queue,
        workers,
        cancel,
        move |key| {
            let ctx = ctx4.clone();
            async move { sync(&ctx, &key).await }
        },
    );
    tokio::join!(ds, rss, pods, workers);
}

fn selector(d: &Deployment) -> Selector {
    Selector::from_label_selector(d.spec.as_ref().map(|s| &s.selector)).unwrap_or(Selector::Nothing)
}

async fn event(ctx: &Ctx, d: &Deployment, ty: EventType, reason: &str, msg: &str) {
    ctx.recorder
        .record(&d.object_ref(&()), ty, reason, msg)
        .await;
}

async fn sync(ctx: &Ctx, key: &Key) -> Result<Option<Duration>, Error> {
    let Some(d) = ctx.deployments.get(&key.namespace, &key.name) else {
        return Ok(None);
    };
    let mut d = (*d).clone();
    let sel = selector(&d);
    if sel.is_everything() {
        event(
            ctx,
            &d,
            EventType::Warning,
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.",
        )
        .await;
        return Ok(None);
    }
    let mut rss = claim_replica_sets(ctx, &d, &sel).await?;
    if d.metadata.deletion_timestamp.is_some() {
        return sync_status_only(ctx, &mut d, &mut rss).await;
    }
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    check_paused_condition(ctx, &mut d).await?;
    if paused || is_scaling_event(&d, &rss) {
        return scale_sync(ctx, &mut d, &mut rss).await;
    }
    if is_recreate(&d) {
        rollout_recreate(ctx, &mut d, &mut rss).await
    } else {
        rollout_rolling(ctx, &mut d, &mut rss).await
    }
}

/// The deployment's ReplicaSets, adopting matching orphans and releasing those that stopped
/// matching, as upstream's ControllerRefManager does.
async fn claim_replica_sets(
    ctx: &Ctx,
    d: &Deployment,
    sel: &Selector,
) -> Result<Vec<ReplicaSet>, Error> {
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let owner = pod_util::controller_ref("apps/v1", "Deployment", &d.metadata);
    let deleting = d.metadata.deletion_timestamp.is_some();
    let claimed = crate::claim::claim(
        &api,
        ctx.replica_sets.list_claimable(&ns, &owner.uid),
        sel,
        &owner,
        deleting,
        |_| true,
    )
    .await?;
    Ok(claimed.into_iter().map(|rs| (*rs).clone()).collect())
}

fn ignore_gone<T>(r: Result<T, kube::Error>) -> Result<Option<T>, Error> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 || e.code == 422 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// An active ReplicaSet whose desired-replicas annotation differs from the deployment's size.
fn is_scaling_event(d: &Deployment, rss: &[ReplicaSet]) -> bool {
    let want = replicas(d).to_string();
    rss.iter().filter(|r| rs_replicas(r) > 0).any(|r| {
        r.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DESIRED_REPLICAS))
            .is_some_and(|v| *v != want)
    })
}

/// Splits the claimed sets into the new one (matching the template) and the old ones; with
/// `create`, makes the new one when missing, and keeps revisions current.
async fn new_and_old(
    ctx: &Ctx,
    d: &mut Deployment,
    rss: &mut Vec<ReplicaSet>,
    create: bool,
) -> Result<(Option<usize>, Vec<usize>), Error> {
    let new_idx = find_new(d, rss);
    let old: Vec<usize> = (0..rss.len()).filter(|i| Some(*i) != new_idx).collect();
    let max_old = old.iter().map(|&i| revision(&rss[i])).max().unwrap_or(0);
    let new_revision = (max_old + 1).to_string();
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    if let Some(i) = new_idx {
        let rs = &rss[i];
        let mut updated = rs.clone();
        let annotations = updated
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        let mut changed = false;
        for (k, v) in copied_annotations(d) {
            if annotations.get(&k) != Some(&v) {
                annotations.insert(k, v);
                changed = true;
            }
        }
        let current_rev = revision(rs);
        if current_rev < max_old + 1 {
            // An old template came back (rollback): it gets the next revision and remembers
            // the ones it had.
            if current_rev > 0 {
                let history = annotations
                    .get(REVISION_HISTORY)
                    .cloned()
                    .unwrap_or_default();
                let history = if history.is_empty() {
                    current_rev.to_string()
                } else {
                    format!("{history},{current_rev}")
                };
                annotations.insert(REVISION_HISTORY.into(), history);
            }
            annotations.insert(REVISION.into(), new_revision.clone());
            changed = true;
        }
        let min_ready = d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        if updated.spec.as_ref().and_then(|s| s.min_ready_seconds) != min_ready {
            if let Some(s) = updated.spec.as_mut() {
                s.min_ready_seconds = min_ready;
            }
            changed = true;
        }
        if changed {
            updated = api
                .replace(&updated.name_any(), &PostParams::default(), &updated)
                .await?;
            rss[i] = updated;
        }
        let rev = revision(&rss[i]).to_string();
        set_deployment_revision(ctx, d, &rev).await?;
        // Progressing: the new ReplicaSet was found.
        let name = rss[i].name_any();
        let mut status = d.status.clone().unwrap_or_default();
        if has_deadline(d) && condition(&status, "Progressing").is_none() {
            set_condition(
                &mut status,
                new_condition(
                    "Progressing",
                    "True",
                    "FoundNewReplicaSet",
                    format!("Found new replica set \"{name}\""),
                    Timestamp::now(),
                ),
            );
            write_status(ctx, d, status).await?;
        }
        return Ok((Some(i), old));
    }
    if !create {
        return Ok((None, old));
    }
    let spec = d.spec.clone().unwrap_or_default();
    let collision = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = template_hash(&spec.template, collision);
    let mut template = spec.template.clone();
    template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.into(), hash.clone());
    let mut sel = spec.selector.clone();
    sel.match_labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.into(), hash.clone());
    let name = format!("{}-{hash}", d.name_any());
    let all: Vec<&ReplicaSet> = rss.iter().collect();
    let new_replicas = new_rs_replicas(d, &all, 0);
    let (surge, _) = fenceposts(d);
    let mut annotations = copied_annotations(d);
    annotations.insert(REVISION.into(), new_revision.clone());
    annotations.insert(DESIRED_REPLICAS.into(), replicas(d).to_string());
    annotations.insert(MAX_REPLICAS.into(), (replicas(d) + surge).to_string());
    let rs = ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
            annotations: Some(annotations),
            owner_references: Some(vec![pod_util::controller_ref(
                "apps/v1",
                "Deployment",
                &d.metadata,
            )]),
            ..ObjectMeta::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(new_replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector: LabelSelector {
                match_labels: sel.match_labels,
                match_expressions: sel.match_expressions,
            },
            template: Some(template),
        }),
        status: None,
    };
    let created = match api.create(&PostParams::default(), &rs).await {
        Ok(c) => c,
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // Same name: ours if its template matches, else a hash collision.
            let existing = api.get(&name).await?;
            let ours = existing
                .metadata
                .owner_references
                .as_ref()
                .is_some_and(|o| o.iter().any(|r| Some(&r.uid) == d.metadata.uid.as_ref()));
            if ours
                && existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| equal_ignore_hash(t, &spec.template))
            {
                existing
            } else {
                let mut status = d.status.clone().unwrap_or_default();
                status.collision_count = Some(collision.unwrap_or(0) + 1);
                write_status(ctx, d, status).await?;
                return Err(Error::Api(kube::Error::Api(e)));
            }
        }
        Err(e) => {
            let msg = match &e {
                kube::Error::Api(s) => s.message.clone(),
                other => other.to_string(),
            };
            let mut status = d.status.clone().unwrap_or_default();
            if has_deadline(d) {
                set_condition(
                    &mut status,
                    new_condition(
                        "Progressing",
                        "False",
                        "ReplicaSetCreateError",
                        format!("Failed to create new replica set \"{name}\": {msg}"),
                        Timestamp::now(),
                    ),
                );
                write_status(ctx, d, status).await?;
            }
            return Err(e.into());
        }
    };
    if new_replicas > 0 {
        event(
            ctx,
            d,
            EventType::Normal,
            "ScalingReplicaSet",
            &format!("Scaled up replica set {name} from 0 to {new_replicas}"),
        )
        .await;
    }
    set_deployment_revision(ctx, d, &new_revision).await?;
    if has_deadline(d) {
        let mut status = d.status.clone().unwrap_or_default();
        set_condition(
            &mut status,
            new_condition(
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                format!("Created new replica set \"{name}\""),
                Timestamp::now(),
            ),
        );
        write_status(ctx, d, status).await?;
    }
    rss.push(created);
    Ok((Some(rss.len() - 1), old))
}

fn has_deadline(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .is_some()
}

async fn set_deployment_revision(ctx: &Ctx, d: &mut Deployment, rev: &str) -> Result<(), Error> {
    if d.annotations().get(REVISION).map(String::as_str) == Some(rev) {
        return Ok(());
    }
    let api: Api<Deployment> = Api::namespaced(
        ctx.client.clone(),
        d.metadata.namespace.as_deref().unwrap_or(""),
    );
    let patch = json!({"metadata": {"annotations": {REVISION: rev}}});
    *d = api
        .patch(&d.name_any(), &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(())
}

async fn write_status(
    ctx: &Ctx,
    d: &mut Deployment,
    status: DeploymentStatus,
) -> Result<(), Error> {
    if d.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<Deployment> = Api::namespaced(
        ctx.client.clone(),
        d.metadata.namespace.as_deref().unwrap_or(""),
    );
    let mut updated = d.clone();
    updated.status = Some(status);
    *d = api
        .replace_status(&d.name_any(), &PostParams::default(), &updated)
        .await?;
    Ok(())
}

/// Scales one ReplicaSet (and its size annotations); records the event on the deployment.
async fn scale_rs(ctx: &Ctx, d: &Deployment, rs: &mut ReplicaSet, to: i32) -> Result<bool, Error> {
    let from = rs_replicas(rs);
    let (surge, _) = fenceposts(d);
    let desired = replicas(d).to_string();
    let max = (replicas(d) + surge).to_string();
    let ann = rs.metadata.annotations.clone().unwrap_or_default();
    let annotations_current =
        ann.get(DESIRED_REPLICAS) == Some(&desired) && ann.get(MAX_REPLICAS) == Some(&max);
    if from == to && annotations_current {
        return Ok(false);
    }
    let mut updated = rs.clone();
    let a = updated
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    a.insert(DESIRED_REPLICAS.into(), desired);
    a.insert(MAX_REPLICAS.into(), max);
    if let Some(s) = updated.spec.as_mut() {
        s.replicas = Some(to);
    }
    let api: Api<ReplicaSet> = Api::namespaced(
        ctx.client.clone(),
        rs.metadata.namespace.as_deref().unwrap_or(""),
    );
    *rs = api
        .replace(&rs.name_any(), &PostParams::default(), &updated)
        .await?;
    if from != to {
        let dir = if to > from { "up" } else { "down" };
        event(
            ctx,
            d,
            EventType::Normal,
            "ScalingReplicaSet",
            &format!(
                "Scaled {dir} replica set {} from {from} to {to}",
                rs.name_any()
            ),
        )
        .await;
    }
    Ok(from != to)
}

async fn rollout_rolling(
    ctx: &Ctx,
    d: &mut Deployment,
    rss: &mut Vec<ReplicaSet>,
) -> Result<Option<Duration>, Error> {
    let (new_idx, old_idx) = new_and_old(ctx, d, rss, true).await?;
    let Some(ni) = new_idx else {
        return Ok(None);
    };
    // Scale up the new set within maxSurge.
    let n = replicas(d);
    let cur_new = rs_replicas(&rss[ni]);
    if cur_new != n {
        let target = if cur_new > n {
            n
        } else {
            let all: Vec<&ReplicaSet> = rss.iter().collect();
            new_rs_replicas(d, &all, cur_new)
        };
        let mut rs = rss[ni].clone();
        if scale_rs(ctx, d, &mut rs, target).await? {
            rss[ni] = rs;
            return sync_rollout_status(ctx, d, rss, Some(ni)).await;
        }
        rss[ni] = rs;
    }
    // Scale down old sets within maxUnavailable.
    if reconcile_old(ctx, d, rss, ni, &old_idx).await? {
        return sync_rollout_status(ctx, d, rss, Some(ni)).await;
    }
    let all: Vec<&ReplicaSet> = rss.iter().collect();
    let status = calculate_status(d, &all, Some(&rss[ni]));
    if complete(d, &status) {
        cleanup(ctx, d, rss, &old_idx).await?;
    }
    sync_rollout_status(ctx, d, rss, Some(ni)).await
}

/// Upstream's reconcileOldReplicaSets: first unhealthy old pods, then healthy ones while
/// enough stay available.
async fn reconcile_old(
    ctx: &Ctx,
    d: &Deployment,
    rss: &mut [ReplicaSet],
    ni: usize,
    old_idx: &[usize],
) -> Result<bool, Error> {
    let old_count: i32 = old_idx.iter().map(|&i| rs_replicas(&rss[i])).sum();
    if old_count == 0 {
        return Ok(false);
    }
    let all_count: i32 = rss.iter().map(rs_replicas).sum();
    let min_available = replicas(d) - max_unavailable(d);
    let new_unavailable = rs_replicas(&rss[ni]) - rs_available(&rss[ni]);
    let max_scaled_down = all_count - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Ok(false);
    }
    let mut order: Vec<usize> = old_idx.to_vec();
    order.sort_by(|&a, &b| {
        let ca = rss[a].metadata.creation_timestamp.as_ref().map(|t| t.0);
        let cb = rss[b].metadata.creation_timestamp.as_ref().map(|t| t.0);
        ca.cmp(&cb)
            .then_with(|| rss[a].metadata.name.cmp(&rss[b].metadata.name))
    });
    // Unhealthy replicas first.
    let mut cleaned = 0;
    for &i in &order {
        if cleaned >= max_scaled_down {
            break;
        }
        let r = rs_replicas(&rss[i]);
        let unhealthy = r - rs_available(&rss[i]);
        if r == 0 || unhealthy <= 0 {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(unhealthy);
        let mut rs = rss[i].clone();
        scale_rs(ctx, d, &mut rs, r - down).await?;
        rss[i] = rs;
        cleaned += down;
    }
    // Then available ones, keeping minAvailable. A set just scaled down may still report the
    // pods it is deleting as available: count at most its new size.
    let available: i32 = rss
        .iter()
        .map(|r| rs_available(r).min(rs_replicas(r)))
        .sum();
    let mut scaled = 0;
    if available > min_available {
        let total = available - min_available;
        for &i in &order {
            if scaled >= total {
                break;
            }
            let r = rs_replicas(&rss[i]);
            if r == 0 {
                continue;
            }
            let down = r.min(total - scaled);
            let mut rs = rss[i].clone();
            scale_rs(ctx, d, &mut rs, r - down).await?;
            rss[i] = rs;
            scaled += down;
        }
    }
    Ok(cleaned + scaled > 0)
}

async fn rollout_recreate(
    ctx: &Ctx,
    d: &mut Deployment,
    rss: &mut Vec<ReplicaSet>,
) -> Result<Option<Duration>, Error> {
    let (new_idx, old_idx) = new_and_old(ctx, d, rss, false).await?;
    let mut scaled = false;
    for &i in &old_idx {
        if rs_replicas(&rss[i]) > 0 {
            let mut rs = rss[i].clone();
            scaled |= scale_rs(ctx, d, &mut rs, 0).await?;
            rss[i] = rs;
        }
    }
    if scaled {
        return sync_rollout_status(ctx, d, rss, new_idx).await;
    }
    // Old pods must be gone (not just terminating) before new ones start.
    let old_uids: Vec<String> = old_idx
        .iter()
        .filter_map(|&i| rss[i].metadata.uid.clone())
        .collect();
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let old_running = ctx.pods.list_namespace(&ns).iter().any(|p| {
        let phase = p
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("");
        !matches!(phase, "Succeeded" | "Failed")
            && p.metadata.owner_references.as_ref().is_some_and(|o| {
                o.iter()
                    .any(|r| r.controller == Some(true) && old_uids.contains(&r.uid))
            })
    });
    if old_running {
        return sync_rollout_status(ctx, d, rss, new_idx).await;
    }
    let (new_idx, old_idx) = match new_idx {
        Some(_) => (new_idx, old_idx),
        None => new_and_old(ctx, d, rss, true).await?,
    };
    let Some(ni) = new_idx else {
        return Ok(None);
    };
    let mut rs = rss[ni].clone();
    scale_rs(ctx, d, &mut rs, replicas(d)).await?;
    rss[ni] = rs;
    let all: Vec<&ReplicaSet> = rss.iter().collect();
    let status = calculate_status(d, &all, Some(&rss[ni]));
    if complete(d, &status) {
        cleanup(ctx, d, rss, &old_idx).await?;
    }
    sync_rollout_status(ctx, d, rss, Some(ni)).await
}

/// Scaling while paused or outside a rollout: resize the active sets (proportionally during a
/// rolling update).
async fn scale_sync(
    ctx: &Ctx,
    d: &mut Deployment,
    rss: &mut Vec<ReplicaSet>,
) -> Result<Option<Duration>, Error> {
    let (new_idx, old_idx) = new_and_old(ctx, d, rss, false).await?;
    let n = replicas(d);
    let active: Vec<usize> = (0..rss.len())
        .filter(|&i| rs_replicas(&rss[i]) > 0)
        .collect();
    if active.len() <= 1 {
        // One active set (or none: the newest) takes the whole size.
        let target = active.first().copied().or(new_idx).or_else(|| {
            (0..rss.len()).max_by_key(|&i| rss[i].metadata.creation_timestamp.as_ref().map(|t| t.0))
        });
        if let Some(i) = target {
            let mut rs = rss[i].clone();
            scale_rs(ctx, d, &mut rs, n).await?;
            rss[i] = rs;
        }
    } else if let Some(ni) =
        new_idx.filter(|&ni| rs_replicas(&rss[ni]) == n && rs_available(&rss[ni]) == n)
    {
        // The new set is saturated: old ones go.
        for &i in &old_idx {
            if rs_replicas(&rss[i]) > 0 {
                let mut rs = rss[i].clone();
                scale_rs(ctx, d, &mut rs, 0).await?;
                rss[i] = rs;
            }
        }
        let _ = ni;
    } else if !is_recreate(d) {
        let (surge, _) = fenceposts(d);
        let allowed = n + surge;
        let current: i32 = active.iter().map(|&i| rs_replicas(&rss[i])).sum();
        let to_add = allowed - current;
        let status_replicas = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let mut order = active.clone();
        // Growing: biggest (then newest) first; shrinking: biggest (then oldest) first.
        order.sort_by(|&a, &b| {
            let by_size = rs_replicas(&rss[b]).cmp(&rs_replicas(&rss[a]));
            let ca = rss[a].metadata.creation_timestamp.as_ref().map(|t| t.0);
            let cb = rss[b].metadata.creation_timestamp.as_ref().map(|t| t.0);
            by_size.then(if to_add > 0 { cb.cmp(&ca) } else { ca.cmp(&cb) })
        });
        let mut added = 0;
        let mut targets: Vec<(usize, i32)> = Vec::new();
        for &i in &order {
            let p = if to_add != 0 {
                proportion(&rss[i], d, to_add, added, status_replicas)
            } else {
                0
            };
            targets.push((i, rs_replicas(&rss[i]) + p));
            added += p;
        }
        // Leftovers go to the largest set.
        if let Some(first) = targets.first_mut() {
            first.1 += to_add - added;
            first.1 = first.1.max(0);
        }
        for (i, to) in targets {
            let mut rs = rss[i].clone();
            scale_rs(ctx, d, &mut rs, to).await?;
            rss[i] = rs;
        }
    }
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    if paused {
        cleanup(ctx, d, rss, &old_idx).await?;
    }
    let all: Vec<&ReplicaSet> = rss.iter().collect();
    let mut status = calculate_status(d, &all, new_idx.map(|i| &rss[i]));
    set_available_condition(d, &mut status);
    write_status(ctx, d, status).await?;
    Ok(None)
}

/// Deletes old, empty sets beyond revisionHistoryLimit (oldest revision first).
async fn cleanup(
    ctx: &Ctx,
    d: &Deployment,
    rss: &[ReplicaSet],
    old_idx: &[usize],
) -> Result<(), Error> {
    let limit = d
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
        .max(0) as usize;
    let mut candidates: Vec<&ReplicaSet> = old_idx
        .iter()
        .map(|&i| &rss[i])
        .filter(|r| {
            rs_replicas(r) == 0
                && rs_status_replicas(r) == 0
                && r.metadata.deletion_timestamp.is_none()
        })
        .collect();
    let total_old = old_idx.len();
    if total_old <= limit {
        return Ok(());
    }
    candidates.sort_by_key(|r| revision(r));
    let api: Api<ReplicaSet> = Api::namespaced(
        ctx.client.clone(),
        d.metadata.namespace.as_deref().unwrap_or(""),
    );
    for rs in candidates.into_iter().take(total_old - limit) {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: rs.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        ignore_gone(api.delete(&rs.name_any(), &dp).await)?;
    }
    Ok(())
}

fn set_available_condition(d: &Deployment, status: &mut DeploymentStatus) {
    let now = Timestamp::now();
    if status.available_replicas.unwrap_or(0) >= replicas(d) - max_unavailable(d) {
        set_condition(
            status,
            new_condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set_condition(
            status,
            new_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
}

async fn sync_status_only(
    ctx: &Ctx,
    d: &mut Deployment,
    rss: &mut Vec<ReplicaSet>,
) -> Result<Option<Duration>, Error> {
    let (new_idx, _) = new_and_old(ctx, d, rss, false).await?;
    let all: Vec<&ReplicaSet> = rss.iter().collect();
    let mut status = calculate_status(d, &all, new_idx.map(|i| &rss[i]));
    set_available_condition(d, &mut status);
    write_status(ctx, d, status).await?;
    Ok(None)
}

/// Status with the Available and Progressing conditions; asks to be looked at again when the
/// progress deadline would pass.
async fn sync_rollout_status(
    ctx: &Ctx,
    d: &mut Deployment,
    rss: &[ReplicaSet],
    new_idx: Option<usize>,
) -> Result<Option<Duration>, Error> {
    let all: Vec<&ReplicaSet> = rss.iter().collect();
    let new_rs = new_idx.map(|i| &rss[i]);
    let mut status = calculate_status(d, &all, new_rs);
    set_available_condition(d, &mut status);
    let now = Timestamp::now();
    let mut requeue = None;
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    if has_deadline(d) && !paused {
        let name = new_rs.map(|r| r.name_any()).unwrap_or_default();
        let cur = condition(&status, "Progressing").cloned();
        if complete(d, &status) {
            set_condition(
                &mut status,
                new_condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    format!("ReplicaSet \"{name}\" has successfully progressed."),
                    now,
                ),
            );
        } else if progressing(d, &status) {
            let mut c = new_condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{name}\" is progressing."),
                now,
            );
            // Progress refreshes lastUpdateTime (which the deadline counts from).
            if let Some(cur) = cur.as_ref().filter(|c| c.status == "True") {
                c.last_transition_time = cur.last_transition_time.clone();
            }
            if let Some(conds) = status.conditions.as_mut() {
                conds.retain(|x| x.type_ != "Progressing");
                conds.push(c);
            }
        } else if timed_out(d, &status, now) {
            set_condition(
                &mut status,
                new_condition(
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    format!("ReplicaSet \"{name}\" has timed out progressing."),
                    now,
                ),
            );
        }
        if !complete(d, &status)
            && let Some(c) = condition(&status, "Progressing").filter(|c| c.status == "True")
            && let Some(from) = c.last_update_time.as_ref()
            && let Some(deadline) = d.spec.as_ref().and_then(|s| s.progress_deadline_seconds)
        {
            let at = from
                .0
                .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(i64::from(
                    deadline,
                )));
            if let Ok(at) = at {
                let left = at.duration_since(now);
                requeue = Some(
                    if left.is_positive() {
                        left.unsigned_abs()
                    } else {
                        Duration::from_millis(100)
                    } + Duration::from_millis(50),
                );
            }
        }
    }
    // Mirror a failing ReplicaSet.
    let failure = new_rs.and_then(|r| {
        r.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
            .cloned()
    });
    match failure {
        Some(f) => set_condition(
            &mut status,
            new_condition(
                "ReplicaFailure",
                "True",
                f.reason.as_deref().unwrap_or("FailedCreate"),
                f.message.unwrap_or_default(),
                now,
            ),
        ),
        None => remove_condition(&mut status, "ReplicaFailure"),
    }
    write_status(ctx, d, status).await?;
    Ok(requeue)
}

/// The Progressing condition of a paused (or just resumed) deployment.
async fn check_paused_condition(ctx: &Ctx, d: &mut Deployment) -> Result<(), Error> {
    if !has_deadline(d) {
        return Ok(());
    }
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    let mut status = d.status.clone().unwrap_or_default();
    let cur = condition(&status, "Progressing").cloned();
    let is_paused_cond = cur
        .as_ref()
        .is_some_and(|c| c.reason.as_deref() == Some("DeploymentPaused"));
    let now = Timestamp::now();
    if paused && !is_paused_cond {
        set_condition(
            &mut status,
            new_condition(
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".into(),
                now,
            ),
        );
    } else if !paused && is_paused_cond {
        set_condition(
            &mut status,
            new_condition(
                "Progressing",
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed".into(),
                now,
            ),
        );
    } else {
        return Ok(());
    }
    write_status(ctx, d, status).await
}
