//! The delay before a Job replaces failed pods: 10 s after the first failure since the last
//! success, doubling with each further one, at most 10 minutes (upstream's
//! DefaultJobPodFailureBackOff and MaxJobPodFailureBackOff).

use crate::runtime::Key;
use k8s_openapi::jiff::Timestamp;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

pub const DEFAULT_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(10);
pub const MAX_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(600);

/// Failures since the last success, and when the last one happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Record {
    pub failures: u32,
    pub last_failure: Option<Timestamp>,
}

impl Record {
    /// The record after pods newly seen finished: a success resets the count, unless failures
    /// came after it.
    pub fn observe(self, succeeded: &[Timestamp], failed: &[Timestamp]) -> Record {
        let last_success = succeeded.iter().max().copied();
        match last_success {
            None if failed.is_empty() => self,
            None => Record {
                failures: self.failures + failed.len() as u32,
                last_failure: failed.iter().max().copied().max(self.last_failure),
            },
            Some(s) => {
                let after: Vec<&Timestamp> = failed.iter().filter(|f| **f > s).collect();
                Record {
                    failures: after.len() as u32,
                    last_failure: after.into_iter().max().copied(),
                }
            }
        }
    }

    /// How long to wait at `now` before creating replacement pods.
    pub fn remaining(&self, base: Duration, max: Duration, now: Timestamp) -> Duration {
        let Some(last) = self.last_failure.filter(|_| self.failures > 0) else {
            return Duration::ZERO;
        };
        let mut backoff = base;
        for _ in 1..self.failures {
            backoff = backoff.saturating_mul(2);
            if backoff >= max {
                backoff = max;
                break;
            }
        }
        let elapsed = now.duration_since(last);
        if elapsed.is_negative() {
            return backoff;
        }
        backoff.saturating_sub(elapsed.unsigned_abs())
    }
}

/// The records of every Job, in memory as upstream keeps them.
#[derive(Default)]
pub struct Store {
    records: Mutex<HashMap<Key, Record>>,
}

impl Store {
    pub fn get(&self, key: &Key) -> Record {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .copied()
            .unwrap_or_default()
    }

    pub fn set(&self, key: &Key, r: Record) {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone(), r);
    }

    pub fn forget(&self, key: &Key) {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("in range")
    }

    #[test]
    fn doubles_from_ten_seconds_up_to_ten_minutes() {
        let base = DEFAULT_POD_FAILURE_BACKOFF;
        let max = MAX_POD_FAILURE_BACKOFF;
        let r = |failures| Record {
            failures,
            last_failure: Some(at(1000)),
        };
        assert_eq!(
            Record::default().remaining(base, max, at(1000)),
            Duration::ZERO
        );
        assert_eq!(r(1).remaining(base, max, at(1000)), Duration::from_secs(10));
        assert_eq!(r(1).remaining(base, max, at(1004)), Duration::from_secs(6));
        assert_eq!(r(1).remaining(base, max, at(1011)), Duration::ZERO);
        assert_eq!(r(2).remaining(base, max, at(1000)), Duration::from_secs(20));
        assert_eq!(r(3).remaining(base, max, at(1000)), Duration::from_secs(40));
        assert_eq!(
            r(6).remaining(base, max, at(1000)),
            Duration::from_secs(320)
        );
        assert_eq!(
            r(7).remaining(base, max, at(1000)),
            Duration::from_secs(600)
        );
        assert_eq!(
            r(40).remaining(base, max, at(1000)),
            Duration::from_secs(600)
        );
    }

    #[test]
    fn a_success_resets_the_count() {
        let r = Record::default().observe(&[], &[at(10), at(20)]);
        assert_eq!(r.failures, 2);
        assert_eq!(r.last_failure, Some(at(20)));
        let r = r.observe(&[at(30)], &[]);
        assert_eq!(r.failures, 0);
        let r = r.observe(&[at(40)], &[at(35), at(45)]);
        assert_eq!((r.failures, r.last_failure), (1, Some(at(45))));
    }
}
