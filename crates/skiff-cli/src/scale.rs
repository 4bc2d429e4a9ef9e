//! `skiff scale --replicas=N`: a merge patch of the `scale` subresource.

use http::Method;
use serde_json::{Value, json};

use crate::client::{Api, ConnArgs, encode};
use crate::get::finish;
use crate::resource;
use crate::{CliError, Result};

#[derive(clap::Args, Debug)]
pub struct ScaleArgs {
    /// TYPE NAME... or TYPE/NAME...
    pub args: Vec<String>,
    /// The new desired number of replicas.
    #[arg(long)]
    pub replicas: i64,
    /// Only scale if the current number of replicas is this.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub current_replicas: i64,
    /// Only scale if the object still has this resourceVersion.
    #[arg(long)]
    pub resource_version: Option<String>,
    /// Scale the objects matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Scale every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

pub async fn run(args: ScaleArgs) -> Result<()> {
    if args.replicas < 0 {
        return Err(CliError::client(
            "The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0",
        ));
    }
    let api = Api::connect(&args.conn).await?;
    let targets = resource::parse_targets(&api, &args.args).await?;
    let mut errors = Vec::new();
    for t in targets {
        let mut names = t.names.clone();
        if names.is_empty() {
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
            names = list
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|i| i.pointer("/metadata/name").and_then(Value::as_str))
                .map(str::to_string)
                .collect();
        }
        for name in names {
            let path = format!("{}/scale", t.resource.object_path(&api.namespace, &name));
            let result = async {
                if args.current_replicas >= 0 || args.resource_version.is_some() {
                    let scale = api.get(&path).await?;
                    let current = scale
                        .pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    if args.current_replicas >= 0 && current != args.current_replicas {
                        return Err(CliError::client(format!(
                            "Expected replicas to be {}, was {current}",
                            args.current_replicas
                        )));
                    }
                }
                let mut patch = json!({"spec": {"replicas": args.replicas}});
                if let Some(rv) = &args.resource_version {
                    patch["metadata"] = json!({"resourceVersion": rv});
                }
                let body = serde_json::to_vec(&patch)
                    .map_err(|e| CliError::client(format!("encoding the patch: {e}")))?;
                api.request(
                    Method::PATCH,
                    &format!("{path}?fieldManager=kubectl-scale"),
                    None,
                    Some(("application/merge-patch+json", body)),
                )
                .await
            }
            .await;
            match result {
                Ok(_) => println!("{}/{name} scaled", t.resource.name_prefix()),
                Err(e) => errors.push(e),
            }
        }
    }
    finish(errors)
}
