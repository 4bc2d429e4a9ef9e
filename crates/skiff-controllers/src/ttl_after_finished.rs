//! TTL-after-finished controller: deletes a finished Job `ttlSecondsAfterFinished` after it
//! finished, with foreground propagation so that its pods go first (as upstream).

use crate::job;
use crate::runtime::{self, Change, Informer, Informers, Key, Queue};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Preconditions};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const COMPONENT: &str = "ttl-after-finished-controller";

pub use crate::runtime::Error;

/// When a finished Job with a TTL expires (None: it has no TTL or has not finished).
pub fn expires_at(job: &Job) -> Option<Timestamp> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    if !job::is_finished(job) {
        return None;
    }
    let finished = job
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .filter(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True")
        .find_map(|c| c.last_transition_time.as_ref())?
        .0;
    finished
        .checked_add(SignedDuration::from_secs(i64::from(ttl)))
        .ok()
}

/// Runs the controller until `cancel` fires.
pub async fn run(informers: Arc<Informers>, workers: usize, cancel: CancellationToken) {
    let jobs: Arc<Informer<Job>> = informers.get::<Job>();
    let client = informers.client().clone();
    let queue = Queue::new();
    let changes = jobs.subscribe();
    jobs.synced().await;
    for j in jobs.list() {
        queue.add(Key::of(&*j));
    }
    let fed = runtime::enqueue_changes(changes, queue.clone(), cancel.clone(), |c| match c {
        Change::Applied { new, .. }
            if new
                .spec
                .as_ref()
                .is_some_and(|s| s.ttl_seconds_after_finished.is_some()) =>
        {
            vec![Key::of(&**new)]
        }
        _ => vec![],
    });
    let workers = runtime::run_workers(COMPONENT, queue, workers, cancel, move |key| {
        let jobs = jobs.clone();
        let client = client.clone();
        async move { sync(&client, &jobs, &key).await }
    });
    tokio::join!(fed, workers);
}

/// How long from `now` until `at` (zero once passed).
fn until(at: Timestamp, now: Timestamp) -> Duration {
    let d = now.duration_until(at);
    if d.is_positive() {
        d.unsigned_abs()
    } else {
        Duration::ZERO
    }
}

async fn sync(
    client: &kube::Client,
    jobs: &Informer<Job>,
    key: &Key,
) -> Result<Option<Duration>, Error> {
    let Some(cached) = jobs.get(&key.namespace, &key.name) else {
        return Ok(None);
    };
    if cached.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let Some(at) = expires_at(&cached) else {
        return Ok(None);
    };
    let left = until(at, Timestamp::now());
    if !left.is_zero() {
        return Ok(Some(left));
    }
    // The cache may be stale (a TTL changed): check the stored Job before deleting it.
    let api: Api<Job> = Api::namespaced(client.clone(), &key.namespace);
    let fresh = match api.get(&key.name).await {
        Ok(j) => j,
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if fresh.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let Some(at) = expires_at(&fresh) else {
        return Ok(None);
    };
    let left = until(at, Timestamp::now());
    if !left.is_zero() {
        return Ok(Some(left));
    }
    tracing::debug!(job = %key, "cleaning up a finished job");
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: fresh.metadata.uid.clone(),
            resource_version: fresh.metadata.resource_version.clone(),
        }),
        ..DeleteParams::foreground()
    };
    runtime::ignore_not_found::<_, Error>(api.delete(&key.name, &dp).await)?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expiry_counts_from_the_finish_condition() {
        let job = |ttl: Option<i32>, cond: &str| -> Job {
            serde_json::from_value(json!({
                "metadata": {"name": "j"},
                "spec": {"ttlSecondsAfterFinished": ttl, "template": {}},
                "status": {"conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"},
                    {"type": cond, "status": "True", "lastTransitionTime": "2024-01-01T00:00:05Z"}
                ]}
            }))
            .expect("job literal")
        };
        assert_eq!(
            expires_at(&job(Some(10), "Complete")),
            Some("2024-01-01T00:00:15Z".parse().expect("ts"))
        );
        assert_eq!(expires_at(&job(None, "Complete")), None);
        assert_eq!(expires_at(&job(Some(10), "Suspended")), None);
        let now: Timestamp = "2024-01-01T00:00:10Z".parse().expect("ts");
        let at: Timestamp = "2024-01-01T00:00:15Z".parse().expect("ts");
        assert_eq!(until(at, now), Duration::from_secs(5));
        assert_eq!(until(now, at), Duration::ZERO);
    }
}
