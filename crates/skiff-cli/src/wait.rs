//! `skiff wait --for=condition=X[=v] | delete | jsonpath='{...}'=v`, polling until `--timeout`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::{Api, ConnArgs, encode, parse_duration};
use crate::jsonpath::{Template, relaxed, text};
use crate::manifest;
use crate::resource::{self, Resource};
use crate::{CliError, Result};

#[derive(clap::Args, Debug)]
pub struct WaitArgs {
    /// TYPE NAME..., TYPE/NAME..., or TYPE with -l or --all.
    pub args: Vec<String>,
    /// condition=NAME[=VALUE], delete, create, or jsonpath='{.path}'[=VALUE].
    #[arg(long = "for")]
    pub for_: String,
    /// How long to wait (default 30s).
    #[arg(long, default_value = "30s")]
    pub timeout: String,
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    #[arg(long)]
    pub all: bool,
    #[arg(short = 'f', long = "filename")]
    pub filename: Vec<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

enum Condition {
    Delete,
    Create,
    Status(String, String),
    JsonPath(Template, String, Option<String>),
}

fn parse_for(s: &str) -> Result<Condition> {
    if s == "delete" {
        return Ok(Condition::Delete);
    }
    if s == "create" {
        return Ok(Condition::Create);
    }
    if let Some(c) = s.strip_prefix("condition=") {
        let (name, value) = c.split_once('=').unwrap_or((c, "true"));
        if name.is_empty() {
            return Err(CliError::client("condition name cannot be empty"));
        }
        return Ok(Condition::Status(name.to_string(), value.to_string()));
    }
    if let Some(j) = s.strip_prefix("jsonpath=") {
        // The expression ends at the last `}` followed by `=`, or is the whole argument.
        let (expr, value) = match j.rfind("}=") {
            Some(i) => (&j[..=i], Some(j[i + 2..].to_string())),
            None => match j.split_once('=').filter(|_| !j.starts_with('{')) {
                Some((e, v)) => (e, Some(v.to_string())),
                None => (j, None),
            },
        };
        let expr = relaxed(expr);
        let t = Template::parse(&expr).map_err(|e| {
            CliError::client(format!("unrecognized JSONPath expression {expr}: {e}"))
        })?;
        return Ok(Condition::JsonPath(t, expr, value));
    }
    Err(CliError::client(format!("unrecognized condition: \"{s}\"")))
}

fn met(cond: &Condition, obj: &Value) -> bool {
    match cond {
        Condition::Delete => false,
        Condition::Create => true,
        Condition::Status(name, value) => obj
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| {
                c.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.eq_ignore_ascii_case(name))
                    && c.get("status")
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.eq_ignore_ascii_case(value))
            }),
        Condition::JsonPath(t, _, value) => {
            let vals = t.values(obj);
            match value {
                None => !vals.is_empty(),
                Some(v) => {
                    vals.len() == 1
                        && !vals[0].is_object()
                        && !vals[0].is_array()
                        && text(&vals[0]) == *v
                }
            }
        }
    }
}

pub async fn run(args: WaitArgs) -> Result<()> {
    let cond = parse_for(&args.for_)?;
    let timeout = parse_duration(&args.timeout)?;
    let deadline = Instant::now() + timeout;
    let api = Api::connect(&args.conn).await?;
    let mut objects: Vec<(Resource, String)> = Vec::new();
    let manifests = if args.filename.is_empty() {
        Vec::new()
    } else {
        manifest::read_all(&args.filename, false)?
    };
    for m in manifests {
        let r = resource::for_object(&api, &m.object).await?;
        let name = m
            .object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        objects.push((r, name.to_string()));
    }
    if objects.is_empty() {
        for t in resource::parse_targets(&api, &args.args).await? {
            if !t.names.is_empty() {
                objects.extend(t.names.iter().map(|n| (t.resource.clone(), n.clone())));
                continue;
            }
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
            let names: Vec<String> = list
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|i| i.pointer("/metadata/name").and_then(Value::as_str))
                .map(str::to_string)
                .collect();
            if names.is_empty() {
                return Err(CliError::client("no matching resources found"));
            }
            objects.extend(names.into_iter().map(|n| (t.resource.clone(), n)));
        }
    }
    for (r, name) in &objects {
        wait_one(&api, &cond, r, name, deadline).await?;
        println!("{}/{name} condition met", r.name_prefix());
    }
    Ok(())
}

async fn wait_one(
    api: &Api,
    cond: &Condition,
    r: &Resource,
    name: &str,
    deadline: Instant,
) -> Result<()> {
    let path = r.object_path(&api.namespace, name);
    let mut seen = false;
    loop {
        match api.get(&path).await {
            Ok(obj) => {
                seen = true;
                if met(cond, &obj) {
                    return Ok(());
                }
            }
            Err(e) if e.is_not_found() => match cond {
                Condition::Delete => return Ok(()),
                Condition::Create => {}
                _ if !seen => return Err(e),
                _ => {}
            },
            Err(e) => return Err(e),
        }
        if Instant::now() >= deadline {
            let what = match cond {
                Condition::JsonPath(_, expr, Some(v)) => {
                    format!(
                        "timed out waiting for the condition on {}/{name}: jsonpath {expr} is not {v}",
                        r.plural
                    )
                }
                _ => format!("timed out waiting for the condition on {}/{name}", r.plural),
            };
            return Err(CliError::client(what));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(left.min(Duration::from_millis(200))).await;
    }
}
