//! Decoding hand-encoded protobuf bodies of the shapes client-go sends.

use super::*;
use serde_json::json;

/// A tiny protobuf writer for building test bodies.
#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn varint(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(b);
                return;
            }
            self.0.push(b | 0x80);
        }
    }
    fn key(&mut self, n: u32, wire: u64) {
        self.varint((u64::from(n) << 3) | wire);
    }
    fn int(mut self, n: u32, v: i64) -> Self {
        self.key(n, 0);
        self.varint(v as u64);
        self
    }
    fn bytes(mut self, n: u32, b: &[u8]) -> Self {
        self.key(n, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn str(self, n: u32, s: &str) -> Self {
        self.bytes(n, s.as_bytes())
    }
    fn msg(self, n: u32, m: W) -> Self {
        self.bytes(n, &m.0)
    }
    fn entry(self, n: u32, k: &str, v: W) -> Self {
        self.msg(n, W::default().str(1, k).msg(2, v))
    }
    fn sentry(self, n: u32, k: &str, v: &str) -> Self {
        self.msg(n, W::default().str(1, k).str(2, v))
    }
}

fn envelope(api_version: &str, kind: &str, raw: W) -> Vec<u8> {
    let unknown = W::default()
        .msg(1, W::default().str(1, api_version).str(2, kind))
        .msg(2, raw)
        .str(3, "")
        .str(4, "");
    let mut body = MAGIC.to_vec();
    body.extend_from_slice(&unknown.0);
    body
}

/// ObjectMeta as gogo writes it: every non-pointer field present, even when empty.
fn meta(name: &str) -> W {
    W::default()
        .str(1, name)
        .str(2, "")
        .str(3, "")
        .str(5, "")
        .str(6, "")
        .int(7, 0)
        .msg(8, W::default())
        .sentry(11, "owner", "helm")
        .sentry(11, "name", name)
}

#[test]
fn decodes_a_helm_release_secret() {
    let raw = W::default()
        .msg(1, meta("sh.helm.release.v1.demo.v1"))
        .entry(2, "release", W(b"H4sI".to_vec()))
        .str(3, "helm.sh/release.v1");
    let got = decode(&envelope("v1", "Secret", raw)).expect("decodes");
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "sh.helm.release.v1.demo.v1",
                "labels": {"owner": "helm", "name": "sh.helm.release.v1.demo.v1"}
            },
            "data": {"release": "SDRzSQ=="},
            "type": "helm.sh/release.v1"
        })
    );
}

#[test]
fn keeps_pointer_zeros_and_decodes_special_types() {
    // Deployment{spec: {replicas: 0, strategy: {rollingUpdate: {maxSurge: "25%", maxUnavailable: 1}}}}
    let rolling = W::default()
        .msg(1, W::default().int(1, 0).int(2, 1))
        .msg(2, W::default().int(1, 1).str(3, "25%"));
    let spec = W::default()
        .int(1, 0)
        .msg(4, W::default().str(1, "RollingUpdate").msg(2, rolling))
        .int(5, 0)
        .int(9, -1);
    let created = W::default().int(1, 1_700_000_000).int(2, 5);
    let raw = W::default()
        .msg(1, W::default().str(1, "web").msg(8, created))
        .msg(2, spec);
    let got = decode(&envelope("apps/v1", "Deployment", raw)).expect("decodes");
    assert_eq!(got["spec"]["replicas"], json!(0), "a set pointer is kept");
    assert!(
        got["spec"].get("minReadySeconds").is_none(),
        "omitempty int"
    );
    assert_eq!(got["spec"]["progressDeadlineSeconds"], json!(-1));
    assert_eq!(
        got["spec"]["strategy"]["rollingUpdate"],
        json!({"maxUnavailable": 1, "maxSurge": "25%"})
    );
    assert_eq!(
        got["metadata"]["creationTimestamp"],
        json!("2023-11-14T22:13:20Z")
    );
}

#[test]
fn inlines_volume_sources_and_drops_zero_times() {
    let volume = W::default()
        .str(1, "cache")
        .msg(2, W::default().msg(2, W::default().str(1, "Memory")));
    let pod_spec = W::default().msg(1, volume);
    let raw = W::default()
        .msg(1, meta("p").msg(8, W::default()))
        .msg(2, pod_spec);
    let got = decode(&envelope("v1", "Pod", raw)).expect("decodes");
    assert_eq!(
        got["spec"]["volumes"],
        json!([{"name": "cache", "emptyDir": {"medium": "Memory"}}])
    );
    assert!(got["metadata"].get("creationTimestamp").is_none());
    assert!(got["metadata"].get("namespace").is_none());
}

#[test]
fn delete_options_are_read_under_any_group_version() {
    let raw = W::default().int(1, 0).str(4, "Background");
    for gv in ["v1", "apps/v1", "meta.k8s.io/v1"] {
        let got = decode(&envelope(gv, "DeleteOptions", W(raw.0.clone()))).expect("decodes");
        assert_eq!(got["propagationPolicy"], json!("Background"), "{gv}");
        assert_eq!(got["gracePeriodSeconds"], json!(0), "{gv}");
    }
}

#[test]
fn raw_extensions_and_quantities() {
    let quantity = W::default().str(1, "500m");
    let limits =
        W::default()
            .entry(1, "cpu", quantity)
            .entry(1, "memory", W::default().str(1, "64Mi"));
    let container = W::default()
        .str(1, "app")
        .msg(8, limits)
        .rep_str(3, &["sh", "-c"]);
    let got = decode_message_named("k8s.io.api.core.v1.Container", &container.0);
    assert_eq!(
        got,
        json!({"name": "app", "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}, "command": ["sh", "-c"]})
    );
    let rev = W::default()
        .msg(1, meta("r1"))
        .msg(2, W::default().bytes(1, br#"{"spec":{"x":1}}"#))
        .int(3, 2);
    let got = decode(&envelope("apps/v1", "ControllerRevision", rev)).expect("decodes");
    assert_eq!(got["data"], json!({"spec": {"x": 1}}));
    assert_eq!(got["revision"], json!(2));
}

impl W {
    fn rep_str(mut self, n: u32, items: &[&str]) -> Self {
        for s in items {
            self = self.str(n, s);
        }
        self
    }
}

fn decode_message_named(name: &str, bytes: &[u8]) -> Value {
    let i = MESSAGES
        .binary_search_by(|m| m.name.cmp(name))
        .expect("message in table");
    decode_message(i, bytes).expect("decodes")
}

#[test]
fn rejects_what_it_cannot_read() {
    assert_eq!(decode(b"{}"), Err(ProtobufError::NoMagic));
    let mut truncated = envelope("v1", "Secret", W::default().msg(1, meta("x")));
    truncated.truncate(truncated.len() - 3);
    assert_eq!(decode(&truncated), Err(ProtobufError::Malformed));
    assert!(matches!(
        decode(&envelope("example.com/v1", "Widget", W::default())),
        Err(ProtobufError::UnknownKind { .. })
    ));
    let mut group_wire = MAGIC.to_vec();
    group_wire.push((1 << 3) | 3);
    assert_eq!(decode(&group_wire), Err(ProtobufError::WireType(3)));
}

#[test]
fn durations_print_as_go_does() {
    assert_eq!(go_duration(0), "0s");
    assert_eq!(go_duration(1_500), "1.5µs");
    assert_eq!(go_duration(2_000_000), "2ms");
    assert_eq!(go_duration(1_500_000_000), "1.5s");
    assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
    assert_eq!(go_duration(-90_000_000_000), "-1m30s");
}
