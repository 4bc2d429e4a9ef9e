//! HorizontalPodAutoscaler controller (autoscaling/v2): scales a workload's replicas from
//! the CPU and memory usage the metrics API (`metrics.k8s.io`) reports, with upstream's
//! replica calculation, tolerance, stabilization windows and scaling policies.

use crate::events::{EventType, Recorder};
use crate::runtime::{self, Change, Informer, Informers, Key, Queue};
use k8s_openapi::api::autoscaling::v2::{
    HPAScalingRules, HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition,
    HorizontalPodAutoscalerStatus, MetricSpec, MetricStatus, MetricValueStatus,
    ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Upstream's --horizontal-pod-autoscaler-tolerance.
pub const TOLERANCE: f64 = 0.1;

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// --horizontal-pod-autoscaler-sync-period.
    pub sync_period: Duration,
    /// --horizontal-pod-autoscaler-cpu-initialization-period.
    pub cpu_initialization: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            sync_period: Duration::from_secs(15),
            cpu_initialization: Duration::from_secs(300),
        }
    }
}

pub use crate::runtime::Error;

/// A quantity in base units (cores, bytes).
pub fn quantity(q: &str) -> Option<f64> {
    skiff_api::quantity::as_f64(q)
}

/// One pod as the replica calculation sees it.
#[derive(Debug, Clone)]
pub struct PodSample {
    /// Usage in base units, None when the metrics API has none for it.
    pub usage: Option<f64>,
    /// Sum of the containers' requests for the resource.
    pub request: f64,
    /// Ready (and, for CPU, past its initialization) — unready pods are treated
    /// conservatively when scaling up.
    pub ready: bool,
}

/// Upstream's GetResourceReplicas for a utilization (percent of request) target, pure:
/// returns (replicas, current utilization percent).
pub fn replicas_for_utilization(
    current: i32,
    target_percent: i32,
    pods: &[PodSample],
) -> Option<(i32, i32)> {
    let with_metrics: Vec<&PodSample> = pods.iter().filter(|p| p.usage.is_some()).collect();
    let ready: Vec<&PodSample> = with_metrics.iter().copied().filter(|p| p.ready).collect();
    if ready.is_empty() {
        return None;
    }
    let usage: f64 = ready.iter().filter_map(|p| p.usage).sum();
    let requests: f64 = ready.iter().map(|p| p.request).sum();
    if requests <= 0.0 {
        return None;
    }
    let utilization = usage / requests * 100.0;
    let ratio = utilization / f64::from(target_percent.max(1));
    let missing: Vec<&PodSample> = pods.iter().filter(|p| p.usage.is_none()).collect();
    let unready: Vec<&PodSample> = with_metrics.iter().copied().filter(|p| !p.ready).collect();
    let util_pct = utilization.round() as i32;
    if missing.is_empty() && unready.is_empty() {
        if (ratio - 1.0).abs() <= TOLERANCE {
            return Some((current, util_pct));
        }
        return Some(((ratio * ready.len() as f64).ceil() as i32, util_pct));
    }
    // Fill in the gaps conservatively: missing pods use all (scale down) or none (scale up)
    // of their request; unready pods count as using nothing when scaling up.
    let mut usage2 = usage;
    let mut requests2 = requests;
    let mut count = ready.len();
    for p in &missing {
        if ratio < 1.0 {
            usage2 += p.request;
        }
        requests2 += p.request;
        count += 1;
    }
    if ratio > 1.0 {
        for p in &unready {
            requests2 += p.request;
            count += 1;
        }
    }
    if requests2 <= 0.0 {
        return Some((current, util_pct));
    }
    let new_ratio = (usage2 / requests2 * 100.0) / f64::from(target_percent.max(1));
    if (new_ratio - 1.0).abs() <= TOLERANCE
        || (ratio > 1.0 && new_ratio < 1.0)
        || (ratio < 1.0 && new_ratio > 1.0)
    {
        return Some((current, util_pct));
    }
    let proposed = (new_ratio * count as f64).ceil() as i32;
    // Never move against the direction the ready pods asked for.
    if (ratio > 1.0 && proposed < current) || (ratio < 1.0 && proposed > current) {
        return Some((current, util_pct));
    }
    Some((proposed, util_pct))
}

/// A per-pod average value target (AverageValue): replicas = ceil(total usage / target).
pub fn replicas_for_average(current: i32, target: f64, pods: &[PodSample]) -> Option<(i32, f64)> {
    let usage: Vec<f64> = pods.iter().filter_map(|p| p.usage).collect();
    if usage.is_empty() || target <= 0.0 {
        return None;
    }
    let total: f64 = usage.iter().sum();
    let ratio = total / (target * usage.len() as f64);
    let avg = total / usage.len() as f64;
    if (ratio - 1.0).abs() <= TOLERANCE {
        return Some((current, avg));
    }
    Some(((total / target).ceil() as i32, avg))
}

/// Stabilization and rate limits (upstream normalizeDesiredReplicasWithBehaviors), pure.
/// `history` holds past recommendations (seconds ago, replicas).
pub fn behave(
    current: i32,
    proposed: i32,
    (min, max): (i32, i32),
    (up, down): (&HPAScalingRules, &HPAScalingRules),
    history: &[(f64, i32)],
    scale_events: &[(f64, i32)],
) -> (i32, &'static str) {
    let up_window = f64::from(up.stabilization_window_seconds.unwrap_or(0));
    let down_window = f64::from(down.stabilization_window_seconds.unwrap_or(300));
    // Scale up only to the lowest recommendation of the up window; down only to the highest
    // of the down window.
    let mut up_rec = proposed;
    let mut down_rec = proposed;
    for (age, r) in history {
        if *age <= up_window {
            up_rec = up_rec.min(*r);
        }
        if *age <= down_window {
            down_rec = down_rec.max(*r);
        }
    }
    let mut desired = current;
    if desired < up_rec {
        desired = up_rec;
    }
    if desired > down_rec {
        desired = down_rec;
    }
    let reason;
    if desired > current {
        let limit = rate_limit(current, up, scale_events, true);
        if desired > limit {
            desired = limit;
            reason = "ScaleUpLimit";
        } else {
            reason = "DesiredWithinRange";
        }
    } else if desired < current {
        let limit = rate_limit(current, down, scale_events, false);
        if desired < limit {
            desired = limit;
            reason = "ScaleDownLimit";
        } else {
            reason = "DesiredWithinRange";
        }
    } else {
        reason = "DesiredWithinRange";
    }
    if desired > max {
        return (max, "TooManyReplicas");
    }
    if desired < min {
        return (min, "TooFewReplicas");
    }
    (desired, reason)
}

/// The bound the policies allow for one direction (Max/Min select policy across policies).
fn rate_limit(current: i32, rules: &HPAScalingRules, events: &[(f64, i32)], up: bool) -> i32 {
    if rules.select_policy.as_deref() == Some("Disabled") {
        return current;
    }
    let policies = rules.policies.clone().unwrap_or_default();
    let select_min = rules.select_policy.as_deref() == Some("Min");
    let mut best: Option<i32> = None;
    for p in &policies {
        let period = f64::from(p.period_seconds);
        // Replicas changed in this direction within the period.
        let changed: i32 = events
            .iter()
            .filter(|(age, d)| *age <= period && ((up && *d > 0) || (!up && *d < 0)))
            .map(|(_, d)| d.abs())
            .sum();
        let start = if up {
            current - changed
        } else {
            current + changed
        };
        let limit = match p.type_.as_str() {
            "Pods" => {
                if up {
                    start + p.value
                } else {
                    start - p.value
                }
            }
            _ => {
                let pct = f64::from(p.value) / 100.0;
                if up {
                    (f64::from(start) * (1.0 + pct)).ceil() as i32
                } else {
                    (f64::from(start) * (1.0 - pct)).ceil() as i32
                }
            }
        };
        best = Some(match best {
            None => limit,
            Some(b) => {
                if up != select_min {
                    b.max(limit)
                } else {
                    b.min(limit)
                }
            }
        });
    }
    best.unwrap_or(if up { i32::MAX } else { 0 })
}

fn default_up() -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: Some(0),
        select_policy: Some("Max".into()),
        policies: Some(vec![
            k8s_openapi::api::autoscaling::v2::HPAScalingPolicy {
                type_: "Percent".into(),
                value: 100,
                period_seconds: 15,
            },
            k8s_openapi::api::autoscaling::v2::HPAScalingPolicy {
                type_: "Pods".into(),
                value: 4,
                period_seconds: 15,
            },
        ]),
        tolerance: None,
    }
}

fn default_down() -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: Some(300),
        select_policy: Some("Max".into()),
        policies: Some(vec![k8s_openapi::api::autoscaling::v2::HPAScalingPolicy {
            type_: "Percent".into(),
            value: 100,
            period_seconds: 15,
        }]),
        tolerance: None,
    }
}

/// Fills the rules' unset fields from upstream's defaults.
fn with_defaults(given: Option<HPAScalingRules>, default: HPAScalingRules) -> HPAScalingRules {
    let Some(g) = given else { return default };
    HPAScalingRules {
        stabilization_window_seconds: g
            .stabilization_window_seconds
            .or(default.stabilization_window_seconds),
        select_policy: g.select_policy.or(default.select_policy),
        policies: g.policies.filter(|p| !p.is_empty()).or(default.policies),
        tolerance: g.tolerance,
    }
}

#[derive(Default)]
struct Memory {
    /// Per HPA: (when, recommendation).
    recommendations: Vec<(std::time::Instant, i32)>,
    /// Per HPA: (when, replica change).
    scale_events: Vec<(std::time::Instant, i32)>,
}

struct Ctx {
    client: kube::Client,
    hpas: Arc<Informer<HorizontalPodAutoscaler>>,
    pods: Arc<Informer<Pod>>,
    settings: Settings,
    memory: Mutex<HashMap<Key, Memory>>,
    recorder: Recorder,
}

pub async fn run(informers: Arc<Informers>, settings: Settings, cancel: CancellationToken) {
    let ctx = Arc::new(Ctx {
        client: informers.client().clone(),
        hpas: informers.get::<HorizontalPodAutoscaler>(),
        pods: informers.get::<Pod>(),
        settings,
        memory: Mutex::default(),
        recorder: Recorder::new(informers.client().clone(), "horizontal-pod-autoscaler"),
    });
    let queue = Queue::new();
    let changes = ctx.hpas.subscribe();
    ctx.hpas.synced().await;
    ctx.pods.synced().await;
    for h in ctx.hpas.list() {
        queue.add(Key::of(&*h));
    }
    let ctx_fed = ctx.clone();
    let fed = runtime::enqueue_changes(
        changes,
        queue.clone(),
        cancel.clone(),
        move |c: &Change<HorizontalPodAutoscaler>| {
            let key = Key::of(&**c.object());
            match c {
                // Only spec changes wake the HPA early; its own status writes must not.
                Change::Applied {
                    old: Some(old),
                    new,
                } if old.spec == new.spec => None,
                Change::Deleted(_) => {
                    ctx_fed
                        .memory
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&key);
                    None
                }
                _ => Some(key),
            }
        },
    );
    let ctx2 = ctx.clone();
    let workers = runtime::run_workers("horizontal-pod-autoscaler", queue, 2, cancel, move |key| {
        let ctx = ctx2.clone();
        async move { sync(&ctx, &key).await }
    });
    tokio::join!(fed, workers);
}

fn target_resource(kind: &str, api_version: &str) -> Option<ApiResource> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "Deployment" => "deployments",
        "ReplicaSet" => "replicasets",
        "StatefulSet" => "statefulsets",
        "ReplicationController" => "replicationcontrollers",
        _ => return None,
    };
    Some(ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: plural.into(),
    })
}

fn condition(
    ty: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> HorizontalPodAutoscalerCondition {
    HorizontalPodAutoscalerCondition {
        type_: ty.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: Some(Time(now)),
    }
}

async fn write_status(
    ctx: &Ctx,
    hpa: &HorizontalPodAutoscaler,
    mut status: HorizontalPodAutoscalerStatus,
) -> Result<(), Error> {
    // Keep transition times of conditions whose status did not change.
    let old = hpa.status.clone().unwrap_or_default();
    for c in status.conditions.iter_mut().flatten() {
        if let Some(prev) = old
            .conditions
            .iter()
            .flatten()
            .find(|p| p.type_ == c.type_ && p.status == c.status)
        {
            c.last_transition_time = prev.last_transition_time.clone();
        }
    }
    if hpa.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let mut updated = hpa.clone();
    updated.status = Some(status);
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(
        ctx.client.clone(),
        hpa.metadata.namespace.as_deref().unwrap_or(""),
    );
    match api
        .replace_status(
            hpa.metadata.name.as_deref().unwrap_or(""),
            &PostParams::default(),
            &updated,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn resource_name(m: &MetricSpec) -> Option<(String, Option<i32>, Option<f64>)> {
    if m.type_ != "Resource" && m.type_ != "ContainerResource" {
        return None;
    }
    let (name, target) = match (&m.resource, &m.container_resource) {
        (Some(r), _) => (r.name.clone(), r.target.clone()),
        (None, Some(c)) => (c.name.clone(), c.target.clone()),
        _ => return None,
    };
    let avg = target.average_value.as_ref().and_then(|q| quantity(&q.0));
    Some((name, target.average_utilization, avg))
}

async fn sync(ctx: &Ctx, key: &Key) -> Result<Option<Duration>, Error> {
    let period = Some(ctx.settings.sync_period);
    let Some(hpa) = ctx.hpas.get(&key.namespace, &key.name) else {
        return Ok(None);
    };
    let spec = hpa.spec.clone().unwrap_or_default();
    let now = Timestamp::now();
    let target = &spec.scale_target_ref;
    let reference = format!("{}/{}", target.kind, target.name);
    let mut status = HorizontalPodAutoscalerStatus {
        current_replicas: hpa.status.as_ref().and_then(|s| s.current_replicas),
        desired_replicas: hpa.status.as_ref().map(|s| s.desired_replicas).unwrap_or(0),
        last_scale_time: hpa.status.as_ref().and_then(|s| s.last_scale_time.clone()),
        observed_generation: hpa.metadata.generation,
        current_metrics: hpa.status.as_ref().and_then(|s| s.current_metrics.clone()),
        conditions: None,
    };
    let Some(ar) = target_resource(
        &target.kind,
        target.api_version.as_deref().unwrap_or("apps/v1"),
    ) else {
        status.conditions = Some(vec![condition(
            "AbleToScale",
            "False",
            "FailedGetScale",
            format!(
                "the HPA controller was unable to get the target's current scale: no scale subresource known for {reference}"
            ),
            now,
        )]);
        write_status(ctx, &hpa, status).await?;
        return Ok(period);
    };
    let targets: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &key.namespace, &ar);
    let scale = match targets.get_scale(&target.name).await {
        Ok(s) => s,
        Err(e) => {
            let msg = match &e {
                kube::Error::Api(s) => s.message.clone(),
                other => other.to_string(),
            };
            status.conditions = Some(vec![condition(
                "AbleToScale",
                "False",
                "FailedGetScale",
                format!("the HPA controller was unable to get the target's current scale: {msg}"),
                now,
            )]);
            ctx.recorder
                .record(
                    &hpa.object_ref(&()),
                    EventType::Warning,
                    "FailedGetScale",
                    &msg,
                )
                .await;
            write_status(ctx, &hpa, status).await?;
            return Ok(period);
        }
    };
    let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    status.current_replicas = Some(scale.status.as_ref().map(|s| s.replicas).unwrap_or(current));
    let min = spec.min_replicas.unwrap_or(1);
    let max = spec.max_replicas;
    if current == 0 && min != 0 {
        status.desired_replicas = 0;
        status.conditions = Some(vec![
            condition(
                "AbleToScale",
                "True",
                "SucceededGetScale",
                "the HPA controller was able to get the target's current scale".into(),
                now,
            ),
            condition(
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero".into(),
                now,
            ),
        ]);
        write_status(ctx, &hpa, status).await?;
        return Ok(period);
    }
    // Outside [min, max] the target is brought back first, metrics or not, as upstream does.
    let bound = if current > max {
        Some((max, "Current number of replicas above Spec.MaxReplicas"))
    } else if current < min {
        Some((min, "Current number of replicas below Spec.MinReplicas"))
    } else {
        None
    };
    if let Some((desired, reason)) = bound {
        status.desired_replicas = desired;
        let rescaled = Rescale {
            targets: &targets,
            name: &target.name,
            scale: &scale,
            current,
            desired,
            reason,
            now,
        };
        let able = rescale(ctx, key, &hpa, rescaled).await;
        if able.status == "True" {
            status.last_scale_time = Some(Time(now));
        }
        let (limit, message) = if desired == max {
            (
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        } else {
            (
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        };
        status.conditions = Some(vec![
            able,
            condition("ScalingLimited", "True", limit, message.into(), now),
        ]);
        write_status(ctx, &hpa, status).await?;
        return Ok(period);
    }
    let selector = scale
        .status
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    // Usage of the target's pods from the metrics API.
    let metrics_ar = ApiResource {
        group: "metrics.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "metrics.k8s.io/v1beta1".into(),
        kind: "PodMetrics".into(),
        plural: "pods".into(),
    };
    let metrics_api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &key.namespace, &metrics_ar);
    let pod_metrics = metrics_api
        .list(&ListParams::default().labels(&selector))
        .await;
    let sel =
        crate::runtime::selector::Selector::from_label_selector(Some(&parse_selector(&selector)))
            .unwrap_or(crate::runtime::selector::Selector::Nothing);
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .list_namespace(&key.namespace)
        .into_iter()
        .filter(|p| sel.matches(p.metadata.labels.as_ref()))
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Failed"))
        .collect();
    let usage_by_pod: BTreeMap<String, BTreeMap<String, f64>> = match &pod_metrics {
        Ok(list) => list
            .items
            .iter()
            .map(|m| {
                let mut per_resource: BTreeMap<String, f64> = BTreeMap::new();
                for c in m
                    .data
                    .get("containers")
                    .and_then(|v| v.as_array())
                    .into_iter()
                    .flatten()
                {
                    for (res, q) in c
                        .get("usage")
                        .and_then(|u| u.as_object())
                        .into_iter()
                        .flatten()
                    {
                        if let Some(v) = q.as_str().and_then(quantity) {
                            *per_resource.entry(res.clone()).or_default() += v;
                        }
                    }
                }
                (m.metadata.name.clone().unwrap_or_default(), per_resource)
            })
            .collect(),
        Err(_) => BTreeMap::new(),
    };
    let mut proposals: Vec<(i32, String)> = Vec::new();
    let mut current_metrics: Vec<MetricStatus> = Vec::new();
    let mut failure: Option<String> = None;
    for m in spec.metrics.clone().unwrap_or_else(|| {
        // autoscaling/v1's default: 80 % CPU.
        vec![MetricSpec {
            type_: "Resource".into(),
            resource: Some(k8s_openapi::api::autoscaling::v2::ResourceMetricSource {
                name: "cpu".into(),
                target: k8s_openapi::api::autoscaling::v2::MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(80),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }]
    }) {
        let Some((res, utilization, average)) = resource_name(&m) else {
            failure = Some(format!(
                "the HPA was unable to compute the replica count: metric type {} is not supported by this server",
                m.type_
            ));
            continue;
        };
        let samples: Vec<PodSample> = pods
            .iter()
            .map(|p| {
                let name = p.metadata.name.clone().unwrap_or_default();
                let request: f64 = p
                    .spec
                    .as_ref()
                    .map(|s| {
                        s.containers
                            .iter()
                            .filter_map(|c| {
                                c.resources
                                    .as_ref()?
                                    .requests
                                    .as_ref()?
                                    .get(&res)
                                    .and_then(|q| quantity(&q.0))
                            })
                            .sum()
                    })
                    .unwrap_or(0.0);
                let ready = crate::pod_util::is_ready(p)
                    && (res != "cpu"
                        || started_long_enough(p, ctx.settings.cpu_initialization, now));
                PodSample {
                    usage: usage_by_pod.get(&name).and_then(|u| u.get(&res)).copied(),
                    request,
                    ready,
                }
            })
            .collect();
        if let Some(pct) = utilization {
            if samples.iter().any(|s| s.request <= 0.0) {
                failure = Some(format!(
                    "failed to get {res} utilization: missing request for {res} in some pods"
                ));
                continue;
            }
            match replicas_for_utilization(current, pct, &samples) {
                Some((r, util)) => {
                    let used: f64 = samples.iter().filter_map(|s| s.usage).sum::<f64>() / samples.iter().filter(|s| s.usage.is_some()).count().max(1) as f64;
                    current_metrics.push(MetricStatus {
                        type_: "Resource".into(),
                        resource: Some(ResourceMetricStatus {
                            name: res.clone(),
                            current: MetricValueStatus { average_utilization: Some(util), average_value: Some(format_quantity(&res, used)), value: None },
                        }),
                        ..Default::default()
                    });
                    proposals.push((r, format!("{res} resource utilization (percentage of request)")));
                }
                None => failure = Some("the HPA was unable to compute the replica count: did not receive metrics for targeted pods (pods might be unready)".into()),
            }
        } else if let Some(avg) = average {
            match replicas_for_average(current, avg, &samples) {
                Some((r, used)) => {
                    current_metrics.push(MetricStatus {
                        type_: "Resource".into(),
                        resource: Some(ResourceMetricStatus { name: res.clone(), current: MetricValueStatus { average_value: Some(format_quantity(&res, used)), average_utilization: None, value: None } }),
                        ..Default::default()
                    });
                    proposals.push((r, format!("{res} resource")));
                }
                None => failure = Some("the HPA was unable to compute the replica count: did not receive metrics for targeted pods".into()),
            }
        }
    }
    let able = condition(
        "AbleToScale",
        "True",
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale".into(),
        now,
    );
    let Some((proposed, metric)) = proposals.into_iter().max_by_key(|(r, _)| *r) else {
        let msg = failure.unwrap_or_else(|| "no metrics".into());
        status.conditions = Some(vec![
            able,
            condition(
                "ScalingActive",
                "False",
                "FailedGetResourceMetric",
                msg.clone(),
                now,
            ),
        ]);
        ctx.recorder
            .record(
                &hpa.object_ref(&()),
                EventType::Warning,
                "FailedGetResourceMetric",
                &msg,
            )
            .await;
        write_status(ctx, &hpa, status).await?;
        return Ok(period);
    };
    status.current_metrics = Some(current_metrics);
    // Behaviour: stabilization over recommendations, rate limits over past scalings.
    let behavior = spec.behavior.clone().unwrap_or_default();
    let up = with_defaults(behavior.scale_up, default_up());
    let down = with_defaults(behavior.scale_down, default_down());
    let (desired, limit_reason) = {
        let mut mem = ctx.memory.lock().unwrap_or_else(PoisonError::into_inner);
        let m = mem.entry(key.clone()).or_default();
        let keep = Duration::from_secs(3600);
        m.recommendations.retain(|(t, _)| t.elapsed() < keep);
        m.scale_events.retain(|(t, _)| t.elapsed() < keep);
        let history: Vec<(f64, i32)> = m
            .recommendations
            .iter()
            .map(|(t, r)| (t.elapsed().as_secs_f64(), *r))
            .collect();
        let events: Vec<(f64, i32)> = m
            .scale_events
            .iter()
            .map(|(t, d)| (t.elapsed().as_secs_f64(), *d))
            .collect();
        m.recommendations
            .push((std::time::Instant::now(), proposed));
        behave(
            current,
            proposed,
            (min, max),
            (&up, &down),
            &history,
            &events,
        )
    };
    status.desired_replicas = desired;
    let limited = matches!(
        limit_reason,
        "TooManyReplicas" | "TooFewReplicas" | "ScaleUpLimit" | "ScaleDownLimit"
    );
    let limited_msg = match limit_reason {
        "TooManyReplicas" => "the desired replica count is more than the maximum replica count",
        "TooFewReplicas" => "the desired replica count is less than the minimum replica count",
        "ScaleUpLimit" => {
            "the desired replica count is increasing faster than the maximum scale rate"
        }
        "ScaleDownLimit" => {
            "the desired replica count is decreasing faster than the maximum scale rate"
        }
        _ => "the desired count is within the acceptable range",
    };
    let mut able = able;
    if desired != current {
        let reason = if desired > current {
            format!("{metric} above target")
        } else {
            "All metrics below target".to_string()
        };
        let rescaled = Rescale {
            targets: &targets,
            name: &target.name,
            scale: &scale,
            current,
            desired,
            reason: &reason,
            now,
        };
        able = rescale(ctx, key, &hpa, rescaled).await;
        if able.status == "True" {
            status.last_scale_time = Some(Time(now));
            status.current_replicas = Some(current);
        }
    } else if hpa
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == "AbleToScale" && c.reason.as_deref() == Some("SucceededRescale")
            })
        })
    {
        able = condition(
            "AbleToScale",
            "True",
            "ReadyForNewScale",
            "recommended size matches current size".into(),
            now,
        );
    }
    status.conditions = Some(vec![
        able,
        condition(
            "ScalingActive",
            "True",
            "ValidMetricFound",
            format!("the HPA was able to successfully calculate a replica count from {metric}"),
            now,
        ),
        condition(
            "ScalingLimited",
            if limited { "True" } else { "False" },
            limit_reason,
            limited_msg.into(),
            now,
        ),
    ]);
    write_status(ctx, &hpa, status).await?;
    Ok(period)
}

/// A change of the target's scale the controller decided on.
struct Rescale<'a> {
    targets: &'a Api<DynamicObject>,
    name: &'a str,
    scale: &'a k8s_openapi::api::autoscaling::v1::Scale,
    current: i32,
    desired: i32,
    reason: &'a str,
    now: Timestamp,
}

/// Writes the target's new scale; answers the AbleToScale condition it earned, with an
/// Event either way, as upstream's controller records them.
async fn rescale(
    ctx: &Ctx,
    key: &Key,
    hpa: &HorizontalPodAutoscaler,
    r: Rescale<'_>,
) -> HorizontalPodAutoscalerCondition {
    let mut s = r.scale.clone();
    if let Some(sp) = s.spec.as_mut() {
        sp.replicas = Some(r.desired);
    }
    match r
        .targets
        .replace_scale(r.name, &PostParams::default(), &s)
        .await
    {
        Ok(_) => {
            ctx.recorder
                .record(
                    &hpa.object_ref(&()),
                    EventType::Normal,
                    "SuccessfulRescale",
                    &format!("New size: {}; reason: {}", r.desired, r.reason),
                )
                .await;
            ctx.memory
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key.clone())
                .or_default()
                .scale_events
                .push((std::time::Instant::now(), r.desired - r.current));
            condition(
                "AbleToScale",
                "True",
                "SucceededRescale",
                format!(
                    "the HPA controller was able to update the target scale to {}",
                    r.desired
                ),
                r.now,
            )
        }
        Err(e) => {
            let msg = match &e {
                kube::Error::Api(s) => s.message.clone(),
                other => other.to_string(),
            };
            ctx.recorder
                .record(
                    &hpa.object_ref(&()),
                    EventType::Warning,
                    "FailedRescale",
                    &format!("New size: {}; error: {msg}", r.desired),
                )
                .await;
            condition(
                "AbleToScale",
                "False",
                "FailedUpdateScale",
                format!("the HPA controller was unable to update the target scale: {msg}"),
                r.now,
            )
        }
    }
}

fn started_long_enough(p: &Pod, init: Duration, now: Timestamp) -> bool {
    // Pods still in their CPU initialization period count as ready only once their
    // readiness has been stable since start; hollow and real pods report startTime.
    let Some(start) = p.status.as_ref().and_then(|s| s.start_time.as_ref()) else {
        return true;
    };
    let ready_since = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0));
    let age = now.duration_since(start.0);
    if age.is_positive() && age.unsigned_abs() >= init {
        return true;
    }
    // Within the initialization period, a pod that became ready and stayed so counts.
    ready_since.is_some()
}

fn format_quantity(res: &str, v: f64) -> Quantity {
    if res == "cpu" {
        Quantity(format!("{}m", (v * 1000.0).round() as i64))
    } else {
        Quantity(format!("{}", v.round() as i64))
    }
}

/// Parses a selector string (`a=b,c in (d,e)`) into a LabelSelector (equality terms only, as
/// scale subresources report them).
fn parse_selector(s: &str) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
    let mut labels = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            labels.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
        match_labels: Some(labels),
        match_expressions: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods(usages: &[f64], request: f64) -> Vec<PodSample> {
        usages
            .iter()
            .map(|u| PodSample {
                usage: Some(*u),
                request,
                ready: true,
            })
            .collect()
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity("250m"), Some(0.25));
        assert_eq!(quantity("2"), Some(2.0));
        assert_eq!(quantity("64Mi"), Some(64.0 * 1024.0 * 1024.0));
        assert_eq!(quantity("1e3"), Some(1000.0));
        assert_eq!(quantity("12x"), None);
    }

    #[test]
    fn utilization_scales_up_and_down_outside_tolerance() {
        // 3 pods at 90 % of a 100m request against 50 %: ceil(1.8 × 3) = 6.
        assert_eq!(
            replicas_for_utilization(3, 50, &pods(&[0.09, 0.09, 0.09], 0.1)),
            Some((6, 90))
        );
        // Within 10 %: unchanged.
        assert_eq!(
            replicas_for_utilization(3, 50, &pods(&[0.052, 0.052, 0.052], 0.1)),
            Some((3, 52))
        );
        // 10 % against 50 %: ceil(0.2 × 4) = 1.
        assert_eq!(
            replicas_for_utilization(4, 50, &pods(&[0.01, 0.01, 0.01, 0.01], 0.1)),
            Some((1, 10))
        );
    }

    #[test]
    fn missing_metrics_damp_a_scale_down() {
        let mut p = pods(&[0.01, 0.01], 0.1);
        p.push(PodSample {
            usage: None,
            request: 0.1,
            ready: true,
        });
        p.push(PodSample {
            usage: None,
            request: 0.1,
            ready: true,
        });
        // Missing pods count as 100 %: (0.02 + 0.2) / 0.4 = 55 % against 50 %: within tolerance.
        assert_eq!(replicas_for_utilization(4, 50, &p).map(|r| r.0), Some(4));
    }

    #[test]
    fn stabilization_holds_scale_down_and_policies_bound_scale_up() {
        let up = default_up();
        let down = default_down();
        // A recommendation of 10 a minute ago keeps a scale-down to 2 at 10.
        assert_eq!(
            behave(10, 2, (1, 20), (&up, &down), &[(60.0, 10)], &[]).0,
            10
        );
        // Past the 300 s window it goes.
        assert_eq!(
            behave(10, 2, (1, 20), (&up, &down), &[(400.0, 10)], &[]).0,
            2
        );
        // Up from 2 to 20: at most max(100 %, 4 pods) = 6 in 15 s.
        assert_eq!(
            behave(2, 20, (1, 30), (&up, &down), &[], &[]),
            (6, "ScaleUpLimit")
        );
        // Bounded by maxReplicas.
        assert_eq!(
            behave(5, 9, (1, 8), (&up, &down), &[], &[]),
            (8, "TooManyReplicas")
        );
    }
}
