//! `skiff edit`: the object as YAML in `$KUBE_EDITOR`/`$EDITOR` (else vi), PUT back; a
//! rejected edit reopens with the server's error on top, as kubectl does.

use std::io::Write;

use http::Method;
use serde_json::Value;

use crate::client::{Api, ConnArgs};
use crate::manifest::parse_documents;
use crate::resource;
use crate::yaml::{to_go_json, to_yaml};
use crate::{CliError, Result};

#[derive(clap::Args, Debug)]
pub struct EditArgs {
    /// TYPE NAME or TYPE/NAME.
    pub args: Vec<String>,
    /// The format to edit in: yaml (default) or json.
    #[arg(short = 'o', long, default_value = "yaml")]
    pub output: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

const HEADER: &str = "# Please edit the object below. Lines beginning with a '#' will be ignored,
# and an empty file will abort the edit. If an error occurs while saving this file will be
# reopened with the relevant failures.
#
";

fn editor() -> String {
    ["KUBE_EDITOR", "EDITOR"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "vi".to_string())
}

/// Runs the editor on `path` and waits for it (interactive: no time bound).
async fn run_editor(path: &std::path::Path) -> Result<()> {
    let ed = editor();
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{ed} \"$1\""))
        .arg("sh")
        .arg(path)
        .status()
        .await
        .map_err(|e| CliError::client(format!("cannot run the editor {ed:?}: {e}")))?;
    if !status.success() {
        return Err(CliError::client(format!(
            "there was a problem with the editor \"{ed}\""
        )));
    }
    Ok(())
}

fn strip_comments(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

pub async fn run(args: EditArgs) -> Result<()> {
    let json = match args.output.as_str() {
        "yaml" => false,
        "json" => true,
        o => {
            return Err(CliError::client(format!(
                "the edit mode {o:?} is not supported: use yaml or json"
            )));
        }
    };
    let api = Api::connect(&args.conn).await?;
    let targets = resource::parse_targets(&api, &args.args).await?;
    for t in targets {
        if t.names.is_empty() {
            return Err(CliError::client(
                "resource(s) were provided, but no name was specified",
            ));
        }
        for name in &t.names {
            let path = t.resource.object_path(&api.namespace, name);
            let original = crate::printer::with_type(&t.resource, api.get(&path).await?);
            let render = |v: &Value| {
                if json {
                    format!("{}\n", to_go_json(v))
                } else {
                    to_yaml(v)
                }
            };
            let mut error_header = String::new();
            let mut body = render(&original);
            loop {
                let presented = format!("{HEADER}{error_header}{body}");
                let mut file = tempfile::Builder::new()
                    .prefix("skiff-edit-")
                    .suffix(if json { ".json" } else { ".yaml" })
                    .tempfile()
                    .map_err(|e| CliError::client(format!("cannot create a temp file: {e}")))?;
                file.write_all(presented.as_bytes())
                    .and_then(|_| file.flush())
                    .map_err(|e| CliError::client(format!("cannot write the temp file: {e}")))?;
                run_editor(file.path()).await?;
                let edited = std::fs::read_to_string(file.path())
                    .map_err(|e| CliError::client(format!("cannot read the edited file: {e}")))?;
                let content = strip_comments(&edited);
                if content.trim().is_empty() {
                    println!("Edit cancelled, no changes made.");
                    break;
                }
                if !error_header.is_empty() && edited == presented {
                    return Err(CliError::client(
                        "Edit cancelled, no valid changes were saved.",
                    ));
                }
                let parsed = parse_documents(&content)
                    .map_err(|e| e.to_string())
                    .and_then(|d| match <[Value; 1]>::try_from(d) {
                        Ok([v]) => Ok(v),
                        Err(_) => Err("the edited file must hold exactly one object".to_string()),
                    });
                let obj = match parsed {
                    Ok(v) => v,
                    Err(e) => {
                        error_header = format!("# The edited file had a syntax error: {e}\n#\n");
                        body = content + "\n";
                        continue;
                    }
                };
                if obj == original {
                    println!("Edit cancelled, no changes made.");
                    break;
                }
                let bytes = serde_json::to_vec(&obj)
                    .map_err(|e| CliError::client(format!("encoding the object: {e}")))?;
                match api
                    .request(
                        Method::PUT,
                        &format!("{path}?fieldManager=kubectl-edit"),
                        None,
                        Some(("application/json", bytes)),
                    )
                    .await
                {
                    Ok(_) => {
                        println!("{}/{name} edited", t.resource.name_prefix());
                        break;
                    }
                    Err(CliError::Server { message, .. }) => {
                        error_header = format!(
                            "# {} \"{name}\" was not valid:\n{}#\n",
                            t.resource.qualified_plural(),
                            message
                                .lines()
                                .map(|l| format!("# * {l}\n"))
                                .collect::<String>()
                        );
                        body = render(&obj);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}
