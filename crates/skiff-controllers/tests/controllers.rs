//! The garbage collector and the namespace controller against an in-process API server.

mod common;

use common::{Cluster, api_server, eventually};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

async fn cluster() -> Cluster {
    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let client = api_server(&cancel, &mut tasks).await;
    tasks.spawn(skiff_controllers::run(client.clone(), cancel.clone()));
    Cluster {
        client,
        cancel,
        _tasks: tasks,
    }
}

fn owned_by(owner: &ConfigMap, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: owner.name_any(),
        uid: owner.uid().expect("created objects have a uid"),
        block_owner_deletion: Some(block),
        controller: Some(true),
    }
}

fn cm(name: &str, owners: Vec<OwnerReference>, finalizers: Vec<String>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references: (!owners.is_empty()).then_some(owners),
            finalizers: (!finalizers.is_empty()).then_some(finalizers),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    }
}

async fn create(api: &Api<ConfigMap>, c: ConfigMap) -> ConfigMap {
    api.create(&PostParams::default(), &c)
        .await
        .expect("create configmap")
}

async fn gone(api: &Api<ConfigMap>, name: &str) -> bool {
    matches!(api.get_opt(name).await, Ok(None))
}

#[tokio::test]
async fn background_deletion_collects_dependents() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let c = cluster().await;
        let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
        let owner = create(&api, cm("owner", vec![], vec![])).await;
        let other = create(&api, cm("other", vec![], vec![])).await;
        create(&api, cm("dep", vec![owned_by(&owner, false)], vec![])).await;
        create(
            &api,
            cm(
                "shared",
                vec![owned_by(&owner, false), owned_by(&other, false)],
                vec![],
            ),
        )
        .await;
        api.delete("owner", &DeleteParams::background())
            .await
            .expect("delete owner");
        eventually("dep is collected", || gone(&api, "dep")).await;
        // A dependent with another owner stays, losing only the dangling reference.
        eventually("shared loses the dangling reference", || async {
            api.get("shared")
                .await
                .map(|s| s.owner_references().len() == 1)
                .unwrap_or(false)
        })
        .await;
        let shared = api.get("shared").await.expect("shared stays");
        assert_eq!(shared.owner_references()[0].name, "other");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn dependents_of_an_owner_that_never_existed_are_collected() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let c = cluster().await;
        let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
        let mut ghost = cm("ghost", vec![], vec![]);
        ghost.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());
        create(&api, cm("orphaned", vec![owned_by(&ghost, false)], vec![])).await;
        eventually("orphaned is collected", || gone(&api, "orphaned")).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn foreground_deletion_waits_for_blocking_dependents() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let c = cluster().await;
        let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
        let owner = create(&api, cm("owner", vec![], vec![])).await;
        // The blocking dependent holds a finalizer of its own, so the owner must wait for it.
        create(
            &api,
            cm(
                "blocker",
                vec![owned_by(&owner, true)],
                vec!["example.com/hold".into()],
            ),
        )
        .await;
        create(&api, cm("free", vec![owned_by(&owner, false)], vec![])).await;
        api.delete("owner", &DeleteParams::foreground())
            .await
            .expect("delete owner");
        eventually("free is collected", || gone(&api, "free")).await;
        eventually("blocker is being deleted", || async {
            api.get("blocker")
                .await
                .is_ok_and(|b| b.metadata.deletion_timestamp.is_some())
        })
        .await;
        let o = api.get("owner").await.expect("owner waits");
        assert!(o.finalizers().iter().any(|f| f == "foregroundDeletion"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(api.get("owner").await.is_ok(), "owner still waits");
        api.patch(
            "blocker",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("release blocker");
        eventually("owner goes once the blocker is gone", || {
            gone(&api, "owner")
        })
        .await;
        assert!(gone(&api, "blocker").await);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn orphan_deletion_strips_owner_references() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let c = cluster().await;
        let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
        let owner = create(&api, cm("owner", vec![], vec![])).await;
        create(&api, cm("dep", vec![owned_by(&owner, true)], vec![])).await;
        api.delete("owner", &DeleteParams::orphan())
            .await
            .expect("delete owner");
        eventually("owner is deleted", || gone(&api, "owner")).await;
        let dep = api.get("dep").await.expect("dep stays");
        assert!(dep.owner_references().is_empty(), "{dep:?}");
        // And it stays.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(api.get("dep").await.is_ok());
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_content_then_the_namespace() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let c = cluster().await;
        let namespaces: Api<Namespace> = Api::all(c.client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &Namespace {
                    metadata: ObjectMeta {
                        name: Some("foo".into()),
                        ..ObjectMeta::default()
                    },
                    ..Namespace::default()
                },
            )
            .await
            .expect("create namespace");
        let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), "foo");
        for i in 0..5 {
            create(&api, cm(&format!("c{i}"), vec![], vec![])).await;
        }
        create(&api, cm("held", vec![], vec!["example.com/hold".into()])).await;
        // A pod held by a finalizer: nothing else goes while it is there.
        let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(c.client.clone(), "foo");
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "finalizers": ["example.com/hold"]},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}
        }))
        .expect("pod literal");
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("create pod");
        namespaces
            .delete("foo", &DeleteParams::default())
            .await
            .expect("delete namespace");
        eventually("the pod is being deleted", || async {
            pods.get("p")
                .await
                .is_ok_and(|p| p.metadata.deletion_timestamp.is_some())
        })
        .await;
        eventually("the namespace says pods remain", || async {
            namespaces.get("foo").await.is_ok_and(|ns| {
                ns.status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "NamespaceDeletionContentFailure" && c.status == "True")
            })
        })
        .await;
        assert_eq!(
            api.list(&Default::default())
                .await
                .map(|l| l.items.len())
                .ok(),
            Some(6),
            "configmaps went while a pod remained"
        );
        pods.patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("release the pod");
        eventually("the content goes", || async {
            api.list(&Default::default())
                .await
                .is_ok_and(|l| l.items.len() == 1)
        })
        .await;
        eventually("the namespace says what remains", || async {
            namespaces.get("foo").await.is_ok_and(|ns| {
                ns.status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "NamespaceFinalizersRemaining" && c.status == "True")
            })
        })
        .await;
        api.patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("release held");
        eventually("the namespace goes", || async {
            matches!(namespaces.get_opt("foo").await, Ok(None))
        })
        .await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn metadata_only_requests_get_partial_object_metadata() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let c = cluster().await;
        let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
        let mut with_data = cm("big", vec![], vec![]);
        with_data.data = Some([("k".to_string(), "v".repeat(1000))].into());
        create(&api, with_data).await;
        let list = api
            .list_metadata(&Default::default())
            .await
            .expect("list metadata");
        assert_eq!(list.types.kind, "PartialObjectMetadataList");
        assert_eq!(list.types.api_version, "meta.k8s.io/v1");
        let item = list
            .items
            .iter()
            .find(|i| i.name_any() == "big")
            .expect("listed");
        assert_eq!(
            item.types.as_ref().map(|t| t.kind.as_str()),
            Some("PartialObjectMetadata")
        );
        let one = api.get_metadata("big").await.expect("get metadata");
        assert_eq!(
            one.types.map(|t| t.kind),
            Some("PartialObjectMetadata".into())
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn namespace_deletion_removes_custom_resources_too() {
    use kube::api::{ApiResource, DynamicObject};
    tokio::time::timeout(Duration::from_secs(60), async {
        let c = cluster().await;
        let crds: Api<DynamicObject> = Api::all_with(
            c.client.clone(),
            &ApiResource {
                group: "apiextensions.k8s.io".into(),
                version: "v1".into(),
                api_version: "apiextensions.k8s.io/v1".into(),
                kind: "CustomResourceDefinition".into(),
                plural: "customresourcedefinitions".into(),
            },
        );
        let crd: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
            }
        }))
        .expect("crd");
        crds.create(&PostParams::default(), &crd).await.expect("create crd");
        let namespaces: Api<Namespace> = Api::all(c.client.clone());
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "crs"}})).expect("ns");
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        let widgets: Api<DynamicObject> = Api::namespaced_with(
            c.client.clone(),
            "crs",
            &ApiResource {
                group: "example.com".into(),
                version: "v1".into(),
                api_version: "example.com/v1".into(),
                kind: "Widget".into(),
                plural: "widgets".into(),
            },
        );
        let widget: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}
        }))
        .expect("widget");
        eventually("the custom resource is served", || async {
            widgets.create(&PostParams::default(), &widget).await.is_ok()
        })
        .await;
        namespaces
            .delete("crs", &DeleteParams::default())
            .await
            .expect("delete namespace");
        eventually("the namespace goes", || async {
            matches!(namespaces.get_opt("crs").await, Ok(None))
        })
        .await;
        eventually("the widget went with it", || async {
            matches!(widgets.get_opt("w").await, Ok(None))
        })
        .await;
    })
    .await
    .expect("test timed out");
}

/// A repeated Event raises the count of the Event already written, as upstream's recorder
/// does; a different message is an Event of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_events_count_into_one() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let client = api_server(&cancel, &mut tasks).await;
        let recorder =
            skiff_controllers::events::Recorder::new(client.clone(), "cronjob-controller");
        let object = k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("CronJob".into()),
            name: Some("nightly".into()),
            namespace: Some("default".into()),
            uid: Some("3b9f6e8e-0000-4000-8000-000000000001".into()),
            ..Default::default()
        };
        use skiff_controllers::events::EventType;
        for _ in 0..5 {
            recorder
                .record(
                    &object,
                    EventType::Warning,
                    "UnexpectedJob",
                    "Saw a job: j1",
                )
                .await;
        }
        recorder
            .record(
                &object,
                EventType::Warning,
                "UnexpectedJob",
                "Saw a job: j2",
            )
            .await;
        let events: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(client.clone(), "default");
        let mut listed = events
            .list(&Default::default())
            .await
            .expect("list events")
            .items;
        listed.sort_by_key(|e| e.message.clone());
        let counts: Vec<_> = listed
            .iter()
            .map(|e| (e.message.clone().unwrap_or_default(), e.count))
            .collect();
        assert_eq!(
            counts,
            vec![
                ("Saw a job: j1".to_string(), Some(5)),
                ("Saw a job: j2".to_string(), Some(1)),
            ]
        );
        let first = &listed[0];
        assert!(first.last_timestamp >= first.first_timestamp);
        cancel.cancel();
    })
    .await
    .expect("test timed out");
}
