//! NodeAffinity: `spec.nodeSelector` and required node affinity filter nodes; preferred terms
//! add their weights to a node's score.

use crate::cache::NodeInfo;
use crate::framework::{Plugin, Status};
use crate::pod_info::PodInfo;

pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

/// Whether the node satisfies the pod's nodeSelector and required node affinity (also used by
/// PodTopologySpread's `nodeAffinityPolicy: Honor`).
pub fn matches(pod: &PodInfo, node: &NodeInfo) -> bool {
    if pod.node_selector.is_empty() && pod.required_node_affinity.is_none() {
        // Nothing to check: do not reach into the Node object for its labels.
        return true;
    }
    let labels = node.labels();
    pod.node_selector
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
        && pod
            .required_node_affinity
            .as_ref()
            .is_none_or(|terms| terms.matches(labels, &node.name))
}

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
    if matches(pod, node) {
        Ok(())
    } else {
        Err(Status::unresolvable(Plugin::NodeAffinity, REASON))
    }
}

/// The sum of the weights of the preferred terms the node matches.
pub fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    pod.preferred_node_affinity
        .iter()
        .filter(|(_, t)| t.matches(node.labels(), &node.name))
        .map(|(w, _)| *w)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::testing::*;
    use k8s_openapi::api::core::v1::{
        Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
        PreferredSchedulingTerm,
    };

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn node_selector_and_required_terms() {
        let c = cache(
            vec![
                with_labels(
                    node("a", "1", "1Gi", "10"),
                    &[("zone", "z1"), ("disk", "ssd")],
                ),
                with_labels(node("b", "1", "1Gi", "10"), &[("zone", "z2")]),
            ],
            vec![],
        );
        let a = c.node_info("a").expect("a");
        let b = c.node_info("b").expect("b");
        let mut p = pod("p", "", "");
        p.spec.get_or_insert_default().node_selector =
            Some([("disk".to_string(), "ssd".to_string())].into());
        let p = info(p);
        assert!(filter(&p, a).is_ok());
        assert_eq!(filter(&p, b).expect_err("rejected").reasons, vec![REASON]);

        let mut q = pod("q", "", "");
        q.spec.get_or_insert_default().affinity = Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![
                        NodeSelectorTerm {
                            match_expressions: Some(vec![req("zone", "In", &["z9"])]),
                            match_fields: None,
                        },
                        NodeSelectorTerm {
                            match_expressions: None,
                            match_fields: Some(vec![req("metadata.name", "In", &["b"])]),
                        },
                    ],
                }),
                preferred_during_scheduling_ignored_during_execution: Some(vec![
                    PreferredSchedulingTerm {
                        weight: 7,
                        preference: NodeSelectorTerm {
                            match_expressions: Some(vec![req("zone", "Exists", &[])]),
                            match_fields: None,
                        },
                    },
                    PreferredSchedulingTerm {
                        weight: 3,
                        preference: NodeSelectorTerm {
                            match_expressions: Some(vec![req("disk", "NotIn", &["ssd"])]),
                            match_fields: None,
                        },
                    },
                ]),
            }),
            ..Affinity::default()
        });
        let q = info(q);
        assert!(filter(&q, a).is_err());
        assert!(filter(&q, b).is_ok());
        assert_eq!(score(&q, a), 7);
        assert_eq!(score(&q, b), 10);
    }
}
