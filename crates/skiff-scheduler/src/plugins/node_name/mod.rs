//! NodeName: a pod that names a node in `spec.nodeName` only fits that node.
//!
//! The scheduler only sees pods without `spec.nodeName`, so this matters for the nominated and
//! preemption paths that evaluate pods as they are written; it stays for parity with upstream.

use crate::cache::NodeInfo;
use crate::framework::{Plugin, Status};
use crate::pod_info::PodInfo;

pub const REASON: &str = "node(s) didn't match the requested node name";

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
    match pod.node_name() {
        Some(n) if n != node.name => Err(Status::unresolvable(Plugin::NodeName, REASON)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::testing::*;

    #[test]
    fn only_the_named_node_fits() {
        let c = cache(
            vec![node("a", "1", "1Gi", "10"), node("b", "1", "1Gi", "10")],
            vec![],
        );
        let p = info(on(pod("p", "", ""), "a"));
        assert!(filter(&p, c.node_info("a").expect("a")).is_ok());
        assert_eq!(
            filter(&p, c.node_info("b").expect("b"))
                .expect_err("rejected")
                .reasons,
            vec![REASON]
        );
        let free = info(pod("q", "", ""));
        assert!(filter(&free, c.node_info("b").expect("b")).is_ok());
    }
}
