//! Resource quota controller: keeps each ResourceQuota's status (`hard` from its spec, `used`
//! counted over its namespace), as upstream's does. The API server's admission charges new
//! objects to `used` at once; this controller recounts when the spec changes, when objects
//! are deleted or finish (replenishment), and periodically, which also catches creates that
//! were charged and then failed.

use crate::resources::{self, Resource};
use crate::runtime::{self, Change, Informer, Informers, Key, Queue};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, ResourceQuota, Service};
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use skiff_api::quantity::Quantity;
use skiff_api::quota::{self, ResourceList};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const COMPONENT: &str = "resourcequota-controller";

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How often every quota is recounted (upstream `--resource-quota-sync-period`, 5m).
    pub resync: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            resync: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("api request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("cannot encode: {0}")]
    Json(#[from] serde_json::Error),
}

struct Ctx {
    client: kube::Client,
    quotas: Arc<Informer<ResourceQuota>>,
    pods: Arc<Informer<Pod>>,
    services: Arc<Informer<Service>>,
    claims: Arc<Informer<PersistentVolumeClaim>>,
    /// Served resources, for object counts of resources without an informer here.
    served: Mutex<Vec<Resource>>,
    resync: Duration,
}

pub async fn run(informers: Arc<Informers>, settings: Settings, cancel: CancellationToken) {
    let ctx = Arc::new(Ctx {
        client: informers.client().clone(),
        quotas: informers.get::<ResourceQuota>(),
        pods: informers.get::<Pod>(),
        services: informers.get::<Service>(),
        claims: informers.get::<PersistentVolumeClaim>(),
        served: Mutex::new(Vec::new()),
        resync: settings.resync,
    });
    let queue = Queue::new();
    let quota_changes = ctx.quotas.subscribe();
    let pod_changes = ctx.pods.subscribe();
    let service_changes = ctx.services.subscribe();
    let claim_changes = ctx.claims.subscribe();
    let mut deletions = informers.deletions().subscribe();
    ctx.quotas.synced().await;
    ctx.pods.synced().await;
    ctx.services.synced().await;
    ctx.claims.synced().await;
    for q in ctx.quotas.list() {
        queue.add(Key::of(&*q));
    }
    let quotas = runtime::enqueue_changes(
        quota_changes,
        queue.clone(),
        cancel.clone(),
        |c: &Change<ResourceQuota>| match c {
            Change::Applied { new, .. } if needs_sync(new) => vec![Key::of(&**new)],
            _ => vec![],
        },
    );
    let pods = replenish(
        ctx.clone(),
        pod_changes,
        queue.clone(),
        cancel.clone(),
        |old: &Pod, new: &Pod| {
            // A pod that finishes or starts terminating frees compute quota.
            let done = |p: &Pod| {
                matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
            };
            done(new) != done(old)
                || new.metadata.deletion_timestamp != old.metadata.deletion_timestamp
        },
    );
    let services = replenish(
        ctx.clone(),
        service_changes,
        queue.clone(),
        cancel.clone(),
        |old: &Service, new: &Service| {
            let kind = |s: &Service| s.spec.as_ref().and_then(|s| s.type_.clone());
            kind(old) != kind(new)
        },
    );
    let claims = replenish(
        ctx.clone(),
        claim_changes,
        queue.clone(),
        cancel.clone(),
        |old: &PersistentVolumeClaim, new: &PersistentVolumeClaim| {
            let size = |c: &PersistentVolumeClaim| {
                c.spec
                    .as_ref()
                    .and_then(|s| s.resources.as_ref())
                    .and_then(|r| r.requests.clone())
            };
            size(old) != size(new)
        },
    );
    // Deleting any other object a quota counts frees it: recount that namespace's quotas
    // that name its resource (pods, services and claims are followed above).
    let deleted = {
        let (ctx, queue, cancel) = (ctx.clone(), queue.clone(), cancel.clone());
        async move {
            loop {
                let d = tokio::select! {
                    _ = cancel.cancelled() => return,
                    d = deletions.recv() => d,
                };
                let d = match d {
                    Ok(d) => d,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                };
                let followed = d.group.is_empty()
                    && matches!(
                        d.plural.as_str(),
                        "pods" | "services" | "persistentvolumeclaims"
                    );
                if followed || d.namespace.is_empty() {
                    continue;
                }
                for q in ctx.quotas.list_namespace(&d.namespace) {
                    let hard = q.spec.as_ref().and_then(|s| s.hard.as_ref());
                    if hard.is_some_and(|h| {
                        !quota::matching_resources(&d.group, &d.plural, h.keys()).is_empty()
                    }) {
                        queue.add(Key::of(&*q));
                    }
                }
            }
        }
    };
    let ctx2 = ctx.clone();
    let workers = runtime::run_workers(COMPONENT, queue, 2, cancel, move |key| {
        let ctx = ctx2.clone();
        async move { sync(&ctx, &key).await }
    });
    tokio::join!(quotas, pods, services, claims, deleted, workers);
}

/// A quota whose status does not reflect its spec yet.
fn needs_sync(q: &ResourceQuota) -> bool {
    let spec = q
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    let status = q.status.as_ref();
    status.and_then(|s| s.hard.clone()).unwrap_or_default() != spec
        || status.and_then(|s| s.used.as_ref()).is_none()
}

/// Queues the quotas of the namespace of an object that was deleted, or changed in a way
/// `frees` says may lower its usage. New objects were charged by admission already.
async fn replenish<K>(
    ctx: Arc<Ctx>,
    changes: tokio::sync::mpsc::UnboundedReceiver<Arc<Change<K>>>,
    queue: Arc<Queue<Key>>,
    cancel: CancellationToken,
    frees: fn(&K, &K) -> bool,
) where
    K: kube::Resource,
{
    runtime::enqueue_changes(changes, queue, cancel, move |c: &Change<K>| {
        let relevant = match c {
            Change::Deleted(_) => true,
            Change::Applied {
                old: Some(old),
                new,
            } => frees(old, new),
            Change::Applied { old: None, .. } => false,
        };
        if !relevant {
            return Vec::new();
        }
        let ns = c.object().meta().namespace.as_deref().unwrap_or("");
        ctx.quotas
            .list_namespace(ns)
            .iter()
            .map(|q| Key::of(&**q))
            .collect()
    })
    .await
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The quota's `used`, counted over its namespace for every name in `hard`.
async fn count(ctx: &Ctx, q: &Value, ns: &str, hard: &ResourceList) -> Result<ResourceList, Error> {
    let now = now_secs();
    let mut used = ResourceList::new();
    let names = |plural: &str| quota::matching_resources("", plural, hard.keys());
    if !names("pods").is_empty() {
        let pods = values(ctx.pods.list_namespace(ns))?;
        used.extend(quota::total(q, "", "pods", &pods, hard, now));
    }
    if !names("services").is_empty() {
        let services = values(ctx.services.list_namespace(ns))?;
        used.extend(quota::total(q, "", "services", &services, hard, now));
    }
    if !names("persistentvolumeclaims").is_empty() {
        let claims = values(ctx.claims.list_namespace(ns))?;
        used.extend(quota::total(
            q,
            "",
            "persistentvolumeclaims",
            &claims,
            hard,
            now,
        ));
    }
    let rest: Vec<String> = hard
        .keys()
        .filter(|n| !used.contains_key(*n))
        .cloned()
        .collect();
    for name in rest {
        let Some((group, plural)) = counted_resource(&name) else {
            continue;
        };
        // Only pods have scopes: a scoped quota counts no other object.
        if !quota::in_scopes(q, &group, &plural, &json!({})) {
            used.insert(name, Quantity::ZERO);
            continue;
        }
        if let Some(n) = count_objects(ctx, &group, &plural, ns).await? {
            used.insert(name, Quantity::count(n));
        }
    }
    Ok(used)
}

fn values<K: serde::Serialize>(objs: Vec<Arc<K>>) -> Result<Vec<Value>, serde_json::Error> {
    objs.iter().map(|o| serde_json::to_value(&**o)).collect()
}

/// The resource an object-count name counts: `count/deployments.apps`, or a legacy name.
fn counted_resource(name: &str) -> Option<(String, String)> {
    if let Some(res) = name.strip_prefix("count/") {
        return Some(match res.split_once('.') {
            Some((plural, group)) => (group.to_string(), plural.to_string()),
            None => (String::new(), res.to_string()),
        });
    }
    matches!(
        name,
        "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas"
    )
    .then(|| (String::new(), name.to_string()))
}

/// How many objects of `group`/`plural` the namespace holds (None: no such resource).
async fn count_objects(
    ctx: &Ctx,
    group: &str,
    plural: &str,
    ns: &str,
) -> Result<Option<i64>, Error> {
    let find = |served: &[Resource]| {
        served
            .iter()
            .find(|r| r.ar.group == group && r.ar.plural == plural && r.namespaced)
            .cloned()
    };
    let known = find(&ctx.served.lock().unwrap_or_else(PoisonError::into_inner));
    let resource = match known {
        Some(r) => r,
        None => {
            let served = resources::discover(&ctx.client).await?;
            let found = find(&served);
            *ctx.served.lock().unwrap_or_else(PoisonError::into_inner) = served;
            match found {
                Some(r) => r,
                None => return Ok(None),
            }
        }
    };
    let list = resource
        .api(&ctx.client, Some(ns))
        .list_metadata(&ListParams::default().limit(1))
        .await?;
    let listed = i64::try_from(list.items.len()).unwrap_or(i64::MAX);
    Ok(Some(
        listed + list.metadata.remaining_item_count.unwrap_or(0),
    ))
}

async fn sync(ctx: &Ctx, key: &Key) -> Result<Option<Duration>, Error> {
    let Some(cached) = ctx.quotas.get(&key.namespace, &key.name) else {
        return Ok(None);
    };
    let q = serde_json::to_value(&*cached)?;
    let hard = quota::parse_list(q.pointer("/spec/hard"));
    let mut used = quota::parse_list(q.pointer("/status/used"));
    used.extend(count(ctx, &q, &key.namespace, &hard).await?);
    let used = quota::mask(&used, hard.keys());
    let status = json!({"hard": quota::list_to_value(&hard), "used": quota::list_to_value(&used)});
    let current = json!({
        "hard": q.pointer("/status/hard").cloned().unwrap_or(json!({})),
        "used": q.pointer("/status/used").cloned().unwrap_or(json!({})),
    });
    if status != current {
        let mut updated = q;
        updated["status"] = status;
        let updated: ResourceQuota = serde_json::from_value(updated)?;
        let api: Api<ResourceQuota> = Api::namespaced(ctx.client.clone(), &key.namespace);
        match api
            .replace_status(&key.name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Some(ctx.resync))
}
