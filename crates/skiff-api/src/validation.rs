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
    if let Some(finalizers) = obj.pointer("/metadata/finalizers") {
        validate_finalizers(finalizers, "metadata.finalizers", causes);
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

/// Finalizer names are qualified names (`kubernetes`, `example.com/name`), as upstream's
/// ValidateFinalizerName demands.
pub fn validate_finalizers(finalizers: &Value, field: &str, causes: &mut Vec<Cause>) {
    for (i, f) in finalizers.as_array().into_iter().flatten().enumerate() {
        if !f.as_str().is_some_and(is_qualified_name) {
            causes.push(Cause::invalid(format!("{field}[{i}]"), f, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"));
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
        validate_container_resources(res, &format!("{field}.resources"), causes);
    }
    if let Some(env) = c.get("env").and_then(Value::as_array) {
        for (i, e) in env.iter().enumerate() {
            match e.get("name").and_then(Value::as_str).unwrap_or("") {
                "" => causes.push(Cause::required(format!("{field}.env[{i}].name"))),
                // Upstream's relaxed rule (GA in 1.34): printable ASCII but '='.
                n if !n.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'=') => {
                    causes.push(Cause::invalid(
                        format!("{field}.env[{i}].name"),
                        &json!(n),
                        "a valid environment variable name must consist only of printable ASCII characters other than '='",
                    ))
                }
                _ => {}
            }
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(p) = c.get(probe).filter(|p| !p.is_null()) else {
            continue;
        };
        let pf = format!("{field}.{probe}");
        validate_handler(p, &pf, &["exec", "httpGet", "tcpSocket", "grpc"], causes);
        if probe != "readinessProbe"
            && let Some(t) = p.get("successThreshold").filter(|t| t.as_i64() != Some(1))
        {
            causes.push(Cause::invalid(
                format!("{pf}.successThreshold"),
                t,
                "must be 1",
            ));
        }
    }
    for hook in ["postStart", "preStop"] {
        if let Some(h) = c
            .pointer(&format!("/lifecycle/{hook}"))
            .filter(|h| !h.is_null())
        {
            let hf = format!("{field}.lifecycle.{hook}");
            validate_handler(h, &hf, &["exec", "httpGet", "tcpSocket", "sleep"], causes);
        }
    }
    if let Some(mounts) = c.get("volumeMounts").and_then(Value::as_array) {
        for (i, m) in mounts.iter().enumerate() {
            if m.get("mountPath")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                causes.push(Cause::required(format!(
                    "{field}.volumeMounts[{i}].mountPath"
                )));
            }
        }
    }
}

/// A probe or lifecycle hook names exactly one way to act (upstream's validateHandler).
fn validate_handler(h: &Value, field: &str, kinds: &[&str], causes: &mut Vec<Cause>) {
    let set: Vec<&str> = kinds
        .iter()
        .copied()
        .filter(|k| h.get(*k).is_some_and(|v| !v.is_null()))
        .collect();
    match set.as_slice() {
        [] => causes.push(Cause {
            reason: "FieldValueRequired",
            message: "Required value: must specify a handler type".into(),
            field: field.to_string(),
        }),
        [_] => {}
        [_, rest @ ..] => {
            for extra in rest {
                causes.push(Cause::forbidden(
                    format!("{field}.{extra}"),
                    "may not specify more than 1 handler type",
                ));
            }
        }
    }
}

/// Volume mounts name volumes of the pod (upstream's "Not found").
fn validate_mounts_name_volumes(
    spec: &Value,
    field: &str,
    claims: &[&str],
    causes: &mut Vec<Cause>,
) {
    let volumes: Vec<&str> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .chain(claims.iter().copied())
        .collect();
    for list in ["initContainers", "containers"] {
        for (i, c) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            for (j, m) in c
                .get("volumeMounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let name = m.get("name").and_then(Value::as_str).unwrap_or("");
                if !volumes.contains(&name) {
                    causes.push(Cause {
                        reason: "FieldValueNotFound",
                        message: format!("Not found: {}", json!(name)),
                        field: format!("{field}.{list}[{i}].volumeMounts[{j}].name"),
                    });
                }
            }
        }
    }
}

/// A claim's spec (of a PersistentVolumeClaim or a StatefulSet's claim template): access
/// modes and a storage request (upstream's ValidatePersistentVolumeClaimSpec).
fn validate_claim_spec(spec: &Value, field: &str, causes: &mut Vec<Cause>) {
    const MODES: &[&str] = &[
        "ReadOnlyMany",
        "ReadWriteMany",
        "ReadWriteOnce",
        "ReadWriteOncePod",
    ];
    match spec.get("accessModes").and_then(Value::as_array) {
        Some(modes) if !modes.is_empty() => {
            for m in modes {
                if !m.as_str().is_some_and(|m| MODES.contains(&m)) {
                    causes.push(Cause::not_supported(
                        format!("{field}.accessModes"),
                        m,
                        MODES,
                    ));
                }
            }
        }
        _ => causes.push(Cause {
            reason: "FieldValueRequired",
            message: "Required value: at least 1 access mode is required".into(),
            field: format!("{field}.accessModes"),
        }),
    }
    if spec
        .pointer("/resources/requests/storage")
        .is_none_or(Value::is_null)
    {
        causes.push(Cause::required(format!("{field}.resources[storage]")));
    }
}

/// Validates a `PodSpec` at `field` (e.g. `spec` or `spec.template.spec`).
pub fn validate_pod_spec(spec: &Value, field: &str, causes: &mut Vec<Cause>) {
    validate_pod_spec_with_claims(spec, field, &[], causes)
}

/// Validates a `PodSpec` whose volume mounts may also name `claims` (a StatefulSet's claim
/// templates, which become volumes of its pods).
fn validate_pod_spec_with_claims(
    spec: &Value,
    field: &str,
    claims: &[&str],
    causes: &mut Vec<Cause>,
) {
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
    validate_mounts_name_volumes(spec, field, claims, causes);
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
        Some(ps) => {
            let claims: Vec<&str> = spec
                .get("volumeClaimTemplates")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| t.pointer("/metadata/name").and_then(Value::as_str))
                .collect();
            validate_pod_spec_with_claims(ps, "spec.template.spec", &claims, causes)
        }
        None => causes.push(Cause::required("spec.template.spec.containers")),
    }
}

/// A DaemonSet's or StatefulSet's `spec.updateStrategy.type`.
fn update_strategy_type(spec: &Value, causes: &mut Vec<Cause>) {
    if let Some(t) = spec.pointer("/updateStrategy/type")
        && !matches!(t.as_str(), Some("RollingUpdate" | "OnDelete"))
    {
        causes.push(Cause::not_supported(
            "spec.updateStrategy.type",
            t,
            &["OnDelete", "RollingUpdate"],
        ));
    }
}

/// An int-or-percent that must not be negative (nor, when `capped`, above 100%).
fn int_or_percent(v: &Value, field: &str, capped: bool, causes: &mut Vec<Cause>) {
    match v {
        Value::Number(n) if n.as_i64().is_some_and(|n| n >= 0) => {}
        Value::Number(_) => causes.push(Cause::invalid(field, v, "must be greater than or equal to 0")),
        Value::String(s) => match s.strip_suffix('%').map(str::parse::<i64>) {
            Some(Ok(p)) if p >= 0 && (!capped || p <= 100) => {}
            Some(Ok(p)) if p < 0 => {
                causes.push(Cause::invalid(field, v, "must be greater than or equal to 0"))
            }
            Some(Ok(_)) => causes.push(Cause::invalid(field, v, "must not be greater than 100%")),
            _ => causes.push(Cause::invalid(
                field,
                v,
                "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            )),
        },
        _ => {}
    }
}

/// The count or percent an int-or-percent names (0 for a malformed one).
fn int_or_percent_value(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s
            .strip_suffix('%')
            .and_then(|p| p.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

/// upstream's ValidateDeploymentStrategy and the progress deadline rule.
fn validate_deployment_strategy(spec: &Value, causes: &mut Vec<Cause>) {
    let ty = spec.pointer("/strategy/type").and_then(Value::as_str);
    let rolling = spec
        .pointer("/strategy/rollingUpdate")
        .filter(|r| !r.is_null());
    match (ty, rolling) {
        (Some("Recreate"), Some(_)) => causes.push(Cause::forbidden(
            "spec.strategy.rollingUpdate",
            "may not be specified when strategy `type` is 'Recreate'",
        )),
        (Some("RollingUpdate") | None, Some(r)) => {
            let field = "spec.strategy.rollingUpdate";
            for k in ["maxUnavailable", "maxSurge"] {
                if let Some(v) = r.get(k).filter(|v| !v.is_null()) {
                    // Only maxUnavailable is capped at 100%.
                    int_or_percent(v, &format!("{field}.{k}"), k == "maxUnavailable", causes);
                }
            }
            if int_or_percent_value(r.get("maxUnavailable")) == 0
                && int_or_percent_value(r.get("maxSurge")) == 0
            {
                causes.push(Cause::invalid(
                    format!("{field}.maxUnavailable"),
                    r.get("maxUnavailable").unwrap_or(&json!(0)),
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
        }
        _ => {}
    }
    if let Some(deadline) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
        let min_ready = spec
            .get("minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if deadline <= min_ready {
            causes.push(Cause::invalid(
                "spec.progressDeadlineSeconds",
                &json!(deadline),
                "must be greater than minReadySeconds",
            ));
        }
    }
}

fn validate_pdb(spec: &Value, causes: &mut Vec<Cause>) {
    let min = spec.get("minAvailable").filter(|v| !v.is_null());
    let max = spec.get("maxUnavailable").filter(|v| !v.is_null());
    if min.is_some() && max.is_some() {
        causes.push(Cause::invalid(
            "spec",
            spec,
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    if let Some(v) = min {
        int_or_percent(v, "spec.minAvailable", true, causes);
    }
    if let Some(v) = max {
        int_or_percent(v, "spec.maxUnavailable", true, causes);
    }
    if let Some(p) = spec
        .get("unhealthyPodEvictionPolicy")
        .filter(|v| !v.is_null())
        && !matches!(p.as_str(), Some("IfHealthyBudget" | "AlwaysAllow"))
    {
        causes.push(Cause::not_supported(
            "spec.unhealthyPodEvictionPolicy",
            p,
            &["AlwaysAllow", "IfHealthyBudget"],
        ));
    }
}

fn validate_hpa(spec: &Value, causes: &mut Vec<Cause>) {
    for k in ["kind", "name"] {
        if spec
            .pointer(&format!("/scaleTargetRef/{k}"))
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            causes.push(Cause::required(format!("spec.scaleTargetRef.{k}")));
        }
    }
    let min = spec.get("minReplicas").and_then(Value::as_i64);
    let max = spec.get("maxReplicas").and_then(Value::as_i64).unwrap_or(0);
    if let Some(m) = min
        && m < 1
    {
        causes.push(Cause::invalid(
            "spec.minReplicas",
            &json!(m),
            "must be greater than or equal to 1",
        ));
    }
    if max < 1 {
        causes.push(Cause::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than 0",
        ));
    } else if min.is_some_and(|m| max < m) {
        causes.push(Cause::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than or equal to `minReplicas`",
        ));
    }
}

fn validate_rules(role: &Value, causes: &mut Vec<Cause>) {
    for (i, rule) in role
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if rule
            .get("verbs")
            .and_then(Value::as_array)
            .is_none_or(|v| v.is_empty())
        {
            causes.push(Cause {
                reason: "FieldValueRequired",
                message: "Required value: verbs must contain at least one value".into(),
                field: format!("rules[{i}].verbs"),
            });
        }
        let urls = rule
            .get("nonResourceURLs")
            .and_then(Value::as_array)
            .is_some_and(|u| !u.is_empty());
        let resources = rule
            .get("resources")
            .and_then(Value::as_array)
            .is_some_and(|r| !r.is_empty());
        if urls && resources {
            causes.push(Cause::invalid(
                format!("rules[{i}].nonResourceURLs"),
                rule.get("nonResourceURLs").unwrap_or(&Value::Null),
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        if !urls
            && rule
                .get("apiGroups")
                .and_then(Value::as_array)
                .is_none_or(|g| g.is_empty())
        {
            causes.push(Cause {
                reason: "FieldValueRequired",
                message: "Required value: resource rules must supply at least one api group".into(),
                field: format!("rules[{i}].apiGroups"),
            });
        }
    }
}

fn validate_binding(kind: &str, binding: &Value, causes: &mut Vec<Cause>) {
    let role_ref = binding.get("roleRef").unwrap_or(&Value::Null);
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let group = text(role_ref, "apiGroup");
    if group != "rbac.authorization.k8s.io" {
        causes.push(Cause::not_supported(
            "roleRef.apiGroup",
            &json!(group),
            &["rbac.authorization.k8s.io"],
        ));
    }
    let ref_kind = text(role_ref, "kind");
    let kinds: &[&str] = if kind == "RoleBinding" {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&ref_kind.as_str()) {
        causes.push(Cause::not_supported(
            "roleRef.kind",
            &json!(ref_kind),
            kinds,
        ));
    }
    if text(role_ref, "name").is_empty() {
        causes.push(Cause::required("roleRef.name"));
    }
    for (i, subject) in binding
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let f = format!("subjects[{i}]");
        if text(subject, "name").is_empty() {
            causes.push(Cause::required(format!("{f}.name")));
        }
        match text(subject, "kind").as_str() {
            "ServiceAccount" => {
                if kind == "ClusterRoleBinding" && text(subject, "namespace").is_empty() {
                    causes.push(Cause::required(format!("{f}.namespace")));
                }
            }
            "User" | "Group" => {}
            other => causes.push(Cause::not_supported(
                format!("{f}.kind"),
                &json!(other),
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
}

fn validate_storage_class(class: &Value, causes: &mut Vec<Cause>) {
    if class
        .get("provisioner")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        causes.push(Cause::required("provisioner"));
    }
    if let Some(p) = class.get("reclaimPolicy").filter(|v| !v.is_null())
        && !matches!(p.as_str(), Some("Delete" | "Retain"))
    {
        causes.push(Cause::not_supported(
            "reclaimPolicy",
            p,
            &["Delete", "Retain"],
        ));
    }
    if let Some(m) = class.get("volumeBindingMode").filter(|v| !v.is_null())
        && !matches!(m.as_str(), Some("Immediate" | "WaitForFirstConsumer"))
    {
        causes.push(Cause::not_supported(
            "volumeBindingMode",
            m,
            &["Immediate", "WaitForFirstConsumer"],
        ));
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

const QUANTITY_REGEX: &str = "must match the regex ^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

/// Resources counted in whole units (upstream's `IsIntegerResourceName`).
fn is_integer_resource(name: &str) -> bool {
    matches!(
        name,
        "pods"
            | "resourcequotas"
            | "services"
            | "replicationcontrollers"
            | "secrets"
            | "configmaps"
            | "persistentvolumeclaims"
            | "services.nodeports"
            | "services.loadbalancers"
    ) || is_extended_resource(name)
}

/// A domain-qualified resource outside `kubernetes.io` (`nvidia.com/gpu`).
fn is_extended_resource(name: &str) -> bool {
    name.contains('/')
        && !name.contains("kubernetes.io/")
        && !name.starts_with("requests.")
        && is_qualified_name(name)
}

/// A resource list's amounts: quantities, not negative, whole for integer resources.
/// Returns the parsed amounts by name.
fn validate_resource_list(
    list: &Value,
    field: &str,
    causes: &mut Vec<Cause>,
) -> std::collections::BTreeMap<String, crate::quantity::Quantity> {
    let mut parsed = std::collections::BTreeMap::new();
    let Some(m) = list.as_object() else {
        return parsed;
    };
    let mut entries: Vec<(&String, &Value)> = m.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in entries {
        let f = format!("{field}[{k}]");
        let q = match v {
            Value::String(s) => crate::quantity::Quantity::parse(s).ok(),
            Value::Number(n) => crate::quantity::Quantity::parse(&n.to_string()).ok(),
            _ => None,
        };
        let Some(q) = q.filter(|_| is_quantity(v)) else {
            causes.push(Cause::invalid(f, v, QUANTITY_REGEX));
            continue;
        };
        if q.is_negative() {
            causes.push(Cause::invalid(
                f,
                &json!(q.to_string()),
                "must be greater than or equal to 0",
            ));
        } else if is_integer_resource(k) && !q.is_whole() {
            causes.push(Cause::invalid(
                f,
                &json!(q.to_string()),
                "must be an integer",
            ));
        }
        parsed.insert(k.clone(), q);
    }
    parsed
}

/// A container's `resources`: standard or extended names, valid amounts, requests within
/// limits (equal to them for extended resources, which cannot be overcommitted).
fn validate_container_resources(res: &Value, field: &str, causes: &mut Vec<Cause>) {
    let mut lists = Vec::new();
    for part in ["limits", "requests"] {
        let Some(list) = res.get(part) else {
            lists.push(Default::default());
            continue;
        };
        if let Some(m) = list.as_object() {
            for k in m.keys() {
                let standard = matches!(k.as_str(), "cpu" | "memory" | "ephemeral-storage")
                    || k.starts_with("hugepages-");
                if !k.contains('/') && !standard {
                    causes.push(Cause::invalid(
                        format!("{field}.{part}[{k}]"),
                        &json!(k),
                        "must be a standard resource for containers",
                    ));
                } else if k.contains('/')
                    && !k.contains("kubernetes.io/")
                    && !is_extended_resource(k)
                {
                    causes.push(Cause::invalid(
                        format!("{field}.{part}[{k}]"),
                        &json!(k),
                        "doesn't follow extended resource name standard",
                    ));
                }
            }
        }
        lists.push(validate_resource_list(
            list,
            &format!("{field}.{part}"),
            causes,
        ));
    }
    let (limits, requests) = (&lists[0], &lists[1]);
    for (k, req) in requests {
        let Some(lim) = limits.get(k) else { continue };
        if is_extended_resource(k) && req != lim {
            causes.push(Cause::invalid(
                format!("{field}.requests"),
                &json!(req.to_string()),
                format!("must be equal to {k} limit of {lim}"),
            ));
        } else if req > lim {
            causes.push(Cause::invalid(
                format!("{field}.requests"),
                &json!(req.to_string()),
                format!("must be less than or equal to {k} limit of {lim}"),
            ));
        }
    }
}

const QUOTA_SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
];

/// Upstream's ResourceQuota spec rules: valid amounts, known scopes that apply to the
/// quota's standard resources and do not contradict each other.
fn validate_resource_quota(spec: &Value, causes: &mut Vec<Cause>) {
    let hard = spec.get("hard").cloned().unwrap_or(Value::Null);
    validate_resource_list(&hard, "spec.hard", causes);
    let Some(scopes) = spec.get("scopes").and_then(Value::as_array) else {
        return;
    };
    let value = Value::Array(scopes.clone());
    let names: Vec<&str> = scopes.iter().filter_map(Value::as_str).collect();
    let compute = [
        "cpu",
        "memory",
        "limits.cpu",
        "limits.memory",
        "requests.cpu",
        "requests.memory",
    ];
    let standard_quota = |k: &str| {
        k == "pods"
            || compute.contains(&k)
            || matches!(
                k,
                "services"
                    | "replicationcontrollers"
                    | "resourcequotas"
                    | "secrets"
                    | "configmaps"
                    | "persistentvolumeclaims"
                    | "requests.storage"
                    | "services.nodeports"
                    | "services.loadbalancers"
                    | "ephemeral-storage"
                    | "requests.ephemeral-storage"
                    | "limits.ephemeral-storage"
            )
    };
    let keys: Vec<&String> = hard
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    for scope in scopes {
        let name = scope.as_str().unwrap_or("");
        if !QUOTA_SCOPES.contains(&name) {
            causes.push(Cause::invalid("spec.scopes", &value, "unsupported scope"));
        }
        for k in &keys {
            let fits = match name {
                "BestEffort" => k.as_str() == "pods",
                _ => k.as_str() == "pods" || compute.contains(&k.as_str()),
            };
            if standard_quota(k) && !fits {
                causes.push(Cause::invalid(
                    "spec.scopes",
                    &value,
                    "unsupported scope applied to resource",
                ));
            }
        }
    }
    for pair in [
        ["BestEffort", "NotBestEffort"],
        ["Terminating", "NotTerminating"],
    ] {
        if pair.iter().all(|p| names.contains(p)) {
            causes.push(Cause::invalid("spec.scopes", &value, "conflicting scopes"));
        }
    }
}

/// Upstream's LimitRange rules (after defaulting): valid amounts, and for each resource
/// min <= default request <= default limit <= max, and a ratio of at least 1 that max/min
/// allows.
fn validate_limit_range(spec: &Value, causes: &mut Vec<Cause>) {
    let items = spec
        .get("limits")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, item) in items.iter().enumerate() {
        let f = format!("spec.limits[{i}]");
        let list = |name: &str, causes: &mut Vec<Cause>| {
            item.get(name)
                .map(|l| validate_resource_list(l, &format!("{f}.{name}"), causes))
                .unwrap_or_default()
        };
        let (max, min) = (list("max", causes), list("min", causes));
        let (default, request) = (list("default", causes), list("defaultRequest", causes));
        let ratio = list("maxLimitRequestRatio", causes);
        if item.get("type").and_then(Value::as_str) == Some("Pod") {
            for (name, l) in [("default", &default), ("defaultRequest", &request)] {
                if !l.is_empty() {
                    causes.push(Cause::forbidden(
                        format!("{f}.{name}"),
                        "may not be specified when `type` is 'Pod'",
                    ));
                }
            }
        }
        let mut keys: Vec<&String> = [&max, &min, &default, &request, &ratio]
            .iter()
            .flat_map(|l| l.keys())
            .collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let (mx, mn, d, r, ra) = (
                max.get(k),
                min.get(k),
                default.get(k),
                request.get(k),
                ratio.get(k),
            );
            let mut bad = |field: &str, value: &crate::quantity::Quantity, msg: String| {
                causes.push(Cause::invalid(
                    format!("{f}.{field}[{k}]"),
                    &json!(value.to_string()),
                    msg,
                ));
            };
            if let (Some(mn), Some(mx)) = (mn, mx)
                && mn > mx
            {
                bad(
                    "min",
                    mn,
                    format!("min value {mn} is greater than max value {mx}"),
                );
            }
            if let (Some(r), Some(mn)) = (r, mn)
                && mn > r
            {
                bad(
                    "defaultRequest",
                    r,
                    format!("min value {mn} is greater than default request value {r}"),
                );
            }
            if let (Some(r), Some(mx)) = (r, mx)
                && r > mx
            {
                bad(
                    "defaultRequest",
                    r,
                    format!("default request value {r} is greater than max value {mx}"),
                );
            }
            if let (Some(r), Some(d)) = (r, d)
                && r > d
            {
                bad(
                    "defaultRequest",
                    r,
                    format!("default request value {r} is greater than default limit value {d}"),
                );
            }
            if let (Some(d), Some(mn)) = (d, mn)
                && mn > d
            {
                bad(
                    "default",
                    mn,
                    format!("min value {mn} is greater than default value {d}"),
                );
            }
            if let (Some(d), Some(mx)) = (d, mx)
                && d > mx
            {
                bad(
                    "default",
                    mx,
                    format!("default value {d} is greater than max value {mx}"),
                );
            }
            if let Some(ra) = ra {
                if *ra < crate::quantity::Quantity::count(1) {
                    bad(
                        "maxLimitRequestRatio",
                        ra,
                        format!("ratio {ra} is less than 1"),
                    );
                }
                let f64_of = |q: &crate::quantity::Quantity| {
                    crate::quantity::as_f64(&q.to_string()).unwrap_or(0.0)
                };
                if let (Some(mn), Some(mx)) = (mn, mx)
                    && f64_of(mn) > 0.0
                {
                    let limit = f64_of(mx) / f64_of(mn);
                    if f64_of(ra) > limit {
                        bad(
                            "maxLimitRequestRatio",
                            ra,
                            format!("ratio {ra} is greater than max/min = {limit:.6}"),
                        );
                    }
                }
            }
        }
    }
}

/// Validates a created or updated object of a built-in kind (after defaulting). Returns field causes.
const WILDCARD_MESSAGE: &str = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// A host of an Ingress rule or TLS entry: a DNS subdomain, or `*.` and one.
fn validate_ingress_host(host: &str, field: String, causes: &mut Vec<Cause>) {
    if host.contains('*') {
        let ok = host
            .strip_prefix("*.")
            .is_some_and(|rest| !rest.contains('*') && is_dns1123_subdomain(rest));
        if !ok {
            causes.push(Cause::invalid(field, &json!(host), WILDCARD_MESSAGE));
        }
    } else if !is_dns1123_subdomain(host) {
        causes.push(Cause::invalid(
            field,
            &json!(host),
            name_message(NameRule::Dns1123Subdomain),
        ));
    }
}

/// An Ingress backend: a service (by name, and a port by name or number) or a resource.
fn validate_ingress_backend(backend: &Value, field: &str, causes: &mut Vec<Cause>) {
    let service = backend.get("service").filter(|s| !s.is_null());
    let resource = backend.get("resource").filter(|s| !s.is_null());
    match (service, resource) {
        (Some(_), Some(_)) => causes.push(Cause::invalid(
            field,
            &json!(""),
            "cannot set both resource and service backends",
        )),
        (None, Some(r)) => {
            for k in ["kind", "name"] {
                if r.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
                    causes.push(Cause::required(format!("{field}.resource.{k}")));
                }
            }
        }
        (Some(svc), None) => {
            match svc.get("name").and_then(Value::as_str).unwrap_or("") {
                "" => causes.push(Cause::required(format!("{field}.service.name"))),
                name if !is_dns1035_label(name) => causes.push(Cause::invalid(
                    format!("{field}.service.name"),
                    &json!(name),
                    name_message(NameRule::Dns1035Label),
                )),
                _ => {}
            }
            let port_name = svc
                .pointer("/port/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let number = svc
                .pointer("/port/number")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            match (port_name.is_empty(), number) {
                (false, n) if n != 0 => causes.push(Cause::invalid(
                    field,
                    &json!(""),
                    "cannot set both port name & port number",
                )),
                (true, 0) => causes.push(Cause {
                    reason: "FieldValueRequired",
                    message: "Required value: port name or number is required".into(),
                    field: field.to_string(),
                }),
                (true, n) if !(1..=65535).contains(&n) => causes.push(Cause::invalid(
                    format!("{field}.service.port.number"),
                    &json!(n),
                    "must be between 1 and 65535, inclusive",
                )),
                _ => {}
            }
        }
        (None, None) => causes.push(Cause::invalid(
            field,
            &json!(""),
            "resource or service backend is required",
        )),
    }
}

/// upstream's ValidateIngressSpec: rules with hosts and absolute paths of a known type, a
/// backend for each, TLS hosts, and a default backend or at least one rule.
fn validate_ingress_spec(spec: &Value, causes: &mut Vec<Cause>) {
    let rules = spec.get("rules").and_then(Value::as_array);
    let default = spec.get("defaultBackend").filter(|b| !b.is_null());
    if rules.is_none_or(|r| r.is_empty()) && default.is_none() {
        causes.push(Cause::invalid(
            "spec",
            spec.get("rules").unwrap_or(&Value::Null),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = default {
        validate_ingress_backend(b, "spec.defaultBackend", causes);
    }
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        let host = rule.get("host").and_then(Value::as_str).unwrap_or("");
        if !host.is_empty() {
            let field = format!("spec.rules[{i}].host");
            if host.parse::<std::net::IpAddr>().is_ok() {
                causes.push(Cause::invalid(
                    field,
                    &json!(host),
                    "must be a DNS name, not an IP address",
                ));
            } else {
                validate_ingress_host(host, field, causes);
            }
        }
        let paths = rule.pointer("/http/paths").and_then(Value::as_array);
        if rule.get("http").is_some_and(|h| !h.is_null()) && paths.is_none_or(|p| p.is_empty()) {
            causes.push(Cause::required(format!("spec.rules[{i}].http.paths")));
        }
        for (j, path) in paths.into_iter().flatten().enumerate() {
            let field = format!("spec.rules[{i}].http.paths[{j}]");
            let p = path.get("path").and_then(Value::as_str).unwrap_or("");
            match path.get("pathType").and_then(Value::as_str) {
                None => causes.push(Cause {
                    reason: "FieldValueRequired",
                    message: "Required value: pathType must be specified".into(),
                    field: format!("{field}.pathType"),
                }),
                Some("Exact" | "Prefix") => {
                    if !p.starts_with('/') {
                        causes.push(Cause::invalid(
                            format!("{field}.path"),
                            &json!(p),
                            "must be an absolute path",
                        ));
                    }
                    for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                        if p.contains(seq) {
                            causes.push(Cause::invalid(
                                format!("{field}.path"),
                                &json!(p),
                                format!("must not contain '{seq}'"),
                            ));
                        }
                    }
                    for suffix in ["/..", "/."] {
                        if p.ends_with(suffix) {
                            causes.push(Cause::invalid(
                                format!("{field}.path"),
                                &json!(p),
                                format!("cannot end with '{suffix}'"),
                            ));
                        }
                    }
                }
                Some("ImplementationSpecific") => {
                    if !p.is_empty() && !p.starts_with('/') {
                        causes.push(Cause::invalid(
                            format!("{field}.path"),
                            &json!(p),
                            "must be an absolute path",
                        ));
                    }
                }
                Some(other) => causes.push(Cause::not_supported(
                    format!("{field}.pathType"),
                    &json!(other),
                    &["Exact", "ImplementationSpecific", "Prefix"],
                )),
            }
            validate_ingress_backend(
                path.get("backend").unwrap_or(&Value::Null),
                &format!("{field}.backend"),
                causes,
            );
        }
    }
    for (i, tls) in spec
        .get("tls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (j, host) in tls
            .get("hosts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let host = host.as_str().unwrap_or("");
            validate_ingress_host(host, format!("spec.tls[{i}].hosts[{j}]"), causes);
        }
    }
}

/// A CertificateSigningRequest's spec: a PEM request, a signer, usages, at least ten minutes.
fn validate_csr_spec(spec: &Value, causes: &mut Vec<Cause>) {
    let request = spec
        .get("request")
        .and_then(Value::as_str)
        .and_then(|r| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, r).ok())
        .unwrap_or_default();
    if !String::from_utf8_lossy(&request).contains("-----BEGIN CERTIFICATE REQUEST-----") {
        causes.push(Cause::invalid(
            "spec.request",
            &json!("<request>"),
            "PEM block type must be CERTIFICATE REQUEST",
        ));
    }
    if spec
        .get("signerName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        causes.push(Cause::required("spec.signerName"));
    }
    if spec
        .get("usages")
        .and_then(Value::as_array)
        .is_none_or(|u| u.is_empty())
    {
        causes.push(Cause {
            reason: "FieldValueRequired",
            message: "Required value: usages must be provided".into(),
            field: "spec.usages".into(),
        });
    }
    if let Some(secs) = spec.get("expirationSeconds").and_then(Value::as_i64)
        && secs < 600
    {
        causes.push(Cause::invalid(
            "spec.expirationSeconds",
            &json!(secs),
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
}

/// What a Secret of a well-known type must hold (upstream's ValidateSecret).
fn validate_secret_type(secret: &Value, causes: &mut Vec<Cause>) {
    let data = secret.get("data").and_then(Value::as_object);
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    let decoded = |k: &str| {
        data.and_then(|d| d.get(k))
            .and_then(Value::as_str)
            .and_then(|v| {
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, v).ok()
            })
    };
    let well_formed_json = |k: &str, causes: &mut Vec<Cause>| {
        if !has(k) {
            causes.push(Cause::required(format!("data[{k}]")));
        } else if let Err(e) = serde_json::from_slice::<serde_json::Map<String, Value>>(
            &decoded(k).unwrap_or_default(),
        ) {
            causes.push(Cause::invalid(
                format!("data[{k}]"),
                &json!("<secret contents redacted>"),
                e.to_string(),
            ));
        }
    };
    match secret.get("type").and_then(Value::as_str).unwrap_or("") {
        "kubernetes.io/service-account-token"
            if secret
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty) =>
        {
            causes.push(Cause::required(
                "metadata.annotations[kubernetes.io/service-account.name]",
            ));
        }
        "kubernetes.io/dockercfg" => well_formed_json(".dockercfg", causes),
        "kubernetes.io/dockerconfigjson" => well_formed_json(".dockerconfigjson", causes),
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            causes.push(Cause::required("data[username]"));
            causes.push(Cause::required("data[password]"));
        }
        "kubernetes.io/ssh-auth" if decoded("ssh-privatekey").is_none_or(|k| k.is_empty()) => {
            causes.push(Cause::required("data[ssh-privatekey]"));
        }
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    causes.push(Cause::required(format!("data[{k}]")));
                }
            }
        }
        _ => {}
    }
}

/// Upstream's legacy rule for every Event: it lives in its object's namespace (`default`, or
/// none, for cluster-scoped objects; `kube-system` too for events with an `eventTime`).
fn validate_event_namespace(ev: &Value, involved: &str, causes: &mut Vec<Cause>) {
    let ns = ev
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let object_ns = ev
        .pointer(&format!("/{involved}/namespace"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let legacy = ev.get("eventTime").is_none_or(Value::is_null);
    let matches = match (legacy, object_ns.is_empty()) {
        (true, true) => ns.is_empty() || ns == "default",
        (true, false) => ns == object_ns,
        (false, true) => ns == "default" || ns == "kube-system",
        (false, false) => true,
    };
    if !matches {
        causes.push(Cause::invalid(
            "involvedObject.namespace",
            &json!(object_ns),
            "does not match event.namespace",
        ));
    }
}

/// The strict rules upstream applies to Events written through events.k8s.io/v1 (the core
/// API keeps its lax legacy rules): what happened, who reported it and when are required, and
/// the deprecated members are left to the core API. Field paths name the internal fields, as
/// upstream's messages do.
fn validate_events_api_event(ev: &Value, causes: &mut Vec<Cause>) {
    let text = |k: &str| ev.get(k).and_then(Value::as_str).unwrap_or("");
    if ev.get("eventTime").is_none_or(Value::is_null) {
        causes.push(Cause::required("eventTime"));
    }
    let ty = text("type");
    if ty != "Normal" && ty != "Warning" {
        causes.push(Cause::invalid(
            "type",
            &json!(""),
            format!("has invalid value: {ty}"),
        ));
    }
    for (member, field) in [
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
    ] {
        if ev.get(member).is_some_and(|v| !v.is_null()) {
            causes.push(Cause::invalid(field, &json!(""), "needs to be unset"));
        }
    }
    if ev
        .get("deprecatedCount")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        != 0
    {
        causes.push(Cause::invalid("count", &json!(""), "needs to be unset"));
    }
    let source = |k: &str| {
        ev.pointer(&format!("/deprecatedSource/{k}"))
            .and_then(Value::as_str)
    };
    if source("component").is_some_and(|c| !c.is_empty())
        || source("host").is_some_and(|h| !h.is_empty())
    {
        causes.push(Cause::invalid("source", &json!(""), "needs to be unset"));
    }
    for (field, limit) in [
        ("reportingController", 0),
        ("reportingInstance", 128),
        ("action", 128),
        ("reason", 128),
    ] {
        let value = text(field);
        if value.is_empty() {
            causes.push(Cause::required(field));
        } else if limit > 0 && value.len() > limit {
            causes.push(Cause::invalid(
                field,
                &json!(""),
                format!("can have at most {limit} characters"),
            ));
        }
    }
    if text("note").len() > 1024 {
        causes.push(Cause::invalid(
            "message",
            &json!(""),
            "can have at most 1024 characters",
        ));
    }
    if let Some(series) = ev.get("series").filter(|s| !s.is_null()) {
        if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
            causes.push(Cause::invalid(
                "series.count",
                &json!(""),
                "should be at least 2",
            ));
        }
        if series.get("lastObservedTime").is_none_or(Value::is_null) {
            causes.push(Cause::required("series.lastObservedTime"));
        }
    }
}

pub fn validate(group: &str, kind: &str, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    validate_meta(group, kind, obj, &mut causes);
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    match (group, kind) {
        ("", "Pod") => validate_pod_spec(&spec, "spec", &mut causes),
        ("", "Namespace") => {
            if let Some(f) = spec.get("finalizers") {
                validate_finalizers(f, "spec.finalizers", &mut causes);
            }
        }
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
            if kind == "DaemonSet" {
                update_strategy_type(&spec, &mut causes);
            }
            if kind == "Deployment" {
                validate_deployment_strategy(&spec, &mut causes);
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
        ("", "PersistentVolumeClaim") => validate_claim_spec(&spec, "spec", &mut causes),
        ("policy", "PodDisruptionBudget") => validate_pdb(&spec, &mut causes),
        ("autoscaling", "HorizontalPodAutoscaler") => validate_hpa(&spec, &mut causes),
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => validate_rules(obj, &mut causes),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            validate_binding(kind, obj, &mut causes)
        }
        ("storage.k8s.io", "StorageClass") => validate_storage_class(obj, &mut causes),
        ("networking.k8s.io", "NetworkPolicy") => {
            for (i, t) in spec
                .get("policyTypes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                if !matches!(t.as_str(), Some("Ingress" | "Egress")) {
                    causes.push(Cause::not_supported(
                        format!("spec.policyTypes[{i}]"),
                        t,
                        &["Egress", "Ingress"],
                    ));
                }
            }
        }
        ("apps", "StatefulSet") => {
            validate_template_and_selector(&spec, &mut causes, true);
            non_negative(&spec, "replicas", &mut causes);
            update_strategy_type(&spec, &mut causes);
            for (i, t) in spec
                .get("volumeClaimTemplates")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                validate_claim_spec(
                    t.get("spec").unwrap_or(&Value::Null),
                    &format!("spec.volumeClaimTemplates[{i}].spec"),
                    &mut causes,
                );
            }
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
            if let Some(tz) = spec.get("timeZone").filter(|t| !t.is_null()) {
                let name = tz.as_str().unwrap_or("");
                if name.is_empty() {
                    causes.push(Cause::invalid(
                        "spec.timeZone",
                        tz,
                        "timeZone must be nil or non-empty string",
                    ));
                } else if name.eq_ignore_ascii_case("local") {
                    causes.push(Cause::invalid(
                        "spec.timeZone",
                        tz,
                        "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
                    ));
                } else if crate::cron::time_zone(Some(name)).is_err() {
                    causes.push(Cause::invalid(
                        "spec.timeZone",
                        tz,
                        format!("unknown time zone {name}"),
                    ));
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
        ("", "ResourceQuota") => validate_resource_quota(&spec, &mut causes),
        ("", "LimitRange") => validate_limit_range(&spec, &mut causes),
        ("events.k8s.io", "Event") => {
            validate_event_namespace(obj, "regarding", &mut causes);
            validate_events_api_event(obj, &mut causes)
        }
        ("", "Event") => validate_event_namespace(obj, "involvedObject", &mut causes),
        ("networking.k8s.io", "Ingress") => validate_ingress_spec(&spec, &mut causes),
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            validate_csr_spec(&spec, &mut causes)
        }
        ("", "ConfigMap") | ("", "Secret") => {
            if kind == "Secret" {
                validate_secret_type(obj, &mut causes);
            }
            // At most 1 MiB of contents (upstream's MaxSecretSize, for ConfigMaps too).
            const MAX: usize = 1024 * 1024;
            let size = |part: &str, decode: bool| -> usize {
                obj.get(part)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .map(|(_, v)| {
                        let v = v.as_str().unwrap_or("");
                        if decode {
                            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, v)
                                .map_or(v.len(), |b| b.len())
                        } else {
                            v.len()
                        }
                    })
                    .sum()
            };
            let too_long = |field: &str| Cause {
                reason: "FieldValueTooLong",
                message: format!("Too long: must have at most {MAX} bytes"),
                field: field.to_string(),
            };
            if kind == "Secret" && size("data", true) > MAX {
                causes.push(too_long("data"));
            }
            if kind == "ConfigMap" && size("data", false) + size("binaryData", true) > MAX {
                causes.push(too_long("[]"));
            }
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
        if let Some(proto) = p.get("protocol")
            && !matches!(proto.as_str(), Some("TCP" | "UDP" | "SCTP"))
        {
            causes.push(Cause::not_supported(
                format!("{f}.protocol"),
                proto,
                &["SCTP", "TCP", "UDP"],
            ));
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
/// A Service's cluster IPs may be added (dual-stack upgrade) or the secondary released,
/// but not changed, except to or from ExternalName (upstream's
/// validateUpgradeDowngradeClusterIPs). A new `clusterIP` with the old `clusterIPs` counts
/// as a change of `clusterIPs[0]`, as upstream's update normalizes them.
fn service_cluster_ips_update(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    let kind_of = |v: &Value| {
        v.pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string()
    };
    if kind_of(old) == "ExternalName" || kind_of(new) == "ExternalName" {
        return;
    }
    let ips = |v: &Value| -> Vec<String> {
        v.pointer("/spec/clusterIPs")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let headless = |ips: &[String]| ips.first().is_some_and(|ip| ip == "None");
    let (old_ips, mut new_ips) = (ips(old), ips(new));
    if let Some(ip) = new
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty())
        && new_ips == old_ips
        && new_ips.first().is_some_and(|first| first != ip)
        && let Some(first) = new_ips.first_mut()
    {
        *first = ip.to_string();
    }
    if headless(&old_ips) && headless(&new_ips) {
        return;
    }
    // Go's %#v of the []string, as upstream's field error prints it.
    let quoted: Vec<String> = new_ips.iter().map(|ip| format!("{ip:?}")).collect();
    let value = format!("[]string{{{}}}", quoted.join(", "));
    let invalid = |field: String, detail: &str| Cause {
        reason: "FieldValueInvalid",
        message: format!("Invalid value: {value}: {detail}"),
        field,
    };
    let field = || "spec.clusterIPs[0]".to_string();
    let primary_changed =
        !old_ips.is_empty() && !new_ips.is_empty() && old_ips.first() != new_ips.first();
    if old_ips.len() == new_ips.len() {
        for (i, (a, b)) in old_ips.iter().zip(&new_ips).enumerate() {
            if a != b {
                causes.push(invalid(
                    format!("spec.clusterIPs[{i}]"),
                    "may not change once set",
                ));
            }
        }
    } else if old_ips.len() > new_ips.len() {
        if new_ips.is_empty() {
            causes.push(invalid(field(), "primary clusterIP can not be unset"));
        }
        if primary_changed {
            causes.push(invalid(field(), "may not change once set"));
        }
        if new_ips.len() == 1
            && new.pointer("/spec/ipFamilyPolicy").and_then(Value::as_str) != Some("SingleStack")
        {
            causes.push(invalid(
                field(),
                "`ipFamilyPolicy` must be set to `SingleStack` when releasing the secondary clusterIP",
            ));
        }
    } else if primary_changed {
        causes.push(invalid(field(), "may not change once set"));
    }
}

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
        ("", "Service") => {
            service_cluster_ips_update(old, new, &mut causes);
            &[]
        }
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
    if group == "rbac.authorization.k8s.io"
        && (kind == "RoleBinding" || kind == "ClusterRoleBinding")
        && old.get("roleRef") != new.get("roleRef")
    {
        causes.push(Cause::invalid(
            "roleRef",
            new.get("roleRef").unwrap_or(&Value::Null),
            "cannot change roleRef",
        ));
    }
    if group == "scheduling.k8s.io"
        && kind == "PriorityClass"
        && old.get("value") != new.get("value")
    {
        causes.push(Cause::forbidden(
            "value",
            "may not be changed in an update.",
        ));
    }
    if group == "storage.k8s.io" && kind == "StorageClass" {
        for (k, what) in [("parameters", "parameters"), ("provisioner", "provisioner")] {
            let (a, b) = (old.get(k), new.get(k));
            let empty = |v: Option<&Value>| v.is_none_or(|v| v.is_null() || v == &json!({}));
            if a != b && !(empty(a) && empty(b)) {
                causes.push(Cause::forbidden(
                    k,
                    format!("updates to {what} are forbidden."),
                ));
            }
        }
    }
    if group.is_empty() && (kind == "Secret" || kind == "ConfigMap") {
        if kind == "Secret" && old.get("type") != new.get("type") {
            causes.push(Cause::invalid(
                "type",
                new.get("type").unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
        // An immutable ConfigMap or Secret keeps its contents, and stays immutable.
        if old.get("immutable") == Some(&json!(true)) {
            const FIXED: &str = "field is immutable when `immutable` is set";
            if new.get("immutable") != Some(&json!(true)) {
                causes.push(Cause::forbidden("immutable", FIXED));
            }
            for part in ["data", "binaryData"] {
                let empty = |v: Option<&Value>| {
                    v.is_none_or(|v| v.is_null() || v.as_object().is_some_and(|m| m.is_empty()))
                };
                let (a, b) = (old.get(part), new.get(part));
                if a != b && !(empty(a) && empty(b)) && (kind == "ConfigMap" || part == "data") {
                    causes.push(Cause::forbidden(part, FIXED));
                }
            }
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

    fn messages(group: &str, kind: &str, obj: Value) -> Vec<String> {
        let mut obj = obj;
        crate::defaults::apply(group, kind, &mut obj);
        validate(group, kind, &obj)
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn container_resources_as_upstream() {
        let pod = |res: Value| json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx", "resources": res}]}});
        assert_eq!(
            messages("", "Pod", pod(json!({"requests": {"cpu": "-1"}}))),
            vec![
                "spec.containers[0].resources.requests[cpu]: Invalid value: \"-1\": must be greater than or equal to 0"
            ]
        );
        assert_eq!(
            messages(
                "",
                "Pod",
                pod(json!({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}))
            ),
            vec![
                "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1"
            ]
        );
        assert_eq!(
            messages("", "Pod", pod(json!({"limits": {"foo": "1"}}))),
            // Requests default to limits, so the request is refused too.
            vec![
                "spec.containers[0].resources.limits[foo]: Invalid value: \"foo\": must be a standard resource for containers",
                "spec.containers[0].resources.requests[foo]: Invalid value: \"foo\": must be a standard resource for containers"
            ]
        );
        assert_eq!(
            messages(
                "",
                "Pod",
                pod(json!({"limits": {"example.com/gpu": "500m"}}))
            ),
            vec![
                "spec.containers[0].resources.limits[example.com/gpu]: Invalid value: \"500m\": must be an integer",
                "spec.containers[0].resources.requests[example.com/gpu]: Invalid value: \"500m\": must be an integer"
            ]
        );
        assert!(
            messages(
                "",
                "Pod",
                pod(json!({"limits": {"cpu": "1", "memory": "1Gi", "example.com/gpu": "1"}}))
            )
            .is_empty()
        );
    }

    #[test]
    fn quotas_and_limit_ranges_as_upstream() {
        let quota = |spec: Value| json!({"metadata": {"name": "q"}, "spec": spec});
        assert_eq!(
            messages("", "ResourceQuota", quota(json!({"hard": {"pods": "abc", "services": "-1", "configmaps": "1.5"}}))),
            vec![
                "spec.hard[configmaps]: Invalid value: \"1500m\": must be an integer".to_string(),
                "spec.hard[pods]: Invalid value: \"abc\": must match the regex ^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$".to_string(),
                "spec.hard[services]: Invalid value: \"-1\": must be greater than or equal to 0".to_string(),
            ]
        );
        assert_eq!(
            messages("", "ResourceQuota", quota(json!({"hard": {"cpu": "1"}, "scopes": ["BestEffort", "NotBestEffort", "Bogus"]}))),
            vec![
                "spec.scopes: Invalid value: [\"BestEffort\",\"NotBestEffort\",\"Bogus\"]: unsupported scope applied to resource".to_string(),
                "spec.scopes: Invalid value: [\"BestEffort\",\"NotBestEffort\",\"Bogus\"]: unsupported scope".to_string(),
                "spec.scopes: Invalid value: [\"BestEffort\",\"NotBestEffort\",\"Bogus\"]: conflicting scopes".to_string(),
            ]
        );
        let range = |limits: Value| json!({"metadata": {"name": "lr"}, "spec": {"limits": limits}});
        // The default limit comes from max, so the default request is above both.
        assert_eq!(
            messages("", "LimitRange", range(json!([{"type": "Container", "max": {"cpu": "1"}, "defaultRequest": {"cpu": "2"}}]))),
            vec![
                "spec.limits[0].defaultRequest[cpu]: Invalid value: \"2\": default request value 2 is greater than max value 1".to_string(),
                "spec.limits[0].defaultRequest[cpu]: Invalid value: \"2\": default request value 2 is greater than default limit value 1".to_string(),
            ]
        );
        assert_eq!(
            messages("", "LimitRange", range(json!([{"type": "Pod", "min": {"cpu": "2"}, "max": {"cpu": "1"}, "maxLimitRequestRatio": {"cpu": "500m"}}]))),
            vec![
                "spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1".to_string(),
                "spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: \"500m\": ratio 500m is less than 1".to_string(),
            ]
        );
        assert!(messages("", "LimitRange", range(json!([{"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1"}, "maxLimitRequestRatio": {"cpu": "4"}}]))).is_empty());
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

    #[test]
    fn secrets_of_well_known_types_hold_their_keys() {
        let secret = |ty: &str, data: Value| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": ty, "data": data});
        let fields = |c: Vec<Cause>| c.into_iter().map(|c| c.field).collect::<Vec<_>>();
        assert_eq!(
            fields(validate(
                "",
                "Secret",
                &secret("kubernetes.io/tls", json!({"tls.crt": "eA=="}))
            )),
            vec!["data[tls.key]"]
        );
        assert_eq!(
            fields(validate(
                "",
                "Secret",
                &secret("kubernetes.io/basic-auth", json!({}))
            )),
            vec!["data[username]", "data[password]"]
        );
        assert!(
            validate(
                "",
                "Secret",
                &secret("kubernetes.io/basic-auth", json!({"password": ""}))
            )
            .is_empty()
        );
        // `{"auths":{}}` and `not json`, base64.
        assert!(
            validate(
                "",
                "Secret",
                &secret(
                    "kubernetes.io/dockerconfigjson",
                    json!({".dockerconfigjson": "eyJhdXRocyI6e319"})
                )
            )
            .is_empty()
        );
        let bad = validate(
            "",
            "Secret",
            &secret(
                "kubernetes.io/dockerconfigjson",
                json!({".dockerconfigjson": "bm90IGpzb24="}),
            ),
        );
        assert_eq!(bad[0].field, "data[.dockerconfigjson]");
        assert!(
            bad[0].message.contains("<secret contents redacted>"),
            "{}",
            bad[0].message
        );
        assert_eq!(
            fields(validate(
                "",
                "Secret",
                &secret("kubernetes.io/ssh-auth", json!({}))
            )),
            vec!["data[ssh-privatekey]"]
        );
        assert!(validate("", "Secret", &secret("Opaque", json!({}))).is_empty());
    }

    #[test]
    fn service_cluster_ips_may_not_change_once_set() {
        let svc = |ip: &str, ips: &[&str]| json!({"kind": "Service", "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": ips}});
        let old = svc("10.0.0.11", &["10.0.0.11"]);
        assert!(validate_update("", "Service", &old, &old).is_empty());
        // A new clusterIP with the old clusterIPs (what the server fills in) changes them.
        let c = validate_update("", "Service", &old, &svc("10.0.0.12", &["10.0.0.11"]));
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].field, "spec.clusterIPs[0]");
        assert_eq!(
            c[0].message,
            r#"Invalid value: []string{"10.0.0.12"}: may not change once set"#
        );
        // Adding a secondary is an upgrade; releasing it needs SingleStack.
        let dual = svc("10.0.0.11", &["10.0.0.11", "fd00::b"]);
        assert!(validate_update("", "Service", &old, &dual).is_empty());
        let c = validate_update("", "Service", &dual, &old);
        assert!(c[0].message.contains("SingleStack"), "{c:?}");
        // To and from ExternalName anything goes.
        let external = json!({"kind": "Service", "spec": {"type": "ExternalName", "externalName": "a.example"}});
        assert!(validate_update("", "Service", &old, &external).is_empty());
    }

    #[test]
    fn immutable_configmaps_and_secrets_keep_their_contents() {
        let old = json!({"kind": "ConfigMap", "immutable": true, "data": {"a": "b"}});
        let changed = json!({"kind": "ConfigMap", "immutable": true, "data": {"a": "c"}});
        let c = validate_update("", "ConfigMap", &old, &changed);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "data");
        assert!(
            c[0].message
                .contains("field is immutable when `immutable` is set")
        );
        let unset = json!({"kind": "ConfigMap", "data": {"a": "b"}});
        assert_eq!(
            validate_update("", "ConfigMap", &old, &unset)[0].field,
            "immutable"
        );
        let relabeled = old.clone();
        assert!(validate_update("", "ConfigMap", &old, &relabeled).is_empty());
        let opaque = json!({"kind": "Secret", "type": "Opaque", "data": {}});
        let retyped = json!({"kind": "Secret", "type": "kubernetes.io/tls", "data": {}});
        assert_eq!(
            validate_update("", "Secret", &opaque, &retyped)[0].field,
            "type"
        );
    }

    #[test]
    fn ingresses_follow_upstreams_rules() {
        let ingress = |rules: Value| json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"}, "spec": {"rules": rules}});
        let backend = json!({"service": {"name": "web", "port": {"number": 80}}});
        let good = ingress(json!([{"host": "*.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": backend}]}}]));
        assert!(validate("networking.k8s.io", "Ingress", &good).is_empty());
        let bad = ingress(json!([{"host": "*.*.com", "http": {"paths": [
            {"path": "foo", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {}}}},
            {"path": "/a", "backend": backend}]}}]));
        let fields: Vec<String> = validate("networking.k8s.io", "Ingress", &bad)
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(fields.len(), 4, "{fields:#?}");
        assert!(
            fields[0].starts_with(
                "spec.rules[0].host: Invalid value: \"*.*.com\": a wildcard DNS-1123 subdomain"
            ),
            "{fields:#?}"
        );
        assert!(
            fields[1].starts_with(
                "spec.rules[0].http.paths[0].path: Invalid value: \"foo\": must be an absolute path"
            ),
            "{fields:#?}"
        );
        assert_eq!(
            fields[2],
            "spec.rules[0].http.paths[0].backend: Required value: port name or number is required"
        );
        assert_eq!(
            fields[3],
            "spec.rules[0].http.paths[1].pathType: Required value: pathType must be specified"
        );
        let empty = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"}, "spec": {}});
        assert_eq!(
            validate("networking.k8s.io", "Ingress", &empty)[0].field,
            "spec"
        );
    }

    #[test]
    fn pods_claims_and_services_follow_upstreams_rules() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
            "volumes": [{"name": "data", "emptyDir": {}}],
            "containers": [{"name": "c", "image": "nginx",
                "volumeMounts": [{"name": "data", "mountPath": "/d"}, {"name": "nope", "mountPath": "/x"}],
                "env": [{"name": "1OK", "value": "x"}, {"name": "A=B", "value": "y"}],
                "livenessProbe": {"periodSeconds": 5},
                "readinessProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}}]}});
        let got: Vec<String> = validate("", "Pod", &pod)
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(
            got,
            vec![
                "spec.containers[0].env[1].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
                "spec.containers[0].livenessProbe: Required value: must specify a handler type",
                "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
                "spec.containers[0].volumeMounts[1].name: Not found: \"nope\"",
            ]
        );
        let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"}, "spec": {}});
        let fields: Vec<String> = validate("", "PersistentVolumeClaim", &claim)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, vec!["spec.accessModes", "spec.resources[storage]"]);
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "protocol": "HTTP"}]}});
        assert_eq!(
            validate("", "Service", &svc)[0].field,
            "spec.ports[0].protocol"
        );
    }

    #[test]
    fn budgets_autoscalers_rbac_and_storage_classes_follow_upstreams_rules() {
        let fields = |group: &str, kind: &str, obj: Value| -> Vec<String> {
            validate(group, kind, &obj)
                .into_iter()
                .map(|c| c.field)
                .collect()
        };
        let pdb = json!({"kind": "PodDisruptionBudget", "metadata": {"name": "p"},
            "spec": {"minAvailable": 1, "maxUnavailable": "120%"}});
        assert_eq!(
            fields("policy", "PodDisruptionBudget", pdb),
            vec!["spec", "spec.maxUnavailable"]
        );
        let hpa = json!({"kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d"}, "minReplicas": 5, "maxReplicas": 2}});
        assert_eq!(
            fields("autoscaling", "HorizontalPodAutoscaler", hpa),
            vec!["spec.maxReplicas"]
        );
        let role = json!({"kind": "Role", "metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]});
        assert_eq!(
            fields("rbac.authorization.k8s.io", "Role", role),
            vec!["rules[0].verbs"]
        );
        let binding = json!({"kind": "ClusterRoleBinding", "metadata": {"name": "b"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ""},
            "subjects": [{"kind": "ServiceAccount", "name": "sa"}]});
        assert_eq!(
            fields(
                "rbac.authorization.k8s.io",
                "ClusterRoleBinding",
                binding.clone()
            ),
            vec!["roleRef.kind", "roleRef.name", "subjects[0].namespace"]
        );
        let mut rebound = binding.clone();
        rebound["roleRef"]["name"] = json!("other");
        assert_eq!(
            validate_update(
                "rbac.authorization.k8s.io",
                "ClusterRoleBinding",
                &binding,
                &rebound
            )[0]
            .field,
            "roleRef"
        );
        let class = json!({"kind": "StorageClass", "metadata": {"name": "s"}});
        assert_eq!(
            fields("storage.k8s.io", "StorageClass", class),
            vec!["provisioner"]
        );
        let pc = json!({"kind": "PriorityClass", "value": 5});
        let repriced = json!({"kind": "PriorityClass", "value": 6});
        assert_eq!(
            validate_update("scheduling.k8s.io", "PriorityClass", &pc, &repriced)[0].field,
            "value"
        );
    }

    #[test]
    fn certificate_requests_hold_a_pem_request_a_signer_and_usages() {
        let csr = json!({"kind": "CertificateSigningRequest", "metadata": {"name": "c"},
            "spec": {"request": "aGVsbG8=", "expirationSeconds": 60}});
        let fields: Vec<String> =
            validate("certificates.k8s.io", "CertificateSigningRequest", &csr)
                .into_iter()
                .map(|c| c.field)
                .collect();
        assert_eq!(
            fields,
            vec![
                "spec.request",
                "spec.signerName",
                "spec.usages",
                "spec.expirationSeconds"
            ]
        );
    }

    #[test]
    fn configmaps_and_secrets_hold_at_most_a_mebibyte() {
        let big = "x".repeat(1024 * 1024 + 1);
        let cm = json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": big}});
        let c = validate("", "ConfigMap", &cm);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "[]");
        assert_eq!(c[0].message, "Too long: must have at most 1048576 bytes");
        let fits = json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "x".repeat(1000)}});
        assert!(validate("", "ConfigMap", &fits).is_empty());
        let encoded = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "x".repeat(1024 * 1024 + 1),
        );
        let secret = json!({"kind": "Secret", "metadata": {"name": "s"}, "data": {"k": encoded}});
        assert_eq!(validate("", "Secret", &secret)[0].field, "data");
    }

    #[test]
    fn events_live_in_their_objects_namespace() {
        let event = |ns: &str, object_ns: &str| {
            json!({"kind": "Event", "metadata": {"name": "e", "namespace": ns},
                "involvedObject": {"kind": "Pod", "name": "p", "namespace": object_ns}})
        };
        assert!(validate("", "Event", &event("default", "default")).is_empty());
        assert!(validate("", "Event", &event("default", "")).is_empty());
        let c = validate("", "Event", &event("staging", "default"));
        assert_eq!(c[0].field, "involvedObject.namespace");
        assert!(c[0].message.contains("does not match event.namespace"));
        assert_eq!(validate("", "Event", &event("staging", "")).len(), 1);
    }

    #[test]
    fn deployment_strategies_and_cron_time_zones_follow_upstreams_rules() {
        let deployment = |extra: Value| {
            let mut d = json!({"kind": "Deployment", "metadata": {"name": "d"}, "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
            for (k, v) in extra.as_object().into_iter().flatten() {
                d["spec"][k] = v.clone();
            }
            validate("apps", "Deployment", &d)
                .into_iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            deployment(
                json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}})
            ),
            vec![
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0"
            ]
        );
        assert_eq!(
            deployment(json!({"strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}})),
            vec![
                "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"
            ]
        );
        assert!(
            deployment(json!({"strategy": {"rollingUpdate": {"maxSurge": "150%"}}})).is_empty()
        );
        assert_eq!(
            deployment(json!({"strategy": {"rollingUpdate": {"maxUnavailable": "150%"}}})).len(),
            1
        );
        assert_eq!(
            deployment(json!({"minReadySeconds": 10, "progressDeadlineSeconds": 5})),
            vec![
                "spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds"
            ]
        );
        let cron = json!({"kind": "CronJob", "metadata": {"name": "c"}, "spec": {"schedule": "* * * * *", "timeZone": "Local",
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}}});
        assert_eq!(
            validate("batch", "CronJob", &cron)[0].field,
            "spec.timeZone"
        );
    }
}
