//! Pod garbage collector: deletes terminated pods beyond a threshold (oldest first), pods bound
//! to nodes that no longer exist, and terminating pods that were never scheduled.

use crate::runtime::{Informer, Informers};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// --terminated-pod-gc-threshold.
    pub terminated_threshold: usize,
    /// How often the collector runs (upstream: 20 s).
    pub period: Duration,
    /// How long a node must be missing before its pods count as orphaned (upstream: 40 s).
    pub quarantine: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            terminated_threshold: 12_500,
            period: Duration::from_secs(20),
            quarantine: Duration::from_secs(40),
        }
    }
}

fn terminated(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

/// The terminated pods to delete so that at most `threshold` remain, oldest first (pure).
pub fn terminated_to_delete(pods: &[Arc<Pod>], threshold: usize) -> Vec<Arc<Pod>> {
    let mut done: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| terminated(p) && p.metadata.deletion_timestamp.is_none())
        .cloned()
        .collect();
    if done.len() <= threshold {
        return Vec::new();
    }
    done.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let excess = done.len() - threshold;
    done.truncate(excess);
    done
}

pub async fn run(informers: Arc<Informers>, settings: Settings, cancel: CancellationToken) {
    let pods = informers.get::<Pod>();
    let nodes = informers.get::<Node>();
    pods.synced().await;
    nodes.synced().await;
    let client = informers.client().clone();
    let mut missing_since: HashMap<String, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(settings.period);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        collect(&client, &pods, &nodes, &settings, &mut missing_since).await;
    }
}

async fn force_delete(client: &kube::Client, p: &Pod) {
    let api: Api<Pod> = Api::namespaced(
        client.clone(),
        p.metadata.namespace.as_deref().unwrap_or(""),
    );
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: p.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&p.name_any(), &dp).await {
        Ok(_) => {
            tracing::info!(pod = %format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()), "pod garbage collected")
        }
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => tracing::debug!(pod = %p.name_any(), error = %e, "cannot delete pod"),
    }
}

async fn collect(
    client: &kube::Client,
    pods: &Informer<Pod>,
    nodes: &Informer<Node>,
    settings: &Settings,
    missing_since: &mut HashMap<String, Instant>,
) {
    let all = pods.list();
    for p in terminated_to_delete(&all, settings.terminated_threshold) {
        force_delete(client, &p).await;
    }
    // Orphans: bound to a node that has been gone for the quarantine period.
    let mut still_missing: HashMap<String, Instant> = HashMap::new();
    for p in &all {
        let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            // Never scheduled and terminating: nothing will ever finish it.
            if p.metadata.deletion_timestamp.is_some() {
                force_delete(client, p).await;
            }
            continue;
        };
        if nodes.get("", &node).is_some() {
            continue;
        }
        let since = *missing_since.get(&node).unwrap_or(&Instant::now());
        still_missing.insert(node.clone(), since);
        if since.elapsed() < settings.quarantine {
            continue;
        }
        if !terminated(p) {
            let api: Api<Pod> = Api::namespaced(
                client.clone(),
                p.metadata.namespace.as_deref().unwrap_or(""),
            );
            let status = json!({"status": {"phase": "Failed", "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC", "message": "PodGC: node no longer exists", "lastTransitionTime": Timestamp::now().to_string()}]}});
            let _ = api
                .patch_status(
                    &p.name_any(),
                    &PatchParams::default(),
                    &Patch::Strategic(status),
                )
                .await;
        }
        force_delete(client, p).await;
    }
    *missing_since = still_missing;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn pod(name: &str, phase: &str, age_secs: i64) -> Arc<Pod> {
        let created = Timestamp::UNIX_EPOCH
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(
                1_000_000 - age_secs,
            ))
            .expect("in range");
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(created)),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..PodStatus::default()
            }),
        })
    }

    #[test]
    fn oldest_terminated_pods_go_first() {
        let pods = vec![
            pod("new", "Succeeded", 10),
            pod("running", "Running", 1000),
            pod("old", "Failed", 500),
            pod("older", "Succeeded", 900),
        ];
        let names: Vec<String> = terminated_to_delete(&pods, 1)
            .iter()
            .map(|p| p.name_any())
            .collect();
        assert_eq!(names, ["older", "old"]);
        assert!(terminated_to_delete(&pods, 3).is_empty());
    }
}
