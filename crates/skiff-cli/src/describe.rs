//! `skiff describe`: kubectl's layouts for the common kinds, a generic one for the rest, and
//! the object's Events.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::Result;
use crate::apply::LAST_APPLIED;
use crate::client::{Api, ConnArgs, encode};
use crate::get::finish;
use crate::resource::{self, Resource};

#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    /// TYPE [NAME...] or TYPE/NAME...; a TYPE alone describes every object of the type.
    pub args: Vec<String>,
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Show events (default true).
    #[arg(long, default_value = "true", num_args = 0..=1, default_missing_value = "true")]
    pub show_events: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

pub async fn run(args: DescribeArgs) -> Result<()> {
    let api = Api::connect(&args.conn).await?;
    let targets = resource::parse_targets(&api, &args.args).await?;
    let events = args.show_events != "false";
    let mut errors = Vec::new();
    let mut first = true;
    for t in targets {
        let mut objects = Vec::new();
        if t.names.is_empty() {
            let q = args
                .selector
                .as_ref()
                .map(|l| format!("?labelSelector={}", encode(l)))
                .unwrap_or_default();
            let ns = (!args.all_namespaces).then_some(api.namespace.as_str());
            let list = api
                .get(&format!("{}{q}", t.resource.collection_path(ns)))
                .await?;
            objects.extend(
                list.get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            if objects.is_empty() {
                match ns {
                    Some(ns) if t.resource.namespaced => {
                        eprintln!("No resources found in {ns} namespace.")
                    }
                    _ => eprintln!("No resources found"),
                }
            }
        } else {
            for name in &t.names {
                match api.get(&t.resource.object_path(&api.namespace, name)).await {
                    Ok(o) => objects.push(o),
                    Err(e) => errors.push(e),
                }
            }
        }
        for obj in objects {
            let text = describe(&api, &t.resource, &obj, events).await?;
            if !first {
                println!("\n");
            }
            first = false;
            print!("{text}");
        }
    }
    finish(errors)
}

/// Lines with `\t` between columns, aligned at the end like kubectl's describe tabwriter.
struct Out {
    text: String,
}

impl Out {
    fn line(&mut self, level: usize, s: &str) {
        for _ in 0..level {
            self.text.push_str("  ");
        }
        self.text.push_str(s);
        self.text.push('\n');
    }

    fn kv(&mut self, level: usize, k: &str, v: impl AsRef<str>) {
        self.line(level, &format!("{k}:\t{}", v.as_ref()));
    }

    /// `Labels:  a=b` then one `\tc=d` per further entry, or `<none>`.
    fn map(&mut self, level: usize, k: &str, m: &Map<String, Value>, sep: &str, skip: &[&str]) {
        let mut entries: Vec<(&String, &Value)> = m
            .iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        if entries.is_empty() {
            self.kv(level, k, "<none>");
            return;
        }
        for (i, (key, v)) in entries.iter().enumerate() {
            let v = v.as_str().unwrap_or_default();
            if i == 0 {
                self.kv(level, k, format!("{key}{sep}{v}"));
            } else {
                // Unindented, as kubectl writes it: the same once aligned, and `rollout
                // history --revision` prints it unaligned.
                self.line(0, &format!("\t{key}{sep}{v}"));
            }
        }
    }
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s.to_string()
    }
}

fn num(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn obj_map(v: &Value, ptr: &str) -> Map<String, Value> {
    v.pointer(ptr)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn arr<'a>(v: &'a Value, ptr: &str) -> Vec<&'a Value> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// RFC 1123 with a numeric zone, in local time, as kubectl prints timestamps.
fn timestamp(s: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => t
            .with_timezone(&chrono::Local)
            .format("%a, %d %b %Y %H:%M:%S %z")
            .to_string(),
        Err(_) => s.to_string(),
    }
}

use skiff_api::duration::human_duration;

fn age(ts: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
}

fn header(o: &mut Out, obj: &Value, namespaced: bool) {
    o.kv(0, "Name", s(obj, "/metadata/name"));
    if namespaced {
        o.kv(0, "Namespace", s(obj, "/metadata/namespace"));
    }
}

fn labels_annotations(o: &mut Out, obj: &Value) {
    o.map(0, "Labels", &obj_map(obj, "/metadata/labels"), "=", &[]);
    o.map(
        0,
        "Annotations",
        &obj_map(obj, "/metadata/annotations"),
        ": ",
        &[LAST_APPLIED],
    );
}

async fn describe(api: &Api, r: &Resource, obj: &Value, events: bool) -> Result<String> {
    let mut o = Out {
        text: String::new(),
    };
    let created = timestamp(s(obj, "/metadata/creationTimestamp"));
    match (r.group.as_str(), r.kind.as_str()) {
        ("apps", "Deployment") => {
            header(&mut o, obj, true);
            o.kv(0, "CreationTimestamp", &created);
            labels_annotations(&mut o, obj);
            o.kv(0, "Selector", selector_text(obj.pointer("/spec/selector")));
            let desired = num(obj, "/spec/replicas");
            o.kv(
                0,
                "Replicas",
                format!(
                    "{desired} desired | {} updated | {} total | {} available | {} unavailable",
                    num(obj, "/status/updatedReplicas"),
                    num(obj, "/status/replicas"),
                    num(obj, "/status/availableReplicas"),
                    num(obj, "/status/unavailableReplicas"),
                ),
            );
            let strategy = s(obj, "/spec/strategy/type");
            o.kv(0, "StrategyType", strategy);
            o.kv(
                0,
                "MinReadySeconds",
                num(obj, "/spec/minReadySeconds").to_string(),
            );
            if strategy == "RollingUpdate" {
                let ru = |k: &str| match obj.pointer(&format!("/spec/strategy/rollingUpdate/{k}")) {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => "25%".into(),
                };
                o.kv(
                    0,
                    "RollingUpdateStrategy",
                    format!(
                        "{} max unavailable, {} max surge",
                        ru("maxUnavailable"),
                        ru("maxSurge")
                    ),
                );
            }
            pod_template(
                &mut o,
                obj.pointer("/spec/template").unwrap_or(&Value::Null),
            );
            conditions_table(&mut o, obj, &["Type", "Status", "Reason"]);
            let (old, new) = replica_sets(api, obj).await;
            o.kv(0, "OldReplicaSets", old);
            o.kv(0, "NewReplicaSet", new);
        }
        ("apps", "ReplicaSet") | ("", "ReplicationController") => {
            header(&mut o, obj, true);
            o.kv(0, "Selector", selector_text(obj.pointer("/spec/selector")));
            labels_annotations(&mut o, obj);
            controlled_by(&mut o, obj);
            o.kv(
                0,
                "Replicas",
                format!(
                    "{} current / {} desired",
                    num(obj, "/status/replicas"),
                    num(obj, "/spec/replicas")
                ),
            );
            let (running, waiting, succeeded, failed) = pod_phases(api, obj).await;
            o.kv(
                0,
                "Pods Status",
                format!("{running} Running / {waiting} Waiting / {succeeded} Succeeded / {failed} Failed"),
            );
            pod_template(
                &mut o,
                obj.pointer("/spec/template").unwrap_or(&Value::Null),
            );
            if !arr(obj, "/status/conditions").is_empty() {
                conditions_table(&mut o, obj, &["Type", "Status", "Reason"]);
            }
        }
        ("", "Pod") => describe_pod(&mut o, obj),
        ("", "Service") => describe_service(api, &mut o, obj).await,
        ("", "ConfigMap") => {
            header(&mut o, obj, true);
            labels_annotations(&mut o, obj);
            o.line(0, "");
            o.line(0, "Data");
            o.line(0, "====");
            let data = obj_map(obj, "/data");
            let mut keys: Vec<&String> = data.keys().collect();
            keys.sort();
            for k in keys {
                o.line(0, &format!("{k}:"));
                o.line(0, "----");
                o.line(0, data[k.as_str()].as_str().unwrap_or_default());
                o.line(0, "");
            }
            o.line(0, "");
            o.line(0, "BinaryData");
            o.line(0, "====");
            let bin = obj_map(obj, "/binaryData");
            let mut keys: Vec<&String> = bin.keys().collect();
            keys.sort();
            for k in keys {
                let len = bin[k.as_str()]
                    .as_str()
                    .map(|b| b.len() * 3 / 4)
                    .unwrap_or(0);
                o.line(0, &format!("{k}: {len} bytes"));
            }
            o.line(0, "");
        }
        ("", "Namespace") => {
            o.kv(0, "Name", s(obj, "/metadata/name"));
            labels_annotations(&mut o, obj);
            o.kv(0, "Status", s(obj, "/status/phase"));
            let ns = s(obj, "/metadata/name");
            let items = |list: Option<Value>| -> Vec<Value> {
                list.and_then(|l| l.get("items").and_then(Value::as_array).cloned())
                    .unwrap_or_default()
            };
            let quotas = items(
                api.get(&format!("/api/v1/namespaces/{ns}/resourcequotas"))
                    .await
                    .ok(),
            );
            let ranges = items(
                api.get(&format!("/api/v1/namespaces/{ns}/limitranges"))
                    .await
                    .ok(),
            );
            o.line(0, "");
            if quotas.is_empty() {
                o.line(0, "No resource quota.");
            } else {
                o.line(0, "Resource Quotas");
                for q in &quotas {
                    quota_section(&mut o, q, 1);
                }
            }
            o.line(0, "");
            if ranges.is_empty() {
                o.line(0, "No LimitRange resource.");
            } else {
                o.line(0, "Resource Limits");
                for r in &ranges {
                    limits_table(&mut o, r, " ", r == &ranges[0]);
                }
            }
        }
        ("", "ResourceQuota") => {
            header(&mut o, obj, true);
            quota_section(&mut o, obj, 0);
        }
        ("", "LimitRange") => {
            header(&mut o, obj, true);
            limits_table(&mut o, obj, "", true);
        }
        ("", "Node") => describe_node(&mut o, obj, &created),
        _ => {
            header(&mut o, obj, r.namespaced);
            labels_annotations(&mut o, obj);
            o.kv(0, "API Version", s(obj, "/apiVersion"));
            o.kv(0, "Kind", s(obj, "/kind"));
            if let Some(m) = obj.as_object() {
                let mut meta = m.get("metadata").cloned().unwrap_or(Value::Null);
                if let Some(mm) = meta.as_object_mut() {
                    for k in [
                        "name",
                        "namespace",
                        "labels",
                        "annotations",
                        "managedFields",
                    ] {
                        mm.remove(k);
                    }
                }
                generic_field(&mut o, 0, "Metadata", &meta);
                for (k, v) in m {
                    if !matches!(k.as_str(), "metadata" | "apiVersion" | "kind") {
                        generic_field(&mut o, 0, &capitalize(k), v);
                    }
                }
            }
        }
    }
    // kubectl's namespace, quota and limit range describers show no events.
    if events
        && !(r.group.is_empty()
            && matches!(
                r.kind.as_str(),
                "Namespace" | "ResourceQuota" | "LimitRange"
            ))
    {
        let ev = fetch_events(api, r, obj).await?;
        events_section(&mut o, &ev);
    }
    Ok(tabwrite(&o.text, 0, 2))
}

fn capitalize(k: &str) -> String {
    let mut c = k.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// kubectl's generic describer: nested fields with capitalized names.
fn generic_field(o: &mut Out, level: usize, k: &str, v: &Value) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            o.line(level, &format!("{k}:"));
            for (kk, vv) in m {
                generic_field(o, level + 1, &capitalize(kk), vv);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            o.line(level, &format!("{k}:"));
            for item in a {
                match item {
                    Value::Object(m) => {
                        for (kk, vv) in m {
                            generic_field(o, level + 1, &capitalize(kk), vv);
                        }
                    }
                    other => o.line(level + 1, &crate::jsonpath::text(other)),
                }
            }
        }
        Value::Object(_) | Value::Array(_) | Value::Null => {}
        other => o.kv(level, k, crate::jsonpath::text(other)),
    }
}

fn selector_text(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return "<none>".into();
    };
    let mut parts = Vec::new();
    // A plain map (ReplicationController, Service) or a LabelSelector.
    let labels = sel.get("matchLabels").unwrap_or(sel);
    if let Some(m) = labels.as_object() {
        let mut kv: Vec<String> = m
            .iter()
            .filter(|(_, v)| v.is_string())
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        kv.sort();
        parts.extend(kv);
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = s(e, "/key");
        let vals: Vec<&str> = arr(e, "/values")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        parts.push(match s(e, "/operator") {
            "In" => format!("{key} in ({})", vals.join(",")),
            "NotIn" => format!("{key} notin ({})", vals.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op}"),
        });
    }
    or_none(&parts.join(","))
}

fn controlled_by(o: &mut Out, obj: &Value) {
    if let Some(c) = arr(obj, "/metadata/ownerReferences")
        .into_iter()
        .find(|r| r.get("controller") == Some(&Value::Bool(true)))
    {
        o.kv(
            0,
            "Controlled By",
            format!("{}/{}", s(c, "/kind"), s(c, "/name")),
        );
    }
}

/// kubectl's `DescribePodTemplate` untabbed: `rollout history --revision` prints it raw.
pub(crate) fn pod_template_text(t: &Value) -> String {
    let mut o = Out {
        text: String::new(),
    };
    pod_template(&mut o, t);
    o.text
}

fn pod_template(o: &mut Out, t: &Value) {
    o.line(0, "Pod Template:");
    o.map(1, "Labels", &obj_map(t, "/metadata/labels"), "=", &[]);
    let ann = obj_map(t, "/metadata/annotations");
    if !ann.is_empty() {
        o.map(1, "Annotations", &ann, ": ", &[]);
    }
    let sa = s(t, "/spec/serviceAccountName");
    if !sa.is_empty() {
        o.kv(1, "Service Account", sa);
    }
    containers(
        o,
        1,
        "Init Containers",
        &arr(t, "/spec/initContainers"),
        None,
        true,
    );
    containers(o, 1, "Containers", &arr(t, "/spec/containers"), None, false);
    volumes(o, 1, &arr(t, "/spec/volumes"));
    o.map(
        1,
        "Node-Selectors",
        &obj_map(t, "/spec/nodeSelector"),
        "=",
        &[],
    );
    tolerations(o, 1, &arr(t, "/spec/tolerations"));
}

fn containers(
    o: &mut Out,
    level: usize,
    title: &str,
    cs: &[&Value],
    statuses: Option<&[&Value]>,
    skip_empty: bool,
) {
    if cs.is_empty() {
        if !skip_empty {
            o.kv(level, title, "<none>");
        }
        return;
    }
    o.line(level, &format!("{title}:"));
    for c in cs {
        let name = s(c, "/name");
        o.line(level, &format!(" {name}:"));
        let l = level + 1;
        let status = statuses.and_then(|st| st.iter().find(|x| s(x, "/name") == name));
        if let Some(st) = status {
            o.kv(l, "Container ID", or_none(s(st, "/containerID")));
        }
        o.kv(l, "Image", s(c, "/image"));
        if let Some(st) = status {
            o.kv(l, "Image ID", s(st, "/imageID"));
        }
        let ports = arr(c, "/ports");
        let port = |f: &str| -> String {
            if ports.is_empty() {
                return "<none>".into();
            }
            ports
                .iter()
                .map(|p| {
                    format!(
                        "{}/{}",
                        num(p, &format!("/{f}")),
                        p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        o.kv(l, "Port", port("containerPort"));
        o.kv(l, "Host Port", port("hostPort"));
        let cmd: Vec<&str> = arr(c, "/command")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        if !cmd.is_empty() {
            o.line(l, "Command:");
            for x in cmd {
                o.line(l + 1, x);
            }
        }
        let args: Vec<&str> = arr(c, "/args").iter().filter_map(|v| v.as_str()).collect();
        if !args.is_empty() {
            o.line(l, "Args:");
            for x in args {
                o.line(l + 1, x);
            }
        }
        if let Some(st) = status {
            let state = st.get("state").and_then(Value::as_object);
            match state.and_then(|m| m.iter().next()) {
                Some((k, v)) => {
                    o.kv(l, "State", capitalize(k));
                    let reason = s(v, "/reason");
                    if !reason.is_empty() {
                        o.kv(l + 1, "Reason", reason);
                    }
                    let started = s(v, "/startedAt");
                    if !started.is_empty() {
                        o.kv(l + 1, "Started", timestamp(started));
                    }
                }
                None => o.kv(l, "State", "Waiting"),
            }
            o.kv(
                l,
                "Ready",
                if st.get("ready") == Some(&Value::Bool(true)) {
                    "True"
                } else {
                    "False"
                },
            );
            o.kv(l, "Restart Count", num(st, "/restartCount").to_string());
        }
        let limits = obj_map(c, "/resources/limits");
        if !limits.is_empty() {
            o.line(l, "Limits:");
            for (k, v) in &limits {
                o.kv(l + 1, k, crate::jsonpath::text(v));
            }
        }
        let requests = obj_map(c, "/resources/requests");
        if !requests.is_empty() {
            o.line(l, "Requests:");
            for (k, v) in &requests {
                o.kv(l + 1, k, crate::jsonpath::text(v));
            }
        }
        let env = arr(c, "/env");
        if env.is_empty() {
            o.kv(l, "Environment", "<none>");
        } else {
            o.line(l, "Environment:");
            for e in env {
                let value = match e.get("value").and_then(Value::as_str) {
                    Some(v) => v.to_string(),
                    None => "<set from a reference>".into(),
                };
                o.kv(l + 1, s(e, "/name"), value);
            }
        }
        let mounts = arr(c, "/volumeMounts");
        if mounts.is_empty() {
            o.kv(l, "Mounts", "<none>");
        } else {
            o.line(l, "Mounts:");
            for m in mounts {
                let ro = if m.get("readOnly") == Some(&Value::Bool(true)) {
                    "ro"
                } else {
                    "rw"
                };
                o.line(
                    l + 1,
                    &format!("{} from {} ({ro})", s(m, "/mountPath"), s(m, "/name")),
                );
            }
        }
    }
}

fn volumes(o: &mut Out, level: usize, vs: &[&Value]) {
    if vs.is_empty() {
        o.kv(level, "Volumes", "<none>");
        return;
    }
    o.line(level, "Volumes:");
    for v in vs {
        o.line(level, &format!("  {}:", s(v, "/name")));
        let Some(m) = v.as_object() else { continue };
        if let Some((kind, src)) = m.iter().find(|(k, _)| k.as_str() != "name") {
            let l = level + 2;
            match kind.as_str() {
                "emptyDir" => {
                    o.kv(
                        l,
                        "Type",
                        "EmptyDir (a temporary directory that shares a pod's lifetime)",
                    );
                    o.kv(l, "Medium", s(src, "/medium"));
                    o.kv(l, "SizeLimit", or_none(s(src, "/sizeLimit")));
                }
                "configMap" => {
                    o.kv(l, "Type", "ConfigMap (a volume populated by a ConfigMap)");
                    o.kv(l, "Name", s(src, "/name"));
                    o.kv(
                        l,
                        "Optional",
                        src.get("optional")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                            .to_string(),
                    );
                }
                "secret" => {
                    o.kv(l, "Type", "Secret (a volume populated by a Secret)");
                    o.kv(l, "SecretName", s(src, "/secretName"));
                    o.kv(
                        l,
                        "Optional",
                        src.get("optional")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                            .to_string(),
                    );
                }
                "hostPath" => {
                    o.kv(l, "Type", "HostPath (bare host directory volume)");
                    o.kv(l, "Path", s(src, "/path"));
                    o.kv(l, "HostPathType", s(src, "/type"));
                }
                "persistentVolumeClaim" => {
                    o.kv(l, "Type", "PersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)");
                    o.kv(l, "ClaimName", s(src, "/claimName"));
                    o.kv(
                        l,
                        "ReadOnly",
                        src.get("readOnly")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                            .to_string(),
                    );
                }
                other => o.kv(l, "Type", format!("{} (unknown)", capitalize(other))),
            }
        }
    }
}

fn tolerations(o: &mut Out, level: usize, ts: &[&Value]) {
    if ts.is_empty() {
        o.kv(level, "Tolerations", "<none>");
        return;
    }
    for (i, t) in ts.iter().enumerate() {
        let mut text = s(t, "/key").to_string();
        let value = s(t, "/value");
        if !value.is_empty() {
            text.push('=');
            text.push_str(value);
        }
        let effect = s(t, "/effect");
        if !effect.is_empty() {
            text.push(':');
            text.push_str(effect);
        }
        if s(t, "/operator") == "Exists" && value.is_empty() {
            text = format!("{} op=Exists", text);
        }
        if let Some(secs) = t.get("tolerationSeconds").and_then(Value::as_i64) {
            text.push_str(&format!(" for {secs}s"));
        }
        if i == 0 {
            o.kv(level, "Tolerations", text);
        } else {
            o.line(0, &format!("\t{text}"));
        }
    }
}

fn conditions_table(o: &mut Out, obj: &Value, cols: &[&str]) {
    let conds = arr(obj, "/status/conditions");
    if conds.is_empty() {
        o.kv(0, "Conditions", "<none>");
        return;
    }
    o.line(0, "Conditions:");
    o.line(1, &cols.join("\t"));
    o.line(
        1,
        &cols
            .iter()
            .map(|c| "-".repeat(c.len()))
            .collect::<Vec<_>>()
            .join("\t"),
    );
    for c in conds {
        let cells: Vec<String> = cols
            .iter()
            .map(|col| or_none(s(c, &format!("/{}", col.to_ascii_lowercase()))))
            .collect();
        o.line(1, &cells.join("\t"));
    }
}

/// The pods matching a controller's selector, counted by phase.
async fn pod_phases(api: &Api, obj: &Value) -> (usize, usize, usize, usize) {
    let sel = obj.pointer("/spec/selector");
    let sel = sel.and_then(|s| s.get("matchLabels")).or(sel);
    let labels: Vec<String> = sel
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
                .collect()
        })
        .unwrap_or_default();
    let ns = s(obj, "/metadata/namespace");
    let path = format!(
        "/api/v1/namespaces/{ns}/pods?labelSelector={}",
        encode(&labels.join(","))
    );
    let mut counts = (0, 0, 0, 0);
    if let Ok(list) = api.get(&path).await {
        for p in arr(&list, "/items") {
            match s(p, "/status/phase") {
                "Running" => counts.0 += 1,
                "Succeeded" => counts.2 += 1,
                "Failed" => counts.3 += 1,
                _ => counts.1 += 1,
            }
        }
    }
    counts
}

/// (old, new) ReplicaSets of a Deployment: those it controls, the new one matching its template.
async fn replica_sets(api: &Api, d: &Value) -> (String, String) {
    let ns = s(d, "/metadata/namespace");
    let uid = s(d, "/metadata/uid");
    let Ok(list) = api
        .get(&format!("/apis/apps/v1/namespaces/{ns}/replicasets"))
        .await
    else {
        return ("<none>".into(), "<none>".into());
    };
    let revision = s(
        d,
        "/metadata/annotations/deployment.kubernetes.io~1revision",
    );
    let mut old = Vec::new();
    let mut new = None;
    for rs in arr(&list, "/items") {
        let owned = arr(rs, "/metadata/ownerReferences")
            .iter()
            .any(|o| s(o, "/uid") == uid);
        if !owned {
            continue;
        }
        let text = format!(
            "{} ({}/{} replicas created)",
            s(rs, "/metadata/name"),
            num(rs, "/status/replicas"),
            num(rs, "/spec/replicas")
        );
        let rs_rev = s(
            rs,
            "/metadata/annotations/deployment.kubernetes.io~1revision",
        );
        if new.is_none() && (rs_rev == revision || revision.is_empty()) {
            new = Some(text);
        } else if num(rs, "/spec/replicas") > 0 {
            old.push(text);
        }
    }
    (
        or_none(&old.join(", ")),
        new.unwrap_or_else(|| "<none>".into()),
    )
}

fn describe_pod(o: &mut Out, p: &Value) {
    header(o, p, true);
    o.kv(0, "Priority", num(p, "/spec/priority").to_string());
    let pc = s(p, "/spec/priorityClassName");
    if !pc.is_empty() {
        o.kv(0, "Priority Class Name", pc);
    }
    o.kv(0, "Service Account", s(p, "/spec/serviceAccountName"));
    let node = s(p, "/spec/nodeName");
    let host_ip = s(p, "/status/hostIP");
    o.kv(
        0,
        "Node",
        if node.is_empty() {
            "<none>".to_string()
        } else if host_ip.is_empty() {
            node.to_string()
        } else {
            format!("{node}/{host_ip}")
        },
    );
    let start = s(p, "/status/startTime");
    if !start.is_empty() {
        o.kv(0, "Start Time", timestamp(start));
    }
    labels_annotations(o, p);
    if !s(p, "/metadata/deletionTimestamp").is_empty() {
        o.kv(0, "Status", "Terminating");
    } else {
        o.kv(0, "Status", s(p, "/status/phase"));
    }
    let reason = s(p, "/status/reason");
    if !reason.is_empty() {
        o.kv(0, "Reason", reason);
    }
    o.kv(0, "IP", s(p, "/status/podIP"));
    let ips = arr(p, "/status/podIPs");
    if ips.is_empty() {
        o.kv(0, "IPs", "<none>");
    } else {
        o.line(0, "IPs:");
        for ip in ips {
            o.kv(1, "IP", s(ip, "/ip"));
        }
    }
    controlled_by(o, p);
    let statuses = arr(p, "/status/containerStatuses");
    let init_statuses = arr(p, "/status/initContainerStatuses");
    containers(
        o,
        0,
        "Init Containers",
        &arr(p, "/spec/initContainers"),
        Some(&init_statuses),
        true,
    );
    containers(
        o,
        0,
        "Containers",
        &arr(p, "/spec/containers"),
        Some(&statuses),
        false,
    );
    let conds = arr(p, "/status/conditions");
    if conds.is_empty() {
        o.kv(0, "Conditions", "<none>");
    } else {
        o.line(0, "Conditions:");
        o.line(1, "Type\tStatus");
        for c in conds {
            o.line(1, &format!("{} \t{} ", s(c, "/type"), s(c, "/status")));
        }
    }
    volumes(o, 0, &arr(p, "/spec/volumes"));
    let qos = s(p, "/status/qosClass");
    o.kv(0, "QoS Class", qos);
    o.map(
        0,
        "Node-Selectors",
        &obj_map(p, "/spec/nodeSelector"),
        "=",
        &[],
    );
    tolerations(o, 0, &arr(p, "/spec/tolerations"));
}

/// What a quota scope matches, as kubectl explains it.
fn scope_help(scope: &str) -> &'static str {
    match scope {
        "Terminating" => {
            "Matches all pods that have an active deadline. These pods have a limited lifespan on a node before being actively terminated by the system."
        }
        "NotTerminating" => {
            "Matches all pods that do not have an active deadline. These pods usually include long running pods whose container command is not expected to terminate."
        }
        "BestEffort" => {
            "Matches all pods that do not have resource requirements set. These pods have a best effort quality of service."
        }
        "NotBestEffort" => {
            "Matches all pods that have at least one resource requirement set. These pods have a burstable or guaranteed quality of service."
        }
        _ => "",
    }
}

/// A quota's scopes and `Resource Used Hard` rows: on its own (`level` 0) or within a
/// namespace (`level` 1, with kubectl's shorter rules).
fn quota_section(o: &mut Out, q: &Value, level: usize) {
    if level > 0 {
        o.kv(level, "Name", s(q, "/metadata/name"));
    }
    let mut scopes: Vec<&str> = arr(q, "/spec/scopes")
        .into_iter()
        .filter_map(Value::as_str)
        .collect();
    scopes.sort();
    if !scopes.is_empty() {
        o.kv(level, "Scopes", scopes.join(", "));
        for scope in &scopes {
            let help = scope_help(scope);
            if !help.is_empty() {
                let bullet = if level == 0 { " * " } else { "* " };
                o.line(level, &format!("{bullet}{help}"));
            }
        }
    }
    o.line(level, "Resource\tUsed\tHard");
    o.line(
        level,
        if level == 0 {
            "--------\t----\t----"
        } else {
            "--------\t---\t---"
        },
    );
    let hard = obj_map(q, "/status/hard");
    let used = obj_map(q, "/status/used");
    let mut names: Vec<&String> = hard.keys().collect();
    names.sort();
    for n in names {
        let h = hard[n.as_str()].as_str().unwrap_or("0");
        let u = used.get(n.as_str()).and_then(Value::as_str).unwrap_or("0");
        o.line(level, &format!("{n}\t{u}\t{h}"));
    }
}

/// A LimitRange's rows (`Type Resource Min Max ...`), each line led by `lead`; the header
/// only when `heading`.
fn limits_table(o: &mut Out, r: &Value, lead: &str, heading: bool) {
    if heading {
        o.line(0, &format!("{lead}Type\tResource\tMin\tMax\tDefault Request\tDefault Limit\tMax Limit/Request Ratio"));
        o.line(0, &format!("{lead}----\t--------\t---\t---\t---------------\t-------------\t-----------------------"));
    }
    for item in arr(r, "/spec/limits") {
        let fields = [
            "min",
            "max",
            "defaultRequest",
            "default",
            "maxLimitRequestRatio",
        ];
        let mut names: Vec<String> = fields
            .iter()
            .flat_map(|f| {
                obj_map(item, &format!("/{f}"))
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        names.sort();
        names.dedup();
        for n in names {
            let cells: Vec<String> = fields
                .iter()
                .map(|f| {
                    obj_map(item, &format!("/{f}"))
                        .get(&n)
                        .and_then(Value::as_str)
                        .unwrap_or("-")
                        .to_string()
                })
                .collect();
            o.line(
                0,
                &format!("{lead}{}\t{n}\t{}", s(item, "/type"), cells.join("\t")),
            );
        }
    }
}

async fn describe_service(api: &Api, o: &mut Out, svc: &Value) {
    header(o, svc, true);
    labels_annotations(o, svc);
    o.map(0, "Selector", &obj_map(svc, "/spec/selector"), "=", &[]);
    let ty = s(svc, "/spec/type");
    o.kv(0, "Type", ty);
    let policy = s(svc, "/spec/ipFamilyPolicy");
    if !policy.is_empty() {
        o.kv(0, "IP Family Policy", policy);
    }
    let fams: Vec<&str> = arr(svc, "/spec/ipFamilies")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    if !fams.is_empty() {
        o.kv(0, "IP Families", fams.join(","));
    }
    o.kv(0, "IP", or_none(s(svc, "/spec/clusterIP")));
    let ips: Vec<&str> = arr(svc, "/spec/clusterIPs")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    o.kv(0, "IPs", or_none(&ips.join(",")));
    let ext = s(svc, "/spec/externalName");
    if !ext.is_empty() {
        o.kv(0, "External Name", ext);
    }
    let ns = s(svc, "/metadata/namespace");
    let name = s(svc, "/metadata/name");
    let endpoints = api
        .get(&format!("/api/v1/namespaces/{ns}/endpoints/{name}"))
        .await
        .ok();
    for port in arr(svc, "/spec/ports") {
        let pname = match s(port, "/name") {
            "" => "<unset>".to_string(),
            n => n.to_string(),
        };
        let proto = port
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP");
        o.kv(
            0,
            "Port",
            format!("{pname}\t{}/{proto}", num(port, "/port")),
        );
        let target = match port.get("targetPort") {
            Some(Value::String(t)) => t.clone(),
            Some(v) => v.to_string(),
            None => num(port, "/port").to_string(),
        };
        o.kv(0, "TargetPort", format!("{target}/{proto}"));
        if let Some(np) = port.get("nodePort").and_then(Value::as_i64) {
            o.kv(0, "NodePort", format!("{pname}\t{np}/{proto}"));
        }
        let mut eps = Vec::new();
        if let Some(e) = &endpoints {
            for subset in arr(e, "/subsets") {
                let ports = arr(subset, "/ports");
                let matching = ports.iter().find(|p| s(p, "/name") == s(port, "/name"));
                if let Some(p) = matching {
                    for a in arr(subset, "/addresses") {
                        eps.push(format!("{}:{}", s(a, "/ip"), num(p, "/port")));
                    }
                }
            }
        }
        o.kv(0, "Endpoints", or_none(&eps.join(",")));
    }
    o.kv(
        0,
        "Session Affinity",
        or_none(s(svc, "/spec/sessionAffinity")),
    );
    let etp = s(svc, "/spec/externalTrafficPolicy");
    if !etp.is_empty() {
        o.kv(0, "External Traffic Policy", etp);
    }
    let itp = s(svc, "/spec/internalTrafficPolicy");
    if !itp.is_empty() {
        o.kv(0, "Internal Traffic Policy", itp);
    }
}

fn describe_node(o: &mut Out, n: &Value, created: &str) {
    o.kv(0, "Name", s(n, "/metadata/name"));
    let labels = obj_map(n, "/metadata/labels");
    let roles: Vec<String> = labels
        .keys()
        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
        .map(str::to_string)
        .collect();
    o.kv(0, "Roles", or_none(&roles.join(",")));
    labels_annotations(o, n);
    o.kv(0, "CreationTimestamp", created);
    let taints = arr(n, "/spec/taints");
    if taints.is_empty() {
        o.kv(0, "Taints", "<none>");
    } else {
        for (i, t) in taints.iter().enumerate() {
            let v = s(t, "/value");
            let text = if v.is_empty() {
                format!("{}:{}", s(t, "/key"), s(t, "/effect"))
            } else {
                format!("{}={v}:{}", s(t, "/key"), s(t, "/effect"))
            };
            if i == 0 {
                o.kv(0, "Taints", text);
            } else {
                o.line(0, &format!("\t{text}"));
            }
        }
    }
    o.kv(
        0,
        "Unschedulable",
        n.pointer("/spec/unschedulable")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string(),
    );
    let conds = arr(n, "/status/conditions");
    if conds.is_empty() {
        o.kv(0, "Conditions", "<none>");
    } else {
        o.line(0, "Conditions:");
        o.line(
            1,
            "Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage",
        );
        o.line(
            1,
            "----\t------\t-----------------\t------------------\t------\t-------",
        );
        for c in conds {
            o.line(
                1,
                &format!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    s(c, "/type"),
                    s(c, "/status"),
                    timestamp(s(c, "/lastHeartbeatTime")),
                    timestamp(s(c, "/lastTransitionTime")),
                    s(c, "/reason"),
                    s(c, "/message")
                ),
            );
        }
    }
    o.line(0, "Addresses:");
    for a in arr(n, "/status/addresses") {
        o.kv(1, s(a, "/type"), s(a, "/address"));
    }
    for (title, ptr) in [
        ("Capacity", "/status/capacity"),
        ("Allocatable", "/status/allocatable"),
    ] {
        let m = obj_map(n, ptr);
        if !m.is_empty() {
            o.line(0, &format!("{title}:"));
            for (k, v) in &m {
                o.kv(1, k, crate::jsonpath::text(v));
            }
        }
    }
    let info = obj_map(n, "/status/nodeInfo");
    if !info.is_empty() {
        o.line(0, "System Info:");
        for (label, key) in [
            ("Machine ID", "machineID"),
            ("System UUID", "systemUUID"),
            ("Boot ID", "bootID"),
            ("Kernel Version", "kernelVersion"),
            ("OS Image", "osImage"),
            ("Operating System", "operatingSystem"),
            ("Architecture", "architecture"),
            ("Container Runtime Version", "containerRuntimeVersion"),
            ("Kubelet Version", "kubeletVersion"),
            ("Kube-Proxy Version", "kubeProxyVersion"),
        ] {
            o.kv(
                1,
                label,
                info.get(key).and_then(Value::as_str).unwrap_or(""),
            );
        }
    }
    let cidr = s(n, "/spec/podCIDR");
    if !cidr.is_empty() {
        o.kv(0, "PodCIDR", cidr);
    }
}

async fn fetch_events(api: &Api, r: &Resource, obj: &Value) -> Result<Vec<Value>> {
    let name = s(obj, "/metadata/name");
    let ns = s(obj, "/metadata/namespace");
    let uid = s(obj, "/metadata/uid");
    let mut selector = format!("involvedObject.name={name}");
    if r.namespaced {
        let _ = write!(selector, ",involvedObject.namespace={ns}");
    }
    if !uid.is_empty() {
        let _ = write!(selector, ",involvedObject.uid={uid}");
    }
    let base = if r.namespaced {
        format!("/api/v1/namespaces/{ns}/events")
    } else {
        "/api/v1/events".to_string()
    };
    let list = match api
        .get(&format!("{base}?fieldSelector={}", encode(&selector)))
        .await
    {
        Ok(l) => l,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut events: Vec<Value> = arr(&list, "/items").into_iter().cloned().collect();
    let key = |e: &Value| {
        [
            "/lastTimestamp",
            "/eventTime",
            "/firstTimestamp",
            "/metadata/creationTimestamp",
        ]
        .iter()
        .map(|p| s(e, p))
        .find(|t| !t.is_empty())
        .unwrap_or("")
        .to_string()
    };
    events.sort_by_key(key);
    Ok(events)
}

fn events_section(o: &mut Out, events: &[Value]) {
    if events.is_empty() {
        o.kv(0, "Events", "<none>");
        return;
    }
    o.line(0, "Events:");
    o.line(1, "Type\tReason\tAge\tFrom\tMessage");
    o.line(1, "----\t------\t----\t----\t-------");
    for e in events {
        let first = [
            s(e, "/firstTimestamp"),
            s(e, "/eventTime"),
            s(e, "/metadata/creationTimestamp"),
        ]
        .into_iter()
        .find(|t| !t.is_empty())
        .unwrap_or("");
        let last = [s(e, "/lastTimestamp"), s(e, "/series/lastObservedTime")]
            .into_iter()
            .find(|t| !t.is_empty())
            .unwrap_or(first);
        let count = num(e, "/count").max(num(e, "/series/count"));
        let age = match (age(last), age(first)) {
            (Some(l), Some(f)) if count > 1 => {
                format!(
                    "{} (x{count} over {})",
                    human_duration(l),
                    human_duration(f)
                )
            }
            (Some(l), _) => human_duration(l),
            _ => "<unknown>".into(),
        };
        let mut from = s(e, "/source/component").to_string();
        if from.is_empty() {
            from = s(e, "/reportingComponent").to_string();
        }
        let host = s(e, "/source/host");
        if !host.is_empty() {
            from = format!("{from}, {host}");
        }
        o.line(
            1,
            &format!(
                "{}\t{}\t{age}\t{from}\t{}",
                s(e, "/type"),
                s(e, "/reason"),
                s(e, "/message").trim()
            ),
        );
    }
}

/// Go's text/tabwriter (left-aligned, padding with spaces): column blocks are runs of
/// consecutive lines that have a cell in that column.
pub fn tabwrite(text: &str, min_width: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text
        .strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .map(|l| l.split('\t').collect())
        .collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    format_block(
        &lines,
        0,
        lines.len(),
        0,
        &mut widths,
        min_width,
        padding,
        &mut out,
    );
    out
}

#[allow(clippy::too_many_arguments)]
fn format_block(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    column: usize,
    widths: &mut Vec<usize>,
    min_width: usize,
    padding: usize,
    out: &mut String,
) {
    let mut this = line0;
    while this < line1 {
        if column >= lines[this].len() - 1 {
            this += 1;
            continue;
        }
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = min_width;
        while this < line1 && column < lines[this].len() - 1 {
            width = width.max(lines[this][column].chars().count() + padding);
            this += 1;
        }
        widths.push(width);
        format_block(
            lines,
            line0,
            this,
            column + 1,
            widths,
            min_width,
            padding,
            out,
        );
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        let mut text = String::new();
        for (j, cell) in line.iter().enumerate() {
            text.push_str(cell);
            if j < widths.len() && j + 1 < line.len() {
                let pad = widths[j].saturating_sub(cell.chars().count());
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(&text);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_tabwriter_blocks() {
        let t = "Name:\tweb\nNamespace:\tdefault\nPod Template:\n  Labels:\tapp=web\n";
        assert_eq!(
            tabwrite(t, 0, 2),
            "Name:       web\nNamespace:  default\nPod Template:\n  Labels:  app=web\n"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3600 * 3 + 60), "3h1m");
        assert_eq!(human_duration(86400 * 3), "3d");
    }
}
