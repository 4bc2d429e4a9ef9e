//! DaemonSet and StatefulSet controllers against an in-process API server. Nodes are plain API
//! objects; a small task plays the kubelet: it marks pods Running and Ready after a delay and
//! finishes graceful deletions. Nothing binds pods: daemon pods are checked by their node
//! affinity.

mod common;

use common::{Cluster, api_server, eventually};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::{Event, Node, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Marks every pod Running and Ready after `ready_delay`, and removes terminating pods.
async fn fake_kubelet(client: Client, ready_delay: Duration, cancel: CancellationToken) {
    let pods: Api<Pod> = Api::all(client.clone());
    let mut events = watcher::watcher(pods, watcher::Config::default()).boxed();
    let mut delayed = JoinSet::new();
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => return,
            ev = events.next() => ev,
        };
        let Some(Ok(ev)) = ev else { continue };
        let (watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = ev else {
            continue;
        };
        let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace().unwrap_or_default());
        let name = p.name_any();
        if p.metadata.deletion_timestamp.is_some() {
            let _ = api
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await;
            continue;
        }
        let phase = p.status.as_ref().and_then(|s| s.phase.clone());
        if phase.as_deref() != Some("Pending") {
            continue;
        }
        let uid = p.metadata.uid.clone();
        delayed.spawn(async move {
            tokio::time::sleep(ready_delay).await;
            // Only the pod seen, not a later one of the same name.
            if api.get(&name).await.ok().and_then(|p| p.metadata.uid) != uid {
                return;
            }
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            let _ = api
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"phase": "Running", "conditions": [
                        {"type": "Ready", "status": "True", "lastTransitionTime": now}
                    ]}})),
                )
                .await;
        });
        while delayed.try_join_next().is_some() {}
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

async fn live_pods(client: &Client, selector: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default().labels(selector))
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn image_of(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.containers[0].image.clone())
        .unwrap_or_default()
}

/// The node a daemon pod's affinity pins it to.
fn pinned_node(p: &Pod) -> Option<String> {
    let v = serde_json::to_value(p).ok()?;
    let terms = v.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")?;
    let field = terms.pointer("/0/matchFields/0")?;
    (field["key"] == "metadata.name" && field["operator"] == "In")
        .then(|| field.pointer("/values/0")?.as_str().map(String::from))
        .flatten()
}

async fn create_node(client: &Client, name: &str, taints: Value) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {"taints": taints},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }))
    .expect("node literal");
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");
}

async fn events_about(client: &Client, name: &str) -> Vec<(String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

fn daemon_set(name: &str, image: &str, strategy: Value) -> DaemonSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "updateStrategy": strategy,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }
        }
    }))
    .expect("daemonset literal")
}

/// Target node of each live daemon pod.
async fn daemon_nodes(client: &Client, selector: &str) -> BTreeMap<String, Vec<Pod>> {
    let mut m: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
    for p in live_pods(client, selector).await {
        m.entry(pinned_node(&p).unwrap_or_default())
            .or_default()
            .push(p);
    }
    m
}

#[tokio::test]
async fn daemon_set_follows_nodes_and_taints() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let c = cluster(Duration::ZERO).await;
        create_node(&c.client, "n1", json!([])).await;
        create_node(&c.client, "n2", json!([])).await;
        create_node(
            &c.client,
            "n3",
            json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
        )
        .await;
        let dss: Api<DaemonSet> = Api::namespaced(c.client.clone(), "default");
        dss.create(
            &PostParams::default(),
            &daemon_set("agent", "agent:1", json!({"type": "RollingUpdate"})),
        )
        .await
        .expect("create ds");
        let on = |nodes: &'static [&'static str]| {
            let client = c.client.clone();
            async move {
                let m = daemon_nodes(&client, "app=agent").await;
                m.keys().map(String::as_str).collect::<Vec<_>>() == nodes
                    && m.values().all(|ps| ps.len() == 1)
            }
        };
        eventually("one pod on n1 and n2, none on tainted n3", || {
            on(&["n1", "n2"])
        })
        .await;
        eventually("status counts two nodes", || async {
            dss.get("agent")
                .await
                .ok()
                .and_then(|d| d.status)
                .is_some_and(|s| {
                    s.desired_number_scheduled == 2
                        && s.current_number_scheduled == 2
                        && s.number_ready == 2
                        && s.number_available == Some(2)
                        && s.updated_number_scheduled == Some(2)
                        && s.number_misscheduled == 0
                })
        })
        .await;
        let pod = live_pods(&c.client, "app=agent").await.remove(0);
        let owner = &pod.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("DaemonSet", Some(true))
        );
        assert!(pod.name_any().starts_with("agent-"));
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
            "node.kubernetes.io/unschedulable",
        ] {
            assert!(
                tolerations.iter().any(|t| t.key.as_deref() == Some(key)),
                "{key} tolerated"
            );
        }
        let hash = pod
            .labels()
            .get("controller-revision-hash")
            .cloned()
            .expect("hash label");
        let revisions: Api<ControllerRevision> = Api::namespaced(c.client.clone(), "default");
        let revs = revisions
            .list(&ListParams::default().labels("app=agent"))
            .await
            .expect("list")
            .items;
        assert_eq!(revs.len(), 1);
        assert_eq!(revs[0].name_any(), format!("agent-{hash}"));
        assert_eq!(revs[0].revision, 1);
        let events = events_about(&c.client, "agent").await;
        assert!(
            events
                .iter()
                .any(|(r, m)| r == "SuccessfulCreate" && m.starts_with("Created pod: agent-"))
        );

        // Tolerating the taint: the set lands on n3 too, and its pods move to the new revision.
        dss.patch(
            "agent",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}
            ]}}}})),
        )
        .await
        .expect("tolerate");
        eventually("one pod on every node, all updated", || async {
            let m = daemon_nodes(&c.client, "app=agent").await;
            m.len() == 3
                && m.values().all(|ps| ps.len() == 1)
                && m.values()
                    .flatten()
                    .all(|p| p.labels().get("controller-revision-hash") != Some(&hash))
        })
        .await;
        let revs = revisions
            .list(&ListParams::default().labels("app=agent"))
            .await
            .expect("list")
            .items;
        assert_eq!(revs.len(), 2, "the old revision stays as history");

        // A new node gets a pod; a deleted one loses it.
        create_node(&c.client, "n4", json!([])).await;
        eventually("pod on n4", || on(&["n1", "n2", "n3", "n4"])).await;
        let nodes: Api<Node> = Api::all(c.client.clone());
        nodes
            .delete("n4", &DeleteParams::default())
            .await
            .expect("delete node");
        eventually("pod on n4 gone", || on(&["n1", "n2", "n3"])).await;

        // A NoExecute taint the set does not tolerate evicts its pod.
        nodes
            .patch(
                "n2",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"spec": {"taints": [{"key": "maintenance", "effect": "NoExecute"}]}}),
                ),
            )
            .await
            .expect("taint n2");
        eventually("pod on n2 gone", || on(&["n1", "n3"])).await;
        eventually("status follows", || async {
            dss.get("agent")
                .await
                .ok()
                .and_then(|d| d.status)
                .is_some_and(|s| s.desired_number_scheduled == 2 && s.number_ready == 2)
        })
        .await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn daemon_set_rolls_out_within_max_unavailable() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let c = cluster(Duration::from_millis(200)).await;
        for n in ["n1", "n2", "n3", "n4"] {
            create_node(&c.client, n, json!([])).await;
        }
        let dss: Api<DaemonSet> = Api::namespaced(c.client.clone(), "default");
        let strategy = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}});
        dss.create(&PostParams::default(), &daemon_set("log", "log:1", strategy))
            .await
            .expect("create ds");
        let rolled_out = |image: &'static str| {
            let client = c.client.clone();
            let dss = dss.clone();
            async move {
                let m = daemon_nodes(&client, "app=log").await;
                let status = dss.get("log").await.ok().and_then(|d| d.status);
                m.len() == 4
                    && m.values().all(|ps| ps.len() == 1 && is_ready(&ps[0]) && image_of(&ps[0]) == image)
                    && status.is_some_and(|s| s.updated_number_scheduled == Some(4) && s.number_available == Some(4))
            }
        };
        eventually("first rollout", || rolled_out("log:1")).await;

        let violations = Arc::new(Mutex::new(Vec::<String>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let checker = {
            let client = c.client.clone();
            let violations = violations.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let m = daemon_nodes(&client, "app=log").await;
                    let serving = ["n1", "n2", "n3", "n4"]
                        .iter()
                        .filter(|n| m.get(**n).is_some_and(|ps| ps.iter().any(is_ready)))
                        .count();
                    if serving < 3 {
                        violations.lock().expect("lock").push(format!("{serving} nodes serving"));
                    }
                    if m.values().any(|ps| ps.len() > 1) {
                        violations.lock().expect("lock").push("two pods on a node".into());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        dss.patch(
            "log",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "log:2"}]}}}})),
        )
        .await
        .expect("new image");
        eventually("second rollout", || rolled_out("log:2")).await;
        stop.store(true, Ordering::Relaxed);
        checker.await.expect("checker");
        let seen = violations.lock().expect("lock").clone();
        assert!(seen.is_empty(), "maxUnavailable broken: {seen:?}");
        let events = events_about(&c.client, "log").await;
        assert!(events.iter().filter(|(r, _)| r == "SuccessfulDelete").count() >= 4);
    })
    .await
    .expect("test timed out");
}

fn stateful_set(name: &str, replicas: i32, image: &str) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": "nginx",
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "www"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
            }]
        }
    }))
    .expect("statefulset literal")
}

fn names(pods: &[Pod]) -> BTreeSet<String> {
    pods.iter().map(ResourceExt::name_any).collect()
}

#[tokio::test]
async fn stateful_set_creates_in_order_and_scales_down_in_reverse() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let c = cluster(Duration::from_millis(300)).await;
        // Every observation: a pod exists only when its predecessor is ready, and pods go away
        // from the highest ordinal.
        let violations = Arc::new(Mutex::new(Vec::<String>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let checker = {
            let client = c.client.clone();
            let violations = violations.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let pods = live_pods(&client, "app=web").await;
                    let by_name: BTreeMap<String, &Pod> =
                        pods.iter().map(|p| (p.name_any(), p)).collect();
                    for i in 1..3 {
                        let prev = format!("web-{}", i - 1);
                        if by_name.contains_key(&format!("web-{i}"))
                            && !by_name.get(&prev).is_some_and(|p| is_ready(p))
                        {
                            violations
                                .lock()
                                .expect("lock")
                                .push(format!("web-{i} without ready {prev}"));
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
            })
        };
        let sts: Api<StatefulSet> = Api::namespaced(c.client.clone(), "default");
        sts.create(
            &PostParams::default(),
            &stateful_set("web", 3, "nginx:1.25"),
        )
        .await
        .expect("create sts");
        eventually("three ready pods", || async {
            let pods = live_pods(&c.client, "app=web").await;
            names(&pods) == BTreeSet::from(["web-0".into(), "web-1".into(), "web-2".into()])
                && pods.iter().all(is_ready)
        })
        .await;
        eventually("status: 3 ready on one revision", || async {
            sts.get("web")
                .await
                .ok()
                .and_then(|s| s.status)
                .is_some_and(|s| {
                    s.replicas == 3
                        && s.ready_replicas == Some(3)
                        && s.available_replicas == Some(3)
                        && s.current_replicas == Some(3)
                        && s.updated_replicas == Some(3)
                        && s.current_revision.is_some()
                        && s.current_revision == s.update_revision
                })
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        checker.await.expect("checker");
        let seen = violations.lock().expect("lock").clone();
        assert!(seen.is_empty(), "order broken: {seen:?}");

        let pods_api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        let web1 = pods_api.get("web-1").await.expect("web-1");
        let labels = web1.labels();
        assert_eq!(
            labels
                .get("statefulset.kubernetes.io/pod-name")
                .map(String::as_str),
            Some("web-1")
        );
        assert_eq!(
            labels
                .get("apps.kubernetes.io/pod-index")
                .map(String::as_str),
            Some("1")
        );
        let status = sts
            .get("web")
            .await
            .expect("get")
            .status
            .unwrap_or_default();
        assert_eq!(
            labels.get("controller-revision-hash"),
            status.update_revision.as_ref()
        );
        let spec = web1.spec.clone().unwrap_or_default();
        assert_eq!(spec.hostname.as_deref(), Some("web-1"));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let claim_of = spec
            .volumes
            .unwrap_or_default()
            .into_iter()
            .find(|v| v.name == "www")
            .and_then(|v| v.persistent_volume_claim)
            .map(|c| c.claim_name);
        assert_eq!(claim_of.as_deref(), Some("www-web-1"));
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), "default");
        let claims: BTreeSet<String> = pvcs
            .list(&ListParams::default())
            .await
            .expect("pvcs")
            .items
            .iter()
            .map(ResourceExt::name_any)
            .collect();
        assert_eq!(
            claims,
            BTreeSet::from(["www-web-0".into(), "www-web-1".into(), "www-web-2".into()])
        );
        let events = events_about(&c.client, "web").await;
        for want in [
            "create Pod web-0 in StatefulSet web successful",
            "create Claim www-web-0 Pod web-0 in StatefulSet web success",
        ] {
            assert!(
                events
                    .iter()
                    .any(|(r, m)| r == "SuccessfulCreate" && m == want),
                "{want}: {events:?}"
            );
        }

        // Scale down to one: web-2 goes before web-1. A watch sees every step, however fast.
        let order = Arc::new(Mutex::new(Vec::<String>::new()));
        let stop = CancellationToken::new();
        let watcher_task = {
            let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
            let order = order.clone();
            let stop = stop.clone();
            let mut events =
                watcher::watcher(pods, watcher::Config::default().labels("app=web")).boxed();
            // The watch is running once its initial list is through.
            while let Some(Ok(ev)) = events.next().await {
                if matches!(ev, watcher::Event::InitDone) {
                    break;
                }
            }
            tokio::spawn(async move {
                loop {
                    let ev = tokio::select! {
                        _ = stop.cancelled() => return,
                        ev = events.next() => ev,
                    };
                    let Some(Ok(ev)) = ev else { continue };
                    // Terminating or gone, whichever is seen first.
                    let name = match ev {
                        watcher::Event::Apply(p) if p.metadata.deletion_timestamp.is_some() => {
                            p.name_any()
                        }
                        watcher::Event::Delete(p) => p.name_any(),
                        _ => continue,
                    };
                    let mut o = order.lock().expect("lock");
                    if !o.contains(&name) {
                        o.push(name);
                    }
                }
            })
        };
        sts.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .expect("scale down");
        eventually("one pod left", || async {
            names(&live_pods(&c.client, "app=web").await) == BTreeSet::from(["web-0".into()])
        })
        .await;
        eventually("the watch saw both deletions", || async {
            order.lock().expect("lock").len() == 2
        })
        .await;
        stop.cancel();
        watcher_task.await.expect("watcher");
        assert_eq!(*order.lock().expect("lock"), ["web-2", "web-1"]);
        let events = events_about(&c.client, "web").await;
        assert!(events.iter().any(|(r, m)| r == "SuccessfulDelete"
            && m == "delete Pod web-2 in StatefulSet web successful"));
        let claims = pvcs.list(&ListParams::default()).await.expect("pvcs").items;
        assert_eq!(claims.len(), 3, "claims are retained by default");
        eventually("status: 1 replica", || async {
            sts.get("web")
                .await
                .ok()
                .and_then(|s| s.status)
                .is_some_and(|s| s.replicas == 1 && s.ready_replicas == Some(1))
        })
        .await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn stateful_set_rolls_out_by_partition() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let c = cluster(Duration::from_millis(100)).await;
        let sts: Api<StatefulSet> = Api::namespaced(c.client.clone(), "default");
        let mut set = stateful_set("db", 3, "postgres:15");
        if let Some(spec) = set.spec.as_mut() {
            spec.update_strategy = serde_json::from_value(json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})).ok();
            spec.volume_claim_templates = None;
        }
        sts.create(&PostParams::default(), &set).await.expect("create sts");
        let images = || async {
            live_pods(&c.client, "app=db")
                .await
                .iter()
                .map(|p| (p.name_any(), (image_of(p), is_ready(p))))
                .collect::<BTreeMap<_, _>>()
        };
        let want = |spec: [&str; 3]| -> BTreeMap<String, (String, bool)> {
            spec.iter()
                .enumerate()
                .map(|(i, image)| (format!("db-{i}"), (image.to_string(), true)))
                .collect()
        };
        eventually("three ready pods", || async { images().await == want(["postgres:15"; 3]) }).await;
        let first = sts.get("db").await.expect("get").status.unwrap_or_default();

        sts.patch(
            "db",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "postgres:16"}]}}}})),
        )
        .await
        .expect("new image");
        eventually("only db-2 updated", || async {
            images().await == want(["postgres:15", "postgres:15", "postgres:16"])
        })
        .await;
        eventually("status shows the partial rollout", || async {
            sts.get("db").await.ok().and_then(|s| s.status).is_some_and(|s| {
                s.updated_replicas == Some(1)
                    && s.current_replicas == Some(2)
                    && s.current_revision == first.current_revision
                    && s.update_revision != first.update_revision
            })
        })
        .await;

        // Partition 0: the rest follow, one at a time from the highest ordinal.
        let violations = Arc::new(Mutex::new(Vec::<String>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let checker = {
            let client = c.client.clone();
            let violations = violations.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let pods = live_pods(&client, "app=db").await;
                    let ready = pods.iter().filter(|p| is_ready(p)).count();
                    if ready < 2 {
                        violations.lock().expect("lock").push(format!("{ready} ready"));
                    }
                    let web0_new = pods.iter().any(|p| p.name_any() == "db-0" && image_of(p) == "postgres:16");
                    let web1_old = pods.iter().any(|p| p.name_any() == "db-1" && image_of(p) == "postgres:15");
                    if web0_new && web1_old {
                        violations.lock().expect("lock").push("db-0 before db-1".into());
                    }
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
            })
        };
        sts.patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})),
        )
        .await
        .expect("partition 0");
        eventually("all updated", || async { images().await == want(["postgres:16"; 3]) }).await;
        eventually("rollout complete in status", || async {
            sts.get("db").await.ok().and_then(|s| s.status).is_some_and(|s| {
                s.updated_replicas == Some(3)
                    && s.current_replicas == Some(3)
                    && s.current_revision == s.update_revision
                    && s.current_revision != first.current_revision
            })
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        checker.await.expect("checker");
        let seen = violations.lock().expect("lock").clone();
        assert!(seen.is_empty(), "rollout bounds broken: {seen:?}");
        let revisions: Api<ControllerRevision> = Api::namespaced(c.client.clone(), "default");
        let revs = revisions.list(&ListParams::default().labels("app=db")).await.expect("list").items;
        assert_eq!(revs.len(), 2);
    })
    .await
    .expect("test timed out");
}
