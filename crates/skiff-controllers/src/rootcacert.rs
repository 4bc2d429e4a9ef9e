//! Root CA certificate publisher: every active namespace has a `kube-root-ca.crt`
//! ConfigMap holding the cluster CA, so that pods can verify the API server, as upstream's
//! controller keeps it (recreated when deleted, restored when changed).

use crate::runtime::{self, Change, Informer, Informers, Key, Queue};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const NAME: &str = "kube-root-ca.crt";
const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

pub use crate::runtime::Error;

struct Ctx {
    client: kube::Client,
    namespaces: Arc<Informer<Namespace>>,
    published: Arc<Informer<ConfigMap>>,
    ca: String,
}

/// Runs the publisher of `ca` (PEM) until `cancel` fires.
pub async fn run(informers: Arc<Informers>, ca: String, cancel: CancellationToken) {
    let ctx = Arc::new(Ctx {
        client: informers.client().clone(),
        namespaces: informers.get::<Namespace>(),
        published: informers.get_selected::<ConfigMap>(&format!("metadata.name={NAME}")),
        ca,
    });
    let queue = Queue::new();
    let ns_changes = ctx.namespaces.subscribe();
    let cm_changes = ctx.published.subscribe();
    ctx.namespaces.synced().await;
    ctx.published.synced().await;
    for ns in ctx.namespaces.list() {
        queue.add(Key::new("", ns.metadata.name.as_deref().unwrap_or("")));
    }
    let nss = runtime::enqueue_changes(
        ns_changes,
        queue.clone(),
        cancel.clone(),
        runtime::applied_namespace,
    );
    let cms = runtime::enqueue_changes(
        cm_changes,
        queue.clone(),
        cancel.clone(),
        |c: &Change<ConfigMap>| {
            let cm = c.object();
            Some(Key::new("", cm.metadata.namespace.as_deref().unwrap_or("")))
        },
    );
    let ctx2 = ctx.clone();
    let workers = runtime::run_workers("root-ca-cert-publisher", queue, 2, cancel, move |key| {
        let ctx = ctx2.clone();
        async move { sync(&ctx, &key).await }
    });
    tokio::join!(nss, cms, workers);
}

async fn sync(ctx: &Ctx, key: &Key) -> Result<Option<Duration>, Error> {
    let ns = &key.name;
    let Some(namespace) = ctx.namespaces.get("", ns) else {
        return Ok(None);
    };
    if !runtime::namespace_active(&namespace) {
        return Ok(None);
    }
    let data = BTreeMap::from([("ca.crt".to_string(), ctx.ca.clone())]);
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let Some(current) = ctx.published.get(ns, NAME) else {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(NAME.into()),
                annotations: Some(BTreeMap::from([(
                    DESCRIPTION_ANNOTATION.to_string(),
                    DESCRIPTION.to_string(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(data),
            ..ConfigMap::default()
        };
        return match api.create(&PostParams::default(), &cm).await {
            Ok(_) => Ok(None),
            // Created meanwhile (its event follows), or the namespace is going.
            Err(kube::Error::Api(e)) if matches!(e.code, 409 | 403 | 404) => Ok(None),
            Err(e) => Err(e.into()),
        };
    };
    let described = current
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
        .is_some_and(|d| !d.is_empty());
    if current.data.as_ref() == Some(&data) && described {
        return Ok(None);
    }
    let mut cm = (*current).clone();
    cm.data = Some(data);
    cm.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
    runtime::ignore_not_found::<_, Error>(api.replace(NAME, &PostParams::default(), &cm).await)?;
    Ok(None)
}
