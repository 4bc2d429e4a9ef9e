//! One conformance suite, run against every backend: memory, SQLite and a real etcd.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use skiff_store::{Event, EventKind, KeyValue, Revision, Store, StoreError, WatchStream};

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::common::run(crate::common::Backend::Memory, crate::$case).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::common::run(crate::common::Backend::Sqlite, crate::$case).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::common::run(crate::common::Backend::Etcd, crate::$case).await;
                }
            )*
        }
    };
}

conformance!(
    create_and_already_exists,
    update_if_revision,
    delete_if_revision,
    revision_increments_once_per_write,
    range_prefix_limit_continuation,
    range_chunks_and_count,
    range_at_past_revision,
    watch_from_every_revision,
    watch_while_writing,
    watch_deletes_with_prev,
    compaction,
    concurrent_writers,
    update_with_rewrites_in_one_step,
);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// Reads events until one at `last` (inclusive) has arrived.
async fn collect_until(watch: &mut WatchStream, last: Revision) -> Vec<Event> {
    let mut events = Vec::new();
    while events.last().is_none_or(|e: &Event| e.revision() < last) {
        let event = tokio::time::timeout(EVENT_TIMEOUT, watch.recv())
            .await
            .unwrap_or_else(|_| panic!("no event in time after {:?}", events.last()))
            .expect("watch stream ended")
            .expect("watch event");
        events.push(event);
    }
    events
}

fn summary(events: &[Event]) -> Vec<(Revision, EventKind, String, Bytes, Option<KeyValue>)> {
    events
        .iter()
        .map(|e| {
            (
                e.revision(),
                e.kind.clone(),
                e.kv.key.clone(),
                e.kv.value.clone(),
                e.prev.clone(),
            )
        })
        .collect()
}

async fn expect_watch_compacted(store: &Store, prefix: &str, after: Revision) {
    match store.watch(prefix, after) {
        Err(StoreError::Compacted { requested, .. }) => assert_eq!(requested, after),
        Err(other) => panic!("expected compacted, got {other}"),
        Ok(mut watch) => match tokio::time::timeout(EVENT_TIMEOUT, watch.recv()).await {
            Ok(Some(Err(StoreError::Compacted { requested, .. }))) => assert_eq!(requested, after),
            other => panic!("expected a compacted error from the watch, got {other:?}"),
        },
    }
}

async fn create_and_already_exists(store: Store) {
    assert_eq!(store.current_revision().await.unwrap(), 1);
    let rev = store.create("/a", b("1")).await.unwrap();
    assert_eq!(rev, 2, "the first write gets revision 2");
    assert!(matches!(
        store.create("/a", b("2")).await,
        Err(StoreError::AlreadyExists)
    ));
    let kv = store.get("/a").await.unwrap().expect("created key");
    assert_eq!(
        kv,
        KeyValue {
            key: "/a".into(),
            value: b("1"),
            create_revision: rev,
            mod_revision: rev
        }
    );
    assert_eq!(store.get("/missing").await.unwrap(), None);
}

async fn update_if_revision(store: Store) {
    let created = store.create("/k", b("v1")).await.unwrap();
    let updated = store.update("/k", b("v2"), created).await.unwrap();
    assert_eq!(updated, created + 1);
    match store.update("/k", b("v3"), created).await {
        Err(StoreError::Conflict {
            current: Some(current),
        }) => {
            assert_eq!(current.value, b("v2"));
            assert_eq!(current.mod_revision, updated);
            assert_eq!(current.create_revision, created);
        }
        other => panic!("expected conflict, got {other:?}"),
    }
    assert!(matches!(
        store.update("/nope", b("x"), 0).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.update("/nope", b("x"), created).await,
        Err(StoreError::NotFound)
    ));
    let kv = store.get("/k").await.unwrap().unwrap();
    assert_eq!(
        (kv.value, kv.create_revision, kv.mod_revision),
        (b("v2"), created, updated)
    );
}

async fn delete_if_revision(store: Store) {
    let created = store.create("/d", b("v1")).await.unwrap();
    let updated = store.update("/d", b("v2"), created).await.unwrap();
    match store.delete("/d", Some(created)).await {
        Err(StoreError::Conflict {
            current: Some(current),
        }) => {
            assert_eq!(current.mod_revision, updated)
        }
        other => panic!("expected conflict, got {other:?}"),
    }
    let deleted = store.delete("/d", Some(updated)).await.unwrap();
    assert_eq!(
        deleted,
        KeyValue {
            key: "/d".into(),
            value: b("v2"),
            create_revision: created,
            mod_revision: updated + 1
        }
    );
    assert_eq!(store.get("/d").await.unwrap(), None);
    assert!(matches!(
        store.delete("/d", None).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete("/d", Some(updated)).await,
        Err(StoreError::NotFound)
    ));
    // A key can come back, as a new incarnation.
    let recreated = store.create("/d", b("v3")).await.unwrap();
    assert_eq!(recreated, updated + 2);
    let deleted = store.delete("/d", None).await.unwrap();
    assert_eq!(deleted.create_revision, recreated);
    assert_eq!(deleted.mod_revision, recreated + 1);
}

async fn revision_increments_once_per_write(store: Store) {
    let mut expected = store.current_revision().await.unwrap();
    for i in 0..5 {
        let key = format!("/r/{i}");
        let rev = store.create(&key, b("x")).await.unwrap();
        expected += 1;
        assert_eq!(rev, expected);
        assert!(store.create(&key, b("y")).await.is_err());
        assert!(store.update(&key, b("y"), rev + 100).await.is_err());
        let rev = store.update(&key, b("y"), rev).await.unwrap();
        expected += 1;
        assert_eq!(rev, expected);
        assert_eq!(store.current_revision().await.unwrap(), expected);
    }
    let deleted = store.delete("/r/0", None).await.unwrap();
    expected += 1;
    assert_eq!(deleted.mod_revision, expected);
    assert_eq!(store.current_revision().await.unwrap(), expected);
}

async fn range_prefix_limit_continuation(store: Store) {
    for key in ["/a/1", "/a/2", "/a/3", "/a/4", "/a/5", "/ab", "/b/1", "/a"] {
        store.create(key, b(key)).await.unwrap();
    }
    let all = store.range("/a/", None, 0, 0).await.unwrap();
    let keys: Vec<_> = all.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/a/1", "/a/2", "/a/3", "/a/4", "/a/5"]);
    assert_eq!((all.remaining, all.more), (0, false));
    assert_eq!(all.revision, store.current_revision().await.unwrap());
    assert_eq!(all.kvs[0].value, b("/a/1"));

    let page1 = store.range("/a/", None, 2, 0).await.unwrap();
    let keys: Vec<_> = page1.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/a/1", "/a/2"]);
    assert_eq!((page1.remaining, page1.more), (3, true));

    // Writes between pages must not show through a continuation at the first revision.
    let kv3 = store.get("/a/3").await.unwrap().unwrap();
    store
        .update("/a/3", b("changed"), kv3.mod_revision)
        .await
        .unwrap();
    store.delete("/a/4", None).await.unwrap();
    store.create("/a/45", b("new")).await.unwrap();

    let page2 = store
        .range("/a/", Some("/a/2"), 2, page1.revision)
        .await
        .unwrap();
    assert_eq!(page2.revision, page1.revision);
    let keys: Vec<_> = page2.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/a/3", "/a/4"]);
    assert_eq!(page2.kvs[0].value, b("/a/3"));
    assert_eq!((page2.remaining, page2.more), (1, true));
    let page3 = store
        .range("/a/", Some("/a/4"), 2, page1.revision)
        .await
        .unwrap();
    let keys: Vec<_> = page3.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/a/5"]);
    assert_eq!((page3.remaining, page3.more), (0, false));

    // At the current revision the writes are visible.
    let now = store.range("/a/", Some("/a/2"), 0, 0).await.unwrap();
    let keys: Vec<_> = now.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/a/3", "/a/45", "/a/5"]);
    assert_eq!(now.kvs[0].value, b("changed"));

    // The empty prefix lists everything; a start_after before the prefix is ignored.
    let everything = store.range("", None, 0, 0).await.unwrap();
    assert_eq!(everything.kvs.len(), 8);
    let before = store.range("/b/", Some("/a"), 0, 0).await.unwrap();
    assert_eq!(before.kvs.len(), 1);
    let exact_limit = store.range("/a/", None, 5, 0).await.unwrap();
    assert_eq!((exact_limit.kvs.len(), exact_limit.remaining), (5, 0));
}

/// `range_chunk` pages like `range` but only says whether more follow; `count` counts
/// what follows a key, at a past revision too.
async fn range_chunks_and_count(store: Store) {
    for key in ["/c/1", "/c/2", "/c/3", "/c/4", "/c/5", "/cd", "/d/1"] {
        store.create(key, b(key)).await.unwrap();
    }
    let at = store.current_revision().await.unwrap();
    let keys =
        |r: &skiff_store::RangeResult| r.kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>();
    let first = store.range_chunk("/c/", None, 2, 0).await.unwrap();
    assert_eq!(keys(&first), ["/c/1", "/c/2"]);
    assert_eq!((first.remaining, first.more, first.revision), (0, true, at));
    let last = store.range_chunk("/c/", Some("/c/3"), 2, at).await.unwrap();
    assert_eq!(keys(&last), ["/c/4", "/c/5"]);
    assert!(!last.more, "exactly a page left: nothing follows");
    let all = store.range_chunk("/c/", None, 0, 0).await.unwrap();
    assert_eq!((all.kvs.len(), all.more), (5, false));

    assert_eq!(store.count("/c/", None, 0).await.unwrap(), 5);
    assert_eq!(store.count("/c/", Some("/c/2"), 0).await.unwrap(), 3);
    assert_eq!(store.count("/c/", Some("/c/5"), 0).await.unwrap(), 0);
    store.delete("/c/3", None).await.unwrap();
    assert_eq!(store.count("/c/", Some("/c/2"), 0).await.unwrap(), 2);
    assert_eq!(store.count("/c/", Some("/c/2"), at).await.unwrap(), 3);
    let past = store.range_chunk("/c/", Some("/c/2"), 1, at).await.unwrap();
    assert_eq!((keys(&past), past.more), (vec!["/c/3".to_string()], true));
}

async fn range_at_past_revision(store: Store) {
    let r1 = store.create("/p/k", b("v1")).await.unwrap();
    let r2 = store.update("/p/k", b("v2"), r1).await.unwrap();
    let r3 = store.delete("/p/k", None).await.unwrap().mod_revision;
    let r4 = store.create("/p/k", b("v4")).await.unwrap();
    let at = |r: Revision| {
        let store = store.clone();
        async move { store.range("/p/", None, 0, r).await.unwrap() }
    };
    assert!(at(r1 - 1).await.kvs.is_empty());
    let v1 = at(r1).await;
    assert_eq!((v1.kvs[0].value.clone(), v1.revision), (b("v1"), r1));
    assert_eq!(at(r2).await.kvs[0].value, b("v2"));
    assert_eq!(at(r2).await.kvs[0].mod_revision, r2);
    assert!(at(r3).await.kvs.is_empty());
    let v4 = at(r4).await;
    assert_eq!(
        (v4.kvs[0].create_revision, v4.kvs[0].mod_revision),
        (r4, r4)
    );
    match store.range("/p/", None, 0, r4 + 10).await {
        Err(StoreError::FutureRevision(r)) => assert_eq!(r, r4 + 10),
        other => panic!("expected future revision, got {other:?}"),
    }
}

/// A mix of writes under /w/ (and some outside it); returns the expected events under /w/.
async fn write_history(store: &Store) -> Vec<(Revision, EventKind, String, Bytes)> {
    let mut expected = Vec::new();
    for i in 0..6 {
        let key = format!("/w/{i}");
        let rev = store.create(&key, b(&format!("c{i}"))).await.unwrap();
        expected.push((rev, EventKind::Put, key.clone(), b(&format!("c{i}"))));
        store.create(&format!("/other/{i}"), b("o")).await.unwrap();
        let rev = store.update(&key, b(&format!("u{i}")), rev).await.unwrap();
        expected.push((rev, EventKind::Put, key.clone(), b(&format!("u{i}"))));
        if i % 2 == 0 {
            let rev = store.delete(&key, None).await.unwrap().mod_revision;
            expected.push((rev, EventKind::Delete, key.clone(), b(&format!("u{i}"))));
        }
    }
    expected
}

async fn watch_from_every_revision(store: Store) {
    let expected = write_history(&store).await;
    let current = store.current_revision().await.unwrap();
    let last = expected.last().unwrap().0;
    for after in 1..current {
        let want: Vec<_> = expected.iter().filter(|e| e.0 > after).cloned().collect();
        if want.is_empty() {
            continue;
        }
        let mut watch = store.watch("/w/", after).unwrap();
        let got = collect_until(&mut watch, last).await;
        let got: Vec<_> = got
            .iter()
            .map(|e| {
                (
                    e.revision(),
                    e.kind.clone(),
                    e.kv.key.clone(),
                    e.kv.value.clone(),
                )
            })
            .collect();
        assert_eq!(got, want, "watch after {after}");
    }
    // The same stream carries on with live events.
    let mut watch = store.watch("/w/", current).unwrap();
    let rev = store.create("/w/live", b("l")).await.unwrap();
    store.create("/other/live", b("l")).await.unwrap();
    let rev2 = store.create("/w/live2", b("l")).await.unwrap();
    let got = collect_until(&mut watch, rev2).await;
    let revs: Vec<_> = got.iter().map(Event::revision).collect();
    assert_eq!(revs, [rev, rev2]);
}

async fn watch_while_writing(store: Store) {
    const WRITES: usize = 300;
    let start = store.current_revision().await.unwrap();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut last = 0;
            for i in 0..WRITES {
                let key = format!("/c/{}", i % 20);
                last = match store.get(&key).await.unwrap() {
                    Some(kv) => store.update(&key, b(&i.to_string()), kv.mod_revision).await,
                    None => store.create(&key, b(&i.to_string())).await,
                }
                .unwrap();
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            last
        })
    };
    // Watchers started at several points while the writer runs, from history and from now.
    let mut watchers = Vec::new();
    for _ in 0..6 {
        let after = store.current_revision().await.unwrap();
        watchers.push((after, store.watch("/c/", after).unwrap()));
        watchers.push((start, store.watch("/c/", start).unwrap()));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let last = writer.await.unwrap();
    assert_eq!(last, start + WRITES as Revision);
    for (after, mut watch) in watchers {
        if after >= last {
            // Started after the last write: nothing to see.
            continue;
        }
        let events = collect_until(&mut watch, last).await;
        let revs: Vec<_> = events.iter().map(Event::revision).collect();
        let want: Vec<_> = (after + 1..=last).collect();
        assert_eq!(revs, want, "watch after {after} is ordered and gap-free");
    }
}

async fn watch_deletes_with_prev(store: Store) {
    let start = store.current_revision().await.unwrap();
    let mut live = store.watch("/x/", start).unwrap();
    let r1 = store.create("/x/k", b("v1")).await.unwrap();
    let r2 = store.update("/x/k", b("v2"), r1).await.unwrap();
    let r3 = store.delete("/x/k", Some(r2)).await.unwrap().mod_revision;
    let created = KeyValue {
        key: "/x/k".into(),
        value: b("v1"),
        create_revision: r1,
        mod_revision: r1,
    };
    let updated = KeyValue {
        value: b("v2"),
        mod_revision: r2,
        ..created.clone()
    };
    let want = vec![
        (r1, EventKind::Put, "/x/k".to_string(), b("v1"), None),
        (
            r2,
            EventKind::Put,
            "/x/k".to_string(),
            b("v2"),
            Some(created.clone()),
        ),
        (
            r3,
            EventKind::Delete,
            "/x/k".to_string(),
            b("v2"),
            Some(updated.clone()),
        ),
    ];
    let from_live = collect_until(&mut live, r3).await;
    assert_eq!(summary(&from_live), want);
    let mut replay = store.watch("/x/", start).unwrap();
    let from_history = collect_until(&mut replay, r3).await;
    assert_eq!(summary(&from_history), want);
    let delete = &from_history[2];
    assert_eq!(delete.kv.create_revision, r1);
    assert_eq!(delete.kv.mod_revision, r3);
}

async fn compaction(store: Store) {
    let mut rev = store.create("/z/k", b("0")).await.unwrap();
    store.create("/z/gone", b("g")).await.unwrap();
    store.delete("/z/gone", None).await.unwrap();
    for i in 1..10 {
        rev = store.update("/z/k", b(&i.to_string()), rev).await.unwrap();
    }
    let mid = rev - 4;
    let mid_value = store.range("/z/", None, 0, mid).await.unwrap().kvs[0]
        .value
        .clone();
    store.compact(mid).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), mid);

    match store.range("/z/", None, 0, mid - 1).await {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (mid - 1, mid)),
        other => panic!("expected compacted, got {other:?}"),
    }
    let at_mid = store.range("/z/", None, 0, mid).await.unwrap();
    assert_eq!(at_mid.kvs.len(), 1);
    assert_eq!(at_mid.kvs[0].value, mid_value);
    assert_eq!(
        store.range("/z/", None, 0, 0).await.unwrap().kvs[0].mod_revision,
        rev
    );

    expect_watch_compacted(&store, "/z/", mid - 1).await;
    expect_watch_compacted(&store, "/z/", 1).await;
    let mut watch = store.watch("/z/", mid).unwrap();
    let events = collect_until(&mut watch, rev).await;
    let revs: Vec<_> = events.iter().map(Event::revision).collect();
    assert_eq!(revs, (mid + 1..=rev).collect::<Vec<_>>());
    assert!(
        events[0].prev.is_some(),
        "prev of the first retained update survives"
    );

    // Compacting again below or at the compacted revision is a no-op; the future is not.
    store.compact(mid - 2).await.unwrap();
    store.compact(mid).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), mid);
    assert!(matches!(
        store.compact(rev + 5).await,
        Err(StoreError::FutureRevision(_))
    ));
    // Writes after compaction still work and the tombstoned key can come back.
    store.create("/z/gone", b("back")).await.unwrap();
    store
        .compact(store.current_revision().await.unwrap())
        .await
        .unwrap();
    let all = store.range("/z/", None, 0, 0).await.unwrap();
    assert_eq!(all.kvs.len(), 2);
}

async fn concurrent_writers(store: Store) {
    const TASKS: usize = 16;
    const PER_TASK: usize = 20;
    let start = store.current_revision().await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let store = store.clone();
        tasks.spawn(async move {
            let mut revs = Vec::new();
            for i in 0..PER_TASK {
                let key = format!("/cw/{t:02}/{i:02}");
                revs.push(
                    store
                        .create(&key, b(&key))
                        .await
                        .expect("create acknowledged"),
                );
            }
            revs
        });
    }
    let mut revisions = BTreeSet::new();
    while let Some(revs) = tasks.join_next().await {
        for rev in revs.unwrap() {
            assert!(revisions.insert(rev), "revision {rev} handed out twice");
        }
    }
    let total = (TASKS * PER_TASK) as Revision;
    assert_eq!(revisions, (start + 1..=start + total).collect());
    assert_eq!(store.current_revision().await.unwrap(), start + total);
    let all = store.range("/cw/", None, 0, 0).await.unwrap();
    assert_eq!(all.kvs.len(), TASKS * PER_TASK);
    assert!(all.kvs.iter().all(|kv| kv.value == b(&kv.key)));
}

async fn update_with_rewrites_in_one_step(store: Store) {
    let created = store.create("/n", b("0")).await.unwrap();
    let mut watch = store.watch("/n", created).unwrap();
    // Concurrent increments: each rewrite sees the value it replaces, so none is lost.
    const TASKS: usize = 8;
    const PER_TASK: usize = 5;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let store = store.clone();
        tasks.spawn(async move {
            let mut revs = Vec::new();
            for _ in 0..PER_TASK {
                let rev = store
                    .update_with("/n", |kv: &KeyValue| {
                        let n: usize = std::str::from_utf8(&kv.value).ok()?.parse().ok()?;
                        Some(b(&(n + 1).to_string()))
                    })
                    .await
                    .unwrap()
                    .expect("rewritten");
                revs.push(rev);
            }
            revs
        });
    }
    let mut revisions = BTreeSet::new();
    while let Some(revs) = tasks.join_next().await {
        revisions.extend(revs.unwrap());
    }
    assert_eq!(
        revisions.len(),
        TASKS * PER_TASK,
        "one revision per rewrite"
    );
    let last = *revisions.last().unwrap();
    let kv = store.get("/n").await.unwrap().unwrap();
    assert_eq!(kv.value, b(&(TASKS * PER_TASK).to_string()));
    assert_eq!((kv.create_revision, kv.mod_revision), (created, last));
    // Each rewrite is an ordinary update to watchers, with the value it replaced.
    let events = collect_until(&mut watch, last).await;
    assert_eq!(events.len(), TASKS * PER_TASK);
    for (i, ev) in events.iter().enumerate() {
        assert_eq!(ev.kind, EventKind::Put);
        assert_eq!(ev.kv.value, b(&(i + 1).to_string()));
        let prev = ev.prev.as_ref().expect("the replaced value");
        assert_eq!(prev.value, b(&i.to_string()));
    }
    // Declining writes nothing.
    assert_eq!(
        store.update_with("/n", |_: &KeyValue| None).await.unwrap(),
        None
    );
    assert_eq!(store.current_revision().await.unwrap(), last);
    assert!(matches!(
        store
            .update_with("/absent", |_: &KeyValue| Some(b("x")))
            .await,
        Err(StoreError::NotFound)
    ));
    // A rewrite that panics is an error for its caller only; the store goes on.
    assert!(matches!(
        store
            .update_with("/n", |kv: &KeyValue| -> Option<Bytes> {
                panic!("rewrite of {} fails", kv.key)
            })
            .await,
        Err(StoreError::RewritePanicked)
    ));
    let after = store.update("/n", b("done"), last).await.unwrap();
    assert_eq!(after, last + 1);
}
