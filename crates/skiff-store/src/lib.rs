//! A revisioned key-value store with etcd semantics: memory, SQLite and etcd backends.
//!
//! The store knows bytes, not kinds. Every backend keeps one global revision counter:
//! an empty store is at revision 1 and each successful create, update or delete moves it
//! forward by exactly one, so the first write gets revision 2 (etcd's own convention, which
//! lets the etcd backend use etcd's revision directly).
//!
//! History before the compacted revision is gone: reading at, or watching from, an older
//! revision fails with [`StoreError::Compacted`]. [`Store::start_compactor`] runs the
//! background policy that keeps the history bounded.

mod compactor;
mod error;
mod etcd;
mod keys;
mod memory;
mod sqlite;
mod watch;

use std::path::Path;

use bytes::Bytes;

pub use compactor::{CompactionPolicy, Compactor};
pub use error::StoreError;
pub use etcd::{EtcdOptions, EtcdStore};
pub use memory::MemoryStore;
pub use sqlite::{SqliteOptions, SqliteStore};
pub use watch::WatchStream;

/// A point in the store's history; also the `resourceVersion` the API server hands out.
pub type Revision = i64;

/// One key at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// The revision of the write that created this incarnation of the key.
    pub create_revision: Revision,
    /// The revision of the last write to the key.
    pub mod_revision: Revision,
}

/// What a watch event did to its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One write, as seen by a watcher.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    /// For Put: the new value (mod_revision = the event's revision).
    /// For Delete: key and the value before deletion, with mod_revision = the delete's revision.
    pub kv: KeyValue,
    /// The previous value for a Put that updated an existing key; the deleted value for Delete.
    pub prev: Option<KeyValue>,
}

impl Event {
    /// The revision of the write this event reports.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// The answer to [`Store::range`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    /// Keys after the last returned one that also match.
    pub remaining: i64,
    /// Whether `remaining` is not zero.
    pub more: bool,
    /// The revision the range was read at.
    pub revision: Revision,
}

/// A revisioned key-value store. A closed set of backends, so an enum.
///
/// Cloning is cheap and every clone talks to the same store.
#[derive(Clone)]
pub enum Store {
    Memory(MemoryStore),
    Sqlite(SqliteStore),
    Etcd(EtcdStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $body:expr) => {
        match $self {
            Store::Memory($s) => $body,
            Store::Sqlite($s) => $body,
            Store::Etcd($s) => $body,
        }
    };
}

impl Store {
    /// An in-memory store with an MVCC history; for tests and single-process use.
    pub fn memory() -> Store {
        Store::Memory(MemoryStore::new())
    }

    /// Opens (or creates) the SQLite database at `path`.
    pub async fn sqlite(path: &Path, opts: SqliteOptions) -> Result<Store, StoreError> {
        Ok(Store::Sqlite(SqliteStore::open(path, opts).await?))
    }

    /// Connects to an etcd cluster; every key is stored under `opts.prefix`.
    pub async fn etcd(endpoints: &[String], opts: EtcdOptions) -> Result<Store, StoreError> {
        Ok(Store::Etcd(EtcdStore::connect(endpoints, opts).await?))
    }

    /// The current value of `key`, if it exists.
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        dispatch!(self, s => s.get(key).await)
    }

    /// Keys that begin with `prefix` and come after `start_after` (when given), sorted by
    /// key, at most `limit` of them (0 = no limit), read at `revision` (0 = current).
    ///
    /// Works for any retained (uncompacted) past revision: this is how list `continue`
    /// tokens read a consistent snapshot.
    pub async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Revision,
    ) -> Result<RangeResult, StoreError> {
        dispatch!(self, s => s.range(prefix, start_after, limit, revision).await)
    }

    /// `range` without counting the keys after the page: `more` says whether any follow and
    /// `remaining` is 0. For reading a long range in chunks, where `range`'s count would
    /// visit the rest of the range once per chunk.
    pub async fn range_chunk(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Revision,
    ) -> Result<RangeResult, StoreError> {
        dispatch!(self, s => s.range_chunk(prefix, start_after, limit, revision).await)
    }

    /// How many keys beginning with `prefix` come after `start_after` (when given) at
    /// `revision` (0 = current).
    pub async fn count(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        revision: Revision,
    ) -> Result<i64, StoreError> {
        dispatch!(self, s => s.count(prefix, start_after, revision).await)
    }

    /// Creates `key` if it is absent; returns the new revision.
    pub async fn create(&self, key: &str, value: Bytes) -> Result<Revision, StoreError> {
        dispatch!(self, s => s.create(key, value).await)
    }

    /// Updates `key` only if its mod_revision is `expected`; returns the new revision.
    ///
    /// [`StoreError::NotFound`] if the key is absent, [`StoreError::Conflict`] (with the
    /// current value) if its revision differs.
    pub async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        dispatch!(self, s => s.update(key, value, expected).await)
    }

    /// Rewrites `key`'s current value in one step: `rewrite` gets the current value and returns
    /// the new one, or `None` to leave it as it is. Returns the new revision, or `None` when
    /// `rewrite` declined; [`StoreError::NotFound`] if the key is absent.
    ///
    /// The SQLite backend runs `rewrite` once, on its writer thread, against the value it is
    /// about to replace (one read, no conflict to retry), so it must be quick. The others
    /// read, rewrite and update-if-revision until no other write came between, so there it
    /// may run more than once.
    pub async fn update_with<F>(
        &self,
        key: &str,
        rewrite: F,
    ) -> Result<Option<Revision>, StoreError>
    where
        F: FnMut(&KeyValue) -> Option<Bytes> + Send + 'static,
    {
        if let Store::Sqlite(s) = self {
            return s.update_with(key, Box::new(rewrite)).await;
        }
        let mut rewrite = rewrite;
        loop {
            let current = self.get(key).await?.ok_or(StoreError::NotFound)?;
            let rewritten =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rewrite(&current)));
            let Some(value) = rewritten.map_err(|_| StoreError::RewritePanicked)? else {
                return Ok(None);
            };
            match self.update(key, value, current.mod_revision).await {
                Err(StoreError::Conflict { .. }) => continue,
                written => return written.map(Some),
            }
        }
    }

    /// Deletes `key`, when `expected` is given only if its mod_revision matches.
    ///
    /// Returns the deleted value with mod_revision set to the delete's revision.
    pub async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<KeyValue, StoreError> {
        dispatch!(self, s => s.delete(key, expected).await)
    }

    /// Every event with revision > `after` for keys starting with `prefix`, in revision
    /// order and with no gap, then live events.
    ///
    /// Fails with [`StoreError::Compacted`] if `after` is older than the compacted
    /// revision. Backends that only learn this from the server (etcd) report it as the
    /// stream's first item instead. The stream ends after its first error, for example
    /// [`StoreError::WatchLagged`] when the watcher fell hopelessly behind.
    pub fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        dispatch!(self, s => s.watch(prefix, after))
    }

    /// The revision of the last successful write (1 for an empty store).
    pub async fn current_revision(&self) -> Result<Revision, StoreError> {
        dispatch!(self, s => s.current_revision().await)
    }

    /// The revision the history was last compacted through (0 if never).
    pub async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        dispatch!(self, s => s.compacted_revision().await)
    }

    /// Drops history older than `revision`: afterwards reads at a revision below it and
    /// watches from before it fail with [`StoreError::Compacted`].
    ///
    /// Compacting at or below the already compacted revision does nothing.
    pub async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        dispatch!(self, s => s.compact(revision).await)
    }

    /// Starts the background compaction task; it runs until the returned [`Compactor`]
    /// is stopped or dropped. Needs a tokio runtime.
    pub fn start_compactor(&self, policy: CompactionPolicy) -> Compactor {
        Compactor::start(self.clone(), policy)
    }
}
