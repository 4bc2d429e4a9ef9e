//! NodeResourcesFit (the filter and the LeastAllocated score) and
//! NodeResourcesBalancedAllocation.

pub mod balanced_allocation;

use crate::cache::NodeInfo;
use crate::framework::{MAX_NODE_SCORE, Plugin, Status};
use crate::resources::Resource;
use std::borrow::Cow;

pub const TOO_MANY_PODS: &str = "Too many pods";

/// The reasons a node lacks room for `req` (empty when it fits).
pub fn insufficient(req: &Resource, node: &NodeInfo) -> Vec<Cow<'static, str>> {
    let mut reasons = Vec::new();
    let alloc = &node.allocatable;
    let used = &node.requested;
    if node.pods.len() as i64 + 1 > alloc.allowed_pod_number {
        reasons.push(TOO_MANY_PODS.into());
    }
    if req.milli_cpu > 0 && req.milli_cpu > alloc.milli_cpu - used.milli_cpu {
        reasons.push("Insufficient cpu".into());
    }
    if req.memory > 0 && req.memory > alloc.memory - used.memory {
        reasons.push("Insufficient memory".into());
    }
    if req.ephemeral_storage > 0
        && req.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage
    {
        reasons.push("Insufficient ephemeral-storage".into());
    }
    for (name, q) in &req.scalar {
        if *q > 0 && *q > alloc.scalar(name) - used.scalar(name) {
            reasons.push(format!("Insufficient {name}").into());
        }
    }
    reasons
}

pub fn filter(req: &Resource, node: &NodeInfo) -> Result<(), Status> {
    let reasons = insufficient(req, node);
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Status {
            code: crate::framework::Code::Unschedulable,
            plugin: Plugin::NodeResourcesFit,
            reasons,
        })
    }
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

/// LeastAllocated with cpu and memory weighted 1 each, on requests with scoring defaults.
pub fn least_allocated_score(non_zero: (i64, i64), node: &NodeInfo) -> i64 {
    let pairs = [
        (
            node.non_zero_requested.0 + non_zero.0,
            node.allocatable.milli_cpu,
        ),
        (
            node.non_zero_requested.1 + non_zero.1,
            node.allocatable.memory,
        ),
    ];
    let (mut score, mut weights) = (0, 0);
    for (req, cap) in pairs {
        if cap == 0 {
            continue;
        }
        score += least_requested(req, cap);
        weights += 1;
    }
    if weights == 0 { 0 } else { score / weights }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::testing::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    #[test]
    fn fit_reports_every_missing_resource() {
        let c = cache(
            vec![node("n", "2", "2Gi", "2")],
            vec![on(pod("a", "1500m", "1Gi"), "n")],
        );
        let n = c.node_info("n").expect("n");
        let p = info(pod("p", "1", "2Gi"));
        let err = filter(&p.requests_or_zero(), n).expect_err("too big");
        assert_eq!(err.reasons, vec!["Insufficient cpu", "Insufficient memory"]);
        let small = info(pod("q", "500m", "1Gi"));
        assert!(filter(&small.requests_or_zero(), n).is_ok());
    }

    #[test]
    fn pod_count_and_extended_resources() {
        let mut full = node("n", "2", "2Gi", "1");
        full.status
            .get_or_insert_default()
            .allocatable
            .get_or_insert_default()
            .insert("example.com/gpu".into(), Quantity("1".into()));
        let c = cache(vec![full], vec![on(pod("a", "", ""), "n")]);
        let n = c.node_info("n").expect("n");
        let mut p = pod("p", "", "");
        p.spec.get_or_insert_default().containers[0]
            .resources
            .get_or_insert_default()
            .requests
            .get_or_insert_default()
            .insert("example.com/gpu".into(), Quantity("2".into()));
        let p = info(p);
        assert_eq!(
            filter(&p.requests_or_zero(), n).expect_err("full").reasons,
            vec!["Too many pods", "Insufficient example.com/gpu"]
        );
    }

    #[test]
    fn least_allocated_prefers_emptier_nodes() {
        let c = cache(
            vec![node("a", "4", "4Gi", "10"), node("b", "4", "4Gi", "10")],
            vec![on(pod("x", "2", "2Gi"), "a")],
        );
        let p = info(pod("p", "1", "1Gi"));
        let a = least_allocated_score(p.non_zero, c.node_info("a").expect("a"));
        let b = least_allocated_score(p.non_zero, c.node_info("b").expect("b"));
        assert_eq!(a, 25);
        assert_eq!(b, 75);
        // A pod without requests counts 100m and 200Mi.
        let be = info(pod("be", "", ""));
        assert_eq!(be.non_zero, (100, 200 << 20));
    }
}
