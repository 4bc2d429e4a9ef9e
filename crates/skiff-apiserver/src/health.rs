//! `/healthz`, `/livez` and `/readyz`, with upstream's checks and output: `ok` while every
//! check passes, the checks one per line with `?verbose`, a 500 naming the failed checks
//! (their reasons go to the log), `?exclude=` to skip checks, and `/livez/<check>` for one.
//!
//! The checks: `ping` and `log` (the server answers), `etcd` (the datastore answers a read
//! within two seconds, whichever backend it is), and for readiness also `etcd-readiness`
//! (the same read) and `shutdown` (fails once the server has begun to stop, so that load
//! balancers take it out before it closes).

use std::time::Duration;

use axum::body::Body;
use http::{Response, StatusCode, header};

use crate::objects::Query;
use crate::server::ApiServer;
use skiff_api::status::ApiError;

/// How long the datastore may take to answer the health read (upstream's
/// `--etcd-healthcheck-timeout` default).
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// The key the datastore check reads, as upstream's etcd check reads `<prefix>/health`.
const HEALTH_KEY: &str = "/registry/health";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Check {
    Ping,
    Log,
    Etcd,
    EtcdReadiness,
    Shutdown,
}

impl Check {
    fn name(self) -> &'static str {
        match self {
            Check::Ping => "ping",
            Check::Log => "log",
            Check::Etcd => "etcd",
            Check::EtcdReadiness => "etcd-readiness",
            Check::Shutdown => "shutdown",
        }
    }
}

/// The checks of `endpoint` (`healthz`, `livez` or `readyz`), in upstream's order.
fn checks(endpoint: &str) -> &'static [Check] {
    match endpoint {
        "readyz" => &[
            Check::Ping,
            Check::Log,
            Check::Etcd,
            Check::EtcdReadiness,
            Check::Shutdown,
        ],
        _ => &[Check::Ping, Check::Log, Check::Etcd],
    }
}

async fn run(server: &ApiServer, check: Check) -> Result<(), String> {
    match check {
        Check::Ping | Check::Log => Ok(()),
        Check::Etcd | Check::EtcdReadiness => {
            match tokio::time::timeout(STORE_TIMEOUT, server.store.get(HEALTH_KEY)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!(
                    "error reading the datastore: {}",
                    crate::server::error_chain(&e)
                )),
                Err(_) => Err(format!(
                    "the datastore did not answer within {} s",
                    STORE_TIMEOUT.as_secs()
                )),
            }
        }
        Check::Shutdown => {
            if server.cancel.is_cancelled() {
                Err("the server is shutting down".to_string())
            } else {
                Ok(())
            }
        }
    }
}

fn plain(code: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header("x-content-type-options", "nosniff")
        .body(Body::from(body))
        .unwrap_or_default()
}

/// Answers `/{endpoint}` (all its checks) or `/{endpoint}/{check}` (one).
pub async fn answer(
    server: &ApiServer,
    endpoint: &str,
    single: Option<&str>,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let all = checks(endpoint);
    if let Some(name) = single {
        let check = all
            .iter()
            .find(|c| c.name() == name)
            .ok_or_else(ApiError::no_route)?;
        return Ok(match run(server, *check).await {
            Ok(()) => plain(StatusCode::OK, "ok".to_string()),
            Err(e) => {
                tracing::warn!(check = name, error = %e, "{endpoint} check failed");
                plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("internal server error: {e}\n"),
                )
            }
        });
    }
    let excluded: Vec<&str> = query
        .all("exclude")
        .into_iter()
        .flat_map(|v| v.split(','))
        .filter(|v| !v.is_empty())
        .collect();
    let mut output = String::new();
    let mut failed = Vec::new();
    // `etcd` and `etcd-readiness` ask the same question: the datastore is read once.
    let mut store: Option<Result<(), String>> = None;
    for check in all {
        let name = check.name();
        if excluded.contains(&name) {
            output.push_str(&format!("[+]{name} excluded: ok\n"));
            continue;
        }
        let result = match (check, &store) {
            (Check::Etcd | Check::EtcdReadiness, Some(known)) => known.clone(),
            (Check::Etcd | Check::EtcdReadiness, None) => {
                let result = run(server, *check).await;
                store = Some(result.clone());
                result
            }
            _ => run(server, *check).await,
        };
        match result {
            Ok(()) => output.push_str(&format!("[+]{name} ok\n")),
            Err(e) => {
                tracing::warn!(check = name, error = %e, "{endpoint} check failed");
                output.push_str(&format!("[-]{name} failed: reason withheld\n"));
                failed.push(name);
            }
        }
    }
    let unknown: Vec<&str> = excluded
        .iter()
        .filter(|e| !all.iter().any(|c| c.name() == **e))
        .copied()
        .collect();
    if !unknown.is_empty() {
        let quoted: Vec<String> = unknown.iter().map(|u| format!("{u:?}")).collect();
        output.push_str(&format!(
            "warning: some health checks cannot be excluded: no matches for {}\n",
            quoted.join(",")
        ));
    }
    if !failed.is_empty() {
        return Ok(plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{output}{endpoint} check failed\n"),
        ));
    }
    if query.get("verbose").is_none() {
        return Ok(plain(StatusCode::OK, "ok".to_string()));
    }
    Ok(plain(
        StatusCode::OK,
        format!("{output}{endpoint} check passed\n"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_has_more_checks_than_liveness() {
        let names = |e| checks(e).iter().map(|c| c.name()).collect::<Vec<_>>();
        assert_eq!(names("livez"), vec!["ping", "log", "etcd"]);
        assert_eq!(names("healthz"), names("livez"));
        assert_eq!(
            names("readyz"),
            vec!["ping", "log", "etcd", "etcd-readiness", "shutdown"]
        );
    }
}
