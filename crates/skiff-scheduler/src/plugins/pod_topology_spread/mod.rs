//! PodTopologySpread: `DoNotSchedule` constraints filter nodes whose domain would exceed
//! `maxSkew`; `ScheduleAnyway` constraints score nodes in emptier domains higher.

use crate::cache::{Cache, NodeInfo};
use crate::framework::{MAX_NODE_SCORE, Plugin, Status};
use crate::plugins::{node_affinity, taint_toleration};
use crate::pod_info::{PodInfo, SpreadConstraint};
use std::collections::{HashMap, HashSet};

pub const REASON: &str = "node(s) didn't match pod topology spread constraints";
pub const REASON_MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
const HOSTNAME: &str = "kubernetes.io/hostname";

fn has_all_keys(node: &NodeInfo, constraints: &[SpreadConstraint]) -> bool {
    let labels = node.labels();
    constraints
        .iter()
        .all(|c| labels.contains_key(&c.topology_key))
}

/// `nodeAffinityPolicy` and `nodeTaintsPolicy`: whether the node's domain counts at all.
fn includes(c: &SpreadConstraint, pod: &PodInfo, node: &NodeInfo) -> bool {
    if c.honor_node_affinity && !node_affinity::matches(pod, node) {
        return false;
    }
    if c.honor_node_taints && taint_toleration::filter(pod.tolerations(), node).is_err() {
        return false;
    }
    true
}

/// Pods on the node that the constraint counts: same namespace, not terminating, selected.
fn count_matching(c: &SpreadConstraint, namespace: &str, node: &NodeInfo) -> i64 {
    // An empty selector counts nothing, as upstream's `countPodsMatchSelector`.
    if c.selector.is_everything() {
        return 0;
    }
    node.pods
        .iter()
        .filter(|p| {
            p.namespace == namespace && !p.is_terminating() && c.selector.matches(&p.labels)
        })
        .count() as i64
}

/// Matching pods per domain for each `DoNotSchedule` constraint, over every eligible node.
#[derive(Debug, Clone)]
pub struct FilterState {
    constraints: Vec<SpreadConstraint>,
    counts: Vec<HashMap<String, i64>>,
    min: Vec<i64>,
}

impl FilterState {
    pub fn new(pod: &PodInfo, cache: &Cache) -> Option<FilterState> {
        let constraints: Vec<SpreadConstraint> = pod
            .spread_constraints
            .iter()
            .filter(|c| c.hard)
            .cloned()
            .collect();
        if constraints.is_empty() {
            return None;
        }
        let mut counts = vec![HashMap::new(); constraints.len()];
        for node in cache.node_infos().iter().filter(|n| n.node.is_some()) {
            if !has_all_keys(node, &constraints) {
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if !includes(c, pod, node) {
                    continue;
                }
                let value = node.labels()[&c.topology_key].clone();
                *counts[i].entry(value).or_insert(0) += count_matching(c, &pod.namespace, node);
            }
        }
        let mut s = FilterState {
            min: vec![0; constraints.len()],
            constraints,
            counts,
        };
        s.update_min();
        Some(s)
    }

    fn update_min(&mut self) {
        for (i, c) in self.constraints.iter().enumerate() {
            let domains = self.counts[i].len() as i64;
            self.min[i] = if domains < c.min_domains {
                0
            } else {
                self.counts[i].values().copied().min().unwrap_or(0)
            };
        }
    }

    /// Accounts for `other` added to (`delta` 1) or removed from (-1) `node`, for preemption
    /// and nominated pods.
    pub fn update(&mut self, pod: &PodInfo, other: &PodInfo, node: &NodeInfo, delta: i64) {
        if other.namespace != pod.namespace || !has_all_keys(node, &self.constraints) {
            return;
        }
        for (i, c) in self.constraints.iter().enumerate() {
            if !c.selector.matches(&other.labels) || !includes(c, pod, node) {
                continue;
            }
            let value = node.labels()[&c.topology_key].clone();
            *self.counts[i].entry(value).or_insert(0) += delta;
        }
        self.update_min();
    }

    pub fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
        let labels = node.labels();
        for (i, c) in self.constraints.iter().enumerate() {
            let Some(value) = labels.get(&c.topology_key) else {
                return Err(Status::unresolvable(
                    Plugin::PodTopologySpread,
                    REASON_MISSING_LABEL,
                ));
            };
            let self_match = i64::from(c.selector.matches(&pod.labels));
            let matching = self.counts[i].get(value).copied().unwrap_or(0);
            if matching + self_match - self.min[i] > c.max_skew {
                return Err(Status::unschedulable(Plugin::PodTopologySpread, REASON));
            }
        }
        Ok(())
    }
}

/// Matching pods per domain for each `ScheduleAnyway` constraint, over the feasible nodes'
/// domains.
#[derive(Debug)]
pub struct ScoreState {
    constraints: Vec<SpreadConstraint>,
    counts: Vec<HashMap<String, i64>>,
    weights: Vec<f64>,
    ignored: HashSet<String>,
}

impl ScoreState {
    pub fn new(pod: &PodInfo, cache: &Cache, feasible: &[&NodeInfo]) -> Option<ScoreState> {
        let constraints: Vec<SpreadConstraint> = pod
            .spread_constraints
            .iter()
            .filter(|c| !c.hard)
            .cloned()
            .collect();
        if constraints.is_empty() || feasible.is_empty() {
            return None;
        }
        let mut ignored = HashSet::new();
        let mut counts = vec![HashMap::new(); constraints.len()];
        for node in feasible {
            if !has_all_keys(node, &constraints) {
                ignored.insert(node.name.clone());
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if c.topology_key != HOSTNAME {
                    counts[i].insert(node.labels()[&c.topology_key].clone(), 0);
                }
            }
        }
        let weights = constraints
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let size = if c.topology_key == HOSTNAME {
                    feasible.len() - ignored.len()
                } else {
                    counts[i].len()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        for node in cache.node_infos().iter().filter(|n| n.node.is_some()) {
            if !has_all_keys(node, &constraints) {
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if c.topology_key == HOSTNAME || !includes(c, pod, node) {
                    continue;
                }
                let value = &node.labels()[&c.topology_key];
                if counts[i].contains_key(value) {
                    let n = count_matching(c, &pod.namespace, node);
                    *counts[i].entry(value.clone()).or_insert(0) += n;
                }
            }
        }
        Some(ScoreState {
            constraints,
            counts,
            weights,
            ignored,
        })
    }

    /// The raw score (lower is better), or `None` for a node missing a topology key.
    pub fn score(&self, pod: &PodInfo, node: &NodeInfo) -> Option<i64> {
        if self.ignored.contains(&node.name) {
            return None;
        }
        let labels = node.labels();
        let mut score = 0.0;
        for (i, c) in self.constraints.iter().enumerate() {
            let Some(value) = labels.get(&c.topology_key) else {
                continue;
            };
            let count = if c.topology_key == HOSTNAME {
                count_matching(c, &pod.namespace, node)
            } else {
                self.counts[i].get(value).copied().unwrap_or(0)
            };
            score += count as f64 * self.weights[i] + (c.max_skew - 1) as f64;
        }
        Some(score.round() as i64)
    }
}

/// Upstream's NormalizeScore: fewer matching pods scores higher; ignored nodes score 0.
pub fn normalize(scores: &[Option<i64>]) -> Vec<i64> {
    let valid = scores.iter().flatten();
    let min = valid.clone().copied().min().unwrap_or(0);
    let max = valid.copied().max().unwrap_or(0);
    scores
        .iter()
        .map(|s| match s {
            None => 0,
            Some(_) if max == 0 => MAX_NODE_SCORE,
            Some(s) => MAX_NODE_SCORE * (max + min - s) / max,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::testing::*;
    use k8s_openapi::api::core::v1::{Pod, TopologySpreadConstraint};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn spread(mut p: Pod, key: &str, skew: i32, when: &str, min_domains: Option<i32>) -> Pod {
        p.spec
            .get_or_insert_default()
            .topology_spread_constraints
            .get_or_insert_default()
            .push(TopologySpreadConstraint {
                max_skew: skew,
                topology_key: key.into(),
                when_unsatisfiable: when.into(),
                label_selector: Some(LabelSelector {
                    match_labels: Some([("app".to_string(), "web".to_string())].into()),
                    ..LabelSelector::default()
                }),
                min_domains,
                ..TopologySpreadConstraint::default()
            });
        p
    }

    fn zoned(name: &str, zone: &str) -> k8s_openapi::api::core::v1::Node {
        with_labels(node(name, "4", "4Gi", "10"), &[("zone", zone)])
    }

    fn web(name: &str) -> Pod {
        labeled(pod(name, "", ""), &[("app", "web")])
    }

    #[test]
    fn max_skew_filters_crowded_domains() {
        let c = cache(
            vec![
                zoned("a", "z1"),
                zoned("b", "z2"),
                node("nolabel", "4", "4Gi", "10"),
            ],
            vec![on(web("w1"), "a"), on(web("w2"), "a")],
        );
        let p = info(spread(web("p"), "zone", 1, "DoNotSchedule", None));
        let s = FilterState::new(&p, &c).expect("hard constraint");
        assert_eq!(
            s.filter(&p, c.node_info("a").expect("a"))
                .expect_err("skew")
                .reasons,
            vec![REASON]
        );
        assert!(s.filter(&p, c.node_info("b").expect("b")).is_ok());
        assert_eq!(
            s.filter(&p, c.node_info("nolabel").expect("n"))
                .expect_err("label")
                .reasons,
            vec![REASON_MISSING_LABEL]
        );
    }

    #[test]
    fn min_domains_treats_the_minimum_as_zero() {
        let c = cache(vec![zoned("a", "z1")], vec![on(web("w1"), "a")]);
        let lax = info(spread(web("p"), "zone", 1, "DoNotSchedule", None));
        let s = FilterState::new(&lax, &c).expect("state");
        // One domain: skew = 1 + 1 - 1 = 1.
        assert!(s.filter(&lax, c.node_info("a").expect("a")).is_ok());
        let strict = info(spread(web("p"), "zone", 1, "DoNotSchedule", Some(2)));
        let s = FilterState::new(&strict, &c).expect("state");
        // Fewer domains than minDomains: skew = 1 + 1 - 0 = 2.
        assert!(s.filter(&strict, c.node_info("a").expect("a")).is_err());
    }

    #[test]
    fn removing_a_pod_updates_the_counts() {
        let c = cache(
            vec![zoned("a", "z1"), zoned("b", "z2")],
            vec![on(web("w1"), "a"), on(web("w2"), "a")],
        );
        let p = info(spread(web("p"), "zone", 1, "DoNotSchedule", None));
        let mut s = FilterState::new(&p, &c).expect("state");
        let a = c.node_info("a").expect("a");
        let victim = a.pods[0].clone();
        s.update(&p, &victim, a, -1);
        s.update(&p, &victim, a, -1);
        assert!(s.filter(&p, a).is_ok());
    }

    #[test]
    fn schedule_anyway_scores_emptier_domains_higher() {
        let c = cache(
            vec![zoned("a", "z1"), zoned("b", "z2"), zoned("c", "z2")],
            vec![on(web("w1"), "a"), on(web("w2"), "a"), on(web("w3"), "b")],
        );
        let p = info(spread(web("p"), "zone", 1, "ScheduleAnyway", None));
        let nodes: Vec<&NodeInfo> = ["a", "b", "c"]
            .iter()
            .map(|n| c.node_info(n).expect("node"))
            .collect();
        let s = ScoreState::new(&p, &c, &nodes).expect("soft constraint");
        let raw: Vec<Option<i64>> = nodes.iter().map(|n| s.score(&p, n)).collect();
        // weight ln(2 + 2) ≈ 1.386: z1 has 2 pods → 3, z2 has 1 → 1.
        assert_eq!(raw, vec![Some(3), Some(1), Some(1)]);
        assert_eq!(normalize(&raw), vec![33, 100, 100]);
    }
}
