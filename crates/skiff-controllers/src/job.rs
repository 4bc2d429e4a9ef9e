//! Job controller: runs pods to completion (counts, work queues, Indexed Jobs), backs off and
//! gives up on failures, suspends, enforces deadlines, and counts finished pods exactly once by
//! the `batch.kubernetes.io/job-tracking` finalizer, as upstream's pkg/controller/job.

pub mod backoff;
pub mod indexed;
pub mod policy;

use crate::events::{EventType, Recorder};
use crate::expectations::Expectations;
use crate::pod_util;
use crate::runtime::{self, Change, Informer, Informers, Key, Queue};
use futures::future::join_all;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use policy::Action;
use serde_json::json;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The finalizer that keeps a finished pod until its Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
const COMPONENT: &str = "job-controller";
/// `spec.managedBy` of Jobs this controller manages (or none).
const MANAGED_BY: &str = "kubernetes.io/job-controller";
/// Upstream's MaxPodCreateDeletePerSync.
const BURST: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("api request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("{0} of {1} pod creations failed: {2}")]
    Create(usize, usize, String),
}

/// Tunables; the defaults are upstream's.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub pod_failure_backoff: Duration,
    pub max_pod_failure_backoff: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            pod_failure_backoff: backoff::DEFAULT_POD_FAILURE_BACKOFF,
            max_pod_failure_backoff: backoff::MAX_POD_FAILURE_BACKOFF,
        }
    }
}

pub struct Ctx {
    pub client: kube::Client,
    pub jobs: Arc<Informer<Job>>,
    pub pods: Arc<Informer<Pod>>,
    pub expectations: Expectations,
    pub backoff: backoff::Store,
    /// Pods whose finalizer this controller removed, until the cache shows it gone: a lagging
    /// cache must not make a pod count twice.
    released: Mutex<HashMap<Key, HashSet<String>>>,
    pub recorder: Recorder,
    pub config: Config,
}

impl Ctx {
    fn released(&self, key: &Key, pods: &[Arc<Pod>]) -> HashSet<String> {
        let mut m = self.released.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(set) = m.get_mut(key) else {
            return HashSet::new();
        };
        set.retain(|uid| {
            pods.iter()
                .any(|p| p.metadata.uid.as_deref() == Some(uid.as_str()) && has_finalizer(p))
        });
        let out = set.clone();
        if set.is_empty() {
            m.remove(key);
        }
        out
    }

    fn mark_released(&self, key: &Key, uid: &str) {
        self.released
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_default()
            .insert(uid.to_string());
    }

    fn forget(&self, key: &Key) {
        self.expectations.forget(key);
        self.backoff.forget(key);
        self.released
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

fn keys_for_pod(ctx: &Ctx, change: &Change<Pod>) -> Vec<Key> {
    let mut keys = Vec::new();
    match change {
        Change::Applied { old, new } => {
            let was_deleting = old.as_ref().is_some_and(|o| pod_util::is_terminating(o));
            if let Some(k) = runtime::controller_of(&**new, "Job") {
                if old.is_none() {
                    ctx.expectations.creation_observed(&k);
                } else if !was_deleting && pod_util::is_terminating(new) {
                    ctx.expectations.deletion_observed(&k);
                }
                keys.push(k);
            }
            if let Some(old) = old
                && let Some(k) = runtime::controller_of(&**old, "Job")
                && !keys.contains(&k)
            {
                keys.push(k);
            }
        }
        Change::Deleted(last) => {
            if let Some(k) = runtime::controller_of(&**last, "Job") {
                if !pod_util::is_terminating(last) {
                    ctx.expectations.deletion_observed(&k);
                }
                keys.push(k);
            }
        }
    }
    keys
}

/// Runs the Job controller until `cancel` fires.
pub async fn run(
    informers: Arc<Informers>,
    workers: usize,
    config: Config,
    cancel: CancellationToken,
) {
    let ctx = Arc::new(Ctx {
        client: informers.client().clone(),
        jobs: informers.get::<Job>(),
        pods: informers.get::<Pod>(),
        expectations: Expectations::default(),
        backoff: backoff::Store::default(),
        released: Mutex::default(),
        recorder: Recorder::new(informers.client().clone(), COMPONENT),
        config,
    });
    let queue = Queue::new();
    let job_changes = ctx.jobs.subscribe();
    let pod_changes = ctx.pods.subscribe();
    ctx.jobs.synced().await;
    ctx.pods.synced().await;
    for j in ctx.jobs.list() {
        queue.add(Key::of(&*j));
    }
    let jobs_fed = runtime::enqueue_changes(
        job_changes,
        queue.clone(),
        cancel.clone(),
        |c: &Change<Job>| [Key::of(&**c.object())],
    );
    let ctx2 = ctx.clone();
    let pods_fed = runtime::enqueue_changes(pod_changes, queue.clone(), cancel.clone(), move |c| {
        keys_for_pod(&ctx2, c)
    });
    let workers = runtime::run_workers(COMPONENT, queue, workers, cancel, move |key| {
        let ctx = ctx.clone();
        async move { sync(&ctx, &key).await }
    });
    tokio::join!(jobs_fed, pods_fed, workers);
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn has_finalizer(p: &Pod) -> bool {
    p.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == TRACKING_FINALIZER))
}

fn uid(p: &Pod) -> &str {
    p.metadata.uid.as_deref().unwrap_or("")
}

/// Deleted but not yet finished (upstream's isPodTerminating).
fn is_pod_terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some() && !matches!(phase(p), "Succeeded" | "Failed")
}

/// Only failed pods are replaced (not terminating ones): podReplacementPolicy Failed, or a
/// podFailurePolicy.
fn only_replace_failed(spec: &JobSpec) -> bool {
    spec.pod_replacement_policy.as_deref() == Some("Failed") || spec.pod_failure_policy.is_some()
}

/// Upstream's isPodFailed: a Failed pod, or (unless only failed pods are replaced) a deleted
/// one that did not succeed, so that orphans count too.
fn is_pod_failed(p: &Pod, spec: &JobSpec) -> bool {
    if phase(p) == "Failed" {
        return true;
    }
    if only_replace_failed(spec) {
        return false;
    }
    p.metadata.deletion_timestamp.is_some() && phase(p) != "Succeeded"
}

/// When a finished pod finished: its last container's end, else now.
fn finish_time(p: &Pod, now: Timestamp) -> Timestamp {
    p.status
        .as_ref()
        .into_iter()
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
        })
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max()
        .unwrap_or(now)
}

fn condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// Complete or Failed.
pub fn is_finished(job: &Job) -> bool {
    condition(job, "Complete").is_some() || condition(job, "Failed").is_some()
}

/// A condition the Job is heading for, and the terminal one it becomes once no pod runs.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    /// FailureTarget or SuccessCriteriaMet.
    interim: &'static str,
    reason: String,
    message: String,
}

impl Target {
    fn failure(reason: &str, message: &str) -> Target {
        Target {
            interim: "FailureTarget",
            reason: reason.into(),
            message: message.into(),
        }
    }
    fn success(reason: &str, message: &str) -> Target {
        Target {
            interim: "SuccessCriteriaMet",
            reason: reason.into(),
            message: message.into(),
        }
    }
    fn terminal(&self) -> &'static str {
        if self.interim == "FailureTarget" {
            "Failed"
        } else {
            "Complete"
        }
    }
}

/// Sets condition `type_` to `status`; true when anything changed (upstream's
/// ensureJobConditionStatus: an absent condition is only added when True).
fn ensure_condition(
    status: &mut JobStatus,
    type_: &str,
    cond_status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status == cond_status
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(message)
        {
            return false;
        }
        if c.status != cond_status {
            c.last_transition_time = Some(Time(now));
        }
        c.status = cond_status.into();
        c.reason = Some(reason.into());
        c.message = Some(message.into());
        c.last_probe_time = Some(Time(now));
        return true;
    }
    if cond_status != "True" {
        return false;
    }
    conditions.push(JobCondition {
        type_: type_.into(),
        status: cond_status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
    true
}

/// OnFailure pods restart in place: their restarts count towards backoffLimit.
fn past_backoff_limit_on_failure(spec: &JobSpec, pods: &[Arc<Pod>]) -> bool {
    let restart_policy = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref());
    if restart_policy != Some("OnFailure") {
        return false;
    }
    let restarts: i32 = pods
        .iter()
        .filter(|p| matches!(phase(p), "Running" | "Pending"))
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum();
    let limit = spec.backoff_limit.unwrap_or(6);
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

/// How long until `activeDeadlineSeconds` passes (zero: it has).
fn deadline_left(spec: &JobSpec, status: &JobStatus, now: Timestamp) -> Option<Duration> {
    let secs = spec.active_deadline_seconds?;
    if spec.suspend == Some(true) {
        return None;
    }
    let start = status.start_time.as_ref()?.0;
    let end = start.checked_add(SignedDuration::from_secs(secs)).ok()?;
    let left = now.duration_until(end);
    Some(if left.is_positive() {
        left.unsigned_abs()
    } else {
        Duration::ZERO
    })
}

/// The indexes that failed for good under backoffLimitPerIndex (or a FailIndex rule).
fn failed_indexes(spec: &JobSpec, pods: &[Arc<Pod>], completions: i32) -> BTreeSet<i32> {
    let Some(limit) = spec.backoff_limit_per_index else {
        return BTreeSet::new();
    };
    let mut out = BTreeSet::new();
    for p in pods.iter().filter(|p| is_pod_failed(p, spec)) {
        let Some(i) = indexed::completion_index(p).filter(|i| *i < completions) else {
            continue;
        };
        match policy::match_pod_failure_policy(spec.pod_failure_policy.as_ref(), p) {
            Action::FailIndex => {
                out.insert(i);
            }
            Action::Count | Action::FailJob(_) if indexed::index_failure_count(p) >= limit => {
                out.insert(i);
            }
            _ => {}
        }
    }
    out
}

/// The failure counts a replacement pod for index `i` starts with.
fn index_failure_counts(spec: &JobSpec, pods: &[Arc<Pod>], i: i32) -> (i32, i32) {
    let mut counted = 0;
    let mut ignored = 0;
    for p in pods.iter().filter(|p| is_pod_failed(p, spec)) {
        if indexed::completion_index(p) != Some(i) {
            continue;
        }
        let (c, g) = (
            indexed::index_failure_count(p),
            indexed::index_ignored_failure_count(p),
        );
        match policy::match_pod_failure_policy(spec.pod_failure_policy.as_ref(), p) {
            Action::Ignore => {
                counted = counted.max(c);
                ignored = ignored.max(g + 1);
            }
            _ => {
                counted = counted.max(c + 1);
                ignored = ignored.max(g);
            }
        }
    }
    (counted, ignored)
}

/// Removes the tracking finalizer from pods of a Job that is gone or replaced by a new one of
/// the same name (upstream's orphan pod handling).
async fn release_stale_pods(ctx: &Ctx, key: &Key, current_uid: &str) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.namespace);
    for p in ctx.pods.list_namespace(&key.namespace) {
        let stale = p.metadata.owner_references.iter().flatten().any(|o| {
            o.controller == Some(true)
                && o.kind == "Job"
                && o.name == key.name
                && o.uid != current_uid
        });
        if stale && has_finalizer(&p) {
            remove_finalizer(&api, &p).await?;
        }
    }
    Ok(())
}

async fn remove_finalizer(api: &Api<Pod>, pod: &Pod) -> Result<(), kube::Error> {
    let patch = json!({"metadata": {
        "$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER],
    }});
    let name = pod.metadata.name.clone().unwrap_or_default();
    match api
        .patch(&name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// What one sync learned from the pods.
struct Observed {
    active: Vec<Arc<Pod>>,
    terminating: i32,
    ready: i32,
    /// Finished pods to release without counting (ignored failures, bad indexes).
    release_only: Vec<Arc<Pod>>,
    new_succeeded: Vec<Timestamp>,
    new_failed: Vec<Timestamp>,
    fail_job_message: Option<String>,
}

fn observe(
    spec: &JobSpec,
    pods: &[Arc<Pod>],
    released: &HashSet<String>,
    uncounted: &mut UncountedTerminatedPods,
    now: Timestamp,
) -> Observed {
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions.unwrap_or(i32::MAX);
    let succeeded = uncounted.succeeded.get_or_insert_with(Vec::new);
    let mut new_succeeded_uids = Vec::new();
    let mut new_failed_uids = Vec::new();
    let mut o = Observed {
        active: pods
            .iter()
            .filter(|p| pod_util::is_active(p))
            .cloned()
            .collect(),
        terminating: pods.iter().filter(|p| is_pod_terminating(p)).count() as i32,
        ready: pods
            .iter()
            .filter(|p| pod_util::is_active(p) && pod_util::is_ready(p))
            .count() as i32,
        release_only: Vec::new(),
        new_succeeded: Vec::new(),
        new_failed: Vec::new(),
        fail_job_message: None,
    };
    let failed = uncounted.failed.clone().unwrap_or_default();
    for p in pods {
        let id = uid(p);
        if !has_finalizer(p)
            || released.contains(id)
            || succeeded.iter().any(|u| u == id)
            || failed.iter().any(|u| u == id)
        {
            continue;
        }
        let valid_index = !indexed || indexed::completion_index(p).is_some_and(|i| i < completions);
        if phase(p) == "Succeeded" {
            if valid_index {
                new_succeeded_uids.push(id.to_string());
                o.new_succeeded.push(finish_time(p, now));
            } else {
                o.release_only.push(p.clone());
            }
        } else if is_pod_failed(p, spec) {
            if !valid_index {
                o.release_only.push(p.clone());
                continue;
            }
            match policy::match_pod_failure_policy(spec.pod_failure_policy.as_ref(), p) {
                Action::Ignore => o.release_only.push(p.clone()),
                action => {
                    if let Action::FailJob(m) = action {
                        o.fail_job_message.get_or_insert(m);
                    }
                    new_failed_uids.push(id.to_string());
                    o.new_failed.push(finish_time(p, now));
                }
            }
        }
    }
    succeeded.extend(new_succeeded_uids);
    uncounted
        .failed
        .get_or_insert_with(Vec::new)
        .extend(new_failed_uids);
    o
}

async fn sync(ctx: &Ctx, key: &Key) -> Result<Option<Duration>, Error> {
    let Some(cached) = ctx.jobs.get(&key.namespace, &key.name) else {
        ctx.forget(key);
        release_stale_pods(ctx, key, "").await?;
        return Ok(None);
    };
    let mut job = (*cached).clone();
    let job_uid = job.metadata.uid.clone().unwrap_or_default();
    release_stale_pods(ctx, key, &job_uid).await?;
    let Some(spec) = job.spec.clone() else {
        return Ok(None);
    };
    if spec.managed_by.as_deref().is_some_and(|m| m != MANAGED_BY) {
        return Ok(None);
    }
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .list_namespace(&key.namespace)
        .into_iter()
        .filter(|p| {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && o.uid == job_uid)
        })
        .collect();
    if is_finished(&job) {
        // Upstream stops here; stragglers only lose the finalizer.
        ctx.backoff.forget(key);
        for p in pods.iter().filter(|p| has_finalizer(p)) {
            remove_finalizer(&pods_api, p).await?;
        }
        return Ok(None);
    }
    let now = Timestamp::now();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let per_index = indexed && spec.backoff_limit_per_index.is_some();
    let suspended = spec.suspend == Some(true);
    let released = ctx.released(key, &pods);

    let mut status = job.status.clone().unwrap_or_default();
    let mut uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let o = observe(&spec, &pods, &released, &mut uncounted, now);
    let index_of: HashMap<&str, i32> = pods
        .iter()
        .filter_map(|p| Some((uid(p), indexed::completion_index(p)?)))
        .collect();
    let n_completions = completions.unwrap_or(0);
    let mut completed = if indexed {
        indexed::parse(
            status.completed_indexes.as_deref().unwrap_or(""),
            n_completions,
        )
    } else {
        BTreeSet::new()
    };
    let unc_succeeded = uncounted.succeeded.clone().unwrap_or_default();
    let unc_failed = uncounted.failed.clone().unwrap_or_default();
    let succeeded_total = if indexed {
        let mut all = completed.clone();
        all.extend(
            unc_succeeded
                .iter()
                .filter_map(|u| index_of.get(u.as_str())),
        );
        all.len() as i32
    } else {
        status.succeeded.unwrap_or(0) + unc_succeeded.len() as i32
    };
    let failed_total = status.failed.unwrap_or(0) + unc_failed.len() as i32;
    let mut failed_idx = if per_index {
        let mut f = indexed::parse(
            status.failed_indexes.as_deref().unwrap_or(""),
            n_completions,
        );
        f.extend(failed_indexes(&spec, &pods, n_completions));
        f
    } else {
        BTreeSet::new()
    };
    if status.start_time.is_none() && !suspended {
        status.start_time = Some(Time(now));
    }

    // What the Job is heading for.
    let mut requeue: Option<Duration> = None;
    let mut target = ["FailureTarget", "SuccessCriteriaMet"]
        .iter()
        .find_map(|t| condition(&job, t))
        .map(|c| Target {
            interim: if c.type_ == "FailureTarget" {
                "FailureTarget"
            } else {
                "SuccessCriteriaMet"
            },
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
        });
    if target.is_none() {
        let deadline = deadline_left(&spec, &status, now);
        if let Some(m) = &o.fail_job_message {
            target = Some(Target::failure("PodFailurePolicy", m));
        } else if (!per_index && failed_total > spec.backoff_limit.unwrap_or(6))
            || past_backoff_limit_on_failure(&spec, &pods)
        {
            target = Some(Target::failure(
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ));
        } else if deadline == Some(Duration::ZERO) {
            target = Some(Target::failure(
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            ));
        } else if let Some(left) = deadline {
            requeue = Some(left);
        }
        if target.is_none() && per_index {
            let total = failed_idx.len() as i32;
            if spec.max_failed_indexes.is_some_and(|m| total > m) {
                target = Some(Target::failure(
                    "MaxFailedIndexesExceeded",
                    "Job has exceeded the specified maximal number of failed indexes",
                ));
            } else if total > 0 && total + succeeded_total >= n_completions {
                target = Some(Target::failure("FailedIndexes", "Job has failed indexes"));
            }
        }
        if target.is_none() && indexed {
            let mut all = completed.clone();
            all.extend(
                unc_succeeded
                    .iter()
                    .filter_map(|u| index_of.get(u.as_str())),
            );
            if let Some(m) =
                policy::match_success_policy(spec.success_policy.as_ref(), n_completions, &all)
            {
                target = Some(Target::success("SuccessPolicy", &m));
            }
        }
    }

    // Act on it.
    let mut active = o.active.len() as i32;
    let mut terminating = o.terminating;
    let mut manage_error = None;
    let mut suspend_event = None;
    if target.is_some() {
        let victims: Vec<&Pod> = o.active.iter().map(|p| &**p).collect();
        let (deleted, err) = delete_pods(ctx, key, &job, &victims, false).await;
        active -= deleted;
        terminating += deleted;
        manage_error = err;
    } else {
        let mut managed = false;
        if ctx.expectations.satisfied(key) && job.metadata.deletion_timestamp.is_none() {
            let m = Manage {
                spec: &spec,
                pods: &pods,
                active: &o.active,
                terminating: o.terminating,
                succeeded: succeeded_total,
                completed: &completed,
                failed_indexes: &failed_idx,
                now,
            };
            let r = manage(ctx, key, &job, m).await;
            active = r.active;
            terminating += r.deleted;
            manage_error = r.error;
            if let Some(d) = r.requeue {
                requeue = Some(requeue.map_or(d, |r| r.min(d)));
            }
            managed = true;
        }
        let complete = match completions {
            None => succeeded_total > 0 && active == 0,
            Some(c) => succeeded_total >= c && active == 0,
        };
        if complete {
            target = Some(Target::success(
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            ));
        } else if managed {
            if suspended {
                if ensure_condition(
                    &mut status,
                    "Suspended",
                    "True",
                    "JobSuspended",
                    "Job suspended",
                    now,
                ) {
                    suspend_event = Some(("Suspended", "Job suspended"));
                }
                if active == 0 {
                    // Lets the pod template change while suspended, as upstream.
                    status.start_time = None;
                }
            } else if ensure_condition(
                &mut status,
                "Suspended",
                "False",
                "JobResumed",
                "Job resumed",
                now,
            ) {
                suspend_event = Some(("Resumed", "Job resumed"));
                // activeDeadlineSeconds counts continuous activity: it restarts on resume.
                status.start_time = Some(Time(now));
            }
        }
    }

    // First write: the finished pods to count, and the target, before any finalizer goes.
    status.active = Some(active);
    status.ready = Some(o.ready);
    status.terminating = Some(terminating);
    status.uncounted_terminated_pods = Some(uncounted.clone());
    if indexed {
        status.completed_indexes = Some(indexed::format(&completed));
    }
    if per_index {
        status.failed_indexes = Some(indexed::format(&failed_idx));
    }
    if let Some(t) = &target {
        ensure_condition(&mut status, t.interim, "True", &t.reason, &t.message, now);
    }
    write_status(ctx, key, &mut job, status).await?;
    if let Some((reason, message)) = suspend_event {
        ctx.recorder
            .record(&job.object_ref(&()), EventType::Normal, reason, message)
            .await;
    }
    let record = ctx
        .backoff
        .get(key)
        .observe(&o.new_succeeded, &o.new_failed);
    ctx.backoff.set(key, record);

    // Release the counted pods, then count them.
    let counted: HashSet<&str> = unc_succeeded
        .iter()
        .chain(unc_failed.iter())
        .map(String::as_str)
        .collect();
    let to_release: Vec<&Arc<Pod>> = pods
        .iter()
        .filter(|p| has_finalizer(p) && !released.contains(uid(p)) && counted.contains(uid(p)))
        .chain(o.release_only.iter())
        .collect();
    let results = join_all(to_release.iter().map(|p| {
        let api = pods_api.clone();
        async move { (uid(p).to_string(), remove_finalizer(&api, p).await) }
    }))
    .await;
    let mut release_error = None;
    let mut not_released: HashSet<String> = HashSet::new();
    for (id, r) in results {
        match r {
            Ok(()) => ctx.mark_released(key, &id),
            Err(e) => {
                not_released.insert(id);
                release_error = Some(e);
            }
        }
    }
    let mut status = job.status.clone().unwrap_or_default();
    let mut newly_succeeded = 0;
    let mut newly_failed = 0;
    let mut still = UncountedTerminatedPods::default();
    for u in &unc_succeeded {
        if not_released.contains(u) {
            still.succeeded.get_or_insert_with(Vec::new).push(u.clone());
        } else if indexed {
            if let Some(i) = index_of.get(u.as_str()) {
                completed.insert(*i);
            }
        } else {
            newly_succeeded += 1;
        }
    }
    for u in &unc_failed {
        if not_released.contains(u) {
            still.failed.get_or_insert_with(Vec::new).push(u.clone());
        } else {
            newly_failed += 1;
        }
    }
    status.succeeded = Some(if indexed {
        completed.len() as i32
    } else {
        status.succeeded.unwrap_or(0) + newly_succeeded
    });
    status.failed = Some(status.failed.unwrap_or(0) + newly_failed);
    if indexed {
        status.completed_indexes = Some(indexed::format(&completed));
        failed_idx.retain(|i| !completed.contains(i));
    }
    if per_index {
        status.failed_indexes = Some(indexed::format(&failed_idx));
    }
    let all_counted = still.succeeded.is_none() && still.failed.is_none();
    status.uncounted_terminated_pods = Some(still);
    let mut finished_event = None;
    if let Some(t) = &target
        && all_counted
        && terminating == 0
        && active == 0
    {
        ensure_condition(
            &mut status,
            t.terminal(),
            "True",
            &t.reason,
            &t.message,
            now,
        );
        if t.terminal() == "Complete" {
            status.completion_time = Some(Time(now));
            finished_event = Some((
                EventType::Normal,
                "Completed".to_string(),
                "Job completed".to_string(),
            ));
        } else {
            finished_event = Some((EventType::Warning, t.reason.clone(), t.message.clone()));
        }
    }
    write_status(ctx, key, &mut job, status).await?;
    if let Some((ty, reason, message)) = finished_event {
        ctx.backoff.forget(key);
        ctx.recorder
            .record(&job.object_ref(&()), ty, &reason, &message)
            .await;
        return Ok(None);
    }
    if let Some(e) = release_error {
        return Err(e.into());
    }
    if let Some(e) = manage_error {
        return Err(e);
    }
    Ok(requeue)
}

/// Replaces the Job's status when it changed; `job` becomes the stored Job. A stale Job (a
/// conflict) fails the sync, which runs again from a fresher cache.
async fn write_status(ctx: &Ctx, key: &Key, job: &mut Job, status: JobStatus) -> Result<(), Error> {
    if job.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let mut next = job.clone();
    next.status = Some(status);
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &key.namespace);
    *job = api
        .replace_status(&key.name, &PostParams::default(), &next)
        .await?;
    Ok(())
}

struct Manage<'a> {
    spec: &'a JobSpec,
    pods: &'a [Arc<Pod>],
    active: &'a [Arc<Pod>],
    terminating: i32,
    succeeded: i32,
    completed: &'a BTreeSet<i32>,
    failed_indexes: &'a BTreeSet<i32>,
    now: Timestamp,
}

struct Managed {
    active: i32,
    deleted: i32,
    requeue: Option<Duration>,
    error: Option<Error>,
}

/// How many pods should run (upstream's wantActive).
pub fn want_active(
    completions: Option<i32>,
    parallelism: i32,
    succeeded: i32,
    failed_indexes: i32,
    active: i32,
) -> i32 {
    match completions {
        // A work queue: once one pod succeeded, no new ones start.
        None if succeeded > 0 => active,
        None => parallelism,
        Some(c) => (c - succeeded - failed_indexes).clamp(0, parallelism.max(0)),
    }
}

/// Creates or deletes pods towards `parallelism` (upstream's manageJob).
async fn manage(ctx: &Ctx, key: &Key, job: &Job, m: Manage<'_>) -> Managed {
    let spec = m.spec;
    let active_n = m.active.len() as i32;
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let done = |deleted: i32, error| Managed {
        active: active_n - deleted,
        deleted,
        requeue: None,
        error,
    };
    if spec.suspend == Some(true) {
        let victims: Vec<&Pod> = m.active.iter().map(|p| &**p).collect();
        let (deleted, err) = delete_pods(ctx, key, job, &victims, true).await;
        return done(deleted, err);
    }
    let want = want_active(
        completions,
        spec.parallelism.unwrap_or(1),
        m.succeeded,
        m.failed_indexes.len() as i32,
        active_n,
    );
    let mut victims: Vec<&Pod> = Vec::new();
    if indexed {
        let c = completions.unwrap_or(0);
        let mut seen = HashSet::new();
        let mut sorted: Vec<&Pod> = m.active.iter().map(|p| &**p).collect();
        sorted.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
        for p in sorted {
            let bad = match indexed::completion_index(p) {
                None => true,
                Some(i) => {
                    i >= c
                        || m.completed.contains(&i)
                        || m.failed_indexes.contains(&i)
                        || !seen.insert(i)
                }
            };
            if bad {
                victims.push(p);
            }
        }
    }
    let rest: Vec<&Pod> = m
        .active
        .iter()
        .map(|p| &**p)
        .filter(|p| !victims.iter().any(|v| uid(v) == uid(p)))
        .collect();
    let more = (rest.len() as i32 - want).max(0) as usize;
    victims.extend(pod_util::pods_to_delete(&rest, &rest, more));
    victims.truncate(BURST);
    if !victims.is_empty() {
        let (deleted, err) = delete_pods(ctx, key, job, &victims, true).await;
        return done(deleted, err);
    }
    let terminating = if only_replace_failed(spec) {
        m.terminating
    } else {
        0
    };
    if active_n + terminating >= want {
        return done(0, None);
    }
    let wait = ctx.backoff.get(key).remaining(
        ctx.config.pod_failure_backoff,
        ctx.config.max_pod_failure_backoff,
        m.now,
    );
    if !wait.is_zero() {
        return Managed {
            active: active_n,
            deleted: 0,
            requeue: Some(wait),
            error: None,
        };
    }
    let diff = ((want - active_n - terminating) as usize).min(BURST);
    let indexes: Vec<Option<i32>> = if indexed {
        let mut running: BTreeSet<i32> = m
            .active
            .iter()
            .filter_map(|p| indexed::completion_index(p))
            .collect();
        if only_replace_failed(spec) {
            running.extend(
                m.pods
                    .iter()
                    .filter(|p| is_pod_terminating(p))
                    .filter_map(|p| indexed::completion_index(p)),
            );
        }
        indexed::first_pending(
            diff,
            completions.unwrap_or(0),
            &[m.completed, m.failed_indexes, &running],
        )
        .into_iter()
        .map(Some)
        .collect()
    } else {
        vec![None; diff]
    };
    let (created, error) = create_pods(ctx, key, job, spec, m.pods, &indexes).await;
    Managed {
        active: active_n + created,
        deleted: 0,
        requeue: None,
        error,
    }
}

/// The pod for one index (or any, for a NonIndexed Job).
fn new_pod(job: &Job, spec: &JobSpec, pods: &[Arc<Pod>], index: Option<i32>) -> Pod {
    let name = job.metadata.name.clone().unwrap_or_default();
    let ns = job.metadata.namespace.clone().unwrap_or_default();
    let cref = pod_util::controller_ref("batch/v1", "Job", &job.metadata);
    let prefix = match index {
        None => pod_util::pod_prefix(&name),
        Some(i) => {
            let suffix = format!("-{i}-");
            let mut p = format!("{name}{suffix}");
            if p.len() > 58 {
                let mut keep = 58usize.saturating_sub(suffix.len());
                while !name.is_char_boundary(keep) {
                    keep -= 1;
                }
                p = format!("{}{suffix}", &name[..keep]);
            }
            p
        }
    };
    let mut pod = pod_util::pod_from_template(&spec.template, &ns, &prefix, cref);
    pod.metadata
        .finalizers
        .get_or_insert_with(Vec::new)
        .push(TRACKING_FINALIZER.into());
    if let Some(i) = index {
        let v = i.to_string();
        pod.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(indexed::COMPLETION_INDEX.into(), v.clone());
        pod.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(indexed::COMPLETION_INDEX.into(), v);
        if spec.backoff_limit_per_index.is_some() {
            let (counted, ignored) = index_failure_counts(spec, pods, i);
            let a = pod
                .metadata
                .annotations
                .get_or_insert_with(Default::default);
            a.insert(indexed::INDEX_FAILURE_COUNT.into(), counted.to_string());
            if ignored > 0 {
                a.insert(
                    indexed::INDEX_IGNORED_FAILURE_COUNT.into(),
                    ignored.to_string(),
                );
            }
        }
        if let Some(ps) = pod.spec.as_mut() {
            if ps.hostname.as_deref().is_none_or(str::is_empty) {
                ps.hostname = Some(format!("{name}-{i}"));
            }
            let env = EnvVar {
                name: "JOB_COMPLETION_INDEX".into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: None,
                        field_path: format!("metadata.labels['{}']", indexed::COMPLETION_INDEX),
                    }),
                    ..EnvVarSource::default()
                }),
            };
            for c in ps
                .containers
                .iter_mut()
                .chain(ps.init_containers.iter_mut().flatten())
            {
                let vars = c.env.get_or_insert_with(Vec::new);
                if !vars.iter().any(|e| e.name == env.name) {
                    vars.push(env.clone());
                }
            }
        }
    }
    pod
}

/// Creates pods in slow-start batches (1, 2, 4, ...); returns how many were created.
async fn create_pods(
    ctx: &Ctx,
    key: &Key,
    job: &Job,
    spec: &JobSpec,
    pods: &[Arc<Pod>],
    indexes: &[Option<i32>],
) -> (i32, Option<Error>) {
    let n = indexes.len();
    if n == 0 {
        return (0, None);
    }
    ctx.expectations.expect_creations(key, n);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let reference = job.object_ref(&());
    let mut created = 0i32;
    let mut attempted = 0usize;
    let mut batch = 1usize;
    while attempted < n {
        let chunk = &indexes[attempted..(attempted + batch).min(n)];
        let results = join_all(chunk.iter().map(|i| {
            let pod = new_pod(job, spec, pods, *i);
            let api = api.clone();
            async move { api.create(&PostParams::default(), &pod).await }
        }))
        .await;
        attempted += chunk.len();
        let mut first_error = None;
        for r in results {
            match r {
                Ok(p) => {
                    created += 1;
                    ctx.recorder
                        .record(
                            &reference,
                            EventType::Normal,
                            "SuccessfulCreate",
                            &format!("Created pod: {}", p.metadata.name.unwrap_or_default()),
                        )
                        .await;
                }
                Err(e) => {
                    ctx.expectations.creation_observed(key);
                    first_error.get_or_insert(error_message(&e));
                }
            }
        }
        if let Some(msg) = first_error {
            for _ in attempted..n {
                ctx.expectations.creation_observed(key);
            }
            ctx.recorder
                .record(
                    &reference,
                    EventType::Warning,
                    "FailedCreate",
                    &format!("Error creating: {msg}"),
                )
                .await;
            let failed = attempted - created as usize;
            return (created, Some(Error::Create(failed, n, msg)));
        }
        batch *= 2;
    }
    (created, None)
}

/// Deletes pods; with `release`, their finalizer goes first so that they do not count as
/// failed (suspension, surplus). Returns how many are gone or going.
async fn delete_pods(
    ctx: &Ctx,
    key: &Key,
    job: &Job,
    pods: &[&Pod],
    release: bool,
) -> (i32, Option<Error>) {
    if pods.is_empty() {
        return (0, None);
    }
    ctx.expectations.expect_deletions(key, pods.len());
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let results = join_all(pods.iter().map(|p| {
        let api = api.clone();
        async move {
            let name = p.metadata.name.clone().unwrap_or_default();
            if release && has_finalizer(p) {
                if let Err(e) = remove_finalizer(&api, p).await {
                    return (name, Err(e));
                }
                ctx.mark_released(key, uid(p));
            }
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: p.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&name, &dp).await {
                Ok(_) => (name, Ok(true)),
                Err(kube::Error::Api(e)) if e.code == 404 => (name, Ok(false)),
                Err(e) => (name, Err(e)),
            }
        }
    }))
    .await;
    let reference = job.object_ref(&());
    let mut deleted = 0;
    let mut error = None;
    for (name, r) in results {
        match r {
            Ok(true) => {
                deleted += 1;
                ctx.recorder
                    .record(
                        &reference,
                        EventType::Normal,
                        "SuccessfulDelete",
                        &format!("Deleted pod: {name}"),
                    )
                    .await;
            }
            Ok(false) => {
                deleted += 1;
                ctx.expectations.deletion_observed(key);
            }
            Err(e) => {
                ctx.expectations.deletion_observed(key);
                ctx.recorder
                    .record(
                        &reference,
                        EventType::Warning,
                        "FailedDelete",
                        &format!("Error deleting: {}", error_message(&e)),
                    )
                    .await;
                error = Some(e.into());
            }
        }
    }
    (deleted, error)
}

fn error_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn want_active_follows_completions_and_parallelism() {
        // Fixed completions: never more than what remains.
        assert_eq!(want_active(Some(3), 2, 0, 0, 0), 2);
        assert_eq!(want_active(Some(3), 2, 2, 0, 2), 1);
        assert_eq!(want_active(Some(3), 2, 3, 0, 1), 0);
        assert_eq!(want_active(Some(5), 10, 1, 1, 0), 3);
        // Work queue: parallelism until one succeeds, then no new pods.
        assert_eq!(want_active(None, 4, 0, 0, 1), 4);
        assert_eq!(want_active(None, 4, 1, 0, 3), 3);
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("pod literal")
    }

    #[test]
    fn deleted_pods_count_as_failed_unless_only_failed_are_replaced() {
        let terminating = pod(json!({
            "metadata": {"name": "p", "deletionTimestamp": "2024-01-01T00:00:00Z"},
            "status": {"phase": "Running"}
        }));
        let mut spec = JobSpec::default();
        assert!(is_pod_failed(&terminating, &spec));
        assert!(is_pod_terminating(&terminating));
        spec.pod_replacement_policy = Some("Failed".into());
        assert!(!is_pod_failed(&terminating, &spec));
    }

    #[test]
    fn observe_adds_finished_pods_to_uncounted_once() {
        let spec: JobSpec = serde_json::from_value(json!({
            "template": {"spec": {"containers": []}}
        }))
        .expect("spec literal");
        let mk = |uid: &str, phase: &str| {
            Arc::new(pod(json!({
                "metadata": {"name": uid, "uid": uid, "finalizers": [TRACKING_FINALIZER]},
                "status": {"phase": phase}
            })))
        };
        let pods = vec![
            mk("a", "Succeeded"),
            mk("b", "Failed"),
            mk("c", "Running"),
            mk("d", "Succeeded"),
        ];
        let mut unc = UncountedTerminatedPods {
            succeeded: Some(vec!["a".into()]),
            failed: None,
        };
        let released: HashSet<String> = ["d".to_string()].into();
        let o = observe(&spec, &pods, &released, &mut unc, Timestamp::UNIX_EPOCH);
        assert_eq!(unc.succeeded, Some(vec!["a".to_string()]));
        assert_eq!(unc.failed, Some(vec!["b".to_string()]));
        assert_eq!(o.active.len(), 1);
        assert_eq!(o.new_failed.len(), 1);
        assert!(o.new_succeeded.is_empty());
    }

    #[test]
    fn indexed_pods_carry_index_hostname_and_finalizer() {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "work", "namespace": "ns", "uid": "u1"},
            "spec": {
                "completionMode": "Indexed", "completions": 3, "backoffLimitPerIndex": 1,
                "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}
            }
        }))
        .expect("job literal");
        let spec = job.spec.clone().expect("spec");
        let failed = Arc::new(pod(json!({
            "metadata": {"name": "work-2-x", "uid": "f", "annotations": {
                indexed::COMPLETION_INDEX: "2", indexed::INDEX_FAILURE_COUNT: "0"}},
            "status": {"phase": "Failed"}
        })));
        let p = new_pod(&job, &spec, &[failed], Some(2));
        assert_eq!(p.metadata.generate_name.as_deref(), Some("work-2-"));
        let ann = p.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            ann.get(indexed::COMPLETION_INDEX).map(String::as_str),
            Some("2")
        );
        assert_eq!(
            ann.get(indexed::INDEX_FAILURE_COUNT).map(String::as_str),
            Some("1")
        );
        assert!(has_finalizer(&p));
        let ps = p.spec.expect("spec");
        assert_eq!(ps.hostname.as_deref(), Some("work-2"));
        assert!(
            ps.containers[0]
                .env
                .iter()
                .flatten()
                .any(|e| e.name == "JOB_COMPLETION_INDEX")
        );
    }

    #[test]
    fn conditions_are_added_only_when_true_and_updated_in_place() {
        let mut s = JobStatus::default();
        let t = Timestamp::UNIX_EPOCH;
        assert!(!ensure_condition(
            &mut s,
            "Suspended",
            "False",
            "JobResumed",
            "Job resumed",
            t
        ));
        assert!(ensure_condition(
            &mut s,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            t
        ));
        assert!(!ensure_condition(
            &mut s,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            t
        ));
        assert!(ensure_condition(
            &mut s,
            "Suspended",
            "False",
            "JobResumed",
            "Job resumed",
            t
        ));
        let c = s.conditions.unwrap_or_default();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].reason.as_deref(), Some("JobResumed"));
    }
}
