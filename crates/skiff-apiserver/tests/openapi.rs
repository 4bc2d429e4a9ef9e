//! `/openapi/v2` publishes custom resources' definitions and answers `If-None-Match`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn get(client: &Client, uri: &str, etag: Option<&str>) -> (u16, Option<String>, Value) {
    let mut req = http::Request::get(uri);
    if let Some(e) = etag {
        req = req.header("If-None-Match", e);
    }
    let req = req.body(Vec::new()).expect("request builds");
    let resp = client
        .send(req.map(Into::into))
        .await
        .expect("request is answered");
    let code = resp.status().as_u16();
    let etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body reads")
        .to_bytes();
    (
        code,
        etag,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn v2_publishes_custom_resources_with_an_etag() {
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
        let (code, etag, doc) = get(&client, "/openapi/v2", None).await;
        assert_eq!(code, 200);
        let builtin = etag.expect("an ETag");
        assert!(doc["definitions"]["io.k8s.api.core.v1.Pod"].is_object());
        let (code, _, _) = get(&client, "/openapi/v2", Some(&builtin)).await;
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
            let (code, etag, doc) = get(&client, "/openapi/v2", Some(&builtin)).await;
            if code == 200 && doc["definitions"][name].is_object() {
                assert_ne!(etag.as_deref(), Some(builtin.as_str()));
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
