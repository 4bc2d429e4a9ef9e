//! Pod subresources (binding, eviction), Priority admission and unconditional updates
//! through a kube client.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, EvictParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use std::time::Duration;

mod common;
use common::server;

fn pod(name: &str, labels: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}
    }))
    .expect("pod literal")
}

fn binding(pod: &str, node: &str) -> Binding {
    Binding {
        metadata: kube::api::ObjectMeta {
            name: Some(pod.into()),
            ..Default::default()
        },
        target: ObjectReference {
            kind: Some("Node".into()),
            name: Some(node.into()),
            ..Default::default()
        },
    }
}

async fn bind(pods: &Api<Pod>, name: &str, node: &str) -> Result<serde_json::Value, kube::Error> {
    pods.create_subresource(
        "binding",
        name,
        &PostParams::default(),
        &binding(name, node),
    )
    .await
}

#[tokio::test]
async fn binding_assigns_once() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let s = server().await;
        let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
        pods.create(&PostParams::default(), &pod("web", json!({})))
            .await
            .expect("create pod");
        let status = bind(&pods, "web", "node-a").await.expect("bind");
        assert_eq!(status["status"], "Success");
        assert_eq!(status["code"], 201);
        let p = pods.get("web").await.expect("get");
        assert_eq!(
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()),
            Some("node-a")
        );
        let scheduled = p
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "PodScheduled")
            .expect("PodScheduled condition");
        assert_eq!(scheduled.status, "True");
        match bind(&pods, "web", "node-b").await {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 409);
                assert!(
                    e.message.contains("already assigned to node \"node-a\""),
                    "{}",
                    e.message
                );
            }
            other => panic!("second binding should conflict: {other:?}"),
        }
        match bind(&pods, "missing", "node-a").await {
            Err(kube::Error::Api(e)) => assert_eq!(e.code, 404),
            other => panic!("binding a missing pod should be 404: {other:?}"),
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn priority_admission_fills_priority() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let s = server().await;
        let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
        let classes: Api<PriorityClass> = Api::all(s.client.clone());
        let system = classes
            .get("system-cluster-critical")
            .await
            .expect("built-in class");
        assert_eq!(system.value, 2_000_000_000);
        let p = pods
            .create(&PostParams::default(), &pod("plain", json!({})))
            .await
            .expect("create");
        let spec = p.spec.expect("spec");
        assert_eq!(spec.priority, Some(0));
        assert_eq!(
            spec.preemption_policy.as_deref(),
            Some("PreemptLowerPriority")
        );

        let high: PriorityClass = serde_json::from_value(json!({
            "metadata": {"name": "high"}, "value": 1000, "preemptionPolicy": "Never"
        }))
        .expect("class literal");
        classes
            .create(&PostParams::default(), &high)
            .await
            .expect("create class");
        let mut hp = pod("important", json!({}));
        hp.spec.as_mut().expect("spec").priority_class_name = Some("high".into());
        let created = pods
            .create(&PostParams::default(), &hp)
            .await
            .expect("create");
        let spec = created.spec.expect("spec");
        assert_eq!(spec.priority, Some(1000));
        assert_eq!(spec.preemption_policy.as_deref(), Some("Never"));

        let mut bad = pod("bad", json!({}));
        bad.spec.as_mut().expect("spec").priority_class_name = Some("nope".into());
        match pods.create(&PostParams::default(), &bad).await {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 403);
                assert!(
                    e.message
                        .contains("no PriorityClass with name nope was found"),
                    "{}",
                    e.message
                );
            }
            other => panic!("unknown class should be forbidden: {other:?}"),
        }

        let default: PriorityClass = serde_json::from_value(json!({
            "metadata": {"name": "everyone"}, "value": 7, "globalDefault": true
        }))
        .expect("class literal");
        classes
            .create(&PostParams::default(), &default)
            .await
            .expect("create class");
        let created = pods
            .create(&PostParams::default(), &pod("defaulted", json!({})))
            .await
            .expect("create");
        let spec = created.spec.expect("spec");
        assert_eq!(spec.priority, Some(7));
        assert_eq!(spec.priority_class_name.as_deref(), Some("everyone"));
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn eviction_honours_disruption_budget() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let s = server().await;
        let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
        let pdbs: Api<PodDisruptionBudget> = Api::namespaced(s.client.clone(), "default");
        for name in ["a", "b"] {
            pods.create(&PostParams::default(), &pod(name, json!({"app": "web"})))
                .await
                .expect("create pod");
            // Running and ready, as an agent would report.
            pods.patch_status(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})),
            )
            .await
            .expect("status");
        }
        let pdb: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}
        }))
        .expect("pdb literal");
        pdbs.create(&PostParams::default(), &pdb).await.expect("create pdb");
        // What the disruption controller would report: both healthy, none may go.
        pdbs.patch_status(
            "web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"status": {"observedGeneration": 1, "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 2, "disruptionsAllowed": 0}})),
        )
        .await
        .expect("pdb status");
        match pods.evict("a", &EvictParams::default()).await {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 429);
                assert_eq!(e.message, "Cannot evict pod as it would violate the pod's disruption budget.");
            }
            other => panic!("eviction should be refused: {other:?}"),
        }
        assert!(pods.get_opt("a").await.expect("get").is_some());
        pdbs.patch_status(
            "web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"status": {"desiredHealthy": 1, "disruptionsAllowed": 1}})),
        )
        .await
        .expect("pdb status");
        pods.evict("a", &EvictParams::default()).await.expect("eviction allowed");
        assert!(pods.get_opt("a").await.expect("get").is_none(), "an unbound pod goes at once");
        let after = pdbs.get("web").await.expect("pdb");
        let st = after.status.expect("status");
        assert_eq!(st.disruptions_allowed, 0);
        assert!(st.disrupted_pods.unwrap_or_default().contains_key("a"));
        // The budget is spent now.
        match pods.evict("b", &EvictParams::default()).await {
            Err(kube::Error::Api(e)) => assert_eq!(e.code, 429),
            other => panic!("second eviction should be refused: {other:?}"),
        }
    })
    .await
    .expect("test timed out");
}

/// A status write is recorded in managedFields under its manager and the `status`
/// subresource, as upstream records the kubelet's, and leaves the other entries alone.
#[tokio::test]
async fn status_writes_record_their_manager() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let s = server().await;
        let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
        let as_manager = |m: &str| PatchParams {
            field_manager: Some(m.into()),
            ..Default::default()
        };
        pods.create(
            &PostParams {
                field_manager: Some("creator".into()),
                ..Default::default()
            },
            &pod("web", json!({"app": "web"})),
        )
        .await
        .expect("create pod");
        let status = json!({"status": {"phase": "Running", "podIP": "10.42.0.5"}});
        pods.patch_status("web", &as_manager("kubelet"), &Patch::Merge(&status))
            .await
            .expect("status patch");
        let labels = json!({"metadata": {"labels": {"tier": "front"}}});
        pods.patch("web", &as_manager("labeler"), &Patch::Merge(&labels))
            .await
            .expect("label patch");
        let got = pods.get("web").await.expect("get pod");
        assert_eq!(
            got.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Running")
        );
        let entries = got.metadata.managed_fields.unwrap_or_default();
        let entry = |manager: &str| {
            entries
                .iter()
                .find(|e| e.manager.as_deref() == Some(manager))
                .unwrap_or_else(|| panic!("no entry for {manager}: {entries:?}"))
        };
        let kubelet = entry("kubelet");
        assert_eq!(kubelet.subresource.as_deref(), Some("status"));
        assert_eq!(kubelet.operation.as_deref(), Some("Update"));
        let fields = serde_json::to_value(&kubelet.fields_v1).expect("fieldsV1");
        assert_eq!(
            fields,
            json!({"f:status": {"f:phase": {}, "f:podIP": {}}}),
            "{entries:?}"
        );
        assert_eq!(entry("creator").subresource, None);
        assert!(
            serde_json::to_value(&entry("creator").fields_v1)
                .expect("fieldsV1")
                .pointer("/f:spec/f:containers")
                .is_some()
        );
        assert_eq!(
            serde_json::to_value(&entry("labeler").fields_v1).expect("fieldsV1"),
            json!({"f:metadata": {"f:labels": {"f:tier": {}}}})
        );
        assert_eq!(entries.len(), 3, "{entries:?}");
    })
    .await
    .expect("test timed out");
}

/// A status write changes status and metadata's labels, annotations and finalizers (as
/// upstream's pod status strategy, which resets only the spec), whether it sends nothing
/// else (as a kubelet does) or other fields too; a value of the wrong type in status is
/// refused either way.
#[tokio::test]
async fn status_writes_change_status_and_metadata_only() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let s = server().await;
        let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
        pods.create(&PostParams::default(), &pod("web", json!({"app": "web"})))
            .await
            .expect("create pod");
        let params = PatchParams::default();
        let only_status = json!({"status": {"phase": "Running", "podIP": "10.42.0.5"}});
        let written = pods
            .patch_status("web", &params, &Patch::Merge(&only_status))
            .await
            .expect("status patch");
        assert_eq!(
            written.status.as_ref().and_then(|st| st.phase.as_deref()),
            Some("Running")
        );
        let mixed = json!({"metadata": {"labels": {"tier": "front"}, "annotations": {"patchedstatus": "true"}},
                           "spec": {"activeDeadlineSeconds": 5},
                           "status": {"phase": "Succeeded"}});
        pods.patch_status("web", &params, &Patch::Merge(&mixed))
            .await
            .expect("mixed status patch");
        let got = pods.get("web").await.expect("get pod");
        assert_eq!(
            got.status.as_ref().and_then(|st| st.phase.as_deref()),
            Some("Succeeded")
        );
        assert_eq!(
            got.status.as_ref().and_then(|st| st.pod_ip.as_deref()),
            Some("10.42.0.5")
        );
        assert_eq!(
            got.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("tier"))
                .map(String::as_str),
            Some("front")
        );
        assert_eq!(
            got.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("patchedstatus"))
                .map(String::as_str),
            Some("true")
        );
        assert_eq!(
            got.spec.as_ref().and_then(|sp| sp.active_deadline_seconds),
            None
        );
        for bad in [
            json!({"status": {"conditions": "ready"}}),
            json!({"status": {"phase": 3}}),
            json!({"spec": {"activeDeadlineSeconds": "soon"}, "status": {"phase": "Running"}}),
        ] {
            match pods.patch_status("web", &params, &Patch::Merge(&bad)).await {
                // Upstream's patcher refuses a result its decoder cannot read: 422 on `patch`.
                Err(kube::Error::Api(e)) => {
                    assert_eq!(
                        (e.code, e.reason.as_str()),
                        (422, "Invalid"),
                        "{bad}: {e:?}"
                    );
                    assert!(e.message.contains("json: cannot unmarshal"), "{e:?}");
                }
                other => panic!("{bad}: want 422, got {other:?}"),
            }
        }
    })
    .await
    .expect("test timed out");
}

/// The server's own components watch without managedFields (none of them reads them); the
/// rest of each object, and GETs, keep everything.
#[tokio::test]
async fn in_process_watches_leave_out_managed_fields() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let s = server().await;
        let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
        let mut events = pods
            .watch(&WatchParams::default(), "0")
            .await
            .expect("watch")
            .boxed();
        pods.create(&PostParams::default(), &pod("web", json!({"app": "web"})))
            .await
            .expect("create pod");
        let status = json!({"status": {"phase": "Running"}});
        pods.patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("status patch");
        for want in ["ADDED", "MODIFIED"] {
            let (kind, got) = match events.try_next().await.expect("event").expect("open") {
                WatchEvent::Added(p) => ("ADDED", p),
                WatchEvent::Modified(p) => ("MODIFIED", p),
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(kind, want);
            assert_eq!(got.metadata.name.as_deref(), Some("web"));
            assert_eq!(got.metadata.managed_fields, None);
            assert!(got.metadata.labels.is_some_and(|l| l["app"] == "web"));
            assert_eq!(
                got.spec.expect("spec").containers[0].image.as_deref(),
                Some("nginx")
            );
        }
        let stored = pods.get("web").await.expect("get pod");
        assert!(stored.metadata.managed_fields.is_some_and(|m| m.len() == 2));
    })
    .await
    .expect("test timed out");
}

/// Updates without a resourceVersion are unconditional: concurrent ones all land (upstream
/// retries them over each other's writes), while one naming a stale version conflicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconditional_updates_win_over_concurrent_writes() {
    use k8s_openapi::api::core::v1::ConfigMap;
    tokio::time::timeout(Duration::from_secs(60), async {
        let s = server().await;
        let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
        let cm = |data: serde_json::Value| -> ConfigMap {
            serde_json::from_value(json!({"metadata": {"name": "shared"}, "data": data}))
                .expect("configmap literal")
        };
        let created = cms
            .create(&PostParams::default(), &cm(json!({})))
            .await
            .expect("create");
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let cms = cms.clone();
                let body = cm(json!({ "writer": w.to_string() }));
                tokio::spawn(async move {
                    for _ in 0..10 {
                        cms.replace("shared", &PostParams::default(), &body).await?;
                    }
                    Ok::<_, kube::Error>(())
                })
            })
            .collect();
        for w in writers {
            w.await.expect("writer task").expect("every update lands");
        }
        let mut stale = cm(json!({"a": "b"}));
        stale.metadata.resource_version = created.metadata.resource_version;
        match cms.replace("shared", &PostParams::default(), &stale).await {
            Err(kube::Error::Api(e)) => assert_eq!(e.code, 409),
            other => panic!("a stale resourceVersion must conflict: {other:?}"),
        }
    })
    .await
    .expect("test timed out");
}

/// RuntimeClass admission: the class must exist, and its overhead and scheduling reach the pod.
#[tokio::test]
async fn runtime_class_admission() {
    use k8s_openapi::api::node::v1::RuntimeClass;
    tokio::time::timeout(Duration::from_secs(30), async {
        let s = server().await;
        let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
        let with_class = |name: &str, class: &str| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"runtimeClassName": class, "containers": [{"name": "c", "image": "nginx"}]}
            }))
            .expect("pod literal")
        };
        match pods.create(&PostParams::default(), &with_class("p1", "missing")).await {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 403, "{e:?}");
                assert_eq!(
                    e.message,
                    r#"pods "p1" is forbidden: pod rejected: RuntimeClass "missing" not found"#
                );
            }
            other => panic!("want 403, got {other:?}"),
        }
        let rc: RuntimeClass = serde_json::from_value(json!({
            "metadata": {"name": "gvisor"},
            "handler": "runsc",
            "overhead": {"podFixed": {"cpu": "250m", "memory": "64Mi"}},
            "scheduling": {"nodeSelector": {"sandbox": "true"},
                           "tolerations": [{"key": "sandbox", "operator": "Exists", "effect": "NoSchedule"}]}
        }))
        .expect("runtime class literal");
        Api::<RuntimeClass>::all(s.client.clone())
            .create(&PostParams::default(), &rc)
            .await
            .expect("runtime class created");
        let pod = pods
            .create(&PostParams::default(), &with_class("p2", "gvisor"))
            .await
            .expect("pod with a class");
        let spec = pod.spec.expect("spec");
        let overhead = serde_json::to_value(&spec.overhead).expect("overhead");
        assert_eq!(overhead, json!({"cpu": "250m", "memory": "64Mi"}));
        assert_eq!(
            spec.node_selector.and_then(|n| n.get("sandbox").cloned()).as_deref(),
            Some("true")
        );
        assert!(
            spec.tolerations
                .unwrap_or_default()
                .iter()
                .any(|t| t.key.as_deref() == Some("sandbox"))
        );
    })
    .await
    .expect("test timed out");
}
