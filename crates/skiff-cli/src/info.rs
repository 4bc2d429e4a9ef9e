//! `skiff api-resources` (from the registry, plus the cluster's CRDs) and `skiff version`.

use serde_json::{Value, json};
use skiff_api::registry;

use crate::client::{Api, ConnArgs};
use crate::printer::align;
use crate::yaml::to_yaml;
use crate::{CliError, Result};

#[derive(clap::Args, Debug)]
pub struct ApiResourcesArgs {
    /// true: only namespaced resources; false: only cluster-scoped ones.
    #[arg(long)]
    pub namespaced: Option<bool>,
    /// Limit to one API group ("" for the core group).
    #[arg(long)]
    pub api_group: Option<String>,
    /// wide (adds VERBS and CATEGORIES) or name.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    #[arg(long)]
    pub no_headers: bool,
    /// Limit to resources supporting these verbs.
    #[arg(long, value_delimiter = ',')]
    pub verbs: Vec<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

struct Row {
    name: String,
    short: Vec<String>,
    api_version: String,
    group: String,
    namespaced: bool,
    kind: String,
    verbs: Vec<String>,
    categories: Vec<String>,
}

pub async fn api_resources(args: ApiResourcesArgs) -> Result<()> {
    let mut rows: Vec<Row> = Vec::new();
    for g in registry::group_versions() {
        let v = g.preferred_version;
        for r in registry::resources_of(g.group, v) {
            rows.push(Row {
                name: r.plural.into(),
                short: r.short_names.iter().map(|s| s.to_string()).collect(),
                api_version: r.api_version(),
                group: r.group.into(),
                namespaced: r.namespaced,
                kind: r.kind.into(),
                verbs: r.verbs.iter().map(|s| s.to_string()).collect(),
                categories: r.categories.iter().map(|s| s.to_string()).collect(),
            });
        }
    }
    // Custom resources come from the cluster's CRDs; a cluster without them still lists built-ins.
    let api = Api::connect(&args.conn).await?;
    let crds = api
        .get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
        .await?;
    for crd in crds
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let spec = &crd["spec"];
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| a.iter().map(s).collect())
                .unwrap_or_default()
        };
        let version = spec["versions"]
            .as_array()
            .and_then(|vs| vs.iter().find(|v| v["storage"] == true).or(vs.first()))
            .map(|v| s(&v["name"]))
            .unwrap_or_default();
        rows.push(Row {
            name: s(&spec["names"]["plural"]),
            short: strings(&spec["names"]["shortNames"]),
            api_version: format!("{}/{version}", s(&spec["group"])),
            group: s(&spec["group"]),
            namespaced: spec["scope"] != "Cluster",
            kind: s(&spec["names"]["kind"]),
            verbs: [
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "create",
                "update",
                "watch",
            ]
            .iter()
            .map(|v| v.to_string())
            .collect(),
            categories: strings(&spec["names"]["categories"]),
        });
    }
    // kubectl sorts by group name, keeping discovery order within a group.
    rows.sort_by(|a, b| a.group.cmp(&b.group));
    rows.retain(|r| {
        args.namespaced.is_none_or(|n| n == r.namespaced)
            && args.api_group.as_ref().is_none_or(|g| *g == r.group)
            && args.verbs.iter().all(|v| r.verbs.contains(v))
    });
    let wide = match args.output.as_deref() {
        None => false,
        Some("wide") => true,
        Some("name") => {
            for r in &rows {
                if r.group.is_empty() {
                    println!("{}", r.name);
                } else {
                    println!("{}.{}", r.name, r.group);
                }
            }
            return Ok(());
        }
        Some(o) => {
            return Err(CliError::client(format!(
                "--output {o} is not available, allowed formats are: wide, name"
            )));
        }
    };
    let mut table = Vec::new();
    if !args.no_headers {
        let mut h: Vec<String> = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if wide {
            h.push("VERBS".into());
            h.push("CATEGORIES".into());
        }
        table.push(h);
    }
    for r in &rows {
        let mut cells = vec![
            r.name.clone(),
            r.short.join(","),
            r.api_version.clone(),
            r.namespaced.to_string(),
            r.kind.clone(),
        ];
        if wide {
            cells.push(format!("[{}]", r.verbs.join(" ")));
            cells.push(r.categories.join(","));
        }
        table.push(cells);
    }
    print!("{}", align(&table, &mut Vec::new()));
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct VersionArgs {
    /// Only the client version; no server needed.
    #[arg(long)]
    pub client: bool,
    /// yaml or json.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// The Kubernetes version this client speaks.
const CLIENT_KUBE_VERSION: &str = "v1.35.0";

pub async fn version(args: VersionArgs) -> Result<()> {
    let client = json!({
        "gitVersion": format!("{CLIENT_KUBE_VERSION}+skiff-{}", env!("CARGO_PKG_VERSION")),
        "major": "1",
        "minor": "35",
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        }),
    });
    let server = if args.client {
        None
    } else {
        let api = Api::connect(&args.conn).await?;
        Some(api.get("/version").await?)
    };
    match args.output.as_deref() {
        None => {
            println!(
                "Client Version: {}",
                client["gitVersion"].as_str().unwrap_or_default()
            );
            if let Some(s) = &server {
                println!(
                    "Server Version: {}",
                    s.get("gitVersion")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown")
                );
            }
        }
        Some(o @ ("yaml" | "json")) => {
            let mut v = json!({ "clientVersion": client });
            if let Some(s) = server {
                v["serverVersion"] = s;
            }
            if o == "yaml" {
                print!("{}", to_yaml(&v));
            } else {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }
        }
        Some(o) => {
            return Err(CliError::client(format!(
                "--output must be 'yaml' or 'json', not {o:?}"
            )));
        }
    }
    Ok(())
}
