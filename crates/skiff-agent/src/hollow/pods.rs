//! The pod worker: one watch over every bound pod, a de-duplicating queue of pod keys, and a
//! bounded set of syncs that write each hollow pod's status (or finish its deletion).

use super::pod_status::{self, Placement, Sim};
use super::usage::{self, Usage};
use super::{Hollow, HollowError, PodRecord};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::time::DelayQueue;

/// Pod syncs in flight at once.
const CONCURRENCY: usize = 64;
/// Wait before retrying a sync that failed.
const RETRY: Duration = Duration::from_secs(1);

type Key = String;

fn key(pod: &Pod) -> Key {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Keys waiting for a sync, each at most once, and the ones being synced.
#[derive(Default)]
struct Queue {
    order: VecDeque<Key>,
    queued: HashSet<Key>,
    in_flight: HashSet<Key>,
    /// Changed while in flight: sync again when the current one ends.
    again: HashSet<Key>,
}

impl Queue {
    fn add(&mut self, k: Key) {
        if self.in_flight.contains(&k) {
            self.again.insert(k);
        } else if self.queued.insert(k.clone()) {
            self.order.push_back(k);
        }
    }

    fn next(&mut self) -> Option<Key> {
        let k = self.order.pop_front()?;
        self.queued.remove(&k);
        self.in_flight.insert(k.clone());
        Some(k)
    }

    fn done(&mut self, k: &Key) {
        self.in_flight.remove(k);
        if self.again.remove(k) {
            self.add(k.clone());
        }
    }
}

/// Runs until `cancel` fires.
pub async fn run(
    hollow: Arc<Hollow>,
    usage: Arc<Usage>,
    mut revisit: mpsc::UnboundedReceiver<usize>,
    cancel: CancellationToken,
) -> Result<(), HollowError> {
    let api: Api<Pod> = Api::all(hollow.client.clone());
    let stream = watcher(api, watcher::Config::default().fields("spec.nodeName!="))
        .default_backoff()
        // The agent never reads managed fields; not keeping them halves the cache.
        .modify(|p: &mut Pod| p.metadata.managed_fields = None);
    futures::pin_mut!(stream);
    let mut cache: HashMap<Key, Arc<Pod>> = HashMap::new();
    let mut listing: Option<HashSet<Key>> = None;
    let mut queue = Queue::default();
    let mut timers: DelayQueue<Key> = DelayQueue::new();
    let mut timer_keys: HashMap<Key, tokio_util::time::delay_queue::Key> = HashMap::new();
    let mut syncs: tokio::task::JoinSet<(Key, Result<Option<Duration>, kube::Error>)> =
        tokio::task::JoinSet::new();
    loop {
        while syncs.len() < CONCURRENCY {
            let Some(k) = queue.next() else { break };
            match cache.get(&k) {
                Some(pod) => {
                    let (h, u, pod) = (hollow.clone(), usage.clone(), pod.clone());
                    let span = tracing::debug_span!("sync_pod", pod = %k);
                    syncs.spawn(tracing::Instrument::instrument(
                        async move { (k, sync(&h, &u, &pod).await) },
                        span,
                    ));
                }
                None => queue.done(&k),
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            event = stream.next() => match event {
                Some(Ok(e)) => handle_event(e, &hollow, &usage, &mut cache, &mut listing, &mut queue),
                Some(Err(e)) => tracing::debug!(error = %e, "pod watch error; retrying"),
                None => return Err(HollowError::PodWatchEnded),
            },
            Some(expired) = futures::future::poll_fn(|cx| timers.poll_expired(cx)), if !timers.is_empty() => {
                let k = expired.into_inner();
                timer_keys.remove(&k);
                queue.add(k);
            }
            Some(done) = syncs.join_next(), if !syncs.is_empty() => {
                let Ok((k, result)) = done else { continue };
                queue.done(&k);
                let requeue = match result {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(pod = %k, error = %e, "pod sync failed; retrying");
                        Some(RETRY)
                    }
                };
                if let Some(after) = requeue {
                    match timer_keys.get(&k) {
                        Some(t) => timers.reset(t, after),
                        None => {
                            let t = timers.insert(k.clone(), after);
                            timer_keys.insert(k, t);
                        }
                    }
                }
            }
            Some(first) = revisit.recv() => {
                // Nodes back after a deletion, or given a pod CIDR: look at their pods again, in
                // one pass.
                let mut names = HashSet::from([hollow.nodes[first].name.clone()]);
                while let Ok(i) = revisit.try_recv() {
                    names.insert(hollow.nodes[i].name.clone());
                }
                for (k, pod) in &cache {
                    if pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some_and(|n| names.contains(n)) {
                        queue.add(k.clone());
                    }
                }
            }
        }
    }
    syncs.shutdown().await;
    Ok(())
}

fn forget(hollow: &Hollow, usage: &Usage, pod: &Pod) {
    if let Some(uid) = pod.metadata.uid.as_deref() {
        if let Ok(mut ips) = hollow.ips.lock() {
            ips.release(uid);
        }
        if let Ok(mut records) = hollow.pods.lock() {
            records.remove(uid);
        }
        usage.remove(uid);
    }
}

fn ours(hollow: &Hollow, pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| hollow.by_name.contains_key(n))
}

fn handle_event(
    event: watcher::Event<Pod>,
    hollow: &Hollow,
    usage: &Usage,
    cache: &mut HashMap<Key, Arc<Pod>>,
    listing: &mut Option<HashSet<Key>>,
    queue: &mut Queue,
) {
    match event {
        watcher::Event::Init => *listing = Some(HashSet::new()),
        watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
            if !ours(hollow, &pod) {
                return;
            }
            let k = key(&pod);
            if let Some(seen) = listing.as_mut() {
                seen.insert(k.clone());
            }
            if let Some(old) = cache.get(&k)
                && old.metadata.uid != pod.metadata.uid
            {
                forget(hollow, usage, old);
            }
            cache.insert(k.clone(), Arc::new(pod));
            queue.add(k);
        }
        watcher::Event::InitDone => {
            if let Some(seen) = listing.take() {
                let gone: Vec<Key> = cache
                    .keys()
                    .filter(|k| !seen.contains(*k))
                    .cloned()
                    .collect();
                for k in gone {
                    if let Some(pod) = cache.remove(&k) {
                        forget(hollow, usage, &pod);
                    }
                }
            }
        }
        watcher::Event::Delete(pod) => {
            let k = key(&pod);
            if let Some(old) = cache.remove(&k) {
                forget(hollow, usage, &old);
            }
        }
    }
}

fn status_value(pod: &Pod) -> Value {
    pod.status
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_else(|| json!({}))
}

/// Merge-patches the pod's status. The answer (the whole pod) is not decoded: the pod watch
/// brings the new version anyway.
async fn write_status(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    status: Value,
) -> Result<(), kube::Error> {
    use kube::Resource;
    let patch = Value::Object(serde_json::Map::from_iter([("status".to_string(), status)]));
    let request = kube::core::Request::new(Pod::url_path(&(), Some(namespace)))
        .patch_subresource(
            "status",
            name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .map_err(kube::Error::BuildRequest)?;
    match client.request_text(request).await {
        Ok(_) => Ok(()),
        // Gone meanwhile: nothing left to report.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Brings one pod's status in line with its simulated state; returns when to look again.
async fn sync(hollow: &Hollow, usage: &Usage, pod: &Pod) -> Result<Option<Duration>, kube::Error> {
    let Some(slot) = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .and_then(|n| hollow.node(n))
    else {
        return Ok(None);
    };
    // A pod bound to a node that does not exist (now) is not this agent's to touch.
    if !slot.exists.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let (Some(uid), Some(name), Some(namespace)) = (
        pod.metadata.uid.as_deref(),
        pod.metadata.name.as_deref(),
        pod.metadata.namespace.as_deref(),
    ) else {
        return Ok(None);
    };
    let api: Api<Pod> = Api::namespaced(hollow.client.clone(), namespace);
    let current = status_value(pod);
    let now = Timestamp::now();
    let host_ip = hollow.config.node_ip.to_string();
    if pod.metadata.deletion_timestamp.is_some() {
        if !pod_status::all_terminated(&current) {
            let started = pod
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map_or(now, |t| t.0);
            let pod_ip = current
                .get("podIP")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok());
            if let Some(pod_ip) = pod_ip {
                let placement = Placement {
                    host_ip,
                    pod_ip,
                    started,
                };
                let sim = Sim::Terminated {
                    exit_code: 0,
                    finished: now,
                };
                write_status(
                    &hollow.client,
                    namespace,
                    name,
                    pod_status::status(pod, &placement, &sim),
                )
                .await?;
            }
        }
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => {}
            // Gone already, or a new pod took the name.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e),
        }
        forget(hollow, usage, pod);
        return Ok(None);
    }
    let phase = current.get("phase").and_then(Value::as_str).unwrap_or("");
    if phase == "Succeeded" || phase == "Failed" {
        forget(hollow, usage, pod);
        return Ok(None);
    }
    // Admission and the pod's address, under one lock so two pods cannot take the last slot.
    let admitted = {
        let Ok(mut ips) = hollow.ips.lock() else {
            return Ok(Some(RETRY));
        };
        if ips.cidr(slot.index).is_none() {
            // The node IPAM controller has not given the node a range yet; its arrival
            // (through the node watch) brings the pod back.
            tracing::debug!(node = %slot.name, "waiting for the node's pod cidr");
            return Ok(None);
        }
        let used = ips.live(slot.index);
        let capacity = hollow.config.capacity.pods;
        if !ips.has(uid) && used >= capacity {
            Err(format!(
                "Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: {used}, capacity: {capacity}"
            ))
        } else {
            let preferred = current
                .get("podIP")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok());
            ips.allocate(uid, slot.index, preferred)
                .map_err(|e| format!("Pod was rejected: {e}"))
        }
    };
    let pod_ip = match admitted {
        Ok(ip) => ip,
        Err(message) => {
            tracing::info!(pod = %name, node = %slot.name, "rejected: out of pods");
            write_status(
                &hollow.client,
                namespace,
                name,
                pod_status::rejected("OutOfpods", &message),
            )
            .await?;
            return Ok(None);
        }
    };
    let started = match pod.status.as_ref().and_then(|s| s.start_time.as_ref()) {
        Some(t) => t.0,
        None => match hollow.pods.lock() {
            Ok(mut records) => {
                records
                    .entry(uid.to_string())
                    .or_insert(PodRecord { started: now })
                    .started
            }
            Err(_) => now,
        },
    };
    let (sim, requeue) = pod_status::simulate(pod, started, now, hollow.config.pod_run_seconds);
    let placement = Placement {
        host_ip,
        pod_ip,
        started,
    };
    let desired = pod_status::status(pod, &placement, &sim);
    if pod_status::signature(&desired) != pod_status::signature(&current) {
        let phase = desired["phase"].to_string();
        write_status(&hollow.client, namespace, name, desired).await?;
        tracing::debug!(%phase, "status written");
    }
    match sim {
        Sim::Running { .. } => usage.set(uid, slot.index, pod, usage::rates(pod)),
        Sim::Terminated { .. } => forget(hollow, usage, pod),
    }
    Ok(requeue)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_deduplicates_and_defers_keys_in_flight() {
        let mut q = Queue::default();
        q.add("a".into());
        q.add("b".into());
        q.add("a".into());
        assert_eq!(q.next().as_deref(), Some("a"));
        q.add("a".into());
        assert_eq!(q.next().as_deref(), Some("b"));
        assert_eq!(q.next(), None, "a is in flight");
        q.done(&"a".to_string());
        assert_eq!(q.next().as_deref(), Some("a"));
        q.done(&"a".to_string());
        q.done(&"b".to_string());
        assert_eq!(q.next(), None);
    }
}
