//! ServiceAccount controller: every active namespace has a `default` ServiceAccount.

use crate::runtime::{self, Change, Informer, Informers, Key, Queue};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const DEFAULT: &str = "default";

pub use crate::runtime::Error;

struct Ctx {
    client: kube::Client,
    namespaces: Arc<Informer<Namespace>>,
    accounts: Arc<Informer<ServiceAccount>>,
}

pub async fn run(informers: Arc<Informers>, cancel: CancellationToken) {
    let ctx = Arc::new(Ctx {
        client: informers.client().clone(),
        namespaces: informers.get::<Namespace>(),
        accounts: informers.get::<ServiceAccount>(),
    });
    let queue = Queue::new();
    let ns_changes = ctx.namespaces.subscribe();
    let sa_changes = ctx.accounts.subscribe();
    ctx.namespaces.synced().await;
    ctx.accounts.synced().await;
    for ns in ctx.namespaces.list() {
        queue.add(Key::new("", ns.metadata.name.as_deref().unwrap_or("")));
    }
    let nss = runtime::enqueue_changes(
        ns_changes,
        queue.clone(),
        cancel.clone(),
        runtime::applied_namespace,
    );
    let sas = runtime::enqueue_changes(
        sa_changes,
        queue.clone(),
        cancel.clone(),
        |c: &Change<ServiceAccount>| match c {
            Change::Deleted(sa) if sa.metadata.name.as_deref() == Some(DEFAULT) => {
                Some(Key::new("", sa.metadata.namespace.as_deref().unwrap_or("")))
            }
            _ => None,
        },
    );
    let ctx2 = ctx.clone();
    let workers = runtime::run_workers("serviceaccount-controller", queue, 2, cancel, move |key| {
        let ctx = ctx2.clone();
        async move { sync(&ctx, &key).await }
    });
    tokio::join!(nss, sas, workers);
}

async fn sync(ctx: &Ctx, key: &Key) -> Result<Option<Duration>, Error> {
    let ns = &key.name;
    let Some(namespace) = ctx.namespaces.get("", ns) else {
        return Ok(None);
    };
    if !runtime::namespace_active(&namespace) || ctx.accounts.get(ns, DEFAULT).is_some() {
        return Ok(None);
    }
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), ns);
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT.into()),
            namespace: Some(ns.clone()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    match api.create(&PostParams::default(), &sa).await {
        Ok(_) => Ok(None),
        // Already there, or the namespace started terminating meanwhile.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 || e.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}
