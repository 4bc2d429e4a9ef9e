//! The resource metrics API (`metrics.k8s.io/v1beta1`, as metrics-server serves it): a background
//! scraper reads each Ready node's kubelet `/metrics/resource` every resolution, and the
//! handlers serve NodeMetrics and PodMetrics from the last two samples.
//!
//! The group is served here rather than listed in `skiff_api::registry`: its kinds are not stored
//! objects, have no OpenAPI schema in k8s-openapi, and upstream serves them through an aggregated
//! APIService. The scraper pins each kubelet's self-signed certificate by the SHA-256 its agent
//! publishes on the Node, and authenticates with the node token
//! (docs/adr/002-agent-metrics-endpoint.md).

use crate::server::{ApiServer, json_response};
use axum::body::Body;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::{Value, json};
use skiff_api::selector::LabelSelector;
use skiff_api::status::ApiError;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";
/// Node annotation holding the SHA-256 (hex) of the node's kubelet serving certificate (DER).
pub const CERT_ANNOTATION: &str = "hollow.skiff.dev/kubelet-cert-sha256";
/// Kubelet endpoints scraped at once.
const SCRAPE_CONCURRENCY: usize = 8;
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

type Labels = BTreeMap<String, String>;
/// Pod metrics by (namespace, name).
type PodsMetrics = BTreeMap<(String, String), PodMetrics>;

/// One kubelet scrape of one node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub timestamp_ms: i64,
    pub node_cpu_seconds: f64,
    pub node_memory: f64,
    /// (namespace, pod, container) → (cpu seconds, memory bytes)
    pub containers: BTreeMap<(String, String, String), (f64, f64)>,
}

/// Usage over one window: cores and bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    pub timestamp_ms: i64,
    pub window_ms: i64,
    pub cpu: f64,
    pub memory: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeMetrics {
    pub labels: BTreeMap<String, String>,
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PodMetrics {
    pub timestamp_ms: i64,
    pub window_ms: i64,
    /// (container, cores, bytes)
    pub containers: Vec<(String, f64, f64)>,
}

/// What the handlers serve.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub nodes: BTreeMap<String, NodeMetrics>,
    pub pods: PodsMetrics,
}

/// The scraper's state and the served snapshot.
#[derive(Debug, Default)]
pub struct MetricsApi {
    snapshot: RwLock<Arc<Snapshot>>,
    /// The previous sample of each node, for rates.
    previous: Mutex<HashMap<String, Sample>>,
}

/// Parses the kubelet's `/metrics/resource` text.
pub fn parse(text: &str) -> Sample {
    let mut s = Sample::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, labels, rest) = match line.find('{') {
            Some(open) => {
                let Some(close) = line[open..].find('}').map(|c| open + c) else {
                    continue;
                };
                (&line[..open], &line[open + 1..close], &line[close + 1..])
            }
            None => match line.split_once(' ') {
                Some((n, r)) => (n, "", r),
                None => continue,
            },
        };
        let mut fields = rest.split_whitespace();
        let Some(value) = fields.next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        if let Some(ts) = fields.next().and_then(|t| t.parse::<i64>().ok()) {
            s.timestamp_ms = s.timestamp_ms.max(ts);
        }
        let label = |key: &str| -> String {
            labels
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| k.trim() == key)
                .map(|(_, v)| {
                    v.trim()
                        .trim_matches('"')
                        .replace("\\\"", "\"")
                        .replace("\\\\", "\\")
                })
                .unwrap_or_default()
        };
        let container = || (label("namespace"), label("pod"), label("container"));
        match name {
            "node_cpu_usage_seconds_total" => s.node_cpu_seconds = value,
            "node_memory_working_set_bytes" => s.node_memory = value,
            "container_cpu_usage_seconds_total" => {
                s.containers.entry(container()).or_default().0 = value;
            }
            "container_memory_working_set_bytes" => {
                s.containers.entry(container()).or_default().1 = value;
            }
            _ => {}
        }
    }
    s
}

/// Node and pod usage from two samples of one node, as metrics-server computes it: CPU is the
/// counter's rate over the window, memory the last working set. `None` when there is no window.
pub fn rates(prev: &Sample, cur: &Sample) -> Option<(Usage, PodsMetrics)> {
    let window_ms = cur.timestamp_ms - prev.timestamp_ms;
    if window_ms <= 0 || cur.node_cpu_seconds < prev.node_cpu_seconds {
        return None;
    }
    let secs = window_ms as f64 / 1000.0;
    let node = Usage {
        timestamp_ms: cur.timestamp_ms,
        window_ms,
        cpu: (cur.node_cpu_seconds - prev.node_cpu_seconds) / secs,
        memory: cur.node_memory,
    };
    let mut pods = PodsMetrics::new();
    let mut incomplete: Vec<(String, String)> = Vec::new();
    for ((ns, pod, container), (cpu, memory)) in &cur.containers {
        let key = (ns.clone(), pod.clone());
        match prev
            .containers
            .get(&(ns.clone(), pod.clone(), container.clone()))
        {
            Some((prev_cpu, _)) if cpu >= prev_cpu => {
                pods.entry(key)
                    .or_insert_with(|| PodMetrics {
                        timestamp_ms: cur.timestamp_ms,
                        window_ms,
                        containers: Vec::new(),
                    })
                    .containers
                    .push((container.clone(), (cpu - prev_cpu) / secs, *memory));
            }
            // A container seen once (or restarted) has no rate yet; its pod waits for one.
            _ => incomplete.push(key),
        }
    }
    for k in incomplete {
        pods.remove(&k);
    }
    Some((node, pods))
}

/// Where and how to reach one node's kubelet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Endpoint {
    host: String,
    port: u16,
    cert_sha256: String,
}

/// Ready nodes with a pinned kubelet endpoint: (name, labels, endpoint).
fn scrape_targets(nodes: &[Value]) -> Vec<(String, BTreeMap<String, String>, Endpoint)> {
    let mut out = Vec::new();
    for n in nodes {
        let ready = n
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        let name = n.pointer("/metadata/name").and_then(Value::as_str);
        let cert = n
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(CERT_ANNOTATION))
            .and_then(Value::as_str);
        let port = n
            .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0);
        let host = n
            .pointer("/status/addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|a| a["type"] == "InternalIP")
            .and_then(|a| a["address"].as_str());
        if let (true, Some(name), Some(cert), Some(port), Some(host)) =
            (ready, name, cert, port, host)
        {
            out.push((
                name.to_string(),
                skiff_api::selector::labels_of(n),
                Endpoint {
                    host: host.to_string(),
                    port,
                    cert_sha256: cert.to_ascii_lowercase(),
                },
            ));
        }
    }
    out
}

fn sha256_hex(data: &[u8]) -> String {
    crate::pki::sha256_hex(data)
}

/// Accepts exactly the certificate whose SHA-256 the node published.
#[derive(Debug)]
struct PinnedCert {
    sha256: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if sha256_hex(end_entity.as_ref()) == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Scrapes every node behind one endpoint over one connection.
async fn scrape_endpoint(
    endpoint: &Endpoint,
    nodes: &[String],
    bearer: &str,
) -> Result<Vec<(String, Sample)>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCert {
            sha256: endpoint.cert_sha256.clone(),
            provider,
        }))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(endpoint.host.clone()).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    let requests = async {
        let mut out = Vec::with_capacity(nodes.len());
        for node in nodes {
            let req = http::Request::get(format!("/metrics/resource?node={node}"))
                .header(http::header::HOST, endpoint.host.as_str())
                .header(http::header::AUTHORIZATION, format!("Bearer {bearer}"))
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .map_err(|e| e.to_string())?;
            sender.ready().await.map_err(|e| e.to_string())?;
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            if status.is_success() {
                out.push((node.clone(), parse(&String::from_utf8_lossy(&body))));
            } else {
                tracing::debug!(%node, %status, "kubelet refused the metrics scrape");
            }
        }
        drop(sender);
        Ok::<_, String>(out)
    };
    let (out, _) = tokio::join!(requests, conn);
    out
}

impl MetricsApi {
    /// The snapshot the handlers serve.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Folds one round of samples into the served snapshot.
    fn update(&self, samples: Vec<(String, BTreeMap<String, String>, Sample)>) {
        let mut snapshot = Snapshot::default();
        let mut previous = self.previous.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = HashMap::with_capacity(samples.len());
        for (node, labels, sample) in samples {
            if let Some(prev) = previous.get(&node)
                && let Some((usage, pods)) = rates(prev, &sample)
            {
                snapshot
                    .nodes
                    .insert(node.clone(), NodeMetrics { labels, usage });
                snapshot.pods.extend(pods);
            }
            next.insert(node, sample);
        }
        *previous = next;
        drop(previous);
        if let Ok(mut s) = self.snapshot.write() {
            *s = Arc::new(snapshot);
        }
    }
}

impl ApiServer {
    /// Starts scraping the kubelets every `resolution` until the server's cancellation token fires.
    pub fn start_metrics_scraper(
        self: &Arc<Self>,
        resolution: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let server = self.clone();
        let cancel = self.cancel.clone();
        tokio::spawn(scrape_loop(server, resolution, cancel))
    }
}

async fn scrape_loop(server: Arc<ApiServer>, resolution: Duration, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(resolution.max(Duration::from_millis(100)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let round = scrape_once(&server);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = round => {}
        }
    }
}

#[tracing::instrument(skip_all)]
async fn scrape_once(server: &Arc<ApiServer>) {
    use futures::StreamExt;
    let Some(info) = skiff_api::registry::find("", "v1", "nodes") else {
        return;
    };
    let nodes: Vec<Value> = match server
        .store
        .range(&crate::objects::prefix(info, None), None, 0, 0)
        .await
    {
        Ok(r) => r
            .kvs
            .iter()
            .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list nodes for the metrics scrape");
            return;
        }
    };
    let mut by_endpoint: BTreeMap<Endpoint, Vec<(String, Labels)>> = BTreeMap::new();
    for (name, labels, endpoint) in scrape_targets(&nodes) {
        by_endpoint
            .entry(endpoint)
            .or_default()
            .push((name, labels));
    }
    let bearer = server.config.node_token.clone();
    let bearer = &bearer;
    let rounds = futures::stream::iter(by_endpoint)
        .map(|(endpoint, nodes)| async move {
            let names: Vec<String> = nodes.iter().map(|(n, _)| n.clone()).collect();
            let scraped = tokio::time::timeout(
                SCRAPE_TIMEOUT,
                scrape_endpoint(&endpoint, &names, bearer),
            )
            .await
            .unwrap_or_else(|_| Err("timed out".into()));
            match scraped {
                Ok(samples) => {
                    let labels: HashMap<String, BTreeMap<String, String>> =
                        nodes.into_iter().collect();
                    samples
                        .into_iter()
                        .map(|(n, s)| {
                            let l = labels.get(&n).cloned().unwrap_or_default();
                            (n, l, s)
                        })
                        .collect::<Vec<_>>()
                }
                Err(e) => {
                    tracing::debug!(host = %endpoint.host, port = endpoint.port, error = %e, "kubelet scrape failed");
                    Vec::new()
                }
            }
        })
        .buffer_unordered(SCRAPE_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    server
        .metrics_api
        .update(rounds.into_iter().flatten().collect());
}

fn quantity_cpu(cores: f64) -> String {
    format!("{}n", (cores * 1e9).round().max(0.0) as u64)
}

fn quantity_memory(bytes: f64) -> String {
    format!("{}Ki", (bytes / 1024.0).round().max(0.0) as u64)
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A Go duration string such as `1.002s`.
fn window(ms: i64) -> String {
    let s = format!("{:.3}", ms as f64 / 1000.0);
    format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
}

fn api_version() -> String {
    format!("{GROUP}/{VERSION}")
}

fn node_object(name: &str, m: &NodeMetrics) -> Value {
    json!({
        "kind": "NodeMetrics",
        "apiVersion": api_version(),
        "metadata": {
            "name": name,
            "creationTimestamp": time(chrono::Utc::now().timestamp_millis()),
            "labels": m.labels,
        },
        "timestamp": time(m.usage.timestamp_ms),
        "window": window(m.usage.window_ms),
        "usage": {"cpu": quantity_cpu(m.usage.cpu), "memory": quantity_memory(m.usage.memory)},
    })
}

fn pod_object(ns: &str, name: &str, m: &PodMetrics, labels: Option<&Value>) -> Value {
    let mut metadata = json!({
        "name": name,
        "namespace": ns,
        "creationTimestamp": time(chrono::Utc::now().timestamp_millis()),
    });
    if let Some(l) = labels {
        metadata["labels"] = l.clone();
    }
    json!({
        "kind": "PodMetrics",
        "apiVersion": api_version(),
        "metadata": metadata,
        "timestamp": time(m.timestamp_ms),
        "window": window(m.window_ms),
        "containers": m.containers.iter().map(|(c, cpu, mem)| json!({
            "name": c,
            "usage": {"cpu": quantity_cpu(*cpu), "memory": quantity_memory(*mem)},
        })).collect::<Vec<_>>(),
    })
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": kind, "apiVersion": api_version(), "metadata": {}, "items": items})
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    crate::objects::Query::parse(query)
        .get(key)
        .map(str::to_string)
}

/// Labels of the stored pods (of one namespace or all), by (namespace, name).
async fn pod_labels(
    server: &ApiServer,
    namespace: Option<&str>,
) -> Result<HashMap<(String, String), Value>, ApiError> {
    let info = skiff_api::registry::find("", "v1", "pods").ok_or_else(ApiError::no_route)?;
    let r = server
        .store
        .range(&crate::objects::prefix(info, namespace), None, 0, 0)
        .await
        .map_err(|e| ApiError::new(500, "InternalError", e.to_string()))?;
    Ok(r.kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
        .filter_map(|p| {
            let ns = p.pointer("/metadata/namespace")?.as_str()?.to_string();
            let name = p.pointer("/metadata/name")?.as_str()?.to_string();
            let labels = p
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or_else(|| json!({}));
            Some(((ns, name), labels))
        })
        .collect())
}

fn not_found(plural: &str, name: &str) -> ApiError {
    ApiError::not_found(GROUP, plural, name)
}

/// Serves `GET /apis/metrics.k8s.io/v1beta1/{rest}`.
pub async fn serve(
    server: &ApiServer,
    rest: &str,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let selector = match query_param(query, "labelSelector") {
        Some(s) => LabelSelector::parse(&s).map_err(|e| ApiError::bad_request(e.0))?,
        None => LabelSelector::everything(),
    };
    let snapshot = server.metrics_api.snapshot();
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let body = match segments.as_slice() {
        ["nodes"] => list(
            "NodeMetricsList",
            snapshot
                .nodes
                .iter()
                .filter(|(_, m)| selector.matches(&m.labels))
                .map(|(n, m)| node_object(n, m))
                .collect(),
        ),
        ["nodes", name] => snapshot
            .nodes
            .get(*name)
            .map(|m| node_object(name, m))
            .ok_or_else(|| not_found("nodes", name))?,
        ["pods"] | ["namespaces", _, "pods"] => {
            let namespace = match segments.as_slice() {
                ["namespaces", ns, "pods"] => Some(*ns),
                _ => None,
            };
            let labels = pod_labels(server, namespace).await?;
            let items = snapshot
                .pods
                .iter()
                .filter(|((ns, _), _)| namespace.is_none_or(|want| want == ns))
                .filter_map(|((ns, name), m)| {
                    // A pod no longer stored has no metrics, as with metrics-server.
                    let l = labels.get(&(ns.clone(), name.clone()))?;
                    selector
                        .matches_object(&json!({"metadata": {"labels": l}}))
                        .then(|| pod_object(ns, name, m, Some(l)))
                })
                .collect();
            list("PodMetricsList", items)
        }
        ["namespaces", ns, "pods", name] => {
            let key = (ns.to_string(), name.to_string());
            let m = snapshot
                .pods
                .get(&key)
                .ok_or_else(|| not_found("pods", name))?;
            let labels = pod_labels(server, Some(ns)).await?;
            let l = labels.get(&key).ok_or_else(|| not_found("pods", name))?;
            pod_object(ns, name, m, Some(l))
        }
        _ => return Err(ApiError::no_route()),
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// `/apis/metrics.k8s.io/v1beta1`.
pub fn resource_list() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": api_version(),
        "resources": [
            {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
            {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
        ],
    })
}

/// The group's entry in aggregated discovery (`/apis`, `apidiscovery.k8s.io/v2`).
pub fn aggregated_item() -> Value {
    let resource = |plural: &str, kind: &str, scope: &str| {
        json!({
            "resource": plural,
            "responseKind": {"group": GROUP, "version": VERSION, "kind": kind},
            "scope": scope,
            "singularResource": "",
            "verbs": ["get", "list"],
        })
    };
    json!({
        "metadata": {"name": GROUP, "creationTimestamp": null},
        "versions": [{
            "version": VERSION,
            "resources": [resource("nodes", "NodeMetrics", "Cluster"), resource("pods", "PodMetrics", "Namespaced")],
            "freshness": "Current",
        }],
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP node_cpu_usage_seconds_total x\n# TYPE node_cpu_usage_seconds_total counter\nnode_cpu_usage_seconds_total 10 1000\nnode_memory_working_set_bytes 2048 1000\ncontainer_cpu_usage_seconds_total{container=\"a\",namespace=\"default\",pod=\"web\"} 4 1000\ncontainer_memory_working_set_bytes{container=\"a\",namespace=\"default\",pod=\"web\"} 1024 1000\nscrape_error 0\n";

    #[test]
    fn parses_kubelet_resource_metrics() {
        let s = parse(TEXT);
        assert_eq!(s.timestamp_ms, 1000);
        assert_eq!(s.node_cpu_seconds, 10.0);
        assert_eq!(s.node_memory, 2048.0);
        assert_eq!(
            s.containers[&("default".into(), "web".into(), "a".into())],
            (4.0, 1024.0)
        );
    }

    #[test]
    fn cpu_is_the_rate_between_two_samples() {
        let prev = parse(TEXT);
        let cur = parse(
            &TEXT
                .replace(" 1000", " 3000")
                .replace("total 10 ", "total 12 ")
                .replace("} 4 ", "} 5 "),
        );
        let (node, pods) = rates(&prev, &cur).unwrap();
        assert_eq!(node.window_ms, 2000);
        assert!((node.cpu - 1.0).abs() < 1e-9);
        assert_eq!(node.memory, 2048.0);
        let web = &pods[&("default".into(), "web".into())];
        assert_eq!(web.containers, vec![("a".to_string(), 0.5, 1024.0)]);
        assert!(rates(&cur, &prev).is_none(), "no window backwards");
        // A container without a previous sample holds its pod back.
        let mut newer = cur.clone();
        newer.timestamp_ms = 4000;
        newer
            .containers
            .insert(("default".into(), "web".into(), "b".into()), (1.0, 1.0));
        assert!(rates(&cur, &newer).unwrap().1.is_empty());
    }

    #[test]
    fn formats_like_metrics_server() {
        assert_eq!(quantity_cpu(0.25), "250000000n");
        assert_eq!(quantity_memory(64.0 * 1024.0 * 1024.0), "65536Ki");
        assert_eq!(window(1002), "1.002s");
        assert_eq!(window(15000), "15s");
        assert_eq!(time(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn scrapes_only_ready_pinned_nodes() {
        let node = |name: &str, ready: &str, cert: bool| {
            let mut n = json!({
                "metadata": {"name": name, "labels": {"a": "b"}, "annotations": {}},
                "status": {
                    "conditions": [{"type": "Ready", "status": ready}],
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                },
            });
            if cert {
                n["metadata"]["annotations"][CERT_ANNOTATION] = json!("AB");
            }
            n
        };
        let t = scrape_targets(&[
            node("a", "True", true),
            node("b", "False", true),
            node("c", "True", false),
        ]);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].0, "a");
        assert_eq!(t[0].2.cert_sha256, "ab");
        assert_eq!(t[0].1["a"], "b");
    }
}
