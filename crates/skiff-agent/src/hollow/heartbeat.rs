//! Node status, as the kubelet reports it: every `node_status_update` each node's status is
//! compared with the API's copy (kept current by the node watch, so comparing costs no request)
//! and written when they differ, and written anyway every `node_status_report`. Liveness does
//! not depend on it: the Lease, renewed every quarter of its duration, is the heartbeat.

use super::{Hollow, NodeSlot};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Status writes in flight at once.
const CONCURRENCY: usize = 64;

/// Whether a node's status is due: never written, drifted, or last written `report` ago.
fn due(last_report: Option<Instant>, drifted: bool, report: Duration, now: Instant) -> bool {
    drifted || last_report.is_none_or(|t| now.saturating_duration_since(t) >= report)
}

fn last_report(slot: &NodeSlot) -> Option<Instant> {
    slot.last_report.lock().ok().and_then(|t| *t)
}

#[tracing::instrument(skip_all, fields(node = %hollow.nodes[index].name))]
async fn post(hollow: &Hollow, index: usize) {
    let slot = &hollow.nodes[index];
    if !slot.exists.load(Ordering::Relaxed) {
        return;
    }
    // Taken before the write: a drift the watch sees meanwhile is looked at next round.
    let drifted = slot.status_drift.swap(false, Ordering::Relaxed);
    if !due(
        last_report(slot),
        drifted,
        hollow.config.node_status_report,
        Instant::now(),
    ) {
        return;
    }
    let since = slot
        .ready_since
        .lock()
        .map(|t| *t)
        .unwrap_or_else(|_| Timestamp::now());
    let patch = json!({"status": super::node::status(&hollow.config, slot, &since)});
    let api: Api<Node> = Api::all(hollow.client.clone());
    match api
        .patch_status(&slot.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            slot.reported();
            tracing::debug!(drifted, "node status written");
        }
        Err(kube::Error::Api(s)) if s.code == 404 => hollow.reregister(index),
        Err(e) => {
            if drifted {
                slot.status_drift.store(true, Ordering::Relaxed);
            }
            tracing::warn!(error = %e, "node status update failed");
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_when_drifted_or_due_only() {
        let t0 = Instant::now();
        let report = Duration::from_secs(300);
        assert!(due(None, false, report, t0), "never written");
        assert!(!due(Some(t0), false, report, t0 + Duration::from_secs(10)));
        assert!(due(Some(t0), true, report, t0 + Duration::from_secs(10)));
        assert!(due(Some(t0), false, report, t0 + report));
    }
}
