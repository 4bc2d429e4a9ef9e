//! OpenAPI documents of the built-in API: v2 as JSON and as gnostic protobuf, v3 per
//! group-version, generated from k8s-openapi's schemas on first use and kept for the life
//! of the process.
//!
//! Nothing is built at start-up: each document is built the first time a client asks for it
//! (see the module tests for how long that takes).

mod definitions;
mod paths;
mod proto;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use definitions::{Definitions, V2_REF_PREFIX};
use paths::GroupVersionPaths;

/// The Kubernetes version the documents describe.
pub const KUBERNETES_VERSION: &str = "v1.35.0";

/// Where v3 documents keep their schemas.
const V3_REF_PREFIX: &str = "#/components/schemas/";

struct Model {
    defs: Definitions,
    paths: Vec<GroupVersionPaths>,
}

fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(build_model)
}

fn build_model() -> Model {
    let defs = definitions::build();
    let paths = paths::build(&defs);
    Model { defs, paths }
}

fn info() -> Value {
    json!({"title": "Kubernetes", "version": KUBERNETES_VERSION})
}

fn v2_value() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| build_v2(model()))
}

fn build_v2(m: &Model) -> Value {
    {
        let mut paths = BTreeMap::new();
        for gv in &m.paths {
            for item in &gv.paths {
                paths.insert(item.path.clone(), paths::path_item_v2(item, V2_REF_PREFIX));
            }
        }
        let definitions: Map<String, Value> = m
            .defs
            .defs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        json!({
            "swagger": "2.0",
            "info": info(),
            "paths": paths,
            "definitions": definitions,
            "securityDefinitions": {
                "BearerToken": {
                    "description": "Bearer Token authentication",
                    "type": "apiKey",
                    "name": "authorization",
                    "in": "header",
                },
            },
            "security": [{"BearerToken": []}],
        })
    }
}

/// One schema definition by upstream's name; `$ref`s inside point at `#/definitions/NAME`.
/// Builds only the schemas, not the documents.
pub fn definition(name: &str) -> Option<&'static Value> {
    model().defs.defs.get(name)
}

/// Every schema definition, in name order.
pub fn definitions() -> impl Iterator<Item = &'static Value> {
    model().defs.defs.values()
}

/// Every schema definition with its name, in name order.
pub fn named_definitions() -> impl Iterator<Item = (&'static str, &'static Value)> {
    model().defs.defs.iter().map(|(k, v)| (k.as_str(), v))
}

/// The schema of a built-in kind in one group-version.
pub fn kind_definition(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
) -> Option<&'static Value> {
    let m = model();
    m.defs
        .of(definitions::Gvk {
            group,
            version,
            kind,
        })
        .and_then(|n| m.defs.defs.get(n))
}

/// The Swagger 2.0 document served at `/openapi/v2` as `application/json`.
pub fn v2_json() -> &'static [u8] {
    static JSON: OnceLock<Vec<u8>> = OnceLock::new();
    JSON.get_or_init(|| serde_json::to_vec(v2_value()).unwrap_or_default())
}

/// The same document as `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`
/// (gnostic's `openapi.v2.Document`).
pub fn v2_protobuf() -> &'static [u8] {
    static PROTO: OnceLock<Vec<u8>> = OnceLock::new();
    PROTO.get_or_init(|| proto::document(v2_value()))
}

/// The v2 document itself, to extend with custom resources' definitions.
pub fn v2_document() -> &'static Value {
    v2_value()
}

/// A v2 document (the built-in one extended) as gnostic protobuf.
pub fn v2_protobuf_of(doc: &Value) -> Vec<u8> {
    proto::document(doc)
}

/// The ETag-style hash [`v2_hash`] computes, of any bytes.
pub fn etag_hash(bytes: &[u8]) -> String {
    hash(bytes)
}

/// An ETag-style hash of the v2 document (upper-case hex), for `ETag` and caching.
pub fn v2_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash(v2_json()))
}

/// A 128-bit FNV-1a digest as upper-case hex. Clients treat the value as opaque; it only has
/// to change when the document does.
fn hash(bytes: &[u8]) -> String {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in bytes {
        h ^= u128::from(*b);
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    format!("{h:032X}")
}

struct V3Doc {
    json: Vec<u8>,
    hash: String,
}

fn v3_docs() -> &'static BTreeMap<String, V3Doc> {
    static DOCS: OnceLock<BTreeMap<String, V3Doc>> = OnceLock::new();
    DOCS.get_or_init(|| build_v3(model()))
}

fn build_v3(m: &Model) -> BTreeMap<String, V3Doc> {
    m.paths
        .iter()
        .map(|gv| {
            let json = serde_json::to_vec(&v3_document(m, gv)).unwrap_or_default();
            let hash = hash(&json);
            (gv.key.clone(), V3Doc { json, hash })
        })
        .collect()
}

/// One group-version's OpenAPI 3.0 document: its paths and every schema they reach.
fn v3_document(m: &Model, gv: &GroupVersionPaths) -> Value {
    let mut paths = Map::new();
    let mut wanted: Vec<String> = Vec::new();
    for item in &gv.paths {
        let v2 = paths::path_item_v2(item, V2_REF_PREFIX);
        definitions::refs_in(&v2, &mut wanted);
        paths.insert(item.path.clone(), paths::path_item_v3(item, V3_REF_PREFIX));
    }
    let mut schemas: BTreeMap<String, Value> = BTreeMap::new();
    while let Some(name) = wanted.pop() {
        if schemas.contains_key(&name) {
            continue;
        }
        let Some(def) = m.defs.defs.get(&name) else {
            continue;
        };
        definitions::refs_in(def, &mut wanted);
        schemas.insert(name, definitions::rewrite_refs_v3(def, V3_REF_PREFIX));
    }
    json!({
        "openapi": "3.0.0",
        "info": info(),
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer Token authentication",
                    "name": "authorization",
                    "in": "header",
                },
            },
        },
    })
}

/// The OpenAPI 3.0 document of one group-version, by its discovery key: `api/v1` or
/// `apis/GROUP/VERSION` (no leading slash).
pub fn v3_group_version(gv_path: &str) -> Option<&'static [u8]> {
    v3_docs()
        .get(gv_path.trim_start_matches('/'))
        .map(|d| d.json.as_slice())
}

/// The hash `/openapi/v3` advertises for a group-version's document.
pub fn v3_hash(gv_path: &str) -> Option<&'static str> {
    v3_docs()
        .get(gv_path.trim_start_matches('/'))
        .map(|d| d.hash.as_str())
}

/// The discovery keys of every v3 document, in discovery order.
pub fn v3_group_versions() -> impl Iterator<Item = &'static str> {
    model().paths.iter().map(|gv| gv.key.as_str())
}

/// The `/openapi/v3` discovery document:
/// `{"paths": {"apis/apps/v1": {"serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=..."}}}`.
pub fn v3_discovery() -> &'static Value {
    static DISCOVERY: OnceLock<Value> = OnceLock::new();
    DISCOVERY.get_or_init(|| {
        let paths: Map<String, Value> = v3_group_versions()
            .filter_map(|key| {
                let hash = v3_hash(key)?;
                let url = format!("/openapi/v3/{key}?hash={hash}");
                Some((key.to_string(), json!({"serverRelativeURL": url})))
            })
            .collect();
        json!({"paths": paths})
    })
}

#[cfg(test)]
mod tests;
