//! The benchmark command: runs a release `skiff server` and the anchors (Debian's etcd) side by
//! side on this machine and prints a Markdown report for BENCHMARKS.md.
//!
//! Usage: `skiff-bench --skiff target/release/skiff [--etcd /usr/bin/etcd] [--quick]`, or
//! `skiff-bench --scheduler [--nodes 5000] [--pods 50000]` for the scheduler's throughput alone,
//! `skiff-bench --deployment-1000` for one Deployment of 1,000 replicas on 100 hollow nodes, or
//! `skiff-bench --scale [--nodes 5000] [--pods 150000]` for a cluster of hollow nodes under load, or
//! `skiff-bench --watch-only 10000` for the watch fan-out alone (three runs), or
//! `skiff-bench --status-patches 50000` for pod status merge patches alone.

mod client;
mod cluster;

use client::Client;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    skiff: PathBuf,
    etcd: PathBuf,
    quick: bool,
    /// Run only the create-throughput scenario against a server that stays up (for profiling).
    creates_only: bool,
    /// With --creates-only: this many creates in the 16-client run (default 16,000; 4,000 with --quick).
    creates: Option<usize>,
    /// Run only this many pod status merge patches (a kubelet's writes) over 16 connections.
    status_patches: Option<usize>,
    /// Run only the scheduler scenario: `nodes` Node objects, then `pods` pods.
    scheduler: bool,
    /// Run only a Deployment of 1,000 replicas on 100 hollow nodes.
    deployment_1000: bool,
    /// Run only the scale scenario: `nodes` hollow nodes, then `pods` pods.
    scale: bool,
    /// Run only the watch fan-out with this many watchers, three times.
    watch_only: Option<usize>,
    /// With --scheduler: the bench holds the kube-scheduler lease while it creates the pods,
    /// so the server's scheduler stands by; the rate is measured from the scheduler taking the
    /// released lease to the last binding (the scheduler draining a backlog, without the
    /// create path in the way).
    backlog: bool,
    /// With --scheduler: the nodes are `skiff agent --hollow` nodes (heartbeats and pod status
    /// from the agent) instead of Node objects and leases written by the bench.
    hollow: bool,
    /// Nodes and pods of --scheduler and --scale (each mode has its own defaults).
    nodes: Option<usize>,
    pods: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        skiff: PathBuf::from("target/release/skiff"),
        etcd: PathBuf::from("/usr/bin/etcd"),
        quick: false,
        creates_only: false,
        creates: None,
        status_patches: None,
        scheduler: false,
        deployment_1000: false,
        scale: false,
        watch_only: None,
        backlog: false,
        hollow: false,
        nodes: None,
        pods: None,
    };
    let count = |v: Option<String>, flag: &str| -> Result<usize, String> {
        v.ok_or(format!("{flag} needs a number"))?
            .replace('_', "")
            .parse()
            .map_err(|e| format!("{flag}: {e}"))
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--skiff" => args.skiff = it.next().ok_or("--skiff needs a path")?.into(),
            "--etcd" => args.etcd = it.next().ok_or("--etcd needs a path")?.into(),
            "--quick" => args.quick = true,
            "--creates-only" => args.creates_only = true,
            "--creates" => args.creates = Some(count(it.next(), "--creates")?),
            "--status-patches" => {
                args.status_patches = Some(count(it.next(), "--status-patches")?);
            }
            "--scheduler" => args.scheduler = true,
            "--backlog" => args.backlog = true,
            "--hollow" => args.hollow = true,
            "--deployment-1000" => args.deployment_1000 = true,
            "--scale" => args.scale = true,
            "--watch-only" => args.watch_only = Some(count(it.next(), "--watch-only")?),
            "--nodes" => args.nodes = Some(count(it.next(), "--nodes")?),
            "--pods" => args.pods = Some(count(it.next(), "--pods")?),
            "-h" | "--help" => {
                return Err("usage: skiff-bench [--skiff PATH] [--etcd PATH] [--quick] [--creates-only [--creates N]] [--scheduler [--backlog] [--hollow] [--nodes N] [--pods M]] [--deployment-1000] [--scale [--nodes N] [--pods M]] [--watch-only WATCHERS] [--status-patches N]".into());
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !args.skiff.exists() {
        return Err(format!(
            "{} does not exist: build it with cargo build --release -p skiff",
            args.skiff.display()
        ));
    }
    Ok(args)
}

/// A child process killed (by PID) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The number after `key` in `/proc/{pid}/{file}` (a `key: value` file such as status or io).
fn proc_value(pid: u32, file: &str, key: &str) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn rss_mb(pid: u32) -> f64 {
    proc_value(pid, "status", "VmRSS:").map_or(0.0, |kb| kb / 1024.0)
}

/// User and system CPU seconds `pid` has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds a server process and this load generator use from `start` to `elapsed`.
struct CpuMeter {
    server: u32,
    start: (f64, f64),
}

impl CpuMeter {
    fn start(server: u32) -> CpuMeter {
        CpuMeter {
            server,
            start: (cpu_secs(server), cpu_secs(std::process::id())),
        }
    }

    /// (server, load generator) CPU seconds so far.
    fn elapsed(&self) -> (f64, f64) {
        (
            cpu_secs(self.server) - self.start.0,
            cpu_secs(std::process::id()) - self.start.1,
        )
    }
}

/// Write system calls `pid` has made so far.
fn write_calls(pid: u32) -> u64 {
    proc_value(pid, "io", "syscw:").unwrap_or(0.0) as u64
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

struct Server {
    proc: Proc,
    dir: tempfile::TempDir,
    port: u16,
    startup: Duration,
}

async fn start_skiff(bin: &Path) -> Result<Server, String> {
    start_skiff_with(bin, &[], false).await
}

/// Starts `skiff server` with `extra` arguments; with `log`, its stderr goes to DATA/server.log.
async fn start_skiff_with(bin: &Path, extra: &[&str], log: bool) -> Result<Server, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let port = free_port();
    let stderr = if log {
        std::fs::File::create(dir.path().join("server.log"))
            .map_err(|e| e.to_string())?
            .into()
    } else {
        Stdio::null()
    };
    let t0 = Instant::now();
    let child = Command::new(bin)
        .args([
            "server",
            "--no-agent",
            "--bind-address",
            "127.0.0.1",
            "--https-port",
            &port.to_string(),
            "--data-dir",
        ])
        .arg(dir.path())
        .args(extra)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let proc = Proc(child);
    // Ready is /readyz answering 200 over TLS; the CA appears as soon as the server has its PKI.
    let deadline = t0 + Duration::from_secs(30);
    loop {
        if let Ok(ca) = std::fs::read(dir.path().join("tls/ca.crt"))
            && let Ok(c) = Client::connect(port, &ca, "").await
            && c.status(http::Method::GET, "/readyz", None)
                .await
                .map(|(s, _)| s)
                == Ok(200)
        {
            break;
        }
        if Instant::now() > deadline {
            return Err("skiff server did not become ready in 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let startup = t0.elapsed();
    Ok(Server {
        proc,
        dir,
        port,
        startup,
    })
}

impl Server {
    fn token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tls/admin.token"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }
    /// What a client needs to reach this server: its port, CA certificate and token.
    fn endpoint(&self) -> Result<Endpoint, String> {
        let ca = std::fs::read(self.dir.path().join("tls/ca.crt")).map_err(|e| e.to_string())?;
        Ok(Endpoint {
            port: self.port,
            ca,
            token: self.token(),
        })
    }

    async fn client(&self) -> Result<Client, String> {
        self.endpoint()?.connect().await
    }
}

/// A server's address and credentials, owned, so that another runtime can connect to it.
struct Endpoint {
    port: u16,
    ca: Vec<u8>,
    token: String,
}

impl Endpoint {
    async fn connect(&self) -> Result<Client, String> {
        Client::connect(self.port, &self.ca, &self.token).await
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

struct Load {
    ops: usize,
    elapsed: Duration,
    lat: Vec<Duration>,
    /// CPU seconds the serving process (skiff or etcd) used during the load.
    server_cpu: f64,
    /// CPU seconds this load generator used during the load.
    client_cpu: f64,
}

impl Load {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
    fn p(&self, q: f64) -> f64 {
        percentile(&self.lat, q).as_secs_f64() * 1000.0
    }
    /// Server and load-generator CPU microseconds per operation.
    fn cpu_us(&self) -> (f64, f64) {
        let per = |s: f64| s * 1e6 / self.ops as f64;
        (per(self.server_cpu), per(self.client_cpu))
    }
}

/// `clients` concurrent clients, each creating `per_client` ConfigMaps one after another,
/// over `conns` HTTP/2 connections (client `c` uses connection `c % conns`; client-go
/// shares one connection among all its goroutines).
async fn skiff_creates(
    server: &Server,
    clients: usize,
    conns: usize,
    per_client: usize,
    tag: &str,
) -> Result<Load, String> {
    let mut shared = Vec::new();
    for _ in 0..conns.clamp(1, clients) {
        shared.push(Arc::new(server.client().await?));
    }
    let cpu = CpuMeter::start(server.proc.0.id());
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let conn = shared[c % shared.len()].clone();
        let tag = tag.to_string();
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let body = format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{tag}-{c}-{i}"}},"data":{{"k":"v"}}}}"#);
                let t = Instant::now();
                let (code, _) = conn.status(http::Method::POST, "/api/v1/namespaces/default/configmaps", Some(body)).await?;
                if code != 201 {
                    return Err(format!("create answered {code}"));
                }
                lat.push(t.elapsed());
            }
            Ok::<_, String>(lat)
        });
    }
    let mut lat = Vec::new();
    while let Some(r) = tasks.join_next().await {
        lat.extend(r.map_err(|e| e.to_string())??);
    }
    let elapsed = t0.elapsed();
    let (server_cpu, client_cpu) = cpu.elapsed();
    lat.sort();
    Ok(Load {
        ops: clients * per_client,
        elapsed,
        lat,
        server_cpu,
        client_cpu,
    })
}

/// The status a kubelet reports for a running pod, `round` making every write a change.
fn running_status(i: usize, round: usize) -> String {
    let t = "2026-01-01T00:00:00Z";
    format!(
        r#"{{"status":{{"phase":"Running","conditions":[{{"type":"PodReadyToStartContainers","status":"True","lastProbeTime":null,"lastTransitionTime":"{t}"}},{{"type":"Initialized","status":"True","lastProbeTime":null,"lastTransitionTime":"{t}"}},{{"type":"Ready","status":"True","lastProbeTime":null,"lastTransitionTime":"{t}"}},{{"type":"ContainersReady","status":"True","lastProbeTime":null,"lastTransitionTime":"{t}"}},{{"type":"PodScheduled","status":"True","lastProbeTime":null,"lastTransitionTime":"{t}"}}],"hostIP":"10.1.0.1","hostIPs":[{{"ip":"10.1.0.1"}}],"podIP":"10.2.{}.{}","podIPs":[{{"ip":"10.2.{}.{}"}}],"startTime":"{t}","containerStatuses":[{{"name":"c","state":{{"running":{{"startedAt":"{t}"}}}},"lastState":{{}},"ready":true,"restartCount":{round},"image":"registry.k8s.io/pause:3.10","imageID":"registry.k8s.io/pause@sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a","containerID":"containerd://{i:064x}","started":true}}],"qosClass":"Burstable"}}}}"#,
        i / 256,
        i % 256,
        i / 256,
        i % 256,
    )
}

/// `n` pod status merge patches, as kubelets send them, over 16 connections against 1,000
/// pods no scheduler takes: patches per second, latency and server CPU per patch.
async fn status_patches(bin: &Path, n: usize) -> Result<String, String> {
    const PODS: usize = 1_000;
    const CLIENTS: usize = 16;
    let s = start_skiff(bin).await?;
    eprintln!("skiff server pid {}", s.proc.0.id());
    let mut conns = Vec::new();
    for _ in 0..CLIENTS {
        conns.push(Arc::new(s.client().await?));
    }
    fan_out(&conns, 2, PODS, |c, i| async move {
        let body = format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"pod-{i}","labels":{{"app":"bench"}}}},"spec":{{"schedulerName":"none","containers":[{{"name":"c","image":"registry.k8s.io/pause:3.10","resources":{{"requests":{{"cpu":"10m","memory":"10Mi"}}}}}}]}}}}"#
        );
        c.expect(
            http::Method::POST,
            "/api/v1/namespaces/default/pods",
            Some(body),
            201,
            "pod create",
        )
        .await?;
        Ok(())
    })
    .await?;
    let cpu = CpuMeter::start(s.proc.0.id());
    let t0 = Instant::now();
    let lat = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    fan_out(&conns, 1, n, {
        let lat = lat.clone();
        move |c, i| {
            let lat = lat.clone();
            async move {
                let pod = i % PODS;
                let t = Instant::now();
                let (code, body) = c
                    .status(
                        http::Method::PATCH,
                        &format!("/api/v1/namespaces/default/pods/pod-{pod}/status"),
                        Some(running_status(pod, i / PODS + 1)),
                    )
                    .await?;
                if code != 200 {
                    return Err(format!(
                        "status patch answered {code}: {}",
                        String::from_utf8_lossy(&body)
                    ));
                }
                if let Ok(mut l) = lat.lock() {
                    l.push(t.elapsed());
                }
                Ok(())
            }
        }
    })
    .await?;
    let elapsed = t0.elapsed();
    let (server_cpu, client_cpu) = cpu.elapsed();
    let mut lat = std::mem::take(&mut *lat.lock().map_err(|e| e.to_string())?);
    lat.sort();
    let load = Load {
        ops: n,
        elapsed,
        lat,
        server_cpu,
        client_cpu,
    };
    let (server, client) = load.cpu_us();
    Ok(format!(
        "| pod status merge patches ({n} over {PODS} pods, {CLIENTS} connections, HTTPS) | {:.0}/s; p50 {:.2} ms, p99 {:.2} ms; CPU per patch: server {server:.0} µs, load generator {client:.0} µs; server RSS {:.0} MB |\n",
        load.rate(),
        load.p(0.5),
        load.p(0.99),
        rss_mb(s.proc.0.id()),
    ))
}

/// The etcd counterpart of `skiff_creates`: `clients` clients putting over `conns` gRPC
/// connections.
async fn etcd_puts(
    etcd: &Path,
    clients: usize,
    conns: usize,
    per_client: usize,
) -> Result<Load, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (cport, pport) = (free_port(), free_port());
    let etcd_proc = Proc(
        Command::new(etcd)
            .args([
                "--data-dir",
                &dir.path().display().to_string(),
                "--listen-client-urls",
                &format!("http://127.0.0.1:{cport}"),
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{cport}"),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{pport}"),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{pport}"),
                "--initial-cluster",
                &format!("default=http://127.0.0.1:{pport}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", etcd.display()))?,
    );
    let endpoint = format!("http://127.0.0.1:{cport}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut c) = etcd_client::Client::connect([endpoint.as_str()], None).await
            && c.put("probe", "x", None).await.is_ok()
        {
            break;
        }
        if Instant::now() > deadline {
            return Err("etcd did not start in 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut shared = Vec::new();
    for _ in 0..conns.clamp(1, clients) {
        shared.push(
            etcd_client::Client::connect([endpoint.as_str()], None)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let mut tasks = tokio::task::JoinSet::new();
    let cpu = CpuMeter::start(etcd_proc.0.id());
    let t0 = Instant::now();
    for c in 0..clients {
        let mut client = shared[c % shared.len()].clone();
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(per_client);
            // The same value size as a stored ConfigMap, roughly.
            let value = vec![b'x'; 200];
            for i in 0..per_client {
                let t = Instant::now();
                client
                    .put(format!("/bench/{c}/{i}"), value.clone(), None)
                    .await
                    .map_err(|e| e.to_string())?;
                lat.push(t.elapsed());
            }
            Ok::<_, String>(lat)
        });
    }
    let mut lat = Vec::new();
    while let Some(r) = tasks.join_next().await {
        lat.extend(r.map_err(|e| e.to_string())??);
    }
    let elapsed = t0.elapsed();
    let (server_cpu, client_cpu) = cpu.elapsed();
    lat.sort();
    Ok(Load {
        ops: clients * per_client,
        elapsed,
        lat,
        server_cpu,
        client_cpu,
    })
}

async fn list_10k(server: &Server) -> Result<(Duration, usize), String> {
    let c = server.client().await?;
    let body = (0..10_000).map(|i| i.to_string()).collect::<Vec<_>>();
    // Create 10,000 objects in a scratch namespace with 16 parallel streams.
    let (code, _) = c
        .status(
            http::Method::POST,
            "/api/v1/namespaces",
            Some(r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"list"}}"#.into()),
        )
        .await?;
    if code != 201 {
        return Err(format!("namespace create answered {code}"));
    }
    let c = Arc::new(c);
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in body.chunks(625) {
        let (c, chunk) = (c.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for i in chunk {
                let b = format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"cm-{i}","labels":{{"app":"bench"}}}},"data":{{"k":"value-{i}"}}}}"#);
                c.status(http::Method::POST, "/api/v1/namespaces/list/configmaps", Some(b)).await?;
            }
            Ok::<_, String>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    let mut best = Duration::MAX;
    let mut size = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let (code, body) = c
            .status(
                http::Method::GET,
                "/api/v1/namespaces/list/configmaps",
                None,
            )
            .await?;
        let e = t.elapsed();
        if code != 200 {
            return Err(format!("list answered {code}"));
        }
        size = body.len();
        best = best.min(e);
    }
    Ok((best, size))
}

/// What a watch fan-out measured.
struct FanOut {
    /// Delivery latencies (write acknowledged → watcher received), sorted.
    lat: Vec<Duration>,
    /// Server RSS before and with the watchers open, MB.
    rss_before: f64,
    rss_with: f64,
    /// CPU seconds the server and this load generator used from the first write to the last
    /// delivery.
    server_cpu: f64,
    client_cpu: f64,
    /// Write system calls the server made in that time.
    server_writes: u64,
    /// Per event: how long the write took to answer, and the slowest delivery.
    per_event: Vec<(Duration, Duration)>,
}

/// Opens `n` watches, then makes `events` changes and waits for every delivery.
async fn watch_fanout(server: &Server, n: usize, events: usize) -> Result<FanOut, String> {
    let per_conn = 100;
    let mut conns = Vec::new();
    for _ in 0..n.div_ceil(per_conn) {
        conns.push(Arc::new(server.client().await?));
    }
    let rss_before = rss_mb(server.proc.0.id());
    let c = server.client().await?;
    let (code, body) = c
        .status(
            http::Method::GET,
            "/api/v1/namespaces/default/configmaps?limit=1",
            None,
        )
        .await?;
    if code != 200 {
        return Err(format!("list answered {code}"));
    }
    let rv = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let mut watchers = tokio::task::JoinSet::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    for i in 0..n {
        let conn = conns[i / per_conn].clone();
        let (tx, ready_tx) = (tx.clone(), ready_tx.clone());
        let path = format!(
            "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&fieldSelector=metadata.name%3Dfan-0"
        );
        watchers.spawn(async move { conn.watch_lines(&path, events, ready_tx, tx).await });
    }
    drop(tx);
    for _ in 0..n {
        ready_rx.recv().await.ok_or("a watcher failed to start")?;
    }
    let rss_with = rss_mb(server.proc.0.id());
    let cpu = CpuMeter::start(server.proc.0.id());
    let writes_before = write_calls(server.proc.0.id());
    let mut sent = Vec::new();
    for e in 0..events {
        let t = Instant::now();
        let body = format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"fan-0"}},"data":{{"n":"{e}"}}}}"#
        );
        let (code, resp) = if e == 0 {
            c.status(
                http::Method::POST,
                "/api/v1/namespaces/default/configmaps",
                Some(body),
            )
            .await?
        } else {
            c.status(
                http::Method::PUT,
                "/api/v1/namespaces/default/configmaps/fan-0",
                Some(body),
            )
            .await?
        };
        if code >= 300 {
            return Err(format!(
                "write answered {code}: {}",
                String::from_utf8_lossy(&resp)
            ));
        }
        let rv = serde_json::from_slice::<serde_json::Value>(&resp)
            .ok()
            .and_then(|v| {
                v["metadata"]["resourceVersion"]
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_default();
        sent.push((rv, t, t.elapsed()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut lat = Vec::new();
    let mut slowest = vec![Duration::ZERO; sent.len()];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while lat.len() < n * events {
        let got = tokio::time::timeout_at(deadline, rx.recv()).await;
        match got {
            Ok(Some((rv, at))) => {
                if let Some(i) = sent.iter().position(|(r, _, _)| *r == rv) {
                    let d = at.saturating_duration_since(sent[i].1);
                    slowest[i] = slowest[i].max(d);
                    lat.push(d);
                }
            }
            _ => break,
        }
    }
    let (server_cpu, client_cpu) = cpu.elapsed();
    let server_writes = write_calls(server.proc.0.id()) - writes_before;
    watchers.abort_all();
    lat.sort();
    Ok(FanOut {
        lat,
        rss_before,
        rss_with,
        server_cpu,
        client_cpu,
        server_writes,
        per_event: sent.iter().map(|s| s.2).zip(slowest).collect(),
    })
}

/// Runs `f(i)` for `i` in `0..n` over `conns` connections with `per_conn` requests in flight on
/// each.
async fn fan_out<F, Fut>(
    conns: &[Arc<Client>],
    per_conn: usize,
    n: usize,
    f: F,
) -> Result<(), String>
where
    F: Fn(Arc<Client>, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let workers = conns.len() * per_conn;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let conn = conns[w % conns.len()].clone();
        let f = f.clone();
        tasks.spawn(async move {
            let mut i = w;
            while i < n {
                f(conn.clone(), i).await?;
                i += workers;
            }
            Ok::<_, String>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Node `i`'s kube-node-lease Lease, renewed now.
fn lease_body(i: usize) -> String {
    format!(
        r#"{{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{{"name":"node-{i}","namespace":"kube-node-lease"}},"spec":{{"holderIdentity":"node-{i}","leaseDurationSeconds":40,"renewTime":"{:.6}"}}}}"#,
        jiff::Timestamp::now()
    )
}

const SCHEDULER_LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";
const SCHEDULER_LEASE: &str =
    "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler";
/// Who holds the scheduler lease while the bench keeps the scheduler standing by.
const BENCH_HOLDER: &str = "skiff-bench";

/// Writes the scheduler lease's spec with `holder` (none: released, as a leader gives it up),
/// over whatever is there; retries lost races with the leader's renewals.
async fn write_scheduler_lease(c: &Client, holder: Option<&str>) -> Result<(), String> {
    for _ in 0..100 {
        let (code, body) = c.status(http::Method::GET, SCHEDULER_LEASE, None).await?;
        let now = format!("{:.6}", jiff::Timestamp::now());
        let spec = match holder {
            Some(h) => serde_json::json!({"holderIdentity": h, "leaseDurationSeconds": 3600,
                "acquireTime": now, "renewTime": now}),
            None => serde_json::json!({"leaseDurationSeconds": 1, "renewTime": now}),
        };
        let (code, body) = match code {
            404 => {
                let lease = serde_json::json!({"apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease", "metadata": {"name": "kube-scheduler", "namespace": "kube-system"},
                    "spec": spec});
                c.status(
                    http::Method::POST,
                    SCHEDULER_LEASES,
                    Some(lease.to_string()),
                )
                .await?
            }
            200 => {
                let mut lease: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                // Taking the lease is a transition; giving it up is not.
                let transitions = lease["spec"]["leaseTransitions"].as_i64().unwrap_or(0)
                    + i64::from(holder.is_some());
                lease["spec"] = spec;
                lease["spec"]["leaseTransitions"] = serde_json::json!(transitions);
                c.status(http::Method::PUT, SCHEDULER_LEASE, Some(lease.to_string()))
                    .await?
            }
            other => {
                return Err(format!(
                    "scheduler lease read answered {other}: {}",
                    String::from_utf8_lossy(&body)
                ));
            }
        };
        match code {
            200 | 201 => return Ok(()),
            // The leader renewed (or created) it in between: read it again.
            409 => tokio::time::sleep(Duration::from_millis(20)).await,
            other => {
                return Err(format!(
                    "scheduler lease write answered {other}: {}",
                    String::from_utf8_lossy(&body)
                ));
            }
        }
    }
    Err("could not write the scheduler lease in 100 tries".into())
}

/// Takes the kube-scheduler lease for an hour, as another scheduler would: the server's
/// scheduler stops leading once it has failed to renew for its renew deadline.
async fn hold_scheduler_lease(c: &Client) -> Result<(), String> {
    write_scheduler_lease(c, Some(BENCH_HOLDER)).await
}

/// Releases the lease and waits for the server's scheduler to take it; returns when it took
/// it (its `acquireTime`, on this clock).
async fn release_scheduler_lease(c: &Client) -> Result<Instant, String> {
    write_scheduler_lease(c, None).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let body = c
            .expect(
                http::Method::GET,
                SCHEDULER_LEASE,
                None,
                200,
                "scheduler lease read",
            )
            .await?;
        let lease: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let holder = lease["spec"]["holderIdentity"].as_str().unwrap_or("");
        if !holder.is_empty() && holder != BENCH_HOLDER {
            let acquired: jiff::Timestamp = lease["spec"]["acquireTime"]
                .as_str()
                .unwrap_or("")
                .parse()
                .map_err(|e| format!("the scheduler lease's acquireTime: {e}"))?;
            let ago = jiff::Timestamp::now().duration_since(acquired);
            let ago = Duration::try_from(ago).unwrap_or_default();
            return Ok(Instant::now().checked_sub(ago).unwrap_or_else(Instant::now));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err("the server's scheduler did not take the released lease in 60 s".into())
}

/// Creates `nodes` Node objects with room for every pod, then `pods` pods, and measures pods
/// per second from the first create to the last binding seen in a watch.
async fn scheduler_throughput(args: &Args) -> Result<String, String> {
    let (n_nodes, n_pods) = (
        args.nodes.unwrap_or(5_000).max(1),
        args.pods.unwrap_or(50_000),
    );
    // Room for every pod with a margin: 10m cpu and 10Mi memory each, 110 pods per node.
    let pods_per_node = (n_pods.div_ceil(n_nodes) * 2).max(110);
    let backlog = args.backlog;
    let hollow = args.hollow;
    let (cluster, plain) = if hollow {
        let c = cluster::Cluster::start(
            &args.skiff,
            n_nodes,
            pods_per_node,
            // A /24 of pod addresses per node: 5,000 nodes need more than the default /16.
            &["--cluster-cidr", "10.0.0.0/8"],
        )
        .await?;
        eprintln!(
            "skiff server pid {}, agent pid {} (--hollow {n_nodes})",
            c.server_pid(),
            c.agent_pid()
        );
        (Some(c), None)
    } else {
        let s = start_skiff(&args.skiff).await?;
        eprintln!("skiff server pid {}", s.proc.0.id());
        (None, Some(s))
    };
    let s: &Server = match (&cluster, &plain) {
        (Some(c), _) => &c.server,
        (_, Some(s)) => s,
        _ => return Err("no server".into()),
    };
    let agent_pid = cluster.as_ref().map(cluster::Cluster::agent_pid);
    let mut conns = Vec::new();
    for _ in 0..8 {
        conns.push(Arc::new(s.client().await?));
    }
    // Backlog: the scheduler stands by from here until the pods are all created.
    let held = if backlog {
        hold_scheduler_lease(&conns[0]).await?;
        Some(Instant::now())
    } else {
        None
    };
    let node_body = move |i: usize| {
        format!(
            r#"{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"node-{i}","labels":{{"kubernetes.io/hostname":"node-{i}","topology.kubernetes.io/zone":"zone-{}"}}}},"status":{{"capacity":{{"cpu":"{cpu}","memory":"{mem}Gi","pods":"{pods_per_node}"}},"allocatable":{{"cpu":"{cpu}","memory":"{mem}Gi","pods":"{pods_per_node}"}},"conditions":[{{"type":"Ready","status":"True","reason":"KubeletReady","message":"hollow"}}]}}}}"#,
            i % 3,
            cpu = pods_per_node,
            mem = pods_per_node,
        )
    };
    let t = Instant::now();
    let mut _stop_heartbeats = None;
    if hollow {
        // The agent registers the nodes and keeps their leases and status.
        let c = s.client().await?;
        cluster::wait_nodes(&c, n_nodes, Duration::from_secs(600)).await?;
    } else {
        fan_out(&conns, 4, n_nodes, move |c, i| async move {
            let (code, body) = c
                .status(http::Method::POST, "/api/v1/nodes", Some(node_body(i)))
                .await?;
            if code != 201 {
                return Err(format!(
                    "node create answered {code}: {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            // A server that drops status on create gets it through the subresource.
            if !String::from_utf8_lossy(&body).contains("allocatable") {
                let v: serde_json::Value =
                    serde_json::from_str(&node_body(i)).map_err(|e| e.to_string())?;
                let patch = serde_json::json!({"status": v["status"]}).to_string();
                let (code, _) = c
                    .status(
                        http::Method::PATCH,
                        &format!("/api/v1/nodes/node-{i}/status"),
                        Some(patch),
                    )
                    .await?;
                if code != 200 {
                    return Err(format!("node status answered {code}"));
                }
            }
            Ok(())
        })
        .await?;
        // Each node holds a kube-node-lease Lease renewed every 10 s, as a kubelet does, so that
        // the node lifecycle controller keeps the nodes Ready for runs longer than its 40 s grace.
        fan_out(&conns, 4, n_nodes, |c, i| async move {
            c.expect(
                http::Method::POST,
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                Some(lease_body(i)),
                201,
                "lease create",
            )
            .await?;
            Ok(())
        })
        .await?;
        let heartbeats = tokio::spawn({
            let conns = conns.clone();
            async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    let round = Instant::now();
                    let renewed = fan_out(&conns, 4, n_nodes, |c, i| async move {
                        c.expect(
                            http::Method::PUT,
                            &format!(
                                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-{i}"
                            ),
                            Some(lease_body(i)),
                            200,
                            "lease renewal",
                        )
                        .await?;
                        Ok(())
                    })
                    .await;
                    if let Err(e) = renewed {
                        eprintln!("node heartbeats stopped: {e}");
                        return;
                    }
                    if round.elapsed() > Duration::from_secs(10) {
                        eprintln!(
                            "renewing {n_nodes} leases took {:.1} s",
                            round.elapsed().as_secs_f64()
                        );
                    }
                }
            }
        });
        _stop_heartbeats = Some(tokio_util::task::AbortOnDropHandle::new(heartbeats));
    }
    let nodes_took = t.elapsed();
    let c = s.client().await?;
    let (code, _) = c
        .status(
            http::Method::POST,
            "/api/v1/namespaces",
            Some(r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"bench"}}"#.into()),
        )
        .await?;
    if code != 201 {
        return Err(format!("namespace create answered {code}"));
    }
    let (code, body) = c
        .status(
            http::Method::GET,
            "/api/v1/namespaces/bench/pods?limit=1",
            None,
        )
        .await?;
    if code != 200 {
        return Err(format!("pod list answered {code}"));
    }
    let rv = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default();
    let bound = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let unschedulable = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let created_so_far = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // The observer gets a thread, a runtime and a connection of its own: sharing this runtime
    // with the creates, the uncordon and the lease heartbeats, it fell more than the server's
    // pod history behind and had to count the last bindings by listing every pod.
    let watch = {
        let (bound, unschedulable) = (bound.clone(), unschedulable.clone());
        let endpoint = s.endpoint()?;
        let (done, watched) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("pod-watch".into())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
                    .and_then(|rt| {
                        rt.block_on(async {
                            let watcher = endpoint.connect().await?;
                            watcher
                                .watch_bound(
                                    "/api/v1/namespaces/bench/pods",
                                    &rv,
                                    n_pods,
                                    &bound,
                                    &unschedulable,
                                )
                                .await
                        })
                    });
                let _ = done.send(result);
            })
            .map_err(|e| e.to_string())?;
        watched
    };
    if let Some(held) = held {
        // The leading scheduler stops once it has failed to renew for its renew deadline
        // (10 s), retrying every 2 s.
        tokio::time::sleep(Duration::from_secs(13).saturating_sub(held.elapsed())).await;
    }
    let t0 = Instant::now();
    // Progress every 10 s on stderr, so a run that stalls shows where.
    let progress = tokio::spawn({
        let (bound, created, unschedulable) =
            (bound.clone(), created_so_far.clone(), unschedulable.clone());
        let pid = s.proc.0.id();
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                eprintln!(
                    "{:>7.0} s: {:>7} created, {:>7} found unschedulable, {:>7} bound; server RSS {:.0} MB",
                    t0.elapsed().as_secs_f64(),
                    created.load(std::sync::atomic::Ordering::Relaxed),
                    unschedulable.load(std::sync::atomic::Ordering::Relaxed),
                    bound.load(std::sync::atomic::Ordering::Relaxed),
                    rss_mb(pid),
                );
            }
        }
    });
    let _stop_progress = tokio_util::task::AbortOnDropHandle::new(progress);
    fan_out(&conns, 4, n_pods, move |c, i| {
        let created = created_so_far.clone();
        async move {
        let body = format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"pod-{i}"}},"spec":{{"containers":[{{"name":"c","image":"registry.k8s.io/pause:3.10","resources":{{"requests":{{"cpu":"10m","memory":"10Mi"}}}}}}]}}}}"#
        );
        let (code, resp) = c
            .status(http::Method::POST, "/api/v1/namespaces/bench/pods", Some(body))
            .await?;
        if code != 201 {
            return Err(format!("pod create answered {code}: {}", String::from_utf8_lossy(&resp)));
        }
        created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
        }
    })
    .await?;
    let created = t0.elapsed();
    // Backlog: every pod created while the scheduler stood by; then the lease is released.
    let mut released = None;
    if backlog {
        let early = bound.load(std::sync::atomic::Ordering::Relaxed);
        if early > 0 {
            return Err(format!(
                "{early} pods were bound while the bench held the scheduler lease"
            ));
        }
        let settled = t0.elapsed();
        eprintln!(
            "{:>7.0} s: all {n_pods} created; releasing the scheduler lease",
            settled.as_secs_f64()
        );
        let release = Instant::now();
        let t1 = release_scheduler_lease(&conns[0]).await?;
        let cpu = CpuMeter::start(s.proc.0.id());
        let agent_cpu = agent_pid.map(CpuMeter::start);
        released = Some((t1, t1.saturating_duration_since(release), cpu, agent_cpu));
    }
    let last = tokio::time::timeout(Duration::from_secs(3600), watch)
        .await
        .map_err(|_| "bindings did not finish in an hour".to_string())?
        .map_err(|e| e.to_string())??;
    let rss = rss_mb(s.proc.0.id());
    let kind = if hollow {
        "hollow nodes (`skiff agent --hollow`)"
    } else {
        "nodes (Node objects, leases renewed by the bench)"
    };
    if let Some((t1, waited, cpu, agent_cpu)) = released {
        let took = last.saturating_duration_since(t1);
        let (server_cpu, _) = cpu.elapsed();
        let agent = agent_cpu.map_or(String::new(), |a| {
            format!(
                "; agent CPU {:.0} µs per pod",
                a.elapsed().0 * 1e6 / n_pods as f64
            )
        });
        return Ok(format!(
            "| scheduler backlog, {n_nodes} {kind}, {n_pods} pods created while the bench held the kube-scheduler lease, then the lease released | {:.0} pods/s bound ({:.1} s from the scheduler taking the lease to the last binding; server CPU {:.0} µs per pod{agent}; the scheduler took the lease {:.1} s after its release; creates alone {:.0}/s; server RSS {rss:.0} MB) | kube-scheduler CI floor 810 pods/s | ≥ 5,000 pods/s |\n",
            n_pods as f64 / took.as_secs_f64(),
            took.as_secs_f64(),
            server_cpu * 1e6 / n_pods as f64,
            waited.as_secs_f64(),
            n_pods as f64 / created.as_secs_f64(),
        ));
    }
    let took = last.saturating_duration_since(t0);
    Ok(format!(
        "| scheduler, {n_nodes} {kind}, {n_pods} pods (HTTPS creates, 32 in flight) | {:.0} pods/s bound ({:.1} s from first create to last binding; creates alone {:.0}/s; {n_nodes} nodes created in {:.1} s; server RSS {rss:.0} MB) | kube-scheduler CI floor 810 pods/s | ≥ 5,000 pods/s |\n",
        n_pods as f64 / took.as_secs_f64(),
        took.as_secs_f64(),
        n_pods as f64 / created.as_secs_f64(),
        nodes_took.as_secs_f64(),
    ))
}

async fn run(args: Args) -> Result<String, String> {
    if args.scheduler {
        return scheduler_throughput(&args).await;
    }
    if args.deployment_1000 {
        return cluster::deployment_1000(&args.skiff).await;
    }
    if args.scale {
        let nodes = args.nodes.unwrap_or(5_000).max(1);
        return cluster::scale(&args.skiff, nodes, args.pods.unwrap_or(150_000)).await;
    }
    let mut out = String::new();
    if let Some(n) = args.watch_only {
        for _ in 0..3 {
            let s = start_skiff(&args.skiff).await?;
            eprintln!("skiff server pid {}", s.proc.0.id());
            let f = watch_fanout(&s, n, 5).await?;
            let lat = &f.lat;
            out.push_str(&format!(
                "{n} watchers: delivered {}/{}; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; RSS {:.0} -> {:.0} MB; CPU server {:.2} s, bench {:.2} s; server write calls {}; per event, write answered / last delivery: {}\n",
                lat.len(),
                n * 5,
                percentile(lat, 0.5).as_secs_f64() * 1000.0,
                percentile(lat, 0.99).as_secs_f64() * 1000.0,
                lat.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
                f.rss_before,
                f.rss_with,
                f.server_cpu,
                f.client_cpu,
                f.server_writes,
                f.per_event
                    .iter()
                    .map(|(w, d)| format!(
                        "{:.1}/{:.1}",
                        w.as_secs_f64() * 1000.0,
                        d.as_secs_f64() * 1000.0
                    ))
                    .collect::<Vec<_>>()
                    .join(" "),
            ));
        }
        return Ok(out);
    }
    let scale = if args.quick { 1 } else { 4 };
    if let Some(n) = args.status_patches {
        return status_patches(&args.skiff, n).await;
    }
    if args.creates_only {
        let s = start_skiff(&args.skiff).await?;
        eprintln!("skiff server pid {}", s.proc.0.id());
        let line = |who: &str, clients: usize, conns: usize, l: &Load| {
            let (server, client) = l.cpu_us();
            format!(
                "{who}, {clients} client(s) over {conns} connection(s): {:.0}/s p50 {:.2} ms p99 {:.2} ms; CPU per op: server {server:.0} us, load generator {client:.0} us\n",
                l.rate(),
                l.p(0.5),
                l.p(0.99)
            )
        };
        let one = skiff_creates(&s, 1, 1, 500 * scale, "one").await?;
        out.push_str(&line("skiff create", 1, 1, &one));
        let per_client = args.creates.map_or(250 * scale, |n| n.div_ceil(16));
        eprintln!("16 clients: {} creates", 16 * per_client);
        let many = skiff_creates(&s, 16, 16, per_client, "many").await?;
        out.push_str(&line("skiff create", 16, 16, &many));
        let shared = skiff_creates(&s, 16, 1, 250 * scale, "shared").await?;
        out.push_str(&line("skiff create", 16, 1, &shared));
        drop(s);
        let e_one = etcd_puts(&args.etcd, 1, 1, 500 * scale).await?;
        out.push_str(&line("etcd put", 1, 1, &e_one));
        let e_many = etcd_puts(&args.etcd, 16, 16, 250 * scale).await?;
        out.push_str(&line("etcd put", 16, 16, &e_many));
        let e_shared = etcd_puts(&args.etcd, 16, 1, 250 * scale).await?;
        out.push_str(&line("etcd put", 16, 1, &e_shared));
        out.push_str(&format!(
            "16 clients: skiff/etcd = {:.2} over 16 connections, {:.2} over one\n",
            many.rate() / e_many.rate(),
            shared.rate() / e_shared.rate()
        ));
        return Ok(out);
    }
    // Cold start, five times, best and median.
    let mut starts = Vec::new();
    for _ in 0..5 {
        let s = start_skiff(&args.skiff).await?;
        starts.push(s.startup);
    }
    starts.sort();
    let s = start_skiff(&args.skiff).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_mb(s.proc.0.id());
    out.push_str("| figure | skiff | anchor (same run) | target |\n|---|---|---|---|\n");
    out.push_str(&format!(
        "| cold start to /readyz 200 (median of 5) | {:.0} ms | k3s ≈ 50 s to Ready | ≤ 1 s |\n",
        percentile(&starts, 0.5).as_secs_f64() * 1000.0
    ));
    out.push_str(&format!("| idle RSS, server --no-agent | {idle:.1} MB | k3s server 1,428 MB | ≤ 60 MB (with agent) |\n"));

    let one = skiff_creates(&s, 1, 1, 500 * scale, "one").await?;
    let many = skiff_creates(&s, 16, 16, 250 * scale, "many").await?;
    let e_one = etcd_puts(&args.etcd, 1, 1, 500 * scale).await?;
    let e_many = etcd_puts(&args.etcd, 16, 16, 250 * scale).await?;
    out.push_str(&format!("| durable creates/s, 1 client (HTTPS) | {:.0}/s, p50 {:.2} ms, p99 {:.2} ms | etcd put {:.0}/s, p50 {:.2} ms, p99 {:.2} ms | p99 ≤ 2 ms |\n", one.rate(), one.p(0.5), one.p(0.99), e_one.rate(), e_one.p(0.5), e_one.p(0.99)));
    out.push_str(&format!("| durable creates/s, 16 clients (HTTPS) | {:.0}/s, p50 {:.2} ms, p99 {:.2} ms | etcd put {:.0}/s, p50 {:.2} ms, p99 {:.2} ms | ≥ 3 × etcd ({:.1} ×) |\n", many.rate(), many.p(0.5), many.p(0.99), e_many.rate(), e_many.p(0.5), e_many.p(0.99), many.rate() / e_many.rate()));

    let (list, size) = list_10k(&s).await?;
    out.push_str(&format!(
        "| list 10,000 ConfigMaps (best of 5) | {:.0} ms ({:.1} MB) | | |\n",
        list.as_secs_f64() * 1000.0,
        size as f64 / 1e6
    ));
    let rss_after_list = rss_mb(s.proc.0.id());
    out.push_str(&format!(
        "| RSS after 10,000 objects | {rss_after_list:.1} MB | | |\n"
    ));

    for n in [1_000usize, 10_000] {
        let s = start_skiff(&args.skiff).await?;
        let FanOut {
            lat,
            rss_before: before,
            rss_with: with,
            ..
        } = watch_fanout(&s, n, 5).await?;
        let delivered = lat.len();
        out.push_str(&format!(
            "| watch fan-out, {n} watchers × 5 events | delivered {delivered}/{}; p50 {:.1} ms, p99 {:.1} ms; RSS {before:.0} → {with:.0} MB | etcd designs for 10k watchers | p99 ≤ 100 ms |\n",
            n * 5,
            percentile(&lat, 0.5).as_secs_f64() * 1000.0,
            percentile(&lat, 0.99).as_secs_f64() * 1000.0
        ));
    }
    Ok(out)
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(report) => {
            print!("{report}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
