//! An API server on a memory store, reached through a kube client in process.

#![allow(dead_code)] // each test file uses its own part

use kube::Client;
use serde_json::Value;
use tokio_util::sync::{CancellationToken, DropGuard};

pub struct Server {
    pub client: Client,
    pub store: skiff_store::Store,
    _stop: DropGuard,
}

pub async fn server() -> Server {
    let cancel = CancellationToken::new();
    let store = skiff_store::Store::memory();
    let config = skiff_apiserver::Config {
        advertise_address: "127.0.0.1:6443".into(),
        service_cidr: "10.43.0.0/16".into(),
        admin_token: "admin".into(),
        node_token: "node".into(),
    };
    let (api, _feeder) = skiff_apiserver::ApiServer::new(store.clone(), config, cancel.clone())
        .await
        .expect("api server starts");
    Server {
        client: Client::new(api.router(), "default"),
        store,
        _stop: cancel.drop_guard(),
    }
}

/// Sends a raw request: its status, headers and body (as JSON, null when it is not).
pub async fn send(client: &Client, req: http::Request<Vec<u8>>) -> (u16, http::HeaderMap, Value) {
    let resp = client
        .send(req.map(Into::into))
        .await
        .expect("request is answered");
    let code = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body reads")
        .to_bytes();
    (
        code,
        headers,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// A GET, with an optional `If-None-Match`.
pub async fn get(
    client: &Client,
    uri: &str,
    if_none_match: Option<&str>,
) -> (u16, http::HeaderMap, Value) {
    let mut req = http::Request::get(uri);
    if let Some(e) = if_none_match {
        req = req.header("If-None-Match", e);
    }
    send(client, req.body(Vec::new()).expect("request builds")).await
}
