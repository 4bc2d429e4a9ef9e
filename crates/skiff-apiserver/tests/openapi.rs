//! `/openapi/v2` publishes custom resources' definitions and answers `If-None-Match`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::time::Duration;

mod common;

#[tokio::test]
async fn v2_publishes_custom_resources_with_an_etag() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let s = common::server().await;
        let client = s.client.clone();
        let (code, headers, doc) = common::get(&client, "/openapi/v2", None).await;
        let etag = headers.get("etag").and_then(|v| v.to_str().ok()).map(str::to_string);
        assert_eq!(code, 200);
        let builtin = etag.expect("an ETag");
        assert!(doc["definitions"]["io.k8s.api.core.v1.Pod"].is_object());
        let (code, _, _) = common::get(&client, "/openapi/v2", Some(&builtin)).await;
        assert_eq!(code, 304);
        let crd: CustomResourceDefinition = serde_json::from_value(json!({
            "metadata": {"name": "foos.pub.example.com"},
            "spec": {"group": "pub.example.com", "scope": "Namespaced",
                     "names": {"plural": "foos", "singular": "foo", "kind": "Foo"},
                     "versions": [{"name": "v1", "served": true, "storage": true,
                                   "schema": {"openAPIV3Schema": {"type": "object", "description": "Foo CRD",
                                       "properties": {"spec": {"type": "object", "properties": {"bars": {"type": "string", "nullable": true}}}}}}}]}
        }))
        .expect("crd literal");
        Api::<CustomResourceDefinition>::all(client.clone())
            .create(&PostParams::default(), &crd)
            .await
            .expect("crd created");
        let name = "com.example.pub.v1.Foo";
        let mut published = Value::Null;
        for _ in 0..100 {
            let (code, headers, doc) = common::get(&client, "/openapi/v2", Some(&builtin)).await;
            let etag = headers.get("etag").and_then(|v| v.to_str().ok());
            if code == 200 && doc["definitions"][name].is_object() {
                assert_ne!(etag, Some(builtin.as_str()));
                published = doc["definitions"][name].clone();
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(published["description"], "Foo CRD", "{published}");
        assert_eq!(
            published["x-kubernetes-group-version-kind"],
            json!([{"group": "pub.example.com", "kind": "Foo", "version": "v1"}])
        );
        assert_eq!(
            published["properties"]["metadata"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert_eq!(
            published["properties"]["spec"]["properties"]["bars"],
            json!({"type": "string"})
        );
    })
    .await
    .expect("test timed out");
}
