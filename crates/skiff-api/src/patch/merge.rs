//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902).

use serde_json::{Map, Value};

use super::PatchError;

/// Applies a JSON merge patch: objects merge key by key, `null` removes a key, anything
/// else (arrays included) replaces the target.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    if !patch.is_object() {
        return patch.clone();
    }
    let mut out = target.clone();
    merge_patch_into(&mut out, patch);
    out
}

/// [`merge_patch`] in place.
pub fn merge_patch_into(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(out) = target else {
        return;
    };
    for (key, value) in patch_map {
        if value.is_null() {
            out.remove(key);
        } else if let Some(t) = out.get_mut(key) {
            merge_patch_into(t, value);
        } else {
            let mut v = Value::Null;
            merge_patch_into(&mut v, value);
            out.insert(key.clone(), v);
        }
    }
}

/// Applies a JSON patch, a list of `add`/`remove`/`replace`/`move`/`copy`/`test` operations.
pub fn json_patch(target: &Value, ops: &Value) -> Result<Value, PatchError> {
    let patch: json_patch::Patch = serde_json::from_value(ops.clone())
        .map_err(|e| PatchError::InvalidJsonPatch(e.to_string()))?;
    let mut doc = target.clone();
    // `patch_unsafe` leaves `doc` half-patched on error; it is a copy we drop then.
    json_patch::patch_unsafe(&mut doc, &patch)
        .map_err(|e| PatchError::JsonPatchFailed(e.to_string()))?;
    Ok(doc)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386_examples() {
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (target, patch, want) in cases {
            assert_eq!(merge_patch(&target, &patch), want, "patch {patch}");
        }
    }

    #[test]
    fn json_patch_ops() {
        let target = json!({"spec":{"replicas":1,"ports":[{"port":80}]}});
        let ops = json!([
            {"op":"replace","path":"/spec/replicas","value":3},
            {"op":"add","path":"/spec/ports/-","value":{"port":443}},
            {"op":"test","path":"/spec/ports/0/port","value":80}
        ]);
        assert_eq!(
            json_patch(&target, &ops).unwrap(),
            json!({"spec":{"replicas":3,"ports":[{"port":80},{"port":443}]}})
        );
    }

    #[test]
    fn json_patch_errors_are_clear() {
        let target = json!({"a":1});
        let err = json_patch(&target, &json!([{"op":"remove","path":"/b"}])).unwrap_err();
        assert!(matches!(err, PatchError::JsonPatchFailed(_)), "{err}");
        assert!(err.to_string().contains("/b"), "{err}");
        let err = json_patch(&target, &json!({"op":"remove"})).unwrap_err();
        assert!(matches!(err, PatchError::InvalidJsonPatch(_)), "{err}");
        let err = json_patch(&target, &json!([{"op":"test","path":"/a","value":2}])).unwrap_err();
        assert!(err.to_string().contains("did not match"), "{err}");
    }
}
