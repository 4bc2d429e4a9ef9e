//! Events expire: each is deleted a fixed time (1 h by default) after its last write, as etcd
//! leases do upstream. The expiry index is built from the watch cache, not by scanning.

use crate::cache::{EventType, WatchCache};
use skiff_store::Store;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

const PREFIXES: &[&str] = &["/registry/core/events/", "/registry/events.k8s.io/events/"];

fn is_event(key: &str) -> bool {
    PREFIXES.iter().any(|p| key.starts_with(p))
}

#[derive(Default)]
struct Index {
    by_deadline: BTreeSet<(Instant, String)>,
    deadline_of: HashMap<String, Instant>,
}

impl Index {
    fn touch(&mut self, key: &str, deadline: Instant) {
        if let Some(old) = self.deadline_of.insert(key.to_string(), deadline) {
            self.by_deadline.remove(&(old, key.to_string()));
        }
        self.by_deadline.insert((deadline, key.to_string()));
    }
    fn forget(&mut self, key: &str) {
        if let Some(old) = self.deadline_of.remove(key) {
            self.by_deadline.remove(&(old, key.to_string()));
        }
    }
    fn due(&mut self, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        while let Some((d, _)) = self.by_deadline.first() {
            if *d > now {
                break;
            }
            if let Some((_, k)) = self.by_deadline.pop_first() {
                self.deadline_of.remove(&k);
                out.push(k);
            }
        }
        out
    }
}

/// Runs until `cancel`: deletes events `ttl` after their last write. Events already stored when
/// the server starts get a full `ttl` from then.
pub async fn run(store: Store, cache: WatchCache, ttl: Duration, cancel: CancellationToken) {
    let mut index = Index::default();
    // One receiver per events resource; the list below is read at the later of the two
    // subscription points, and events at or before it are already in the index.
    let (_, mut rx_core) = cache.subscribe_now(PREFIXES[0], None);
    let (rev, mut rx_events) = cache.subscribe_now(PREFIXES[1], None);
    let start = Instant::now();
    for prefix in PREFIXES {
        match store.range(prefix, None, 0, rev.max(0)).await {
            Ok(res) => {
                for kv in res.kvs {
                    index.touch(&kv.key, start + ttl);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list events for expiry"),
        }
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(ttl));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            ev = async {
                tokio::select! {
                    ev = rx_core.recv() => ev,
                    ev = rx_events.recv() => ev,
                }
            } => match ev {
                Ok(ev) if is_event(&ev.key) && ev.revision > rev => match ev.kind {
                    EventType::Deleted => index.forget(&ev.key),
                    _ => index.touch(&ev.key, Instant::now() + ttl),
                },
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => tracing::warn!("event expiry fell behind the watch cache"),
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                for key in index.due(Instant::now()) {
                    match store.delete(&key, None).await {
                        Ok(_) | Err(skiff_store::StoreError::NotFound) => {}
                        Err(e) => tracing::warn!(%key, error = %e, "cannot expire event"),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_orders_by_deadline_and_forgets() {
        let mut i = Index::default();
        let t = Instant::now();
        i.touch("a", t + Duration::from_secs(2));
        i.touch("b", t + Duration::from_secs(1));
        i.touch("a", t + Duration::from_secs(5));
        i.forget("c");
        assert_eq!(i.due(t + Duration::from_secs(3)), vec!["b".to_string()]);
        i.forget("a");
        assert!(i.due(t + Duration::from_secs(10)).is_empty());
    }
}
