//! Conversion between served versions of one kind. Among the built-in kinds
//! HorizontalPodAutoscaler is served in two versions (stored as autoscaling/v2), and Events
//! in two groups (stored as core v1, served also as events.k8s.io/v1).

use serde_json::{Value, json};

/// Where a v1 HPA keeps the v2 metrics it cannot express, as upstream does.
const METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
const CURRENT_METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";

fn is_cpu_utilization(m: &Value) -> bool {
    m.get("type").and_then(Value::as_str) == Some("Resource")
        && m.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
        && m.pointer("/resource/target/type").and_then(Value::as_str) == Some("Utilization")
}

/// autoscaling/v2 → autoscaling/v1.
pub fn hpa_v2_to_v1(v2: &Value) -> Value {
    let mut out = v2.clone();
    out["apiVersion"] = json!("autoscaling/v1");
    let spec = v2.get("spec").cloned().unwrap_or(json!({}));
    let metrics = spec
        .get("metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut v1_spec = json!({
        "scaleTargetRef": spec.get("scaleTargetRef").cloned().unwrap_or(json!({})),
        "maxReplicas": spec.get("maxReplicas").cloned().unwrap_or(json!(0)),
    });
    if let Some(min) = spec.get("minReplicas") {
        v1_spec["minReplicas"] = min.clone();
    }
    let (cpu, other): (Vec<Value>, Vec<Value>) = metrics.into_iter().partition(is_cpu_utilization);
    if let Some(u) = cpu
        .first()
        .and_then(|m| m.pointer("/resource/target/averageUtilization"))
    {
        v1_spec["targetCPUUtilizationPercentage"] = u.clone();
    }
    out["spec"] = v1_spec;
    let mut annotations = out
        .pointer("/metadata/annotations")
        .cloned()
        .unwrap_or(json!({}));
    if !other.is_empty() {
        annotations[METRICS_ANNOTATION] = json!(serde_json::to_string(&other).unwrap_or_default());
    }
    let status = v2.get("status").cloned().unwrap_or(Value::Null);
    if status.is_object() {
        let mut s = json!({
            "currentReplicas": status.get("currentReplicas").cloned().unwrap_or(json!(0)),
            "desiredReplicas": status.get("desiredReplicas").cloned().unwrap_or(json!(0)),
        });
        for k in ["observedGeneration", "lastScaleTime"] {
            if let Some(v) = status.get(k) {
                s[k] = v.clone();
            }
        }
        if let Some(cur) = status.get("currentMetrics").and_then(Value::as_array) {
            if let Some(u) = cur
                .iter()
                .find(|m| m.pointer("/resource/name").and_then(Value::as_str) == Some("cpu"))
                .and_then(|m| m.pointer("/resource/current/averageUtilization"))
            {
                s["currentCPUUtilizationPercentage"] = u.clone();
            }
            annotations[CURRENT_METRICS_ANNOTATION] =
                json!(serde_json::to_string(cur).unwrap_or_default());
        }
        if let Some(c) = status.get("conditions") {
            annotations[CONDITIONS_ANNOTATION] =
                json!(serde_json::to_string(c).unwrap_or_default());
        }
        out["status"] = s;
    }
    if annotations.as_object().is_some_and(|m| !m.is_empty()) {
        out["metadata"]["annotations"] = annotations;
    }
    out
}

/// autoscaling/v1 → autoscaling/v2.
pub fn hpa_v1_to_v2(v1: &Value) -> Value {
    let mut out = v1.clone();
    out["apiVersion"] = json!("autoscaling/v2");
    let spec = v1.get("spec").cloned().unwrap_or(json!({}));
    let mut metrics: Vec<Value> = Vec::new();
    let mut annotations = v1
        .pointer("/metadata/annotations")
        .cloned()
        .unwrap_or(json!({}));
    if let Some(u) = spec.get("targetCPUUtilizationPercentage") {
        metrics.push(json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": u}}}));
    }
    if let Some(extra) = annotations
        .get(METRICS_ANNOTATION)
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Vec<Value>>(s).ok())
    {
        metrics.extend(extra);
    }
    let mut v2_spec = json!({
        "scaleTargetRef": spec.get("scaleTargetRef").cloned().unwrap_or(json!({})),
        "maxReplicas": spec.get("maxReplicas").cloned().unwrap_or(json!(0)),
    });
    if let Some(min) = spec.get("minReplicas") {
        v2_spec["minReplicas"] = min.clone();
    }
    if !metrics.is_empty() {
        v2_spec["metrics"] = json!(metrics);
    }
    out["spec"] = v2_spec;
    if let Some(status) = v1.get("status").filter(|s| s.is_object()) {
        let mut s = json!({
            "currentReplicas": status.get("currentReplicas").cloned().unwrap_or(json!(0)),
            "desiredReplicas": status.get("desiredReplicas").cloned().unwrap_or(json!(0)),
        });
        for k in ["observedGeneration", "lastScaleTime"] {
            if let Some(v) = status.get(k) {
                s[k] = v.clone();
            }
        }
        if let Some(c) = annotations
            .get(CURRENT_METRICS_ANNOTATION)
            .and_then(Value::as_str)
            .and_then(|x| serde_json::from_str::<Value>(x).ok())
        {
            s["currentMetrics"] = c;
        }
        if let Some(c) = annotations
            .get(CONDITIONS_ANNOTATION)
            .and_then(Value::as_str)
            .and_then(|x| serde_json::from_str::<Value>(x).ok())
        {
            s["conditions"] = c;
        }
        out["status"] = s;
    }
    if let Some(m) = annotations.as_object_mut() {
        for k in [
            METRICS_ANNOTATION,
            CONDITIONS_ANNOTATION,
            CURRENT_METRICS_ANNOTATION,
        ] {
            m.remove(k);
        }
        if m.is_empty() {
            if let Some(md) = out.get_mut("metadata").and_then(Value::as_object_mut) {
                md.remove("annotations");
            }
        } else {
            out["metadata"]["annotations"] = annotations;
        }
    }
    out
}

/// The members of a core v1 Event that events.k8s.io/v1 names differently, as upstream's
/// conversion maps them (the rest have the same name in both).
const EVENT_RENAMES: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

fn rename_members(
    obj: &Value,
    api_version: &str,
    pairs: impl Iterator<Item = (&'static str, &'static str)>,
) -> Value {
    let mut out = obj.clone();
    if let Some(m) = out.as_object_mut() {
        for (from, to) in pairs {
            match m.remove(from) {
                Some(v) => {
                    m.insert(to.to_string(), v);
                }
                None => {
                    m.remove(to);
                }
            }
        }
        m.insert("apiVersion".into(), json!(api_version));
    }
    out
}

/// core v1 Event → events.k8s.io/v1 Event.
pub fn event_core_to_events(core: &Value) -> Value {
    rename_members(core, "events.k8s.io/v1", EVENT_RENAMES.iter().copied())
}

/// events.k8s.io/v1 Event → core v1 Event.
pub fn event_events_to_core(ev: &Value) -> Value {
    rename_members(
        ev,
        "v1",
        EVENT_RENAMES.iter().map(|(core, ev)| (*ev, *core)),
    )
}

/// Converts `obj` to `to_version` of its kind when the kind has more than one version.
pub fn convert(group: &str, kind: &str, obj: &Value, to_version: &str) -> Value {
    let from = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    match (group, kind, from, to_version) {
        ("autoscaling", "HorizontalPodAutoscaler", "autoscaling/v2", "v1") => hpa_v2_to_v1(obj),
        ("autoscaling", "HorizontalPodAutoscaler", "autoscaling/v1", "v2") => hpa_v1_to_v2(obj),
        // `group` is the group asked for; an events.k8s.io Event is stored as a core one.
        ("events.k8s.io", "Event", "v1", "v1") => event_core_to_events(obj),
        ("events.k8s.io", "Event", "events.k8s.io/v1", "v1") => event_events_to_core(obj),
        _ => obj.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpa_round_trips_through_v1() {
        let v2 = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}
            ]}});
        let v1 = hpa_v2_to_v1(&v2);
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
        assert!(
            v1["metadata"]["annotations"][METRICS_ANNOTATION]
                .as_str()
                .is_some_and(|s| s.contains("memory"))
        );
        assert_eq!(hpa_v1_to_v2(&v1), v2);
    }

    #[test]
    fn v1_without_target_has_no_metrics() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "a"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "a"}, "maxReplicas": 3}});
        let v2 = hpa_v1_to_v2(&v1);
        assert!(v2["spec"].get("metrics").is_none());
        assert_eq!(v2["apiVersion"], "autoscaling/v2");
    }

    #[test]
    fn events_convert_between_their_groups_without_loss() {
        let core = json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
            "reason": "Started", "message": "started", "type": "Normal",
            "source": {"component": "kubelet"}, "count": 3,
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:01:00Z",
            "eventTime": null, "reportingComponent": "kubelet", "reportingInstance": "n1"});
        let ev = convert("events.k8s.io", "Event", &core, "v1");
        assert_eq!(ev["apiVersion"], "events.k8s.io/v1");
        assert_eq!(ev["regarding"]["name"], "p");
        assert_eq!(ev["note"], "started");
        assert_eq!(ev["deprecatedCount"], 3);
        assert_eq!(ev["deprecatedSource"]["component"], "kubelet");
        assert_eq!(ev["reportingController"], "kubelet");
        assert_eq!(ev["reportingInstance"], "n1");
        assert!(ev.get("involvedObject").is_none() && ev.get("message").is_none());
        assert_eq!(convert("events.k8s.io", "Event", &ev, "v1"), core);
        // A member of the other shape sent by mistake does not survive the conversion.
        let mut odd = ev.clone();
        odd["message"] = json!("stray");
        assert!(
            event_events_to_core(&odd)
                .get("message")
                .is_none_or(|m| m == "started")
        );
    }
}
