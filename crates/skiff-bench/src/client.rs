//! A small HTTP/2-over-TLS client for load: one connection, many concurrent streams.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use std::sync::Arc;
use std::time::Instant;

pub struct Client {
    send: SendRequest<Full<Bytes>>,
    token: String,
    _conn: tokio::task::JoinHandle<()>,
}

impl Client {
    pub async fn connect(port: u16, ca_pem: &[u8], token: &str) -> Result<Client, String> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
            roots
                .add(cert.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let name =
            rustls::pki_types::ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .map_err(|e| e.to_string())?;
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Client {
            send,
            token: token.to_string(),
            _conn: task,
        })
    }

    fn request(
        &self,
        method: http::Method,
        path: &str,
        body: Option<String>,
    ) -> Result<http::Request<Full<Bytes>>, String> {
        let content_type = if method == http::Method::PATCH {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        http::Request::builder()
            .method(method)
            .uri(format!("https://127.0.0.1{path}"))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", content_type)
            .header("accept", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())
    }

    /// Sends a request and returns its status and body.
    pub async fn status(
        &self,
        method: http::Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, Bytes), String> {
        let mut send = self.send.clone();
        send.ready().await.map_err(|e| e.to_string())?;
        let resp = send
            .send_request(self.request(method, path, body)?)
            .await
            .map_err(|e| e.to_string())?;
        let code = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((code, body))
    }

    /// Sends a request that must answer `want`; otherwise an error naming `what`, the code
    /// and the body.
    pub async fn expect(
        &self,
        method: http::Method,
        path: &str,
        body: Option<String>,
        want: u16,
        what: &str,
    ) -> Result<Bytes, String> {
        let (code, body) = self.status(method, path, body).await?;
        if code != want {
            return Err(format!(
                "{what} answered {code}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(body)
    }

    /// Opens a watch; reports readiness once the response headers arrive, then the
    /// resourceVersion and arrival time of each event until `events` were seen; then holds
    /// the watch open until the task is aborted.
    pub async fn watch_lines(
        &self,
        path: &str,
        events: usize,
        ready: tokio::sync::mpsc::UnboundedSender<()>,
        out: tokio::sync::mpsc::UnboundedSender<(String, Instant)>,
    ) -> Result<(), String> {
        let mut send = self.send.clone();
        send.ready().await.map_err(|e| e.to_string())?;
        let resp = send
            .send_request(self.request(http::Method::GET, path, None)?)
            .await
            .map_err(|e| e.to_string())?;
        if resp.status() != 200 {
            return Err(format!("watch answered {}", resp.status()));
        }
        let _ = ready.send(());
        let mut body = resp.into_body();
        let mut buf = Vec::new();
        let mut seen = 0;
        while seen < events {
            let Some(frame) = body.frame().await else {
                break;
            };
            let frame = frame.map_err(|e| e.to_string())?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let now = Instant::now();
            buf.extend_from_slice(&data);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                // The load generator shares the machine with the server: find the
                // resourceVersion without parsing the whole event.
                if let Some(rv) = resource_version(&line) {
                    let _ = out.send((rv, now));
                    seen += 1;
                }
            }
        }
        if seen == events {
            // Keep the stream open until the caller has every delivery and stops the task:
            // ten thousand streams reset at once while the last event is still going out to
            // the others would be measured as that event's delivery.
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    /// Watches the pods of `list_path` from `rv` until `expected` have a node; counts them in
    /// `bound_so_far`, and in `unschedulable_so_far` those seen with `PodScheduled` False
    /// before their binding. A watch the server ends (e.g. 410 Gone when this client fell
    /// behind the watch cache's history) is followed by a list and a new watch, as an
    /// informer does.
    pub async fn watch_bound(
        &self,
        list_path: &str,
        rv: &str,
        expected: usize,
        bound_so_far: &std::sync::atomic::AtomicUsize,
        unschedulable_so_far: &std::sync::atomic::AtomicUsize,
    ) -> Result<Instant, String> {
        let mut seen = BoundPods {
            bound: std::collections::HashSet::new(),
            unschedulable: std::collections::HashSet::new(),
            last: Instant::now(),
        };
        if expected == 0 {
            return Ok(seen.last);
        }
        let mut rv = rv.to_string();
        for _ in 0..100 {
            let path = format!("{list_path}?watch=1&resourceVersion={rv}&timeoutSeconds=3600");
            let done = self
                .watch_each(&path, |line| {
                    if let Ok(ev) = serde_json::from_slice::<WatchEvent<'_>>(line) {
                        seen.observe(&ev.object);
                    }
                    bound_so_far.store(seen.bound.len(), std::sync::atomic::Ordering::Relaxed);
                    unschedulable_so_far.store(
                        seen.unschedulable.len(),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    seen.bound.len() >= expected
                })
                .await?;
            if done || seen.bound.len() >= expected {
                return Ok(seen.last);
            }
            eprintln!(
                "pod watch ended after {} bindings; listing and watching again",
                seen.bound.len()
            );
            rv = self.list_pods(list_path, &mut seen).await?;
            bound_so_far.store(seen.bound.len(), std::sync::atomic::Ordering::Relaxed);
            unschedulable_so_far.store(
                seen.unschedulable.len(),
                std::sync::atomic::Ordering::Relaxed,
            );
            // The last bindings may all have come before the list: no event would follow.
            if seen.bound.len() >= expected {
                return Ok(seen.last);
            }
        }
        Err(format!(
            "the pod watch kept ending ({} bindings seen)",
            seen.bound.len()
        ))
    }

    /// Lists the pods of `list_path` in pages into `seen`; returns the list's resourceVersion.
    async fn list_pods(&self, list_path: &str, seen: &mut BoundPods) -> Result<String, String> {
        #[derive(serde::Deserialize)]
        struct ListMeta {
            #[serde(rename = "resourceVersion", default)]
            resource_version: String,
            #[serde(rename = "continue", default)]
            cont: String,
        }
        #[derive(serde::Deserialize)]
        struct List<'a> {
            metadata: ListMeta,
            #[serde(borrow, default)]
            items: Vec<PodFields<'a>>,
        }
        let mut cont = String::new();
        let mut expired = 0;
        loop {
            let path = format!("{list_path}?limit=500&continue={cont}");
            let (code, body) = self.status(http::Method::GET, &path, None).await?;
            // The list's snapshot was compacted away while paging: list again from the start,
            // as clients do on 410 Expired.
            if code == 410 && !cont.is_empty() && expired < 10 {
                expired += 1;
                cont.clear();
                continue;
            }
            if code != 200 {
                return Err(format!("pod list answered {code}"));
            }
            let list: List<'_> = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            for p in &list.items {
                seen.observe(p);
            }
            if list.metadata.cont.is_empty() {
                return Ok(list.metadata.resource_version);
            }
            cont = list.metadata.cont;
        }
    }

    /// Opens a watch and hands each event line to `on_line` until it returns `true` (then
    /// `Ok(true)`) or the server ends the watch (`Ok(false)`).
    pub async fn watch_each(
        &self,
        path: &str,
        mut on_line: impl FnMut(&[u8]) -> bool,
    ) -> Result<bool, String> {
        let mut send = self.send.clone();
        send.ready().await.map_err(|e| e.to_string())?;
        let resp = send
            .send_request(self.request(http::Method::GET, path, None)?)
            .await
            .map_err(|e| e.to_string())?;
        if resp.status() != 200 {
            return Err(format!("watch answered {}", resp.status()));
        }
        let mut body = resp.into_body();
        let mut buf = Vec::new();
        loop {
            let Some(frame) = body.frame().await else {
                return Ok(false);
            };
            let Ok(data) = frame.map_err(|e| e.to_string())?.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            let mut start = 0;
            while let Some(len) = buf[start..].iter().position(|b| *b == b'\n') {
                if on_line(&buf[start..start + len]) {
                    return Ok(true);
                }
                start += len + 1;
            }
            buf.drain(..start);
        }
    }
}

/// The first `"resourceVersion":"N"` of a watch line.
fn resource_version(line: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"resourceVersion\":\"";
    let start = line.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = line[start..].iter().position(|b| *b == b'"')?;
    String::from_utf8(line[start..start + len].to_vec()).ok()
}

/// What the scheduler benchmark has seen of its pods.
struct BoundPods {
    bound: std::collections::HashSet<String>,
    unschedulable: std::collections::HashSet<String>,
    /// When the last new binding was seen.
    last: Instant,
}

impl BoundPods {
    fn observe(&mut self, pod: &PodFields<'_>) {
        let name = pod.metadata.name;
        let spec = pod.spec.as_ref();
        if spec.is_some_and(|s| s.node_name.is_some_and(|n| !n.is_empty())) {
            if self.bound.insert(name.to_string()) {
                self.last = Instant::now();
            }
            return;
        }
        let failed = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "PodScheduled" && c.reason == Some("Unschedulable"))
            });
        if failed {
            self.unschedulable.insert(name.to_string());
        }
    }
}

/// The few fields of a watch event's pod the scheduler benchmark reads, borrowed from the line
/// (the bench shares two cores with the server: decoding whole pods made it fall behind).
#[derive(serde::Deserialize)]
struct WatchEvent<'a> {
    #[serde(borrow)]
    object: PodFields<'a>,
}

#[derive(serde::Deserialize)]
struct PodFields<'a> {
    #[serde(borrow)]
    metadata: NameOnly<'a>,
    #[serde(borrow, default)]
    spec: Option<SpecFields<'a>>,
    #[serde(borrow, default)]
    status: Option<StatusFields<'a>>,
}

#[derive(serde::Deserialize)]
struct NameOnly<'a> {
    #[serde(borrow, default)]
    name: &'a str,
}

#[derive(serde::Deserialize)]
struct SpecFields<'a> {
    #[serde(rename = "nodeName", borrow, default)]
    node_name: Option<&'a str>,
}

#[derive(serde::Deserialize)]
struct StatusFields<'a> {
    #[serde(borrow, default)]
    conditions: Option<Vec<ConditionFields<'a>>>,
}

#[derive(serde::Deserialize)]
struct ConditionFields<'a> {
    #[serde(rename = "type", borrow)]
    type_: &'a str,
    #[serde(borrow, default)]
    reason: Option<&'a str>,
}
