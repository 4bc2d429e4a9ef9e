//! Controllers: level-triggered reconcilers that talk to the API server only through a kube client.

pub mod apiservice;
pub mod claim;
pub mod clock;
pub mod clusterroleaggregation;
pub mod cronjob;
pub mod csrsigning;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod events;
pub mod expectations;
pub mod garbage_collector;
pub mod history;
pub mod job;
pub mod leader;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod pod_util;
pub mod podautoscaler;
pub mod podgc;
pub mod replicaset;
pub mod resourcequota;
pub mod resources;
pub mod rootcacert;
pub mod runtime;
pub mod serviceaccount;
pub mod statefulset;
pub mod tokens;
pub mod ttl_after_finished;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Controller settings (upstream kube-controller-manager flags).
#[derive(Debug, Clone)]
pub struct Settings {
    pub node_lifecycle: nodelifecycle::Settings,
    pub podgc: podgc::Settings,
    pub podautoscaler: podautoscaler::Settings,
    pub resourcequota: resourcequota::Settings,
    /// The cluster CA (PEM) published in every namespace (None: not published).
    pub root_ca: Option<std::sync::Arc<str>>,
    /// The range node pod CIDRs come from (None: nodes get none).
    pub cluster_cidr: Option<nodeipam::ClusterCidr>,
    /// The cluster CA's signer of approved CertificateSigningRequests (None: none signed).
    pub csr_signer: Option<csrsigning::CsrSigner>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            node_lifecycle: nodelifecycle::Settings::default(),
            podgc: podgc::Settings::default(),
            podautoscaler: podautoscaler::Settings::default(),
            resourcequota: resourcequota::Settings::default(),
            root_ca: None,
            cluster_cidr: nodeipam::ClusterCidr::parse("10.42.0.0/16"),
            csr_signer: None,
        }
    }
}

/// Runs every controller over `client` with default settings until `cancel` fires.
pub async fn run(client: kube::Client, cancel: CancellationToken) {
    run_with(client, Settings::default(), cancel).await
}

/// Runs every controller over `client` until `cancel` fires, and returns once all have stopped.
///
/// The caller decides when this runs: `skiff server` runs it while it holds the controller
/// lease (see [`leader`]).
pub async fn run_with(client: kube::Client, settings: Settings, cancel: CancellationToken) {
    let informers = runtime::Informers::new(client, cancel.clone());
    run_in(informers.clone(), settings, cancel).await;
    informers.stopped().await;
}

/// Runs every controller on `informers` until `cancel` fires, and returns once all have
/// stopped; the informers keep running. `skiff server` keeps one set of informers for the
/// whole process, so that the scheduler shares the pod cache and a new lease term starts warm.
pub async fn run_in(
    informers: std::sync::Arc<runtime::Informers>,
    settings: Settings,
    cancel: CancellationToken,
) {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::ReplicationController;
    let client = informers.client().clone();
    let mut tasks = JoinSet::new();
    tasks.spawn(garbage_collector::run_telling(
        client.clone(),
        Some(informers.deletions().clone()),
        cancel.clone(),
    ));
    tasks.spawn(namespace::run(client, cancel.clone()));
    tasks.spawn(replicaset::run::<ReplicaSet>(
        informers.clone(),
        5,
        cancel.clone(),
    ));
    tasks.spawn(replicaset::run::<ReplicationController>(
        informers.clone(),
        5,
        cancel.clone(),
    ));
    tasks.spawn(deployment::run(informers.clone(), 5, cancel.clone()));
    tasks.spawn(job::run(
        informers.clone(),
        5,
        job::Config::default(),
        cancel.clone(),
    ));
    tasks.spawn(cronjob::run(
        informers.clone(),
        5,
        std::sync::Arc::new(clock::SystemClock),
        cancel.clone(),
    ));
    tasks.spawn(ttl_after_finished::run(
        informers.clone(),
        5,
        cancel.clone(),
    ));
    tasks.spawn(daemonset::run(informers.clone(), 2, cancel.clone()));
    tasks.spawn(statefulset::run(informers.clone(), 2, cancel.clone()));
    tasks.spawn(endpoints::run(informers.clone(), 5, cancel.clone()));
    tasks.spawn(endpointslice::run(informers.clone(), 5, cancel.clone()));
    tasks.spawn(serviceaccount::run(informers.clone(), cancel.clone()));
    tasks.spawn(tokens::run(informers.clone(), cancel.clone()));
    tasks.spawn(apiservice::run(informers.clone(), cancel.clone()));
    tasks.spawn(clusterroleaggregation::run(
        informers.clone(),
        cancel.clone(),
    ));
    tasks.spawn(disruption::run(informers.clone(), cancel.clone()));
    tasks.spawn(nodelifecycle::run(
        informers.clone(),
        settings.node_lifecycle,
        cancel.clone(),
    ));
    tasks.spawn(podautoscaler::run(
        informers.clone(),
        settings.podautoscaler,
        cancel.clone(),
    ));
    tasks.spawn(resourcequota::run(
        informers.clone(),
        settings.resourcequota,
        cancel.clone(),
    ));
    if let Some(ca) = &settings.root_ca {
        tasks.spawn(rootcacert::run(
            informers.clone(),
            ca.to_string(),
            cancel.clone(),
        ));
    }
    if let Some(signer) = settings.csr_signer.clone() {
        tasks.spawn(csrsigning::run(informers.clone(), signer, cancel.clone()));
    }
    if let Some(range) = settings.cluster_cidr {
        tasks.spawn(nodeipam::run(informers.clone(), range, cancel.clone()));
    }
    tasks.spawn(podgc::run(
        informers.clone(),
        settings.podgc,
        cancel.clone(),
    ));
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
