//! Server-side apply and managed fields, with structured-merge-diff's semantics: who owns
//! which field, conflicts between managers, and removal of fields an applier dropped.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::fieldpath::{FieldSet, FieldTree, PathElement, canonical_key, format_path};
use super::schema::{ListStrategy, Schema};

/// One entry of `metadata.managedFields`, as the API serializes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ManagedFieldsEntry {
    /// The manager's name (`kubectl`, `kubectl-client-side-apply`, `helm`, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub manager: String,
    /// `Apply` or `Update`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub operation: String,
    /// The API version the fields are expressed in.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// When the entry last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Always `FieldsV1`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fields_type: String,
    /// The owned fields in the `FieldsV1` encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields_v1: Option<Value>,
    /// The subresource written through (`status`, `scale`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
}

impl ManagedFieldsEntry {
    /// Whether this is the entry of `name` writing with `operation` through `subresource`.
    fn is(&self, name: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == name
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    /// The entry as the API serializes it, moving its `fieldsV1` instead of copying it.
    pub fn into_value(self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: String| {
            if !v.is_empty() {
                m.insert(k.to_string(), Value::String(v));
            }
        };
        put("manager", self.manager);
        put("operation", self.operation);
        put("apiVersion", self.api_version);
        if let Some(t) = self.time {
            m.insert("time".to_string(), Value::String(t));
        }
        if !self.fields_type.is_empty() {
            m.insert("fieldsType".to_string(), Value::String(self.fields_type));
        }
        if let Some(f) = self.fields_v1 {
            m.insert("fieldsV1".to_string(), f);
        }
        if let Some(s) = self.subresource {
            m.insert("subresource".to_string(), Value::String(s));
        }
        Value::Object(m)
    }
}

/// Who is writing, and through which endpoint.
#[derive(Debug, Clone, Copy)]
pub struct FieldManager<'a> {
    /// The `fieldManager` query parameter, or the user agent's program name.
    pub manager: &'a str,
    /// The time to stamp on entries this write changes (RFC 3339, seconds precision).
    pub time: &'a str,
    /// `Some("status")` when writing through a subresource.
    pub subresource: Option<&'a str>,
    /// Top-level fields this endpoint does not write and nobody owns through it: `status`
    /// on the main resource of a kind with a status subresource, everything but `status`
    /// (pass `spec` and `metadata`) on the status subresource.
    pub ignored_fields: &'a [&'a str],
}

/// One field that another manager owns and an apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The owner, as upstream prints it: `"kubectl"`, or `"kubectl" using apps/v1` for an
    /// `Update` entry.
    pub manager: String,
    /// The field, e.g. `.spec.replicas`.
    pub field: String,
}

/// Why server-side apply refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Other managers own fields the apply changes; the API server answers 409 with one
    /// cause (`FieldManagerConflict`) per conflict. Retry with `force` to take them over.
    #[error("{}", conflict_message(.0))]
    Conflict(Vec<Conflict>),
    /// The applied configuration is unusable (400).
    #[error("invalid apply configuration: {0}")]
    Invalid(String),
}

fn conflict_message(conflicts: &[Conflict]) -> String {
    let n = conflicts.len();
    let plural = if n == 1 { "" } else { "s" };
    let body = match conflicts {
        [one] => format!("conflict with {}: {}", one.manager, one.field),
        _ => {
            let mut lines = Vec::new();
            let mut managers: Vec<&str> = Vec::new();
            for c in conflicts {
                if !managers.contains(&c.manager.as_str()) {
                    managers.push(&c.manager);
                }
            }
            // Upstream lists the managers sorted.
            managers.sort_unstable();
            for m in managers {
                lines.push(format!("conflicts with {m}:"));
                for c in conflicts.iter().filter(|c| c.manager == m) {
                    lines.push(format!("- {}", c.field));
                }
            }
            lines.join("\n")
        }
    };
    format!("Apply failed with {n} conflict{plural}: {body}")
}

const APPLY: &str = "Apply";
const UPDATE: &str = "Update";
const BEFORE_FIRST_APPLY: &str = "before-first-apply";
/// The field manager of `kubectl apply --server-side`.
const KUBECTL: &str = "kubectl";
/// kubectl's client-side apply annotation.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Fields nobody owns (upstream's strip list).
const STRIPPED: &[&[&str]] = &[
    &["apiVersion"],
    &["kind"],
    &["metadata"],
    &["metadata", "name"],
    &["metadata", "namespace"],
    &["metadata", "creationTimestamp"],
    &["metadata", "selfLink"],
    &["metadata", "uid"],
    &["metadata", "clusterName"],
    &["metadata", "generation"],
    &["metadata", "managedFields"],
    &["metadata", "resourceVersion"],
];

fn field_path(names: &[&str]) -> Vec<PathElement> {
    names
        .iter()
        .map(|n| PathElement::Field((*n).to_string()))
        .collect()
}

struct Manager {
    entry: ManagedFieldsEntry,
    set: FieldSet,
    changed: bool,
    /// Not decoded: the write touches none of its top-level fields, so its entry is kept
    /// as it is (`set` is empty and unused).
    raw: bool,
}

impl Manager {
    fn is(&self, name: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.entry.is(name, operation, subresource)
    }

    fn display(&self) -> String {
        if self.entry.operation == UPDATE {
            match &self.entry.time {
                Some(t) => format!(
                    "{:?} using {} at {t}",
                    self.entry.manager, self.entry.api_version
                ),
                None => format!("{:?} using {}", self.entry.manager, self.entry.api_version),
            }
        } else {
            format!("{:?}", self.entry.manager)
        }
    }
}

/// The top-level fields an entry's `fieldsV1` names (`f:status` gives `status`).
fn top_fields(fields_v1: Option<&Value>) -> impl Iterator<Item = &str> {
    fields_v1
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.keys())
        .filter_map(|k| k.strip_prefix("f:"))
}

/// Whether the stored `FieldsV1` tree `fields` has every path of `set` (as members, not
/// only as parents of members), read where it is, without decoding the tree.
fn has_all(fields: &Value, set: &FieldSet) -> bool {
    set.iter().all(|path| {
        let mut node = fields;
        for pe in path {
            match node.get(pe.encode()) {
                Some(n) => node = n,
                None => return false,
            }
        }
        node.as_object()
            .is_some_and(|m| m.is_empty() || m.contains_key("."))
    })
}

fn decode_set(e: &ManagedFieldsEntry) -> Result<FieldSet, ApplyError> {
    match &e.fields_v1 {
        None => Ok(FieldSet::new()),
        Some(v) => FieldSet::from_fields_v1(v).ok_or_else(|| {
            ApplyError::Invalid(format!("malformed fieldsV1 of manager {:?}", e.manager))
        }),
    }
}

/// The entries as managers, one per (manager, operation, subresource). With `touched`, an
/// entry none of whose top-level fields is in it stays undecoded (`raw`): a write that
/// changes nothing it owns cannot change its set.
fn decode_managers(
    entries: &[ManagedFieldsEntry],
    touched: Option<&HashSet<&str>>,
    also_raw: Option<&ManagedFieldsEntry>,
) -> Result<Vec<Manager>, ApplyError> {
    let mut out: Vec<Manager> = Vec::new();
    for e in entries {
        let keep_raw = also_raw.is_some_and(|r| std::ptr::eq(r, e))
            || touched.is_some_and(|t| {
                let mut tops = top_fields(e.fields_v1.as_ref()).peekable();
                tops.peek().is_some() && !tops.any(|f| t.contains(f))
            });
        match out
            .iter_mut()
            .find(|m| m.is(&e.manager, &e.operation, e.subresource.as_deref()))
        {
            Some(m) => {
                // A duplicate entry: both are decoded and merged.
                if m.raw {
                    m.set = decode_set(&m.entry)?;
                    m.raw = false;
                }
                m.set = m.set.union(&decode_set(e)?);
            }
            None if keep_raw => out.push(Manager {
                entry: e.clone(),
                set: FieldSet::new(),
                changed: false,
                raw: true,
            }),
            None => out.push(Manager {
                entry: e.clone(),
                set: decode_set(e)?,
                changed: false,
                raw: false,
            }),
        }
    }
    Ok(out)
}

fn encode_managers(mut managers: Vec<Manager>, time: &str) -> Vec<ManagedFieldsEntry> {
    managers.retain(|m| m.raw || !m.set.is_empty());
    let mut out: Vec<ManagedFieldsEntry> = managers
        .into_iter()
        .map(|m| {
            let mut e = m.entry;
            if m.raw {
                return e;
            }
            if m.changed || e.time.is_none() {
                e.time = Some(time.to_string());
            }
            e.fields_type = "FieldsV1".to_string();
            e.fields_v1 = Some(m.set.to_fields_v1());
            e
        })
        .collect();
    out.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    out
}

fn without_managed_fields(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.shift_remove("managedFields");
    }
    v
}

fn with_managed_fields(mut v: Value, entries: &[ManagedFieldsEntry]) -> Value {
    if let Some(obj) = v.as_object_mut() {
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            if entries.is_empty() {
                meta.shift_remove("managedFields");
            } else {
                let list = entries
                    .iter()
                    .filter_map(|e| serde_json::to_value(e).ok())
                    .collect();
                meta.insert("managedFields".to_string(), Value::Array(list));
            }
        }
    }
    v
}

pub(super) fn owned_fields(mut set: FieldSet, ctx: &FieldManager<'_>) -> FieldSet {
    for p in STRIPPED {
        set.remove(&field_path(p));
    }
    for top in ctx.ignored_fields {
        set.remove_prefix(&field_path(&[top]));
    }
    set
}

/// Applies `applied` (a full or partial object, the body of an `application/apply-patch+yaml`
/// PATCH) over `live` for `ctx.manager`, following structured-merge-diff: the result is
/// the merge of both; the manager owns exactly the fields it applied; fields it applied
/// before and no longer applies are removed when nobody else owns them; changing a field
/// another manager owns is a conflict unless `force` takes the field over.
///
/// `managed_fields` is the live object's `metadata.managedFields`. Returns the new object,
/// with `metadata.managedFields` already set, and the entries.
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    ctx: &FieldManager<'_>,
    force: bool,
    managed_fields: &[ManagedFieldsEntry],
    schema: Schema,
) -> Result<(Value, Vec<ManagedFieldsEntry>), ApplyError> {
    let Value::Object(applied_map) = applied else {
        return Err(ApplyError::Invalid(
            "the applied configuration must be an object".into(),
        ));
    };
    if applied_map
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApplyError::Invalid(
            "metadata.managedFields must be nil".into(),
        ));
    }
    let api_version = applied_map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let live_value = live
        .map(without_managed_fields)
        .unwrap_or(Value::Object(Map::new()));

    let mut managers = decode_managers(managed_fields, None, None)?;
    if live.is_some() && managers.is_empty() {
        // The object predates managed fields: someone owns what is there.
        let (added, _) = compare(&Value::Object(Map::new()), &live_value, schema);
        managers.push(Manager {
            entry: ManagedFieldsEntry {
                manager: BEFORE_FIRST_APPLY.to_string(),
                operation: UPDATE.to_string(),
                api_version: api_version.clone(),
                ..Default::default()
            },
            set: owned_fields(added, ctx),
            changed: true,
            raw: false,
        });
    }

    let mut merged = merge(&live_value, applied, schema);
    let applied_set = owned_fields(to_field_set(applied, schema), ctx);

    let me = match managers
        .iter()
        .position(|m| m.is(ctx.manager, APPLY, ctx.subresource))
    {
        Some(i) => i,
        None => {
            managers.push(Manager {
                entry: ManagedFieldsEntry {
                    manager: ctx.manager.to_string(),
                    operation: APPLY.to_string(),
                    api_version: api_version.clone(),
                    subresource: ctx.subresource.map(str::to_string),
                    ..Default::default()
                },
                set: FieldSet::new(),
                changed: true,
                raw: false,
            });
            managers.len() - 1
        }
    };
    let last_set = managers
        .get_mut(me)
        .map(|m| {
            m.entry.api_version = api_version.clone();
            std::mem::replace(&mut m.set, applied_set.clone())
        })
        .unwrap_or_default();

    // Drop what this manager applied before and nobody owns any more.
    if !last_set.is_empty() {
        let mut all = FieldSet::new();
        for m in &managers {
            all = all.union(&m.set);
        }
        let all = all.with_named_fields();
        let candidates = last_set.with_named_fields().difference(&all);
        for path in candidates.iter() {
            if !all.has_prefix(path) {
                remove_path(&mut merged, path, schema);
            }
        }
    }

    let (changed, removed) = compare(&live_value, &merged, schema);
    let mut conflicts = Vec::new();
    for (i, m) in managers.iter_mut().enumerate() {
        if i == me {
            continue;
        }
        let lost = m.set.intersection(&changed);
        for p in lost.iter() {
            conflicts.push((
                p.clone(),
                Conflict {
                    manager: m.display(),
                    field: format_path(p),
                },
            ));
        }
        if !lost.is_empty() || !m.set.intersection(&removed).is_empty() {
            m.set = m.set.difference(&lost).difference(&removed);
            m.changed = true;
        }
    }
    if !force && !conflicts.is_empty() {
        // kubectl's server-side apply takes over, without a conflict, the fields its
        // client-side apply set and that still hold what it set (upstream's
        // lastAppliedManager), so that `kubectl apply --server-side` follows a
        // client-side `kubectl apply` of the same configuration.
        let allowed = (ctx.manager == KUBECTL)
            .then(|| allowed_by_last_applied(&live_value, &api_version, schema))
            .flatten();
        if let Some(allowed) = allowed {
            conflicts.retain(|(path, _)| !allowed.contains(path));
        }
        if !conflicts.is_empty() {
            return Err(ApplyError::Conflict(
                conflicts.into_iter().map(|(_, c)| c).collect(),
            ));
        }
    }
    if (merged != live_value || live.is_none())
        && let Some(m) = managers.get_mut(me)
    {
        m.changed = true;
    }
    if ctx.manager == KUBECTL {
        refresh_last_applied(&mut merged, applied);
    }
    let entries = encode_managers(managers, ctx.time);
    Ok((with_managed_fields(merged, &entries), entries))
}

/// The fields of `live` that kubectl's last client-side apply set and that still hold the
/// value it set: its last-applied configuration's fields, less those the object no longer
/// has or has changed since. `None` without a last-applied configuration of `api_version`.
fn allowed_by_last_applied(live: &Value, api_version: &str, schema: Schema) -> Option<FieldSet> {
    let text = live
        .get("metadata")?
        .get("annotations")?
        .get(LAST_APPLIED)?
        .as_str()
        .filter(|s| !s.is_empty())?;
    let last: Value = serde_json::from_str(text).ok()?;
    if !last.is_object() || last.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
        return None;
    }
    let (changed, removed) = compare(&last, live, schema);
    Some(
        to_field_set(&last, schema)
            .difference(&changed)
            .difference(&removed),
    )
}

/// After kubectl's server-side apply, an object that keeps a client-side last-applied
/// configuration gets the applied configuration as that annotation (upstream's
/// lastAppliedUpdater), so a later client-side apply computes its patch from it.
fn refresh_last_applied(result: &mut Value, applied: &Value) {
    let Some(annotations) = result
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if annotations
        .get(LAST_APPLIED)
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return;
    }
    let mut config = applied.clone();
    if let Some(a) = config
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        a.shift_remove(LAST_APPLIED);
    }
    let text = format!("{}\n", crate::gojson::to_go_json_compact(&config));
    annotations.insert(LAST_APPLIED.to_string(), Value::String(text));
}

/// The managed fields after an ordinary write (create, update, any non-apply patch) by
/// `ctx.manager`: it takes over every field it added or changed, others lose them, and
/// removed fields leave every set. Entries have operation `Update`.
pub fn update_managed_fields(
    old: Option<&Value>,
    new: &Value,
    ctx: &FieldManager<'_>,
    managed_fields: &[ManagedFieldsEntry],
    schema: Schema,
) -> Result<Vec<ManagedFieldsEntry>, ApplyError> {
    let api_version = new
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if old.is_none() && managed_fields.is_empty() {
        return Ok(created_fields(new, ctx, schema, api_version));
    }
    let empty = Value::Object(Map::new());
    // `compare` skips metadata.managedFields, so neither version needs a copy without them.
    // The endpoint's ignored fields are not compared: the write cannot change them (the
    // status subresource keeps the rest of the object, the main resource keeps status), and
    // their owners keep them, as upstream resets them on both sides before comparing.
    let (changed, removed) = compare_except(old.unwrap_or(&empty), new, schema, ctx.ignored_fields);
    let changed = owned_fields(changed, ctx);
    let mut touched: HashSet<&str> = HashSet::new();
    for p in changed.iter().chain(removed.iter()) {
        if let Some(PathElement::Field(f)) = p.first() {
            touched.insert(f.as_str());
        }
    }
    // A writer that changes only fields it already owns (a kubelet's status writes) keeps
    // its set: its entry stays as stored and only its time moves.
    let mut mine_entries = managed_fields
        .iter()
        .filter(|e| e.is(ctx.manager, UPDATE, ctx.subresource));
    let owned_already = match (mine_entries.next(), mine_entries.next()) {
        (Some(e), None) if removed.is_empty() && !changed.is_empty() => e
            .fields_v1
            .as_ref()
            .is_some_and(|f| has_all(f, &changed))
            .then_some(e),
        _ => None,
    };
    let mut managers = decode_managers(managed_fields, Some(&touched), owned_already)?;
    let mine = managers
        .iter()
        .position(|m| m.is(ctx.manager, UPDATE, ctx.subresource));
    if let Some(m) = mine.and_then(|i| managers.get_mut(i))
        && m.raw
        && !changed.is_empty()
    {
        if owned_already.is_some() {
            // Its set stays as stored (the loop below passes raw entries by); the others
            // still lose what it changed.
            m.entry.time = Some(ctx.time.to_string());
        } else {
            m.set = decode_set(&m.entry)?;
            m.raw = false;
        }
    }
    for (i, m) in managers.iter_mut().enumerate() {
        if m.raw {
            continue;
        }
        let before = m.set.clone();
        m.set = m.set.difference(&removed);
        if Some(i) != mine {
            m.set = m.set.difference(&changed);
        }
        if m.set != before {
            m.changed = true;
        }
    }
    match mine {
        Some(i) => {
            if let Some(m) = managers.get_mut(i) {
                if !changed.is_empty() && !m.raw {
                    m.set = m.set.union(&changed);
                    m.changed = true;
                }
                m.entry.api_version = api_version;
            }
        }
        None if !changed.is_empty() => managers.push(Manager {
            entry: ManagedFieldsEntry {
                manager: ctx.manager.to_string(),
                operation: UPDATE.to_string(),
                api_version,
                subresource: ctx.subresource.map(str::to_string),
                ..Default::default()
            },
            set: changed,
            changed: true,
            raw: false,
        }),
        None => {}
    }
    Ok(encode_managers(managers, ctx.time))
}

/// The managed fields of a new object: its writer owns every field it set, less those
/// nobody owns. The same as comparing it with an empty object, in one walk that builds
/// the `FieldsV1` tree directly.
pub(super) fn created_fields(
    new: &Value,
    ctx: &FieldManager<'_>,
    schema: Schema,
    api_version: String,
) -> Vec<ManagedFieldsEntry> {
    /// Where a walk is: `metadata.managedFields` is the bookkeeping itself, not a field.
    #[derive(Clone, Copy, PartialEq)]
    enum At {
        Root,
        Metadata,
        Below,
    }
    /// `all_paths` into a tree.
    fn walk(v: &Value, s: Schema, last_is_field: bool, at: At, node: &mut FieldTree) {
        if is_leaf(v, s) {
            node.member = true;
            return;
        }
        if !(s.is_struct() && last_is_field) {
            node.member = true;
        }
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    if at == At::Metadata && k == "managedFields" {
                        continue;
                    }
                    let below = if at == At::Root && k == "metadata" {
                        At::Metadata
                    } else {
                        At::Below
                    };
                    let c = node
                        .children
                        .entry(PathElement::Field(k.clone()))
                        .or_default();
                    walk(child, s.field(k), true, below, c);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let c = node.children.entry(item_element(s, item, i)).or_default();
                    walk(item, s.elem(), false, At::Below, c);
                }
            }
            _ => {}
        }
    }
    let mut root = FieldTree::default();
    if new.is_object() && !is_leaf(new, schema) {
        walk(new, schema, false, At::Root, &mut root);
    }
    root.member = false;
    for p in STRIPPED {
        if let Some(n) = root.get_mut(&field_path(p)) {
            n.member = false;
        }
    }
    for top in ctx.ignored_fields {
        root.children
            .remove(&PathElement::Field((*top).to_string()));
    }
    if root.prune() {
        return Vec::new();
    }
    vec![ManagedFieldsEntry {
        manager: ctx.manager.to_string(),
        operation: UPDATE.to_string(),
        api_version,
        time: Some(ctx.time.to_string()),
        fields_type: "FieldsV1".to_string(),
        fields_v1: Some(root.to_fields_v1()),
        subresource: ctx.subresource.map(str::to_string),
    }]
}

/// Whether the value at a schema position is owned as a whole.
fn is_leaf(v: &Value, s: Schema) -> bool {
    match s.atomic() {
        Some(true) => true,
        Some(false) => !(v.is_object() || v.is_array()),
        None => !v.is_object(),
    }
}

/// The path element of a list item (maps by key, sets by value, others by index).
fn item_element(list: Schema, item: &Value, index: usize) -> PathElement {
    match list.list_type() {
        ListStrategy::Map { keys } => {
            let mut key = Map::new();
            for k in keys {
                match item.get(*k) {
                    Some(v) => {
                        key.insert((*k).to_string(), v.clone());
                    }
                    // Upstream's schema defaults the protocol of ports, which are keyed by it.
                    None if *k == "protocol" => {
                        key.insert((*k).to_string(), Value::String("TCP".into()));
                    }
                    None => {}
                }
            }
            PathElement::Key(canonical_key(&key))
        }
        ListStrategy::Set => PathElement::Value(item.to_string()),
        ListStrategy::Atomic | ListStrategy::Replace => PathElement::Index(index),
    }
}

/// The fields an applied configuration sets (upstream's `ToFieldSet`).
pub(super) fn to_field_set(v: &Value, schema: Schema) -> FieldSet {
    fn walk(v: &Value, s: Schema, path: &mut Vec<PathElement>, out: &mut FieldSet) {
        if is_leaf(v, s) {
            out.insert(path.clone());
            return;
        }
        match v {
            Value::Object(m) => {
                let declared = s.is_struct();
                for (k, child) in m {
                    path.push(PathElement::Field(k.clone()));
                    walk(child, s.field(k), path, out);
                    let empty = child.is_null() || child.as_object().is_some_and(Map::is_empty);
                    if empty || !declared {
                        out.insert(path.clone());
                    }
                    path.pop();
                }
            }
            Value::Array(items) => {
                let mut seen = HashSet::new();
                for (i, item) in items.iter().enumerate() {
                    let pe = item_element(s, item, i);
                    if !seen.insert(pe.clone()) {
                        continue;
                    }
                    path.push(pe);
                    walk(item, s.elem(), path, out);
                    out.insert(path.clone());
                    path.pop();
                }
            }
            _ => out.insert(path.clone()),
        }
    }
    let mut out = FieldSet::new();
    walk(v, schema, &mut Vec::new(), &mut out);
    out
}

/// Every path of a value, each node a member (how upstream records an added or removed
/// subtree), except declared struct fields, which Go's zero values make always present.
/// `metadata.managedFields` is the bookkeeping itself, never a managed field.
fn is_managed_fields(path: &[PathElement], key: &str) -> bool {
    key == "managedFields" && matches!(path, [PathElement::Field(f)] if f == "metadata")
}

fn all_paths(v: &Value, s: Schema, path: &mut Vec<PathElement>, out: &mut FieldSet) {
    if is_leaf(v, s) {
        out.insert(path.clone());
        return;
    }
    if !(s.is_struct() && matches!(path.last(), Some(PathElement::Field(_)))) {
        out.insert(path.clone());
    }
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if is_managed_fields(path, k) {
                    continue;
                }
                path.push(PathElement::Field(k.clone()));
                all_paths(child, s.field(k), path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(item_element(s, item, i));
                all_paths(item, s.elem(), path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Compares two versions of an object: (added or modified paths, removed paths).
pub(super) fn compare(old: &Value, new: &Value, schema: Schema) -> (FieldSet, FieldSet) {
    compare_except(old, new, schema, &[])
}

/// `compare` leaving out the top-level fields in `skip`.
fn compare_except(old: &Value, new: &Value, schema: Schema, skip: &[&str]) -> (FieldSet, FieldSet) {
    fn walk<'a>(
        old: Option<&'a Value>,
        new: Option<&'a Value>,
        s: Schema,
        path: &mut Vec<PathElement>,
        changed: &mut FieldSet,
        removed: &mut FieldSet,
        skip: &[&str],
    ) {
        let skipped = |path: &[PathElement], k: &str| {
            is_managed_fields(path, k) || (path.is_empty() && skip.contains(&k))
        };
        match (old, new) {
            (None, None) => {}
            (None, Some(n)) => all_paths(n, s, path, changed),
            (Some(o), None) => all_paths(o, s, path, removed),
            (Some(o), Some(n)) => {
                let granular = !is_leaf(o, s) && !is_leaf(n, s);
                match (o, n) {
                    (Value::Object(om), Value::Object(nm)) if granular => {
                        for (k, ov) in om {
                            if skipped(path, k) {
                                continue;
                            }
                            path.push(PathElement::Field(k.clone()));
                            walk(
                                Some(ov),
                                nm.get(k),
                                s.field(k),
                                path,
                                changed,
                                removed,
                                skip,
                            );
                            path.pop();
                        }
                        for (k, nv) in nm {
                            if !om.contains_key(k) && !skipped(path, k) {
                                path.push(PathElement::Field(k.clone()));
                                walk(None, Some(nv), s.field(k), path, changed, removed, skip);
                                path.pop();
                            }
                        }
                    }
                    (Value::Array(ol), Value::Array(nl)) if granular => {
                        let index = |l: &'a Vec<Value>| -> Vec<(PathElement, &'a Value)> {
                            let mut seen = HashSet::new();
                            l.iter()
                                .enumerate()
                                .map(|(i, v)| (item_element(s, v, i), v))
                                .filter(|(pe, _)| seen.insert(pe.clone()))
                                .collect()
                        };
                        let (oi, ni) = (index(ol), index(nl));
                        for (pe, ov) in &oi {
                            let nv = ni.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
                            path.push(pe.clone());
                            walk(Some(ov), nv, s.elem(), path, changed, removed, skip);
                            path.pop();
                        }
                        for (pe, nv) in &ni {
                            if !oi.iter().any(|(p, _)| p == pe) {
                                path.push(pe.clone());
                                walk(None, Some(nv), s.elem(), path, changed, removed, skip);
                                path.pop();
                            }
                        }
                    }
                    _ => {
                        if o != n {
                            changed.insert(path.clone());
                        }
                    }
                }
            }
        }
    }
    let mut changed = FieldSet::new();
    let mut removed = FieldSet::new();
    walk(
        Some(old),
        Some(new),
        schema,
        &mut Vec::new(),
        &mut changed,
        &mut removed,
        skip,
    );
    (changed, removed)
}

/// Merges an applied configuration into the live object: maps and structs key by key,
/// associative lists item by item (the applied order wins, live-only items keep their
/// place), sets as unions, everything atomic replaced. `null` in the configuration removes
/// the field.
pub(super) fn merge(live: &Value, applied: &Value, s: Schema) -> Value {
    if is_leaf(live, s) || is_leaf(applied, s) {
        return applied.clone();
    }
    match (live, applied) {
        (Value::Object(lm), Value::Object(am)) => {
            let mut out = lm.clone();
            for (k, av) in am {
                if av.is_null() {
                    out.shift_remove(k);
                    continue;
                }
                let merged = match lm.get(k) {
                    Some(lv) => merge(lv, av, s.field(k)),
                    None => av.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(ll), Value::Array(al)) => {
            let lpe: Vec<PathElement> = ll
                .iter()
                .enumerate()
                .map(|(i, v)| item_element(s, v, i))
                .collect();
            let ape: Vec<PathElement> = al
                .iter()
                .enumerate()
                .map(|(i, v)| item_element(s, v, i))
                .collect();
            let mut out = Vec::with_capacity(ll.len().max(al.len()));
            let mut done: HashSet<PathElement> = HashSet::new();
            let (mut li, mut ai) = (0, 0);
            while li < ll.len() || ai < al.len() {
                if let (Some(lp), Some(ap)) = (lpe.get(li), ape.get(ai))
                    && lp == ap
                {
                    if done.insert(ap.clone())
                        && let (Some(lv), Some(av)) = (ll.get(li), al.get(ai))
                    {
                        out.push(merge(lv, av, s.elem()));
                    }
                    li += 1;
                    ai += 1;
                    continue;
                }
                if let Some(lp) = lpe.get(li) {
                    if !ape.contains(lp) {
                        if done.insert(lp.clone())
                            && let Some(lv) = ll.get(li)
                        {
                            out.push(lv.clone());
                        }
                        li += 1;
                        continue;
                    }
                    if done.contains(lp) {
                        li += 1;
                        continue;
                    }
                }
                if let (Some(ap), Some(av)) = (ape.get(ai), al.get(ai)) {
                    if done.insert(ap.clone()) {
                        let live_item = lpe.iter().position(|p| p == ap).and_then(|i| ll.get(i));
                        out.push(match live_item {
                            Some(lv) => merge(lv, av, s.elem()),
                            None => av.clone(),
                        });
                    }
                    ai += 1;
                    continue;
                }
                li += 1;
            }
            Value::Array(out)
        }
        _ => applied.clone(),
    }
}

/// Removes the value at `path` from an object.
fn remove_path(v: &mut Value, path: &[PathElement], s: Schema) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    let mut cur_schema = s;
    for pe in parents {
        let Some((next, next_schema)) = child_mut(cur, pe, cur_schema) else {
            return;
        };
        cur = next;
        cur_schema = next_schema;
    }
    match (cur, last) {
        (Value::Object(m), PathElement::Field(name)) => {
            m.shift_remove(name);
        }
        (Value::Array(items), pe) => {
            let mut i = 0;
            items.retain(|item| {
                let keep = item_element(cur_schema, item, i) != *pe;
                i += 1;
                keep
            });
        }
        _ => {}
    }
}

fn child_mut<'a>(v: &'a mut Value, pe: &PathElement, s: Schema) -> Option<(&'a mut Value, Schema)> {
    match (v, pe) {
        (Value::Object(m), PathElement::Field(name)) => {
            let cs = s.field(name);
            m.get_mut(name).map(|c| (c, cs))
        }
        (Value::Array(items), pe) => {
            let pos = items
                .iter()
                .enumerate()
                .position(|(i, item)| item_element(s, item, i) == *pe)?;
            items.get_mut(pos).map(|c| (c, s.elem()))
        }
        _ => None,
    }
}
