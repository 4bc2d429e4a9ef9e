//! Pod-specific API behaviour: the `binding`, `eviction` and `ephemeralcontainers`
//! subresources and Priority admission.

use crate::objects::{self, Query, now_rfc3339, prefix};
use crate::rawjson::StoredPod;
use crate::rest::{delete_object, get_object, store_error, store_server_write, write_update};
use crate::server::ApiServer;
use serde_json::{Value, json};
use skiff_api::registry::{self, ResourceInfo};
use skiff_api::selector::LabelSelector;
use skiff_api::status::{ApiError, Cause};
use std::sync::{Arc, Mutex, PoisonError};

/// Priority classes every cluster has, as upstream's API server creates them.
pub const SYSTEM_PRIORITY_CLASSES: &[(&str, i64, &str)] = &[
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

/// Defaults the API server gives new pods (upstream's DefaultTolerationSeconds admission).
pub struct PodDefaults {
    /// --default-not-ready-toleration-seconds.
    pub not_ready_toleration_seconds: std::sync::atomic::AtomicI64,
    /// --default-unreachable-toleration-seconds.
    pub unreachable_toleration_seconds: std::sync::atomic::AtomicI64,
}

impl Default for PodDefaults {
    fn default() -> PodDefaults {
        PodDefaults {
            not_ready_toleration_seconds: 300.into(),
            unreachable_toleration_seconds: 300.into(),
        }
    }
}

/// Upstream's ServiceAccount admission of a new pod, in part: it runs as `default` unless it
/// names an account, which must exist. The projected `kube-api-access-*` token volume
/// upstream adds is not: with it, re-applying a pod manifest that has volumes reports
/// "configured" (kubectl's three-way patch orders the longer live list), where skiff's
/// contract is "unchanged"; and no agent mounts it yet.
pub async fn admit_service_account(
    server: &ApiServer,
    ns: &str,
    pod: &mut Value,
) -> Result<(), ApiError> {
    let pod_name = objects::name_of(pod).to_string();
    // A kubelet's mirror of a static pod is left as the kubelet wrote it.
    if pod
        .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_some()
    {
        return Ok(());
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let account = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
        .to_string();
    spec.insert("serviceAccountName".into(), json!(account));
    spec.insert("serviceAccount".into(), json!(account));
    // The default account appears with its namespace, a moment later: pods do not wait.
    if account == "default" {
        return Ok(());
    }
    let sa_info = registry::find("", "v1", "serviceaccounts")
        .ok_or_else(|| ApiError::internal("serviceaccounts are not registered"))?;
    match get_object(server, sa_info, Some(ns), &account).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Err(ApiError::forbidden_object(
            "",
            "pods",
            &pod_name,
            &format!(
                "error looking up service account {ns}/{account}: serviceaccount \"{account}\" not found"
            ),
        )),
        Err(e) => Err(e),
    }
}

/// Adds NoExecute tolerations for the not-ready and unreachable taints to a new pod that does
/// not tolerate them already, so that its pods leave a failed node after a while.
pub fn admit_default_tolerations(defaults: &PodDefaults, pod: &mut Value) {
    use std::sync::atomic::Ordering;
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let mut tolerations: Vec<Value> = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let covers = |key: &str| {
        tolerations.iter().any(|t| {
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            let k = t.get("key").and_then(Value::as_str).unwrap_or("");
            let exists = t.get("operator").and_then(Value::as_str) == Some("Exists");
            (effect.is_empty() || effect == "NoExecute") && (k == key || (k.is_empty() && exists))
        })
    };
    let mut added = Vec::new();
    for (key, secs) in [
        (
            "node.kubernetes.io/not-ready",
            defaults
                .not_ready_toleration_seconds
                .load(Ordering::Relaxed),
        ),
        (
            "node.kubernetes.io/unreachable",
            defaults
                .unreachable_toleration_seconds
                .load(Ordering::Relaxed),
        ),
    ] {
        if secs >= 0 && !covers(key) {
            added.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": secs}));
        }
    }
    if added.is_empty() {
        return;
    }
    tolerations.extend(added);
    spec.insert("tolerations".into(), Value::Array(tolerations));
}

/// A pod's priority and preemption policy stay what admission set at create, whatever
/// an update sends (upstream's Priority admission on update).
pub fn keep_priority(current: &Value, new: &mut Value) {
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for field in ["priority", "preemptionPolicy"] {
        match current.get("spec").and_then(|s| s.get(field)) {
            Some(v) => {
                spec.insert(field.into(), v.clone());
            }
            None => {
                spec.shift_remove(field);
            }
        }
    }
}

/// How many times a subresource write retries after losing a race with another writer.
const RETRIES: usize = 5;

fn pods_info() -> Result<&'static ResourceInfo, ApiError> {
    registry::find("", "v1", "pods").ok_or_else(|| ApiError::internal("pods are not registered"))
}

fn success(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
}

/// Sets or replaces one entry of `status.conditions`, keeping lastTransitionTime when the
/// status of the condition does not change.
pub fn set_condition(obj: &mut Value, cond: Value) {
    if !obj.get("status").is_some_and(Value::is_object) {
        obj["status"] = json!({});
    }
    set_status_condition(&mut obj["status"], cond);
}

/// [`set_condition`] on the `status` object itself.
fn set_status_condition(status: &mut Value, mut cond: Value) {
    let ty = cond.get("type").cloned().unwrap_or(Value::Null);
    if !status.get("conditions").is_some_and(Value::is_array) {
        status["conditions"] = json!([]);
    }
    let Some(conds) = status["conditions"].as_array_mut() else {
        return;
    };
    match conds.iter_mut().find(|c| c.get("type") == Some(&ty)) {
        Some(c) => {
            if c.get("status") == cond.get("status")
                && let Some(t) = c.get("lastTransitionTime")
            {
                cond["lastTransitionTime"] = t.clone();
            }
            *c = cond;
        }
        None => conds.push(cond),
    }
}

/// `POST pods/NAME/binding` (and the legacy `bindings` resource): assigns a pod to a node.
pub async fn bind(
    server: &ApiServer,
    ns: Option<&str>,
    pod_name: &str,
    binding: &Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let info = pods_info()?;
    if let Some(n) = binding.pointer("/metadata/name").and_then(Value::as_str)
        && !n.is_empty()
        && n != pod_name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the binding ({n}) does not match the name of the pod ({pod_name})"
        )));
    }
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "",
                "Binding",
                pod_name,
                vec![skiff_api::status::Cause::required("target.name")],
            )
        })?;
    if let Some(kind) = binding.pointer("/target/kind").and_then(Value::as_str)
        && !kind.is_empty()
        && kind != "Node"
    {
        return Err(ApiError::invalid(
            "",
            "Binding",
            pod_name,
            vec![skiff_api::status::Cause::not_supported(
                "target.kind",
                &json!(kind),
                &["Node", "<empty>"],
            )],
        ));
    }
    let uid = binding
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty());
    // Bindings without annotations (the scheduler's) rewrite the stored pod's spec and status
    // without decoding the rest of it, in the store's own read-modify-write.
    let annotated = binding
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| !a.is_empty());
    if !annotated
        && !dry_run
        && info.storage_version
        && let Some(answer) = bind_stored(server, info, ns, pod_name, node, uid).await
    {
        return answer;
    }
    let mut last = None;
    for _ in 0..RETRIES {
        // Upstream's binding writes the stored pod directly (not through the update
        // strategy): node name, annotations and the PodScheduled condition, nothing else,
        // so nothing else is validated or defaulted again.
        let mut pod = get_object(server, info, ns, pod_name).await?;
        check_bindable(
            pod_name,
            uid,
            pod.pointer("/metadata/uid").and_then(Value::as_str),
            pod.pointer("/metadata/deletionTimestamp").is_some(),
            pod.pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )?;
        let current_rev: i64 = pod
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if !pod.get("spec").is_some_and(Value::is_object) {
            pod["spec"] = json!({});
        }
        pod["spec"]["nodeName"] = json!(node);
        if let Some(ann) = binding
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
        {
            let md = objects::metadata_mut(&mut pod);
            if !md.get("annotations").is_some_and(Value::is_object) {
                md.insert("annotations".into(), json!({}));
            }
            if let Some(a) = md.get_mut("annotations").and_then(Value::as_object_mut) {
                for (k, v) in ann {
                    a.insert(k.clone(), v.clone());
                }
            }
        }
        set_condition(&mut pod, scheduled_condition());
        if dry_run {
            return Ok(success(201));
        }
        match store_server_write(server, info, ns, pod_name, &mut pod, current_rev).await {
            Ok(()) => return Ok(success(201)),
            Err(e) if e.code == 409 && e.reason == "Conflict" => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| ApiError::internal("binding did not converge")))
}

/// Why the store-side rewrite of a binding wrote nothing.
enum NotBound {
    Refused(ApiError),
    /// The stored pod is not what [`StoredPod`] reads: bind through the decoded object.
    Unreadable,
}

/// Binds the stored pod by rewriting its JSON where it is stored: `None` when the pod has to
/// be bound through its decoded object instead.
async fn bind_stored(
    server: &ApiServer,
    info: &'static ResourceInfo,
    ns: Option<&str>,
    pod_name: &str,
    node: &str,
    uid: Option<&str>,
) -> Option<Result<Value, ApiError>> {
    let key = objects::key(info, ns, pod_name);
    let not_bound = Arc::new(Mutex::new(None));
    let rewrite = {
        let not_bound = not_bound.clone();
        let (name, node, uid) = (
            pod_name.to_string(),
            node.to_string(),
            uid.map(str::to_string),
        );
        move |kv: &skiff_store::KeyValue| {
            let mut why = not_bound.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(mut pod) = StoredPod::parse(&kv.value) else {
                *why = Some(NotBound::Unreadable);
                return None;
            };
            if let Err(e) = check_bindable(
                &name,
                uid.as_deref(),
                pod.uid.as_deref(),
                pod.deleting,
                &pod.node_name,
            ) {
                *why = Some(NotBound::Refused(e));
                return None;
            }
            set_status_condition(&mut pod.status, scheduled_condition());
            Some(bytes::Bytes::from(pod.bound_to(&node)))
        }
    };
    match server.store.update_with(&key, rewrite).await {
        Ok(Some(_)) => Some(Ok(success(201))),
        Ok(None) => match not_bound
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            Some(NotBound::Refused(e)) => Some(Err(e)),
            Some(NotBound::Unreadable) | None => None,
        },
        Err(skiff_store::StoreError::NotFound) => {
            Some(Err(ApiError::not_found(info.group, info.plural, pod_name)))
        }
        Err(e) => Some(Err(store_error(info, pod_name, e))),
    }
}

/// The condition a binding sets.
fn scheduled_condition() -> Value {
    json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now_rfc3339()})
}

/// Whether a pod with this `uid`, deletion state and `spec.nodeName` can be bound, given the
/// binding's UID precondition.
fn check_bindable(
    pod_name: &str,
    precondition: Option<&str>,
    uid: Option<&str>,
    deleting: bool,
    node_name: &str,
) -> Result<(), ApiError> {
    if let Some(want) = precondition
        && uid != Some(want)
    {
        return Err(ApiError::conflict(
            "",
            "pods",
            pod_name,
            format!("Precondition failed: UID in precondition: {want}"),
        ));
    }
    if deleting {
        return Err(ApiError::conflict(
            "",
            "pods",
            pod_name,
            format!("pod {pod_name} is being deleted, cannot be assigned to a host"),
        ));
    }
    if !node_name.is_empty() {
        return Err(ApiError::conflict(
            "",
            "pods",
            pod_name,
            format!("pod {pod_name} is already assigned to node \"{node_name}\""),
        ));
    }
    Ok(())
}

pub const PRIORITY_CLASS_PREFIX: &str = "/registry/scheduling.k8s.io/priorityclasses/";

/// What pod admission needs of a PriorityClass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityClass {
    pub value: i64,
    pub global_default: bool,
    pub preemption_policy: String,
}

/// Every PriorityClass by name, followed through the watch cache.
pub type PriorityClasses = crate::follow::Followed<PriorityClass>;

/// A PriorityClass's name and what admission needs of it, for [`crate::follow::Followed`].
pub fn priority_class(pc: &Value) -> Option<(String, PriorityClass)> {
    let name = pc.pointer("/metadata/name").and_then(Value::as_str)?;
    Some((
        name.to_string(),
        PriorityClass {
            value: pc.get("value").and_then(Value::as_i64).unwrap_or(0),
            global_default: pc.get("globalDefault") == Some(&json!(true)),
            preemption_policy: pc
                .get("preemptionPolicy")
                .and_then(Value::as_str)
                .unwrap_or("PreemptLowerPriority")
                .to_string(),
        },
    ))
}

/// The global default class (upstream picks the lowest value when several claim to be it).
fn default_class<'a>(
    classes: impl Iterator<Item = (&'a String, &'a PriorityClass)>,
) -> Option<(String, PriorityClass)> {
    classes
        .filter(|(_, pc)| pc.global_default)
        .min_by_key(|(name, pc)| (pc.value, name.as_str()))
        .map(|(n, pc)| (n.clone(), pc.clone()))
}

/// Fills `spec.priority` and `spec.preemptionPolicy` of a new pod from its PriorityClass (or the
/// global default class), as upstream's Priority admission plugin does.
pub async fn admit_priority(server: &ApiServer, pod: &mut Value) -> Result<(), ApiError> {
    let pc_info = registry::find("scheduling.k8s.io", "v1", "priorityclasses")
        .ok_or_else(|| ApiError::internal("priorityclasses are not registered"))?;
    let name = pod
        .pointer("/spec/priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let pod_name = objects::name_of(pod).to_string();
    let found = if name.is_empty() {
        // From the followed copy, as upstream's plugin reads its informer.
        server
            .priority_classes
            .with_all(|all| default_class(all.iter()))
    } else {
        let pc = match server.priority_classes.get(&name) {
            Some(pc) => pc,
            None => match get_object(server, pc_info, None, &name).await {
                Ok(pc) => priority_class(&pc)
                    .map(|(_, pc)| pc)
                    .unwrap_or(PriorityClass {
                        value: 0,
                        global_default: false,
                        preemption_policy: "PreemptLowerPriority".into(),
                    }),
                Err(e) if e.code == 404 => {
                    return Err(ApiError::forbidden(format!(
                        "pods \"{pod_name}\" is forbidden: no PriorityClass with name {name} was found"
                    )));
                }
                Err(e) => return Err(e),
            },
        };
        Some((name, pc))
    };
    let (class_name, priority, policy) = match found {
        Some((name, pc)) => (name, pc.value, pc.preemption_policy),
        None => (String::new(), 0, "PreemptLowerPriority".to_string()),
    };
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    if let Some(given) = spec.get("priority").and_then(Value::as_i64)
        && given != priority
    {
        return Err(ApiError::forbidden(format!(
            "pods \"{pod_name}\" is forbidden: the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
        )));
    }
    if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str)
        && given != policy
    {
        return Err(ApiError::forbidden(format!(
            "pods \"{pod_name}\" is forbidden: the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
        )));
    }
    if !class_name.is_empty() {
        spec.insert("priorityClassName".into(), json!(class_name));
    }
    spec.insert("priority".into(), json!(priority));
    spec.insert("preemptionPolicy".into(), json!(policy));
    Ok(())
}

/// Upstream's RuntimeClass admission for a new pod: its RuntimeClass must exist; the class's
/// pod overhead becomes the pod's (which may not say otherwise), and its scheduling node
/// selector and tolerations are merged into the pod's. A pod with overhead and no class is
/// refused.
pub async fn admit_runtime_class(server: &ApiServer, pod: &mut Value) -> Result<(), ApiError> {
    let pod_name = objects::name_of(pod).to_string();
    let refuse = |why: String| {
        ApiError::forbidden(format!(
            "pods \"{pod_name}\" is forbidden: pod rejected: {why}"
        ))
    };
    let class_name = pod
        .pointer("/spec/runtimeClassName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let Some(class_name) = class_name else {
        if pod.pointer("/spec/overhead").is_some_and(|o| !o.is_null()) {
            return Err(refuse(
                "Pod Overhead set without corresponding RuntimeClass".into(),
            ));
        }
        return Ok(());
    };
    let rc_info = registry::find("node.k8s.io", "v1", "runtimeclasses")
        .ok_or_else(|| ApiError::internal("runtimeclasses are not registered"))?;
    let rc = match get_object(server, rc_info, None, &class_name).await {
        Ok(rc) => rc,
        Err(e) if e.code == 404 => {
            return Err(refuse(format!("RuntimeClass {class_name:?} not found")));
        }
        Err(e) => return Err(e),
    };
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    if let Some(fixed) = rc.pointer("/overhead/podFixed").filter(|f| !f.is_null()) {
        match spec.get("overhead") {
            Some(given) if !given.is_null() && given != fixed => {
                return Err(refuse(
                    "Pod's Overhead doesn't match RuntimeClass's defined Overhead".into(),
                ));
            }
            _ => {
                spec.insert("overhead".into(), fixed.clone());
            }
        }
    }
    if let Some(selector) = rc
        .pointer("/scheduling/nodeSelector")
        .and_then(Value::as_object)
    {
        let pod_selector = spec.entry("nodeSelector").or_insert_with(|| json!({}));
        if let Some(ps) = pod_selector.as_object_mut() {
            for (k, v) in selector {
                match ps.get(k) {
                    Some(existing) if existing != v => {
                        return Err(refuse(format!(
                            "conflict: runtimeClass.scheduling.nodeSelector[{k}] = {}; pod.spec.nodeSelector[{k}] = {}",
                            v.as_str().unwrap_or(""),
                            existing.as_str().unwrap_or("")
                        )));
                    }
                    _ => {
                        ps.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }
    if let Some(tolerations) = rc
        .pointer("/scheduling/tolerations")
        .and_then(Value::as_array)
    {
        let pod_tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
        if let Some(pt) = pod_tolerations.as_array_mut() {
            for t in tolerations {
                if !pt.contains(t) {
                    pt.push(t.clone());
                }
            }
        }
    }
    Ok(())
}

fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// The PodDisruptionBudgets in the pod's namespace whose selector matches it. A null selector
/// matches nothing; an empty one matches every pod (policy/v1).
async fn budgets_for(server: &ApiServer, pod: &Value, ns: &str) -> Result<Vec<Value>, ApiError> {
    let info = registry::find("policy", "v1", "poddisruptionbudgets")
        .ok_or_else(|| ApiError::internal("poddisruptionbudgets are not registered"))?;
    let listed = server
        .store
        .range(&prefix(info, Some(ns)), None, 0, 0)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut out = Vec::new();
    for kv in listed.kvs {
        let Some(pdb) = crate::cache::decode(&kv.value, kv.mod_revision) else {
            continue;
        };
        let sel = pdb
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or(Value::Null);
        if let Ok(Some(s)) = LabelSelector::from_object(&sel)
            && s.matches_object(pod)
        {
            out.push(pdb);
        }
    }
    Ok(out)
}

/// Checks the budget and, when the eviction is allowed, records it in the budget's status.
/// `Ok(false)` means the budget changed under us and the caller should try again.
async fn check_and_decrement(
    server: &ApiServer,
    pdb: &Value,
    pod_name: &str,
    dry_run: bool,
) -> Result<bool, ApiError> {
    let info = registry::find("policy", "v1", "poddisruptionbudgets")
        .ok_or_else(|| ApiError::internal("poddisruptionbudgets are not registered"))?;
    let name = objects::name_of(pdb).to_string();
    let int = |p: &str| pdb.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let cause = |msg: String| {
        let mut e = ApiError::too_many_requests(
            "Cannot evict pod as it would violate the pod's disruption budget.",
        );
        e.details = Some(Box::new(
            json!({"causes": [{"reason": "DisruptionBudget", "message": msg}]}),
        ));
        e
    };
    if int("/status/observedGeneration") < int("/metadata/generation") {
        return Err(cause(format!(
            "The disruption budget {name} is still being processed by the server."
        )));
    }
    let allowed = int("/status/disruptionsAllowed");
    if allowed < 0 {
        return Err(ApiError::forbidden("pdb disruptions allowed is negative"));
    }
    let disrupted = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, |m| m.len());
    if disrupted > 2000 {
        return Err(ApiError::forbidden(
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        return Err(cause(format!(
            "The disruption budget {name} needs {} healthy pods and has {} currently",
            int("/status/desiredHealthy"),
            int("/status/currentHealthy")
        )));
    }
    if dry_run {
        return Ok(true);
    }
    let mut new = pdb.clone();
    new["status"]["disruptionsAllowed"] = json!(allowed - 1);
    if !new["status"]
        .get("disruptedPods")
        .is_some_and(Value::is_object)
    {
        new["status"]["disruptedPods"] = json!({});
    }
    new["status"]["disruptedPods"][pod_name] = json!(now_rfc3339());
    if allowed - 1 == 0 {
        set_condition(
            &mut new,
            json!({"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods", "message": "", "observedGeneration": int("/metadata/generation"), "lastTransitionTime": now_rfc3339()}),
        );
    }
    let ns = objects::namespace_of(pdb).map(str::to_string);
    match write_update(
        server,
        info,
        ns.as_deref(),
        &name,
        Some("status"),
        pdb,
        new,
        false,
    )
    .await
    {
        Ok(_) => Ok(true),
        Err(e) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// `POST pods/NAME/eviction`: deletes the pod unless that would violate its disruption budget
/// (429 TooManyRequests, which `kubectl drain` retries).
pub async fn evict(
    server: &ApiServer,
    ns: Option<&str>,
    pod_name: &str,
    eviction: &Value,
    q: &Query,
) -> Result<Value, ApiError> {
    let info = pods_info()?;
    let ns_name = ns.ok_or_else(|| ApiError::bad_request("pods live in a namespace"))?;
    if let Some(n) = eviction.pointer("/metadata/name").and_then(Value::as_str)
        && !n.is_empty()
        && n != pod_name
    {
        return Err(ApiError::bad_request(format!(
            "name in URL does not match name in Eviction object: {pod_name} != {n}"
        )));
    }
    let mut opts = eviction
        .get("deleteOptions")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    let dry_run = q.dry_run()?
        || opts
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    for _ in 0..RETRIES {
        let pod = get_object(server, info, ns, pod_name).await?;
        let phase = pod
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("");
        let ignore_budget = matches!(phase, "Succeeded" | "Failed" | "Pending")
            || pod.pointer("/metadata/deletionTimestamp").is_some();
        if !ignore_budget {
            let budgets = budgets_for(server, &pod, ns_name).await?;
            if budgets.len() > 1 {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
            if let Some(pdb) = budgets.first() {
                let int = |p: &str| pdb.pointer(p).and_then(Value::as_i64).unwrap_or(0);
                let always_allow = pdb
                    .pointer("/spec/unhealthyPodEvictionPolicy")
                    .and_then(Value::as_str)
                    == Some("AlwaysAllow");
                // An unready pod does not count as healthy: evicting it costs the budget nothing
                // when the budget is otherwise met.
                let free = !pod_ready(&pod)
                    && (always_allow
                        || (int("/status/currentHealthy") >= int("/status/desiredHealthy")
                            && int("/status/desiredHealthy") > 0));
                if !free && !check_and_decrement(server, pdb, pod_name, dry_run).await? {
                    continue;
                }
            }
        }
        // The pod we checked is the pod we delete.
        if opts.get("preconditions").is_none() {
            opts["preconditions"] = json!({"uid": pod.pointer("/metadata/uid")});
        }
        if !dry_run && pod.pointer("/metadata/deletionTimestamp").is_none() {
            let mut marked = pod.clone();
            set_condition(
                &mut marked,
                json!({"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting", "lastProbeTime": null, "lastTransitionTime": now_rfc3339()}),
            );
            match write_update(
                server,
                info,
                ns,
                pod_name,
                Some("status"),
                &pod,
                marked,
                false,
            )
            .await
            {
                Ok(_) => {}
                Err(e) if e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        delete_object(server, info, ns, pod_name, &opts, q, dry_run).await?;
        return Ok(success(201));
    }
    Err(ApiError::too_many_requests(
        "the disruption budget kept changing; try the eviction again",
    ))
}

/// Fields an ephemeral container may not set (upstream's validateEphemeralContainers).
const NOT_FOR_EPHEMERAL: [&str; 8] = [
    "ports",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "resources",
    "resizePolicy",
    "restartPolicy",
];

/// An update through a pod's `ephemeralcontainers` subresource: the current pod with the
/// new list of ephemeral containers (defaulted), which may add containers but neither
/// change nor remove one, as upstream.
pub fn ephemeral_containers(current: &Value, new: &Value, name: &str) -> Result<Value, ApiError> {
    let mut spec = json!({
        "ephemeralContainers": new.pointer("/spec/ephemeralContainers").cloned().unwrap_or(json!([])),
    });
    skiff_api::defaults::pod_spec(&mut spec);
    let list = match spec.get("ephemeralContainers") {
        Some(Value::Array(list)) => list.clone(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => {
            return Err(ApiError::invalid(
                "",
                "Pod",
                name,
                vec![Cause::invalid(
                    "spec.ephemeralContainers",
                    other,
                    "must be a list",
                )],
            ));
        }
    };
    let mut causes = Vec::new();
    const PATH: &str = "spec.ephemeralContainers";
    let old: &[Value] = current
        .pointer("/spec/ephemeralContainers")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let name_of = |c: &Value| {
        c.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    for o in old {
        let n = name_of(o);
        match list.iter().find(|c| name_of(c) == n) {
            None => causes.push(Cause::forbidden(
                PATH,
                format!("existing ephemeral containers {n:?} may not be removed\n"),
            )),
            Some(c) if c != o => causes.push(Cause::forbidden(
                PATH,
                format!("existing ephemeral containers {n:?} may not be changed\n"),
            )),
            Some(_) => {}
        }
    }
    let mut names: Vec<String> = ["containers", "initContainers"]
        .iter()
        .filter_map(|l| {
            current
                .pointer(&format!("/spec/{l}"))
                .and_then(Value::as_array)
        })
        .flatten()
        .map(name_of)
        .collect();
    let regular = names.clone();
    for (i, c) in list.iter().enumerate() {
        let at = format!("{PATH}[{i}]");
        if old.contains(c) {
            names.push(name_of(c));
            continue;
        }
        let n = name_of(c);
        if n.is_empty() {
            causes.push(Cause::required(format!("{at}.name")));
        } else if !skiff_api::validation::is_dns1123_label(&n) {
            causes.push(Cause::invalid(
                format!("{at}.name"),
                &json!(n),
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            ));
        } else if names.contains(&n) {
            causes.push(Cause::duplicate(format!("{at}.name"), &json!(n)));
        }
        names.push(n);
        if c.get("image")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            causes.push(Cause::required(format!("{at}.image")));
        }
        for field in NOT_FOR_EPHEMERAL {
            let set = c
                .get(field)
                .is_some_and(|v| !(v.is_null() || v.as_object().is_some_and(|m| m.is_empty())));
            if set {
                causes.push(Cause::forbidden(
                    format!("{at}.{field}"),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
        if let Some(target) = c.get("targetContainerName").and_then(Value::as_str)
            && !regular.iter().any(|r| r == target)
        {
            causes.push(Cause {
                reason: "FieldValueNotFound",
                message: format!("Not found: {target:?}"),
                field: format!("{at}.targetContainerName"),
            });
        }
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid("", "Pod", name, causes));
    }
    let mut merged = current.clone();
    if let Some(s) = merged.get_mut("spec").and_then(Value::as_object_mut) {
        s.insert("ephemeralContainers".into(), Value::Array(list));
    }
    if let (Some(md), Some(managed)) = (
        merged.get_mut("metadata").and_then(Value::as_object_mut),
        new.pointer("/metadata/managedFields"),
    ) {
        md.insert("managedFields".into(), managed.clone());
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_condition_keeps_transition_time_when_status_is_unchanged() {
        let mut pod = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "t0"}]}});
        set_condition(
            &mut pod,
            json!({"type": "Ready", "status": "True", "lastTransitionTime": "t1"}),
        );
        assert_eq!(pod["status"]["conditions"][0]["lastTransitionTime"], "t0");
        set_condition(
            &mut pod,
            json!({"type": "Ready", "status": "False", "lastTransitionTime": "t2"}),
        );
        assert_eq!(pod["status"]["conditions"][0]["lastTransitionTime"], "t2");
        set_condition(&mut pod, json!({"type": "PodScheduled", "status": "True"}));
        assert_eq!(
            pod["status"]["conditions"].as_array().map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn default_tolerations_are_added_unless_present() {
        let d = PodDefaults::default();
        let mut pod = json!({"spec": {"containers": []}});
        admit_default_tolerations(&d, &mut pod);
        let t = pod["spec"]["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1]["key"], "node.kubernetes.io/unreachable");
        assert_eq!(t[1]["tolerationSeconds"], 300);
        let mut pod = json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]}});
        admit_default_tolerations(&d, &mut pod);
        let t = pod["spec"]["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(t.len(), 2, "only not-ready is added");
        let mut pod = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        admit_default_tolerations(&d, &mut pod);
        assert_eq!(pod["spec"]["tolerations"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn set_condition_creates_status() {
        let mut pod = json!({"metadata": {}});
        set_condition(&mut pod, json!({"type": "PodScheduled", "status": "True"}));
        assert_eq!(pod["status"]["conditions"][0]["type"], "PodScheduled");
    }
}
