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
                let stamp = |out: &mut Vec<u8>| out.extend_from_slice(rv.as_bytes());
                write_object(&mut out, &md.0, &[("resourceVersion", &stamp)]);
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

/// A stored pod as a binding reads it: the few fields a binding checks, and `spec` and
/// `status` ready to be rewritten; everything else stays serialized.
pub struct StoredPod<'a> {
    top: Members<'a>,
    spec: Members<'a>,
    /// `status`, decoded (a pending pod's status is small), or an empty object.
    pub status: Value,
    pub uid: Option<String>,
    pub deleting: bool,
    /// `spec.nodeName`, empty when unset.
    pub node_name: String,
}

impl<'a> StoredPod<'a> {
    /// `None` when `json` is not an object whose `metadata` and `spec` are objects.
    pub fn parse(json: &'a [u8]) -> Option<StoredPod<'a>> {
        let top: Members<'a> = serde_json::from_slice(json).ok()?;
        let object = |m: &Members<'a>, name: &str| -> Option<Members<'a>> {
            let (_, v) = m.0.iter().find(|(k, _)| k.0 == name)?;
            // A member that is there but not an object makes this no pod to bind.
            serde_json::from_str(v.get()).ok()
        };
        let string = |m: &Members<'a>, name: &str| -> Option<String> {
            let (_, v) = m.0.iter().find(|(k, _)| k.0 == name)?;
            serde_json::from_str::<Value>(v.get())
                .ok()?
                .as_str()
                .map(str::to_string)
        };
        let md = object(&top, "metadata")?;
        let spec = object(&top, "spec")?;
        let status = match top.0.iter().find(|(k, _)| k.0 == "status") {
            Some((_, v)) if is_object(v) => serde_json::from_str(v.get()).ok()?,
            _ => Value::Object(Map::new()),
        };
        let uid = string(&md, "uid");
        let deleting = md.0.iter().any(|(k, _)| k.0 == "deletionTimestamp");
        let node_name = string(&spec, "nodeName").unwrap_or_default();
        Some(StoredPod {
            uid,
            deleting,
            node_name,
            top,
            spec,
            status,
        })
    }

    /// The pod serialized again with `spec.nodeName` set to `node` (in place, or last in
    /// `spec`) and `status` as it is now (in place, or last), as setting them in the decoded
    /// object and encoding it would.
    pub fn bound_to(&self, node: &str) -> Vec<u8> {
        let size: usize = self
            .top
            .0
            .iter()
            .map(|(k, v)| k.0.len() + v.get().len() + 4)
            .sum();
        let mut out = Vec::with_capacity(size + node.len() + 256);
        let write_node = |out: &mut Vec<u8>| {
            let _ = serde_json::to_writer(&mut *out, node);
        };
        let write_spec =
            |out: &mut Vec<u8>| write_object(out, &self.spec.0, &[("nodeName", &write_node)]);
        let write_status = |out: &mut Vec<u8>| {
            let _ = serde_json::to_writer(&mut *out, &self.status);
        };
        write_object(
            &mut out,
            &self.top.0,
            &[("spec", &write_spec), ("status", &write_status)],
        );
        out
    }
}

/// A member written by a function instead of copied.
type Override<'f> = (&'f str, &'f dyn Fn(&mut Vec<u8>));

/// Writes `members` as an object, in order, except that each member named in `overrides` is
/// written by its function, in place or (when absent) last, as inserting into a decoded
/// object would place it.
fn write_object(out: &mut Vec<u8>, members: &[(Key<'_>, &RawValue)], overrides: &[Override<'_>]) {
    debug_assert!(overrides.len() <= 64);
    // Which overrides were written, one bit each.
    let mut written = 0u64;
    out.push(b'{');
    let mut first = true;
    let mut member = |out: &mut Vec<u8>, key: &str| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        write_key(out, key);
    };
    for (k, v) in members {
        member(out, &k.0);
        match overrides.iter().position(|(name, _)| *name == k.0) {
            Some(i) => {
                (overrides[i].1)(out);
                written |= 1 << i;
            }
            None => out.extend_from_slice(v.get().as_bytes()),
        }
    }
    for (i, (name, write)) in overrides.iter().enumerate() {
        if written & (1 << i) == 0 {
            member(out, name);
            write(out);
        }
    }
    out.push(b'}');
}

/// `json` without `metadata.managedFields`, cut out of the serialized bytes; `None` when there
/// is nothing to cut (or `json` is not an object). Only the members up to `managedFields` are
/// scanned; the rest is copied. `json` must be valid JSON (the store's own serialization).
pub fn without_managed_fields(json: &[u8]) -> Option<Vec<u8>> {
    let metadata = members(json, skip_ws(json, 0))?.find(|m| m.key(json) == b"metadata")?;
    let mut md = members(json, metadata.value.start)?;
    let mut prev_end = None;
    let cut = loop {
        let m = md.next()?;
        if m.key(json) == b"managedFields" {
            break match prev_end {
                // From the end of the member before it, so its comma goes too.
                Some(end) => end..m.value.end,
                // The first member: up to the next one, or to the end of this one if alone.
                None => {
                    let after = skip_ws(json, m.value.end);
                    if json.get(after) == Some(&b',') {
                        m.start..skip_ws(json, after + 1)
                    } else {
                        m.start..m.value.end
                    }
                }
            };
        }
        prev_end = Some(m.value.end);
    };
    let mut out = Vec::with_capacity(json.len() - cut.len());
    out.extend_from_slice(&json[..cut.start]);
    out.extend_from_slice(&json[cut.end..]);
    Some(out)
}

/// One member of a serialized object: where it starts (its key's opening quote), its key
/// (inside the quotes, escapes left as they are) and its value.
struct Member {
    start: usize,
    key: std::ops::Range<usize>,
    value: std::ops::Range<usize>,
}

impl Member {
    fn key<'a>(&self, json: &'a [u8]) -> &'a [u8] {
        &json[self.key.clone()]
    }
}

/// The members of the object whose `{` is at `open`, read lazily: a caller that stops early
/// does not scan the rest. `None` when there is no object at `open`.
fn members(json: &[u8], open: usize) -> Option<impl Iterator<Item = Member> + '_> {
    if json.get(open) != Some(&b'{') {
        return None;
    }
    let mut i = open + 1;
    Some(std::iter::from_fn(move || {
        i = skip_ws(json, i);
        if json.get(i) == Some(&b',') {
            i = skip_ws(json, i + 1);
        }
        if json.get(i) != Some(&b'"') {
            return None;
        }
        let start = i;
        let key_end = skip_string(json, i)?;
        let colon = skip_ws(json, key_end);
        if json.get(colon) != Some(&b':') {
            return None;
        }
        let value_start = skip_ws(json, colon + 1);
        let value_end = skip_value(json, value_start)?;
        i = value_end;
        Some(Member {
            start,
            key: start + 1..key_end - 1,
            value: value_start..value_end,
        })
    }))
}

fn skip_ws(json: &[u8], mut i: usize) -> usize {
    while json.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// Just past the string whose opening quote is at `i`.
fn skip_string(json: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while let Some(&c) = json.get(j) {
        match c {
            b'"' => return Some(j + 1),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
    None
}

/// Just past the value that starts at `i`, without checking it beyond its nesting.
fn skip_value(json: &[u8], i: usize) -> Option<usize> {
    match *json.get(i)? {
        b'"' => skip_string(json, i),
        b'{' | b'[' => {
            let (mut depth, mut j) = (0usize, i);
            while let Some(&c) = json.get(j) {
                match c {
                    b'"' => {
                        j = skip_string(json, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while json
                .get(j)
                .is_some_and(|c| !matches!(c, b',' | b'}' | b']') && !c.is_ascii_whitespace())
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
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
    fn cutting_managed_fields_matches_removing_them_from_the_decoded_object() {
        let mf = json!([{"manager": "a \" } ] {", "fieldsV1": {"f:spec": {"f:x\\": {}}}}]);
        let objects = [
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"managedFields": mf, "name": "p"}, "spec": {"a": [1, {"b": "}"}]}}),
            json!({"metadata": {"name": "p", "managedFields": mf, "labels": {"x": "y"}}, "status": {}}),
            json!({"kind": "Pod", "metadata": {"name": "p", "uid": "u", "managedFields": mf}}),
            json!({"metadata": {"managedFields": mf}, "spec": null}),
            json!({"metadata": {"managedFields": []}, "n": -1.5e3, "t": true}),
        ];
        for o in objects {
            let mut want = o.clone();
            want["metadata"]
                .as_object_mut()
                .expect("test json")
                .remove("managedFields");
            for text in [
                serde_json::to_vec(&o).expect("test json"),
                serde_json::to_vec_pretty(&o).expect("test json"),
            ] {
                let cut = without_managed_fields(&text).expect("cut");
                assert_eq!(
                    serde_json::from_slice::<Value>(&cut).expect("test json"),
                    want,
                    "{o}"
                );
            }
            let compact = serde_json::to_vec(&o).expect("test json");
            assert_eq!(
                without_managed_fields(&compact).expect("test json"),
                serde_json::to_vec(&want).expect("test json")
            );
        }
        for nothing in [
            json!({"metadata": {"name": "p"}, "spec": {"managedFields": []}}),
            json!({"spec": {}}),
            json!([1, 2]),
            json!({"metadata": "x"}),
        ] {
            assert_eq!(
                without_managed_fields(&serde_json::to_vec(&nothing).expect("test json")),
                None
            );
        }
        assert_eq!(
            without_managed_fields(b"{\"metadata\":{\"managedFields\":[1,"),
            None
        );
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

    #[test]
    fn a_bound_pod_matches_the_decoded_rewrite_byte_for_byte() {
        let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null});
        for obj in [
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "p", "uid": "u-1", "labels": {"a\"b": "é"}},
                   "spec": {"containers": [{"name": "c", "image": "i"}], "schedulerName": "s"},
                   "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False"}]}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                   "spec": {"nodeName": "", "containers": []}, "status": null, "x": 1.5}),
            json!({"kind": "Pod", "metadata": {}, "spec": {}}),
        ] {
            let stored = serde_json::to_vec(&obj).expect("encode");
            let mut pod = StoredPod::parse(&stored).expect("a pod");
            assert!(pod.node_name.is_empty() && !pod.deleting);
            assert_eq!(
                pod.uid.as_deref(),
                obj.pointer("/metadata/uid").and_then(Value::as_str)
            );
            pod.status = json!({"conditions": [cond.clone()]});
            let mut want = obj.clone();
            want["spec"]["nodeName"] = json!("node-1");
            want["status"] = pod.status.clone();
            assert_eq!(
                String::from_utf8(pod.bound_to("node-1")).expect("utf-8"),
                serde_json::to_string(&want).expect("encode")
            );
        }
        let deleting = json!({"metadata": {"deletionTimestamp": null}, "spec": {"nodeName": "n"}});
        let stored = serde_json::to_vec(&deleting).expect("encode");
        let pod = StoredPod::parse(&stored).expect("a pod");
        assert!(pod.deleting);
        assert_eq!(pod.node_name, "n");
        for not_a_pod in [
            &b"[]"[..],
            b"{\"metadata\": {}}",
            b"{\"metadata\": {}, \"spec\": 1}",
        ] {
            assert!(StoredPod::parse(not_a_pod).is_none());
        }
    }
}
