//! Serves the OpenAPI documents skiff-api generates, and checks bodies for unknown fields against them.

use axum::body::Body;
use http::{Response, StatusCode, header};
use serde_json::{Value, json};
use skiff_api::registry::ResourceInfo;
use skiff_api::status::ApiError;
use std::sync::Arc;

/// What `/openapi/v2` answers for protobuf. Clients ask for the `@` form, but `@` is not a
/// token character, so Go's `mime.ParseMediaType` (kubectl 1.20) rejects it in a
/// Content-Type; kube-openapi answers with the dotted form, and so do we.
const PROTO_V2: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
const PROTO_V3: &str = "application/com.github.proto-openapi.spec.v3@v1.0+protobuf";

fn bytes_response(ct: &str, body: &'static [u8]) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, ct)
        .header(header::VARY, "Accept")
        .body(Body::from(body))
        .unwrap_or_default()
}

/// `/openapi/v2` extended with the custom resources' definitions, built when they change.
pub struct V2Doc {
    generation: u64,
    json: axum::body::Bytes,
    proto: std::sync::OnceLock<axum::body::Bytes>,
    doc: Value,
    etag: String,
}

fn custom_v2(resources: &crate::crd::Resources) -> Option<Arc<V2Doc>> {
    let generation = resources.generation();
    let custom = resources.custom();
    if custom.is_empty() {
        return None;
    }
    let mut cache = resources
        .openapi_v2
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(doc) = cache.as_ref().filter(|d| d.generation == generation) {
        return Some(doc.clone());
    }
    let mut doc = skiff_api::openapi::v2_document().clone();
    for info in custom {
        let mut schema = resources
            .schema_for(info)
            .unwrap_or_else(|| json!({"type": "object"}));
        let reversed: Vec<&str> = info.group.split('.').rev().collect();
        let name = format!("{}.{}.{}", reversed.join("."), info.version, info.kind);
        schema["x-kubernetes-group-version-kind"] =
            json!([{"group": info.group, "kind": info.kind, "version": info.version}]);
        if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"}));
            props.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}));
            props.insert("metadata".into(), json!({"description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata", "$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}));
        }
        // Swagger 2.0 has no `nullable`.
        strip_key(&mut schema, "nullable");
        doc["definitions"][name.as_str()] = schema;
    }
    let json = axum::body::Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
    let etag = skiff_api::openapi::etag_hash(&json);
    let built = Arc::new(V2Doc {
        generation,
        json,
        proto: std::sync::OnceLock::new(),
        doc,
        etag,
    });
    *cache = Some(built.clone());
    Some(built)
}

fn strip_key(v: &mut Value, key: &str) {
    match v {
        Value::Object(m) => {
            m.remove(key);
            m.values_mut().for_each(|c| strip_key(c, key));
        }
        Value::Array(a) => a.iter_mut().for_each(|c| strip_key(c, key)),
        _ => {}
    }
}

/// `/openapi/v2`, as JSON or as gnostic protobuf, by the Accept header's first acceptable
/// type, with an `ETag`; a request whose `If-None-Match` names it gets 304.
pub fn v2(
    accept: &str,
    if_none_match: Option<&str>,
    resources: &crate::crd::Resources,
) -> Response<Body> {
    let first_proto = accept.split(',').map(str::trim).find(|a| {
        a.starts_with("application/com.github.proto-openapi.spec.v2")
            || a.starts_with("application/json")
            || a.starts_with("*/*")
    });
    let proto = first_proto.is_some_and(|a| a.starts_with("application/com.github.proto-openapi"));
    let custom = custom_v2(resources);
    let etag = format!(
        "\"{}\"",
        custom
            .as_ref()
            .map_or(skiff_api::openapi::v2_hash(), |d| d.etag.as_str())
    );
    let builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::VARY, "Accept");
    if if_none_match.is_some_and(|m| m.split(',').any(|t| t.trim() == etag || t.trim() == "*")) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_default();
    }
    let (ct, body) = match (&custom, proto) {
        (None, true) => (PROTO_V2, Body::from(skiff_api::openapi::v2_protobuf())),
        (None, false) => (
            "application/json",
            Body::from(skiff_api::openapi::v2_json()),
        ),
        (Some(d), true) => (
            PROTO_V2,
            Body::from(
                d.proto
                    .get_or_init(|| skiff_api::openapi::v2_protobuf_of(&d.doc).into())
                    .clone(),
            ),
        ),
        (Some(d), false) => ("application/json", Body::from(d.json.clone())),
    };
    builder
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, ct)
        .body(body)
        .unwrap_or_default()
}

/// `/openapi/v3`: the built-in group-versions and those CRDs define.
pub fn v3_root(resources: &crate::crd::Resources) -> Response<Body> {
    let mut root = skiff_api::openapi::v3_discovery().clone();
    for (path, doc) in custom_v3_documents(resources) {
        root["paths"][path.as_str()] =
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", hash(&doc))});
    }
    crate::server::json_response(StatusCode::OK, &root)
}

pub fn v3(path: &str, resources: &crate::crd::Resources) -> Result<Response<Body>, ApiError> {
    let _ = PROTO_V3;
    if let Some(doc) = skiff_api::openapi::v3_group_version(path) {
        return Ok(bytes_response("application/json", doc));
    }
    let path = path.trim_start_matches('/');
    custom_v3_documents(resources)
        .into_iter()
        .find(|(p, _)| p == path)
        .map(|(_, doc)| crate::server::json_response(StatusCode::OK, &doc))
        .ok_or_else(ApiError::no_route)
}

/// ObjectMeta and every schema it refers to, in v3 form.
fn meta_schemas() -> Value {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    out.push(r.trim_start_matches("#/definitions/").to_string());
                }
                m.values().for_each(|c| refs(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| refs(c, out)),
            _ => {}
        }
    }
    let mut schemas = serde_json::Map::new();
    let mut todo = vec!["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".to_string()];
    while let Some(name) = todo.pop() {
        if schemas.contains_key(&name) {
            continue;
        }
        let Some(def) = skiff_api::openapi::definition(&name) else {
            continue;
        };
        refs(def, &mut todo);
        let v3 = serde_json::from_str::<Value>(
            &def.to_string()
                .replace("#/definitions/", "#/components/schemas/"),
        )
        .unwrap_or_default();
        schemas.insert(name, v3);
    }
    Value::Object(schemas)
}

fn hash(v: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// One OpenAPI v3 document per custom resource group-version, from the CRDs' schemas, so
/// `kubectl explain` works for custom resources.
fn custom_v3_documents(resources: &crate::crd::Resources) -> Vec<(String, Value)> {
    let mut docs: std::collections::BTreeMap<String, Value> = Default::default();
    for info in resources.custom() {
        let Some(mut schema) = resources.schema_for(info) else {
            continue;
        };
        let path = format!("apis/{}/{}", info.group, info.version);
        let reversed: Vec<&str> = info.group.split('.').rev().collect();
        let name = format!("{}.{}.{}", reversed.join("."), info.version, info.kind);
        schema["x-kubernetes-group-version-kind"] =
            json!([{"group": info.group, "version": info.version, "kind": info.kind}]);
        if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
            props.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
            props.insert("metadata".into(), json!({"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}], "description": "Standard object's metadata."}));
        }
        let doc = docs.entry(path).or_insert_with(|| {
            json!({
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
                "paths": {},
                "components": {"schemas": meta_schemas()},
            })
        });
        doc["components"]["schemas"][name.as_str()] = schema;
        // kubectl explain finds a resource's kind through the GET operations on its paths.
        let base = if info.namespaced {
            format!(
                "/apis/{}/{}/namespaces/{{namespace}}/{}",
                info.group, info.version, info.plural
            )
        } else {
            format!("/apis/{}/{}/{}", info.group, info.version, info.plural)
        };
        let gvk = json!({"group": info.group, "version": info.version, "kind": info.kind});
        let get = |action: &str| {
            json!({"get": {
                "operationId": format!("{action}{}", info.kind),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}}},
            }})
        };
        doc["paths"][format!("{base}/{{name}}").as_str()] = get("get");
        doc["paths"][base.as_str()] = get("list");
    }
    docs.into_iter().collect()
}

fn definition_for(info: &ResourceInfo) -> Option<&'static Value> {
    skiff_api::openapi::kind_definition(info.group, info.version, info.kind)
}

fn resolve(schema: &'static Value) -> &'static Value {
    let mut s = schema;
    for _ in 0..8 {
        let Some(r) = s.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let name = r.trim_start_matches("#/definitions/");
        match skiff_api::openapi::definition(name) {
            Some(d) => s = d,
            None => break,
        }
    }
    if let Some(all) = s.get("allOf").and_then(Value::as_array)
        && let Some(first) = all.first()
    {
        return resolve_static(first);
    }
    s
}

fn resolve_static(v: &'static Value) -> &'static Value {
    resolve(v)
}

/// One step from an object to one of its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Field(String),
    Index(usize),
}

/// A step of the walk, on the stack: the path to a value is written out only when the
/// value is reported.
pub(crate) struct Trail<'a> {
    pub(crate) step: Step<'a>,
    pub(crate) up: Option<&'a Trail<'a>>,
}

#[derive(Clone, Copy)]
pub(crate) enum Step<'a> {
    Root,
    Field(&'a str),
    Index(usize),
}

impl Trail<'_> {
    pub(crate) fn segs(&self, last: &str) -> Vec<Seg> {
        let mut out = vec![Seg::Field(last.to_string())];
        let mut at = Some(self);
        while let Some(t) = at {
            match t.step {
                Step::Index(i) => out.push(Seg::Index(i)),
                Step::Field(k) => out.push(Seg::Field(k.to_string())),
                Step::Root => {}
            }
            at = t.up;
        }
        out.reverse();
        out
    }
}

fn find_unknown(table: &TypeTable, node: u32, v: &Value, trail: &Trail, out: &mut Vec<Vec<Seg>>) {
    let Some(schema) = table.nodes.get(node as usize) else {
        return;
    };
    match v {
        Value::Object(m) if schema.closed => {
            for (k, child) in m {
                match schema.property(k) {
                    Some(cn) => {
                        let t = Trail {
                            step: Step::Field(k),
                            up: Some(trail),
                        };
                        find_unknown(table, cn, child, &t, out);
                    }
                    None => out.push(trail.segs(k)),
                }
            }
        }
        Value::Object(m) => {
            if let Some(cn) = schema.additional {
                for (k, child) in m {
                    let t = Trail {
                        step: Step::Field(k),
                        up: Some(trail),
                    };
                    find_unknown(table, cn, child, &t, out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(cn) = schema.items {
                for (i, child) in items.iter().enumerate() {
                    let t = Trail {
                        step: Step::Index(i),
                        up: Some(trail),
                    };
                    find_unknown(table, cn, child, &t, out);
                }
            }
        }
        _ => {}
    }
}

/// Fields of `obj` its kind's schema does not know, in the order they appear, as paths
/// from the object. Nothing is written out unless something is found.
pub fn unknown_fields(info: &ResourceInfo, obj: &Value) -> Vec<Vec<Seg>> {
    let table = TypeTable::get();
    let Some(root) = definition_for(info).and_then(|d| table.node_of(d)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    find_unknown(
        table,
        root,
        obj,
        &Trail {
            step: Step::Root,
            up: None,
        },
        &mut out,
    );
    out
}

/// As [`unknown_fields`] for an object's `metadata` alone (a custom resource's).
pub fn unknown_metadata_fields(obj: &Value) -> Vec<Vec<Seg>> {
    let table = TypeTable::get();
    let (Some(md), Some(node)) = (
        obj.get("metadata"),
        skiff_api::openapi::definition("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .and_then(|d| table.node_of(d)),
    ) else {
        return Vec::new();
    };
    let root = Trail {
        step: Step::Root,
        up: None,
    };
    let t = Trail {
        step: Step::Field("metadata"),
        up: Some(&root),
    };
    let mut out = Vec::new();
    find_unknown(table, node, md, &t, &mut out);
    out
}

/// Removes the fields at `paths` from `obj` (what [`unknown_fields`] found).
pub fn remove_fields(obj: &mut Value, paths: &[Vec<Seg>]) {
    for path in paths {
        let Some((Seg::Field(last), parents)) = path.split_last() else {
            continue;
        };
        let mut at = Some(&mut *obj);
        for seg in parents {
            at = match (seg, at) {
                (Seg::Field(k), Some(v)) => v.get_mut(k.as_str()),
                (Seg::Index(i), Some(v)) => v.get_mut(*i),
                (_, None) => None,
            };
        }
        if let Some(m) = at.and_then(Value::as_object_mut) {
            m.shift_remove(last.as_str());
        }
    }
}

/// A path as strict decoding names it: `spec.containers[0].bogus`.
pub fn dotted(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Field(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A path as server-side apply's typed conversion names it: list items by their keys
/// where the list is a map (`.spec.containers[name="c"].bogus`), by value in a set.
pub fn apply_path(info: &ResourceInfo, obj: &Value, path: &[Seg]) -> String {
    let table = TypeTable::get();
    let mut node = definition_for(info).and_then(|d| table.node_of(d));
    let mut value = Some(obj);
    let mut out = String::new();
    for seg in path {
        let schema = node.and_then(|n| table.nodes.get(n as usize));
        match seg {
            Seg::Field(k) => {
                out.push('.');
                out.push_str(k);
                node = schema.and_then(|s| s.property(k).or(s.additional));
                value = value.and_then(|v| v.get(k.as_str()));
            }
            Seg::Index(i) => {
                let item = value.and_then(|v| v.get(*i));
                match (schema, item) {
                    (Some(s), Some(item)) if !s.list_map_keys.is_empty() => {
                        let mut keys: Vec<&str> = s.list_map_keys.to_vec();
                        keys.sort_unstable();
                        let parts: Vec<String> = keys
                            .iter()
                            .filter_map(|k| item.get(*k).map(|v| format!("{k}={v}")))
                            .collect();
                        out.push_str(&format!("[{}]", parts.join(",")));
                    }
                    (Some(s), Some(item)) if s.list_set => out.push_str(&format!("[={item}]")),
                    _ => out.push_str(&format!("[{i}]")),
                }
                node = schema.and_then(|s| s.items);
                value = item;
            }
        }
    }
    out
}

/// A value of the wrong JSON type: where (path segments, innermost first) and what.
struct TypeMismatch {
    /// `.name` or `[index]` segments from the value up to the object, innermost first.
    path: Vec<String>,
    expected: &'static str,
    got: &'static str,
}

impl TypeMismatch {
    /// The mismatch as Go's `encoding/json` (the fork Kubernetes decodes with) reports it:
    /// `json: cannot unmarshal string into Go struct field ObjectMeta.metadata.labels of
    /// type map[string]string` — the innermost struct, the struct fields from the root
    /// (map keys and list indexes left out) and the Go type of the field.
    fn go_message(&self, table: &TypeTable, root: u32, obj: &Value) -> Option<String> {
        let mut node = root;
        let mut value = obj;
        let mut strukt = "";
        let mut fields: Vec<&str> = Vec::new();
        for seg in self.path.iter().rev() {
            let schema = table.nodes.get(node as usize)?;
            if let Some(name) = seg.strip_prefix('.') {
                match schema.property(name) {
                    Some(child) => {
                        strukt = schema.definition.map(short_go_name).unwrap_or(strukt);
                        strukt = strukt.rsplit('.').next().unwrap_or(strukt);
                        fields.push(name);
                        node = child;
                    }
                    None => node = schema.additional?,
                }
                value = value.get(name)?;
            } else {
                let index: usize = seg.trim_matches(|c| c == '[' || c == ']').parse().ok()?;
                node = schema.items?;
                value = value.get(index)?;
            }
        }
        let target = table.nodes.get(node as usize)?;
        if target.quantity {
            return Some(
                "quantities must match the regular expression \
                 '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
                    .into(),
            );
        }
        let got = match value {
            Value::Bool(_) => "bool",
            _ => self.got,
        };
        let ty = if target.number_too {
            // An IntOrString that is no string is decoded as its int32.
            "int32".to_string()
        } else {
            go_type(table, node, 0)
        };
        if fields.is_empty() {
            return Some(format!(
                "json: cannot unmarshal {got} into Go value of type {ty}"
            ));
        }
        Some(format!(
            "json: cannot unmarshal {got} into Go struct field {strukt}.{} of type {ty}",
            fields.join(".")
        ))
    }

    /// Our own words, where the Go ones cannot be found.
    fn message(mut self) -> String {
        self.path.reverse();
        let path = self.path.concat();
        let field = if path.is_empty() {
            "the object".to_string()
        } else {
            path.trim_start_matches('.').to_string()
        };
        format!("{field}: expected {}, got {}", self.expected, self.got)
    }
}

/// `v1.PodSpec` for `io.k8s.api.core.v1.PodSpec`: package and type, as Go prints a type.
fn short_go_name(definition: &'static str) -> &'static str {
    let mut dots = definition.rmatch_indices('.');
    dots.next();
    match dots.next() {
        Some((i, _)) => &definition[i + 1..],
        None => definition,
    }
}

/// The Go type a schema node decodes into, as `reflect.Type.String()` prints it. Named
/// scalar types (`v1.RestartPolicy`) read as their underlying type.
fn go_type(table: &TypeTable, node: u32, depth: usize) -> String {
    let Some(n) = table.nodes.get(node as usize) else {
        return "interface {}".into();
    };
    if depth > 8 {
        return "interface {}".into();
    }
    if n.quantity {
        return "resource.Quantity".into();
    }
    match n.ty {
        Some("string") if depth == 0 || n.definition.is_none() => "string".into(),
        Some("integer") => match n.format {
            Some("int32") => "int32".into(),
            Some("int64") => "int64".into(),
            _ => "int".into(),
        },
        Some("number") => "float64".into(),
        Some("boolean") => "bool".into(),
        Some("array") => match n.items {
            Some(items) => format!("[]{}", go_type(table, items, depth + 1)),
            None => "[]interface {}".into(),
        },
        _ => match (n.definition, n.additional) {
            (Some(def), _) => short_go_name(def).to_string(),
            (None, Some(v)) if table.nodes.get(v as usize).is_some_and(|v| v.quantity) => {
                "v1.ResourceList".into()
            }
            (None, Some(v)) => format!("map[string]{}", go_type(table, v, depth + 1)),
            (None, None) => "map[string]interface {}".into(),
        },
    }
}

/// The built-in schemas as the type check walks them: one node per schema, `$ref`s
/// resolved, properties in a hash map, so a field costs one lookup.
struct TypeTable {
    nodes: Vec<TypeNode>,
    /// Node of each resolved schema, by its address (definitions are `'static`).
    index: std::collections::HashMap<usize, u32>,
    /// Name of each definition, by its address.
    names: std::collections::HashMap<usize, &'static str>,
}

#[derive(Default)]
struct TypeNode {
    /// The schema's `type`.
    ty: Option<&'static str>,
    /// A string that may also be written as a number: a Quantity or an IntOrString, whose
    /// decoders take both, where a plain string field refuses a number.
    number_too: bool,
    /// Property names (sorted) and their nodes: smaller than a hash map per schema, and a
    /// binary search over a few dozen names costs about as much as hashing one.
    properties: Box<[(&'static str, u32)]>,
    additional: Option<u32>,
    items: Option<u32>,
    /// The schema's `format` (`int32`, `int64`, ...), for the Go type an error names.
    format: Option<&'static str>,
    /// The definition's name when the schema is one (`io.k8s.api.core.v1.PodSpec`).
    definition: Option<&'static str>,
    /// A Quantity, whose decoder refuses what is not a string or a number in its own words.
    quantity: bool,
    /// The schema lists `properties`: other fields are unknown.
    closed: bool,
    /// `x-kubernetes-list-map-keys` of a list that is a map.
    list_map_keys: Box<[&'static str]>,
    /// `x-kubernetes-list-type: set`.
    list_set: bool,
}

impl TypeNode {
    fn property(&self, name: &str) -> Option<u32> {
        self.properties
            .binary_search_by(|(k, _)| (*k).cmp(name))
            .ok()
            .and_then(|i| self.properties.get(i))
            .map(|(_, n)| *n)
    }
}

impl TypeTable {
    /// The node of a schema, compiling it (and what it refers to) the first time.
    fn compile(&mut self, schema: &'static Value) -> u32 {
        let schema = resolve(schema);
        let at = schema as *const Value as usize;
        if let Some(&n) = self.index.get(&at) {
            return n;
        }
        let n = self.nodes.len() as u32;
        self.nodes.push(TypeNode::default());
        self.index.insert(at, n);
        let quantity =
            skiff_api::openapi::definition("io.k8s.apimachinery.pkg.api.resource.Quantity")
                .is_some_and(|q| std::ptr::eq(q, schema));
        let format = schema.get("format").and_then(Value::as_str);
        let mut node = TypeNode {
            ty: schema.get("type").and_then(Value::as_str),
            number_too: format == Some("int-or-string") || quantity,
            format,
            definition: self.names.get(&at).copied(),
            quantity,
            closed: schema.get("properties").is_some_and(Value::is_object),
            list_set: schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set"),
            list_map_keys: if schema.get("x-kubernetes-list-type").and_then(Value::as_str)
                == Some("map")
            {
                schema
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect()
            } else {
                Box::default()
            },
            ..TypeNode::default()
        };
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            let mut list = Vec::with_capacity(props.len());
            for (k, ps) in props {
                list.push((k.as_str(), self.compile(ps)));
            }
            list.sort_unstable_by(|a, b| a.0.cmp(b.0));
            node.properties = list.into_boxed_slice();
        }
        if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
            node.additional = Some(self.compile(ap));
        }
        if let Some(is) = schema.get("items") {
            node.items = Some(self.compile(is));
        }
        if let Some(slot) = self.nodes.get_mut(n as usize) {
            *slot = node;
        }
        n
    }

    /// Every built-in definition, compiled once.
    fn get() -> &'static TypeTable {
        static TABLE: std::sync::OnceLock<TypeTable> = std::sync::OnceLock::new();
        TABLE.get_or_init(|| {
            let mut t = TypeTable {
                nodes: Vec::new(),
                index: Default::default(),
                names: skiff_api::openapi::named_definitions()
                    .map(|(name, d)| (d as *const Value as usize, name))
                    .collect(),
            };
            for d in skiff_api::openapi::definitions() {
                t.compile(d);
            }
            t
        })
    }

    /// The node of a definition.
    fn node_of(&self, def: &'static Value) -> Option<u32> {
        self.index
            .get(&(resolve(def) as *const Value as usize))
            .copied()
    }
}

/// The first value of the wrong type under `v`. The path is built only for the mismatch, on
/// the way out: this runs on every write, over every field.
fn type_error(table: &TypeTable, node: u32, v: &Value, depth: usize) -> Option<TypeMismatch> {
    if depth > 64 || v.is_null() {
        return None;
    }
    let schema = table.nodes.get(node as usize)?;
    let ty = schema.ty;
    let mismatch = match ty {
        Some("object") => !v.is_object(),
        Some("array") => !v.is_array(),
        Some("string") => {
            v.is_object() || v.is_array() || v.is_boolean() || (v.is_number() && !schema.number_too)
        }
        Some("integer") | Some("number") => !v.is_number(),
        Some("boolean") => !v.is_boolean(),
        _ => false,
    };
    if mismatch {
        let got = match v {
            Value::Object(_) => "object",
            Value::Array(_) => "array",
            Value::String(_) => "string",
            Value::Number(_) => "number",
            Value::Bool(_) => "boolean",
            Value::Null => "null",
        };
        let expected = match ty {
            Some("object") => "object",
            Some("array") => "array",
            Some("string") => "string",
            Some("integer") => "integer",
            Some("number") => "number",
            Some("boolean") => "boolean",
            _ => "",
        };
        return Some(TypeMismatch {
            path: Vec::new(),
            expected,
            got,
        });
    }
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let child_node = schema.property(k).or(schema.additional);
                if let Some(cn) = child_node
                    && let Some(mut e) = type_error(table, cn, child, depth + 1)
                {
                    e.path.push(format!(".{k}"));
                    return Some(e);
                }
            }
            None
        }
        Value::Array(items) => {
            let is = schema.items?;
            items.iter().enumerate().find_map(|(i, child)| {
                type_error(table, is, child, depth + 1).map(|mut e| {
                    e.path.push(format!("[{i}]"));
                    e
                })
            })
        }
        _ => None,
    }
}

/// A value of the wrong JSON type, worded as upstream's unstructured converter words it
/// when a strategic merge patch produced it ("cannot restore map from string"), for the
/// mismatches that converter names: an object, a list or a map given another type.
pub fn converter_error(info: &ResourceInfo, obj: &Value) -> Option<String> {
    let table = TypeTable::get();
    let root = table.node_of(definition_for(info)?)?;
    let e = type_error(table, root, obj, 0)?;
    // Find the schema the mismatch is against, following the path from the root.
    let mut node = root;
    let mut value = obj;
    for seg in e.path.iter().rev() {
        let schema = table.nodes.get(node as usize)?;
        if let Some(name) = seg.strip_prefix('.') {
            node = schema.property(name).or(schema.additional)?;
            value = value.get(name)?;
        } else {
            let index: usize = seg.trim_matches(|c| c == '[' || c == ']').parse().ok()?;
            node = schema.items?;
            value = value.get(index)?;
        }
    }
    let schema = table.nodes.get(node as usize)?;
    let kind = match value {
        Value::Object(_) => "map",
        Value::Array(_) => "slice",
        Value::String(_) => "string",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::Bool(_) => "bool",
        Value::Null => return None,
    };
    match e.expected {
        "object" if schema.properties.is_empty() && schema.additional.is_some() => {
            Some(format!("cannot restore map from {kind}"))
        }
        "object" => Some(format!("cannot restore struct from: {kind}")),
        "array" => Some(format!("cannot restore slice from {kind}")),
        _ => None,
    }
}

/// A value as Go's `%+v` prints what `encoding/json` decoded it into: `map[k:v ...]` with
/// sorted keys, `[a b]`, numbers as float64s.
pub fn go_plus_v(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_plus_v(&m[k.as_str()])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_plus_v).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{}", f as i128),
            Some(f) => format!("{f}"),
            None => n.to_string(),
        },
        Value::Bool(b) => b.to_string(),
        Value::Null => "<nil>".into(),
    }
}

/// A value of the wrong JSON type for its kind's schema, as upstream's decoder rejects with 400.
pub fn decode_error(info: &ResourceInfo, obj: &Value) -> Option<String> {
    if !obj.is_object() {
        return Some(format!(
            "the body must be a JSON object describing a {}",
            info.kind
        ));
    }
    let table = TypeTable::get();
    let node = table.node_of(definition_for(info)?)?;
    let e = type_error(table, node, obj, 0)?;
    Some(match e.go_message(table, node, obj) {
        Some(m) => m,
        None => e.message(),
    })
}

/// As [`decode_error`] for the object's top-level `member` alone, when the rest of it is
/// known to be good (a status write that changes nothing else).
pub fn member_decode_error(info: &ResourceInfo, obj: &Value, member: &str) -> Option<String> {
    let table = TypeTable::get();
    let root = table.node_of(definition_for(info)?)?;
    let node = table.nodes.get(root as usize)?;
    let child = node.property(member).or(node.additional)?;
    let mut e = type_error(table, child, obj.get(member)?, 1)?;
    e.path.push(format!(".{member}"));
    Some(match e.go_message(table, root, obj) {
        Some(m) => m,
        None => e.message(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> &'static ResourceInfo {
        skiff_api::registry::find("", "v1", "pods").expect("pods are registered")
    }

    #[test]
    fn patched_objects_of_the_wrong_shape_read_as_upstreams_converter() {
        let pod = |md: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": md});
        assert_eq!(
            converter_error(pods(), &pod(json!({"name": "p", "labels": "invalid"}))).as_deref(),
            Some("cannot restore map from string")
        );
        assert_eq!(
            converter_error(
                pods(),
                &pod(json!({"name": "p", "ownerReferences": {"a": 1}}))
            )
            .as_deref(),
            Some("cannot restore slice from map")
        );
        let bad_spec =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": 3});
        assert_eq!(
            converter_error(pods(), &bad_spec).as_deref(),
            Some("cannot restore struct from: int64")
        );
        assert_eq!(converter_error(pods(), &pod(json!({"name": "p"}))), None);
        assert_eq!(
            go_plus_v(&json!({"metadata": {"labels": "invalid"}, "b": [1, 2.5, true, null]})),
            "map[b:[1 2.5 true <nil>] metadata:map[labels:invalid]]"
        );
    }

    #[test]
    fn unknown_fields_are_found_named_and_dropped() {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "bogus": 1,
            "metadata": {"name": "p", "unknownMeta": "x", "labels": {"free": "form"}},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80, "extra": true}]}],
                     "volumes": [{"name": "v", "emptyDir": {}}]}});
        let found = unknown_fields(pods(), &pod);
        let named: Vec<String> = found.iter().map(|p| dotted(p)).collect();
        assert_eq!(
            named,
            [
                "bogus",
                "metadata.unknownMeta",
                "spec.containers[0].ports[0].extra"
            ]
        );
        // Server-side apply names list items by their keys.
        assert_eq!(
            apply_path(pods(), &pod, &found[2]),
            r#".spec.containers[name="c"].ports[containerPort=80].extra"#
        );
        remove_fields(&mut pod, &found);
        assert!(unknown_fields(pods(), &pod).is_empty());
        assert_eq!(
            pod["metadata"],
            json!({"name": "p", "labels": {"free": "form"}})
        );
        assert_eq!(
            pod["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80}])
        );
        let cr = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a", "odd": 1}, "spec": {"any": 1}});
        assert_eq!(
            unknown_metadata_fields(&cr)
                .iter()
                .map(|p| dotted(p))
                .collect::<Vec<_>>(),
            ["metadata.odd"]
        );
    }

    #[test]
    fn type_errors_name_the_innermost_field() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"},
                                     {"name": "d", "image": "i", "ports": [{"containerPort": "x"}]}]}});
        assert_eq!(
            decode_error(pods(), &pod).as_deref(),
            Some(
                "json: cannot unmarshal string into Go struct field ContainerPort.spec.containers.ports.containerPort of type int32"
            )
        );
        let pod = json!({"metadata": {"name": "p", "labels": ["a"]}});
        assert_eq!(
            decode_error(pods(), &pod).as_deref(),
            Some(
                "json: cannot unmarshal array into Go struct field ObjectMeta.metadata.labels of type map[string]string"
            )
        );
        assert_eq!(
            decode_error(pods(), &json!(["a"])).as_deref(),
            Some("the body must be a JSON object describing a Pod")
        );
        let odd_status = json!({"metadata": {"name": "p"}, "status": {"conditions": [{"type": "Ready", "status": true}]}});
        assert_eq!(
            member_decode_error(pods(), &odd_status, "status").as_deref(),
            // Named string types (v1.ConditionStatus) read as string: the schema does not name them.
            Some(
                "json: cannot unmarshal bool into Go struct field PodCondition.status.conditions.status of type string"
            )
        );
        assert_eq!(
            member_decode_error(pods(), &odd_status, "status"),
            decode_error(pods(), &odd_status)
        );
        // A number is no string, except for quantities and int-or-string.
        let env = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "image": "i", "env": [{"name": "N", "value": 1}]}]}});
        assert_eq!(
            decode_error(pods(), &env).as_deref(),
            Some(
                "json: cannot unmarshal number into Go struct field EnvVar.spec.containers.env.value of type string"
            )
        );
        let numbers = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "image": "i", "resources": {"requests": {"cpu": 0.5, "memory": 1024}},
             "ports": [{"containerPort": 80}],
             "readinessProbe": {"httpGet": {"port": 8080}}}]}});
        assert_eq!(decode_error(pods(), &numbers), None);
        // Struct-typed fields name their Go type; quantities answer in their own words.
        let spec = json!({"metadata": {"name": "p"}, "spec": "x"});
        assert_eq!(
            decode_error(pods(), &spec).as_deref(),
            Some("json: cannot unmarshal string into Go struct field Pod.spec of type v1.PodSpec")
        );
        let containers = json!({"metadata": {"name": "p"}, "spec": {"containers": {"a": 1}}});
        assert_eq!(
            decode_error(pods(), &containers).as_deref(),
            Some(
                "json: cannot unmarshal object into Go struct field PodSpec.spec.containers of type []v1.Container"
            )
        );
        let cpu = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "image": "i", "resources": {"limits": {"cpu": [1]}}}]}});
        assert!(
            decode_error(pods(), &cpu)
                .is_some_and(|m| m.starts_with("quantities must match the regular expression")),
        );
        let fine = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "image": "i", "resources": {"limits": {"cpu": 1}}}]}});
        assert_eq!(decode_error(pods(), &fine), None);
    }
}
