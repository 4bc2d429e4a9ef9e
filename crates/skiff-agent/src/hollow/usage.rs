//! Simulated resource usage of hollow pods, rendered as the kubelet's `/metrics/resource`.
//!
//! A container uses the CPU and memory named by its pod's annotations `hollow.skiff.dev/cpu` and
//! `hollow.skiff.dev/memory` (each container of the pod uses that much), or else 10% of its
//! requests. CPU is integrated over time into a monotonic core-seconds counter.

use k8s_openapi::api::core::v1::Pod;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

pub const ANNOTATION_CPU: &str = "hollow.skiff.dev/cpu";
pub const ANNOTATION_MEMORY: &str = "hollow.skiff.dev/memory";

/// Share of a container's requests it uses when not annotated.
const DEFAULT_SHARE: f64 = 0.1;

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRate {
    pub name: String,
    /// Cores.
    pub cpu: f64,
    /// Bytes.
    pub memory: f64,
}

/// What each container of `pod` uses.
pub fn rates(pod: &Pod) -> Vec<ContainerRate> {
    let annotated = |key: &str| {
        pod.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .and_then(|v| skiff_api::quantity::as_f64(v).filter(|x| *x >= 0.0))
    };
    let (cpu, memory) = (annotated(ANNOTATION_CPU), annotated(ANNOTATION_MEMORY));
    pod.spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let request = |r: &str| {
                c.resources
                    .as_ref()
                    .and_then(|res| res.requests.as_ref())
                    .and_then(|req| req.get(r))
                    .and_then(|q| skiff_api::quantity::as_f64(&q.0).filter(|x| *x >= 0.0))
                    .map_or(0.0, |v| v * DEFAULT_SHARE)
            };
            ContainerRate {
                name: c.name.clone(),
                cpu: cpu.unwrap_or_else(|| request("cpu")),
                memory: memory.unwrap_or_else(|| request("memory")).round(),
            }
        })
        .collect()
}

#[derive(Debug, Clone)]
struct ContainerUsage {
    rate: ContainerRate,
    /// Core-seconds up to `since`.
    cpu_seconds: f64,
    since: Instant,
}

impl ContainerUsage {
    fn cpu_seconds_at(&self, now: Instant) -> f64 {
        self.cpu_seconds + self.rate.cpu * now.saturating_duration_since(self.since).as_secs_f64()
    }
}

#[derive(Debug, Clone)]
struct PodUsage {
    node: usize,
    namespace: String,
    name: String,
    containers: Vec<ContainerUsage>,
}

#[derive(Debug, Default)]
struct Inner {
    pods: HashMap<String, PodUsage>,
    /// Core-seconds of pods that are gone, per node, so node counters never go back.
    node_cpu_seconds: HashMap<usize, f64>,
}

/// Usage of every running hollow pod of this agent, keyed by UID.
#[derive(Debug, Default)]
pub struct Usage {
    inner: Mutex<Inner>,
}

/// A node's figures at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub node_cpu_seconds: f64,
    pub node_memory: f64,
    /// (namespace, pod, container, cpu seconds, memory bytes)
    pub containers: Vec<(String, String, String, f64, f64)>,
}

impl Usage {
    /// Records that pod `uid` runs on node `node` using `rates`; a changed rate applies from now.
    pub fn set(&self, uid: &str, node: usize, pod: &Pod, rates: Vec<ContainerRate>) {
        self.set_at(uid, node, pod, rates, Instant::now());
    }

    fn set_at(&self, uid: &str, node: usize, pod: &Pod, rates: Vec<ContainerRate>, now: Instant) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let entry = inner
            .pods
            .entry(uid.to_string())
            .or_insert_with(|| PodUsage {
                node,
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                name: pod.metadata.name.clone().unwrap_or_default(),
                containers: Vec::new(),
            });
        let containers = rates
            .into_iter()
            .map(
                |rate| match entry.containers.iter().find(|c| c.rate.name == rate.name) {
                    Some(old) if old.rate == rate => old.clone(),
                    Some(old) => ContainerUsage {
                        cpu_seconds: old.cpu_seconds_at(now),
                        since: now,
                        rate,
                    },
                    None => ContainerUsage {
                        rate,
                        cpu_seconds: 0.0,
                        since: now,
                    },
                },
            )
            .collect();
        entry.containers = containers;
    }

    /// The pod stopped: its CPU time stays in its node's counter.
    pub fn remove(&self, uid: &str) {
        self.remove_at(uid, Instant::now());
    }

    fn remove_at(&self, uid: &str, now: Instant) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if let Some(p) = inner.pods.remove(uid) {
            let spent: f64 = p.containers.iter().map(|c| c.cpu_seconds_at(now)).sum();
            *inner.node_cpu_seconds.entry(p.node).or_default() += spent;
        }
    }

    /// Node `node`'s figures at `now`.
    pub fn sample(&self, node: usize, now: Instant) -> Sample {
        let Ok(inner) = self.inner.lock() else {
            return Sample {
                node_cpu_seconds: 0.0,
                node_memory: 0.0,
                containers: Vec::new(),
            };
        };
        let mut containers = Vec::new();
        for p in inner.pods.values().filter(|p| p.node == node) {
            for c in &p.containers {
                containers.push((
                    p.namespace.clone(),
                    p.name.clone(),
                    c.rate.name.clone(),
                    c.cpu_seconds_at(now),
                    c.rate.memory,
                ));
            }
        }
        containers.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
        Sample {
            node_cpu_seconds: inner.node_cpu_seconds.get(&node).copied().unwrap_or(0.0)
                + containers.iter().map(|c| c.3).sum::<f64>(),
            node_memory: containers.iter().map(|c| c.4).sum(),
            containers,
        }
    }
}

fn header(text: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(
        text,
        "# HELP {name} [STABLE] {help}\n# TYPE {name} {kind}\n"
    );
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The kubelet's `/metrics/resource` text for one node; `ts` is the sample time in Unix milliseconds.
pub fn render(sample: &Sample, ts: i64) -> String {
    let mut text = String::new();
    header(
        &mut text,
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the container in core-seconds",
    );
    for (ns, pod, c, cpu, _) in &sample.containers {
        let _ = writeln!(
            text,
            "container_cpu_usage_seconds_total{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}} {cpu} {ts}",
            escape(c),
            escape(ns),
            escape(pod)
        );
    }
    header(
        &mut text,
        "container_memory_working_set_bytes",
        "gauge",
        "Current working set of the container in bytes",
    );
    for (ns, pod, c, _, mem) in &sample.containers {
        let _ = writeln!(
            text,
            "container_memory_working_set_bytes{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}} {mem} {ts}",
            escape(c),
            escape(ns),
            escape(pod)
        );
    }
    header(
        &mut text,
        "node_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the node in core-seconds",
    );
    let _ = writeln!(
        text,
        "node_cpu_usage_seconds_total {} {ts}",
        sample.node_cpu_seconds
    );
    header(
        &mut text,
        "node_memory_working_set_bytes",
        "gauge",
        "Current working set of the node in bytes",
    );
    let _ = writeln!(
        text,
        "node_memory_working_set_bytes {} {ts}",
        sample.node_memory
    );
    // Pods: the sums of their containers, in order.
    let mut pods: Vec<(&str, &str, f64, f64)> = Vec::new();
    for (ns, pod, _, cpu, mem) in &sample.containers {
        match pods.last_mut() {
            Some(last) if last.0 == ns && last.1 == pod => {
                last.2 += cpu;
                last.3 += mem;
            }
            _ => pods.push((ns, pod, *cpu, *mem)),
        }
    }
    header(
        &mut text,
        "pod_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the pod in core-seconds",
    );
    for (ns, pod, cpu, _) in &pods {
        let _ = writeln!(
            text,
            "pod_cpu_usage_seconds_total{{namespace=\"{}\",pod=\"{}\"}} {cpu} {ts}",
            escape(ns),
            escape(pod)
        );
    }
    header(
        &mut text,
        "pod_memory_working_set_bytes",
        "gauge",
        "Current working set of the pod in bytes",
    );
    for (ns, pod, _, mem) in &pods {
        let _ = writeln!(
            text,
            "pod_memory_working_set_bytes{{namespace=\"{}\",pod=\"{}\"}} {mem} {ts}",
            escape(ns),
            escape(pod)
        );
    }
    header(
        &mut text,
        "scrape_error",
        "gauge",
        "1 if there was an error while getting container metrics, 0 otherwise",
    );
    text.push_str("scrape_error 0\n");
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn pod(annotations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "annotations": annotations},
            "spec": {"containers": [
                {"name": "a", "image": "x", "resources": {"requests": {"cpu": "500m", "memory": "100Mi"}}},
                {"name": "b", "image": "x"},
            ]},
        }))
        .unwrap()
    }

    #[test]
    fn defaults_to_a_tenth_of_requests() {
        let r = rates(&pod(json!({})));
        assert_eq!(r[0].cpu, 0.05);
        assert_eq!(r[0].memory, 10485760.0);
        assert_eq!((r[1].cpu, r[1].memory), (0.0, 0.0));
    }

    #[test]
    fn annotations_set_each_containers_usage() {
        let r = rates(&pod(
            json!({ANNOTATION_CPU: "250m", ANNOTATION_MEMORY: "64Mi"}),
        ));
        assert_eq!(r[1].cpu, 0.25);
        assert_eq!(r[1].memory, 67108864.0);
    }

    #[test]
    fn integrates_cpu_and_keeps_node_counters_monotonic() {
        let u = Usage::default();
        let p = pod(json!({ANNOTATION_CPU: "500m", ANNOTATION_MEMORY: "1Ki"}));
        let t0 = Instant::now();
        u.set_at("u1", 0, &p, rates(&p), t0);
        let s = u.sample(0, t0 + Duration::from_secs(10));
        assert_eq!(s.containers.len(), 2);
        assert!((s.containers[0].3 - 5.0).abs() < 1e-9);
        assert!((s.node_cpu_seconds - 10.0).abs() < 1e-9);
        assert_eq!(s.node_memory, 2048.0);
        // A new rate applies from the change on.
        let faster = pod(json!({ANNOTATION_CPU: "1", ANNOTATION_MEMORY: "1Ki"}));
        u.set_at(
            "u1",
            0,
            &faster,
            rates(&faster),
            t0 + Duration::from_secs(10),
        );
        let s = u.sample(0, t0 + Duration::from_secs(20));
        assert!((s.containers[0].3 - 15.0).abs() < 1e-9);
        u.remove_at("u1", t0 + Duration::from_secs(20));
        let s = u.sample(0, t0 + Duration::from_secs(30));
        assert!(s.containers.is_empty());
        assert!((s.node_cpu_seconds - 30.0).abs() < 1e-9);
        assert_eq!(u.sample(1, t0).node_cpu_seconds, 0.0);
    }

    #[test]
    fn renders_the_kubelet_format() {
        let s = Sample {
            node_cpu_seconds: 3.5,
            node_memory: 2048.0,
            containers: vec![
                ("default".into(), "web".into(), "a".into(), 1.5, 1024.0),
                ("default".into(), "web".into(), "b".into(), 2.0, 1024.0),
            ],
        };
        let text = render(&s, 1_700_000_000_000);
        assert!(text.contains("node_cpu_usage_seconds_total 3.5 1700000000000\n"));
        assert!(text.contains(
            "container_cpu_usage_seconds_total{container=\"a\",namespace=\"default\",pod=\"web\"} 1.5 1700000000000\n"
        ));
        assert!(text.contains(
            "pod_memory_working_set_bytes{namespace=\"default\",pod=\"web\"} 2048 1700000000000\n"
        ));
        assert!(text.contains("# TYPE node_memory_working_set_bytes gauge\n"));
    }
}
