//! The in-memory backend: a per-key MVCC history plus an event log, behind one mutex.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use tokio::sync::broadcast;

use crate::watch::{WatchStream, live};
use crate::{Event, EventKind, KeyValue, RangeResult, Revision, StoreError};

/// Live events a watcher may fall behind by before its stream ends.
const WATCH_BUFFER: usize = 10_000;

/// In-memory store. Clones share the same data.
#[derive(Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<Event>,
}

/// One version of one key; `value: None` is a tombstone.
#[derive(Debug, Clone)]
struct Version {
    mod_revision: Revision,
    create_revision: Revision,
    value: Option<Bytes>,
}

struct State {
    revision: Revision,
    compacted: Revision,
    /// Versions of each key, oldest first.
    keys: BTreeMap<String, Vec<Version>>,
    /// Every event after `compacted`, oldest first.
    log: VecDeque<Event>,
}

impl State {
    fn live(&self, key: &str) -> Option<KeyValue> {
        let version = self.keys.get(key)?.last()?;
        let value = version.value.clone()?;
        Some(KeyValue {
            key: key.to_string(),
            value,
            create_revision: version.create_revision,
            mod_revision: version.mod_revision,
        })
    }

    fn at(key: &str, versions: &[Version], revision: Revision) -> Option<KeyValue> {
        let idx = versions.partition_point(|v| v.mod_revision <= revision);
        let version = versions.get(idx.checked_sub(1)?)?;
        Some(KeyValue {
            key: key.to_string(),
            value: version.value.clone()?,
            create_revision: version.create_revision,
            mod_revision: version.mod_revision,
        })
    }

    fn check_read_revision(&self, revision: Revision) -> Result<Revision, StoreError> {
        let revision = if revision == 0 {
            self.revision
        } else {
            revision
        };
        if revision > self.revision {
            return Err(StoreError::FutureRevision(revision));
        }
        if revision < self.compacted {
            return Err(StoreError::Compacted {
                requested: revision,
                compacted: self.compacted,
            });
        }
        Ok(revision)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(WATCH_BUFFER);
        MemoryStore {
            state: Arc::new(Mutex::new(State {
                revision: 1,
                compacted: 0,
                keys: BTreeMap::new(),
                log: VecDeque::new(),
            })),
            events,
        }
    }

    /// Every mutation finishes before it can panic, so a poisoned lock still guards
    /// consistent data.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one write; the broadcast happens under the lock so that a watcher that
    /// subscribes under the same lock sees every later event exactly once.
    fn commit(&self, state: &mut State, event: Event, version: Version) {
        state.revision = version.mod_revision;
        state
            .keys
            .entry(event.kv.key.clone())
            .or_default()
            .push(version);
        state.log.push_back(event.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
    }

    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.lock().live(key))
    }

    pub async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Revision,
    ) -> Result<RangeResult, StoreError> {
        self.read_range(prefix, start_after, limit, revision, true)
    }

    pub async fn range_chunk(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Revision,
    ) -> Result<RangeResult, StoreError> {
        self.read_range(prefix, start_after, limit, revision, false)
    }

    pub async fn count(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        revision: Revision,
    ) -> Result<i64, StoreError> {
        let all = self.read_range(prefix, start_after, 0, revision, true)?;
        Ok(all.kvs.len() as i64)
    }

    fn read_range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Revision,
        count: bool,
    ) -> Result<RangeResult, StoreError> {
        let state = self.lock();
        let revision = state.check_read_revision(revision)?;
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut kvs = Vec::new();
        let mut remaining = 0i64;
        let matching = state
            .keys
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter_map(|(key, versions)| State::at(key, versions, revision));
        let mut more = false;
        for kv in matching {
            if limit == 0 || kvs.len() < limit {
                kvs.push(kv);
            } else if count {
                remaining += 1;
                more = true;
            } else {
                more = true;
                break;
            }
        }
        Ok(RangeResult {
            kvs,
            remaining,
            more,
            revision,
        })
    }

    pub async fn create(&self, key: &str, value: Bytes) -> Result<Revision, StoreError> {
        let mut state = self.lock();
        if state.live(key).is_some() {
            return Err(StoreError::AlreadyExists);
        }
        let revision = state.revision + 1;
        let kv = KeyValue {
            key: key.to_string(),
            value: value.clone(),
            create_revision: revision,
            mod_revision: revision,
        };
        let version = Version {
            mod_revision: revision,
            create_revision: revision,
            value: Some(value),
        };
        let event = Event {
            kind: EventKind::Put,
            kv,
            prev: None,
        };
        self.commit(&mut state, event, version);
        Ok(revision)
    }

    pub async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        let mut state = self.lock();
        let current = state.live(key).ok_or(StoreError::NotFound)?;
        if current.mod_revision != expected {
            return Err(StoreError::Conflict {
                current: Some(current),
            });
        }
        let revision = state.revision + 1;
        let kv = KeyValue {
            key: key.to_string(),
            value: value.clone(),
            create_revision: current.create_revision,
            mod_revision: revision,
        };
        let version = Version {
            mod_revision: revision,
            create_revision: current.create_revision,
            value: Some(value),
        };
        let event = Event {
            kind: EventKind::Put,
            kv,
            prev: Some(current),
        };
        self.commit(&mut state, event, version);
        Ok(revision)
    }

    pub async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<KeyValue, StoreError> {
        let mut state = self.lock();
        let current = state.live(key).ok_or(StoreError::NotFound)?;
        if expected.is_some_and(|expected| expected != current.mod_revision) {
            return Err(StoreError::Conflict {
                current: Some(current),
            });
        }
        let revision = state.revision + 1;
        let deleted = KeyValue {
            mod_revision: revision,
            ..current.clone()
        };
        let version = Version {
            mod_revision: revision,
            create_revision: current.create_revision,
            value: None,
        };
        let event = Event {
            kind: EventKind::Delete,
            kv: deleted.clone(),
            prev: Some(current),
        };
        self.commit(&mut state, event, version);
        Ok(deleted)
    }

    pub fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let state = self.lock();
        if after < state.compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted: state.compacted,
            });
        }
        let rx = self.events.subscribe();
        let start = state.log.partition_point(|e| e.revision() <= after);
        let replay: Vec<Result<Event, StoreError>> = state
            .log
            .range(start..)
            .filter(|e| e.kv.key.starts_with(prefix))
            .cloned()
            .map(Ok)
            .collect();
        let replayed_through = state.revision.max(after);
        drop(state);
        Ok(WatchStream::new(stream::iter(replay).chain(live(
            rx,
            prefix.to_string(),
            replayed_through,
        ))))
    }

    pub async fn current_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.lock().revision)
    }

    pub async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.lock().compacted)
    }

    pub async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let mut state = self.lock();
        if revision > state.revision {
            return Err(StoreError::FutureRevision(revision));
        }
        if revision <= state.compacted {
            return Ok(());
        }
        state.keys.retain(|_, versions| {
            // Keep the newest version at or before `revision` (it is what a read at
            // `revision` sees) unless it is a tombstone, and everything after it.
            let idx = versions.partition_point(|v| v.mod_revision <= revision);
            if idx > 0 {
                versions.drain(..idx - 1);
                if versions[0].value.is_none() {
                    versions.remove(0);
                }
            }
            !versions.is_empty()
        });
        let drop_events = state.log.partition_point(|e| e.revision() <= revision);
        state.log.drain(..drop_events);
        state.compacted = revision;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[tokio::test]
    async fn compaction_drops_superseded_versions_and_tombstones() {
        let store = MemoryStore::new();
        let r1 = store.create("a", Bytes::from("1")).await.unwrap();
        let r2 = store.update("a", Bytes::from("2"), r1).await.unwrap();
        store.create("b", Bytes::from("1")).await.unwrap();
        store.delete("b", None).await.unwrap();
        let now = store.current_revision().await.unwrap();
        store.compact(now).await.unwrap();
        let state = store.lock();
        assert_eq!(state.keys.len(), 1);
        assert_eq!(state.keys["a"].len(), 1);
        assert_eq!(state.keys["a"][0].mod_revision, r2);
        assert!(state.log.is_empty());
    }

    #[tokio::test]
    async fn a_watcher_that_falls_too_far_behind_gets_an_error_and_ends() {
        let store = MemoryStore::new();
        let mut watch = store.watch("", 1).unwrap();
        // tokio rounds the capacity up to a power of two.
        for i in 0..2 * WATCH_BUFFER {
            store.create(&format!("k{i}"), Bytes::new()).await.unwrap();
        }
        assert!(matches!(
            watch.recv().await,
            Some(Err(StoreError::WatchLagged(_)))
        ));
        assert!(watch.recv().await.is_none());
    }
}
