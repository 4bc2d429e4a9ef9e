//! CronJob controller (upstream's v2): creates a Job at each scheduled time in the CronJob's
//! time zone, within the starting deadline and the concurrency policy, tracks the active ones,
//! and trims finished Jobs to the history limits. It wakes exactly at the next schedule time.

use crate::clock::Clock;
use crate::events::{EventType, Recorder};
use crate::pod_util;
use crate::runtime::{self, Change, Informer, Informers, Key, Queue};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Resource;
use kube::api::{Api, DeleteParams, PostParams};
use skiff_api::cron::Schedule;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const COMPONENT: &str = "cronjob-controller";
/// The annotation on a Job with the time it was scheduled for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Upstream's nextScheduleDelta: wake a little after the scheduled time, never before it.
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("api request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("could not replace job {0}")]
    Replace(String),
}

/// Why a schedule gives no start time.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScheduleError {
    #[error("time difference between two schedules is less than 1 second")]
    TooClose,
}

/// How many start times were missed since the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    None,
    Few,
    /// More than 100: upstream warns instead of listing them.
    Many,
}

/// Upstream's mostRecentScheduleTime: the latest schedule time in (earliest, now], where
/// earliest is the last schedule time (or creation), moved up to `now - startingDeadlineSeconds`
/// when `with_deadline`.
pub fn most_recent_schedule_time(
    cj: &CronJob,
    now: Timestamp,
    sched: &Schedule,
    tz: &TimeZone,
    with_deadline: bool,
) -> Result<(Option<Timestamp>, Missed), ScheduleError> {
    let mut earliest = earliest_time(cj);
    if with_deadline
        && let Some(secs) = cj.spec.as_ref().and_then(|s| s.starting_deadline_seconds)
        && let Ok(deadline) = now.checked_sub(SignedDuration::from_secs(secs))
        && deadline > earliest
    {
        earliest = deadline;
    }
    let Some(t1) = sched.next_after(earliest, tz) else {
        return Ok((None, Missed::None));
    };
    if now < t1 {
        return Ok((None, Missed::None));
    }
    let Some(t2) = sched.next_after(t1, tz) else {
        return Ok((Some(t1), Missed::None));
    };
    if now < t2 {
        return Ok((Some(t1), Missed::None));
    }
    let between = t1.duration_until(t2).as_secs();
    if between < 1 {
        return Err(ScheduleError::TooClose);
    }
    let elapsed = t1.duration_until(now).as_secs();
    let missed = elapsed / between + 1;
    // Start near the end and let the schedule find the exact last time (schedules need not be
    // evenly spaced).
    let mut t = t1
        .checked_add(SignedDuration::from_secs((missed - 2) * between))
        .unwrap_or(t1);
    let mut most_recent = None;
    while let Some(n) = sched.next_after(t, tz) {
        if n > now {
            break;
        }
        most_recent = Some(n);
        t = n;
    }
    let kind = if missed > 100 {
        Missed::Many
    } else if missed > 1 {
        Missed::Few
    } else {
        Missed::None
    };
    Ok((most_recent, kind))
}

fn earliest_time(cj: &CronJob) -> Timestamp {
    cj.status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .or(cj.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// How long from `now` until the schedule time after the most recent one, plus a margin.
pub fn next_schedule_in(
    cj: &CronJob,
    now: Timestamp,
    sched: &Schedule,
    tz: &TimeZone,
) -> Option<Duration> {
    let recent = match most_recent_schedule_time(cj, now, sched, tz, false) {
        Ok((t, _)) => t.unwrap_or_else(|| earliest_time(cj)),
        Err(_) => return None,
    };
    let next = sched.next_after(recent, tz)?;
    let d = now.duration_until(next);
    Some(if d.is_positive() {
        d.unsigned_abs() + NEXT_SCHEDULE_DELTA
    } else {
        NEXT_SCHEDULE_DELTA
    })
}

/// `<cronjob>-<scheduled time in minutes since the epoch>`: the same start time always gets
/// the same name, so a Job is never created twice for it.
pub fn job_name(cronjob: &str, scheduled: Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

/// Go's RFC 3339 in the CronJob's zone ("Z" for UTC).
fn rfc3339(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    if z.offset().seconds() == 0 {
        z.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// Go's RFC 1123 with a numeric zone, in UTC, as upstream's MissSchedule message.
fn rfc1123z(t: Timestamp) -> String {
    t.to_zoned(TimeZone::UTC)
        .strftime("%a, %d %b %Y %H:%M:%S %z")
        .to_string()
}

fn finished_type(j: &Job) -> Option<&'static str> {
    let conds = j.status.as_ref()?.conditions.as_ref()?;
    conds
        .iter()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some("Complete"),
            "Failed" => Some("Failed"),
            _ => None,
        })
}

/// The finished Jobs to delete so that at most `limit` remain: the earliest started first.
pub fn jobs_to_clean_up<'a>(jobs: &[&'a Job], limit: i32) -> Vec<&'a Job> {
    let n = jobs.len().saturating_sub(limit.max(0) as usize);
    let mut sorted = jobs.to_vec();
    sorted.sort_by(|a, b| {
        let start = |j: &Job| {
            j.status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0)
        };
        match (start(a), start(b)) {
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(_), None) => std::cmp::Ordering::Less,
            (x, y) if x == y => a.metadata.name.cmp(&b.metadata.name),
            (x, y) => x.cmp(&y),
        }
    });
    sorted.truncate(n);
    sorted
}

pub struct Ctx {
    pub client: kube::Client,
    pub cronjobs: Arc<Informer<CronJob>>,
    pub jobs: Arc<Informer<Job>>,
    pub recorder: Recorder,
    pub clock: Arc<dyn Clock>,
}

/// Runs the CronJob controller until `cancel` fires.
pub async fn run(
    informers: Arc<Informers>,
    workers: usize,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) {
    let ctx = Arc::new(Ctx {
        client: informers.client().clone(),
        cronjobs: informers.get::<CronJob>(),
        jobs: informers.get::<Job>(),
        recorder: Recorder::new(informers.client().clone(), COMPONENT),
        clock,
    });
    let queue = Queue::new();
    let cj_changes = ctx.cronjobs.subscribe();
    let job_changes = ctx.jobs.subscribe();
    ctx.cronjobs.synced().await;
    ctx.jobs.synced().await;
    for cj in ctx.cronjobs.list() {
        queue.add(Key::of(&*cj));
    }
    let cjs_fed = runtime::enqueue_changes(
        cj_changes,
        queue.clone(),
        cancel.clone(),
        |c: &Change<CronJob>| [Key::of(&**c.object())],
    );
    let jobs_fed = runtime::enqueue_changes(
        job_changes,
        queue.clone(),
        cancel.clone(),
        |c: &Change<Job>| {
            let mut keys = Vec::new();
            if let Some(k) = runtime::controller_of(&**c.object(), "CronJob") {
                keys.push(k);
            }
            if let Change::Applied { old: Some(old), .. } = c
                && let Some(k) = runtime::controller_of(&**old, "CronJob")
                && !keys.contains(&k)
            {
                keys.push(k);
            }
            keys
        },
    );
    let workers = runtime::run_workers(COMPONENT, queue, workers, cancel, move |key| {
        let ctx = ctx.clone();
        async move { sync(&ctx, &key).await }
    });
    tokio::join!(cjs_fed, jobs_fed, workers);
}

fn job_ref(j: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: j.metadata.name.clone(),
        namespace: j.metadata.namespace.clone(),
        uid: j.metadata.uid.clone(),
        resource_version: j.metadata.resource_version.clone(),
        field_path: None,
    }
}

fn in_active(cj: &CronJob, uid: &str) -> bool {
    cj.status
        .as_ref()
        .and_then(|s| s.active.as_ref())
        .is_some_and(|a| a.iter().any(|r| r.uid.as_deref() == Some(uid)))
}

fn remove_active(status: &mut CronJobStatus, uid: &str) {
    if let Some(a) = status.active.as_mut() {
        a.retain(|r| r.uid.as_deref() != Some(uid));
    }
}

async fn sync(ctx: &Ctx, key: &Key) -> Result<Option<Duration>, Error> {
    let Some(cached) = ctx.cronjobs.get(&key.namespace, &key.name) else {
        return Ok(None);
    };
    let mut cj = (*cached).clone();
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let jobs: Vec<Arc<Job>> = ctx
        .jobs
        .list_namespace(&key.namespace)
        .into_iter()
        .filter(|j| {
            j.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && o.uid == uid)
        })
        .collect();
    let before = cj.status.clone();
    let (requeue, result) = sync_cronjob(ctx, key, &mut cj, &jobs).await;
    if result.is_ok() {
        cleanup_finished_jobs(ctx, &mut cj, &jobs).await;
    }
    if cj.status != before {
        let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &key.namespace);
        match api
            .replace_status(&key.name, &PostParams::default(), &cj)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    result?;
    Ok(requeue.map(|d| ctx.clock.real(d)))
}

async fn record(ctx: &Ctx, cj: &CronJob, ty: EventType, reason: &str, message: &str) {
    ctx.recorder
        .record(&cj.object_ref(&()), ty, reason, message)
        .await;
}

/// Upstream's syncCronJob: updates `cj.status` in place; returns when to look again.
async fn sync_cronjob(
    ctx: &Ctx,
    key: &Key,
    cj: &mut CronJob,
    jobs: &[Arc<Job>],
) -> (Option<Duration>, Result<(), Error>) {
    let now = ctx.clock.now();
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &key.namespace);
    for j in jobs {
        let juid = j.metadata.uid.clone().unwrap_or_default();
        let name = j.metadata.name.clone().unwrap_or_default();
        let finished = finished_type(j);
        let found = in_active(cj, &juid);
        if !found && finished.is_none() {
            // Our own status write may not have reached the cache yet: ask the server.
            let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &key.namespace);
            if let Ok(fresh) = api.get(&key.name).await
                && in_active(&fresh, &juid)
            {
                *cj = fresh;
                continue;
            }
            record(
                ctx,
                cj,
                EventType::Warning,
                "UnexpectedJob",
                &format!("Saw a job that the controller did not create or forgot: {name}"),
            )
            .await;
        } else if found && let Some(cond) = finished {
            remove_active(cj.status.get_or_insert_default(), &juid);
            record(
                ctx,
                cj,
                EventType::Normal,
                "SawCompletedJob",
                &format!("Saw completed job: {name}, condition: {cond}"),
            )
            .await;
        }
        if finished == Some("Complete")
            && let Some(done) = j.status.as_ref().and_then(|s| s.completion_time.clone())
        {
            let status = cj.status.get_or_insert_default();
            if status
                .last_successful_time
                .as_ref()
                .is_none_or(|t| done.0 > t.0)
            {
                status.last_successful_time = Some(done);
            }
        }
    }
    // Forget active Jobs that are gone (checked against the server, not a lagging cache).
    let active: Vec<ObjectReference> = cj
        .status
        .as_ref()
        .and_then(|s| s.active.clone())
        .unwrap_or_default();
    for r in active {
        let ruid = r.uid.clone().unwrap_or_default();
        if jobs
            .iter()
            .any(|j| j.metadata.uid.as_deref() == Some(ruid.as_str()))
        {
            continue;
        }
        let name = r.name.clone().unwrap_or_default();
        match jobs_api.get(&name).await {
            Err(kube::Error::Api(e)) if e.code == 404 => {
                record(
                    ctx,
                    cj,
                    EventType::Normal,
                    "MissingJob",
                    &format!("Active job went missing: {name}"),
                )
                .await;
                remove_active(cj.status.get_or_insert_default(), &ruid);
            }
            Err(e) => return (None, Err(e.into())),
            Ok(_) => {}
        }
    }
    if cj.metadata.deletion_timestamp.is_some() {
        return (None, Ok(()));
    }
    let Some(spec) = cj.spec.clone() else {
        return (None, Ok(()));
    };
    let tz = match skiff_api::cron::time_zone(spec.time_zone.as_deref()) {
        Ok(tz) => tz,
        Err(e) => {
            let name = spec.time_zone.clone().unwrap_or_default();
            record(
                ctx,
                cj,
                EventType::Warning,
                "UnknownTimeZone",
                &format!("invalid timeZone: {name:?}: {e}"),
            )
            .await;
            return (None, Ok(()));
        }
    };
    if spec.suspend == Some(true) {
        return (None, Ok(()));
    }
    let sched = match Schedule::parse(&spec.schedule) {
        Ok(s) => s,
        Err(e) => {
            let ty = EventType::Warning;
            if matches!(e, skiff_api::cron::CronError::TimeZone(_)) {
                record(ctx, cj, ty, "UnsupportedSchedule", &e.to_string()).await;
            }
            let msg = format!("unparseable schedule: {:?} : {e}", spec.schedule);
            record(ctx, cj, ty, "UnparseableSchedule", &msg).await;
            return (None, Ok(()));
        }
    };
    let scheduled = match most_recent_schedule_time(cj, now, &sched, &tz, true) {
        Ok((t, missed)) => {
            if missed == Missed::Many && t.is_some() {
                record(
                    ctx,
                    cj,
                    EventType::Warning,
                    "TooManyMissedTimes",
                    "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
                )
                .await;
            }
            t
        }
        Err(e) => {
            let msg = format!("invalid schedule: {} : {e}", spec.schedule);
            record(ctx, cj, EventType::Warning, "InvalidSchedule", &msg).await;
            return (None, Ok(()));
        }
    };
    let next = |cj: &CronJob| next_schedule_in(cj, now, &sched, &tz);
    let Some(scheduled) = scheduled else {
        return (next(cj), Ok(()));
    };
    if let Some(secs) = spec.starting_deadline_seconds
        && scheduled
            .checked_add(SignedDuration::from_secs(secs))
            .is_ok_and(|late| late < now)
    {
        let msg = format!(
            "Missed scheduled time to start a job: {}",
            rfc1123z(scheduled)
        );
        record(ctx, cj, EventType::Warning, "MissSchedule", &msg).await;
        return (next(cj), Ok(()));
    }
    let name = job_name(&key.name, scheduled);
    let status = cj.status.clone().unwrap_or_default();
    let already = status
        .active
        .iter()
        .flatten()
        .any(|r| r.name.as_deref() == Some(name.as_str()))
        || status.last_schedule_time.as_ref().map(|t| t.0) == Some(scheduled);
    if already {
        return (next(cj), Ok(()));
    }
    let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
    let active_count = status.active.as_ref().map_or(0, Vec::len);
    if policy == "Forbid" && active_count > 0 {
        record(
            ctx,
            cj,
            EventType::Normal,
            "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is Forbid",
        )
        .await;
        return (next(cj), Ok(()));
    }
    if policy == "Replace" {
        for r in status.active.clone().unwrap_or_default() {
            let jname = r.name.clone().unwrap_or_default();
            let j = match jobs_api.get(&jname).await {
                Ok(j) => j,
                Err(e) => {
                    record(
                        ctx,
                        cj,
                        EventType::Warning,
                        "FailedGet",
                        &format!("Get job: {e}"),
                    )
                    .await;
                    return (None, Err(e.into()));
                }
            };
            if !delete_job(ctx, cj, &j).await {
                return (
                    None,
                    Err(Error::Replace(format!("{}/{jname}", key.namespace))),
                );
            }
        }
    }
    let job = new_job(cj, &name, scheduled, &tz);
    let created = match jobs_api.create(&PostParams::default(), &job).await {
        Ok(j) => {
            record(
                ctx,
                cj,
                EventType::Normal,
                "SuccessfulCreate",
                &format!("Created job {name}"),
            )
            .await;
            j
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // Created before, and the status write after it was lost: adopt it if it is ours.
            let existing = match jobs_api.get(&name).await {
                Ok(j) => j,
                Err(e) => return (None, Err(e.into())),
            };
            let ours = existing
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| {
                    o.controller == Some(true)
                        && o.uid == cj.metadata.uid.clone().unwrap_or_default()
                });
            let juid = existing.metadata.uid.clone().unwrap_or_default();
            if !ours || in_active(cj, &juid) {
                return (None, Ok(()));
            }
            tracing::info!(cronjob = %key, job = %name, "job already exists");
            existing
        }
        Err(e) => {
            let msg = format!("Error creating job: {}", error_message(&e));
            record(ctx, cj, EventType::Warning, "FailedCreate", &msg).await;
            return (None, Err(e.into()));
        }
    };
    let status = cj.status.get_or_insert_default();
    status
        .active
        .get_or_insert_with(Vec::new)
        .push(job_ref(&created));
    status.last_schedule_time = Some(Time(scheduled));
    (next(cj), Ok(()))
}

fn error_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// The Job for one scheduled time, from the CronJob's template.
fn new_job(cj: &CronJob, name: &str, scheduled: Timestamp, tz: &TimeZone) -> Job {
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let md = template.metadata.unwrap_or_default();
    let mut annotations = md.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), rfc3339(scheduled, tz));
    Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: cj.metadata.namespace.clone(),
            labels: md.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![pod_util::controller_ref(
                "batch/v1",
                "CronJob",
                &cj.metadata,
            )]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Deletes a Job of the CronJob (background propagation) and forgets it; false on failure.
async fn delete_job(ctx: &Ctx, cj: &mut CronJob, j: &Job) -> bool {
    let name = j.metadata.name.clone().unwrap_or_default();
    let ns = j.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    match api.delete(&name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => {
            record(
                ctx,
                cj,
                EventType::Warning,
                "FailedDelete",
                &format!("Deleted job: {}", error_message(&e)),
            )
            .await;
            return false;
        }
    }
    let uid = j.metadata.uid.clone().unwrap_or_default();
    remove_active(cj.status.get_or_insert_default(), &uid);
    record(
        ctx,
        cj,
        EventType::Normal,
        "SuccessfulDelete",
        &format!("Deleted job {name}"),
    )
    .await;
    true
}

/// Deletes the oldest finished Jobs past successfulJobsHistoryLimit and failedJobsHistoryLimit.
async fn cleanup_finished_jobs(ctx: &Ctx, cj: &mut CronJob, jobs: &[Arc<Job>]) {
    let Some(spec) = cj.spec.clone() else {
        return;
    };
    let by = |ty: &str| -> Vec<&Job> {
        jobs.iter()
            .map(|j| &**j)
            .filter(|j| finished_type(j) == Some(ty) && j.metadata.deletion_timestamp.is_none())
            .collect()
    };
    let mut doomed: Vec<Job> = Vec::new();
    if let Some(limit) = spec.successful_jobs_history_limit {
        doomed.extend(
            jobs_to_clean_up(&by("Complete"), limit)
                .into_iter()
                .cloned(),
        );
    }
    if let Some(limit) = spec.failed_jobs_history_limit {
        doomed.extend(jobs_to_clean_up(&by("Failed"), limit).into_iter().cloned());
    }
    for j in doomed {
        delete_job(ctx, cj, &j).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp literal")
    }

    fn cronjob(created: &str, last: Option<&str>, deadline: Option<i64>) -> CronJob {
        serde_json::from_value(json!({
            "metadata": {"name": "cj", "namespace": "ns", "creationTimestamp": created},
            "spec": {
                "schedule": "* * * * *",
                "startingDeadlineSeconds": deadline,
                "jobTemplate": {"spec": {"template": {}}}
            },
            "status": {"lastScheduleTime": last}
        }))
        .expect("cronjob literal")
    }

    #[test]
    fn most_recent_time_and_missed_counts() {
        let every = Schedule::parse("* * * * *").expect("valid");
        let utc = TimeZone::UTC;
        let cj = cronjob("2024-01-01T00:00:30Z", None, None);
        // Nothing due yet.
        assert_eq!(
            most_recent_schedule_time(&cj, ts("2024-01-01T00:00:59Z"), &every, &utc, true),
            Ok((None, Missed::None))
        );
        // One due.
        assert_eq!(
            most_recent_schedule_time(&cj, ts("2024-01-01T00:01:10Z"), &every, &utc, true),
            Ok((Some(ts("2024-01-01T00:01:00Z")), Missed::None))
        );
        // Several missed: the latest one counts.
        assert_eq!(
            most_recent_schedule_time(&cj, ts("2024-01-01T00:05:10Z"), &every, &utc, true),
            Ok((Some(ts("2024-01-01T00:05:00Z")), Missed::Few))
        );
        // More than 100 missed.
        let (t, missed) =
            most_recent_schedule_time(&cj, ts("2024-01-01T03:00:10Z"), &every, &utc, true)
                .expect("valid");
        assert_eq!(
            (t, missed),
            (Some(ts("2024-01-01T03:00:00Z")), Missed::Many)
        );
        // A starting deadline bounds how far back to look.
        let cj = cronjob("2024-01-01T00:00:30Z", None, Some(30));
        assert_eq!(
            most_recent_schedule_time(&cj, ts("2024-01-01T03:00:10Z"), &every, &utc, true),
            Ok((Some(ts("2024-01-01T03:00:00Z")), Missed::None))
        );
        // Irregular schedules find their exact last time.
        let irregular = Schedule::parse("30 6-16/4 * * 1-5").expect("valid");
        let cj = cronjob("2024-03-01T00:00:00Z", None, None);
        assert_eq!(
            most_recent_schedule_time(&cj, ts("2024-03-05T12:00:00Z"), &irregular, &utc, false)
                .map(|r| r.0),
            Ok(Some(ts("2024-03-05T10:30:00Z")))
        );
    }

    #[test]
    fn wakes_at_the_next_schedule_time() {
        let hourly = Schedule::parse("@hourly").expect("valid");
        let cj = cronjob("2024-01-01T00:00:30Z", Some("2024-01-01T01:00:00Z"), None);
        assert_eq!(
            next_schedule_in(&cj, ts("2024-01-01T01:20:00Z"), &hourly, &TimeZone::UTC),
            Some(Duration::from_secs(40 * 60) + NEXT_SCHEDULE_DELTA)
        );
    }

    #[test]
    fn names_and_annotations() {
        assert_eq!(
            job_name("hello", ts("2024-01-01T00:01:00Z")),
            "hello-28401121"
        );
        assert_eq!(
            rfc3339(ts("2024-01-01T00:01:00Z"), &TimeZone::UTC),
            "2024-01-01T00:01:00Z"
        );
        assert_eq!(
            rfc1123z(ts("2024-01-01T00:01:00Z")),
            "Mon, 01 Jan 2024 00:01:00 +0000"
        );
        if let Ok(tz) = skiff_api::cron::time_zone(Some("Europe/Berlin")) {
            assert_eq!(
                rfc3339(ts("2024-01-01T00:01:00Z"), &tz),
                "2024-01-01T01:01:00+01:00"
            );
        }
    }

    #[test]
    fn history_keeps_the_latest_started() {
        let job = |name: &str, start: Option<&str>| -> Job {
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {"startTime": start}
            }))
            .expect("job literal")
        };
        let a = job("a", Some("2024-01-01T00:01:00Z"));
        let b = job("b", Some("2024-01-01T00:03:00Z"));
        let c = job("c", Some("2024-01-01T00:02:00Z"));
        let d = job("d", None);
        let names = |v: Vec<&Job>| -> Vec<String> {
            v.iter()
                .map(|j| j.metadata.name.clone().unwrap_or_default())
                .collect()
        };
        assert_eq!(names(jobs_to_clean_up(&[&a, &b, &c, &d], 2)), ["a", "c"]);
        assert_eq!(names(jobs_to_clean_up(&[&a, &b], 3)), Vec::<String>::new());
        assert_eq!(names(jobs_to_clean_up(&[&a, &b], 0)), ["a", "b"]);
    }
}
