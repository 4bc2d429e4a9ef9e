//! Reads on the pooled read connections: point gets, ranges at a revision and the
//! history replay of watches. Each read runs in one transaction, so it sees one snapshot.

use bytes::Bytes;
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

use super::schema::{live, read_meta};
use crate::keys::prefix_end;
use crate::{Event, EventKind, KeyValue, RangeResult, Revision, StoreError};

/// Rows a watch replays per read transaction.
pub(super) const REPLAY_CHUNK: usize = 1000;

fn key_string(bytes: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(StoreError::InvalidKey)
}

pub(super) fn get(conn: &mut Connection, key: &str) -> Result<Option<KeyValue>, StoreError> {
    // One statement is its own read transaction: no BEGIN and ROLLBACK around it.
    Ok(live(conn, key)?)
}

/// A `WHERE` fragment on `column` for keys in [`lower`, end of `prefix`), with its
/// parameters appended to `params`.
fn key_bounds(
    column: &str,
    prefix: &str,
    start_after: Option<&str>,
    params: &mut Vec<Value>,
) -> String {
    let mut sql = match start_after {
        Some(after) if after >= prefix => {
            params.push(Value::Blob(after.as_bytes().to_vec()));
            format!("{column} > ?{}", params.len())
        }
        _ => {
            params.push(Value::Blob(prefix.as_bytes().to_vec()));
            format!("{column} >= ?{}", params.len())
        }
    };
    if let Some(end) = prefix_end(prefix.as_bytes()) {
        params.push(Value::Blob(end));
        sql.push_str(&format!(" AND {column} < ?{}", params.len()));
    }
    sql
}

/// The live rows (latest version at `revision`, not a tombstone) among keys in bounds.
fn latest_rows_sql(bounds: &str, revision_param: usize) -> String {
    format!(
        "FROM kv JOIN (
            SELECT MAX(id) AS id FROM kv WHERE {bounds} AND id <= ?{revision_param} GROUP BY key
         ) AS latest ON kv.id = latest.id
         WHERE kv.deleted = 0"
    )
}

/// The snapshot a read uses: `revision` (0 = current), checked against what is retained.
fn read_revision(
    tx: &rusqlite::Transaction<'_>,
    revision: Revision,
) -> Result<Revision, StoreError> {
    let (current, compacted) = read_meta(tx)?;
    let revision = if revision == 0 { current } else { revision };
    if revision > current {
        return Err(StoreError::FutureRevision(revision));
    }
    if revision < compacted {
        return Err(StoreError::Compacted {
            requested: revision,
            compacted,
        });
    }
    Ok(revision)
}

/// Live keys under `prefix` after `start_after` at `revision`; `count` asks how many follow
/// the page (one more query over the rest of the range), else only whether any do.
pub(super) fn range(
    conn: &mut Connection,
    prefix: &str,
    start_after: Option<&str>,
    limit: usize,
    revision: Revision,
    count: bool,
) -> Result<RangeResult, StoreError> {
    let tx = conn.transaction()?;
    let revision = read_revision(&tx, revision)?;
    let mut params = Vec::new();
    let bounds = key_bounds("key", prefix, start_after, &mut params);
    params.push(Value::Integer(revision));
    let revision_param = params.len();
    // Without a count, one row past the page says whether more follow.
    let fetch = match limit {
        0 => -1,
        n if count => i64::try_from(n).unwrap_or(i64::MAX),
        n => i64::try_from(n).unwrap_or(i64::MAX).saturating_add(1),
    };
    params.push(Value::Integer(fetch));
    let sql = format!(
        "SELECT kv.key, kv.value, kv.create_revision, kv.id {} ORDER BY kv.key LIMIT ?{}",
        latest_rows_sql(&bounds, revision_param),
        params.len()
    );
    let mut stmt = tx.prepare_cached(&sql)?;
    let mut rows = stmt
        .query_map(params_from_iter(params.iter()), |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, Revision>(2)?,
                row.get::<_, Revision>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    drop(stmt);
    let past_page = !count && limit > 0 && rows.len() > limit;
    rows.truncate(if limit > 0 { limit } else { rows.len() });
    let kvs = rows
        .into_iter()
        .map(|(key, value, create_revision, mod_revision)| {
            Ok(KeyValue {
                key: key_string(key)?,
                value: Bytes::from(value),
                create_revision,
                mod_revision,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;

    let remaining = match kvs.last() {
        Some(last) if count && limit > 0 && kvs.len() == limit => {
            count_after(&tx, prefix, Some(&last.key), revision)?
        }
        _ => 0,
    };
    Ok(RangeResult {
        kvs,
        remaining,
        more: remaining > 0 || past_page,
        revision,
    })
}

fn count_after(
    tx: &rusqlite::Transaction<'_>,
    prefix: &str,
    start_after: Option<&str>,
    revision: Revision,
) -> rusqlite::Result<i64> {
    let mut params = Vec::new();
    let bounds = key_bounds("key", prefix, start_after, &mut params);
    params.push(Value::Integer(revision));
    let sql = format!("SELECT COUNT(*) {}", latest_rows_sql(&bounds, params.len()));
    let mut stmt = tx.prepare_cached(&sql)?;
    stmt.query_row(params_from_iter(params.iter()), |row| row.get::<_, i64>(0))
}

/// How many live keys under `prefix` follow `start_after` at `revision`.
pub(super) fn count(
    conn: &mut Connection,
    prefix: &str,
    start_after: Option<&str>,
    revision: Revision,
) -> Result<i64, StoreError> {
    let tx = conn.transaction()?;
    let revision = read_revision(&tx, revision)?;
    Ok(count_after(&tx, prefix, start_after, revision)?)
}

/// One chunk of a watch's replay: events for `prefix` with `last` < revision <= `upto`.
pub(super) struct ReplayChunk {
    pub(super) events: Vec<Event>,
    /// The revision the replay runs up to; fixed by the first chunk's snapshot.
    pub(super) upto: Revision,
}

pub(super) fn replay(
    conn: &mut Connection,
    prefix: &str,
    requested: Revision,
    last: Revision,
    upto: Option<Revision>,
) -> Result<ReplayChunk, StoreError> {
    let tx = conn.transaction()?;
    let (current, compacted) = read_meta(&tx)?;
    // Rows after `last` are intact in this snapshot only if compaction has not passed it.
    if compacted > last {
        return Err(StoreError::Compacted {
            requested,
            compacted,
        });
    }
    let upto = upto.unwrap_or(current);
    let mut params = vec![Value::Integer(last), Value::Integer(upto)];
    let bounds = key_bounds("kv.key", prefix, None, &mut params);
    params.push(Value::Integer(REPLAY_CHUNK as i64));
    let sql = format!(
        "SELECT kv.id, kv.key, kv.value, kv.create_revision, kv.prev_revision, kv.deleted,
                prev.value, prev.create_revision
         FROM kv LEFT JOIN kv AS prev ON prev.id = kv.prev_revision
         WHERE kv.id > ?1 AND kv.id <= ?2 AND {bounds}
         ORDER BY kv.id LIMIT ?{}",
        params.len()
    );
    let mut stmt = tx.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(params.iter()), |row| {
            Ok(Row {
                id: row.get(0)?,
                key: row.get(1)?,
                value: row.get(2)?,
                create_revision: row.get(3)?,
                prev_revision: row.get(4)?,
                deleted: row.get(5)?,
                prev_value: row.get(6)?,
                prev_create_revision: row.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let events = rows
        .into_iter()
        .map(Row::into_event)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ReplayChunk { events, upto })
}

struct Row {
    id: Revision,
    key: Vec<u8>,
    value: Vec<u8>,
    create_revision: Revision,
    prev_revision: Revision,
    deleted: bool,
    prev_value: Option<Vec<u8>>,
    prev_create_revision: Option<Revision>,
}

impl Row {
    fn into_event(self) -> Result<Event, StoreError> {
        let key = key_string(self.key)?;
        let value = Bytes::from(self.value);
        let prev = match (self.prev_value, self.prev_create_revision) {
            (Some(prev_value), Some(prev_create)) if self.prev_revision > 0 => Some(KeyValue {
                key: key.clone(),
                value: Bytes::from(prev_value),
                create_revision: prev_create,
                mod_revision: self.prev_revision,
            }),
            // A tombstone carries the deleted value itself.
            _ if self.deleted => Some(KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: self.create_revision,
                mod_revision: self.prev_revision,
            }),
            _ => None,
        };
        Ok(Event {
            kind: if self.deleted {
                EventKind::Delete
            } else {
                EventKind::Put
            },
            kv: KeyValue {
                key,
                value,
                create_revision: self.create_revision,
                mod_revision: self.id,
            },
            prev,
        })
    }
}
