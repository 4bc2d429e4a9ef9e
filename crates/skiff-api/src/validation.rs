//! Validation as upstream does it for the kinds in the seeds: names, metadata, pods and templates,
//! workloads, services, and the fields that may not change on update.

use crate::selector::LabelSelector;
use crate::status::Cause;
use serde_json::{Value, json};

pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// The name part of a label key, or a label value: `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63.
pub fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

pub fn is_qualified_name(s: &str) -> bool {
    match s.rsplit_once('/') {
        Some((p, n)) => is_dns1123_subdomain(p) && is_qualified_name_part(n),
        None => is_qualified_name_part(s),
    }
}

/// Names any object may have: usable as one path segment.
pub fn is_path_segment_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('%')
}

/// Which rule the `metadata.name` of a kind follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    Dns1123Label,
    Dns1035Label,
    Dns1123Subdomain,
    PathSegment,
}

pub fn name_rule(group: &str, kind: &str) -> NameRule {
    match (group, kind) {
        ("", "Namespace") => NameRule::Dns1123Label,
        ("", "Service") => NameRule::Dns1035Label,
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        ("", "Event") | ("events.k8s.io", "Event") => NameRule::PathSegment,
        ("", "Node") => NameRule::Dns1123Subdomain,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => NameRule::Dns1123Subdomain,
        ("", _)
        | ("apps", _)
        | ("batch", _)
        | ("networking.k8s.io", _)
        | ("policy", _)
        | ("storage.k8s.io", _)
        | ("scheduling.k8s.io", _)
        | ("coordination.k8s.io", _)
        | ("discovery.k8s.io", _)
        | ("autoscaling", _)
        | ("node.k8s.io", _) => NameRule::Dns1123Subdomain,
        _ => NameRule::PathSegment,
    }
}

fn name_message(rule: NameRule) -> &'static str {
    match rule {
        NameRule::Dns1123Label => {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        }
        NameRule::Dns1035Label => {
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
        }
        NameRule::Dns1123Subdomain => {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        }
        NameRule::PathSegment => "may not be '.' or '..' and may not contain '/' or '%'",
    }
}

pub fn name_ok(rule: NameRule, name: &str) -> bool {
    match rule {
        NameRule::Dns1123Label => is_dns1123_label(name),
        NameRule::Dns1035Label => is_dns1035_label(name),
        NameRule::Dns1123Subdomain => is_dns1123_subdomain(name),
        NameRule::PathSegment => is_path_segment_name(name),
    }
}

/// Checks `metadata` (name, labels, annotations).
pub fn validate_meta(group: &str, kind: &str, obj: &Value, causes: &mut Vec<Cause>) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let rule = name_rule(group, kind);
    if name.is_empty() {
        causes.push(Cause {
            reason: "FieldValueRequired",
            message: "Required value: name or generateName is required".into(),
            field: "metadata.name".into(),
        });
    } else if !name_ok(rule, name) {
        causes.push(Cause::invalid(
            "metadata.name",
            &json!(name),
            name_message(rule),
        ));
    }
    if let Some(labels) = obj.pointer("/metadata/labels") {
        validate_labels(labels, "metadata.labels", causes);
    }
    if let Some(ann) = obj.pointer("/metadata/annotations") {
        match ann.as_object() {
            Some(m) => {
                let mut total = 0usize;
                for (k, v) in m {
                    if !is_qualified_name(k) {
                        causes.push(Cause::invalid("metadata.annotations", &json!(k), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
                    }
                    total += k.len() + v.as_str().map_or(0, str::len);
                    if !v.is_string() {
                        causes.push(Cause::invalid(
                            format!("metadata.annotations.{k}"),
                            v,
                            "must be a string",
                        ));
                    }
                }
                if total > 256 * 1024 {
                    causes.push(Cause {
                        reason: "FieldValueTooLong",
                        message: "Too long: must have at most 262144 bytes".into(),
                        field: "metadata.annotations".into(),
                    });
                }
            }
            None if !ann.is_null() => causes.push(Cause::invalid(
                "metadata.annotations",
                ann,
                "must be an object",
            )),
            None => {}
        }
    }
}

pub fn validate_labels(labels: &Value, field: &str, causes: &mut Vec<Cause>) {
    let Some(m) = labels.as_object() else {
        if !labels.is_null() {
            causes.push(Cause::invalid(field, labels, "must be an object"));
        }
        return;
    };
    for (k, v) in m {
        if !is_qualified_name(k) {
            causes.push(Cause::invalid(field, &json!(k), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"));
        }
        match v.as_str() {
            Some(s) if s.is_empty() || is_qualified_name_part(s) => {}
            _ => causes.push(Cause::invalid(field, v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")),
        }
    }
}

/// A resource quantity such as `100m`, `1Gi`, `2.5`, `1e3`.
pub fn is_quantity(v: &Value) -> bool {
    match v {
        Value::Number(_) => true,
        Value::String(s) => {
            let s = s.trim();
            let num_end = s
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
                .unwrap_or(s.len());
            let (num, suffix) = s.split_at(num_end);
            if num.is_empty() || num.parse::<f64>().is_err() {
                return false;
            }
            matches!(
                suffix,
                "" | "n"
                    | "u"
                    | "m"
                    | "k"
                    | "M"
                    | "G"
                    | "T"
                    | "P"
                    | "E"
                    | "Ki"
                    | "Mi"
                    | "Gi"
                    | "Ti"
                    | "Pi"
                    | "Ei"
            ) || (suffix.starts_with(['e', 'E']) && suffix[1..].parse::<i32>().is_ok())
        }
        _ => false,
    }
}

fn port_ok(v: &Value) -> bool {
    v.as_i64().is_some_and(|p| (1..=65535).contains(&p))
}

fn validate_container(c: &Value, field: &str, names: &mut Vec<String>, causes: &mut Vec<Cause>) {
    let name = c.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        causes.push(Cause::required(format!("{field}.name")));
    } else if !is_dns1123_label(name) {
        causes.push(Cause::invalid(
            format!("{field}.name"),
            &json!(name),
            name_message(NameRule::Dns1123Label),
        ));
    } else if names.iter().any(|n| n == name) {
        causes.push(Cause::duplicate(format!("{field}.name"), &json!(name)));
    } else {
        names.push(name.to_string());
    }
    if c.get("image")
        .and_then(Value::as_str)
        .is_none_or(|s| s.trim().is_empty())
    {
        causes.push(Cause::required(format!("{field}.image")));
    }
    if let Some(ports) = c.get("ports").and_then(Value::as_array) {
        for (i, p) in ports.iter().enumerate() {
            let pf = format!("{field}.ports[{i}]");
            match p.get("containerPort") {
                Some(v) if port_ok(v) => {}
                Some(v) => causes.push(Cause::invalid(
                    format!("{pf}.containerPort"),
                    v,
                    "must be between 1 and 65535, inclusive",
                )),
                None => causes.push(Cause::required(format!("{pf}.containerPort"))),
            }
            if let Some(proto) = p.get("protocol")
                && !matches!(proto.as_str(), Some("TCP" | "UDP" | "SCTP"))
            {
                causes.push(Cause::not_supported(
                    format!("{pf}.protocol"),
                    proto,
                    &["SCTP", "TCP", "UDP"],
                ));
            }
        }
    }
    if let Some(res) = c.get("resources") {
        for part in ["limits", "requests"] {
            if let Some(m) = res.get(part).and_then(Value::as_object) {
                for (k, v) in m {
                    if !is_quantity(v) {
                        causes.push(Cause::invalid(
                            format!("{field}.resources.{part}[{k}]"),
                            v,
                            "must match the regex ^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$",
                        ));
                    }
                }
            }
        }
    }
    if let Some(env) = c.get("env").and_then(Value::as_array) {
        for (i, e) in env.iter().enumerate() {
            if e.get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                causes.push(Cause::required(format!("{field}.env[{i}].name")));
            }
        }
    }
}

/// Validates a `PodSpec` at `field` (e.g. `spec` or `spec.template.spec`).
pub fn validate_pod_spec(spec: &Value, field: &str, causes: &mut Vec<Cause>) {
    let Some(_) = spec.as_object() else {
        causes.push(Cause::required(field));
        return;
    };
    let mut names = Vec::new();
    match spec.get("containers").and_then(Value::as_array) {
        Some(cs) if !cs.is_empty() => {
            for (i, c) in cs.iter().enumerate() {
                validate_container(c, &format!("{field}.containers[{i}]"), &mut names, causes);
            }
        }
        _ => causes.push(Cause::required(format!("{field}.containers"))),
    }
    if let Some(cs) = spec.get("initContainers").and_then(Value::as_array) {
        for (i, c) in cs.iter().enumerate() {
            validate_container(
                c,
                &format!("{field}.initContainers[{i}]"),
                &mut names,
                causes,
            );
        }
    }
    if let Some(rp) = spec.get("restartPolicy")
        && !matches!(rp.as_str(), Some("Always" | "OnFailure" | "Never"))
    {
        causes.push(Cause::not_supported(
            format!("{field}.restartPolicy"),
            rp,
            &["Always", "OnFailure", "Never"],
        ));
    }
    if let Some(dp) = spec.get("dnsPolicy")
        && !matches!(
            dp.as_str(),
            Some("ClusterFirst" | "ClusterFirstWithHostNet" | "Default" | "None")
        )
    {
        causes.push(Cause::not_supported(
            format!("{field}.dnsPolicy"),
            dp,
            &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
        ));
    }
    if let Some(vols) = spec.get("volumes").and_then(Value::as_array) {
        let mut seen: Vec<&str> = Vec::new();
        for (i, v) in vols.iter().enumerate() {
            let n = v.get("name").and_then(Value::as_str).unwrap_or("");
            if n.is_empty() {
                causes.push(Cause::required(format!("{field}.volumes[{i}].name")));
            } else if seen.contains(&n) {
                causes.push(Cause::duplicate(
                    format!("{field}.volumes[{i}].name"),
                    &json!(n),
                ));
            } else {
                seen.push(n);
            }
        }
    }
}

fn validate_template_and_selector(spec: &Value, causes: &mut Vec<Cause>, selector_required: bool) {
    let tmpl_labels = spec
        .pointer("/template/metadata/labels")
        .cloned()
        .unwrap_or(json!({}));
    match spec.get("selector") {
        None | Some(Value::Null) if selector_required => {
            causes.push(Cause::required("spec.selector"))
        }
        None | Some(Value::Null) => {}
        Some(sel) => match LabelSelector::from_object(sel) {
            Ok(Some(s)) if s.is_empty() => causes.push(Cause::invalid(
                "spec.selector",
                sel,
                "empty selector is invalid for deployment",
            )),
            Ok(Some(s)) => {
                if !s.matches_object(&json!({"metadata": {"labels": tmpl_labels}})) {
                    causes.push(Cause::invalid(
                        "spec.template.metadata.labels",
                        &tmpl_labels,
                        "`selector` does not match template `labels`",
                    ));
                }
            }
            Ok(None) => {}
            Err(e) => causes.push(Cause::invalid("spec.selector", sel, e.to_string())),
        },
    }
    validate_labels(&tmpl_labels, "spec.template.metadata.labels", causes);
    match spec.pointer("/template/spec") {
        Some(ps) => validate_pod_spec(ps, "spec.template.spec", causes),
        None => causes.push(Cause::required("spec.template.spec.containers")),
    }
}

fn non_negative(spec: &Value, key: &str, causes: &mut Vec<Cause>) {
    if let Some(v) = spec.get(key)
        && v.as_i64().is_none_or(|n| n < 0)
    {
        causes.push(Cause::invalid(
            format!("spec.{key}"),
            v,
            "must be greater than or equal to 0",
        ));
    }
}

/// Validates a created or updated object of a built-in kind (after defaulting). Returns field causes.
pub fn validate(group: &str, kind: &str, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    validate_meta(group, kind, obj, &mut causes);
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    match (group, kind) {
        ("", "Pod") => validate_pod_spec(&spec, "spec", &mut causes),
        ("apps", "Deployment") | ("apps", "ReplicaSet") | ("apps", "DaemonSet") => {
            validate_template_and_selector(&spec, &mut causes, true);
            non_negative(&spec, "replicas", &mut causes);
            if kind == "Deployment"
                && let Some(t) = spec.pointer("/strategy/type")
                && !matches!(t.as_str(), Some("RollingUpdate" | "Recreate"))
            {
                causes.push(Cause::not_supported(
                    "spec.strategy.type",
                    t,
                    &["Recreate", "RollingUpdate"],
                ));
            }
            if spec
                .pointer("/template/spec/restartPolicy")
                .is_some_and(|r| r != "Always")
            {
                causes.push(Cause::not_supported(
                    "spec.template.spec.restartPolicy",
                    &spec["template"]["spec"]["restartPolicy"],
                    &["Always"],
                ));
            }
        }
        ("apps", "StatefulSet") => {
            validate_template_and_selector(&spec, &mut causes, true);
            non_negative(&spec, "replicas", &mut causes);
            if let Some(p) = spec.get("podManagementPolicy")
                && !matches!(p.as_str(), Some("OrderedReady" | "Parallel"))
            {
                causes.push(Cause::not_supported(
                    "spec.podManagementPolicy",
                    p,
                    &["OrderedReady", "Parallel"],
                ));
            }
        }
        ("", "ReplicationController") => {
            validate_template_and_selector(
                &json!({
                    "selector": spec.get("selector").map(|s| json!({"matchLabels": s})).unwrap_or(Value::Null),
                    "template": spec.get("template").cloned().unwrap_or(Value::Null),
                }),
                &mut causes,
                false,
            );
            non_negative(&spec, "replicas", &mut causes);
        }
        ("batch", "Job") => validate_job_spec(&spec, "spec", &mut causes),
        ("batch", "CronJob") => {
            match spec.get("schedule").and_then(Value::as_str) {
                None | Some("") => causes.push(Cause::required("spec.schedule")),
                Some(s) => {
                    if let Err(e) = crate::cron::Schedule::parse(s) {
                        causes.push(Cause::invalid("spec.schedule", &json!(s), e.to_string()));
                    }
                }
            }
            if let Some(p) = spec.get("concurrencyPolicy")
                && !matches!(p.as_str(), Some("Allow" | "Forbid" | "Replace"))
            {
                causes.push(Cause::not_supported(
                    "spec.concurrencyPolicy",
                    p,
                    &["Allow", "Forbid", "Replace"],
                ));
            }
            match spec.pointer("/jobTemplate/spec") {
                Some(js) => validate_job_spec(js, "spec.jobTemplate.spec", &mut causes),
                None => causes.push(Cause::required(
                    "spec.jobTemplate.spec.template.spec.containers",
                )),
            }
        }
        ("", "Service") => validate_service(&spec, &mut causes),
        ("", "ConfigMap") | ("", "Secret") => {
            for part in ["data", "binaryData", "stringData"] {
                if let Some(m) = obj.get(part).and_then(Value::as_object) {
                    for k in m.keys() {
                        let ok = !k.is_empty()
                            && k.len() <= 253
                            && k != "."
                            && k != ".."
                            && k.bytes().all(|b| {
                                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
                            });
                        if !ok {
                            causes.push(Cause::invalid(format!("{part}[{k}]"), &json!(k), "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"));
                        }
                    }
                }
            }
        }
        _ => {}
    }
    causes
}

fn validate_job_spec(spec: &Value, field: &str, causes: &mut Vec<Cause>) {
    match spec.pointer("/template/spec") {
        Some(ps) => {
            validate_pod_spec(ps, &format!("{field}.template.spec"), causes);
            let rp = ps.get("restartPolicy").cloned().unwrap_or(Value::Null);
            if !matches!(rp.as_str(), Some("OnFailure" | "Never")) {
                causes.push(Cause::not_supported(
                    format!("{field}.template.spec.restartPolicy"),
                    &rp,
                    &["OnFailure", "Never"],
                ));
            }
        }
        None => causes.push(Cause::required(format!("{field}.template.spec.containers"))),
    }
    for k in ["parallelism", "completions", "backoffLimit"] {
        if let Some(v) = spec.get(k)
            && !v.is_null()
            && v.as_i64().is_none_or(|n| n < 0)
        {
            causes.push(Cause::invalid(
                format!("{field}.{k}"),
                v,
                "must be greater than or equal to 0",
            ));
        }
    }
}

fn validate_service(spec: &Value, causes: &mut Vec<Cause>) {
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if !matches!(
        ty,
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
    ) {
        causes.push(Cause::not_supported(
            "spec.type",
            &json!(ty),
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        ));
    }
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    let ports = spec
        .get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if ports.is_empty() && ty != "ExternalName" && !headless {
        causes.push(Cause::required("spec.ports"));
    }
    if ty == "ExternalName"
        && spec
            .get("externalName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        causes.push(Cause::required("spec.externalName"));
    }
    let mut names: Vec<String> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let f = format!("spec.ports[{i}]");
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            causes.push(Cause::required(format!("{f}.name")));
        } else if !name.is_empty() {
            if !is_dns1123_label(name) {
                causes.push(Cause::invalid(
                    format!("{f}.name"),
                    &json!(name),
                    name_message(NameRule::Dns1123Label),
                ));
            }
            if names.iter().any(|n| n == name) {
                causes.push(Cause::duplicate(format!("{f}.name"), &json!(name)));
            }
            names.push(name.to_string());
        }
        match p.get("port") {
            Some(v) if port_ok(v) => {}
            Some(v) => causes.push(Cause::invalid(
                format!("{f}.port"),
                v,
                "must be between 1 and 65535, inclusive",
            )),
            None => causes.push(Cause::required(format!("{f}.port"))),
        }
        if let Some(tp) = p.get("targetPort") {
            let ok = match tp {
                Value::Number(_) => port_ok(tp),
                Value::String(s) => {
                    is_dns1123_label(s)
                        && s.len() <= 15
                        && s.bytes().any(|b| b.is_ascii_alphabetic())
                }
                _ => false,
            };
            if !ok {
                causes.push(Cause::invalid(format!("{f}.targetPort"), tp, "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-) or be a number between 1 and 65535"));
            }
        }
        if let Some(np) = p.get("nodePort")
            && !np.is_null()
        {
            if ty == "ClusterIP" {
                causes.push(Cause::forbidden(
                    format!("{f}.nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            } else if !np.as_i64().is_some_and(|n| (30000..=32767).contains(&n)) {
                causes.push(Cause::invalid(format!("{f}.nodePort"), np, "provided port is not in the valid range. The range of valid ports is 30000-32767"));
            }
        }
    }
}

/// Fields that may not change on update. Returns causes for any that changed.
pub fn validate_update(group: &str, kind: &str, old: &Value, new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let immutable: &[(&str, &str)] = match (group, kind) {
        ("apps", "Deployment")
        | ("apps", "ReplicaSet")
        | ("apps", "DaemonSet")
        | ("apps", "StatefulSet") => &[("/spec/selector", "spec.selector")],
        ("batch", "Job") => &[
            ("/spec/selector", "spec.selector"),
            ("/spec/completionMode", "spec.completionMode"),
        ],
        ("", "Service") => &[("/spec/clusterIP", "spec.clusterIP")],
        ("", "PersistentVolumeClaim") => &[
            ("/spec/storageClassName", "spec.storageClassName"),
            ("/spec/volumeMode", "spec.volumeMode"),
        ],
        _ => &[],
    };
    for (ptr, field) in immutable {
        let (a, b) = (old.pointer(ptr), new.pointer(ptr));
        // An empty value on the new object means "keep", which the server fills in before validating.
        if a != b && !(b.is_none() || b == Some(&json!(""))) {
            causes.push(Cause::invalid(
                *field,
                b.unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }
    if ("", "Pod") == (group, kind) {
        // Only images, activeDeadlineSeconds, tolerations additions and terminationGracePeriodSeconds may change.
        let strip = |p: &Value| {
            let mut s = p.get("spec").cloned().unwrap_or(Value::Null);
            for list in ["containers", "initContainers"] {
                if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
                    for c in cs {
                        if let Some(c) = c.as_object_mut() {
                            c.remove("image");
                        }
                    }
                }
            }
            if let Some(m) = s.as_object_mut() {
                for k in [
                    "activeDeadlineSeconds",
                    "tolerations",
                    "terminationGracePeriodSeconds",
                    "schedulingGates",
                ] {
                    m.remove(k);
                }
            }
            s
        };
        let (o, n) = (strip(old), strip(new));
        // nodeName is set by binding; allow it to be filled in once.
        let mut o2 = o.clone();
        if let (Some(om), Some(nn)) = (o2.as_object_mut(), n.get("nodeName"))
            && old.pointer("/spec/nodeName").is_none()
        {
            om.insert("nodeName".into(), nn.clone());
        }
        if o2 != n {
            causes.push(Cause::forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"));
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_dns1123_subdomain("web.example-1"));
        assert!(!is_dns1123_subdomain("Web"));
        assert!(!is_dns1123_label("a.b"));
        assert!(is_dns1035_label("svc-1"));
        assert!(!is_dns1035_label("1svc"));
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(!is_qualified_name("-x"));
    }

    #[test]
    fn quantities() {
        for ok in ["100m", "1Gi", "2.5", "1e3", "500Mi", "0"] {
            assert!(is_quantity(&json!(ok)), "{ok}");
        }
        for bad in ["abc", "1 Gi", "1Gb", ""] {
            assert!(!is_quantity(&json!(bad)), "{bad}");
        }
    }

    #[test]
    fn deployment_selector_must_match_template() {
        let d = json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        let c = validate("apps", "Deployment", &d);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn service_ports_checked() {
        let s = json!({"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 0}, {"name": "b", "port": 80, "targetPort": "http"}]}});
        let c = validate("", "Service", &s);
        let fields: Vec<_> = c.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["spec.ports[0].name", "spec.ports[0].port"]);
    }

    #[test]
    fn job_needs_restart_policy() {
        let mut j = json!({"metadata": {"name": "pi"}, "spec": {"template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}}});
        crate::defaults::apply("batch", "Job", &mut j);
        let c = validate("batch", "Job", &j);
        assert_eq!(c[0].field, "spec.template.spec.restartPolicy");
        assert!(c[0].message.contains("\"Always\""));
    }
}
