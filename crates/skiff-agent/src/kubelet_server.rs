//! The agent's kubelet-style HTTPS endpoint: `GET /metrics/resource?node=NAME` for the metrics scraper.
//!
//! The certificate is self-signed and generated at start; its SHA-256 is published on each Node
//! (annotation `hollow.skiff.dev/kubelet-cert-sha256`) so the scraper can pin it. Requests must
//! carry the cluster's node token as a bearer token. See docs/adr/002-agent-metrics-endpoint.md.

use crate::hollow::usage::{self, Usage};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum KubeletServerError {
    #[error("cannot generate the kubelet serving certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("invalid kubelet serving certificate: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot listen on {0} for the kubelet endpoint: {1}")]
    Listen(SocketAddr, std::io::Error),
}

/// A bound, not yet serving, kubelet endpoint.
pub struct KubeletServer {
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    pub port: u16,
    /// SHA-256 (hex) of the serving certificate's DER.
    pub cert_sha256: String,
}

/// What requests are answered from.
pub struct Backend {
    pub usage: Arc<Usage>,
    /// Node name to index.
    pub nodes: HashMap<String, usize>,
    pub bearer: String,
}

impl KubeletServer {
    pub async fn bind(
        ip: IpAddr,
        port: u16,
        names: &[String],
    ) -> Result<KubeletServer, KubeletServerError> {
        let mut sans = vec![ip.to_string(), "127.0.0.1".to_string(), "localhost".into()];
        // A few names are enough for a human's curl; the scraper pins the certificate itself.
        sans.extend(names.iter().take(16).cloned());
        sans.dedup();
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(sans)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "skiff-hollow-kubelet");
        let cert = params.self_signed(&key)?;
        let cert_sha256 = crate::join::sha256_hex(cert.der());
        let der = rustls::pki_types::CertificateDer::from(cert.der().to_vec());
        let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
        );
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![der], key_der)?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let addr = SocketAddr::new(ip, port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| KubeletServerError::Listen(addr, e))?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
        Ok(KubeletServer {
            listener,
            tls: Arc::new(tls),
            port,
            cert_sha256,
        })
    }

    /// Serves until `cancel` fires.
    pub async fn serve(self, backend: Arc<Backend>, cancel: CancellationToken) {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.tls);
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let (tcp, _) = tokio::select! {
                _ = cancel.cancelled() => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => continue,
                r = self.listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "kubelet endpoint accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let (acceptor, backend, cancel) = (acceptor.clone(), backend.clone(), cancel.clone());
            conns.spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp))
                        .await
                else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| {
                    let backend = backend.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(&backend, &req)) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service);
                tokio::select! {
                    _ = conn => {}
                    _ = cancel.cancelled() => {}
                }
            });
        }
        conns.shutdown().await;
    }
}

fn reply(code: StatusCode, body: String) -> Response<Full<bytes::Bytes>> {
    Response::builder()
        .status(code)
        .header(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .body(Full::new(bytes::Bytes::from(body)))
        .unwrap_or_default()
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// `node` from the query string.
fn node_param(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("node="))
        .filter(|v| !v.is_empty())
}

fn handle<B>(backend: &Backend, req: &Request<B>) -> Response<Full<bytes::Bytes>> {
    if req.uri().path() == "/healthz" {
        return reply(StatusCode::OK, "ok".into());
    }
    let authorized = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| constant_time_eq(t.trim(), &backend.bearer));
    if !authorized {
        return reply(StatusCode::UNAUTHORIZED, "Unauthorized\n".into());
    }
    if req.method() != http::Method::GET || req.uri().path() != "/metrics/resource" {
        return reply(StatusCode::NOT_FOUND, "404 page not found\n".into());
    }
    let index = match node_param(req.uri().query()) {
        Some(name) => backend.nodes.get(name).copied(),
        None if backend.nodes.len() == 1 => backend.nodes.values().next().copied(),
        None => {
            return reply(
                StatusCode::BAD_REQUEST,
                "this agent serves several nodes: pass ?node=NAME\n".into(),
            );
        }
    };
    let Some(index) = index else {
        return reply(StatusCode::NOT_FOUND, "no such node on this agent\n".into());
    };
    let ts = k8s_openapi::jiff::Timestamp::now().as_millisecond();
    let sample = backend.usage.sample(index, std::time::Instant::now());
    reply(StatusCode::OK, usage::render(&sample, ts))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn backend() -> Backend {
        Backend {
            usage: Arc::new(Usage::default()),
            nodes: HashMap::from([("a".to_string(), 0), ("b".to_string(), 1)]),
            bearer: "tok".into(),
        }
    }

    fn get(path: &str, token: Option<&str>) -> Response<Full<bytes::Bytes>> {
        let mut r = Request::get(path);
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        handle(&backend(), &r.body(()).unwrap())
    }

    #[test]
    fn serves_metrics_per_node_to_token_holders() {
        assert_eq!(get("/metrics/resource?node=a", None).status(), 401);
        assert_eq!(get("/metrics/resource?node=a", Some("bad")).status(), 401);
        assert_eq!(get("/metrics/resource?node=a", Some("tok")).status(), 200);
        assert_eq!(get("/metrics/resource?node=z", Some("tok")).status(), 404);
        assert_eq!(get("/metrics/resource", Some("tok")).status(), 400);
        assert_eq!(get("/healthz", None).status(), 200);
    }
}
