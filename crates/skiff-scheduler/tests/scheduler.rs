//! The scheduler against an in-process API server over a memory store, with Node objects
//! created through the API (no agents).

use k8s_openapi::api::core::v1::{
    Affinity, Container, Event, Node, NodeSpec, NodeStatus, Pod, PodAffinityTerm, PodAntiAffinity,
    PodSpec, ResourceRequirements, Taint, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// An API server over a memory store with the scheduler running; stops on drop.
struct Cluster {
    client: Client,
    cancel: CancellationToken,
    _tasks: JoinSet<()>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn cluster() -> Cluster {
    let cancel = CancellationToken::new();
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
    let client = Client::new(api.router(), "default");
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        let _ = feeder.await;
    });
    tasks.spawn(skiff_scheduler::run(client.clone(), cancel.clone()));
    Cluster {
        client,
        cancel,
        _tasks: tasks,
    }
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct NodeDef<'a> {
    name: &'a str,
    cpu: &'a str,
    labels: &'a [(&'a str, &'a str)],
    taints: Vec<Taint>,
}

fn node<'a>(name: &'a str, cpu: &'a str) -> NodeDef<'a> {
    NodeDef {
        name,
        cpu,
        labels: &[],
        taints: vec![],
    }
}

async fn create_node(c: &Client, d: NodeDef<'_>) {
    let mut l = labels(d.labels);
    l.insert("kubernetes.io/hostname".into(), d.name.into());
    let alloc = quantities(&[("cpu", d.cpu), ("memory", "8Gi"), ("pods", "110")]);
    let n = Node {
        metadata: ObjectMeta {
            name: Some(d.name.into()),
            labels: Some(l),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: (!d.taints.is_empty()).then_some(d.taints),
            ..NodeSpec::default()
        }),
        status: Some(NodeStatus {
            allocatable: Some(alloc.clone()),
            capacity: Some(alloc),
            ..NodeStatus::default()
        }),
    };
    let api: Api<Node> = Api::all(c.clone());
    let created = api
        .create(&PostParams::default(), &n)
        .await
        .expect("create node");
    // The status may be dropped on create, as upstream does; write it through the subresource.
    if created
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .is_none()
    {
        let patch = serde_json::json!({"status": n.status});
        api.patch_status(
            d.name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(patch),
        )
        .await
        .expect("node status");
    }
}

fn pod(name: &str, cpu: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("busybox".into()),
                resources: Some(ResourceRequirements {
                    requests: Some(quantities(&[("cpu", cpu)])),
                    ..ResourceRequirements::default()
                }),
                ..Container::default()
            }],
            termination_grace_period_seconds: Some(0),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

async fn create_pod(c: &Client, p: Pod) -> Pod {
    let api: Api<Pod> = Api::namespaced(c.clone(), "default");
    api.create(&PostParams::default(), &p)
        .await
        .expect("create pod")
}

/// Polls `check` every 50 ms until it yields a value.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn bound_node(c: &Client, name: &str) -> String {
    let api: Api<Pod> = Api::namespaced(c.clone(), "default");
    eventually(&format!("{name} is bound"), || async {
        api.get(name)
            .await
            .ok()
            .and_then(|p| p.spec.and_then(|s| s.node_name))
    })
    .await
}

/// The message of the first Event with `reason` about pod `name`.
async fn event(c: &Client, name: &str, reason: &str) -> String {
    let api: Api<Event> = Api::namespaced(c.clone(), "default");
    eventually(&format!("{reason} event for {name}"), || async {
        api.list(&ListParams::default()).await.ok().and_then(|l| {
            l.items
                .into_iter()
                .find(|e| {
                    e.involved_object.name.as_deref() == Some(name)
                        && e.reason.as_deref() == Some(reason)
                })
                .and_then(|e| e.message)
        })
    })
    .await
}

async fn run<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test timed out");
}

#[tokio::test]
async fn pods_are_bound_with_scheduled_events() {
    run(async {
        let c = cluster().await;
        for n in ["n1", "n2", "n3"] {
            create_node(&c.client, node(n, "4")).await;
        }
        for i in 0..6 {
            create_pod(&c.client, pod(&format!("p{i}"), "1")).await;
        }
        let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..6 {
            *per_node
                .entry(bound_node(&c.client, &format!("p{i}")).await)
                .or_default() += 1;
        }
        // LeastAllocated and BalancedAllocation spread equal pods evenly.
        assert_eq!(
            per_node.values().copied().collect::<Vec<_>>(),
            vec![2, 2, 2]
        );
        let node = bound_node(&c.client, "p0").await;
        assert_eq!(
            event(&c.client, "p0", "Scheduled").await,
            format!("Successfully assigned default/p0 to {node}")
        );
        let p: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        let cond = p
            .get("p0")
            .await
            .expect("p0")
            .status
            .and_then(|s| s.conditions)
            .and_then(|cs| cs.into_iter().find(|c| c.type_ == "PodScheduled"))
            .expect("PodScheduled condition");
        assert_eq!(cond.status, "True");
    })
    .await;
}

#[tokio::test]
async fn a_pod_too_big_gets_failed_scheduling_then_fits_a_new_node() {
    run(async {
        let c = cluster().await;
        for n in ["n1", "n2", "n3"] {
            create_node(&c.client, node(n, "2")).await;
        }
        create_pod(&c.client, pod("big", "3")).await;
        let want = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.";
        assert_eq!(event(&c.client, "big", "FailedScheduling").await, want);
        let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        let cond = eventually("PodScheduled=False", || async {
            api.get("big")
                .await
                .ok()
                .and_then(|p| p.status)
                .and_then(|s| s.conditions)
                .and_then(|cs| cs.into_iter().find(|c| c.type_ == "PodScheduled"))
        })
        .await;
        assert_eq!(cond.status, "False");
        assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));
        assert_eq!(cond.message.as_deref(), Some(want));
        // A node with room is a cluster event that retries the pod.
        create_node(&c.client, node("huge", "8")).await;
        assert_eq!(bound_node(&c.client, "big").await, "huge");
    })
    .await;
}

#[tokio::test]
async fn unreadable_quantities_are_unschedulable_not_a_crash() {
    run(async {
        let c = cluster().await;
        create_node(&c.client, node("n1", "2")).await;
        let mut bad = pod("bad", "1");
        if let Some(s) = bad.spec.as_mut() {
            s.overhead = Some(quantities(&[("example.com/widgets", "1.5.5")]));
        }
        // The API server may refuse the quantity itself; then there is nothing to schedule.
        let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        if api.create(&PostParams::default(), &bad).await.is_ok() {
            let msg = event(&c.client, "bad", "FailedScheduling").await;
            assert!(
                msg.starts_with("0/1 nodes are available: quantities must match"),
                "{msg}"
            );
        }
        create_pod(&c.client, pod("good", "1")).await;
        assert_eq!(bound_node(&c.client, "good").await, "n1");
    })
    .await;
}

#[tokio::test]
async fn taints_and_node_selectors_are_respected() {
    run(async {
        let c = cluster().await;
        let gpu = [("accelerator", "gpu")];
        create_node(
            &c.client,
            NodeDef {
                labels: &gpu,
                taints: vec![Taint {
                    key: "dedicated".into(),
                    value: Some("gpu".into()),
                    effect: "NoSchedule".into(),
                    time_added: None,
                }],
                ..node("tainted", "4")
            },
        )
        .await;
        let ssd = [("disk", "ssd")];
        create_node(
            &c.client,
            NodeDef {
                labels: &ssd,
                ..node("ssd", "4")
            },
        )
        .await;
        create_node(&c.client, node("plain", "4")).await;

        let mut wants_ssd = pod("wants-ssd", "1");
        wants_ssd.spec.as_mut().expect("spec").node_selector = Some(labels(&ssd));
        create_pod(&c.client, wants_ssd).await;
        assert_eq!(bound_node(&c.client, "wants-ssd").await, "ssd");

        let mut tolerant = pod("tolerant", "1");
        let spec = tolerant.spec.as_mut().expect("spec");
        spec.node_selector = Some(labels(&gpu));
        spec.tolerations = Some(vec![Toleration {
            key: Some("dedicated".into()),
            operator: Some("Equal".into()),
            value: Some("gpu".into()),
            effect: Some("NoSchedule".into()),
            toleration_seconds: None,
        }]);
        create_pod(&c.client, tolerant).await;
        assert_eq!(bound_node(&c.client, "tolerant").await, "tainted");

        let mut intolerant = pod("intolerant", "1");
        intolerant.spec.as_mut().expect("spec").node_selector = Some(labels(&gpu));
        create_pod(&c.client, intolerant).await;
        assert_eq!(
            event(&c.client, "intolerant", "FailedScheduling").await,
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
        // Unselective pods avoid the tainted node.
        for i in 0..4 {
            create_pod(&c.client, pod(&format!("any{i}"), "100m")).await;
        }
        for i in 0..4 {
            assert_ne!(bound_node(&c.client, &format!("any{i}")).await, "tainted");
        }
    })
    .await;
}

fn web(name: &str) -> Pod {
    let mut p = pod(name, "100m");
    p.metadata.labels = Some(labels(&[("app", "web")]));
    p
}

fn web_selector() -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels(&[("app", "web")])),
        ..LabelSelector::default()
    }
}

#[tokio::test]
async fn anti_affinity_keeps_replicas_apart() {
    run(async {
        let c = cluster().await;
        for n in ["n1", "n2", "n3"] {
            create_node(&c.client, node(n, "4")).await;
        }
        let apart = |name: &str| {
            let mut p = web(name);
            p.spec.as_mut().expect("spec").affinity = Some(Affinity {
                pod_anti_affinity: Some(PodAntiAffinity {
                    required_during_scheduling_ignored_during_execution: Some(vec![
                        PodAffinityTerm {
                            label_selector: Some(web_selector()),
                            topology_key: "kubernetes.io/hostname".into(),
                            ..PodAffinityTerm::default()
                        },
                    ]),
                    ..PodAntiAffinity::default()
                }),
                ..Affinity::default()
            });
            p
        };
        let mut nodes = Vec::new();
        for i in 0..3 {
            let name = format!("w{i}");
            create_pod(&c.client, apart(&name)).await;
            nodes.push(bound_node(&c.client, &name).await);
        }
        nodes.sort();
        assert_eq!(nodes, vec!["n1", "n2", "n3"]);
        create_pod(&c.client, apart("w3")).await;
        assert_eq!(
            event(&c.client, "w3", "FailedScheduling").await,
            "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
        );
    })
    .await;
}

#[tokio::test]
async fn topology_spread_balances_zones() {
    run(async {
        let c = cluster().await;
        let z1 = [("topology.kubernetes.io/zone", "z1")];
        let z2 = [("topology.kubernetes.io/zone", "z2")];
        for (n, z) in [("a1", &z1), ("a2", &z1), ("a3", &z1), ("b1", &z2)] {
            create_node(
                &c.client,
                NodeDef {
                    labels: z,
                    ..node(n, "8")
                },
            )
            .await;
        }
        let spread = |name: &str| {
            let mut p = web(name);
            p.spec.as_mut().expect("spec").topology_spread_constraints =
                Some(vec![TopologySpreadConstraint {
                    max_skew: 1,
                    topology_key: "topology.kubernetes.io/zone".into(),
                    when_unsatisfiable: "DoNotSchedule".into(),
                    label_selector: Some(web_selector()),
                    ..TopologySpreadConstraint::default()
                }]);
            p
        };
        let mut zones: BTreeMap<&str, usize> = BTreeMap::new();
        for i in 0..6 {
            let name = format!("s{i}");
            create_pod(&c.client, spread(&name)).await;
            let n = bound_node(&c.client, &name).await;
            *zones
                .entry(if n.starts_with('a') { "z1" } else { "z2" })
                .or_default() += 1;
        }
        assert_eq!(zones, BTreeMap::from([("z1", 3), ("z2", 3)]));
    })
    .await;
}

async fn priority_class(c: &Client, name: &str, value: i32) {
    let api: Api<PriorityClass> = Api::all(c.clone());
    api.create(
        &PostParams::default(),
        &PriorityClass {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            value,
            ..PriorityClass::default()
        },
    )
    .await
    .expect("create priority class");
}

#[tokio::test]
async fn a_high_priority_pod_preempts_a_low_priority_one() {
    run(async {
        let c = cluster().await;
        priority_class(&c.client, "low", 10).await;
        priority_class(&c.client, "high", 1000).await;
        create_node(&c.client, node("n1", "2")).await;
        let mut low = pod("low", "2");
        low.spec.as_mut().expect("spec").priority_class_name = Some("low".into());
        create_pod(&c.client, low).await;
        assert_eq!(bound_node(&c.client, "low").await, "n1");

        let mut high = pod("high", "2");
        high.spec.as_mut().expect("spec").priority_class_name = Some("high".into());
        let high = create_pod(&c.client, high).await;
        let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        // The victim is marked and deleted gracefully; play the kubelet and finish the job.
        let victim = eventually("low is terminating", || async {
            api.get("low")
                .await
                .ok()
                .filter(|p| p.metadata.deletion_timestamp.is_some())
        })
        .await;
        let cond = victim
            .status
            .and_then(|s| s.conditions)
            .and_then(|cs| cs.into_iter().find(|c| c.type_ == "DisruptionTarget"))
            .expect("DisruptionTarget condition");
        assert_eq!(cond.reason.as_deref(), Some("PreemptionByScheduler"));
        assert_eq!(
            event(&c.client, "low", "Preempted").await,
            format!("Preempted by pod {} on node n1", high.uid().expect("uid"))
        );
        let nominated = eventually("high is nominated", || async {
            api.get("high")
                .await
                .ok()
                .and_then(|p| p.status)
                .and_then(|s| s.nominated_node_name)
        })
        .await;
        assert_eq!(nominated, "n1");
        api.delete("low", &DeleteParams::default().grace_period(0))
            .await
            .expect("finish deleting low");
        assert_eq!(bound_node(&c.client, "high").await, "n1");
    })
    .await;
}

#[tokio::test]
async fn pods_for_other_schedulers_are_left_alone() {
    run(async {
        let c = cluster().await;
        create_node(&c.client, node("n1", "4")).await;
        let mut other = pod("other", "1");
        other.spec.as_mut().expect("spec").scheduler_name = Some("my-scheduler".into());
        create_pod(&c.client, other).await;
        create_pod(&c.client, pod("mine", "1")).await;
        assert_eq!(bound_node(&c.client, "mine").await, "n1");
        let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        let other = api.get("other").await.expect("other");
        assert!(other.spec.and_then(|s| s.node_name).is_none());
        let events: Api<Event> = Api::namespaced(c.client.clone(), "default");
        let about_other = events
            .list(&ListParams::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some("other"))
            .count();
        assert_eq!(about_other, 0);
    })
    .await;
}

/// Each retry of a pod that cannot be scheduled counts into one FailedScheduling Event,
/// as upstream's scheduler shows "(x3 over 7s)" instead of a line per attempt.
#[tokio::test]
async fn repeated_failures_count_into_one_event() {
    run(async {
        let c = cluster().await;
        // No node at all: the scheduler retries with backoff (1 s, 2 s, ...).
        create_pod(&c.client, pod("lonely", "1")).await;
        let api: Api<Event> = Api::namespaced(c.client.clone(), "default");
        let failures = eventually("a FailedScheduling event counted twice", || async {
            let failures: Vec<Event> = api
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .filter(|e| {
                    e.involved_object.name.as_deref() == Some("lonely")
                        && e.reason.as_deref() == Some("FailedScheduling")
                })
                .collect();
            failures
                .iter()
                .any(|e| e.count.unwrap_or(0) >= 2)
                .then_some(failures)
        })
        .await;
        assert_eq!(failures.len(), 1, "{failures:?}");
        let e = &failures[0];
        assert!(e.last_timestamp >= e.first_timestamp, "{e:?}");
    })
    .await;
}
