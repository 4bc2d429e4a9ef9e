//! Reading and rewriting serialized objects without decoding them into `serde_json::Value`s:
//! the watch cache stamps each stored object's resourceVersion and takes its selector
//! attributes on every write, and a decoded object costs many allocations.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// An object key, borrowed from the input unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The members of a JSON object, in order, each value left serialized.
struct Members<'de>(Vec<(Key<'de>, &'de RawValue)>);

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(entry) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    out.push(entry);
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn is_object(raw: &RawValue) -> bool {
    raw.get().trim_start().starts_with('{')
}

fn write_key(out: &mut Vec<u8>, key: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b':');
}

/// A stored object rewritten with `metadata.resourceVersion` set to `revision` (in place when
/// present, else last, as inserting into the decoded object would), with its `apiVersion` and
/// `kind`. `None` when `json` is not a JSON object.
pub fn stamp_resource_version(json: &[u8], revision: i64) -> Option<(Vec<u8>, String, String)> {
    let top: Members<'_> = serde_json::from_slice(json).ok()?;
    let mut out = Vec::with_capacity(json.len() + 32);
    let (mut api_version, mut kind) = (String::new(), String::new());
    let rv = format!("\"{revision}\"");
    out.push(b'{');
    for (i, (k, v)) in top.0.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_key(&mut out, &k.0);
        match k.0.as_ref() {
            "metadata" if is_object(v) => {
                let md: Members<'_> = serde_json::from_str(v.get()).ok()?;
                out.push(b'{');
                let mut stamped = false;
                for (j, (mk, mv)) in md.0.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    write_key(&mut out, &mk.0);
                    if mk.0 == "resourceVersion" {
                        out.extend_from_slice(rv.as_bytes());
                        stamped = true;
                    } else {
                        out.extend_from_slice(mv.get().as_bytes());
                    }
                }
                if !stamped {
                    if !md.0.is_empty() {
                        out.push(b',');
                    }
                    write_key(&mut out, "resourceVersion");
                    out.extend_from_slice(rv.as_bytes());
                }
                out.push(b'}');
                continue;
            }
            "apiVersion" => api_version = serde_json::from_str(v.get()).unwrap_or_default(),
            "kind" => kind = serde_json::from_str(v.get()).unwrap_or_default(),
            _ => {}
        }
        out.extend_from_slice(v.get().as_bytes());
    }
    out.push(b'}');
    Some((out, api_version, kind))
}

/// Decodes only the parts of `json` under `paths` (dotted member names, `spec.nodeName`; a path ends
/// where the whole value is kept), skipping the rest without building it.
pub fn decode_paths(json: &[u8], paths: &[&str]) -> Option<Value> {
    let mut d = serde_json::Deserializer::from_slice(json);
    let v = Pruned { paths }.deserialize(&mut d).ok()?;
    d.end().ok()?;
    Some(v)
}

struct Pruned<'p> {
    /// What is left of each wanted path below this value; "" keeps the whole value.
    paths: &'p [&'p str],
}

impl<'de> DeserializeSeed<'de> for Pruned<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.paths.iter().any(|p| p.is_empty()) {
            return serde::Deserialize::deserialize(d);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Pruned<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    // Anything but an object cannot hold the paths below it.
    fn visit_bool<E>(self, _: bool) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_str<E>(self, _: &str) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut below: Vec<&str> = Vec::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            below.clear();
            below.extend(self.paths.iter().filter_map(|p| {
                let rest = p.strip_prefix(key.0.as_ref())?;
                if rest.is_empty() {
                    Some(rest)
                } else {
                    rest.strip_prefix('.')
                }
            }));
            if below.is_empty() {
                map.next_value::<IgnoredAny>()?;
            } else {
                let v = map.next_value_seed(Pruned { paths: &below })?;
                out.insert(key.0.into_owned(), v);
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What decoding, inserting and encoding again gives.
    fn decoded(v: &Value, revision: i64) -> Value {
        let mut v = v.clone();
        if let Some(md) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            md.insert("resourceVersion".into(), json!(revision.to_string()));
        }
        v
    }

    #[test]
    fn stamping_matches_decoding_byte_for_byte() {
        for obj in [
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a\"b": "é"}},
                   "spec": {"containers": [{"name": "c", "image": "i"}]}, "status": {}}),
            json!({"kind": "ConfigMap", "metadata": {"resourceVersion": "3", "name": "x"}, "data": {"k": "v"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap"}),
            json!({"metadata": null, "n": 1.5, "big": 18446744073709551615u64}),
        ] {
            let stored = serde_json::to_vec(&obj).expect("encode");
            let (line, av, kind) = stamp_resource_version(&stored, 42).expect("an object");
            let want = serde_json::to_vec(&decoded(&obj, 42)).expect("encode");
            assert_eq!(
                String::from_utf8_lossy(&line),
                String::from_utf8_lossy(&want)
            );
            assert_eq!(av, obj["apiVersion"].as_str().unwrap_or(""));
            assert_eq!(kind, obj["kind"].as_str().unwrap_or(""));
        }
        assert!(stamp_resource_version(b"[1]", 1).is_none());
        assert!(stamp_resource_version(b"{\"a\":", 1).is_none());
    }

    #[test]
    fn decoding_paths_keeps_only_them() {
        let obj = json!({"metadata": {"name": "p", "labels": {"x": "y"}, "annotations": {"big": "z"}},
                         "spec": {"nodeName": "n", "containers": [{"name": "c"}], "hostNetwork": true},
                         "status": "odd", "source": {"component": "c", "host": "h"}});
        let got = decode_paths(
            &serde_json::to_vec(&obj).expect("encode"),
            &[
                "metadata.name",
                "metadata.labels",
                "spec.nodeName",
                "spec.hostNetwork",
                "status.phase",
                "source",
                "missing.field",
            ],
        )
        .expect("decoded");
        assert_eq!(
            got,
            json!({"metadata": {"name": "p", "labels": {"x": "y"}},
                   "spec": {"nodeName": "n", "hostNetwork": true},
                   "status": null, "source": {"component": "c", "host": "h"}})
        );
        assert!(decode_paths(b"{\"a\":1} x", &["a"]).is_none());
    }
}
