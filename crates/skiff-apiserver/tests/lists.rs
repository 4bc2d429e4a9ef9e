//! Paged lists through a kube client, across a compaction of the revision they were read at.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use std::time::Duration;

mod common;

#[tokio::test]
async fn a_continue_past_compaction_expires_with_a_token_to_go_on() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let s = common::server().await;
        let (client, store) = (s.client.clone(), s.store.clone());
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        for i in 0..10 {
            let cm: ConfigMap =
                serde_json::from_value(json!({"metadata": {"name": format!("cm-{i:02}")}}))
                    .expect("configmap literal");
            cms.create(&PostParams::default(), &cm)
                .await
                .expect("created");
        }
        let first = cms
            .list(&ListParams::default().limit(4))
            .await
            .expect("first page");
        let token = first.metadata.continue_.clone().expect("a continue token");
        let first_rv: i64 = first
            .metadata
            .resource_version
            .as_deref()
            .and_then(|r| r.parse().ok())
            .expect("list resourceVersion");
        let base = "/api/v1/namespaces/default/configmaps?limit=4";
        // Before compaction the token reads the same snapshot.
        let (code, _, page) = common::get(&client, &format!("{base}&continue={token}"), None).await;
        assert_eq!(code, 200, "{page}");
        assert_eq!(
            page["metadata"]["resourceVersion"],
            json!(first_rv.to_string())
        );
        // A change, then the snapshot's revision is compacted away.
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "cm-99"}}))
            .expect("configmap literal");
        cms.create(&PostParams::default(), &cm)
            .await
            .expect("created");
        let now = store.current_revision().await.expect("revision");
        store.compact(now).await.expect("compacted");
        let (code, _, status) =
            common::get(&client, &format!("{base}&continue={token}"), None).await;
        assert_eq!(code, 410, "{status}");
        assert_eq!(status["reason"], "Expired", "{status}");
        assert!(
            status["message"]
                .as_str()
                .is_some_and(|m| m.contains("inconsistent list")),
            "{status}"
        );
        let next = status["metadata"]["continue"]
            .as_str()
            .expect("an inconsistent continue token")
            .to_string();
        // That token goes on after the last key returned, at the newest revision.
        let mut names = Vec::new();
        let mut uri = format!("{base}&continue={next}");
        loop {
            let (code, _, page) = common::get(&client, &uri, None).await;
            assert_eq!(code, 200, "{page}");
            let rv: i64 = page["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|r| r.parse().ok())
                .expect("page resourceVersion");
            assert!(rv > first_rv, "{page}");
            for item in page["items"].as_array().into_iter().flatten() {
                names.push(item["metadata"]["name"].as_str().unwrap_or("").to_string());
            }
            match page["metadata"]["continue"].as_str() {
                Some(t) if !t.is_empty() => uri = format!("{base}&continue={t}"),
                _ => break,
            }
        }
        let want: Vec<String> = (4..10)
            .map(|i| format!("cm-{i:02}"))
            .chain(["cm-99".to_string()])
            .collect();
        assert_eq!(names, want);
    })
    .await
    .expect("test timed out");
}
