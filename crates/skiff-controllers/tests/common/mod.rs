//! What the controller integration tests share: an in-process API server over a memory store,
//! a cluster handle that stops everything on drop, and polling with a deadline.

#![allow(dead_code)]

use kube::Client;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A running API server (and whatever the test started beside it); stops on drop.
pub struct Cluster {
    pub client: Client,
    pub cancel: CancellationToken,
    pub _tasks: JoinSet<()>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// An API server over a memory store, its cache feeder on `tasks`; a client over its router.
pub async fn api_server(cancel: &CancellationToken, tasks: &mut JoinSet<()>) -> Client {
    let config = skiff_apiserver::Config {
        advertise_address: "127.0.0.1:6443".into(),
        service_cidr: "10.43.0.0/16".into(),
        admin_token: "admin".into(),
        node_token: "node".into(),
    };
    let (api, feeder) =
        skiff_apiserver::ApiServer::new(skiff_store::Store::memory(), config, cancel.clone())
            .await
            .expect("api server starts");
    tasks.spawn(async move {
        let _ = feeder.await;
    });
    Client::new(api.router(), "default")
}

/// Polls `check` every 50 ms until it holds, for at most 30 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
