//! The Kubernetes scheduler: watches unscheduled pods and binds each to a node chosen by the
//! default profile's filter and score plugins, preempting lower-priority pods when none fits.
//!
//! One task owns the cache and the queue: watch events and write results arrive on channels
//! and are applied between scheduling cycles, so a cycle never takes a lock. Bindings, status
//! writes and preemptions run as tasks of their own, so the next cycle does not wait for them.

pub mod api;
pub mod cache;
pub mod events;
pub mod framework;
pub mod plugins;
pub mod pod_info;
pub mod preemption;
pub mod queue;
pub mod resources;
pub mod scheduler;
pub mod selector;

use crate::events::{EventType, Recorder};
use crate::framework::{Plugin, PluginSet};
use crate::pod_info::{PodInfo, PodKey};
use crate::scheduler::{Decision, Scheduler};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The `spec.schedulerName` this scheduler serves.
pub const SCHEDULER_NAME: &str = "default-scheduler";
/// Bindings in flight at once.
const MAX_BINDS_IN_FLIGHT: usize = 256;
/// How long the loop schedules before it lets other tasks on its thread run.
const TURN: Duration = Duration::from_millis(4);
/// How often unschedulable pods are checked for the five-minute retry.
const LEFTOVER_FLUSH: Duration = Duration::from_secs(30);

/// A change to an object in a cache the process keeps anyway.
pub enum Update<K> {
    Applied(Arc<K>),
    Deleted(Arc<K>),
}

/// A change to a pod in a cache the process keeps anyway.
pub type PodUpdate = Update<Pod>;

/// Objects from a cache shared with other components. `snapshot` is every object when
/// `changes` began; `changes` are the updates after it, in order (an update may repeat the
/// snapshot's own version of an object, never an older one).
pub struct Shared<K> {
    pub snapshot: Vec<Arc<K>>,
    pub changes: futures::stream::BoxStream<'static, Update<K>>,
}

/// Every kind the scheduler follows, from caches the process keeps warm whether or not this
/// scheduler leads: `skiff server` hands it the controllers' informers, so that a new lease
/// term starts scheduling at once, as upstream's kube-scheduler starts its informers before
/// it competes for the lease.
pub struct SharedCaches {
    pub pods: Shared<Pod>,
    pub nodes: Shared<Node>,
    pub namespaces: Shared<Namespace>,
    pub pvcs: Shared<PersistentVolumeClaim>,
    pub pvs: Shared<PersistentVolume>,
    pub pdbs: Shared<PodDisruptionBudget>,
}

/// A watch event of one of the kinds the scheduler follows.
enum Watched {
    Pod(Box<watcher::Event<Pod>>),
    PodSnapshot(Vec<Arc<Pod>>),
    PodUpdate(PodUpdate),
    Node(Box<watcher::Event<Node>>),
    Namespace(Box<watcher::Event<Namespace>>),
    Pvc(Box<watcher::Event<PersistentVolumeClaim>>),
    Pv(Box<watcher::Event<PersistentVolume>>),
    Pdb(Box<watcher::Event<PodDisruptionBudget>>),
}

const WATCHED_KINDS: u8 = 6;

/// What a write task reports back to the scheduling loop.
enum Written {
    Bound,
    BindFailed {
        pod: Arc<PodInfo>,
        attempts: u32,
        error: api::BindError,
    },
    PreemptionDone(PodKey),
}

/// Schedules pods with `spec.schedulerName: default-scheduler` until `cancel` fires.
pub async fn run(client: kube::Client, cancel: CancellationToken) {
    run_with(client, None, cancel).await
}

/// As [`run`], taking every kind from `caches` when given instead of watching them itself.
pub async fn run_with(
    client: kube::Client,
    caches: Option<SharedCaches>,
    cancel: CancellationToken,
) {
    let mut tasks = JoinSet::new();
    let (tx, rx) = mpsc::channel(4096);
    let (pods, nodes, namespaces, pvcs, pvs, pdbs) = match caches {
        Some(c) => (
            Some(c.pods),
            Some(c.nodes),
            Some(c.namespaces),
            Some(c.pvcs),
            Some(c.pvs),
            Some(c.pdbs),
        ),
        None => (None, None, None, None, None, None),
    };
    match pods {
        Some(pods) => tasks.spawn(forward_shared(pods, tx.clone(), cancel.clone())),
        None => tasks.spawn(forward(
            Api::<Pod>::all(client.clone()),
            |e| Watched::Pod(Box::new(e)),
            tx.clone(),
            cancel.clone(),
        )),
    };
    let c = (&client, &tx, &cancel);
    tasks.spawn(follow(nodes, c, |e| Watched::Node(Box::new(e))));
    tasks.spawn(follow(namespaces, c, |e| Watched::Namespace(Box::new(e))));
    tasks.spawn(follow(pvcs, c, |e| Watched::Pvc(Box::new(e))));
    tasks.spawn(follow(pvs, c, |e| Watched::Pv(Box::new(e))));
    tasks.spawn(follow(pdbs, c, |e| Watched::Pdb(Box::new(e))));
    drop(tx);
    let (recorder, event_writer) = Recorder::new(client.clone(), cancel.clone());
    tasks.spawn(event_writer);
    let mut lp = Loop {
        sched: Scheduler::default(),
        client,
        recorder,
        writes: JoinSet::new(),
        written_tx: mpsc::unbounded_channel().0,
        binds: Arc::new(Semaphore::new(MAX_BINDS_IN_FLIGHT)),
        synced: HashSet::new(),
        relisting: Default::default(),
    };
    let (written_tx, written_rx) = mpsc::unbounded_channel();
    lp.written_tx = written_tx;
    lp.run(rx, written_rx, cancel.clone()).await;
    cancel.cancel();
    // Writes in flight finish (or fail fast against a server shutting down).
    while lp.writes.join_next().await.is_some() {}
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r
            && e.is_panic()
        {
            tracing::error!(error = %e, "a scheduler task panicked");
        }
    }
}

/// Forwards one kind's watch events to the scheduling loop.
async fn forward<K>(
    api: Api<K>,
    wrap: fn(watcher::Event<K>) -> Watched,
    tx: mpsc::Sender<Watched>,
    cancel: CancellationToken,
) where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream.take_until(cancel.cancelled_owned()));
    while let Some(item) = stream.next().await {
        match item {
            Ok(ev) => {
                // As upstream's scheduler, keep no managedFields: nothing reads them.
                let ev = ev.modify(|o| o.meta_mut().managed_fields = None);
                if tx.send(wrap(ev)).await.is_err() {
                    return;
                }
            }
            Err(watcher::Error::WatchError(s)) if s.code == 410 => tracing::warn!(
                kind = %K::kind(&()),
                "scheduler watch fell behind the watch cache's history; re-listing"
            ),
            Err(e) => tracing::debug!(error = %e, "scheduler watch failed; retrying"),
        }
    }
}

/// Forwards a shared pod cache's snapshot and changes to the scheduling loop.
async fn forward_shared(pods: Shared<Pod>, tx: mpsc::Sender<Watched>, cancel: CancellationToken) {
    if tx.send(Watched::PodSnapshot(pods.snapshot)).await.is_err() {
        return;
    }
    let mut changes = std::pin::pin!(pods.changes.take_until(cancel.cancelled_owned()));
    while let Some(u) = changes.next().await {
        if tx.send(Watched::PodUpdate(u)).await.is_err() {
            return;
        }
    }
}

/// Follows one kind: from `cache` when there is one, else through a watch of its own.
fn follow<K>(
    cache: Option<Shared<K>>,
    (client, tx, cancel): (&kube::Client, &mpsc::Sender<Watched>, &CancellationToken),
    wrap: fn(watcher::Event<K>) -> Watched,
) -> futures::future::BoxFuture<'static, ()>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    match cache {
        Some(cache) => Box::pin(forward_cache(cache, wrap, tx.clone(), cancel.clone())),
        None => Box::pin(forward(
            Api::<K>::all(client.clone()),
            wrap,
            tx.clone(),
            cancel.clone(),
        )),
    }
}

/// Forwards a shared cache of one kind as a watch would: its snapshot as the initial list,
/// then its changes.
async fn forward_cache<K: Clone + Send + Sync + 'static>(
    cache: Shared<K>,
    wrap: fn(watcher::Event<K>) -> Watched,
    tx: mpsc::Sender<Watched>,
    cancel: CancellationToken,
) {
    let initial = std::iter::once(watcher::Event::Init)
        .chain(
            cache
                .snapshot
                .into_iter()
                .map(|o| watcher::Event::InitApply(Arc::unwrap_or_clone(o))),
        )
        .chain(std::iter::once(watcher::Event::InitDone));
    for e in initial {
        if tx.send(wrap(e)).await.is_err() {
            return;
        }
    }
    let mut changes = std::pin::pin!(cache.changes.take_until(cancel.cancelled_owned()));
    while let Some(u) = changes.next().await {
        let e = match u {
            Update::Applied(o) => watcher::Event::Apply(Arc::unwrap_or_clone(o)),
            Update::Deleted(o) => watcher::Event::Delete(Arc::unwrap_or_clone(o)),
        };
        if tx.send(wrap(e)).await.is_err() {
            return;
        }
    }
}

/// Keys seen during a re-list, per kind, to find objects deleted while the watch was down.
#[derive(Default)]
struct Relisting {
    pods: Option<HashSet<String>>,
    nodes: Option<HashSet<String>>,
    namespaces: Option<HashSet<String>>,
    pvcs: Option<HashSet<String>>,
    pvs: Option<HashSet<String>>,
    pdbs: Option<HashSet<String>>,
}

struct Loop {
    sched: Scheduler,
    client: kube::Client,
    recorder: Recorder,
    writes: JoinSet<()>,
    written_tx: mpsc::UnboundedSender<Written>,
    binds: Arc<Semaphore>,
    /// Kinds whose first list is complete; scheduling starts when all are.
    synced: HashSet<u8>,
    relisting: Relisting,
}

fn ns_key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

impl Loop {
    async fn run(
        &mut self,
        mut rx: mpsc::Receiver<Watched>,
        mut written: mpsc::UnboundedReceiver<Written>,
        cancel: CancellationToken,
    ) {
        let mut last_leftover_flush = Instant::now();
        let mut turn = std::time::Instant::now();
        loop {
            if cancel.is_cancelled() {
                return;
            }
            // Apply everything that has arrived before the next cycle.
            while let Ok(ev) = rx.try_recv() {
                self.watched(ev);
            }
            while let Ok(w) = written.try_recv() {
                self.written(w);
            }
            while self.writes.try_join_next().is_some() {}
            let now = Instant::now();
            self.sched.queue.flush_backoff(now);
            if now.duration_since(last_leftover_flush) >= LEFTOVER_FLUSH {
                self.sched.queue.flush_unschedulable_leftover(now);
                last_leftover_flush = now;
            }
            if self.synced.len() == usize::from(WATCHED_KINDS)
                && let Some(qp) = self.sched.queue.pop()
            {
                let decision = self.sched.schedule_one(qp, now);
                self.act(decision);
                // Let watch and write tasks run once this turn has used its share: yielding
                // after every cycle would let a busy server's other tasks starve the scheduler.
                if turn.elapsed() >= TURN {
                    tokio::task::yield_now().await;
                    turn = std::time::Instant::now();
                }
                continue;
            }
            turn = std::time::Instant::now();
            let wake = self
                .sched
                .queue
                .next_backoff()
                .unwrap_or(now + LEFTOVER_FLUSH)
                .min(last_leftover_flush + LEFTOVER_FLUSH);
            tokio::select! {
                _ = cancel.cancelled() => return,
                ev = rx.recv() => match ev {
                    Some(ev) => self.watched(ev),
                    None => return,
                },
                Some(w) = written.recv() => self.written(w),
                _ = tokio::time::sleep_until(wake) => {}
                Some(_) = self.writes.join_next(), if !self.writes.is_empty() => {}
            }
        }
    }

    fn act(&mut self, decision: Decision) {
        match decision {
            Decision::Bind {
                pod,
                node,
                attempts,
            } => {
                tracing::debug!(pod = %pod.key, node = %node, "binding");
                let client = self.client.clone();
                let recorder = self.recorder.clone();
                let tx = self.written_tx.clone();
                let permits = self.binds.clone();
                self.writes.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    match api::bind(client, &pod, &node).await {
                        Ok(()) => {
                            recorder.record(
                                api::pod_ref(&pod),
                                None,
                                EventType::Normal,
                                "Scheduled",
                                "Binding",
                                format!("Successfully assigned {} to {node}", pod.key),
                            );
                            let _ = tx.send(Written::Bound);
                        }
                        Err(error) => {
                            let _ = tx.send(Written::BindFailed {
                                pod,
                                attempts,
                                error,
                            });
                        }
                    }
                });
            }
            Decision::Failed {
                pod,
                reason,
                message,
                nominate,
                preemption,
            } => {
                tracing::debug!(pod = %pod.key, %message, "unschedulable");
                self.recorder.record(
                    api::pod_ref(&pod),
                    None,
                    EventType::Warning,
                    "FailedScheduling",
                    "Scheduling",
                    message.clone(),
                );
                let client = self.client.clone();
                let p = pod.clone();
                self.writes.spawn(async move {
                    if let Err(e) =
                        api::set_unschedulable(client, &p, reason, &message, nominate.as_deref())
                            .await
                    {
                        tracing::debug!(pod = %p.key, error = %e, "cannot update pod status");
                    }
                });
                if let Some(pre) = preemption {
                    tracing::info!(
                        pod = %pod.key,
                        node = %pre.candidate.node,
                        victims = ?preemption::keys(&pre.candidate.victims),
                        "preempting"
                    );
                    let client = self.client.clone();
                    let recorder = self.recorder.clone();
                    let tx = self.written_tx.clone();
                    self.writes.spawn(async move {
                        let key = pod.key.clone();
                        api::preempt(
                            client,
                            recorder,
                            pod,
                            pre.candidate.node,
                            pre.candidate.victims,
                            pre.lower_nominated,
                        )
                        .await;
                        let _ = tx.send(Written::PreemptionDone(key));
                    });
                }
            }
        }
    }

    fn written(&mut self, w: Written) {
        let now = Instant::now();
        match w {
            Written::Bound => {}
            Written::BindFailed {
                pod,
                attempts,
                error,
            } => {
                let was_assumed = self.sched.cache.is_assumed(&pod.key);
                self.sched.cache.forget_pod(&pod.key);
                // The pod nodes may have fit again: as upstream, a forgotten pod is an event.
                self.sched.queue.move_all(
                    PluginSet::of(&[Plugin::NodeResourcesFit, Plugin::NodePorts]),
                    now,
                );
                if was_assumed && !error.is_final() {
                    tracing::debug!(pod = %pod.key, %error, "binding failed; retrying");
                    self.recorder.record(
                        api::pod_ref(&pod),
                        None,
                        EventType::Warning,
                        "FailedScheduling",
                        "Scheduling",
                        error.to_string(),
                    );
                    self.sched.queue.requeue_after_error(pod, attempts, now);
                }
            }
            Written::PreemptionDone(key) => self.sched.queue.set_preempting(&key, false, now),
        }
    }

    fn watched(&mut self, ev: Watched) {
        match ev {
            Watched::Pod(e) => self.pod_event(*e),
            Watched::PodSnapshot(pods) => self.pod_snapshot(pods),
            Watched::PodUpdate(PodUpdate::Applied(p)) => self.pod_applied(p),
            Watched::PodUpdate(PodUpdate::Deleted(p)) => self.pod_deleted(&pod_info::pod_key(&p)),
            Watched::Node(e) => self.node_event(*e),
            Watched::Namespace(e) => self.namespace_event(*e),
            Watched::Pvc(e) => self.pvc_event(*e),
            Watched::Pv(e) => self.pv_event(*e),
            Watched::Pdb(e) => self.pdb_event(*e),
        }
    }

    fn pod_event(&mut self, e: watcher::Event<Pod>) {
        match e {
            watcher::Event::Init => self.relisting.pods = Some(HashSet::new()),
            watcher::Event::InitApply(p) => {
                if let Some(seen) = self.relisting.pods.as_mut() {
                    seen.insert(pod_info::pod_key(&p));
                }
                self.pod_applied(Arc::new(p));
            }
            watcher::Event::Apply(p) => self.pod_applied(Arc::new(p)),
            watcher::Event::Delete(p) => self.pod_deleted(&pod_info::pod_key(&p)),
            watcher::Event::InitDone => {
                let seen = self.relisting.pods.take().unwrap_or_default();
                self.pods_listed(&seen);
            }
        }
    }

    /// Every pod of a shared cache, as a complete list.
    fn pod_snapshot(&mut self, pods: Vec<Arc<Pod>>) {
        let mut seen = HashSet::with_capacity(pods.len());
        for p in pods {
            seen.insert(pod_info::pod_key(&p));
            self.pod_applied(p);
        }
        self.pods_listed(&seen);
    }

    /// A complete list of pods has been applied: pods not in it are gone.
    fn pods_listed(&mut self, seen: &HashSet<PodKey>) {
        let gone: Vec<PodKey> = self
            .sched
            .cache
            .pod_keys()
            .chain(self.sched.queue.keys())
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            self.pod_deleted(&k);
        }
        self.synced.insert(0);
    }

    fn pod_applied(&mut self, pod: Arc<Pod>) {
        let now = Instant::now();
        let info = Arc::new(PodInfo::new(pod));
        let phase = info.pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            // Finished pods hold no resources.
            self.pod_deleted(&info.key);
            return;
        }
        if info.node_name().is_some() {
            self.sched.queue.delete(&info.key);
            let known = self.sched.cache.pod(&info.key).cloned();
            let relevant = match &known {
                None => true,
                Some(old) => old.pod.metadata.labels != info.pod.metadata.labels,
            };
            self.sched.cache.add_or_update_pod(info);
            if relevant {
                self.sched.queue.move_all(
                    PluginSet::of(&[Plugin::InterPodAffinity, Plugin::PodTopologySpread]),
                    now,
                );
            }
            return;
        }
        let ours = info.spec().and_then(|s| s.scheduler_name.as_deref()) == Some(SCHEDULER_NAME);
        if !ours || info.is_terminating() {
            self.sched.queue.delete(&info.key);
            return;
        }
        if self.sched.cache.is_assumed(&info.key) {
            // Being bound; the binding's own event will confirm it.
            return;
        }
        self.sched.queue.add_or_update(info, now);
    }

    fn pod_deleted(&mut self, key: &str) {
        self.sched.queue.delete(key);
        if self.sched.cache.remove_pod(key).is_some() {
            self.sched.queue.move_all(
                PluginSet::of(&[
                    Plugin::NodeResourcesFit,
                    Plugin::NodePorts,
                    Plugin::InterPodAffinity,
                    Plugin::PodTopologySpread,
                    Plugin::VolumeBinding,
                ]),
                Instant::now(),
            );
        }
    }

    fn node_event(&mut self, e: watcher::Event<Node>) {
        let now = Instant::now();
        match e {
            watcher::Event::Init => self.relisting.nodes = Some(HashSet::new()),
            watcher::Event::InitApply(n) | watcher::Event::Apply(n) => {
                let name = n.metadata.name.clone().unwrap_or_default();
                if let Some(seen) = self.relisting.nodes.as_mut() {
                    seen.insert(name);
                }
                let new = Arc::new(n);
                let old = self.sched.cache.set_node(new.clone());
                let plugins = match old {
                    None => PluginSet::ALL,
                    Some(old) => node_change(&old, &new),
                };
                if !plugins.is_empty() {
                    self.sched.queue.move_all(plugins, now);
                }
            }
            watcher::Event::Delete(n) => {
                self.sched
                    .cache
                    .remove_node(n.metadata.name.as_deref().unwrap_or_default());
                self.sched
                    .queue
                    .move_all(PluginSet::of(&[Plugin::PodTopologySpread]), now);
            }
            watcher::Event::InitDone => {
                let seen = self.relisting.nodes.take().unwrap_or_default();
                let gone: Vec<String> = self
                    .sched
                    .cache
                    .node_names()
                    .filter(|n| !seen.contains(*n))
                    .map(str::to_string)
                    .collect();
                for n in gone {
                    self.sched.cache.remove_node(&n);
                }
                self.synced.insert(1);
            }
        }
    }

    fn namespace_event(&mut self, e: watcher::Event<Namespace>) {
        let namespaces = &mut self.sched.cache.namespaces;
        match e {
            watcher::Event::Init => self.relisting.namespaces = Some(HashSet::new()),
            watcher::Event::InitApply(n) | watcher::Event::Apply(n) => {
                let name = n.metadata.name.clone().unwrap_or_default();
                if let Some(seen) = self.relisting.namespaces.as_mut() {
                    seen.insert(name.clone());
                }
                let labels = n.metadata.labels.unwrap_or_default();
                if namespaces.get(&name) != Some(&labels) {
                    namespaces.insert(name, labels);
                    self.sched
                        .queue
                        .move_all(PluginSet::of(&[Plugin::InterPodAffinity]), Instant::now());
                }
            }
            watcher::Event::Delete(n) => {
                namespaces.remove(n.metadata.name.as_deref().unwrap_or_default());
            }
            watcher::Event::InitDone => {
                let seen = self.relisting.namespaces.take().unwrap_or_default();
                namespaces.retain(|k, _| seen.contains(k));
                self.synced.insert(2);
            }
        }
    }

    fn pvc_event(&mut self, e: watcher::Event<PersistentVolumeClaim>) {
        let map = &mut self.sched.cache.pvcs;
        match e {
            watcher::Event::Init => self.relisting.pvcs = Some(HashSet::new()),
            watcher::Event::InitApply(o) | watcher::Event::Apply(o) => {
                let key = ns_key(&o.metadata);
                if let Some(seen) = self.relisting.pvcs.as_mut() {
                    seen.insert(key.clone());
                }
                map.insert(key, Arc::new(o));
                self.sched
                    .queue
                    .move_all(PluginSet::of(&[Plugin::VolumeBinding]), Instant::now());
            }
            watcher::Event::Delete(o) => {
                map.remove(&ns_key(&o.metadata));
            }
            watcher::Event::InitDone => {
                let seen = self.relisting.pvcs.take().unwrap_or_default();
                map.retain(|k, _| seen.contains(k));
                self.synced.insert(3);
            }
        }
    }

    fn pv_event(&mut self, e: watcher::Event<PersistentVolume>) {
        let map = &mut self.sched.cache.pvs;
        match e {
            watcher::Event::Init => self.relisting.pvs = Some(HashSet::new()),
            watcher::Event::InitApply(o) | watcher::Event::Apply(o) => {
                let key = o.metadata.name.clone().unwrap_or_default();
                if let Some(seen) = self.relisting.pvs.as_mut() {
                    seen.insert(key.clone());
                }
                map.insert(key, Arc::new(o));
                self.sched
                    .queue
                    .move_all(PluginSet::of(&[Plugin::VolumeBinding]), Instant::now());
            }
            watcher::Event::Delete(o) => {
                map.remove(o.metadata.name.as_deref().unwrap_or_default());
            }
            watcher::Event::InitDone => {
                let seen = self.relisting.pvs.take().unwrap_or_default();
                map.retain(|k, _| seen.contains(k));
                self.synced.insert(4);
            }
        }
    }

    fn pdb_event(&mut self, e: watcher::Event<PodDisruptionBudget>) {
        let map = &mut self.sched.cache.pdbs;
        match e {
            watcher::Event::Init => self.relisting.pdbs = Some(HashSet::new()),
            watcher::Event::InitApply(o) | watcher::Event::Apply(o) => {
                let key = ns_key(&o.metadata);
                if let Some(seen) = self.relisting.pdbs.as_mut() {
                    seen.insert(key.clone());
                }
                map.insert(key, Arc::new(o));
            }
            watcher::Event::Delete(o) => {
                map.remove(&ns_key(&o.metadata));
            }
            watcher::Event::InitDone => {
                let seen = self.relisting.pdbs.take().unwrap_or_default();
                map.retain(|k, _| seen.contains(k));
                self.synced.insert(5);
            }
        }
    }
}

/// The plugins a Node update may newly satisfy.
fn node_change(old: &Node, new: &Node) -> PluginSet {
    let mut set = PluginSet::default();
    let status = |n: &Node| {
        n.status
            .as_ref()
            .map(|s| (s.allocatable.clone(), s.capacity.clone()))
    };
    if status(old) != status(new) {
        set.insert(Plugin::NodeResourcesFit);
    }
    if old.metadata.labels != new.metadata.labels {
        for p in [
            Plugin::NodeAffinity,
            Plugin::PodTopologySpread,
            Plugin::InterPodAffinity,
            Plugin::VolumeBinding,
        ] {
            set.insert(p);
        }
    }
    let taints = |n: &Node| n.spec.as_ref().and_then(|s| s.taints.clone());
    if taints(old) != taints(new) {
        set.insert(Plugin::TaintToleration);
        set.insert(Plugin::PodTopologySpread);
    }
    let cordoned = |n: &Node| n.spec.as_ref().and_then(|s| s.unschedulable);
    if cordoned(old) != cordoned(new) {
        set.insert(Plugin::NodeUnschedulable);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> Arc<Node> {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        Arc::new(n)
    }

    fn describe(w: Watched) -> String {
        let Watched::Node(e) = w else {
            return "not a node event".into();
        };
        let name = |n: &Node| n.metadata.name.clone().unwrap_or_default();
        match *e {
            watcher::Event::Init => "init".into(),
            watcher::Event::InitApply(n) => format!("list {}", name(&n)),
            watcher::Event::InitDone => "listed".into(),
            watcher::Event::Apply(n) => format!("apply {}", name(&n)),
            watcher::Event::Delete(n) => format!("delete {}", name(&n)),
        }
    }

    #[tokio::test]
    async fn a_shared_cache_arrives_as_a_list_then_its_changes() {
        let changes =
            futures::stream::iter(vec![Update::Applied(node("c")), Update::Deleted(node("a"))]);
        let cache = Shared {
            snapshot: vec![node("a"), node("b")],
            changes: Box::pin(changes),
        };
        let (tx, mut rx) = mpsc::channel(16);
        let forwarding = forward_cache(
            cache,
            |e| Watched::Node(Box::new(e)),
            tx,
            CancellationToken::new(),
        );
        tokio::time::timeout(Duration::from_secs(10), forwarding)
            .await
            .expect("the changes end, and so does the forwarding");
        let mut got = Vec::new();
        while let Ok(w) = rx.try_recv() {
            got.push(describe(w));
        }
        assert_eq!(
            got,
            ["init", "list a", "list b", "listed", "apply c", "delete a"]
        );
    }
}
