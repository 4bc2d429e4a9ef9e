//! NodeResourcesBalancedAllocation: prefers nodes whose cpu and memory would be used in equal
//! fractions after placing the pod.

use crate::cache::NodeInfo;
use crate::framework::MAX_NODE_SCORE;
use crate::resources::Resource;

/// Best-effort pods (no cpu or memory requests) are not scored, as upstream skips them.
pub fn skip(req: &Resource) -> bool {
    req.milli_cpu == 0 && req.memory == 0
}

pub fn score(req: &Resource, node: &NodeInfo) -> i64 {
    // The fraction of each resource the node would have in use, for those it has any of.
    let fraction = |requested: i64, capacity: i64| {
        (capacity > 0).then(|| (requested as f64 / capacity as f64).min(1.0))
    };
    let cpu = fraction(
        node.requested.milli_cpu + req.milli_cpu,
        node.allocatable.milli_cpu,
    );
    let memory = fraction(node.requested.memory + req.memory, node.allocatable.memory);
    // With two resources the standard deviation is half their difference; with one, zero.
    let std = match (cpu, memory) {
        (Some(c), Some(m)) => ((c - m) / 2.0).abs(),
        _ => 0.0,
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::testing::*;

    #[test]
    fn balanced_nodes_score_higher() {
        let c = cache(
            vec![node("a", "4", "4Gi", "10"), node("b", "4", "4Gi", "10")],
            vec![on(pod("x", "2", ""), "a")],
        );
        let p = info(pod("p", "1", "1Gi"));
        let req = p.requests_or_zero();
        // a: cpu 3/4, memory 1/4 → std 0.25 → 75; b: 1/4 and 1/4 → 100.
        assert_eq!(score(&req, c.node_info("a").expect("a")), 75);
        assert_eq!(score(&req, c.node_info("b").expect("b")), 100);
        assert!(skip(&info(pod("be", "", "")).requests_or_zero()));
    }
}
