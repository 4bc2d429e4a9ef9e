use serde_json::{Value, json};

use crate::patch::{
    ApplyError, FieldManager, ManagedFieldsEntry, Schema, server_side_apply, update_managed_fields,
};

fn ctx(manager: &str) -> FieldManager<'_> {
    FieldManager {
        manager,
        time: "2026-01-01T00:00:00Z",
        subresource: None,
        ignored_fields: &["status"],
    }
}

fn schema() -> Schema {
    Schema::for_kind("apps", "Deployment")
}

fn config(replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "nginx",
                    "image": "nginx",
                    "ports": [{"containerPort": 80}]
                }]}
            }
        }
    })
}

fn entry<'a>(entries: &'a [ManagedFieldsEntry], manager: &str) -> Option<&'a ManagedFieldsEntry> {
    entries.iter().find(|e| e.manager == manager)
}

#[test]
fn fields_v1_of_a_deployment_with_containers_and_ports() {
    let (obj, entries) =
        server_side_apply(None, &config(2), &ctx("m1"), false, &[], schema()).unwrap();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(
        (
            e.manager.as_str(),
            e.operation.as_str(),
            e.api_version.as_str(),
            e.fields_type.as_str()
        ),
        ("m1", "Apply", "apps/v1", "FieldsV1")
    );
    assert_eq!(e.time.as_deref(), Some("2026-01-01T00:00:00Z"));
    assert_eq!(
        e.fields_v1,
        Some(json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                        ".": {},
                        "f:image": {},
                        "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                            ".": {},
                            "f:containerPort": {}
                        }}
                    }}}
                }
            }
        }))
    );
    let serialized = serde_json::to_value(e).unwrap();
    assert_eq!(
        serialized["fieldsType"], "FieldsV1",
        "entries serialize with the API's field names: {serialized}"
    );
    assert_eq!(obj["metadata"]["managedFields"][0]["manager"], "m1");
    assert_eq!(obj["spec"]["replicas"], 2);
}

#[test]
fn two_managers_conflict_and_force_transfers_ownership() {
    let (live, entries) =
        server_side_apply(None, &config(2), &ctx("m1"), false, &[], schema()).unwrap();

    // The same value is shared, not a conflict.
    let same = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}});
    let (_, shared) =
        server_side_apply(Some(&live), &same, &ctx("m2"), false, &entries, schema()).unwrap();
    assert_eq!(shared.len(), 2);

    // A different value is.
    let other = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5}});
    let err =
        server_side_apply(Some(&live), &other, &ctx("m2"), false, &entries, schema()).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "m1": .spec.replicas"#
    );
    let ApplyError::Conflict(conflicts) = err else {
        panic!("not a conflict");
    };
    assert_eq!(conflicts[0].field, ".spec.replicas");

    // Forced: m2 takes the field over.
    let (forced, entries) =
        server_side_apply(Some(&live), &other, &ctx("m2"), true, &entries, schema()).unwrap();
    assert_eq!(forced["spec"]["replicas"], 5);
    let m1 = entry(&entries, "m1").unwrap().fields_v1.clone().unwrap();
    let m2 = entry(&entries, "m2").unwrap().fields_v1.clone().unwrap();
    assert!(m1["f:spec"].get("f:replicas").is_none(), "{m1}");
    assert_eq!(m2, json!({"f:spec": {"f:replicas": {}}}));

    // m1 applying its old value now conflicts with m2.
    let err = server_side_apply(
        Some(&forced),
        &config(2),
        &ctx("m1"),
        false,
        &entries,
        schema(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains(r#"conflict with "m2": .spec.replicas"#),
        "{err}"
    );
}

#[test]
fn fields_an_applier_drops_are_removed_unless_someone_else_owns_them() {
    let mut with_extra = config(2);
    with_extra["metadata"]["labels"]["tier"] = json!("web");
    with_extra["spec"]["minReadySeconds"] = json!(5);
    let (live, entries) =
        server_side_apply(None, &with_extra, &ctx("m1"), false, &[], schema()).unwrap();

    // m2 also applies the tier label.
    let m2 = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"tier": "web"}}});
    let (live, entries) =
        server_side_apply(Some(&live), &m2, &ctx("m2"), false, &entries, schema()).unwrap();

    // m1 drops the label and minReadySeconds: the label stays (m2 owns it), the field goes.
    let (after, entries) = server_side_apply(
        Some(&live),
        &config(2),
        &ctx("m1"),
        false,
        &entries,
        schema(),
    )
    .unwrap();
    assert_eq!(
        after["metadata"]["labels"],
        json!({"app": "web", "tier": "web"})
    );
    assert!(after["spec"].get("minReadySeconds").is_none(), "{after}");

    // m1 drops a container: it is removed.
    let mut fewer = config(2);
    fewer["spec"]["template"]["spec"]["containers"] =
        json!([{"name": "sidecar", "image": "busybox"}]);
    let (after, _) =
        server_side_apply(Some(&after), &fewer, &ctx("m1"), false, &entries, schema()).unwrap();
    assert_eq!(
        after["spec"]["template"]["spec"]["containers"],
        json!([{"name": "sidecar", "image": "busybox"}])
    );
}

#[test]
fn updates_take_over_the_fields_they_change() {
    let (live, entries) =
        server_side_apply(None, &config(2), &ctx("m1"), false, &[], schema()).unwrap();
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(7);
    let entries =
        update_managed_fields(Some(&live), &scaled, &ctx("kubectl"), &entries, schema()).unwrap();
    let kubectl = entry(&entries, "kubectl").unwrap();
    assert_eq!(kubectl.operation, "Update");
    assert_eq!(
        kubectl.fields_v1,
        Some(json!({"f:spec": {"f:replicas": {}}}))
    );
    let m1 = entry(&entries, "m1").unwrap().fields_v1.clone().unwrap();
    assert!(m1["f:spec"].get("f:replicas").is_none(), "{m1}");
    // Apply entries sort before Update entries.
    assert_eq!(entries[0].operation, "Apply");

    // The applier now conflicts with the updater, printed with its API version.
    let err = server_side_apply(
        Some(&scaled),
        &config(2),
        &ctx("m1"),
        false,
        &entries,
        schema(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl" using apps/v1 at 2026-01-01T00:00:00Z: .spec.replicas"#
    );
}

#[test]
fn create_by_update_records_added_fields() {
    let obj = config(1);
    let entries = update_managed_fields(None, &obj, &ctx("kubectl-create"), &[], schema()).unwrap();
    let fields = entries[0].fields_v1.clone().unwrap();
    assert_eq!(
        fields["f:metadata"],
        json!({"f:labels": {".": {}, "f:app": {}}})
    );
    assert_eq!(
        fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"]["f:ports"],
        json!({".": {}, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}})
    );
    assert!(fields.get("f:apiVersion").is_none());
}

#[test]
fn applied_managed_fields_are_rejected() {
    let mut bad = config(1);
    bad["metadata"]["managedFields"] = json!([{"manager": "x"}]);
    let err = server_side_apply(None, &bad, &ctx("m1"), false, &[], schema()).unwrap_err();
    assert!(matches!(err, ApplyError::Invalid(_)));
}

/// A create's managed fields, built in one walk, are what comparing the object with an
/// empty one gives.
#[test]
fn created_fields_match_a_comparison_with_nothing() {
    use crate::patch::apply::{compare, created_fields, owned_fields};
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "uid": "u", "creationTimestamp": "t",
                     "labels": {"app": "web"}, "annotations": {},
                     "managedFields": [{"manager": "x", "operation": "Update"}],
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "1"}]},
        "spec": {"containers": [
                    {"name": "a", "image": "i", "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
                     "env": [{"name": "E", "value": "1"}], "args": ["x", "y", "x"],
                     "resources": {"requests": {"cpu": "10m"}}},
                    {"name": "b", "image": "j"}],
                 "volumes": [{"name": "v", "emptyDir": {}}], "nodeSelector": {"k": "v"},
                 "tolerations": [{"key": "t", "operator": "Exists"}]},
        "status": {"phase": "Pending"}
    });
    let bare = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "generateName": "c-"},
                    "data": {"a": "1", "b": ""}, "binaryData": {}});
    let custom = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                        "spec": {"list": [{"a": 1}, 2, [3]], "nested": {"deep": {"x": null}}}});
    let cases = [
        (pod.clone(), Schema::for_kind("", "Pod"), &["status"][..]),
        (pod, Schema::for_kind("", "Pod"), &["spec", "metadata"][..]),
        (config(3), schema(), &["status"][..]),
        (bare, Schema::for_kind("", "ConfigMap"), &[][..]),
        (cm, Schema::for_kind("", "ConfigMap"), &[][..]),
        (custom, Schema::unknown(), &["status"][..]),
    ];
    for (obj, schema, ignored) in cases {
        let ctx = FieldManager {
            ignored_fields: ignored,
            ..ctx("kubectl-create")
        };
        let (changed, removed) = compare(&json!({}), &obj, schema);
        assert!(removed.is_empty());
        let changed = owned_fields(changed, &ctx);
        let want = (!changed.is_empty()).then(|| changed.to_fields_v1());
        let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let got = created_fields(&obj, &ctx, schema, api_version);
        assert_eq!(got.first().and_then(|e| e.fields_v1.clone()), want, "{obj}");
        assert!(got.len() <= 1);
        let via_update = update_managed_fields(None, &obj, &ctx, &[], schema).unwrap();
        assert_eq!(via_update, got);
    }
}

/// An entry moved into a JSON value is what serializing it gives.
#[test]
fn entries_into_values_serialize_alike() {
    let full = ManagedFieldsEntry {
        manager: "m".into(),
        operation: "Update".into(),
        api_version: "v1".into(),
        time: Some("2026-01-01T00:00:00Z".into()),
        fields_type: "FieldsV1".into(),
        fields_v1: Some(json!({"f:data": {"f:a": {}}})),
        subresource: Some("status".into()),
    };
    let sparse = ManagedFieldsEntry {
        manager: "m".into(),
        ..Default::default()
    };
    for e in [full, sparse] {
        let want = serde_json::to_string(&e).unwrap();
        assert_eq!(e.into_value().to_string(), want);
    }
}

#[test]
fn writes_leave_other_endpoints_fields_and_untouched_managers_alone() {
    let s = Schema::for_kind("", "Pod");
    let main = |manager| FieldManager {
        manager,
        time: "2026-01-01T00:00:00Z",
        subresource: None,
        ignored_fields: &["status"],
    };
    let created = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"a": "1"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]}
    });
    let entries = update_managed_fields(None, &created, &main("creator"), &[], s).unwrap();

    // A status write: the creator's entry is kept as it was, time included.
    let mut running = created.clone();
    running["status"] = json!({"phase": "Running", "podIP": "10.0.0.1"});
    let kubelet = FieldManager {
        manager: "kubelet",
        time: "2026-01-02T00:00:00Z",
        subresource: Some("status"),
        ignored_fields: &["spec", "metadata"],
    };
    let entries = update_managed_fields(Some(&created), &running, &kubelet, &entries, s).unwrap();
    assert_eq!(
        entry(&entries, "creator").unwrap().time.as_deref(),
        Some("2026-01-01T00:00:00Z")
    );
    let owned = entry(&entries, "kubelet").unwrap();
    assert_eq!(owned.subresource.as_deref(), Some("status"));
    assert_eq!(
        owned.fields_v1,
        Some(json!({"f:status": {"f:phase": {}, "f:podIP": {}}}))
    );

    // An update of the main resource that carries no status changes a label: the status
    // stays its owner's, the label moves to the editor.
    let mut relabeled = created.clone();
    relabeled["metadata"]["labels"]["a"] = json!("2");
    let after =
        update_managed_fields(Some(&running), &relabeled, &main("editor"), &entries, s).unwrap();
    assert_eq!(entry(&after, "kubelet"), entry(&entries, "kubelet"));
    assert_eq!(
        entry(&after, "editor").unwrap().fields_v1,
        Some(json!({"f:metadata": {"f:labels": {"f:a": {}}}}))
    );
    let creator = entry(&after, "creator").unwrap().fields_v1.clone().unwrap();
    assert!(
        creator["f:metadata"]["f:labels"].get("f:a").is_none(),
        "{creator}"
    );
    assert!(creator["f:spec"].get("f:containers").is_some(), "{creator}");
}

#[test]
fn a_writer_changing_only_its_own_fields_keeps_its_set_and_moves_its_time() {
    let s = Schema::for_kind("", "Pod");
    let kubelet = |time| FieldManager {
        manager: "kubelet",
        time,
        subresource: Some("status"),
        ignored_fields: &["spec", "metadata"],
    };
    let pod = |phase: &str, ready: &str, extra: Option<(&str, &str)>| {
        let mut p = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]}
        });
        if let Some((k, v)) = extra {
            p["status"][k] = json!(v);
        }
        p
    };
    let pending = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i"}]}
    });
    let first = pod("Pending", "False", None);
    let entries = update_managed_fields(
        Some(&pending),
        &first,
        &kubelet("2026-01-01T00:00:00Z"),
        &[],
        s,
    )
    .unwrap();
    // Stored in another member order than this server writes: a set taken over as stored
    // keeps it (a decoded and encoded one would not).
    let mut entries = entries;
    let f = entries[0].fields_v1.as_mut().unwrap()["f:status"]
        .as_object_mut()
        .unwrap();
    let conditions = f.shift_remove("f:conditions").unwrap();
    f.insert("f:conditions".into(), conditions);
    let stored = entry(&entries, "kubelet").unwrap().clone();
    assert!(
        serde_json::to_string(&stored.fields_v1)
            .unwrap()
            .find("f:phase")
            < serde_json::to_string(&stored.fields_v1)
                .unwrap()
                .find("f:conditions")
    );

    // Only fields it owns change: the set is the stored one, the time moves.
    let running = pod("Running", "True", None);
    let after = update_managed_fields(
        Some(&first),
        &running,
        &kubelet("2026-01-02T00:00:00Z"),
        &entries,
        s,
    )
    .unwrap();
    let now = entry(&after, "kubelet").unwrap();
    assert_eq!(
        serde_json::to_string(&now.fields_v1).unwrap(),
        serde_json::to_string(&stored.fields_v1).unwrap()
    );
    assert_eq!(now.time.as_deref(), Some("2026-01-02T00:00:00Z"));
    assert_eq!(after.len(), 1);

    // A field it did not own yet: the set grows, as before.
    let with_ip = pod("Running", "True", Some(("podIP", "10.0.0.1")));
    let grown = update_managed_fields(
        Some(&running),
        &with_ip,
        &kubelet("2026-01-03T00:00:00Z"),
        &after,
        s,
    )
    .unwrap();
    let fields = entry(&grown, "kubelet").unwrap().fields_v1.clone().unwrap();
    assert!(fields["f:status"].get("f:podIP").is_some(), "{fields}");
    assert!(fields["f:status"].get("f:phase").is_some(), "{fields}");

    // Another status writer that owned the phase loses it to the kubelet's change.
    let other = FieldManager {
        manager: "other",
        time: "2026-01-04T00:00:00Z",
        subresource: Some("status"),
        ignored_fields: &["spec", "metadata"],
    };
    let failed = pod("Failed", "True", Some(("podIP", "10.0.0.1")));
    let shared = update_managed_fields(Some(&with_ip), &failed, &other, &grown, s).unwrap();
    assert!(
        entry(&shared, "kubelet")
            .unwrap()
            .fields_v1
            .as_ref()
            .unwrap()["f:status"]
            .get("f:phase")
            .is_none()
    );
    let back = pod("Running", "True", Some(("podIP", "10.0.0.1")));
    let mut taken = update_managed_fields(
        Some(&failed),
        &back,
        &kubelet("2026-01-05T00:00:00Z"),
        &shared,
        s,
    )
    .unwrap();
    taken.sort_by(|a, b| a.manager.cmp(&b.manager));
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert!(
        taken[0].fields_v1.as_ref().unwrap()["f:status"]
            .get("f:phase")
            .is_some()
    );
}

/// `config(replicas)` as kubectl's client-side apply creates it: with its last-applied
/// annotation, every field owned by `kubectl-client-side-apply`.
fn client_side_applied(replicas: i64) -> (Value, Vec<ManagedFieldsEntry>) {
    let mut obj = config(replicas);
    let last = format!("{}\n", crate::gojson::to_go_json_compact(&obj));
    obj["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": last});
    let entries =
        update_managed_fields(None, &obj, &ctx("kubectl-client-side-apply"), &[], schema())
            .unwrap();
    (obj, entries)
}

#[test]
fn kubectl_server_side_apply_takes_over_its_client_side_apply_without_conflict() {
    let (live, entries) = client_side_applied(2);
    let changed = config(3);

    // Another manager conflicts on the field client-side apply set.
    let err = server_side_apply(Some(&live), &changed, &ctx("m2"), false, &entries, schema())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(r#"conflict with "kubectl-client-side-apply""#),
        "{err}"
    );

    // kubectl does not: the field still holds what its client-side apply set.
    let (obj, entries) = server_side_apply(
        Some(&live),
        &changed,
        &ctx("kubectl"),
        false,
        &entries,
        schema(),
    )
    .unwrap();
    assert_eq!(obj["spec"]["replicas"], 3);
    let csa = entry(&entries, "kubectl-client-side-apply")
        .unwrap()
        .fields_v1
        .clone()
        .unwrap();
    assert!(csa["f:spec"].get("f:replicas").is_none(), "{csa}");
    // The annotation now holds the configuration kubectl applied.
    let last = obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .unwrap();
    assert_eq!(
        last,
        format!("{}\n", crate::gojson::to_go_json_compact(&changed))
    );
}

/// The error of kubectl's server-side apply of `config(3)` over `live`.
fn kubectl_applies_3_replicas(live: &Value, entries: &[ManagedFieldsEntry]) -> ApplyError {
    server_side_apply(
        Some(live),
        &config(3),
        &ctx("kubectl"),
        false,
        entries,
        schema(),
    )
    .unwrap_err()
}

#[test]
fn kubectl_server_side_apply_conflicts_on_fields_changed_since_its_client_side_apply() {
    let (live, entries) = client_side_applied(2);
    // Someone scaled the Deployment after the client-side apply.
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(6);
    let entries =
        update_managed_fields(Some(&live), &scaled, &ctx("scaler"), &entries, schema()).unwrap();
    let err = kubectl_applies_3_replicas(&scaled, &entries);
    assert!(err.to_string().contains(r#""scaler""#), "{err}");
    assert!(err.to_string().contains(".spec.replicas"), "{err}");

    // Without the annotation, kubectl conflicts like any other manager.
    let (mut plain, entries) = client_side_applied(2);
    plain["metadata"]
        .as_object_mut()
        .unwrap()
        .shift_remove("annotations");
    let err = kubectl_applies_3_replicas(&plain, &entries);
    assert!(err.to_string().contains(".spec.replicas"), "{err}");
}

/// A custom resource's lists merge as its CRD schema says: by keys, as a set (its
/// finalizers, as every object's metadata), or whole.
#[test]
fn custom_resource_lists_follow_their_crd_schema() {
    let schema = Schema::from_crd(&json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "replicas": {"type": "integer"},
            "ports": {"type": "array", "x-kubernetes-list-type": "map",
                      "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
                      "items": {"type": "object", "properties": {
                          "name": {"type": "string"},
                          "containerPort": {"type": "integer"},
                          "protocol": {"type": "string"}}}},
            "tags": {"type": "array", "items": {"type": "string"}}}}}
    }));
    let foo = |finalizers: Value, ports: Value, tags: Value| {
        json!({"apiVersion": "example.com/v1", "kind": "Foo",
               "metadata": {"name": "f", "finalizers": finalizers},
               "spec": {"ports": ports, "tags": tags}})
    };
    let port =
        |name: &str, number: i64| json!({"name": name, "containerPort": number, "protocol": "TCP"});
    let (live, entries) = server_side_apply(
        None,
        &foo(json!(["a"]), json!([port("x", 80)]), json!(["t1"])),
        &ctx("one"),
        false,
        &[],
        schema,
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&entry(&entries, "one").unwrap().fields_v1).unwrap(),
        json!({"f:metadata": {"f:finalizers": {"v:\"a\"": {}}},
               "f:spec": {"f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":
                              {".": {}, "f:containerPort": {}, "f:name": {}, "f:protocol": {}}},
                          "f:tags": {}}})
    );
    // Another manager adds a finalizer and a port: both lists merge.
    let (live, entries) = server_side_apply(
        Some(&live),
        &foo(json!(["b"]), json!([port("y", 8080)]), json!(["t2"])),
        &ctx("two"),
        true,
        &entries,
        schema,
    )
    .unwrap();
    assert_eq!(live["metadata"]["finalizers"], json!(["a", "b"]));
    assert_eq!(
        live["spec"]["ports"],
        json!([port("x", 80), port("y", 8080)])
    );
    // The atomic list is replaced whole by the forced apply.
    assert_eq!(live["spec"]["tags"], json!(["t2"]));
    // The same key with another name is a conflict on that field alone.
    let err = server_side_apply(
        Some(&live),
        &foo(json!(["b"]), json!([port("z", 80)]), json!(["t2"])),
        &ctx("two"),
        false,
        &entries,
        schema,
    )
    .unwrap_err();
    match err {
        ApplyError::Conflict(c) => assert_eq!(c.len(), 1, "{c:?}"),
        other => panic!("{other:?}"),
    }
}
