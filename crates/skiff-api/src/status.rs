//! Kubernetes `Status` errors: the body every failed request gets.

use serde_json::{Value, json};

/// A failed API request, rendered as a `meta.k8s.io/v1 Status`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: u16,
    /// Upstream's `reason`: NotFound, AlreadyExists, Conflict, Invalid, BadRequest, ...
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Box<Value>>,
    /// `metadata.continue` of the Status: the token a list may go on with after its own
    /// expired.
    pub continue_token: Option<String>,
}

/// One field-level cause of an Invalid error.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, FieldValueDuplicate, FieldValueForbidden, FieldValueTooLong
    pub reason: &'static str,
    pub message: String,
    pub field: String,
}

impl Cause {
    pub fn required(field: impl Into<String>) -> Cause {
        Cause {
            reason: "FieldValueRequired",
            message: "Required value".into(),
            field: field.into(),
        }
    }
    pub fn invalid(field: impl Into<String>, value: &Value, detail: impl AsRef<str>) -> Cause {
        Cause {
            reason: "FieldValueInvalid",
            message: format!(
                "Invalid value: {}: {}",
                render_value(value),
                detail.as_ref()
            ),
            field: field.into(),
        }
    }
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Cause {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Cause {
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {}: supported values: {}",
                render_value(value),
                list.join(", ")
            ),
            field: field.into(),
        }
    }
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Cause {
        Cause {
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {}", detail.into()),
            field: field.into(),
        }
    }
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Cause {
        Cause {
            reason: "FieldValueDuplicate",
            message: format!("Duplicate value: {}", render_value(value)),
            field: field.into(),
        }
    }
}

/// A value as upstream's field errors print it: strings quoted and escaped (Go's `%q`).
fn render_value(v: &Value) -> String {
    v.to_string()
}

/// Resource identity used in messages: `deployments.apps "web"`.
pub fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

fn details(group: &str, plural: &str, name: &str) -> Value {
    let mut d = json!({ "name": name, "kind": plural });
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    d
}

/// `StatusDetails` with its fields in upstream's order (name, group, kind, uid, causes,
/// retryAfterSeconds): clients such as the Python client's `FailToCreateError` print the
/// body as it came, and tests compare that text.
fn ordered_details(details: &Value) -> Value {
    const ORDER: [&str; 6] = [
        "name",
        "group",
        "kind",
        "uid",
        "causes",
        "retryAfterSeconds",
    ];
    let Value::Object(fields) = details else {
        return details.clone();
    };
    let mut out = serde_json::Map::with_capacity(fields.len());
    for key in ORDER {
        if let Some(v) = fields.get(key) {
            out.insert(key.to_string(), v.clone());
        }
    }
    for (key, v) in fields {
        if !out.contains_key(key) {
            out.insert(key.clone(), v.clone());
        }
    }
    Value::Object(out)
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            continue_token: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }
    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, "Forbidden", message)
    }
    /// An admission plugin's refusal of one object: `pods "web" is forbidden: REASON`.
    pub fn forbidden_object(group: &str, plural: &str, name: &str, reason: &str) -> ApiError {
        ApiError {
            code: 403,
            reason: "Forbidden",
            message: format!(
                "{} \"{name}\" is forbidden: {reason}",
                qualified(group, plural)
            ),
            details: Some(Box::new(details(group, plural, name))),
            continue_token: None,
        }
    }
    pub fn not_found(group: &str, plural: &str, name: &str) -> ApiError {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{name}\" not found", qualified(group, plural)),
            details: Some(Box::new(details(group, plural, name))),
            continue_token: None,
        }
    }
    /// A path that names no resource.
    pub fn no_route() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }
    pub fn already_exists(group: &str, plural: &str, name: &str) -> ApiError {
        ApiError {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} \"{name}\" already exists", qualified(group, plural)),
            details: Some(Box::new(details(group, plural, name))),
            continue_token: None,
        }
    }
    pub fn conflict(group: &str, plural: &str, name: &str, why: impl AsRef<str>) -> ApiError {
        ApiError {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": {}",
                qualified(group, plural),
                why.as_ref()
            ),
            details: Some(Box::new(details(group, plural, name))),
            continue_token: None,
        }
    }
    /// The optimistic-concurrency failure.
    pub fn modified(group: &str, plural: &str, name: &str) -> ApiError {
        ApiError::conflict(
            group,
            plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }
    pub fn gone(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }
    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(405, "MethodNotAllowed", message)
    }
    pub fn not_acceptable(message: impl Into<String>) -> ApiError {
        ApiError::new(406, "NotAcceptable", message)
    }
    pub fn too_large() -> ApiError {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        )
    }
    pub fn unsupported_media_type(ct: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {ct:?})"
            ),
        )
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "InternalError", message)
    }
    pub fn timeout(message: impl Into<String>) -> ApiError {
        ApiError::new(504, "Timeout", message)
    }
    pub fn too_many_requests(message: impl Into<String>) -> ApiError {
        ApiError::new(429, "TooManyRequests", message)
    }
    /// 422 with field causes, worded as upstream: `Deployment.apps "x" is invalid: [a, b]`.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> ApiError {
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let rendered: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let joined = if rendered.len() == 1 {
            rendered[0].clone()
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let mut d = json!({
            "name": name,
            "kind": kind,
            "causes": causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect::<Vec<_>>(),
        });
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("{qualified_kind} \"{name}\" is invalid: {joined}"),
            details: Some(Box::new(d)),
            continue_token: None,
        }
    }

    /// The `Status` object for the response body, its fields in upstream's order (kind,
    /// apiVersion, metadata, status, message, reason, details, code).
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        });
        if let Some(d) = &self.details {
            s["details"] = ordered_details(d);
        }
        if let Some(t) = &self.continue_token {
            s["metadata"] = json!({"continue": t});
        }
        s["code"] = json!(self.code);
        s
    }
}

/// The success `Status` some deletes answer with.
pub fn success_status(group: &str, plural: &str, name: &str, uid: &str) -> Value {
    let mut d = details(group, plural, name);
    d["uid"] = json!(uid);
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": ordered_details(&d)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_message_matches_upstream_shape() {
        let e = ApiError::invalid(
            "apps",
            "Deployment",
            "web",
            vec![Cause::required("spec.selector")],
        );
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "Deployment.apps \"web\" is invalid: spec.selector: Required value"
        );
        assert_eq!(
            e.to_status()["details"]["causes"][0]["field"],
            "spec.selector"
        );
    }

    #[test]
    fn status_fields_serialize_in_upstream_order() {
        let e = ApiError::already_exists("apps", "deployments", "web");
        assert_eq!(
            e.to_status().to_string(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"deployments.apps \"web\" already exists","reason":"AlreadyExists","details":{"name":"web","group":"apps","kind":"deployments"},"code":409}"#
        );
        let e = ApiError::invalid("", "Service", "s", vec![Cause::required("spec.ports")]);
        assert_eq!(
            e.to_status()["details"].to_string(),
            r#"{"name":"s","kind":"Service","causes":[{"reason":"FieldValueRequired","message":"Required value","field":"spec.ports"}]}"#
        );
    }

    #[test]
    fn not_found_names_group() {
        let e = ApiError::not_found("apps", "deployments", "x");
        assert_eq!(e.message, "deployments.apps \"x\" not found");
        assert_eq!(e.to_status()["reason"], "NotFound");
    }
}
