//! NodeUnschedulable: a cordoned node (`spec.unschedulable`) takes only pods that tolerate the
//! `node.kubernetes.io/unschedulable:NoSchedule` taint.

use crate::cache::NodeInfo;
use crate::framework::{Plugin, Status};
use crate::plugins::taint_toleration::tolerated;
use k8s_openapi::api::core::v1::{Taint, Toleration};

pub const REASON: &str = "node(s) were unschedulable";

pub fn filter(tolerations: &[Toleration], node: &NodeInfo) -> Result<(), Status> {
    if !node.unschedulable() || tolerates(tolerations) {
        Ok(())
    } else {
        Err(rejection())
    }
}

/// Whether a pod with `tolerations` may go to cordoned nodes.
pub fn tolerates(tolerations: &[Toleration]) -> bool {
    // Built once: every node of a cordoned cluster is checked against it for every pod.
    static TAINT: std::sync::LazyLock<Taint> = std::sync::LazyLock::new(|| Taint {
        key: "node.kubernetes.io/unschedulable".into(),
        effect: "NoSchedule".into(),
        value: None,
        time_added: None,
    });
    tolerated(tolerations, &TAINT)
}

/// What a cordoned node answers a pod that does not tolerate it.
pub fn rejection() -> Status {
    Status::unresolvable(Plugin::NodeUnschedulable, REASON)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::testing::*;

    #[test]
    fn cordoned_nodes_need_the_toleration() {
        let mut n = node("n", "1", "1Gi", "10");
        n.spec.get_or_insert_default().unschedulable = Some(true);
        let c = cache(vec![n], vec![]);
        let n = c.node_info("n").expect("node");
        assert_eq!(filter(&[], n).expect_err("rejected").reasons, vec![REASON]);
        let tol = Toleration {
            key: Some("node.kubernetes.io/unschedulable".into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        };
        assert!(filter(&[tol], n).is_ok());
        let c = cache(vec![node("m", "1", "1Gi", "10")], vec![]);
        assert!(filter(&[], c.node_info("m").expect("node")).is_ok());
    }
}
