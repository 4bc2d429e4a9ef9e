//! EndpointSlice controller: mirrors each selector Service's pods into EndpointSlices of at
//! most 100 endpoints, grouped by the ports they serve; the service proxy reads these.

use crate::endpoints::{is_terminal, pod_ip, service_selector, services_for_pod, target_port};
use crate::runtime::{self, Change, Informer, Informers, Key, Queue};
use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const CONTROLLER: &str = "endpointslice-controller.k8s.io";
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Upstream's default --max-endpoints-per-slice.
const MAX_PER_SLICE: usize = 100;

pub use crate::runtime::Error;

pub struct Ctx {
    pub client: kube::Client,
    pub services: Arc<Informer<Service>>,
    pub pods: Arc<Informer<Pod>>,
    pub slices: Arc<Informer<EndpointSlice>>,
}

fn slice_service(s: &EndpointSlice) -> Option<Key> {
    let labels = s.metadata.labels.as_ref()?;
    if labels.get(MANAGED_BY).map(String::as_str) != Some(CONTROLLER) {
        return None;
    }
    let svc = labels.get(SERVICE_NAME)?;
    Some(Key::new(s.metadata.namespace.as_deref().unwrap_or(""), svc))
}

pub async fn run(informers: Arc<Informers>, workers: usize, cancel: CancellationToken) {
    let ctx = Arc::new(Ctx {
        client: informers.client().clone(),
        services: informers.get::<Service>(),
        pods: informers.get::<Pod>(),
        slices: informers.get::<EndpointSlice>(),
    });
    let queue = Queue::new();
    let svc_changes = ctx.services.subscribe();
    let pod_changes = ctx.pods.subscribe();
    let slice_changes = ctx.slices.subscribe();
    ctx.services.synced().await;
    ctx.pods.synced().await;
    ctx.slices.synced().await;
    for s in ctx.services.list() {
        queue.add(Key::of(&*s));
    }
    let svcs = runtime::enqueue_changes(
        svc_changes,
        queue.clone(),
        cancel.clone(),
        |c: &Change<Service>| [Key::of(&**c.object())],
    );
    let ctx2 = ctx.clone();
    let pods = runtime::enqueue_changes(pod_changes, queue.clone(), cancel.clone(), move |c| {
        services_for_pod(&ctx2.services, c)
    });
    let slices = runtime::enqueue_changes(
        slice_changes,
        queue.clone(),
        cancel.clone(),
        |c: &Change<EndpointSlice>| slice_service(c.object()),
    );
    let ctx3 = ctx.clone();
    let workers = runtime::run_workers(
        "endpointslice-controller",
        queue,
        workers,
        cancel,
        move |key| {
            let ctx = ctx3.clone();
            async move { sync(&ctx, &key).await }
        },
    );
    tokio::join!(svcs, pods, slices, workers);
}

/// The desired slices' contents (pure): endpoints grouped by port set, sorted, chunked.
pub fn desired(svc: &Service, pods: &[Arc<Pod>]) -> Vec<(Vec<EndpointPort>, Vec<Endpoint>)> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let svc_name = svc.metadata.name.clone().unwrap_or_default();
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let mut groups: BTreeMap<Vec<(String, i32, String)>, Vec<Endpoint>> = BTreeMap::new();
    for pod in pods {
        let Some(ip) = pod_ip(pod) else { continue };
        if is_terminal(pod) {
            continue;
        }
        let mut ports: Vec<(String, i32, String)> = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|sp| {
                Some((
                    sp.name.clone().unwrap_or_default(),
                    target_port(sp, pod)?,
                    sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                ))
            })
            .collect();
        if ports.is_empty() && !(headless && spec.ports.as_ref().is_none_or(|p| p.is_empty())) {
            continue;
        }
        ports.sort();
        let ps = pod.spec.clone().unwrap_or_default();
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let serving = publish_not_ready || crate::pod_util::is_ready(pod);
        groups.entry(ports).or_default().push(Endpoint {
            addresses: vec![ip.to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(serving && (!terminating || publish_not_ready)),
                serving: Some(serving),
                terminating: Some(terminating),
            }),
            hostname: ps
                .hostname
                .clone()
                .filter(|_| ps.subdomain.as_deref() == Some(svc_name.as_str())),
            node_name: ps.node_name.clone(),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
                ..ObjectReference::default()
            }),
            ..Endpoint::default()
        });
    }
    let mut out = Vec::new();
    for (ports, mut eps) in groups {
        eps.sort_by(|a, b| a.addresses.cmp(&b.addresses));
        let ports: Vec<EndpointPort> = ports
            .into_iter()
            .map(|(name, port, protocol)| EndpointPort {
                name: Some(name),
                port: Some(port),
                protocol: Some(protocol),
                app_protocol: None,
            })
            .collect();
        for chunk in eps.chunks(MAX_PER_SLICE) {
            out.push((ports.clone(), chunk.to_vec()));
        }
    }
    out
}

async fn sync(ctx: &Ctx, key: &Key) -> Result<Option<Duration>, Error> {
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let mut existing: Vec<Arc<EndpointSlice>> = ctx
        .slices
        .list_namespace(&key.namespace)
        .into_iter()
        .filter(|s| slice_service(s).as_ref() == Some(key))
        .collect();
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let svc = ctx
        .services
        .get(&key.namespace, &key.name)
        .filter(|s| s.metadata.deletion_timestamp.is_none());
    let Some(svc) = svc.filter(|s| {
        s.spec
            .as_ref()
            .and_then(|sp| sp.selector.as_ref())
            .is_some_and(|m| !m.is_empty())
    }) else {
        for s in existing {
            delete(&api, &s).await?;
        }
        return Ok(None);
    };
    let sel = service_selector(&svc);
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .list_namespace(&key.namespace)
        .into_iter()
        .filter(|p| sel.matches(p.metadata.labels.as_ref()))
        .collect();
    let mut want = desired(&svc, &pods);
    // A service without endpoints still has one (empty) slice, as upstream keeps.
    if want.is_empty() {
        want.push((Vec::new(), Vec::new()));
    }
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME.into(), key.name.clone());
    labels.insert(MANAGED_BY.into(), CONTROLLER.into());
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert("service.kubernetes.io/headless".into(), String::new());
    }
    let owner = crate::pod_util::controller_ref("v1", "Service", &svc.metadata);
    let mut reuse = existing.into_iter();
    for (ports, endpoints) in want {
        let slice = reuse.next();
        if let Some(cur) = &slice
            && cur.endpoints == endpoints
            && cur.ports.clone().unwrap_or_default() == ports
            && cur.metadata.labels.clone().unwrap_or_default() == labels
            && cur.address_type == "IPv4"
        {
            continue;
        }
        let new = EndpointSlice {
            metadata: ObjectMeta {
                name: slice.as_ref().and_then(|s| s.metadata.name.clone()),
                generate_name: Some(format!("{}-", key.name)),
                namespace: Some(key.namespace.clone()),
                labels: Some(labels.clone()),
                owner_references: Some(vec![owner.clone()]),
                resource_version: slice
                    .as_ref()
                    .and_then(|s| s.metadata.resource_version.clone()),
                ..ObjectMeta::default()
            },
            address_type: "IPv4".into(),
            endpoints,
            ports: Some(ports),
        };
        let r = match &slice {
            Some(s) => {
                let name = s.metadata.name.clone().unwrap_or_default();
                api.replace(&name, &PostParams::default(), &new).await
            }
            None => api.create(&PostParams::default(), &new).await,
        };
        match r {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 403 || e.code == 404 => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    for extra in reuse {
        delete(&api, &extra).await?;
    }
    Ok(None)
}

async fn delete(api: &Api<EndpointSlice>, s: &EndpointSlice) -> Result<(), Error> {
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: s.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api
        .delete(s.metadata.name.as_deref().unwrap_or(""), &dp)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus, ServicePort, ServiceSpec};

    fn pod(i: usize, ready: bool, terminating: bool) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(format!("p{i}")),
                deletion_timestamp: terminating.then_some(
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                    ),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                pod_ip: Some(format!("10.42.{}.{}", i / 250, i % 250 + 1)),
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
        })
    }

    fn svc() -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn chunks_of_one_hundred_with_conditions() {
        let mut pods: Vec<Arc<Pod>> = (0..230).map(|i| pod(i, true, false)).collect();
        pods.push(pod(500, false, false));
        pods.push(pod(501, true, true));
        let d = desired(&svc(), &pods);
        assert_eq!(
            d.iter().map(|(_, e)| e.len()).collect::<Vec<_>>(),
            [100, 100, 32]
        );
        let all: Vec<&Endpoint> = d.iter().flat_map(|(_, e)| e.iter()).collect();
        let cond = |ip: &str| {
            all.iter()
                .find(|e| e.addresses[0] == ip)
                .and_then(|e| e.conditions.clone())
                .expect("endpoint present")
        };
        let unready = cond("10.42.2.1");
        assert_eq!((unready.ready, unready.serving), (Some(false), Some(false)));
        let terminating = cond("10.42.2.2");
        assert_eq!(
            (
                terminating.ready,
                terminating.serving,
                terminating.terminating
            ),
            (Some(false), Some(true), Some(true))
        );
        assert_eq!(d[0].0[0].port, Some(80), "targetPort defaults to port");
    }
}
