//! Reading `-f` sources: files, directories and stdin, each holding multi-document YAML or JSON.

use std::io::Read;
use std::path::Path;

use serde_json::Value;

use crate::{CliError, Result};

/// One object from a manifest, with where it came from (for error messages).
pub struct Manifest {
    pub source: String,
    pub object: Value,
}

/// Reads every object from the `-f` arguments, in order; `kind: List` documents are expanded.
pub fn read_all(sources: &[String], recursive: bool) -> Result<Vec<Manifest>> {
    if sources.is_empty() {
        return Err(CliError::client(
            "must specify one of -f and -k (no file names given)",
        ));
    }
    let mut out = Vec::new();
    for s in sources {
        if s == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| CliError::client(format!("reading stdin: {e}")))?;
            parse_into("STDIN", &text, &mut out)?;
            continue;
        }
        let path = Path::new(s);
        if !path.exists() {
            return Err(CliError::client(format!("the path \"{s}\" does not exist")));
        }
        if path.is_dir() {
            read_dir(path, recursive, &mut out)?;
        } else {
            read_file(path, &mut out)?;
        }
    }
    Ok(out)
}

fn read_dir(dir: &Path, recursive: bool, out: &mut Vec<Manifest>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| CliError::client(format!("reading {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if recursive {
                read_dir(&p, recursive, out)?;
            }
            continue;
        }
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if matches!(ext, "yaml" | "yml" | "json") {
            read_file(&p, out)?;
        }
    }
    Ok(())
}

fn read_file(path: &Path, out: &mut Vec<Manifest>) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::client(format!("reading {}: {e}", path.display())))?;
    parse_into(&path.display().to_string(), &text, out)
}

/// Parses a multi-document YAML (or JSON) text; empty documents are skipped.
pub fn parse_documents(text: &str) -> std::result::Result<Vec<Value>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        return Ok(vec![v]);
    }
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| {
        // The parser's messages carry a source snippet over several lines: keep the first.
        e.to_string()
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("invalid YAML")
            .trim()
            .to_string()
    })?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn parse_into(source: &str, text: &str, out: &mut Vec<Manifest>) -> Result<()> {
    let docs = parse_documents(text)
        .map_err(|e| CliError::client(format!("error parsing {source}: {e}")))?;
    for doc in docs {
        if !doc.is_object() {
            return Err(CliError::client(format!(
                "error parsing {source}: a document is not an object"
            )));
        }
        if doc.get("kind").and_then(Value::as_str) == Some("List")
            && let Some(items) = doc.get("items").and_then(Value::as_array)
        {
            for item in items {
                out.push(Manifest {
                    source: source.to_string(),
                    object: item.clone(),
                });
            }
            continue;
        }
        out.push(Manifest {
            source: source.to_string(),
            object: doc,
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn multi_document() {
        let docs = parse_documents("---\na: 1\n---\n# only a comment\n---\nb: [x, w]\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["b"][1], "w");
        assert_eq!(docs[0]["a"], 1);
    }

    #[test]
    fn malformed_is_one_line() {
        let e = parse_documents("a: [1, 2\nb: :\n").unwrap_err();
        assert!(!e.contains('\n'), "{e}");
    }
}
