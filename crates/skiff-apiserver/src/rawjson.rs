//! Reading and rewriting serialized objects without decoding them into `serde_json::Value`s:
//! the watch cache stamps each stored object's resourceVersion and takes its selector
//! attributes on every write, and a decoded object costs many allocations.

use serde_json::{Map, Value};
use std::borrow::Cow;

/// The members of a serialized object, in order, each key decoded (borrowed unless it has
/// escapes) and each value left serialized.
struct Members<'a>(Vec<(Cow<'a, str>, &'a [u8])>);

impl<'a> Members<'a> {
    /// `None` unless `json` is one object (and whitespace).
    fn parse(json: &'a [u8]) -> Option<Members<'a>> {
        let (members, end) = all_members(json, skip_ws(json, 0))?;
        if skip_ws(json, end) != json.len() {
            return None;
        }
        Some(Members(
            members
                .iter()
                .map(|m| Some((m.decoded_key(json)?, &json[m.value.clone()])))
                .collect::<Option<_>>()?,
        ))
    }

    fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }
}

fn is_object(value: &[u8]) -> bool {
    value.first() == Some(&b'{')
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
    let top = Members::parse(json)?;
    let mut out = Vec::with_capacity(json.len() + 32);
    let (mut api_version, mut kind) = (String::new(), String::new());
    let rv = format!("\"{revision}\"");
    out.push(b'{');
    for (i, (k, v)) in top.0.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_key(&mut out, k);
        match k.as_ref() {
            "metadata" if is_object(v) => {
                let md = Members::parse(v)?;
                let stamp = |out: &mut Vec<u8>| out.extend_from_slice(rv.as_bytes());
                write_object(&mut out, &md.0, &[("resourceVersion", &stamp)]);
                continue;
            }
            "apiVersion" => api_version = serde_json::from_slice(v).unwrap_or_default(),
            "kind" => kind = serde_json::from_slice(v).unwrap_or_default(),
            _ => {}
        }
        out.extend_from_slice(v);
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
        let top = Members::parse(json)?;
        // A member that is there but not an object makes this no pod to bind.
        let object = |m: &Members<'a>, name: &str| Members::parse(m.get(name)?);
        let string = |m: &Members<'a>, name: &str| -> Option<String> {
            serde_json::from_slice::<Value>(m.get(name)?)
                .ok()?
                .as_str()
                .map(str::to_string)
        };
        let md = object(&top, "metadata")?;
        let spec = object(&top, "spec")?;
        let status = match top.get("status") {
            Some(v) if is_object(v) => serde_json::from_slice(v).ok()?,
            _ => Value::Object(Map::new()),
        };
        let uid = string(&md, "uid");
        let deleting = md.get("deletionTimestamp").is_some();
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
        let size: usize = self.top.0.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
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
fn write_object(out: &mut Vec<u8>, members: &[(Cow<'_, str>, &[u8])], overrides: &[Override<'_>]) {
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
        member(out, k);
        match overrides.iter().position(|(name, _)| name == k) {
            Some(i) => {
                (overrides[i].1)(out);
                written |= 1 << i;
            }
            None => out.extend_from_slice(v),
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

/// The serialized value of the member `name` of the object `json`: `None` when `json` is not
/// an object, `Some(None)` when it has no such member. Only the members up to it are scanned.
pub fn member<'a>(json: &'a [u8], name: &[u8]) -> Option<Option<&'a [u8]>> {
    let found = members(json, skip_ws(json, 0))?
        .find(|m| m.key(json) == name)
        .map(|m| &json[m.value]);
    Some(found)
}

/// `json` without `metadata.managedFields`, cut out of the serialized bytes; `None` when there
/// is nothing to cut (or `json` is not an object). Only the members up to `managedFields` are
/// scanned; the rest is copied. `json` must be valid JSON (the store's own serialization).
pub fn without_managed_fields(json: &[u8]) -> Option<Vec<u8>> {
    let metadata = members(json, skip_ws(json, 0))?.find(|m| m.key(json) == b"metadata")?;
    without_member(json, metadata.value.start, b"managedFields")
}

/// `json` without the member `name` of the object whose `{` is at `open`; `None` when it has
/// no such member. Only the members up to it are scanned.
pub fn without_member(json: &[u8], open: usize, name: &[u8]) -> Option<Vec<u8>> {
    let mut md = members(json, open)?;
    let mut prev_end = None;
    let cut = loop {
        let m = md.next()?;
        if m.key(json) == name {
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

    /// The key as a string: borrowed, or unescaped when it has escapes.
    fn decoded_key<'a>(&self, json: &'a [u8]) -> Option<Cow<'a, str>> {
        let raw = self.key(json);
        if !raw.contains(&b'\\') {
            return std::str::from_utf8(raw).ok().map(Cow::Borrowed);
        }
        serde_json::from_slice(&json[self.start..self.key.end + 1])
            .ok()
            .map(Cow::Owned)
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
        let m = member_at(json, i)?;
        i = m.value.end;
        Some(m)
    }))
}

/// The member whose key's opening quote is at `i`.
fn member_at(json: &[u8], i: usize) -> Option<Member> {
    if json.get(i) != Some(&b'"') {
        return None;
    }
    let key_end = skip_string(json, i)?;
    let colon = skip_ws(json, key_end);
    if json.get(colon) != Some(&b':') {
        return None;
    }
    let value_start = skip_ws(json, colon + 1);
    let value_end = skip_value(json, value_start)?;
    Some(Member {
        start: i,
        key: i + 1..key_end - 1,
        value: value_start..value_end,
    })
}

/// Every member of the object whose `{` is at `open`, and where the object ends (just past
/// its `}`). `None` unless a whole object is there.
fn all_members(json: &[u8], open: usize) -> Option<(Vec<Member>, usize)> {
    if json.get(open) != Some(&b'{') {
        return None;
    }
    let mut out = Vec::with_capacity(8);
    let mut i = skip_ws(json, open + 1);
    if json.get(i) == Some(&b'}') {
        return Some((out, i + 1));
    }
    loop {
        let m = member_at(json, i)?;
        i = skip_ws(json, m.value.end);
        out.push(m);
        match json.get(i) {
            Some(b',') => i = skip_ws(json, i + 1),
            Some(b'}') => return Some((out, i + 1)),
            _ => return None,
        }
    }
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
    let start = skip_ws(json, 0);
    if json.get(start) == Some(&b'{') && !paths.iter().any(|p| p.is_empty()) {
        let (members, end) = all_members(json, start)?;
        if skip_ws(json, end) != json.len() {
            return None;
        }
        return pruned_object(json, &members, paths);
    }
    let end = skip_value(json, start)?;
    if skip_ws(json, end) != json.len() {
        return None;
    }
    pruned(json, start..end, paths)
}

/// The value at `at` in `json`, keeping only what lies under `paths` (relative to it).
fn pruned(json: &[u8], at: std::ops::Range<usize>, paths: &[&str]) -> Option<Value> {
    if paths.iter().any(|p| p.is_empty()) {
        return serde_json::from_slice(&json[at]).ok();
    }
    // Anything but an object cannot hold the paths below it.
    if json.get(at.start) != Some(&b'{') {
        return Some(Value::Null);
    }
    let (members, _) = all_members(json, at.start)?;
    pruned_object(json, &members, paths)
}

fn pruned_object(json: &[u8], members: &[Member], paths: &[&str]) -> Option<Value> {
    let mut out = Map::new();
    let mut below: Vec<&str> = Vec::new();
    for m in members {
        let key = m.decoded_key(json)?;
        below.clear();
        below.extend(paths.iter().filter_map(|p| {
            let rest = p.strip_prefix(key.as_ref())?;
            if rest.is_empty() {
                Some(rest)
            } else {
                rest.strip_prefix('.')
            }
        }));
        if !below.is_empty() {
            let v = pruned(json, m.value.clone(), &below)?;
            out.insert(key.into_owned(), v);
        }
    }
    Some(Value::Object(out))
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
        // Keys are compared unescaped, as a decoder would.
        let escaped = br#"{"meta\u0064ata": {"name": "p", "x": [1, {"}": "]"}]}, "spec": 1}"#;
        assert_eq!(
            decode_paths(escaped, &["metadata.name", "spec.nodeName"]),
            Some(json!({"metadata": {"name": "p"}, "spec": null}))
        );
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
