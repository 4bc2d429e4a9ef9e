//! Server-side printing: `as=Table` responses with the columns kubectl shows for each kind.

use serde_json::{Value, json};
use skiff_api::registry::{self, ResourceInfo};

use skiff_api::duration::human_duration;

fn age_of(ts: Option<&str>) -> String {
    let Some(ts) = ts else {
        return "<unknown>".into();
    };
    match chrono::DateTime::parse_from_rfc3339(ts) {
        Ok(t) => human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()),
        Err(_) => "<unknown>".into(),
    }
}

fn age(o: &Value) -> Value {
    json!(age_of(
        o.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
    ))
}

fn s<'a>(o: &'a Value, p: &str) -> &'a str {
    o.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn i(o: &Value, p: &str) -> i64 {
    o.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

fn none_if_empty(v: String) -> String {
    if v.is_empty() { "<none>".into() } else { v }
}

struct Col(&'static str, &'static str, i32);

fn containers_images(o: &Value, template: &str) -> (String, String) {
    let cs = o
        .pointer(&format!("{template}/containers"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return "<none>".into();
    };
    match skiff_api::selector::LabelSelector::from_object(sel) {
        Ok(Some(s)) if !s.is_empty() => s.to_string(),
        _ => "<none>".into(),
    }
}

fn map_selector(sel: Option<&Value>) -> String {
    let Some(m) = sel.and_then(Value::as_object) else {
        return "<none>".into();
    };
    let parts: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    none_if_empty(parts.join(","))
}

fn pod_status(o: &Value) -> String {
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        return "Terminating".into();
    }
    let reason = s(o, "/status/reason");
    if !reason.is_empty() {
        return reason.into();
    }
    let statuses = o
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for cs in statuses.iter().rev() {
        let w = s(cs, "/state/waiting/reason");
        if !w.is_empty() {
            return w.into();
        }
        let t = s(cs, "/state/terminated/reason");
        if !t.is_empty() {
            return t.into();
        }
    }
    let phase = s(o, "/status/phase");
    if phase.is_empty() {
        "Pending".into()
    } else {
        phase.into()
    }
}

fn service_ports(o: &Value) -> String {
    let ports = o
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let parts: Vec<String> = ports
        .iter()
        .map(|p| {
            let port = i(p, "/port");
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(np) => format!("{port}:{np}/{proto}"),
                None => format!("{port}/{proto}"),
            }
        })
        .collect();
    none_if_empty(parts.join(","))
}

fn endpoints_string(o: &Value) -> String {
    let mut out = Vec::new();
    for subset in o
        .get("subsets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let ports: Vec<i64> = subset
            .get("ports")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|p| i(p, "/port")).collect())
            .unwrap_or_default();
        for a in subset
            .get("addresses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            if ports.is_empty() {
                out.push(s(&a, "/ip").to_string());
            }
            for p in &ports {
                out.push(format!("{}:{p}", s(&a, "/ip")));
            }
        }
    }
    let n = out.len();
    if n > 3 {
        format!("{} + {} more...", out[..3].join(","), n - 3)
    } else {
        none_if_empty(out.join(","))
    }
}

fn condition_true(o: &Value, ty: &str) -> bool {
    o.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| s(c, "/type") == ty && s(c, "/status") == "True")
        })
}

fn data_count(o: &Value) -> i64 {
    ["data", "binaryData"]
        .iter()
        .map(|k| {
            o.get(*k)
                .and_then(Value::as_object)
                .map_or(0, |m| m.len() as i64)
        })
        .sum()
}

/// Column definitions and cell values for one object of `info`.
fn layout(info: &ResourceInfo) -> Vec<Col> {
    if is_events_api(info) {
        return layout(registry::storage_of(info));
    }
    match (info.group, info.plural) {
        ("", "pods") => vec![
            Col("Name", "string", 0),
            Col("Ready", "string", 0),
            Col("Status", "string", 0),
            Col("Restarts", "string", 0),
            Col("Age", "string", 0),
            Col("IP", "string", 1),
            Col("Node", "string", 1),
            Col("Nominated Node", "string", 1),
            Col("Readiness Gates", "string", 1),
        ],
        ("apps", "deployments") => vec![
            Col("Name", "string", 0),
            Col("Ready", "string", 0),
            Col("Up-to-date", "integer", 0),
            Col("Available", "integer", 0),
            Col("Age", "string", 0),
            Col("Containers", "string", 1),
            Col("Images", "string", 1),
            Col("Selector", "string", 1),
        ],
        ("apps", "replicasets") | ("", "replicationcontrollers") => vec![
            Col("Name", "string", 0),
            Col("Desired", "integer", 0),
            Col("Current", "integer", 0),
            Col("Ready", "integer", 0),
            Col("Age", "string", 0),
            Col("Containers", "string", 1),
            Col("Images", "string", 1),
            Col("Selector", "string", 1),
        ],
        ("", "services") => vec![
            Col("Name", "string", 0),
            Col("Type", "string", 0),
            Col("Cluster-IP", "string", 0),
            Col("External-IP", "string", 0),
            Col("Port(s)", "string", 0),
            Col("Age", "string", 0),
            Col("Selector", "string", 1),
        ],
        ("", "endpoints") => vec![
            Col("Name", "string", 0),
            Col("Endpoints", "string", 0),
            Col("Age", "string", 0),
        ],
        ("", "nodes") => vec![
            Col("Name", "string", 0),
            Col("Status", "string", 0),
            Col("Roles", "string", 0),
            Col("Age", "string", 0),
            Col("Version", "string", 0),
            Col("Internal-IP", "string", 1),
            Col("External-IP", "string", 1),
            Col("OS-Image", "string", 1),
            Col("Kernel-Version", "string", 1),
            Col("Container-Runtime", "string", 1),
        ],
        ("", "namespaces") => vec![
            Col("Name", "string", 0),
            Col("Status", "string", 0),
            Col("Age", "string", 0),
        ],
        ("", "configmaps") => vec![
            Col("Name", "string", 0),
            Col("Data", "integer", 0),
            Col("Age", "string", 0),
        ],
        ("certificates.k8s.io", "certificatesigningrequests") => vec![
            Col("Name", "string", 0),
            Col("Age", "string", 0),
            Col("SignerName", "string", 0),
            Col("Requestor", "string", 0),
            Col("RequestedDuration", "string", 0),
            Col("Condition", "string", 0),
        ],
        ("", "secrets") => vec![
            Col("Name", "string", 0),
            Col("Type", "string", 0),
            Col("Data", "integer", 0),
            Col("Age", "string", 0),
        ],
        ("", "serviceaccounts") => vec![
            Col("Name", "string", 0),
            Col("Secrets", "integer", 0),
            Col("Age", "string", 0),
        ],
        ("autoscaling", "horizontalpodautoscalers") => vec![
            Col("Name", "string", 0),
            Col("Reference", "string", 0),
            Col("Targets", "string", 0),
            Col("MinPods", "string", 0),
            Col("MaxPods", "integer", 0),
            Col("Replicas", "integer", 0),
            Col("Age", "string", 0),
        ],
        ("batch", "jobs") => vec![
            Col("Name", "string", 0),
            Col("Status", "string", 0),
            Col("Completions", "string", 0),
            Col("Duration", "string", 0),
            Col("Age", "string", 0),
            Col("Containers", "string", 1),
            Col("Images", "string", 1),
            Col("Selector", "string", 1),
        ],
        ("batch", "cronjobs") => vec![
            Col("Name", "string", 0),
            Col("Schedule", "string", 0),
            Col("Timezone", "string", 0),
            Col("Suspend", "boolean", 0),
            Col("Active", "integer", 0),
            Col("Last Schedule", "string", 0),
            Col("Age", "string", 0),
            Col("Containers", "string", 1),
            Col("Images", "string", 1),
            Col("Selector", "string", 1),
        ],
        ("apps", "daemonsets") => vec![
            Col("Name", "string", 0),
            Col("Desired", "integer", 0),
            Col("Current", "integer", 0),
            Col("Ready", "integer", 0),
            Col("Up-to-date", "integer", 0),
            Col("Available", "integer", 0),
            Col("Node Selector", "string", 0),
            Col("Age", "string", 0),
            Col("Containers", "string", 1),
            Col("Images", "string", 1),
            Col("Selector", "string", 1),
        ],
        ("apps", "statefulsets") => vec![
            Col("Name", "string", 0),
            Col("Ready", "string", 0),
            Col("Age", "string", 0),
            Col("Containers", "string", 1),
            Col("Images", "string", 1),
        ],
        ("networking.k8s.io", "ingresses") => vec![
            Col("Name", "string", 0),
            Col("Class", "string", 0),
            Col("Hosts", "string", 0),
            Col("Address", "string", 0),
            Col("Ports", "string", 0),
            Col("Age", "string", 0),
        ],
        ("", "events") => vec![
            Col("Last Seen", "string", 0),
            Col("Type", "string", 0),
            Col("Reason", "string", 0),
            Col("Object", "string", 0),
            Col("Subobject", "string", 1),
            Col("Source", "string", 1),
            Col("Message", "string", 0),
            Col("First Seen", "string", 1),
            Col("Count", "string", 1),
            Col("Name", "string", 1),
        ],
        ("", "persistentvolumes") => vec![
            Col("Name", "string", 0),
            Col("Capacity", "string", 0),
            Col("Access Modes", "string", 0),
            Col("Reclaim Policy", "string", 0),
            Col("Status", "string", 0),
            Col("Claim", "string", 0),
            Col("StorageClass", "string", 0),
            Col("VolumeAttributesClass", "string", 0),
            Col("Reason", "string", 0),
            Col("Age", "string", 0),
            Col("VolumeMode", "string", 1),
        ],
        ("policy", "poddisruptionbudgets") => vec![
            Col("Name", "string", 0),
            Col("Min Available", "string", 0),
            Col("Max Unavailable", "string", 0),
            Col("Allowed Disruptions", "integer", 0),
            Col("Age", "string", 0),
        ],
        ("scheduling.k8s.io", "priorityclasses") => vec![
            Col("Name", "string", 0),
            Col("Value", "integer", 0),
            Col("Global-Default", "boolean", 0),
            Col("Age", "string", 0),
            Col("PreemptionPolicy", "string", 0),
        ],
        ("coordination.k8s.io", "leases") => vec![
            Col("Name", "string", 0),
            Col("Holder", "string", 0),
            Col("Age", "string", 0),
        ],
        ("discovery.k8s.io", "endpointslices") => vec![
            Col("Name", "string", 0),
            Col("AddressType", "string", 0),
            Col("Ports", "string", 0),
            Col("Endpoints", "string", 0),
            Col("Age", "string", 0),
        ],
        ("apps", "controllerrevisions") => vec![
            Col("Name", "string", 0),
            Col("Controller", "string", 0),
            Col("Revision", "integer", 0),
            Col("Age", "string", 0),
        ],
        ("", "persistentvolumeclaims") => vec![
            Col("Name", "string", 0),
            Col("Status", "string", 0),
            Col("Volume", "string", 0),
            Col("Capacity", "string", 0),
            Col("Access Modes", "string", 0),
            Col("StorageClass", "string", 0),
            Col("VolumeAttributesClass", "string", 0),
            Col("Age", "string", 0),
            Col("VolumeMode", "string", 1),
        ],
        ("", "componentstatuses") => vec![
            Col("Name", "string", 0),
            Col("Status", "string", 0),
            Col("Message", "string", 0),
            Col("Error", "string", 0),
        ],
        ("", "resourcequotas") => vec![
            Col("Name", "string", 0),
            Col("Age", "string", 0),
            Col("Request", "string", 0),
            Col("Limit", "string", 0),
        ],
        ("", "limitranges")
        | ("rbac.authorization.k8s.io", "roles" | "clusterroles")
        | ("apiextensions.k8s.io", "customresourcedefinitions") => {
            vec![Col("Name", "string", 0), Col("Created At", "date", 0)]
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => vec![
            Col("Name", "string", 0),
            Col("Role", "string", 0),
            Col("Age", "string", 0),
            Col("Users", "string", 1),
            Col("Groups", "string", 1),
            Col("ServiceAccounts", "string", 1),
        ],
        ("storage.k8s.io", "storageclasses") => vec![
            Col("Name", "string", 0),
            Col("Provisioner", "string", 0),
            Col("ReclaimPolicy", "string", 0),
            Col("VolumeBindingMode", "string", 0),
            Col("AllowVolumeExpansion", "string", 0),
            Col("Age", "string", 0),
        ],
        ("networking.k8s.io", "networkpolicies") => vec![
            Col("Name", "string", 0),
            Col("Pod-Selector", "string", 0),
            Col("Age", "string", 0),
        ],
        ("networking.k8s.io", "ingressclasses") => vec![
            Col("Name", "string", 0),
            Col("Controller", "string", 0),
            Col("Parameters", "string", 0),
            Col("Age", "string", 0),
        ],
        ("networking.k8s.io", "servicecidrs") => vec![
            Col("Name", "string", 0),
            Col("CIDRs", "string", 0),
            Col("Age", "string", 0),
        ],
        ("apiregistration.k8s.io", "apiservices") => vec![
            Col("Name", "string", 0),
            Col("Service", "string", 0),
            Col("Available", "string", 0),
            Col("Age", "string", 0),
        ],
        ("node.k8s.io", "runtimeclasses") => vec![
            Col("Name", "string", 0),
            Col("Handler", "string", 0),
            Col("Age", "string", 0),
        ],
        (
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations" | "mutatingwebhookconfigurations",
        ) => {
            vec![
                Col("Name", "string", 0),
                Col("Webhooks", "integer", 0),
                Col("Age", "string", 0),
            ]
        }
        ("storage.k8s.io", "volumeattachments") => vec![
            Col("Name", "string", 0),
            Col("Attacher", "string", 0),
            Col("PV", "string", 0),
            Col("Node", "string", 0),
            Col("Attached", "boolean", 0),
            Col("Age", "string", 0),
        ],
        ("storage.k8s.io", "csinodes") => vec![
            Col("Name", "string", 0),
            Col("Drivers", "integer", 0),
            Col("Age", "string", 0),
        ],
        _ => vec![Col("Name", "string", 0), Col("Age", "string", 0)],
    }
}

/// A quota's REQUEST and LIMIT cells: `name: used/hard` for each hard resource, the
/// `limits.*` ones in the second (upstream's printResourceQuota).
fn quota_cells(o: &Value) -> (String, String) {
    use skiff_api::quota::parse_list;
    let hard = parse_list(o.pointer("/status/hard"));
    let used = parse_list(o.pointer("/status/used"));
    let (mut request, mut limit) = (Vec::new(), Vec::new());
    for (name, h) in &hard {
        let u = used.get(name).map_or("0".to_string(), ToString::to_string);
        let cell = format!("{name}: {u}/{h}");
        if name.split('.').next() == Some("limits") && name.contains('.') {
            limit.push(cell);
        } else {
            request.push(cell);
        }
    }
    (request.join(", "), limit.join(", "))
}

fn access_modes(o: &Value, p: &str) -> String {
    let modes = o
        .pointer(p)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let short: Vec<&str> = modes
        .iter()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect();
    short.join(",")
}

fn or_none(v: &str) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v.into()
    }
}

/// A quantity as upstream prints it (`String()` of the stored value).
fn quantity(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(q)) => q.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// The TARGETS cell of an HPA, upstream's `formatHPAMetrics`: `current/target` per metric,
/// the first two, then "+ N more...". An autoscaling/v1 object names one CPU target.
fn hpa_targets(o: &Value) -> String {
    let percent = |v: Option<&Value>| v.and_then(Value::as_i64).map(|p| format!("{p}%"));
    let specs = o
        .pointer("/spec/metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if specs.is_empty() {
        if let Some(target) = percent(o.pointer("/spec/targetCPUUtilizationPercentage")) {
            let current = percent(o.pointer("/status/currentCPUUtilizationPercentage"))
                .unwrap_or_else(|| "<unknown>".into());
            return format!("cpu: {current}/{target}");
        }
        return "<none>".into();
    }
    let statuses = o
        .pointer("/status/currentMetrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(n, spec)| {
            let status = statuses.get(n);
            let ty = spec.get("type").and_then(Value::as_str).unwrap_or("");
            let field = match ty {
                "Resource" => "resource",
                "ContainerResource" => "containerResource",
                "Pods" => "pods",
                "Object" => "object",
                "External" => "external",
                _ => return "<unknown type>".to_string(),
            };
            let target = spec.get(field).and_then(|m| m.get("target"));
            let current = status
                .and_then(|s| s.get(field))
                .and_then(|m| m.get("current"));
            let pick = |v: Option<&Value>, k: &str| v.and_then(|t| t.get(k)).cloned();
            let value_of = |k: &str| quantity(pick(current, k).as_ref());
            match ty {
                "Resource" | "ContainerResource" => {
                    let resource = spec
                        .pointer(&format!("/{field}/name"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    if let Some(avg) = pick(target, "averageValue") {
                        format!(
                            "{resource}: {}/{}",
                            value_of("averageValue"),
                            quantity(Some(&avg))
                        )
                    } else {
                        let cur = percent(pick(current, "averageUtilization").as_ref())
                            .unwrap_or_else(|| "<unknown>".into());
                        let tgt = percent(pick(target, "averageUtilization").as_ref())
                            .unwrap_or_else(|| "<auto>".into());
                        format!("{resource}: {cur}/{tgt}")
                    }
                }
                "Pods" => format!(
                    "{}/{}",
                    value_of("averageValue"),
                    quantity(pick(target, "averageValue").as_ref())
                ),
                _ => match pick(target, "averageValue") {
                    Some(avg) => format!(
                        "{}/{} (avg)",
                        value_of("averageValue"),
                        quantity(Some(&avg))
                    ),
                    None => format!(
                        "{}/{}",
                        value_of("value"),
                        quantity(pick(target, "value").as_ref())
                    ),
                },
            }
        })
        .collect();
    let shown = list.iter().take(2).cloned().collect::<Vec<_>>().join(", ");
    if list.len() > 2 {
        format!("{shown} + {} more...", list.len() - 2)
    } else {
        shown
    }
}

/// events.k8s.io Events: printed with the core Event's columns, as upstream prints both
/// from one internal type.
fn is_events_api(info: &ResourceInfo) -> bool {
    info.group == "events.k8s.io" && info.plural == "events"
}

fn cells(info: &ResourceInfo, o: &Value) -> Vec<Value> {
    if is_events_api(info) {
        let core = skiff_api::convert::event_events_to_core(o);
        return cells(registry::storage_of(info), &core);
    }
    let name = json!(s(o, "/metadata/name"));
    if !info.printer_columns.is_empty() {
        let mut row = vec![name];
        row.extend(info.printer_columns.iter().map(|c| custom_cell(c, o)));
        return row;
    }
    match (info.group, info.plural) {
        ("", "pods") => {
            let total = o
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let statuses = o
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let ready = statuses
                .iter()
                .filter(|c| c.get("ready") == Some(&json!(true)))
                .count();
            let restarts: i64 = statuses.iter().map(|c| i(c, "/restartCount")).sum();
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(pod_status(o)),
                json!(restarts.to_string()),
                age(o),
                json!(or_none(s(o, "/status/podIP"))),
                json!(or_none(s(o, "/spec/nodeName"))),
                json!(or_none(s(o, "/status/nominatedNodeName"))),
                json!("<none>"),
            ]
        }
        ("apps", "deployments") => {
            let (c, im) = containers_images(o, "/spec/template/spec");
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    i(o, "/status/readyReplicas"),
                    i(o, "/spec/replicas")
                )),
                json!(i(o, "/status/updatedReplicas")),
                json!(i(o, "/status/availableReplicas")),
                age(o),
                json!(c),
                json!(im),
                json!(selector_string(o.pointer("/spec/selector"))),
            ]
        }
        ("apps", "replicasets") => {
            let (c, im) = containers_images(o, "/spec/template/spec");
            vec![
                name,
                json!(i(o, "/spec/replicas")),
                json!(i(o, "/status/replicas")),
                json!(i(o, "/status/readyReplicas")),
                age(o),
                json!(c),
                json!(im),
                json!(selector_string(o.pointer("/spec/selector"))),
            ]
        }
        ("", "replicationcontrollers") => {
            let (c, im) = containers_images(o, "/spec/template/spec");
            vec![
                name,
                json!(i(o, "/spec/replicas")),
                json!(i(o, "/status/replicas")),
                json!(i(o, "/status/readyReplicas")),
                age(o),
                json!(c),
                json!(im),
                json!(map_selector(o.pointer("/spec/selector"))),
            ]
        }
        ("", "services") => {
            let ty = s(o, "/spec/type");
            let ext: Vec<String> = o
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|x| s(x, "/ip").to_string()).collect())
                .unwrap_or_default();
            let external = match ty {
                "ExternalName" => s(o, "/spec/externalName").to_string(),
                "LoadBalancer" if ext.is_empty() => "<pending>".into(),
                _ if !ext.is_empty() => ext.join(","),
                _ => o
                    .pointer("/spec/externalIPs")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .filter(|x| !x.is_empty())
                    .unwrap_or_else(|| "<none>".into()),
            };
            vec![
                name,
                json!(ty),
                json!(or_none(s(o, "/spec/clusterIP"))),
                json!(external),
                json!(service_ports(o)),
                age(o),
                json!(map_selector(o.pointer("/spec/selector"))),
            ]
        }
        ("", "endpoints") => vec![name, json!(endpoints_string(o)), age(o)],
        ("", "nodes") => {
            let mut status = if condition_true(o, "Ready") {
                "Ready".to_string()
            } else {
                "NotReady".to_string()
            };
            if o.pointer("/spec/unschedulable") == Some(&json!(true)) {
                status.push_str(",SchedulingDisabled");
            }
            let roles: Vec<String> = o
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.keys()
                        .filter_map(|k| {
                            k.strip_prefix("node-role.kubernetes.io/").map(String::from)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let addr = |t: &str| {
                o.pointer("/status/addresses")
                    .and_then(Value::as_array)
                    .and_then(|a| {
                        a.iter()
                            .find(|x| s(x, "/type") == t)
                            .map(|x| s(x, "/address").to_string())
                    })
                    .unwrap_or_else(|| "<none>".into())
            };
            vec![
                name,
                json!(status),
                json!(none_if_empty(roles.join(","))),
                age(o),
                json!(s(o, "/status/nodeInfo/kubeletVersion")),
                json!(addr("InternalIP")),
                json!(addr("ExternalIP")),
                json!(or_none(s(o, "/status/nodeInfo/osImage"))),
                json!(or_none(s(o, "/status/nodeInfo/kernelVersion"))),
                json!(or_none(s(o, "/status/nodeInfo/containerRuntimeVersion"))),
            ]
        }
        ("", "namespaces") => vec![name, json!(s(o, "/status/phase")), age(o)],
        ("", "configmaps") => vec![name, json!(data_count(o)), age(o)],
        ("certificates.k8s.io", "certificatesigningrequests") => vec![
            name,
            age(o),
            json!(s(o, "/spec/signerName")),
            json!(s(o, "/spec/username")),
            json!(
                o.pointer("/spec/expirationSeconds")
                    .and_then(Value::as_i64)
                    .map_or_else(|| "<none>".to_string(), human_duration)
            ),
            json!(crate::csr::condition_column(o)),
        ],
        ("", "secrets") => vec![name, json!(s(o, "/type")), json!(data_count(o)), age(o)],
        ("", "serviceaccounts") => vec![
            name,
            json!(
                o.get("secrets")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            ),
            age(o),
        ],
        ("autoscaling", "horizontalpodautoscalers") => vec![
            name,
            json!(format!(
                "{}/{}",
                s(o, "/spec/scaleTargetRef/kind"),
                s(o, "/spec/scaleTargetRef/name")
            )),
            json!(hpa_targets(o)),
            json!(
                match o.pointer("/spec/minReplicas").and_then(Value::as_i64) {
                    Some(n) => n.to_string(),
                    None => "<unset>".to_string(),
                }
            ),
            json!(i(o, "/spec/maxReplicas")),
            json!(i(o, "/status/currentReplicas")),
            age(o),
        ],
        ("batch", "jobs") => {
            let (c, im) = containers_images(o, "/spec/template/spec");
            let completions = o.pointer("/spec/completions").and_then(Value::as_i64);
            let succeeded = i(o, "/status/succeeded");
            let comp = match completions {
                Some(n) => format!("{succeeded}/{n}"),
                None => format!("{succeeded}/1 of {}", i(o, "/spec/parallelism").max(1)),
            };
            let status = if condition_true(o, "Complete") {
                "Complete"
            } else if condition_true(o, "Failed") {
                "Failed"
            } else if condition_true(o, "Suspended") {
                "Suspended"
            } else {
                "Running"
            };
            let duration = match (
                o.pointer("/status/startTime").and_then(Value::as_str),
                o.pointer("/status/completionTime").and_then(Value::as_str),
            ) {
                (Some(st), end) => {
                    let st = chrono::DateTime::parse_from_rfc3339(st).ok();
                    let end = end
                        .and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok())
                        .map(|e| e.with_timezone(&chrono::Utc))
                        .unwrap_or_else(chrono::Utc::now);
                    st.map(|st| {
                        human_duration((end - st.with_timezone(&chrono::Utc)).num_seconds())
                    })
                    .unwrap_or_default()
                }
                _ => String::new(),
            };
            vec![
                name,
                json!(status),
                json!(comp),
                json!(duration),
                age(o),
                json!(c),
                json!(im),
                json!(selector_string(o.pointer("/spec/selector"))),
            ]
        }
        ("batch", "cronjobs") => {
            let (c, im) = containers_images(o, "/spec/jobTemplate/spec/template/spec");
            let last = o
                .pointer("/status/lastScheduleTime")
                .and_then(Value::as_str)
                .map(|t| age_of(Some(t)))
                .unwrap_or_else(|| "<none>".into());
            vec![
                name,
                json!(s(o, "/spec/schedule")),
                json!(or_none(s(o, "/spec/timeZone"))),
                // Upstream's printBoolPtr: a string cell, though the column says boolean.
                json!(match o.pointer("/spec/suspend").and_then(Value::as_bool) {
                    Some(true) => "True",
                    Some(false) => "False",
                    None => "<unset>",
                }),
                json!(
                    o.pointer("/status/active")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len)
                ),
                json!(last),
                age(o),
                json!(c),
                json!(im),
                json!(selector_string(
                    o.pointer("/spec/jobTemplate/spec/selector")
                )),
            ]
        }
        ("apps", "daemonsets") => {
            let (c, im) = containers_images(o, "/spec/template/spec");
            vec![
                name,
                json!(i(o, "/status/desiredNumberScheduled")),
                json!(i(o, "/status/currentNumberScheduled")),
                json!(i(o, "/status/numberReady")),
                json!(i(o, "/status/updatedNumberScheduled")),
                json!(i(o, "/status/numberAvailable")),
                json!(map_selector(o.pointer("/spec/template/spec/nodeSelector"))),
                age(o),
                json!(c),
                json!(im),
                json!(selector_string(o.pointer("/spec/selector"))),
            ]
        }
        ("apps", "statefulsets") => {
            let (c, im) = containers_images(o, "/spec/template/spec");
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    i(o, "/status/readyReplicas"),
                    i(o, "/spec/replicas")
                )),
                age(o),
                json!(c),
                json!(im),
            ]
        }
        ("networking.k8s.io", "ingresses") => {
            let rules = o
                .pointer("/spec/rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let hosts: Vec<&str> = rules
                .iter()
                .map(|r| r.get("host").and_then(Value::as_str).unwrap_or("*"))
                .collect();
            let addrs: Vec<String> = o
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|x| {
                            let ip = s(x, "/ip");
                            if ip.is_empty() {
                                s(x, "/hostname").to_string()
                            } else {
                                ip.to_string()
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let ports = if o
                .pointer("/spec/tls")
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty())
            {
                "80, 443"
            } else {
                "80"
            };
            vec![
                name,
                json!(or_none(s(o, "/spec/ingressClassName"))),
                json!(if hosts.is_empty() {
                    "*".to_string()
                } else {
                    hosts.join(",")
                }),
                json!(addrs.join(",")),
                json!(ports),
                age(o),
            ]
        }
        ("", "events") => {
            let last = o
                .get("lastTimestamp")
                .and_then(Value::as_str)
                .or_else(|| o.get("eventTime").and_then(Value::as_str))
                .or_else(|| {
                    o.pointer("/metadata/creationTimestamp")
                        .and_then(Value::as_str)
                });
            let first = o.get("firstTimestamp").and_then(Value::as_str).or(last);
            let obj = format!(
                "{}/{}",
                s(o, "/involvedObject/kind").to_lowercase(),
                s(o, "/involvedObject/name")
            );
            let source = {
                let c = s(o, "/source/component");
                let h = s(o, "/source/host");
                if h.is_empty() {
                    c.to_string()
                } else {
                    format!("{c}, {h}")
                }
            };
            vec![
                json!(age_of(last)),
                json!(s(o, "/type")),
                json!(s(o, "/reason")),
                json!(obj),
                json!(s(o, "/involvedObject/fieldPath")),
                json!(source),
                json!(s(o, "/message").trim()),
                json!(age_of(first)),
                json!(
                    o.get("count")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                        .to_string()
                ),
                name,
            ]
        }
        ("", "persistentvolumes") => {
            let claim = {
                let ns = s(o, "/spec/claimRef/namespace");
                let n = s(o, "/spec/claimRef/name");
                if n.is_empty() {
                    String::new()
                } else {
                    format!("{ns}/{n}")
                }
            };
            vec![
                name,
                json!(s(o, "/spec/capacity/storage")),
                json!(access_modes(o, "/spec/accessModes")),
                json!(s(o, "/spec/persistentVolumeReclaimPolicy")),
                json!(s(o, "/status/phase")),
                json!(claim),
                json!(s(o, "/spec/storageClassName")),
                json!(or_none(s(o, "/spec/volumeAttributesClassName"))),
                json!(s(o, "/status/reason")),
                age(o),
                json!(s(o, "/spec/volumeMode")),
            ]
        }
        ("policy", "poddisruptionbudgets") => {
            let int_or_na = |p: &str| match o.pointer(p) {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(v)) => v.clone(),
                _ => "N/A".into(),
            };
            vec![
                name,
                json!(int_or_na("/spec/minAvailable")),
                json!(int_or_na("/spec/maxUnavailable")),
                json!(i(o, "/status/disruptionsAllowed")),
                age(o),
            ]
        }
        ("scheduling.k8s.io", "priorityclasses") => vec![
            name,
            json!(i(o, "/value")),
            json!(
                o.get("globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            age(o),
            json!(s(o, "/preemptionPolicy")),
        ],
        ("coordination.k8s.io", "leases") => {
            vec![name, json!(s(o, "/spec/holderIdentity")), age(o)]
        }
        ("discovery.k8s.io", "endpointslices") => {
            let ports: Vec<String> = o
                .get("ports")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|p| i(p, "/port").to_string()).collect())
                .unwrap_or_default();
            let ports = if ports.is_empty() {
                "<unset>".to_string()
            } else {
                ports.join(",")
            };
            let addrs: Vec<String> = o
                .get("endpoints")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .flat_map(|e| {
                            e.get("addresses")
                                .and_then(Value::as_array)
                                .cloned()
                                .unwrap_or_default()
                        })
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let eps = match addrs.len() {
                0 => "<unset>".to_string(),
                n if n > 3 => format!("{} + {} more...", addrs[..3].join(","), n - 3),
                _ => addrs.join(","),
            };
            vec![
                name,
                json!(s(o, "/addressType")),
                json!(ports),
                json!(eps),
                age(o),
            ]
        }
        ("apps", "controllerrevisions") => {
            let controller = o
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().find(|r| r.get("controller") == Some(&json!(true))))
                .map(|r| {
                    let group = s(r, "/apiVersion")
                        .split('/')
                        .next()
                        .unwrap_or("")
                        .to_string();
                    let kind = s(r, "/kind").to_lowercase();
                    let qualified = if s(r, "/apiVersion").contains('/') {
                        format!("{kind}.{group}")
                    } else {
                        kind
                    };
                    format!("{qualified}/{}", s(r, "/name"))
                })
                .unwrap_or_else(|| "<none>".into());
            vec![name, json!(controller), json!(i(o, "/revision")), age(o)]
        }
        ("", "persistentvolumeclaims") => vec![
            name,
            json!(s(o, "/status/phase")),
            json!(s(o, "/spec/volumeName")),
            json!(s(o, "/status/capacity/storage")),
            json!(access_modes(o, "/status/accessModes")),
            json!(s(o, "/spec/storageClassName")),
            json!(or_none(s(o, "/spec/volumeAttributesClassName"))),
            age(o),
            json!(s(o, "/spec/volumeMode")),
        ],
        ("", "componentstatuses") => {
            let healthy = o
                .get("conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c.get("type") == Some(&json!("Healthy"))));
            let state = match healthy.map(|c| s(c, "/status")) {
                Some("True") => "Healthy",
                Some(_) => "Unhealthy",
                None => "Unknown",
            };
            let field = |f: &str| json!(healthy.map_or("", |c| s(c, f)));
            vec![name, json!(state), field("/message"), field("/error")]
        }
        ("", "resourcequotas") => {
            let (request, limit) = quota_cells(o);
            vec![name, age(o), json!(request), json!(limit)]
        }
        ("", "limitranges")
        | ("rbac.authorization.k8s.io", "roles" | "clusterroles")
        | ("apiextensions.k8s.io", "customresourcedefinitions") => {
            vec![name, json!(s(o, "/metadata/creationTimestamp"))]
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            let subjects = o
                .get("subjects")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let of_kind = |kind: &str| {
                subjects
                    .iter()
                    .filter(|x| s(x, "/kind") == kind)
                    .map(|x| {
                        if kind == "ServiceAccount" {
                            format!("{}/{}", s(x, "/namespace"), s(x, "/name"))
                        } else {
                            s(x, "/name").to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    s(o, "/roleRef/kind"),
                    s(o, "/roleRef/name")
                )),
                age(o),
                json!(of_kind("User")),
                json!(of_kind("Group")),
                json!(of_kind("ServiceAccount")),
            ]
        }
        ("storage.k8s.io", "storageclasses") => {
            let annotated = |k: &str| {
                o.pointer(&format!("/metadata/annotations/{}", k.replace('/', "~1")))
                    .and_then(Value::as_str)
                    == Some("true")
            };
            let shown = if annotated("storageclass.kubernetes.io/is-default-class")
                || annotated("storageclass.beta.kubernetes.io/is-default-class")
            {
                json!(format!("{} (default)", s(o, "/metadata/name")))
            } else {
                name
            };
            let or = |p: &str, d: &str| none_if_empty(s(o, p).to_string()).replace("<none>", d);
            vec![
                shown,
                json!(s(o, "/provisioner")),
                json!(or("/reclaimPolicy", "Delete")),
                json!(or("/volumeBindingMode", "Immediate")),
                json!(
                    o.get("allowVolumeExpansion")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                        .to_string()
                ),
                age(o),
            ]
        }
        ("networking.k8s.io", "networkpolicies") => vec![
            name,
            json!(none_if_empty(selector_string(
                o.pointer("/spec/podSelector")
            ))),
            age(o),
        ],
        ("networking.k8s.io", "ingressclasses") => {
            let params = match o.pointer("/spec/parameters").filter(|p| !p.is_null()) {
                Some(p) if !s(p, "/apiGroup").is_empty() => {
                    format!("{}.{}/{}", s(p, "/kind"), s(p, "/apiGroup"), s(p, "/name"))
                }
                Some(p) => format!("{}/{}", s(p, "/kind"), s(p, "/name")),
                None => "<none>".to_string(),
            };
            vec![name, json!(s(o, "/spec/controller")), json!(params), age(o)]
        }
        ("networking.k8s.io", "servicecidrs") => {
            let cidrs: Vec<&str> = o
                .pointer("/spec/cidrs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            vec![name, json!(cidrs.join(",")), age(o)]
        }
        ("apiregistration.k8s.io", "apiservices") => {
            let service = match o.pointer("/spec/service").filter(|v| !v.is_null()) {
                Some(svc) => format!("{}/{}", s(svc, "/namespace"), s(svc, "/name")),
                None => "Local".to_string(),
            };
            let available = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| s(c, "/type") == "Available"))
                .map_or_else(
                    || "Unknown".to_string(),
                    |c| match (s(c, "/status"), s(c, "/reason")) {
                        ("True", _) => "True".to_string(),
                        (status, "") => status.to_string(),
                        (status, reason) => format!("{status} ({reason})"),
                    },
                );
            vec![name, json!(service), json!(available), age(o)]
        }
        ("node.k8s.io", "runtimeclasses") => vec![name, json!(s(o, "/handler")), age(o)],
        (
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations" | "mutatingwebhookconfigurations",
        ) => {
            let n = o
                .get("webhooks")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            vec![name, json!(n), age(o)]
        }
        ("storage.k8s.io", "volumeattachments") => vec![
            name,
            json!(s(o, "/spec/attacher")),
            json!(s(o, "/spec/source/persistentVolumeName")),
            json!(s(o, "/spec/nodeName")),
            json!(
                o.pointer("/status/attached")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            age(o),
        ],
        ("storage.k8s.io", "csinodes") => {
            let n = o
                .pointer("/spec/drivers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            vec![name, json!(n), age(o)]
        }
        _ => vec![name, age(o)],
    }
}

/// Evaluates a simple JSONPath (`.a.b`, `.a[0].b`, `.metadata.labels.app`) on `o`.
fn simple_jsonpath<'a>(o: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = o;
    let path = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('$');
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (field, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !field.is_empty() {
            cur = cur.get(field)?;
        }
        for idx in indexes.split('[').filter(|s| !s.is_empty()) {
            let n: usize = idx.trim_end_matches(']').parse().ok()?;
            cur = cur.get(n)?;
        }
    }
    Some(cur)
}

fn custom_cell(col: &skiff_api::registry::PrinterColumn, o: &Value) -> Value {
    let Some(v) = simple_jsonpath(o, col.json_path) else {
        return Value::Null;
    };
    match (col.type_, v) {
        ("date", Value::String(ts)) => json!(age_of(Some(ts))),
        ("integer" | "number" | "boolean", v) if !v.is_string() => v.clone(),
        (_, Value::String(s)) => json!(s),
        (_, v) => json!(v.to_string()),
    }
}

fn column_definitions(info: &ResourceInfo) -> Vec<Value> {
    if !info.printer_columns.is_empty() {
        let mut defs = vec![
            json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
        ];
        defs.extend(info.printer_columns.iter().map(|c| {
            json!({"name": c.name, "type": if c.type_ == "date" { "string" } else { c.type_ }, "format": c.format, "description": c.description, "priority": c.priority})
        }));
        return defs;
    }
    layout(info)
        .into_iter()
        .map(|Col(name, ty, priority)| {
            let format = if name == "Name" { "name" } else { "" };
            json!({"name": name, "type": ty, "format": format, "description": "", "priority": priority})
        })
        .collect()
}

/// What each row carries as `object`: upstream's `includeObject` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(v: Option<&str>) -> IncludeObject {
        match v {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// What a row carries of `o`.
fn row_object(o: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => o.clone(),
        IncludeObject::Metadata => {
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(json!({}))})
        }
    }
}

pub fn row(info: &ResourceInfo, o: &Value, include: IncludeObject) -> Value {
    json!({"cells": cells(info, o), "object": row_object(o, include)})
}

/// A Table of `objects`; `list_meta` is the list's metadata (resourceVersion, continue).
pub fn table(
    info: &ResourceInfo,
    objects: &[Value],
    list_meta: Value,
    include: IncludeObject,
    no_headers: bool,
) -> Value {
    let rows = objects.iter().map(|o| row(info, o, include)).collect();
    table_from_rows(info, rows, list_meta, no_headers)
}

/// The Table of a `/scale` subresource (autoscaling/v1 Scale), as upstream prints it.
pub fn scale_table(scale: &Value, include: IncludeObject) -> Value {
    let col = |name: &str, ty: &str| {
        let format = if name == "Name" { "name" } else { "" };
        json!({"name": name, "type": ty, "format": format, "description": "", "priority": 0})
    };
    let object = row_object(scale, include);
    let cells = json!([
        s(scale, "/metadata/name"),
        i(scale, "/spec/replicas"),
        i(scale, "/status/replicas"),
        age(scale),
    ]);
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": scale.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))},
        "columnDefinitions": [col("Name", "string"), col("Desired", "integer"), col("Available", "integer"), col("Age", "string")],
        "rows": [{"cells": cells, "object": object}],
    })
}

/// A Table of rows already rendered with [`row`].
pub fn table_from_rows(
    info: &ResourceInfo,
    rows: Vec<Value>,
    list_meta: Value,
    no_headers: bool,
) -> Value {
    let defs = if no_headers {
        json!([])
    } else {
        json!(column_definitions(info))
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_jsonpath_reads_fields_and_indexes() {
        let o = json!({"spec": {"a": [{"b": 1}]}, "metadata": {"labels": {"app": "x"}}});
        assert_eq!(simple_jsonpath(&o, ".spec.a[0].b"), Some(&json!(1)));
        assert_eq!(
            simple_jsonpath(&o, "{.metadata.labels.app}"),
            Some(&json!("x"))
        );
        assert_eq!(simple_jsonpath(&o, ".spec.missing"), None);
    }

    #[test]
    fn hpa_targets_as_upstream() {
        let cpu = json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}});
        let mem = json!({"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}});
        let pods = json!({"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}});
        let v2 = json!({"spec": {"metrics": [cpu, mem]},
            "status": {"currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 12, "averageValue": "120m"}}}]}});
        assert_eq!(hpa_targets(&v2), "cpu: 12%/50%, memory: <unknown>/500Mi");
        let three = json!({"spec": {"metrics": [cpu, mem, pods]}});
        assert_eq!(
            hpa_targets(&three),
            "cpu: <unknown>/50%, memory: <unknown>/500Mi + 1 more..."
        );
        let v1 = json!({"spec": {"targetCPUUtilizationPercentage": 80}});
        assert_eq!(hpa_targets(&v1), "cpu: <unknown>/80%");
        assert_eq!(hpa_targets(&json!({"spec": {}})), "<none>");
    }
}
