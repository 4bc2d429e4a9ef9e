//! Namespace controller: empties a terminating namespace, then releases its `kubernetes` finalizer.

use crate::events::{EventType, Recorder};
use crate::resources;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The finalizer the API server puts on every namespace and this controller releases.
pub const FINALIZER: &str = "kubernetes";

pub use crate::runtime::Error;

pub struct Ctx {
    pub client: kube::Client,
    pub recorder: Recorder,
}

/// What is left in a namespace after a deletion pass.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Remaining {
    /// `plural.group` → objects left.
    pub resources: BTreeMap<String, usize>,
    /// finalizer → objects holding it.
    pub finalizers: BTreeMap<String, usize>,
    /// Deletions that failed, as messages.
    pub failures: Vec<String>,
}

impl Remaining {
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty() && self.failures.is_empty()
    }
}

/// The five deletion conditions upstream's namespace controller keeps on a terminating namespace.
pub fn conditions(rem: &Remaining) -> Vec<(&'static str, bool, &'static str, String)> {
    let joined = |m: &BTreeMap<String, usize>| {
        m.iter()
            .map(|(k, n)| format!("{k} has {n} resource instances"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        (
            "NamespaceDeletionDiscoveryFailure",
            false,
            "ResourcesDiscovered",
            "All resources successfully discovered".into(),
        ),
        (
            "NamespaceDeletionGroupVersionParsingFailure",
            false,
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into(),
        ),
        if rem.failures.is_empty() {
            (
                "NamespaceDeletionContentFailure",
                false,
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization".into(),
            )
        } else {
            (
                "NamespaceDeletionContentFailure",
                true,
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    rem.failures.len(),
                    rem.failures.join(", ")
                ),
            )
        },
        if rem.resources.is_empty() {
            (
                "NamespaceContentRemaining",
                false,
                "ContentRemoved",
                "All content successfully removed".into(),
            )
        } else {
            (
                "NamespaceContentRemaining",
                true,
                "SomeResourcesRemain",
                format!("Some resources are remaining: {}", joined(&rem.resources)),
            )
        },
        if rem.finalizers.is_empty() {
            (
                "NamespaceFinalizersRemaining",
                false,
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished".into(),
            )
        } else {
            (
                "NamespaceFinalizersRemaining",
                true,
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    joined(&rem.finalizers)
                ),
            )
        },
    ]
}

/// Runs the controller until `cancel` fires.
pub async fn run(client: kube::Client, cancel: CancellationToken) {
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "namespace-controller"),
        client: client.clone(),
    });
    let api: Api<Namespace> = Api::all(client);
    Controller::new(api, watcher::Config::default())
        .graceful_shutdown_on(cancel.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "namespace reconcile failed");
            }
        })
        .await;
}

pub fn error_policy(_ns: Arc<Namespace>, _e: &Error, _ctx: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_secs(2))
}

pub async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let name = ns.name_any();
    let span = tracing::debug_span!("namespace_sync", namespace = %name);
    let _enter = span.enter();
    if ns.meta().deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let finalizers = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    drop(_enter);
    let rem = match resources::discover(&ctx.client).await {
        Ok(found) => delete_content(&ctx.client, &name, &found).await,
        Err(e) => Remaining {
            failures: vec![format!("discovery: {e}")],
            ..Remaining::default()
        },
    };
    update_conditions(&ctx, &ns, &rem).await?;
    if !rem.is_empty() {
        tracing::debug!(namespace = %name, ?rem, "namespace still has content");
        // Pods in graceful deletion and objects with finalizers take a while; look again soon.
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    let mut done = (*ns).clone();
    if let Some(spec) = done.spec.as_mut() {
        spec.finalizers = Some(finalizers.into_iter().filter(|f| f != FINALIZER).collect());
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    match api
        .replace_subresource("finalize", &name, &PostParams::default(), &done)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Action::await_change()),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(namespace = %name, "namespace emptied and finalized");
    Ok(Action::await_change())
}

/// Deletes every object in the namespace and reports what is still there. Pods go first,
/// and nothing else goes while any pod remains (upstream's OrderedNamespaceDeletion), so
/// what a terminating pod still reads — its configmaps, secrets, service account — stays.
async fn delete_content(
    client: &kube::Client,
    ns: &str,
    found: &[resources::Resource],
) -> Remaining {
    let mut rem = Remaining::default();
    let is_pods = |r: &&resources::Resource| r.ar.group.is_empty() && r.ar.plural == "pods";
    let ordered = found
        .iter()
        .filter(|r| r.namespaced && r.delete)
        .filter(is_pods)
        .chain(
            found
                .iter()
                .filter(|r| r.namespaced && r.delete)
                .filter(|r| !is_pods(r)),
        );
    for res in ordered {
        if !is_pods(&res) && rem.resources.contains_key("pods") {
            rem.failures.push(format!(
                "unexpected items still remain in namespace: {ns} for gvr: /v1, Resource=pods"
            ));
            break;
        }
        let api = res.api(client, Some(ns));
        let id = res.id();
        let listed = match api.list_metadata(&ListParams::default()).await {
            Ok(l) => l,
            Err(e) => {
                rem.failures.push(format!("{id}: {e}"));
                continue;
            }
        };
        if listed.items.is_empty() {
            continue;
        }
        let dp = DeleteParams::background();
        let deleted = if res.deletecollection {
            api.delete_collection(&dp, &ListParams::default())
                .await
                .map(|_| ())
        } else {
            let mut r = Ok(());
            for o in &listed.items {
                match api.delete(&o.name_any(), &dp).await {
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => r = Err(e),
                    Ok(_) => {}
                }
            }
            r
        };
        if let Err(e) = deleted {
            rem.failures.push(format!("{id}: {e}"));
        }
        // What survived the deletion: graceful pods and objects held by finalizers.
        match api.list_metadata(&ListParams::default()).await {
            Ok(left) if !left.items.is_empty() => {
                rem.resources.insert(id, left.items.len());
                for o in &left.items {
                    for f in o.metadata.finalizers.iter().flatten() {
                        *rem.finalizers.entry(f.clone()).or_default() += 1;
                    }
                }
            }
            Ok(_) => {}
            Err(e) => rem.failures.push(format!("{id}: {e}")),
        }
    }
    rem
}

/// Sets the deletion conditions when they changed, keeping transition times of unchanged ones.
async fn update_conditions(ctx: &Ctx, ns: &Namespace, rem: &Remaining) -> Result<(), Error> {
    let old = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut changed = false;
    let mut new: Vec<NamespaceCondition> = old
        .iter()
        .filter(|c| !conditions(rem).iter().any(|(t, ..)| *t == c.type_))
        .cloned()
        .collect();
    for (type_, status, reason, message) in conditions(rem) {
        let status = if status { "True" } else { "False" };
        let prev = old.iter().find(|c| c.type_ == type_);
        let same = prev.is_some_and(|c| {
            c.status == status
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message.as_str())
        });
        changed |= !same;
        let transition = prev
            .filter(|c| c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        new.push(NamespaceCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: Some(transition),
        });
    }
    if !changed {
        return Ok(());
    }
    let name = ns.name_any();
    if !rem.failures.is_empty() {
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Namespace".into()),
            name: Some(name.clone()),
            uid: ns.meta().uid.clone(),
            ..ObjectReference::default()
        };
        ctx.recorder
            .record(
                &reference,
                EventType::Warning,
                "NamespaceDeletionContentFailure",
                &rem.failures.join(", "),
            )
            .await;
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let patch = json!({"status": {"phase": "Terminating", "conditions": new}});
    match api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_say_what_remains() {
        let empty = conditions(&Remaining::default());
        assert_eq!(empty.len(), 5);
        assert!(empty.iter().all(|(_, status, ..)| !status));
        let mut rem = Remaining::default();
        rem.resources.insert("configmaps".into(), 2);
        rem.finalizers.insert("example.com/hold".into(), 1);
        let c = conditions(&rem);
        let remaining = c
            .iter()
            .find(|(t, ..)| *t == "NamespaceContentRemaining")
            .map(|(_, s, r, m)| (*s, *r, m.clone()));
        assert_eq!(
            remaining,
            Some((
                true,
                "SomeResourcesRemain",
                "Some resources are remaining: configmaps has 2 resource instances".to_string()
            ))
        );
        let fin = c
            .iter()
            .find(|(t, ..)| *t == "NamespaceFinalizersRemaining")
            .map(|(_, s, _, m)| (*s, m.clone()));
        assert_eq!(
            fin,
            Some((
                true,
                "Some content in the namespace has finalizers remaining: example.com/hold has 1 resource instances"
                    .to_string()
            ))
        );
    }
}
