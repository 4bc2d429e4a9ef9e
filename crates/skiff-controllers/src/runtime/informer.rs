//! Shared informers: one watch and one cache per kind for every controller in the process,
//! with change notifications (including deletions) for the controllers' event handlers.

use futures::StreamExt;
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// One change seen by an informer.
#[derive(Debug)]
pub enum Change<K> {
    /// Added or updated; `old` is the cached version before, if there was one.
    Applied { old: Option<Arc<K>>, new: Arc<K> },
    /// Deleted; the last state the informer knew.
    Deleted(Arc<K>),
}

impl<K> Change<K> {
    /// The object as it is now (or was when deleted).
    pub fn object(&self) -> &Arc<K> {
        match self {
            Change::Applied { new, .. } => new,
            Change::Deleted(o) => o,
        }
    }
}

type Handlers<K> = Arc<Mutex<Vec<mpsc::UnboundedSender<Arc<Change<K>>>>>>;

/// Objects of one kind by namespace ("" for cluster-scoped ones) and name.
type Objects<K> = HashMap<String, BTreeMap<String, Arc<K>>>;

/// A cache of one kind, kept current by one watch, and a fan-out of its changes.
pub struct Informer<K> {
    objects: RwLock<Objects<K>>,
    handlers: Handlers<K>,
    synced: watch::Receiver<bool>,
}

fn ns_name<K: Resource>(obj: &K) -> (String, String) {
    (
        obj.meta().namespace.clone().unwrap_or_default(),
        obj.meta().name.clone().unwrap_or_default(),
    )
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Starts watching `api` on a task of `tasks`; the watch runs until `cancel` fires.
    pub fn start(api: Api<K>, tasks: &TaskTracker, cancel: CancellationToken) -> Arc<Informer<K>> {
        let (synced_tx, synced) = watch::channel(false);
        let informer = Arc::new(Informer {
            objects: RwLock::default(),
            handlers: Handlers::default(),
            synced,
        });
        tasks.spawn(drive(api, informer.clone(), synced_tx, cancel));
        informer
    }

    /// Waits for the first complete list.
    pub async fn synced(&self) {
        let mut rx = self.synced.clone();
        let _ = rx.wait_for(|s| *s).await;
    }

    pub fn has_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// A stream of every change from now on. Handlers should only map changes to keys.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Arc<Change<K>>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.handlers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(tx);
        rx
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Objects<K>> {
        self.objects.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Objects<K>> {
        self.objects.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// One object (namespace "" for cluster-scoped kinds).
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.read().get(namespace)?.get(name).cloned()
    }

    /// Every object of the kind.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.read()
            .values()
            .flat_map(|m| m.values().cloned())
            .collect()
    }

    /// The objects of one namespace.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        self.read()
            .get(namespace)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.read().values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&self, obj: Arc<K>) -> Option<Arc<K>> {
        let (ns, name) = ns_name(&*obj);
        self.write().entry(ns).or_default().insert(name, obj)
    }

    fn remove(&self, obj: &K) -> Option<Arc<K>> {
        let (ns, name) = ns_name(obj);
        let mut w = self.write();
        let m = w.get_mut(&ns)?;
        let old = m.remove(&name);
        if m.is_empty() {
            w.remove(&ns);
        }
        old
    }
}

fn notify<K>(handlers: &Handlers<K>, change: Change<K>) {
    let change = Arc::new(change);
    let mut hs = handlers.lock().unwrap_or_else(PoisonError::into_inner);
    hs.retain(|h| h.send(change.clone()).is_ok());
}

async fn drive<K>(
    api: Api<K>,
    informer: Arc<Informer<K>>,
    synced: watch::Sender<bool>,
    cancel: CancellationToken,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let mut events = watcher(api).boxed();
    // A re-list builds the new state aside and swaps it in when complete.
    let mut relist: Option<Objects<K>> = None;
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => return,
            ev = events.next() => ev,
        };
        let Some(ev) = ev else { return };
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::debug!(error = %e, kind = %K::kind(&()), "watch failed; retrying");
                continue;
            }
        };
        match ev {
            Event::Init => relist = Some(Objects::default()),
            Event::InitApply(obj) => {
                let (ns, name) = ns_name(&obj);
                relist
                    .get_or_insert_with(Objects::default)
                    .entry(ns)
                    .or_default()
                    .insert(name, Arc::new(obj));
            }
            Event::InitDone => {
                let new = relist.take().unwrap_or_default();
                let mut old = std::mem::replace(&mut *informer.write(), new.clone());
                for (ns, objs) in new {
                    let mut old_ns = old.remove(&ns).unwrap_or_default();
                    for (name, obj) in objs {
                        let prev = old_ns.remove(&name);
                        // Unchanged objects need no notification.
                        if prev.as_ref().is_some_and(|p| {
                            p.meta().resource_version == obj.meta().resource_version
                        }) {
                            continue;
                        }
                        notify(
                            &informer.handlers,
                            Change::Applied {
                                old: prev,
                                new: obj,
                            },
                        );
                    }
                    for (_, gone) in old_ns {
                        notify(&informer.handlers, Change::Deleted(gone));
                    }
                }
                for (_, objs) in old {
                    for (_, gone) in objs {
                        notify(&informer.handlers, Change::Deleted(gone));
                    }
                }
                let _ = synced.send(true);
            }
            Event::Apply(obj) => {
                let new = Arc::new(obj);
                let old = informer.insert(new.clone());
                notify(&informer.handlers, Change::Applied { old, new });
            }
            Event::Delete(obj) => {
                let last = informer.remove(&obj).unwrap_or_else(|| Arc::new(obj));
                notify(&informer.handlers, Change::Deleted(last));
            }
        }
    }
}

fn watcher<K>(api: Api<K>) -> impl futures::Stream<Item = Result<Event<K>, watcher::Error>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    watcher::watcher(api, watcher::Config::default().any_semantic()).default_backoff()
}

/// The informers of one process, created on first use, one per kind.
pub struct Informers {
    client: kube::Client,
    cancel: CancellationToken,
    tasks: TaskTracker,
    started: Mutex<HashMap<std::any::TypeId, Arc<dyn std::any::Any + Send + Sync>>>,
}

impl Informers {
    pub fn new(client: kube::Client, cancel: CancellationToken) -> Arc<Informers> {
        Arc::new(Informers {
            client,
            cancel,
            tasks: TaskTracker::new(),
            started: Mutex::default(),
        })
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The cluster-wide informer of `K`, started on first use.
    pub fn get<K>(&self) -> Arc<Informer<K>>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        let id = std::any::TypeId::of::<K>();
        if let Some(i) = started
            .get(&id)
            .and_then(|a| a.clone().downcast::<Informer<K>>().ok())
        {
            return i;
        }
        let i = Informer::start(
            Api::<K>::all(self.client.clone()),
            &self.tasks,
            self.cancel.clone(),
        );
        started.insert(id, i.clone());
        i
    }

    /// Waits until every informer's task has ended (after cancellation).
    pub async fn stopped(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}
