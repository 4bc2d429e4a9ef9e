//! What a hollow pod's status is at a given moment: a pure function of its spec, annotations and clock.

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Per-pod override of `--hollow-pod-run-seconds`.
pub const ANNOTATION_RUN_SECONDS: &str = "hollow.skiff.dev/run-seconds";
/// Exit code of a run-to-completion pod's containers (default 0).
pub const ANNOTATION_EXIT_CODE: &str = "hollow.skiff.dev/exit-code";

/// Where a pod's containers are in their simulated life.
#[derive(Debug, Clone, PartialEq)]
pub enum Sim {
    Running {
        /// Current attempt's start.
        since: Timestamp,
        restarts: i32,
        /// The previous attempt, for `lastState`: (exit code, started, finished).
        last: Option<(i32, Timestamp, Timestamp)>,
    },
    Terminated {
        exit_code: i32,
        finished: Timestamp,
    },
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn add_secs(t: Timestamp, secs: f64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs_f64(secs))
        .unwrap_or(t)
}

/// The pod's state at `now` given it started at `started`, and when it next changes.
pub fn simulate(
    pod: &Pod,
    started: Timestamp,
    now: Timestamp,
    default_run_seconds: f64,
) -> (Sim, Option<Duration>) {
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    if policy == "Always" {
        return (
            Sim::Running {
                since: started,
                restarts: 0,
                last: None,
            },
            None,
        );
    }
    let run = annotation(pod, ANNOTATION_RUN_SECONDS)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .unwrap_or(default_run_seconds)
        .max(0.001);
    let exit_code = annotation(pod, ANNOTATION_EXIT_CODE)
        .and_then(|v| v.trim().parse::<i32>().ok())
        .unwrap_or(0);
    let elapsed = now.duration_since(started).as_secs_f64().max(0.0);
    let until = |t: f64| Some(Duration::from_secs_f64((t - elapsed).max(0.0) + 0.05));
    if policy == "OnFailure" && exit_code != 0 {
        // Fails after every run and is restarted at once, for ever (Job backoffLimit counts these).
        let attempt = (elapsed / run).floor();
        let restarts = attempt.min(f64::from(i32::MAX)) as i32;
        let since = add_secs(started, attempt * run);
        let last =
            (restarts > 0).then(|| (exit_code, add_secs(started, (attempt - 1.0) * run), since));
        return (
            Sim::Running {
                since,
                restarts,
                last,
            },
            until((attempt + 1.0) * run),
        );
    }
    if elapsed >= run {
        (
            Sim::Terminated {
                exit_code,
                finished: add_secs(started, run),
            },
            None,
        )
    } else {
        (
            Sim::Running {
                since: started,
                restarts: 0,
                last: None,
            },
            until(run),
        )
    }
}

/// Everything a status needs besides the pod itself.
#[derive(Debug, Clone)]
pub struct Placement {
    pub host_ip: String,
    pub pod_ip: Ipv4Addr,
    pub started: Timestamp,
}

fn time(t: &Timestamp) -> String {
    super::node::time(t)
}

fn container_id(uid: &str, name: &str, restarts: i32) -> String {
    format!(
        "hollow://{}",
        crate::join::sha256_hex(format!("{uid}/{name}/{restarts}").as_bytes())
    )
}

fn image_id(c: &Container) -> String {
    image_id_of(c.image.as_deref().unwrap_or_default())
}

fn image_id_of(image: &str) -> String {
    format!(
        "hollow://sha256:{}",
        crate::join::sha256_hex(image.as_bytes())
    )
}

fn terminated(exit_code: i32, started: &Timestamp, finished: &Timestamp, id: &str) -> Value {
    json!({
        "exitCode": exit_code,
        "reason": if exit_code == 0 { "Completed" } else { "Error" },
        "startedAt": time(started),
        "finishedAt": time(finished),
        "containerID": id,
    })
}

fn condition(ty: &str, status: bool, reason: Option<&str>, at: &Timestamp) -> Value {
    let mut c = json!({
        "type": ty,
        "status": if status { "True" } else { "False" },
        "lastProbeTime": null,
        "lastTransitionTime": time(at),
    });
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    c
}

/// The status for the simulated state `sim`.
pub fn status(pod: &Pod, placement: &Placement, sim: &Sim) -> Value {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let started = &placement.started;
    let init_statuses: Vec<Value> = spec
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
        .map(|c| {
            let id = container_id(uid, &c.name, 0);
            let sidecar = c.restart_policy.as_deref() == Some("Always");
            let state = if sidecar && matches!(sim, Sim::Running { .. }) {
                json!({"running": {"startedAt": time(started)}})
            } else {
                json!({"terminated": terminated(0, started, started, &id)})
            };
            json!({
                "name": c.name,
                "image": c.image,
                "imageID": image_id(c),
                "containerID": id,
                "ready": true,
                "started": sidecar,
                "restartCount": 0,
                "state": state,
                "lastState": {},
            })
        })
        .collect();
    let running = matches!(sim, Sim::Running { .. });
    let statuses: Vec<Value> = spec
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let (state, last, restarts) = match sim {
                Sim::Running {
                    since,
                    restarts,
                    last,
                } => {
                    let last = last
                        .map(|(code, s, f)| {
                            json!({"terminated": terminated(code, &s, &f, &container_id(uid, &c.name, restarts - 1))})
                        })
                        .unwrap_or_else(|| json!({}));
                    (json!({"running": {"startedAt": time(since)}}), last, *restarts)
                }
                Sim::Terminated {
                    exit_code,
                    finished,
                } => (
                    json!({"terminated": terminated(*exit_code, started, finished, &container_id(uid, &c.name, 0))}),
                    json!({}),
                    0,
                ),
            };
            json!({
                "name": c.name,
                "image": c.image,
                "imageID": image_id(c),
                "containerID": container_id(uid, &c.name, restarts),
                "ready": running,
                "started": running,
                "restartCount": restarts,
                "state": state,
                "lastState": last,
            })
        })
        .collect();
    let (phase, done_at) = match sim {
        Sim::Running { .. } => ("Running", None),
        Sim::Terminated {
            exit_code: 0,
            finished,
        } => ("Succeeded", Some(finished)),
        Sim::Terminated { finished, .. } => ("Failed", Some(finished)),
    };
    let ready_at = done_at.unwrap_or(started);
    let completed = done_at.is_some().then_some("PodCompleted");
    let ip = placement.pod_ip.to_string();
    let mut status = json!({
        "phase": phase,
        "conditions": [
            condition("PodReadyToStartContainers", running, None, ready_at),
            condition("Initialized", true, None, started),
            condition("Ready", running, completed, ready_at),
            condition("ContainersReady", running, completed, ready_at),
            condition("PodScheduled", true, None, started),
        ],
        "hostIP": placement.host_ip,
        "hostIPs": [{"ip": placement.host_ip}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": time(started),
        "containerStatuses": statuses,
    });
    if !init_statuses.is_empty() {
        status["initContainerStatuses"] = json!(init_statuses);
    }
    // Ephemeral containers (`kubectl debug`) run while the pod runs and are never ready, as a
    // kubelet reports them; they stop with the pod.
    let ephemeral: Vec<Value> = spec
        .and_then(|s| s.ephemeral_containers.as_ref())
        .into_iter()
        .flatten()
        .map(|c| {
            let id = container_id(uid, &c.name, 0);
            let state = match sim {
                Sim::Running { since, .. } => json!({"running": {"startedAt": time(since)}}),
                Sim::Terminated { finished, .. } => {
                    json!({"terminated": terminated(0, started, finished, &id)})
                }
            };
            json!({
                "name": c.name,
                "image": c.image,
                "imageID": image_id_of(c.image.as_deref().unwrap_or_default()),
                "containerID": id,
                "ready": false,
                "restartCount": 0,
                "state": state,
                "lastState": {},
            })
        })
        .collect();
    if !ephemeral.is_empty() {
        status["ephemeralContainerStatuses"] = json!(ephemeral);
    }
    status
}

/// The status of a pod the node refused to admit.
pub fn rejected(reason: &str, message: &str) -> Value {
    json!({"phase": "Failed", "reason": reason, "message": message})
}

/// What decides whether a status must be written again: phase, addresses, the Ready and
/// ContainersReady conditions (the node lifecycle controller sets Ready to False on pods of an
/// unreachable node; the agent puts it back once it reports again), and each container's state
/// kind, readiness and restart count. Timestamps and formatting do not count.
pub fn signature(status: &Value) -> String {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut out = format!(
        "{}|{}|{}|{}",
        s(status, "phase"),
        s(status, "reason"),
        s(status, "podIP"),
        s(status, "hostIP")
    );
    for ty in ["Ready", "ContainersReady"] {
        let value = status
            .get("conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
            .map(|c| s(c, "status"))
            .unwrap_or_default();
        out.push_str(&format!("|{ty}={value}"));
    }
    for list in [
        "initContainerStatuses",
        "containerStatuses",
        "ephemeralContainerStatuses",
    ] {
        out.push('|');
        for c in status
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let state = c
                .get("state")
                .and_then(Value::as_object)
                .and_then(|m| m.keys().next().cloned())
                .unwrap_or_default();
            let code = c
                .pointer("/state/terminated/exitCode")
                .and_then(Value::as_i64)
                .unwrap_or(-1);
            out.push_str(&format!(
                "{}:{}:{}:{}:{};",
                s(c, "name"),
                state,
                code,
                c.get("ready").and_then(Value::as_bool).unwrap_or(false),
                c.get("restartCount").and_then(Value::as_i64).unwrap_or(0)
            ));
        }
    }
    out
}

/// Whether every container of the pod is shown terminated (or there is nothing to stop).
pub fn all_terminated(status: &Value) -> bool {
    status
        .get("containerStatuses")
        .and_then(Value::as_array)
        .is_none_or(|cs| cs.iter().all(|c| c.pointer("/state/terminated").is_some()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pod(policy: &str, annotations: &[(&str, &str)]) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": "p", "namespace": "default", "uid": "u1",
                "annotations": annotations.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            },
            "spec": {
                "restartPolicy": policy,
                "nodeName": "h-0",
                "initContainers": [{"name": "init", "image": "busybox"}],
                "containers": [{"name": "c", "image": "nginx:1.25"}, {"name": "d", "image": "redis"}],
            },
        }))
        .unwrap()
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn placement() -> Placement {
        Placement {
            host_ip: "127.0.0.1".into(),
            pod_ip: Ipv4Addr::new(10, 42, 0, 2),
            started: at(0),
        }
    }

    #[test]
    fn long_running_pods_run_and_are_ready() {
        let p = pod("Always", &[]);
        let (sim, requeue) = simulate(&p, at(0), at(100), 2.0);
        assert_eq!(requeue, None);
        let s = status(&p, &placement(), &sim);
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.42.0.2");
        assert_eq!(s["podIPs"][0]["ip"], "10.42.0.2");
        assert_eq!(s["hostIPs"][0]["ip"], "127.0.0.1");
        assert_eq!(s["containerStatuses"].as_array().unwrap().len(), 2);
        assert_eq!(s["containerStatuses"][0]["ready"], true);
        assert_eq!(s["containerStatuses"][0]["started"], true);
        assert!(
            s["containerStatuses"][0]["containerID"]
                .as_str()
                .unwrap()
                .starts_with("hollow://")
        );
        assert_eq!(
            s["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        let conditions = s["conditions"].as_array().unwrap();
        assert_eq!(conditions.len(), 5);
        assert!(conditions.iter().all(|c| c["status"] == "True"));
        // The status decodes as the typed API object.
        let _: k8s_openapi::api::core::v1::PodStatus = serde_json::from_value(s).unwrap();
    }

    #[test]
    fn ephemeral_containers_run_with_the_pod_and_are_never_ready() {
        let mut p = pod("Always", &[]);
        let without = status(&p, &placement(), &simulate(&p, at(0), at(100), 2.0).0);
        assert!(without.get("ephemeralContainerStatuses").is_none());
        p.spec.as_mut().unwrap().ephemeral_containers = Some(vec![
            serde_json::from_value(json!({"name": "debugger", "image": "busybox"})).unwrap(),
        ]);
        let s = status(&p, &placement(), &simulate(&p, at(0), at(100), 2.0).0);
        let e = &s["ephemeralContainerStatuses"][0];
        assert_eq!(e["name"], "debugger");
        assert_eq!(e["ready"], false);
        assert!(e["state"]["running"]["startedAt"].is_string());
        // Adding one is a change the agent writes.
        assert_ne!(signature(&without), signature(&s));
        let _: k8s_openapi::api::core::v1::PodStatus = serde_json::from_value(s).unwrap();

        let mut job = pod("Never", &[]);
        job.spec.as_mut().unwrap().ephemeral_containers = p.spec.unwrap().ephemeral_containers;
        let done = status(&job, &placement(), &simulate(&job, at(0), at(100), 2.0).0);
        assert_eq!(done["phase"], "Succeeded");
        assert!(done["ephemeralContainerStatuses"][0]["state"]["terminated"].is_object());
    }

    #[test]
    fn run_to_completion_pods_succeed_after_their_run_time() {
        let p = pod("Never", &[]);
        let (sim, requeue) = simulate(&p, at(0), at(1), 2.0);
        assert!(matches!(sim, Sim::Running { .. }));
        let r = requeue.unwrap().as_secs_f64();
        assert!((1.0..1.2).contains(&r), "{r}");
        let (sim, _) = simulate(&p, at(0), at(2), 2.0);
        let s = status(&p, &placement(), &sim);
        assert_eq!(s["phase"], "Succeeded");
        assert_eq!(
            s["containerStatuses"][1]["state"]["terminated"]["reason"],
            "Completed"
        );
        assert_eq!(s["containerStatuses"][1]["ready"], false);
        assert_eq!(s["conditions"][2]["reason"], "PodCompleted");
        assert!(all_terminated(&s));
    }

    #[test]
    fn annotations_override_run_time_and_exit_code() {
        let p = pod(
            "Never",
            &[(ANNOTATION_RUN_SECONDS, "10"), (ANNOTATION_EXIT_CODE, "3")],
        );
        assert!(matches!(
            simulate(&p, at(0), at(5), 2.0).0,
            Sim::Running { .. }
        ));
        let (sim, _) = simulate(&p, at(0), at(10), 2.0);
        assert_eq!(
            sim,
            Sim::Terminated {
                exit_code: 3,
                finished: at(10)
            }
        );
        let s = status(&p, &placement(), &sim);
        assert_eq!(s["phase"], "Failed");
        assert_eq!(
            s["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            3
        );
        assert_eq!(
            s["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Error"
        );
    }

    #[test]
    fn on_failure_pods_restart_and_fail_again() {
        let p = pod("OnFailure", &[(ANNOTATION_EXIT_CODE, "1")]);
        let (sim, requeue) = simulate(&p, at(0), at(5), 2.0);
        assert_eq!(
            sim,
            Sim::Running {
                since: at(4),
                restarts: 2,
                last: Some((1, at(2), at(4)))
            }
        );
        assert!(requeue.unwrap() <= Duration::from_millis(1100));
        let s = status(&p, &placement(), &sim);
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["containerStatuses"][0]["restartCount"], 2);
        assert_eq!(
            s["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
            1
        );
        // OnFailure with success completes like Never.
        let ok = pod("OnFailure", &[]);
        assert!(matches!(
            simulate(&ok, at(0), at(3), 2.0).0,
            Sim::Terminated { exit_code: 0, .. }
        ));
    }

    #[test]
    fn signatures_ignore_timestamps_but_not_state() {
        let p = pod("OnFailure", &[(ANNOTATION_EXIT_CODE, "1")]);
        let a = status(&p, &placement(), &simulate(&p, at(0), at(1), 2.0).0);
        let b = status(&p, &placement(), &simulate(&p, at(0), at(1), 2.0).0);
        let c = status(&p, &placement(), &simulate(&p, at(0), at(3), 2.0).0);
        assert_eq!(signature(&a), signature(&b));
        assert_ne!(signature(&a), signature(&c));
        assert_ne!(signature(&a), signature(&json!({"phase": "Pending"})));
        // The node lifecycle controller marked the pod not ready: write the status again.
        let mut marked = a.clone();
        for c in marked["conditions"].as_array_mut().unwrap() {
            if c["type"] == "Ready" {
                c["status"] = json!("False");
            }
        }
        assert_ne!(signature(&a), signature(&marked));
        assert!(!all_terminated(&a));
        assert!(all_terminated(&json!({"phase": "Pending"})));
    }
}
