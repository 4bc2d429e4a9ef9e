use std::time::Instant;

use serde_json::Value;

use super::proto::decode;
use super::*;
use crate::registry;

fn v2() -> Value {
    serde_json::from_slice(v2_json()).expect("v2 is JSON")
}

fn def<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc.pointer(&format!("/definitions/{name}"))
        .unwrap_or_else(|| panic!("no definition {name}"))
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => def(doc, r.trim_start_matches("#/definitions/")),
        None => schema,
    }
}

#[test]
fn v2_has_deployment_with_gvk_and_template() {
    let doc = v2();
    assert_eq!(doc["swagger"], "2.0");
    assert_eq!(doc["info"]["title"], "Kubernetes");
    assert_eq!(doc["info"]["version"], "v1.35.0");
    let d = def(&doc, "io.k8s.api.apps.v1.Deployment");
    assert_eq!(
        d["x-kubernetes-group-version-kind"],
        serde_json::json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
    assert!(d["description"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(
        d.get("required").is_none(),
        "upstream requires nothing of a Deployment"
    );
    let spec = resolve(&doc, &d["properties"]["spec"]);
    assert_eq!(
        spec["properties"]["template"]["$ref"],
        "#/definitions/io.k8s.api.core.v1.PodTemplateSpec"
    );
    let cm = def(&doc, "io.k8s.api.core.v1.ConfigMap");
    assert_eq!(
        cm["x-kubernetes-group-version-kind"][0]["kind"],
        "ConfigMap"
    );
    assert_eq!(cm["properties"]["data"]["type"], "object");
    let list = def(&doc, "io.k8s.api.apps.v1.DeploymentList");
    assert_eq!(
        list["x-kubernetes-group-version-kind"][0]["kind"],
        "DeploymentList"
    );
}

#[test]
fn v2_scalars_are_typed_as_upstream() {
    let doc = v2();
    let q = def(&doc, "io.k8s.apimachinery.pkg.api.resource.Quantity");
    assert_eq!(q["type"], "string");
    assert!(q.get("format").is_none());
    let ios = def(&doc, "io.k8s.apimachinery.pkg.util.intstr.IntOrString");
    assert_eq!(ios["type"], "string");
    assert_eq!(ios["format"], "int-or-string");
    let port = def(&doc, "io.k8s.api.core.v1.ServicePort");
    assert_eq!(
        port["properties"]["targetPort"]["$ref"],
        "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"
    );
    let meta = def(&doc, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
    let ts = resolve(&doc, &meta["properties"]["creationTimestamp"]);
    assert_eq!(ts["type"], "string");
    assert_eq!(ts["format"], "date-time");
    let json = def(
        &doc,
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
    );
    assert!(json.get("type").is_none(), "JSON values may be of any type");
}

/// Walks every schema; kubectl 1.20's parser rejects multiple types, refs with a type and
/// arrays without exactly one items schema.
fn check_schema(doc: &Value, path: &str, s: &Value) {
    let Some(m) = s.as_object() else {
        panic!("{path}: schema is not an object");
    };
    assert!(!m.contains_key("oneOf"), "{path}: oneOf");
    if let Some(r) = m.get("$ref") {
        let name = r.as_str().and_then(|r| r.strip_prefix("#/definitions/"));
        let name = name.unwrap_or_else(|| panic!("{path}: bad ref {r}"));
        assert!(
            doc["definitions"].get(name).is_some(),
            "{path}: dangling ref {name}"
        );
        assert!(!m.contains_key("type"), "{path}: ref with a type");
        return;
    }
    match m.get("type") {
        None | Some(Value::String(_)) => {}
        Some(t) => panic!("{path}: type {t}"),
    }
    if m.get("type").and_then(Value::as_str) == Some("array") {
        let items = m
            .get("items")
            .unwrap_or_else(|| panic!("{path}: array without items"));
        check_schema(doc, &format!("{path}[]"), items);
    }
    if let Some(Value::Object(props)) = m.get("properties") {
        for (k, v) in props {
            check_schema(doc, &format!("{path}.{k}"), v);
        }
    }
    if let Some(ap @ Value::Object(_)) = m.get("additionalProperties") {
        check_schema(doc, &format!("{path}{{}}"), ap);
    }
}

#[test]
fn v2_schemas_are_well_formed() {
    let doc = v2();
    let defs = doc["definitions"].as_object().expect("definitions");
    assert!(defs.len() > 500, "{} definitions", defs.len());
    for (name, s) in defs {
        check_schema(&doc, name, s);
    }
}

#[test]
fn every_resource_has_a_definition_and_paths() {
    let doc = v2();
    let defs = doc["definitions"].as_object().expect("definitions");
    for r in registry::all() {
        let found = defs.values().any(|d| {
            d["x-kubernetes-group-version-kind"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|g| g["group"] == r.group && g["version"] == r.version && g["kind"] == r.kind)
        });
        assert!(found, "no definition for {} {}", r.api_version(), r.kind);
        let prefix = if r.group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        let collection = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{prefix}/{}", r.plural)
        };
        let has_path = doc["paths"].get(&collection).is_some()
            || doc["paths"].get(format!("{collection}/{{name}}")).is_some();
        assert!(has_path, "no path for {collection}");
    }
    let item = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
    assert_eq!(item["get"]["x-kubernetes-action"], "get");
    assert_eq!(item["patch"]["x-kubernetes-action"], "patch");
    assert_eq!(
        item["put"]["operationId"],
        "replaceAppsV1NamespacedDeployment"
    );
    assert_eq!(item["delete"]["x-kubernetes-action"], "delete");
    let gvk = &item["patch"]["x-kubernetes-group-version-kind"];
    assert_eq!(
        gvk,
        &serde_json::json!({"group": "apps", "kind": "Deployment", "version": "v1"})
    );
    let names: Vec<&str> = item["patch"]["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(names.contains(&"fieldValidation"), "{names:?}");
    let coll = &doc["paths"]["/api/v1/namespaces/{namespace}/pods"];
    assert_eq!(coll["get"]["x-kubernetes-action"], "list");
    assert_eq!(coll["post"]["x-kubernetes-action"], "post");
    assert_eq!(coll["delete"]["x-kubernetes-action"], "deletecollection");
    let scale = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
    assert_eq!(
        scale["get"]["x-kubernetes-group-version-kind"]["kind"],
        "Scale"
    );
    assert!(
        doc["paths"]
            .get("/api/v1/componentstatuses/{name}")
            .is_some()
    );
    assert!(
        doc["paths"]["/api/v1/componentstatuses/{name}"]
            .get("put")
            .is_none()
    );
}

/// The name of a `Named*` entry and its encoded value.
fn named_value<'a>(buf: &'a [u8], field: u64, name: &str) -> &'a [u8] {
    decode::named(buf, field, name).unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn v2_protobuf_decodes_back() {
    let buf = v2_protobuf();
    assert_eq!(decode::string(buf, 1), "2.0");
    let info = decode::one(buf, 2);
    assert_eq!(decode::string(info, 1), "Kubernetes");
    assert_eq!(decode::string(info, 2), "v1.35.0");

    // definitions (9) → NamedSchema (1) → Schema
    let defs = decode::one(buf, 9);
    let deployment = named_value(defs, 1, "io.k8s.api.apps.v1.Deployment");
    assert!(decode::string(deployment, 4).starts_with("Deployment enables"));
    let ty = decode::one(deployment, 22);
    assert_eq!(decode::string(ty, 1), "object");
    let ext = named_value(deployment, 31, "x-kubernetes-group-version-kind");
    let yaml = decode::string(ext, 2);
    let gvk: Value = serde_json::from_str(&yaml).expect("extension is JSON, hence YAML");
    assert_eq!(gvk[0]["kind"], "Deployment");
    let props = decode::one(deployment, 25);
    let spec = named_value(props, 1, "spec");
    assert_eq!(
        decode::string(spec, 1),
        "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    );

    let ios = named_value(defs, 1, "io.k8s.apimachinery.pkg.util.intstr.IntOrString");
    assert_eq!(decode::string(ios, 2), "int-or-string");
    assert_eq!(decode::string(decode::one(ios, 22), 1), "string");

    // arrays carry exactly one items schema
    let pod_spec = named_value(defs, 1, "io.k8s.api.core.v1.PodSpec");
    let containers = named_value(decode::one(pod_spec, 25), 1, "containers");
    let items = decode::all(decode::one(containers, 23), 1);
    assert_eq!(items.len(), 1);
    assert_eq!(
        decode::string(items[0], 1),
        "#/definitions/io.k8s.api.core.v1.Container"
    );

    // paths (8) → NamedPathItem (2) → PathItem.patch (8) → parameters (8)
    let paths = decode::one(buf, 8);
    let item = named_value(
        paths,
        2,
        "/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
    );
    let patch = decode::one(item, 8);
    let gvk_ext = named_value(patch, 13, "x-kubernetes-group-version-kind");
    let gvk: Value = serde_json::from_str(&decode::string(gvk_ext, 2)).expect("json");
    assert_eq!(gvk["kind"], "Deployment");
    let query_names: Vec<String> = decode::all(patch, 8)
        .into_iter()
        .map(|pi| decode::one(decode::one(pi, 1), 2))
        .filter(|nb| !nb.is_empty())
        .map(|nb| decode::string(decode::one(nb, 3), 4))
        .collect();
    assert!(
        query_names.iter().any(|n| n == "fieldValidation"),
        "{query_names:?}"
    );
}

#[test]
fn v3_documents() {
    let disc = v3_discovery();
    let paths = disc["paths"].as_object().expect("paths");
    assert!(paths.contains_key("api/v1"));
    assert!(paths.contains_key("apis/autoscaling/v2"));
    let url = paths["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .expect("url");
    assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="), "{url}");
    for key in paths.keys() {
        let doc: Value = serde_json::from_slice(v3_group_version(key).expect("doc")).expect("json");
        assert_eq!(doc["openapi"], "3.0.0");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let text = serde_json::to_string(&doc).expect("json");
        assert!(!text.contains("#/definitions/"), "{key} has v2 refs");
        for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = r.split('"').next().unwrap_or_default();
            assert!(schemas.contains_key(name), "{key}: dangling {name}");
        }
    }
    let apps: Value =
        serde_json::from_slice(v3_group_version("apis/apps/v1").expect("apps")).expect("json");
    let d = &apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        d["x-kubernetes-group-version-kind"][0]["kind"],
        "Deployment"
    );
    assert_eq!(
        d["properties"]["metadata"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert!(d["properties"]["metadata"]["description"].is_string());
    let patch = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert!(
        patch["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
    );
    assert_eq!(
        patch["x-kubernetes-group-version-kind"]["kind"],
        "Deployment"
    );
    assert!(v3_group_version("apis/nope/v1").is_none());
}

/// Prints how long building everything takes from scratch (`cargo test -- --nocapture`).
#[test]
fn generation_time_and_sizes() {
    let start = Instant::now();
    let m = build_model();
    let t_model = start.elapsed();
    let v2 = build_v2(&m);
    let json = serde_json::to_vec(&v2).expect("json");
    let t_json = start.elapsed();
    let proto = proto::document(&v2);
    let t_proto = start.elapsed();
    let v3 = build_v3(&m);
    let t_v3 = start.elapsed();
    let v3_bytes: usize = v3.values().map(|d| d.json.len()).sum();
    println!(
        "openapi: schemas and paths {t_model:?}; v2 json {} bytes at {t_json:?}; protobuf {} \
         bytes at {t_proto:?}; {} v3 documents, {v3_bytes} bytes, at {t_v3:?}",
        json.len(),
        proto.len(),
        v3.len()
    );
    assert_eq!(json, v2_json());
    assert_eq!(proto, v2_protobuf());
}

#[test]
fn v2_carries_merge_extensions() {
    let doc = v2();
    let pod_spec = def(&doc, "io.k8s.api.core.v1.PodSpec");
    let containers = &pod_spec["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-list-type"], "map");
    let volumes = &pod_spec["properties"]["volumes"];
    assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");
    let container = def(&doc, "io.k8s.api.core.v1.Container");
    assert_eq!(
        container["properties"]["ports"]["x-kubernetes-patch-merge-key"],
        "containerPort"
    );
    let strategy = &def(&doc, "io.k8s.api.apps.v1.DeploymentSpec")["properties"]["strategy"];
    assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
    let selector = def(&doc, "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector");
    assert_eq!(selector["x-kubernetes-map-type"], "atomic");
}
