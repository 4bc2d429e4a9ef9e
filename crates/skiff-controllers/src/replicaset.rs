//! ReplicaSet and ReplicationController controller: creates and deletes pods to match
//! `replicas`, adopts and releases pods by selector, and reports status.

use crate::events::{EventType, Recorder};
use crate::expectations::Expectations;
use crate::pod_util;
use crate::runtime::selector::{Selector, SelectorError};
use crate::runtime::{self, Change, Informer, Informers, Key, Queue};
use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Upstream's burstReplicas: at most this many creations or deletions per sync.
const BURST: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("api request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Selector(#[from] SelectorError),
    #[error("{0} of {1} pod creations failed: {2}")]
    Create(usize, usize, String),
}

/// What the controller needs of a ReplicaSet or a ReplicationController.
pub trait ReplicaOwner:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    const KIND: &'static str;
    const API_VERSION: &'static str;
    const COMPONENT: &'static str;
    fn selector(&self) -> Result<Selector, SelectorError>;
    fn template(&self) -> Option<&PodTemplateSpec>;
    fn replicas(&self) -> i32;
    fn min_ready_seconds(&self) -> i32;
    /// The status fields this controller owns, as they are now.
    fn status_value(&self) -> Value;
}

impl ReplicaOwner for ReplicaSet {
    const KIND: &'static str = "ReplicaSet";
    const API_VERSION: &'static str = "apps/v1";
    const COMPONENT: &'static str = "replicaset-controller";
    fn selector(&self) -> Result<Selector, SelectorError> {
        Selector::from_label_selector(self.spec.as_ref().map(|s| &s.selector))
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn status_value(&self) -> Value {
        serde_json::to_value(&self.status).unwrap_or(Value::Null)
    }
}

impl ReplicaOwner for ReplicationController {
    const KIND: &'static str = "ReplicationController";
    const API_VERSION: &'static str = "v1";
    const COMPONENT: &'static str = "replication-controller";
    fn selector(&self) -> Result<Selector, SelectorError> {
        Ok(Selector::from_map(
            self.spec.as_ref().and_then(|s| s.selector.as_ref()),
        ))
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn status_value(&self) -> Value {
        serde_json::to_value(&self.status).unwrap_or(Value::Null)
    }
}

pub struct Ctx<K: ReplicaOwner> {
    pub client: kube::Client,
    pub owners: Arc<Informer<K>>,
    pub pods: Arc<Informer<Pod>>,
    pub expectations: Expectations,
    pub recorder: Recorder,
}

/// The keys of the owners that should look at a pod change: its controller (before and
/// after), or, for an orphan, every owner in its namespace whose selector matches it.
fn keys_for_pod<K: ReplicaOwner>(ctx: &Ctx<K>, change: &Change<Pod>) -> Vec<Key> {
    let mut keys = Vec::new();
    let pod = change.object();
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    match change {
        Change::Applied { old, new } => {
            let was_deleting = old.as_ref().is_some_and(|o| pod_util::is_terminating(o));
            if let Some(k) = runtime::controller_of(&**new, K::KIND) {
                if old.is_none() {
                    ctx.expectations.creation_observed(&k);
                } else if !was_deleting && pod_util::is_terminating(new) {
                    ctx.expectations.deletion_observed(&k);
                }
                keys.push(k);
            }
            if let Some(old) = old
                && let Some(k) = runtime::controller_of(&**old, K::KIND)
                && !keys.contains(&k)
            {
                keys.push(k);
            }
        }
        Change::Deleted(last) => {
            if let Some(k) = runtime::controller_of(&**last, K::KIND) {
                if !pod_util::is_terminating(last) {
                    ctx.expectations.deletion_observed(&k);
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
        for owner in ctx.owners.list_namespace(ns) {
            if owner
                .selector()
                .is_ok_and(|s| s.matches(pod.metadata.labels.as_ref()))
            {
                keys.push(Key::of(&*owner));
            }
        }
    }
    keys
}

/// Runs the controller for `K` until `cancel` fires.
pub async fn run<K: ReplicaOwner>(
    informers: Arc<Informers>,
    workers: usize,
    cancel: CancellationToken,
) {
    let ctx = Arc::new(Ctx::<K> {
        client: informers.client().clone(),
        owners: informers.get::<K>(),
        pods: informers.get::<Pod>(),
        expectations: Expectations::default(),
        recorder: Recorder::new(informers.client().clone(), K::COMPONENT),
    });
    let queue = Queue::new();
    let owner_changes = ctx.owners.subscribe();
    let pod_changes = ctx.pods.subscribe();
    ctx.owners.synced().await;
    ctx.pods.synced().await;
    for o in ctx.owners.list() {
        queue.add(Key::of(&*o));
    }
    let c1 = cancel.clone();
    let q1 = queue.clone();
    let owners_fed = runtime::enqueue_changes(owner_changes, q1, c1, |c: &Change<K>| {
        [Key::of(&**c.object())]
    });
    let ctx2 = ctx.clone();
    let pods_fed = runtime::enqueue_changes(pod_changes, queue.clone(), cancel.clone(), move |c| {
        keys_for_pod(&ctx2, c)
    });
    let ctx3 = ctx.clone();
    let workers = runtime::run_workers(K::COMPONENT, queue, workers, cancel, move |key| {
        let ctx = ctx3.clone();
        async move { sync(&ctx, &key).await }
    });
    tokio::join!(owners_fed, pods_fed, workers);
}

/// The status fields upstream's calculateStatus fills.
#[derive(Debug, Clone, PartialEq)]
pub struct Counts {
    pub replicas: i32,
    pub fully_labeled: i32,
    pub ready: i32,
    pub available: i32,
}

/// Counts the active pods of an owner (pure).
pub fn count(
    pods: &[&Pod],
    template_labels: Option<&BTreeMap<String, String>>,
    min_ready: i32,
    now: Timestamp,
) -> Counts {
    let fully = |p: &Pod| {
        template_labels.is_none_or(|want| {
            let have = p.metadata.labels.as_ref();
            want.iter()
                .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
        })
    };
    Counts {
        replicas: pods.len() as i32,
        fully_labeled: pods.iter().filter(|p| fully(p)).count() as i32,
        ready: pods.iter().filter(|p| pod_util::is_ready(p)).count() as i32,
        available: pods
            .iter()
            .filter(|p| pod_util::is_available(p, min_ready, now))
            .count() as i32,
    }
}

async fn sync<K: ReplicaOwner>(ctx: &Ctx<K>, key: &Key) -> Result<Option<Duration>, Error> {
    let Some(owner) = ctx.owners.get(&key.namespace, &key.name) else {
        ctx.expectations.forget(key);
        return Ok(None);
    };
    let selector = match owner.selector() {
        Ok(s) => s,
        Err(e) => {
            ctx.recorder
                .record(
                    &owner.object_ref(&()),
                    EventType::Warning,
                    "SelectorParsingFailed",
                    &e.to_string(),
                )
                .await;
            return Ok(None);
        }
    };
    let deleting = owner.meta().deletion_timestamp.is_some();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let owner_ref = pod_util::controller_ref(K::API_VERSION, K::KIND, owner.meta());
    let owned = crate::claim::claim(
        &pods_api,
        ctx.pods.list_claimable(&key.namespace, &owner_ref.uid),
        &selector,
        &owner_ref,
        deleting,
        |_| true,
    )
    .await?;
    let active: Vec<&Pod> = owned
        .iter()
        .map(|p| &**p)
        .filter(|p| pod_util::is_active(p))
        .collect();
    let mut failure = None;
    if !deleting
        && ctx.expectations.satisfied(key)
        && let Err(e) = manage_replicas(ctx, key, &owner, &active).await
    {
        failure = Some(e);
    }
    let now = Timestamp::now();
    let min_ready = owner.min_ready_seconds();
    let template_labels = owner
        .template()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    let counts = count(&active, template_labels, min_ready, now);
    update_status(ctx, key, &owner, &counts, failure.as_ref()).await?;
    if let Some(e) = failure {
        return Err(e);
    }
    // Look again when a ready pod becomes available.
    if min_ready > 0 && counts.ready != counts.available {
        let next = active
            .iter()
            .filter_map(|p| pod_util::until_available(p, min_ready, now))
            .min()
            .unwrap_or(Duration::from_secs(1));
        return Ok(Some(next + Duration::from_millis(50)));
    }
    Ok(None)
}

async fn manage_replicas<K: ReplicaOwner>(
    ctx: &Ctx<K>,
    key: &Key,
    owner: &K,
    active: &[&Pod],
) -> Result<(), Error> {
    let want = owner.replicas().max(0) as usize;
    let have = active.len();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let reference = owner.object_ref(&());
    if have < want {
        let Some(template) = owner.template() else {
            return Ok(());
        };
        let n = (want - have).min(BURST);
        ctx.expectations.expect_creations(key, n);
        let cref = pod_util::controller_ref(K::API_VERSION, K::KIND, owner.meta());
        let prefix = pod_util::pod_prefix(&key.name);
        // Slow start: batches of 1, 2, 4, ... so that a failing template costs one error.
        let mut created = 0usize;
        let mut batch = 1usize;
        let mut errors: Vec<String> = Vec::new();
        while created < n {
            let size = batch.min(n - created);
            let pod = pod_util::pod_from_template(template, &key.namespace, &prefix, cref.clone());
            let pp = PostParams::default();
            let results = join_all((0..size).map(|_| pods_api.create(&pp, &pod))).await;
            for r in results {
                match r {
                    Ok(p) => {
                        ctx.recorder
                            .record(
                                &reference,
                                EventType::Normal,
                                "SuccessfulCreate",
                                &format!("Created pod: {}", p.metadata.name.unwrap_or_default()),
                            )
                            .await;
                    }
                    Err(e) => {
                        ctx.expectations.creation_observed(key);
                        errors.push(error_message(&e));
                    }
                }
            }
            created += size;
            if !errors.is_empty() {
                // The rest of this sync's creations will not happen: stop expecting them.
                for _ in created..n {
                    ctx.expectations.creation_observed(key);
                }
                let msg = errors[0].clone();
                ctx.recorder
                    .record(
                        &reference,
                        EventType::Warning,
                        "FailedCreate",
                        &format!("Error creating: {msg}"),
                    )
                    .await;
                return Err(Error::Create(errors.len(), n, msg));
            }
            batch *= 2;
        }
    } else if have > want {
        let n = (have - want).min(BURST);
        let victims = pod_util::pods_to_delete(active, active, n);
        ctx.expectations.expect_deletions(key, victims.len());
        let results = join_all(victims.iter().map(|p| {
            let name = p.metadata.name.clone().unwrap_or_default();
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: p.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            let api = pods_api.clone();
            async move { (name.clone(), api.delete(&name, &dp).await) }
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
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    ctx.expectations.deletion_observed(key)
                }
                Err(e) => {
                    ctx.expectations.deletion_observed(key);
                    ctx.recorder
                        .record(
                            &reference,
                            EventType::Warning,
                            "FailedDelete",
                            &format!("Error deleting: {}", error_message(&e)),
                        )
                        .await;
                    return Err(e.into());
                }
            }
        }
    }
    Ok(())
}

fn error_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

async fn update_status<K: ReplicaOwner>(
    ctx: &Ctx<K>,
    key: &Key,
    owner: &K,
    counts: &Counts,
    failure: Option<&Error>,
) -> Result<(), Error> {
    let current = owner.status_value();
    let mut status = json!({
        "replicas": counts.replicas,
        "fullyLabeledReplicas": counts.fully_labeled,
        "readyReplicas": counts.ready,
        "availableReplicas": counts.available,
        "observedGeneration": owner.meta().generation.unwrap_or(0),
    });
    let mut conditions: Vec<Value> = current
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let had_failure = conditions.iter().any(|c| c["type"] == "ReplicaFailure");
    match failure {
        Some(Error::Create(_, _, msg)) if !had_failure => conditions.push(json!({
            "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
            "message": msg, "lastTransitionTime": Timestamp::now().to_string(),
        })),
        None if had_failure => conditions.retain(|c| c["type"] != "ReplicaFailure"),
        _ => {}
    }
    if !conditions.is_empty() || had_failure {
        status["conditions"] = json!(conditions);
    }
    let field = |s: &Value, f: &str| s.get(f).and_then(Value::as_i64).unwrap_or(0);
    let same = [
        "replicas",
        "fullyLabeledReplicas",
        "readyReplicas",
        "availableReplicas",
        "observedGeneration",
    ]
    .iter()
    .all(|f| field(&current, f) == field(&status, f))
        && current.get("conditions").cloned().unwrap_or(json!([]))
            == status.get("conditions").cloned().unwrap_or(json!([]));
    if same {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &key.namespace);
    match api
        .patch_status(
            &key.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn pod(labels: &[(&str, &str)], ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    last_transition_time: Some(Time(Timestamp::UNIX_EPOCH)),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn counts_follow_upstream_definitions() {
        let a = pod(&[("app", "web"), ("v", "1")], true);
        let b = pod(&[("app", "web")], true);
        let c = pod(&[("app", "web"), ("v", "1")], false);
        let want: BTreeMap<String, String> = [
            ("app".to_string(), "web".to_string()),
            ("v".to_string(), "1".to_string()),
        ]
        .into();
        let c1 = count(&[&a, &b, &c], Some(&want), 0, Timestamp::now());
        assert_eq!(
            c1,
            Counts {
                replicas: 3,
                fully_labeled: 2,
                ready: 2,
                available: 2
            }
        );
        let c2 = count(&[&a, &b, &c], Some(&want), 10, Timestamp::UNIX_EPOCH);
        assert_eq!(c2.available, 0, "ready for 0 s of the 10 required");
    }
}
