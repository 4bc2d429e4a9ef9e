//! A small in-memory copy of one resource, kept by the watch cache as it applies each event,
//! for admission checks that run on every write (which namespaces exist, the default
//! PriorityClass) and must not read the store each time.

use crate::cache::{EventType, WatchCache};
use serde_json::Value;
use skiff_store::{Revision, Store};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// What a followed object contributes: its name and the part the lookups need.
pub type Extract<T> = fn(&Value) -> Option<(String, T)>;

struct Inner<T> {
    items: HashMap<String, T>,
    /// False until the first list is in; events meanwhile wait in `pending`.
    complete: bool,
    pending: Vec<(Revision, String, Option<T>)>,
}

pub struct Followed<T> {
    inner: Arc<RwLock<Inner<T>>>,
}

impl<T> Clone for Followed<T> {
    fn clone(&self) -> Self {
        Followed {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Followed<T> {
    /// Lists `prefix` and has the cache apply its changes from then on.
    pub async fn start(
        store: &Store,
        cache: &WatchCache,
        prefix: &'static str,
        extract: Extract<T>,
    ) -> Result<Followed<T>, skiff_store::StoreError> {
        let followed = Followed {
            inner: Arc::new(RwLock::new(Inner {
                items: HashMap::new(),
                complete: false,
                pending: Vec::new(),
            })),
        };
        let f = followed.clone();
        let rev = cache.observe(
            prefix,
            Box::new(move |ev| {
                let Some((name, item)) = ev.object().as_ref().and_then(extract) else {
                    return;
                };
                let item = (ev.kind != EventType::Deleted).then_some(item);
                let mut inner = f.write();
                if inner.complete {
                    apply(&mut inner.items, name, item);
                } else {
                    inner.pending.push((ev.revision, name, item));
                }
            }),
        );
        let listed = store.range(prefix, None, 0, rev.max(0)).await?;
        let mut inner = followed.write();
        inner.items = listed
            .kvs
            .iter()
            .filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
            .filter_map(|v| extract(&v))
            .collect();
        // Events the cache applied while the list was read come after it.
        for (r, name, item) in std::mem::take(&mut inner.pending) {
            if r > rev {
                apply(&mut inner.items, name, item);
            }
        }
        inner.complete = true;
        drop(inner);
        Ok(followed)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner<T>> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The named item; `None` when it is not known (yet).
    pub fn get(&self, name: &str) -> Option<T> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .items
            .get(name)
            .cloned()
    }

    /// Calls `f` with every item.
    pub fn with_all<R>(&self, f: impl FnOnce(&HashMap<String, T>) -> R) -> R {
        f(&self.inner.read().unwrap_or_else(|p| p.into_inner()).items)
    }
}

fn apply<T>(items: &mut HashMap<String, T>, name: String, item: Option<T>) {
    match item {
        Some(item) => {
            items.insert(name, item);
        }
        None => {
            items.remove(&name);
        }
    }
}
