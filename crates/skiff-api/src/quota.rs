//! Resource quota accounting, shared by the API server's ResourceQuota admission and the
//! resource quota controller: what an object uses, which quotas it falls under, and
//! upstream's messages when a quota is exceeded.

use crate::quantity::Quantity;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Resource names and amounts (upstream's `ResourceList`), sorted by name.
pub type ResourceList = BTreeMap<String, Quantity>;

/// A resource list from its JSON form; malformed amounts are left out (validation refuses
/// them before they are stored).
pub fn parse_list(v: Option<&Value>) -> ResourceList {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, q)| Some((k.clone(), Quantity::parse(q.as_str()?).ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

pub fn list_to_value(list: &ResourceList) -> Value {
    Value::Object(
        list.iter()
            .map(|(k, q)| (k.clone(), Value::String(q.to_string())))
            .collect::<Map<_, _>>(),
    )
}

/// `a=1,b=2`, as upstream prints resource lists in quota errors.
pub fn pretty(list: &ResourceList) -> String {
    list.iter()
        .map(|(k, q)| format!("{k}={q}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn add_into(into: &mut ResourceList, from: &ResourceList) {
    for (k, q) in from {
        let sum = into.get(k).copied().unwrap_or(Quantity::ZERO) + *q;
        into.insert(k.clone(), sum);
    }
}

fn max_into(into: &mut ResourceList, from: &ResourceList) {
    for (k, q) in from {
        let m = into.get(k).map_or(*q, |cur| cur.max(*q));
        into.insert(k.clone(), m);
    }
}

/// The entries of `list` whose names are in `names`.
pub fn mask<'a>(list: &ResourceList, names: impl IntoIterator<Item = &'a String>) -> ResourceList {
    names
        .into_iter()
        .filter_map(|n| Some((n.clone(), *list.get(n)?)))
        .collect()
}

/// The object-count resource name of a resource: `count/pods`, `count/deployments.apps`.
pub fn count_name(group: &str, plural: &str) -> String {
    if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    }
}

/// Which evaluator counts a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Evaluator {
    Pods,
    Services,
    Claims,
    /// Object count alone; the legacy name (`configmaps`) when the resource has one.
    Count(Option<&'static str>),
}

fn evaluator(group: &str, plural: &str) -> Evaluator {
    match (group, plural) {
        ("", "pods") => Evaluator::Pods,
        ("", "services") => Evaluator::Services,
        ("", "persistentvolumeclaims") => Evaluator::Claims,
        ("", "configmaps") => Evaluator::Count(Some("configmaps")),
        ("", "secrets") => Evaluator::Count(Some("secrets")),
        ("", "replicationcontrollers") => Evaluator::Count(Some("replicationcontrollers")),
        ("", "resourcequotas") => Evaluator::Count(Some("resourcequotas")),
        _ => Evaluator::Count(None),
    }
}

const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// Whether `name` is an extended resource (`nvidia.com/gpu`): a domain-qualified name outside
/// `kubernetes.io` that is not a `requests.` name.
fn is_extended(name: &str) -> bool {
    name.contains('/')
        && !name.contains("kubernetes.io/")
        && !name.starts_with("requests.")
        && !name.starts_with("limits.")
}

/// The names among `hard` that the evaluator of `group`/`plural` counts.
pub fn matching_resources<'a>(
    group: &str,
    plural: &str,
    hard: impl IntoIterator<Item = &'a String>,
) -> Vec<String> {
    let count = count_name(group, plural);
    let ev = evaluator(group, plural);
    hard.into_iter()
        .filter(|n| {
            let n = n.as_str();
            n == count
                || match ev {
                    Evaluator::Pods => {
                        matches!(
                            n,
                            "pods"
                                | "cpu"
                                | "memory"
                                | "ephemeral-storage"
                                | "requests.cpu"
                                | "requests.memory"
                                | "requests.ephemeral-storage"
                                | "limits.cpu"
                                | "limits.memory"
                                | "limits.ephemeral-storage"
                        ) || n.starts_with("hugepages-")
                            || n.starts_with("requests.hugepages-")
                            || n.strip_prefix("requests.").is_some_and(is_extended)
                    }
                    Evaluator::Services => matches!(
                        n,
                        "services" | "services.nodeports" | "services.loadbalancers"
                    ),
                    Evaluator::Claims => {
                        matches!(n, "persistentvolumeclaims" | "requests.storage")
                            || n.contains(STORAGE_CLASS_SUFFIX)
                    }
                    Evaluator::Count(legacy) => legacy == Some(n),
                }
        })
        .cloned()
        .collect()
}

/// Whether a pod still counts against compute quota: not finished, and not past its
/// deletion grace period (`now` in seconds since the epoch).
fn pod_counts(pod: &Value, now: i64) -> bool {
    if matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    ) {
        return false;
    }
    let deleted_at = pod
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let grace = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    match (deleted_at, grace) {
        (Some(at), Some(grace)) => now <= at.as_second().saturating_add(grace),
        _ => true,
    }
}

fn container_list(c: &Value, field: &str) -> ResourceList {
    parse_list(c.pointer(&format!("/resources/{field}")))
}

/// The pod's effective requests or limits (upstream's `PodRequests`/`PodLimits`): the sum of
/// its containers and restartable init containers, at least each init container's with the
/// sidecars started before it, plus the pod's overhead.
pub fn pod_resources(spec: &Value, field: &str) -> ResourceList {
    let mut total = ResourceList::new();
    for c in spec
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add_into(&mut total, &container_list(c, field));
    }
    let mut sidecars = ResourceList::new();
    let mut init_max = ResourceList::new();
    for c in spec
        .get("initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let own = container_list(c, field);
        let effective = if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            add_into(&mut total, &own);
            add_into(&mut sidecars, &own);
            sidecars.clone()
        } else {
            let mut e = own;
            add_into(&mut e, &sidecars);
            e
        };
        max_into(&mut init_max, &effective);
    }
    max_into(&mut total, &init_max);
    add_into(&mut total, &parse_list(spec.get("overhead")));
    total
}

fn pod_usage(pod: &Value, now: i64, usage: &mut ResourceList) {
    if !pod_counts(pod, now) {
        return;
    }
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let requests = pod_resources(spec, "requests");
    let limits = pod_resources(spec, "limits");
    usage.insert("pods".into(), Quantity::count(1));
    for r in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(q) = requests.get(r) {
            usage.insert(r.into(), *q);
            usage.insert(format!("requests.{r}"), *q);
        }
        if let Some(q) = limits.get(r) {
            usage.insert(format!("limits.{r}"), *q);
        }
    }
    for (name, q) in &requests {
        if name.starts_with("hugepages-") {
            usage.insert(name.clone(), *q);
            usage.insert(format!("requests.{name}"), *q);
        } else if is_extended(name) {
            usage.insert(format!("requests.{name}"), *q);
        }
    }
}

fn service_usage(svc: &Value, usage: &mut ResourceList) {
    usage.insert("services".into(), Quantity::count(1));
    let spec = svc.get("spec").unwrap_or(&Value::Null);
    let ports = spec
        .get("ports")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let ports = i64::try_from(ports).unwrap_or(i64::MAX);
    match spec.get("type").and_then(Value::as_str) {
        Some("NodePort") => {
            usage.insert("services.nodeports".into(), Quantity::count(ports));
        }
        Some("LoadBalancer") => {
            let allocated = spec
                .get("allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            usage.insert(
                "services.nodeports".into(),
                Quantity::count(if allocated { ports } else { 0 }),
            );
            usage.insert("services.loadbalancers".into(), Quantity::count(1));
        }
        _ => {}
    }
}

fn claim_usage(pvc: &Value, usage: &mut ResourceList) {
    usage.insert("persistentvolumeclaims".into(), Quantity::count(1));
    let class = pvc
        .pointer("/spec/storageClassName")
        .and_then(Value::as_str)
        .or_else(|| {
            pvc.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
                .and_then(Value::as_str)
        })
        .filter(|c| !c.is_empty());
    if let Some(class) = class {
        usage.insert(
            format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
            Quantity::count(1),
        );
    }
    let storage = pvc
        .pointer("/spec/resources/requests/storage")
        .and_then(Value::as_str)
        .and_then(|q| Quantity::parse(q).ok());
    if let Some(q) = storage {
        usage.insert("requests.storage".into(), q);
        if let Some(class) = class {
            usage.insert(format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"), q);
        }
    }
}

/// What `obj` of `group`/`plural` uses, `now` in seconds since the epoch.
pub fn usage(group: &str, plural: &str, obj: &Value, now: i64) -> ResourceList {
    let mut u = ResourceList::new();
    u.insert(count_name(group, plural), Quantity::count(1));
    match evaluator(group, plural) {
        Evaluator::Pods => pod_usage(obj, now, &mut u),
        Evaluator::Services => service_usage(obj, &mut u),
        Evaluator::Claims => claim_usage(obj, &mut u),
        Evaluator::Count(Some(legacy)) => {
            u.insert(legacy.into(), Quantity::count(1));
        }
        Evaluator::Count(None) => {}
    }
    u
}

/// A pod's QoS class from its spec (upstream's `GetPodQOS`): BestEffort without positive cpu
/// or memory requests or limits, Guaranteed when every container limits both and the totals
/// of requests and limits are equal, Burstable otherwise.
pub fn pod_qos(spec: Option<&Value>) -> &'static str {
    let mut requests = ResourceList::new();
    let mut limits = ResourceList::new();
    let mut guaranteed = true;
    for c in ["containers", "initContainers"]
        .iter()
        .filter_map(|f| spec.and_then(|s| s.get(*f)).and_then(Value::as_array))
        .flatten()
    {
        let positive = |field: &str| -> ResourceList {
            container_list(c, field)
                .into_iter()
                .filter(|(k, q)| {
                    matches!(k.as_str(), "cpu" | "memory") && !q.is_negative() && !q.is_zero()
                })
                .collect()
        };
        let req = positive("requests");
        let lim = positive("limits");
        add_into(&mut requests, &req);
        if lim.len() < 2 {
            guaranteed = false;
        }
        add_into(&mut limits, &lim);
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests.iter().all(|(k, q)| limits.get(k) == Some(q))
        && requests.len() == limits.len()
    {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The scope requirements of a quota: its `scopes` (each must exist) and its
/// `scopeSelector` expressions, as `(scopeName, operator, values)`.
fn scope_requirements(quota: &Value) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<(String, String, Vec<String>)> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| (s.to_string(), "Exists".to_string(), Vec::new()))
        .collect();
    for e in quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let str_of = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        out.push((str_of("scopeName"), str_of("operator"), values));
    }
    out
}

fn pod_matches_scope(pod: &Value, scope: &str, op: &str, values: &[String]) -> bool {
    let spec = pod.get("spec");
    let terminating = spec
        .and_then(|s| s.get("activeDeadlineSeconds"))
        .and_then(Value::as_i64)
        .is_some_and(|d| d >= 0);
    match scope {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => pod_qos(spec) == "BestEffort",
        "NotBestEffort" => pod_qos(spec) != "BestEffort",
        "PriorityClass" => {
            let class = spec
                .and_then(|s| s.get("priorityClassName"))
                .and_then(Value::as_str)
                .unwrap_or("");
            match op {
                "In" => values.iter().any(|v| v == class),
                "NotIn" => !values.iter().any(|v| v == class),
                "Exists" => !class.is_empty(),
                "DoesNotExist" => class.is_empty(),
                _ => false,
            }
        }
        "CrossNamespacePodAffinity" => ["podAffinity", "podAntiAffinity"].iter().any(|a| {
            let Some(aff) = spec.and_then(|s| s.pointer(&format!("/affinity/{a}"))) else {
                return false;
            };
            let required = aff
                .get("requiredDuringSchedulingIgnoredDuringExecution")
                .and_then(Value::as_array)
                .into_iter()
                .flatten();
            let preferred = aff
                .get("preferredDuringSchedulingIgnoredDuringExecution")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|w| w.get("podAffinityTerm"));
            required.chain(preferred).any(|t| {
                t.get("namespaces")
                    .and_then(Value::as_array)
                    .is_some_and(|n| !n.is_empty())
                    || t.get("namespaceSelector").is_some_and(|s| !s.is_null())
            })
        }),
        _ => false,
    }
}

/// Whether `quota` covers `obj`: its status names a resource the object's evaluator counts,
/// and the object is in every scope (only pods have scopes; other objects are in none).
pub fn matches(quota: &Value, group: &str, plural: &str, obj: &Value) -> bool {
    let hard = parse_list(quota.pointer("/status/hard"));
    !matching_resources(group, plural, hard.keys()).is_empty()
        && in_scopes(quota, group, plural, obj)
}

/// Whether `obj` is in every scope of `quota` (only pods have scopes; other objects are in
/// none, so a scoped quota counts nothing else).
pub fn in_scopes(quota: &Value, group: &str, plural: &str, obj: &Value) -> bool {
    scope_requirements(quota).iter().all(|(scope, op, values)| {
        evaluator(group, plural) == Evaluator::Pods && pod_matches_scope(obj, scope, op, values)
    })
}

/// What the objects of one resource use together, counted for the names in `hard`.
pub fn total<'a>(
    quota: &Value,
    group: &str,
    plural: &str,
    objects: impl IntoIterator<Item = &'a Value>,
    hard: &ResourceList,
    now: i64,
) -> ResourceList {
    let names = matching_resources(group, plural, hard.keys());
    let mut sum: ResourceList = names.iter().map(|n| (n.clone(), Quantity::ZERO)).collect();
    for obj in objects {
        if in_scopes(quota, group, plural, obj) {
            add_into(&mut sum, &mask(&usage(group, plural, obj, now), &names));
        }
    }
    sum
}

/// Upstream's requirement that a pod under a quota of cpu or memory name those resources for
/// every container: the message after "failed quota: NAME: ", or None when it does.
pub fn missing_requirements(
    required: &[String],
    group: &str,
    plural: &str,
    obj: &Value,
) -> Option<String> {
    if evaluator(group, plural) != Evaluator::Pods {
        return None;
    }
    const CHECKED: [&str; 6] = [
        "cpu",
        "memory",
        "requests.cpu",
        "requests.memory",
        "limits.cpu",
        "limits.memory",
    ];
    let required: Vec<&str> = required
        .iter()
        .map(String::as_str)
        .filter(|r| CHECKED.contains(r))
        .collect();
    let mut missing: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for list in ["containers", "initContainers"] {
        for c in obj
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let has =
                |field: &str, r: &str| c.pointer(&format!("/resources/{field}/{r}")).is_some();
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            for r in &required {
                let present = match *r {
                    "cpu" | "requests.cpu" => has("requests", "cpu"),
                    "memory" | "requests.memory" => has("requests", "memory"),
                    "limits.cpu" => has("limits", "cpu"),
                    _ => has("limits", "memory"),
                };
                if !present {
                    let names = missing.entry(r).or_default();
                    if !names.contains(&name) {
                        names.push(name.clone());
                    }
                }
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .into_iter()
        .map(|(r, mut names)| {
            names.sort();
            format!("{r} for: {}", names.join(","))
        })
        .collect();
    Some(format!("must specify {}", parts.join("; ")))
}

/// Adds `requested` to the quota's `status.used` when that stays within `status.hard`;
/// otherwise upstream's "exceeded quota" message.
pub fn charge(quota: &mut Value, name: &str, requested: &ResourceList) -> Result<(), String> {
    let hard = parse_list(quota.pointer("/status/hard"));
    let used = parse_list(quota.pointer("/status/used"));
    let requested = mask(requested, hard.keys());
    if requested.is_empty() {
        return Ok(());
    }
    let mut new_used = used.clone();
    add_into(&mut new_used, &requested);
    let exceeded: Vec<String> = requested
        .keys()
        .filter(|k| new_used.get(*k).is_some_and(|u| Some(u) > hard.get(*k)))
        .cloned()
        .collect();
    if !exceeded.is_empty() {
        return Err(format!(
            "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
            pretty(&mask(&requested, &exceeded)),
            pretty(&mask(&used, &exceeded)),
            pretty(&mask(&hard, &exceeded)),
        ));
    }
    if let Some(status) = quota.get_mut("status").and_then(Value::as_object_mut) {
        status.insert("used".into(), list_to_value(&new_used));
    }
    Ok(())
}

/// Takes `released` back out of the quota's `status.used` (a charged create that failed).
pub fn release(quota: &mut Value, released: &ResourceList) {
    let hard = parse_list(quota.pointer("/status/hard"));
    let mut used = parse_list(quota.pointer("/status/used"));
    for (k, q) in mask(released, hard.keys()) {
        if let Some(u) = used.get_mut(&k) {
            let left = *u - q;
            *u = if left.is_negative() {
                Quantity::ZERO
            } else {
                left
            };
        }
    }
    if let Some(status) = quota.get_mut("status").and_then(Value::as_object_mut) {
        status.insert("used".into(), list_to_value(&used));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(v: Value) -> ResourceList {
        parse_list(Some(&v))
    }

    #[test]
    fn pod_usage_counts_requests_limits_and_init_containers() {
        let pod = json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "200m"}}},
                {"name": "b", "resources": {"requests": {"cpu": "300m", "nvidia.com/gpu": "1"}}}
            ],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1"}}}]
        }});
        let u = usage("", "pods", &pod, 0);
        assert_eq!(
            u,
            list(
                json!({"count/pods": "1", "pods": "1", "cpu": "1", "requests.cpu": "1",
                "limits.cpu": "200m", "memory": "64Mi", "requests.memory": "64Mi",
                "requests.nvidia.com/gpu": "1"})
            )
        );
        let done = json!({"spec": pod["spec"], "status": {"phase": "Succeeded"}});
        assert_eq!(
            usage("", "pods", &done, 0),
            list(json!({"count/pods": "1"}))
        );
    }

    #[test]
    fn services_claims_and_counts() {
        let svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}});
        assert_eq!(
            usage("", "services", &svc, 0),
            list(json!({"count/services": "1", "services": "1", "services.nodeports": "2"}))
        );
        let pvc = json!({"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}}});
        let u = usage("", "persistentvolumeclaims", &pvc, 0);
        assert_eq!(u["requests.storage"].to_string(), "1Gi");
        assert_eq!(
            u["fast.storageclass.storage.k8s.io/requests.storage"].to_string(),
            "1Gi"
        );
        assert_eq!(
            usage("apps", "deployments", &json!({}), 0),
            list(json!({"count/deployments.apps": "1"}))
        );
        assert_eq!(
            usage("", "configmaps", &json!({}), 0),
            list(json!({"count/configmaps": "1", "configmaps": "1"}))
        );
    }

    #[test]
    fn scopes_select_pods() {
        let quota =
            |scopes: Value| json!({"spec": {"scopes": scopes}, "status": {"hard": {"pods": "1"}}});
        let best_effort = json!({"spec": {"containers": [{"name": "c"}]}});
        let burstable = json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}});
        assert!(matches(
            &quota(json!(["BestEffort"])),
            "",
            "pods",
            &best_effort
        ));
        assert!(!matches(
            &quota(json!(["BestEffort"])),
            "",
            "pods",
            &burstable
        ));
        assert!(matches(
            &quota(json!(["NotBestEffort"])),
            "",
            "pods",
            &burstable
        ));
        assert!(matches(&quota(json!([])), "", "pods", &burstable));
        // A quota on pods does not cover configmaps; a scoped one covers nothing else.
        assert!(!matches(&quota(json!([])), "", "configmaps", &json!({})));
        let pc = json!({"spec": {"scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}, "status": {"hard": {"pods": "1"}}});
        let high = json!({"spec": {"priorityClassName": "high"}});
        assert!(matches(&pc, "", "pods", &high));
        assert!(!matches(&pc, "", "pods", &best_effort));
    }

    #[test]
    fn charges_within_hard_and_reports_excess_as_upstream() {
        let mut q = json!({"status": {"hard": {"pods": "2", "requests.cpu": "1"}, "used": {"pods": "1", "requests.cpu": "500m"}}});
        let pod = list(json!({"pods": "1", "requests.cpu": "500m", "count/pods": "1"}));
        assert_eq!(charge(&mut q, "q1", &pod), Ok(()));
        assert_eq!(
            q["status"]["used"],
            json!({"pods": "2", "requests.cpu": "1"})
        );
        assert_eq!(
            charge(&mut q, "q1", &pod),
            Err("exceeded quota: q1, requested: pods=1,requests.cpu=500m, used: pods=2,requests.cpu=1, limited: pods=2,requests.cpu=1".into())
        );
        release(&mut q, &pod);
        assert_eq!(
            q["status"]["used"],
            json!({"pods": "1", "requests.cpu": "500m"})
        );
    }

    #[test]
    fn pods_must_name_quota_constrained_resources() {
        let pod = json!({"spec": {"containers": [{"name": "b"}, {"name": "a", "resources": {"requests": {"cpu": "1"}}}]}});
        let req = vec![
            "limits.memory".to_string(),
            "requests.cpu".to_string(),
            "pods".to_string(),
        ];
        assert_eq!(
            missing_requirements(&req, "", "pods", &pod).as_deref(),
            Some("must specify limits.memory for: a,b; requests.cpu for: b")
        );
        assert_eq!(
            missing_requirements(&["pods".to_string()], "", "pods", &pod),
            None
        );
    }
}
