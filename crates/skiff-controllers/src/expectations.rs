//! Controller expectations, as upstream's: after creating or deleting pods, a controller waits
//! until its cache has seen those changes before it counts pods again, so that a lagging cache
//! never makes it create or delete twice.

use crate::runtime::Key;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Upstream's ExpectationsTimeout: past this, a controller stops waiting and counts again.
const TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Expected {
    adds: i64,
    dels: i64,
    at: Instant,
}

#[derive(Default)]
pub struct Expectations {
    by_key: Mutex<HashMap<Key, Expected>>,
}

impl Expectations {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<Key, Expected>) -> R) -> R {
        f(&mut self.by_key.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn expect_creations(&self, key: &Key, n: usize) {
        self.with(|m| {
            m.insert(
                key.clone(),
                Expected {
                    adds: n as i64,
                    dels: 0,
                    at: Instant::now(),
                },
            );
        });
    }

    pub fn expect_deletions(&self, key: &Key, n: usize) {
        self.with(|m| {
            m.insert(
                key.clone(),
                Expected {
                    adds: 0,
                    dels: n as i64,
                    at: Instant::now(),
                },
            );
        });
    }

    pub fn creation_observed(&self, key: &Key) {
        self.with(|m| {
            if let Some(e) = m.get_mut(key) {
                e.adds -= 1;
            }
        });
    }

    pub fn deletion_observed(&self, key: &Key) {
        self.with(|m| {
            if let Some(e) = m.get_mut(key) {
                e.dels -= 1;
            }
        });
    }

    /// True when nothing is outstanding (or the wait timed out).
    pub fn satisfied(&self, key: &Key) -> bool {
        self.with(|m| match m.get(key) {
            None => true,
            Some(e) => (e.adds <= 0 && e.dels <= 0) || e.at.elapsed() > TIMEOUT,
        })
    }

    pub fn forget(&self, key: &Key) {
        self.with(|m| {
            m.remove(key);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn satisfied_once_every_change_is_observed() {
        let e = Expectations::default();
        let k = Key::new("default", "web");
        assert!(e.satisfied(&k));
        e.expect_creations(&k, 2);
        assert!(!e.satisfied(&k));
        e.creation_observed(&k);
        assert!(!e.satisfied(&k));
        e.creation_observed(&k);
        assert!(e.satisfied(&k));
        e.expect_deletions(&k, 1);
        assert!(!e.satisfied(&k));
        e.deletion_observed(&k);
        assert!(e.satisfied(&k));
        e.forget(&k);
        assert!(e.satisfied(&k));
    }
}
