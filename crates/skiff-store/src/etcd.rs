//! The etcd backend: writes are etcd transactions comparing mod_revision and
//! create_revision, and etcd's own revision is the store's revision.

use std::time::Duration;

use bytes::Bytes;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType,
    GetOptions, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions,
};
use futures::stream::{self, StreamExt};

use crate::keys::prefix_end;
use crate::watch::WatchStream;
use crate::{Event, EventKind, KeyValue, RangeResult, Revision, StoreError};

/// How to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Prepended to every key, so several stores (or tests) can share one etcd. Note that
    /// revisions and compaction are global to the etcd cluster all the same.
    pub prefix: String,
    pub connect_timeout: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            prefix: String::new(),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// etcd store. Clones share one gRPC channel.
#[derive(Clone)]
pub struct EtcdStore {
    /// Boxed: the client is large, and `Store` is an enum of all backends.
    client: Box<Client>,
    prefix: String,
}

const COMPACTED_MESSAGE: &str = "required revision has been compacted";
const FUTURE_MESSAGE: &str = "required revision is a future revision";

fn grpc_message(error: &etcd_client::Error) -> Option<&str> {
    match error {
        etcd_client::Error::GRpcStatus(status) => Some(status.message()),
        _ => None,
    }
}

fn is_compacted(error: &etcd_client::Error) -> bool {
    grpc_message(error).is_some_and(|m| m.contains(COMPACTED_MESSAGE))
}

fn is_future(error: &etcd_client::Error) -> bool {
    grpc_message(error).is_some_and(|m| m.contains(FUTURE_MESSAGE))
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision, StoreError> {
    header
        .map(|h| h.revision())
        .ok_or(StoreError::MissingHeader)
}

impl EtcdStore {
    pub async fn connect(endpoints: &[String], opts: EtcdOptions) -> Result<Self, StoreError> {
        let connect = ConnectOptions::new().with_connect_timeout(opts.connect_timeout);
        let client = Client::connect(endpoints, Some(connect)).await?;
        Ok(EtcdStore {
            client: Box::new(client),
            prefix: opts.prefix,
        })
    }

    /// A key for reads that only want the response header: etcd refuses an empty key, which
    /// the empty default prefix would otherwise give.
    fn probe_key(&self) -> String {
        self.full_key("\0")
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn convert(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
        let full = String::from_utf8(kv.key().to_vec()).map_err(StoreError::InvalidKey)?;
        let key = full
            .strip_prefix(self.prefix.as_str())
            .map(str::to_string)
            .unwrap_or(full);
        Ok(KeyValue {
            key,
            value: Bytes::copy_from_slice(kv.value()),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
        })
    }

    /// The value the `or_else` get of a failed transaction saw.
    fn current_from_failed(&self, resp: &TxnResponse) -> Result<Option<KeyValue>, StoreError> {
        for op in resp.op_responses() {
            if let TxnOpResponse::Get(get) = op {
                return get.kvs().first().map(|kv| self.convert(kv)).transpose();
            }
        }
        Ok(None)
    }

    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let resp = self.client.clone().get(self.full_key(key), None).await?;
        resp.kvs().first().map(|kv| self.convert(kv)).transpose()
    }

    pub async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Revision,
    ) -> Result<RangeResult, StoreError> {
        let options = GetOptions::new()
            .with_limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .with_revision(revision);
        let (start, options) = self.key_range(prefix, start_after, options);
        let resp = match self.client.clone().get(start, Some(options)).await {
            Ok(resp) => resp,
            Err(error) => return Err(self.map_read_error(error, revision).await),
        };
        let kvs = resp
            .kvs()
            .iter()
            .map(|kv| self.convert(kv))
            .collect::<Result<Vec<_>, _>>()?;
        let remaining = resp.count() - kvs.len() as i64;
        let read_at = if revision == 0 {
            header_revision(resp.header())?
        } else {
            revision
        };
        Ok(RangeResult {
            kvs,
            remaining,
            more: remaining > 0,
            revision: read_at,
        })
    }

    /// The first key and the range end of the keys under `prefix` after `start_after`.
    fn key_range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        options: GetOptions,
    ) -> (String, GetOptions) {
        let full_prefix = self.full_key(prefix);
        let start = match start_after {
            // The smallest key after `after` is `after` followed by a NUL byte.
            Some(after) if after >= prefix => format!("{}{after}\0", self.prefix),
            _ => full_prefix.clone(),
        };
        let options = match prefix_end(full_prefix.as_bytes()) {
            Some(end) => options.with_range(end),
            None => options.with_from_key(),
        };
        (start, options)
    }

    /// etcd counts a range as it reads it, so a chunk costs what a range costs.
    pub async fn range_chunk(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Revision,
    ) -> Result<RangeResult, StoreError> {
        let mut res = self.range(prefix, start_after, limit, revision).await?;
        res.remaining = 0;
        Ok(res)
    }

    pub async fn count(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        revision: Revision,
    ) -> Result<i64, StoreError> {
        let options = GetOptions::new().with_count_only().with_revision(revision);
        let (start, options) = self.key_range(prefix, start_after, options);
        match self.client.clone().get(start, Some(options)).await {
            Ok(resp) => Ok(resp.count()),
            Err(error) => Err(self.map_read_error(error, revision).await),
        }
    }

    async fn map_read_error(&self, error: etcd_client::Error, requested: Revision) -> StoreError {
        if is_compacted(&error) {
            match self.compacted_revision().await {
                Ok(compacted) => StoreError::Compacted {
                    requested,
                    compacted,
                },
                Err(other) => other,
            }
        } else if is_future(&error) {
            StoreError::FutureRevision(requested)
        } else {
            StoreError::Etcd(error)
        }
    }

    pub async fn create(&self, key: &str, value: Bytes) -> Result<Revision, StoreError> {
        let key = self.full_key(key);
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.to_vec(), None)]);
        let resp = self.client.clone().txn(txn).await?;
        if !resp.succeeded() {
            return Err(StoreError::AlreadyExists);
        }
        header_revision(resp.header())
    }

    pub async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        let key = self.full_key(key);
        // A missing key has create_revision 0 in etcd's comparisons.
        let txn = Txn::new()
            .when([
                Compare::create_revision(key.clone(), CompareOp::Greater, 0),
                Compare::mod_revision(key.clone(), CompareOp::Equal, expected),
            ])
            .and_then([TxnOp::put(key.clone(), value.to_vec(), None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.client.clone().txn(txn).await?;
        if resp.succeeded() {
            return header_revision(resp.header());
        }
        match self.current_from_failed(&resp)? {
            None => Err(StoreError::NotFound),
            current => Err(StoreError::Conflict { current }),
        }
    }

    pub async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<KeyValue, StoreError> {
        let key = self.full_key(key);
        let mut compares = vec![Compare::create_revision(key.clone(), CompareOp::Greater, 0)];
        if let Some(expected) = expected {
            compares.push(Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                expected,
            ));
        }
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::delete(
                key.clone(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.client.clone().txn(txn).await?;
        if !resp.succeeded() {
            return match self.current_from_failed(&resp)? {
                None => Err(StoreError::NotFound),
                current => Err(StoreError::Conflict { current }),
            };
        }
        let revision = header_revision(resp.header())?;
        for op in resp.op_responses() {
            if let TxnOpResponse::Delete(deleted) = op
                && let Some(prev) = deleted.prev_kvs().first()
            {
                let mut kv = self.convert(prev)?;
                kv.mod_revision = revision;
                return Ok(kv);
            }
        }
        // The compare guaranteed the key existed, so etcd returned its previous value.
        Err(StoreError::NotFound)
    }

    pub fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let store = self.clone();
        let full_prefix = self.full_key(prefix);
        // Starting at `after` itself (not after + 1) makes etcd refuse exactly when
        // `after` < its compacted revision, which is our contract; the event at `after` is
        // skipped below. etcd reads start revision 0 as "now", hence the 1.
        let mut options = WatchOptions::new()
            .with_start_revision(after.max(1))
            .with_prev_key();
        options = match prefix_end(full_prefix.as_bytes()) {
            Some(end) => options.with_range(end),
            None => options.with_from_key(),
        };
        let state = EtcdWatch::Start {
            key: full_prefix,
            options,
        };
        let chunks = stream::unfold(state, move |state| {
            let store = store.clone();
            async move {
                let mut watch = match state {
                    EtcdWatch::Done => return None,
                    EtcdWatch::Start { key, options } => {
                        match store.client.clone().watch(key, Some(options)).await {
                            Ok(watch) => watch,
                            Err(error) => return Some((vec![Err(error.into())], EtcdWatch::Done)),
                        }
                    }
                    EtcdWatch::Running(watch) => watch,
                };
                loop {
                    let resp = match watch.message().await {
                        Ok(Some(resp)) => resp,
                        Ok(None) => return Some((vec![Err(StoreError::Closed)], EtcdWatch::Done)),
                        Err(error) => return Some((vec![Err(error.into())], EtcdWatch::Done)),
                    };
                    if resp.compact_revision() > 0 {
                        let error = StoreError::Compacted {
                            requested: after,
                            compacted: resp.compact_revision(),
                        };
                        return Some((vec![Err(error)], EtcdWatch::Done));
                    }
                    if resp.canceled() {
                        let error = StoreError::WatchCanceled(resp.cancel_reason().to_string());
                        return Some((vec![Err(error)], EtcdWatch::Done));
                    }
                    let events = resp
                        .events()
                        .iter()
                        .filter(|event| event.kv().is_some_and(|kv| kv.mod_revision() > after))
                        .map(|event| store.convert_event(event))
                        .collect::<Vec<_>>();
                    if events.is_empty() {
                        continue;
                    }
                    return Some((events, EtcdWatch::Running(watch)));
                }
            }
        });
        Ok(WatchStream::new(chunks.flat_map(stream::iter)))
    }

    fn convert_event(&self, event: &etcd_client::Event) -> Result<Event, StoreError> {
        let kv = event.kv().ok_or(StoreError::MissingHeader)?;
        let prev = event.prev_kv().map(|kv| self.convert(kv)).transpose()?;
        match event.event_type() {
            EventType::Put => Ok(Event {
                kind: EventKind::Put,
                kv: self.convert(kv)?,
                prev,
            }),
            EventType::Delete => {
                // etcd's delete event has an empty value; ours carries the deleted one.
                let mut deleted = match &prev {
                    Some(prev) => prev.clone(),
                    None => self.convert(kv)?,
                };
                deleted.mod_revision = kv.mod_revision();
                Ok(Event {
                    kind: EventKind::Delete,
                    kv: deleted,
                    prev,
                })
            }
        }
    }

    pub async fn current_revision(&self) -> Result<Revision, StoreError> {
        let options = GetOptions::new().with_count_only();
        let resp = self
            .client
            .clone()
            .get(self.probe_key(), Some(options))
            .await?;
        header_revision(resp.header())
    }

    /// etcd does not report its compacted revision directly, but a read at a revision
    /// below it fails: binary-search the smallest readable revision.
    pub async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        let current = self.current_revision().await?;
        let (mut low, mut high) = (1, current);
        if self.readable_at(low).await? {
            return Ok(0);
        }
        // Invariant: not readable at `low`, readable at `high`.
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            if self.readable_at(mid).await? {
                high = mid;
            } else {
                low = mid;
            }
        }
        Ok(high)
    }

    async fn readable_at(&self, revision: Revision) -> Result<bool, StoreError> {
        let options = GetOptions::new().with_count_only().with_revision(revision);
        match self
            .client
            .clone()
            .get(self.probe_key(), Some(options))
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if is_compacted(&error) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    pub async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let options = CompactionOptions::new().with_physical();
        match self.client.clone().compact(revision, Some(options)).await {
            Ok(_) => Ok(()),
            Err(error) if is_compacted(&error) => Ok(()),
            Err(error) if is_future(&error) => Err(StoreError::FutureRevision(revision)),
            Err(error) => Err(error.into()),
        }
    }
}

enum EtcdWatch {
    Start { key: String, options: WatchOptions },
    Running(etcd_client::WatchStream),
    Done,
}
