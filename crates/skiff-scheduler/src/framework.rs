//! The scheduling framework's vocabulary: plugin names, filter statuses, and the fit error
//! message upstream users read in `kubectl describe pod`.

use std::borrow::Cow;
use std::collections::HashMap;

/// The plugins of the default profile that can reject a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Plugin {
    SchedulingGates,
    NodeUnschedulable,
    NodeName,
    TaintToleration,
    NodeAffinity,
    NodePorts,
    NodeResourcesFit,
    VolumeBinding,
    PodTopologySpread,
    InterPodAffinity,
    DefaultPreemption,
}

impl Plugin {
    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of plugins (the ones that rejected a pod, or the ones an event may help).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PluginSet(u16);

impl PluginSet {
    pub const ALL: PluginSet = PluginSet(u16::MAX);

    pub fn of(plugins: &[Plugin]) -> PluginSet {
        PluginSet(plugins.iter().fold(0, |acc, p| acc | p.bit()))
    }

    pub fn insert(&mut self, p: Plugin) {
        self.0 |= p.bit();
    }

    pub fn contains(self, p: Plugin) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn intersects(self, o: PluginSet) -> bool {
        self.0 & o.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Preemption may help.
    Unschedulable,
    /// Removing pods from the node would not help.
    UnschedulableAndUnresolvable,
}

/// Why a node cannot take a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub plugin: Plugin,
    /// Most reasons are fixed strings: a rejection on every node of a large cluster should
    /// not allocate each one again.
    pub reasons: Vec<Cow<'static, str>>,
}

impl Status {
    pub fn unschedulable(plugin: Plugin, reason: impl Into<Cow<'static, str>>) -> Status {
        Status {
            code: Code::Unschedulable,
            plugin,
            reasons: vec![reason.into()],
        }
    }

    pub fn unresolvable(plugin: Plugin, reason: impl Into<Cow<'static, str>>) -> Status {
        Status {
            code: Code::UnschedulableAndUnresolvable,
            plugin,
            reasons: vec![reason.into()],
        }
    }
}

/// Per-node failure statuses of one scheduling attempt, plus a status for nodes not listed.
#[derive(Debug, Clone, Default)]
pub struct NodeToStatus {
    pub nodes: HashMap<String, Status>,
    pub absent: Option<Status>,
}

impl NodeToStatus {
    /// The reason histogram: `(reason, nodes)`, counting unlisted nodes under the absent
    /// status. A pod rejected by thousands of nodes has a handful of distinct reasons, so they
    /// are counted in a short list rather than a map.
    fn histogram(&self, num_all_nodes: usize) -> Vec<(&str, usize)> {
        fn count<'a>(reasons: &mut Vec<(&'a str, usize)>, reason: &'a str, n: usize) {
            match reasons.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, c)) => *c += n,
                None => reasons.push((reason, n)),
            }
        }
        let mut reasons = Vec::new();
        for s in self.nodes.values() {
            for r in &s.reasons {
                count(&mut reasons, r, 1);
            }
        }
        if let Some(a) = &self.absent
            && self.nodes.len() < num_all_nodes
        {
            for r in &a.reasons {
                count(&mut reasons, r, num_all_nodes - self.nodes.len());
            }
        }
        reasons
    }
}

/// Why no node fits, formatted as upstream's `FitError.Error()`.
#[derive(Debug, Clone, Default)]
pub struct Diagnosis {
    pub num_all_nodes: usize,
    pub node_to_status: NodeToStatus,
    pub pre_filter_msg: Option<String>,
    pub post_filter_msg: Option<String>,
    pub unschedulable_plugins: PluginSet,
}

impl Diagnosis {
    pub fn message(&self) -> String {
        let mut msg = format!("0/{} nodes are available:", self.num_all_nodes);
        if let Some(p) = &self.pre_filter_msg {
            msg.push_str(&format!(" {p}."));
        } else {
            let mut parts: Vec<String> = self
                .node_to_status
                .histogram(self.num_all_nodes)
                .into_iter()
                .map(|(reason, n)| format!("{n} {reason}"))
                .collect();
            // Upstream sorts the formatted strings, counts included.
            parts.sort();
            if !parts.is_empty() {
                msg.push_str(&format!(" {}.", parts.join(", ")));
            }
        }
        if let Some(p) = &self.post_filter_msg {
            msg.push_str(&format!(" {p}"));
        }
        msg
    }
}

/// Upstream's `DefaultNormalizeScore`: scales scores to 0..=max, optionally reversed.
pub fn default_normalize_score(max: i64, reverse: bool, scores: &mut [i64]) {
    let highest = scores.iter().copied().max().unwrap_or(0);
    if highest == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = max);
        }
        return;
    }
    for s in scores.iter_mut() {
        *s = max * *s / highest;
        if reverse {
            *s = max - *s;
        }
    }
}

pub const MAX_NODE_SCORE: i64 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_error_sorts_reasons_with_counts() {
        let mut d = Diagnosis {
            num_all_nodes: 5,
            ..Diagnosis::default()
        };
        let mut add = |n: &str, s: Status| {
            d.node_to_status.nodes.insert(n.into(), s);
        };
        add(
            "a",
            Status::unschedulable(Plugin::NodeResourcesFit, "Insufficient memory"),
        );
        add(
            "b",
            Status::unschedulable(Plugin::NodeResourcesFit, "Insufficient memory"),
        );
        add(
            "c",
            Status::unschedulable(Plugin::NodeResourcesFit, "Insufficient memory"),
        );
        add(
            "d",
            Status::unresolvable(
                Plugin::TaintToleration,
                "node(s) had untolerated taint {dedicated: gpu}",
            ),
        );
        add(
            "e",
            Status::unresolvable(Plugin::NodeUnschedulable, "node(s) were unschedulable"),
        );
        d.post_filter_msg = Some(
            "preemption: 0/5 nodes are available: 5 No preemption victims found for incoming pod."
                .into(),
        );
        assert_eq!(
            d.message(),
            "0/5 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable, 3 Insufficient memory. preemption: 0/5 nodes are available: 5 No preemption victims found for incoming pod."
        );
    }

    #[test]
    fn several_reasons_on_one_node_count_separately() {
        let mut d = Diagnosis {
            num_all_nodes: 3,
            ..Diagnosis::default()
        };
        for n in ["a", "b", "c"] {
            d.node_to_status.nodes.insert(
                n.into(),
                Status {
                    code: Code::Unschedulable,
                    plugin: Plugin::NodeResourcesFit,
                    reasons: vec!["Insufficient cpu".into(), "Insufficient memory".into()],
                },
            );
        }
        assert_eq!(
            d.message(),
            "0/3 nodes are available: 3 Insufficient cpu, 3 Insufficient memory."
        );
    }

    #[test]
    fn absent_nodes_and_pre_filter_messages() {
        let d = Diagnosis {
            num_all_nodes: 3,
            node_to_status: NodeToStatus {
                nodes: HashMap::new(),
                absent: Some(Status::unresolvable(
                    Plugin::DefaultPreemption,
                    "Preemption is not helpful for scheduling",
                )),
            },
            ..Diagnosis::default()
        };
        assert_eq!(
            d.message(),
            "0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
        let d = Diagnosis {
            num_all_nodes: 2,
            pre_filter_msg: Some("persistentvolumeclaim \"data\" not found".into()),
            ..Diagnosis::default()
        };
        assert_eq!(
            d.message(),
            "0/2 nodes are available: persistentvolumeclaim \"data\" not found."
        );
    }

    #[test]
    fn normalize_scores() {
        let mut s = vec![0, 5, 10];
        default_normalize_score(100, false, &mut s);
        assert_eq!(s, vec![0, 50, 100]);
        let mut s = vec![0, 5, 10];
        default_normalize_score(100, true, &mut s);
        assert_eq!(s, vec![100, 50, 0]);
        let mut s = vec![0, 0];
        default_normalize_score(100, true, &mut s);
        assert_eq!(s, vec![100, 100]);
    }
}
