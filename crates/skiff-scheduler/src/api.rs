//! The scheduler's writes: bindings, the PodScheduled condition and nominated node, and
//! preemption (DisruptionTarget condition, deletion, `Preempted` events).

use crate::events::{EventType, Recorder};
use crate::pod_info::PodInfo;
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("binding rejected: {0}")]
    Api(#[source] kube::Error),
}

impl BindError {
    /// The pod is gone or already bound: nothing to retry.
    pub fn is_final(&self) -> bool {
        let BindError::Api(kube::Error::Api(s)) = self else {
            return false;
        };
        s.code == 404 || s.code == 409
    }
}

pub fn pod_ref(p: &PodInfo) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(p.name.clone()),
        namespace: Some(p.namespace.clone()),
        uid: (!p.uid.is_empty()).then(|| p.uid.clone()),
        resource_version: p.pod.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// POSTs `pods/binding`.
pub async fn bind(client: kube::Client, pod: &PodInfo, node: &str) -> Result<(), BindError> {
    let api: Api<Pod> = Api::namespaced(client, &pod.namespace);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(pod.name.clone()),
            namespace: Some(pod.namespace.clone()),
            uid: (!pod.uid.is_empty()).then(|| pod.uid.clone()),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..ObjectReference::default()
        },
    };
    // The answer is a Status: only its code matters, so its body is skipped, not decoded.
    api.create_subresource::<_, serde::de::IgnoredAny>(
        "binding",
        &pod.name,
        &PostParams::default(),
        &binding,
    )
    .await
    .map_err(BindError::Api)?;
    Ok(())
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Sets `PodScheduled=False` with `reason` and `message`, and the nominated node when given
/// (`Some("")` clears it). Skipped when nothing would change, as upstream's `updatePod`.
pub async fn set_unschedulable(
    client: kube::Client,
    pod: &PodInfo,
    reason: &str,
    message: &str,
    nominate: Option<&str>,
) -> Result<(), kube::Error> {
    let status = pod.pod.status.as_ref();
    let current = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled");
    let current_nominated = status
        .and_then(|s| s.nominated_node_name.as_deref())
        .unwrap_or_default();
    let same_condition = current.is_some_and(|c| {
        c.status == "False"
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(message)
    });
    if same_condition && nominate.is_none_or(|n| n == current_nominated) {
        return Ok(());
    }
    let transition = current
        .filter(|c| c.status == "False")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(now_rfc3339);
    let mut body = json!({"status": {"conditions": [{
        "type": "PodScheduled",
        "status": "False",
        "reason": reason,
        "message": message,
        "lastProbeTime": null,
        "lastTransitionTime": transition,
    }]}});
    if let Some(n) = nominate
        && n != current_nominated
    {
        body["status"]["nominatedNodeName"] = if n.is_empty() { json!(null) } else { json!(n) };
    }
    let api: Api<Pod> = Api::namespaced(client, &pod.namespace);
    api.patch_status(&pod.name, &PatchParams::default(), &Patch::Strategic(body))
        .await?;
    Ok(())
}

/// Evicts `victims` for `preemptor` on `node`: marks each with a DisruptionTarget condition,
/// deletes it, and records `Preempted`; then clears the nomination of lower-priority pods that
/// waited for the same node.
pub async fn preempt(
    client: kube::Client,
    recorder: Recorder,
    preemptor: Arc<PodInfo>,
    node: String,
    victims: Vec<Arc<PodInfo>>,
    lower_nominated: Vec<Arc<PodInfo>>,
) {
    let scheduler_name = preemptor
        .spec()
        .and_then(|s| s.scheduler_name.clone())
        .unwrap_or_else(|| crate::events::COMPONENT.into());
    let victim_writes = victims.iter().map(|victim| {
        let client = client.clone();
        let recorder = recorder.clone();
        let preemptor = preemptor.clone();
        let node = node.clone();
        let scheduler_name = scheduler_name.clone();
        async move {
            if victim.is_terminating() {
                return;
            }
            let api: Api<Pod> = Api::namespaced(client, &victim.namespace);
            let body = json!({"status": {"conditions": [{
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "PreemptionByScheduler",
                "message": format!("{scheduler_name}: preempting to accommodate a higher priority pod"),
                "lastTransitionTime": now_rfc3339(),
            }]}});
            if let Err(e) = api
                .patch_status(&victim.name, &PatchParams::default(), &Patch::Strategic(body))
                .await
            {
                if is_not_found(&e) {
                    return;
                }
                tracing::warn!(victim = %victim.key, error = %e, "cannot mark preemption victim");
            }
            match api.delete(&victim.name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => return,
                Err(e) => {
                    tracing::warn!(victim = %victim.key, error = %e, "cannot delete preemption victim");
                    return;
                }
            }
            tracing::info!(preemptor = %preemptor.key, victim = %victim.key, node = %node, "preempted");
            recorder.record(
                pod_ref(victim),
                Some(pod_ref(&preemptor)),
                EventType::Normal,
                "Preempted",
                "Preempting",
                format!("Preempted by pod {} on node {node}", preemptor.uid),
            );
        }
    });
    futures::future::join_all(victim_writes).await;
    for p in lower_nominated {
        let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace);
        let body = json!({"status": {"nominatedNodeName": null}});
        if let Err(e) = api
            .patch_status(&p.name, &PatchParams::default(), &Patch::Merge(body))
            .await
        {
            tracing::debug!(pod = %p.key, error = %e, "cannot clear nominated node");
        }
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}
