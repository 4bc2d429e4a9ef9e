//! Garbage collector: deletes dependents whose owners are gone and carries out foreground and
//! orphan deletion, over a graph of ownerReferences kept from metadata watches of every resource.

pub mod graph;

use crate::events::{EventType, Recorder};
use crate::resources::{self, Resource};
use futures::StreamExt;
use graph::{Decision, FOREGROUND, Graph, Node, ORPHAN, OwnerRef, OwnerState, Propagation};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How long the collector waits for every watch to list once before it acts anyway.
/// Destructive decisions never rest on the graph alone (an absent owner is confirmed with a
/// GET), so starting with a partial graph is slow, not wrong.
const SYNC_GRACE: Duration = Duration::from_secs(30);
/// How often every object with owners or collector finalizers is looked at again.
const RESYNC: Duration = Duration::from_secs(60);
/// Resources the collector does not follow, as upstream's default `ignoredResources`: events
/// are many, short-lived and owned by nobody.
const IGNORED: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];
/// How often discovery is read again for resources that appeared (custom resources).
const REDISCOVER: Duration = Duration::from_secs(30);

pub use crate::runtime::Error;

/// A deduplicating work queue of uids with delayed retries.
#[derive(Default)]
struct Queue {
    inner: Mutex<QueueInner>,
    notify: Notify,
}

#[derive(Default)]
struct QueueInner {
    ready: VecDeque<String>,
    queued: HashSet<String>,
    later: Vec<(Instant, String)>,
    failures: HashMap<String, u32>,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, uids: impl IntoIterator<Item = String>) {
        let mut q = self.lock();
        let mut added = false;
        for uid in uids {
            if q.queued.insert(uid.clone()) {
                q.ready.push_back(uid);
                added = true;
            }
        }
        drop(q);
        if added {
            self.notify.notify_one();
        }
    }

    /// Retries `uid` later, backing off exponentially from 100 ms to 30 s.
    fn retry(&self, uid: String) {
        let mut q = self.lock();
        let n = q.failures.entry(uid.clone()).or_insert(0);
        *n = (*n + 1).min(10);
        let delay = Duration::from_millis(100 * (1u64 << *n)).min(Duration::from_secs(30));
        q.later.push((Instant::now() + delay, uid));
        drop(q);
        self.notify.notify_one();
    }

    fn forget(&self, uid: &str) {
        self.lock().failures.remove(uid);
    }

    async fn next(&self, cancel: &CancellationToken) -> Option<String> {
        loop {
            let wake = {
                let mut q = self.lock();
                let now = Instant::now();
                let mut i = 0;
                while i < q.later.len() {
                    if q.later[i].0 <= now {
                        let (_, uid) = q.later.swap_remove(i);
                        if q.queued.insert(uid.clone()) {
                            q.ready.push_back(uid);
                        }
                    } else {
                        i += 1;
                    }
                }
                if let Some(uid) = q.ready.pop_front() {
                    q.queued.remove(&uid);
                    return Some(uid);
                }
                q.later.iter().map(|(t, _)| *t).min()
            };
            let sleep = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = self.notify.notified() => {}
                _ = sleep => {}
            }
        }
    }
}

struct Collector {
    client: kube::Client,
    /// Watched resources; only ever appended to, so a node's index stays valid.
    resources: RwLock<Vec<Arc<Resource>>>,
    graph: Mutex<Graph>,
    queue: Queue,
    /// Watches that have listed once, against the number started at first discovery.
    synced: AtomicUsize,
    initial: AtomicUsize,
    synced_notify: Notify,
    recorder: Recorder,
    /// Where deletions its watches see are told (the quota controller listens).
    deletions: Option<tokio::sync::broadcast::Sender<Arc<crate::runtime::Deletion>>>,
}

/// Runs the collector until `cancel` fires: one metadata watch per resource feeding the graph,
/// and one worker draining the queue. Discovery is read again now and then, and resources that
/// appeared since (custom resources) are watched too.
pub async fn run(client: kube::Client, cancel: CancellationToken) {
    run_telling(client, None, cancel).await
}

/// As [`run`], also sending every deletion its watches see to `deletions`.
pub async fn run_telling(
    client: kube::Client,
    deletions: Option<tokio::sync::broadcast::Sender<Arc<crate::runtime::Deletion>>>,
    cancel: CancellationToken,
) {
    let gc = Arc::new(Collector {
        deletions,
        recorder: Recorder::new(client.clone(), "garbage-collector-controller"),
        client,
        resources: RwLock::new(Vec::new()),
        graph: Mutex::new(Graph::default()),
        queue: Queue::default(),
        synced: AtomicUsize::new(0),
        initial: AtomicUsize::new(0),
        synced_notify: Notify::new(),
    });
    let mut tasks = JoinSet::new();
    let mut watched: HashSet<String> = HashSet::new();
    let mut first = true;
    let mut rediscover = tokio::time::interval(REDISCOVER);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = rediscover.tick() => {}
            Some(r) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = r
                    && e.is_panic()
                {
                    tracing::error!(error = %e, "a garbage collector task panicked");
                }
                continue;
            }
        }
        let found = match resources::discover(&gc.client).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "garbage collector cannot read discovery");
                continue;
            }
        };
        for r in found {
            if !r.list_watch
                || !r.delete
                || IGNORED.contains(&(r.ar.group.as_str(), r.ar.plural.as_str()))
                || !watched.insert(r.id())
            {
                continue;
            }
            let r = Arc::new(r);
            let idx = {
                let mut all = gc.write_resources();
                all.push(r.clone());
                all.len() - 1
            };
            let span = tracing::debug_span!("gc_watch", resource = %r.id());
            tasks.spawn(gc.clone().watch(idx, r, cancel.clone()).instrument(span));
        }
        if first {
            first = false;
            gc.initial
                .store(gc.read_resources().len(), Ordering::SeqCst);
            tasks.spawn(gc.clone().work(cancel.clone()));
        }
    }
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r
            && e.is_panic()
        {
            tracing::error!(error = %e, "a garbage collector task panicked");
        }
    }
}

impl Collector {
    fn read_resources(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Resource>>> {
        self.resources.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_resources(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Resource>>> {
        self.resources.write().unwrap_or_else(|p| p.into_inner())
    }

    fn resource(&self, idx: usize) -> Option<Arc<Resource>> {
        self.read_resources().get(idx).cloned()
    }

    fn graph(&self) -> MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn node_of(&self, idx: usize, obj: &PartialObjectMeta<DynamicObject>) -> Option<Node> {
        let md = &obj.metadata;
        let uid = md.uid.clone()?;
        Some(Node {
            uid,
            resource: idx,
            namespace: md.namespace.clone().filter(|n| !n.is_empty()),
            name: md.name.clone().unwrap_or_default(),
            owners: md
                .owner_references
                .iter()
                .flatten()
                .map(|r| OwnerRef {
                    api_version: r.api_version.clone(),
                    kind: r.kind.clone(),
                    name: r.name.clone(),
                    uid: r.uid.clone(),
                    block_owner_deletion: r.block_owner_deletion == Some(true),
                })
                .collect(),
            deleting: md.deletion_timestamp.is_some(),
            finalizers: md.finalizers.clone().unwrap_or_default(),
        })
    }

    fn observe(&self, idx: usize, obj: &PartialObjectMeta<DynamicObject>) -> Option<String> {
        let node = self.node_of(idx, obj)?;
        let uid = node.uid.clone();
        // Unchanged metadata (a status write, say) changes no decision.
        let touched = {
            let mut g = self.graph();
            if g.get(&uid) == Some(&node) {
                return Some(uid);
            }
            g.upsert(node)
        };
        self.queue.add(touched);
        Some(uid)
    }

    fn forget(&self, uid: &str) {
        let touched = self.graph().remove(uid);
        self.queue.forget(uid);
        self.queue.add(touched);
    }

    async fn watch(self: Arc<Self>, idx: usize, res: Arc<Resource>, cancel: CancellationToken) {
        // `Api<PartialObjectMeta<_>>` asks for metadata only.
        let api: Api<PartialObjectMeta<DynamicObject>> =
            Api::all_with(self.client.clone(), &res.ar);
        let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let mut listed: Option<HashSet<String>> = None;
        let mut synced_once = false;
        let mut failing = false;
        loop {
            let ev = tokio::select! {
                _ = cancel.cancelled() => return,
                ev = stream.next() => ev,
            };
            let ev = match ev {
                None => return,
                Some(Err(e)) => {
                    if !failing {
                        tracing::warn!(error = %e, "garbage collector watch failed; retrying");
                    }
                    failing = true;
                    continue;
                }
                Some(Ok(ev)) => ev,
            };
            failing = false;
            match ev {
                watcher::Event::Init => listed = Some(HashSet::new()),
                watcher::Event::InitApply(obj) => {
                    if let (Some(uid), Some(seen)) = (self.observe(idx, &obj), listed.as_mut()) {
                        seen.insert(uid);
                    }
                }
                watcher::Event::InitDone => {
                    // Objects deleted while no watch was open are not in the new list.
                    if let Some(seen) = listed.take() {
                        let stale: Vec<String> = self
                            .graph()
                            .uids_of_resource(idx)
                            .into_iter()
                            .filter(|u| !seen.contains(u))
                            .collect();
                        for uid in stale {
                            self.forget(&uid);
                        }
                    }
                    if !synced_once {
                        synced_once = true;
                        self.synced.fetch_add(1, Ordering::SeqCst);
                        self.synced_notify.notify_one();
                    }
                }
                watcher::Event::Apply(obj) => {
                    self.observe(idx, &obj);
                }
                watcher::Event::Delete(obj) => {
                    if let Some(uid) = obj.metadata.uid.as_deref() {
                        self.forget(uid);
                    }
                    if let Some(tell) = &self.deletions {
                        // Nobody listening is fine.
                        let _ = tell.send(Arc::new(crate::runtime::Deletion {
                            group: res.ar.group.clone(),
                            plural: res.ar.plural.clone(),
                            namespace: obj.metadata.namespace.clone().unwrap_or_default(),
                        }));
                    }
                }
            }
        }
    }

    async fn work(self: Arc<Self>, cancel: CancellationToken) {
        let deadline = Instant::now() + SYNC_GRACE;
        while self.synced.load(Ordering::SeqCst) < self.initial.load(Ordering::SeqCst) {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.synced_notify.notified() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(
                        synced = self.synced.load(Ordering::SeqCst),
                        resources = self.initial.load(Ordering::SeqCst),
                        "garbage collector starts before every watch has listed"
                    );
                    break;
                }
            }
        }
        tracing::info!(objects = self.graph().len(), "garbage collector synced");
        let mut resync = tokio::time::interval_at(Instant::now() + RESYNC, RESYNC);
        loop {
            let uid = tokio::select! {
                uid = self.queue.next(&cancel) => match uid {
                    Some(u) => u,
                    None => return,
                },
                _ = resync.tick() => {
                    let uids = self.graph().interesting();
                    self.queue.add(uids);
                    continue;
                }
            };
            let span = tracing::debug_span!("gc_sync", %uid);
            match self.sync(&uid).instrument(span).await {
                Ok(()) => self.queue.forget(&uid),
                Err(e) => {
                    tracing::debug!(%uid, error = %e, "garbage collector sync failed; retrying");
                    self.queue.retry(uid);
                }
            }
        }
    }

    /// Looks at one object afresh and acts on it.
    async fn sync(&self, uid: &str) -> Result<(), Error> {
        let Some(node) = self.graph().get(uid).cloned() else {
            return Ok(());
        };
        let decision = if node.deleting {
            graph::decide_owner(&self.graph(), &node)
        } else if node.owners.is_empty() {
            Decision::Nothing
        } else {
            let known: Vec<(OwnerRef, Option<OwnerState>)> = {
                let g = self.graph();
                node.owners
                    .iter()
                    .map(|r| (r.clone(), g.owner_state(r)))
                    .collect()
            };
            let mut states = Vec::with_capacity(known.len());
            for (r, st) in known {
                let st = match st {
                    Some(s) => s,
                    None => self.owner_state(&node, &r).await?,
                };
                states.push((r, st));
            }
            graph::decide_dependent(&self.graph(), &node, &states)
        };
        tracing::debug!(name = %node.name, ?decision, "garbage collector decision");
        self.act(&node, decision).await
    }

    /// Asks the API server about an owner the graph has not seen.
    async fn owner_state(&self, node: &Node, r: &OwnerRef) -> Result<OwnerState, Error> {
        let Some(info) = resources::find_kind(
            self.read_resources().iter().map(|r| &**r),
            &r.api_version,
            &r.kind,
        )
        .cloned() else {
            // An owner of a kind this server does not serve cannot be shown to be gone.
            return Ok(OwnerState::Solid);
        };
        if info.namespaced && node.namespace.is_none() {
            // A cluster-scoped dependent cannot have a namespaced owner; upstream leaves it alone.
            self.recorder
                .record(
                    &self.reference(node),
                    EventType::Warning,
                    "OwnerRefInvalidNamespace",
                    &format!(
                        "ownerRef [{}, namespace: , name: {}, uid: {}] does not exist in namespace \"\"",
                        r.api_version, r.name, r.uid
                    ),
                )
                .await;
            return Ok(OwnerState::Solid);
        }
        let api = info.api(&self.client, node.namespace.as_deref());
        Ok(match api.get_metadata_opt(&r.name).await? {
            None => OwnerState::Dangling,
            Some(m) if m.metadata.uid.as_deref() != Some(r.uid.as_str()) => OwnerState::Dangling,
            Some(m) => {
                let foreground = m.metadata.deletion_timestamp.is_some()
                    && m.metadata
                        .finalizers
                        .iter()
                        .flatten()
                        .any(|f| f == FOREGROUND);
                if foreground {
                    OwnerState::Waiting
                } else {
                    OwnerState::Solid
                }
            }
        })
    }

    fn reference(&self, node: &Node) -> ObjectReference {
        let ar = self.resource(node.resource).map(|r| r.ar.clone());
        ObjectReference {
            api_version: ar.as_ref().map(|a| a.api_version.clone()),
            kind: ar.map(|a| a.kind),
            name: Some(node.name.clone()),
            namespace: node.namespace.clone(),
            uid: Some(node.uid.clone()),
            ..ObjectReference::default()
        }
    }

    async fn act(&self, node: &Node, decision: Decision) -> Result<(), Error> {
        match decision {
            Decision::Nothing => Ok(()),
            Decision::Orphan { dependents } => {
                for dep in dependents {
                    let Some(d) = self.graph().get(&dep).cloned() else {
                        continue;
                    };
                    self.edit_owner_refs(&d, |refs| {
                        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(&node.uid))
                    })
                    .await?;
                }
                self.remove_finalizer(node, ORPHAN).await
            }
            Decision::FinishForeground => self.remove_finalizer(node, FOREGROUND).await,
            Decision::WaitForDependents { blocking } => {
                self.queue.add(blocking);
                Ok(())
            }
            Decision::RemoveOwnerRefs { owners } => {
                self.edit_owner_refs(node, |refs| {
                    refs.retain(|r| {
                        !r.get("uid")
                            .and_then(Value::as_str)
                            .is_some_and(|u| owners.iter().any(|o| o == u))
                    })
                })
                .await
            }
            Decision::Delete {
                propagation,
                unblock,
            } => {
                if !unblock.is_empty() {
                    self.edit_owner_refs(node, |refs| {
                        for r in refs.iter_mut() {
                            if r.get("uid")
                                .and_then(Value::as_str)
                                .is_some_and(|u| unblock.iter().any(|o| o == u))
                            {
                                r["blockOwnerDeletion"] = json!(false);
                            }
                        }
                    })
                    .await?;
                }
                self.delete(node, propagation).await
            }
        }
    }

    async fn delete(&self, node: &Node, propagation: Propagation) -> Result<(), Error> {
        let Some(info) = self.resource(node.resource) else {
            return Ok(());
        };
        let api = info.api(&self.client, node.namespace.as_deref());
        let dp = match propagation {
            Propagation::Background => DeleteParams::background(),
            Propagation::Foreground => DeleteParams::foreground(),
            Propagation::Orphan => DeleteParams::orphan(),
        }
        .preconditions(Preconditions {
            uid: Some(node.uid.clone()),
            resource_version: None,
        });
        tracing::info!(
            resource = %info.id(),
            namespace = node.namespace.as_deref().unwrap_or(""),
            name = %node.name,
            ?propagation,
            "garbage collector deletes a dependent whose owners are gone"
        );
        match api.delete(&node.name, &dp).await {
            Ok(_) => Ok(()),
            // Gone already, or a new object took the name: nothing of ours is left to delete.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Rewrites the object's ownerReferences from its newest version, guarded by its resourceVersion.
    async fn edit_owner_refs(
        &self,
        node: &Node,
        edit: impl Fn(&mut Vec<Value>),
    ) -> Result<(), Error> {
        let Some(info) = self.resource(node.resource) else {
            return Ok(());
        };
        let api = info.api(&self.client, node.namespace.as_deref());
        let Some(current) = api.get_metadata_opt(&node.name).await? else {
            return Ok(());
        };
        if current.metadata.uid.as_deref() != Some(node.uid.as_str()) {
            return Ok(());
        }
        let before: Vec<Value> = current
            .metadata
            .owner_references
            .iter()
            .flatten()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect();
        let mut after = before.clone();
        edit(&mut after);
        if after == before {
            return Ok(());
        }
        let refs = if after.is_empty() {
            Value::Null
        } else {
            json!(after)
        };
        let patch = json!({"metadata": {
            "resourceVersion": current.metadata.resource_version,
            "ownerReferences": refs,
        }});
        tracing::info!(resource = %info.id(), name = %node.name, "garbage collector updates ownerReferences");
        self.patch(&api, &node.name, patch).await
    }

    /// Drops one finalizer from the object's newest version; the server deletes an object
    /// whose deletion was pending on its last finalizer.
    async fn remove_finalizer(&self, node: &Node, finalizer: &str) -> Result<(), Error> {
        let Some(info) = self.resource(node.resource) else {
            return Ok(());
        };
        let api = info.api(&self.client, node.namespace.as_deref());
        let Some(current) = api.get_metadata_opt(&node.name).await? else {
            return Ok(());
        };
        if current.metadata.uid.as_deref() != Some(node.uid.as_str()) {
            return Ok(());
        }
        let finalizers = current.metadata.finalizers.clone().unwrap_or_default();
        if !finalizers.iter().any(|f| f == finalizer) {
            return Ok(());
        }
        let rest: Vec<&String> = finalizers.iter().filter(|f| *f != finalizer).collect();
        let patch = json!({"metadata": {
            "resourceVersion": current.metadata.resource_version,
            "finalizers": if rest.is_empty() { Value::Null } else { json!(rest) },
        }});
        tracing::info!(resource = %info.id(), name = %node.name, finalizer, "garbage collector removes its finalizer");
        self.patch(&api, &node.name, patch).await
    }

    async fn patch(&self, api: &Api<DynamicObject>, name: &str, patch: Value) -> Result<(), Error> {
        match api
            .patch_metadata(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queue_deduplicates_and_retries_later() {
        let cancel = CancellationToken::new();
        let q = Queue::default();
        q.add(["a".to_string(), "b".to_string(), "a".to_string()]);
        async fn next(q: &Queue, c: &CancellationToken) -> Option<String> {
            tokio::time::timeout(Duration::from_secs(5), q.next(c))
                .await
                .ok()
                .flatten()
        }
        assert_eq!(next(&q, &cancel).await.as_deref(), Some("a"));
        assert_eq!(next(&q, &cancel).await.as_deref(), Some("b"));
        q.retry("a".into());
        let started = Instant::now();
        assert_eq!(next(&q, &cancel).await.as_deref(), Some("a"));
        assert!(started.elapsed() >= Duration::from_millis(150));
        cancel.cancel();
        assert_eq!(next(&q, &cancel).await, None);
    }
}
