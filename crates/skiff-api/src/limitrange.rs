//! The LimitRanger admission plugin's rules: default requests and limits for containers
//! from a namespace's LimitRanges, and their min, max and limit/request ratio checks on
//! containers, pods and persistent volume claims, with upstream's messages.

use crate::quantity::Quantity;
use crate::quota::{ResourceList, parse_list, pod_resources};
use serde_json::{Map, Value, json};

/// The annotation naming what the plugin set on a pod.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

fn items<'a>(range: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    range
        .pointer("/spec/limits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |i| i.get("type").and_then(Value::as_str) == Some(kind))
}

/// Sets each container's missing requests and limits from the Container items' defaults
/// and records them in the pod's annotation. Returns whether anything was set.
pub fn default_pod(ranges: &[Value], pod: &mut Value) -> bool {
    let mut changed = false;
    for range in ranges {
        let mut requests = Map::new();
        let mut limits = Map::new();
        for item in items(range, "Container") {
            for (field, into) in [("defaultRequest", &mut requests), ("default", &mut limits)] {
                if let Some(m) = item.get(field).and_then(Value::as_object) {
                    into.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        let mut notes = Vec::new();
        for (list, what) in [
            ("containers", "container"),
            ("initContainers", "init container"),
        ] {
            for c in pod
                .pointer_mut(&format!("/spec/{list}"))
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let name = c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let set_requests = fill(c, "requests", &requests);
                let set_limits = fill(c, "limits", &limits);
                if !set_requests.is_empty() {
                    notes.push(format!(
                        "{} request for {what} {name}",
                        set_requests.join(", ")
                    ));
                }
                if !set_limits.is_empty() {
                    notes.push(format!("{} limit for {what} {name}", set_limits.join(", ")));
                }
            }
        }
        if !notes.is_empty() {
            changed = true;
            if !pod["metadata"]["annotations"].is_object() {
                pod["metadata"]["annotations"] = json!({});
            }
            pod["metadata"]["annotations"][ANNOTATION] =
                json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
        }
    }
    changed
}

/// Adds the missing entries of `defaults` to the container's `resources.<field>`; the names
/// it added, sorted.
fn fill(container: &mut Value, field: &str, defaults: &Map<String, Value>) -> Vec<String> {
    if defaults.is_empty() {
        return Vec::new();
    }
    if !container["resources"].is_object() {
        container["resources"] = json!({});
    }
    if !container["resources"][field].is_object() {
        container["resources"][field] = json!({});
    }
    let Some(list) = container["resources"][field].as_object_mut() else {
        return Vec::new();
    };
    let mut set = Vec::new();
    for (k, v) in defaults {
        if !list.contains_key(k) {
            list.insert(k.clone(), v.clone());
            set.push(k.clone());
        }
    }
    set.sort();
    set
}

fn min_constraint(
    kind: &str,
    name: &str,
    enforced: Quantity,
    req: &ResourceList,
    lim: &ResourceList,
) -> Option<String> {
    let Some(r) = req.get(name) else {
        return Some(format!(
            "minimum {name} usage per {kind} is {enforced}.  No request is specified"
        ));
    };
    if *r < enforced {
        return Some(format!(
            "minimum {name} usage per {kind} is {enforced}, but request is {r}"
        ));
    }
    match lim.get(name) {
        Some(l) if *l < enforced => Some(format!(
            "minimum {name} usage per {kind} is {enforced}, but limit is {l}"
        )),
        _ => None,
    }
}

fn max_constraint(
    kind: &str,
    name: &str,
    enforced: Quantity,
    req: &ResourceList,
    lim: &ResourceList,
) -> Option<String> {
    let Some(l) = lim.get(name) else {
        return Some(format!(
            "maximum {name} usage per {kind} is {enforced}.  No limit is specified"
        ));
    };
    if *l > enforced {
        return Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but limit is {l}"
        ));
    }
    match req.get(name) {
        Some(r) if *r > enforced => Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but request is {r}"
        )),
        _ => None,
    }
}

fn ratio_constraint(
    kind: &str,
    name: &str,
    enforced: Quantity,
    req: &ResourceList,
    lim: &ResourceList,
) -> Option<String> {
    let as_f64 = |q: &Quantity| crate::quantity::as_f64(&q.to_string()).unwrap_or(0.0);
    let r = req.get(name).map(as_f64).filter(|r| *r != 0.0);
    let Some(r) = r else {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {enforced}, but no request is specified or request is 0"
        ));
    };
    let l = lim.get(name).map(as_f64).filter(|l| *l != 0.0);
    let Some(l) = l else {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {enforced}, but no limit is specified or limit is 0"
        ));
    };
    let ratio = l / r;
    (ratio > as_f64(&enforced)).then(|| {
        format!("{name} max limit to request ratio per {kind} is {enforced}, but provided ratio is {ratio:.6}")
    })
}

type Check = fn(&str, &str, Quantity, &ResourceList, &ResourceList) -> Option<String>;

fn check_item(
    item: &Value,
    kind: &str,
    req: &ResourceList,
    lim: &ResourceList,
    errs: &mut Vec<String>,
) {
    let checks: [(&str, Check); 3] = [
        ("min", min_constraint),
        ("max", max_constraint),
        ("maxLimitRequestRatio", ratio_constraint),
    ];
    for (field, check) in checks {
        for (name, enforced) in parse_list(item.get(field)) {
            errs.extend(check(kind, &name, enforced, req, lim));
        }
    }
}

/// The Container and Pod items' violations by `pod`, in upstream's words.
pub fn validate_pod(ranges: &[Value], pod: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    for range in ranges {
        for item in items(range, "Container") {
            for list in ["containers", "initContainers"] {
                for c in spec
                    .get(list)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let req = parse_list(c.pointer("/resources/requests"));
                    let lim = parse_list(c.pointer("/resources/limits"));
                    check_item(item, "Container", &req, &lim, &mut errs);
                }
            }
        }
        for item in items(range, "Pod") {
            let req = pod_resources(spec, "requests");
            let lim = pod_resources(spec, "limits");
            check_item(item, "Pod", &req, &lim, &mut errs);
        }
    }
    errs
}

/// The PersistentVolumeClaim items' violations by `claim`'s storage request.
pub fn validate_claim(ranges: &[Value], claim: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let req = parse_list(claim.pointer("/spec/resources/requests"));
    for range in ranges {
        for item in items(range, "PersistentVolumeClaim") {
            for (name, enforced) in parse_list(item.get("min")) {
                errs.extend(match req.get(&name) {
                    None => Some(format!("minimum {name} usage per PersistentVolumeClaim is {enforced}.  No request is specified")),
                    Some(r) if *r < enforced => Some(format!("minimum {name} usage per PersistentVolumeClaim is {enforced}, but request is {r}")),
                    Some(_) => None,
                });
            }
            for (name, enforced) in parse_list(item.get("max")) {
                errs.extend(match req.get(&name) {
                    None => Some(format!("maximum {name} usage per PersistentVolumeClaim is {enforced}.  No request is specified")),
                    Some(r) if *r > enforced => Some(format!("maximum {name} usage per PersistentVolumeClaim is {enforced}, but request is {r}")),
                    Some(_) => None,
                });
            }
        }
    }
    errs
}

/// Upstream's aggregate of errors: one message alone, several (without repeats) in brackets.
pub fn aggregate(errs: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for e in errs {
        if !seen.contains(&e.as_str()) {
            seen.push(e);
        }
    }
    if seen.len() == 1 {
        seen[0].to_string()
    } else {
        format!("[{}]", seen.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(limits: Value) -> Value {
        let mut r = json!({"spec": {"limits": limits}});
        crate::defaults::apply("", "LimitRange", &mut r);
        r
    }

    #[test]
    fn defaults_fill_containers_and_annotate() {
        let ranges = [range(
            json!([{"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "100m"}}]),
        )];
        // The default request of memory comes from the default limit.
        assert_eq!(
            ranges[0]["spec"]["limits"][0]["defaultRequest"],
            json!({"cpu": "100m", "memory": "256Mi"})
        );
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "web"},
            {"name": "side", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}}
        ]}});
        assert!(default_pod(&ranges, &mut pod));
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}})
        );
        assert_eq!(
            pod["spec"]["containers"][1]["resources"]["limits"],
            json!({"cpu": "1", "memory": "256Mi"})
        );
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container web; cpu, memory limit for container web; memory request for container side; memory limit for container side"
        );
        let mut untouched = pod.clone();
        assert!(!default_pod(
            &[range(json!([{"type": "Pod", "max": {"cpu": "2"}}]))],
            &mut untouched
        ));
    }

    #[test]
    fn bounds_are_checked_with_upstream_messages() {
        let ranges = [range(json!([
            {"type": "Container", "min": {"cpu": "100m"}, "max": {"memory": "1Gi"}, "maxLimitRequestRatio": {"cpu": "2"}}
        ]))];
        let pod = json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "50m", "memory": "2Gi"}, "limits": {"cpu": "200m", "memory": "2Gi"}}}]}});
        assert_eq!(
            validate_pod(&ranges, &pod),
            vec![
                "minimum cpu usage per Container is 100m, but request is 50m".to_string(),
                "maximum memory usage per Container is 1Gi, but limit is 2Gi".to_string(),
                "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000"
                    .to_string(),
            ]
        );
        let ok = json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"cpu": "200m", "memory": "1Gi"}}}]}});
        assert!(validate_pod(&ranges, &ok).is_empty());
        let claims = [range(
            json!([{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "2Gi"}}]),
        )];
        let big = json!({"spec": {"resources": {"requests": {"storage": "5Gi"}}}});
        assert_eq!(
            validate_claim(&claims, &big),
            vec![
                "maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi"
                    .to_string()
            ]
        );
        assert_eq!(aggregate(&["a".into(), "b".into(), "a".into()]), "[a, b]");
        assert_eq!(aggregate(&["a".into()]), "a");
    }
}
