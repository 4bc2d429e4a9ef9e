//! Job, CronJob and TTL-after-finished controllers against an in-process API server. A small
//! task plays the kubelet: it runs pods, and finishes them after `hollow.skiff.dev/run-seconds`
//! with `hollow.skiff.dev/exit-code` (the annotations hollow nodes read), and kills deleted pods.
//! The CronJob controller runs on a clock sixty times faster than real time.

mod common;

use common::{Cluster, api_server, eventually};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use skiff_controllers::clock::Clock;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

const RUN_SECONDS: &str = "hollow.skiff.dev/run-seconds";
const EXIT_CODE: &str = "hollow.skiff.dev/exit-code";
const FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// Real time sped up: one real second is a minute.
struct FastClock {
    start: Timestamp,
    real_start: Instant,
    speed: u32,
}

impl Clock for FastClock {
    fn now(&self) -> Timestamp {
        let elapsed = self.real_start.elapsed() * self.speed;
        self.start
            .checked_add(SignedDuration::try_from(elapsed).unwrap_or(SignedDuration::ZERO))
            .unwrap_or(self.start)
    }
    fn real(&self, d: Duration) -> Duration {
        d / self.speed
    }
}

fn annotation(p: &Pod, k: &str) -> Option<String> {
    p.annotations().get(k).cloned()
}

/// Runs every new pod, finishes it after its run time, and kills deleted ones (Failed, exit
/// 137, as a kubelet reports a killed container) before removing them.
async fn fake_kubelet(client: Client, cancel: CancellationToken) {
    let pods: Api<Pod> = Api::all(client.clone());
    let mut events = watcher::watcher(pods, watcher::Config::default()).boxed();
    let started: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let mut tasks = JoinSet::new();
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => return,
            ev = events.next() => ev,
        };
        let Some(Ok(ev)) = ev else { continue };
        let p = match ev {
            watcher::Event::Apply(p) | watcher::Event::InitApply(p) => p,
            _ => continue,
        };
        let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace().unwrap_or_default());
        let name = p.name_any();
        let phase = p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let now = || Timestamp::now().to_string();
        if p.metadata.deletion_timestamp.is_some() {
            if phase != "Succeeded" && phase != "Failed" {
                let _ = api
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(terminated("Failed", 137, &now())),
                    )
                    .await;
            }
            let _ = api
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await;
            continue;
        }
        let uid = p.uid().unwrap_or_default();
        if !phase.is_empty() && phase != "Pending" {
            continue;
        }
        if !started.lock().expect("lock").insert(uid) {
            continue;
        }
        let run = annotation(&p, RUN_SECONDS)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.2);
        let code = annotation(&p, EXIT_CODE)
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or(0);
        let cancel = cancel.clone();
        tasks.spawn(async move {
            let running = json!({"status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now()}
            ]}});
            patch_status(&api, &name, running).await;
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs_f64(run)) => {}
            }
            // A pod deleted meanwhile was already killed.
            if api
                .get(&name)
                .await
                .is_ok_and(|p| p.metadata.deletion_timestamp.is_none())
            {
                let phase = if code == 0 { "Succeeded" } else { "Failed" };
                patch_status(&api, &name, terminated(phase, code, &now())).await;
            }
        });
    }
}

/// Patches a pod's status as a kubelet does: a failed write (other than the pod being gone) is
/// tried again, so a slow server under the whole suite's load cannot lose a phase change.
async fn patch_status(api: &Api<Pod>, name: &str, status: Value) {
    for _ in 0..100 {
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 404 => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn terminated(phase: &str, code: i32, at: &str) -> Value {
    json!({"status": {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": at}],
        "containerStatuses": [{
            "name": "c", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "finishedAt": at}}
        }]
    }})
}

async fn cluster() -> Cluster {
    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let client = api_server(&cancel, &mut tasks).await;
    let informers = skiff_controllers::runtime::Informers::new(client.clone(), cancel.clone());
    let config = skiff_controllers::job::Config {
        pod_failure_backoff: Duration::from_millis(100),
        max_pod_failure_backoff: Duration::from_secs(1),
    };
    let clock = Arc::new(FastClock {
        start: Timestamp::now(),
        real_start: Instant::now(),
        speed: 60,
    });
    tasks.spawn(skiff_controllers::garbage_collector::run(
        client.clone(),
        cancel.clone(),
    ));
    tasks.spawn(skiff_controllers::job::run(
        informers.clone(),
        2,
        config,
        cancel.clone(),
    ));
    tasks.spawn(skiff_controllers::cronjob::run(
        informers.clone(),
        2,
        clock,
        cancel.clone(),
    ));
    tasks.spawn(skiff_controllers::ttl_after_finished::run(
        informers.clone(),
        2,
        cancel.clone(),
    ));
    tasks.spawn(fake_kubelet(client.clone(), cancel.clone()));
    Cluster {
        client,
        cancel,
        _tasks: tasks,
    }
}

fn job(name: &str, spec: Value, pod_annotations: Value) -> Job {
    let mut spec = spec;
    spec["template"] = json!({
        "metadata": {"annotations": pod_annotations},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
    });
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("job literal")
}

fn condition<'a>(j: &'a Job, ty: &str) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    j.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == ty && c.status == "True")
}

async fn job_pods(client: &Client, job: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .expect("list pods")
        .items
}

fn running(p: &Pod) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    p.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

async fn events_for(client: &Client, name: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .collect()
}

async fn has_event(client: &Client, name: &str, reason: &str) -> bool {
    events_for(client, name)
        .await
        .iter()
        .any(|e| e.reason.as_deref() == Some(reason))
}

async fn wait_for_condition(jobs: &Api<Job>, name: &str, ty: &str) -> Job {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    loop {
        if let Ok(j) = jobs.get(name).await
            && condition(&j, ty).is_some()
        {
            return j;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out: {name} {ty}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn job_completes_with_at_most_parallelism_pods() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let c = cluster().await;
        let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
        let too_many = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let watch = {
            let client = c.client.clone();
            let (too_many, stop) = (too_many.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = job_pods(&client, "pi")
                        .await
                        .iter()
                        .filter(|p| running(p))
                        .count();
                    if n > 2 {
                        too_many.store(true, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        jobs.create(
            &PostParams::default(),
            &job(
                "pi",
                json!({"completions": 3, "parallelism": 2}),
                json!({RUN_SECONDS: "0.3"}),
            ),
        )
        .await
        .expect("create job");
        let done = wait_for_condition(&jobs, "pi", "Complete").await;
        stop.store(true, Ordering::Relaxed);
        watch.await.expect("watcher");
        assert!(
            !too_many.load(Ordering::Relaxed),
            "more than 2 pods ran at once"
        );
        let s = done.status.clone().expect("status");
        assert_eq!(s.succeeded, Some(3));
        assert_eq!(s.failed, Some(0));
        assert_eq!(s.active, Some(0));
        assert!(s.start_time.is_some() && s.completion_time.is_some());
        let unc = s.uncounted_terminated_pods.unwrap_or_default();
        assert!(
            unc.succeeded.unwrap_or_default().is_empty()
                && unc.failed.unwrap_or_default().is_empty()
        );
        let met = condition(&done, "SuccessCriteriaMet").expect("SuccessCriteriaMet");
        assert_eq!(met.reason.as_deref(), Some("CompletionsReached"));
        let complete = condition(&done, "Complete").expect("Complete");
        assert_eq!(
            complete.message.as_deref(),
            Some("Reached expected number of succeeded pods")
        );
        let pods = job_pods(&c.client, "pi").await;
        assert_eq!(pods.len(), 3);
        for p in &pods {
            assert!(
                !p.finalizers().iter().any(|f| f == FINALIZER),
                "finalizer removed once counted"
            );
            let labels = p.labels();
            assert_eq!(labels.get("job-name").map(String::as_str), Some("pi"));
            assert!(labels.contains_key("batch.kubernetes.io/controller-uid"));
            let owner = &p.owner_references()[0];
            assert_eq!((owner.kind.as_str(), owner.controller), ("Job", Some(true)));
        }
        eventually("Completed event", || {
            has_event(&c.client, "pi", "Completed")
        })
        .await;
        assert!(has_event(&c.client, "pi", "SuccessfulCreate").await);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn failing_job_stops_at_the_backoff_limit() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let c = cluster().await;
        let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
        jobs.create(
            &PostParams::default(),
            &job(
                "fail",
                json!({"backoffLimit": 1}),
                json!({RUN_SECONDS: "0.1", EXIT_CODE: "1"}),
            ),
        )
        .await
        .expect("create job");
        let failed = wait_for_condition(&jobs, "fail", "Failed").await;
        let cond = condition(&failed, "Failed").expect("Failed");
        assert_eq!(cond.reason.as_deref(), Some("BackoffLimitExceeded"));
        assert_eq!(
            cond.message.as_deref(),
            Some("Job has reached the specified backoff limit")
        );
        assert!(condition(&failed, "FailureTarget").is_some());
        let s = failed.status.clone().expect("status");
        assert_eq!(s.failed, Some(2));
        assert_eq!(s.succeeded, Some(0));
        assert!(s.completion_time.is_none());
        // No more pods after the limit.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(job_pods(&c.client, "fail").await.len(), 2);
        eventually("BackoffLimitExceeded event", || {
            has_event(&c.client, "fail", "BackoffLimitExceeded")
        })
        .await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn pod_failure_policy_and_deadline_fail_jobs() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let c = cluster().await;
        let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
        let policy = json!({"backoffLimit": 6, "podFailurePolicy": {"rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]}}
        ]}});
        jobs.create(&PostParams::default(), &job("exit42", policy, json!({RUN_SECONDS: "0.1", EXIT_CODE: "42"})))
            .await
            .expect("create job");
        jobs.create(
            &PostParams::default(),
            &job("slow", json!({"activeDeadlineSeconds": 1, "parallelism": 2, "completions": 2}), json!({RUN_SECONDS: "600"})),
        )
        .await
        .expect("create job");
        let failed = wait_for_condition(&jobs, "exit42", "Failed").await;
        let cond = condition(&failed, "Failed").expect("Failed");
        assert_eq!(cond.reason.as_deref(), Some("PodFailurePolicy"));
        let msg = cond.message.clone().unwrap_or_default();
        assert!(msg.starts_with("Container c for pod default/exit42-"), "{msg}");
        assert!(msg.ends_with("failed with exit code 42 matching FailJob rule at index 0"), "{msg}");
        assert_eq!(job_pods(&c.client, "exit42").await.len(), 1, "no retry after FailJob");

        let late = wait_for_condition(&jobs, "slow", "Failed").await;
        let cond = condition(&late, "Failed").expect("Failed");
        assert_eq!(cond.reason.as_deref(), Some("DeadlineExceeded"));
        assert_eq!(cond.message.as_deref(), Some("Job was active longer than specified deadline"));
        let s = late.status.expect("status");
        assert_eq!((s.active, s.terminating), (Some(0), Some(0)));
        eventually("slow pods gone", || async {
            job_pods(&c.client, "slow").await.iter().all(|p| !running(p))
        })
        .await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn indexed_job_reports_completed_indexes() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let c = cluster().await;
        let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
        jobs.create(
            &PostParams::default(),
            &job(
                "idx",
                json!({"completions": 4, "parallelism": 2, "completionMode": "Indexed"}),
                json!({RUN_SECONDS: "0.2"}),
            ),
        )
        .await
        .expect("create job");
        eventually("all indexes done", || async {
            let j = jobs.get("idx").await.expect("get");
            j.status.unwrap_or_default().completed_indexes.as_deref() == Some("0-3")
        })
        .await;
        let done = wait_for_condition(&jobs, "idx", "Complete").await;
        assert_eq!(done.status.and_then(|s| s.succeeded), Some(4));
        let pods = job_pods(&c.client, "idx").await;
        let mut indexes = BTreeSet::new();
        for p in &pods {
            let i = p.annotations()["batch.kubernetes.io/job-completion-index"].clone();
            assert_eq!(p.labels()["batch.kubernetes.io/job-completion-index"], i);
            let hostname = p.spec.as_ref().and_then(|s| s.hostname.clone());
            assert_eq!(hostname, Some(format!("idx-{i}")));
            assert!(p.name_any().starts_with(&format!("idx-{i}-")));
            indexes.insert(i);
        }
        assert_eq!(indexes.len(), 4, "one pod per index");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn suspended_job_runs_only_while_resumed() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let c = cluster().await;
        let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
        jobs.create(
            &PostParams::default(),
            &job(
                "later",
                json!({"suspend": true, "parallelism": 2, "completions": 4}),
                json!({RUN_SECONDS: "600"}),
            ),
        )
        .await
        .expect("create job");
        let j = wait_for_condition(&jobs, "later", "Suspended").await;
        let cond = condition(&j, "Suspended").expect("Suspended");
        assert_eq!(cond.reason.as_deref(), Some("JobSuspended"));
        assert!(
            j.status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .is_none()
        );
        assert!(job_pods(&c.client, "later").await.is_empty());
        let set_suspend = |v: bool| {
            let jobs = jobs.clone();
            async move {
                jobs.patch(
                    "later",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"suspend": v}})),
                )
                .await
                .expect("patch suspend");
            }
        };
        set_suspend(false).await;
        eventually("2 pods run", || async {
            job_pods(&c.client, "later")
                .await
                .iter()
                .filter(|p| running(p))
                .count()
                == 2
        })
        .await;
        eventually("resumed", || async {
            let j = jobs.get("later").await.expect("get");
            let resumed = j
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.type_ == "Suspended"
                            && c.status == "False"
                            && c.reason.as_deref() == Some("JobResumed")
                    })
                });
            resumed && j.status.as_ref().and_then(|s| s.active) == Some(2)
        })
        .await;
        set_suspend(true).await;
        eventually("pods stopped", || async {
            let j = jobs.get("later").await.expect("get");
            let s = j.status.clone().unwrap_or_default();
            condition(&j, "Suspended").is_some()
                && s.active == Some(0)
                && job_pods(&c.client, "later")
                    .await
                    .iter()
                    .all(|p| !running(p))
        })
        .await;
        let s = jobs
            .get("later")
            .await
            .expect("get")
            .status
            .unwrap_or_default();
        assert_eq!(
            s.failed,
            Some(0),
            "pods stopped by suspension are not failures"
        );
        assert!(has_event(&c.client, "later", "Suspended").await);
        assert!(has_event(&c.client, "later", "Resumed").await);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn finished_job_is_deleted_after_its_ttl() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let c = cluster().await;
        let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
        jobs.create(
            &PostParams::default(),
            &job(
                "brief",
                json!({"ttlSecondsAfterFinished": 1}),
                json!({RUN_SECONDS: "0.1"}),
            ),
        )
        .await
        .expect("create job");
        // The TTL counts from a completion time in whole seconds, so the Job can be gone a few
        // milliseconds after it finished, before a poll sees its Complete condition: then its
        // Completed event (events outlive it) tells the same.
        eventually("brief Complete", || async {
            match jobs.get_opt("brief").await.expect("get") {
                Some(j) => condition(&j, "Complete").is_some(),
                None => has_event(&c.client, "brief", "Completed").await,
            }
        })
        .await;
        eventually("job and pods deleted", || async {
            jobs.get_opt("brief").await.expect("get").is_none()
                && job_pods(&c.client, "brief").await.is_empty()
        })
        .await;
    })
    .await
    .expect("test timed out");
}

fn cronjob(name: &str, spec: Value, run_seconds: &str) -> CronJob {
    let mut spec = spec;
    spec["jobTemplate"] = json!({"spec": {"template": {
        "metadata": {"annotations": {RUN_SECONDS: run_seconds}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
    }}});
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec}))
        .expect("cronjob literal")
}

async fn owned_jobs(client: &Client, cronjob: &str) -> Vec<Job> {
    let api: Api<Job> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default())
        .await
        .expect("list jobs")
        .items
        .into_iter()
        .filter(|j| {
            j.owner_references()
                .iter()
                .any(|o| o.kind == "CronJob" && o.name == cronjob)
        })
        .collect()
}

#[tokio::test]
async fn cronjob_runs_on_schedule_and_keeps_its_history() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let c = cluster().await;
        let cjs: Api<CronJob> = Api::namespaced(c.client.clone(), "default");
        cjs.create(
            &PostParams::default(),
            &cronjob(
                "tick",
                json!({"schedule": "* * * * *", "successfulJobsHistoryLimit": 2}),
                "0.1",
            ),
        )
        .await
        .expect("create cronjob");
        let seen = Arc::new(Mutex::new(BTreeSet::<String>::new()));
        eventually("four jobs created, at most two kept", || async {
            let jobs = owned_jobs(&c.client, "tick").await;
            let mut s = seen.lock().expect("lock");
            s.extend(jobs.iter().map(|j| j.name_any()));
            s.len() >= 4
        })
        .await;
        eventually("history trimmed to 2", || async {
            let jobs = owned_jobs(&c.client, "tick").await;
            jobs.iter()
                .filter(|j| {
                    condition(j, "Complete").is_some() && j.metadata.deletion_timestamp.is_none()
                })
                .count()
                <= 2
        })
        .await;
        // Names are minutes since the epoch of the scheduled time, which the annotation gives.
        for j in owned_jobs(&c.client, "tick").await {
            let at: Timestamp = j.annotations()["batch.kubernetes.io/cronjob-scheduled-timestamp"]
                .parse()
                .expect("rfc3339");
            assert_eq!(at.as_second() % 60, 0);
            assert_eq!(j.name_any(), format!("tick-{}", at.as_second() / 60));
            let owner = &j.owner_references()[0];
            assert_eq!(owner.controller, Some(true));
        }
        eventually("status", || async {
            let s = cjs
                .get("tick")
                .await
                .expect("get")
                .status
                .unwrap_or_default();
            s.last_schedule_time.is_some() && s.last_successful_time.is_some()
        })
        .await;
        assert!(has_event(&c.client, "tick", "SuccessfulCreate").await);
        assert!(has_event(&c.client, "tick", "SawCompletedJob").await);
        eventually("SuccessfulDelete", || {
            has_event(&c.client, "tick", "SuccessfulDelete")
        })
        .await;
        // Suspended: no new jobs.
        cjs.patch(
            "tick",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": true}})),
        )
        .await
        .expect("suspend");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = owned_jobs(&c.client, "tick").await.len();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let created_after: Vec<Job> = owned_jobs(&c.client, "tick").await;
        assert!(
            created_after.len() <= before,
            "a suspended cronjob created jobs"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn cronjob_forbid_and_replace() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let c = cluster().await;
        let cjs: Api<CronJob> = Api::namespaced(c.client.clone(), "default");
        // Jobs run 3.5 scheduled minutes.
        cjs.create(
            &PostParams::default(),
            &cronjob(
                "forbid",
                json!({"schedule": "* * * * *", "concurrencyPolicy": "Forbid"}),
                "3.5",
            ),
        )
        .await
        .expect("create forbid");
        cjs.create(
            &PostParams::default(),
            &cronjob(
                "replace",
                json!({"schedule": "* * * * *", "concurrencyPolicy": "Replace"}),
                "600",
            ),
        )
        .await
        .expect("create replace");
        let overlap = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let watch = {
            let client = c.client.clone();
            let (overlap, stop) = (overlap.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let running = owned_jobs(&client, "forbid")
                        .await
                        .iter()
                        .filter(|j| {
                            condition(j, "Complete").is_none() && condition(j, "Failed").is_none()
                        })
                        .count();
                    if running > 1 {
                        overlap.store(true, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        eventually("JobAlreadyActive", || {
            has_event(&c.client, "forbid", "JobAlreadyActive")
        })
        .await;
        eventually("a second forbid job after the first finished", || async {
            owned_jobs(&c.client, "forbid").await.len() >= 2
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        watch.await.expect("watcher");
        assert!(
            !overlap.load(Ordering::Relaxed),
            "Forbid let two jobs run at once"
        );

        eventually("replace deleted its running job", || {
            has_event(&c.client, "replace", "SuccessfulDelete")
        })
        .await;
        eventually("one active job", || async {
            let s = cjs
                .get("replace")
                .await
                .expect("get")
                .status
                .unwrap_or_default();
            s.active.map_or(0, |a| a.len()) == 1
        })
        .await;
    })
    .await
    .expect("test timed out");
}
