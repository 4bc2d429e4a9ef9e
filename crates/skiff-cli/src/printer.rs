//! Output as kubectl prints it: `-o` formats, server-side Tables aligned like Go's tabwriter.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::jsonpath::{Template, relaxed, text};
use crate::resource::Resource;
use crate::yaml::{to_go_json, to_yaml};
use crate::{CliError, Result};

/// kubectl's tabwriter: minimum width 6, padding 3, and widths remembered across flushes.
const MIN_WIDTH: usize = 6;
const PADDING: usize = 3;

#[derive(Debug, Clone)]
pub enum Output {
    Table,
    Wide,
    Yaml,
    Json,
    Name,
    JsonPath(Template),
    CustomColumns(Vec<(String, Template)>),
}

impl Output {
    pub fn parse(o: Option<&str>) -> Result<Output> {
        let Some(o) = o else {
            return Ok(Output::Table);
        };
        let (kind, arg) = o.split_once('=').unwrap_or((o, ""));
        let template = |t: &str| {
            Template::parse(t)
                .map_err(|e| CliError::client(format!("error parsing jsonpath {t}, {e}")))
        };
        match kind {
            "" => Ok(Output::Table),
            "wide" => Ok(Output::Wide),
            "yaml" => Ok(Output::Yaml),
            "json" => Ok(Output::Json),
            "name" => Ok(Output::Name),
            "jsonpath" if !arg.is_empty() => Ok(Output::JsonPath(template(arg)?)),
            "custom-columns" if !arg.is_empty() => {
                let mut cols = Vec::new();
                for spec in arg.split(',') {
                    let (name, path) = spec.split_once(':').ok_or_else(|| {
                        CliError::client(format!(
                            "unexpected custom-columns spec: {spec}, expected <header>:<json-path-expr>"
                        ))
                    })?;
                    cols.push((name.to_string(), template(&relaxed(path))?));
                }
                Ok(Output::CustomColumns(cols))
            }
            "jsonpath" | "custom-columns" => Err(CliError::client(format!(
                "{kind} format specified but no {kind} template given"
            ))),
            _ => Err(CliError::client(format!(
                "unable to match a printer suitable for the output format \"{o}\", allowed formats are: custom-columns,json,jsonpath,name,wide,yaml"
            ))),
        }
    }

    pub fn is_table(&self) -> bool {
        matches!(self, Output::Table | Output::Wide)
    }
}

/// Aligns rows of cells as Go's text/tabwriter does with kubectl's settings: every cell but
/// the last of a row is padded to its column's width. `widths` carries over between calls.
pub fn align(rows: &[Vec<String>], widths: &mut Vec<usize>) -> String {
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            let w = (cell.chars().count() + PADDING).max(MIN_WIDTH);
            if widths.len() <= i {
                widths.push(w);
            } else if widths[i] < w {
                widths[i] = w;
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// How a server Table is turned into rows.
#[derive(Debug, Clone, Default)]
pub struct TableOptions {
    pub wide: bool,
    pub with_namespace: bool,
    pub show_labels: bool,
    pub no_headers: bool,
    /// `deployment.apps/` before each name, when several kinds are printed together.
    pub kind_prefix: Option<String>,
    /// Extra columns from labels (`-L`).
    pub label_columns: Vec<String>,
}

/// The header (unless `no_headers`) and rows of a server Table.
pub fn table_rows(table: &Value, opts: &TableOptions) -> (Option<Vec<String>>, Vec<Vec<String>>) {
    let defs: Vec<&Value> = table
        .get("columnDefinitions")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let shown: Vec<bool> = defs
        .iter()
        .map(|d| opts.wide || d.get("priority").and_then(Value::as_i64).unwrap_or(0) == 0)
        .collect();
    let name_col = defs
        .iter()
        .position(|d| d.get("name").and_then(Value::as_str) == Some("Name"));
    let header = (!opts.no_headers && !defs.is_empty()).then(|| {
        let mut h = Vec::new();
        if opts.with_namespace {
            h.push("NAMESPACE".to_string());
        }
        for (d, show) in defs.iter().zip(&shown) {
            if *show {
                h.push(
                    d.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_uppercase(),
                );
            }
        }
        for l in &opts.label_columns {
            h.push(l.rsplit('/').next().unwrap_or(l).to_uppercase());
        }
        if opts.show_labels {
            h.push("LABELS".to_string());
        }
        h
    });
    let mut rows = Vec::new();
    for row in table
        .get("rows")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let meta = row
            .pointer("/object/metadata")
            .cloned()
            .unwrap_or(json!({}));
        let mut cells = Vec::new();
        if opts.with_namespace {
            cells.push(
                meta.get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            );
        }
        let values = row
            .get("cells")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, show) in shown.iter().enumerate() {
            if !show {
                continue;
            }
            let mut cell = values.get(i).map(cell_text).unwrap_or_default();
            if Some(i) == name_col
                && let Some(p) = &opts.kind_prefix
            {
                cell = format!("{p}/{cell}");
            }
            cells.push(cell);
        }
        let labels = labels_of(&meta);
        for l in &opts.label_columns {
            cells.push(labels.get(l).cloned().unwrap_or_default());
        }
        if opts.show_labels {
            cells.push(format_labels(&labels));
        }
        rows.push(cells);
    }
    (header, rows)
}

fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => match s.find(['\n', '\r', '\u{c}']) {
            Some(i) => format!("{}...", &s[..i]),
            None => s.clone(),
        },
        other => text(other),
    }
}

pub fn labels_of(meta: &Value) -> BTreeMap<String, String> {
    meta.get("labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// `k=v,k2=v2`, or `<none>`.
pub fn format_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "<none>".into();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `deployment.apps/web`.
pub fn object_name(r: &Resource, obj: &Value) -> String {
    format!(
        "{}/{}",
        r.name_prefix(),
        obj.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    )
}

/// Fills in apiVersion and kind, which list items come without.
pub fn with_type(r: &Resource, mut obj: Value) -> Value {
    if let Value::Object(m) = &mut obj {
        if !m.contains_key("apiVersion") {
            m.insert("apiVersion".into(), json!(r.api_version()));
        }
        if !m.contains_key("kind") {
            m.insert("kind".into(), json!(r.kind));
        }
    }
    obj
}

/// kubectl's `List` wrapper for several objects.
pub fn list_of(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}})
}

/// Prints objects (already typed) in a non-table format. `single` prints one object bare.
pub fn print_objects(out: &Output, objects: &[(Resource, Value)], single: bool) -> Result<String> {
    let whole = || {
        if single && objects.len() == 1 {
            objects[0].1.clone()
        } else {
            list_of(objects.iter().map(|(_, o)| o.clone()).collect())
        }
    };
    Ok(match out {
        Output::Yaml => to_yaml(&whole()),
        Output::Json => format!("{}\n", to_go_json(&whole())),
        Output::Name => objects
            .iter()
            .map(|(r, o)| format!("{}\n", object_name(r, o)))
            .collect(),
        Output::JsonPath(t) => t.execute(&whole()),
        Output::CustomColumns(cols) => {
            let mut rows = vec![cols.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()];
            for (_, o) in objects {
                rows.push(custom_row(cols, o));
            }
            align(&rows, &mut Vec::new())
        }
        Output::Table | Output::Wide => {
            return Err(CliError::client("table output needs the server's table"));
        }
    })
}

pub fn custom_row(cols: &[(String, Template)], o: &Value) -> Vec<String> {
    cols.iter()
        .map(|(_, t)| {
            let vals = t.values(o);
            if vals.is_empty() {
                "<none>".to_string()
            } else {
                vals.iter().map(text).collect::<Vec<_>>().join(",")
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tabwriter_alignment() {
        let rows = vec![
            vec!["NAME".to_string(), "READY".into(), "AGE".into()],
            vec!["web".to_string(), "3/3".into(), "5s".into()],
        ];
        assert_eq!(
            align(&rows, &mut Vec::new()),
            "NAME   READY   AGE\nweb    3/3     5s\n"
        );
        let rows = vec![vec!["A".to_string(), "B".into()]];
        assert_eq!(align(&rows, &mut Vec::new()), "A     B\n");
    }

    #[test]
    fn table_from_server() {
        let t = json!({
            "columnDefinitions": [
                {"name": "Name", "priority": 0}, {"name": "Ready", "priority": 0},
                {"name": "Images", "priority": 1}
            ],
            "rows": [{"cells": ["web", "1/1", "nginx"], "object": {"metadata": {"namespace": "ns", "labels": {"b": "2", "a": "1"}}}}]
        });
        let opts = TableOptions {
            with_namespace: true,
            show_labels: true,
            ..Default::default()
        };
        let (h, rows) = table_rows(&t, &opts);
        assert_eq!(h.unwrap(), ["NAMESPACE", "NAME", "READY", "LABELS"]);
        assert_eq!(rows[0], ["ns", "web", "1/1", "a=1,b=2"]);
        let (h, _) = table_rows(
            &t,
            &TableOptions {
                wide: true,
                ..Default::default()
            },
        );
        assert_eq!(h.unwrap(), ["NAME", "READY", "IMAGES"]);
    }

    #[test]
    fn output_flags() {
        assert!(matches!(Output::parse(Some("wide")), Ok(Output::Wide)));
        assert!(Output::parse(Some("bogus")).is_err());
        assert!(Output::parse(Some("jsonpath=")).is_err());
        assert!(Output::parse(Some("custom-columns=NAME")).is_err());
        assert!(matches!(
            Output::parse(Some("custom-columns=NAME:.metadata.name")),
            Ok(Output::CustomColumns(_))
        ));
    }
}
