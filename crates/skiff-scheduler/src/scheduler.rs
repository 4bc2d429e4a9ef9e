//! One scheduling cycle: PreFilter, Filter over an adaptive share of the nodes from a rotating
//! start, Score, select; PostFilter (preemption) when nothing fits. No I/O: the cycle returns
//! what to write, and the caller writes it.

use crate::cache::{Cache, NodeInfo};
use crate::framework::{Diagnosis, PluginSet, Status};
use crate::plugins::{self, CycleState};
use crate::pod_info::PodInfo;
use crate::preemption::{self, Candidate};
use crate::queue::{QueuedPod, SchedulingQueue};
use std::sync::Arc;
use tokio::time::Instant;

/// Below this many nodes every node is checked; above it, at least this many feasible nodes.
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;

/// Upstream's adaptive `percentageOfNodesToScore`: 50% minus 1% per 125 nodes, at least 5%,
/// and never fewer than 100 nodes.
pub fn num_feasible_nodes_to_find(num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let percentage = 50usize
        .saturating_sub(num_all_nodes / 125)
        .max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND);
    (num_all_nodes * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// What a scheduling cycle decided, for the caller to write to the API.
#[derive(Debug)]
pub enum Decision {
    /// Assumed on `node`; bind it.
    Bind {
        pod: Arc<PodInfo>,
        node: String,
        attempts: u32,
    },
    /// No node fits (or an error): report it and keep the pod queued.
    Failed {
        pod: Arc<PodInfo>,
        /// `Unschedulable` or `SchedulerError`.
        reason: &'static str,
        message: String,
        /// `Some(node)` sets `status.nominatedNodeName` (`Some("")` clears it).
        nominate: Option<String>,
        preemption: Option<Preemption>,
    },
}

/// Victims to evict so that `pod` fits on `candidate.node`.
#[derive(Debug)]
pub struct Preemption {
    pub candidate: Candidate,
    pub lower_nominated: Vec<Arc<PodInfo>>,
}

/// The scheduler's state: the cluster cache and the queue. Owned by one task.
#[derive(Debug, Default)]
pub struct Scheduler {
    pub cache: Cache,
    pub queue: SchedulingQueue,
    next_start_node_index: usize,
}

pub const NO_NODES: &str = "no nodes available to schedule pods";

impl Scheduler {
    /// Schedules one pod taken from the queue.
    pub fn schedule_one(&mut self, qp: QueuedPod, now: Instant) -> Decision {
        let pod = qp.info.clone();
        match self.schedule_pod(&pod) {
            Ok(node) => {
                self.queue.done(&pod.key);
                self.queue.clear_nominated(&pod.key);
                self.cache.assume_pod(pod.clone(), &node);
                Decision::Bind {
                    pod,
                    node,
                    attempts: qp.attempts,
                }
            }
            Err(Failure::NoNodes) => {
                self.queue.add_unschedulable(qp, PluginSet::default(), now);
                Decision::Failed {
                    pod,
                    reason: "SchedulerError",
                    message: NO_NODES.into(),
                    nominate: None,
                    preemption: None,
                }
            }
            Err(Failure::Fit(fit)) => {
                let (mut diagnosis, state) = *fit;
                let mut nominate = None;
                let mut preemption = None;
                if let Some(state) = state {
                    match preemption::preempt(&state, &diagnosis, &self.cache, &self.queue) {
                        preemption::Outcome::NotEligible(m) => {
                            diagnosis.post_filter_msg = Some(format!("preemption: {m}"));
                        }
                        preemption::Outcome::NoCandidate(m) => {
                            diagnosis.post_filter_msg = Some(format!("preemption: {m}"));
                            nominate = Some(String::new());
                        }
                        preemption::Outcome::Preempt {
                            candidate,
                            lower_nominated,
                        } => {
                            nominate = Some(candidate.node.clone());
                            self.queue.nominate(pod.clone(), &candidate.node);
                            for p in &lower_nominated {
                                self.queue.clear_nominated(&p.key);
                            }
                            self.queue.set_preempting(&pod.key, true, now);
                            preemption = Some(Preemption {
                                candidate,
                                lower_nominated,
                            });
                        }
                    }
                }
                if nominate.as_deref() == Some("") {
                    self.queue.clear_nominated(&pod.key);
                }
                let plugins = if diagnosis.unschedulable_plugins.is_empty() {
                    // Rejected without a plugin to blame: retry on any event.
                    PluginSet::ALL
                } else {
                    diagnosis.unschedulable_plugins
                };
                self.queue.add_unschedulable(qp, plugins, now);
                Decision::Failed {
                    pod,
                    reason: "Unschedulable",
                    message: diagnosis.message(),
                    nominate,
                    preemption,
                }
            }
        }
    }

    fn schedule_pod(&mut self, pod: &Arc<PodInfo>) -> Result<String, Failure> {
        let num_nodes = self.cache.node_count();
        if num_nodes == 0 {
            return Err(Failure::NoNodes);
        }
        let state = match plugins::pre_filter(pod, &self.cache) {
            Ok(s) => s,
            Err(status) => {
                let mut d = Diagnosis {
                    num_all_nodes: num_nodes,
                    pre_filter_msg: Some(status.reasons.join(", ")),
                    ..Diagnosis::default()
                };
                d.unschedulable_plugins.insert(status.plugin);
                d.node_to_status.absent = Some(status);
                return Err(Failure::Fit(Box::new((d, None))));
            }
        };
        // A pod nominated by an earlier preemption tries its node first.
        let nominated = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .or_else(|| self.queue.nominated_node(&pod.key))
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        if let Some(n) = nominated
            && let Some(info) = self.cache.node_info(&n)
            && info.node.is_some()
            && self.filter(&state, info).is_ok()
        {
            return Ok(n);
        }
        let (feasible, diagnosis) = self.find_nodes_that_fit(&state, num_nodes);
        match feasible.len() {
            0 => Err(Failure::Fit(Box::new((diagnosis, Some(state))))),
            1 => Ok(self.cache.node_infos()[feasible[0]].name.clone()),
            _ => {
                let nodes: Vec<&NodeInfo> = feasible
                    .iter()
                    .map(|&i| &self.cache.node_infos()[i])
                    .collect();
                let scores = plugins::score(&state, &self.cache, &nodes);
                Ok(nodes[select_host(&scores)].name.clone())
            }
        }
    }

    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Result<(), Status> {
        if self.queue.has_nominated() {
            plugins::filter_with_nominated(
                state,
                node,
                self.queue.nominated_for(&node.name),
                &self.cache.namespaces,
            )
        } else {
            plugins::filter(state, node, &self.cache.namespaces)
        }
    }

    /// Filters nodes from the rotating start until enough fit; indexes into `node_infos()`.
    fn find_nodes_that_fit(
        &mut self,
        state: &CycleState,
        num_nodes: usize,
    ) -> (Vec<usize>, Diagnosis) {
        let want = num_feasible_nodes_to_find(num_nodes);
        self.cache.refresh_open();
        // Cordoned nodes reject a pod that does not tolerate them before any other filter: such
        // a pod visits only the open nodes, in the same rotating order, and the cordoned ones it
        // passes are counted as NodeUnschedulable rejections without being filtered one by one
        // (while a large cluster is being uncordoned, most of a pod's scan is cordoned nodes).
        let skip_cordoned = self.cache.cordoned_count() > 0
            && !plugins::node_unschedulable::tolerates(state.pod.tolerations());
        let infos = self.cache.node_infos();
        let total = infos.len();
        let mut feasible = Vec::with_capacity(want.min(total));
        let mut diagnosis = Diagnosis {
            num_all_nodes: num_nodes,
            ..Diagnosis::default()
        };
        let start = if total == 0 {
            0
        } else {
            self.next_start_node_index % total
        };
        // Nodes passed in the rotation, from `start` through `idx`.
        let passed = |idx: usize| {
            if idx >= start {
                idx - start + 1
            } else {
                total - start + idx + 1
            }
        };
        let mut processed = total;
        // Kept by node index and named only if the pod fits nowhere: a pod that fits is
        // rejected by many nodes too while few are free, and its diagnosis is dropped.
        let mut rejected = Vec::new();
        let mut visit = |idx: usize, feasible: &mut Vec<usize>| -> bool {
            let info = &infos[idx];
            match self.filter(state, info) {
                Ok(()) => {
                    feasible.push(idx);
                    feasible.len() >= want
                }
                Err(s) => {
                    diagnosis.unschedulable_plugins.insert(s.plugin);
                    rejected.push((idx, s));
                    false
                }
            }
        };
        if skip_cordoned {
            let open = self.cache.open_nodes();
            let first = open.partition_point(|&i| (i as usize) < start);
            for &i in open[first..].iter().chain(&open[..first]) {
                let idx = i as usize;
                if visit(idx, &mut feasible) {
                    processed = passed(idx);
                    break;
                }
            }
        } else {
            for i in 0..total {
                let idx = (start + i) % total;
                if infos[idx].node.is_none() {
                    continue;
                }
                if visit(idx, &mut feasible) {
                    processed = i + 1;
                    break;
                }
            }
        }
        // The diagnosis is read only when nothing fit.
        if feasible.is_empty() {
            diagnosis.node_to_status.nodes.reserve(rejected.len());
            for (idx, s) in rejected {
                diagnosis
                    .node_to_status
                    .nodes
                    .insert(infos[idx].name.clone(), s);
            }
            if skip_cordoned {
                // Nothing fit, so every node was passed, the cordoned ones included.
                diagnosis
                    .unschedulable_plugins
                    .insert(crate::framework::Plugin::NodeUnschedulable);
                for info in infos
                    .iter()
                    .filter(|n| n.node.is_some() && n.unschedulable())
                {
                    diagnosis
                        .node_to_status
                        .nodes
                        .insert(info.name.clone(), plugins::node_unschedulable::rejection());
                }
            }
        }
        if total > 0 {
            self.next_start_node_index = (start + processed) % total;
        }
        (feasible, diagnosis)
    }
}

enum Failure {
    NoNodes,
    Fit(Box<(Diagnosis, Option<CycleState>)>),
}

/// The index of the highest score, ties broken uniformly at random, as upstream's reservoir
/// sampling does; one random draw per pod rather than one per tied node.
pub fn select_host(scores: &[i64]) -> usize {
    let Some(&best) = scores.iter().max() else {
        return 0;
    };
    let ties = scores.iter().filter(|&&s| s == best).count();
    let pick = if ties > 1 {
        rand::random_range(0..ties)
    } else {
        0
    };
    scores
        .iter()
        .enumerate()
        .filter(|&(_, &s)| s == best)
        .nth(pick)
        .map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::testing::*;
    use k8s_openapi::api::core::v1::{Pod, Toleration};

    fn sched(nodes: Vec<k8s_openapi::api::core::v1::Node>, pods: Vec<Pod>) -> Scheduler {
        Scheduler {
            cache: cache(nodes, pods),
            ..Scheduler::default()
        }
    }

    fn run(s: &mut Scheduler, p: Pod) -> Decision {
        let now = Instant::now();
        s.queue.add_or_update(info(p), now);
        let qp = s.queue.pop().expect("queued");
        s.schedule_one(qp, now)
    }

    #[test]
    fn adaptive_share_of_nodes() {
        assert_eq!(num_feasible_nodes_to_find(50), 50);
        assert_eq!(num_feasible_nodes_to_find(100), 100);
        assert_eq!(num_feasible_nodes_to_find(1000), 420);
        assert_eq!(num_feasible_nodes_to_find(5000), 500);
        assert_eq!(num_feasible_nodes_to_find(100_000), 5000);
    }

    #[test]
    fn picks_the_least_allocated_node_and_assumes_the_pod() {
        let mut s = sched(
            vec![node("a", "4", "8Gi", "110"), node("b", "4", "8Gi", "110")],
            vec![on(pod("x", "3", "6Gi"), "a")],
        );
        match run(&mut s, pod("p", "1", "1Gi")) {
            Decision::Bind { node, .. } => assert_eq!(node, "b"),
            other => panic!("expected a binding, got {other:?}"),
        }
        assert!(s.cache.is_assumed("default/p"));
        assert!(s.queue.is_empty());
        // The assumed pod counts: the next big pod no longer fits on b.
        match run(&mut s, pod("q", "3500m", "1Gi")) {
            Decision::Failed { message, .. } => assert_eq!(
                message,
                "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
            ),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn unreadable_quantities_make_a_pod_unschedulable() {
        let mut s = sched(vec![node("a", "4", "8Gi", "110")], vec![]);
        match run(&mut s, pod("p", "lots", "")) {
            Decision::Failed {
                message, reason, ..
            } => {
                assert_eq!(reason, "Unschedulable");
                assert!(
                    message.starts_with("0/1 nodes are available: quantities must match"),
                    "{message}"
                );
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn no_nodes_is_a_scheduler_error() {
        let mut s = sched(vec![], vec![]);
        match run(&mut s, pod("p", "", "")) {
            Decision::Failed {
                message, reason, ..
            } => {
                assert_eq!(reason, "SchedulerError");
                assert_eq!(message, NO_NODES);
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn preemption_nominates_the_node() {
        let mut low = on(pod("low", "2", ""), "a");
        low.spec.get_or_insert_default().priority = Some(0);
        let mut s = sched(vec![node("a", "2", "8Gi", "110")], vec![low]);
        let mut high = pod("high", "2", "");
        high.spec.get_or_insert_default().priority = Some(1000);
        match run(&mut s, high) {
            Decision::Failed {
                message,
                nominate,
                preemption,
                ..
            } => {
                assert_eq!(message, "0/1 nodes are available: 1 Insufficient cpu.");
                assert_eq!(nominate.as_deref(), Some("a"));
                let p = preemption.expect("preemption");
                assert_eq!(preemption::keys(&p.candidate.victims), vec!["default/low"]);
            }
            other => panic!("expected a preemption, got {other:?}"),
        }
        assert_eq!(s.queue.nominated_node("default/high"), Some("a"));
        // A lower-priority pod may not take the room the preemptor waits for.
        s.cache.remove_pod("default/low");
        let mut other = pod("other", "1", "");
        other.spec.get_or_insert_default().priority = Some(0);
        assert!(matches!(run(&mut s, other), Decision::Failed { .. }));
    }

    #[test]
    fn select_host_takes_the_best_score_and_spreads_ties() {
        assert_eq!(select_host(&[]), 0);
        assert_eq!(select_host(&[3, 9, 4]), 1);
        let mut picked = [0usize; 5];
        for _ in 0..3000 {
            picked[select_host(&[1, 7, 2, 7, 7])] += 1;
        }
        assert_eq!(
            (picked[0], picked[2]),
            (0, 0),
            "only the best scores: {picked:?}"
        );
        // Each of the three tied nodes gets about a third: far from 0 and from all.
        for i in [1, 3, 4] {
            assert!(
                (700..=1300).contains(&picked[i]),
                "ties unevenly spread: {picked:?}"
            );
        }
    }

    /// 400 nodes, some cordoned: every fourth and a block of 100.
    fn partly_cordoned() -> (Scheduler, usize) {
        let cordoned = |i: usize| i % 4 == 1 || (100..200).contains(&i);
        let nodes: Vec<_> = (0..400)
            .map(|i| {
                let mut n = node(&format!("n{i}"), "4", "8Gi", "110");
                if cordoned(i) {
                    n.spec.as_mut().expect("spec").unschedulable = Some(true);
                }
                n
            })
            .collect();
        (
            sched(nodes, vec![]),
            (0..400).filter(|&i| cordoned(i)).count(),
        )
    }

    #[test]
    fn cordoned_nodes_are_passed_in_the_same_rotation_without_filtering() {
        let (mut s, _) = partly_cordoned();
        let want = num_feasible_nodes_to_find(400);
        let p = info(pod("p", "100m", "100Mi"));
        let state = plugins::pre_filter(&p, &s.cache).expect("pre-filter");
        for start in [0, 3, 99, 150, 250, 399] {
            s.next_start_node_index = start;
            let (feasible, _) = s.find_nodes_that_fit(&state, 400);
            // What filtering every node in turn finds, and where it stops.
            let infos = s.cache.node_infos();
            let order: Vec<usize> = (0..400).map(|i| (start + i) % 400).collect();
            let expected: Vec<usize> = order
                .iter()
                .copied()
                .filter(|&i| !infos[i].unschedulable())
                .take(want)
                .collect();
            assert_eq!(feasible, expected, "from {start}");
            let last = expected.last().expect("some fit");
            let passed = order.iter().position(|i| i == last).expect("in order") + 1;
            assert_eq!(s.next_start_node_index, (start + passed) % 400);
        }
        // Uncordoning a node puts it back in the rotation.
        let mut n0 = node("n1", "4", "8Gi", "110");
        n0.spec.as_mut().expect("spec").unschedulable = Some(false);
        s.cache.set_node(Arc::new(n0));
        s.next_start_node_index = 0;
        let (feasible, _) = s.find_nodes_that_fit(&state, 400);
        assert_eq!(&feasible[..3], &[0, 1, 2]);
    }

    #[test]
    fn a_pod_that_fits_nowhere_counts_the_cordoned_nodes() {
        let (mut s, cordoned) = partly_cordoned();
        match run(&mut s, pod("big", "8", "1Gi")) {
            Decision::Failed { message, .. } => {
                // Upstream sorts the counted reasons as strings: "175 node(s)" < "225 Ins".
                assert!(
                    message.starts_with(&format!(
                        "0/400 nodes are available: {cordoned} node(s) were unschedulable, {} \
                         Insufficient cpu.",
                        400 - cordoned
                    )),
                    "{message}"
                );
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        // A pod that tolerates cordoned nodes is filtered on every node as before.
        let mut p = pod("tolerant", "100m", "100Mi");
        p.spec.as_mut().expect("spec").tolerations = Some(vec![Toleration {
            key: Some("node.kubernetes.io/unschedulable".into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        }]);
        let p = info(p);
        let state = plugins::pre_filter(&p, &s.cache).expect("pre-filter");
        s.next_start_node_index = 100;
        let (feasible, _) = s.find_nodes_that_fit(&state, 400);
        assert_eq!(feasible[0], 100, "a cordoned node takes it");
    }

    #[test]
    fn rotates_the_start_node() {
        let nodes: Vec<_> = (0..200)
            .map(|i| node(&format!("n{i}"), "4", "8Gi", "110"))
            .collect();
        let mut s = sched(nodes, vec![]);
        let _ = run(&mut s, pod("p", "", ""));
        assert_eq!(s.next_start_node_index, 100);
        let _ = run(&mut s, pod("q", "", ""));
        assert_eq!(s.next_start_node_index, 0);
    }
}
