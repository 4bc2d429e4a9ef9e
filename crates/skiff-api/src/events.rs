//! Upstream's event correlation: an Event that repeats one written in the last ten minutes
//! (same object, type, reason and message) raises that Event's `count` and `lastTimestamp`
//! instead of adding another object, so `kubectl describe` shows "(x7 over 3m)".

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;

/// How long a repeat counts into the same Event (upstream's correlator keeps ten minutes).
pub const REPEAT_WINDOW: Duration = Duration::from_secs(600);
/// The most distinct Events remembered (upstream's LRU size).
const REMEMBERED: usize = 4096;

/// What makes two Events the same one repeated: upstream's `getEventKey`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepeatKey {
    namespace: String,
    kind: String,
    name: String,
    uid: String,
    api_version: String,
    field_path: String,
    type_: String,
    reason: String,
    message: String,
}

impl RepeatKey {
    pub fn new(
        namespace: &str,
        object: &ObjectReference,
        type_: &str,
        reason: &str,
        message: &str,
    ) -> RepeatKey {
        let field = |v: &Option<String>| v.clone().unwrap_or_default();
        RepeatKey {
            namespace: namespace.to_string(),
            kind: field(&object.kind),
            name: field(&object.name),
            uid: field(&object.uid),
            api_version: field(&object.api_version),
            field_path: field(&object.field_path),
            type_: type_.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
struct Seen {
    name: String,
    count: i32,
    at: Instant,
}

/// The Events one recorder wrote recently.
#[derive(Debug, Default)]
pub struct Repeats {
    seen: Mutex<HashMap<RepeatKey, Seen>>,
}

impl Repeats {
    pub fn new() -> Repeats {
        Repeats::default()
    }

    /// When `key` repeats an Event written within the window: that Event's name and its
    /// count with this repeat.
    pub fn repeat(&self, key: &RepeatKey) -> Option<(String, i32)> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match seen.get_mut(key) {
            Some(s) if now.duration_since(s.at) < REPEAT_WINDOW => {
                s.count += 1;
                s.at = now;
                Some((s.name.clone(), s.count))
            }
            _ => None,
        }
    }

    /// Remembers that `key` was written as the Event `name`.
    pub fn remember(&self, key: RepeatKey, name: String) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if seen.len() >= REMEMBERED {
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
                at: now,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_count_until_the_message_differs() {
        let object = ObjectReference {
            kind: Some("Pod".into()),
            name: Some("p".into()),
            ..ObjectReference::default()
        };
        let repeats = Repeats::new();
        let key = RepeatKey::new("default", &object, "Warning", "FailedScheduling", "m1");
        assert_eq!(repeats.repeat(&key), None);
        repeats.remember(key.clone(), "p.1".into());
        assert_eq!(repeats.repeat(&key), Some(("p.1".into(), 2)));
        assert_eq!(repeats.repeat(&key), Some(("p.1".into(), 3)));
        let other = RepeatKey::new("default", &object, "Warning", "FailedScheduling", "m2");
        assert_eq!(repeats.repeat(&other), None);
    }
}
