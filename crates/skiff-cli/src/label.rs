//! `skiff label` and `skiff annotate`: `key=value` sets, `key-` removes, `--overwrite` replaces.

use http::Method;
use serde_json::{Map, Value, json};

use crate::client::{Api, ConnArgs, encode};
use crate::get::finish;
use crate::resource::{self, Resource};
use crate::{CliError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Labels,
    Annotations,
}

impl Field {
    fn key(self) -> &'static str {
        match self {
            Field::Labels => "labels",
            Field::Annotations => "annotations",
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct LabelArgs {
    /// TYPE NAME KEY=VAL... or TYPE/NAME KEY=VAL... (KEY- removes a key).
    pub args: Vec<String>,
    /// Replace values that are already set.
    #[arg(long)]
    pub overwrite: bool,
    /// Select the objects by label.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Only update if the object still has this resourceVersion.
    #[arg(long)]
    pub resource_version: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// A removal (`key-`): object names never end with `-`.
fn is_change(a: &str) -> bool {
    a.ends_with('-') && a.len() > 1
}

/// Splits positional arguments into resource arguments and changes (sets, removals).
/// Resource arguments, keys to set, keys to remove.
type Changes = (Vec<String>, Vec<(String, String)>, Vec<String>);

fn split_args(args: &[String]) -> Result<Changes> {
    let mut resources = Vec::new();
    let mut set = Vec::new();
    let mut remove = Vec::new();
    for a in args {
        if let Some((k, v)) = a.split_once('=') {
            if k.is_empty() {
                return Err(CliError::client(format!("invalid label spec: {a}")));
            }
            set.push((k.to_string(), v.to_string()));
        } else if is_change(a) {
            remove.push(a.trim_end_matches('-').to_string());
        } else if !set.is_empty() || !remove.is_empty() {
            return Err(CliError::client(format!(
                "all resources must be specified before changes: {a}"
            )));
        } else {
            resources.push(a.clone());
        }
    }
    if set.is_empty() && remove.is_empty() {
        return Err(CliError::client("at least one label update is required"));
    }
    for (k, _) in &set {
        if remove.contains(k) {
            return Err(CliError::client(format!(
                "can not both modify and remove the following key(s) in the same command: {k}"
            )));
        }
    }
    Ok((resources, set, remove))
}

pub async fn run(args: LabelArgs, field: Field) -> Result<()> {
    let (resources, set, remove) = split_args(&args.args).map_err(|e| match (field, e) {
        (Field::Annotations, CliError::Client(m)) => {
            CliError::Client(m.replace("label", "annotation"))
        }
        (_, e) => e,
    })?;
    let api = Api::connect(&args.conn).await?;
    let targets = resource::parse_targets(&api, &resources).await?;
    let mut objects: Vec<(Resource, Value)> = Vec::new();
    let mut errors = Vec::new();
    for t in targets {
        if t.names.is_empty() {
            if !args.all && args.selector.is_none() {
                return Err(CliError::client(
                    "resource(s) were provided, but no name was specified",
                ));
            }
            let q = args
                .selector
                .as_ref()
                .map(|l| format!("?labelSelector={}", encode(l)))
                .unwrap_or_default();
            let list = api
                .get(&format!(
                    "{}{q}",
                    t.resource.collection_path(Some(&api.namespace))
                ))
                .await?;
            for item in list
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                objects.push((t.resource.clone(), item));
            }
            continue;
        }
        for name in &t.names {
            match api.get(&t.resource.object_path(&api.namespace, name)).await {
                Ok(obj) => objects.push((t.resource.clone(), obj)),
                Err(e) => errors.push(e),
            }
        }
    }
    for (r, obj) in objects {
        if let Err(e) = update(&api, &args, field, &r, &obj, &set, &remove).await {
            errors.push(e);
        }
    }
    finish(errors)
}

async fn update(
    api: &Api,
    args: &LabelArgs,
    field: Field,
    r: &Resource,
    obj: &Value,
    set: &[(String, String)],
    remove: &[String],
) -> Result<()> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(&api.namespace);
    let old: Map<String, Value> = obj
        .pointer(&format!("/metadata/{}", field.key()))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut changes = Map::new();
    for (k, v) in set {
        match old.get(k).and_then(Value::as_str) {
            Some(existing) if existing == v => {}
            Some(existing) if !args.overwrite => {
                return Err(CliError::client(format!(
                    "'{k}' already has a value ({existing}), and --overwrite is false"
                )));
            }
            _ => {
                changes.insert(k.clone(), json!(v));
            }
        }
    }
    for k in remove {
        if old.contains_key(k) {
            changes.insert(k.clone(), Value::Null);
        } else {
            let what = match field {
                Field::Labels => "label",
                Field::Annotations => "annotation",
            };
            println!("{what} \"{k}\" not found.");
        }
    }
    let verb = match field {
        Field::Labels => "labeled",
        Field::Annotations => "annotated",
    };
    let prefix = format!("{}/{name}", r.name_prefix());
    if changes.is_empty() {
        let not = match field {
            Field::Labels => "not labeled",
            Field::Annotations => "annotated",
        };
        println!("{prefix} {not}");
        return Ok(());
    }
    let only_removals = changes.values().all(Value::is_null);
    let mut meta = json!({ field.key(): changes });
    if let Some(rv) = &args.resource_version {
        meta["resourceVersion"] = json!(rv);
    }
    let body = serde_json::to_vec(&json!({ "metadata": meta }))
        .map_err(|e| CliError::client(format!("encoding the patch: {e}")))?;
    api.request(
        Method::PATCH,
        &format!(
            "{}?fieldManager=kubectl-{}",
            r.object_path(ns, name),
            match field {
                Field::Labels => "label",
                Field::Annotations => "annotate",
            }
        ),
        None,
        Some(("application/merge-patch+json", body)),
    )
    .await?;
    let word = if field == Field::Labels && only_removals && !args.overwrite {
        "unlabeled"
    } else {
        verb
    };
    println!("{prefix} {word}");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn splits_changes() {
        let args: Vec<String> = ["deploy", "web", "a=1", "b-", "example.com/c-"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (r, set, rm) = split_args(&args).unwrap();
        assert_eq!(r, ["deploy", "web"]);
        assert_eq!(set, [("a".to_string(), "1".to_string())]);
        assert_eq!(rm, ["b", "example.com/c"]);
        let args: Vec<String> = ["deploy/web", "a=1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(split_args(&args).unwrap().0, ["deploy/web"]);
        assert!(split_args(&["deploy".to_string(), "web".to_string()]).is_err());
    }
}
