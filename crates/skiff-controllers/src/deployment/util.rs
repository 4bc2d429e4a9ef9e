//! The Deployment controller's pure arithmetic: pod-template hashes, surge and unavailability
//! bounds, how far to scale each ReplicaSet, revisions and status.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const HASH_LABEL: &str = "pod-template-hash";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

pub fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

/// Resolves an int-or-percent against `total`, rounding up or down as upstream does.
pub fn resolve(
    v: Option<&IntOrString>,
    total: i32,
    round_up: bool,
    default: &str,
) -> Result<i32, String> {
    let v = match v {
        Some(v) => v.clone(),
        None => IntOrString::String(default.to_string()),
    };
    match v {
        IntOrString::Int(i) => Ok(i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let num = pct * i64::from(total);
            let r = if round_up {
                (num + 99) / 100
            } else {
                num / 100
            };
            Ok(r as i32)
        }
    }
}

/// (maxSurge, maxUnavailable) of a rolling update; never both zero.
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    if is_recreate(d) {
        return (0, 0);
    }
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let n = replicas(d);
    let surge = resolve(ru.and_then(|r| r.max_surge.as_ref()), n, true, "25%").unwrap_or(0);
    let unavailable =
        resolve(ru.and_then(|r| r.max_unavailable.as_ref()), n, false, "25%").unwrap_or(0);
    if surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable)
}

/// maxUnavailable bounded by the replica count.
pub fn max_unavailable(d: &Deployment) -> i32 {
    let (_, u) = fenceposts(d);
    let n = replicas(d);
    if is_recreate(d) || n == 0 {
        return 0;
    }
    u.min(n)
}

/// 32-bit FNV-1a.
fn fnv32a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Upstream's rand.SafeEncodeString alphabet: no vowels, no confusable characters.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The pod-template-hash of a template (and collision count), as a short safe string.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(template).unwrap_or_default();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(c.to_string().as_bytes());
    }
    let h = fnv32a(&bytes);
    h.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// The template without the pod-template-hash label, for comparing a ReplicaSet's template
/// with a Deployment's.
pub fn without_hash(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    if let Some(md) = t.metadata.as_mut()
        && let Some(l) = md.labels.as_mut()
    {
        l.remove(HASH_LABEL);
        if l.is_empty() {
            md.labels = None;
        }
    }
    t
}

/// Whether two templates are equal apart from the hash label (upstream's EqualIgnoreHash).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let norm = |t: &PodTemplateSpec| serde_json::to_value(without_hash(t)).unwrap_or_default();
    norm(a) == norm(b)
}

pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn created(rs: &ReplicaSet) -> Option<Timestamp> {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Oldest first, by creation time then name.
pub fn sort_oldest_first(rss: &mut [ReplicaSet]) {
    rss.sort_by(|a, b| {
        created(a)
            .cmp(&created(b))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// The ReplicaSet whose template matches the Deployment's (the oldest if several do).
pub fn find_new(d: &Deployment, rss: &[ReplicaSet]) -> Option<usize> {
    let t = d.spec.as_ref()?.template.clone();
    let mut idx: Vec<usize> = (0..rss.len()).collect();
    idx.sort_by(|&a, &b| {
        created(&rss[a])
            .cmp(&created(&rss[b]))
            .then_with(|| rss[a].metadata.name.cmp(&rss[b].metadata.name))
    });
    idx.into_iter().find(|&i| {
        rss[i]
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|rt| equal_ignore_hash(rt, &t))
    })
}

/// Replicas the new ReplicaSet should have during a rolling update (upstream NewRSNewReplicas).
pub fn new_rs_replicas(d: &Deployment, all: &[&ReplicaSet], new_rs_replicas_now: i32) -> i32 {
    let n = replicas(d);
    if is_recreate(d) {
        return n;
    }
    let (surge, _) = fenceposts(d);
    let current: i32 = all.iter().map(|r| rs_replicas(r)).sum();
    let max_total = n + surge;
    if current >= max_total {
        return new_rs_replicas_now;
    }
    let up = (max_total - current).min((n - new_rs_replicas_now).max(0));
    new_rs_replicas_now + up
}

/// Annotations a ReplicaSet carries from its Deployment: the user's, minus kubectl's record
/// of the last apply and the controller's own.
pub fn copied_annotations(d: &Deployment) -> BTreeMap<String, String> {
    d.metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| {
            k != LAST_APPLIED
                && k != REVISION
                && k != REVISION_HISTORY
                && k != DESIRED_REPLICAS
                && k != MAX_REPLICAS
        })
        .collect()
}

/// Proportional scaling (upstream's getReplicaSetFraction): how much `rs` grows or shrinks
/// when the deployment's size changes mid-rollout.
pub fn proportion(
    rs: &ReplicaSet,
    d: &Deployment,
    to_add: i32,
    added: i32,
    status_replicas: i32,
) -> i32 {
    let r = rs_replicas(rs);
    if r == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = fraction(rs, d, status_replicas);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

fn fraction(rs: &ReplicaSet, d: &Deployment, status_replicas: i32) -> i32 {
    let n = replicas(d);
    if n == 0 {
        return -rs_replicas(rs);
    }
    let (surge, _) = fenceposts(d);
    let max = n + surge;
    let annotated = rs
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(MAX_REPLICAS))
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(status_replicas);
    if annotated <= 0 {
        return 0;
    }
    let size = f64::from(rs_replicas(rs)) * f64::from(max) / f64::from(annotated);
    size.round() as i32 - rs_replicas(rs)
}

/// The status of a deployment from its ReplicaSets (upstream calculateStatus), conditions
/// excluded.
pub fn calculate_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> DeploymentStatus {
    let available: i32 = all.iter().map(|r| rs_available(r)).sum();
    let total: i32 = all.iter().map(|r| rs_status_replicas(r)).sum();
    let n = replicas(d);
    let old = d.status.clone().unwrap_or_default();
    DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(total),
        updated_replicas: Some(new_rs.map(rs_status_replicas).unwrap_or(0)),
        ready_replicas: Some(all.iter().map(|r| rs_ready(r)).sum()),
        available_replicas: Some(available),
        unavailable_replicas: Some((n - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions,
        terminating_replicas: None,
    }
}

/// All replicas updated, available and no old ones left (upstream DeploymentComplete).
pub fn complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let n = replicas(d);
    s.updated_replicas == Some(n)
        && s.replicas == Some(n)
        && s.available_replicas == Some(n)
        && s.observed_generation >= d.metadata.generation
}

/// Progress since the last status (upstream DeploymentProgressing).
pub fn progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let new_old = new.replicas.unwrap_or(0) - new.updated_replicas.unwrap_or(0);
    new.updated_replicas.unwrap_or(0) > old.updated_replicas.unwrap_or(0)
        || new_old < old_old
        || new.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
        || new.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0)
}

pub fn condition<'a>(s: &'a DeploymentStatus, ty: &str) -> Option<&'a DeploymentCondition> {
    s.conditions.as_ref()?.iter().find(|c| c.type_ == ty)
}

pub fn new_condition(
    ty: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: ty.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Sets a condition, keeping lastTransitionTime when its status does not change (and the
/// whole condition when nothing but the timestamps would).
pub fn set_condition(s: &mut DeploymentStatus, mut c: DeploymentCondition) {
    let conds = s.conditions.get_or_insert_with(Vec::new);
    if let Some(cur) = conds.iter_mut().find(|x| x.type_ == c.type_) {
        if cur.status == c.status && cur.reason == c.reason && cur.message == c.message {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
        *cur = c;
    } else {
        conds.push(c);
    }
}

pub fn remove_condition(s: &mut DeploymentStatus, ty: &str) {
    if let Some(c) = s.conditions.as_mut() {
        c.retain(|x| x.type_ != ty);
    }
}

/// Whether the deployment ran out of time to progress (upstream DeploymentTimedOut).
pub fn timed_out(d: &Deployment, s: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(deadline) = d.spec.as_ref().and_then(|s| s.progress_deadline_seconds) else {
        return false;
    };
    let Some(c) = condition(s, "Progressing") else {
        return false;
    };
    if c.reason.as_deref() == Some("ProgressDeadlineExceeded") {
        return true;
    }
    let Some(from) = c.last_update_time.as_ref().map(|t| t.0) else {
        return false;
    };
    from.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(i64::from(
        deadline,
    )))
    .is_ok_and(|at| at < now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, RollingUpdateDeployment,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn deployment(n: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(n),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavailable),
                    }),
                }),
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        }
    }

    fn rs(n: i32) -> ReplicaSet {
        ReplicaSet {
            spec: Some(ReplicaSetSpec {
                replicas: Some(n),
                ..ReplicaSetSpec::default()
            }),
            ..ReplicaSet::default()
        }
    }

    #[test]
    fn percentages_round_like_upstream() {
        let d = deployment(
            10,
            IntOrString::String("25%".into()),
            IntOrString::String("25%".into()),
        );
        assert_eq!(fenceposts(&d), (3, 2));
        let d = deployment(1, IntOrString::Int(0), IntOrString::Int(0));
        assert_eq!(fenceposts(&d), (0, 1), "never both zero");
        assert!(resolve(Some(&IntOrString::String("x%".into())), 10, true, "25%").is_err());
    }

    #[test]
    fn new_replica_set_grows_within_surge() {
        let d = deployment(10, IntOrString::Int(2), IntOrString::Int(0));
        let old = rs(10);
        let new = rs(0);
        assert_eq!(new_rs_replicas(&d, &[&old, &new], 0), 2);
        let new = rs(2);
        assert_eq!(
            new_rs_replicas(&d, &[&old, &new], 2),
            2,
            "at the surge bound"
        );
        let old = rs(8);
        assert_eq!(new_rs_replicas(&d, &[&old, &new], 2), 4);
    }

    #[test]
    fn hash_ignores_its_own_label_and_changes_with_collisions() {
        let mut t = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..ObjectMeta::default()
            }),
            spec: None,
        };
        let h = template_hash(&t, None);
        assert!(h.bytes().all(|b| ALPHANUMS.contains(&b)));
        assert_ne!(h, template_hash(&t, Some(1)));
        let plain = t.clone();
        if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            l.insert(HASH_LABEL.into(), h);
        }
        assert!(equal_ignore_hash(&plain, &t));
    }

    #[test]
    fn proportional_scaling_keeps_ratios() {
        // 10 → 20 replicas while two sets hold 5 and 5 (annotated max 12 = 10 + surge 2).
        let d = deployment(20, IntOrString::Int(2), IntOrString::Int(0));
        let mut a = rs(6);
        a.metadata.annotations = Some([(MAX_REPLICAS.to_string(), "12".to_string())].into());
        let add = proportion(&a, &d, 10, 0, 12);
        assert_eq!(add, 5, "6 × 22/12 ≈ 11");
    }
}
