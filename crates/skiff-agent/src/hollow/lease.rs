//! Node leases in `kube-node-lease`: the cheap heartbeat the node lifecycle controller reads.

use super::Hollow;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const NAMESPACE: &str = "kube-node-lease";
/// Lease writes in flight at once.
const CONCURRENCY: usize = 64;

fn micro_time_now() -> serde_json::Value {
    serde_json::to_value(MicroTime(Timestamp::now())).unwrap_or_default()
}

/// A new lease for `node`, owned by the Node as the kubelet's is.
pub fn object(node: &str, node_uid: &str, duration_seconds: u32) -> serde_json::Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node,
            "namespace": NAMESPACE,
            "ownerReferences": [{
                "apiVersion": "v1",
                "kind": "Node",
                "name": node,
                "uid": node_uid,
            }],
        },
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": duration_seconds,
            "renewTime": micro_time_now(),
        },
    })
}

/// Renews node `index`'s lease, creating it when missing. Failures are logged: the next round retries.
pub async fn renew(hollow: &Hollow, index: usize) {
    let slot = &hollow.nodes[index];
    if !slot.exists.load(Ordering::Relaxed) {
        return;
    }
    let api: Api<Lease> = Api::namespaced(hollow.client.clone(), NAMESPACE);
    let duration = hollow.config.lease_duration_seconds;
    let patch = json!({"spec": {
        "holderIdentity": slot.name,
        "leaseDurationSeconds": duration,
        "renewTime": micro_time_now(),
    }});
    let result = match api
        .patch(&slot.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let Some(uid) = slot.uid() else { return };
            match serde_json::from_value::<Lease>(object(&slot.name, &uid, duration)) {
                Ok(lease) => api.create(&PostParams::default(), &lease).await.map(|_| ()),
                Err(e) => {
                    tracing::warn!(node = %slot.name, error = %e, "cannot build lease");
                    return;
                }
            }
        }
        r => r.map(|_| ()),
    };
    if let Err(e) = result {
        tracing::warn!(node = %slot.name, error = %e, "lease renewal failed");
    }
}

/// Renews every node's lease each quarter of the lease duration, as the kubelet does.
pub async fn run(hollow: Arc<Hollow>, cancel: CancellationToken) -> Result<(), super::HollowError> {
    let interval =
        Duration::from_secs(u64::from(hollow.config.lease_duration_seconds.max(1))).div_f64(4.0);
    let h = &hollow;
    super::spread::run(h.nodes.len(), interval, CONCURRENCY, cancel, |i| {
        renew(h, i)
    })
    .await;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_owned_by_their_node() {
        let lease: Lease = serde_json::from_value(object("h-0", "u1", 40)).unwrap();
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("h-0"));
        assert_eq!(spec.lease_duration_seconds, Some(40));
        assert!(spec.renew_time.is_some());
        let owner = &lease.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Node", "u1"));
    }
}
