//! Shared informers: one watch and one cache per kind for every controller in the process,
//! with change notifications (including deletions) for the controllers' event handlers.

use futures::StreamExt;
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet, HashMap};
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

/// The cache proper: objects by namespace and name, an index by controlling owner, and for
/// pods an index by node.
struct Cache<K> {
    objects: Objects<K>,
    /// Controller UID ("" for objects without a controller) → (namespace, name).
    by_controller: HashMap<String, BTreeSet<(String, String)>>,
    /// Node name → (namespace, name) of the pods bound to it (pods only).
    by_node: HashMap<String, BTreeSet<(String, String)>>,
}

impl<K> Default for Cache<K> {
    fn default() -> Cache<K> {
        Cache {
            objects: Objects::default(),
            by_controller: HashMap::new(),
            by_node: HashMap::new(),
        }
    }
}

/// The node a pod is bound to; `None` for other kinds and for unbound pods.
fn node_of<K: 'static>(obj: &K) -> Option<&str> {
    (obj as &dyn std::any::Any)
        .downcast_ref::<k8s_openapi::api::core::v1::Pod>()?
        .spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}

fn controller_uid<K: Resource>(obj: &K) -> String {
    obj.meta()
        .owner_references
        .as_ref()
        .and_then(|o| o.iter().find(|r| r.controller == Some(true)))
        .map(|r| r.uid.clone())
        .unwrap_or_default()
}

impl<K: Resource + 'static> Cache<K> {
    fn from_objects(objects: Objects<K>) -> Cache<K> {
        let mut by_controller: HashMap<String, BTreeSet<(String, String)>> = HashMap::new();
        let mut by_node: HashMap<String, BTreeSet<(String, String)>> = HashMap::new();
        for m in objects.values() {
            for o in m.values() {
                by_controller
                    .entry(controller_uid(&**o))
                    .or_default()
                    .insert(ns_name(&**o));
                if let Some(node) = node_of(&**o) {
                    by_node
                        .entry(node.to_string())
                        .or_default()
                        .insert(ns_name(&**o));
                }
            }
        }
        Cache {
            objects,
            by_controller,
            by_node,
        }
    }

    fn unindex(&mut self, obj: &K) {
        let uid = controller_uid(obj);
        if let Some(set) = self.by_controller.get_mut(&uid) {
            set.remove(&ns_name(obj));
            if set.is_empty() {
                self.by_controller.remove(&uid);
            }
        }
        if let Some(node) = node_of(obj)
            && let Some(set) = self.by_node.get_mut(node)
        {
            set.remove(&ns_name(obj));
            if set.is_empty() {
                self.by_node.remove(node);
            }
        }
    }

    fn insert(&mut self, obj: Arc<K>) -> Option<Arc<K>> {
        let (ns, name) = ns_name(&*obj);
        let old = self
            .objects
            .entry(ns.clone())
            .or_default()
            .insert(name.clone(), obj.clone());
        if let Some(o) = &old {
            self.unindex(o);
        }
        if let Some(node) = node_of(&*obj) {
            self.by_node
                .entry(node.to_string())
                .or_default()
                .insert((ns.clone(), name.clone()));
        }
        self.by_controller
            .entry(controller_uid(&*obj))
            .or_default()
            .insert((ns, name));
        old
    }

    fn remove(&mut self, obj: &K) -> Option<Arc<K>> {
        let (ns, name) = ns_name(obj);
        let m = self.objects.get_mut(&ns)?;
        let old = m.remove(&name);
        if m.is_empty() {
            self.objects.remove(&ns);
        }
        if let Some(o) = &old {
            self.unindex(o);
        }
        old
    }
}

/// A cache of one kind, kept current by one watch, and a fan-out of its changes.
pub struct Informer<K> {
    cache: RwLock<Cache<K>>,
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
        Self::start_selected(api, None, tasks, cancel)
    }

    /// [`Informer::start`] of the objects a field selector picks (None: all).
    fn start_selected(
        api: Api<K>,
        fields: Option<&str>,
        tasks: &TaskTracker,
        cancel: CancellationToken,
    ) -> Arc<Informer<K>> {
        let (synced_tx, synced) = watch::channel(false);
        let informer = Arc::new(Informer {
            cache: RwLock::default(),
            handlers: Handlers::default(),
            synced,
        });
        let mut config = watcher::Config::default().any_semantic();
        if let Some(f) = fields {
            config = config.fields(f);
        }
        tasks.spawn(drive(api, config, informer.clone(), synced_tx, cancel));
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

    /// Every object now and a stream of every change after them, taken together: no change
    /// is missed, and none in the stream is older than the object it changes in the snapshot
    /// (the watch task stores each change before it notifies, so at worst the stream repeats
    /// the snapshot's own version of an object). Call it once [`Informer::synced`].
    pub fn snapshot_and_subscribe(&self) -> (Vec<Arc<K>>, mpsc::UnboundedReceiver<Arc<Change<K>>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut handlers = self.handlers.lock().unwrap_or_else(PoisonError::into_inner);
        let snapshot = self.list();
        handlers.push(tx);
        (snapshot, rx)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cache<K>> {
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Cache<K>> {
        self.cache.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// One object (namespace "" for cluster-scoped kinds).
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.read().objects.get(namespace)?.get(name).cloned()
    }

    /// Every object of the kind.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.read()
            .objects
            .values()
            .flat_map(|m| m.values().cloned())
            .collect()
    }

    /// The objects of one namespace.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        self.read()
            .objects
            .get(namespace)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The objects of `namespace` controlled by the owner with `uid`, and those with no
    /// controller at all (the ones it may adopt): what a controller claims from, without a
    /// pass over the whole namespace.
    pub fn list_claimable(&self, namespace: &str, uid: &str) -> Vec<Arc<K>> {
        let c = self.read();
        let Some(objs) = c.objects.get(namespace) else {
            return Vec::new();
        };
        [uid, ""]
            .iter()
            .filter_map(|u| c.by_controller.get(*u))
            .flat_map(|set| set.iter())
            .filter(|(ns, _)| ns == namespace)
            .filter_map(|(_, name)| objs.get(name).cloned())
            .collect()
    }

    /// The pods bound to `node` (empty for other kinds), without a pass over every pod.
    pub fn list_on_node(&self, node: &str) -> Vec<Arc<K>> {
        let c = self.read();
        c.by_node
            .get(node)
            .into_iter()
            .flat_map(|set| set.iter())
            .filter_map(|(ns, name)| c.objects.get(ns)?.get(name).cloned())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.read().objects.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&self, obj: Arc<K>) -> Option<Arc<K>> {
        self.write().insert(obj)
    }

    fn remove(&self, obj: &K) -> Option<Arc<K>> {
        self.write().remove(obj)
    }
}

fn notify<K>(handlers: &Handlers<K>, change: Change<K>) {
    let change = Arc::new(change);
    let mut hs = handlers.lock().unwrap_or_else(PoisonError::into_inner);
    hs.retain(|h| h.send(change.clone()).is_ok());
}

async fn drive<K>(
    api: Api<K>,
    config: watcher::Config,
    informer: Arc<Informer<K>>,
    synced: watch::Sender<bool>,
    cancel: CancellationToken,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
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
            Err(watcher::Error::WatchError(s)) if s.code == 410 => {
                // Worth knowing: a re-list of the whole kind follows.
                tracing::warn!(kind = %K::kind(&()), "watch fell behind the watch cache's history; re-listing");
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, kind = %K::kind(&()), "watch failed; retrying");
                continue;
            }
        };
        match ev {
            Event::Init => relist = Some(Objects::default()),
            Event::InitApply(obj) => {
                let obj = trim(obj);
                let (ns, name) = ns_name(&obj);
                relist
                    .get_or_insert_with(Objects::default)
                    .entry(ns)
                    .or_default()
                    .insert(name, Arc::new(obj));
            }
            Event::InitDone => {
                let new = relist.take().unwrap_or_default();
                let mut old =
                    std::mem::replace(&mut *informer.write(), Cache::from_objects(new.clone()))
                        .objects;
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
                let new = Arc::new(trim(obj));
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

/// Drops what no controller reads from the cached copy, as client-go's informers of
/// kube-controller-manager do: `managedFields` is often the largest part of an object.
fn trim<K: Resource>(mut obj: K) -> K {
    obj.meta_mut().managed_fields = None;
    obj
}

/// The informers of one process, created on first use, one per kind.
pub struct Informers {
    client: kube::Client,
    cancel: CancellationToken,
    tasks: TaskTracker,
    /// By kind and field selector ("" for the whole kind).
    started: Mutex<HashMap<(std::any::TypeId, String), Arc<dyn std::any::Any + Send + Sync>>>,
    /// Deletions of objects of every resource, as the garbage collector's watches see them.
    deletions: tokio::sync::broadcast::Sender<Arc<Deletion>>,
}

/// An object of some resource was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// The resource's group ("" for core) and plural.
    pub group: String,
    pub plural: String,
    pub namespace: String,
}

impl Informers {
    pub fn new(client: kube::Client, cancel: CancellationToken) -> Arc<Informers> {
        Arc::new(Informers {
            client,
            cancel,
            tasks: TaskTracker::new(),
            started: Mutex::default(),
            deletions: tokio::sync::broadcast::channel(1024).0,
        })
    }

    /// The feed of deletions of every resource's objects (fed by the garbage collector,
    /// which watches them all); a lagging receiver loses the oldest.
    pub fn deletions(&self) -> &tokio::sync::broadcast::Sender<Arc<Deletion>> {
        &self.deletions
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The cluster-wide informer of `K`, started on first use.
    pub fn get<K>(&self) -> Arc<Informer<K>>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        self.get_selected("")
    }

    /// The informer of the objects of `K` that the field selector `fields` picks
    /// (`metadata.name=...`; "" for all), started on first use: for a controller that needs
    /// a few objects of a kind it would be costly to cache whole.
    pub fn get_selected<K>(&self, fields: &str) -> Arc<Informer<K>>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        let id = (std::any::TypeId::of::<K>(), fields.to_string());
        if let Some(i) = started
            .get(&id)
            .and_then(|a| a.clone().downcast::<Informer<K>>().ok())
        {
            return i;
        }
        let i = Informer::start_selected(
            Api::<K>::all(self.client.clone()),
            Some(fields).filter(|f| !f.is_empty()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn pod(name: &str, controller: Option<&str>) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                owner_references: controller.map(|uid| {
                    vec![OwnerReference {
                        uid: uid.into(),
                        controller: Some(true),
                        ..OwnerReference::default()
                    }]
                }),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        })
    }

    fn names(pods: Vec<Arc<Pod>>) -> Vec<String> {
        let mut n: Vec<String> = pods
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn the_controller_index_follows_ownership() {
        let mut c: Cache<Pod> = Cache::default();
        c.insert(pod("mine", Some("a")));
        c.insert(pod("orphan", None));
        c.insert(pod("theirs", Some("b")));
        let i = Informer {
            cache: RwLock::new(c),
            handlers: Handlers::default(),
            synced: watch::channel(true).1,
        };
        assert_eq!(names(i.list_claimable("default", "a")), ["mine", "orphan"]);
        assert!(i.list_claimable("other", "a").is_empty());
        // Adopted by a, released by b, deleted: the index moves with the object.
        i.insert(pod("orphan", Some("a")));
        i.insert(pod("theirs", None));
        i.remove(&pod("mine", Some("a")));
        assert_eq!(
            names(i.list_claimable("default", "a")),
            ["orphan", "theirs"]
        );
        assert_eq!(names(i.list_claimable("default", "b")), ["theirs"]);
        let rebuilt = Cache::from_objects(i.read().objects.clone());
        assert_eq!(rebuilt.by_controller, i.read().by_controller);
    }

    #[test]
    fn the_node_index_follows_bindings() {
        let on = |name: &str, node: Option<&str>| {
            let mut p = (*pod(name, None)).clone();
            p.spec = Some(k8s_openapi::api::core::v1::PodSpec {
                node_name: node.map(str::to_string),
                ..Default::default()
            });
            Arc::new(p)
        };
        let i: Informer<Pod> = Informer {
            cache: RwLock::default(),
            handlers: Handlers::default(),
            synced: watch::channel(true).1,
        };
        i.insert(on("a", Some("n1")));
        i.insert(on("b", None));
        i.insert(on("c", Some("n2")));
        assert_eq!(names(i.list_on_node("n1")), ["a"]);
        // Bound, moved by a re-creation elsewhere, deleted: the index moves with the pod.
        i.insert(on("b", Some("n1")));
        i.insert(on("a", Some("n2")));
        i.remove(&on("c", Some("n2")));
        assert_eq!(names(i.list_on_node("n1")), ["b"]);
        assert_eq!(names(i.list_on_node("n2")), ["a"]);
        assert!(i.list_on_node("n3").is_empty());
        let rebuilt = Cache::from_objects(i.read().objects.clone());
        assert_eq!(rebuilt.by_node, i.read().by_node);
        // Other kinds are not indexed.
        let nodes: Informer<k8s_openapi::api::core::v1::Node> = Informer {
            cache: RwLock::default(),
            handlers: Handlers::default(),
            synced: watch::channel(true).1,
        };
        assert!(nodes.list_on_node("n1").is_empty());
    }

    #[test]
    fn a_snapshot_and_its_subscription_miss_nothing() {
        let i: Informer<Pod> = Informer {
            cache: RwLock::default(),
            handlers: Handlers::default(),
            synced: watch::channel(true).1,
        };
        i.insert(pod("a", None));
        i.insert(pod("b", None));
        let (snapshot, mut rx) = i.snapshot_and_subscribe();
        assert_eq!(names(snapshot), ["a", "b"]);
        assert!(
            rx.try_recv().is_err(),
            "nothing before the snapshot is repeated"
        );
        let new = pod("c", None);
        let old = i.insert(new.clone());
        notify(&i.handlers, Change::Applied { old, new });
        let gone = i.remove(&pod("a", None)).expect("a is cached");
        notify(&i.handlers, Change::Deleted(gone));
        let mut seen = Vec::new();
        while let Ok(c) = rx.try_recv() {
            seen.push(match &*c {
                Change::Applied { new, .. } => {
                    format!("+{}", new.metadata.name.as_deref().unwrap_or_default())
                }
                Change::Deleted(o) => {
                    format!("-{}", o.metadata.name.as_deref().unwrap_or_default())
                }
            });
        }
        assert_eq!(seen, ["+c", "-a"]);
    }
}
