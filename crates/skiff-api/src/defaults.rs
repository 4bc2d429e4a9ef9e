//! Upstream's defaulting for the kinds users write by hand (pods and their templates, workloads, services).

use serde_json::{Map, Value, json};

fn obj(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.as_object_mut()
}

/// Sets `key` to `default` when absent or null.
fn default_field(m: &mut Map<String, Value>, key: &str, default: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), default);
    }
}

/// A child object, created empty when absent.
fn child<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), json!({}));
    }
    m.get_mut(key).and_then(Value::as_object_mut)
}

/// Applies upstream's defaults for `group`/`kind` in place. Unknown kinds are left alone.
pub fn apply(group: &str, kind: &str, o: &mut Value) {
    let Some(m) = obj(o) else { return };
    match (group, kind) {
        ("", "Pod") => {
            if let Some(spec) = m.get_mut("spec") {
                pod_spec(spec);
                requests_from_limits(spec);
            }
        }
        ("", "LimitRange") => {
            for item in m
                .get_mut("spec")
                .and_then(|s| s.get_mut("limits"))
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                limit_range_item(item);
            }
        }
        ("", "PodTemplate") => template(m.get_mut("template")),
        ("", "ReplicationController") => {
            if let Some(spec) = child(m, "spec") {
                default_field(spec, "replicas", json!(1));
                default_field(spec, "minReadySeconds", json!(0));
                let labels = spec
                    .get("template")
                    .and_then(|t| t.pointer("/metadata/labels"))
                    .cloned();
                if spec
                    .get("selector")
                    .is_none_or(|s| s.as_object().is_none_or(Map::is_empty))
                    && let Some(l) = labels
                {
                    spec.insert("selector".into(), l);
                }
                template(spec.get_mut("template"));
            }
            let tmpl_labels = m
                .get("spec")
                .and_then(|s| s.pointer("/template/metadata/labels"))
                .cloned();
            if let Some(md) = child(m, "metadata")
                && md.get("labels").is_none()
                && let Some(l) = tmpl_labels
            {
                md.insert("labels".into(), l);
            }
        }
        ("", "Service") => service(m),
        ("", "Namespace") => {
            if let Some(spec) = child(m, "spec") {
                default_field(spec, "finalizers", json!(["kubernetes"]));
            }
            if let Some(status) = child(m, "status") {
                default_field(status, "phase", json!("Active"));
            }
            let name = m.get("metadata").and_then(|md| md.get("name")).cloned();
            if let (Some(name), Some(md)) = (name, child(m, "metadata"))
                && let Some(labels) = child(md, "labels")
            {
                labels.insert("kubernetes.io/metadata.name".into(), name);
            }
        }
        ("", "Secret") => {
            default_field(m, "type", json!("Opaque"));
            secret_string_data(m);
        }
        ("", "PersistentVolumeClaim") => {
            if let Some(spec) = child(m, "spec") {
                default_field(spec, "volumeMode", json!("Filesystem"));
            }
            if let Some(status) = child(m, "status") {
                default_field(status, "phase", json!("Pending"));
            }
        }
        ("", "PersistentVolume") => {
            if let Some(spec) = child(m, "spec") {
                default_field(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
                default_field(spec, "volumeMode", json!("Filesystem"));
            }
            if let Some(status) = child(m, "status") {
                default_field(status, "phase", json!("Pending"));
            }
        }
        ("apps", "Deployment") => {
            if let Some(spec) = child(m, "spec") {
                default_field(spec, "replicas", json!(1));
                default_field(spec, "revisionHistoryLimit", json!(10));
                default_field(spec, "progressDeadlineSeconds", json!(600));
                if let Some(strategy) = child(spec, "strategy") {
                    default_field(strategy, "type", json!("RollingUpdate"));
                    if strategy.get("type") == Some(&json!("RollingUpdate"))
                        && let Some(ru) = child(strategy, "rollingUpdate")
                    {
                        default_field(ru, "maxUnavailable", json!("25%"));
                        default_field(ru, "maxSurge", json!("25%"));
                    }
                }
                template(spec.get_mut("template"));
            }
        }
        ("apps", "ReplicaSet") => {
            if let Some(spec) = child(m, "spec") {
                default_field(spec, "replicas", json!(1));
                template(spec.get_mut("template"));
            }
        }
        ("apps", "StatefulSet") => {
            if let Some(spec) = child(m, "spec") {
                default_field(spec, "replicas", json!(1));
                default_field(spec, "podManagementPolicy", json!("OrderedReady"));
                default_field(spec, "revisionHistoryLimit", json!(10));
                default_field(
                    spec,
                    "persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
                if let Some(us) = child(spec, "updateStrategy") {
                    default_field(us, "type", json!("RollingUpdate"));
                    if us.get("type") == Some(&json!("RollingUpdate"))
                        && let Some(ru) = child(us, "rollingUpdate")
                    {
                        default_field(ru, "partition", json!(0));
                    }
                }
                if let Some(vcts) = spec
                    .get_mut("volumeClaimTemplates")
                    .and_then(Value::as_array_mut)
                {
                    for v in vcts {
                        if let Some(s) = v.get_mut("spec").and_then(Value::as_object_mut) {
                            default_field(s, "volumeMode", json!("Filesystem"));
                        }
                    }
                }
                template(spec.get_mut("template"));
            }
        }
        ("apps", "DaemonSet") => {
            if let Some(spec) = child(m, "spec") {
                default_field(spec, "revisionHistoryLimit", json!(10));
                if let Some(us) = child(spec, "updateStrategy") {
                    default_field(us, "type", json!("RollingUpdate"));
                    if us.get("type") == Some(&json!("RollingUpdate"))
                        && let Some(ru) = child(us, "rollingUpdate")
                    {
                        default_field(ru, "maxUnavailable", json!(1));
                        default_field(ru, "maxSurge", json!(0));
                    }
                }
                template(spec.get_mut("template"));
            }
        }
        ("batch", "Job") => {
            if let Some(spec) = child(m, "spec") {
                job_spec(spec);
            }
        }
        ("batch", "CronJob") => {
            if let Some(spec) = child(m, "spec") {
                default_field(spec, "concurrencyPolicy", json!("Allow"));
                default_field(spec, "suspend", json!(false));
                default_field(spec, "successfulJobsHistoryLimit", json!(3));
                default_field(spec, "failedJobsHistoryLimit", json!(1));
                if let Some(jt) = child(spec, "jobTemplate")
                    && let Some(js) = child(jt, "spec")
                {
                    job_spec(js);
                }
            }
        }
        ("networking.k8s.io", "Ingress") => {
            if let Some(rules) = m
                .get_mut("spec")
                .and_then(|s| s.get_mut("rules"))
                .and_then(Value::as_array_mut)
            {
                for r in rules {
                    if let Some(paths) = r.pointer_mut("/http/paths").and_then(Value::as_array_mut)
                    {
                        for p in paths {
                            if let Some(p) = p.as_object_mut() {
                                default_field(p, "pathType", json!("ImplementationSpecific"));
                            }
                        }
                    }
                }
            }
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            // A v1 object's other metrics ride in an annotation.
            let v1 = m.get("apiVersion").and_then(Value::as_str) == Some("autoscaling/v1");
            let annotated = m
                .get("metadata")
                .and_then(|md| md.get("annotations"))
                .and_then(|a| a.get("autoscaling.alpha.kubernetes.io/metrics"))
                .and_then(Value::as_str)
                .is_some_and(|s| s.trim() != "[]" && !s.is_empty());
            if let Some(spec) = child(m, "spec") {
                hpa_spec(spec, v1, annotated);
            }
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            if let Some(spec) = child(m, "spec") {
                let has_egress = spec.get("egress").is_some();
                default_field(
                    spec,
                    "policyTypes",
                    if has_egress {
                        json!(["Ingress", "Egress"])
                    } else {
                        json!(["Ingress"])
                    },
                );
            }
        }
        _ => {}
    }
    always_written_status(group, kind, m);
}

/// The status fields upstream's objects always carry: a non-pointer status struct whose
/// integer and boolean fields have no `omitempty` is written as `{"replicas":0}` even before
/// any controller looked at the object. OpenAPI marks them required, and typed clients (the
/// Python client's models) refuse an object without them.
pub fn always_written_status(group: &str, kind: &str, m: &mut Map<String, Value>) {
    let fields: &[(&str, Value)] = match (group, kind) {
        ("", "ReplicationController") | ("apps", "ReplicaSet") | ("apps", "StatefulSet") => {
            &[("replicas", json!(0))]
        }
        ("apps", "DaemonSet") => &[
            ("currentNumberScheduled", json!(0)),
            ("numberMisscheduled", json!(0)),
            ("desiredNumberScheduled", json!(0)),
            ("numberReady", json!(0)),
        ],
        ("autoscaling", "HorizontalPodAutoscaler") => &[("desiredReplicas", json!(0))],
        ("policy", "PodDisruptionBudget") => &[
            ("disruptionsAllowed", json!(0)),
            ("currentHealthy", json!(0)),
            ("desiredHealthy", json!(0)),
            ("expectedPods", json!(0)),
        ],
        ("storage.k8s.io", "VolumeAttachment") => &[("attached", json!(false))],
        _ => return,
    };
    if let Some(status) = child(m, "status") {
        for (field, zero) in fields {
            default_field(status, field, zero.clone());
        }
    }
}

/// Folds a Secret's write-only `stringData` into `data` (base64), as upstream's conversion does
/// on every write: `stringData` wins on equal keys and is never stored. A `stringData` that is
/// not a map of strings is left for validation to refuse.
fn secret_string_data(m: &mut Map<String, Value>) {
    use base64::Engine as _;
    let strings = match m.get("stringData") {
        Some(Value::Null) => Some(Map::new()),
        Some(Value::Object(sd)) if sd.values().all(Value::is_string) => Some(sd.clone()),
        Some(_) => None,
        None => return,
    };
    let Some(strings) = strings else { return };
    m.remove("stringData");
    if strings.is_empty() {
        return;
    }
    if !m.get("data").is_some_and(Value::is_object) {
        m.insert("data".into(), json!({}));
    }
    if let Some(data) = m.get_mut("data").and_then(Value::as_object_mut) {
        for (k, v) in strings {
            let plain = v.as_str().unwrap_or_default();
            data.insert(
                k,
                json!(base64::engine::general_purpose::STANDARD.encode(plain)),
            );
        }
    }
}

fn job_spec(spec: &mut Map<String, Value>) {
    let parallelism_set = spec.get("parallelism").is_some_and(|v| !v.is_null());
    let completions_set = spec.get("completions").is_some_and(|v| !v.is_null());
    if !parallelism_set && !completions_set {
        spec.insert("completions".into(), json!(1));
    }
    default_field(spec, "parallelism", json!(1));
    default_field(spec, "backoffLimit", json!(6));
    default_field(spec, "completionMode", json!("NonIndexed"));
    default_field(spec, "suspend", json!(false));
    default_field(spec, "manualSelector", json!(false));
    default_field(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    template(spec.get_mut("template"));
}

fn template(t: Option<&mut Value>) {
    if let Some(spec) = t.and_then(|t| t.get_mut("spec")) {
        pod_spec(spec);
    }
}

/// `IfNotPresent` for a pinned tag or digest, `Always` for `:latest` or no tag.
pub fn image_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn container(c: &mut Value) {
    let Some(c) = c.as_object_mut() else { return };
    let policy = c
        .get("image")
        .and_then(Value::as_str)
        .map(image_pull_policy)
        .unwrap_or("Always");
    default_field(c, "imagePullPolicy", json!(policy));
    default_field(c, "terminationMessagePath", json!("/dev/termination-log"));
    default_field(c, "terminationMessagePolicy", json!("File"));
    default_field(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            if let Some(p) = p.as_object_mut() {
                default_field(p, "protocol", json!("TCP"));
            }
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            default_field(p, "timeoutSeconds", json!(1));
            default_field(p, "periodSeconds", json!(10));
            default_field(p, "successThreshold", json!(1));
            default_field(p, "failureThreshold", json!(3));
            if let Some(h) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
                default_field(h, "path", json!("/"));
                default_field(h, "scheme", json!("HTTP"));
            }
        }
    }
    if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
        for e in env {
            if let Some(fr) = e
                .pointer_mut("/valueFrom/fieldRef")
                .and_then(Value::as_object_mut)
            {
                default_field(fr, "apiVersion", json!("v1"));
            }
        }
    }
}

/// A pod's container that limits a resource and does not request it requests its limit
/// (upstream's `SetDefaults_Pod`; pod templates keep what they say).
fn requests_from_limits(spec: &mut Value) {
    for list in ["containers", "initContainers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(res) = c.get_mut("resources").and_then(Value::as_object_mut) else {
                continue;
            };
            let Some(limits) = res
                .get("limits")
                .and_then(Value::as_object)
                .filter(|l| !l.is_empty())
                .cloned()
            else {
                continue;
            };
            let Some(requests) = child(res, "requests") else {
                continue;
            };
            for (k, q) in limits {
                requests.entry(k).or_insert(q);
            }
        }
    }
}

/// A Container limit item's defaults (upstream's `SetDefaults_LimitRangeItem`): the default
/// limit is the max, the default request the default limit, else the min.
fn limit_range_item(item: &mut Value) {
    let Some(m) = item.as_object_mut() else {
        return;
    };
    if m.get("type").and_then(Value::as_str) != Some("Container") {
        return;
    }
    let list = |m: &Map<String, Value>, k: &str| {
        m.get(k)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (max, min) = (list(m, "max"), list(m, "min"));
    let mut default = list(m, "default");
    for (k, q) in max {
        default.entry(k).or_insert(q);
    }
    let mut request = list(m, "defaultRequest");
    for (k, q) in default.iter().chain(min.iter()) {
        request.entry(k.clone()).or_insert_with(|| q.clone());
    }
    if !default.is_empty() {
        m.insert("default".into(), Value::Object(default));
    }
    if !request.is_empty() {
        m.insert("defaultRequest".into(), Value::Object(request));
    }
}

/// Defaults of a `PodSpec`, also used for every pod template.
pub fn pod_spec(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    default_field(m, "restartPolicy", json!("Always"));
    default_field(m, "dnsPolicy", json!("ClusterFirst"));
    default_field(m, "terminationGracePeriodSeconds", json!(30));
    default_field(m, "schedulerName", json!("default-scheduler"));
    default_field(m, "securityContext", json!({}));
    default_field(m, "enableServiceLinks", json!(true));
    // The deprecated `serviceAccount` mirrors `serviceAccountName` (upstream's conversion).
    let account = ["serviceAccountName", "serviceAccount"]
        .iter()
        .find_map(|f| m.get(*f).and_then(Value::as_str).filter(|a| !a.is_empty()))
        .map(str::to_string);
    if let Some(a) = account {
        m.insert("serviceAccountName".into(), json!(a));
        m.insert("serviceAccount".into(), json!(a));
    }
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
            cs.iter_mut().for_each(container);
        }
    }
    if let Some(vols) = m.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in vols {
            let Some(v) = v.as_object_mut() else { continue };
            // A volume naming no source is an emptyDir.
            if v.iter().all(|(k, val)| k == "name" || val.is_null()) {
                v.insert("emptyDir".into(), json!({}));
            }
            for (src, mode_field) in [
                ("configMap", "defaultMode"),
                ("secret", "defaultMode"),
                ("downwardAPI", "defaultMode"),
                ("projected", "defaultMode"),
            ] {
                if let Some(s) = v.get_mut(src).and_then(Value::as_object_mut) {
                    default_field(s, mode_field, json!(420));
                }
            }
            if let Some(hp) = v.get_mut("hostPath").and_then(Value::as_object_mut) {
                default_field(hp, "type", json!(""));
            }
        }
    }
}

/// A HorizontalPodAutoscaler's spec: at least one replica and, without metrics, 80 % CPU
/// utilization (autoscaling/v1 writes it as targetCPUUtilizationPercentage, as reading a
/// defaulted v2 object in v1 gives upstream); a `behavior` gets the default scaling rules
/// wherever it leaves one out.
fn hpa_spec(spec: &mut Map<String, Value>, v1: bool, v1_other_metrics: bool) {
    default_field(spec, "minReplicas", json!(1));
    if v1 {
        if !v1_other_metrics {
            default_field(spec, "targetCPUUtilizationPercentage", json!(80));
        }
        return;
    }
    if spec
        .get("metrics")
        .is_none_or(|m| m.as_array().is_none_or(Vec::is_empty))
    {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
    let Some(behavior) = spec.get_mut("behavior").and_then(Value::as_object_mut) else {
        return;
    };
    let rules = [
        (
            "scaleUp",
            Some(json!(0)),
            json!([{"type": "Pods", "value": 4, "periodSeconds": 15},
                   {"type": "Percent", "value": 100, "periodSeconds": 15}]),
        ),
        (
            "scaleDown",
            None,
            json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
        ),
    ];
    for (direction, window, policies) in rules {
        let r = behavior.entry(direction).or_insert_with(|| json!({}));
        if r.is_null() {
            *r = json!({});
        }
        let Some(r) = r.as_object_mut() else { continue };
        if let Some(w) = window {
            default_field(r, "stabilizationWindowSeconds", w);
        }
        default_field(r, "selectPolicy", json!("Max"));
        if r.get("policies")
            .is_none_or(|p| p.as_array().is_none_or(Vec::is_empty))
        {
            r.insert("policies".into(), policies);
        }
    }
}

fn service(m: &mut Map<String, Value>) {
    let Some(spec) = child(m, "spec") else { return };
    default_field(spec, "type", json!("ClusterIP"));
    default_field(spec, "sessionAffinity", json!("None"));
    let svc_type = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if svc_type != "ExternalName" {
        default_field(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if svc_type == "NodePort" || svc_type == "LoadBalancer" {
        default_field(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if svc_type == "LoadBalancer" {
        default_field(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            let Some(p) = p.as_object_mut() else { continue };
            default_field(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                default_field(p, "targetPort", port);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_defaults_like_upstream() {
        let mut d = json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]}}}});
        apply("apps", "Deployment", &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(
            d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
            30
        );
    }

    #[test]
    fn volumes_without_a_source_are_empty_dirs() {
        let mut p = json!({"spec": {"containers": [{"name": "c", "image": "i"}], "volumes": [
            {"name": "a"}, {"name": "b", "configMap": {"name": "x"}}, {"name": "c", "hostPath": null}]}});
        apply("", "Pod", &mut p);
        let vols = &p["spec"]["volumes"];
        assert_eq!(vols[0]["emptyDir"], json!({}));
        assert_eq!(vols[1].get("emptyDir"), None);
        assert_eq!(vols[1]["configMap"]["defaultMode"], 420);
        assert_eq!(vols[2]["emptyDir"], json!({}));
    }

    #[test]
    fn horizontal_pod_autoscalers_default_like_upstream() {
        let target = json!({"kind": "Deployment", "name": "web"});
        let mut v2 = json!({"apiVersion": "autoscaling/v2", "spec": {"scaleTargetRef": target, "maxReplicas": 3,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}});
        apply("autoscaling", "HorizontalPodAutoscaler", &mut v2);
        let spec = &v2["spec"];
        assert_eq!(spec["minReplicas"], 1);
        assert_eq!(
            spec["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}])
        );
        assert_eq!(
            spec["behavior"]["scaleDown"],
            json!({"stabilizationWindowSeconds": 60, "selectPolicy": "Max",
                "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]})
        );
        assert_eq!(spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"], 0);
        assert_eq!(spec["behavior"]["scaleUp"]["policies"][0]["value"], 4);

        let memory = json!([{"type": "Resource", "resource": {"name": "memory",
            "target": {"type": "AverageValue", "averageValue": "1Gi"}}}]);
        let mut v2 = json!({"apiVersion": "autoscaling/v2", "spec": {"minReplicas": 2, "maxReplicas": 3, "metrics": memory}});
        apply("autoscaling", "HorizontalPodAutoscaler", &mut v2);
        assert_eq!(v2["spec"]["minReplicas"], 2);
        assert_eq!(v2["spec"]["metrics"], memory);
        assert_eq!(v2["spec"].get("behavior"), None);

        let mut v1 = json!({"apiVersion": "autoscaling/v1", "spec": {"maxReplicas": 2}});
        apply("autoscaling", "HorizontalPodAutoscaler", &mut v1);
        assert_eq!(
            v1["spec"],
            json!({"maxReplicas": 2, "minReplicas": 1, "targetCPUUtilizationPercentage": 80})
        );
    }

    #[test]
    fn status_fields_upstream_always_writes() {
        let mut rc = json!({"spec": {"selector": {"a": "b"}}});
        apply("", "ReplicationController", &mut rc);
        assert_eq!(rc["status"], json!({"replicas": 0}));
        let mut ds = json!({"spec": {}, "status": {"numberReady": 2}});
        apply("apps", "DaemonSet", &mut ds);
        assert_eq!(
            ds["status"],
            json!({"numberReady": 2, "currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0})
        );
        let mut cm = json!({"data": {}});
        apply("", "ConfigMap", &mut cm);
        assert_eq!(cm, json!({"data": {}}));
    }

    #[test]
    fn pull_policy_follows_tag() {
        assert_eq!(image_pull_policy("nginx"), "Always");
        assert_eq!(image_pull_policy("nginx:latest"), "Always");
        assert_eq!(image_pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(image_pull_policy("localhost:5000/nginx:1"), "IfNotPresent");
        assert_eq!(image_pull_policy("nginx@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn secret_string_data_folds_into_data() {
        let mut s =
            json!({"data": {"a": "eA==", "b": "eQ=="}, "stringData": {"b": "admin", "c": ""}});
        apply("", "Secret", &mut s);
        assert_eq!(s.get("stringData"), None);
        assert_eq!(s["data"], json!({"a": "eA==", "b": "YWRtaW4=", "c": ""}));
        assert_eq!(s["type"], "Opaque");
        let mut bad = json!({"stringData": {"n": 1}});
        apply("", "Secret", &mut bad);
        assert_eq!(bad["stringData"], json!({"n": 1}), "left for validation");
    }

    #[test]
    fn rc_selector_from_template() {
        let mut rc = json!({"spec": {"template": {"metadata": {"labels": {"app": "q"}}, "spec": {"containers": []}}}});
        apply("", "ReplicationController", &mut rc);
        assert_eq!(rc["spec"]["selector"], json!({"app": "q"}));
        assert_eq!(rc["metadata"]["labels"], json!({"app": "q"}));
    }
}
