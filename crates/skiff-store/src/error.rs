//! The store's error type, shared by every backend so callers match one enum.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{KeyValue, Revision};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key already exists")]
    AlreadyExists,
    #[error("key not found")]
    NotFound,
    /// `current` is the key's value at the time of the failed update or delete.
    #[error("revision mismatch")]
    Conflict { current: Option<KeyValue> },
    #[error("required revision {requested} has been compacted (compacted through {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    #[error("revision {0} is in the future")]
    FutureRevision(Revision),
    /// The watcher did not keep up with live events and missed some.
    #[error("watcher fell behind by {0} events")]
    WatchLagged(u64),
    /// The backend stopped (its writer thread or connection is gone).
    #[error("store is closed")]
    Closed,
    #[error("sqlite operation failed")]
    Sqlite(#[from] rusqlite::Error),
    /// A write batch failed as a whole; every write in it gets the same cause.
    #[error("sqlite write transaction failed")]
    WriteFailed(#[source] Arc<rusqlite::Error>),
    #[error("cannot start the sqlite writer thread")]
    SpawnWriter(#[source] std::io::Error),
    #[error("cannot create the directory of {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("etcd request failed")]
    Etcd(#[from] etcd_client::Error),
    #[error("etcd response has no header")]
    MissingHeader,
    #[error("etcd watch canceled: {0}")]
    WatchCanceled(String),
    #[error("stored key is not utf-8")]
    InvalidKey(#[source] std::string::FromUtf8Error),
    /// A rewrite given to [`crate::Store::update_with`] panicked; nothing was written.
    #[error("the rewrite of a stored value panicked")]
    RewritePanicked,
    #[error("blocking task failed")]
    Join(#[from] tokio::task::JoinError),
}
