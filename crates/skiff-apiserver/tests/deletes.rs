//! Deletes of objects already being deleted, the default propagation of core
//! ReplicationControllers, and requests for a table of what has none.

use k8s_openapi::api::core::v1::{ConfigMap, ReplicationController};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use std::time::Duration;

mod common;

#[tokio::test]
async fn deletes_follow_upstream() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let s = common::server().await;
        let client = s.client.clone();
        // A second delete of an object its finalizer holds writes nothing.
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
        )
        .expect("configmap literal");
        cms.create(&PostParams::default(), &cm)
            .await
            .expect("created");
        let uri = "/api/v1/namespaces/default/configmaps/held";
        let delete = || {
            http::Request::delete(uri)
                .body(Vec::new())
                .expect("request builds")
        };
        let (code, _, first) = common::send(&client, delete()).await;
        assert_eq!(code, 200, "{first}");
        assert!(
            first["metadata"]["deletionTimestamp"].is_string(),
            "{first}"
        );
        let (code, _, second) = common::send(&client, delete()).await;
        assert_eq!(code, 200, "{second}");
        assert_eq!(
            second["metadata"]["resourceVersion"], first["metadata"]["resourceVersion"],
            "{second}"
        );
        // A core ReplicationController deleted without a policy orphans its pods.
        let rcs: Api<ReplicationController> = Api::namespaced(client.clone(), "default");
        let rc: ReplicationController = serde_json::from_value(json!({
            "metadata": {"name": "rc"},
            "spec": {"replicas": 0, "selector": {"app": "rc"},
                     "template": {"metadata": {"labels": {"app": "rc"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
        }))
        .expect("rc literal");
        rcs.create(&PostParams::default(), &rc)
            .await
            .expect("created");
        let rc_uri = "/api/v1/namespaces/default/replicationcontrollers/rc";
        let (code, _, deleting) = common::send(
            &client,
            http::Request::delete(rc_uri)
                .body(Vec::new())
                .expect("request builds"),
        )
        .await;
        assert_eq!(code, 200, "{deleting}");
        assert_eq!(deleting["metadata"]["finalizers"], json!(["orphan"]));
        // With orphanDependents false the answer is 202, as upstream's.
        rcs.create(
            &PostParams::default(),
            &serde_json::from_value::<ReplicationController>(json!({
                "metadata": {"name": "rc2"},
                "spec": {"replicas": 0, "selector": {"app": "rc"},
                         "template": {"metadata": {"labels": {"app": "rc"}},
                                      "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
            }))
            .expect("rc literal"),
        )
        .await
        .expect("created");
        let params = DeleteParams {
            propagation_policy: Some(kube::api::PropagationPolicy::Foreground),
            ..DeleteParams::default()
        };
        rcs.delete("rc2", &params).await.expect("foreground delete");
        let body = serde_json::to_vec(
            &json!({"kind": "DeleteOptions", "apiVersion": "v1", "orphanDependents": false}),
        )
        .expect("options");
        let (code, _, _) = common::send(
            &client,
            http::Request::delete(format!("{rc_uri}2"))
                .body(body)
                .expect("request builds"),
        )
        .await;
        assert_eq!(code, 202);
        // Both ways of saying the policy at once are refused.
        let both = serde_json::to_vec(&json!({"kind": "DeleteOptions", "apiVersion": "v1",
            "orphanDependents": true, "propagationPolicy": "Background"}))
        .expect("options");
        let (code, _, status) = common::send(
            &client,
            http::Request::delete(rc_uri).body(both).expect("request builds"),
        )
        .await;
        assert_eq!(code, 422, "{status}");
        assert_eq!(
            status["message"],
            r#"DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Invalid value: "Background": orphanDependents and deletionPropagation cannot be both set"#
        );
        // Finalizer names are qualified names.
        let odd: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": "odd", "finalizers": ["bad finalizer!!"]}}),
        )
        .expect("configmap literal");
        match cms.create(&PostParams::default(), &odd).await {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 422, "{e:?}");
                assert!(e.message.contains("metadata.finalizers[0]: Invalid value: \"bad finalizer!!\""), "{e:?}");
            }
            other => panic!("want 422, got {other:?}"),
        }
        // A review has no table form.
        let review = serde_json::to_vec(&json!({"apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"nonResourceAttributes": {"path": "/", "verb": "get"}}}))
        .expect("review");
        let (code, _, status) = common::send(
            &client,
            http::Request::post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
                .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
                .header("Content-Type", "application/json")
                .body(review)
                .expect("request builds"),
        )
        .await;
        assert_eq!(code, 406, "{status}");
    })
    .await
    .expect("test timed out");
}
