//! Storage keys, query parameters, request bodies and object metadata helpers.

use http::HeaderMap;
use serde_json::{Value, json};
use skiff_api::registry::ResourceInfo;
use skiff_api::status::ApiError;

/// The largest request body the server reads (upstream's limit).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// The group segment of a resource's keys: its storage group (`core` for the core group).
fn group_segment(info: &ResourceInfo) -> &str {
    let stored = skiff_api::registry::storage_of(info);
    if stored.group.is_empty() {
        "core"
    } else {
        stored.group
    }
}

/// `/registry/{group}/{plural}/[{namespace}/]{name}`; all versions of a resource share keys,
/// and so do the core and events.k8s.io Events.
pub fn key(info: &ResourceInfo, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if info.namespaced => format!(
            "/registry/{}/{}/{ns}/{name}",
            group_segment(info),
            info.plural
        ),
        _ => format!("/registry/{}/{}/{name}", group_segment(info), info.plural),
    }
}

/// The key prefix of a collection: every namespace, or one.
pub fn prefix(info: &ResourceInfo, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if info.namespaced => {
            format!("/registry/{}/{}/{ns}/", group_segment(info), info.plural)
        }
        _ => format!("/registry/{}/{}/", group_segment(info), info.plural),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query parameters; the last value of a repeated key wins, except where callers use `all`.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        let pairs = q
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (percent_decode(k), percent_decode(v)),
                None => (percent_decode(p), String::new()),
            })
            .collect();
        Query { pairs }
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    pub fn all(&self, k: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1" | ""))
    }
    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {v:?}"))),
        }
    }
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        let vals = self.all("dryRun");
        for v in &vals {
            if *v != "All" {
                return Err(ApiError::bad_request(format!(
                    "Invalid dry run value: {v:?}: valid values are \"All\""
                )));
            }
        }
        Ok(!vals.is_empty())
    }
}

/// The media type of a body, without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|| "application/json".into())
}

/// Parses a JSON or YAML body into a JSON value.
pub fn parse_body(ct: &str, body: &[u8]) -> Result<Value, ApiError> {
    parse_body_noting(ct, body).map(|(v, _)| v)
}

/// As [`parse_body`], noting the keys a YAML body repeats (the last one counts).
pub fn parse_body_noting(
    ct: &str,
    body: &[u8],
) -> Result<(Value, Vec<crate::dupes::Duplicate>), ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("request body is empty"));
    }
    match ct {
        "application/yaml"
        | "application/apply-patch+yaml"
        | "application/x-yaml"
        | "text/yaml" => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("the request body is not valid UTF-8"))?;
            crate::dupes::yaml(text).map_err(|e| {
                let msg = e.to_string();
                let first = msg.lines().next().unwrap_or("invalid YAML");
                ApiError::bad_request(format!("error converting YAML to JSON: {first}"))
            })
        }
        "application/vnd.kubernetes.protobuf" => {
            skiff_api::protobuf::decode(body)
                .map(|v| (v, Vec::new()))
                .map_err(|e| match e {
                    // Kinds without a protobuf form (custom resources) are refused as upstream does.
                    skiff_api::protobuf::ProtobufError::UnknownKind { .. } => {
                        ApiError::unsupported_media_type(ct)
                    }
                    e => ApiError::bad_request(format!("failed to decode protobuf body: {e}")),
                })
        }
        "application/json"
        | ""
        | "*/*"
        | "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "application/json-patch+json" => serde_json::from_slice(body)
            .map(|v| (v, Vec::new()))
            .map_err(|e| {
                ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
            }),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// Parses the body of a create or update of `kind`. A JSON body that does not parse is
/// refused as upstream refuses it: naming the kind expected and summarizing the body (its
/// start, in hex unless it begins with `{`).
pub fn parse_object_body(
    ct: &str,
    body: &[u8],
    kind: &str,
) -> Result<(Value, Vec<crate::dupes::Duplicate>), ApiError> {
    const JSON: &[&str] = &["application/json", "", "*/*"];
    if body.is_empty() || !JSON.contains(&ct) {
        return parse_body_noting(ct, body);
    }
    crate::dupes::json(body).map_err(|e| {
        const MAX: usize = 30;
        let head = body.get(..MAX).unwrap_or(body);
        let more = if body.len() > MAX { " ..." } else { "" };
        let summary = if body.first() == Some(&b'{') {
            String::from_utf8_lossy(head).into_owned()
        } else {
            head.iter().map(|b| format!("{b:02x}")).collect()
        };
        ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {kind}): couldn't get \
             version/kind; json parse error: {e} ({summary}{more})"
        ))
    })
}

/// RFC 3339 timestamp in seconds, as metadata timestamps are. Formatted once per second
/// per thread: every write stamps one or two.
pub fn now_rfc3339() -> String {
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((0, String::new())) };
    }
    let now = chrono::Utc::now();
    let secs = now.timestamp();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != secs || last.1.is_empty() {
            *last = (secs, now.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        last.1.clone()
    })
}

/// A new object's `metadata.uid`: a random (version 4) UUID from the thread's generator,
/// without a system call per object.
pub fn new_uid() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

pub fn name_of(v: &Value) -> &str {
    v.get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn namespace_of(v: &Value) -> Option<&str> {
    v.get("metadata")
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
}

pub fn metadata_mut(v: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !v.is_object() {
        *v = json!({});
    }
    if !v.get("metadata").is_some_and(Value::is_object) {
        v["metadata"] = json!({});
    }
    v["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

/// Random suffix for `generateName`, from upstream's alphabet (no vowels, no confusable digits).
pub fn random_suffix(n: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Serializes an object for storage (without the resourceVersion, which is the store's revision).
pub fn encode(obj: &Value) -> bytes::Bytes {
    let md = obj.get("metadata");
    if md.is_none_or(|m| m.get("resourceVersion").is_none() && m.get("selfLink").is_none()) {
        return bytes::Bytes::from(serde_json::to_vec(obj).unwrap_or_default());
    }
    let mut o = obj.clone();
    if let Some(md) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        md.remove("resourceVersion");
        md.remove("selfLink");
    }
    bytes::Bytes::from(serde_json::to_vec(&o).unwrap_or_default())
}

/// The per-kind field-selector fields upstream supports, beyond `metadata.name` and
/// `metadata.namespace` (which every kind has). `group` is "" for the core group.
fn selectable_fields(group: &str, plural: &str) -> &'static [&'static str] {
    match (group, plural) {
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("events.k8s.io", "events") => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "type",
            "reportingController",
        ],
        ("", "secrets") => &["type"],
        ("", "nodes") => &["spec.unschedulable"],
        ("", "namespaces") => &["status.phase"],
        ("", "replicationcontrollers") | ("apps", "replicasets") => &["status.replicas"],
        ("batch", "jobs") => &["status.successful"],
        ("certificates.k8s.io", "certificatesigningrequests") => &["spec.signerName"],
        _ => &[],
    }
}

/// The name a selectable field of `info` has on the stored object: events.k8s.io Events are
/// stored as core ones, so their `regarding.*` is `involvedObject.*` and their
/// `reportingController` is `reportingComponent`.
pub fn stored_field(info: &ResourceInfo, field: &str) -> String {
    if info.group == "events.k8s.io" && info.plural == "events" {
        if let Some(rest) = field.strip_prefix("regarding.") {
            return format!("involvedObject.{rest}");
        }
        if field == "reportingController" {
            return "reportingComponent".to_string();
        }
    }
    field.to_string()
}

/// The value a field selector compares for `field`, one of `selectable_fields`.
fn selectable_value(plural: &str, obj: &Value, field: &str) -> String {
    // Walks the dotted path as it is: this runs for every watch cache event.
    let s = |dotted: &str| {
        dotted
            .split('.')
            .try_fold(obj, |v, k| v.get(k))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            })
    };
    match field {
        // An event without a source component is selected by its reporting controller.
        "source" if plural == "events" => s("source.component")
            .filter(|c| !c.is_empty())
            .or_else(|| s("reportingComponent"))
            .unwrap_or_default(),
        // A Job's `status.successful` is the count of succeeded pods, 0 while unset.
        "status.successful" => s("status.succeeded").unwrap_or_else(|| "0".into()),
        f => s(f).unwrap_or_else(|| {
            if f == "spec.hostNetwork" || f == "spec.unschedulable" {
                "false".into()
            } else {
                String::new()
            }
        }),
    }
}

/// `metadata.*`, `spec.*` and the per-kind field-selector fields upstream supports.
pub fn field_value(
    info: &ResourceInfo,
    obj: &Value,
    field: &str,
) -> Result<Option<String>, ApiError> {
    match field {
        "metadata.name" if obj.pointer("/metadata/name").is_none() => Ok(None),
        "metadata.name" | "metadata.namespace" => {
            Ok(Some(selectable_value(info.plural, obj, field)))
        }
        f if selectable_fields(info.group, info.plural).contains(&f) => {
            Ok(Some(selectable_value(info.plural, obj, f)))
        }
        f => Err(ApiError::bad_request(format!(
            "field label not supported: {f}"
        ))),
    }
}

/// What label and field selectors look at, taken from an object once: its labels and the
/// values of its selectable fields. The watch cache keeps these instead of the object.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Attrs {
    pub labels: std::collections::BTreeMap<String, String>,
    name: Option<String>,
    namespace: String,
    fields: Vec<(&'static str, String)>,
}

impl Attrs {
    /// Takes the attributes of `obj`, an object of resource `plural` in `group` ("" for core).
    pub fn of(group: &str, plural: &str, obj: &Value) -> Attrs {
        Attrs {
            labels: skiff_api::selector::labels_of(obj),
            name: obj
                .pointer("/metadata/name")
                .map(|_| selectable_value(plural, obj, "metadata.name")),
            namespace: selectable_value(plural, obj, "metadata.namespace"),
            fields: selectable_fields(group, plural)
                .iter()
                .map(|f| (*f, selectable_value(plural, obj, f)))
                .collect(),
        }
    }

    /// The attributes of a serialized object, decoding only the members they come from.
    pub fn of_json(group: &str, plural: &str, json: &[u8]) -> Option<Attrs> {
        // `source` (of an event) is kept whole: it selects on `source.component`.
        let paths: Vec<&str> = ["metadata.name", "metadata.namespace", "metadata.labels"]
            .into_iter()
            .chain(selectable_fields(group, plural).iter().map(|f| match *f {
                "status.successful" => "status.succeeded",
                f => f,
            }))
            .collect();
        let pruned = crate::rawjson::decode_paths(json, &paths)?;
        Some(Attrs::of(group, plural, &pruned))
    }

    /// The value of a selectable field; None for fields the kind does not support.
    pub fn field(&self, field: &str) -> Option<&str> {
        match field {
            "metadata.name" => self.name.as_deref(),
            "metadata.namespace" => Some(&self.namespace),
            f => self
                .fields
                .iter()
                .find(|(k, _)| *k == f)
                .map(|(_, v)| v.as_str()),
        }
    }
}

/// The group ("" for core) and plural of a storage key or key prefix.
pub fn resource_of_key(key: &str) -> Option<(&str, &str)> {
    let mut parts = key.strip_prefix("/registry/")?.splitn(3, '/');
    let group = parts.next()?;
    let plural = parts.next()?;
    Some((if group == "core" { "" } else { group }, plural))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unparseable_objects_are_refused_naming_the_kind_expected() {
        let yaml = b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: valid-pod\n";
        let Err(e) = parse_object_body("application/json", yaml, "Namespace") else {
            panic!("YAML is not JSON");
        };
        assert_eq!(e.code, 400);
        assert!(
            e.message.starts_with(
                "the object provided is unrecognized (must be of type Namespace): \
                 couldn't get version/kind; json parse error: "
            ),
            "{}",
            e.message
        );
        assert!(
            e.message
                .ends_with("(61706956657273696f6e3a2076310a6b696e643a20506f640a6d65746164 ...)"),
            "{}",
            e.message
        );
        let Err(e) = parse_object_body("application/json", b"{\"kind\": ", "Pod") else {
            panic!("a truncated body does not parse");
        };
        assert!(e.message.ends_with("({\"kind\": )"), "{}", e.message);
        let ok = parse_object_body("application/yaml", yaml, "Pod").map(|(v, _)| v["kind"].clone());
        assert_eq!(ok.ok(), Some(json!("Pod")));
    }

    #[test]
    fn an_events_source_falls_back_to_its_reporting_controller() {
        let reported = br#"{"metadata":{"name":"e"},"reportingComponent":"test-controller"}"#;
        let attrs = Attrs::of_json("", "events", reported).expect("attrs");
        assert_eq!(attrs.field("source"), Some("test-controller"));
        let both = br#"{"metadata":{"name":"e"},"source":{"component":"kubelet"},"reportingComponent":"x"}"#;
        let attrs = Attrs::of_json("", "events", both).expect("attrs");
        assert_eq!(attrs.field("source"), Some("kubelet"));
    }

    #[test]
    fn a_jobs_successful_field_counts_its_succeeded_pods() {
        let done = br#"{"metadata":{"name":"j"},"status":{"succeeded":2}}"#;
        let attrs = Attrs::of_json("batch", "jobs", done).expect("attrs");
        assert_eq!(attrs.field("status.successful"), Some("2"));
        let fresh = br#"{"metadata":{"name":"j"},"status":{}}"#;
        let attrs = Attrs::of_json("batch", "jobs", fresh).expect("attrs");
        assert_eq!(attrs.field("status.successful"), Some("0"));
    }
}
