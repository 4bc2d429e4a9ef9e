//! Records core/v1 Events for the scheduler (`source.component: default-scheduler`). Like
//! upstream's broadcaster, events queue in a bounded buffer and are dropped when it is full,
//! so a burst of scheduling never waits on event writes.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use skiff_api::events::{RepeatKey, Repeats};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub const COMPONENT: &str = "default-scheduler";
/// Upstream's broadcaster queues 1,000 events before it drops.
const QUEUE: usize = 1000;
/// Event writes in flight at once.
const CONCURRENCY: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

#[derive(Debug)]
struct Request {
    object: ObjectReference,
    related: Option<ObjectReference>,
    type_: EventType,
    reason: &'static str,
    action: &'static str,
    message: String,
}

/// A handle that queues Events; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Request>,
}

impl Recorder {
    /// The recorder and the task that writes its Events until `cancel` fires.
    pub fn new(
        client: kube::Client,
        cancel: CancellationToken,
    ) -> (Recorder, impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Recorder { tx }, write_events(client, rx, cancel))
    }

    pub fn record(
        &self,
        object: ObjectReference,
        related: Option<ObjectReference>,
        type_: EventType,
        reason: &'static str,
        action: &'static str,
        message: String,
    ) {
        let req = Request {
            object,
            related,
            type_,
            reason,
            action,
            message,
        };
        if let Err(mpsc::error::TrySendError::Full(r)) = self.tx.try_send(req) {
            tracing::debug!(reason = r.reason, "event queue full, dropping event");
        }
    }
}

async fn write_events(
    client: kube::Client,
    rx: mpsc::Receiver<Request>,
    cancel: CancellationToken,
) {
    let requests =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) })
            .take_until(cancel.cancelled_owned());
    // A pod that stays unschedulable is tried again and again: its repeated FailedScheduling
    // counts into one Event, as upstream's scheduler shows "(x5 over 2m)".
    let repeats = std::sync::Arc::new(Repeats::new());
    requests
        .for_each_concurrent(CONCURRENCY, |r| {
            let client = client.clone();
            let repeats = repeats.clone();
            async move { write(client, &repeats, r).await }
        })
        .await;
}

/// Raises the count of the Event `name`; false when it is gone (expired or deleted).
async fn count_repeat(client: &kube::Client, ns: &str, name: &str, count: i32) -> bool {
    let now = k8s_openapi::jiff::Timestamp::now();
    let patch = serde_json::json!({"count": count, "lastTimestamp": Time(now)});
    let request = kube::core::Request::new(format!("/api/v1/namespaces/{ns}/events"))
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .map_err(kube::Error::BuildRequest);
    let written = match request {
        Ok(request) => client.request::<serde::de::IgnoredAny>(request).await,
        Err(e) => Err(e),
    };
    match written {
        Ok(_) => true,
        Err(kube::Error::Api(e)) if e.code == 404 => false,
        Err(e) => {
            tracing::debug!(error = %e, "cannot count a repeated event");
            true
        }
    }
}

async fn write(client: kube::Client, repeats: &Repeats, r: Request) {
    let ns = r
        .object
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into());
    let type_ = match r.type_ {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    };
    let key = RepeatKey::new(&ns, &r.object, type_, r.reason, &r.message);
    if let Some((name, count)) = repeats.repeat(&key)
        && count_repeat(&client, &ns, &name, count).await
    {
        return;
    }
    let now = k8s_openapi::jiff::Timestamp::now();
    let name = format!(
        "{}.{:x}",
        r.object.name.as_deref().unwrap_or("unknown"),
        now.as_nanosecond()
    );
    let event = Event {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            ..ObjectMeta::default()
        },
        involved_object: r.object,
        related: r.related,
        reason: Some(r.reason.into()),
        message: Some(r.message),
        type_: Some(type_.into()),
        source: Some(EventSource {
            component: Some(COMPONENT.into()),
            host: None,
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: Some(COMPONENT.into()),
        action: Some(r.action.into()),
        count: Some(1),
        ..Event::default()
    };
    // The created Event that comes back is not needed: its body is skipped, not decoded.
    let created = serde_json::to_vec(&event)
        .map_err(kube::Error::SerdeError)
        .and_then(|body| {
            kube::core::Request::new(format!("/api/v1/namespaces/{ns}/events"))
                .create(&PostParams::default(), body)
                .map_err(kube::Error::BuildRequest)
        });
    let written = match created {
        Ok(request) => client
            .request::<serde::de::IgnoredAny>(request)
            .await
            .map(drop),
        Err(e) => Err(e),
    };
    match written {
        Ok(()) => repeats.remember(key, name),
        Err(e) => tracing::debug!(reason = r.reason, error = %e, "cannot record event"),
    }
}
