//! Custom resources against their CRD's structural schema, as upstream does on every write:
//! unknown fields are pruned, defaults applied, and values validated (422 with field causes).

use serde_json::{Map, Value, json};
use skiff_api::status::Cause;

fn preserves_unknown(s: &Value) -> bool {
    s.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true))
}

fn is_int_or_string(s: &Value) -> bool {
    s.get("x-kubernetes-int-or-string") == Some(&json!(true))
}

/// Prunes, defaults and validates `obj` in place against `schema` (the version's
/// `openAPIV3Schema`). `apiVersion`, `kind` and `metadata` at the root are always kept.
pub fn apply(schema: &Value, obj: &mut Value) -> Vec<Cause> {
    apply_collecting(schema, obj, &mut Vec::new())
}

/// The fields of `obj` its schema does not know (what [`apply`] would prune), for
/// `fieldValidation=Strict`.
pub fn unknown_fields(schema: &Value, obj: &Value) -> Vec<String> {
    let mut pruned = Vec::new();
    apply_collecting(schema, &mut obj.clone(), &mut pruned);
    pruned
}

fn apply_collecting(schema: &Value, obj: &mut Value, pruned: &mut Vec<String>) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(m) = obj.as_object_mut() {
        let kept: Vec<(String, Value)> = ["apiVersion", "kind", "metadata"]
            .iter()
            .filter_map(|k| m.remove(*k).map(|v| (k.to_string(), v)))
            .collect();
        walk(schema, obj, "", &mut causes, pruned, 0);
        if let Some(m) = obj.as_object_mut() {
            for (k, v) in kept {
                m.insert(k, v);
            }
        }
    }
    causes
}

fn field(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn walk(
    s: &Value,
    v: &mut Value,
    path: &str,
    causes: &mut Vec<Cause>,
    pruned: &mut Vec<String>,
    depth: usize,
) {
    if depth > 64 {
        return;
    }
    if v.is_null() {
        if s.get("nullable") != Some(&json!(true)) && !path.is_empty() {
            causes.push(Cause::invalid(path, v, "must not be null"));
        }
        return;
    }
    let ty = s.get("type").and_then(Value::as_str);
    let ok = match ty {
        None => true,
        Some("integer") => v.is_i64() || v.is_u64() || (is_int_or_string(s) && v.is_string()),
        Some("number") => v.is_number(),
        Some("string") => v.is_string() || (is_int_or_string(s) && (v.is_i64() || v.is_u64())),
        Some("boolean") => v.is_boolean(),
        Some("array") => v.is_array(),
        Some("object") => v.is_object(),
        Some(_) => true,
    };
    if !ok {
        causes.push(Cause {
            reason: "FieldValueTypeInvalid",
            message: format!(
                "Invalid value: \"{}\": {} in body must be of type {}: \"{}\"",
                type_name(v),
                path,
                ty.unwrap_or(""),
                type_name(v)
            ),
            field: path.to_string(),
        });
        return;
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
        causes.push(Cause {
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {v}: supported values: {}",
                list.join(", ")
            ),
            field: path.to_string(),
        });
    }
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(min) = s.get("minimum").and_then(Value::as_f64)
                && x < min
            {
                causes.push(Cause::invalid(
                    path,
                    v,
                    format!("should be greater than or equal to {min}"),
                ));
            }
            if let Some(max) = s.get("maximum").and_then(Value::as_f64)
                && x > max
            {
                causes.push(Cause::invalid(
                    path,
                    v,
                    format!("should be less than or equal to {max}"),
                ));
            }
        }
        Value::String(st) => {
            let len = st.chars().count() as u64;
            if let Some(min) = s.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                causes.push(Cause::invalid(
                    path,
                    v,
                    format!("should be at least {min} chars long"),
                ));
            }
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                causes.push(Cause {
                    reason: "FieldValueTooLong",
                    message: format!("Too long: may not be more than {max} bytes"),
                    field: path.to_string(),
                });
            }
        }
        Value::Array(items) => {
            if let Some(min) = s.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                causes.push(Cause::invalid(
                    path,
                    &json!(items.len()),
                    format!("should have at least {min} items"),
                ));
            }
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > max
            {
                causes.push(Cause {
                    reason: "FieldValueTooMany",
                    message: format!("Too many: {}: must have at most {max} items", items.len()),
                    field: path.to_string(),
                });
            }
            if let Some(is) = s.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(is, item, &format!("{path}[{i}]"), causes, pruned, depth + 1);
                }
            }
        }
        Value::Object(m) => object(s, m, path, causes, pruned, depth),
        _ => {}
    }
}

fn object(
    s: &Value,
    m: &mut Map<String, Value>,
    path: &str,
    causes: &mut Vec<Cause>,
    pruned: &mut Vec<String>,
    depth: usize,
) {
    let props = s.get("properties").and_then(Value::as_object);
    let additional = s.get("additionalProperties").filter(|a| a.is_object());
    let embedded = s.get("x-kubernetes-embedded-resource") == Some(&json!(true));
    // Prune what the schema does not know, unless it keeps unknown fields.
    if !preserves_unknown(s)
        && additional.is_none()
        && s.get("additionalProperties") != Some(&json!(true))
    {
        m.retain(|k, _| {
            let known = props.is_some_and(|p| p.contains_key(k))
                || (embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata"));
            if !known {
                pruned.push(field(path, k));
            }
            known
        });
    }
    // Defaults for absent properties.
    if let Some(props) = props {
        for (k, ps) in props {
            if !m.contains_key(k)
                && let Some(d) = ps.get("default")
            {
                m.insert(k.clone(), d.clone());
            }
        }
    }
    for (k, child) in m.iter_mut() {
        let cs = props.and_then(|p| p.get(k)).or(additional);
        if let Some(cs) = cs {
            walk(cs, child, &field(path, k), causes, pruned, depth + 1);
        }
    }
    if let Some(required) = s.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if !m.contains_key(r) {
                causes.push(Cause::required(field(path, r)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["image"], "properties": {
                "image": {"type": "string", "minLength": 1},
                "replicas": {"type": "integer", "default": 1, "minimum": 0},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            }},
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
        }})
    }

    #[test]
    fn prunes_defaults_and_keeps_meta() {
        let mut o = json!({"apiVersion": "x.io/v1", "kind": "T", "metadata": {"name": "a"}, "junk": 1,
            "spec": {"image": "i", "unknown": true, "extra": {"anything": [1]}, "labels": {"k": "v"}}});
        let causes = apply(&schema(), &mut o);
        assert!(causes.is_empty(), "{causes:?}");
        assert_eq!(
            o,
            json!({"apiVersion": "x.io/v1", "kind": "T", "metadata": {"name": "a"},
            "spec": {"image": "i", "replicas": 1, "extra": {"anything": [1]}, "labels": {"k": "v"}}})
        );
    }

    #[test]
    fn validates_types_required_enum_and_bounds() {
        let mut o = json!({"spec": {"replicas": -1, "mode": "c", "labels": {"k": 5}}});
        let causes = apply(&schema(), &mut o);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert!(fields.contains(&"spec.image"), "{fields:?}");
        assert!(fields.contains(&"spec.replicas"), "{fields:?}");
        assert!(fields.contains(&"spec.mode"), "{fields:?}");
        assert!(fields.contains(&"spec.labels.k"), "{fields:?}");
    }
}
