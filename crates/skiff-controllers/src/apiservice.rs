//! APIService availability (upstream's kube-aggregator availability controller, as far as
//! skiff goes): every APIService gets an `Available` condition. A local one (no
//! `spec.service`) is available. skiff does not proxy aggregated APIs, so a service-backed
//! one is available only when skiff serves that group-version itself (as it serves
//! `metrics.k8s.io/v1beta1`, which the metrics-server chart registers); otherwise it is
//! unavailable, because its Service is missing or because aggregation is not supported.

use crate::runtime::{self, Change, Informer, Informers, Key, Queue};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::{
    APIService, APIServiceCondition,
};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use crate::runtime::Error;

struct Ctx {
    client: kube::Client,
    apiservices: Arc<Informer<APIService>>,
    services: Arc<Informer<Service>>,
}

fn key_of(a: &APIService) -> Key {
    Key::new("", a.metadata.name.as_deref().unwrap_or(""))
}

pub async fn run(informers: Arc<Informers>, cancel: CancellationToken) {
    let ctx = Arc::new(Ctx {
        client: informers.client().clone(),
        apiservices: informers.get::<APIService>(),
        services: informers.get::<Service>(),
    });
    let queue = Queue::new();
    let api_changes = ctx.apiservices.subscribe();
    let svc_changes = ctx.services.subscribe();
    ctx.apiservices.synced().await;
    ctx.services.synced().await;
    for a in ctx.apiservices.list() {
        queue.add(key_of(&a));
    }
    let apis = runtime::enqueue_changes(
        api_changes,
        queue.clone(),
        cancel.clone(),
        |c: &Change<APIService>| match c {
            Change::Applied { new, .. } => Some(key_of(new)),
            Change::Deleted(_) => None,
        },
    );
    // A Service coming or going changes the APIServices that name it.
    let (queue2, ctx1) = (queue.clone(), ctx.clone());
    let services = runtime::enqueue_changes(
        svc_changes,
        queue.clone(),
        cancel.clone(),
        move |c: &Change<Service>| {
            let svc = match c {
                Change::Applied { new, .. } => new,
                Change::Deleted(old) => old,
            };
            let (ns, name) = (
                svc.metadata.namespace.as_deref().unwrap_or(""),
                svc.metadata.name.as_deref().unwrap_or(""),
            );
            for a in ctx1.apiservices.list() {
                let named = a.spec.as_ref().and_then(|s| s.service.as_ref());
                if named.is_some_and(|r| {
                    r.namespace.as_deref() == Some(ns) && r.name.as_deref() == Some(name)
                }) {
                    queue2.add(key_of(&a));
                }
            }
            None
        },
    );
    let ctx2 = ctx.clone();
    let workers = runtime::run_workers("apiservice-availability", queue, 1, cancel, move |key| {
        let ctx = ctx2.clone();
        async move { sync(&ctx, &key).await }
    });
    tokio::join!(apis, services, workers);
}

/// Whether this server answers discovery for `group`/`version` itself.
async fn served_here(client: &kube::Client, group: &str, version: &str) -> Result<bool, Error> {
    let answer = if group.is_empty() {
        client.list_core_api_resources(version).await
    } else {
        client
            .list_api_group_resources(&format!("{group}/{version}"))
            .await
    };
    match answer {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The `Available` condition's status, reason and message for `a`.
async fn availability(
    ctx: &Ctx,
    a: &APIService,
) -> Result<(&'static str, &'static str, String), Error> {
    let spec = a.spec.clone().unwrap_or_default();
    let Some(svc) = spec.service else {
        return Ok((
            "True",
            "Local",
            "Local APIServices are always available".into(),
        ));
    };
    let (group, version) = (
        spec.group.unwrap_or_default(),
        spec.version.unwrap_or_default(),
    );
    if served_here(&ctx.client, &group, &version).await? {
        return Ok(("True", "Passed", "all checks passed".into()));
    }
    let (ns, name) = (
        svc.namespace.unwrap_or_default(),
        svc.name.unwrap_or_default(),
    );
    if ctx.services.get(&ns, &name).is_none() {
        return Ok((
            "False",
            "ServiceNotFound",
            format!("service/{name} in \"{ns}\" is not present"),
        ));
    }
    Ok((
        "False",
        "FailedDiscoveryCheck",
        format!(
            "skiff does not proxy aggregated APIs: {group}/{version} from service/{name} in \"{ns}\" is not supported"
        ),
    ))
}

async fn sync(ctx: &Ctx, key: &Key) -> Result<Option<Duration>, Error> {
    let Some(a) = ctx.apiservices.get("", &key.name) else {
        return Ok(None);
    };
    if a.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let (status, reason, message) = availability(ctx, &a).await?;
    let mut conditions: Vec<APIServiceCondition> = a
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let old = conditions.iter().position(|c| c.type_ == "Available");
    if let Some(i) = old {
        let c = &conditions[i];
        if c.status == status
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(message.as_str())
        {
            return Ok(None);
        }
    }
    let changed_at = match old.map(|i| &conditions[i]) {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Some(Time(Timestamp::now())),
    };
    let next = APIServiceCondition {
        type_: "Available".into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: changed_at,
    };
    match old {
        Some(i) => conditions[i] = next,
        None => conditions.push(next),
    }
    let api: Api<APIService> = Api::all(ctx.client.clone());
    let patch = json!({"status": {"conditions": conditions}});
    runtime::ignore_not_found::<_, Error>(
        api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    )?;
    Ok(None)
}
