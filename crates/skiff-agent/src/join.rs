//! Joining a cluster: the k3s-style join token, fetching and pinning the cluster CA, the API client.

use http_body_util::BodyExt;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::Arc;
use std::time::Duration;

/// The prefix of a full join token; the SHA-256 of the CA certificate PEM follows it.
const TOKEN_PREFIX: &str = "K10";

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(
        "invalid join token: expected K10<sha256 of the cluster CA>::node:<secret> (the contents of DATA/node-token on the server)"
    )]
    TokenFormat,
    #[error("cannot read token file {path}: {source}")]
    TokenFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid --server {0:?}: expected https://HOST:PORT")]
    ServerUrl(String),
    #[error("cannot fetch the cluster CA from {url}: {reason}")]
    FetchCa { url: String, reason: String },
    #[error(
        "the cluster CA served by {server} does not match the join token (sha256 {actual}, token expects {expected}): wrong token or wrong server"
    )]
    CaMismatch {
        server: String,
        expected: String,
        actual: String,
    },
    #[error("the cluster CA served by {0} is not a PEM certificate")]
    CaPem(String),
    #[error("cannot build the API client: {0}")]
    Client(#[source] kube::Error),
}

/// A parsed join token: the pinned CA hash and the bearer token sent to the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// Lower-case hex SHA-256 of the CA certificate PEM.
    pub ca_hash: String,
    /// The whole token; the API server accepts it as a bearer token.
    pub bearer: String,
}

impl JoinToken {
    pub fn parse(raw: &str) -> Result<JoinToken, JoinError> {
        let raw = raw.trim();
        let rest = raw
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(JoinError::TokenFormat)?;
        let (hash, credentials) = rest.split_once("::").ok_or(JoinError::TokenFormat)?;
        let (user, secret) = credentials.split_once(':').ok_or(JoinError::TokenFormat)?;
        if hash.len() != 64
            || !hash.bytes().all(|b| b.is_ascii_hexdigit())
            || user.is_empty()
            || secret.is_empty()
        {
            return Err(JoinError::TokenFormat);
        }
        Ok(JoinToken {
            ca_hash: hash.to_ascii_lowercase(),
            bearer: raw.to_string(),
        })
    }

    /// `value` is the token itself or the path of a file holding it.
    pub fn from_arg(value: &str) -> Result<JoinToken, JoinError> {
        let path = std::path::Path::new(value);
        if !value.starts_with(TOKEN_PREFIX) && path.is_file() {
            let contents =
                std::fs::read_to_string(path).map_err(|source| JoinError::TokenFile {
                    path: value.to_string(),
                    source,
                })?;
            return JoinToken::parse(&contents);
        }
        JoinToken::parse(value)
    }
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Accepts any server certificate: used only to download material whose hash is checked afterwards.
#[derive(Debug)]
pub struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl AcceptAnyCert {
    pub fn new() -> AcceptAnyCert {
        AcceptAnyCert(Arc::new(rustls::crypto::ring::default_provider()))
    }
}

impl Default for AcceptAnyCert {
    fn default() -> Self {
        AcceptAnyCert::new()
    }
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `https://host:port[/]` split into host and port.
fn host_port(server: &str) -> Result<(String, u16), JoinError> {
    let bad = || JoinError::ServerUrl(server.to_string());
    let uri: http::Uri = server.parse().map_err(|_| bad())?;
    if uri.scheme_str() != Some("https") {
        return Err(bad());
    }
    let host = uri.host().ok_or_else(bad)?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok((host, uri.port_u16().unwrap_or(443)))
}

/// GETs `path` from `host:port` over TLS without verifying the server; returns the body.
pub async fn get_unverified(
    host: &str,
    port: u16,
    path: &str,
    bearer: Option<&str>,
) -> Result<(http::StatusCode, bytes::Bytes), String> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AcceptAnyCert::new()))
    .with_no_client_auth();
    get_with(config, host, port, path, bearer).await
}

async fn get_with(
    config: rustls::ClientConfig,
    host: &str,
    port: u16,
    path: &str,
    bearer: Option<&str>,
) -> Result<(http::StatusCode, bytes::Bytes), String> {
    let work = async {
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        let mut req = http::Request::get(path).header(http::header::HOST, host);
        if let Some(t) = bearer {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| e.to_string())?;
        // The connection future drives the socket; it ends with the request.
        let (resp, _) = tokio::join!(
            async {
                let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
                let status = resp.status();
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                drop(sender);
                Ok::<_, String>((status, body))
            },
            conn
        );
        resp
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .map_err(|_| "timed out after 10s".to_string())?
}

/// Fetches the cluster CA from `server`'s `/cacerts` and checks it against the token's hash.
pub async fn fetch_ca(server: &str, token: &JoinToken) -> Result<String, JoinError> {
    let (host, port) = host_port(server)?;
    let url = format!("{}/cacerts", server.trim_end_matches('/'));
    let (status, body) = get_unverified(&host, port, "/cacerts", None)
        .await
        .map_err(|reason| JoinError::FetchCa {
            url: url.clone(),
            reason,
        })?;
    if !status.is_success() {
        return Err(JoinError::FetchCa {
            url,
            reason: format!("http status {status}"),
        });
    }
    let actual = sha256_hex(&body);
    if actual != token.ca_hash {
        return Err(JoinError::CaMismatch {
            server: server.to_string(),
            expected: token.ca_hash.clone(),
            actual,
        });
    }
    String::from_utf8(body.to_vec()).map_err(|_| JoinError::CaPem(server.to_string()))
}

/// A kube client for `server` trusting only `ca_pem` and authenticating with the token.
pub fn client(server: &str, ca_pem: &str, token: &JoinToken) -> Result<kube::Client, JoinError> {
    let url: http::Uri = server
        .parse()
        .map_err(|_| JoinError::ServerUrl(server.to_string()))?;
    let roots: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|_| JoinError::CaPem(server.to_string()))?;
    if roots.is_empty() {
        return Err(JoinError::CaPem(server.to_string()));
    }
    let mut config = kube::Config::new(url);
    config.root_cert = Some(roots);
    config.auth_info.token = Some(token.bearer.clone().into());
    // The agent is the node's kubelet: its writes are managed by "kubelet", as upstream's.
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static("kubelet/v1.35.0 (linux/amd64) skiff"),
    ));
    kube::Client::try_from(config).map_err(JoinError::Client)
}

/// Fetches and checks the CA, then builds the client.
pub async fn join(server: &str, token: &JoinToken) -> Result<kube::Client, JoinError> {
    let ca = fetch_ca(server, token).await?;
    client(server, &ca, token)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_tokens() {
        let hash = "ab".repeat(32);
        let t = JoinToken::parse(&format!("K10{hash}::node:s3cret\n")).unwrap();
        assert_eq!(t.ca_hash, hash);
        assert_eq!(t.bearer, format!("K10{hash}::node:s3cret"));
    }

    #[test]
    fn rejects_short_or_malformed_tokens() {
        for bad in [
            "s3cret",
            "K10abc::node:x",
            &format!("K10{}::node:", "ab".repeat(32)),
            &format!("K10{}:node:x", "ab".repeat(32)),
            &format!("K10{}::nodex", "zz".repeat(32)),
        ] {
            assert!(JoinToken::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_tokens_from_files() {
        let dir = std::env::temp_dir().join(format!("skiff-agent-token-{}", std::process::id()));
        std::fs::write(&dir, format!("K10{}::node:x\n", "01".repeat(32))).unwrap();
        let t = JoinToken::from_arg(dir.to_str().unwrap()).unwrap();
        assert_eq!(t.ca_hash, "01".repeat(32));
        let _ = std::fs::remove_file(&dir);
    }

    #[test]
    fn hashes_like_sha256sum() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn splits_server_urls() {
        assert_eq!(
            host_port("https://127.0.0.1:6443").unwrap(),
            ("127.0.0.1".to_string(), 6443)
        );
        assert!(host_port("http://127.0.0.1:6443").is_err());
    }
}
