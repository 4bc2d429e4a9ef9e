//! DaemonSet controller: one pod per eligible node, pinned there by node affinity for the
//! scheduler to bind; rolling updates with maxUnavailable or maxSurge, OnDelete, revision
//! history in ControllerRevisions, failed-pod backoff and status, as upstream's.

pub mod util;

use crate::claim::claim;
use crate::events::{EventType, Recorder};
use crate::expectations::Expectations;
use crate::history::{self, HASH_LABEL};
use crate::pod_util;
use crate::runtime::selector::{Selector, SelectorError};
use crate::runtime::{self, Change, Informer, Informers, Key, Queue};
use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use util::*;

const COMPONENT: &str = "daemonset-controller";
/// Upstream's burstReplicas.
const BURST: usize = 250;
const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("api request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Selector(#[from] SelectorError),
    #[error("{failed} of {total} daemon pod creations failed: {message}")]
    Create {
        failed: usize,
        total: usize,
        message: String,
    },
    #[error("controller revision {0} exists with another template; collision count raised")]
    Collision(String),
}

/// Per DaemonSet and node: when a failed pod was last replaced and how long to wait before the
/// next replacement (upstream's failedPodsBackoff, 1 s doubling to 15 min).
#[derive(Default)]
struct Backoff {
    entries: Mutex<HashMap<String, (Duration, Instant)>>,
}

impl Backoff {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Duration, Instant)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The time left when `key` is backing off.
    fn remaining(&self, key: &str, now: Instant) -> Option<Duration> {
        let (d, at) = *self.lock().get(key)?;
        let elapsed = now.saturating_duration_since(at);
        (elapsed < d).then(|| d - elapsed)
    }

    fn next(&self, key: &str, now: Instant) {
        let mut m = self.lock();
        let d = match m.get(key) {
            Some((d, at)) if now.saturating_duration_since(*at) < 2 * BACKOFF_MAX => {
                (*d * 2).min(BACKOFF_MAX)
            }
            _ => BACKOFF_INITIAL,
        };
        m.insert(key.to_string(), (d, now));
    }

    fn forget_prefix(&self, prefix: &str) {
        self.lock().retain(|k, _| !k.starts_with(prefix));
    }
}

pub struct Ctx {
    pub client: kube::Client,
    pub daemon_sets: Arc<Informer<DaemonSet>>,
    pub pods: Arc<Informer<Pod>>,
    pub nodes: Arc<Informer<Node>>,
    pub revisions: Arc<Informer<ControllerRevision>>,
    /// Creations and deletions are tracked apart: one sync may do both.
    creations: Expectations,
    deletions: Expectations,
    backoff: Backoff,
    recorder: Recorder,
}

impl Ctx {
    fn satisfied(&self, key: &Key) -> bool {
        self.creations.satisfied(key) && self.deletions.satisfied(key)
    }
}

fn selector(ds: &DaemonSet) -> Result<Selector, SelectorError> {
    Selector::from_label_selector(ds.spec.as_ref().map(|s| &s.selector))
}

/// The DaemonSets a pod change concerns: its controller, or for an orphan the sets selecting it.
fn keys_for_pod(ctx: &Ctx, change: &Change<Pod>) -> Vec<Key> {
    let mut keys = Vec::new();
    let pod = change.object();
    match change {
        Change::Applied { old, new } => {
            if let Some(k) = runtime::controller_of(&**new, "DaemonSet") {
                let was_deleting = old.as_ref().is_some_and(|o| pod_util::is_terminating(o));
                if old.is_none() {
                    ctx.creations.creation_observed(&k);
                } else if !was_deleting && pod_util::is_terminating(new) {
                    ctx.deletions.deletion_observed(&k);
                }
                keys.push(k);
            }
            if let Some(old) = old
                && let Some(k) = runtime::controller_of(&**old, "DaemonSet")
                && !keys.contains(&k)
            {
                keys.push(k);
            }
        }
        Change::Deleted(last) => {
            if let Some(k) = runtime::controller_of(&**last, "DaemonSet") {
                if !pod_util::is_terminating(last) {
                    ctx.deletions.deletion_observed(&k);
                }
                keys.push(k);
            }
        }
    }
    let orphan = pod
        .metadata
        .owner_references
        .as_ref()
        .is_none_or(|o| !o.iter().any(|r| r.controller == Some(true)));
    if orphan && !pod_util::is_terminating(pod) && matches!(change, Change::Applied { .. }) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        for ds in ctx.daemon_sets.list_namespace(ns) {
            if selector(&ds).is_ok_and(|s| s.matches(pod.metadata.labels.as_ref())) {
                keys.push(Key::of(&*ds));
            }
        }
    }
    keys
}

/// The DaemonSets whose view of a node changed: a new or removed node concerns all of them,
/// an updated one those whose eligibility on it changed.
fn keys_for_node(ctx: &Ctx, change: &Change<Node>) -> Vec<Key> {
    let all = ctx.daemon_sets.list();
    match change {
        Change::Applied {
            old: Some(old),
            new,
        } => all
            .iter()
            .filter(|ds| node_should_run(ds, old) != node_should_run(ds, new))
            .map(|ds| Key::of(&**ds))
            .collect(),
        _ => all.iter().map(|ds| Key::of(&**ds)).collect(),
    }
}

/// Runs the controller until `cancel` fires.
pub async fn run(informers: Arc<Informers>, workers: usize, cancel: CancellationToken) {
    let ctx = Arc::new(Ctx {
        client: informers.client().clone(),
        daemon_sets: informers.get::<DaemonSet>(),
        pods: informers.get::<Pod>(),
        nodes: informers.get::<Node>(),
        revisions: informers.get::<ControllerRevision>(),
        creations: Expectations::default(),
        deletions: Expectations::default(),
        backoff: Backoff::default(),
        recorder: Recorder::new(informers.client().clone(), COMPONENT),
    });
    let queue = Queue::new();
    let ds_changes = ctx.daemon_sets.subscribe();
    let pod_changes = ctx.pods.subscribe();
    let node_changes = ctx.nodes.subscribe();
    let revision_changes = ctx.revisions.subscribe();
    ctx.daemon_sets.synced().await;
    ctx.pods.synced().await;
    ctx.nodes.synced().await;
    ctx.revisions.synced().await;
    for ds in ctx.daemon_sets.list() {
        queue.add(Key::of(&*ds));
    }
    let c0 = ctx.clone();
    let sets = runtime::enqueue_changes(
        ds_changes,
        queue.clone(),
        cancel.clone(),
        move |c: &Change<DaemonSet>| {
            if let Change::Deleted(ds) = c {
                // Failed-pod backoff of a deleted set is never consulted again.
                c0.backoff
                    .forget_prefix(&format!("{}/", ds.metadata.uid.as_deref().unwrap_or("")));
            }
            [Key::of(&**c.object())]
        },
    );
    let c1 = ctx.clone();
    let pods = runtime::enqueue_changes(pod_changes, queue.clone(), cancel.clone(), move |c| {
        keys_for_pod(&c1, c)
    });
    let c2 = ctx.clone();
    let nodes = runtime::enqueue_changes(node_changes, queue.clone(), cancel.clone(), move |c| {
        keys_for_node(&c2, c)
    });
    let revisions = runtime::enqueue_changes(
        revision_changes,
        queue.clone(),
        cancel.clone(),
        |c: &Change<ControllerRevision>| runtime::controller_of(&**c.object(), "DaemonSet"),
    );
    let c3 = ctx.clone();
    let workers = runtime::run_workers(COMPONENT, queue, workers, cancel, move |key| {
        let ctx = c3.clone();
        async move { sync(&ctx, &key).await }
    });
    tokio::join!(sets, pods, nodes, revisions, workers);
}

async fn event(ctx: &Ctx, ds: &DaemonSet, ty: EventType, reason: &str, msg: &str) {
    ctx.recorder
        .record(&ds.object_ref(&()), ty, reason, msg)
        .await;
}

fn error_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

async fn sync(ctx: &Ctx, key: &Key) -> Result<Option<Duration>, Error> {
    let Some(ds) = ctx.daemon_sets.get(&key.namespace, &key.name) else {
        ctx.creations.forget(key);
        ctx.deletions.forget(key);
        return Ok(None);
    };
    let sel = match selector(&ds) {
        Ok(s) => s,
        Err(e) => {
            event(
                ctx,
                &ds,
                EventType::Warning,
                "SelectorParsingFailed",
                &e.to_string(),
            )
            .await;
            return Ok(None);
        }
    };
    if sel.is_everything() {
        event(
            ctx,
            &ds,
            EventType::Warning,
            "SelectingAll",
            "This daemon set is selecting all pods. A non-empty selector is required.",
        )
        .await;
        return Ok(None);
    }
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let cref = pod_util::controller_ref("apps/v1", "DaemonSet", &ds.metadata);
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let pods = claim(
        &pods_api,
        ctx.pods.list_namespace(&key.namespace),
        &sel,
        &cref,
        false,
        |_| true,
    )
    .await?;
    // Pods already finished and being removed count for nothing (upstream
    // getNodesToDaemonPods without deleted terminal pods).
    let pods: Vec<Arc<Pod>> = pods
        .into_iter()
        .filter(|p| !(is_terminal(p) && pod_util::is_terminating(p)))
        .collect();
    let (hash, old_revisions) = construct_history(ctx, &ds, &sel, &cref, &pods).await?;
    let nodes = ctx.nodes.list();
    let mut requeue: Option<Duration> = None;
    if ctx.satisfied(key) {
        requeue = manage(ctx, key, &ds, &nodes, &pods, &hash).await?;
        if ctx.satisfied(key) && is_rolling_update(&ds) {
            rolling(ctx, key, &ds, &nodes, &pods, &hash).await?;
        }
        cleanup_history(ctx, &ds, old_revisions, &pods).await?;
    }
    let status_requeue = update_status(ctx, &ds, &nodes, &pods, &hash).await?;
    Ok(match (requeue, status_requeue) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// The current revision's hash, creating or renumbering the revision as needed, and the other
/// revisions (upstream constructHistory).
async fn construct_history(
    ctx: &Ctx,
    ds: &DaemonSet,
    sel: &Selector,
    cref: &OwnerReference,
    pods: &[Arc<Pod>],
) -> Result<(String, Vec<ControllerRevision>), Error> {
    let ns = ds.namespace().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let claimed = claim(
        &api,
        ctx.revisions.list_namespace(&ns),
        sel,
        cref,
        false,
        |_| true,
    )
    .await?;
    let mut current = Vec::new();
    let mut old = Vec::new();
    for r in claimed {
        let mut r = (*r).clone();
        if !r.labels().contains_key(HASH_LABEL) {
            // Name instead of a recomputed hash: immune to hash changes.
            let patch = json!({"metadata": {"labels": {HASH_LABEL: r.name_any()}}});
            r = api
                .patch(&r.name_any(), &PatchParams::default(), &Patch::Merge(patch))
                .await?;
        }
        if history::records(&r, &template) {
            current.push(r);
        } else {
            old.push(r);
        }
    }
    let next = history::next_revision(&old);
    let cur = if current.is_empty() {
        snapshot(ctx, ds, &api, &template, next, cref).await?
    } else {
        let mut cur = dedup(ctx, &api, current, pods).await?;
        if cur.revision < next {
            cur = api
                .patch(
                    &cur.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"revision": next})),
                )
                .await?;
        }
        cur
    };
    let hash = cur.labels().get(HASH_LABEL).cloned().unwrap_or_default();
    Ok((hash, old))
}

async fn snapshot(
    ctx: &Ctx,
    ds: &DaemonSet,
    api: &Api<ControllerRevision>,
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    revision: i64,
    cref: &OwnerReference,
) -> Result<ControllerRevision, Error> {
    let collision = ds.status.as_ref().and_then(|s| s.collision_count);
    let hash = history::hash(template, collision);
    let name = history::revision_name(&ds.name_any(), &hash);
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash);
    let cr = ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: ds.namespace(),
            labels: Some(labels),
            annotations: ds.metadata.annotations.clone(),
            owner_references: Some(vec![cref.clone()]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(history::template_patch(template))),
        revision,
    };
    match api.create(&PostParams::default(), &cr).await {
        Ok(c) => Ok(c),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let existing = api.get(&name).await?;
            if history::records(&existing, template) {
                return Ok(existing);
            }
            // A different template under the same name: count the collision so the next
            // hash differs, unless the count we hashed with is already stale.
            let ds_api: Api<DaemonSet> =
                Api::namespaced(ctx.client.clone(), &ds.namespace().unwrap_or_default());
            let fresh = ds_api.get(&ds.name_any()).await?;
            let now = fresh.status.as_ref().and_then(|s| s.collision_count);
            if now == collision {
                ds_api
                    .patch_status(
                        &ds.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(
                            json!({"status": {"collisionCount": collision.unwrap_or(0) + 1}}),
                        ),
                    )
                    .await?;
            }
            Err(Error::Collision(name))
        }
        Err(e) => Err(e.into()),
    }
}

/// Keeps the highest-numbered of several revisions of the current template; pods of the others
/// are relabelled to it and the others deleted (upstream dedupCurHistories).
async fn dedup(
    ctx: &Ctx,
    api: &Api<ControllerRevision>,
    mut current: Vec<ControllerRevision>,
    pods: &[Arc<Pod>],
) -> Result<ControllerRevision, Error> {
    history::sort(&mut current);
    let Some(keep) = current.pop() else {
        return Err(Error::Collision("none".into()));
    };
    let keep_hash = keep.labels().get(HASH_LABEL).cloned().unwrap_or_default();
    for dup in current {
        let dup_hash = dup.labels().get(HASH_LABEL).cloned().unwrap_or_default();
        for p in pods {
            if p.labels().get(HASH_LABEL) == Some(&dup_hash) {
                let pods_api: Api<Pod> =
                    Api::namespaced(ctx.client.clone(), &p.namespace().unwrap_or_default());
                let patch = json!({"metadata": {"labels": {HASH_LABEL: keep_hash}}});
                runtime::ignore_not_found::<_, Error>(
                    pods_api
                        .patch(&p.name_any(), &PatchParams::default(), &Patch::Merge(patch))
                        .await,
                )?;
            }
        }
        runtime::ignore_not_found::<_, Error>(
            api.delete(&dup.name_any(), &DeleteParams::default()).await,
        )?;
    }
    Ok(keep)
}

fn pod_refs(pods: &[Arc<Pod>]) -> Vec<&Pod> {
    pods.iter().map(|p| &**p).collect()
}

/// Creates missing daemon pods and deletes misplaced, duplicate, finished and failed ones
/// (upstream manage). Returns when to look again for a failed pod still backing off.
async fn manage(
    ctx: &Ctx,
    key: &Key,
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    pods: &[Arc<Pod>],
    hash: &str,
) -> Result<Option<Duration>, Error> {
    let refs = pod_refs(pods);
    let mut by_node = by_node(&refs);
    let surge = allows_surge(ds);
    let mut create_on = Vec::new();
    let mut delete = Vec::new();
    let mut requeue: Option<Duration> = None;
    let generation = ds
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .unwrap_or(0);
    let uid = ds.uid().unwrap_or_default();
    let now = Instant::now();
    for node in nodes {
        let name = node.name_any();
        let on_node = by_node.remove(&name).unwrap_or_default();
        let actions = pods_should_be_on_node(node_should_run(ds, node), &on_node, hash, surge);
        if actions.create {
            create_on.push(name.clone());
        }
        delete.extend(actions.delete);
        for failed in actions.failed {
            let backoff_key = format!("{uid}/{generation}/{name}");
            if let Some(left) = ctx.backoff.remaining(&backoff_key, now) {
                requeue = Some(requeue.map_or(left, |r: Duration| r.min(left)));
                continue;
            }
            ctx.backoff.next(&backoff_key, now);
            let msg = format!(
                "Found failed daemon pod {}/{failed} on node {name}, will try to kill it",
                key.namespace
            );
            event(ctx, ds, EventType::Warning, "FailedDaemonPod", &msg).await;
            delete.push(failed);
        }
    }
    // Pods for nodes that no longer exist and that nobody bound: nothing will run them.
    for pods_left in by_node.values() {
        for p in pods_left {
            let bound = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty());
            if !bound && !pod_util::is_terminating(p) {
                delete.push(p.name_any());
            }
        }
    }
    sync_nodes(ctx, key, ds, &delete, &create_on, hash, pods).await?;
    Ok(requeue.map(|d| d + Duration::from_millis(50)))
}

/// Creates pods for `create_on` in slow-start batches and deletes `delete`
/// (upstream syncNodes).
async fn sync_nodes(
    ctx: &Ctx,
    key: &Key,
    ds: &DaemonSet,
    delete: &[String],
    create_on: &[String],
    hash: &str,
    pods: &[Arc<Pod>],
) -> Result<(), Error> {
    let create_on = &create_on[..create_on.len().min(BURST)];
    let delete = &delete[..delete.len().min(BURST)];
    if create_on.is_empty() && delete.is_empty() {
        return Ok(());
    }
    ctx.creations.expect_creations(key, create_on.len());
    ctx.deletions.expect_deletions(key, delete.len());
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let reference = ds.object_ref(&());
    let mut template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let labels = template
        .metadata
        .get_or_insert_with(ObjectMeta::default)
        .labels
        .get_or_insert_with(BTreeMap::new);
    if let Some(g) = template_generation(ds) {
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), g.to_string());
    }
    labels.insert(HASH_LABEL.into(), hash.to_string());
    if let Some(spec) = template.spec.as_mut() {
        add_daemon_tolerations(spec);
    }
    let cref = pod_util::controller_ref("apps/v1", "DaemonSet", &ds.metadata);
    let prefix = pod_util::pod_prefix(&key.name);
    let mut failure: Option<Error> = None;
    let mut pos = 0;
    let mut batch = 1;
    while pos < create_on.len() {
        let chunk = &create_on[pos..(pos + batch).min(create_on.len())];
        let results = join_all(chunk.iter().map(|node| {
            let mut pod =
                pod_util::pod_from_template(&template, &key.namespace, &prefix, cref.clone());
            if let Some(spec) = pod.spec.as_mut() {
                spec.affinity = Some(pin_to_node(spec.affinity.take(), node));
            }
            let api = api.clone();
            async move { api.create(&PostParams::default(), &pod).await }
        }))
        .await;
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok(p) => {
                    let msg = format!("Created pod: {}", p.name_any());
                    ctx.recorder
                        .record(&reference, EventType::Normal, "SuccessfulCreate", &msg)
                        .await;
                }
                Err(e) => {
                    ctx.creations.creation_observed(key);
                    errors.push(error_message(&e));
                }
            }
        }
        pos += chunk.len();
        if let Some(first) = errors.first().cloned() {
            // The rest of this sync's creations will not happen.
            for _ in pos..create_on.len() {
                ctx.creations.creation_observed(key);
            }
            ctx.recorder
                .record(
                    &reference,
                    EventType::Warning,
                    "FailedCreate",
                    &format!("Error creating: {first}"),
                )
                .await;
            failure = Some(Error::Create {
                failed: errors.len(),
                total: create_on.len(),
                message: first,
            });
            break;
        }
        batch *= 2;
    }
    let uids: HashMap<String, Option<String>> = pods
        .iter()
        .map(|p| (p.name_any(), p.metadata.uid.clone()))
        .collect();
    let results = join_all(delete.iter().map(|name| {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: uids.get(name).cloned().flatten(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let api = api.clone();
        async move { (name.clone(), api.delete(name, &dp).await) }
    }))
    .await;
    for (name, r) in results {
        match r {
            Ok(_) => {
                ctx.recorder
                    .record(
                        &reference,
                        EventType::Normal,
                        "SuccessfulDelete",
                        &format!("Deleted pod: {name}"),
                    )
                    .await;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => ctx.deletions.deletion_observed(key),
            Err(e) => {
                ctx.deletions.deletion_observed(key);
                ctx.recorder
                    .record(
                        &reference,
                        EventType::Warning,
                        "FailedDelete",
                        &format!("Error deleting: {}", error_message(&e)),
                    )
                    .await;
                failure.get_or_insert(e.into());
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Replaces old pods within maxUnavailable, or surges new ones within maxSurge
/// (upstream rollingUpdate).
async fn rolling(
    ctx: &Ctx,
    key: &Key,
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    pods: &[Arc<Pod>],
    hash: &str,
) -> Result<(), Error> {
    let refs = pod_refs(pods);
    let mut by_node = by_node(&refs);
    let mut desired = 0;
    let mut states = Vec::new();
    for node in nodes {
        let name = node.name_any();
        let should_run = node_should_run(ds, node).should_run;
        let on_node = by_node.remove(&name).unwrap_or_default();
        if should_run {
            desired += 1;
        }
        if should_run || !on_node.is_empty() {
            states.push(NodeState {
                name,
                should_run,
                pods: on_node,
            });
        }
    }
    for (name, on_node) in by_node {
        states.push(NodeState {
            name,
            should_run: false,
            pods: on_node,
        });
    }
    states.sort_by(|a, b| a.name.cmp(&b.name));
    let mut max_surge = surge_count(ds, desired);
    let mut max_unavailable = unavailable_count(ds, desired);
    if desired > 0 && max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    if !is_rolling_update(ds) {
        max_surge = 0;
    }
    let plan = rolling_update(&RollingInput {
        nodes: &states,
        hash,
        generation: template_generation(ds),
        max_surge,
        max_unavailable,
        desired,
        min_ready_seconds: min_ready_seconds(ds),
        now: Timestamp::now(),
    });
    if !plan.delete.is_empty() || !plan.create_on.is_empty() {
        tracing::debug!(delete = ?plan.delete, create_on = ?plan.create_on, "rolling update");
    }
    sync_nodes(ctx, key, ds, &plan.delete, &plan.create_on, hash, pods).await
}

fn min_ready_seconds(ds: &DaemonSet) -> i32 {
    ds.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// Deletes the oldest revisions beyond revisionHistoryLimit that no pod runs
/// (upstream cleanupHistory).
async fn cleanup_history(
    ctx: &Ctx,
    ds: &DaemonSet,
    mut old: Vec<ControllerRevision>,
    pods: &[Arc<Pod>],
) -> Result<(), Error> {
    let limit = ds
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
        .max(0) as usize;
    if old.len() <= limit {
        return Ok(());
    }
    let mut to_kill = old.len() - limit;
    let live: BTreeSet<&String> = pods
        .iter()
        .filter_map(|p| p.labels().get(HASH_LABEL))
        .collect();
    history::sort(&mut old);
    let api: Api<ControllerRevision> =
        Api::namespaced(ctx.client.clone(), &ds.namespace().unwrap_or_default());
    for r in old {
        if to_kill == 0 {
            break;
        }
        if r.labels().get(HASH_LABEL).is_some_and(|h| live.contains(h)) {
            continue;
        }
        runtime::ignore_not_found::<_, Error>(
            api.delete(&r.name_any(), &DeleteParams::default()).await,
        )?;
        to_kill -= 1;
    }
    Ok(())
}

/// Writes the counts upstream's updateDaemonSetStatus reports; returns when to look again for
/// ready pods turning available.
async fn update_status(
    ctx: &Ctx,
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    pods: &[Arc<Pod>],
    hash: &str,
) -> Result<Option<Duration>, Error> {
    let refs = pod_refs(pods);
    let mut by_node = by_node(&refs);
    let per_node: Vec<(Eligibility, Vec<&Pod>)> = nodes
        .iter()
        .map(|n| {
            (
                node_should_run(ds, n),
                by_node.remove(&n.name_any()).unwrap_or_default(),
            )
        })
        .collect();
    let min_ready = min_ready_seconds(ds);
    let now = Timestamp::now();
    let c = count(&per_node, hash, template_generation(ds), min_ready, now);
    let status = json!({
        "observedGeneration": ds.metadata.generation,
        "desiredNumberScheduled": c.desired,
        "currentNumberScheduled": c.current,
        "numberMisscheduled": c.misscheduled,
        "numberReady": c.ready,
        "updatedNumberScheduled": c.updated,
        "numberAvailable": c.available,
        "numberUnavailable": c.desired - c.available,
    });
    let cur = ds.status.clone().unwrap_or_default();
    let same = cur.observed_generation == ds.metadata.generation
        && cur.desired_number_scheduled == c.desired
        && cur.current_number_scheduled == c.current
        && cur.number_misscheduled == c.misscheduled
        && cur.number_ready == c.ready
        && cur.updated_number_scheduled.unwrap_or(0) == c.updated
        && cur.number_available.unwrap_or(0) == c.available
        && cur.number_unavailable.unwrap_or(0) == c.desired - c.available;
    if !same {
        let api: Api<DaemonSet> =
            Api::namespaced(ctx.client.clone(), &ds.namespace().unwrap_or_default());
        runtime::ignore_not_found::<_, Error>(
            api.patch_status(
                &ds.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await,
        )?;
    }
    if min_ready > 0 && c.ready != c.available {
        let next = refs
            .iter()
            .filter_map(|p| pod_util::until_available(p, min_ready, now))
            .min()
            .unwrap_or(Duration::from_secs(1));
        return Ok(Some(next + Duration::from_millis(50)));
    }
    Ok(None)
}

fn is_terminal(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}
