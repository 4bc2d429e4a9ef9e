//! Deletes of objects already being deleted, the default propagation of core
//! ReplicationControllers, and requests for a table of what has none.

use k8s_openapi::api::core::v1::{ConfigMap, ReplicationController};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn send(client: &Client, req: http::Request<Vec<u8>>) -> (u16, Value) {
    let resp = client
        .send(req.map(Into::into))
        .await
        .expect("request is answered");
    let code = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body reads")
        .to_bytes();
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn deletes_follow_upstream() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let cancel = CancellationToken::new();
        let _stop = cancel.clone().drop_guard();
        let config = skiff_apiserver::Config {
            advertise_address: "127.0.0.1:6443".into(),
            service_cidr: "10.43.0.0/16".into(),
            admin_token: "admin".into(),
            node_token: "node".into(),
        };
        let (api, _feeder) =
            skiff_apiserver::ApiServer::new(skiff_store::Store::memory(), config, cancel)
                .await
                .expect("api server starts");
        let client = Client::new(api.router(), "default");
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
        let (code, first) = send(&client, delete()).await;
        assert_eq!(code, 200, "{first}");
        assert!(
            first["metadata"]["deletionTimestamp"].is_string(),
            "{first}"
        );
        let (code, second) = send(&client, delete()).await;
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
        let (code, deleting) = send(
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
        let (code, _) = send(
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
        let (code, status) = send(
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
        let (code, status) = send(
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
