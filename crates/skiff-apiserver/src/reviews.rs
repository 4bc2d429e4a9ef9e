//! The review resources of `authorization.k8s.io` and `authentication.k8s.io`: a client
//! POSTs a question (may this user do that? who am I? whose token is this?) and gets the
//! same object back with the answer in `status`. Nothing is stored, as upstream stores
//! nothing: these are what `kubectl auth can-i` and `kubectl auth whoami` send.

use serde_json::{Map, Value, json};
use skiff_api::registry::ResourceInfo;
use skiff_api::status::{ApiError, Cause};

use crate::authz::{self, Attributes};
use crate::server::{ApiServer, User};

/// Whether `info` is one of the review resources.
pub fn is_review(info: &ResourceInfo) -> bool {
    matches!(info.group, "authorization.k8s.io" | "authentication.k8s.io")
        && info.plural.ends_with("reviews")
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `metadata` must be empty but for managedFields (and the namespace, where `namespace_ok`);
/// a `creationTimestamp: null`, which Go clients send, is empty.
fn metadata_causes(obj: &Value, namespace_ok: bool) -> Vec<Cause> {
    let Some(md) = obj.get("metadata") else {
        return Vec::new();
    };
    let set = match md {
        Value::Object(m) => m.iter().any(|(k, v)| match k.as_str() {
            "managedFields" => false,
            "namespace" if namespace_ok => false,
            _ => !(v.is_null() || v == "" || v == &json!({}) || v == &json!([])),
        }),
        Value::Null => false,
        _ => true,
    };
    if !set {
        return Vec::new();
    }
    let detail = if namespace_ok {
        "must be empty except for namespace"
    } else {
        "must be empty"
    };
    vec![Cause::invalid("metadata", md, detail)]
}

/// Upstream's checks of an access review's spec (`subject`: user or groups are required).
fn spec_causes(spec: &Value, subject: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    let resource = spec.get("resourceAttributes").filter(|v| !v.is_null());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    match (resource, non_resource) {
        (Some(_), Some(n)) => causes.push(Cause::invalid(
            "spec.nonResourceAttributes",
            n,
            "cannot be specified in combination with resourceAttributes",
        )),
        (None, None) => causes.push(Cause::invalid(
            "spec.resourceAttributes",
            &Value::Null,
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
        _ => {}
    }
    let no_groups = spec
        .get("groups")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if subject && str_at(spec, "user").is_empty() && no_groups {
        causes.push(Cause::invalid(
            "spec.user",
            &json!(""),
            "at least one of user or group must be specified",
        ));
    }
    causes
}

/// The attributes an access review's spec asks about (its causes were checked).
fn spec_attributes(spec: &Value) -> Attributes {
    match spec.get("resourceAttributes").filter(|v| !v.is_null()) {
        Some(r) => Attributes::Resource {
            verb: str_at(r, "verb").to_string(),
            group: str_at(r, "group").to_string(),
            resource: str_at(r, "resource").to_string(),
            subresource: str_at(r, "subresource").to_string(),
            namespace: str_at(r, "namespace").to_string(),
            name: str_at(r, "name").to_string(),
        },
        None => {
            let n = spec.get("nonResourceAttributes").unwrap_or(&Value::Null);
            Attributes::NonResource {
                verb: str_at(n, "verb").to_string(),
                path: str_at(n, "path").to_string(),
            }
        }
    }
}

fn access_status(user: &User, attrs: &Attributes) -> Value {
    let decision = authz::authorize(user, attrs);
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    status
}

/// The reviewed object as answered: `metadata` empty (but for a local review's namespace).
fn answered(mut obj: Value, status: Value) -> Value {
    if let Some(m) = obj.as_object_mut() {
        let namespace = m
            .get("metadata")
            .and_then(|md| md.get("namespace"))
            .filter(|n| n.as_str().is_some_and(|s| !s.is_empty()))
            .cloned();
        let mut md = Map::new();
        if let Some(ns) = namespace {
            md.insert("namespace".into(), ns);
        }
        m.insert("metadata".into(), Value::Object(md));
        m.insert("status".into(), status);
    }
    obj
}

/// Answers a review: `obj` is the request body (type-checked), `ns` the path's namespace.
pub async fn create(
    server: &ApiServer,
    info: &ResourceInfo,
    ns: Option<&str>,
    mut obj: Value,
    user: &User,
) -> Result<Value, ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(format!(
            "the body of a {} must be an object",
            info.kind
        )));
    }
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let invalid = |causes: Vec<Cause>| ApiError::invalid(info.group, info.kind, "", causes);
    match info.plural {
        "selfsubjectaccessreviews" => {
            let mut causes = spec_causes(&spec, false);
            causes.extend(metadata_causes(&obj, false));
            if !causes.is_empty() {
                return Err(invalid(causes));
            }
            let status = access_status(user, &spec_attributes(&spec));
            Ok(answered(obj, status))
        }
        "subjectaccessreviews" | "localsubjectaccessreviews" => {
            let local = info.plural == "localsubjectaccessreviews";
            if local {
                let path_ns = ns.unwrap_or("");
                let md = obj
                    .as_object_mut()
                    .and_then(|m| {
                        m.entry("metadata")
                            .or_insert_with(|| json!({}))
                            .as_object_mut()
                    })
                    .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
                match md.get("namespace").and_then(Value::as_str) {
                    None | Some("") => {
                        md.insert("namespace".into(), json!(path_ns));
                    }
                    Some(n) if n != path_ns => {
                        return Err(ApiError::bad_request(
                            "the namespace of the provided object does not match the namespace sent on the request",
                        ));
                    }
                    Some(_) => {}
                }
            }
            let mut causes = spec_causes(&spec, true);
            causes.extend(metadata_causes(&obj, local));
            if local {
                let ns = ns.unwrap_or("");
                if let Some(r) = spec.get("resourceAttributes").filter(|v| !v.is_null())
                    && str_at(r, "namespace") != ns
                {
                    causes.push(Cause::invalid(
                        "spec.resourceAttributes.namespace",
                        &json!(str_at(r, "namespace")),
                        "must match metadata.namespace",
                    ));
                }
                if let Some(n) = spec.get("nonResourceAttributes").filter(|v| !v.is_null()) {
                    causes.push(Cause::invalid(
                        "spec.nonResourceAttributes",
                        n,
                        "disallowed on this kind of request",
                    ));
                }
            }
            if !causes.is_empty() {
                return Err(invalid(causes));
            }
            let subject = User {
                name: str_at(&spec, "user").to_string(),
                groups: spec
                    .get("groups")
                    .and_then(Value::as_array)
                    .map(|gs| {
                        gs.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            let status = access_status(&subject, &spec_attributes(&spec));
            Ok(answered(obj, status))
        }
        "selfsubjectrulesreviews" => {
            if str_at(&spec, "namespace").is_empty() {
                return Err(ApiError::bad_request("no namespace on request"));
            }
            let (resource_rules, non_resource_rules) = authz::rules_for(user);
            // Upstream answers with a new object: the rules, not the question.
            Ok(json!({
                "apiVersion": info.api_version(),
                "kind": info.kind,
                "metadata": {},
                "spec": {},
                "status": {
                    "resourceRules": resource_rules,
                    "nonResourceRules": non_resource_rules,
                    "incomplete": false,
                },
            }))
        }
        "selfsubjectreviews" => Ok(json!({
            "apiVersion": info.api_version(),
            "kind": info.kind,
            "metadata": {"creationTimestamp": crate::objects::now_rfc3339()},
            "status": {"userInfo": user_info(user)},
        })),
        "tokenreviews" => {
            let token = str_at(&spec, "token");
            if token.is_empty() {
                return Err(ApiError::bad_request("token is required for TokenReview"));
            }
            let causes = metadata_causes(&obj, false);
            if !causes.is_empty() {
                return Err(invalid(causes));
            }
            // Service account tokens serve the audiences they name; the static tokens any.
            let audiences: Vec<String> = match spec.get("audiences").and_then(Value::as_array) {
                Some(a) if !a.is_empty() => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                _ => vec![crate::server::API_AUDIENCE.to_string()],
            };
            let status = match server.review_token(token, &audiences).await {
                Some((u, meant)) => json!({
                    "authenticated": true,
                    "user": user_info(&u),
                    "audiences": meant,
                }),
                None => json!({"user": {}, "error": "invalid bearer token"}),
            };
            Ok(answered(obj, status))
        }
        other => Err(ApiError::method_not_allowed(format!(
            "{other} cannot be created here"
        ))),
    }
}

fn user_info(user: &User) -> Value {
    json!({"username": user.name, "groups": user.groups})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_and_metadata_checks_follow_upstream() {
        let both = json!({"resourceAttributes": {}, "nonResourceAttributes": {}});
        assert_eq!(
            spec_causes(&both, false)[0].field,
            "spec.nonResourceAttributes"
        );
        let none = json!({});
        let causes = spec_causes(&none, true);
        assert_eq!(
            causes.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(),
            vec!["spec.resourceAttributes", "spec.user"]
        );
        assert!(spec_causes(&json!({"resourceAttributes": {}, "groups": ["g"]}), true).is_empty());
        let go_client = json!({"metadata": {"creationTimestamp": null}});
        assert!(metadata_causes(&go_client, false).is_empty());
        let named = json!({"metadata": {"name": "x"}});
        assert_eq!(metadata_causes(&named, false)[0].field, "metadata");
        let local = json!({"metadata": {"namespace": "default"}});
        assert!(metadata_causes(&local, true).is_empty());
        assert!(!metadata_causes(&local, false).is_empty());
    }

    #[test]
    fn spec_attributes_read_resource_and_path_questions() {
        let spec = json!({"resourceAttributes": {"verb": "list", "group": "apps", "resource": "deployments", "namespace": "web"}});
        assert_eq!(
            spec_attributes(&spec),
            Attributes::Resource {
                verb: "list".into(),
                group: "apps".into(),
                resource: "deployments".into(),
                subresource: String::new(),
                namespace: "web".into(),
                name: String::new(),
            }
        );
        let spec = json!({"nonResourceAttributes": {"verb": "get", "path": "/healthz"}});
        assert_eq!(
            spec_attributes(&spec),
            Attributes::NonResource {
                verb: "get".into(),
                path: "/healthz".into()
            }
        );
    }
}
