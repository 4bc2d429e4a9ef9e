//! `skiff server`: the datastore, the API server over HTTPS, and the files clients need.

use skiff_apiserver::pki::{self, Pki};
use skiff_store::{CompactionPolicy, EtcdOptions, SqliteOptions, Store};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// Where the datastore, certificates and kubeconfig live.
    #[arg(long, default_value = "/var/lib/skiff")]
    pub data_dir: PathBuf,
    /// Address the API server listens on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    #[arg(long, default_value_t = 6443)]
    pub https_port: u16,
    /// `sqlite` (embedded, the default) or `etcd://HOST:PORT[,HOST:PORT...]`.
    #[arg(long, default_value = "sqlite")]
    pub datastore: String,
    /// Run only the control plane, no node agent on this machine.
    #[arg(long)]
    pub no_agent: bool,
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    #[arg(long, default_value = "10.43.0.0/16")]
    pub service_cidr: String,
    /// This node's name (defaults to the hostname).
    #[arg(long)]
    pub node_name: Option<String>,
    /// How often the metrics API scrapes the kubelets (metrics-server's --metric-resolution),
    /// e.g. `15s`, `1s`, `500ms`.
    #[arg(long, default_value = "15s", value_parser = parse_resolution)]
    pub metrics_resolution: std::time::Duration,
    /// Seconds a pod stays on a NotReady node before it is evicted (a toleration the API
    /// server adds to every pod that has none).
    #[arg(long, default_value_t = 300)]
    pub default_not_ready_toleration_seconds: i64,
    /// Seconds a pod stays on an unreachable node before it is evicted.
    #[arg(long, default_value_t = 300)]
    pub default_unreachable_toleration_seconds: i64,
    /// How often each HorizontalPodAutoscaler is evaluated, in seconds.
    #[arg(long, default_value_t = 15)]
    pub horizontal_pod_autoscaler_sync_period: u64,
    /// Seconds without a heartbeat after which a node is marked Unknown.
    #[arg(long, default_value_t = 40)]
    pub node_monitor_grace_period: u64,
    /// How long events are kept after their last update, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub event_ttl: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error("datastore: {0}")]
    Store(#[from] skiff_store::StoreError),
    #[error("invalid --datastore {0:?}: expected sqlite or etcd://HOST:PORT[,HOST:PORT...]")]
    Datastore(String),
    #[error("invalid --service-cidr {0:?}")]
    ServiceCidr(String),
    #[error("invalid --cluster-cidr {0:?}: expected an IPv4 range such as 10.42.0.0/16")]
    ClusterCidr(String),
    #[error("tls: {0}")]
    Pki(#[from] pki::PkiError),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("api server: {0}")]
    ApiServer(String),
}

fn parse_resolution(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration {s:?}: expected e.g. 15s, 1s or 500ms");
    let (n, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .ok_or_else(bad)?;
    let n: f64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    std::time::Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(bad)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// The address this machine would use for its default route. A UDP connect sends no packet.
fn node_ip() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    s.local_addr()
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified())
}

pub async fn open_store(datastore: &str, data_dir: &std::path::Path) -> Result<Store, ServerError> {
    if datastore == "sqlite" {
        let dir = data_dir.join("db");
        std::fs::create_dir_all(&dir).map_err(|e| ServerError::DataDir(dir.clone(), e))?;
        return Ok(Store::sqlite(&dir.join("state.db"), SqliteOptions::default()).await?);
    }
    if let Some(rest) = datastore.strip_prefix("etcd://") {
        let endpoints: Vec<String> = rest
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|e| format!("http://{e}"))
            .collect();
        if endpoints.is_empty() {
            return Err(ServerError::Datastore(datastore.into()));
        }
        return Ok(Store::etcd(&endpoints, EtcdOptions::default()).await?);
    }
    if datastore == "memory" {
        return Ok(Store::memory());
    }
    Err(ServerError::Datastore(datastore.into()))
}

pub async fn run(args: ServerArgs) -> Result<(), ServerError> {
    let started = std::time::Instant::now();
    if !args.no_agent {
        // The node agent (pods as real containers) is a later milestone; say so instead of pretending.
        tracing::warn!(
            "the node agent is not available yet: running the control plane only (as with --no-agent); pods will stay Pending"
        );
    }
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| ServerError::DataDir(args.data_dir.clone(), e))?;
    let (base, _) = skiff_apiserver::alloc::parse_cidr(&args.service_cidr)
        .ok_or_else(|| ServerError::ServiceCidr(args.service_cidr.clone()))?;
    let first_service_ip = Ipv4Addr::from(base + 1);
    let host = hostname();
    let ip = node_ip();
    let mut sans = vec![
        "127.0.0.1".to_string(),
        "localhost".into(),
        host.clone(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
        first_service_ip.to_string(),
    ];
    if let Some(ip) = ip {
        sans.push(ip.to_string());
    }
    if !args.bind_address.is_unspecified() {
        sans.push(args.bind_address.to_string());
    }
    sans.dedup();
    let tls_dir = args.data_dir.join("tls");
    let pki = tokio::task::spawn_blocking(move || Pki::load_or_create(&tls_dir, &sans))
        .await
        .map_err(|e| ServerError::ApiServer(e.to_string()))??;
    let store = open_store(&args.datastore, &args.data_dir).await?;
    let compactor = store.start_compactor(CompactionPolicy::default());
    let listen = SocketAddr::new(args.bind_address, args.https_port);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| ServerError::Listen(listen, e))?;
    let port = listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or(args.https_port);
    let client_host = if args.bind_address.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        args.bind_address.to_string()
    };
    let advertise = format!(
        "{}:{port}",
        ip.filter(|_| args.bind_address.is_unspecified())
            .map(|i| i.to_string())
            .unwrap_or_else(|| client_host.clone())
    );
    let cancel = CancellationToken::new();
    let config = skiff_apiserver::Config {
        advertise_address: advertise,
        service_cidr: args.service_cidr.clone(),
        admin_token: pki.admin_token.clone(),
        node_token: pki.join_token(),
    };
    let (api, cache_feeder) = skiff_apiserver::ApiServer::new(store, config, cancel.clone())
        .await
        .map_err(ServerError::ApiServer)?;
    let _ = api.ca_pem.set(pki.ca_pem.clone());
    let _ = api.tokens.set(pki.token_signer()?);
    let tls = pki.server_config()?;
    let kubeconfig_path = args.data_dir.join("admin.kubeconfig");
    pki::write_secret_file(
        &kubeconfig_path,
        &pki.admin_kubeconfig(&format!("https://{client_host}:{port}")),
    )?;
    let token_path = args.data_dir.join("node-token");
    pki::write_secret_file(&token_path, &format!("{}\n", pki.join_token()))?;
    let metrics_scraper = api.start_metrics_scraper(args.metrics_resolution);
    let event_expiry =
        api.start_event_expiry(std::time::Duration::from_secs(args.event_ttl.max(1)));
    let serving = tokio::spawn(skiff_apiserver::serve_https(
        listener,
        tls,
        api.router(),
        cancel.clone(),
    ));
    api.pod_defaults.not_ready_toleration_seconds.store(
        args.default_not_ready_toleration_seconds,
        std::sync::atomic::Ordering::Relaxed,
    );
    api.pod_defaults.unreachable_toleration_seconds.store(
        args.default_unreachable_toleration_seconds,
        std::sync::atomic::Ordering::Relaxed,
    );
    let settings = skiff_controllers::Settings {
        node_lifecycle: skiff_controllers::nodelifecycle::Settings {
            grace_period: std::time::Duration::from_secs(args.node_monitor_grace_period.max(1)),
            ..Default::default()
        },
        podautoscaler: skiff_controllers::podautoscaler::Settings {
            sync_period: std::time::Duration::from_secs(
                args.horizontal_pod_autoscaler_sync_period.max(1),
            ),
            ..Default::default()
        },
        cluster_cidr: Some(
            skiff_controllers::nodeipam::ClusterCidr::parse(&args.cluster_cidr)
                .ok_or_else(|| ServerError::ClusterCidr(args.cluster_cidr.clone()))?,
        ),
        root_ca: Some(pki.ca_pem.as_str().into()),
        csr_signer: Some(skiff_controllers::csrsigning::CsrSigner {
            signers: pki::SIGNERS,
            sign: std::sync::Arc::new(pki.request_signer()),
        }),
        ..Default::default()
    };
    // Co-located controllers are API clients over the router, in process. Of the servers
    // sharing a datastore, only the holder of the controller lease runs them.
    let identity = format!("{host}_{}", uuid::Uuid::new_v4());
    let client = kube::Client::new(
        api.router_as("kube-controller-manager/v1.35.0 (linux/amd64) skiff"),
        "default",
    );
    let scheduler_client = kube::Client::new(
        api.router_as("kube-scheduler/v1.35.0 (linux/amd64) skiff"),
        "default",
    );
    // One set of informers for the process, so that the scheduler and the controllers keep one
    // copy of each pod between them, and a new lease term starts from warm caches.
    let informers = skiff_controllers::runtime::Informers::new(client.clone(), cancel.clone());
    let controllers = tokio::spawn({
        let client = client.clone();
        let identity = identity.clone();
        let cancel = cancel.clone();
        let informers = informers.clone();
        async move {
            skiff_controllers::leader::run(
                client.clone(),
                "kube-controller-manager",
                &identity,
                skiff_controllers::leader::Timings::default(),
                cancel,
                |term| skiff_controllers::run_in(informers.clone(), settings.clone(), term),
            )
            .await
        }
    });
    // The scheduler is an API client over the router too; of several servers, only the holder
    // of the scheduler lease schedules.
    let scheduler = tokio::spawn({
        let client = scheduler_client;
        let cancel = cancel.clone();
        // Started now and kept warm across lease terms, as upstream's kube-scheduler starts
        // its informers before it competes for the lease.
        let pods = informers.get::<k8s_openapi::api::core::v1::Pod>();
        let nodes = informers.get::<k8s_openapi::api::core::v1::Node>();
        let namespaces = informers.get::<k8s_openapi::api::core::v1::Namespace>();
        let pvcs = informers.get::<k8s_openapi::api::core::v1::PersistentVolumeClaim>();
        let pvs = informers.get::<k8s_openapi::api::core::v1::PersistentVolume>();
        let pdbs = informers.get::<k8s_openapi::api::policy::v1::PodDisruptionBudget>();
        async move {
            skiff_controllers::leader::run(
                client.clone(),
                "kube-scheduler",
                &identity,
                skiff_controllers::leader::Timings::default(),
                cancel,
                |term| {
                    let client = client.clone();
                    let (pods, nodes, namespaces) =
                        (pods.clone(), nodes.clone(), namespaces.clone());
                    let (pvcs, pvs, pdbs) = (pvcs.clone(), pvs.clone(), pdbs.clone());
                    async move {
                        let synced = async {
                            pods.synced().await;
                            nodes.synced().await;
                            namespaces.synced().await;
                            pvcs.synced().await;
                            pvs.synced().await;
                            pdbs.synced().await;
                        };
                        tokio::select! {
                            _ = synced => {}
                            _ = term.cancelled() => return,
                        }
                        let caches = skiff_scheduler::SharedCaches {
                            pods: shared(&pods),
                            nodes: shared(&nodes),
                            namespaces: shared(&namespaces),
                            pvcs: shared(&pvcs),
                            pvs: shared(&pvs),
                            pdbs: shared(&pdbs),
                        };
                        skiff_scheduler::run_with(client, Some(caches), term).await
                    }
                },
            )
            .await
        }
    });
    tracing::info!(
        kubeconfig = %kubeconfig_path.display(),
        node_token = %token_path.display(),
        listen = %format!("https://{client_host}:{port}"),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "skiff server ready: kubeconfig at {}, node token at {}",
        kubeconfig_path.display(),
        token_path.display()
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    cancel.cancel();
    let _ = serving.await;
    let _ = controllers.await;
    let _ = scheduler.await;
    informers.stopped().await;
    let _ = cache_feeder.await;
    let _ = event_expiry.await;
    let _ = metrics_scraper.await;
    api.watches.close();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), api.watches.wait()).await;
    let _ = compactor.stop().await;
    Ok(())
}

pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// The scheduler's view of one of the process's shared informers.
fn shared<K>(informer: &skiff_controllers::runtime::Informer<K>) -> skiff_scheduler::Shared<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use skiff_controllers::runtime::Change;
    use skiff_scheduler::Update;
    let (snapshot, mut rx) = informer.snapshot_and_subscribe();
    let changes = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|c| {
            c.map(|c| match &*c {
                Change::Applied { new, .. } => Update::Applied(new.clone()),
                Change::Deleted(old) => Update::Deleted(old.clone()),
            })
        })
    });
    skiff_scheduler::Shared {
        snapshot,
        changes: Box::pin(changes),
    }
}
