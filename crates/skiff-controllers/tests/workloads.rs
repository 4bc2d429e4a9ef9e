//! ReplicaSet, ReplicationController and Deployment controllers and leader election against an
//! in-process API server. A small task plays the kubelet: it marks pods Running and Ready and
//! finishes graceful deletions, so that rollouts can progress without nodes.

mod common;

use common::{Cluster, api_server, eventually};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Marks every pod Running and Ready (after `ready_delay`) and deletes terminating pods, as a
/// node agent would.
async fn fake_kubelet(client: Client, ready_delay: Duration, cancel: CancellationToken) {
    let pods: Api<Pod> = Api::all(client.clone());
    let mut events = watcher::watcher(pods, watcher::Config::default()).boxed();
    let mut next_ip = 0u32;
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => return,
            ev = events.next() => ev,
        };
        let Some(Ok(ev)) = ev else { continue };
        let pods = match ev {
            watcher::Event::Apply(p) | watcher::Event::InitApply(p) => vec![p],
            _ => vec![],
        };
        for p in pods {
            let ns = p.namespace().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let name = p.name_any();
            if p.metadata.deletion_timestamp.is_some() {
                let _ = api
                    .delete(&name, &DeleteParams::default().grace_period(0))
                    .await;
                continue;
            }
            let phase = p
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default();
            if phase == "Running" {
                continue;
            }
            let api = api.clone();
            next_ip += 1;
            let ip = format!("10.42.{}.{}", next_ip / 250, next_ip % 250 + 1);
            tokio::spawn(async move {
                tokio::time::sleep(ready_delay).await;
                let now = k8s_openapi::jiff::Timestamp::now().to_string();
                let _ = api
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "conditions": [
                            {"type": "Ready", "status": "True", "lastTransitionTime": now}
                        ]}})),
                    )
                    .await;
            });
        }
    }
}

async fn cluster(ready_delay: Duration) -> Cluster {
    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let client = api_server(&cancel, &mut tasks).await;
    tasks.spawn(skiff_controllers::run(client.clone(), cancel.clone()));
    tasks.spawn(fake_kubelet(client.clone(), ready_delay, cancel.clone()));
    Cluster {
        client,
        cancel,
        _tasks: tasks,
    }
}

async fn active_pods(client: &Client, selector: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default().labels(selector))
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn replica_set(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}
            }
        }
    }))
    .expect("replicaset literal")
}

#[tokio::test]
async fn replica_set_keeps_its_pods() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let c = cluster(Duration::ZERO).await;
        let rss: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
        rss.create(&PostParams::default(), &replica_set("web", 3))
            .await
            .expect("create rs");
        eventually("3 pods", || async {
            active_pods(&c.client, "app=web").await.len() == 3
        })
        .await;
        eventually("status counts 3 ready", || async {
            rss.get("web")
                .await
                .ok()
                .and_then(|r| r.status)
                .is_some_and(|s| {
                    s.replicas == 3
                        && s.ready_replicas == Some(3)
                        && s.available_replicas == Some(3)
                })
        })
        .await;
        let pods = active_pods(&c.client, "app=web").await;
        for p in &pods {
            let owner = &p.owner_references()[0];
            assert_eq!(owner.kind, "ReplicaSet");
            assert_eq!(owner.controller, Some(true));
            assert!(p.name_any().starts_with("web-"));
        }
        // A deleted pod is replaced.
        let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        api.delete(&pods[0].name_any(), &DeleteParams::default())
            .await
            .expect("delete pod");
        eventually("replacement", || async {
            let now = active_pods(&c.client, "app=web").await;
            now.len() == 3 && now.iter().all(|p| p.name_any() != pods[0].name_any())
        })
        .await;
        // Scale up and down.
        rss.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .expect("scale up");
        eventually("5 pods", || async {
            active_pods(&c.client, "app=web").await.len() == 5
        })
        .await;
        rss.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .expect("scale down");
        eventually("1 pod", || async {
            active_pods(&c.client, "app=web").await.len() == 1
        })
        .await;
        // An orphan that matches is adopted, and then counts: the set shrinks back to 1.
        let orphan: Pod = serde_json::from_value(json!({
            "metadata": {"name": "stray", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}
        }))
        .expect("pod literal");
        api.create(&PostParams::default(), &orphan)
            .await
            .expect("create orphan");
        eventually("adopted or trimmed to 1", || async {
            let now = active_pods(&c.client, "app=web").await;
            now.len() == 1
                && now
                    .iter()
                    .all(|p| p.owner_references().iter().any(|o| o.kind == "ReplicaSet"))
        })
        .await;
        // A pod whose labels stop matching is released.
        let kept = active_pods(&c.client, "app=web").await.remove(0);
        api.patch(
            &kept.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": "debug"}}})),
        )
        .await
        .expect("relabel");
        eventually("released and replaced", || async {
            let released = api
                .get(&kept.name_any())
                .await
                .is_ok_and(|p| p.owner_references().is_empty());
            released && active_pods(&c.client, "app=web").await.len() == 1
        })
        .await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn replication_controller_keeps_two_replicas() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let c = cluster(Duration::ZERO).await;
        // Seed 002's ReplicationController.
        let rc: ReplicationController = serde_json::from_value(json!({
            "metadata": {"name": "nginx"},
            "spec": {
                "replicas": 2,
                "selector": {"app": "nginx"},
                "template": {
                    "metadata": {"name": "nginx", "labels": {"app": "nginx"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}]}]}
                }
            }
        }))
        .expect("rc literal");
        let rcs: Api<ReplicationController> = Api::namespaced(c.client.clone(), "default");
        rcs.create(&PostParams::default(), &rc).await.expect("create rc");
        eventually("2 pods", || async { active_pods(&c.client, "app=nginx").await.len() == 2 }).await;
        let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        let first = active_pods(&c.client, "app=nginx").await.remove(0);
        api.delete(&first.name_any(), &DeleteParams::default()).await.expect("delete");
        eventually("still 2 pods", || async {
            let now = active_pods(&c.client, "app=nginx").await;
            now.len() == 2 && now.iter().all(|p| p.name_any() != first.name_any())
        })
        .await;
        eventually("status ready 2", || async {
            rcs.get("nginx").await.ok().and_then(|r| r.status).is_some_and(|s| s.ready_replicas == Some(2))
        })
        .await;
    })
    .await
    .expect("test timed out");
}

fn deployment(name: &str, replicas: i32, image: &str, strategy: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }
        }
    }))
    .expect("deployment literal")
}

fn image_of(p: &Pod) -> String {
    p.spec
        .as_ref()
        .map(|s| s.containers[0].image.clone().unwrap_or_default())
        .unwrap_or_default()
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test]
async fn rolling_update_respects_surge_and_unavailability() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let c = cluster(Duration::from_millis(200)).await;
        let ds: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
        let strategy = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}});
        ds.create(&PostParams::default(), &deployment("web", 4, "nginx:1.25", strategy))
            .await
            .expect("create deployment");
        let complete = |image: &'static str| {
            let ds = ds.clone();
            let client = c.client.clone();
            async move {
                let Ok(d) = ds.get("web").await else { return false };
                let s = d.status.unwrap_or_default();
                let pods = active_pods(&client, "app=web").await;
                s.updated_replicas == Some(4)
                    && s.available_replicas == Some(4)
                    && s.replicas == Some(4)
                    && s.observed_generation == d.metadata.generation
                    && pods.len() == 4
                    && pods.iter().all(|p| image_of(p) == image)
            }
        };
        eventually("first rollout completes", || complete("nginx:1.25")).await;
        let d = ds.get("web").await.expect("get");
        assert_eq!(d.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("1"));
        let conds = d.status.and_then(|s| s.conditions).unwrap_or_default();
        let progressing = conds.iter().find(|c| c.type_ == "Progressing").expect("Progressing");
        assert_eq!(progressing.reason.as_deref(), Some("NewReplicaSetAvailable"));
        assert!(conds.iter().any(|c| c.type_ == "Available" && c.status == "True"));

        // Watch every step of the second rollout: at most 4 + 1 pods, at least 4 - 1 ready.
        let violations = Arc::new(Mutex::new(Vec::<String>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let watcher_task = {
            let client = c.client.clone();
            let violations = violations.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let pods = active_pods(&client, "app=web").await;
                    let ready = pods.iter().filter(|p| is_ready(p)).count();
                    if pods.len() > 5 || ready < 3 {
                        violations.lock().expect("lock").push(format!("{} pods, {ready} ready", pods.len()));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        ds.patch("web", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.26"}]}}}})))
            .await
            .expect("new image");
        eventually("second rollout completes", || complete("nginx:1.26")).await;
        stop.store(true, Ordering::Relaxed);
        watcher_task.await.expect("watcher");
        let seen = violations.lock().expect("lock").clone();
        assert!(seen.is_empty(), "bounds broken: {seen:?}");
        let d = ds.get("web").await.expect("get");
        assert_eq!(d.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("2"));
        let rss: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
        let sets = rss.list(&ListParams::default().labels("app=web")).await.expect("list rs").items;
        assert_eq!(sets.len(), 2, "the old set stays for history");
        let revisions: BTreeMap<String, i32> = sets
            .iter()
            .map(|r| (r.annotations().get("deployment.kubernetes.io/revision").cloned().unwrap_or_default(), r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(-1)))
            .collect();
        assert_eq!(revisions.get("1"), Some(&0));
        assert_eq!(revisions.get("2"), Some(&4));
        for r in &sets {
            let hash = r.labels().get("pod-template-hash").expect("hash label");
            assert!(r.name_any().ends_with(hash.as_str()));
        }

        // Undo: the old template comes back and its set becomes revision 3.
        ds.patch("web", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}}})))
            .await
            .expect("back to the old image");
        eventually("rollback completes", || complete("nginx:1.25")).await;
        let sets = rss.list(&ListParams::default().labels("app=web")).await.expect("list rs").items;
        assert_eq!(sets.len(), 2, "the old set was reused");
        let old = sets.iter().find(|r| r.spec.as_ref().and_then(|s| s.replicas) == Some(4)).expect("active set");
        assert_eq!(old.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("3"));
        assert_eq!(old.annotations().get("deployment.kubernetes.io/revision-history").map(String::as_str), Some("1"));

        // Scaling is not a rollout.
        ds.patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 6}})))
            .await
            .expect("scale");
        eventually("6 pods", || async { active_pods(&c.client, "app=web").await.len() == 6 }).await;
        let sets = rss.list(&ListParams::default().labels("app=web")).await.expect("list rs").items;
        assert_eq!(sets.len(), 2);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn recreate_stops_old_pods_first() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let c = cluster(Duration::from_millis(100)).await;
        let ds: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
        ds.create(&PostParams::default(), &deployment("db", 2, "postgres:15", json!({"type": "Recreate"})))
            .await
            .expect("create");
        eventually("2 pods", || async { active_pods(&c.client, "app=db").await.len() == 2 }).await;
        let mixed = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let checker = {
            let client = c.client.clone();
            let mixed = mixed.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
                    let pods = api.list(&ListParams::default().labels("app=db")).await.map(|l| l.items).unwrap_or_default();
                    let images: std::collections::BTreeSet<String> = pods.iter().map(image_of).collect();
                    if images.len() > 1 {
                        mixed.store(true, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        ds.patch("db", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "postgres:16"}]}}}})))
            .await
            .expect("new image");
        eventually("new pods only", || async {
            let pods = active_pods(&c.client, "app=db").await;
            pods.len() == 2 && pods.iter().all(|p| image_of(p) == "postgres:16")
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        checker.await.expect("checker");
        assert!(!mixed.load(Ordering::Relaxed), "old and new pods coexisted");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn one_leader_at_a_time() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let client = api_server(&cancel, &mut tasks).await;
        let timings = skiff_controllers::leader::Timings {
            lease_duration: Duration::from_secs(2),
            renew_deadline: Duration::from_millis(1500),
            retry_period: Duration::from_millis(200),
        };
        let leading = Arc::new(Mutex::new(Vec::<&'static str>::new()));
        let max_concurrent = Arc::new(Mutex::new(0usize));
        let mut stops = Vec::new();
        for id in ["a", "b"] {
            let stop = CancellationToken::new();
            stops.push(stop.clone());
            let client = client.clone();
            let leading = leading.clone();
            let max_concurrent = max_concurrent.clone();
            tasks.spawn(async move {
                skiff_controllers::leader::run(client, "test-lease", id, timings, stop, |term| {
                    let leading = leading.clone();
                    let max_concurrent = max_concurrent.clone();
                    async move {
                        {
                            let mut l = leading.lock().expect("lock");
                            l.push(id);
                            let mut m = max_concurrent.lock().expect("lock");
                            *m = (*m).max(l.len());
                        }
                        term.cancelled().await;
                        leading.lock().expect("lock").retain(|x| *x != id);
                    }
                })
                .await;
            });
        }
        eventually("someone leads", || async {
            leading.lock().expect("lock").len() == 1
        })
        .await;
        let first = leading.lock().expect("lock")[0];
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
        let lease = leases.get("test-lease").await.expect("lease");
        assert_eq!(
            lease.spec.and_then(|s| s.holder_identity).as_deref(),
            Some(first)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(*max_concurrent.lock().expect("lock"), 1);
        // The leader stops (and releases): the other takes over.
        let idx = if first == "a" { 0 } else { 1 };
        stops[idx].cancel();
        eventually("the other leads", || async {
            let l = leading.lock().expect("lock");
            l.len() == 1 && l[0] != first
        })
        .await;
        assert_eq!(*max_concurrent.lock().expect("lock"), 1);
        cancel.cancel();
        for s in stops {
            s.cancel();
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn services_get_endpoints_slices_and_namespaces_a_default_account() {
    use k8s_openapi::api::core::v1::{Endpoints, Namespace, Service, ServiceAccount};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    tokio::time::timeout(Duration::from_secs(60), async {
        let c = cluster(Duration::ZERO).await;
        let ds: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
        let strategy = json!({"type": "RollingUpdate"});
        ds.create(&PostParams::default(), &deployment("web", 5, "nginx:1.25", strategy))
            .await
            .expect("create deployment");
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "labels": {"tier": "front"}},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
        }))
        .expect("service literal");
        let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
        svcs.create(&PostParams::default(), &svc).await.expect("create service");
        let eps: Api<Endpoints> = Api::namespaced(c.client.clone(), "default");
        eventually("5 ready addresses", || async {
            eps.get("web").await.ok().and_then(|e| e.subsets).is_some_and(|s| {
                s.len() == 1
                    && s[0].addresses.as_ref().map(Vec::len) == Some(5)
                    && s[0].ports.as_ref().is_some_and(|p| p[0].port == 8080)
            })
        })
        .await;
        let slices: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
        eventually("a slice with 5 ready endpoints", || async {
            slices
                .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
                .await
                .is_ok_and(|l| {
                    l.items.len() == 1
                        && l.items[0].endpoints.len() == 5
                        && l.items[0].endpoints.iter().all(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                        && l.items[0].labels().get("tier").map(String::as_str) == Some("front")
                })
        })
        .await;
        // Scaling down shrinks both.
        ds.patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 2}})))
            .await
            .expect("scale");
        eventually("2 addresses", || async {
            eps.get("web").await.ok().and_then(|e| e.subsets).is_some_and(|s| s[0].addresses.as_ref().map(Vec::len) == Some(2))
        })
        .await;
        // Deleting the service deletes its Endpoints; the slices go with their owner (GC).
        svcs.delete("web", &DeleteParams::default()).await.expect("delete service");
        eventually("endpoints gone", || async { matches!(eps.get_opt("web").await, Ok(None)) }).await;
        // Endpoints made by hand for no Service are left alone, and may be updated.
        let hand: Endpoints = serde_json::from_value(json!({
            "metadata": {"name": "by-hand"},
            "subsets": [{"addresses": [{"ip": "10.0.0.24"}], "ports": [{"port": 80}]}]
        }))
        .expect("endpoints literal");
        eps.create(&PostParams::default(), &hand).await.expect("create endpoints");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut got = eps.get("by-hand").await.expect("hand-made endpoints stay");
        got.metadata.labels = Some([("test".to_string(), "updated".to_string())].into());
        eps.replace("by-hand", &PostParams::default(), &got).await.expect("update endpoints");
        // Namespaces get a default ServiceAccount.
        let nss: Api<Namespace> = Api::all(c.client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team-a"}})).expect("ns literal");
        nss.create(&PostParams::default(), &ns).await.expect("create namespace");
        let sas: Api<ServiceAccount> = Api::namespaced(c.client.clone(), "team-a");
        eventually("default service account", || async { matches!(sas.get_opt("default").await, Ok(Some(_))) }).await;
        sas.delete("default", &DeleteParams::default()).await.expect("delete sa");
        eventually("default service account again", || async { matches!(sas.get_opt("default").await, Ok(Some(_))) }).await;
    })
    .await
    .expect("test timed out");
}
