//! The schema definitions of every built-in kind, generated from k8s-openapi's types and
//! normalized to what upstream's OpenAPI documents say.

use std::collections::BTreeMap;

use k8s_openapi::Resource;
use k8s_openapi::schemars::generate::SchemaSettings;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::registry;

/// Where v2 documents keep their definitions; v3 documents rewrite it.
pub(super) const V2_REF_PREFIX: &str = "#/definitions/";

pub(super) const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
pub(super) const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
pub(super) const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub(super) const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub(super) const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub(super) const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const APIEXTENSIONS: &str = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.";

/// A group, version and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Gvk {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
}

impl Gvk {
    pub(super) fn to_json(self) -> Value {
        json!({"group": self.group, "kind": self.kind, "version": self.version})
    }
}

/// All definitions, sorted by name as upstream sorts them, and where each kind's schema is.
pub(super) struct Definitions {
    pub defs: BTreeMap<String, Value>,
    /// Definition name of each top-level kind.
    pub kinds: BTreeMap<Gvk, String>,
}

impl Definitions {
    /// The definition name of a kind, e.g. `io.k8s.api.apps.v1.Deployment`.
    pub(super) fn of(&self, gvk: Gvk) -> Option<&str> {
        self.kinds.get(&gvk).map(String::as_str)
    }

    /// The definition name of a kind's list, e.g. `io.k8s.api.apps.v1.DeploymentList`.
    pub(super) fn list_of(&self, gvk: Gvk) -> Option<String> {
        let list = Gvk {
            kind: leak(format!("{}List", gvk.kind)),
            ..gvk
        };
        self.kinds.get(&list).cloned()
    }
}

/// Kind names of lists live as long as the documents, which are built once per process.
fn leak(s: String) -> &'static str {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut guard = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let names = guard.get_or_insert_with(HashSet::new);
    if let Some(existing) = names.get(s.as_str()) {
        return existing;
    }
    let leaked: &'static str = Box::leak(s.into_boxed_str());
    names.insert(leaked);
    leaked
}

fn kind<T: Resource + JsonSchema>(generator: &mut SchemaGenerator) -> (Gvk, String) {
    generator.subschema_for::<T>();
    let gvk = Gvk {
        group: T::GROUP,
        version: T::VERSION,
        kind: T::KIND,
    };
    (gvk, T::schema_name().into_owned())
}

macro_rules! kinds {
    ($generator:ident; $($t:ty),* $(,)?) => {
        vec![$(kind::<$t>(&mut $generator)),*]
    };
}

/// Every top-level kind with a schema: the registry's kinds and the bodies of subresources
/// and meta endpoints.
fn top_level_kinds(generator: &mut SchemaGenerator) -> Vec<(Gvk, String)> {
    use k8s_openapi::api::{
        admissionregistration::v1 as adm, apps::v1 as apps, authentication::v1 as authn,
        authorization::v1 as authz, autoscaling::v1 as as1, autoscaling::v2 as as2,
        batch::v1 as batch, certificates::v1 as cert, coordination::v1 as coord, core::v1 as core,
        discovery::v1 as disc, events::v1 as events, flowcontrol::v1 as fc, networking::v1 as net,
        node::v1 as node, policy::v1 as policy, rbac::v1 as rbac, resource::v1 as dra,
        scheduling::v1 as sched, storage::v1 as storage,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as ext;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as reg;
    let mut generator = generator;
    kinds![generator;
        core::Binding, core::ComponentStatus, core::ConfigMap, core::Endpoints, core::Event,
        core::LimitRange, core::Namespace, core::Node, core::PersistentVolumeClaim,
        core::PersistentVolume, core::Pod, core::PodTemplate, core::ReplicationController,
        core::ResourceQuota, core::Secret, core::ServiceAccount, core::Service,
        reg::APIService,
        apps::ControllerRevision, apps::DaemonSet, apps::Deployment, apps::ReplicaSet,
        apps::StatefulSet,
        events::Event,
        authn::SelfSubjectReview, authn::TokenReview, authn::TokenRequest,
        authz::LocalSubjectAccessReview, authz::SelfSubjectAccessReview,
        authz::SelfSubjectRulesReview, authz::SubjectAccessReview,
        as1::HorizontalPodAutoscaler, as1::Scale, as2::HorizontalPodAutoscaler,
        batch::CronJob, batch::Job,
        cert::CertificateSigningRequest,
        net::IPAddress, net::IngressClass, net::Ingress, net::NetworkPolicy, net::ServiceCIDR,
        policy::PodDisruptionBudget, policy::Eviction,
        rbac::ClusterRoleBinding, rbac::ClusterRole, rbac::RoleBinding, rbac::Role,
        storage::CSIDriver, storage::CSINode, storage::CSIStorageCapacity,
        storage::StorageClass, storage::VolumeAttachment, storage::VolumeAttributesClass,
        adm::MutatingWebhookConfiguration, adm::ValidatingAdmissionPolicy,
        adm::ValidatingAdmissionPolicyBinding, adm::ValidatingWebhookConfiguration,
        ext::CustomResourceDefinition,
        sched::PriorityClass,
        coord::Lease,
        node::RuntimeClass,
        disc::EndpointSlice,
        fc::FlowSchema, fc::PriorityLevelConfiguration,
        dra::DeviceClass, dra::ResourceClaim, dra::ResourceClaimTemplate, dra::ResourceSlice,
        meta::Status, meta::APIGroup, meta::APIGroupList, meta::APIResourceList,
        meta::APIVersions,
    ]
}

/// Builds every definition. Takes a few tens of milliseconds; call once.
pub(super) fn build() -> Definitions {
    let settings = SchemaSettings::draft07().with(|s| {
        s.meta_schema = None;
        s.transforms = Vec::new();
    });
    let mut generator = SchemaGenerator::new(settings);
    let mut kinds: BTreeMap<Gvk, String> = top_level_kinds(&mut generator).into_iter().collect();
    generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>();
    generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Patch>();
    generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::WatchEvent<
        k8s_openapi::apimachinery::pkg::runtime::RawExtension,
    >>();
    let mut defs: BTreeMap<String, Value> = generator.take_definitions(false).into_iter().collect();

    for (name, schema) in defs.iter_mut() {
        normalize(schema);
        fix_definition(name, schema);
    }

    // Lists of every listable resource, which k8s-openapi models as a generic type.
    for r in registry::all() {
        if !r.verbs.contains(&"list") {
            continue;
        }
        let gvk = Gvk {
            group: r.group,
            version: r.version,
            kind: r.kind,
        };
        let Some(item) = kinds.get(&gvk).cloned() else {
            continue;
        };
        let list_kind = leak(format!("{}List", r.kind));
        let list_name = format!("{item}List");
        defs.insert(list_name.clone(), list_schema(r.kind, &item));
        kinds.insert(
            Gvk {
                kind: list_kind,
                ..gvk
            },
            list_name,
        );
    }

    let mut seen = std::collections::HashSet::new();
    for (gvk, name) in &kinds {
        let schema = crate::patch::Schema::for_kind(gvk.group, gvk.kind);
        annotate(&mut defs, name, schema, &mut seen);
    }

    let mut gvks: BTreeMap<String, Vec<Gvk>> = BTreeMap::new();
    for (gvk, name) in &kinds {
        gvks.entry(name.clone()).or_default().push(*gvk);
    }
    // Meta kinds every group-version accepts, as upstream lists them.
    for g in registry::group_versions() {
        for v in g.versions {
            for (def, kind) in [
                (DELETE_OPTIONS, "DeleteOptions"),
                (WATCH_EVENT, "WatchEvent"),
            ] {
                gvks.entry(def.to_string()).or_default().push(Gvk {
                    group: g.group,
                    version: v,
                    kind,
                });
            }
        }
    }
    for (name, list) in gvks {
        if let Some(Value::Object(schema)) = defs.get_mut(&name) {
            let list: Vec<Value> = list.into_iter().map(Gvk::to_json).collect();
            schema.insert("x-kubernetes-group-version-kind".into(), Value::Array(list));
        }
    }
    Definitions { defs, kinds }
}

fn list_schema(kind: &str, item: &str) -> Value {
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
                "type": "string",
            },
            "items": {
                "description": format!("List of {kind} objects."),
                "type": "array",
                "items": {"$ref": format!("{V2_REF_PREFIX}{item}")},
            },
            "kind": {
                "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                "type": "string",
            },
            "metadata": {
                "$ref": format!("{V2_REF_PREFIX}{LIST_META}"),
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
            },
        },
    })
}

/// Rewrites what schemars and k8s-openapi say differently from upstream, at every depth.
fn normalize(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    if map.remove("x-kubernetes-int-or-string").is_some() && !map.contains_key("type") {
        // kubectl 1.20's validator accepts any value for a string; an untyped schema
        // would be parsed as an arbitrary object.
        map.insert("type".into(), "string".into());
    }
    if let Some(Value::Object(props)) = map.get_mut("properties") {
        for v in props.values_mut() {
            normalize(v);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(v) = map.get_mut(key) {
            normalize(v);
        }
    }
}

/// Per-definition fixes to match upstream's documents.
fn fix_definition(name: &str, schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    match name {
        INT_OR_STRING => {
            map.insert("type".into(), "string".into());
            map.insert("format".into(), "int-or-string".into());
        }
        QUANTITY => {
            map.insert("type".into(), "string".into());
        }
        _ => {}
    }
    // Values of any JSON type: upstream gives them no type, which clients read as "anything".
    if let Some(short) = name.strip_prefix(APIEXTENSIONS)
        && matches!(
            short,
            "JSON"
                | "JSONSchemaPropsOrArray"
                | "JSONSchemaPropsOrBool"
                | "JSONSchemaPropsOrStringArray"
        )
    {
        map.retain(|k, _| k == "description");
    }
    map.remove("oneOf");
    // k8s-openapi requires `metadata` because its Rust field is not optional; upstream
    // never does.
    let metadata_is_meta = map
        .get("properties")
        .and_then(|p| p.get("metadata"))
        .and_then(|m| m.get("$ref"))
        .and_then(Value::as_str)
        .is_some_and(|r| r.ends_with(OBJECT_META) || r.ends_with(LIST_META));
    if metadata_is_meta && let Some(Value::Array(required)) = map.get_mut("required") {
        required.retain(|r| r != "metadata");
        if required.is_empty() {
            map.remove("required");
        }
    }
}

fn ref_name(schema: &Value) -> Option<String> {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix(V2_REF_PREFIX))
        .map(str::to_string)
}

/// Adds upstream's merge extensions (`x-kubernetes-patch-strategy`,
/// `x-kubernetes-patch-merge-key`, `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
/// `x-kubernetes-map-type`) to definition `name` and everything it reaches, from the patch
/// module's table: kubectl reads them from the documents to compute client-side apply
/// patches.
fn annotate(
    defs: &mut BTreeMap<String, Value>,
    name: &str,
    schema: crate::patch::Schema,
    seen: &mut std::collections::HashSet<String>,
) {
    use crate::patch::ListStrategy;
    if !schema.is_struct() || !seen.insert(name.to_string()) {
        return;
    }
    let Some(Value::Object(def)) = defs.get_mut(name) else {
        return;
    };
    if schema.atomic() == Some(true) {
        def.insert("x-kubernetes-map-type".into(), "atomic".into());
    }
    let Some(Value::Object(props)) = def.get_mut("properties") else {
        return;
    };
    let mut next = Vec::new();
    for (field, prop) in props.iter_mut() {
        let s = schema.field(field);
        if !s.is_known() {
            continue;
        }
        let Value::Object(p) = prop else {
            continue;
        };
        let is_list = p.get("type").and_then(Value::as_str) == Some("array");
        if is_list {
            let mut strategy = match s.patch_strategy() {
                ListStrategy::Map { keys } => {
                    if let Some(key) = keys.first() {
                        p.insert("x-kubernetes-patch-merge-key".into(), (*key).into());
                    }
                    Some("merge")
                }
                ListStrategy::Set => Some("merge"),
                ListStrategy::Atomic | ListStrategy::Replace => None,
            }
            .map(str::to_string);
            if s.retain_keys() {
                strategy = Some(match strategy {
                    Some(st) => format!("{st},retainKeys"),
                    None => "retainKeys".into(),
                });
            }
            if let Some(st) = strategy {
                p.insert("x-kubernetes-patch-strategy".into(), st.into());
            }
            match s.list_type() {
                ListStrategy::Map { keys } => {
                    p.insert("x-kubernetes-list-type".into(), "map".into());
                    p.insert("x-kubernetes-list-map-keys".into(), json!(keys));
                }
                ListStrategy::Set => {
                    p.insert("x-kubernetes-list-type".into(), "set".into());
                }
                ListStrategy::Atomic | ListStrategy::Replace => {
                    p.insert("x-kubernetes-list-type".into(), "atomic".into());
                }
            }
            if let Some(r) = p.get("items").and_then(ref_name) {
                next.push((r, s.elem()));
            }
        } else {
            if s.retain_keys() {
                p.insert("x-kubernetes-patch-strategy".into(), "retainKeys".into());
            }
            if let Some(r) = ref_name(prop) {
                next.push((r, s));
            } else if let Some(r) = prop.get("additionalProperties").and_then(ref_name) {
                next.push((r, s.field("")));
            }
        }
    }
    for (r, s) in next {
        annotate(defs, &r, s, seen);
    }
}

/// Every definition name a schema refers to (one level).
pub(super) fn refs_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    if let Some(name) = v.as_str().and_then(|r| r.strip_prefix(V2_REF_PREFIX)) {
                        out.push(name.to_string());
                    }
                } else {
                    refs_in(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs_in(v, out)),
        _ => {}
    }
}

/// Copies `schema` with its `$ref`s pointing at `prefix` instead of `#/definitions/`, and,
/// as upstream's v3 documents do, a `$ref` with siblings wrapped in `allOf`.
pub(super) fn rewrite_refs_v3(value: &Value, prefix: &str) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            let mut reference = None;
            for (k, v) in map {
                if let ("$ref", Some(r)) = (k.as_str(), v.as_str()) {
                    let name = r.strip_prefix(V2_REF_PREFIX).unwrap_or(r);
                    reference = Some(format!("{prefix}{name}"));
                } else {
                    out.insert(k.clone(), rewrite_refs_v3(v, prefix));
                }
            }
            match reference {
                Some(r) if out.is_empty() => {
                    out.insert("$ref".into(), r.into());
                }
                Some(r) => {
                    out.insert("allOf".into(), json!([{"$ref": r}]));
                }
                None => {}
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| rewrite_refs_v3(v, prefix)).collect())
        }
        other => other.clone(),
    }
}
