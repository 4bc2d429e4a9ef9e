//! The background compaction policy: periodically compacts so that only a bounded history
//! remains.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::{Revision, Store, StoreError};

/// How much history the background compactor keeps.
#[derive(Debug, Clone)]
pub struct CompactionPolicy {
    /// How often to compact.
    pub interval: Duration,
    /// Keep at least this many of the most recent revisions.
    pub keep_revisions: i64,
    /// Also keep every revision written within this long. When both limits are set the
    /// compactor keeps whichever history is longer, so a watcher that fell behind by a
    /// few minutes can still resume.
    pub keep_for: Option<Duration>,
    /// Never keep revisions older than this, however few there are (upstream's API server
    /// compacts every 5 minutes to the revision of 5 minutes before): a quiet cluster does
    /// not hold on to hours of history, and a paged list older than that expires.
    pub max_age: Option<Duration>,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            interval: Duration::from_secs(60),
            keep_revisions: 10_000,
            keep_for: None,
            max_age: Some(Duration::from_secs(300)),
        }
    }
}

/// The running compaction task. Stopping or dropping it cancels the task.
pub struct Compactor {
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Compactor {
    pub(crate) fn start(store: Store, policy: CompactionPolicy) -> Compactor {
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(store, policy, cancel.clone()));
        Compactor {
            cancel,
            task: Some(task),
        }
    }

    /// Cancels the task and waits for it to finish.
    pub async fn stop(mut self) -> Result<(), tokio::task::JoinError> {
        self.cancel.cancel();
        match self.task.take() {
            Some(task) => task.await,
            None => Ok(()),
        }
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn run(store: Store, policy: CompactionPolicy, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(policy.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut samples = Samples::default();
    // The last revision this task compacted to; compacting is idempotent, so starting at
    // 0 only costs one redundant call, and it spares etcd a compacted-revision lookup
    // on every tick.
    let mut compacted = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(error) = compact_once(&store, &policy, &mut samples, &mut compacted).await {
            tracing::warn!(%error, "background compaction failed");
        }
    }
}

async fn compact_once(
    store: &Store,
    policy: &CompactionPolicy,
    samples: &mut Samples,
    compacted: &mut Revision,
) -> Result<(), StoreError> {
    let current = store.current_revision().await?;
    let mut target = current - policy.keep_revisions.max(0);
    let now = Instant::now();
    let ages = [policy.keep_for, policy.max_age];
    if let Some(oldest) = ages.iter().flatten().max() {
        samples.record(now, current);
        if let Some(keep_for) = policy.keep_for {
            target = target.min(samples.revision_before(now, keep_for));
        }
        if let Some(max_age) = policy.max_age {
            target = target.max(samples.revision_before(now, max_age));
        }
        samples.prune(now, *oldest);
    }
    if target <= 0 {
        return Ok(());
    }
    if target > *compacted {
        tracing::debug!(target, current, "compacting");
        store.compact(target).await?;
        *compacted = target;
    }
    Ok(())
}

/// The store's revision as seen at past ticks, to turn an age into a revision.
#[derive(Default)]
struct Samples(VecDeque<(Instant, Revision)>);

impl Samples {
    fn record(&mut self, now: Instant, revision: Revision) {
        self.0.push_back((now, revision));
    }

    /// The newest sampled revision that is at least `age` old (0 if none is).
    fn revision_before(&self, now: Instant, age: Duration) -> Revision {
        let Some(cutoff) = now.checked_sub(age) else {
            return 0;
        };
        self.0
            .iter()
            .take_while(|(at, _)| *at <= cutoff)
            .last()
            .map_or(0, |&(_, revision)| revision)
    }

    /// Drops the samples no age up to `age` needs: all but the newest one at least that old.
    fn prune(&mut self, now: Instant, age: Duration) {
        let Some(cutoff) = now.checked_sub(age) else {
            return;
        };
        while self.0.len() >= 2 && self.0[1].0 <= cutoff {
            self.0.pop_front();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn samples_pick_newest_revision_old_enough() {
        let start = Instant::now();
        let mut samples = Samples::default();
        samples.record(start, 10);
        samples.record(start + Duration::from_secs(60), 20);
        samples.record(start + Duration::from_secs(120), 30);
        let now = start + Duration::from_secs(150);
        assert_eq!(samples.revision_before(now, Duration::from_secs(200)), 0);
        assert_eq!(samples.revision_before(now, Duration::from_secs(60)), 20);
        assert_eq!(samples.revision_before(now, Duration::from_secs(140)), 10);
        samples.prune(now, Duration::from_secs(60));
        assert_eq!(samples.0.len(), 2);
        assert_eq!(samples.revision_before(now, Duration::from_secs(60)), 20);
    }

    #[tokio::test]
    async fn background_compactor_keeps_the_last_revisions() {
        let store = Store::memory();
        let mut revision = store.create("k", "0".into()).await.unwrap();
        for i in 0..50 {
            revision = store
                .update("k", format!("{i}").into(), revision)
                .await
                .unwrap();
        }
        let compactor = store.start_compactor(CompactionPolicy {
            interval: Duration::from_millis(10),
            keep_revisions: 5,
            keep_for: None,
            max_age: None,
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.compacted_revision().await.unwrap() != revision - 5 {
            assert!(Instant::now() < deadline, "compactor did not run");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        compactor.stop().await.unwrap();
    }

    #[tokio::test]
    async fn background_compactor_drops_what_is_older_than_its_max_age() {
        let store = Store::memory();
        let mut revision = store.create("k", "0".into()).await.unwrap();
        for i in 0..5 {
            revision = store
                .update("k", format!("{i}").into(), revision)
                .await
                .unwrap();
        }
        // Far fewer revisions than it keeps, but older than its max age.
        let compactor = store.start_compactor(CompactionPolicy {
            interval: Duration::from_millis(10),
            keep_revisions: 10_000,
            keep_for: None,
            max_age: Some(Duration::from_millis(50)),
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.compacted_revision().await.unwrap() != revision {
            assert!(Instant::now() < deadline, "old revisions were kept");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        compactor.stop().await.unwrap();
    }
}
