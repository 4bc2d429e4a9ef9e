//! Node status heartbeats: every node's conditions get a fresh `lastHeartbeatTime` each interval.

use super::Hollow;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio_util::sync::CancellationToken;

/// Status writes in flight at once.
const CONCURRENCY: usize = 64;

async fn post(hollow: &Hollow, index: usize) {
    let slot = &hollow.nodes[index];
    if !slot.exists.load(Ordering::Relaxed) {
        return;
    }
    let since = slot
        .ready_since
        .lock()
        .map(|t| *t)
        .unwrap_or_else(|_| Timestamp::now());
    let patch =
        json!({"status": {"conditions": super::node::conditions(&since, &Timestamp::now())}});
    let api: Api<Node> = Api::all(hollow.client.clone());
    match api
        .patch_status(&slot.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => hollow.reregister(index),
        Err(e) => tracing::warn!(node = %slot.name, error = %e, "node status update failed"),
    }
}

pub async fn run(hollow: Arc<Hollow>, cancel: CancellationToken) -> Result<(), super::HollowError> {
    let h = &hollow;
    super::spread::run(
        h.nodes.len(),
        h.config.node_status_update,
        CONCURRENCY,
        cancel,
        |i| post(h, i),
    )
    .await;
    Ok(())
}
