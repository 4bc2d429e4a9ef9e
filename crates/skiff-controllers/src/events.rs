//! Records core/v1 Events, the kind `kubectl describe` shows, on behalf of a controller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// How long a repeat of an Event counts into the same Event object (upstream's correlator
/// keeps them for ten minutes).
const REPEAT_WINDOW: Duration = Duration::from_secs(600);
/// The most distinct Events a recorder remembers (upstream's LRU size).
const REMEMBERED: usize = 4096;

/// What makes two Events the same one repeated: upstream's `getEventKey`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EventKey {
    namespace: String,
    kind: String,
    name: String,
    uid: String,
    api_version: String,
    field_path: String,
    type_: &'static str,
    reason: String,
    message: String,
}

/// The Event object a key was last written to.
#[derive(Debug, Clone)]
struct Seen {
    name: String,
    count: i32,
    at: Instant,
}

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
    seen: Arc<Mutex<HashMap<EventKey, Seen>>>,
}

impl Recorder {
    pub fn new(client: kube::Client, component: &'static str) -> Recorder {
        Recorder {
            client,
            component,
            seen: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The Event `key` repeats, if it was written within the window; counts the repeat.
    fn repeat_of(&self, key: &EventKey) -> Option<Seen> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match seen.get_mut(key) {
            Some(s) if now.duration_since(s.at) < REPEAT_WINDOW => {
                s.count += 1;
                s.at = now;
                Some(s.clone())
            }
            _ => None,
        }
    }

    fn remember(&self, key: EventKey, name: String) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= REMEMBERED {
            let now = Instant::now();
            seen.retain(|_, s| now.duration_since(s.at) < REPEAT_WINDOW);
            if seen.len() >= REMEMBERED {
                seen.clear();
            }
        }
        seen.insert(
            key,
            Seen {
                name,
                count: 1,
                at: Instant::now(),
            },
        );
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
        let key = EventKey {
            namespace: ns.clone(),
            kind: object.kind.clone().unwrap_or_default(),
            name: object.name.clone().unwrap_or_default(),
            uid: object.uid.clone().unwrap_or_default(),
            api_version: object.api_version.clone().unwrap_or_default(),
            field_path: object.field_path.clone().unwrap_or_default(),
            type_: type_.as_str(),
            reason: reason.to_string(),
            message: message.to_string(),
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        if let Some(seen) = self.repeat_of(&key) {
            let patch = json!({"count": seen.count, "lastTimestamp": Time(now)});
            match api
                .patch(&seen.name, &PatchParams::default(), &Patch::Merge(&patch))
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
            Ok(_) => self.remember(key, name),
            Err(e) => {
                tracing::debug!(component = self.component, reason, error = %e, "cannot record event");
            }
        }
    }
}
