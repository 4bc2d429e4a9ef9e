//! SQLite-only checks: the file stays bounded under background compaction, and a quick
//! measurement of group-commit throughput.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use skiff_store::{CompactionPolicy, SqliteOptions, SqliteStore, Store};

/// Measured here: the peak of db + wal is about 8 MB with compaction (half of it the WAL
/// before a checkpoint), and 29 MB and still growing with the compactor keeping everything.
const BOUND: u64 = 16 * 1024 * 1024;

async fn open(dir: &tempfile::TempDir) -> (Store, SqliteStore) {
    let store = Store::sqlite(&dir.path().join("store.db"), SqliteOptions::default())
        .await
        .unwrap();
    let Store::Sqlite(sqlite) = store.clone() else {
        unreachable!("Store::sqlite returns the sqlite backend")
    };
    (store, sqlite)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_stays_bounded_under_background_compaction() {
    const KEYS: usize = 1_000;
    const UPDATES: usize = 100_000;
    const WRITERS: usize = 50;
    tokio::time::timeout(common::TEST_TIMEOUT, async {
        let dir = tempfile::tempdir().unwrap();
        let (store, sqlite) = open(&dir).await;
        let value = |i: usize| Bytes::from(format!("{i:0>200}"));
        let mut revisions = Vec::with_capacity(KEYS);
        for k in 0..KEYS {
            revisions.push(store.create(&format!("/k/{k:04}"), value(k)).await.unwrap());
        }
        let compactor = store.start_compactor(CompactionPolicy {
            interval: Duration::from_millis(100),
            keep_revisions: 10_000,
            keep_for: None,
            max_age: None,
        });
        let peak = Arc::new(AtomicU64::new(0));
        let sampler = {
            let (sqlite, peak) = (sqlite.clone(), peak.clone());
            tokio::spawn(async move {
                loop {
                    peak.fetch_max(sqlite.disk_size(), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let started = Instant::now();
        let mut writers = tokio::task::JoinSet::new();
        for w in 0..WRITERS {
            let store = store.clone();
            // Each writer owns the keys k with k % WRITERS == w, so its expected
            // revisions are always right.
            let mut owned: Vec<(usize, i64)> = (w..KEYS)
                .step_by(WRITERS)
                .map(|k| (k, revisions[k]))
                .collect();
            writers.spawn(async move {
                for i in 0..UPDATES / WRITERS {
                    let slot = i % owned.len();
                    let (k, rev) = owned[slot];
                    let new = store
                        .update(&format!("/k/{k:04}"), value(i), rev)
                        .await
                        .unwrap();
                    owned[slot].1 = new;
                }
            });
        }
        while let Some(done) = writers.join_next().await {
            done.unwrap();
        }
        let elapsed = started.elapsed();
        sampler.abort();
        compactor.stop().await.unwrap();
        let peak = peak.load(Ordering::Relaxed).max(sqlite.disk_size());
        let current = store.current_revision().await.unwrap();
        let compacted = store.compacted_revision().await.unwrap();
        println!(
            "{UPDATES} updates by {WRITERS} writers in {elapsed:?} ({:.0}/s); \
             peak db+wal {peak} bytes; revision {current}, compacted {compacted}",
            UPDATES as f64 / elapsed.as_secs_f64()
        );
        assert_eq!(current, 1 + (KEYS + UPDATES) as i64);
        assert!(
            compacted > current - 20_000,
            "compactor kept up: {compacted}"
        );
        assert!(peak < BOUND, "db+wal peaked at {peak} bytes");
        let all = store.range("/k/", None, 0, 0).await.unwrap();
        assert_eq!(all.kvs.len(), KEYS);
    })
    .await
    .expect("test timed out");
}

/// Prints creates per second with 1 and 16 concurrent writers. Run with
/// `cargo test -p skiff-store --test sqlite -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn create_throughput() {
    for writers in [1usize, 16, 64] {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(&dir).await;
        let per_writer = 2_000 / writers.min(16) * writers.min(16) / writers;
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..writers {
            let store = store.clone();
            tasks.spawn(async move {
                for i in 0..per_writer {
                    store
                        .create(&format!("/t/{w}/{i}"), Bytes::from_static(b"value"))
                        .await
                        .unwrap();
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let total = writers * per_writer;
        let elapsed = started.elapsed();
        println!(
            "{writers} writers: {total} creates in {elapsed:?} = {:.0} creates/s",
            total as f64 / elapsed.as_secs_f64()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_data_revision_and_compaction() {
    tokio::time::timeout(common::TEST_TIMEOUT, async {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(&dir).await;
        let r1 = store.create("/a", Bytes::from_static(b"1")).await.unwrap();
        let r2 = store
            .update("/a", Bytes::from_static(b"2"), r1)
            .await
            .unwrap();
        store.create("/b", Bytes::from_static(b"b")).await.unwrap();
        let r4 = store.delete("/b", None).await.unwrap().mod_revision;
        store.compact(r2).await.unwrap();
        drop(store);

        let (store, _) = open(&dir).await;
        assert_eq!(store.current_revision().await.unwrap(), r4);
        assert_eq!(store.compacted_revision().await.unwrap(), r2);
        let a = store.get("/a").await.unwrap().unwrap();
        assert_eq!(
            (a.value, a.create_revision, a.mod_revision),
            (Bytes::from_static(b"2"), r1, r2)
        );
        assert_eq!(store.get("/b").await.unwrap(), None);
        assert_eq!(store.create("/c", Bytes::new()).await.unwrap(), r4 + 1);
        let mut watch = store.watch("/", r2).unwrap();
        let first = watch.recv().await.unwrap().unwrap();
        assert_eq!(first.revision(), r2 + 1);
    })
    .await
    .expect("test timed out");
}

/// The store keeps its revision in the newest row; when compaction removes that row (a
/// tombstone), the revision must survive it, in the open store and after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_survives_compacting_the_newest_row() {
    tokio::time::timeout(common::TEST_TIMEOUT, async {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(&dir).await;
        store.create("/a", Bytes::from_static(b"a")).await.unwrap();
        store.create("/b", Bytes::from_static(b"b")).await.unwrap();
        let deleted = store.delete("/b", None).await.unwrap().mod_revision;
        store.compact(deleted).await.unwrap();
        let listed = store.range("/", None, 0, 0).await.unwrap();
        assert_eq!(listed.revision, deleted);
        assert_eq!(listed.kvs.len(), 1);
        drop(store);

        let (store, _) = open(&dir).await;
        assert_eq!(store.current_revision().await.unwrap(), deleted);
        assert_eq!(store.compacted_revision().await.unwrap(), deleted);
        assert_eq!(
            store.range("/", None, 0, 0).await.unwrap().revision,
            deleted
        );
        assert_eq!(
            store.create("/c", Bytes::new()).await.unwrap(),
            deleted + 1,
            "a revision is never handed out twice"
        );
    })
    .await
    .expect("test timed out");
}
