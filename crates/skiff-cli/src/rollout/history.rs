//! `skiff rollout history`: the REVISION/CHANGE-CAUSE table from a Deployment's ReplicaSets or
//! a DaemonSet's or StatefulSet's ControllerRevisions; `--revision=N` describes that template.

use std::cell::Cell;
use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{
    CHANGE_CAUSE, RolloutError, Selection, Workload, controller_revisions, for_each,
    history_revision, object_ref, output, recorded_template, replica_sets, revision_of,
    unsupported,
};
use crate::Result;
use crate::client::Api;
use crate::describe::{pod_template_text, tabwrite};
use crate::printer::{Output, print_objects, with_type};
use crate::resource::{self, Resource};

#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub sel: Selection,
    /// See the details, including podTemplate of the revision specified.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub revision: i64,
    /// Output format: json, yaml, name, jsonpath=...
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

pub async fn run(args: HistoryArgs) -> Result<()> {
    if args.sel.args.is_empty() && args.sel.filename.is_empty() {
        return Err(RolloutError::NoResource.into());
    }
    if args.revision < 0 {
        return Err(RolloutError::NegativeRevision(args.revision).into());
    }
    let out = output(args.output.as_deref())?;
    let api = Api::connect(&args.sel.conn).await?;
    // kubectl's YAML printer separates the documents of one command.
    let printed = Cell::new(0usize);
    for_each(&api, &args.sel, |r, obj| {
        let api = &api;
        let args = &args;
        let out = out.as_ref();
        let printed = &printed;
        async move {
            let Some(w) = Workload::of(&r) else {
                return Err(unsupported(&r, "history").into());
            };
            let revisions = revisions(api, w, &obj).await?;
            match out {
                Some(o) => print_revisions(o, &revisions, args.revision, printed),
                None => {
                    let text = view(&revisions, args.revision)?;
                    let with = if args.revision > 0 {
                        format!("with revision #{}", args.revision)
                    } else {
                        String::new()
                    };
                    println!("{} {with}\n{text}", object_ref(&r, &obj));
                    Ok(())
                }
            }
        }
    })
    .await?;
    Ok(())
}

/// One revision: the object kubectl prints for `-o`, its pod template and change cause.
struct Revision {
    resource: Resource,
    object: Value,
    template: Value,
    change_cause: String,
}

/// The revisions of a workload by number; a later one with the same number wins, as in kubectl.
async fn revisions(api: &Api, w: Workload, obj: &Value) -> Result<BTreeMap<i64, Revision>> {
    let mut out = BTreeMap::new();
    let change_cause = |v: &Value| {
        v.pointer("/metadata/annotations")
            .and_then(|a| a.get(CHANGE_CAUSE))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match w {
        Workload::Deployment => {
            let rs_resource = resource::resolve_builtin("replicasets.apps");
            for rs in replica_sets(api, obj).await? {
                // kubectl skips (with a warning in its log) a set whose revision does not parse.
                let Some(n) = revision_of(&rs) else { continue };
                let Some(r) = rs_resource.clone() else {
                    continue;
                };
                let cause = change_cause(&rs);
                let mut template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
                if !cause.is_empty()
                    && let Some(meta) = template
                        .as_object_mut()
                        .map(|t| t.entry("metadata").or_insert_with(|| json!({})))
                        .and_then(Value::as_object_mut)
                {
                    let ann = meta.entry("annotations").or_insert_with(|| json!({}));
                    if let Some(ann) = ann.as_object_mut() {
                        ann.insert(CHANGE_CAUSE.into(), json!(cause));
                    }
                }
                let object = with_type(&r, rs);
                out.insert(
                    n,
                    Revision {
                        resource: r,
                        object,
                        template,
                        change_cause: cause,
                    },
                );
            }
        }
        Workload::DaemonSet | Workload::StatefulSet => {
            let kind = if w == Workload::DaemonSet {
                "daemonsets.apps"
            } else {
                "statefulsets.apps"
            };
            let r = resource::resolve_builtin(kind);
            for h in controller_revisions(api, obj).await? {
                let Some(r) = r.clone() else { continue };
                let template = recorded_template(&h);
                // `-o` shows the workload as it was at that revision.
                let mut object = with_type(&r, obj.clone());
                if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.insert("template".into(), template.clone());
                }
                out.insert(
                    history_revision(&h),
                    Revision {
                        resource: r,
                        object,
                        template,
                        change_cause: change_cause(&h),
                    },
                );
            }
        }
    }
    Ok(out)
}

/// kubectl's history text: the table, or the pod template of one revision.
fn view(revisions: &BTreeMap<i64, Revision>, revision: i64) -> Result<String> {
    if revisions.is_empty() {
        return Ok("No rollout history found.".into());
    }
    if revision > 0 {
        let r = revisions
            .get(&revision)
            .ok_or(RolloutError::NoSuchRevision)?;
        return Ok(pod_template_text(&r.template));
    }
    let mut table = String::from("REVISION\tCHANGE-CAUSE\n");
    for (n, r) in revisions {
        let cause = if r.change_cause.is_empty() {
            "<none>"
        } else {
            &r.change_cause
        };
        table.push_str(&format!("{n}\t{cause}\n"));
    }
    Ok(tabwrite(&table, 0, 2))
}

fn print_revisions(
    out: &Output,
    revisions: &BTreeMap<i64, Revision>,
    revision: i64,
    printed: &Cell<usize>,
) -> Result<()> {
    let chosen: Vec<&Revision> = if revision > 0 {
        vec![
            revisions
                .get(&revision)
                .ok_or(RolloutError::NoSuchRevision)?,
        ]
    } else {
        revisions.values().collect()
    };
    for r in chosen {
        if printed.get() > 0 && matches!(out, Output::Yaml) {
            println!("---");
        }
        printed.set(printed.get() + 1);
        print!(
            "{}",
            print_objects(out, &[(r.resource.clone(), r.object.clone())], true)?
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(cause: &str) -> Revision {
        Revision {
            resource: resource::resolve_builtin("rs").expect("replicasets are built in"),
            object: json!({}),
            template: json!({"metadata": {"labels": {"app": "web"}}}),
            change_cause: cause.into(),
        }
    }

    #[test]
    fn table_like_kubectl() {
        let mut revs = BTreeMap::new();
        revs.insert(1, rev(""));
        revs.insert(12, rev("image 1.26"));
        assert_eq!(
            view(&revs, 0).ok().as_deref(),
            Some("REVISION  CHANGE-CAUSE\n1         <none>\n12        image 1.26\n")
        );
        assert!(view(&revs, 3).is_err());
        assert_eq!(
            view(&BTreeMap::new(), 0).ok().as_deref(),
            Some("No rollout history found.")
        );
    }
}
