//! Which namespaces exist and which are terminating, followed through the watch cache so that
//! creates do not read the store to check their namespace.

use crate::cache::{EventType, WatchCache};
use serde_json::Value;
use skiff_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub const NAMESPACE_PREFIX: &str = "/registry/core/namespaces/";

/// What the cache knows of one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Active,
    Terminating,
}

#[derive(Clone, Default)]
pub struct Namespaces {
    known: Arc<RwLock<HashMap<String, State>>>,
}

fn state_of(ns: &Value) -> State {
    if ns.pointer("/metadata/deletionTimestamp").is_some()
        || ns.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
    {
        State::Terminating
    } else {
        State::Active
    }
}

impl Namespaces {
    pub async fn start(
        store: &Store,
        cache: &WatchCache,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<(Namespaces, tokio::task::JoinHandle<()>), skiff_store::StoreError> {
        let ns = Namespaces::default();
        let (rev, mut rx) = cache.subscribe_now(NAMESPACE_PREFIX);
        for kv in store
            .range(NAMESPACE_PREFIX, None, 0, rev.max(0))
            .await?
            .kvs
        {
            if let Ok(v) = serde_json::from_slice::<Value>(&kv.value) {
                ns.observe(&v, false);
            }
        }
        let n = ns.clone();
        let handle = tokio::spawn(async move {
            loop {
                let ev = tokio::select! {
                    _ = cancel.cancelled() => return,
                    ev = rx.recv() => ev,
                };
                match ev {
                    Ok(ev) if ev.revision > rev => {
                        if let Some(obj) = ev.object() {
                            n.observe(&obj, ev.kind == EventType::Deleted)
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // Forget everything: lookups fall back to the store until events refill it.
                        n.known.write().unwrap_or_else(|p| p.into_inner()).clear();
                    }
                    Err(_) => return,
                }
            }
        });
        Ok((ns, handle))
    }

    fn observe(&self, ns: &Value, deleted: bool) {
        let Some(name) = ns.pointer("/metadata/name").and_then(Value::as_str) else {
            return;
        };
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        if deleted {
            known.remove(name);
        } else {
            known.insert(name.to_string(), state_of(ns));
        }
    }

    /// What the cache knows; `None` means "ask the store" (new, or not seen yet).
    pub fn state(&self, name: &str) -> Option<State> {
        self.known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied()
    }
}
