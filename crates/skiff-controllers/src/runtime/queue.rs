//! A work queue of keys, as client-go's: a key waits at most once, a key being processed is
//! never handed to a second worker, and failures back off per key.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

struct State<K> {
    queue: VecDeque<K>,
    /// Keys waiting in `queue` or to be re-queued when their processing ends.
    dirty: HashSet<K>,
    processing: HashSet<K>,
    failures: HashMap<K, u32>,
    /// Keys to add later: (when, sequence) ordered, the keys beside them.
    later: BinaryHeap<Reverse<(Instant, u64)>>,
    later_keys: HashMap<u64, K>,
    seq: u64,
    shut_down: bool,
}

impl<K: Hash + Eq + Clone> State<K> {
    /// Adds `key`; true when a worker should be woken.
    fn add(&mut self, key: K) -> bool {
        if self.shut_down || !self.dirty.insert(key.clone()) {
            return false;
        }
        if self.processing.contains(&key) {
            return false;
        }
        self.queue.push_back(key);
        true
    }

    /// Moves the keys whose time has come into the queue; returns the next deadline.
    fn promote(&mut self, now: Instant) -> Option<Instant> {
        while let Some(Reverse((when, seq))) = self.later.peek().copied() {
            if when > now {
                return Some(when);
            }
            self.later.pop();
            if let Some(k) = self.later_keys.remove(&seq) {
                self.add(k);
            }
        }
        None
    }
}

/// A deduplicating work queue shared by a controller's event handlers and workers.
pub struct Queue<K> {
    state: Mutex<State<K>>,
    notify: Notify,
    base_delay: Duration,
    max_delay: Duration,
}

impl<K: Hash + Eq + Clone + Send + 'static> Queue<K> {
    pub fn new() -> Arc<Queue<K>> {
        Queue::with_backoff(Duration::from_millis(5), Duration::from_secs(60))
    }

    pub fn with_backoff(base_delay: Duration, max_delay: Duration) -> Arc<Queue<K>> {
        Arc::new(Queue {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
                later: BinaryHeap::new(),
                later_keys: HashMap::new(),
                seq: 0,
                shut_down: false,
            }),
            notify: Notify::new(),
            base_delay,
            max_delay,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        // The state stays consistent across a panicking holder: every update is a single step.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `key` unless it already waits.
    pub fn add(&self, key: K) {
        let wake = self.lock().add(key);
        if wake {
            self.notify.notify_one();
        }
    }

    /// Queues `key` after `delay`.
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        {
            let mut s = self.lock();
            if s.shut_down {
                return;
            }
            s.seq += 1;
            let seq = s.seq;
            s.later.push(Reverse((Instant::now() + delay, seq)));
            s.later_keys.insert(seq, key);
        }
        // A waiting worker recomputes its deadline.
        self.notify.notify_one();
    }

    /// Queues `key` after its per-key exponential backoff, and counts the failure.
    pub fn add_rate_limited(&self, key: K) {
        let n = {
            let mut s = self.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(30));
        let delay = self.base_delay.saturating_mul(factor).min(self.max_delay);
        self.add_after(key, delay);
    }

    /// Forgets the failures of `key` (after a successful sync).
    pub fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    /// How many times in a row `key` failed.
    pub fn failures(&self, key: &K) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// The next key to process, or None once the queue is shut down.
    pub async fn get(&self) -> Option<K> {
        loop {
            let notified = self.notify.notified();
            let next = {
                let mut s = self.lock();
                if s.shut_down {
                    return None;
                }
                let next = s.promote(Instant::now());
                if let Some(key) = s.queue.pop_front() {
                    s.dirty.remove(&key);
                    s.processing.insert(key.clone());
                    if !s.queue.is_empty() {
                        drop(s);
                        self.notify.notify_one();
                    }
                    return Some(key);
                }
                next
            };
            match next {
                Some(when) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(when) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Marks `key` processed; if it was added meanwhile, it waits again.
    pub fn done(&self, key: &K) {
        let mut s = self.lock();
        s.processing.remove(key);
        if s.dirty.contains(key) {
            s.queue.push_back(key.clone());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Wakes every waiting worker with None; later adds are ignored.
    pub fn shut_down(&self) {
        self.lock().shut_down = true;
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_key_is_queued_once() {
        let q = Queue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await, Some("a"));
        assert_eq!(q.get().await, Some("b"));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn a_key_added_while_processing_comes_back_after_done() {
        let q = Queue::new();
        q.add("a");
        let k = q.get().await;
        assert_eq!(k, Some("a"));
        q.add("a");
        assert!(q.is_empty(), "not handed out twice at once");
        q.done(&"a");
        assert_eq!(q.get().await, Some("a"));
        q.done(&"a");
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn rate_limited_keys_back_off_and_forget_resets() {
        let q = Queue::with_backoff(Duration::from_millis(20), Duration::from_millis(100));
        q.add_rate_limited("a");
        q.add_rate_limited("a");
        assert_eq!(q.failures(&"a"), 2);
        assert!(q.is_empty());
        let got = tokio::time::timeout(Duration::from_secs(2), q.get()).await;
        assert_eq!(got.ok().flatten(), Some("a"));
        q.forget(&"a");
        assert_eq!(q.failures(&"a"), 0);
    }

    #[tokio::test]
    async fn shut_down_releases_workers() {
        let q: Arc<Queue<&str>> = Queue::new();
        let q2 = q.clone();
        let worker = tokio::spawn(async move { q2.get().await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        q.shut_down();
        let got = tokio::time::timeout(Duration::from_secs(2), worker).await;
        assert!(matches!(got, Ok(Ok(None))));
    }
}
