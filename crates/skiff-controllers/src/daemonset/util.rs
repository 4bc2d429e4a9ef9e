//! The DaemonSet controller's pure parts: which nodes should run a daemon pod (selectors,
//! required node affinity, taints against tolerations), what to create and delete per node,
//! the rolling-update choice, and status.

use crate::deployment::util::resolve;
use crate::history::HASH_LABEL;
use crate::pod_util;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// The DaemonSet annotation upstream's API server keeps: the generation of its template.
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";
/// The pod label recording that template generation.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

/// Upstream's ToleratesTaint.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    if t.key
        .as_deref()
        .is_some_and(|k| !k.is_empty() && k != taint.key)
    {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// The first taint passing `filter` that no toleration tolerates (FindMatchingUntoleratedTaint).
pub fn untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    filter: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| filter(t))
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

fn exists_toleration(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Toleration::default()
    }
}

/// Upstream's AddOrUpdateDaemonPodTolerations: daemons survive node conditions that evict or
/// keep out other pods.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let mut wanted = vec![
        exists_toleration("node.kubernetes.io/not-ready", "NoExecute"),
        exists_toleration("node.kubernetes.io/unreachable", "NoExecute"),
        exists_toleration("node.kubernetes.io/disk-pressure", "NoSchedule"),
        exists_toleration("node.kubernetes.io/memory-pressure", "NoSchedule"),
        exists_toleration("node.kubernetes.io/pid-pressure", "NoSchedule"),
        exists_toleration("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        wanted.push(exists_toleration(
            "node.kubernetes.io/network-unavailable",
            "NoSchedule",
        ));
    }
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for w in wanted {
        // Same key, operator, value and effect: replace (upstream MatchToleration).
        let same = |t: &Toleration| {
            t.key == w.key && t.operator == w.operator && t.value == w.value && t.effect == w.effect
        };
        match tolerations.iter_mut().find(|t| same(t)) {
            Some(t) => *t = w,
            None => tolerations.push(w),
        }
    }
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let int = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => match (value.and_then(int), values.first().and_then(|x| int(x))) {
            (Some(v), Some(x)) => v > x,
            _ => false,
        },
        "Lt" => match (value.and_then(int), values.first().and_then(|x| int(x))) {
            (Some(v), Some(x)) => v < x,
            _ => false,
        },
        _ => false,
    }
}

/// One node selector term: every expression on labels and every field (only `metadata.name`)
/// must match; an empty term matches nothing.
pub fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.as_ref();
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.and_then(|l| l.get(&r.key)).map(String::as_str)))
        && fields.iter().all(|r| {
            r.key == "metadata.name" && requirement_matches(r, node.metadata.name.as_deref())
        })
}

/// nodeSelector and required node affinity (upstream GetRequiredNodeAffinity(pod).Match).
pub fn required_affinity_matches(spec: &PodSpec, node: &Node) -> bool {
    let labels = node.metadata.labels.as_ref();
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
    let terms = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|s| s.node_selector_terms.as_slice());
    selector_ok && terms.is_none_or(|ts| ts.iter().any(|t| term_matches(t, node)))
}

/// Whether a node should run the daemon pod, and whether a pod already there may keep running
/// (upstream NodeShouldRunDaemonPod).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eligibility {
    pub should_run: bool,
    pub should_continue_running: bool,
}

pub fn node_should_run(ds: &DaemonSet, node: &Node) -> Eligibility {
    let no = Eligibility {
        should_run: false,
        should_continue_running: false,
    };
    let node_name = node.metadata.name.as_deref().unwrap_or("");
    let mut spec = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default();
    if spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != node_name)
    {
        return no;
    }
    add_daemon_tolerations(&mut spec);
    if !required_affinity_matches(&spec, node) {
        return no;
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let blocking = untolerated(taints, tolerations, |t| {
        t.effect == "NoSchedule" || t.effect == "NoExecute"
    });
    if blocking.is_some() {
        // A scheduled daemon may stay unless a NoExecute taint would evict it.
        let evicting = untolerated(taints, tolerations, |t| t.effect == "NoExecute");
        return Eligibility {
            should_run: false,
            should_continue_running: evicting.is_none(),
        };
    }
    Eligibility {
        should_run: true,
        should_continue_running: true,
    }
}

/// The node a daemon pod is for: its node name, or the node its affinity pins it to
/// (upstream GetTargetNodeName).
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(n.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|t| {
        t.match_fields.as_ref()?.iter().find_map(|f| {
            let v = f.values.as_deref()?;
            (f.key == "metadata.name" && f.operator == "In" && v.len() == 1).then(|| v[0].clone())
        })
    })
}

/// Pins a pod to `node` through required node affinity, replacing any other required terms
/// (upstream ReplaceDaemonSetPodNodeNameNodeAffinity).
pub fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let selector = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.to_string()]),
            }]),
        }],
    };
    let mut affinity = affinity.unwrap_or_default();
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(selector);
    affinity
}

/// The DaemonSet's template generation: the annotation upstream's API server keeps, else the
/// object's generation (which only grows, so an older pod never looks current).
pub fn template_generation(ds: &DaemonSet) -> Option<i64> {
    ds.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TEMPLATE_GENERATION_ANNOTATION))
        .and_then(|v| v.parse().ok())
        .or(ds.metadata.generation)
}

/// Upstream IsPodUpdated: the pod carries the current hash, or the current template generation.
pub fn is_pod_updated(pod: &Pod, hash: &str, generation: Option<i64>) -> bool {
    let labels = pod.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    let hash_matches = !hash.is_empty() && label(HASH_LABEL) == Some(hash);
    let generation_matches =
        generation.is_some_and(|g| label(TEMPLATE_GENERATION_LABEL) == Some(&g.to_string()));
    hash_matches || generation_matches
}

fn node_name(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

/// Scheduled first, then oldest, then by name (upstream podByCreationTimestampAndPhase).
pub fn oldest_first(a: &Pod, b: &Pod) -> Ordering {
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    node_name(b)
        .is_empty()
        .cmp(&node_name(a).is_empty())
        .then_with(|| created(a).cmp(&created(b)))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// What the manage loop does on one node (upstream podsShouldBeOnNode).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NodeActions {
    pub create: bool,
    pub delete: Vec<String>,
    /// Failed pods to delete unless the node's failure backoff holds them.
    pub failed: Vec<String>,
}

pub fn pods_should_be_on_node(
    eligibility: Eligibility,
    pods: &[&Pod],
    hash: &str,
    allows_surge: bool,
) -> NodeActions {
    let mut out = NodeActions::default();
    let name = |p: &Pod| p.metadata.name.clone().unwrap_or_default();
    if eligibility.should_run && pods.is_empty() {
        out.create = true;
    } else if eligibility.should_continue_running {
        let mut running: Vec<&Pod> = Vec::new();
        for p in pods {
            if pod_util::is_terminating(p) {
                continue;
            }
            match phase(p) {
                "Failed" => out.failed.push(name(p)),
                "Succeeded" => out.delete.push(name(p)),
                _ => running.push(p),
            }
        }
        if running.len() > 1 {
            running.sort_by(|a, b| oldest_first(a, b));
            if !allows_surge {
                out.delete.extend(running[1..].iter().map(|p| name(p)));
            } else {
                // Keep the oldest updated pod and the oldest old one; the update decides.
                let mut kept_new = false;
                let mut kept_old = false;
                for p in running {
                    let updated = p.metadata.labels.as_ref().and_then(|l| l.get(HASH_LABEL))
                        == Some(&hash.to_string());
                    let slot = if updated {
                        &mut kept_new
                    } else {
                        &mut kept_old
                    };
                    if !*slot {
                        *slot = true;
                    } else {
                        out.delete.push(name(p));
                    }
                }
            }
        }
    } else {
        out.delete.extend(
            pods.iter()
                .filter(|p| !pod_util::is_terminating(p))
                .map(|p| name(p)),
        );
    }
    out
}

fn rolling(ds: &DaemonSet) -> Option<&k8s_openapi::api::apps::v1::RollingUpdateDaemonSet> {
    let s = ds.spec.as_ref()?.update_strategy.as_ref()?;
    if s.type_.as_deref().unwrap_or("RollingUpdate") != "RollingUpdate" {
        return None;
    }
    s.rolling_update.as_ref()
}

pub fn is_rolling_update(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate"
}

/// maxSurge resolved against the desired count; 0 unless rolling (upstream SurgeCount).
pub fn surge_count(ds: &DaemonSet, desired: i32) -> i32 {
    let v = rolling(ds).and_then(|r| r.max_surge.clone());
    let v = v.unwrap_or(IntOrString::Int(0));
    resolve(Some(&v), desired, true, "0").unwrap_or(0)
}

/// maxUnavailable resolved against the desired count (upstream UnavailableCount).
pub fn unavailable_count(ds: &DaemonSet, desired: i32) -> i32 {
    let v = rolling(ds).and_then(|r| r.max_unavailable.clone());
    let v = v.unwrap_or(IntOrString::Int(1));
    resolve(Some(&v), desired, true, "1").unwrap_or(1)
}

/// Whether a rolling update may run two pods on a node (upstream AllowsSurge).
pub fn allows_surge(ds: &DaemonSet) -> bool {
    surge_count(ds, 1) > 0
}

/// One node as the rolling update sees it.
#[derive(Debug)]
pub struct NodeState<'a> {
    pub name: String,
    /// False for a node that is gone or should no longer run the daemon.
    pub should_run: bool,
    pub pods: Vec<&'a Pod>,
}

/// The newest and oldest (by revision) live pods on a node; None when there are several of a
/// kind, which the manage loop cleans up first (upstream findUpdatedPodsOnNode).
fn updated_and_old<'a>(
    pods: &[&'a Pod],
    hash: &str,
    generation: Option<i64>,
) -> Option<(Option<&'a Pod>, Option<&'a Pod>)> {
    let mut new = None;
    let mut old = None;
    for p in pods.iter().filter(|p| !pod_util::is_terminating(p)) {
        let slot = if is_pod_updated(p, hash, generation) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(*p);
    }
    Some((new, old))
}

/// The rolling update's choice: old pods to delete and nodes to create new pods on
/// (upstream rollingUpdate, both the maxUnavailable and the maxSurge branches).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RollingPlan {
    pub delete: Vec<String>,
    pub create_on: Vec<String>,
}

pub struct RollingInput<'a, 'b> {
    pub nodes: &'b [NodeState<'a>],
    pub hash: &'b str,
    pub generation: Option<i64>,
    pub max_surge: i32,
    pub max_unavailable: i32,
    pub desired: i32,
    pub min_ready_seconds: i32,
    pub now: Timestamp,
}

pub fn rolling_update(input: &RollingInput<'_, '_>) -> RollingPlan {
    let available = |p: &Pod| pod_util::is_available(p, input.min_ready_seconds, input.now);
    let name = |p: &Pod| p.metadata.name.clone().unwrap_or_default();
    let mut plan = RollingPlan::default();
    if input.max_surge == 0 {
        let mut unavailable = 0;
        let mut replacements = Vec::new();
        let mut candidates = Vec::new();
        for n in input.nodes {
            let Some((new, old)) = updated_and_old(&n.pods, input.hash, input.generation) else {
                unavailable += 1;
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable += 1,
                (Some(new), None) => {
                    if !available(new) {
                        unavailable += 1;
                    }
                }
                (None, Some(old)) => {
                    if !available(old) {
                        replacements.push(name(old));
                    } else if unavailable < input.max_unavailable {
                        candidates.push(name(old));
                    }
                }
            }
        }
        let room = (input.max_unavailable - unavailable).clamp(0, candidates.len() as i32);
        plan.delete = replacements;
        plan.delete
            .extend(candidates.into_iter().take(room as usize));
        return plan;
    }
    let mut surging = 0;
    let mut available_count = 0;
    let mut allowed_new = Vec::new();
    let mut candidate_new = Vec::new();
    let mut sunset = Vec::new();
    for n in input.nodes {
        let Some((new, old)) = updated_and_old(&n.pods, input.hash, input.generation) else {
            surging += 1;
            continue;
        };
        if let Some(p) = old.or(new)
            && available(p)
        {
            available_count += 1;
        }
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                if !available(old) {
                    if !n.should_run {
                        plan.delete.push(name(old));
                    } else {
                        allowed_new.push(n.name.clone());
                    }
                } else if !n.should_run {
                    sunset.push(name(old));
                } else if surging < input.max_surge {
                    candidate_new.push(n.name.clone());
                }
            }
            (Some(new), Some(old)) => {
                if available(new) {
                    plan.delete.push(name(old));
                } else {
                    surging += 1;
                }
            }
        }
    }
    // Pods on nodes that stopped qualifying go only once others are available elsewhere.
    let deletable = (available_count - input.desired).clamp(0, sunset.len() as i32);
    plan.delete
        .extend(sunset.into_iter().take(deletable as usize));
    let room = (input.max_surge - surging).clamp(0, candidate_new.len() as i32);
    plan.create_on = allowed_new;
    plan.create_on
        .extend(candidate_new.into_iter().take(room as usize));
    plan
}

/// The status counts upstream's updateDaemonSetStatus computes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub desired: i32,
    pub current: i32,
    pub misscheduled: i32,
    pub ready: i32,
    pub updated: i32,
    pub available: i32,
}

/// Counts over `(eligibility, pods on the node)` for every node.
pub fn count(
    nodes: &[(Eligibility, Vec<&Pod>)],
    hash: &str,
    generation: Option<i64>,
    min_ready_seconds: i32,
    now: Timestamp,
) -> Counts {
    let mut c = Counts::default();
    for (e, pods) in nodes {
        let scheduled = !pods.is_empty();
        if !e.should_run {
            if scheduled {
                c.misscheduled += 1;
            }
            continue;
        }
        c.desired += 1;
        let mut sorted = pods.clone();
        sorted.sort_by(|a, b| oldest_first(a, b));
        let Some(first) = sorted.first() else {
            continue;
        };
        c.current += 1;
        if pod_util::is_ready(first) {
            c.ready += 1;
            if pod_util::is_available(first, min_ready_seconds, now) {
                c.available += 1;
            }
        }
        if is_pod_updated(first, hash, generation) {
            c.updated += 1;
        }
    }
    c
}

/// Pods grouped by their target node, in node-name order.
pub fn by_node<'a>(pods: &[&'a Pod]) -> BTreeMap<String, Vec<&'a Pod>> {
    let mut m: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for p in pods {
        if let Some(n) = target_node(p) {
            m.entry(n).or_default().push(p);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: serde_json::Value, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints},
        }))
        .expect("node literal")
    }

    fn ds(spec: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "default", "generation": 2},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": spec},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
            }
        }))
        .expect("daemonset literal")
    }

    fn pod(name: &str, node: &str, hash: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {HASH_LABEL: hash},
                "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"containers": [], "nodeName": node},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" },
                 "lastTransitionTime": "2024-01-01T00:00:00Z"}]},
        }))
        .expect("pod literal")
    }

    fn containers() -> serde_json::Value {
        json!({"containers": [{"name": "c", "image": "x"}]})
    }

    #[test]
    fn taints_keep_daemons_off_unless_tolerated() {
        let plain = ds(containers());
        let clean = node("a", json!({}), json!([]));
        assert!(node_should_run(&plain, &clean).should_run);
        let tainted = node(
            "b",
            json!({}),
            json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
        );
        let e = node_should_run(&plain, &tainted);
        assert!(!e.should_run);
        assert!(e.should_continue_running, "NoSchedule does not evict");
        let evicting = node(
            "c",
            json!({}),
            json!([{"key": "dedicated", "value": "db", "effect": "NoExecute"}]),
        );
        assert_eq!(
            node_should_run(&plain, &evicting),
            Eligibility {
                should_run: false,
                should_continue_running: false
            }
        );
        let mut spec = containers();
        spec["tolerations"] = json!([{"key": "dedicated", "operator": "Equal", "value": "db"}]);
        let tolerant = ds(spec);
        assert!(node_should_run(&tolerant, &tainted).should_run);
        assert!(node_should_run(&tolerant, &evicting).should_run);
        let mut spec = containers();
        spec["tolerations"] = json!([{"key": "dedicated", "value": "web"}]);
        assert!(
            !node_should_run(&ds(spec), &tainted).should_run,
            "value differs"
        );
        let mut spec = containers();
        spec["tolerations"] = json!([{"operator": "Exists"}]);
        assert!(
            node_should_run(&ds(spec), &evicting).should_run,
            "tolerates all"
        );
    }

    #[test]
    fn node_conditions_are_tolerated_by_default() {
        let plain = ds(containers());
        for (key, effect) in [
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/pid-pressure", "NoSchedule"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ] {
            let n = node("a", json!({}), json!([{"key": key, "effect": effect}]));
            assert!(node_should_run(&plain, &n).should_run, "{key}");
        }
        let net = node(
            "a",
            json!({}),
            json!([{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
        );
        assert!(!node_should_run(&plain, &net).should_run);
        let mut spec = containers();
        spec["hostNetwork"] = json!(true);
        assert!(node_should_run(&ds(spec), &net).should_run);
        let mut p = PodSpec::default();
        add_daemon_tolerations(&mut p);
        add_daemon_tolerations(&mut p);
        assert_eq!(p.tolerations.map(|t| t.len()), Some(6), "no duplicates");
    }

    #[test]
    fn selectors_and_affinity_choose_nodes() {
        let mut spec = containers();
        spec["nodeSelector"] = json!({"disk": "ssd"});
        spec["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["special"]}]},
        ]}}});
        let d = ds(spec);
        let fits = |n: &Node| node_should_run(&d, n).should_run;
        assert!(fits(&node(
            "n1",
            json!({"disk": "ssd", "zone": "a"}),
            json!([])
        )));
        assert!(!fits(&node(
            "n2",
            json!({"disk": "hdd", "zone": "a"}),
            json!([])
        )));
        assert!(!fits(&node(
            "n3",
            json!({"disk": "ssd", "zone": "c"}),
            json!([])
        )));
        assert!(fits(&node("special", json!({"disk": "ssd"}), json!([]))));
        let gt = NodeSelectorTerm {
            match_expressions: Some(vec![NodeSelectorRequirement {
                key: "cores".into(),
                operator: "Gt".into(),
                values: Some(vec!["4".into()]),
            }]),
            match_fields: None,
        };
        assert!(term_matches(
            &gt,
            &node("x", json!({"cores": "8"}), json!([]))
        ));
        assert!(!term_matches(
            &gt,
            &node("x", json!({"cores": "2"}), json!([]))
        ));
        assert!(!term_matches(
            &NodeSelectorTerm::default(),
            &node("x", json!({}), json!([]))
        ));
    }

    #[test]
    fn pinning_replaces_required_terms_and_is_read_back() {
        let a = pin_to_node(None, "n1");
        let mut p = pod("p", "", "h", false);
        if let Some(s) = p.spec.as_mut() {
            s.node_name = None;
            s.affinity = Some(a);
        }
        assert_eq!(target_node(&p).as_deref(), Some("n1"));
        let again = pin_to_node(p.spec.as_ref().and_then(|s| s.affinity.clone()), "n2");
        let terms = again
            .node_affinity
            .and_then(|n| n.required_during_scheduling_ignored_during_execution)
            .map(|s| s.node_selector_terms)
            .unwrap_or_default();
        assert_eq!(terms.len(), 1);
    }

    #[test]
    fn manage_creates_deletes_and_dedups() {
        let yes = Eligibility {
            should_run: true,
            should_continue_running: true,
        };
        let no = Eligibility {
            should_run: false,
            should_continue_running: false,
        };
        assert!(pods_should_be_on_node(yes, &[], "h", false).create);
        let a = pod("a", "n1", "h", true);
        let mut b = pod("b", "n1", "h", true);
        b.metadata.creation_timestamp = serde_json::from_value(json!("2024-02-01T00:00:00Z")).ok();
        let acts = pods_should_be_on_node(yes, &[&b, &a], "h", false);
        assert_eq!(acts.delete, ["b"], "the newer duplicate goes");
        assert!(!acts.create);
        let acts = pods_should_be_on_node(no, &[&a], "h", false);
        assert_eq!(acts.delete, ["a"]);
        let mut failed = pod("f", "n1", "h", false);
        if let Some(s) = failed.status.as_mut() {
            s.phase = Some("Failed".into());
        }
        let acts = pods_should_be_on_node(yes, &[&failed], "h", false);
        assert_eq!(acts.failed, ["f"]);
        assert!(acts.delete.is_empty() && !acts.create);
        // With surge, one old and one new may share a node.
        let old = pod("old", "n1", "x", true);
        let acts = pods_should_be_on_node(yes, &[&old, &a], "h", true);
        assert!(acts.delete.is_empty());
    }

    fn state<'a>(name: &str, pods: Vec<&'a Pod>) -> NodeState<'a> {
        NodeState {
            name: name.into(),
            should_run: true,
            pods,
        }
    }

    #[test]
    fn rolling_update_respects_max_unavailable() {
        let p1 = pod("p1", "n1", "old", true);
        let p2 = pod("p2", "n2", "old", true);
        let p3 = pod("p3", "n3", "old", false);
        let nodes = [
            state("n1", vec![&p1]),
            state("n2", vec![&p2]),
            state("n3", vec![&p3]),
        ];
        let input = RollingInput {
            nodes: &nodes,
            hash: "new",
            generation: None,
            max_surge: 0,
            max_unavailable: 1,
            desired: 3,
            min_ready_seconds: 0,
            now: Timestamp::now(),
        };
        let plan = rolling_update(&input);
        // The unavailable old pod is always replaced; then one healthy pod within the budget.
        assert_eq!(plan.delete, ["p3", "p1"]);
        let n1 = pod("n1new", "n1", "new", false);
        let nodes = [
            state("n1", vec![&n1]),
            state("n2", vec![&p2]),
            state("n3", vec![]),
        ];
        let plan = rolling_update(&RollingInput {
            nodes: &nodes,
            ..input
        });
        assert!(plan.delete.is_empty(), "two unavailable already: {plan:?}");
    }

    #[test]
    fn rolling_update_surges_within_max_surge() {
        let p1 = pod("p1", "n1", "old", true);
        let p2 = pod("p2", "n2", "old", true);
        let nodes = [state("n1", vec![&p1]), state("n2", vec![&p2])];
        let input = RollingInput {
            nodes: &nodes,
            hash: "new",
            generation: None,
            max_surge: 1,
            max_unavailable: 0,
            desired: 2,
            min_ready_seconds: 0,
            now: Timestamp::now(),
        };
        assert_eq!(
            rolling_update(&input),
            RollingPlan {
                delete: vec![],
                create_on: vec!["n1".into()]
            }
        );
        let n1 = pod("n1new", "n1", "new", true);
        let nodes = [state("n1", vec![&p1, &n1]), state("n2", vec![&p2])];
        let plan = rolling_update(&RollingInput {
            nodes: &nodes,
            ..input
        });
        assert_eq!(plan.delete, ["p1"], "the new pod is available");
        assert_eq!(plan.create_on, ["n2"]);
    }

    #[test]
    fn status_counts() {
        let yes = Eligibility {
            should_run: true,
            should_continue_running: true,
        };
        let no = Eligibility {
            should_run: false,
            should_continue_running: true,
        };
        let a = pod("a", "n1", "h", true);
        let b = pod("b", "n2", "old", false);
        let c = pod("c", "n3", "h", true);
        let nodes = vec![
            (yes, vec![&a]),
            (yes, vec![&b]),
            (no, vec![&c]),
            (yes, vec![]),
        ];
        let c = count(&nodes, "h", None, 0, Timestamp::now());
        assert_eq!(
            c,
            Counts {
                desired: 3,
                current: 2,
                misscheduled: 1,
                ready: 1,
                updated: 1,
                available: 1
            }
        );
    }

    #[test]
    fn max_counts_round_up() {
        let mut d = ds(containers());
        if let Some(ru) = d
            .spec
            .as_mut()
            .and_then(|s| s.update_strategy.as_mut())
            .and_then(|u| u.rolling_update.as_mut())
        {
            ru.max_unavailable = Some(IntOrString::String("25%".into()));
        }
        assert_eq!(unavailable_count(&d, 5), 2);
        assert_eq!(surge_count(&d, 5), 0);
        assert!(!allows_surge(&d));
    }
}
