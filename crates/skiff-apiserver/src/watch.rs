//! Watch: chunked JSON events from the watch cache, with bookmarks, initial events and timeouts.

use crate::cache::{CachedEvent, EventType, Start};
use crate::objects::{Query, prefix};
use crate::rest::{Filter, convert_out};
use crate::server::ApiServer;
use crate::table::{self, IncludeObject};
use axum::body::Body;
use bytes::Bytes;
use http::{Response, StatusCode, header};
use serde_json::{Value, json};
use skiff_api::registry::ResourceInfo;
use skiff_api::status::ApiError;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

struct Watcher {
    info: &'static ResourceInfo,
    prefix: String,
    name: Option<String>,
    filter: Filter,
    table: Option<IncludeObject>,
    /// Objects (and bookmarks) go out as PartialObjectMetadata.
    partial_metadata: bool,
}

impl Watcher {
    fn relevant(&self, ev: &CachedEvent) -> bool {
        ev.key.starts_with(&self.prefix)
            && self
                .name
                .as_deref()
                .is_none_or(|n| ev.key.rsplit('/').next() == Some(n))
    }

    fn matches(&self, obj: &Value) -> bool {
        self.filter.matches(self.info, obj)
    }

    /// The line this watcher sends for `ev`, if any. Plain JSON watchers of the stored version
    /// share one serialization per event.
    fn render(&self, ev: &CachedEvent) -> Option<Bytes> {
        if !self.relevant(ev) {
            return None;
        }
        let now = self.matches(&ev.object);
        let before = ev.prev.as_ref().is_some_and(|p| self.matches(p));
        let ty = match ev.kind {
            EventType::Added => now.then_some(EventType::Added)?,
            EventType::Deleted => before.then_some(EventType::Deleted)?,
            EventType::Modified => match (before, now) {
                (true, true) => EventType::Modified,
                (false, true) => EventType::Added,
                (true, false) => EventType::Deleted,
                (false, false) => return None,
            },
        };
        let same_version = ev.object.get("apiVersion").and_then(Value::as_str)
            == Some(self.info.api_version().as_str())
            && ev.object.get("kind").and_then(Value::as_str) == Some(self.info.kind);
        if ty == ev.kind && same_version && self.table.is_none() && !self.partial_metadata {
            return Some(
                ev.line
                    .get_or_init(|| self.line(ty.as_str(), (*ev.object).clone()))
                    .clone(),
            );
        }
        if self.partial_metadata && self.table.is_none() {
            // Metadata does not depend on the version: one line per event for all of them.
            let render = || {
                let mut v = serde_json::to_vec(&json!({"type": ty.as_str(), "object": crate::rest::partial_metadata(&ev.object)})).unwrap_or_default();
                v.push(b'\n');
                Bytes::from(v)
            };
            if ty == ev.kind {
                return Some(ev.partial_line.get_or_init(render).clone());
            }
            return Some(render());
        }
        Some(self.line(ty.as_str(), convert_out(self.info, (*ev.object).clone())))
    }

    fn line(&self, ty: &str, obj: Value) -> Bytes {
        let object = match self.table {
            Some(include) if ty != "BOOKMARK" && ty != "ERROR" => {
                table::table(self.info, &[obj], json!({}), include, true)
            }
            _ if self.partial_metadata && ty != "ERROR" => crate::rest::partial_metadata(&obj),
            _ => obj,
        };
        let mut v = serde_json::to_vec(&json!({"type": ty, "object": object})).unwrap_or_default();
        v.push(b'\n');
        Bytes::from(v)
    }

    fn bookmark(&self, rev: i64, initial_end: bool) -> Bytes {
        let mut md = json!({"resourceVersion": rev.to_string()});
        if initial_end {
            md["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        self.line(
            "BOOKMARK",
            json!({"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": md}),
        )
    }
}

fn error_line(e: &ApiError) -> Bytes {
    let mut v =
        serde_json::to_vec(&json!({"type": "ERROR", "object": e.to_status()})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

pub async fn serve(
    server: &Arc<ApiServer>,
    info: &'static ResourceInfo,
    ns: Option<&str>,
    name: Option<&str>,
    q: &Query,
    accept: &str,
) -> Result<Response<Body>, ApiError> {
    let filter = Filter::from_query(info, q)?;
    let table = accept
        .split(',')
        .next()
        .filter(|f| f.contains("as=Table"))
        .map(|_| IncludeObject::parse(q.get("includeObject")));
    let w = Watcher {
        info,
        prefix: prefix(info, ns),
        name: name
            .map(str::to_string)
            .or_else(|| filter.fields.exact_name().map(str::to_string)),
        filter,
        table,
        partial_metadata: crate::rest::wants_partial_metadata(accept),
    };
    let timeout = q
        .int("timeoutSeconds")?
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64))
        .unwrap_or(Duration::from_secs(1800 + rand::random::<u64>() % 1800));
    let bookmarks = q.flag("allowWatchBookmarks") && q.get("allowWatchBookmarks").is_some();
    let send_initial = q.get("sendInitialEvents") == Some("true");
    let rv = q.get("resourceVersion").unwrap_or("");
    if send_initial && !matches!(q.get("resourceVersionMatch"), Some("NotOlderThan")) {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "ListOptions",
            "",
            vec![skiff_api::status::Cause::not_supported(
                "resourceVersionMatch",
                &json!(q.get("resourceVersionMatch").unwrap_or("")),
                &["NotOlderThan"],
            )],
        ));
    }
    if send_initial && !bookmarks {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "ListOptions",
            "",
            vec![skiff_api::status::Cause::forbidden(
                "allowWatchBookmarks",
                "sendInitialEvents requires setting allowWatchBookmarks to true",
            )],
        ));
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    let server2 = server.clone();
    server.metrics.watches.fetch_add(1, Ordering::Relaxed);
    // Initial state: "" or "0" (or sendInitialEvents) start with the current objects as ADDED.
    let start_after: Option<i64> = if rv.is_empty() || rv == "0" || send_initial {
        None
    } else {
        Some(
            rv.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?,
        )
    };
    let ns_owned = ns.map(str::to_string);
    let cancel = server.cancel.clone();
    server.watches.spawn(async move {
        let deadline = tokio::time::Instant::now() + timeout;
        let run = async {
            let (mut rx_events, replay, mut last) = match start_after {
                None => {
                    let (rev, rx_events) = server2
                        .cache
                        .subscribe_now(crate::cache::resource_prefix(&w.prefix));
                    let list = server2.store.range(&w.prefix, None, 0, rev.max(0)).await;
                    let list = match list {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = tx
                                .send(Ok(error_line(&ApiError::internal(e.to_string()))))
                                .await;
                            return;
                        }
                    };
                    for kv in list.kvs {
                        if w.name
                            .as_deref()
                            .is_some_and(|n| kv.key.rsplit('/').next() != Some(n))
                        {
                            continue;
                        }
                        let Some(obj) = crate::cache::decode(&kv.value, kv.mod_revision) else {
                            continue;
                        };
                        if w.matches(&obj)
                            && tx
                                .send(Ok(w.line("ADDED", convert_out(w.info, obj))))
                                .await
                                .is_err()
                        {
                            return;
                        }
                    }
                    if send_initial && tx.send(Ok(w.bookmark(rev, true))).await.is_err() {
                        return;
                    }
                    (rx_events, Vec::new(), rev)
                }
                Some(after) => match server2
                    .cache
                    .subscribe_after(after, crate::cache::resource_prefix(&w.prefix))
                {
                    Start::Events(rx_events, replay) => (rx_events, replay, after),
                    Start::TooOld { oldest } => {
                        let _ = tx
                            .send(Ok(error_line(&ApiError::gone(format!(
                                "too old resource version: {after} ({oldest})"
                            )))))
                            .await;
                        return;
                    }
                },
            };
            let _ = &ns_owned;
            for ev in replay {
                last = ev.revision;
                if let Some(line) = w.render(&ev)
                    && tx.send(Ok(line)).await.is_err()
                {
                    return;
                }
            }
            let mut bookmark_tick = tokio::time::interval(Duration::from_secs(30));
            bookmark_tick.tick().await;
            loop {
                tokio::select! {
                    ev = rx_events.recv() => match ev {
                        Ok(ev) => {
                            if ev.revision <= last {
                                continue;
                            }
                            last = ev.revision;
                            if let Some(line) = w.render(&ev)
                                && tx.send(Ok(line)).await.is_err()
                            {
                                return;
                            }
                        }
                        Err(RecvError::Lagged(_)) => {
                            // Catch up from history; if it is gone, the client must re-list.
                            rx_events = rx_events.resubscribe();
                                            match server2.cache.history_after(last) {
                                Some(evs) => {
                                    for ev in evs {
                                        last = ev.revision;
                                        if let Some(line) = w.render(&ev)
                                            && tx.send(Ok(line)).await.is_err()
                                        {
                                            return;
                                        }
                                    }
                                }
                                None => {
                                    let _ = tx.send(Ok(error_line(&ApiError::gone(format!("too old resource version: {last}"))))).await;
                                    return;
                                }
                            }
                        }
                        Err(RecvError::Closed) => return,
                    },
                    _ = bookmark_tick.tick(), if bookmarks => {
                        let rev = server2.cache.revision().max(last);
                        if tx.send(Ok(w.bookmark(rev, false))).await.is_err() {
                            return;
                        }
                    }
                    _ = tx.closed() => return,
                }
            }
        };
        tokio::select! {
            _ = run => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = cancel.cancelled() => {}
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let ct = if table.is_some() {
        "application/json;as=Table;v=v1;g=meta.k8s.io"
    } else {
        "application/json"
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, ct)
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(e.to_string()))
}
