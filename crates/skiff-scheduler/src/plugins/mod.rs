//! The default profile's plugins, run in upstream's order. The set is closed, so the framework
//! calls each plugin directly rather than through trait objects.

pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod taint_toleration;
pub mod volume_binding;

use crate::cache::{Cache, NodeInfo};
use crate::framework::{MAX_NODE_SCORE, Plugin, Status, default_normalize_score};
use crate::pod_info::{NamespaceLabels, PodInfo};
use crate::resources::Resource;
use crate::selector::NodeSelectorTerms;
use std::sync::Arc;

/// What PreFilter computed for one scheduling attempt of one pod.
#[derive(Debug, Clone)]
pub struct CycleState {
    pub pod: Arc<PodInfo>,
    pub requests: Resource,
    pub spread: Option<pod_topology_spread::FilterState>,
    pub inter_pod: Option<inter_pod_affinity::FilterState>,
    pub volumes: Vec<NodeSelectorTerms>,
}

impl CycleState {
    /// Accounts for `other` placed on (`delta` 1) or taken off (-1) `node` in the states that
    /// depend on other pods (upstream's PreFilter AddPod/RemovePod extensions).
    pub fn update(
        &mut self,
        other: &PodInfo,
        node: &NodeInfo,
        delta: i64,
        ns: &dyn NamespaceLabels,
    ) {
        if let Some(s) = self.spread.as_mut() {
            s.update(&self.pod, other, node, delta);
        }
        if let Some(s) = self.inter_pod.as_mut() {
            s.update(&self.pod, other, node, delta, ns);
        }
    }
}

/// Upstream's PreFilter plugins: reads what every node's filter needs once.
pub fn pre_filter(pod: &Arc<PodInfo>, cache: &Cache) -> Result<CycleState, Status> {
    let requests = pod
        .requests
        .clone()
        .map_err(|e| Status::unresolvable(Plugin::NodeResourcesFit, e))?;
    if let Some(e) = &pod.parse_error {
        return Err(Status::unresolvable(Plugin::InterPodAffinity, e.clone()));
    }
    let volumes = volume_binding::pre_filter(pod, cache)?;
    Ok(CycleState {
        spread: pod_topology_spread::FilterState::new(pod, cache),
        inter_pod: inter_pod_affinity::FilterState::new(pod, cache),
        pod: pod.clone(),
        requests,
        volumes,
    })
}

/// Runs the filters in the default profile's order; the first failure decides.
pub fn filter(state: &CycleState, node: &NodeInfo, ns: &dyn NamespaceLabels) -> Result<(), Status> {
    let pod = &state.pod;
    node_unschedulable::filter(pod.tolerations(), node)?;
    node_name::filter(pod, node)?;
    taint_toleration::filter(pod.tolerations(), node)?;
    node_affinity::filter(pod, node)?;
    node_ports::filter(pod, node)?;
    node_resources::filter(&state.requests, node)?;
    volume_binding::filter(&state.volumes, node)?;
    if let Some(s) = &state.spread {
        s.filter(pod, node)?;
    }
    if let Some(s) = &state.inter_pod {
        s.filter(pod, node, ns)?;
    }
    Ok(())
}

/// Filters with the pods nominated to `node` at the same or higher priority counted as if
/// they ran there, then (if any were) without them, as upstream's
/// `RunFilterPluginsWithNominatedPods`.
pub fn filter_with_nominated(
    state: &CycleState,
    node: &NodeInfo,
    nominated: &[Arc<PodInfo>],
    ns: &dyn NamespaceLabels,
) -> Result<(), Status> {
    let relevant: Vec<&Arc<PodInfo>> = nominated
        .iter()
        .filter(|p| p.key != state.pod.key && p.priority >= state.pod.priority)
        .collect();
    if relevant.is_empty() {
        return filter(state, node, ns);
    }
    let mut with = node.clone();
    let mut s = state.clone();
    for p in relevant {
        with.add_pod(p.clone());
        s.update(p, &with, 1, ns);
    }
    filter(&s, &with, ns)?;
    filter(state, node, ns)
}

/// Default profile weights.
const WEIGHT_TAINT_TOLERATION: i64 = 3;
const WEIGHT_NODE_AFFINITY: i64 = 2;
const WEIGHT_NODE_RESOURCES_FIT: i64 = 1;
const WEIGHT_POD_TOPOLOGY_SPREAD: i64 = 2;
const WEIGHT_INTER_POD_AFFINITY: i64 = 2;
const WEIGHT_BALANCED_ALLOCATION: i64 = 1;
const WEIGHT_IMAGE_LOCALITY: i64 = 1;

/// Scores the feasible nodes: each plugin's score normalized to 0..=100, times its weight,
/// summed. The plugins that score a node from the node alone do it in one pass over the nodes.
pub fn score(state: &CycleState, cache: &Cache, feasible: &[&NodeInfo]) -> Vec<i64> {
    let pod = &state.pod;
    let n = feasible.len();
    let tolerations = pod.tolerations();
    let taints = feasible.iter().any(|node| !node.taints().is_empty());
    let affinity = !pod.preferred_node_affinity.is_empty();
    let balanced = !node_resources::balanced_allocation::skip(&state.requests);
    let mut total = Vec::with_capacity(n);
    let mut taint_scores = Vec::with_capacity(if taints { n } else { 0 });
    let mut affinity_scores = Vec::with_capacity(if affinity { n } else { 0 });
    for node in feasible {
        let mut t = node_resources::least_allocated_score(pod.non_zero, node)
            * WEIGHT_NODE_RESOURCES_FIT
            + image_locality::score(pod, node, cache) * WEIGHT_IMAGE_LOCALITY;
        if balanced {
            t += node_resources::balanced_allocation::score(&state.requests, node)
                * WEIGHT_BALANCED_ALLOCATION;
        }
        if !taints {
            // No taints on any feasible node: each gets TaintToleration's full score.
            t += MAX_NODE_SCORE * WEIGHT_TAINT_TOLERATION;
        }
        total.push(t);
        if taints {
            taint_scores.push(taint_toleration::score(tolerations, node));
        }
        if affinity {
            affinity_scores.push(node_affinity::score(pod, node));
        }
    }
    let mut add = |scores: &[i64], weight: i64| {
        for (t, s) in total.iter_mut().zip(scores) {
            *t += s * weight;
        }
    };
    if taints {
        default_normalize_score(MAX_NODE_SCORE, true, &mut taint_scores);
        add(&taint_scores, WEIGHT_TAINT_TOLERATION);
    }
    if affinity {
        default_normalize_score(MAX_NODE_SCORE, false, &mut affinity_scores);
        add(&affinity_scores, WEIGHT_NODE_AFFINITY);
    }

    if let Some(spread) = pod_topology_spread::ScoreState::new(pod, cache, feasible) {
        let raw: Vec<Option<i64>> = feasible
            .iter()
            .map(|node| spread.score(pod, node))
            .collect();
        add(
            &pod_topology_spread::normalize(&raw),
            WEIGHT_POD_TOPOLOGY_SPREAD,
        );
    }

    if let Some(ipa) = inter_pod_affinity::ScoreState::new(pod, cache) {
        let mut s: Vec<i64> = feasible.iter().map(|node| ipa.score(node)).collect();
        inter_pod_affinity::normalize(&mut s);
        add(&s, WEIGHT_INTER_POD_AFFINITY);
    }
    total
}
