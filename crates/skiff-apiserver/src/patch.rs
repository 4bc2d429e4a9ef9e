//! PATCH (JSON, merge, strategic merge, server-side apply), managedFields bookkeeping, and the scale subresource.

use crate::objects::{self, Query, metadata_mut, now_rfc3339};
use crate::rest::{self, get_object, write_update};
use crate::server::{ApiServer, json_response};
use axum::body::Body;
use http::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use skiff_api::patch::{self, ApplyError, FieldManager, ManagedFieldsEntry, Schema};
use skiff_api::registry::ResourceInfo;
use skiff_api::status::{ApiError, Cause};

/// The field manager of a request: `fieldManager`, else the client program's name from User-Agent.
pub fn manager_name(q: &Query, headers: &http::HeaderMap) -> Result<String, ApiError> {
    if let Some(m) = q.get("fieldManager").filter(|m| !m.is_empty()) {
        if m.len() > 128 || m.chars().any(|c| c.is_control()) {
            return Err(ApiError::bad_request(
                "fieldManager: Invalid value: must be at most 128 printable characters",
            ));
        }
        return Ok(m.to_string());
    }
    let ua = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    Ok(ua
        .split('/')
        .next()
        .unwrap_or("unknown")
        .chars()
        .take(128)
        .collect())
}

fn managed_fields_of(obj: &Value) -> Vec<ManagedFieldsEntry> {
    obj.get("metadata")
        .and_then(|m| m.get("managedFields"))
        .and_then(|v| Vec::<ManagedFieldsEntry>::deserialize(v).ok())
        .unwrap_or_default()
}

/// Who writes `info` at `time`, through `subresource`.
fn field_manager<'a>(
    info: &ResourceInfo,
    manager: &'a str,
    time: &'a str,
    subresource: Option<&'a str>,
) -> FieldManager<'a> {
    FieldManager {
        manager,
        time,
        subresource,
        ignored_fields: ignored(info, subresource),
    }
}

fn ignored(info: &ResourceInfo, subresource: Option<&str>) -> &'static [&'static str] {
    match subresource {
        Some("status" | "approval") => &["spec", "metadata"],
        _ if info.status => &["status"],
        _ => &[],
    }
}

/// How server-side apply and managedFields see `info`'s objects: a built-in kind's table,
/// or a custom resource's CRD schema.
fn schema_of(info: &ResourceInfo) -> Schema {
    match info.custom_schema {
        Some(custom) => custom.0,
        None => Schema::for_kind(info.group, info.kind),
    }
}

/// Records a non-apply write of `new` over `old` in `new`'s managedFields.
pub fn track_update(
    info: &ResourceInfo,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
) {
    let now = now_rfc3339();
    let ctx = field_manager(info, manager, &now, subresource);
    let schema = schema_of(info);
    let existing = old.map(managed_fields_of).unwrap_or_default();
    // An update of the main resource that sends managed fields other than the stored
    // ones sets them, as upstream's field manager takes them (kubectl rewrites them when
    // `apply --server-side` takes over from its client-side apply); ones that are empty
    // or do not decode leave the stored ones.
    let sent_raw = new.pointer("/metadata/managedFields");
    let sent = match old {
        // Decoded only when they differ from the stored ones as sent, which is rare.
        Some(o)
            if subresource.is_none()
                && sent_raw
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty())
                && sent_raw != o.pointer("/metadata/managedFields") =>
        {
            Some(managed_fields_of(new)).filter(|m| !m.is_empty())
        }
        _ => None,
    };
    let result = match sent {
        Some(sent) => patch::update_managed_fields(old, new, &ctx, &sent, schema)
            .or_else(|_| patch::update_managed_fields(old, new, &ctx, &existing, schema)),
        None => patch::update_managed_fields(old, new, &ctx, &existing, schema),
    };
    match result {
        Ok(entries) => {
            metadata_mut(new).insert(
                "managedFields".into(),
                Value::Array(
                    entries
                        .into_iter()
                        .map(ManagedFieldsEntry::into_value)
                        .collect(),
                ),
            );
        }
        Err(e) => tracing::debug!(error = %format!("{e:?}"), "managedFields not updated"),
    }
}

/// The `metadata.managedFields` of a new object `manager` creates: every field it has.
pub fn created_managed_fields(info: &ResourceInfo, obj: &Value, manager: &str) -> Value {
    let now = now_rfc3339();
    let ctx = field_manager(info, manager, &now, None);
    let entries =
        patch::update_managed_fields(None, obj, &ctx, &[], schema_of(info)).unwrap_or_default();
    Value::Array(
        entries
            .into_iter()
            .map(ManagedFieldsEntry::into_value)
            .collect(),
    )
}

fn apply_error(info: &ResourceInfo, name: &str, e: ApplyError) -> ApiError {
    // The error's message is upstream's, and `Conflict::manager` is already printed the way
    // upstream prints managers (quoted, with operation and time).
    let msg = e.to_string();
    match e {
        ApplyError::Conflict(conflicts) => {
            let causes: Vec<Value> = conflicts.iter().map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", c.manager), "field": c.field})).collect();
            let mut details = json!({"name": name, "kind": info.plural, "causes": causes});
            if !info.group.is_empty() {
                details["group"] = json!(info.group);
            }
            ApiError {
                code: 409,
                reason: "Conflict",
                message: msg,
                details: Some(Box::new(details)),
                continue_token: None,
            }
        }
        ApplyError::Invalid(m) => ApiError::bad_request(m),
    }
}

/// PATCH of an object or its status.
#[allow(clippy::too_many_arguments)]
pub async fn patch_object(
    server: &ApiServer,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    subresource: Option<&str>,
    ct: &str,
    body: &[u8],
    q: &Query,
    dry_run: bool,
    manager: &str,
    user: &crate::server::User,
) -> Result<(StatusCode, Value, Vec<String>), ApiError> {
    let schema = schema_of(info);
    let is_apply = ct == "application/apply-patch+yaml" || ct == "application/apply-patch+cbor";
    if is_apply && q.get("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    let (patch_doc, dups) = match ct {
        "application/json-patch+json"
        | "application/merge-patch+json"
        | "application/strategic-merge-patch+json" => serde_json::from_slice::<Value>(body)
            .map(|v| (v, Vec::new()))
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
        "application/apply-patch+yaml" => objects::parse_body_noting(ct, body)?,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if is_apply {
        // Upstream's field manager refuses an apply configuration of another version.
        let version = patch_doc
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if version != info.api_version() {
            return Err(ApiError::bad_request(format!(
                "Incorrect version specified in apply patch. Specified patch version: {version}, expected: {}",
                info.api_version()
            )));
        }
    }
    if ct == "application/strategic-merge-patch+json"
        && (!schema.is_known() || info.custom_schema.is_some())
    {
        return Err(ApiError::unsupported_media_type(
            "application/strategic-merge-patch+json is not supported for custom resources",
        ));
    }
    let mut warnings = if is_apply {
        apply_field_validation(server, info, &patch_doc, &dups, q)?
    } else {
        Vec::new()
    };
    let force = q.flag("force") && q.get("force").is_some();
    // Optimistic retries: a patch without a resourceVersion applies to whatever is current.
    for _ in 0..16 {
        let current = match get_object(server, info, ns, name).await {
            Ok(c) => Some(c),
            Err(e) if e.code == 404 && is_apply && subresource.is_none() => None,
            Err(e) => return Err(e),
        };
        let Some(current) = current else {
            // Apply to a missing object creates it.
            let mut obj = patch_doc.clone();
            let now = now_rfc3339();
            let ctx = field_manager(info, manager, &now, None);
            let (applied, entries) = patch::server_side_apply(None, &obj, &ctx, force, &[], schema)
                .map_err(|e| apply_error(info, name, e))?;
            obj = applied;
            metadata_mut(&mut obj).insert(
                "managedFields".into(),
                serde_json::to_value(entries).unwrap_or(json!([])),
            );
            if objects::name_of(&obj).is_empty() {
                metadata_mut(&mut obj).insert("name".into(), json!(name));
            }
            if objects::name_of(&obj) != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    objects::name_of(&obj)
                )));
            }
            if crate::csr::is_csr(info.group, info.plural) {
                crate::csr::prepare_create(&mut obj, user);
            }
            match rest::create_object(server, info, ns, obj, dry_run, None).await {
                Ok(created) => return Ok((StatusCode::CREATED, created, warnings)),
                Err(e) if e.code == 409 && e.reason == "AlreadyExists" => continue,
                Err(e) => return Err(e),
            }
        };
        let rev = current.pointer("/metadata/resourceVersion").cloned();
        let new = match ct {
            "application/json-patch+json" => {
                let new = patch::json_patch(&current, &patch_doc).map_err(|e| match e {
                    patch::PatchError::InvalidJsonPatch(m) => ApiError::bad_request(m),
                    other => ApiError::invalid(
                        info.group,
                        info.kind,
                        name,
                        vec![Cause {
                            reason: "FieldValueInvalid",
                            message: other.to_string(),
                            field: String::new(),
                        }],
                    ),
                })?;
                decodable_patch_result(info, new)?
            }
            "application/merge-patch+json" => {
                decodable_patch_result(info, patch::merge_patch(&current, &patch_doc))?
            }
            "application/strategic-merge-patch+json" => {
                let new = patch::strategic_merge_patch(&current, &patch_doc, schema)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                // A patched object of the wrong shape is refused as upstream's converter
                // refuses it: 422 on the field `patch`, naming the patch.
                if let Some(detail) = crate::openapi::converter_error(info, &new) {
                    let value = json!(crate::openapi::go_plus_v(&patch_doc));
                    return Err(ApiError::invalid(
                        "",
                        "",
                        "",
                        vec![Cause::invalid("patch", &value, detail)],
                    ));
                }
                new
            }
            _ => {
                let mut base = current.clone();
                if let Some(md) = base.get_mut("metadata").and_then(Value::as_object_mut) {
                    md.remove("managedFields");
                }
                let applied = patch_doc.clone();
                let now = now_rfc3339();
                let ctx = field_manager(info, manager, &now, subresource);
                let (mut obj, entries) = patch::server_side_apply(
                    Some(&base),
                    &applied,
                    &ctx,
                    force,
                    &managed_fields_of(&current),
                    schema,
                )
                .map_err(|e| apply_error(info, name, e))?;
                metadata_mut(&mut obj).insert(
                    "managedFields".into(),
                    serde_json::to_value(entries).unwrap_or(json!([])),
                );
                obj
            }
        };
        let mut new = new;
        if !new.is_object() {
            return Err(ApiError::bad_request("the patch did not produce an object"));
        }
        if !is_apply {
            // The patched object is decoded as a body would be: unknown fields dropped,
            // and refused or warned about as `fieldValidation` says.
            let (checked, said) =
                rest::check_field_validation(&server.resources, info, new, &[], q)?;
            new = checked;
            warnings = said;
        }
        // The patch may carry its own resourceVersion precondition; otherwise pin to what we read.
        let explicit_rv = new.pointer("/metadata/resourceVersion") != rev.as_ref()
            && new.pointer("/metadata/resourceVersion").is_some();
        if !explicit_rv && let Some(rv) = &rev {
            metadata_mut(&mut new).insert("resourceVersion".into(), rv.clone());
        }
        if !is_apply {
            track_update(info, Some(&current), &mut new, manager, subresource);
        }
        match write_update(server, info, ns, name, subresource, &current, new, dry_run).await {
            Err(e) if e.code == 409 && e.reason == "Conflict" && !explicit_rv => continue,
            other => return other.map(|(code, obj)| (code, obj, warnings)),
        }
    }
    Err(ApiError::modified(info.group, info.plural, name))
}

/// Server-side apply's checks of the configuration: a field the schema does not declare
/// fails the request whatever `fieldValidation` says, as upstream's typed conversion fails
/// it (upstream answers 500; it is the client's mistake, so 400 here); keys the YAML
/// repeats fail it when Strict and are warnings when Warn.
fn apply_field_validation(
    server: &ApiServer,
    info: &ResourceInfo,
    doc: &Value,
    dups: &[crate::dupes::Duplicate],
    q: &Query,
) -> Result<Vec<String>, ApiError> {
    let mode = rest::field_validation_mode(q)?;
    let undeclared: Vec<String> = match server.resources.schema_for(info) {
        Some(schema) => crate::openapi::unknown_metadata_fields(doc)
            .iter()
            .map(|p| crate::openapi::apply_path(info, doc, p))
            .chain(
                crate::structural::unknown_fields(&schema, doc)
                    .into_iter()
                    .map(|p| format!(".{p}")),
            )
            .collect(),
        None => crate::openapi::unknown_fields(info, doc)
            .iter()
            .map(|p| crate::openapi::apply_path(info, doc, p))
            .collect(),
    };
    if !undeclared.is_empty() {
        let said: Vec<String> = undeclared
            .iter()
            .map(|p| format!("{p}: field not declared in schema"))
            .collect();
        let detail = match said.as_slice() {
            [one] => one.clone(),
            many => format!("errors:\n  {}", many.join("\n  ")),
        };
        let md = |k: &str| {
            doc.pointer(&format!("/metadata/{k}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        return Err(ApiError::bad_request(format!(
            "failed to create typed patch object ({}/{}; {}/{}, Kind={}): {detail}",
            md("namespace"),
            md("name"),
            info.group,
            info.version,
            info.kind
        )));
    }
    match (mode, dups.first()) {
        ("Strict", Some(d)) => Err(ApiError::bad_request(format!(
            "error strict decoding YAML: {}",
            d.strict_error()
        ))),
        ("Warn", _) => Ok(dups.iter().map(|d| d.warning()).collect()),
        _ => Ok(Vec::new()),
    }
}

/// A JSON or merge patch's result its kind's decoder refuses is refused as upstream's
/// patcher refuses it: 422 on the field `patch`, with the patched object and the decoder's
/// words. (A strategic merge patch's goes through the unstructured converter instead.)
fn decodable_patch_result(info: &ResourceInfo, new: Value) -> Result<Value, ApiError> {
    match crate::openapi::decode_error(info, &new) {
        None => Ok(new),
        Some(detail) => Err(ApiError::invalid(
            "",
            "",
            "",
            vec![Cause::invalid("patch", &json!(new.to_string()), detail)],
        )),
    }
}

fn scale_of(info: &ResourceInfo, obj: &Value) -> Value {
    let selector = match obj.pointer("/spec/selector") {
        Some(sel) if info.plural == "replicationcontrollers" => {
            let parts: Vec<String> = sel
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect()
                })
                .unwrap_or_default();
            parts.join(",")
        }
        Some(sel) => skiff_api::selector::LabelSelector::from_object(sel)
            .ok()
            .flatten()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        None => String::new(),
    };
    let md = obj.get("metadata").cloned().unwrap_or(json!({}));
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": md.get("name"), "namespace": md.get("namespace"), "uid": md.get("uid"), "resourceVersion": md.get("resourceVersion"), "creationTimestamp": md.get("creationTimestamp")},
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector},
    })
}

/// GET, PUT and PATCH of `/scale`.
#[allow(clippy::too_many_arguments)]
pub async fn scale(
    server: &ApiServer,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    method: &Method,
    ct: &str,
    body: &[u8],
    q: &Query,
    manager: &str,
    accept: &str,
) -> Result<Response<Body>, ApiError> {
    let dry = q.dry_run()?;
    for _ in 0..16 {
        let current = get_object(server, info, ns, name).await?;
        let scale = scale_of(info, &current);
        if method == Method::GET {
            if crate::rest::wants_table(accept) {
                let include = crate::table::IncludeObject::parse(q.get("includeObject"));
                let table = crate::table::scale_table(&scale, include);
                return Ok(json_response(StatusCode::OK, &table));
            }
            return Ok(json_response(StatusCode::OK, &scale));
        }
        let new_scale = if method == Method::PUT {
            objects::parse_body(ct, body)?
        } else {
            let doc: Value = match ct {
                "application/apply-patch+yaml" => objects::parse_body(ct, body)?,
                _ => serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
            };
            match ct {
                "application/json-patch+json" => patch::json_patch(&scale, &doc)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?,
                _ => patch::merge_patch(&scale, &doc),
            }
        };
        let replicas = new_scale
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if replicas < 0 {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                name,
                vec![Cause::invalid(
                    "spec.replicas",
                    &json!(replicas),
                    "must be greater than or equal to 0",
                )],
            ));
        }
        if let Some(rv) = new_scale
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            && Some(rv)
                != current
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
        {
            return Err(ApiError::modified(info.group, info.plural, name));
        }
        let mut new = current.clone();
        new["spec"]["replicas"] = json!(replicas);
        track_update(info, Some(&current), &mut new, manager, Some("scale"));
        match write_update(server, info, ns, name, None, &current, new, dry).await {
            Ok((code, obj)) => return Ok(json_response(code, &scale_of(info, &obj))),
            Err(e) if e.code == 409 && e.reason == "Conflict" => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::modified(info.group, info.plural, name))
}
