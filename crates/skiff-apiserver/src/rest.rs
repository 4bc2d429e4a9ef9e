//! REST verbs on resources: get, list, create, update, patch, delete, deletecollection, and
//! the status and scale subresources.

use crate::objects::{self, Query, encode, key, metadata_mut, name_of, now_rfc3339, prefix};
use crate::request::ResourceRequest;
use crate::server::{ApiServer, User, json_response, status_response};
use crate::table::{self, IncludeObject};
use axum::body::Body;
use base64::Engine;
use http::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use skiff_api::registry::{self, ResourceInfo};
use skiff_api::selector::{FieldSelector, LabelSelector};
use skiff_api::status::{ApiError, Cause};
use skiff_store::StoreError;
use std::sync::Arc;

/// Namespaces that exist from the start.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

pub(crate) fn store_error(info: &ResourceInfo, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::AlreadyExists => ApiError::already_exists(info.group, info.plural, name),
        StoreError::NotFound => ApiError::not_found(info.group, info.plural, name),
        StoreError::Conflict { .. } => ApiError::modified(info.group, info.plural, name),
        StoreError::Compacted {
            requested,
            compacted,
        } => ApiError::gone(format!(
            "The resourceVersion for the provided list is too old (requested {requested}, compacted through {compacted})."
        )),
        StoreError::FutureRevision(r) => ApiError::timeout(format!(
            "Too large resource version: {r}, current: less than {r}"
        )),
        other => ApiError::internal(other.to_string()),
    }
}

/// Creates the built-in namespaces and the `kubernetes` Service when they are missing.
pub async fn bootstrap(server: &Arc<ApiServer>) -> Result<(), ApiError> {
    let ns_info = registry::find("", "v1", "namespaces")
        .ok_or_else(|| ApiError::internal("namespaces are not registered"))?;
    for ns in SYSTEM_NAMESPACES {
        if server
            .store
            .get(&key(ns_info, None, ns))
            .await
            .map_err(|e| store_error(ns_info, ns, e))?
            .is_none()
        {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            match create_object(server, ns_info, None, obj, false, None).await {
                Ok(_) | Err(ApiError { code: 409, .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let pc_info = registry::find("scheduling.k8s.io", "v1", "priorityclasses")
        .ok_or_else(|| ApiError::internal("priorityclasses are not registered"))?;
    for (name, value, description) in crate::pods::SYSTEM_PRIORITY_CLASSES {
        if server
            .store
            .get(&key(pc_info, None, name))
            .await
            .map_err(|e| store_error(pc_info, name, e))?
            .is_none()
        {
            let obj = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
                "value": value, "description": description, "preemptionPolicy": "PreemptLowerPriority"});
            match create_object(server, pc_info, None, obj, false, None).await {
                Ok(_) | Err(ApiError { code: 409, .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let svc_info = registry::find("", "v1", "services")
        .ok_or_else(|| ApiError::internal("services are not registered"))?;
    if server
        .store
        .get(&key(svc_info, Some("default"), "kubernetes"))
        .await
        .map_err(|e| store_error(svc_info, "kubernetes", e))?
        .is_none()
    {
        let port = server
            .config
            .advertise_address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(6443);
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": server.allocator.first_ip().to_string(), "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}], "sessionAffinity": "None", "type": "ClusterIP"}});
        match create_object(server, svc_info, Some("default"), svc, false, None).await {
            Ok(_) | Err(ApiError { code: 409, .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Dispatches one request on a resource path.
pub async fn serve(
    server: &Arc<ApiServer>,
    r: ResourceRequest,
    req: Request<Body>,
    q: Query,
    user: User,
    accept: &str,
) -> Result<Response<Body>, ApiError> {
    // Admission reads namespaces and PriorityClasses from copies the watch cache keeps: a write
    // to them answers once the copies have it, so that the writer's next request sees it.
    let followed = matches!(
        (r.info.group, r.info.plural),
        ("", "namespaces") | ("scheduling.k8s.io", "priorityclasses")
    ) && req.method() != Method::GET;
    let res = serve_resource(server, r, req, q, user, accept).await;
    if followed && res.is_ok() {
        let written = server
            .store
            .current_revision()
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        if !server
            .cache
            .wait_for(written, std::time::Duration::from_secs(5))
            .await
        {
            tracing::warn!(revision = written, "the watch cache is behind the store");
        }
    }
    res
}

async fn serve_resource(
    server: &Arc<ApiServer>,
    r: ResourceRequest,
    req: Request<Body>,
    q: Query,
    user: User,
    accept: &str,
) -> Result<Response<Body>, ApiError> {
    let info = r.info;
    let manager = crate::patch::manager_name(&q, req.headers())?;
    let method = req.method().clone();
    let ns = r.namespace.as_deref();
    if r.watch_path || (method == Method::GET && q.flag("watch") && q.get("watch").is_some()) {
        if method != Method::GET {
            return Err(ApiError::method_not_allowed("watch requires GET"));
        }
        if !info.verbs.contains(&"watch") {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource (watch {})",
                info.plural
            )));
        }
        let in_process = req.extensions().get::<crate::server::Remote>().is_none();
        return crate::watch::serve(server, info, ns, r.name.as_deref(), &q, accept, in_process)
            .await;
    }
    let verbs = info.verbs;
    let verb_allowed = |v: &str| verbs.contains(&v);
    match (&method, r.name.as_deref(), r.subresource.as_deref()) {
        (&Method::GET, name, None)
            if info.group.is_empty() && info.plural == "componentstatuses" =>
        {
            let all = crate::components::statuses(server).await;
            let mut res = match name {
                Some(n) => {
                    let found = all.into_iter().find(|s| objects::name_of(s) == n);
                    let obj = found.ok_or_else(|| ApiError::not_found("", info.plural, n))?;
                    object_response(StatusCode::OK, info, obj, accept)
                }
                None if wants_table(accept) => json_response(
                    StatusCode::OK,
                    &table::table(info, &all, json!({}), IncludeObject::Metadata, false),
                ),
                None => json_response(
                    StatusCode::OK,
                    &json!({"kind": "ComponentStatusList", "apiVersion": "v1", "metadata": {}, "items": all}),
                ),
            };
            res.headers_mut().insert(
                "warning",
                http::HeaderValue::from_static(
                    "299 - \"v1 ComponentStatus is deprecated in v1.19+\"",
                ),
            );
            Ok(res)
        }
        (&Method::GET, None, None) if verb_allowed("list") => {
            list(server, info, ns, &q, accept).await
        }
        (&Method::POST, None, None) if info.group.is_empty() && info.plural == "bindings" => {
            // The legacy form of pods/binding: the Binding names the pod.
            let body = read_body(req).await?;
            let binding = objects::parse_body(&body.0, &body.1)?;
            let pod = binding
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let out = crate::pods::bind(server, ns, &pod, &binding, q.dry_run()?).await?;
            Ok(json_response(StatusCode::CREATED, &out))
        }
        (&Method::POST, None, None) if crate::reviews::is_review(info) => {
            let body = read_body(req).await?;
            // A review has no table form: a client that takes nothing else gets 406.
            let plain = accept
                .split(',')
                .map(str::trim)
                .any(|a| !a.contains("as=") && !a.is_empty());
            if wants_table(accept) && !plain {
                return Err(ApiError::not_acceptable(
                    "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
                ));
            }
            let (obj, dups) = objects::parse_object_body(&body.0, &body.1, info.kind)?;
            q.dry_run()?;
            let (mut obj, warnings) =
                check_field_validation(&server.resources, info, obj, &dups, &q)?;
            check_type_meta(info, &mut obj, false)?;
            let answer = crate::reviews::create(server, info, ns, obj, &user).await?;
            Ok(with_warnings(
                json_response(StatusCode::CREATED, &answer),
                &warnings,
            ))
        }
        (&Method::POST, None, None) if verb_allowed("create") => {
            let body = read_body(req).await?;
            let (obj, dups) = objects::parse_object_body(&body.0, &body.1, info.kind)?;
            let dry = q.dry_run()?;
            let (mut obj, warnings) =
                check_field_validation(&server.resources, info, obj, &dups, &q)?;
            if crate::csr::is_csr(info.group, info.plural) {
                crate::csr::prepare_create(&mut obj, &user);
            }
            let created = create_object(server, info, ns, obj, dry, Some(&manager)).await?;
            Ok(with_warnings(
                object_response(StatusCode::CREATED, info, created, accept),
                &warnings,
            ))
        }
        (&Method::DELETE, None, None) if verb_allowed("deletecollection") => {
            let body = read_body(req).await?;
            delete_collection(server, info, ns, &q, &body.1).await
        }
        // GET of `status` (a CSR's `approval`, a pod's `ephemeralcontainers`) answers the
        // whole object, as upstream.
        (
            &Method::GET,
            Some(name),
            sub @ (None | Some("status" | "approval" | "ephemeralcontainers")),
        ) if (sub.is_none() && verb_allowed("get"))
            || sub.is_some_and(|s| info.subresources.contains(&s)) =>
        {
            let obj = get_object(server, info, ns, name).await?;
            Ok(object_response(StatusCode::OK, info, obj, accept))
        }
        (
            &Method::PUT,
            Some(name),
            sub @ (None | Some("status" | "finalize" | "approval" | "ephemeralcontainers")),
        ) if (sub.is_none() && verb_allowed("update"))
            || sub.is_some_and(|s| info.subresources.contains(&s)) =>
        {
            let name = name.to_string();
            let sub = sub.map(str::to_string);
            let body = read_body(req).await?;
            let (obj, dups) = objects::parse_object_body(&body.0, &body.1, info.kind)?;
            let (obj, warnings) = check_field_validation(&server.resources, info, obj, &dups, &q)?;
            let dry = q.dry_run()?;
            let (code, obj) =
                update_object(server, info, ns, &name, sub.as_deref(), obj, dry, &manager).await?;
            Ok(with_warnings(
                object_response(code, info, obj, accept),
                &warnings,
            ))
        }
        (
            &Method::PATCH,
            Some(name),
            sub @ (None | Some("status" | "approval" | "ephemeralcontainers")),
        ) if (sub.is_none() && verb_allowed("patch"))
            || sub.is_some_and(|s| info.subresources.contains(&s)) =>
        {
            let name = name.to_string();
            let sub = sub.map(str::to_string);
            let body = read_body(req).await?;
            let dry = q.dry_run()?;
            let (code, obj, warnings) = crate::patch::patch_object(
                server,
                info,
                ns,
                &name,
                sub.as_deref(),
                &body.0,
                &body.1,
                &q,
                dry,
                &manager,
                &user,
            )
            .await?;
            Ok(with_warnings(
                object_response(code, info, obj, accept),
                &warnings,
            ))
        }
        (&Method::DELETE, Some(name), None) if verb_allowed("delete") => {
            let name = name.to_string();
            let body = read_body(req).await?;
            let opts = if body.1.iter().all(u8::is_ascii_whitespace) {
                json!({})
            } else {
                objects::parse_body(&body.0, &body.1)?
            };
            let dry = q.dry_run()?
                || opts
                    .get("dryRun")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|v| v == "All"));
            let (code, body) = delete_object(server, info, ns, &name, &opts, &q, dry).await?;
            Ok(json_response(code, &body))
        }
        (m, Some(name), Some("scale"))
            if info.scale && (m == Method::GET || m == Method::PUT || m == Method::PATCH) =>
        {
            let name = name.to_string();
            let ct = objects::content_type(req.headers());
            let body = read_body(req).await?;
            crate::patch::scale(
                server, info, ns, &name, m, &ct, &body.1, &q, &manager, accept,
            )
            .await
        }
        (&Method::POST, Some(name), Some("token"))
            if info.group.is_empty() && info.plural == "serviceaccounts" =>
        {
            let Some(signer) = server.tokens.get() else {
                return Err(ApiError::method_not_allowed(
                    "service account tokens are not supported by this server",
                ));
            };
            let name = name.to_string();
            let body = read_body(req).await?;
            let obj = if body.1.iter().all(u8::is_ascii_whitespace) {
                json!({})
            } else {
                objects::parse_body(&body.0, &body.1)?
            };
            let ns = ns.ok_or_else(|| ApiError::bad_request("service accounts are namespaced"))?;
            let answer = crate::tokens::request(server, signer, ns, &name, &obj).await?;
            Ok(json_response(StatusCode::CREATED, &answer))
        }
        (&Method::POST, Some(name), Some("binding"))
            if info.group.is_empty() && info.plural == "pods" =>
        {
            let name = name.to_string();
            let body = read_body(req).await?;
            let binding = objects::parse_body(&body.0, &body.1)?;
            let out = crate::pods::bind(server, ns, &name, &binding, q.dry_run()?).await?;
            Ok(json_response(StatusCode::CREATED, &out))
        }
        (&Method::POST, Some(name), Some("eviction"))
            if info.group.is_empty() && info.plural == "pods" =>
        {
            let name = name.to_string();
            let body = read_body(req).await?;
            let eviction = objects::parse_body(&body.0, &body.1)?;
            let out = crate::pods::evict(server, ns, &name, &eviction, &q).await?;
            Ok(json_response(StatusCode::CREATED, &out))
        }
        (_, _, Some(sub)) if info.subresources.contains(&sub) => Err(ApiError::new(
            501,
            "NotImplemented",
            format!(
                "the {sub} subresource of {} is not supported by this server yet",
                info.plural
            ),
        )),
        (_, _, Some(_)) => Err(ApiError::no_route()),
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method} {})",
            info.plural
        ))),
    }
}

/// The body's media type and bytes, at most [`objects::MAX_BODY`].
pub async fn read_body(req: Request<Body>) -> Result<(String, bytes::Bytes), ApiError> {
    use http_body_util::BodyExt;
    let ct = objects::content_type(req.headers());
    let mut body = req.into_body();
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    // Past the limit, keep draining (up to a bound) so the client can read the 413 instead of a reset.
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("cannot read request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= objects::MAX_BODY {
                buf.extend_from_slice(&data);
            } else if seen > 4 * objects::MAX_BODY {
                break;
            }
        }
    }
    if seen > objects::MAX_BODY {
        return Err(ApiError::too_large());
    }
    Ok((ct, buf.freeze()))
}

/// What `fieldValidation` makes of a request body (`dups`: the fields it repeated). Fields
/// a built-in kind does not know are dropped, as upstream's typed decoding drops them, and so
/// are unknown `metadata` fields of a custom resource (the rest of it is pruned by its schema
/// later). With `Strict` any unknown or repeated field fails the request; with `Warn`, the
/// default, each is a warning; with `Ignore` nothing is said.
pub fn check_field_validation(
    resources: &crate::crd::Resources,
    info: &ResourceInfo,
    mut obj: Value,
    dups: &[crate::dupes::Duplicate],
    q: &Query,
) -> Result<(Value, Vec<String>), ApiError> {
    let mode = field_validation_mode(q)?;
    if !obj.is_object() {
        return Err(ApiError::bad_request(format!(
            "the body must be a JSON object describing a {}",
            info.kind
        )));
    }
    let mut unknown: Vec<String> = Vec::new();
    let custom = resources.schema_for(info);
    let known = if custom.is_some() {
        crate::openapi::unknown_metadata_fields(&obj)
    } else {
        crate::openapi::unknown_fields(info, &obj)
    };
    if !known.is_empty() {
        unknown.extend(known.iter().map(|p| crate::openapi::dotted(p)));
        crate::openapi::remove_fields(&mut obj, &known);
    }
    if mode != "Ignore"
        && let Some(schema) = &custom
    {
        unknown.extend(crate::structural::unknown_fields(schema, &obj));
    }
    let said = unknown
        .iter()
        .map(|u| format!("unknown field {u:?}"))
        .chain(dups.iter().map(|d| match mode {
            "Strict" => d.strict_error(),
            _ => d.warning(),
        }));
    match mode {
        "Strict" if !unknown.is_empty() || !dups.is_empty() => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            said.collect::<Vec<_>>().join(", ")
        ))),
        "Warn" => Ok((obj, said.collect())),
        _ => Ok((obj, Vec::new())),
    }
}

/// The request's `fieldValidation`: Warn when not given, as upstream.
pub fn field_validation_mode(q: &Query) -> Result<&str, ApiError> {
    match q.get("fieldValidation").unwrap_or("") {
        "" => Ok("Warn"),
        mode @ ("Strict" | "Warn" | "Ignore") => Ok(mode),
        mode => Err(ApiError::bad_request(format!(
            "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {mode:?}"
        ))),
    }
}

/// Adds upstream's `Warning: 299 - "..."` headers to an answer.
pub fn with_warnings(mut resp: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let value = format!("299 - {}", Value::String(w.clone()));
        if let Ok(v) = http::HeaderValue::from_bytes(value.as_bytes()) {
            resp.headers_mut().append("warning", v);
        }
    }
    resp
}

pub async fn get_object(
    server: &ApiServer,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
) -> Result<Value, ApiError> {
    let kv = server
        .store
        .get(&key(info, ns, name))
        .await
        .map_err(|e| store_error(info, name, e))?;
    let kv = kv.ok_or_else(|| ApiError::not_found(info.group, info.plural, name))?;
    let obj = crate::cache::decode(&kv.value, kv.mod_revision)
        .ok_or_else(|| ApiError::internal(format!("stored object {} is corrupt", kv.key)))?;
    Ok(convert_out(info, obj))
}

/// Sets apiVersion/kind for the version the client asked for.
pub fn convert_out(info: &ResourceInfo, obj: Value) -> Value {
    let mut obj = if info.storage_version {
        obj
    } else {
        skiff_api::convert::convert(info.group, info.kind, &obj, info.version)
    };
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(info.api_version()));
        m.insert("kind".into(), json!(info.kind));
    }
    obj
}

/// Serializes an object for the store, in its kind's storage version.
fn encode_stored(info: &ResourceInfo, obj: &Value) -> bytes::Bytes {
    if info.storage_version {
        return encode(obj);
    }
    match Some(registry::storage_of(info)).filter(|s| s.storage_version) {
        Some(storage) => {
            let mut stored =
                skiff_api::convert::convert(info.group, info.kind, obj, storage.version);
            stored["apiVersion"] = json!(storage.api_version());
            encode(&stored)
        }
        None => encode(obj),
    }
}

pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

/// The client asked for metadata only (`as=PartialObjectMetadata` or `...List`), as the
/// metadata clients of client-go and kube-rs do.
pub fn wants_partial_metadata(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=PartialObjectMetadata"))
}

/// An object reduced to a `meta.k8s.io/v1` PartialObjectMetadata.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn object_response(
    code: StatusCode,
    info: &ResourceInfo,
    obj: Value,
    accept: &str,
) -> Response<Body> {
    if wants_partial_metadata(accept) {
        return json_response(code, &partial_metadata(&obj));
    }
    if wants_table(accept) {
        let rv = obj
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(json!(""));
        return json_response(
            code,
            &table::table(
                info,
                &[obj],
                json!({"resourceVersion": rv}),
                IncludeObject::Metadata,
                false,
            ),
        );
    }
    json_response(code, &obj)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    /// The revision the first page was read at.
    rv: i64,
    /// The last key returned.
    start: String,
}

/// Label and field selectors of a list or watch request.
pub struct Filter {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn from_query(info: &ResourceInfo, q: &Query) -> Result<Filter, ApiError> {
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let mut fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        // Reject unsupported field labels up front, as upstream does; then name the fields as
        // the stored objects (and the watch cache's attributes) have them.
        for r in &mut fields.requirements {
            objects::field_value(info, &json!({}), &r.field)?;
            r.field = objects::stored_field(info, &r.field);
        }
        Ok(Filter { labels, fields })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    /// Whether a stored object of `info` (in its storage version) matches.
    pub fn matches(&self, info: &ResourceInfo, obj: &Value) -> bool {
        let stored = registry::storage_of(info);
        self.labels.matches_object(obj)
            && self.fields.matches(|f| {
                objects::field_value(stored, obj, f)
                    .ok()
                    .flatten()
                    .map(std::borrow::Cow::Owned)
            })
    }

    /// The same test on attributes taken from the object beforehand.
    pub fn matches_attrs(&self, attrs: &objects::Attrs) -> bool {
        self.labels.matches(&attrs.labels)
            && self
                .fields
                .matches(|f| attrs.field(f).map(std::borrow::Cow::Borrowed))
    }
}

/// A continued list whose revision was compacted away: 410, with a token that goes on from
/// the same key at the newest revision (upstream's "inconsistent continue").
fn expired_continue(start: &str) -> ApiError {
    let mut e = ApiError::gone(
        "The provided continue parameter is too old to display a consistent list result. \
         You can start a new list without the continue parameter, or use the continue token \
         in this response to retrieve the remainder of the results. Continuing with the \
         provided token results in an inconsistent list - objects that were created, \
         modified, or deleted between the time the first chunk was returned and now may \
         show up in the list.",
    );
    let token = serde_json::to_vec(&ContinueToken {
        rv: -1,
        start: start.to_string(),
    })
    .unwrap_or_default();
    e.continue_token = Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token));
    e
}

pub async fn list(
    server: &ApiServer,
    info: &ResourceInfo,
    ns: Option<&str>,
    q: &Query,
    accept: &str,
) -> Result<Response<Body>, ApiError> {
    let filter = Filter::from_query(info, q)?;
    let limit = q.int("limit")?.unwrap_or(0).max(0) as usize;
    let (mut revision, mut start_after) = (0i64, None::<String>);
    if let Some(token) = q.get("continue").filter(|t| !t.is_empty()) {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|_| ApiError::bad_request("continue key is not valid"))?;
        let t: ContinueToken = serde_json::from_slice(&raw)
            .map_err(|_| ApiError::bad_request("continue key is not valid"))?;
        if !t.start.starts_with(&prefix(info, ns)) {
            return Err(ApiError::bad_request(
                "continue key is not valid: it belongs to another list",
            ));
        }
        // -1: the token a list that expired answered with, to go on at the newest revision.
        revision = t.rv.max(0);
        start_after = Some(t.start);
    } else if let Some(rv) = q
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
    {
        let rv: i64 = rv
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?;
        match q.get("resourceVersionMatch") {
            Some("Exact") => revision = rv,
            Some("NotOlderThan") | None => {
                if rv
                    > server
                        .store
                        .current_revision()
                        .await
                        .map_err(|e| store_error(info, "", e))?
                {
                    return Err(ApiError::timeout(format!(
                        "Too large resource version: {rv}"
                    )));
                }
            }
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
                )));
            }
        }
    }
    let pfx = prefix(info, ns);
    let mut items = if wants_table(accept) {
        ListSink::Table(Vec::new(), IncludeObject::parse(q.get("includeObject")))
    } else if wants_partial_metadata(accept) {
        ListSink::Partial(Vec::new())
    } else {
        ListSink::Json(Vec::new(), 0)
    };
    let mut next: Option<String> = None;
    let mut remaining: Option<i64> = None;
    // Read in chunks at one revision, so a large list never holds every stored value at once.
    let chunk = if limit == 0 { 500 } else { limit.max(16) };
    loop {
        let res = server
            .store
            .range_chunk(&pfx, start_after.as_deref(), chunk, revision)
            .await
            .map_err(|e| match (e, &start_after) {
                (StoreError::Compacted { .. }, Some(start)) if q.get("continue").is_some() => {
                    expired_continue(start)
                }
                (e, _) => store_error(info, "", e),
            })?;
        revision = res.revision;
        let mut last_key = None;
        let mut stopped_early = false;
        let n = res.kvs.len();
        for (idx, kv) in res.kvs.into_iter().enumerate() {
            last_key = Some(kv.key.clone());
            let Some(obj) = crate::cache::decode(&kv.value, kv.mod_revision) else {
                continue;
            };
            // A key under the prefix with deeper segments belongs to another resource layout; skip.
            if filter.matches(info, &obj) {
                items.push(info, convert_out(info, obj));
            }
            if limit > 0 && items.len() >= limit {
                stopped_early = idx + 1 < n || res.more;
                break;
            }
        }
        if limit > 0 && items.len() >= limit {
            if stopped_early {
                next = last_key;
            }
            break;
        }
        if !res.more {
            break;
        }
        start_after = last_key;
    }
    // Upstream counts what follows the page only for lists without selectors: counted
    // once here, not for every chunk read.
    if let Some(k) = next.as_deref().filter(|_| filter.is_empty()) {
        remaining = Some(
            server
                .store
                .count(&pfx, Some(k), revision)
                .await
                .map_err(|e| store_error(info, "", e))?,
        );
    }
    let mut meta = json!({"resourceVersion": revision.to_string()});
    if let Some(k) = next {
        let token = serde_json::to_vec(&ContinueToken {
            rv: revision,
            start: k,
        })
        .unwrap_or_default();
        meta["continue"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token));
        if let Some(r) = remaining.filter(|r| *r > 0) {
            meta["remainingItemCount"] = json!(r);
        }
    }
    match items {
        ListSink::Table(rows, _) => Ok(json_response(
            StatusCode::OK,
            &table::table_from_rows(info, rows, meta, false),
        )),
        ListSink::Partial(items) => Ok(json_response(
            StatusCode::OK,
            &json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": meta,
                "items": items,
            }),
        )),
        ListSink::Json(buf, _) => {
            let head = json!({"kind": format!("{}List", info.kind), "apiVersion": info.api_version(), "metadata": meta});
            let head = serde_json::to_vec(&head).unwrap_or_default();
            // `{...head...,"items":[ ... ]}`: the head without its closing brace, then the items.
            let mut body = Vec::with_capacity(head.len() + buf.len() + 16);
            body.extend_from_slice(&head[..head.len().saturating_sub(1)]);
            body.extend_from_slice(b",\"items\":[");
            body.extend_from_slice(&buf);
            body.extend_from_slice(b"]}");
            Ok(Response::builder()
                .status(StatusCode::OK)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .unwrap_or_default())
        }
    }
}

/// List items rendered as they are read, so a large list never holds every decoded object.
enum ListSink {
    /// Serialized items, comma-separated, and how many.
    Json(Vec<u8>, usize),
    Table(Vec<Value>, IncludeObject),
    Partial(Vec<Value>),
}

impl ListSink {
    fn push(&mut self, info: &ResourceInfo, obj: Value) {
        match self {
            ListSink::Json(buf, n) => {
                if *n > 0 {
                    buf.push(b',');
                }
                if serde_json::to_writer(&mut *buf, &obj).is_ok() {
                    *n += 1;
                }
            }
            ListSink::Table(rows, include) => rows.push(table::row(info, &obj, *include)),
            ListSink::Partial(items) => items.push(partial_metadata(&obj)),
        }
    }

    fn len(&self) -> usize {
        match self {
            ListSink::Json(_, n) => *n,
            ListSink::Table(rows, _) => rows.len(),
            ListSink::Partial(items) => items.len(),
        }
    }
}

async fn namespace_usable(server: &ApiServer, ns: &str) -> Result<(), ApiError> {
    use crate::namespaces::State;
    // As upstream's NamespaceLifecycle admission: trust the cache, ask the store when it has not
    // seen the namespace (yet).
    let state = match server.namespaces.get(ns) {
        Some(state) => state,
        None => {
            let ns_info = registry::find("", "v1", "namespaces")
                .ok_or_else(|| ApiError::internal("namespaces are not registered"))?;
            let kv = server
                .store
                .get(&key(ns_info, None, ns))
                .await
                .map_err(|e| store_error(ns_info, ns, e))?
                .ok_or_else(|| ApiError::not_found("", "namespaces", ns))?;
            let v: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
            crate::namespaces::extract(&v).map_or(State::Active, |(_, s)| s)
        }
    };
    match state {
        State::Active => Ok(()),
        State::Terminating => Err(ApiError::forbidden(format!(
            "unable to create new content in namespace {ns} because it is being terminated"
        ))),
    }
}

/// Checks the object's types (of `status` alone when `status_only`: the rest is the stored
/// object's), its apiVersion and kind, and sets them.
fn check_type_meta(
    info: &ResourceInfo,
    obj: &mut Value,
    status_only: bool,
) -> Result<(), ApiError> {
    let error = if status_only {
        crate::openapi::member_decode_error(info, obj, "status")
    } else {
        crate::openapi::decode_error(info, obj)
    };
    if let Some(e) = error {
        // Upstream's words for a body its decoder refuses, naming the kind and version the
        // body gave (the request's when it gave none).
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .unwrap_or(info.kind);
        let version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(|v| v.rsplit('/').next().unwrap_or(v))
            .unwrap_or(info.version);
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {}: {e}",
            info.kind
        )));
    }
    let av = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    let kind = obj.get("kind").and_then(Value::as_str).map(str::to_string);
    if let Some(av) = &av
        && *av != info.api_version()
        && !av.is_empty()
    {
        // Accept another served version of the same kind (e.g. autoscaling/v1 vs v2) only when it is this resource.
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            info.api_version()
        )));
    }
    if let Some(k) = &kind
        && k != info.kind
        && !k.is_empty()
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            info.kind
        )));
    }
    obj["apiVersion"] = json!(info.api_version());
    obj["kind"] = json!(info.kind);
    Ok(())
}

fn kinds_without_spec_generation(info: &ResourceInfo) -> bool {
    matches!(
        info.plural,
        "configmaps"
            | "secrets"
            | "events"
            | "endpoints"
            | "serviceaccounts"
            | "namespaces"
            | "pods"
    )
}

/// Prepares and stores a new object. Used by POST, by apply-create and by bootstrap.
pub async fn create_object(
    server: &ApiServer,
    info: &ResourceInfo,
    ns: Option<&str>,
    mut obj: Value,
    dry_run: bool,
    manager: Option<&str>,
) -> Result<Value, ApiError> {
    check_type_meta(info, &mut obj, false)?;
    let body_ns = objects::namespace_of(&obj).map(str::to_string);
    let shown_name;
    {
        let md = metadata_mut(&mut obj);
        if info.namespaced {
            match (ns, body_ns.as_deref()) {
                (Some(path_ns), Some(b)) if !b.is_empty() && b != path_ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                (Some(path_ns), _) => {
                    md.insert("namespace".into(), json!(path_ns));
                }
                (None, _) => {
                    return Err(ApiError::bad_request(format!(
                        "{} must be created in a namespace",
                        info.plural
                    )));
                }
            }
        } else {
            md.remove("namespace");
        }
        let name = md
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        // Admission messages name a generated object by its prefix, as upstream's do.
        shown_name = md
            .get("generateName")
            .and_then(Value::as_str)
            .filter(|_| name.is_empty())
            .unwrap_or(&name)
            .to_string();
        if name.is_empty()
            && let Some(g) = md
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|g| !g.is_empty())
        {
            let base: String = g.chars().take(58).collect();
            md.insert(
                "name".into(),
                json!(format!("{base}{}", objects::random_suffix(5))),
            );
        }
        md.insert("uid".into(), json!(objects::new_uid()));
        md.insert("creationTimestamp".into(), json!(now_rfc3339()));
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            md.remove(k);
        }
        if obj_has_spec_generation(info) {
            md.insert("generation".into(), json!(1));
        } else {
            md.remove("generation");
        }
    }
    let name = name_of(&obj).to_string();
    if info.namespaced
        && let Some(ns) = ns
    {
        namespace_usable(server, ns).await?;
    }
    skiff_api::defaults::apply(info.group, info.kind, &mut obj);
    // The creator owns what it sent with its defaults, not what admission and the server
    // add afterwards (upstream's field manager runs before mutating admission): a later
    // server-side apply that leaves out, say, the service account a pod was given must
    // not remove it.
    let schema = server.resources.schema_for(info);
    let mut owned = manager
        .filter(|_| schema.is_none())
        .map(|m| crate::patch::created_managed_fields(info, &obj, m));
    let admitted_ns = ns.filter(|_| info.namespaced);
    if let Some(ns) = admitted_ns {
        crate::admission::default_limits(server, info, ns, &mut obj);
    }
    prepare_for_create(info, &mut obj);
    let mut causes = skiff_api::validation::validate(info.group, info.kind, &obj);
    if let Some(schema) = schema {
        causes.extend(crate::structural::apply(&schema, &mut obj));
        // A custom resource's schema defaults are the creator's, as upstream's decoding
        // applies them.
        owned = manager.map(|m| crate::patch::created_managed_fields(info, &obj, m));
    }
    if is_crd(info) {
        causes.extend(crate::crd::validate(&obj));
        crate::crd::accept(&mut obj);
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(info.group, info.kind, &name, causes));
    }
    if info.group == "batch" && info.plural == "jobs" {
        job_selector(&mut obj)?;
    }
    if info.group.is_empty() && info.plural == "pods" {
        if let Some(ns) = admitted_ns {
            crate::pods::admit_service_account(server, ns, &mut obj).await?;
        }
        crate::pods::admit_priority(server, &mut obj).await?;
        crate::pods::admit_runtime_class(server, &mut obj).await?;
        crate::pods::admit_default_tolerations(&server.pod_defaults, &mut obj);
    }
    if info.group.is_empty()
        && info.plural == "secrets"
        && let (Some(ns), Some(signer)) = (admitted_ns, server.tokens.get())
    {
        crate::tokens::fill_token_secret(server, signer, ns, &mut obj).await;
    }
    let charged = match admitted_ns {
        Some(ns) => {
            crate::admission::check_limits(server, info, ns, &shown_name, &obj)?;
            crate::admission::charge_quotas(server, info, ns, &shown_name, &obj, None, dry_run)
                .await?
        }
        None => crate::admission::Charged::default(),
    };
    if info.group.is_empty()
        && info.plural == "services"
        && let Err(e) = server.allocator.allocate(&mut obj, dry_run).await
    {
        charged.release(server).await;
        return Err(e);
    }
    if let Some(entries) = owned {
        metadata_mut(&mut obj).insert("managedFields".into(), entries);
    }
    if dry_run {
        return Ok(obj);
    }
    let rev = match server
        .store
        .create(&key(info, ns, &name), encode_stored(info, &obj))
        .await
    {
        Ok(rev) => rev,
        Err(e) => {
            if info.plural == "services" {
                server.allocator.release(&obj).await;
            }
            charged.release(server).await;
            return Err(store_error(info, &name, e));
        }
    };
    metadata_mut(&mut obj).insert("resourceVersion".into(), json!(rev.to_string()));
    if is_crd(info) {
        // Serve the new resources at once; the watch only catches up other servers.
        server.resources.define(&obj);
    }
    Ok(obj)
}

fn obj_has_spec_generation(info: &ResourceInfo) -> bool {
    !kinds_without_spec_generation(info)
}

/// Status a client may not set at creation, as upstream's strategies reset it.
fn prepare_for_create(info: &ResourceInfo, obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    if info.status
        && !matches!(
            info.plural,
            "nodes"
                | "namespaces"
                | "persistentvolumes"
                | "persistentvolumeclaims"
                | "certificatesigningrequests"
        )
    {
        // Built-in kinds serialize an empty status struct as `{}`; custom resources have none.
        if registry::find(info.group, info.version, info.plural).is_some() {
            let empty = if info.group.is_empty() && info.plural == "services" {
                json!({"loadBalancer": {}})
            } else {
                json!({})
            };
            m.insert("status".into(), empty);
            skiff_api::defaults::always_written_status(info.group, info.kind, m);
        } else {
            m.remove("status");
        }
    }
    if info.group.is_empty() && info.plural == "pods" {
        let qos = skiff_api::quota::pod_qos(m.get("spec"));
        m.insert(
            "status".into(),
            json!({"phase": "Pending", "qosClass": qos}),
        );
    }
}

/// Upstream's Job strategy: a selector on the job's uid, and matching labels on the template.
fn job_selector(obj: &mut Value) -> Result<(), ApiError> {
    if obj.pointer("/spec/manualSelector") == Some(&json!(true)) {
        return Ok(());
    }
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = name_of(obj).to_string();
    if obj.pointer("/spec/selector").is_some_and(|s| !s.is_null()) {
        return Err(ApiError::invalid(
            "batch",
            "Job",
            &name,
            vec![Cause::invalid(
                "spec.selector",
                &obj["spec"]["selector"],
                "`selector` will be auto-generated",
            )],
        ));
    }
    obj["spec"]["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
    let tmpl = &mut obj["spec"]["template"];
    if !tmpl.get("metadata").is_some_and(Value::is_object) {
        tmpl["metadata"] = json!({});
    }
    if !tmpl["metadata"].get("labels").is_some_and(Value::is_object) {
        tmpl["metadata"]["labels"] = json!({});
    }
    let labels = &mut tmpl["metadata"]["labels"];
    labels["batch.kubernetes.io/controller-uid"] = json!(uid);
    labels["batch.kubernetes.io/job-name"] = json!(name);
    labels["controller-uid"] = json!(uid);
    labels["job-name"] = json!(name);
    Ok(())
}

/// Whether `a` and `b` agree on everything but `metadata` and `status` (the spec, for the
/// generation).
fn same_spec(a: &Value, b: &Value) -> bool {
    same_except(a, b, &["metadata", "status"])
}

/// Whether the objects `a` and `b` are equal apart from their top-level fields in `skip`.
fn same_except(a: &Value, b: &Value, skip: &[&str]) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let kept = |m: &'_ serde_json::Map<String, Value>| {
        m.keys().filter(|k| !skip.contains(&k.as_str())).count()
    };
    kept(a) == kept(b)
        && a.iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .all(|(k, v)| b.get(k) == Some(v))
}

/// Whether `new` equals `current` apart from `status` and `metadata.managedFields` (which
/// `new` has when `current` does).
fn only_status_differs(current: &Value, new: &Value) -> bool {
    same_except(current, new, &["metadata", "status"])
        && match (current.get("metadata"), new.get("metadata")) {
            (Some(a), Some(b)) => {
                same_except(a, b, &["managedFields"])
                    && (a.get("managedFields").is_none() || b.get("managedFields").is_some())
            }
            (a, b) => a == b,
        }
}

/// Whether `current` (as stored, with its resourceVersion) and `new` (without one) are the
/// same object: an update that changes nothing is not written.
fn unchanged(current: &Value, new: &Value) -> bool {
    same_except(current, new, &["metadata"])
        && match (current.get("metadata"), new.get("metadata")) {
            (Some(a), Some(b)) => same_except(a, b, &["resourceVersion"]),
            (a, b) => a == b,
        }
}

/// A status write keeps the labels, annotations and finalizers it sends, as upstream's
/// status strategies do for most kinds (they reset only the spec), except where they reset
/// metadata too: custom resources and the kinds using `ResetObjectMetaForStatus` keep all of
/// it, Deployments their labels.
fn carry_status_metadata(info: &ResourceInfo, obj: &mut Value, sent: Option<&Value>) {
    const RESET: &[(&str, &str)] = &[
        ("storage.k8s.io", "volumeattachments"),
        (
            "admissionregistration.k8s.io",
            "validatingadmissionpolicies",
        ),
        ("admissionregistration.k8s.io", "mutatingadmissionpolicies"),
        ("networking.k8s.io", "servicecidrs"),
        ("resource.k8s.io", "resourceclaims"),
    ];
    let custom = registry::find(info.group, info.version, info.plural).is_none();
    if custom || RESET.contains(&(info.group, info.plural)) {
        return;
    }
    let keep_labels = info.group == "apps" && info.plural == "deployments";
    let (Some(sent), Some(md)) = (
        sent.and_then(Value::as_object),
        obj.get_mut("metadata").and_then(Value::as_object_mut),
    ) else {
        return;
    };
    for field in ["labels", "annotations", "finalizers"] {
        if field == "labels" && keep_labels {
            continue;
        }
        match sent.get(field) {
            Some(v) => {
                md.insert(field.into(), v.clone());
            }
            None => {
                md.shift_remove(field);
            }
        }
    }
}

/// The write path shared by PUT and PATCH: `new` replaces `current` (read at `current_rev`).
#[allow(clippy::too_many_arguments)]
pub async fn write_update(
    server: &ApiServer,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    subresource: Option<&str>,
    current: &Value,
    mut new: Value,
    dry_run: bool,
) -> Result<(StatusCode, Value), ApiError> {
    let status_only = subresource == Some("status") && only_status_differs(current, &new);
    check_type_meta(info, &mut new, status_only)?;
    let current_rev: i64 = current
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if let Some(body_name) = new.pointer("/metadata/name").and_then(Value::as_str)
        && body_name != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    // "0", like no resourceVersion, makes the update unconditional, as upstream parses it.
    if let Some(rv) = new
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && *s != "0")
        && rv.parse::<i64>().ok() != Some(current_rev)
    {
        return Err(ApiError::modified(info.group, info.plural, name));
    }
    if let Some(b) = new
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        && info.namespaced
        && Some(b) != ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    match subresource {
        // Only status changes; everything else comes from the current object, except the
        // managedFields that recorded this write (upstream's ResetObjectMetaForStatus keeps
        // them too). A patch of status alone (a kubelet's) already is that object.
        Some("status") if status_only => {}
        Some("status") => {
            let sent_metadata = new.get("metadata").cloned();
            let mut status = new.as_object_mut().and_then(|m| m.remove("status"));
            let mut managed = new
                .get_mut("metadata")
                .and_then(Value::as_object_mut)
                .and_then(|m| m.remove("managedFields"));
            let mut merged = serde_json::Map::new();
            for (k, v) in current.as_object().into_iter().flatten() {
                if k == "status" {
                    if let Some(s) = status.take() {
                        merged.insert(k.clone(), s);
                    }
                } else if k == "metadata"
                    && let Some(mf) = managed.take()
                {
                    let mut md = v.clone();
                    if let Some(m) = md.as_object_mut() {
                        m.insert("managedFields".into(), mf);
                    }
                    merged.insert(k.clone(), md);
                } else {
                    merged.insert(k.clone(), v.clone());
                }
            }
            if let Some(s) = status {
                merged.insert("status".into(), s);
            }
            new = Value::Object(merged);
            carry_status_metadata(info, &mut new, sent_metadata.as_ref());
        }
        Some("approval") => {
            let sent_metadata = new.get("metadata").cloned();
            new = crate::csr::approval(current, &new, name)?;
            carry_status_metadata(info, &mut new, sent_metadata.as_ref());
        }
        Some("ephemeralcontainers") => {
            new = crate::pods::ephemeral_containers(current, &new, name)?
        }
        Some("finalize") => {
            let finalizers = new.pointer("/spec/finalizers").cloned();
            let mut merged = current.clone();
            merged["spec"]["finalizers"] = finalizers.unwrap_or(json!([]));
            new = merged;
        }
        _ if crate::csr::is_csr(info.group, info.plural) => {
            crate::csr::main_update(current, &mut new)
        }
        _ => {
            if info.status
                && let Some(m) = new.as_object_mut()
            {
                match current.get("status") {
                    Some(s) => {
                        m.insert("status".into(), s.clone());
                    }
                    None => {
                        m.remove("status");
                    }
                }
            }
        }
    }
    if subresource == Some("status") && crate::csr::is_csr(info.group, info.plural) {
        crate::csr::status_update(current, &mut new);
    }
    // Fields the server owns.
    {
        let empty = serde_json::Map::new();
        let cur_md = current
            .get("metadata")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let md = metadata_mut(&mut new);
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
        ] {
            match cur_md.get(k) {
                Some(v) => {
                    md.insert(k.into(), v.clone());
                }
                None => {
                    md.remove(k);
                }
            }
        }
        md.remove("resourceVersion");
    }
    skiff_api::defaults::apply(info.group, info.kind, &mut new);
    if info.group.is_empty() && info.plural == "pods" && subresource.is_none() {
        // As upstream's admission on a pod update: Priority keeps the priority it set at
        // create, DefaultTolerationSeconds adds its tolerations again, so that a replace
        // with the pod's manifest changes nothing they added.
        crate::pods::keep_priority(current, &mut new);
        crate::pods::admit_default_tolerations(&server.pod_defaults, &mut new);
    }
    if info.plural == "services" && info.group.is_empty() {
        // clusterIP is immutable; an empty one in the update means "keep".
        for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if new
                .pointer(&format!("/spec/{f}"))
                .is_none_or(|v| v == "" || v.is_null())
                && let Some(v) = current.pointer(&format!("/spec/{f}"))
            {
                new["spec"][f] = v.clone();
            }
        }
        let new_type = new
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP");
        let wants_node_ports = new_type == "NodePort" || new_type == "LoadBalancer";
        if !wants_node_ports
            && let (Some(old_ports), Some(new_ports)) = (
                current
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .cloned(),
                new.pointer_mut("/spec/ports").and_then(Value::as_array_mut),
            )
        {
            // Switching away from NodePort: drop the node ports the client carried over unchanged.
            for p in new_ports.iter_mut() {
                let carried = old_ports
                    .iter()
                    .any(|o| o.get("nodePort").is_some() && o.get("nodePort") == p.get("nodePort"));
                if carried && let Some(m) = p.as_object_mut() {
                    m.remove("nodePort");
                }
            }
        }
        // Keep allocated node ports for ports that did not name one.
        if wants_node_ports
            && let (Some(old_ports), Some(new_ports)) = (
                current
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .cloned(),
                new.pointer_mut("/spec/ports").and_then(Value::as_array_mut),
            )
        {
            for p in new_ports.iter_mut() {
                if p.get("nodePort").is_none()
                    && let Some(old) = old_ports.iter().find(|o| {
                        o.get("port") == p.get("port") && o.get("protocol") == p.get("protocol")
                    })
                    && let Some(np) = old.get("nodePort")
                {
                    p["nodePort"] = np.clone();
                }
            }
        }
    }
    if info.group == "batch"
        && info.plural == "jobs"
        && new.pointer("/spec/selector").is_none_or(Value::is_null)
        && let Some(sel) = current.pointer("/spec/selector")
    {
        new["spec"]["selector"] = sel.clone();
    }
    let mut causes = skiff_api::validation::validate(info.group, info.kind, &new);
    if crate::csr::is_csr(info.group, info.plural) {
        causes.extend(crate::csr::validate_conditions(&new));
    }
    if let Some(schema) = server.resources.schema_for(info) {
        causes.extend(crate::structural::apply(&schema, &mut new));
    }
    if is_crd(info) && subresource.is_none() {
        causes.extend(crate::crd::validate(&new));
        crate::crd::accept(&mut new);
    }
    // An update through `ephemeralcontainers` changes nothing else, and
    // `pods::ephemeral_containers` checked the change.
    if subresource != Some("ephemeralcontainers") {
        causes.extend(skiff_api::validation::validate_update(
            info.group, info.kind, current, &new,
        ));
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(info.group, info.kind, name, causes));
    }
    if obj_has_spec_generation(info) && subresource.is_none() && !same_spec(current, &new) {
        let g = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        metadata_mut(&mut new).insert("generation".into(), json!(g + 1));
    }
    // A deleting object whose last finalizer went away is deleted now.
    let deleting = current.pointer("/metadata/deletionTimestamp").is_some();
    let finalizers_left = new
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
        || (info.plural == "namespaces"
            && new
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty()));
    if deleting && !finalizers_left {
        if dry_run {
            return Ok((StatusCode::OK, new));
        }
        let k = key(info, ns, name);
        server
            .store
            .delete(&k, Some(current_rev))
            .await
            .map_err(|e| store_error(info, name, e))?;
        after_delete(server, info, current).await;
        let mut out = new;
        metadata_mut(&mut out).insert("resourceVersion".into(), json!(current_rev.to_string()));
        return Ok((StatusCode::OK, out));
    }
    // No change: no write, the resourceVersion stays.
    if unchanged(current, &new) {
        return Ok((StatusCode::OK, current.clone()));
    }
    let charged = match ns {
        Some(ns)
            if info.namespaced
                && subresource.is_none()
                && crate::admission::charged_on_update(info) =>
        {
            crate::admission::charge_quotas(server, info, ns, name, &new, Some(current), dry_run)
                .await?
        }
        _ => crate::admission::Charged::default(),
    };
    let (claimed, dropped) =
        if info.group.is_empty() && info.plural == "services" && subresource.is_none() {
            match server
                .allocator
                .update_ports(current, &mut new, dry_run)
                .await
            {
                Ok(ports) => ports,
                Err(e) => {
                    charged.release(server).await;
                    return Err(e);
                }
            }
        } else {
            (Vec::new(), Vec::new())
        };
    if dry_run {
        metadata_mut(&mut new).insert("resourceVersion".into(), json!(current_rev.to_string()));
        return Ok((StatusCode::OK, new));
    }
    let rev = match server
        .store
        .update(&key(info, ns, name), encode_stored(info, &new), current_rev)
        .await
    {
        Ok(rev) => rev,
        Err(e) => {
            server.allocator.release_ports(&claimed).await;
            charged.release(server).await;
            return Err(store_error(info, name, e));
        }
    };
    server.allocator.release_ports(&dropped).await;
    metadata_mut(&mut new).insert("resourceVersion".into(), json!(rev.to_string()));
    if is_crd(info) {
        // Serve the new resources at once; the watch only catches up other servers.
        server.resources.define(&new);
    }
    Ok((StatusCode::OK, new))
}

/// Stores `new` over the object at `current_rev` as it is: no defaults, validation or
/// server-owned fields, for the server's own narrow writes (a pod binding, as upstream's
/// binding writes the pod without the update strategy). Sets the new resourceVersion.
pub async fn store_server_write(
    server: &ApiServer,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    new: &mut Value,
    current_rev: i64,
) -> Result<(), ApiError> {
    let md = metadata_mut(new);
    md.remove("resourceVersion");
    let rev = server
        .store
        .update(&key(info, ns, name), encode_stored(info, new), current_rev)
        .await
        .map_err(|e| store_error(info, name, e))?;
    metadata_mut(new).insert("resourceVersion".into(), json!(rev.to_string()));
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub async fn update_object(
    server: &ApiServer,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    subresource: Option<&str>,
    new: Value,
    dry_run: bool,
    manager: &str,
) -> Result<(StatusCode, Value), ApiError> {
    // An update without a resourceVersion ("0" counts as none) is unconditional: like
    // upstream's GuaranteedUpdate it is tried again over a concurrent write instead of
    // failing with a conflict the client never asked to be told about.
    let unconditional = new
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .is_none_or(|rv| rv.is_empty() || rv == "0");
    if unconditional && !allows_unconditional_update(info) {
        // Upstream's store refuses it where the strategy does not allow it, once it knows
        // the object exists.
        get_object(server, info, ns, name).await?;
        return Err(ApiError::invalid(
            info.group,
            info.plural,
            name,
            vec![Cause {
                reason: "FieldValueInvalid",
                message: "Invalid value: 0x0: must be specified for an update".into(),
                field: "metadata.resourceVersion".into(),
            }],
        ));
    }
    let attempts = if unconditional { 16 } else { 1 };
    let mut new = new;
    for attempt in 1..=attempts {
        let current = get_object(server, info, ns, name).await?;
        let mut next = if attempt < attempts {
            new.clone()
        } else {
            std::mem::take(&mut new)
        };
        crate::patch::track_update(info, Some(&current), &mut next, manager, subresource);
        match write_update(server, info, ns, name, subresource, &current, next, dry_run).await {
            Err(e) if attempt < attempts && e.code == 409 && e.reason == "Conflict" => continue,
            other => return other,
        }
    }
    Err(ApiError::modified(info.group, info.plural, name))
}

/// Whether an update may leave out the resourceVersion: upstream's strategies for
/// CustomResourceDefinitions and custom resources (and their `status`) do not allow it.
fn allows_unconditional_update(info: &ResourceInfo) -> bool {
    !is_crd(info) && registry::find(info.group, info.version, info.plural).is_some()
}

fn is_crd(info: &ResourceInfo) -> bool {
    info.group == "apiextensions.k8s.io" && info.plural == "customresourcedefinitions"
}

async fn after_delete(server: &ApiServer, info: &ResourceInfo, obj: &Value) {
    if info.group.is_empty() && info.plural == "services" {
        server.allocator.release(obj).await;
    }
    if is_crd(info) {
        server.resources.undefine(obj);
        // The custom resources go with their definition.
        let group = obj
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or("");
        let plural = obj
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or("");
        if group.is_empty() || plural.is_empty() {
            return;
        }
        let pfx = format!("/registry/{group}/{plural}/");
        match server.store.range(&pfx, None, 0, 0).await {
            Ok(res) => {
                for kv in res.kvs {
                    if let Err(e) = server.store.delete(&kv.key, None).await {
                        tracing::warn!(key = %kv.key, error = %e, "cannot delete custom resource of a deleted definition");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot list custom resources of a deleted definition")
            }
        }
    }
}

/// DELETE of one object, honouring preconditions, finalizers and propagation policy. A write
/// that loses a race with another writer is tried again (as upstream's GuaranteedUpdate does),
/// unless the client pinned a resourceVersion.
pub async fn delete_object(
    server: &ApiServer,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    opts: &Value,
    q: &Query,
    dry_run: bool,
) -> Result<(StatusCode, Value), ApiError> {
    // Upstream's NamespaceLifecycle admission keeps the system namespaces.
    if info.group.is_empty()
        && info.plural == "namespaces"
        && crate::namespaces::IMMORTAL.contains(&name)
    {
        return Err(ApiError::forbidden_object(
            "",
            "namespaces",
            name,
            "this namespace may not be deleted",
        ));
    }
    let pinned = opts
        .pointer("/preconditions/resourceVersion")
        .is_some_and(|v| !v.is_null());
    let mut attempt = 0;
    loop {
        match delete_object_once(server, info, ns, name, opts, q, dry_run).await {
            Err(e) if !pinned && attempt < 16 && is_lost_race(&e) => attempt += 1,
            other => return other,
        }
    }
}

/// The conflict a revision-checked store write reports when the object changed meanwhile.
fn is_lost_race(e: &ApiError) -> bool {
    e.code == 409 && e.reason == "Conflict" && e.message.contains("has been modified")
}

async fn delete_object_once(
    server: &ApiServer,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    opts: &Value,
    q: &Query,
    dry_run: bool,
) -> Result<(StatusCode, Value), ApiError> {
    let current = get_object(server, info, ns, name).await?;
    let current_rev: i64 = current
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if let Some(uid) = opts.pointer("/preconditions/uid").and_then(Value::as_str)
        && current.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid)
    {
        return Err(ApiError::conflict(
            info.group,
            info.plural,
            name,
            format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                current
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            ),
        ));
    }
    if let Some(rv) = opts
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
        && rv.parse::<i64>().ok() != Some(current_rev)
    {
        return Err(ApiError::conflict(
            info.group,
            info.plural,
            name,
            format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {current_rev}"
            ),
        ));
    }
    let given_policy = opts
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or_else(|| q.get("propagationPolicy"))
        .filter(|p| !p.is_empty());
    if let Some(p) = given_policy
        && (opts.get("orphanDependents").is_some_and(|o| !o.is_null())
            || q.get("orphanDependents").is_some())
    {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "DeleteOptions",
            "",
            vec![Cause::invalid(
                "propagationPolicy",
                &json!(p),
                "orphanDependents and deletionPropagation cannot be both set",
            )],
        ));
    }
    let policy = opts
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| q.get("propagationPolicy").map(str::to_string))
        .or_else(
            || match opts.get("orphanDependents").and_then(Value::as_bool) {
                Some(true) => Some("Orphan".into()),
                Some(false) => Some("Background".into()),
                None => None,
            },
        );
    let policy = match policy.as_deref() {
        // Upstream orphans a core/v1 ReplicationController's pods unless told otherwise,
        // for compatibility; every other kind's dependents go in the background.
        None | Some("") if info.group.is_empty() && info.plural == "replicationcontrollers" => {
            Some("Orphan".to_string())
        }
        None | Some("") => None,
        Some(p @ ("Orphan" | "Background" | "Foreground")) => Some(p.to_string()),
        Some(p) => {
            return Err(ApiError::invalid(
                info.group,
                "DeleteOptions",
                "",
                vec![Cause::not_supported(
                    "propagationPolicy",
                    &json!(p),
                    &["Foreground", "Background", "Orphan"],
                )],
            ));
        }
    };
    let mut finalizers: Vec<Value> = current
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut extra = Vec::new();
    match policy.as_deref() {
        Some("Orphan") => extra.push("orphan"),
        Some("Foreground") => extra.push("foregroundDeletion"),
        _ => {}
    }
    for f in extra {
        if !finalizers.iter().any(|x| x == f) {
            finalizers.push(json!(f));
        }
    }
    let ns_finalizers = info.plural == "namespaces"
        && current
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
    let graceful_pod = info.group.is_empty()
        && info.plural == "pods"
        && current
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty())
        && current
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .is_none_or(|p| p != "Succeeded" && p != "Failed");
    let grace = opts
        .get("gracePeriodSeconds")
        .and_then(Value::as_i64)
        .or(q.int("gracePeriodSeconds")?);
    let graceful_pod = graceful_pod && grace != Some(0);
    if finalizers.is_empty() && !ns_finalizers && !graceful_pod {
        if dry_run {
            return Ok((StatusCode::OK, deleted_body(info, current)));
        }
        server
            .store
            .delete(&key(info, ns, name), Some(current_rev))
            .await
            .map_err(|e| store_error(info, name, e))?;
        after_delete(server, info, &current).await;
        return Ok((StatusCode::OK, deleted_body(info, current)));
    }
    // Graceful deletion: mark it; finalizers (or the node agent) finish the job. Upstream
    // answers 202 only when the options asked for cascading with `orphanDependents: false`.
    let code = if opts.get("orphanDependents") == Some(&json!(false)) {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let mut new = current.clone();
    {
        let md = metadata_mut(&mut new);
        // A pod already being deleted may only have its grace period shortened.
        let pending_grace = md
            .get("deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .filter(|g| *g > 0);
        if let (true, Some(old), Some(g)) = (graceful_pod, pending_grace, grace)
            && g < old
            && let Some(at) = md
                .get("deletionTimestamp")
                .and_then(Value::as_str)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        {
            let when = at + chrono::Duration::seconds(g - old);
            md.insert("deletionGracePeriodSeconds".into(), json!(g));
            md.insert(
                "deletionTimestamp".into(),
                json!(when.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            );
        }
        if !md.contains_key("deletionTimestamp") {
            let when = if graceful_pod {
                let g = grace
                    .or_else(|| {
                        current
                            .pointer("/spec/terminationGracePeriodSeconds")
                            .and_then(Value::as_i64)
                    })
                    .unwrap_or(30);
                md.insert("deletionGracePeriodSeconds".into(), json!(g));
                (chrono::Utc::now() + chrono::Duration::seconds(g))
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string()
            } else {
                md.insert("deletionGracePeriodSeconds".into(), json!(0));
                now_rfc3339()
            };
            md.insert("deletionTimestamp".into(), json!(when));
        }
        if !finalizers.is_empty() {
            md.insert("finalizers".into(), json!(finalizers));
        }
        md.remove("resourceVersion");
    }
    if info.plural == "namespaces" {
        new["status"]["phase"] = json!("Terminating");
    }
    // Deleting what is already being deleted, changing nothing, writes nothing.
    let unchanged = match (current.get("metadata"), new.get("metadata")) {
        (Some(a), Some(b)) => {
            same_except(a, b, &["resourceVersion"]) && current.get("status") == new.get("status")
        }
        _ => false,
    };
    if unchanged || dry_run {
        if unchanged {
            new = current.clone();
        }
        return Ok((code, new));
    }
    let rev = server
        .store
        .update(&key(info, ns, name), encode_stored(info, &new), current_rev)
        .await
        .map_err(|e| store_error(info, name, e))?;
    metadata_mut(&mut new).insert("resourceVersion".into(), json!(rev.to_string()));
    Ok((code, new))
}

fn deleted_body(info: &ResourceInfo, obj: Value) -> Value {
    // Upstream returns the object for these kinds and a Status for the rest.
    if matches!(
        info.plural,
        "pods" | "services" | "namespaces" | "customresourcedefinitions"
    ) || !info.group.is_empty()
    {
        return obj;
    }
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    skiff_api::status::success_status(info.group, info.plural, name_of(&obj), &uid)
}

async fn delete_collection(
    server: &ApiServer,
    info: &ResourceInfo,
    ns: Option<&str>,
    q: &Query,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let filter = Filter::from_query(info, q)?;
    let opts = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else if skiff_api::protobuf::is_protobuf(body) {
        objects::parse_body("application/vnd.kubernetes.protobuf", body)?
    } else {
        objects::parse_body("application/json", body)?
    };
    let dry = q.dry_run()?;
    let res = server
        .store
        .range(&prefix(info, ns), None, 0, 0)
        .await
        .map_err(|e| store_error(info, "", e))?;
    let mut deleted = Vec::new();
    for kv in res.kvs {
        let Some(obj) = crate::cache::decode(&kv.value, kv.mod_revision) else {
            continue;
        };
        if !filter.matches(info, &obj) {
            continue;
        }
        let name = name_of(&obj).to_string();
        let obj_ns = objects::namespace_of(&obj).map(str::to_string);
        match delete_object(server, info, obj_ns.as_deref().or(ns), &name, &opts, q, dry).await {
            Ok((_, body)) => deleted.push(body),
            Err(e) if e.code == 404 => {}
            Err(e) => return Ok(status_response(&e)),
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": format!("{}List", info.kind), "apiVersion": info.api_version(), "metadata": {"resourceVersion": res.revision.to_string()}, "items": deleted}),
    ))
}
