use serde_json::{Value, json};

use crate::patch::{Schema, strategic_merge_patch, three_way_merge};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn deployment(labels: Value, image: &str, env: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": labels},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "nginx",
                    "image": image,
                    "ports": [{"containerPort": 80}],
                    "env": env
                }]}
            }
        }
    })
}

/// What kubectl does with a manifest: the configuration carries itself in the annotation.
fn annotated(config: &Value) -> Value {
    let mut v = config.clone();
    v["metadata"]["annotations"] = json!({LAST_APPLIED: config.to_string()});
    v
}

#[test]
fn kubectl_apply_after_removing_fields_from_a_deployment_manifest() {
    let schema = Schema::for_kind("apps", "Deployment");
    let old = deployment(
        json!({"app": "web", "tier": "frontend"}),
        "nginx:1.14",
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
    );
    let new = deployment(
        json!({"app": "web"}),
        "nginx:1.16",
        json!([{"name": "A", "value": "1"}]),
    );

    // The live object: the old configuration, server defaults, and a label someone else set.
    let mut live = annotated(&old);
    live["metadata"]["labels"]["owner"] = json!("ops");
    live["metadata"]["uid"] = json!("1234");
    live["spec"]["progressDeadlineSeconds"] = json!(600);
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
    live["status"] = json!({"replicas": 3});

    let modified = annotated(&new);
    let patch = three_way_merge(Some(&old), &modified, &live, schema).unwrap();
    assert_eq!(
        patch,
        json!({
            "metadata": {
                "annotations": {LAST_APPLIED: new.to_string()},
                "labels": {"tier": null}
            },
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "nginx"}],
                "containers": [{
                    "name": "nginx",
                    "image": "nginx:1.16",
                    "$setElementOrder/env": [{"name": "A"}],
                    "env": [{"name": "B", "$patch": "delete"}]
                }]
            }}}
        })
    );

    let result = strategic_merge_patch(&live, &patch, schema).unwrap();
    let mut want = live.clone();
    want["metadata"]["annotations"][LAST_APPLIED] = json!(new.to_string());
    want["metadata"]["labels"] = json!({"app": "web", "owner": "ops"});
    want["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.16");
    want["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}]);
    assert_eq!(result, want);

    // Applying again changes nothing.
    let again = three_way_merge(Some(&new), &modified, &result, schema).unwrap();
    assert_eq!(again, json!({}));
}

#[test]
fn first_apply_deletes_nothing() {
    let schema = Schema::for_kind("apps", "Deployment");
    let config = deployment(json!({"app": "web"}), "nginx", json!([]));
    let mut live = config.clone();
    live["metadata"]["labels"]["extra"] = json!("x");
    let patch = three_way_merge(None, &config, &live, schema).unwrap();
    assert_eq!(patch, json!({}));
}

#[test]
fn primitive_merge_lists_use_parallel_deletion_lists() {
    let schema = Schema::for_kind("", "ConfigMap");
    let original = json!({"metadata": {"finalizers": ["a", "b"]}});
    let modified = json!({"metadata": {"finalizers": ["a", "c"]}});
    let current = json!({"metadata": {"finalizers": ["a", "b", "z"]}});
    let patch = three_way_merge(Some(&original), &modified, &current, schema).unwrap();
    assert_eq!(
        patch,
        json!({"metadata": {
            "$deleteFromPrimitiveList/finalizers": ["b"],
            "$setElementOrder/finalizers": ["a", "c"],
            "finalizers": ["c"]
        }})
    );
    let result = strategic_merge_patch(&current, &patch, schema).unwrap();
    assert_eq!(result, json!({"metadata": {"finalizers": ["a", "c", "z"]}}));
}

#[test]
fn retain_keys_fields_carry_the_directive() {
    let schema = Schema::for_kind("apps", "Deployment");
    let original =
        json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
    let modified = json!({"spec": {"strategy": {"type": "Recreate"}}});
    let patch = three_way_merge(Some(&original), &modified, &original, schema).unwrap();
    assert_eq!(
        patch,
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}})
    );
    let result = strategic_merge_patch(&original, &patch, schema).unwrap();
    assert_eq!(result, json!({"spec": {"strategy": {"type": "Recreate"}}}));
}

#[test]
fn custom_resources_get_a_json_merge_patch() {
    let schema = Schema::for_kind("example.com", "Widget");
    let original = json!({"spec": {"a": 1, "items": [1, 2]}});
    let modified = json!({"spec": {"items": [1]}});
    let current = json!({"spec": {"a": 1, "b": 2, "items": [1, 2]}});
    let patch = three_way_merge(Some(&original), &modified, &current, schema).unwrap();
    assert_eq!(patch, json!({"spec": {"a": null, "items": [1]}}));
}
