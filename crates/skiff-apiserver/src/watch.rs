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
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

struct Watcher {
    info: &'static ResourceInfo,
    prefix: String,
    name: Option<String>,
    filter: Filter,
    table: Option<IncludeObject>,
    /// Objects (and bookmarks) go out as PartialObjectMetadata.
    partial_metadata: bool,
    /// An in-process watch (the server's controllers, scheduler and informers): objects go
    /// out without `metadata.managedFields`, which none of them reads.
    lean: bool,
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
        // Without selectors every object matches: the attributes are not even read.
        let everything = self.filter.is_empty();
        let now = everything || ev.attrs().is_some_and(|a| self.filter.matches_attrs(a));
        let before = ev.had_before()
            && (everything
                || ev
                    .prev_attrs()
                    .is_some_and(|p| self.filter.matches_attrs(p)));
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
        let same_version = *ev.object_kind == *self.info.kind
            && is_api_version(&ev.api_version, self.info.group, self.info.version);
        if same_version && self.table.is_none() && !self.partial_metadata {
            if self.lean {
                return Some(ev.lean_line(ty));
            }
            if ty == ev.kind {
                return Some(ev.line());
            }
            // The same object under another event type: splice, no need to decode it.
            let object = ev.object_json();
            let head = format!("{{\"type\":\"{}\",\"object\":", ty.as_str());
            let mut v = Vec::with_capacity(head.len() + object.len() + 2);
            v.extend_from_slice(head.as_bytes());
            v.extend_from_slice(&object);
            v.extend_from_slice(b"}\n");
            return Some(Bytes::from(v));
        }
        if self.partial_metadata && self.table.is_none() {
            return ev.partial_line(ty, self.lean);
        }
        let object = ev.object()?;
        Some(self.line(ty.as_str(), convert_out(self.info, object)))
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

/// One watch in progress: what is left to send and where it reads from.
struct WatchState {
    server: Arc<ApiServer>,
    w: Watcher,
    /// The watched resource's key prefix (`/registry/{group}/{plural}/`).
    resource: String,
    /// Live events of the watched resource; None once the watch can only end.
    rx: Option<tokio::sync::broadcast::Receiver<Arc<CachedEvent>>>,
    /// Lines ready to go (replayed history, errors).
    pending: std::collections::VecDeque<Bytes>,
    /// The initial list (ADDED events), rendered one at a time.
    initial: std::vec::IntoIter<skiff_store::KeyValue>,
    /// With sendInitialEvents: the revision of the bookmark that ends the initial list.
    initial_end: Option<i64>,
    last: i64,
    bookmarks: bool,
    bookmark_tick: tokio::time::Interval,
    /// The watch's timeout, registered once for the whole watch. (The server's shutdown
    /// closes the watch cache's channels, which ends the watch.)
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// Keeps the server's watch tracker open while this watch lives (shutdown waits for it).
    _tracked: tokio_util::task::task_tracker::TaskTrackerToken,
}

impl WatchState {
    /// The next chunk of the response body, or None when the watch ends.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if let Some(b) = self.pending.pop_front() {
                if self.pending.is_empty() {
                    return Some(b);
                }
                let mut batch = bytes::BytesMut::from(&b[..]);
                while batch.len() < BATCH_BYTES
                    && let Some(next) = self.pending.pop_front()
                {
                    batch.extend_from_slice(&next);
                }
                return Some(batch.freeze());
            }
            if let Some(kv) = self.initial.next() {
                if self
                    .w
                    .name
                    .as_deref()
                    .is_some_and(|n| kv.key.rsplit('/').next() != Some(n))
                {
                    continue;
                }
                let Some(obj) = crate::cache::decode(&kv.value, kv.mod_revision) else {
                    continue;
                };
                if self.w.matches(&obj) {
                    return Some(self.w.line("ADDED", convert_out(self.w.info, obj)));
                }
                continue;
            }
            if let Some(rev) = self.initial_end.take() {
                return Some(self.w.bookmark(rev, true));
            }
            let rx = self.rx.as_mut()?;
            // Events first: a ready event is sent without polling the timers.
            tokio::select! {
                biased;
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        if ev.revision <= self.last {
                            continue;
                        }
                        self.last = ev.revision;
                        if let Some(line) = self.w.render(&ev) {
                            self.pending.push_back(line);
                            self.take_ready();
                        }
                    }
                    Err(RecvError::Lagged(_)) => self.catch_up(),
                    Err(RecvError::Closed) => return None,
                },
                _ = self.bookmark_tick.tick(), if self.bookmarks => {
                    let rev = self.server.cache.revision().max(self.last);
                    return Some(self.w.bookmark(rev, false));
                }
                _ = &mut self.deadline => return None,
            }
        }
    }
}

impl WatchState {
    /// Queues the lines of the events already waiting in the channel, up to about
    /// [`BATCH_BYTES`] in all, so that they go out with the pending ones as one chunk: a
    /// watcher that fell behind catches up in a few large writes instead of one write (and one
    /// turn of its connection's task) per event.
    fn take_ready(&mut self) {
        let Some(rx) = self.rx.as_mut() else {
            return;
        };
        let mut bytes: usize = self.pending.iter().map(Bytes::len).sum();
        while bytes < BATCH_BYTES {
            match rx.try_recv() {
                Ok(ev) => {
                    if ev.revision <= self.last {
                        continue;
                    }
                    self.last = ev.revision;
                    if let Some(line) = self.w.render(&ev) {
                        bytes += line.len();
                        self.pending.push_back(line);
                    }
                }
                Err(TryRecvError::Lagged(_)) => {
                    // The history replays what comes after `last`, behind these lines.
                    self.catch_up();
                    return;
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        }
    }

    /// After the channel dropped events for this watcher: queues the lines of the events
    /// after `last` from the history, or the error that makes the client re-list when the
    /// history no longer has them.
    fn catch_up(&mut self) {
        let Some(rx) = self.rx.as_mut() else {
            return;
        };
        *rx = rx.resubscribe();
        match self.server.cache.history_after(&self.resource, self.last) {
            Some(evs) => {
                for ev in evs {
                    self.last = ev.revision;
                    if let Some(line) = self.w.render(&ev) {
                        self.pending.push_back(line);
                    }
                }
            }
            None => {
                self.rx = None;
                self.pending.push_back(error_line(&ApiError::gone(format!(
                    "too old resource version: {}",
                    self.last
                ))));
            }
        }
    }
}

/// The lines sent as one chunk add up to about this many bytes.
const BATCH_BYTES: usize = 256 * 1024;

/// Whether `api_version` is `group/version` ("version" for the core group), without building it.
fn is_api_version(api_version: &str, group: &str, version: &str) -> bool {
    if group.is_empty() {
        return api_version == version;
    }
    api_version
        .strip_prefix(group)
        .and_then(|rest| rest.strip_prefix('/'))
        == Some(version)
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
    in_process: bool,
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
        lean: in_process,
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
    let resource = crate::cache::resource_prefix(&w.prefix).to_string();
    let mut pending: std::collections::VecDeque<Bytes> = std::collections::VecDeque::new();
    let mut initial = Vec::new().into_iter();
    let mut initial_end = None;
    let (rx_events, last) = match start_after {
        None => {
            let (rev, rx_events) = server.cache.subscribe_now(&resource, w.name.as_deref());
            match server.store.range(&w.prefix, None, 0, rev.max(0)).await {
                Ok(l) => initial = l.kvs.into_iter(),
                Err(e) => pending.push_back(error_line(&ApiError::internal(e.to_string()))),
            }
            if send_initial {
                initial_end = Some(rev);
            }
            (Some(rx_events), rev)
        }
        Some(after) => match server
            .cache
            .subscribe_after(after, &resource, w.name.as_deref())
        {
            Start::Events(rx_events, replay) => {
                let mut last = after;
                for ev in replay {
                    last = ev.revision;
                    if let Some(line) = w.render(&ev) {
                        pending.push_back(line);
                    }
                }
                (Some(rx_events), last)
            }
            Start::TooOld { oldest } => {
                pending.push_back(error_line(&ApiError::gone(format!(
                    "too old resource version: {after} ({oldest})"
                ))));
                (None, after)
            }
        },
    };
    let mut bookmark_tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(30),
        Duration::from_secs(30),
    );
    bookmark_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The response body is the watch itself: the connection's stream task polls it, so an
    // event wakes one task per watcher and no channel sits in between.
    let state = WatchState {
        server: server.clone(),
        w,
        resource,
        rx: rx_events,
        pending,
        initial,
        initial_end,
        last,
        bookmarks,
        bookmark_tick,
        deadline: Box::pin(tokio::time::sleep(timeout)),
        _tracked: server.watches.token(),
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        let item = st.next_chunk().await?;
        Some((Ok::<Bytes, std::io::Error>(item), st))
    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Before;
    use crate::objects::Query;

    fn configmap(labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "a", "namespace": "default", "labels": labels,
                            "resourceVersion": "7"}})
    }

    fn watcher(query: &str) -> Watcher {
        let info =
            skiff_api::registry::find("", "v1", "configmaps").expect("configmaps are served");
        Watcher {
            info,
            prefix: crate::objects::prefix(info, Some("default")),
            name: None,
            filter: Filter::from_query(info, &Query::parse(Some(query))).expect("a valid selector"),
            table: None,
            partial_metadata: false,
            lean: false,
        }
    }

    fn modified(now: Value, before: Value) -> CachedEvent {
        CachedEvent::new(
            7,
            "/registry/core/configmaps/default/a".into(),
            EventType::Modified,
            &configmap(now),
            Some(Before::stored(Bytes::from(configmap(before).to_string()))),
        )
    }

    fn event_type(line: &Bytes) -> (String, Value) {
        let v: Value = serde_json::from_slice(line).expect("a JSON line");
        (
            v["type"].as_str().expect("a type").to_string(),
            v["object"].clone(),
        )
    }

    #[test]
    fn selector_transitions_become_added_and_deleted() {
        let w = watcher("labelSelector=app%3Dweb");
        let entering = w
            .render(&modified(json!({"app": "web"}), json!({"app": "db"})))
            .expect("a line");
        let (ty, obj) = event_type(&entering);
        assert_eq!(ty, "ADDED");
        assert_eq!(obj, configmap(json!({"app": "web"})));
        let leaving = w
            .render(&modified(json!({"app": "db"}), json!({"app": "web"})))
            .expect("a line");
        assert_eq!(event_type(&leaving).0, "DELETED");
        let staying = w
            .render(&modified(json!({"app": "web"}), json!({"app": "web"})))
            .expect("a line");
        assert_eq!(event_type(&staying).0, "MODIFIED");
        assert!(
            w.render(&modified(json!({"app": "db"}), json!({"app": "db"})))
                .is_none()
        );
    }

    #[test]
    fn field_selectors_read_the_kept_attributes() {
        let w = watcher("fieldSelector=metadata.name%3Da");
        assert!(w.render(&modified(json!({}), json!({}))).is_some());
        let other = watcher("fieldSelector=metadata.name%21%3Da");
        assert!(other.render(&modified(json!({}), json!({}))).is_none());
    }

    #[test]
    fn api_versions_compare_without_building_them() {
        assert!(is_api_version("v1", "", "v1"));
        assert!(is_api_version("apps/v1", "apps", "v1"));
        assert!(!is_api_version("apps/v1beta1", "apps", "v1"));
        assert!(!is_api_version("v1", "apps", "v1"));
        assert!(!is_api_version("appsx/v1", "apps", "v1"));
    }
}
