//! The SQLite schema and connection setup shared by the writer and the readers.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction};

use crate::{KeyValue, Revision};

/// A kine-style log: one row per write, `id` is its revision. A delete writes a tombstone
/// row (`deleted = 1`) that carries the deleted value, so watch replay can hand it out.
/// `prev_revision` is the row this one superseded (0 for a create), which makes
/// compaction a primary-key lookup.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    id INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    deleted INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS kv_key_id ON kv (key, id);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 1), ('compacted', 0);
";

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The WAL is truncated back to this size after a checkpoint, so it stays bounded.
const JOURNAL_SIZE_LIMIT: i64 = 4 * 1024 * 1024;

/// The bundled SQLite is built with STAT4, which re-prepares a cached statement whenever a
/// bound key changes (the plan might depend on it). Our statements have one right plan, so
/// keep it: the query planner stability guarantee.
fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// Opens the connection the writer thread owns, creating the schema if needed.
pub(super) fn open_writer(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    stable_plans(&conn)?;
    // Only takes effect on a new database: it must come before the first table.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "sqlite refused WAL mode");
    }
    // FULL in WAL mode fsyncs the log on every commit: an acknowledged write is durable.
    conn.pragma_update(None, "synchronous", "FULL")?;
    let _limit: i64 =
        conn.pragma_update_and_check(None, "journal_size_limit", JOURNAL_SIZE_LIMIT, |row| {
            row.get(0)
        })?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// Opens one connection of the read pool.
pub(super) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    stable_plans(&conn)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// The store's current and compacted revision as seen by `tx`'s snapshot.
///
/// Every write inserts the row of its revision, so the current revision is the newest
/// row's id; `meta` only remembers it across a compaction that removed the newest rows
/// (tombstones), which is when the writer updates `meta`. Commits do not touch `meta`:
/// one page less in the log per commit.
pub(super) fn read_meta(tx: &Transaction<'_>) -> rusqlite::Result<(Revision, Revision)> {
    let mut stmt = tx.prepare_cached(
        "SELECT max((SELECT value FROM meta WHERE name = 'revision'),
                    coalesce((SELECT max(id) FROM kv), 0)),
                (SELECT value FROM meta WHERE name = 'compacted')",
    )?;
    stmt.query_row([], |row| {
        Ok((
            row.get::<_, Option<i64>>(0)?.unwrap_or(1),
            row.get::<_, Option<i64>>(1)?.unwrap_or(0),
        ))
    })
}

/// The key's current value, if it exists.
pub(super) fn live(conn: &Connection, key: &str) -> rusqlite::Result<Option<KeyValue>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, value, create_revision, deleted FROM kv
         WHERE key = ?1 ORDER BY id DESC LIMIT 1",
    )?;
    let row = stmt
        .query_row([key.as_bytes()], |row| {
            Ok((
                row.get::<_, Revision>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, Revision>(2)?,
                row.get::<_, bool>(3)?,
            ))
        })
        .optional()?;
    Ok(row.and_then(|(id, value, create_revision, deleted)| {
        (!deleted).then(|| KeyValue {
            key: key.to_string(),
            value: Bytes::from(value),
            create_revision,
            mod_revision: id,
        })
    }))
}
