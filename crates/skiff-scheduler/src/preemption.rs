//! DefaultPreemption (PostFilter): when no node fits, finds the node where evicting the fewest
//! and least important lower-priority pods makes room, as upstream's evaluator does.

use crate::cache::{Cache, NodeInfo};
use crate::framework::{Code, Diagnosis, NodeToStatus, Plugin, Status};
use crate::plugins::{self, CycleState};
use crate::pod_info::{PodInfo, PodKey};
use crate::queue::SchedulingQueue;
use crate::selector::Selector;
use k8s_openapi::api::core::v1::Pod;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";
pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// Upstream's `minCandidateNodesPercentage` and `minCandidateNodesAbsolute` defaults.
const MIN_CANDIDATE_NODES_PERCENTAGE: usize = 10;
const MIN_CANDIDATE_NODES_ABSOLUTE: usize = 100;

/// The chosen node and the pods to evict from it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub node: String,
    /// Most important first.
    pub victims: Vec<Arc<PodInfo>>,
    pub pdb_violations: usize,
}

#[derive(Debug)]
pub enum Outcome {
    /// The pod may not preempt; the message is the PostFilter message.
    NotEligible(String),
    /// No node would fit even without its lower-priority pods.
    NoCandidate(String),
    Preempt {
        candidate: Candidate,
        /// Lower-priority pods nominated to the same node, whose nomination is cleared.
        lower_nominated: Vec<Arc<PodInfo>>,
    },
}

fn start_time(p: &Pod) -> Option<k8s_openapi::jiff::Timestamp> {
    p.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0)
}

/// Upstream's `MoreImportantPod`: higher priority, then started earlier (a pod not started yet
/// counts as starting now).
fn more_important(a: &PodInfo, b: &PodInfo) -> Ordering {
    let now = k8s_openapi::jiff::Timestamp::now();
    b.priority.cmp(&a.priority).then_with(|| {
        start_time(&a.pod)
            .unwrap_or(now)
            .cmp(&start_time(&b.pod).unwrap_or(now))
    })
}

/// The PDBs each pod's eviction would violate: (violating, non-violating), order kept.
fn split_by_pdb(pods: Vec<Arc<PodInfo>>, cache: &Cache) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: HashMap<&str, i64> = cache
        .pdbs
        .iter()
        .map(|(k, p)| {
            (
                k.as_str(),
                i64::from(
                    p.status
                        .as_ref()
                        .map(|s| s.disruptions_allowed)
                        .unwrap_or(0),
                ),
            )
        })
        .collect();
    let (mut violating, mut fine) = (Vec::new(), Vec::new());
    for pod in pods {
        let mut violated = false;
        if !pod.labels.is_empty() {
            for (key, pdb) in &cache.pdbs {
                if pdb.metadata.namespace.as_deref() != Some(pod.namespace.as_str()) {
                    continue;
                }
                let Ok(sel) = Selector::from_label_selector(
                    pdb.spec.as_ref().and_then(|s| s.selector.as_ref()),
                ) else {
                    continue;
                };
                // A PDB with an empty selector matches nothing.
                if sel.nothing || sel.is_everything() || !sel.matches(&pod.labels) {
                    continue;
                }
                if pdb
                    .status
                    .as_ref()
                    .and_then(|s| s.disrupted_pods.as_ref())
                    .is_some_and(|d| d.contains_key(&pod.name))
                {
                    continue;
                }
                if let Some(n) = allowed.get_mut(key.as_str()) {
                    *n -= 1;
                    if *n < 0 {
                        violated = true;
                    }
                }
            }
        }
        if violated {
            violating.push(pod);
        } else {
            fine.push(pod);
        }
    }
    (violating, fine)
}

/// Upstream's `SelectVictimsOnNode`: remove every lower-priority pod, check the preemptor fits,
/// then reprieve as many as possible, most important first (PDB-protected ones before others).
pub fn select_victims(
    state: &CycleState,
    node: &NodeInfo,
    cache: &Cache,
    nominated: &[Arc<PodInfo>],
) -> Result<Candidate, Status> {
    let pod = &state.pod;
    let mut info = node.clone();
    let mut st = state.clone();
    let mut potential: Vec<Arc<PodInfo>> = info
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    if potential.is_empty() {
        return Err(Status::unresolvable(Plugin::DefaultPreemption, NO_VICTIMS));
    }
    for p in &potential {
        info.remove_pod(&p.key);
        st.update(p, &info, -1, &cache.namespaces);
    }
    plugins::filter_with_nominated(&st, &info, nominated, &cache.namespaces)?;
    potential.sort_by(|a, b| more_important(a, b));
    let (violating, fine) = split_by_pdb(potential, cache);
    let had_both = !violating.is_empty() && !fine.is_empty();
    let mut victims = Vec::new();
    let mut pdb_violations = 0;
    for (is_violating, p) in violating
        .into_iter()
        .map(|p| (true, p))
        .chain(fine.into_iter().map(|p| (false, p)))
    {
        info.add_pod(p.clone());
        st.update(&p, &info, 1, &cache.namespaces);
        if plugins::filter_with_nominated(&st, &info, nominated, &cache.namespaces).is_err() {
            info.remove_pod(&p.key);
            st.update(&p, &info, -1, &cache.namespaces);
            if is_violating {
                pdb_violations += 1;
            }
            victims.push(p);
        }
    }
    if had_both {
        victims.sort_by(|a, b| more_important(a, b));
    }
    Ok(Candidate {
        node: node.name.clone(),
        victims,
        pdb_violations,
    })
}

/// Upstream's `pickOneNodeForPreemption`: fewest PDB violations, then the lowest highest
/// victim priority, the smallest priority sum, the fewest victims, the latest start.
pub fn pick_one(candidates: Vec<Candidate>) -> Option<Candidate> {
    type Score = fn(&Candidate) -> i128;
    let scores: [Score; 5] = [
        |c| -(c.pdb_violations as i128),
        |c| -i128::from(c.victims.first().map(|p| p.priority).unwrap_or(0)),
        |c| {
            -c.victims
                .iter()
                .map(|p| i128::from(p.priority) + i128::from(i32::MAX) + 1)
                .sum::<i128>()
        },
        |c| -(c.victims.len() as i128),
        |c| {
            let top = c.victims.first().map(|p| p.priority).unwrap_or(0);
            c.victims
                .iter()
                .filter(|p| p.priority == top)
                .filter_map(|p| start_time(&p.pod))
                .min()
                .map(|t| t.as_nanosecond())
                .unwrap_or(i128::MIN)
        },
    ];
    let mut remaining = candidates;
    for f in scores {
        if remaining.len() <= 1 {
            break;
        }
        let best = remaining.iter().map(f).max()?;
        remaining.retain(|c| f(c) == best);
    }
    remaining.into_iter().next()
}

/// Runs preemption for a pod that fits nowhere. `diagnosis` holds the filter statuses.
pub fn preempt(
    state: &CycleState,
    diagnosis: &Diagnosis,
    cache: &Cache,
    queue: &SchedulingQueue,
) -> Outcome {
    let pod = &state.pod;
    let spec = pod.spec();
    if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
        return Outcome::NotEligible("not eligible due to preemptionPolicy=Never.".into());
    }
    let status_of = |node: &str| {
        diagnosis
            .node_to_status
            .nodes
            .get(node)
            .or(diagnosis.node_to_status.absent.as_ref())
    };
    let nominated = pod
        .pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.clone())
        .or_else(|| queue.nominated_node(&pod.key).map(str::to_string))
        .filter(|n| !n.is_empty());
    if let Some(nom) = nominated
        && status_of(&nom).is_none_or(|s| s.code != Code::UnschedulableAndUnresolvable)
        && let Some(info) = cache.node_info(&nom)
        && info.pods.iter().any(|p| {
            p.priority < pod.priority && p.is_terminating() && terminating_by_preemption(&p.pod)
        })
    {
        return Outcome::NotEligible(
            "not eligible due to a terminating pod on the nominated node.".into(),
        );
    }
    // Only nodes that failed with a resolvable status can be helped by removing pods: when
    // none did (every node cordoned, say), there is no need to look each one up.
    let any_resolvable = diagnosis
        .node_to_status
        .nodes
        .values()
        .chain(diagnosis.node_to_status.absent.as_ref())
        .any(|s| s.code == Code::Unschedulable);
    let potential: Vec<&NodeInfo> = cache
        .node_infos()
        .iter()
        .filter(|n| any_resolvable && n.node.is_some())
        .filter(|n| status_of(&n.name).is_some_and(|s| s.code == Code::Unschedulable))
        .collect();
    let mut statuses = NodeToStatus {
        nodes: HashMap::new(),
        absent: Some(Status::unresolvable(Plugin::DefaultPreemption, NOT_HELPFUL)),
    };
    let mut candidates: Vec<Candidate> = Vec::new();
    if !potential.is_empty() {
        let want = (potential.len() * MIN_CANDIDATE_NODES_PERCENTAGE / 100)
            .max(MIN_CANDIDATE_NODES_ABSOLUTE)
            .min(potential.len());
        let offset = rand::random_range(0..potential.len());
        let mut non_violating = 0;
        for i in 0..potential.len() {
            let node = potential[(offset + i) % potential.len()];
            match select_victims(state, node, cache, queue.nominated_for(&node.name)) {
                Ok(c) if !c.victims.is_empty() => {
                    if c.pdb_violations == 0 {
                        non_violating += 1;
                    }
                    candidates.push(c);
                    if non_violating > 0 && candidates.len() >= want {
                        break;
                    }
                }
                Ok(_) => {
                    statuses.nodes.insert(
                        node.name.clone(),
                        Status::unresolvable(Plugin::DefaultPreemption, NO_VICTIMS),
                    );
                }
                Err(s) => {
                    statuses.nodes.insert(node.name.clone(), s);
                }
            }
        }
    } else {
        statuses.nodes.clear();
    }
    // Candidates without PDB violations come first, as upstream lists them.
    candidates.sort_by_key(|c| c.pdb_violations > 0);
    let Some(candidate) = pick_one(candidates) else {
        let fit = Diagnosis {
            num_all_nodes: cache.node_count(),
            node_to_status: statuses,
            ..Diagnosis::default()
        };
        return Outcome::NoCandidate(fit.message());
    };
    let lower_nominated = queue
        .nominated_for(&candidate.node)
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    Outcome::Preempt {
        candidate,
        lower_nominated,
    }
}

/// A pod already being deleted because this scheduler preempted it.
pub fn terminating_by_preemption(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.type_ == "DisruptionTarget")
            .is_some_and(|c| {
                c.status == "True" && c.reason.as_deref() == Some("PreemptionByScheduler")
            })
}

/// Keys of pods, for logs.
pub fn keys(pods: &[Arc<PodInfo>]) -> Vec<PodKey> {
    pods.iter().map(|p| p.key.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::testing::*;
    use crate::plugins::pre_filter;

    fn prio(mut p: Pod, priority: i32) -> Pod {
        p.spec.get_or_insert_default().priority = Some(priority);
        p
    }

    fn diagnose(state: &CycleState, cache: &Cache) -> Diagnosis {
        let mut d = Diagnosis {
            num_all_nodes: cache.node_count(),
            ..Diagnosis::default()
        };
        for n in cache.node_infos() {
            if let Err(s) = plugins::filter(state, n, &cache.namespaces) {
                d.node_to_status.nodes.insert(n.name.clone(), s);
            }
        }
        d
    }

    #[test]
    fn evicts_the_fewest_lowest_priority_pods() {
        let c = cache(
            vec![node("a", "2", "4Gi", "10"), node("b", "2", "4Gi", "10")],
            vec![
                on(prio(pod("a-low", "1", ""), 10), "a"),
                on(prio(pod("a-mid", "1", ""), 50), "a"),
                on(prio(pod("b-mid1", "1", ""), 50), "b"),
                on(prio(pod("b-mid2", "1", ""), 50), "b"),
            ],
        );
        let p = info(prio(pod("p", "1", ""), 100));
        let state = pre_filter(&p, &c).expect("prefilter");
        let d = diagnose(&state, &c);
        assert_eq!(d.message(), "0/2 nodes are available: 2 Insufficient cpu.");
        let q = SchedulingQueue::new();
        match preempt(&state, &d, &c, &q) {
            Outcome::Preempt { candidate, .. } => {
                assert_eq!(candidate.node, "a");
                assert_eq!(keys(&candidate.victims), vec!["default/a-low"]);
            }
            other => panic!("expected a candidate, got {other:?}"),
        }
    }

    #[test]
    fn no_victims_and_not_helpful_messages() {
        let mut tainted = node("t", "2", "4Gi", "10");
        tainted.spec.get_or_insert_default().unschedulable = Some(true);
        let c = cache(
            vec![node("a", "1", "4Gi", "10"), tainted],
            vec![on(prio(pod("high", "1", ""), 1000), "a")],
        );
        let p = info(prio(pod("p", "1", ""), 100));
        let state = pre_filter(&p, &c).expect("prefilter");
        let d = diagnose(&state, &c);
        let q = SchedulingQueue::new();
        match preempt(&state, &d, &c, &q) {
            Outcome::NoCandidate(msg) => assert_eq!(
                msg,
                "0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling."
            ),
            other => panic!("expected no candidate, got {other:?}"),
        }
        let mut never = prio(pod("n", "1", ""), 100);
        never.spec.get_or_insert_default().preemption_policy = Some("Never".into());
        let never = info(never);
        let state = pre_filter(&never, &c).expect("prefilter");
        assert!(matches!(
            preempt(&state, &d, &c, &q),
            Outcome::NotEligible(m) if m == "not eligible due to preemptionPolicy=Never."
        ));
    }

    #[test]
    fn reprieves_pods_that_can_stay() {
        let c = cache(
            vec![node("a", "3", "4Gi", "10")],
            vec![
                on(prio(pod("x", "1", ""), 1), "a"),
                on(prio(pod("y", "1", ""), 2), "a"),
                on(prio(pod("z", "1", ""), 3), "a"),
            ],
        );
        let p = info(prio(pod("p", "2", ""), 100));
        let state = pre_filter(&p, &c).expect("prefilter");
        let cand = select_victims(&state, c.node_info("a").expect("a"), &c, &[]).expect("fits");
        // z (most important) is reprieved; y and x go.
        assert_eq!(keys(&cand.victims), vec!["default/y", "default/x"]);
    }

    #[test]
    fn pick_one_prefers_lower_priority_victims_then_fewer() {
        let mk = |node: &str, prios: &[i32]| Candidate {
            node: node.into(),
            victims: prios
                .iter()
                .enumerate()
                .map(|(i, p)| info(prio(pod(&format!("{node}{i}"), "", ""), *p)))
                .collect(),
            pdb_violations: 0,
        };
        let best = pick_one(vec![mk("a", &[50]), mk("b", &[10, 5]), mk("c", &[10])]);
        assert_eq!(best.map(|c| c.node), Some("c".into()));
        let mut violating = mk("d", &[1]);
        violating.pdb_violations = 1;
        let best = pick_one(vec![violating, mk("e", &[40])]);
        assert_eq!(best.map(|c| c.node), Some("e".into()));
    }
}
