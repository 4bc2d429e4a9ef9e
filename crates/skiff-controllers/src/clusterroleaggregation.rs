//! ClusterRole aggregation (upstream's clusterrole-aggregation controller): a ClusterRole
//! with an `aggregationRule` holds the rules of every other ClusterRole its selectors
//! match, in selector order and, within a selector, by role name, each rule once. This is
//! how `admin`, `edit` and `view` grow when a chart labels its ClusterRole
//! `rbac.authorization.k8s.io/aggregate-to-view: "true"`.

use crate::runtime::{self, Change, Informer, Informers, Key, Queue};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use skiff_api::selector::LabelSelector;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use crate::runtime::Error;

/// The field manager of the rules it writes, as upstream's.
const MANAGER: &str = "clusterrole-aggregation-controller";

fn key_of(r: &ClusterRole) -> Key {
    Key::new("", r.metadata.name.as_deref().unwrap_or(""))
}

pub async fn run(informers: Arc<Informers>, cancel: CancellationToken) {
    let client = informers.client().clone();
    let roles = informers.get::<ClusterRole>();
    let queue = Queue::new();
    let changes = roles.subscribe();
    roles.synced().await;
    let aggregated = |roles: &Informer<ClusterRole>, queue: &Queue<Key>| {
        for r in roles.list() {
            if r.aggregation_rule.is_some() {
                queue.add(key_of(&r));
            }
        }
    };
    aggregated(&roles, &queue);
    // Any ClusterRole coming, changing or going may change what an aggregated one holds.
    let (roles1, queue1) = (roles.clone(), queue.clone());
    let watch = runtime::enqueue_changes(
        changes,
        queue.clone(),
        cancel.clone(),
        move |_: &Change<ClusterRole>| {
            aggregated(&roles1, &queue1);
            None
        },
    );
    let workers = runtime::run_workers("clusterrole-aggregation", queue, 1, cancel, move |key| {
        let (client, roles) = (client.clone(), roles.clone());
        async move { sync(&client, &roles, &key).await }
    });
    tokio::join!(watch, workers);
}

/// The rules `role` aggregates from `all`, or `None` when it has no aggregation rule.
pub fn aggregate(role: &ClusterRole, all: &[Arc<ClusterRole>]) -> Option<Vec<PolicyRule>> {
    let rule = role.aggregation_rule.as_ref()?;
    let mut rules: Vec<PolicyRule> = Vec::new();
    for selector in rule.cluster_role_selectors.iter().flatten() {
        let Ok(value) = serde_json::to_value(selector) else {
            continue;
        };
        // A selector that does not parse selects nothing, as upstream skips it.
        let Ok(Some(selector)) = LabelSelector::from_object(&value) else {
            continue;
        };
        let mut matched: Vec<&ClusterRole> = all
            .iter()
            .map(|r| r.as_ref())
            .filter(|r| r.metadata.name != role.metadata.name)
            .filter(|r| {
                let empty = BTreeMap::new();
                selector.matches(r.metadata.labels.as_ref().unwrap_or(&empty))
            })
            .collect();
        matched.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        for r in matched {
            for rule in r.rules.iter().flatten() {
                if !rules.contains(rule) {
                    rules.push(rule.clone());
                }
            }
        }
    }
    Some(rules)
}

async fn sync(
    client: &kube::Client,
    roles: &Informer<ClusterRole>,
    key: &Key,
) -> Result<Option<Duration>, Error> {
    let Some(role) = roles.get("", &key.name) else {
        return Ok(None);
    };
    let Some(rules) = aggregate(&role, &roles.list()) else {
        return Ok(None);
    };
    if role.rules.as_deref().unwrap_or_default() == rules.as_slice() {
        return Ok(None);
    }
    let api: Api<ClusterRole> = Api::all(client.clone());
    let patch = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": key.name},
        "rules": rules,
    });
    runtime::ignore_not_found::<_, Error>(
        api.patch(
            &key.name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await,
    )?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::AggregationRule;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector as Selector, ObjectMeta};

    fn role(name: &str, labels: &[(&str, &str)], verbs: &[&str]) -> Arc<ClusterRole> {
        Arc::new(ClusterRole {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            rules: Some(vec![PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(vec!["pods".into()]),
                verbs: verbs.iter().map(|v| v.to_string()).collect(),
                ..Default::default()
            }]),
            ..Default::default()
        })
    }

    fn aggregating(name: &str, label: &str) -> ClusterRole {
        ClusterRole {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            aggregation_rule: Some(AggregationRule {
                cluster_role_selectors: Some(vec![Selector {
                    match_labels: Some([(label.to_string(), "true".to_string())].into()),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn aggregates_matching_roles_by_name_each_rule_once() {
        let all = vec![
            role("zeta", &[("agg", "true")], &["get"]),
            role("alpha", &[("agg", "true")], &["list"]),
            role("beta", &[("agg", "true")], &["get"]),
            role("other", &[("agg", "false")], &["delete"]),
        ];
        let rules = aggregate(&aggregating("view", "agg"), &all).unwrap_or_default();
        let verbs: Vec<&str> = rules.iter().map(|r| r.verbs[0].as_str()).collect();
        assert_eq!(verbs, ["list", "get"]);
        assert_eq!(aggregate(&all[0], &all), None);
    }
}
