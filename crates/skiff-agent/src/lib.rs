//! `skiff agent`: joins a node to a cluster. Today only hollow (simulated) nodes exist; the real
//! node agent (containers) is a later milestone.

pub mod capacity;
pub mod hollow;
pub mod ipam;
pub mod join;
pub mod kubelet_server;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Debug, Clone)]
pub struct AgentArgs {
    /// The API server, e.g. https://10.0.0.1:6443.
    #[arg(long)]
    pub server: String,
    /// The join token (DATA/node-token on the server), or the path of a file holding it.
    #[arg(long, env = "SKIFF_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Where the node agent keeps its state (hollow nodes keep none).
    #[arg(long, default_value = "/var/lib/skiff/agent")]
    pub data_dir: PathBuf,
    /// Node name; with --hollow N the nodes are NAME-0..NAME-(N-1) (default hollow-<hostname>).
    #[arg(long)]
    pub node_name: Option<String>,
    /// The address the node reports as its InternalIP (hollow default 127.0.0.1).
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// Run N simulated nodes whose pods only pretend to run.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub hollow: Option<u32>,
    /// How long containers of run-to-completion hollow pods run (annotation
    /// hollow.skiff.dev/run-seconds overrides it per pod).
    #[arg(long, default_value_t = 2.0)]
    pub hollow_pod_run_seconds: f64,
    /// What each hollow node has: NAME=QUANTITY,... (capacity equals allocatable).
    #[arg(long, default_value = "cpu=4,memory=16Gi,pods=110")]
    pub hollow_capacity: capacity::Capacity,
    /// Duration of each node's Lease in kube-node-lease; it is renewed every quarter of this
    /// (the kubelet's nodeLeaseDurationSeconds). The Lease is the node's heartbeat.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    pub lease_duration_seconds: u32,
    /// How often each node's status is compared with the one the API server holds; a
    /// difference (e.g. Ready set to Unknown by the node lifecycle controller) is written at
    /// once (the kubelet's nodeStatusUpdateFrequency). Comparing costs no request.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub node_status_update_seconds: u32,
    /// How often each node's full status is written even when nothing changed (the kubelet's
    /// nodeStatusReportFrequency).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    pub node_status_report_seconds: u32,
    /// Port of the kubelet endpoint serving /metrics/resource (0 picks a free one).
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(
        "the node agent that runs real containers does not exist yet: pass --hollow N to run simulated nodes"
    )]
    RealAgentMissing,
    #[error(transparent)]
    Join(#[from] join::JoinError),
    #[error(transparent)]
    KubeletServer(#[from] kubelet_server::KubeletServerError),
    #[error(transparent)]
    Hollow(#[from] hollow::HollowError),
}

/// An error with its causes, `outer: inner: innermost`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .unwrap_or_else(|_| "localhost".into())
}

/// Runs the agent until `cancel` fires.
pub async fn run(args: AgentArgs, cancel: CancellationToken) -> Result<(), AgentError> {
    let Some(count) = args.hollow else {
        return Err(AgentError::RealAgentMissing);
    };
    let token = join::JoinToken::from_arg(&args.token)?;
    // Check the names before touching the network.
    let explicit = args.node_name.is_some();
    let base = args
        .node_name
        .clone()
        .unwrap_or_else(|| format!("hollow-{}", hostname()));
    let names = hollow::node_names(&base, count, explicit);
    let client = join::join(&args.server, &token).await?;
    let node_ip = args.node_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let kubelet = kubelet_server::KubeletServer::bind(node_ip, args.kubelet_port, &names).await?;
    let usage = Arc::new(hollow::usage::Usage::default());
    let backend = Arc::new(kubelet_server::Backend {
        usage: usage.clone(),
        nodes: names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect(),
        bearer: token.bearer.clone(),
    });
    let config = hollow::HollowConfig {
        names,
        node_ip,
        capacity: args.hollow_capacity,
        pod_run_seconds: args.hollow_pod_run_seconds.max(0.0),
        lease_duration_seconds: args.lease_duration_seconds,
        node_status_update: std::time::Duration::from_secs(u64::from(
            args.node_status_update_seconds,
        )),
        node_status_report: std::time::Duration::from_secs(u64::from(
            args.node_status_report_seconds,
        )),
        kubelet_port: kubelet.port,
        kubelet_cert_sha256: Some(kubelet.cert_sha256.clone()),
    };
    tracing::info!(
        nodes = config.names.len(),
        server = %args.server,
        kubelet_port = kubelet.port,
        "starting hollow nodes"
    );
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(kubelet.serve(backend, cancel.child_token()));
    let result = hollow::run(client, config, usage, cancel.clone()).await;
    cancel.cancel();
    while tasks.join_next().await.is_some() {}
    result
}
