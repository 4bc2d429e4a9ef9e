//! Endpoints controller: keeps one Endpoints object per selector Service, listing the
//! addresses of its pods (ready and not ready) and the ports they serve.

use crate::runtime::selector::Selector;
use crate::runtime::{self, Change, Informer, Informers, Key, Queue};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, PostParams};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use crate::runtime::Error;

pub struct Ctx {
    pub client: kube::Client,
    pub services: Arc<Informer<Service>>,
    pub pods: Arc<Informer<Pod>>,
    pub endpoints: Arc<Informer<Endpoints>>,
}

/// The services in the pod's namespace whose selector matches the pod (now or before).
pub fn services_for_pod(services: &Informer<Service>, change: &Change<Pod>) -> Vec<Key> {
    let pod = change.object();
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let old_labels = match change {
        Change::Applied { old: Some(o), .. } => o.metadata.labels.clone(),
        _ => None,
    };
    services
        .list_namespace(ns)
        .iter()
        .filter(|s| {
            let sel = service_selector(s);
            sel.matches(pod.metadata.labels.as_ref())
                || (old_labels.is_some() && sel.matches(old_labels.as_ref()))
        })
        .map(|s| Key::of(&**s))
        .collect()
}

pub fn service_selector(s: &Service) -> Selector {
    Selector::from_map(s.spec.as_ref().and_then(|s| s.selector.as_ref()))
}

/// Marks the Endpoints objects old leader elections used as their lock.
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

pub async fn run(informers: Arc<Informers>, workers: usize, cancel: CancellationToken) {
    let ctx = Arc::new(Ctx {
        client: informers.client().clone(),
        services: informers.get::<Service>(),
        pods: informers.get::<Pod>(),
        endpoints: informers.get::<Endpoints>(),
    });
    let queue = Queue::new();
    let svc_changes = ctx.services.subscribe();
    let pod_changes = ctx.pods.subscribe();
    let ep_changes = ctx.endpoints.subscribe();
    ctx.services.synced().await;
    ctx.pods.synced().await;
    ctx.endpoints.synced().await;
    for s in ctx.services.list() {
        queue.add(Key::of(&*s));
    }
    // Endpoints left behind by Services deleted while no controller ran go too, as
    // upstream's leftover check at start removes them (leader-election records aside).
    for ep in ctx.endpoints.list() {
        let leader_record = ep
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(LEADER_ANNOTATION));
        let key = Key::of(&*ep);
        // The API server's own `kubernetes` Endpoints are the bootstrap's to keep.
        let own = key.namespace == "default" && key.name == "kubernetes";
        if !leader_record && !own {
            queue.add(key);
        }
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
    // Someone else changed or deleted a Service's Endpoints: put them back as they should
    // be. Endpoints without a Service are someone else's (upstream lets them be).
    let ctx4 = ctx.clone();
    let eps = runtime::enqueue_changes(
        ep_changes,
        queue.clone(),
        cancel.clone(),
        move |c: &Change<Endpoints>| {
            let key = Key::of(&**c.object());
            let ours = matches!(c, Change::Deleted(_))
                || ctx4.services.get(&key.namespace, &key.name).is_some();
            ours.then_some(key)
        },
    );
    let ctx3 = ctx.clone();
    let workers =
        runtime::run_workers("endpoints-controller", queue, workers, cancel, move |key| {
            let ctx = ctx3.clone();
            async move { sync(&ctx, &key).await }
        });
    tokio::join!(svcs, pods, eps, workers);
}

/// The port a service port reaches on `pod`, resolving a named targetPort.
pub fn target_port(sp: &ServicePort, pod: &Pod) -> Option<i32> {
    match sp.target_port.as_ref() {
        None => Some(sp.port),
        Some(IntOrString::Int(p)) => Some(*p),
        Some(IntOrString::String(name)) => {
            let proto = sp.protocol.as_deref().unwrap_or("TCP");
            pod.spec.as_ref()?.containers.iter().find_map(|c| {
                c.ports.as_ref()?.iter().find_map(|p| {
                    (p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == proto)
                        .then_some(p.container_port)
                })
            })
        }
    }
}

pub fn pod_ip(p: &Pod) -> Option<&str> {
    p.status
        .as_ref()?
        .pod_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
}

pub fn is_terminal(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

/// The subsets of a service's Endpoints (pure): pods grouped by the ports they serve,
/// addresses sorted, ready ones in `addresses`, the others in `notReadyAddresses`.
pub fn subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let svc_name = svc.metadata.name.clone().unwrap_or_default();
    type Group = (
        BTreeSet<(String, i32, String)>,
        Vec<EndpointAddress>,
        Vec<EndpointAddress>,
    );
    let mut groups: BTreeMap<Vec<(String, i32, String)>, Group> = BTreeMap::new();
    for pod in pods {
        let Some(ip) = pod_ip(pod) else { continue };
        if is_terminal(pod) {
            continue;
        }
        if pod.metadata.deletion_timestamp.is_some() && !publish_not_ready {
            continue;
        }
        let ps = pod.spec.clone().unwrap_or_default();
        let address = EndpointAddress {
            ip: ip.to_string(),
            node_name: ps.node_name.clone(),
            hostname: ps
                .hostname
                .clone()
                .filter(|_| ps.subdomain.as_deref() == Some(svc_name.as_str())),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
                ..ObjectReference::default()
            }),
        };
        let ready = publish_not_ready || crate::pod_util::is_ready(pod);
        let mut ports: Vec<(String, i32, String)> = Vec::new();
        for sp in spec.ports.iter().flatten() {
            if let Some(port) = target_port(sp, pod) {
                ports.push((
                    sp.name.clone().unwrap_or_default(),
                    port,
                    sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                ));
            }
        }
        // A pod that serves none of the ports is not an endpoint (unless the service is
        // headless without ports).
        let headless = spec.cluster_ip.as_deref() == Some("None");
        if ports.is_empty() && !(headless && spec.ports.as_ref().is_none_or(|p| p.is_empty())) {
            continue;
        }
        ports.sort();
        let g = groups.entry(ports.clone()).or_default();
        g.0.extend(ports);
        if ready {
            g.1.push(address);
        } else {
            g.2.push(address);
        }
    }
    groups
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then(|| {
                    ports
                        .into_iter()
                        .map(|(name, port, protocol)| EndpointPort {
                            name: (!name.is_empty()).then_some(name),
                            port,
                            protocol: Some(protocol),
                            app_protocol: None,
                        })
                        .collect()
                }),
            }
        })
        .collect()
}

async fn sync(ctx: &Ctx, key: &Key) -> Result<Option<Duration>, Error> {
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let Some(svc) = ctx.services.get(&key.namespace, &key.name) else {
        // The Service is gone: so are its Endpoints (only those we manage: they carry no
        // selector-less user data).
        if ctx.endpoints.get(&key.namespace, &key.name).is_some() {
            match api.delete(&key.name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(None);
    };
    if svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_none_or(|s| s.is_empty())
    {
        // Selector-less services have user-managed Endpoints.
        return Ok(None);
    }
    let sel = service_selector(&svc);
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .list_namespace(&key.namespace)
        .into_iter()
        .filter(|p| sel.matches(p.metadata.labels.as_ref()))
        .collect();
    let subsets = subsets(&svc, &pods);
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert("service.kubernetes.io/headless".into(), String::new());
    }
    let current = ctx.endpoints.get(&key.namespace, &key.name);
    let want_subsets = (!subsets.is_empty()).then_some(subsets);
    if let Some(cur) = &current
        && cur.subsets == want_subsets
        && cur.metadata.labels.clone().unwrap_or_default() == labels
    {
        return Ok(None);
    }
    let ep = Endpoints {
        metadata: ObjectMeta {
            name: Some(key.name.clone()),
            namespace: Some(key.namespace.clone()),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: Some(
                [(
                    "endpoints.kubernetes.io/last-change-trigger-time".to_string(),
                    k8s_openapi::jiff::Timestamp::now()
                        .strftime("%Y-%m-%dT%H:%M:%SZ")
                        .to_string(),
                )]
                .into(),
            ),
            resource_version: current
                .as_ref()
                .and_then(|c| c.metadata.resource_version.clone()),
            ..ObjectMeta::default()
        },
        subsets: want_subsets,
    };
    let r = if current.is_some() {
        api.replace(&key.name, &PostParams::default(), &ep).await
    } else {
        api.create(&PostParams::default(), &ep).await
    };
    match r {
        Ok(_) => Ok(None),
        // The namespace is going away; nothing to keep up to date.
        Err(kube::Error::Api(e)) if e.code == 403 || e.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodSpec, PodStatus, ServiceSpec,
    };

    fn pod(name: &str, ip: &str, ready: bool) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some("http".into()),
                        container_port: 8080,
                        protocol: Some("TCP".into()),
                        ..ContainerPort::default()
                    }]),
                    ..Container::default()
                }],
                node_name: Some("n1".into()),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                pod_ip: (!ip.is_empty()).then(|| ip.to_string()),
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

    fn service(target: IntOrString) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                ports: Some(vec![ServicePort {
                    port: 80,
                    target_port: Some(target),
                    protocol: Some("TCP".into()),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn ready_and_unready_addresses_with_named_ports() {
        let pods = [
            pod("b", "10.42.0.3", true),
            pod("a", "10.42.0.2", true),
            pod("c", "10.42.0.4", false),
            pod("pending", "", true),
        ];
        let s = subsets(&service(IntOrString::String("http".into())), &pods);
        assert_eq!(s.len(), 1);
        let ready: Vec<_> = s[0]
            .addresses
            .iter()
            .flatten()
            .map(|a| a.ip.as_str())
            .collect();
        assert_eq!(ready, ["10.42.0.2", "10.42.0.3"]);
        let not_ready: Vec<_> = s[0]
            .not_ready_addresses
            .iter()
            .flatten()
            .map(|a| a.ip.as_str())
            .collect();
        assert_eq!(not_ready, ["10.42.0.4"]);
        assert_eq!(s[0].ports.as_ref().map(|p| p[0].port), Some(8080));
    }

    #[test]
    fn pods_without_the_named_port_are_not_endpoints() {
        let s = subsets(
            &service(IntOrString::String("grpc".into())),
            &[pod("a", "10.42.0.2", true)],
        );
        assert!(s.is_empty());
        let mut headless = service(IntOrString::Int(80));
        if let Some(spec) = headless.spec.as_mut() {
            spec.cluster_ip = Some("None".into());
            spec.ports = None;
        }
        let s = subsets(&headless, &[pod("a", "10.42.0.2", true)]);
        assert_eq!(s.len(), 1);
        assert!(s[0].ports.is_none());
    }
}
