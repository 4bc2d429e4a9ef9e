//! `componentstatuses` (deprecated upstream, still served): the health of the scheduler,
//! the controller manager and the datastore, answered when asked, never stored. The
//! components are healthy while one of the servers holds their lease and renews it.

use crate::server::ApiServer;
use serde_json::{Value, json};
use skiff_api::registry;

/// Whether the lease `name` in kube-system is held and was renewed within its duration.
async fn lease_held(server: &ApiServer, name: &str) -> Result<(), String> {
    let info = registry::find("coordination.k8s.io", "v1", "leases")
        .ok_or_else(|| "leases are not registered".to_string())?;
    let lease = crate::rest::get_object(server, info, Some("kube-system"), name)
        .await
        .map_err(|_| format!("no {name} holds its lease"))?;
    let holder = lease
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .unwrap_or("");
    let renewed = lease
        .pointer("/spec/renewTime")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let duration = lease
        .pointer("/spec/leaseDurationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(15);
    match renewed {
        Some(t)
            if !holder.is_empty() && chrono::Utc::now().timestamp() <= t.timestamp() + duration =>
        {
            Ok(())
        }
        _ => Err(format!("no {name} holds its lease")),
    }
}

fn status(name: &str, health: Result<(), String>) -> Value {
    let condition = match health {
        Ok(()) => json!({"type": "Healthy", "status": "True", "message": "ok"}),
        Err(e) => json!({"type": "Healthy", "status": "False", "error": e}),
    };
    json!({
        "kind": "ComponentStatus",
        "apiVersion": "v1",
        "metadata": {"name": name},
        "conditions": [condition],
    })
}

/// Every component's status, by name.
pub async fn statuses(server: &ApiServer) -> Vec<Value> {
    let store = server
        .store
        .current_revision()
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    vec![
        status(
            "controller-manager",
            lease_held(server, "kube-controller-manager").await,
        ),
        status("etcd-0", store),
        status("scheduler", lease_held(server, "kube-scheduler").await),
    ]
}
