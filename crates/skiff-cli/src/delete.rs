//! `skiff delete`: by file, by TYPE NAME or TYPE/NAME, by label selector or `--all`, with a
//! propagation policy, waiting for the objects to be gone.

use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};

use crate::client::{Api, ConnArgs, encode, parse_duration};
use crate::get::finish;
use crate::manifest;
use crate::resource::{self, Resource};
use crate::{CliError, Result};

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// TYPE NAME..., TYPE/NAME..., or TYPE with -l or --all.
    pub args: Vec<String>,
    /// Files, directories or `-` with the objects to delete.
    #[arg(short = 'f', long = "filename")]
    pub filename: Vec<String>,
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Delete the objects matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Delete the objects matching this field selector.
    #[arg(long)]
    pub field_selector: Option<String>,
    /// Delete every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// With -l or --all: in every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// background (default), foreground or orphan.
    #[arg(long, default_value = "background", num_args = 0..=1, default_missing_value = "background")]
    pub cascade: String,
    /// Wait for the objects to be gone before returning.
    #[arg(long, default_value = "true", num_args = 0..=1, default_missing_value = "true")]
    pub wait: String,
    /// How long to wait for the objects to be gone (0: 60s).
    #[arg(long, default_value = "0s")]
    pub timeout: String,
    /// Seconds given to the object to terminate gracefully (-1: the object's default).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub grace_period: i64,
    /// Same as --grace-period=1.
    #[arg(long)]
    pub now: bool,
    /// Immediate deletion (with --grace-period=0).
    #[arg(long)]
    pub force: bool,
    /// Treat a missing object as deleted.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Output format: only `name` is supported.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

struct Victim {
    resource: Resource,
    namespace: String,
    name: String,
}

fn propagation(cascade: &str) -> Result<&'static str> {
    match cascade {
        "background" | "true" => Ok("Background"),
        "foreground" => Ok("Foreground"),
        "orphan" | "false" => Ok("Orphan"),
        other => Err(CliError::client(format!(
            "invalid cascade value ({other}). Must be \"background\", \"foreground\", or \"orphan\""
        ))),
    }
}

pub async fn run(args: DeleteArgs) -> Result<()> {
    let policy = propagation(&args.cascade)?;
    let wait = match args.wait.as_str() {
        "true" => true,
        "false" => false,
        other => return Err(CliError::client(format!("invalid --wait value {other:?}"))),
    };
    let timeout = match parse_duration(&args.timeout)? {
        d if d.is_zero() => Duration::from_secs(60),
        d => d,
    };
    if let Some(o) = &args.output
        && o != "name"
    {
        return Err(CliError::client(format!(
            "unexpected -o output mode: {o}. We only support '-o name'"
        )));
    }
    let has_files = !args.filename.is_empty();
    if has_files && !args.args.is_empty() {
        return Err(CliError::client(
            "a resource cannot be retrieved by name and from files at the same time",
        ));
    }
    if !has_files && args.args.is_empty() {
        return Err(CliError::client(
            "You must provide one or more resources by argument or filename.",
        ));
    }
    let manifests = if has_files {
        manifest::read_all(&args.filename, args.recursive)?
    } else {
        Vec::new()
    };
    let api = Api::connect(&args.conn).await?;
    let mut errors = Vec::new();
    let mut victims = Vec::new();
    for m in &manifests {
        let r = resource::for_object(&api, &m.object).await?;
        let ns = m
            .object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(&api.namespace)
            .to_string();
        let name = m
            .object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        victims.push(Victim {
            resource: r,
            namespace: ns,
            name,
        });
    }
    if !has_files {
        let targets = resource::parse_targets(&api, &args.args).await?;
        let by_selection = args.all || args.selector.is_some() || args.field_selector.is_some();
        for t in targets {
            if !t.names.is_empty() {
                if by_selection {
                    return Err(CliError::client(
                        "name cannot be provided when a selector is specified",
                    ));
                }
                for name in t.names {
                    victims.push(Victim {
                        resource: t.resource.clone(),
                        namespace: api.namespace.clone(),
                        name,
                    });
                }
                continue;
            }
            if !by_selection {
                return Err(CliError::client(
                    "resource(s) were provided, but no name was specified",
                ));
            }
            let mut q = Vec::new();
            if let Some(l) = &args.selector {
                q.push(format!("labelSelector={}", encode(l)));
            }
            if let Some(f) = &args.field_selector {
                q.push(format!("fieldSelector={}", encode(f)));
            }
            let ns = (!args.all_namespaces).then_some(api.namespace.as_str());
            let path = format!("{}?{}", t.resource.collection_path(ns), q.join("&"));
            let list = api.get(&path).await?;
            for item in list
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                victims.push(Victim {
                    resource: t.resource.clone(),
                    namespace: item
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or(&api.namespace)
                        .to_string(),
                    name: item
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                });
            }
        }
        if victims.is_empty() {
            eprintln!("No resources found");
            return Ok(());
        }
    }
    let mut options =
        json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy});
    let grace = if args.force && args.grace_period < 0 {
        0
    } else if args.now {
        1
    } else {
        args.grace_period
    };
    if grace >= 0 {
        options["gracePeriodSeconds"] = json!(grace);
    }
    let body = serde_json::to_vec(&options)
        .map_err(|e| CliError::client(format!("encoding DeleteOptions: {e}")))?;
    let mut deleted: Vec<(Victim, Option<String>)> = Vec::new();
    for v in victims {
        let path = v.resource.object_path(&v.namespace, &v.name);
        match api
            .request(
                Method::DELETE,
                &path,
                None,
                Some(("application/json", body.clone())),
            )
            .await
        {
            Ok(answer) => {
                let uid = answer
                    .pointer("/metadata/uid")
                    .or_else(|| answer.pointer("/details/uid"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if args.output.is_some() {
                    println!("{}/{}", v.resource.name_prefix(), v.name);
                } else {
                    let from = if v.resource.namespaced {
                        format!(" from {} namespace", v.namespace)
                    } else {
                        String::new()
                    };
                    println!("{} \"{}\" deleted{from}", v.resource.name_prefix(), v.name);
                }
                deleted.push((v, uid));
            }
            Err(e) if e.is_not_found() && args.ignore_not_found => {}
            Err(e) => errors.push(e),
        }
    }
    if wait {
        let deadline = Instant::now() + timeout;
        for (v, uid) in &deleted {
            if let Err(e) = wait_gone(&api, v, uid.as_deref(), deadline).await {
                errors.push(e);
            }
        }
    }
    finish(errors)
}

/// Polls until the object is gone (or replaced by a new one with another uid).
async fn wait_gone(api: &Api, v: &Victim, uid: Option<&str>, deadline: Instant) -> Result<()> {
    let path = v.resource.object_path(&v.namespace, &v.name);
    loop {
        match api.get(&path).await {
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
            Ok(obj) => {
                let now_uid = obj.pointer("/metadata/uid").and_then(Value::as_str);
                if uid.is_some() && now_uid != uid {
                    return Ok(());
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(CliError::client(format!(
                "timed out waiting for the condition on {}/{}",
                v.resource.plural, v.name
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
