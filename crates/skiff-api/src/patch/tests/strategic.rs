use serde_json::{Value, json};

use crate::patch::{PatchError, Schema, strategic_merge_patch};

fn pod() -> Schema {
    Schema::for_kind("", "Pod")
}

fn smp(original: Value, patch: Value) -> Result<Value, PatchError> {
    strategic_merge_patch(&original, &patch, pod())
}

/// (description, original, patch, result), on Pods: `spec.containers` merges on `name`,
/// `metadata.finalizers` is a merging primitive list, `spec.containers[].args` and
/// `spec.tolerations` are replaced.
#[test]
fn strategic_merge_patch_table() {
    let cases = [
        (
            "add field to map",
            json!({"metadata": {"name": "a"}}),
            json!({"metadata": {"labels": {"x": "1"}}}),
            json!({"metadata": {"name": "a", "labels": {"x": "1"}}}),
        ),
        (
            "null deletes a field; unmatched nulls are dropped",
            json!({"metadata": {"labels": {"x": "1", "y": "2"}}}),
            json!({"metadata": {"labels": {"x": null, "z": null}}}),
            json!({"metadata": {"labels": {"y": "2"}}}),
        ),
        (
            "merge list of maps by key, new items first as upstream orders them",
            json!({"spec": {"containers": [{"name": "1", "other": "a"}, {"name": "2", "value": 2}]}}),
            json!({"spec": {"containers": [{"name": "2", "value": 3}, {"name": "3", "value": 3}]}}),
            json!({"spec": {"containers": [{"name": "1", "other": "a"}, {"name": "2", "value": 3}, {"name": "3", "value": 3}]}}),
        ),
        (
            "add a new item to a merging list",
            json!({"spec": {"containers": [{"name": "1"}, {"name": "2"}]}}),
            json!({"spec": {"containers": [{"name": "3"}]}}),
            json!({"spec": {"containers": [{"name": "3"}, {"name": "1"}, {"name": "2"}]}}),
        ),
        (
            "delete a field of an item",
            json!({"spec": {"containers": [{"name": "1", "image": "a", "other": "x"}]}}),
            json!({"spec": {"containers": [{"name": "1", "other": null}]}}),
            json!({"spec": {"containers": [{"name": "1", "image": "a"}]}}),
        ),
        (
            "$patch: delete on a list item removes every match",
            json!({"spec": {"containers": [{"name": "1"}, {"name": "1"}, {"name": "2", "value": "a"}, {"name": "3"}]}}),
            json!({"spec": {"containers": [{"name": "1", "$patch": "delete"}, {"name": "3", "$patch": "delete"}]}}),
            json!({"spec": {"containers": [{"name": "2", "value": "a"}]}}),
        ),
        (
            "$patch: replace in a list replaces it",
            json!({"spec": {"containers": [{"name": "1"}, {"name": "2"}]}}),
            json!({"spec": {"containers": [{"name": "9"}, {"$patch": "replace"}]}}),
            json!({"spec": {"containers": [{"name": "9"}]}}),
        ),
        (
            "$patch: replace on a map",
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            json!({"metadata": {"labels": {"c": "3", "$patch": "replace"}}}),
            json!({"metadata": {"labels": {"c": "3"}}}),
        ),
        (
            "$patch: delete on a map empties it",
            json!({"metadata": {"labels": {"a": "1"}}}),
            json!({"metadata": {"labels": {"$patch": "delete"}}}),
            json!({"metadata": {"labels": {}}}),
        ),
        (
            "$patch: merge on a map is the default",
            json!({"metadata": {"labels": {"a": "1"}}}),
            json!({"metadata": {"labels": {"b": "2", "$patch": "merge"}}}),
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
        ),
        (
            "merging primitive list is a union without duplicates",
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["b", "c"]}}),
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
        ),
        (
            "$deleteFromPrimitiveList",
            json!({"metadata": {"finalizers": ["a", "b", "c", "b"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "z"]}}),
            json!({"metadata": {"finalizers": ["a", "c"]}}),
        ),
        (
            "$deleteFromPrimitiveList of a missing list adds nothing",
            json!({"metadata": {}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
            json!({"metadata": {}}),
        ),
        (
            "lists without a strategy are replaced",
            json!({"spec": {"tolerations": [{"key": "a"}], "containers": [{"name": "1", "args": ["x", "y"]}]}}),
            json!({"spec": {"tolerations": [{"key": "b"}], "containers": [{"name": "1", "args": ["z"]}]}}),
            json!({"spec": {"tolerations": [{"key": "b"}], "containers": [{"name": "1", "args": ["z"]}]}}),
        ),
        (
            "$setElementOrder orders the result, server-only items last",
            json!({"spec": {"containers": [{"name": "1", "other": "a"}, {"name": "3"}, {"name": "4"}, {"name": "2"}, {"name": "9"}]}}),
            json!({"spec": {"$setElementOrder/containers": [{"name": "4"}, {"name": "2"}, {"name": "3"}, {"name": "1"}]}}),
            json!({"spec": {"containers": [{"name": "4"}, {"name": "2"}, {"name": "3"}, {"name": "1", "other": "a"}, {"name": "9"}]}}),
        ),
        (
            "$setElementOrder with an added item",
            json!({"spec": {"containers": [{"name": "1", "other": "a"}, {"name": "2"}]}}),
            json!({"spec": {"$setElementOrder/containers": [{"name": "3"}, {"name": "1"}, {"name": "2"}], "containers": [{"name": "3", "value": 3}]}}),
            json!({"spec": {"containers": [{"name": "3", "value": 3}, {"name": "1", "other": "a"}, {"name": "2"}]}}),
        ),
        (
            "$setElementOrder on a primitive list",
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"], "finalizers": ["c"]}}),
            json!({"metadata": {"finalizers": ["c", "b", "a"]}}),
        ),
        (
            "$retainKeys clears the fields it does not list",
            json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}]}}),
            json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["name", "configMap"], "configMap": {"name": "cm"}}]}}),
            json!({"spec": {"volumes": [{"name": "v", "configMap": {"name": "cm"}}]}}),
        ),
        (
            "directives never reach the stored object",
            json!({"spec": {}}),
            json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["name"]}], "$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "a"}]}}),
            json!({"spec": {"volumes": [{"name": "v"}], "containers": [{"name": "a"}]}}),
        ),
        (
            "type change replaces",
            json!({"metadata": {"labels": {"a": "1"}}}),
            json!({"metadata": {"labels": "x"}}),
            json!({"metadata": {"labels": "x"}}),
        ),
    ];
    for (description, original, patch, want) in cases {
        let got = smp(original, patch).unwrap_or_else(|e| panic!("{description}: {e}"));
        assert_eq!(got, want, "{description}");
        let order_of = |v: &Value| v.pointer("/spec/containers").cloned();
        assert_eq!(order_of(&got), order_of(&want), "{description}: order");
    }
}

#[test]
fn bad_directives_are_errors() {
    let cases = [
        (
            "unknown $patch on a map",
            json!({"metadata": {"labels": {}}}),
            json!({"metadata": {"labels": {"$patch": "explode"}}}),
        ),
        (
            "$patch: merge in a list",
            json!({"spec": {"containers": [{"name": "1"}]}}),
            json!({"spec": {"containers": [{"$patch": "merge"}]}}),
        ),
        (
            "missing merge key",
            json!({"spec": {"containers": [{"name": "1"}]}}),
            json!({"spec": {"containers": [{"image": "x"}]}}),
        ),
        (
            "$retainKeys not a list",
            json!({"spec": {"strategy": {}}}),
            json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
        ),
        (
            "$retainKeys omits a patched field",
            json!({"spec": {"strategy": {}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
        ),
        (
            "$setElementOrder not matching the patch order",
            json!({"spec": {"containers": [{"name": "1"}]}}),
            json!({"spec": {"$setElementOrder/containers": [{"name": "1"}, {"name": "2"}], "containers": [{"name": "2"}, {"name": "1", "x": 1}]}}),
        ),
        ("patch not an object", json!({}), json!([1])),
    ];
    for (description, original, patch) in cases {
        let schema = Schema::for_kind("apps", "Deployment");
        let pod_err = strategic_merge_patch(&original, &patch, pod());
        let deploy_err = strategic_merge_patch(&original, &patch, schema);
        assert!(
            pod_err.is_err() || deploy_err.is_err(),
            "{description}: accepted: {pod_err:?}"
        );
    }
}

#[test]
fn deployment_strategy_retain_keys() {
    let live =
        json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
    let got = strategic_merge_patch(&live, &patch, Schema::for_kind("apps", "Deployment")).unwrap();
    assert_eq!(got, json!({"spec": {"strategy": {"type": "Recreate"}}}));
}

#[test]
fn custom_resources_merge_like_json_merge_patch() {
    let live = json!({"spec": {"items": [{"name": "a"}], "m": {"x": 1}}});
    let patch = json!({"spec": {"items": [{"name": "b"}], "m": {"y": 2}}});
    let got =
        strategic_merge_patch(&live, &patch, Schema::for_kind("example.com", "Widget")).unwrap();
    assert_eq!(
        got,
        json!({"spec": {"items": [{"name": "b"}], "m": {"x": 1, "y": 2}}})
    );
}
