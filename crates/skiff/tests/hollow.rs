//! `skiff agent --hollow N` against a real `skiff server`, checked with the real kubectl 1.35.

use skiff_testkit::{Agent, TestServer, kubectl_135, run_with_timeout, wait_for};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn bin() -> &'static Path {
    env!("CARGO_BIN_EXE_skiff").as_ref()
}

fn get(s: &TestServer, args: &[&str]) -> String {
    let out = s.run(&kubectl_135(), args);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn renew_time(s: &TestServer, node: &str) -> String {
    get(
        s,
        &[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            node,
            "-o",
            "jsonpath={.spec.renewTime}",
        ],
    )
}

/// `spec.podCIDR` of `node`, once assigned.
fn pod_cidr(s: &TestServer, node: &str) -> Option<String> {
    let c = get(s, &["get", "node", node, "-o", "jsonpath={.spec.podCIDR}"]);
    (!c.trim().is_empty()).then(|| c.trim().to_string())
}

fn ready_heartbeat(s: &TestServer, node: &str) -> String {
    get(
        s,
        &[
            "get",
            "node",
            node,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].lastHeartbeatTime}",
        ],
    )
}

fn ready_condition(s: &TestServer, node: &str) -> String {
    get(
        s,
        &[
            "get",
            "node",
            node,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
    )
}

/// Whether the IPv4 address `ip` lies in `cidr`.
fn in_cidr(ip: &str, cidr: &str) -> bool {
    let Some((net, len)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(ip), Ok(net), Ok(len)) = (
        ip.parse::<std::net::Ipv4Addr>(),
        net.parse::<std::net::Ipv4Addr>(),
        len.parse::<u32>(),
    ) else {
        return false;
    };
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

/// `phase/podIP` of pod `name`.
fn phase_and_ip(s: &TestServer, name: &str) -> (String, String) {
    let v = get(
        s,
        &[
            "get",
            "pod",
            name,
            "-o",
            "jsonpath={.status.phase}/{.status.podIP}",
        ],
    );
    let (phase, ip) = v.split_once('/').unwrap_or((v.as_str(), ""));
    (phase.to_string(), ip.to_string())
}

fn create(s: &TestServer, yaml: &str) {
    let out = s.run_stdin(&kubectl_135(), &["create", "-f", "-"], Some(yaml));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pod_on(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  containers:\n  - name: c\n    image: nginx:1.25\n---\n"
    )
}

#[test]
fn hollow_nodes_register_renew_leases_and_run_pods() {
    let s = TestServer::start(bin());
    let k = kubectl_135();
    let mut agent = Agent::start(
        bin(),
        &s,
        &[
            "--hollow",
            "3",
            "--node-name",
            "hollow",
            "--lease-duration-seconds",
            "4",
            "--node-status-update-seconds",
            "1",
            "--node-status-report-seconds",
            "2",
        ],
    );
    // Three Ready nodes, as kubectl prints them.
    wait_for(30, "3 Ready hollow nodes", || {
        let out = get(&s, &["get", "nodes", "--no-headers"]);
        let ready = out
            .lines()
            .filter(|l| l.starts_with("hollow-") && l.split_whitespace().nth(1) == Some("Ready"))
            .count();
        (ready == 3).then_some(())
    });
    let wide = s.ok(&k, &["get", "node", "hollow-1", "-o", "wide"]);
    assert!(
        wide.contains("v1.35.0") && wide.contains("skiff-hollow://0.1"),
        "{wide}"
    );
    // Pod CIDRs come from the server's node IPAM controller: distinct /24s of 10.42.0.0/16.
    let cidrs: Vec<String> = ["hollow-0", "hollow-1", "hollow-2"]
        .iter()
        .map(|n| wait_for(30, "a pod CIDR", || pod_cidr(&s, n)))
        .collect();
    for c in &cidrs {
        assert!(c.starts_with("10.42.") && c.ends_with(".0/24"), "{cidrs:?}");
    }
    assert!(
        cidrs[0] != cidrs[1] && cidrs[1] != cidrs[2] && cidrs[0] != cidrs[2],
        "{cidrs:?}"
    );
    // Leases exist, are held by their node and are renewed.
    for n in ["hollow-0", "hollow-1", "hollow-2"] {
        assert_eq!(
            s.ok(
                &k,
                &[
                    "get",
                    "lease",
                    "-n",
                    "kube-node-lease",
                    n,
                    "-o",
                    "jsonpath={.spec.holderIdentity}/{.metadata.ownerReferences[0].kind}"
                ]
            ),
            format!("{n}/Node")
        );
    }
    let first = renew_time(&s, "hollow-0");
    wait_for(10, "lease renewal", || {
        (renew_time(&s, "hollow-0") != first).then_some(())
    });
    // With --node-status-report-seconds 2 the status is written again although nothing changed.
    let beat = ready_heartbeat(&s, "hollow-0");
    wait_for(10, "a node status report", || {
        (ready_heartbeat(&s, "hollow-0") != beat).then_some(())
    });

    // A pod bound to a hollow node runs, is Ready and has an address from the node's range.
    let pods = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  nodeName: hollow-1\n  containers:\n  - name: c\n    image: nginx:1.25\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: once\nspec:\n  nodeName: hollow-0\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: busybox\n";
    let out = s.run_stdin(&k, &["create", "-f", "-"], Some(pods));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ip = wait_for(30, "pod web Running and Ready with an IP", || {
        let v = get(
            &s,
            &[
                "get",
                "pod",
                "web",
                "-o",
                "jsonpath={.status.phase}/{.status.conditions[?(@.type==\"Ready\")].status}/{.status.podIP}",
            ],
        );
        let parts: Vec<&str> = v.split('/').collect();
        (parts.len() == 3 && parts[0] == "Running" && parts[1] == "True" && !parts[2].is_empty())
            .then(|| parts[2].to_string())
    });
    assert!(in_cidr(&ip, &cidrs[1]), "{ip} not in {}", cidrs[1]);
    let ready = s.ok(&k, &["get", "pod", "web", "--no-headers"]);
    assert!(
        ready.contains("1/1") && ready.contains("Running"),
        "{ready}"
    );
    // A run-to-completion pod succeeds after its run time (2 s by default).
    wait_for(30, "pod once Succeeded", || {
        (get(
            &s,
            &["get", "pod", "once", "-o", "jsonpath={.status.phase}"],
        ) == "Succeeded")
            .then_some(())
    });
    // `kubectl debug` adds an ephemeral container; the node reports it running, not ready.
    s.ok(
        &k,
        &[
            "debug",
            "web",
            "--image=busybox",
            "-c",
            "dbg",
            "--profile=general",
        ],
    );
    wait_for(30, "ephemeral container dbg running", || {
        (get(
            &s,
            &[
                "get",
                "pod",
                "web",
                "-o",
                "jsonpath={.status.ephemeralContainerStatuses[0].name}/{.status.ephemeralContainerStatuses[0].ready}/{.status.ephemeralContainerStatuses[0].state.running.startedAt}",
            ],
        )
        .starts_with("dbg/false/2"))
        .then_some(())
    });
    // Deleting a pod finishes: the agent completes the graceful deletion.
    s.ok(&k, &["delete", "pod", "web", "--timeout=30s"]);
    let left = s.ok(&k, &["get", "pods", "-o", "name"]);
    assert!(!left.contains("pod/web"), "{left}");

    // Stopped agent: nodes stay registered, leases are no longer renewed.
    agent.stop();
    std::thread::sleep(Duration::from_millis(500));
    let frozen = renew_time(&s, "hollow-0");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        renew_time(&s, "hollow-0"),
        frozen,
        "lease renewed after stop"
    );
    let names = s.ok(&k, &["get", "nodes", "-o", "name"]);
    assert_eq!(names.lines().count(), 3, "{names}\n{}", agent.log());
}

#[test]
fn a_token_for_another_ca_is_refused_in_one_line() {
    let s = TestServer::start(bin());
    // The server writes its join token just after its kubeconfig.
    let token = wait_for(30, "node-token", || {
        std::fs::read_to_string(s.dir.path().join("node-token"))
            .ok()
            .filter(|t| !t.trim().is_empty())
    });
    let secret = token
        .trim()
        .split_once("::")
        .map(|x| x.1)
        .unwrap_or_default();
    let wrong = format!("K10{}::{secret}", "0".repeat(64));
    let out = run_with_timeout(
        Command::new(bin()).args([
            "agent",
            "--server",
            &format!("https://127.0.0.1:{}", s.port),
            "--token",
            &wrong,
            "--hollow",
            "1",
            "--kubelet-port",
            "0",
        ]),
        None,
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains("does not match the join token"),
        "{err}"
    );
    let nodes = s.ok(&kubectl_135(), &["get", "nodes", "-o", "name"]);
    assert!(nodes.trim().is_empty(), "{nodes}");
}

#[test]
fn the_real_agent_is_not_pretended() {
    let out = run_with_timeout(
        Command::new(bin()).args([
            "agent",
            "--server",
            "https://127.0.0.1:1",
            "--token",
            "K10abc::node:x",
        ]),
        None,
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not exist yet") && err.contains("--hollow"),
        "{err}"
    );
}

#[test]
fn cacerts_is_served_without_credentials_and_matches_the_token() {
    let s = TestServer::start(bin());
    let out = run_with_timeout(
        Command::new("curl").args(["-sk", &format!("https://127.0.0.1:{}/cacerts", s.port)]),
        None,
        Duration::from_secs(30),
    );
    let pem = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let ca = std::fs::read_to_string(s.dir.path().join("tls/ca.crt")).expect("ca.crt");
    assert_eq!(pem, ca);
    // The server writes its join token just after its kubeconfig.
    let token = wait_for(30, "node-token", || {
        std::fs::read_to_string(s.dir.path().join("node-token"))
            .ok()
            .filter(|t| !t.trim().is_empty())
    });
    assert!(
        token.starts_with("K10") && token.contains("::node:"),
        "{token}"
    );
}

#[test]
fn kubectl_top_shows_annotated_usage() {
    let s = TestServer::start_with(bin(), &["--metrics-resolution", "1s"]);
    let k = kubectl_135();
    let _agent = Agent::start(bin(), &s, &["--hollow", "1", "--node-name", "metered"]);
    wait_for(30, "node metered Ready", || {
        let out = get(&s, &["get", "node", "metered", "--no-headers"]);
        (out.split_whitespace().nth(1) == Some("Ready")).then_some(())
    });
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: busy\n  labels:\n    app: busy\n  annotations:\n    hollow.skiff.dev/cpu: 250m\n    hollow.skiff.dev/memory: 64Mi\nspec:\n  nodeName: metered\n  containers:\n  - name: c\n    image: nginx:1.25\n";
    let out = s.run_stdin(&k, &["create", "-f", "-"], Some(pod));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let columns = |out: &str, name: &str| -> Option<(String, String)> {
        let row = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))?;
        let f: Vec<&str> = row.split_whitespace().collect();
        Some((f.get(1)?.to_string(), f.get(2)?.to_string()))
    };
    wait_for(30, "kubectl top pods shows 250m and 64Mi", || {
        let out = get(&s, &["top", "pods", "-l", "app=busy"]);
        (columns(&out, "busy")? == ("250m".to_string(), "64Mi".to_string())).then_some(())
    });
    wait_for(30, "kubectl top nodes shows the pod's usage", || {
        let out = get(&s, &["top", "nodes"]);
        let (cpu, _) = columns(&out, "metered")?;
        (cpu == "250m").then_some(())
    });
    let raw = s.ok(
        &k,
        &[
            "get",
            "--raw",
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/busy",
        ],
    );
    assert!(
        raw.contains("\"kind\":\"PodMetrics\"") && raw.contains("\"window\""),
        "{raw}"
    );
}

#[test]
fn two_agents_give_pods_distinct_ips() {
    let s = TestServer::start(bin());
    let a = Agent::start(bin(), &s, &["--hollow", "2", "--node-name", "a"]);
    let b = Agent::start(bin(), &s, &["--hollow", "1", "--node-name", "b"]);
    let nodes = ["a-0", "a-1", "b"];
    let cidrs: Vec<String> = nodes
        .iter()
        .map(|n| wait_for(30, "a pod CIDR", || pod_cidr(&s, n)))
        .collect();
    let yaml: String = nodes
        .iter()
        .flat_map(|n| [pod_on(&format!("{n}-x"), n), pod_on(&format!("{n}-y"), n)])
        .collect();
    create(&s, &yaml);
    let mut ips = std::collections::BTreeSet::new();
    for (node, cidr) in nodes.iter().zip(&cidrs) {
        for pod in [format!("{node}-x"), format!("{node}-y")] {
            let ip = wait_for(30, "pod Running with an IP", || {
                let (phase, ip) = phase_and_ip(&s, &pod);
                (phase == "Running" && !ip.is_empty()).then_some(ip)
            });
            assert!(
                in_cidr(&ip, cidr),
                "{pod}: {ip} not in {cidr}\n{}\n{}",
                a.log(),
                b.log()
            );
            ips.insert(ip);
        }
    }
    assert_eq!(ips.len(), 6, "{ips:?}");
}

#[test]
fn pods_wait_for_their_node_pod_cidr() {
    // Room for one node's /24 only.
    let s = TestServer::start_with(bin(), &["--cluster-cidr", "10.42.0.0/24"]);
    let k = kubectl_135();
    let mut first = Agent::start(bin(), &s, &["--hollow", "1", "--node-name", "first"]);
    wait_for(30, "node first has the range", || pod_cidr(&s, "first"));
    let second = Agent::start(bin(), &s, &["--hollow", "1", "--node-name", "second"]);
    wait_for(30, "node second Ready", || {
        (ready_condition(&s, "second") == "True").then_some(())
    });
    create(&s, &pod_on("waiting", "second"));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(pod_cidr(&s, "second"), None);
    let (phase, ip) = phase_and_ip(&s, "waiting");
    assert!(
        phase == "Pending" && ip.is_empty(),
        "{phase}/{ip}\n{}",
        second.log()
    );
    // The range comes free; a change to node second has the controller look at it again.
    first.stop();
    s.ok(&k, &["delete", "node", "first"]);
    s.ok(&k, &["label", "node", "second", "poke=1"]);
    let cidr = wait_for(30, "node second gets the range", || pod_cidr(&s, "second"));
    assert_eq!(cidr, "10.42.0.0/24");
    let ip = wait_for(30, "pod waiting Running with an IP", || {
        let (phase, ip) = phase_and_ip(&s, "waiting");
        (phase == "Running" && !ip.is_empty()).then_some(ip)
    });
    assert!(in_cidr(&ip, &cidr), "{ip}\n{}", second.log());
}

#[test]
fn node_status_is_written_when_it_changes_not_on_every_check() {
    let s = TestServer::start(bin());
    let k = kubectl_135();
    let agent = Agent::start(
        bin(),
        &s,
        &[
            "--hollow",
            "1",
            "--node-name",
            "calm",
            "--lease-duration-seconds",
            "4",
            "--node-status-update-seconds",
            "1",
        ],
    );
    wait_for(30, "node calm Ready", || {
        (ready_condition(&s, "calm") == "True").then_some(())
    });
    // Leases are renewed every second; the unchanged status is not written (report: 300 s).
    let (beat, lease) = (ready_heartbeat(&s, "calm"), renew_time(&s, "calm"));
    std::thread::sleep(Duration::from_secs(3));
    assert_ne!(renew_time(&s, "calm"), lease, "lease not renewed");
    assert_eq!(
        ready_heartbeat(&s, "calm"),
        beat,
        "status rewritten unchanged"
    );
    // A status the agent disagrees with is put right at the next check.
    s.ok(
        &k,
        &[
            "patch",
            "node",
            "calm",
            "--subresource=status",
            "-p",
            r#"{"status":{"conditions":[{"type":"Ready","status":"Unknown","reason":"NodeStatusUnknown","message":"test"}]}}"#,
        ],
    );
    wait_for(10, "Ready True again", || {
        (ready_condition(&s, "calm") == "True").then_some(())
    });
    assert_ne!(ready_heartbeat(&s, "calm"), beat, "{}", agent.log());
}
