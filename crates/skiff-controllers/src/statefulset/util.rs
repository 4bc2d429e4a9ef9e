//! The StatefulSet controller's pure parts: ordinals and stable identities, claims from
//! volumeClaimTemplates and their retention owner references, health, which pods a rolling
//! update replaces, and status counts.

use crate::deployment::util::resolve;
use crate::history::HASH_LABEL;
use crate::pod_util;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// The set name and ordinal in a pod name `<set>-<ordinal>` (upstream getParentNameAndOrdinal).
pub fn parent_and_ordinal(name: &str) -> Option<(&str, i32)> {
    let (parent, digits) = name.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, digits.parse().ok()?))
}

pub fn ordinal(pod: &Pod) -> Option<i32> {
    parent_and_ordinal(pod.metadata.name.as_deref()?).map(|(_, o)| o)
}

/// Whether a pod's name makes it a member of `set` (upstream isMemberOf).
pub fn is_member(set_name: &str, pod: &Pod) -> bool {
    pod.metadata
        .name
        .as_deref()
        .and_then(parent_and_ordinal)
        .is_some_and(|(p, _)| p == set_name)
}

pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0)
}

pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
}

pub fn in_range(set: &StatefulSet, ordinal: i32) -> bool {
    let start = start_ordinal(set);
    ordinal >= start && ordinal < start + replicas(set)
}

pub fn pod_name(set_name: &str, ordinal: i32) -> String {
    format!("{set_name}-{ordinal}")
}

pub fn claim_name(template: &str, set_name: &str, ordinal: i32) -> String {
    format!("{template}-{set_name}-{ordinal}")
}

pub fn is_parallel(set: &StatefulSet) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| s.pod_management_policy.as_deref())
        == Some("Parallel")
}

pub fn is_on_delete(set: &StatefulSet) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        == Some("OnDelete")
}

pub fn min_ready_seconds(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

fn rolling(
    set: &StatefulSet,
) -> Option<&k8s_openapi::api::apps::v1::RollingUpdateStatefulSetStrategy> {
    set.spec
        .as_ref()?
        .update_strategy
        .as_ref()?
        .rolling_update
        .as_ref()
}

pub fn partition(set: &StatefulSet) -> i32 {
    rolling(set).and_then(|r| r.partition).unwrap_or(0)
}

/// maxUnavailable of a rolling update: 1 by default, percentages round down, never below 1
/// (upstream getStatefulSetMaxUnavailable).
pub fn max_unavailable(set: &StatefulSet) -> i32 {
    let v = rolling(set)
        .and_then(|r| r.max_unavailable.clone())
        .unwrap_or(IntOrString::Int(1));
    resolve(Some(&v), replicas(set), false, "1")
        .unwrap_or(1)
        .max(1)
}

/// The claims of the pod with `ordinal`, by template name (upstream getPersistentVolumeClaims).
pub fn claims(set: &StatefulSet, ordinal: i32) -> Vec<(String, PersistentVolumeClaim)> {
    let Some(spec) = set.spec.as_ref() else {
        return Vec::new();
    };
    let set_name = set.metadata.name.as_deref().unwrap_or("");
    let selector_labels = spec.selector.match_labels.clone().unwrap_or_default();
    spec.volume_claim_templates
        .iter()
        .flatten()
        .map(|t| {
            let template_name = t.metadata.name.clone().unwrap_or_default();
            let mut claim = t.clone();
            let mut labels = claim.metadata.labels.take().unwrap_or_default();
            labels.extend(selector_labels.clone());
            claim.metadata = ObjectMeta {
                name: Some(claim_name(&template_name, set_name, ordinal)),
                namespace: set.metadata.namespace.clone(),
                labels: Some(labels),
                annotations: claim.metadata.annotations.take(),
                ..ObjectMeta::default()
            };
            claim.status = None;
            (template_name, claim)
        })
        .collect()
}

/// Points the pod's volumes named like claim templates at the pod's claims (upstream
/// updateStorage).
pub fn update_storage(set: &StatefulSet, pod: &mut Pod, ordinal: i32) {
    let claims = claims(set, ordinal);
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    let mut volumes: Vec<Volume> = claims
        .iter()
        .map(|(name, c)| Volume {
            name: name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: c.metadata.name.clone().unwrap_or_default(),
                read_only: Some(false),
            }),
            ..Volume::default()
        })
        .collect();
    for v in spec.volumes.take().unwrap_or_default() {
        if !claims.iter().any(|(n, _)| *n == v.name) {
            volumes.push(v);
        }
    }
    spec.volumes = (!volumes.is_empty()).then_some(volumes);
}

/// Sets the identity labels (upstream updateIdentity).
pub fn update_identity(pod: &mut Pod, ordinal: i32) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let labels = pod.metadata.labels.get_or_insert_with(Default::default);
    labels.insert(POD_NAME_LABEL.into(), name);
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
}

/// A new pod for `ordinal` from `template` (the template of the revision it belongs to),
/// labelled with that revision (upstream newStatefulSetPod and setPodRevision).
pub fn new_pod(
    set: &StatefulSet,
    template: &PodTemplateSpec,
    ordinal: i32,
    revision: &str,
    owner: OwnerReference,
) -> Pod {
    let set_name = set.metadata.name.as_deref().unwrap_or("");
    let ns = set.metadata.namespace.as_deref().unwrap_or("");
    let mut pod = pod_util::pod_from_template(template, ns, "", owner);
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(pod_name(set_name, ordinal));
    update_identity(&mut pod, ordinal);
    let service = set.spec.as_ref().and_then(|s| s.service_name.clone());
    if let Some(spec) = pod.spec.as_mut() {
        spec.hostname = pod.metadata.name.clone();
        spec.subdomain = service.filter(|s| !s.is_empty());
    }
    update_storage(set, &mut pod, ordinal);
    pod.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.into(), revision.to_string());
    pod
}

/// Whether the pod of `ordinal` starts at the current revision rather than the update revision
/// (upstream newVersionedStatefulSetPod, its operator precedence included).
pub fn uses_current_revision(set: &StatefulSet, ordinal: i32, current_replicas: i32) -> bool {
    let start = start_ordinal(set);
    let rolling_type = set
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    let ru = rolling(set);
    (rolling_type && ru.is_none() && ordinal < start + current_replicas)
        || ru.is_some_and(|r| ordinal < start + r.partition.unwrap_or(0))
}

pub fn identity_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let set_name = set.metadata.name.as_deref().unwrap_or("");
    let Some(name) = pod.metadata.name.as_deref() else {
        return false;
    };
    let Some((parent, ord)) = parent_and_ordinal(name) else {
        return false;
    };
    let label = |k: &str| {
        pod.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(k))
            .map(String::as_str)
    };
    parent == set_name
        && pod.metadata.namespace == set.metadata.namespace
        && label(POD_NAME_LABEL) == Some(name)
        && label(POD_INDEX_LABEL) == Some(ord.to_string().as_str())
}

pub fn storage_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let Some(ord) = ordinal(pod) else {
        return false;
    };
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    claims(set, ord).iter().all(|(template, c)| {
        volumes.iter().any(|v| {
            v.name == *template
                && v.persistent_volume_claim.as_ref().map(|p| &p.claim_name)
                    == c.metadata.name.as_ref()
        })
    })
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Known to the API server: the server gives every pod a phase (upstream isCreated).
pub fn is_created(p: &Pod) -> bool {
    !phase(p).is_empty()
}

pub fn is_failed_or_succeeded(p: &Pod) -> bool {
    matches!(phase(p), "Failed" | "Succeeded")
}

pub fn is_pending(p: &Pod) -> bool {
    phase(p) == "Pending"
}

pub fn is_running_and_ready(p: &Pod) -> bool {
    phase(p) == "Running" && pod_util::is_ready(p)
}

pub fn is_running_and_available(p: &Pod, min_ready: i32, now: Timestamp) -> bool {
    phase(p) == "Running" && pod_util::is_available(p, min_ready, now)
}

pub fn is_healthy(p: &Pod) -> bool {
    is_running_and_ready(p) && !pod_util::is_terminating(p)
}

/// Not healthy, or not yet available for minReadySeconds (upstream isUnavailable).
pub fn is_unavailable(p: &Pod, min_ready: i32, now: Timestamp) -> bool {
    !is_healthy(p) || !pod_util::is_available(p, min_ready, now)
}

pub fn pod_revision(p: &Pod) -> &str {
    p.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(HASH_LABEL))
        .map(String::as_str)
        .unwrap_or("")
}

/// The indices (into the in-range replicas, highest first, at or above the partition) of the
/// pods the rolling update deletes now: as many outdated pods as maxUnavailable leaves room
/// for (upstream updateStatefulSetAfterInvariantEstablished).
pub fn update_victims(
    replicas: &[Pod],
    update_revision: &str,
    partition: i32,
    max_unavailable: i32,
    min_ready: i32,
    now: Timestamp,
) -> Vec<usize> {
    let unavailable = replicas
        .iter()
        .filter(|p| is_unavailable(p, min_ready, now))
        .count() as i32;
    if unavailable > max_unavailable {
        return Vec::new();
    }
    let room = (max_unavailable - unavailable).max(0) as usize;
    let floor = partition.max(0) as usize;
    (floor..replicas.len())
        .rev()
        .filter(|&i| {
            pod_revision(&replicas[i]) != update_revision && !pod_util::is_terminating(&replicas[i])
        })
        .take(room)
        .collect()
}

/// Status counts over pods (upstream computeReplicaStatus).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub replicas: i32,
    pub ready: i32,
    pub available: i32,
    pub current: i32,
    pub updated: i32,
}

pub fn count<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    min_ready: i32,
    current_revision: &str,
    update_revision: &str,
    now: Timestamp,
) -> Counts {
    let mut c = Counts::default();
    for p in pods {
        if is_created(p) {
            c.replicas += 1;
        }
        if is_running_and_ready(p) {
            c.ready += 1;
            if is_running_and_available(p, min_ready, now) {
                c.available += 1;
            }
        }
        if is_created(p) && !pod_util::is_terminating(p) {
            let r = pod_revision(p);
            if r == current_revision {
                c.current += 1;
            }
            if r == update_revision {
                c.updated += 1;
            }
        }
    }
    c
}

/// `Retain` or `Delete` for set deletion and for scale-down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub delete_when_deleted: bool,
    pub delete_when_scaled: bool,
}

pub fn retention_policy(set: &StatefulSet) -> RetentionPolicy {
    let p = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    RetentionPolicy {
        delete_when_deleted: p.and_then(|p| p.when_deleted.as_deref()) == Some("Delete"),
        delete_when_scaled: p.and_then(|p| p.when_scaled.as_deref()) == Some("Delete"),
    }
}

/// The owner references a claim should carry under the retention policy, or None when it
/// already does or must not be touched (upstream isClaimOwnerUpToDate and
/// updateClaimOwnerRefForSetAndPod): the set controls it while it should go with the set, the
/// pod once it is scaled away and claims should go with it.
pub fn claim_owner_refs(
    claim: &PersistentVolumeClaim,
    set_ref: &OwnerReference,
    pod_ref: &OwnerReference,
    policy: RetentionPolicy,
    scaled_down: bool,
) -> Option<Vec<OwnerReference>> {
    let refs = claim.metadata.owner_references.clone().unwrap_or_default();
    let same_object = |r: &OwnerReference, o: &OwnerReference| r.kind == o.kind && r.name == o.name;
    // A reference to an earlier set or pod of the same name: leave the claim alone.
    if refs.iter().any(|r| {
        (same_object(r, set_ref) && r.uid != set_ref.uid)
            || (same_object(r, pod_ref) && r.uid != pod_ref.uid)
    }) {
        return None;
    }
    let ours = |r: &OwnerReference| r.uid == set_ref.uid || r.uid == pod_ref.uid;
    let foreign_controller = refs.iter().any(|r| r.controller == Some(true) && !ours(r));
    let mut wanted: Vec<OwnerReference> = refs.iter().filter(|r| !ours(r)).cloned().collect();
    if !foreign_controller {
        let controller = |o: &OwnerReference| OwnerReference {
            controller: Some(true),
            block_owner_deletion: Some(true),
            ..o.clone()
        };
        match (policy.delete_when_scaled, policy.delete_when_deleted) {
            (false, false) => {}
            (false, true) => wanted.push(controller(set_ref)),
            (true, false) => {
                if scaled_down {
                    wanted.push(controller(pod_ref));
                }
            }
            (true, true) => wanted.push(controller(if scaled_down { pod_ref } else { set_ref })),
        }
    }
    let key = |r: &OwnerReference| (r.uid.clone(), r.controller == Some(true));
    let mut have: Vec<_> = refs.iter().map(key).collect();
    let mut want: Vec<_> = wanted.iter().map(key).collect();
    have.sort();
    want.sort();
    (have != want).then_some(wanted)
}

/// A claim owned by an earlier pod of the same name: the pod must wait until it is gone
/// (upstream PodClaimIsStale, only under whenScaled Delete).
pub fn claim_is_stale(
    claim: &PersistentVolumeClaim,
    pod_name: &str,
    pod_uid: Option<&str>,
) -> bool {
    claim
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.kind == "Pod" && r.name == pod_name && Some(r.uid.as_str()) != pod_uid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(spec: serde_json::Value) -> StatefulSet {
        let mut base = json!({
            "replicas": 3,
            "serviceName": "nginx",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "www"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        });
        if let (Some(b), Some(s)) = (base.as_object_mut(), spec.as_object()) {
            for (k, v) in s {
                b.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "set-uid"},
            "spec": base,
        }))
        .expect("statefulset literal")
    }

    fn owner(kind: &str, name: &str, uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn running(name: &str, revision: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {HASH_LABEL: revision}},
            "spec": {"containers": []},
            "status": {"phase": "Running", "conditions": [{"type": "Ready",
                "status": if ready { "True" } else { "False" },
                "lastTransitionTime": "2024-01-01T00:00:00Z"}]},
        }))
        .expect("pod literal")
    }

    #[test]
    fn ordinals_parse_like_upstream() {
        assert_eq!(parent_and_ordinal("web-0"), Some(("web", 0)));
        assert_eq!(parent_and_ordinal("my-web-12"), Some(("my-web", 12)));
        assert_eq!(parent_and_ordinal("web"), None);
        assert_eq!(parent_and_ordinal("web-x1"), None);
        assert_eq!(parent_and_ordinal("web-"), None);
        let s = set(json!({"ordinals": {"start": 5}}));
        assert!(in_range(&s, 5) && in_range(&s, 7));
        assert!(!in_range(&s, 4) && !in_range(&s, 8));
    }

    #[test]
    fn new_pods_get_identity_storage_and_revision() {
        let s = set(json!({}));
        let template = s
            .spec
            .as_ref()
            .map(|x| x.template.clone())
            .unwrap_or_default();
        let p = new_pod(
            &s,
            &template,
            1,
            "web-abc",
            owner("StatefulSet", "web", "set-uid"),
        );
        assert_eq!(p.metadata.name.as_deref(), Some("web-1"));
        let labels = p.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get(POD_NAME_LABEL).map(String::as_str),
            Some("web-1")
        );
        assert_eq!(labels.get(POD_INDEX_LABEL).map(String::as_str), Some("1"));
        assert_eq!(labels.get(HASH_LABEL).map(String::as_str), Some("web-abc"));
        let spec = p.spec.clone().unwrap_or_default();
        assert_eq!(spec.hostname.as_deref(), Some("web-1"));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let vol = &spec.volumes.unwrap_or_default()[0];
        assert_eq!(vol.name, "www");
        assert_eq!(
            vol.persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.as_str()),
            Some("www-web-1")
        );
        let mut p = p;
        p.metadata.namespace = Some("default".into());
        assert!(identity_matches(&s, &p) && storage_matches(&s, &p));
        let claims = claims(&s, 1);
        assert_eq!(claims[0].1.metadata.name.as_deref(), Some("www-web-1"));
        assert_eq!(
            claims[0]
                .1
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app"))
                .map(String::as_str),
            Some("web")
        );
        assert!(!is_created(&p));
    }

    #[test]
    fn partition_keeps_low_ordinals_on_the_current_revision() {
        let s = set(
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}),
        );
        assert!(uses_current_revision(&s, 1, 0));
        assert!(!uses_current_revision(&s, 2, 0));
        let on_delete = set(json!({"updateStrategy": {"type": "OnDelete"}}));
        assert!(!uses_current_revision(&on_delete, 0, 3));
    }

    #[test]
    fn rolling_update_replaces_from_the_highest_ordinal() {
        let now = Timestamp::now();
        let pods = vec![
            running("web-0", "old", true),
            running("web-1", "old", true),
            running("web-2", "old", true),
        ];
        assert_eq!(update_victims(&pods, "new", 0, 1, 0, now), [2]);
        assert_eq!(update_victims(&pods, "new", 0, 2, 0, now), [2, 1]);
        assert_eq!(update_victims(&pods, "new", 2, 3, 0, now), [2], "partition");
        let pods = vec![
            running("web-0", "old", true),
            running("web-1", "old", true),
            running("web-2", "new", false),
        ];
        assert!(
            update_victims(&pods, "new", 0, 1, 0, now).is_empty(),
            "wait for web-2"
        );
        let pods = vec![
            running("web-0", "old", true),
            running("web-1", "new", true),
            running("web-2", "new", true),
        ];
        assert_eq!(update_victims(&pods, "new", 0, 1, 0, now), [0]);
    }

    #[test]
    fn max_unavailable_defaults_to_one_and_rounds_down() {
        assert_eq!(max_unavailable(&set(json!({}))), 1);
        let s = set(
            json!({"replicas": 10, "updateStrategy": {"type": "RollingUpdate",
            "rollingUpdate": {"partition": 0, "maxUnavailable": "25%"}}}),
        );
        assert_eq!(max_unavailable(&s), 2);
        let s = set(
            json!({"replicas": 2, "updateStrategy": {"type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": "10%"}}}),
        );
        assert_eq!(max_unavailable(&s), 1, "never below one");
    }

    #[test]
    fn counts_follow_revisions() {
        let now = Timestamp::now();
        let pods = [
            running("web-0", "a", true),
            running("web-1", "b", false),
            running("web-2", "b", true),
        ];
        let c = count(pods.iter(), 0, "a", "b", now);
        assert_eq!(
            c,
            Counts {
                replicas: 3,
                ready: 2,
                available: 2,
                current: 1,
                updated: 2
            }
        );
    }

    #[test]
    fn retention_policy_owner_references() {
        let set_ref = owner("StatefulSet", "web", "set-uid");
        let pod_ref = owner("Pod", "web-2", "pod-uid");
        let claim = PersistentVolumeClaim::default();
        let retain = RetentionPolicy {
            delete_when_deleted: false,
            delete_when_scaled: false,
        };
        assert_eq!(
            claim_owner_refs(&claim, &set_ref, &pod_ref, retain, false),
            None
        );
        let with_set = RetentionPolicy {
            delete_when_deleted: true,
            delete_when_scaled: false,
        };
        let refs =
            claim_owner_refs(&claim, &set_ref, &pod_ref, with_set, false).unwrap_or_default();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].uid, "set-uid");
        let both = RetentionPolicy {
            delete_when_deleted: true,
            delete_when_scaled: true,
        };
        let mut owned = claim.clone();
        owned.metadata.owner_references = Some(refs);
        let refs = claim_owner_refs(&owned, &set_ref, &pod_ref, both, true).unwrap_or_default();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].uid, "pod-uid", "a scaled-down pod takes the claim");
        let mut stale = claim.clone();
        stale.metadata.owner_references = Some(vec![owner("Pod", "web-2", "old-uid")]);
        assert_eq!(
            claim_owner_refs(&stale, &set_ref, &pod_ref, both, true),
            None
        );
        assert!(claim_is_stale(&stale, "web-2", None));
        assert!(!claim_is_stale(&stale, "web-2", Some("old-uid")));
    }
}
