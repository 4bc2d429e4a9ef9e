//! CustomResourceDefinitions: the resources they define are served next to the built-in ones,
//! appear in discovery, and go away with their definition.

use crate::cache::{EventType, WatchCache};
use serde_json::{Value, json};
use skiff_api::registry::{self, ResourceInfo};
use skiff_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub const CRD_PREFIX: &str = "/registry/apiextensions.k8s.io/customresourcedefinitions/";

/// A served group and its versions, preferred first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupVersions {
    pub group: String,
    pub versions: Vec<String>,
}

impl GroupVersions {
    pub fn preferred(&self) -> &str {
        self.versions.first().map(String::as_str).unwrap_or("v1")
    }
}

#[derive(Default)]
struct Defined {
    /// CRD name → the resources it defines, one per served version.
    by_crd: HashMap<String, Vec<&'static ResourceInfo>>,
    /// CRD name → its spec, for printer columns and scale paths.
    specs: HashMap<String, Value>,
    /// Counts changes, so documents built from the definitions know when they are stale.
    generation: u64,
}

/// Built-in resources plus those CRDs define.
#[derive(Clone, Default)]
pub struct Resources {
    defined: Arc<RwLock<Defined>>,
    /// `/openapi/v2` with the custom resources' definitions, built once per change of them.
    pub(crate) openapi_v2: Arc<std::sync::Mutex<Option<Arc<crate::openapi::V2Doc>>>>,
}

fn leak(s: &str) -> &'static str {
    // Bounded by the number of CRD changes; definitions are few and long-lived.
    Box::leak(s.to_string().into_boxed_str())
}

fn leak_list(v: Option<&Value>) -> &'static [&'static str] {
    let items: Vec<&'static str> = v
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(leak).collect())
        .unwrap_or_default();
    Box::leak(items.into_boxed_slice())
}

fn printer_columns(v: Option<&Value>) -> &'static [registry::PrinterColumn] {
    let cols: Vec<registry::PrinterColumn> = v
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some(registry::PrinterColumn {
                name: leak(c.get("name")?.as_str()?),
                type_: leak(c.get("type").and_then(Value::as_str).unwrap_or("string")),
                format: leak(c.get("format").and_then(Value::as_str).unwrap_or("")),
                description: leak(c.get("description").and_then(Value::as_str).unwrap_or("")),
                priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0) as i32,
                json_path: leak(c.get("jsonPath")?.as_str()?),
            })
        })
        .collect();
    Box::leak(cols.into_boxed_slice())
}

/// The resources one CRD object defines (its served versions).
pub fn resources_of_crd(crd: &Value) -> Vec<&'static ResourceInfo> {
    let spec = crd.get("spec").cloned().unwrap_or(Value::Null);
    let group = spec.get("group").and_then(Value::as_str).unwrap_or("");
    let names = spec.get("names").cloned().unwrap_or(Value::Null);
    let plural = names.get("plural").and_then(Value::as_str).unwrap_or("");
    let kind = names.get("kind").and_then(Value::as_str).unwrap_or("");
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return Vec::new();
    }
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
    let (group, plural, kind, singular) = (leak(group), leak(plural), leak(kind), leak(&singular));
    let short_names = leak_list(names.get("shortNames"));
    let categories = leak_list(names.get("categories"));
    let mut out = Vec::new();
    for v in spec
        .get("versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if v.get("served") == Some(&json!(false)) {
            continue;
        }
        let Some(version) = v.get("name").and_then(Value::as_str) else {
            continue;
        };
        let status = v.pointer("/subresources/status").is_some();
        let scale = v.pointer("/subresources/scale").is_some();
        let mut subs = Vec::new();
        if scale {
            subs.push("scale");
        }
        if status {
            subs.push("status");
        }
        out.push(&*Box::leak(Box::new(ResourceInfo {
            group,
            version: leak(version),
            kind,
            plural,
            singular,
            namespaced,
            short_names,
            categories,
            verbs: registry::ALL_VERBS,
            status,
            scale,
            storage_version: v.get("storage") == Some(&json!(true)),
            subresources: Box::leak(subs.into_boxed_slice()),
            printer_columns: printer_columns(v.get("additionalPrinterColumns")),
            custom_schema: v.pointer("/schema/openAPIV3Schema").map(|schema| {
                &*Box::leak(Box::new(skiff_api::patch::CustomSchema(
                    skiff_api::patch::Schema::from_crd(schema),
                )))
            }),
        })));
    }
    out
}

impl Resources {
    /// Loads the CRDs in `store` and follows changes through the watch cache.
    pub async fn start(
        store: &Store,
        cache: &WatchCache,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<(Resources, tokio::task::JoinHandle<()>), skiff_store::StoreError> {
        let resources = Resources::default();
        let (rev, mut rx) = cache.subscribe_now(CRD_PREFIX, None);
        let listed = store.range(CRD_PREFIX, None, 0, rev.max(0)).await?;
        for kv in listed.kvs {
            if let Ok(crd) = serde_json::from_slice::<Value>(&kv.value) {
                resources.define(&crd);
            }
        }
        let r = resources.clone();
        let handle = tokio::spawn(async move {
            loop {
                let ev = tokio::select! {
                    _ = cancel.cancelled() => return,
                    ev = rx.recv() => ev,
                };
                match ev {
                    Ok(ev) if ev.key.starts_with(CRD_PREFIX) && ev.revision > rev => {
                        match (ev.kind, ev.object()) {
                            (EventType::Deleted, Some(crd)) => r.undefine(&crd),
                            (_, Some(crd)) => r.define(&crd),
                            (_, None) => {}
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        tracing::warn!(
                            "CRD watcher lagged; definitions refresh on the next change"
                        );
                    }
                    Err(_) => return,
                }
            }
        });
        Ok((resources, handle))
    }

    /// Serves what `crd` defines (replacing an earlier version of it).
    pub fn define(&self, crd: &Value) {
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let infos = resources_of_crd(crd);
        let mut d = self.defined.write().unwrap_or_else(|p| p.into_inner());
        d.specs.insert(
            name.clone(),
            crd.get("spec").cloned().unwrap_or(Value::Null),
        );
        d.by_crd.insert(name, infos);
        d.generation += 1;
    }

    pub fn undefine(&self, crd: &Value) {
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let mut d = self.defined.write().unwrap_or_else(|p| p.into_inner());
        d.by_crd.remove(name);
        d.specs.remove(name);
        d.generation += 1;
    }

    /// Changes so far to the definitions.
    pub fn generation(&self) -> u64 {
        self.defined
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .generation
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
        if let Some(r) = registry::find(group, version, plural) {
            return Some(r);
        }
        let d = self.defined.read().unwrap_or_else(|p| p.into_inner());
        d.by_crd
            .values()
            .flatten()
            .copied()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    pub fn custom(&self) -> Vec<&'static ResourceInfo> {
        let d = self.defined.read().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = d.by_crd.values().flatten().copied().collect();
        v.sort_by(|a, b| (a.group, a.version, a.plural).cmp(&(b.group, b.version, b.plural)));
        v
    }

    /// Every served group with its versions: built-ins in upstream's order, then CRD groups by name.
    pub fn group_versions(&self) -> Vec<GroupVersions> {
        let mut out: Vec<GroupVersions> = registry::group_versions()
            .iter()
            .map(|g| GroupVersions {
                group: g.group.to_string(),
                versions: g.versions.iter().map(|v| v.to_string()).collect(),
            })
            .collect();
        let d = self.defined.read().unwrap_or_else(|p| p.into_inner());
        let mut custom: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for spec in d.specs.values() {
            let Some(group) = spec.get("group").and_then(Value::as_str) else {
                continue;
            };
            let entry = custom.entry(group.to_string()).or_default();
            for v in spec
                .get("versions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if v.get("served") == Some(&json!(false)) {
                    continue;
                }
                if let Some(name) = v.get("name").and_then(Value::as_str)
                    && !entry.iter().any(|e| e == name)
                {
                    entry.push(name.to_string());
                }
            }
        }
        for (group, mut versions) in custom {
            if versions.is_empty() || out.iter().any(|g| g.group == group) {
                continue;
            }
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
            out.push(GroupVersions { group, versions });
        }
        out
    }

    pub fn resources_of(&self, group: &str, version: &str) -> Vec<&'static ResourceInfo> {
        let mut v: Vec<&'static ResourceInfo> = registry::resources_of(group, version).collect();
        v.extend(
            self.custom()
                .into_iter()
                .filter(|r| r.group == group && r.version == version),
        );
        v
    }

    /// The `openAPIV3Schema` of a custom resource version, if its CRD gives one.
    pub fn schema_for(&self, info: &ResourceInfo) -> Option<Value> {
        let d = self.defined.read().unwrap_or_else(|p| p.into_inner());
        let spec = d.specs.values().find(|s| {
            s.get("group").and_then(Value::as_str) == Some(info.group)
                && s.pointer("/names/plural").and_then(Value::as_str) == Some(info.plural)
        })?;
        let version = spec
            .get("versions")?
            .as_array()?
            .iter()
            .find(|v| v.get("name").and_then(Value::as_str) == Some(info.version))?;
        version.pointer("/schema/openAPIV3Schema").cloned()
    }
}

/// Kubernetes' version ordering: GA > beta > alpha, then by number.
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major: u32 = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        (3, major, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, major, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, major, n.parse().unwrap_or(0))
    } else {
        (0, major, 0)
    }
}

/// What the server sets on a CRD it accepts: accepted names, Established, stored versions.
pub fn accept(crd: &mut Value) {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let mut accepted = names.clone();
    if accepted.get("singular").is_none()
        && let Some(k) = names.get("kind").and_then(Value::as_str)
    {
        accepted["singular"] = json!(k.to_lowercase());
    }
    if accepted.get("listKind").is_none()
        && let Some(k) = names.get("kind").and_then(Value::as_str)
    {
        accepted["listKind"] = json!(format!("{k}List"));
    }
    let now = crate::objects::now_rfc3339();
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|v| v.get("storage") == Some(&json!(true)))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let mut stored: Vec<Value> = crd
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for s in storage {
        if !stored.contains(&s) {
            stored.push(s);
        }
    }
    crd["status"] = json!({
        "acceptedNames": accepted,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now, "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now, "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
        ],
        "storedVersions": stored,
    });
}

/// Checks what upstream requires of a CRD before it is stored.
pub fn validate(crd: &Value) -> Vec<skiff_api::status::Cause> {
    use skiff_api::status::Cause;
    let mut causes = Vec::new();
    let spec = crd.get("spec").cloned().unwrap_or(Value::Null);
    let group = spec.get("group").and_then(Value::as_str).unwrap_or("");
    let plural = spec
        .pointer("/names/plural")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if group.is_empty() {
        causes.push(Cause::required("spec.group"));
    } else if !group.contains('.') {
        causes.push(Cause::invalid(
            "spec.group",
            &json!(group),
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        causes.push(Cause::required("spec.names.plural"));
    }
    if spec
        .pointer("/names/kind")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        causes.push(Cause::required("spec.names.kind"));
    }
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    match spec.get("scope").and_then(Value::as_str) {
        Some("Namespaced" | "Cluster") => {}
        other => causes.push(Cause::not_supported(
            "spec.scope",
            &json!(other),
            &["Cluster", "Namespaced"],
        )),
    }
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::required("spec.versions"));
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage") == Some(&json!(true)))
        .count();
    if !versions.is_empty() && storage != 1 {
        causes.push(Cause::invalid(
            "spec.versions",
            &json!(
                versions
                    .iter()
                    .filter_map(|v| v.get("name"))
                    .collect::<Vec<_>>()
            ),
            "must have exactly one version marked as storage version",
        ));
    }
    causes
}
