//! VolumeBinding (bound claims only): every bound PersistentVolumeClaim's volume must allow the
//! node through its `nodeAffinity`. Unbound claims are left to whatever binds them.

use crate::cache::{Cache, NodeInfo};
use crate::framework::{Plugin, Status};
use crate::pod_info::PodInfo;
use crate::selector::NodeSelectorTerms;

pub const REASON: &str = "node(s) had volume node affinity conflict";

/// The node selectors of the volumes bound to the pod's claims, or the PreFilter failure.
pub fn pre_filter(pod: &PodInfo, cache: &Cache) -> Result<Vec<NodeSelectorTerms>, Status> {
    let mut terms = Vec::new();
    for claim in &pod.pvc_names {
        let key = format!("{}/{claim}", pod.namespace);
        let Some(pvc) = cache.pvcs.get(&key) else {
            return Err(Status::unresolvable(
                Plugin::VolumeBinding,
                format!("persistentvolumeclaim \"{claim}\" not found"),
            ));
        };
        if pvc.metadata.deletion_timestamp.is_some() {
            return Err(Status::unresolvable(
                Plugin::VolumeBinding,
                format!("persistentvolumeclaim \"{claim}\" is being deleted"),
            ));
        }
        let Some(volume) = pvc
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.as_deref())
            .filter(|v| !v.is_empty())
        else {
            continue;
        };
        let Some(pv) = cache.pvs.get(volume) else {
            return Err(Status::unresolvable(
                Plugin::VolumeBinding,
                format!("persistentvolume \"{volume}\" not found"),
            ));
        };
        if let Some(required) = pv
            .spec
            .as_ref()
            .and_then(|s| s.node_affinity.as_ref())
            .and_then(|a| a.required.as_ref())
        {
            terms.push(NodeSelectorTerms::parse(required));
        }
    }
    Ok(terms)
}

pub fn filter(terms: &[NodeSelectorTerms], node: &NodeInfo) -> Result<(), Status> {
    if terms.iter().all(|t| t.matches(node.labels(), &node.name)) {
        Ok(())
    } else {
        Err(Status::unresolvable(Plugin::VolumeBinding, REASON))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::testing::*;
    use k8s_openapi::api::core::v1::{
        NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PersistentVolume,
        PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource,
        PersistentVolumeSpec, Pod, Volume, VolumeNodeAffinity,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::sync::Arc;

    fn with_claim(mut p: Pod, claim: &str) -> Pod {
        p.spec.get_or_insert_default().volumes = Some(vec![Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.into(),
                read_only: None,
            }),
            ..Volume::default()
        }]);
        p
    }

    #[test]
    fn bound_volumes_pin_pods_to_their_nodes() {
        let mut c = cache(
            vec![
                with_labels(node("a", "1", "1Gi", "10"), &[("zone", "z1")]),
                with_labels(node("b", "1", "1Gi", "10"), &[("zone", "z2")]),
            ],
            vec![],
        );
        let pv = PersistentVolume {
            metadata: ObjectMeta {
                name: Some("pv1".into()),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeSpec {
                node_affinity: Some(VolumeNodeAffinity {
                    required: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_expressions: Some(vec![NodeSelectorRequirement {
                                key: "zone".into(),
                                operator: "In".into(),
                                values: Some(vec!["z1".into()]),
                            }]),
                            match_fields: None,
                        }],
                    }),
                }),
                ..PersistentVolumeSpec::default()
            }),
            ..PersistentVolume::default()
        };
        c.pvs.insert("pv1".into(), Arc::new(pv));
        let claim = |name: &str, volume: Option<&str>| PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                volume_name: volume.map(str::to_string),
                ..PersistentVolumeClaimSpec::default()
            }),
            ..PersistentVolumeClaim::default()
        };
        c.pvcs.insert(
            "default/bound".into(),
            Arc::new(claim("bound", Some("pv1"))),
        );
        c.pvcs
            .insert("default/unbound".into(), Arc::new(claim("unbound", None)));

        let p = info(with_claim(pod("p", "", ""), "bound"));
        let terms = pre_filter(&p, &c).expect("prefilter");
        assert!(filter(&terms, c.node_info("a").expect("a")).is_ok());
        assert_eq!(
            filter(&terms, c.node_info("b").expect("b"))
                .expect_err("conflict")
                .reasons,
            vec![REASON]
        );
        let u = info(with_claim(pod("u", "", ""), "unbound"));
        assert!(pre_filter(&u, &c).expect("prefilter").is_empty());
        let m = info(with_claim(pod("m", "", ""), "missing"));
        assert_eq!(
            pre_filter(&m, &c).expect_err("missing").reasons,
            vec!["persistentvolumeclaim \"missing\" not found"]
        );
    }
}
