//! TaintToleration: a node's NoSchedule and NoExecute taints must be tolerated; untolerated
//! PreferNoSchedule taints lower the node's score.

use crate::cache::NodeInfo;
use crate::framework::{Plugin, Status};
use k8s_openapi::api::core::v1::{Taint, Toleration};

/// Upstream's `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    if t.key
        .as_deref()
        .is_some_and(|k| !k.is_empty() && k != taint.key)
    {
        return false;
    }
    match t.operator.as_deref() {
        None | Some("") | Some("Equal") => {
            t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
        }
        Some("Exists") => true,
        _ => false,
    }
}

pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

pub fn filter(tolerations: &[Toleration], node: &NodeInfo) -> Result<(), Status> {
    let untolerated = node.taints().iter().find(|t| {
        (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(tolerations, t)
    });
    match untolerated {
        None => Ok(()),
        Some(t) => Err(Status::unresolvable(
            Plugin::TaintToleration,
            format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or_default()
            ),
        )),
    }
}

/// The raw score: how many PreferNoSchedule taints the pod does not tolerate (normalized in
/// reverse, so fewer is better).
pub fn score(tolerations: &[Toleration], node: &NodeInfo) -> i64 {
    let prefer: Vec<&Toleration> = tolerations
        .iter()
        .filter(|t| {
            t.effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
        })
        .collect();
    node.taints()
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !prefer.iter().any(|tol| tolerates(tol, t)))
        .count() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::testing::*;
    use std::sync::Arc;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: (!value.is_empty()).then(|| value.to_string()),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn tol(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
        Toleration {
            key: (!key.is_empty()).then(|| key.to_string()),
            operator: (!op.is_empty()).then(|| op.to_string()),
            value: (!value.is_empty()).then(|| value.to_string()),
            effect: (!effect.is_empty()).then(|| effect.to_string()),
            toleration_seconds: None,
        }
    }

    fn tainted(taints: Vec<Taint>) -> NodeInfo {
        let mut n = node("n", "1", "1Gi", "10");
        n.spec.get_or_insert_default().taints = Some(taints);
        let c = cache(vec![n], vec![]);
        c.node_info("n").cloned().expect("node")
    }

    #[test]
    fn untolerated_taints_are_named() {
        let n = tainted(vec![taint("dedicated", "gpu", "NoSchedule")]);
        let err = filter(&[], &n).expect_err("rejected");
        assert_eq!(
            err.reasons,
            vec!["node(s) had untolerated taint {dedicated: gpu}"]
        );
        assert!(filter(&[tol("dedicated", "Equal", "gpu", "NoSchedule")], &n).is_ok());
        assert!(filter(&[tol("dedicated", "Exists", "", "")], &n).is_ok());
        assert!(filter(&[tol("", "Exists", "", "")], &n).is_ok());
        assert!(filter(&[tol("dedicated", "Equal", "cpu", "")], &n).is_err());
        assert!(filter(&[tol("dedicated", "Exists", "", "NoExecute")], &n).is_err());
    }

    #[test]
    fn prefer_no_schedule_only_scores() {
        let n = tainted(vec![
            taint("a", "", "PreferNoSchedule"),
            taint("b", "", "PreferNoSchedule"),
        ]);
        assert!(filter(&[], &n).is_ok());
        assert_eq!(score(&[], &n), 2);
        assert_eq!(score(&[tol("a", "Exists", "", "PreferNoSchedule")], &n), 1);
        assert_eq!(score(&[tol("a", "Exists", "", "NoSchedule")], &n), 2);
        let _ = Arc::new(());
    }
}
