//! Controllers: level-triggered reconcilers that talk to the API server only through a kube client.

pub mod events;
pub mod garbage_collector;
pub mod namespace;
pub mod resources;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Runs every controller over `client` until `cancel` fires, and returns once all have stopped.
///
/// The caller decides when this runs: `skiff server` starts it directly today; with leader
/// election (issue 3) only the holder of the controller lease will.
pub async fn run(client: kube::Client, cancel: CancellationToken) {
    let mut tasks = JoinSet::new();
    tasks.spawn(garbage_collector::run(client.clone(), cancel.clone()));
    tasks.spawn(namespace::run(client, cancel.clone()));
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r
            && e.is_panic()
        {
            tracing::error!(error = %e, "a controller panicked");
        }
        // A controller that ends before cancellation has failed; the others keep running.
        if !cancel.is_cancelled() {
            tracing::error!("a controller stopped before shutdown");
        }
    }
}
