//! Pod facts the workload controllers share: active, ready, available, and the order in
//! which surplus pods are deleted.

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use std::cmp::Ordering;
use std::collections::HashMap;

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Neither finished nor being deleted.
pub fn is_active(p: &Pod) -> bool {
    !matches!(phase(p), "Succeeded" | "Failed") && p.metadata.deletion_timestamp.is_none()
}

pub fn is_terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

fn ready_condition(p: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

pub fn is_ready(p: &Pod) -> bool {
    ready_condition(p).is_some_and(|c| c.status == "True")
}

/// Ready for at least `min_ready_seconds` at `now`.
pub fn is_available(p: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    let Some(c) = ready_condition(p).filter(|c| c.status == "True") else {
        return false;
    };
    if min_ready_seconds <= 0 {
        return true;
    }
    c.last_transition_time.as_ref().is_some_and(|t| {
        t.0.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(i64::from(
            min_ready_seconds,
        )))
        .is_ok_and(|ready_at| ready_at <= now)
    })
}

/// How long until a ready pod becomes available, if it is not yet.
pub fn until_available(
    p: &Pod,
    min_ready_seconds: i32,
    now: Timestamp,
) -> Option<std::time::Duration> {
    let c = ready_condition(p).filter(|c| c.status == "True")?;
    let since = c.last_transition_time.as_ref()?.0;
    let at = since
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(i64::from(
            min_ready_seconds,
        )))
        .ok()?;
    let left = at.duration_since(now);
    (left.is_positive()).then(|| left.unsigned_abs())
}

fn restarts(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

fn deletion_cost(p: &Pod) -> i64 {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("controller.kubernetes.io/pod-deletion-cost"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn node(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

/// Upstream's ActivePodsWithRanks: `Less` means delete `a` before `b`.
fn deletion_order(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize) -> Ordering {
    let phase_rank = |p: &Pod| match phase(p) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    };
    let ready_since = |p: &Pod| {
        ready_condition(p)
            .filter(|c| c.status == "True")
            .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
    };
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    // 1. Unassigned before assigned.
    (!node(a).is_empty())
        .cmp(&!node(b).is_empty())
        // 2. Pending < Unknown < Running.
        .then(phase_rank(a).cmp(&phase_rank(b)))
        // 3. Not ready before ready.
        .then(is_ready(a).cmp(&is_ready(b)))
        // 4. Pods doubled up on a node before the others.
        .then(rank_b.cmp(&rank_a))
        // 5. Lower deletion cost first.
        .then(deletion_cost(a).cmp(&deletion_cost(b)))
        // 6. Ready for a shorter time first.
        .then_with(|| match (ready_since(a), ready_since(b)) {
            (Some(x), Some(y)) if is_ready(a) && is_ready(b) => y.cmp(&x),
            _ => Ordering::Equal,
        })
        // 7. More restarts first.
        .then(restarts(b).cmp(&restarts(a)))
        // 8. Newer first.
        .then_with(|| created(b).cmp(&created(a)))
}

/// The `n` pods to delete first, in upstream's order. `related` are the pods whose
/// co-location counts (the owner's and its siblings').
pub fn pods_to_delete<'a>(pods: &[&'a Pod], related: &[&Pod], n: usize) -> Vec<&'a Pod> {
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for p in related.iter().filter(|p| is_active(p)) {
        *per_node.entry(node(p)).or_default() += 1;
    }
    let rank = |p: &Pod| {
        if node(p).is_empty() {
            0
        } else {
            per_node.get(node(p)).copied().unwrap_or(0)
        }
    };
    let mut ranked: Vec<(&Pod, usize)> = pods.iter().map(|p| (*p, rank(p))).collect();
    ranked.sort_by(|(a, ra), (b, rb)| deletion_order(a, *ra, b, *rb));
    ranked.into_iter().take(n).map(|(p, _)| p).collect()
}

/// A new pod from a template, controlled by `owner`.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    generate_name: &str,
    owner: OwnerReference,
) -> Pod {
    let md = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: md.labels,
            annotations: md.annotations,
            finalizers: md.finalizers,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// The controller reference upstream puts on what a controller creates.
pub fn controller_ref(api_version: &str, kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The generateName prefix for pods of `owner`, as upstream shortens it.
pub fn pod_prefix(owner: &str) -> String {
    let mut p = format!("{owner}-");
    if p.len() > 58 {
        p.truncate(58);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(name: &str, node: &str, phase: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: (!node.is_empty()).then(|| node.to_string()),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    last_transition_time: Some(Time(Timestamp::UNIX_EPOCH)),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn unscheduled_then_pending_then_unready_go_first() {
        let running = pod("running", "n1", "Running", true);
        let unready = pod("unready", "n1", "Running", false);
        let pending = pod("pending", "n1", "Pending", false);
        let unscheduled = pod("unscheduled", "", "Pending", false);
        let all = [&running, &unready, &pending, &unscheduled];
        let order: Vec<_> = pods_to_delete(&all, &all, 4)
            .iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(order, ["unscheduled", "pending", "unready", "running"]);
    }

    #[test]
    fn doubled_up_pods_go_before_lonely_ones() {
        let a = pod("a", "n1", "Running", true);
        let b = pod("b", "n1", "Running", true);
        let c = pod("c", "n2", "Running", true);
        let all = [&c, &a, &b];
        let first = pods_to_delete(&all, &all, 1);
        assert_ne!(first[0].metadata.name.as_deref(), Some("c"));
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = pod("a", "n1", "Running", true);
        let since = Timestamp::UNIX_EPOCH;
        let now = since
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(5))
            .expect("in range");
        assert!(is_available(&p, 0, now));
        assert!(is_available(&p, 5, now));
        assert!(!is_available(&p, 10, now));
        assert_eq!(
            until_available(&p, 10, now),
            Some(std::time::Duration::from_secs(5))
        );
        assert!(!is_available(&pod("b", "n1", "Running", false), 0, now));
    }
}
