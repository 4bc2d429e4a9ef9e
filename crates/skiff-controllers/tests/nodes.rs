//! Node lifecycle (heartbeats, taints, NoExecute eviction), pod GC and the disruption
//! controller against an in-process API server.

mod common;

use common::{Cluster, api_server, eventually};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, EvictParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

async fn cluster() -> Cluster {
    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let client = api_server(&cancel, &mut tasks).await;
    let settings = skiff_controllers::Settings {
        node_lifecycle: skiff_controllers::nodelifecycle::Settings {
            grace_period: Duration::from_secs(1),
            monitor_period: Duration::from_millis(200),
        },
        podgc: skiff_controllers::podgc::Settings {
            terminated_threshold: 2,
            period: Duration::from_millis(200),
            quarantine: Duration::from_millis(500),
        },
        ..Default::default()
    };
    tasks.spawn(skiff_controllers::run_with(
        client.clone(),
        settings,
        cancel.clone(),
    ));
    Cluster {
        client,
        cancel,
        _tasks: tasks,
    }
}

fn node(name: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "lastHeartbeatTime": k8s_openapi::jiff::Timestamp::now().to_string()}]}
    }))
    .expect("node literal")
}

fn pod_on(name: &str, node: &str, tolerations: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "tolerations": tolerations, "containers": [{"name": "c", "image": "nginx"}]}
    }))
    .expect("pod literal")
}

fn terminating(p: &Option<Pod>) -> bool {
    p.as_ref()
        .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
}

#[tokio::test]
async fn silent_nodes_become_unknown_tainted_and_evicted() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let c = cluster().await;
        let nodes: Api<Node> = Api::all(c.client.clone());
        nodes.create(&PostParams::default(), &node("quiet")).await.expect("create node");
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        let unreachable = |secs: Option<i64>| {
            json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": secs}])
        };
        // The API server adds default 300 s tolerations; explicit ones replace them.
        pods.create(&PostParams::default(), &pod_on("brief", "quiet", unreachable(Some(1)))).await.expect("pod");
        pods.create(&PostParams::default(), &pod_on("forever", "quiet", unreachable(None))).await.expect("pod");
        eventually("node is Unknown and tainted", || async {
            nodes.get("quiet").await.is_ok_and(|n| {
                let ready = n.status.as_ref().and_then(|s| s.conditions.as_ref()).and_then(|cs| cs.iter().find(|c| c.type_ == "Ready").cloned());
                let taints = n.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
                ready.is_some_and(|r| r.status == "Unknown" && r.reason.as_deref() == Some("NodeStatusUnknown"))
                    && taints.iter().any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute")
                    && taints.iter().any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoSchedule")
            })
        })
        .await;
        eventually("the briefly tolerating pod is evicted", || async {
            terminating(&pods.get_opt("brief").await.ok().flatten())
        })
        .await;
        let forever = pods.get("forever").await.expect("stays");
        assert!(forever.metadata.deletion_timestamp.is_none());
        // The agent is back: taints go.
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        nodes
            .patch_status(
                "quiet",
                &PatchParams::default(),
                &Patch::Strategic(json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": now}]}})),
            )
            .await
            .expect("heartbeat");
        eventually("taints removed", || async {
            nodes.get("quiet").await.is_ok_and(|n| n.spec.and_then(|s| s.taints).unwrap_or_default().is_empty())
        })
        .await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn pod_gc_removes_orphans_and_old_terminated_pods() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let c = cluster().await;
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        pods.create(
            &PostParams::default(),
            &pod_on("orphan", "no-such-node", json!([])),
        )
        .await
        .expect("pod");
        eventually("orphan deleted", || async {
            matches!(pods.get_opt("orphan").await, Ok(None))
        })
        .await;
        let nodes: Api<Node> = Api::all(c.client.clone());
        nodes
            .create(&PostParams::default(), &node("busy"))
            .await
            .expect("node");
        for i in 0..4 {
            let name = format!("done-{i}");
            pods.create(
                &PostParams::default(),
                &pod_on(&name, "busy", json!([{"operator": "Exists"}])),
            )
            .await
            .expect("pod");
            pods.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
            )
            .await
            .expect("status");
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        eventually("only 2 terminated pods left, the newest", || async {
            let left: Vec<String> = pods
                .list(&ListParams::default())
                .await
                .map(|l| {
                    l.items
                        .iter()
                        .map(|p| p.name_any())
                        .filter(|n| n.starts_with("done-"))
                        .collect()
                })
                .unwrap_or_default();
            left == ["done-2", "done-3"]
        })
        .await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn disruption_budgets_track_healthy_pods() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let c = cluster().await;
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
        }))
        .expect("rs literal");
        Api::<ReplicaSet>::namespaced(c.client.clone(), "default").create(&PostParams::default(), &rs).await.expect("rs");
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        // Ready, as an agent would report.
        eventually("3 ready pods", || async {
            let list = pods.list(&ListParams::default().labels("app=web")).await.map(|l| l.items).unwrap_or_default();
            for p in list.iter().filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running")) {
                let _ = pods
                    .patch_status(&p.name_any(), &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})))
                    .await;
            }
            list.iter().filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")).count() == 3
        })
        .await;
        let pdb: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}
        }))
        .expect("pdb literal");
        let pdbs: Api<PodDisruptionBudget> = Api::namespaced(c.client.clone(), "default");
        pdbs.create(&PostParams::default(), &pdb).await.expect("pdb");
        eventually("one disruption allowed", || async {
            pdbs.get("web").await.ok().and_then(|p| p.status).is_some_and(|s| {
                s.expected_pods == 3 && s.desired_healthy == 2 && s.current_healthy == 3 && s.disruptions_allowed == 1
            })
        })
        .await;
        let names: Vec<String> = pods.list(&ListParams::default().labels("app=web")).await.expect("list").items.iter().map(|p| p.name_any()).collect();
        pods.evict(&names[0], &EvictParams::default()).await.expect("first eviction allowed");
        match pods.evict(&names[1], &EvictParams::default()).await {
            Err(kube::Error::Api(e)) => assert_eq!(e.code, 429),
            other => panic!("second eviction should wait: {other:?}"),
        }
    })
    .await
    .expect("test timed out");
}
