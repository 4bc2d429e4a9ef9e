//! `skiff apply -f` (kubectl's client-side apply: the last-applied annotation and a three-way
//! strategic merge patch) and `skiff create -f`.

use http::Method;
use serde_json::{Map, Value, json};
use skiff_api::patch::three_way_merge;

use crate::client::{Api, ConnArgs};
use crate::get::finish;
use crate::manifest::{self, Manifest};
use crate::printer::{self, Output};
use crate::resource::{self, Resource};
use crate::yaml::to_go_json_compact;
use crate::{CliError, Result};

pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The field manager kubectl's client-side apply writes with.
const APPLY_MANAGER: &str = "kubectl-client-side-apply";

#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// Files, directories or `-` (stdin) holding the configuration to apply.
    #[arg(short = 'f', long = "filename")]
    pub filename: Vec<String>,
    /// Process the directories of -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Output format: name, yaml, json (default: a status line per object).
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// `none` (default) or `server`: only show what would happen.
    #[arg(long, default_value = "none")]
    pub dry_run: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Files, directories or `-` (stdin) holding the objects to create.
    #[arg(short = 'f', long = "filename")]
    pub filename: Vec<String>,
    /// Process the directories of -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Output format: name, yaml, json.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Record the last-applied annotation so that `apply` can take over later.
    #[arg(long)]
    pub save_config: bool,
    #[arg(long, default_value = "none")]
    pub dry_run: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// The namespace an object goes to: its own, else `-n`, else the context's. A conflicting
/// explicit `-n` is an error, as in kubectl.
fn namespace_for(api: &Api, r: &Resource, m: &Manifest) -> Result<Option<String>> {
    if !r.namespaced {
        return Ok(None);
    }
    match m
        .object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    {
        Some(ns) if !ns.is_empty() => {
            if api.explicit_namespace && ns != api.namespace {
                return Err(CliError::client(format!(
                    "the namespace from the provided object \"{ns}\" does not match the namespace \"{}\". You must pass '--namespace={ns}' to perform this operation.",
                    api.namespace
                )));
            }
            Ok(Some(ns.to_string()))
        }
        _ => Ok(Some(api.namespace.clone())),
    }
}

fn name_of(obj: &Value) -> Option<String> {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

fn dry_run_query(dry_run: &str) -> Result<&'static str> {
    match dry_run {
        "none" | "false" => Ok(""),
        "server" => Ok("&dryRun=All"),
        "client" => Err(CliError::client(
            "--dry-run=client is not supported yet; use --dry-run=server",
        )),
        other => Err(CliError::client(format!(
            "Invalid dry-run value ({other}). Must be \"none\", \"server\", or \"client\"."
        ))),
    }
}

/// Sets `namespace` on the object as kubectl's resource builder does.
fn with_namespace(mut obj: Value, ns: Option<&str>) -> Value {
    if let (Some(ns), Some(meta)) = (ns, obj.get_mut("metadata").and_then(Value::as_object_mut)) {
        meta.insert("namespace".into(), json!(ns));
    }
    obj
}

/// kubectl's `GetModifiedConfiguration(obj, annotate=true)`: the object carrying, as its
/// last-applied annotation, its own JSON without that annotation.
pub fn modified_configuration(obj: &Value) -> Value {
    let mut without = obj.clone();
    let annotations = without
        .as_object_mut()
        .and_then(|o| {
            o.entry("metadata")
                .or_insert_with(|| json!({}))
                .as_object_mut()
        })
        .map(|m| m.entry("annotations").or_insert_with(|| json!({})));
    if let Some(Value::Object(a)) = annotations {
        a.remove(LAST_APPLIED);
    } else if let Some(a) = annotations {
        *a = Value::Object(Map::new());
    }
    let applied = format!("{}\n", to_go_json_compact(&without));
    let mut modified = without;
    if let Some(Value::Object(a)) = modified.pointer_mut("/metadata/annotations") {
        a.insert(LAST_APPLIED.into(), Value::String(applied));
    }
    modified
}

enum Outcome {
    Created,
    Configured,
    Unchanged,
}

pub async fn run_apply(args: ApplyArgs) -> Result<()> {
    let output = args
        .output
        .as_deref()
        .map(|o| Output::parse(Some(o)))
        .transpose()?;
    let dry = dry_run_query(&args.dry_run)?;
    let manifests = manifest::read_all(&args.filename, args.recursive)?;
    if manifests.is_empty() {
        return Err(CliError::client("no objects passed to apply"));
    }
    let api = Api::connect(&args.conn).await?;
    let mut errors = Vec::new();
    for m in &manifests {
        match apply_one(&api, m, dry).await {
            Ok((r, obj, outcome)) => {
                let word = match outcome {
                    Outcome::Created => "created",
                    Outcome::Configured => "configured",
                    Outcome::Unchanged => "unchanged",
                };
                report(&output, &r, &obj, word, dry)?;
            }
            Err(e) => errors.push(e),
        }
    }
    finish(errors)
}

fn report(output: &Option<Output>, r: &Resource, obj: &Value, word: &str, dry: &str) -> Result<()> {
    match output {
        Some(o) => print!(
            "{}",
            printer::print_objects(o, &[(r.clone(), printer::with_type(r, obj.clone()))], true)?
        ),
        None => {
            let suffix = if dry.is_empty() {
                ""
            } else {
                " (server dry run)"
            };
            println!("{} {word}{suffix}", printer::object_name(r, obj));
        }
    }
    Ok(())
}

async fn apply_one(api: &Api, m: &Manifest, dry: &str) -> Result<(Resource, Value, Outcome)> {
    let r = resource::for_object(api, &m.object).await?;
    let ns = namespace_for(api, &r, m)?;
    let name = name_of(&m.object).ok_or_else(|| {
        CliError::client(format!(
            "error when retrieving current configuration of {} from {}: resource name may not be empty",
            r.kind, m.source
        ))
    })?;
    let obj = with_namespace(m.object.clone(), ns.as_deref());
    let modified = modified_configuration(&obj);
    let ns_str = ns.clone().unwrap_or_default();
    let path = r.object_path(&ns_str, &name);
    let current = match api.get(&path).await {
        Ok(c) => Some(c),
        Err(e) if e.is_not_found() => None,
        Err(e) => {
            return Err(e.with_context(&format!(
                "error when retrieving current configuration of {} \"{name}\" from \"{}\"",
                r.qualified_plural(),
                m.source
            )));
        }
    };
    let Some(current) = current else {
        let body = serde_json::to_vec(&modified)
            .map_err(|e| CliError::client(format!("encoding {name}: {e}")))?;
        let created = api
            .request(
                Method::POST,
                &format!(
                    "{}?fieldManager={APPLY_MANAGER}{dry}",
                    r.collection_path(ns.as_deref())
                ),
                None,
                Some(("application/json", body)),
            )
            .await
            .map_err(|e| e.with_context(&format!("error when creating \"{}\"", m.source)))?;
        return Ok((r, created, Outcome::Created));
    };
    let original: Option<Value> = current
        .pointer(&format!(
            "/metadata/annotations/{}",
            LAST_APPLIED.replace('~', "~0").replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok());
    let patch = three_way_merge(original.as_ref(), &modified, &current, r.schema())
        .map_err(|e| CliError::client(format!("creating patch for {name}: {e}")))?;
    if patch.as_object().is_some_and(Map::is_empty) {
        return Ok((r, current, Outcome::Unchanged));
    }
    let content_type = if r.builtin {
        "application/strategic-merge-patch+json"
    } else {
        "application/merge-patch+json"
    };
    let body = serde_json::to_vec(&patch)
        .map_err(|e| CliError::client(format!("encoding the patch for {name}: {e}")))?;
    let patched = api
        .request(
            Method::PATCH,
            &format!("{path}?fieldManager={APPLY_MANAGER}{dry}"),
            None,
            Some((content_type, body)),
        )
        .await
        .map_err(|e| {
            e.with_context(&format!(
                "error when applying patch to {} \"{name}\" from \"{}\"",
                r.qualified_plural(),
                m.source
            ))
        })?;
    Ok((r, patched, Outcome::Configured))
}

pub async fn run_create(args: CreateArgs) -> Result<()> {
    let output = args
        .output
        .as_deref()
        .map(|o| Output::parse(Some(o)))
        .transpose()?;
    let dry = dry_run_query(&args.dry_run)?;
    let manifests = manifest::read_all(&args.filename, args.recursive)?;
    if manifests.is_empty() {
        return Err(CliError::client("no objects passed to create"));
    }
    let api = Api::connect(&args.conn).await?;
    let mut errors = Vec::new();
    for m in &manifests {
        let result = async {
            let r = resource::for_object(&api, &m.object).await?;
            let ns = namespace_for(&api, &r, m)?;
            let mut obj = with_namespace(m.object.clone(), ns.as_deref());
            if args.save_config {
                obj = modified_configuration(&obj);
            }
            let body = serde_json::to_vec(&obj)
                .map_err(|e| CliError::client(format!("encoding the object: {e}")))?;
            let created = api
                .request(
                    Method::POST,
                    &format!(
                        "{}?fieldManager=kubectl-create{dry}",
                        r.collection_path(ns.as_deref())
                    ),
                    None,
                    Some(("application/json", body)),
                )
                .await
                .map_err(|e| e.with_context(&format!("error when creating \"{}\"", m.source)))?;
            Ok::<_, CliError>((r, created))
        }
        .await;
        match result {
            Ok((r, created)) => report(&output, &r, &created, "created", dry)?,
            Err(e) => errors.push(e),
        }
    }
    finish(errors)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn last_applied_like_kubectl() {
        let obj = json!({"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "c", "namespace": "default"}, "data": {"b": "2", "a": "1"}});
        let m = modified_configuration(&obj);
        assert_eq!(
            m["metadata"]["annotations"][LAST_APPLIED],
            "{\"apiVersion\":\"v1\",\"data\":{\"a\":\"1\",\"b\":\"2\"},\"kind\":\"ConfigMap\",\"metadata\":{\"annotations\":{},\"name\":\"c\",\"namespace\":\"default\"}}\n"
        );
        let again = modified_configuration(&m);
        assert_eq!(again, m);
    }
}
