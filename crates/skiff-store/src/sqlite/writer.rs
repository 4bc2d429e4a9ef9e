//! The writer thread: group commit. It takes every queued write, applies them in one
//! transaction (each with its own revision and its own check), commits (one fsync) and
//! only then answers the callers and fans the events out to watchers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use rusqlite::{Connection, Transaction, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use super::Shared;
use super::schema::live;
use crate::{Event, EventKind, KeyValue, Revision, StoreError};

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A rewrite of a key's current value (see [`crate::Store::update_with`]).
pub(crate) type Rewrite = Box<dyn FnMut(&KeyValue) -> Option<Bytes> + Send>;

/// One queued write.
pub(super) enum Op {
    Create {
        key: String,
        value: Bytes,
        reply: Reply<Revision>,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
        reply: Reply<Revision>,
    },
    Rewrite {
        key: String,
        rewrite: Rewrite,
        reply: Reply<Option<Revision>>,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
        reply: Reply<KeyValue>,
    },
    Compact {
        revision: Revision,
        reply: Reply<()>,
    },
}

impl Op {
    /// The answer to send when the batch fails before this op was applied.
    fn unanswered(self) -> Pending {
        match self {
            Op::Create { reply, .. } | Op::Update { reply, .. } => {
                Pending::Revision(reply, Err(StoreError::Closed))
            }
            Op::Rewrite { reply, .. } => Pending::Rewritten(reply, Err(StoreError::Closed)),
            Op::Delete { reply, .. } => Pending::Deleted(reply, Err(StoreError::Closed)),
            Op::Compact { reply, .. } => Pending::Compacted(reply, Err(StoreError::Closed)),
        }
    }
}

/// An answer held back until the batch is committed.
enum Pending {
    Revision(Reply<Revision>, Result<Revision, StoreError>),
    Rewritten(
        Reply<Option<Revision>>,
        Result<Option<Revision>, StoreError>,
    ),
    Deleted(Reply<KeyValue>, Result<KeyValue, StoreError>),
    Compacted(Reply<()>, Result<(), StoreError>),
}

impl Pending {
    fn fail(self, error: &Arc<rusqlite::Error>) -> Pending {
        let err = || StoreError::WriteFailed(error.clone());
        match self {
            Pending::Revision(reply, _) => Pending::Revision(reply, Err(err())),
            Pending::Rewritten(reply, _) => Pending::Rewritten(reply, Err(err())),
            Pending::Deleted(reply, _) => Pending::Deleted(reply, Err(err())),
            Pending::Compacted(reply, _) => Pending::Compacted(reply, Err(err())),
        }
    }

    /// A caller that gave up waiting is no error: its write is committed all the same.
    fn send(self) {
        match self {
            Pending::Revision(reply, result) => {
                let _ = reply.send(result);
            }
            Pending::Rewritten(reply, result) => {
                let _ = reply.send(result);
            }
            Pending::Deleted(reply, result) => {
                let _ = reply.send(result);
            }
            Pending::Compacted(reply, result) => {
                let _ = reply.send(result);
            }
        }
    }
}

fn split<T>(
    result: rusqlite::Result<Result<T, StoreError>>,
    pending: impl FnOnce(Result<T, StoreError>) -> Pending,
) -> (Pending, Option<rusqlite::Error>) {
    match result {
        Ok(answer) => (pending(answer), None),
        Err(error) => (pending(Err(StoreError::Closed)), Some(error)),
    }
}

/// The revisions the writer owns; copied before a batch so a failed one can be undone.
#[derive(Clone, Copy)]
struct Revisions {
    current: Revision,
    compacted: Revision,
}

pub(super) struct Writer {
    conn: Connection,
    rx: mpsc::UnboundedReceiver<Op>,
    shared: Arc<Shared>,
    max_batch: usize,
    revisions: Revisions,
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        rx: mpsc::UnboundedReceiver<Op>,
        shared: Arc<Shared>,
        max_batch: usize,
        current: Revision,
        compacted: Revision,
    ) -> Self {
        Writer {
            conn,
            rx,
            shared,
            max_batch: max_batch.max(1),
            revisions: Revisions { current, compacted },
        }
    }

    /// Runs until every sender is gone (the store was dropped).
    pub(super) fn run(mut self) {
        while let Some(op) = self.rx.blocking_recv() {
            let mut batch = vec![op];
            while batch.len() < self.max_batch {
                match self.rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.process(batch);
        }
    }

    fn process(&mut self, batch: Vec<Op>) {
        let before = self.revisions;
        let mut events = Vec::new();
        match self.apply_batch(batch, &mut events) {
            Ok(pending) => {
                self.shared
                    .revision
                    .store(self.revisions.current, Ordering::Release);
                let compacted = self.revisions.compacted != before.compacted;
                self.shared
                    .compacted
                    .store(self.revisions.compacted, Ordering::Release);
                for event in events {
                    // No receivers is fine: nobody is watching.
                    let _ = self.shared.events.send(event);
                }
                pending.into_iter().for_each(Pending::send);
                if compacted && let Err(error) = self.release_free_pages() {
                    tracing::warn!(%error, "sqlite incremental vacuum failed");
                }
            }
            Err((error, pending)) => {
                tracing::error!(%error, "sqlite write batch failed");
                self.revisions = before;
                let error = Arc::new(error);
                for p in pending {
                    p.fail(&error).send();
                }
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn apply_batch(
        &mut self,
        batch: Vec<Op>,
        events: &mut Vec<Event>,
    ) -> Result<Vec<Pending>, (rusqlite::Error, Vec<Pending>)> {
        let tx = match self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
        {
            Ok(tx) => tx,
            Err(error) => return Err((error, batch.into_iter().map(Op::unanswered).collect())),
        };
        let mut pending = Vec::with_capacity(batch.len());
        let mut ops = batch.into_iter();
        for op in ops.by_ref() {
            let (answer, error) = self.revisions.apply(&tx, op, events);
            pending.push(answer);
            if let Some(error) = error {
                pending.extend(ops.map(Op::unanswered));
                // Dropping `tx` rolls the whole batch back.
                return Err((error, pending));
            }
        }
        match tx.commit() {
            Ok(()) => Ok(pending),
            Err(error) => Err((error, pending)),
        }
    }

    /// Gives free pages back to the file system once a quarter of the file is free, so
    /// the file shrinks after compaction instead of staying at its high-water mark.
    fn release_free_pages(&self) -> rusqlite::Result<()> {
        let free: i64 = self
            .conn
            .pragma_query_value(None, "freelist_count", |r| r.get(0))?;
        let total: i64 = self
            .conn
            .pragma_query_value(None, "page_count", |r| r.get(0))?;
        if free * 4 > total {
            let mut stmt = self.conn.prepare("PRAGMA incremental_vacuum")?;
            let mut rows = stmt.query([])?;
            while rows.next()?.is_some() {}
        }
        Ok(())
    }
}

impl Revisions {
    fn apply(
        &mut self,
        tx: &Transaction<'_>,
        op: Op,
        events: &mut Vec<Event>,
    ) -> (Pending, Option<rusqlite::Error>) {
        match op {
            Op::Create { key, value, reply } => split(self.create(tx, key, value, events), |r| {
                Pending::Revision(reply, r)
            }),
            Op::Update {
                key,
                value,
                expected,
                reply,
            } => split(self.update(tx, key, value, expected, events), |r| {
                Pending::Revision(reply, r)
            }),
            Op::Rewrite {
                key,
                rewrite,
                reply,
            } => split(self.rewrite(tx, key, rewrite, events), |r| {
                Pending::Rewritten(reply, r)
            }),
            Op::Delete {
                key,
                expected,
                reply,
            } => split(self.delete(tx, key, expected, events), |r| {
                Pending::Deleted(reply, r)
            }),
            Op::Compact { revision, reply } => {
                split(self.compact(tx, revision), |r| Pending::Compacted(reply, r))
            }
        }
    }

    fn create(
        &mut self,
        tx: &Transaction<'_>,
        key: String,
        value: Bytes,
        events: &mut Vec<Event>,
    ) -> rusqlite::Result<Result<Revision, StoreError>> {
        if live(tx, &key)?.is_some() {
            return Ok(Err(StoreError::AlreadyExists));
        }
        let revision = self.current + 1;
        insert(tx, revision, &key, &value, revision, 0, false)?;
        self.current = revision;
        events.push(Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key,
                value,
                create_revision: revision,
                mod_revision: revision,
            },
            prev: None,
        });
        Ok(Ok(revision))
    }

    fn update(
        &mut self,
        tx: &Transaction<'_>,
        key: String,
        value: Bytes,
        expected: Revision,
        events: &mut Vec<Event>,
    ) -> rusqlite::Result<Result<Revision, StoreError>> {
        let Some(current) = live(tx, &key)? else {
            return Ok(Err(StoreError::NotFound));
        };
        if current.mod_revision != expected {
            return Ok(Err(StoreError::Conflict {
                current: Some(current),
            }));
        }
        self.replace(tx, key, value, current, events).map(Ok)
    }

    /// Runs `rewrite` on the key's current value and writes what it returns.
    fn rewrite(
        &mut self,
        tx: &Transaction<'_>,
        key: String,
        mut rewrite: Rewrite,
        events: &mut Vec<Event>,
    ) -> rusqlite::Result<Result<Option<Revision>, StoreError>> {
        let Some(current) = live(tx, &key)? else {
            return Ok(Err(StoreError::NotFound));
        };
        // The caller's code runs on this thread: its panic must not take the writer down.
        let value =
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rewrite(&current))) {
                Ok(Some(value)) => value,
                Ok(None) => return Ok(Ok(None)),
                Err(_) => return Ok(Err(StoreError::RewritePanicked)),
            };
        self.replace(tx, key, value, current, events)
            .map(|revision| Ok(Some(revision)))
    }

    /// Writes `value` over `current`, the key's live value.
    fn replace(
        &mut self,
        tx: &Transaction<'_>,
        key: String,
        value: Bytes,
        current: KeyValue,
        events: &mut Vec<Event>,
    ) -> rusqlite::Result<Revision> {
        let revision = self.current + 1;
        insert(
            tx,
            revision,
            &key,
            &value,
            current.create_revision,
            current.mod_revision,
            false,
        )?;
        self.current = revision;
        events.push(Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key,
                value,
                create_revision: current.create_revision,
                mod_revision: revision,
            },
            prev: Some(current),
        });
        Ok(revision)
    }

    fn delete(
        &mut self,
        tx: &Transaction<'_>,
        key: String,
        expected: Option<Revision>,
        events: &mut Vec<Event>,
    ) -> rusqlite::Result<Result<KeyValue, StoreError>> {
        let Some(current) = live(tx, &key)? else {
            return Ok(Err(StoreError::NotFound));
        };
        if expected.is_some_and(|expected| expected != current.mod_revision) {
            return Ok(Err(StoreError::Conflict {
                current: Some(current),
            }));
        }
        let revision = self.current + 1;
        insert(
            tx,
            revision,
            &key,
            &current.value,
            current.create_revision,
            current.mod_revision,
            true,
        )?;
        self.current = revision;
        let deleted = KeyValue {
            mod_revision: revision,
            ..current.clone()
        };
        events.push(Event {
            kind: EventKind::Delete,
            kv: deleted.clone(),
            prev: Some(current),
        });
        Ok(Ok(deleted))
    }

    /// Deletes every row superseded at or before `revision`, and tombstones at or before
    /// it. Rows at or before the previous compaction were already handled, so only the
    /// new stretch of the log is visited.
    fn compact(
        &mut self,
        tx: &Transaction<'_>,
        revision: Revision,
    ) -> rusqlite::Result<Result<(), StoreError>> {
        if revision > self.current {
            return Ok(Err(StoreError::FutureRevision(revision)));
        }
        if revision <= self.compacted {
            return Ok(Ok(()));
        }
        tx.execute(
            "DELETE FROM kv WHERE id IN (
                SELECT prev_revision FROM kv
                WHERE id > ?1 AND id <= ?2 AND prev_revision > 0
            )",
            params![self.compacted, revision],
        )?;
        tx.execute(
            "DELETE FROM kv WHERE id > ?1 AND id <= ?2 AND deleted = 1",
            params![self.compacted, revision],
        )?;
        // The newest rows may have been tombstones: `meta` keeps the revision (read_meta).
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE name = 'revision'",
            [self.current],
        )?;
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE name = 'compacted'",
            [revision],
        )?;
        self.compacted = revision;
        Ok(Ok(()))
    }
}

fn insert(
    tx: &Transaction<'_>,
    revision: Revision,
    key: &str,
    value: &[u8],
    create_revision: Revision,
    prev_revision: Revision,
    deleted: bool,
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO kv (id, key, value, create_revision, prev_revision, deleted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    stmt.execute(params![
        revision,
        key.as_bytes(),
        value,
        create_revision,
        prev_revision,
        deleted
    ])?;
    Ok(())
}
