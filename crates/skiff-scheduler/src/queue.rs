//! The scheduling queue: activeQ (highest priority first, then oldest), backoffQ (per-pod
//! exponential backoff), and the unschedulable pool that cluster events move pods out of.

use crate::framework::PluginSet;
use crate::pod_info::{PodInfo, PodKey};
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long a pod stays unschedulable before it is retried without any event.
pub const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(5 * 60);

/// A pod waiting to be scheduled, with its attempt history.
#[derive(Debug, Clone)]
pub struct QueuedPod {
    pub info: Arc<PodInfo>,
    /// Scheduling attempts so far (incremented on each pop).
    pub attempts: u32,
    /// When the pod was added or last failed; backoff counts from here.
    pub timestamp: Instant,
    /// Orders pods of equal priority: earlier first.
    seq: u64,
    /// The plugins that rejected the pod in its last attempt.
    pub unschedulable_plugins: PluginSet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active((Reverse<i32>, u64)),
    Backoff((Instant, u64)),
    Unschedulable,
    /// `spec.schedulingGates` not empty yet.
    Gated,
    /// Popped and being scheduled (or bound).
    InFlight,
}

#[derive(Debug)]
struct Entry {
    pod: QueuedPod,
    place: Place,
}

fn gated(info: &PodInfo) -> bool {
    info.spec()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty())
}

/// Whether an update to a waiting pod may change the scheduling outcome (status-only writes,
/// such as this scheduler's own conditions, do not).
fn changed_for_scheduling(old: &PodInfo, new: &PodInfo) -> bool {
    old.pod.spec != new.pod.spec
        || old.pod.metadata.labels != new.pod.metadata.labels
        || old.pod.metadata.annotations != new.pod.metadata.annotations
}

#[derive(Debug)]
pub struct SchedulingQueue {
    pods: HashMap<PodKey, Entry>,
    active: BTreeMap<(Reverse<i32>, u64), PodKey>,
    backoff: BTreeMap<(Instant, u64), PodKey>,
    /// The pool, kept apart so that cluster events only look at the pods in it.
    unschedulable: HashSet<PodKey>,
    seq: u64,
    /// Pods whose preemption's API calls are still running; they wait in the pool.
    preempting: HashSet<PodKey>,
    /// node → pods nominated to it by preemption.
    nominated: HashMap<String, Vec<Arc<PodInfo>>>,
    nominated_node: HashMap<PodKey, String>,
}

impl Default for SchedulingQueue {
    fn default() -> Self {
        SchedulingQueue::new()
    }
}

impl SchedulingQueue {
    pub fn new() -> SchedulingQueue {
        SchedulingQueue {
            pods: HashMap::new(),
            active: BTreeMap::new(),
            backoff: BTreeMap::new(),
            unschedulable: HashSet::new(),
            seq: 0,
            preempting: HashSet::new(),
            nominated: HashMap::new(),
            nominated_node: HashMap::new(),
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.pods.contains_key(key)
    }

    fn unplace(&mut self, key: &str) {
        if let Some(e) = self.pods.get(key) {
            match e.place {
                Place::Active(k) => {
                    self.active.remove(&k);
                }
                Place::Backoff(k) => {
                    self.backoff.remove(&k);
                }
                Place::Unschedulable => {
                    self.unschedulable.remove(key);
                }
                _ => {}
            }
        }
    }

    fn place(&mut self, key: &str, place: Place) {
        self.unplace(key);
        match place {
            Place::Active(k) => {
                self.active.insert(k, key.to_string());
            }
            Place::Backoff(k) => {
                self.backoff.insert(k, key.to_string());
            }
            Place::Unschedulable => {
                self.unschedulable.insert(key.to_string());
            }
            _ => {}
        }
        if let Some(e) = self.pods.get_mut(key) {
            e.place = place;
        }
    }

    fn activate(&mut self, key: &str) {
        let Some(e) = self.pods.get(key) else { return };
        let k = (Reverse(e.pod.info.priority), e.pod.seq);
        self.place(key, Place::Active(k));
    }

    fn backoff_expiry(pod: &QueuedPod) -> Instant {
        let mut d = INITIAL_BACKOFF;
        for _ in 1..pod.attempts {
            if d > MAX_BACKOFF - d {
                d = MAX_BACKOFF;
                break;
            }
            d += d;
        }
        pod.timestamp + d
    }

    /// Moves a waiting pod to activeQ, or to backoffQ while its backoff runs.
    fn requeue(&mut self, key: &str, now: Instant) {
        if self.preempting.contains(key) {
            return;
        }
        let Some(e) = self.pods.get(key) else { return };
        if e.pod.attempts == 0 {
            self.activate(key);
            return;
        }
        let expiry = Self::backoff_expiry(&e.pod);
        if expiry > now {
            let seq = e.pod.seq;
            self.place(key, Place::Backoff((expiry, seq)));
        } else {
            self.activate(key);
        }
    }

    /// A pod without a node was created or changed.
    pub fn add_or_update(&mut self, info: Arc<PodInfo>, now: Instant) {
        self.set_nominated(&info);
        let key = info.key.clone();
        if let Some(e) = self.pods.get_mut(&key) {
            let changed = changed_for_scheduling(&e.pod.info, &info);
            e.pod.info = info.clone();
            match e.place {
                Place::Active(_) => self.activate(&key),
                Place::Gated if !gated(&info) => self.activate(&key),
                Place::Backoff(_) | Place::Unschedulable if changed => self.requeue(&key, now),
                _ => {}
            }
            return;
        }
        let seq = self.next_seq();
        let place = if gated(&info) {
            Place::Gated
        } else {
            Place::InFlight
        };
        self.pods.insert(
            key.clone(),
            Entry {
                pod: QueuedPod {
                    info,
                    attempts: 0,
                    timestamp: now,
                    seq,
                    unschedulable_plugins: PluginSet::default(),
                },
                place,
            },
        );
        if place != Place::Gated {
            self.activate(&key);
        }
    }

    /// The pod was deleted, bound, or is no longer this scheduler's.
    pub fn delete(&mut self, key: &str) {
        self.unplace(key);
        self.pods.remove(key);
        self.preempting.remove(key);
        self.clear_nominated(key);
    }

    /// Takes the next pod to schedule.
    pub fn pop(&mut self) -> Option<QueuedPod> {
        let (_, key) = self.active.pop_first()?;
        let e = self.pods.get_mut(&key)?;
        e.place = Place::InFlight;
        e.pod.attempts += 1;
        Some(e.pod.clone())
    }

    /// The pod was assumed on a node; the queue forgets it (a failed binding adds it back).
    pub fn done(&mut self, key: &str) {
        self.unplace(key);
        self.pods.remove(key);
    }

    /// A scheduling attempt failed: park the pod in the unschedulable pool (or in backoffQ
    /// for errors, which no cluster event is known to fix).
    pub fn add_unschedulable(&mut self, mut pod: QueuedPod, plugins: PluginSet, now: Instant) {
        let key = pod.info.key.clone();
        pod.timestamp = now;
        pod.seq = self.next_seq();
        pod.unschedulable_plugins = plugins;
        let error = plugins.is_empty();
        self.unplace(&key);
        self.pods.insert(
            key.clone(),
            Entry {
                pod,
                place: Place::InFlight,
            },
        );
        self.place(&key, Place::Unschedulable);
        if error {
            self.requeue(&key, now);
        }
    }

    /// A binding failed: the pod waits out its backoff and is tried again.
    pub fn requeue_after_error(&mut self, info: Arc<PodInfo>, attempts: u32, now: Instant) {
        let seq = self.next_seq();
        let pod = QueuedPod {
            info,
            attempts,
            timestamp: now,
            seq,
            unschedulable_plugins: PluginSet::default(),
        };
        self.add_unschedulable(pod, PluginSet::default(), now);
    }

    /// Every pod the queue holds, wherever it waits.
    pub fn keys(&self) -> impl Iterator<Item = &PodKey> {
        self.pods.keys()
    }

    /// Moves backed-off pods whose time has come to activeQ.
    pub fn flush_backoff(&mut self, now: Instant) {
        while let Some((&(at, seq), _)) = self.backoff.first_key_value() {
            if at > now {
                break;
            }
            if let Some(key) = self.backoff.remove(&(at, seq)) {
                self.activate(&key);
            }
        }
    }

    /// Retries pods that have been unschedulable for longer than five minutes.
    pub fn flush_unschedulable_leftover(&mut self, now: Instant) {
        let stale: Vec<PodKey> = self
            .unschedulable
            .iter()
            .filter_map(|k| self.pods.get_key_value(k))
            .filter(|(_, e)| {
                e.place == Place::Unschedulable
                    && now.duration_since(e.pod.timestamp) > MAX_UNSCHEDULABLE
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            self.requeue(&k, now);
        }
    }

    /// A cluster event that may help pods rejected by `plugins`: move those pods.
    pub fn move_all(&mut self, plugins: PluginSet, now: Instant) {
        let keys: Vec<PodKey> = self
            .unschedulable
            .iter()
            .filter_map(|k| self.pods.get_key_value(k))
            .filter(|(_, e)| {
                e.place == Place::Unschedulable
                    && (e.pod.unschedulable_plugins.is_empty()
                        || e.pod.unschedulable_plugins.intersects(plugins))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.requeue(&k, now);
        }
    }

    /// When the next backed-off pod is due.
    pub fn next_backoff(&self) -> Option<Instant> {
        self.backoff.first_key_value().map(|((at, _), _)| *at)
    }

    pub fn set_preempting(&mut self, key: &str, running: bool, now: Instant) {
        if running {
            self.preempting.insert(key.to_string());
        } else if self.preempting.remove(key)
            && self
                .pods
                .get(key)
                .is_some_and(|e| e.place == Place::Unschedulable)
        {
            self.requeue(key, now);
        }
    }

    fn set_nominated(&mut self, info: &Arc<PodInfo>) {
        let node = info
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.clone())
            .filter(|n| !n.is_empty());
        match node {
            Some(n) => self.nominate(info.clone(), &n),
            None => {
                // Keep a nomination made by this scheduler until the API shows it.
                if let Some(n) = self.nominated_node.get(&info.key).cloned() {
                    self.nominate(info.clone(), &n);
                }
            }
        }
    }

    /// Records that `info` waits for room on `node` (upstream's nominator).
    pub fn nominate(&mut self, info: Arc<PodInfo>, node: &str) {
        self.clear_nominated(&info.key);
        self.nominated_node
            .insert(info.key.clone(), node.to_string());
        self.nominated
            .entry(node.to_string())
            .or_default()
            .push(info);
    }

    pub fn clear_nominated(&mut self, key: &str) {
        if let Some(node) = self.nominated_node.remove(key)
            && let Some(list) = self.nominated.get_mut(&node)
        {
            list.retain(|p| p.key != key);
            if list.is_empty() {
                self.nominated.remove(&node);
            }
        }
    }

    pub fn nominated_for(&self, node: &str) -> &[Arc<PodInfo>] {
        self.nominated
            .get(node)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub fn nominated_node(&self, key: &str) -> Option<&str> {
        self.nominated_node.get(key).map(String::as_str)
    }

    pub fn has_nominated(&self) -> bool {
        !self.nominated.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::testing::*;
    use crate::framework::Plugin;
    use k8s_openapi::api::core::v1::{Pod, PodSchedulingGate};

    fn prio(name: &str, p: i32) -> Arc<PodInfo> {
        let mut pod = pod(name, "", "");
        pod.spec.get_or_insert_default().priority = Some(p);
        info(pod)
    }

    #[test]
    fn active_queue_orders_by_priority_then_arrival() {
        let now = Instant::now();
        let mut q = SchedulingQueue::new();
        q.add_or_update(prio("low", 0), now);
        q.add_or_update(prio("high", 100), now);
        q.add_or_update(prio("low2", 0), now);
        q.add_or_update(prio("mid", 50), now);
        let order: Vec<String> =
            std::iter::from_fn(|| q.pop().map(|p| p.info.name.clone())).collect();
        assert_eq!(order, vec!["high", "mid", "low", "low2"]);
    }

    #[test]
    fn failures_back_off_exponentially_up_to_ten_seconds() {
        let mut q = SchedulingQueue::new();
        let mut now = Instant::now();
        q.add_or_update(prio("p", 0), now);
        for want in [1, 2, 4, 8, 10, 10] {
            let p = q.pop().expect("active");
            let failed_at = now;
            q.add_unschedulable(p, PluginSet::default(), failed_at);
            assert!(q.pop().is_none(), "backing off");
            assert_eq!(
                q.next_backoff(),
                Some(failed_at + Duration::from_secs(want))
            );
            now = failed_at + Duration::from_secs(want) - Duration::from_millis(1);
            q.flush_backoff(now);
            assert!(q.pop().is_none(), "still backing off after {want}s");
            now += Duration::from_millis(1);
            q.flush_backoff(now);
            assert_eq!(q.active_len(), 1);
        }
    }

    #[test]
    fn unschedulable_pods_move_on_relevant_events_only() {
        let mut q = SchedulingQueue::new();
        let now = Instant::now();
        q.add_or_update(prio("p", 0), now);
        let p = q.pop().expect("active");
        q.add_unschedulable(p, PluginSet::of(&[Plugin::NodeResourcesFit]), now);
        q.move_all(PluginSet::of(&[Plugin::TaintToleration]), now);
        assert_eq!(q.active_len(), 0);
        assert!(q.next_backoff().is_none());
        // Relevant, while still backing off: backoffQ first.
        q.move_all(PluginSet::of(&[Plugin::NodeResourcesFit]), now);
        assert_eq!(q.active_len(), 0);
        assert!(q.next_backoff().is_some());
        q.flush_backoff(now + Duration::from_secs(1));
        assert_eq!(q.active_len(), 1);
    }

    #[test]
    fn unschedulable_pods_are_retried_after_five_minutes() {
        let mut q = SchedulingQueue::new();
        let now = Instant::now();
        q.add_or_update(prio("p", 0), now);
        let p = q.pop().expect("active");
        q.add_unschedulable(p, PluginSet::of(&[Plugin::NodeAffinity]), now);
        q.flush_unschedulable_leftover(now + Duration::from_secs(299));
        assert_eq!(q.active_len(), 0);
        q.flush_unschedulable_leftover(now + Duration::from_secs(301));
        assert_eq!(q.active_len(), 1);
    }

    #[test]
    fn status_updates_do_not_requeue_but_spec_changes_do() {
        let now = Instant::now();
        let mut q = SchedulingQueue::new();
        let p = prio("p", 0);
        q.add_or_update(p.clone(), now);
        let popped = q.pop().expect("active");
        q.add_unschedulable(popped, PluginSet::of(&[Plugin::NodeAffinity]), now);
        let mut status_only: Pod = (*p.pod).clone();
        status_only.status.get_or_insert_default().phase = Some("Pending".into());
        q.add_or_update(info(status_only), now);
        assert_eq!(q.active_len(), 0);
        let relabeled = labeled((*p.pod).clone(), &[("x", "y")]);
        q.add_or_update(info(relabeled), now + Duration::from_secs(2));
        assert_eq!(q.active_len(), 1);
    }

    #[test]
    fn gated_pods_wait_for_their_gates_to_be_removed() {
        let now = Instant::now();
        let mut q = SchedulingQueue::new();
        let mut p = pod("g", "", "");
        p.spec.get_or_insert_default().scheduling_gates = Some(vec![PodSchedulingGate {
            name: "example.com/wait".into(),
        }]);
        q.add_or_update(info(p.clone()), now);
        assert!(q.pop().is_none());
        p.spec.get_or_insert_default().scheduling_gates = None;
        q.add_or_update(info(p), now);
        assert!(q.pop().is_some());
    }

    #[test]
    fn deleted_pods_leave_every_queue() {
        let now = Instant::now();
        let mut q = SchedulingQueue::new();
        q.add_or_update(prio("p", 0), now);
        q.nominate(prio("p", 0), "n1");
        q.delete("default/p");
        assert!(q.pop().is_none());
        assert!(q.nominated_for("n1").is_empty());
        assert!(q.is_empty());
    }
}
