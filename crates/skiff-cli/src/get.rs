//! `skiff get`: server-side Tables for human output, objects for `-o yaml|json|name|jsonpath|
//! custom-columns`, and `-w` watches.

use http::Method;
use serde_json::Value;

use crate::client::{ACCEPT_TABLE, Api, ConnArgs, encode};
use crate::printer::{self, Output, TableOptions, align, table_rows, with_type};
use crate::resource::{self, Resource, Target};
use crate::{CliError, Result};

#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// TYPE[,TYPE...] [NAME...] or TYPE/NAME...
    pub args: Vec<String>,
    /// Output format: wide, yaml, json, name, jsonpath=..., custom-columns=...
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// After listing/getting the requested objects, watch for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Watch for changes without listing first.
    #[arg(long)]
    pub watch_only: bool,
    /// Label selector to filter on (e.g. -l key1=value1,key2=value2).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector to filter on (e.g. --field-selector metadata.name=x).
    #[arg(long)]
    pub field_selector: Option<String>,
    /// List the requested objects across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Show all labels as the last column.
    #[arg(long)]
    pub show_labels: bool,
    /// Do not print headers.
    #[arg(long)]
    pub no_headers: bool,
    /// Labels to show as columns.
    #[arg(short = 'L', long = "label-columns", value_delimiter = ',')]
    pub label_columns: Vec<String>,
    /// Do not fail when a named object does not exist.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Keep metadata.managedFields in yaml and json output.
    #[arg(long)]
    pub show_managed_fields: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

fn query(args: &GetArgs, extra: &[(&str, String)]) -> String {
    let mut q: Vec<String> = Vec::new();
    if let Some(l) = &args.selector {
        q.push(format!("labelSelector={}", encode(l)));
    }
    if let Some(f) = &args.field_selector {
        q.push(format!("fieldSelector={}", encode(f)));
    }
    for (k, v) in extra {
        q.push(format!("{k}={}", encode(v)));
    }
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

pub async fn run(args: GetArgs) -> Result<()> {
    let output = Output::parse(args.output.as_deref())?;
    let api = Api::connect(&args.conn).await?;
    if args.args.is_empty() {
        return Err(CliError::client(
            "You must specify the type of resource to get. Use \"skiff api-resources\" for a complete list of supported resources.",
        ));
    }
    let targets = resource::parse_targets(&api, &args.args).await?;
    if (args.selector.is_some() || args.field_selector.is_some())
        && targets.iter().any(|t| !t.names.is_empty())
    {
        return Err(CliError::client(
            "name cannot be provided when a selector is specified",
        ));
    }
    let ns = (!args.all_namespaces).then(|| api.namespace.clone());
    if args.watch || args.watch_only {
        if targets.len() != 1 {
            return Err(CliError::client(
                "you may only specify a single resource type when watching",
            ));
        }
        return watch(&api, &args, &output, &targets[0], ns.as_deref()).await;
    }
    let mut errors: Vec<CliError> = Vec::new();
    let several = targets.len() > 1;
    if output.is_table() {
        let mut printed_any = false;
        for t in &targets {
            let table = match fetch_table(&api, &args, t, ns.as_deref(), &mut errors).await {
                Ok(t) => t,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let Some(table) = table else { continue };
            let opts = table_options(&args, &output, &t.resource, several);
            let (header, rows) = table_rows(&table, &opts);
            if rows.is_empty() {
                continue;
            }
            if printed_any {
                println!();
            }
            printed_any = true;
            let mut all = Vec::new();
            all.extend(header);
            all.extend(rows);
            print!("{}", align(&all, &mut Vec::new()));
        }
        if !printed_any && errors.is_empty() {
            no_resources(&targets, ns.as_deref(), args.all_namespaces);
        }
    } else {
        let mut objects: Vec<(Resource, Value)> = Vec::new();
        let mut single = false;
        for t in &targets {
            if t.names.is_empty() {
                let path = format!(
                    "{}{}",
                    t.resource.collection_path(ns.as_deref()),
                    query(&args, &[])
                );
                match api.get(&path).await {
                    Ok(list) => {
                        for item in list
                            .get("items")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default()
                        {
                            objects.push((t.resource.clone(), typed(&args, &t.resource, item)));
                        }
                    }
                    Err(e) => errors.push(e),
                }
            } else {
                single = targets.len() == 1 && t.names.len() == 1;
                for name in &t.names {
                    let path = t.resource.object_path(&api.namespace, name);
                    match api.get(&path).await {
                        Ok(obj) => {
                            objects.push((t.resource.clone(), typed(&args, &t.resource, obj)))
                        }
                        Err(e) if e.is_not_found() && args.ignore_not_found => {}
                        Err(e) => errors.push(e),
                    }
                }
            }
        }
        if !(single && objects.is_empty()) {
            print!("{}", printer::print_objects(&output, &objects, single)?);
        }
    }
    finish(errors)
}

/// Prints every error but the last, which becomes the command's error.
pub fn finish(mut errors: Vec<CliError>) -> Result<()> {
    let last = errors.pop();
    for e in errors {
        eprintln!("{e}");
    }
    match last {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn no_resources(targets: &[Target], ns: Option<&str>, all: bool) {
    let namespaced = targets.iter().all(|t| t.resource.namespaced);
    match ns {
        Some(ns) if namespaced && !all => eprintln!("No resources found in {ns} namespace."),
        _ => eprintln!("No resources found"),
    }
}

fn table_options(args: &GetArgs, output: &Output, r: &Resource, several: bool) -> TableOptions {
    TableOptions {
        wide: matches!(output, Output::Wide),
        with_namespace: args.all_namespaces && r.namespaced,
        show_labels: args.show_labels,
        no_headers: args.no_headers,
        kind_prefix: several.then(|| r.name_prefix()),
        label_columns: args.label_columns.clone(),
    }
}

/// The Table of one target: its collection, or its named objects merged into one table.
async fn fetch_table(
    api: &Api,
    args: &GetArgs,
    t: &Target,
    ns: Option<&str>,
    errors: &mut Vec<CliError>,
) -> Result<Option<Value>> {
    if t.names.is_empty() {
        let path = format!("{}{}", t.resource.collection_path(ns), query(args, &[]));
        return api
            .request(Method::GET, &path, Some(ACCEPT_TABLE), None)
            .await
            .map(Some);
    }
    let mut merged: Option<Value> = None;
    for name in &t.names {
        let path = t.resource.object_path(&api.namespace, name);
        match api
            .request(Method::GET, &path, Some(ACCEPT_TABLE), None)
            .await
        {
            Ok(table) => match &mut merged {
                None => merged = Some(table),
                Some(m) => {
                    let rows = table.get("rows").and_then(Value::as_array).cloned();
                    if let (Some(Value::Array(into)), Some(rows)) = (m.get_mut("rows"), rows) {
                        into.extend(rows);
                    }
                }
            },
            Err(e) if e.is_not_found() && args.ignore_not_found => {}
            Err(e) => errors.push(e),
        }
    }
    Ok(merged)
}

async fn watch(
    api: &Api,
    args: &GetArgs,
    output: &Output,
    t: &Target,
    ns: Option<&str>,
) -> Result<()> {
    let r = &t.resource;
    if t.names.len() > 1 {
        return Err(CliError::client(
            "watch is only supported on individual resources and resource collections, but 2 resources were found",
        ));
    }
    let mut field_selector = args.field_selector.clone();
    if let Some(name) = t.names.first() {
        let f = format!("metadata.name={name}");
        field_selector = Some(match field_selector {
            Some(s) => format!("{s},{f}"),
            None => f,
        });
    }
    let list_ns = if t.names.is_empty() {
        ns.map(str::to_string)
    } else {
        Some(api.namespace.clone())
    };
    let sel_args = GetArgs {
        field_selector,
        args: Vec::new(),
        output: None,
        watch: false,
        watch_only: false,
        selector: args.selector.clone(),
        all_namespaces: args.all_namespaces,
        show_labels: false,
        no_headers: false,
        label_columns: Vec::new(),
        ignore_not_found: false,
        show_managed_fields: args.show_managed_fields,
        conn: args.conn.clone(),
    };
    let collection = r.collection_path(list_ns.as_deref());
    let opts = table_options(args, output, r, false);
    let mut widths = Vec::new();
    let mut header_printed = false;
    // The initial list gives the resourceVersion to watch from.
    let accept = output.is_table().then_some(ACCEPT_TABLE);
    let list = api
        .request(
            Method::GET,
            &format!("{collection}{}", query(&sel_args, &[])),
            accept,
            None,
        )
        .await?;
    // Watch events carry their column definitions only once (or not at all): keep the list's.
    let mut columns = list
        .get("columnDefinitions")
        .cloned()
        .unwrap_or(Value::Null);
    let mut rv = list
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !args.watch_only {
        if output.is_table() {
            let (header, rows) = table_rows(&list, &opts);
            let mut all = Vec::new();
            if !rows.is_empty() || !t.names.is_empty() {
                all.extend(header);
                header_printed = true;
            }
            all.extend(rows);
            print!("{}", align(&all, &mut widths));
        } else {
            for item in list
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                print_watched(output, r, typed(args, r, item))?;
            }
        }
    }
    loop {
        let path = format!(
            "{collection}{}",
            query(
                &sel_args,
                &[
                    ("watch", "1".into()),
                    ("resourceVersion", rv.clone()),
                    ("allowWatchBookmarks", "true".into()),
                    ("timeoutSeconds", "300".into()),
                ]
            )
        );
        let mut stream = api.watch(&path, accept).await?;
        while let Some(ev) = stream.next().await? {
            let obj = ev.get("object").cloned().unwrap_or(Value::Null);
            if ev.get("type").and_then(Value::as_str) == Some("BOOKMARK") {
                if let Some(v) = obj
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                {
                    rv = v.to_string();
                }
                continue;
            }
            if output.is_table() {
                if let Some(v) = obj
                    .pointer("/rows/0/object/metadata/resourceVersion")
                    .and_then(Value::as_str)
                {
                    rv = v.to_string();
                }
                let mut obj = obj;
                match obj.get("columnDefinitions").and_then(Value::as_array) {
                    Some(defs) if !defs.is_empty() => {
                        columns = Value::Array(defs.clone());
                    }
                    _ => {
                        if let Some(m) = obj.as_object_mut() {
                            m.insert("columnDefinitions".into(), columns.clone());
                        }
                    }
                }
                let (header, rows) = table_rows(&obj, &opts);
                let mut all = Vec::new();
                if !header_printed {
                    all.extend(header);
                    header_printed = true;
                }
                all.extend(rows);
                print!("{}", align(&all, &mut widths));
            } else {
                if let Some(v) = obj
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                {
                    rv = v.to_string();
                }
                print_watched(output, r, typed(args, r, obj))?;
            }
        }
    }
}

/// The object as `-o yaml|json` shows it: typed, without managedFields unless asked for.
fn typed(args: &GetArgs, r: &Resource, obj: Value) -> Value {
    let mut obj = with_type(r, obj);
    if !args.show_managed_fields
        && let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut)
    {
        m.remove("managedFields");
    }
    obj
}

fn print_watched(output: &Output, r: &Resource, obj: Value) -> Result<()> {
    let text = printer::print_objects(output, &[(r.clone(), obj)], true)?;
    if matches!(output, Output::Yaml) {
        print!("---\n{text}");
    } else {
        print!("{text}");
    }
    Ok(())
}
