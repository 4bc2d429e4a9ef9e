//! The connection to the API server: kubeconfig loading and raw JSON requests over kube's client.

use std::path::PathBuf;
use std::time::Duration;

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::{CliError, Result};

/// The local server's kubeconfig, used when neither `--kubeconfig` nor `KUBECONFIG` is set.
const LOCAL_KUBECONFIG: &str = "/var/lib/skiff/admin.kubeconfig";

/// Table output as kubectl asks for it.
pub const ACCEPT_TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// Flags every verb shares, as kubectl's global flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnArgs {
    /// Path to the kubeconfig file to use for CLI requests.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// If present, the namespace scope for this CLI request.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// How long to wait for one server request (e.g. 30s, 1m); 0 means the default of 60s.
    #[arg(long, default_value = "0")]
    pub request_timeout: String,
}

/// A connected client: kube's HTTPS client plus the namespace to use.
pub struct Api {
    client: kube::Client,
    /// The namespace from `-n`, else the kubeconfig context's, else `default`.
    pub namespace: String,
    /// `-n` was given.
    pub explicit_namespace: bool,
    timeout: Duration,
}

/// Parses kubectl durations: `30s`, `1m`, `2h`, `1m30s`, `500ms`, a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || CliError::client(format!("invalid duration {s:?}"));
    let s = s.trim();
    if let Ok(n) = s.parse::<f64>() {
        return if n >= 0.0 {
            Ok(Duration::from_secs_f64(n))
        } else {
            Err(bad())
        };
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ms" => n / 1000.0,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::from_secs_f64(secs);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

impl Api {
    pub async fn connect(args: &ConnArgs) -> Result<Api> {
        let path = args
            .kubeconfig
            .clone()
            .or_else(|| {
                std::env::var_os("KUBECONFIG")
                    .filter(|v| !v.is_empty())
                    .and_then(|v| std::env::split_paths(&v).next())
            })
            .unwrap_or_else(|| PathBuf::from(LOCAL_KUBECONFIG));
        let kubeconfig = kube::config::Kubeconfig::read_from(&path).map_err(|e| {
            CliError::client(format!("cannot load kubeconfig {}: {e}", path.display()))
        })?;
        let mut config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| CliError::client(format!("invalid kubeconfig {}: {e}", path.display())))?;
        config.connect_timeout = Some(Duration::from_secs(10));
        // Watches stay open; each plain request is bounded by `timeout` instead.
        config.read_timeout = None;
        let timeout = match parse_duration(&args.request_timeout)? {
            d if d.is_zero() => Duration::from_secs(60),
            d => d,
        };
        let namespace = args
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config)
            .map_err(|e| CliError::client(format!("cannot build the client: {e}")))?;
        Ok(Api {
            client,
            namespace,
            explicit_namespace: args.namespace.is_some(),
            timeout,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.request(Method::GET, path, None, None).await
    }

    /// One request with a JSON answer; a non-2xx answer becomes [`CliError::Server`].
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        accept: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Value> {
        let fut = async {
            let resp = self.send(method, path, accept, body).await?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| CliError::client(format!("reading the answer to {path}: {e}")))?
                .to_bytes();
            if !status.is_success() {
                return Err(status_error(status, &bytes));
            }
            if bytes.is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_slice(&bytes).map_err(|e| {
                CliError::client(format!("the server sent invalid JSON for {path}: {e}"))
            })
        };
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| {
            CliError::client(format!(
                "the server did not answer {path} within {:?}",
                self.timeout
            ))
        })?
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        accept: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<http::Response<kube::client::Body>> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::ACCEPT, accept.unwrap_or("application/json"));
        let bytes = match body {
            Some((ct, b)) => {
                req = req.header(http::header::CONTENT_TYPE, ct);
                b
            }
            None => Vec::new(),
        };
        let req = req
            .body(kube::client::Body::from(bytes))
            .map_err(|e| CliError::client(format!("invalid request {path}: {e}")))?;
        self.client
            .send(req)
            .await
            .map_err(|e| CliError::client(format!("cannot reach the server: {e}")))
    }

    /// Opens a watch (the path carries `watch=1`); events come one JSON object per line.
    pub async fn watch(&self, path: &str, accept: Option<&str>) -> Result<WatchStream> {
        let resp = tokio::time::timeout(self.timeout, self.send(Method::GET, path, accept, None))
            .await
            .map_err(|_| CliError::client(format!("the server did not answer {path}")))??;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes().to_vec())
                .unwrap_or_default();
            return Err(status_error(status, &bytes));
        }
        Ok(WatchStream {
            body: resp.into_body(),
            buf: Vec::new(),
        })
    }
}

/// The events of one watch response.
pub struct WatchStream {
    body: kube::client::Body,
    buf: Vec<u8>,
}

impl WatchStream {
    /// The next event (`{"type": ..., "object": ...}`), or `None` when the server ended the watch.
    pub async fn next(&mut self) -> Result<Option<Value>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let ev: Value = serde_json::from_slice(&line)
                    .map_err(|e| CliError::client(format!("invalid watch event: {e}")))?;
                if ev.get("type").and_then(Value::as_str) == Some("ERROR") {
                    let obj = ev.get("object").cloned().unwrap_or(Value::Null);
                    return Err(status_value_error(&obj, StatusCode::INTERNAL_SERVER_ERROR));
                }
                return Ok(Some(ev));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(CliError::client(format!("watch ended: {e}"))),
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        self.buf.extend_from_slice(data);
                    }
                }
            }
        }
    }
}

fn status_error(status: StatusCode, body: &[u8]) -> CliError {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.get("kind").and_then(Value::as_str) == Some("Status") => {
            status_value_error(&v, status)
        }
        _ => {
            let text = String::from_utf8_lossy(body).trim().to_string();
            let message = if text.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("unknown")
                    .to_lowercase()
            } else {
                text
            };
            CliError::Server {
                reason: reason_for(status).to_string(),
                message,
            }
        }
    }
}

fn status_value_error(v: &Value, status: StatusCode) -> CliError {
    let code = v
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| StatusCode::from_u16(c as u16).ok())
        .unwrap_or(status);
    let reason = v
        .get("reason")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| reason_for(code));
    CliError::Server {
        reason: reason.to_string(),
        message: v
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string(),
    }
}

fn reason_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        504 => "Timeout",
        503 => "ServiceUnavailable",
        _ => "InternalError",
    }
}

/// Percent-encodes a query parameter value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").ok(), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s").ok(), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("5").ok(), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_duration("500ms").ok(),
            Some(Duration::from_millis(500))
        );
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn encoding() {
        assert_eq!(encode("app in (a,b)"), "app%20in%20%28a%2Cb%29");
    }
}
