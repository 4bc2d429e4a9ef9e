//! The SQLite backend (the default): a kine-style log table in WAL mode, one writer
//! thread doing group commit, and a small pool of read connections.

mod reader;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use rusqlite::Connection;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::watch::{WatchStream, live};
use crate::{Event, KeyValue, RangeResult, Revision, StoreError};
use writer::{Op, Writer};

/// Tuning of the SQLite backend.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Most writes committed in one transaction.
    pub max_batch: usize,
    /// Idle read connections kept open.
    pub read_connections: usize,
    /// Live events a watcher may fall behind by before its stream ends.
    pub watch_buffer: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_batch: 512,
            read_connections: 4,
            watch_buffer: 10_000,
        }
    }
}

/// State the writer thread publishes after each commit.
struct Shared {
    events: broadcast::Sender<Event>,
    revision: AtomicI64,
    compacted: AtomicI64,
}

/// Read connections, opened on demand and kept up to a bound.
struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl ReadPool {
    /// Runs `read` on a pooled connection on the blocking thread pool.
    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let idle = pool
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let mut conn = match idle {
                Some(conn) => conn,
                None => schema::open_reader(&pool.path)?,
            };
            let result = read(&mut conn);
            pool.give_back(conn);
            result
        })
        .await?
    }

    /// Returns a connection to the idle ones, or closes it when enough are idle.
    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }

    /// Runs a point read (one indexed row) on this thread when a pooled connection is idle:
    /// it takes microseconds from the page cache, less than handing it to the blocking
    /// pool's thread and back. Without an idle connection it goes to the pool as [`run`].
    ///
    /// [`run`]: ReadPool::run
    async fn run_point<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let Some(mut conn) = idle else {
            return self.run(read).await;
        };
        let result = read(&mut conn);
        self.give_back(conn);
        result
    }
}

struct Inner {
    /// `None` only while dropping: closing it tells the writer thread to finish.
    writer: Option<mpsc::UnboundedSender<Op>>,
    thread: Option<std::thread::JoinHandle<()>>,
    readers: Arc<ReadPool>,
    shared: Arc<Shared>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.writer.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("sqlite writer thread panicked");
        }
    }
}

/// SQLite store. Clones share the database, the writer thread and the read pool; the
/// writer stops when the last clone is dropped.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl SqliteStore {
    pub async fn open(path: &Path, opts: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: path.clone(),
                source,
            })?;
        }
        let writer_path = path.clone();
        let (conn, revision, compacted) = tokio::task::spawn_blocking(move || {
            let mut conn = schema::open_writer(&writer_path)?;
            let tx = conn.transaction()?;
            let (revision, compacted) = schema::read_meta(&tx)?;
            tx.commit()?;
            Ok::<_, StoreError>((conn, revision, compacted))
        })
        .await??;

        let (events, _) = broadcast::channel(opts.watch_buffer.max(1));
        let shared = Arc::new(Shared {
            events,
            revision: AtomicI64::new(revision),
            compacted: AtomicI64::new(compacted),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer::new(
            conn,
            rx,
            shared.clone(),
            opts.max_batch,
            revision,
            compacted,
        );
        let thread = std::thread::Builder::new()
            .name("skiff-store-writer".to_string())
            .spawn(move || writer.run())
            .map_err(StoreError::SpawnWriter)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer: Some(tx),
                thread: Some(thread),
                readers: Arc::new(ReadPool {
                    path,
                    idle: Mutex::new(Vec::new()),
                    max_idle: opts.read_connections,
                }),
                shared,
            }),
        })
    }

    /// Queues a write for the writer thread and waits for its answer.
    async fn write<T>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let writer = self.inner.writer.as_ref().ok_or(StoreError::Closed)?;
        writer.send(op(reply)).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let key = key.to_string();
        self.inner
            .readers
            .run_point(move |conn| reader::get(conn, &key))
            .await
    }

    pub async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Revision,
    ) -> Result<RangeResult, StoreError> {
        self.read_range(prefix, start_after, limit, revision, true)
            .await
    }

    pub async fn range_chunk(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Revision,
    ) -> Result<RangeResult, StoreError> {
        self.read_range(prefix, start_after, limit, revision, false)
            .await
    }

    async fn read_range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Revision,
        count: bool,
    ) -> Result<RangeResult, StoreError> {
        let prefix = prefix.to_string();
        let start_after = start_after.map(str::to_string);
        self.inner
            .readers
            .run(move |conn| {
                reader::range(
                    conn,
                    &prefix,
                    start_after.as_deref(),
                    limit,
                    revision,
                    count,
                )
            })
            .await
    }

    pub async fn count(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        revision: Revision,
    ) -> Result<i64, StoreError> {
        let prefix = prefix.to_string();
        let start_after = start_after.map(str::to_string);
        self.inner
            .readers
            .run(move |conn| reader::count(conn, &prefix, start_after.as_deref(), revision))
            .await
    }

    pub async fn create(&self, key: &str, value: Bytes) -> Result<Revision, StoreError> {
        let key = key.to_string();
        self.write(|reply| Op::Create { key, value, reply }).await
    }

    pub async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        let key = key.to_string();
        self.write(|reply| Op::Update {
            key,
            value,
            expected,
            reply,
        })
        .await
    }

    pub(crate) async fn update_with(
        &self,
        key: &str,
        rewrite: writer::Rewrite,
    ) -> Result<Option<Revision>, StoreError> {
        let key = key.to_string();
        self.write(|reply| Op::Rewrite {
            key,
            rewrite,
            reply,
        })
        .await
    }

    pub async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<KeyValue, StoreError> {
        let key = key.to_string();
        self.write(|reply| Op::Delete {
            key,
            expected,
            reply,
        })
        .await
    }

    /// Replays history from the log table, then switches to the writer's broadcast.
    ///
    /// The receiver is subscribed before the replay's first snapshot is taken, and the
    /// writer broadcasts only after commit, so every write after that snapshot reaches the
    /// receiver; live events the replay already covered are skipped by revision.
    pub fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let compacted = self.inner.shared.compacted.load(Ordering::Acquire);
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted,
            });
        }
        let rx = self.inner.shared.events.subscribe();
        let readers = self.inner.readers.clone();
        let prefix = prefix.to_string();
        let start = Replay {
            last: after,
            upto: None,
            rx,
        };
        let chunks = stream::unfold(Some(start), move |state| {
            let readers = readers.clone();
            let prefix = prefix.clone();
            async move {
                let Replay { last, upto, rx } = state?;
                let chunk_prefix = prefix.clone();
                let chunk = readers
                    .run(move |conn| reader::replay(conn, &chunk_prefix, after, last, upto))
                    .await;
                match chunk {
                    Err(error) => Some((stream::iter(vec![Err(error)]).boxed(), None)),
                    Ok(chunk) if chunk.events.len() < reader::REPLAY_CHUNK => {
                        let events = stream::iter(chunk.events.into_iter().map(Ok));
                        let rest = events.chain(live(rx, prefix, chunk.upto));
                        Some((rest.boxed(), None))
                    }
                    Ok(chunk) => {
                        let last = chunk.events.last().map_or(last, Event::revision);
                        let next = Replay {
                            last,
                            upto: Some(chunk.upto),
                            rx,
                        };
                        let events = stream::iter(chunk.events.into_iter().map(Ok));
                        Some((events.boxed(), Some(next)))
                    }
                }
            }
        });
        Ok(WatchStream::new(chunks.flatten()))
    }

    pub async fn current_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.inner.shared.revision.load(Ordering::Acquire))
    }

    pub async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.inner.shared.compacted.load(Ordering::Acquire))
    }

    pub async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.write(|reply| Op::Compact { revision, reply }).await
    }

    /// Bytes the database takes on disk: the main file plus its write-ahead log.
    pub fn disk_size(&self) -> u64 {
        let path = &self.inner.readers.path;
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        [path.as_os_str(), wal.as_os_str()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// Where a watch's replay stands between chunks.
struct Replay {
    last: Revision,
    upto: Option<Revision>,
    rx: broadcast::Receiver<Event>,
}
