//! StatefulSet controller: pods with stable names `<set>-<ordinal>` and their claims from
//! volumeClaimTemplates, created in order (OrderedReady) or all at once (Parallel), scaled
//! down from the highest ordinal, rolled out per partition and maxUnavailable, with revision
//! history in ControllerRevisions, as upstream's.

pub mod util;

use crate::claim::claim;
use crate::events::{EventType, Recorder};
use crate::history::{self, HASH_LABEL};
use crate::pod_util;
use crate::runtime::selector::{Selector, SelectorError};
use crate::runtime::{self, Change, Informer, Informers, Key, Queue};
use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use util::*;

const COMPONENT: &str = "statefulset-controller";
/// Upstream's MaxBatchSize for Parallel pod management.
const MAX_BATCH: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("api request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Selector(#[from] SelectorError),
    #[error("revision {0} holds no pod template")]
    BadRevision(String),
    #[error("pvc {0} is being deleted")]
    ClaimDeleting(String),
    #[error("failed to create PVC {0}: {1}")]
    CreateClaim(String, String),
}

pub struct Ctx {
    pub client: kube::Client,
    pub sets: Arc<Informer<StatefulSet>>,
    pub pods: Arc<Informer<Pod>>,
    pub claims: Arc<Informer<PersistentVolumeClaim>>,
    pub revisions: Arc<Informer<ControllerRevision>>,
    recorder: Recorder,
}

fn selector(set: &StatefulSet) -> Result<Selector, SelectorError> {
    Selector::from_label_selector(set.spec.as_ref().map(|s| &s.selector))
}

fn keys_for_pod(ctx: &Ctx, change: &Change<Pod>) -> Vec<Key> {
    let pod = change.object();
    let mut keys: Vec<Key> = runtime::controller_of(&**pod, "StatefulSet")
        .into_iter()
        .collect();
    if let Change::Applied { old: Some(old), .. } = change
        && let Some(k) = runtime::controller_of(&**old, "StatefulSet")
        && !keys.contains(&k)
    {
        keys.push(k);
    }
    let orphan = pod
        .metadata
        .owner_references
        .as_ref()
        .is_none_or(|o| !o.iter().any(|r| r.controller == Some(true)));
    if orphan && matches!(change, Change::Applied { .. }) && !pod_util::is_terminating(pod) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        for set in ctx.sets.list_namespace(ns) {
            if selector(&set).is_ok_and(|s| s.matches(pod.metadata.labels.as_ref())) {
                keys.push(Key::of(&*set));
            }
        }
    }
    keys
}

/// Runs the controller until `cancel` fires.
pub async fn run(informers: Arc<Informers>, workers: usize, cancel: CancellationToken) {
    let ctx = Arc::new(Ctx {
        client: informers.client().clone(),
        sets: informers.get::<StatefulSet>(),
        pods: informers.get::<Pod>(),
        claims: informers.get::<PersistentVolumeClaim>(),
        revisions: informers.get::<ControllerRevision>(),
        recorder: Recorder::new(informers.client().clone(), COMPONENT),
    });
    let queue = Queue::new();
    let set_changes = ctx.sets.subscribe();
    let pod_changes = ctx.pods.subscribe();
    ctx.sets.synced().await;
    ctx.pods.synced().await;
    ctx.claims.synced().await;
    ctx.revisions.synced().await;
    for s in ctx.sets.list() {
        queue.add(Key::of(&*s));
    }
    let sets = runtime::enqueue_changes(
        set_changes,
        queue.clone(),
        cancel.clone(),
        |c: &Change<StatefulSet>| [Key::of(&**c.object())],
    );
    let c1 = ctx.clone();
    let pods = runtime::enqueue_changes(pod_changes, queue.clone(), cancel.clone(), move |c| {
        keys_for_pod(&c1, c)
    });
    let c2 = ctx.clone();
    let workers = runtime::run_workers(COMPONENT, queue, workers, cancel, move |key| {
        let ctx = c2.clone();
        async move { sync(&ctx, &key).await }
    });
    tokio::join!(sets, pods, workers);
}

/// One sync's view of a set: the set, its revisions' templates, and what it owns.
struct Plan<'a> {
    ctx: &'a Ctx,
    set: &'a StatefulSet,
    set_ref: OwnerReference,
    current: &'a ControllerRevision,
    update: &'a ControllerRevision,
    current_template: PodTemplateSpec,
    update_template: PodTemplateSpec,
    monotonic: bool,
    now: Timestamp,
}

async fn sync(ctx: &Ctx, key: &Key) -> Result<Option<Duration>, Error> {
    let Some(set) = ctx.sets.get(&key.namespace, &key.name) else {
        return Ok(None);
    };
    let sel = match selector(&set) {
        Ok(s) => s,
        Err(e) => {
            ctx.recorder
                .record(
                    &set.object_ref(&()),
                    EventType::Warning,
                    "SelectorParsingFailed",
                    &e.to_string(),
                )
                .await;
            return Ok(None);
        }
    };
    let set_ref = pod_util::controller_ref("apps/v1", "StatefulSet", &set.metadata);
    let deleting = set.metadata.deletion_timestamp.is_some();
    let rev_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let mut revisions: Vec<ControllerRevision> = claim(
        &rev_api,
        ctx.revisions.list_namespace(&key.namespace),
        &sel,
        &set_ref,
        deleting,
        |_| true,
    )
    .await?
    .iter()
    .map(|r| (**r).clone())
    .collect();
    history::sort(&mut revisions);
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let pods: Vec<Pod> = claim(
        &pods_api,
        ctx.pods.list_namespace(&key.namespace),
        &sel,
        &set_ref,
        deleting,
        |p| is_member(&key.name, p),
    )
    .await?
    .iter()
    .map(|p| (**p).clone())
    .collect();
    let (current, update, collision) = revisions_of(&set, &set_ref, &revisions, &rev_api).await?;
    let plan = Plan {
        ctx,
        set: &set,
        set_ref,
        current_template: history::template_of(&current)
            .ok_or_else(|| Error::BadRevision(current.name_any()))?,
        update_template: history::template_of(&update)
            .ok_or_else(|| Error::BadRevision(update.name_any()))?,
        current: &current,
        update: &update,
        monotonic: !is_parallel(&set),
        now: Timestamp::now(),
    };
    let (counts, result) = plan.update_set(&pods).await;
    let reported = Reported {
        counts,
        current_revision: current.name_any(),
        update_revision: update.name_any(),
        collision_count: collision,
    };
    let status_result = write_status(ctx, &set, reported).await;
    let live = [current.name_any(), update.name_any()];
    let truncated = truncate_history(
        &set,
        &pods,
        &revisions,
        [live[0].as_str(), live[1].as_str()],
        &rev_api,
    )
    .await;
    result?;
    let available = status_result?;
    truncated?;
    let min_ready = min_ready_seconds(&set);
    if min_ready > 0 && available != replicas(&set) {
        return Ok(Some(Duration::from_secs(min_ready as u64)));
    }
    Ok(None)
}

/// The current and update revisions, creating or renumbering the update revision as needed,
/// and the collision count used (upstream getStatefulSetRevisions).
async fn revisions_of(
    set: &StatefulSet,
    set_ref: &OwnerReference,
    revisions: &[ControllerRevision],
    api: &Api<ControllerRevision>,
) -> Result<(ControllerRevision, ControllerRevision, i32), Error> {
    let mut collision = set
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let template = set
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let next = history::next_revision(revisions);
    let equal: Vec<&ControllerRevision> = revisions
        .iter()
        .filter(|r| history::records(r, &template))
        .collect();
    let update = match (equal.last(), revisions.last()) {
        (Some(eq), Some(last)) if history::same_data(eq, last) => last.clone(),
        (Some(eq), _) => {
            // An older template came back: it becomes the newest revision again.
            api.patch(
                &eq.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"revision": next})),
            )
            .await?
        }
        (None, _) => create_revision(set, set_ref, &template, next, &mut collision, api).await?,
    };
    let current_name = set.status.as_ref().and_then(|s| s.current_revision.clone());
    let current = revisions
        .iter()
        .find(|r| r.metadata.name.is_some() && r.metadata.name == current_name)
        .cloned()
        .unwrap_or_else(|| update.clone());
    Ok((current, update, collision))
}

/// Creates the revision of `template`, moving to the next name on each collision with a
/// different template (upstream CreateControllerRevision).
async fn create_revision(
    set: &StatefulSet,
    set_ref: &OwnerReference,
    template: &PodTemplateSpec,
    revision: i64,
    collision: &mut i32,
    api: &Api<ControllerRevision>,
) -> Result<ControllerRevision, Error> {
    let data = RawExtension(history::template_patch(template));
    loop {
        let hash = history::hash(template, Some(*collision));
        let name = history::revision_name(&set.name_any(), &hash);
        let mut labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(HASH_LABEL.into(), hash);
        let cr = ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: set.namespace(),
                labels: Some(labels),
                annotations: set.metadata.annotations.clone(),
                owner_references: Some(vec![set_ref.clone()]),
                ..ObjectMeta::default()
            },
            data: Some(data.clone()),
            revision,
        };
        match api.create(&PostParams::default(), &cr).await {
            Ok(c) => return Ok(c),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let existing = api.get(&name).await?;
                if existing.data.as_ref() == Some(&data) {
                    return Ok(existing);
                }
                *collision += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs `f` over `0..n`: in order, stopping at the first that says stop (monotonic), or in
/// slow-start batches, stopping at the first batch with an error (upstream runForAll).
async fn run_for_all<F, Fut>(n: usize, monotonic: bool, f: F) -> Result<bool, Error>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<bool, Error>>,
{
    if monotonic {
        for i in 0..n {
            if f(i).await? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    let mut pos = 0;
    let mut batch = 1;
    while pos < n {
        let end = (pos + batch).min(n);
        let results = join_all((pos..end).map(&f)).await;
        if let Some(e) = results.into_iter().find_map(Result::err) {
            return Err(e);
        }
        pos = end;
        batch = (batch * 2).min(MAX_BATCH);
    }
    Ok(false)
}

impl Plan<'_> {
    fn set_name(&self) -> String {
        self.set.name_any()
    }

    fn ns(&self) -> String {
        self.set.namespace().unwrap_or_default()
    }

    async fn event(&self, ty: EventType, reason: &str, msg: &str) {
        self.ctx
            .recorder
            .record(&self.set.object_ref(&()), ty, reason, msg)
            .await;
    }

    /// Upstream recordPodEvent.
    async fn pod_event(&self, verb: &str, pod: &str, err: Option<&kube::Error>) {
        let title = format!("{}{}", verb[..1].to_uppercase(), &verb[1..]);
        let set = self.set_name();
        match err {
            None => {
                let msg = format!("{verb} Pod {pod} in StatefulSet {set} successful");
                self.event(EventType::Normal, &format!("Successful{title}"), &msg)
                    .await;
            }
            Some(e) => {
                let msg = format!("{verb} Pod {pod} in StatefulSet {set} failed error: {e}");
                self.event(EventType::Warning, &format!("Failed{title}"), &msg)
                    .await;
            }
        }
    }

    /// The pod for `ordinal` as it should be created now.
    fn new_pod(&self, ordinal: i32) -> Pod {
        let current_replicas = self
            .set
            .status
            .as_ref()
            .and_then(|s| s.current_replicas)
            .unwrap_or(0);
        let (template, revision) = if uses_current_revision(self.set, ordinal, current_replicas) {
            (&self.current_template, self.current.name_any())
        } else {
            (&self.update_template, self.update.name_any())
        };
        new_pod(self.set, template, ordinal, &revision, self.set_ref.clone())
    }

    /// Creates the claims the pod needs that do not exist yet (upstream
    /// createPersistentVolumeClaims).
    async fn create_claims(&self, pod: &Pod, ordinal: i32) -> Result<(), Error> {
        let ns = self.ns();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.ctx.client.clone(), &ns);
        let pod_name = pod.name_any();
        for (_, claim) in claims(self.set, ordinal) {
            let name = claim.name_any();
            match self.ctx.claims.get(&ns, &name) {
                Some(existing) if existing.metadata.deletion_timestamp.is_some() => {
                    return Err(Error::ClaimDeleting(name));
                }
                Some(_) => {}
                None => match api.create(&PostParams::default(), &claim).await {
                    Ok(_) => {
                        let msg = format!(
                            "create Claim {name} Pod {pod_name} in StatefulSet {} success",
                            self.set_name()
                        );
                        self.event(EventType::Normal, "SuccessfulCreate", &msg)
                            .await;
                    }
                    // Created meanwhile; the cache has not seen it yet.
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => {
                        let msg = format!(
                            "create Claim {name} for Pod {pod_name} in StatefulSet {} failed error: {e}",
                            self.set_name()
                        );
                        self.event(EventType::Warning, "FailedCreate", &msg).await;
                        return Err(Error::CreateClaim(name, e.to_string()));
                    }
                },
            }
        }
        Ok(())
    }

    /// Sets the claims' owner references for the retention policy (upstream
    /// UpdatePodClaimForRetentionPolicy).
    async fn retain_claims(&self, pod: &Pod, ordinal: i32) -> Result<(), Error> {
        let ns = self.ns();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.ctx.client.clone(), &ns);
        let pod_ref = pod_util::controller_ref("v1", "Pod", &pod.metadata);
        let policy = retention_policy(self.set);
        let scaled_down = !in_range(self.set, ordinal);
        for (_, c) in claims(self.set, ordinal) {
            let Some(existing) = self.ctx.claims.get(&ns, &c.name_any()) else {
                continue;
            };
            if let Some(refs) =
                claim_owner_refs(&existing, &self.set_ref, &pod_ref, policy, scaled_down)
            {
                let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": existing.metadata.resource_version}});
                match api
                    .patch(
                        &existing.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(patch),
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    fn claims_stale(&self, pod: &Pod, ordinal: i32) -> bool {
        if !retention_policy(self.set).delete_when_scaled {
            return false;
        }
        let ns = self.ns();
        claims(self.set, ordinal).iter().any(|(_, c)| {
            self.ctx
                .claims
                .get(&ns, &c.name_any())
                .is_some_and(|existing| {
                    claim_is_stale(&existing, &pod.name_any(), pod.metadata.uid.as_deref())
                })
        })
    }

    async fn delete_pod(&self, pod: &Pod) -> Result<(), Error> {
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.ns());
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let name = pod.name_any();
        match api.delete(&name, &dp).await {
            Ok(_) => {
                self.pod_event("delete", &name, None).await;
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => {
                self.pod_event("delete", &name, Some(&e)).await;
                Err(e.into())
            }
        }
    }

    /// Upstream CreateStatefulPod: claims first, then the pod.
    async fn create_pod(&self, pod: &Pod, ordinal: i32) -> Result<(), Error> {
        self.create_claims(pod, ordinal).await?;
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.ns());
        match api.create(&PostParams::default(), pod).await {
            Ok(created) => {
                self.retain_claims(&created, ordinal).await?;
                self.pod_event("create", &pod.name_any(), None).await;
                Ok(())
            }
            // The cache is behind; the next sync sees the pod.
            Err(kube::Error::Api(e)) if e.code == 409 => Err(kube::Error::Api(e).into()),
            Err(e) => {
                self.pod_event("create", &pod.name_any(), Some(&e)).await;
                Err(e.into())
            }
        }
    }

    /// Upstream processReplica: true means stop here (monotonic mode).
    async fn process_replica(&self, pod: &Pod) -> Result<bool, Error> {
        let Some(ordinal) = ordinal(pod) else {
            return Ok(false);
        };
        if is_failed_or_succeeded(pod) {
            if !pod_util::is_terminating(pod) {
                self.delete_pod(pod).await?;
            }
            // The replacement comes once the old pod is gone.
            return Ok(true);
        }
        if !is_created(pod) {
            if self.claims_stale(pod, ordinal) {
                return Ok(true);
            }
            self.create_pod(pod, ordinal).await?;
            if self.monotonic {
                return Ok(true);
            }
            return Ok(false);
        }
        if is_pending(pod) {
            self.create_claims(pod, ordinal).await?;
        }
        if self.monotonic
            && (pod_util::is_terminating(pod)
                || !is_running_and_ready(pod)
                || !is_running_and_available(pod, min_ready_seconds(self.set), self.now))
        {
            return Ok(true);
        }
        if !identity_matches(self.set, pod) {
            let mut labels = pod.metadata.labels.clone().unwrap_or_default();
            labels.insert(POD_NAME_LABEL.into(), pod.name_any());
            labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
            let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.ns());
            let patch = json!({"metadata": {"labels": labels}});
            if let Err(e) = api
                .patch(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await
            {
                self.pod_event("update", &pod.name_any(), Some(&e)).await;
                return Err(e.into());
            }
        }
        if !storage_matches(self.set, pod) {
            self.create_claims(pod, ordinal).await?;
        }
        self.retain_claims(pod, ordinal).await?;
        Ok(false)
    }

    /// Upstream processCondemned: true means stop here (monotonic mode).
    async fn process_condemned(
        &self,
        pod: &Pod,
        first_unhealthy: Option<&str>,
    ) -> Result<bool, Error> {
        if pod_util::is_terminating(pod) {
            return Ok(self.monotonic);
        }
        let is_first = first_unhealthy == pod.metadata.name.as_deref();
        if self.monotonic
            && !is_first
            && (!is_running_and_ready(pod)
                || !is_running_and_available(pod, min_ready_seconds(self.set), self.now))
        {
            return Ok(true);
        }
        self.delete_pod(pod).await?;
        Ok(true)
    }

    /// Upstream updateStatefulSet: returns the status to write and the first error.
    async fn update_set(&self, pods: &[Pod]) -> (Counts, Result<(), Error>) {
        let min_ready = min_ready_seconds(self.set);
        let current = self.current.name_any();
        let update = self.update.name_any();
        let start = start_ordinal(self.set);
        let n = replicas(self.set);
        let mut slots: Vec<Option<Pod>> = vec![None; n as usize];
        let mut condemned: Vec<Pod> = Vec::new();
        for p in pods {
            let Some(ord) = ordinal(p) else { continue };
            if in_range(self.set, ord) {
                slots[(ord - start) as usize] = Some(p.clone());
            } else {
                condemned.push(p.clone());
            }
        }
        let replicas_now: Vec<Pod> = slots
            .into_iter()
            .enumerate()
            .map(|(i, p)| p.unwrap_or_else(|| self.new_pod(start + i as i32)))
            .collect();
        condemned.sort_by_key(|p| std::cmp::Reverse(ordinal(p)));
        let counts = |r: &[Pod], c: &[Pod]| {
            count(
                r.iter().chain(c.iter()),
                min_ready,
                &current,
                &update,
                self.now,
            )
        };
        let first_unhealthy = replicas_now
            .iter()
            .chain(condemned.iter().rev())
            .find(|p| is_unavailable(p, min_ready, self.now))
            .and_then(|p| p.metadata.name.clone());
        if self.set.metadata.deletion_timestamp.is_some() {
            return (
                count(pods.iter(), min_ready, &current, &update, self.now),
                Ok(()),
            );
        }
        match run_for_all(replicas_now.len(), self.monotonic, |i| {
            self.process_replica(&replicas_now[i])
        })
        .await
        {
            Ok(false) => {}
            Ok(true) => return (counts(&replicas_now, &condemned), Ok(())),
            Err(e) => return (counts(&replicas_now, &condemned), Err(e)),
        }
        let condemned_ref = &condemned;
        let fix_claims = run_for_all(condemned.len(), self.monotonic, |i| async move {
            let p = &condemned_ref[i];
            if let Some(ord) = ordinal(p) {
                self.retain_claims(p, ord).await?;
            }
            Ok(false)
        })
        .await;
        if let Err(e) = fix_claims {
            return (counts(&replicas_now, &condemned), Err(e));
        }
        let first = first_unhealthy.as_deref();
        match run_for_all(condemned.len(), self.monotonic, |i| {
            self.process_condemned(&condemned[i], first)
        })
        .await
        {
            Ok(false) => {}
            Ok(true) => return (counts(&replicas_now, &condemned), Ok(())),
            Err(e) => return (counts(&replicas_now, &condemned), Err(e)),
        }
        let mut status = counts(&replicas_now, &condemned);
        if is_on_delete(self.set) {
            return (status, Ok(()));
        }
        let victims = update_victims(
            &replicas_now,
            &update,
            partition(self.set),
            max_unavailable(self.set),
            min_ready,
            self.now,
        );
        for i in victims {
            let pod = &replicas_now[i];
            if !is_created(pod) {
                continue;
            }
            tracing::debug!(pod = %pod.name_any(), "terminating pod for update");
            if let Err(e) = self.delete_pod(pod).await {
                return (status, Err(e));
            }
            status.current -= 1;
        }
        (status, Ok(()))
    }
}

/// The status a sync reports.
struct Reported {
    counts: Counts,
    current_revision: String,
    update_revision: String,
    collision_count: i32,
}

/// Writes the status when it changed, completing a finished rolling update (upstream
/// updateStatefulSetStatus); returns the available replicas.
async fn write_status(ctx: &Ctx, set: &StatefulSet, mut r: Reported) -> Result<i32, Error> {
    let c = &mut r.counts;
    if !is_on_delete(set) && c.updated == c.replicas && c.ready == c.replicas {
        c.current = c.updated;
        r.current_revision = r.update_revision.clone();
    }
    let cur = set.status.clone().unwrap_or_default();
    let changed = set.metadata.generation > cur.observed_generation
        || cur.replicas != c.replicas
        || cur.current_replicas.unwrap_or(0) != c.current
        || cur.ready_replicas.unwrap_or(0) != c.ready
        || cur.updated_replicas.unwrap_or(0) != c.updated
        || cur.available_replicas.unwrap_or(0) != c.available
        || cur.current_revision.as_deref() != Some(r.current_revision.as_str())
        || cur.update_revision.as_deref() != Some(r.update_revision.as_str())
        || cur.collision_count.unwrap_or(0) != r.collision_count;
    if changed {
        let status = json!({
            "observedGeneration": set.metadata.generation,
            "replicas": c.replicas,
            "readyReplicas": c.ready,
            "currentReplicas": c.current,
            "updatedReplicas": c.updated,
            "availableReplicas": c.available,
            "currentRevision": r.current_revision,
            "updateRevision": r.update_revision,
            "collisionCount": r.collision_count,
        });
        let api: Api<StatefulSet> =
            Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
        match api
            .patch_status(
                &set.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(c.available)
}

/// Deletes the oldest revisions beyond revisionHistoryLimit that neither the status nor any
/// pod uses (upstream truncateHistory).
async fn truncate_history(
    set: &StatefulSet,
    pods: &[Pod],
    revisions: &[ControllerRevision],
    live: [&str; 2],
    api: &Api<ControllerRevision>,
) -> Result<(), Error> {
    let mut keep: BTreeSet<&str> = live.into_iter().collect();
    keep.extend(pods.iter().map(pod_revision));
    let old: Vec<&ControllerRevision> = revisions
        .iter()
        .filter(|r| !keep.contains(r.metadata.name.as_deref().unwrap_or("")))
        .collect();
    let limit = set
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
        .max(0) as usize;
    if old.len() <= limit {
        return Ok(());
    }
    for r in &old[..old.len() - limit] {
        match api.delete(&r.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
