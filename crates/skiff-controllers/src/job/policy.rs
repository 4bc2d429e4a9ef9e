//! A Job's podFailurePolicy (what a failed pod means) and successPolicy (when an Indexed Job
//! has succeeded early), matched as upstream matches them.

use k8s_openapi::api::batch::v1::{
    PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, SuccessPolicy,
};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition};
use std::collections::BTreeSet;

/// What a failed pod does to its Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Counts towards backoffLimit (no rule matched, or a Count rule).
    Count,
    /// Does not count; the pod is replaced.
    Ignore,
    /// Fails the pod's index (backoffLimitPerIndex).
    FailIndex,
    /// Fails the whole Job with this message.
    FailJob(String),
}

fn exit_code_matches(code: i32, req: &PodFailurePolicyOnExitCodesRequirement) -> bool {
    match req.operator.as_str() {
        "In" => req.values.contains(&code),
        "NotIn" => !req.values.contains(&code),
        _ => false,
    }
}

fn matching_container<'a>(
    statuses: Option<&'a Vec<ContainerStatus>>,
    req: &PodFailurePolicyOnExitCodesRequirement,
) -> Option<(&'a ContainerStatus, i32)> {
    statuses.into_iter().flatten().find_map(|cs| {
        let code = cs.state.as_ref()?.terminated.as_ref()?.exit_code;
        let name_ok = req.container_name.as_ref().is_none_or(|n| *n == cs.name);
        (name_ok && code != 0 && exit_code_matches(code, req)).then_some((cs, code))
    })
}

fn matching_condition<'a>(
    pod: &'a Pod,
    patterns: &[k8s_openapi::api::batch::v1::PodFailurePolicyOnPodConditionsPattern],
) -> Option<&'a PodCondition> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find(|c| {
        patterns
            .iter()
            .any(|p| p.type_ == c.type_ && p.status.as_deref().unwrap_or("True") == c.status)
    })
}

/// The action of the first rule that matches a failed pod.
pub fn match_pod_failure_policy(policy: Option<&PodFailurePolicy>, pod: &Pod) -> Action {
    let Some(policy) = policy else {
        return Action::Count;
    };
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let status = pod.status.as_ref();
    for (index, rule) in policy.rules.iter().enumerate() {
        let message = if let Some(req) = &rule.on_exit_codes {
            let found = matching_container(status.and_then(|s| s.container_statuses.as_ref()), req)
                .or_else(|| {
                    matching_container(status.and_then(|s| s.init_container_statuses.as_ref()), req)
                });
            let Some((cs, code)) = found else { continue };
            format!(
                "Container {} for pod {ns}/{name} failed with exit code {code} matching {} rule at index {index}",
                cs.name, rule.action
            )
        } else if let Some(patterns) = &rule.on_pod_conditions {
            let Some(c) = matching_condition(pod, patterns) else {
                continue;
            };
            format!(
                "Pod {ns}/{name} has condition {} matching {} rule at index {index}",
                c.type_, rule.action
            )
        } else {
            continue;
        };
        match rule.action.as_str() {
            "Ignore" => return Action::Ignore,
            "FailIndex" => return Action::FailIndex,
            "Count" => return Action::Count,
            "FailJob" => return Action::FailJob(message),
            _ => {}
        }
    }
    Action::Count
}

/// The message of the first successPolicy rule the succeeded indexes meet.
pub fn match_success_policy(
    policy: Option<&SuccessPolicy>,
    completions: i32,
    succeeded: &BTreeSet<i32>,
) -> Option<String> {
    let policy = policy?;
    if succeeded.is_empty() {
        return None;
    }
    for (index, rule) in policy.rules.iter().enumerate() {
        let matched = match &rule.succeeded_indexes {
            Some(s) => {
                let required = super::indexed::parse(s, completions);
                if required.is_empty() {
                    continue;
                }
                let done = required.intersection(succeeded).count();
                match rule.succeeded_count {
                    Some(n) => done >= n.max(0) as usize,
                    None => done == required.len(),
                }
            }
            None => rule
                .succeeded_count
                .is_some_and(|n| succeeded.len() >= n.max(0) as usize),
        };
        if matched {
            return Some(format!("Matched rules at index {index}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "status": status,
        }))
        .expect("pod literal")
    }

    fn policy(rules: serde_json::Value) -> PodFailurePolicy {
        serde_json::from_value(json!({ "rules": rules })).expect("policy literal")
    }

    #[test]
    fn exit_codes_and_conditions_pick_the_first_matching_rule() {
        let p = policy(json!([
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [42]}},
        ]));
        let exited = |code: i32| {
            pod(json!({"phase": "Failed", "containerStatuses": [{
                "name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code}}
            }]}))
        };
        assert_eq!(
            match_pod_failure_policy(Some(&p), &exited(42)),
            Action::FailJob(
                "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1"
                    .into()
            )
        );
        assert_eq!(
            match_pod_failure_policy(Some(&p), &exited(1)),
            Action::Count
        );
        let disrupted = pod(json!({"phase": "Failed", "conditions": [
            {"type": "DisruptionTarget", "status": "True"}
        ]}));
        assert_eq!(
            match_pod_failure_policy(Some(&p), &disrupted),
            Action::Ignore
        );
        assert_eq!(match_pod_failure_policy(None, &disrupted), Action::Count);
        let fail_job_on_condition = policy(json!([
            {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]));
        assert_eq!(
            match_pod_failure_policy(Some(&fail_job_on_condition), &disrupted),
            Action::FailJob(
                "Pod ns/p has condition DisruptionTarget matching FailJob rule at index 0".into()
            )
        );
    }

    #[test]
    fn success_policy_rules() {
        let p: SuccessPolicy = serde_json::from_value(json!({"rules": [
            {"succeededIndexes": "0-2", "succeededCount": 2},
            {"succeededCount": 4},
        ]}))
        .expect("policy literal");
        let s = |v: &[i32]| v.iter().copied().collect::<BTreeSet<i32>>();
        assert_eq!(match_success_policy(Some(&p), 10, &s(&[0])), None);
        assert_eq!(
            match_success_policy(Some(&p), 10, &s(&[0, 2])).as_deref(),
            Some("Matched rules at index 0")
        );
        assert_eq!(
            match_success_policy(Some(&p), 10, &s(&[0, 5, 6, 7])).as_deref(),
            Some("Matched rules at index 1")
        );
    }
}
