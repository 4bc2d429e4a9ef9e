//! Records core/v1 Events, the kind `kubectl describe` shows, on behalf of a controller.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_api::events::{RepeatKey, Repeats};

/// `Normal` or `Warning`, as upstream's recorders say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Writes Events for one controller (`source.component`). An Event that repeats one written in
/// the last ten minutes raises that Event's `count` and `lastTimestamp` instead of adding
/// another object, as upstream's recorder does, so `kubectl describe` shows "(x7 over 3m)".
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    component: &'static str,
    repeats: Arc<Repeats>,
}

impl Recorder {
    pub fn new(client: kube::Client, component: &'static str) -> Recorder {
        Recorder {
            client,
            component,
            repeats: Arc::new(Repeats::new()),
        }
    }

    /// Records one Event about `object`. Best effort: an Event that cannot be written (say, in a
    /// terminating namespace) is logged and dropped, as upstream's broadcaster drops it.
    pub async fn record(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        message: &str,
    ) {
        // Events about cluster-scoped objects live in `default`, as upstream puts them.
        let ns = object
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let now = k8s_openapi::jiff::Timestamp::now();
        let key = RepeatKey::new(&ns, object, type_.as_str(), reason, message);
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        if let Some((seen, count)) = self.repeats.repeat(&key) {
            let patch = json!({"count": count, "lastTimestamp": Time(now)});
            match api
                .patch(&seen, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return,
                // Expired (the event TTL) or deleted: write it afresh below.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    tracing::debug!(component = self.component, reason, error = %e, "cannot record event");
                    return;
                }
            }
        }
        let name = format!(
            "{}.{:x}",
            object.name.as_deref().unwrap_or("unknown"),
            now.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            involved_object: object.clone(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(type_.as_str().into()),
            source: Some(EventSource {
                component: Some(self.component.into()),
                host: None,
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            reporting_component: Some(self.component.into()),
            reporting_instance: Some(self.component.into()),
            action: Some(reason.into()),
            count: Some(1),
            ..Event::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => self.repeats.remember(key, name),
            Err(e) => {
                tracing::debug!(component = self.component, reason, error = %e, "cannot record event");
            }
        }
    }
}
