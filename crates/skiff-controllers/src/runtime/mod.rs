//! The controller runtime: shared informers, work queues, and the worker loop every
//! controller runs (event handlers enqueue keys; workers sync one key at a time).

pub mod informer;
pub mod queue;
pub mod selector;

pub use informer::{Change, Deletion, Informer, Informers};
pub use queue::Queue;

use kube::Resource;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The error of a controller whose every failure is an API request's.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("api request failed: {0}")]
    Api(#[from] kube::Error),
}

/// An API answer with "not found" taken as nothing to do: the object went meanwhile, and its
/// deletion brings its own event.
pub fn ignore_not_found<T, E: From<kube::Error>>(
    r: Result<T, kube::Error>,
) -> Result<Option<T>, E> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The key of one object: namespace (empty for cluster-scoped objects) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(namespace: &str, name: &str) -> Key {
        Key {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    pub fn of<K: Resource>(obj: &K) -> Key {
        Key {
            namespace: obj.meta().namespace.clone().unwrap_or_default(),
            name: obj.meta().name.clone().unwrap_or_default(),
        }
    }

    pub fn ns(&self) -> Option<&str> {
        (!self.namespace.is_empty()).then_some(self.namespace.as_str())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// Runs `workers` workers over `queue` until `cancel` fires. A sync returns when to look at
/// the key again (None: only on the next change); an error re-queues it with backoff.
pub async fn run_workers<F, Fut, E>(
    controller: &'static str,
    queue: Arc<Queue<Key>>,
    workers: usize,
    cancel: CancellationToken,
    sync: F,
) where
    F: Fn(Key) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Duration>, E>> + Send,
    E: fmt::Display + Send,
{
    let mut set = JoinSet::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let sync = sync.clone();
        let cancel = cancel.clone();
        set.spawn(async move {
            loop {
                let key = tokio::select! {
                    _ = cancel.cancelled() => return,
                    k = queue.get() => match k { Some(k) => k, None => return },
                };
                let span = tracing::debug_span!("reconcile", controller, key = %key);
                match sync(key.clone()).instrument(span).await {
                    Ok(after) => {
                        queue.forget(&key);
                        if let Some(d) = after {
                            queue.add_after(key.clone(), d);
                        }
                    }
                    Err(e) => {
                        let n = queue.failures(&key);
                        if n >= 5 {
                            tracing::warn!(controller, key = %key, error = %e, "sync failed; retrying");
                        } else {
                            tracing::debug!(controller, key = %key, error = %e, "sync failed; retrying");
                        }
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        });
    }
    cancel.cancelled().await;
    queue.shut_down();
    while set.join_next().await.is_some() {}
}

/// Feeds an informer's changes to `queue` through `keys` (which maps one change to the keys to
/// sync) until `cancel` fires.
pub async fn enqueue_changes<K, F, I>(
    mut changes: tokio::sync::mpsc::UnboundedReceiver<Arc<Change<K>>>,
    queue: Arc<Queue<Key>>,
    cancel: CancellationToken,
    keys: F,
) where
    F: Fn(&Change<K>) -> I,
    I: IntoIterator<Item = Key>,
{
    loop {
        let c = tokio::select! {
            _ = cancel.cancelled() => return,
            c = changes.recv() => match c { Some(c) => c, None => return },
        };
        for k in keys(&c) {
            queue.add(k);
        }
    }
}

/// The key of the controlling owner of `obj` if it is of kind `kind`.
pub fn controller_of<K: Resource>(obj: &K, kind: &str) -> Option<Key> {
    obj.meta()
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == kind)
        .map(|o| Key::new(obj.meta().namespace.as_deref().unwrap_or(""), &o.name))
}

/// The key (by name) of a namespace that was added or changed, for controllers that keep
/// something in every namespace; None for a deleted one.
pub fn applied_namespace(c: &Change<k8s_openapi::api::core::v1::Namespace>) -> Option<Key> {
    match c {
        Change::Applied { new, .. } => {
            Some(Key::new("", new.metadata.name.as_deref().unwrap_or("")))
        }
        Change::Deleted(_) => None,
    }
}

/// Whether a namespace takes new objects (not deleted, not terminating).
pub fn namespace_active(ns: &k8s_openapi::api::core::v1::Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating")
}
