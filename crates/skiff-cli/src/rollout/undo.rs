//! `skiff rollout undo [--to-revision=N]`: puts a recorded pod template back, from a
//! Deployment's ReplicaSet (JSON patch of template and annotations) or a ControllerRevision.

use serde_json::{Map, Value, json};

use super::{
    DryRun, POD_TEMPLATE_HASH, REVISION, RolloutError, Selection, Workload, controller_revisions,
    for_each, history_revision, message_of, object_ref, output, patch, print_result,
    recorded_template, replica_sets, revision_of, same_template, unsupported,
};
use crate::apply::LAST_APPLIED;
use crate::client::Api;
use crate::describe::pod_template_text;
use crate::printer::Output;
use crate::resource::Resource;
use crate::{CliError, Result};

/// Deployment annotations that stay as they are: they describe the Deployment, not a revision.
const KEEP_ANNOTATIONS: &[&str] = &[
    LAST_APPLIED,
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

#[derive(clap::Args, Debug)]
pub struct UndoArgs {
    #[command(flatten)]
    pub sel: Selection,
    /// The revision to roll back to. Defaults to 0 (last revision).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub to_revision: i64,
    /// Must be "none", "server", or "client".
    #[arg(long, default_value = "none", num_args = 0..=1, require_equals = true, default_missing_value = "unchanged")]
    pub dry_run: String,
    /// Output format: json, yaml, name, jsonpath=...
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

/// What a rollback did, as kubectl words it after the object's name.
enum Outcome {
    RolledBack,
    Skipped(i64),
    /// Client dry run: what the template would become.
    WouldBe(String),
}

pub async fn run(args: UndoArgs) -> Result<()> {
    if args.sel.args.is_empty() && args.sel.filename.is_empty() {
        return Err(RolloutError::NoResource.into());
    }
    let dry_run = DryRun::parse(&args.dry_run)?;
    let out = output(args.output.as_deref())?;
    let api = Api::connect(&args.sel.conn).await?;
    for_each(&api, &args.sel, |r, obj| {
        let api = &api;
        let args = &args;
        let out = out.as_ref();
        async move {
            let Some(w) = Workload::of(&r) else {
                return Err(unsupported(&r, "rollbacker").into());
            };
            let outcome = match w {
                Workload::Deployment => {
                    undo_deployment(api, &r, &obj, args.to_revision, dry_run).await?
                }
                Workload::DaemonSet | Workload::StatefulSet => {
                    undo_from_history(api, &r, &obj, args.to_revision, dry_run).await?
                }
            };
            print(out, &r, &obj, outcome, dry_run)
        }
    })
    .await?;
    Ok(())
}

fn print(
    out: Option<&Output>,
    r: &Resource,
    obj: &Value,
    outcome: Outcome,
    dry_run: DryRun,
) -> Result<()> {
    let mut operation = match outcome {
        Outcome::RolledBack => "rolled back".to_string(),
        Outcome::Skipped(n) => {
            format!("skipped rollback (current template already matches revision {n})")
        }
        Outcome::WouldBe(text) => text,
    };
    match dry_run {
        DryRun::None => {}
        DryRun::Client => operation.push_str(" (dry run)"),
        DryRun::Server => operation.push_str(" (server dry run)"),
    }
    match out {
        // A client dry run's template spans lines: kubectl's name printer writes it as it is.
        None => {
            println!("{} {operation}", object_ref(r, obj));
            Ok(())
        }
        Some(_) => print_result(out, r, obj, &operation),
    }
}

fn dry_run_query(dry_run: DryRun) -> &'static str {
    if dry_run == DryRun::Server {
        "?dryRun=All"
    } else {
        ""
    }
}

async fn undo_deployment(
    api: &Api,
    r: &Resource,
    d: &Value,
    to: i64,
    dry_run: DryRun,
) -> Result<Outcome> {
    if to < 0 {
        return Err(RolloutError::RevisionNotInHistory(to).into());
    }
    let sets = replica_sets(api, d).await?;
    let rs = pick_replica_set(&sets, to, super::name(d))?;
    let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
    if dry_run == DryRun::Client {
        return Ok(Outcome::WouldBe(pod_template_text(&template)));
    }
    if d.pointer("/spec/paused") == Some(&Value::Bool(true)) {
        return Err(RolloutError::RollbackPaused.into());
    }
    let current = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
    if same_template(&template, &current) {
        return Ok(Outcome::Skipped(to));
    }
    let mut template = template;
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH);
    }
    let mut annotations = Map::new();
    let deployment_annotations = d
        .pointer("/metadata/annotations")
        .and_then(Value::as_object);
    for k in KEEP_ANNOTATIONS {
        if let Some(v) = deployment_annotations.and_then(|a| a.get(*k)) {
            annotations.insert(k.to_string(), v.clone());
        }
    }
    for (k, v) in rs
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if !KEEP_ANNOTATIONS.contains(&k.as_str()) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    let body = json!([
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]);
    patch(
        api,
        r,
        d,
        "application/json-patch+json",
        &body,
        dry_run_query(dry_run),
    )
    .await
    .map_err(|e| restore_failed(to, &e))?;
    Ok(Outcome::RolledBack)
}

fn restore_failed(revision: i64, e: &CliError) -> CliError {
    RolloutError::Restore {
        revision,
        message: message_of(e),
    }
    .into()
}

/// The ReplicaSet of revision `to`, or for 0 the one before the newest.
fn pick_replica_set<'a>(sets: &'a [Value], to: i64, deployment: &str) -> Result<&'a Value> {
    if to > 0 {
        return sets
            .iter()
            .find(|rs| revision_of(rs) == Some(to))
            .ok_or_else(|| RolloutError::RevisionNotInHistory(to).into());
    }
    let mut numbered: Vec<(i64, &Value)> = sets
        .iter()
        .filter_map(|rs| revision_of(rs).map(|n| (n, rs)))
        .collect();
    // Highest first; of equal revisions the earlier listed one counts, as in kubectl's scan.
    numbered.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    numbered.dedup_by_key(|(n, _)| *n);
    numbered
        .get(1)
        .map(|(_, rs)| *rs)
        .ok_or_else(|| RolloutError::NoHistory(deployment.to_string()).into())
}

async fn undo_from_history(
    api: &Api,
    r: &Resource,
    obj: &Value,
    to: i64,
    dry_run: DryRun,
) -> Result<Outcome> {
    if to < 0 {
        return Err(RolloutError::RevisionNotInHistory(to).into());
    }
    let history = controller_revisions(api, obj).await?;
    if to == 0 && history.len() <= 1 {
        return Err(RolloutError::NoLastRevision.into());
    }
    let chosen = if to == 0 {
        history.get(history.len() - 2)
    } else {
        history.iter().find(|h| history_revision(h) == to)
    };
    let chosen = chosen.ok_or(RolloutError::RevisionNotInHistory(to))?;
    let template = recorded_template(chosen);
    if dry_run == DryRun::Client {
        return Ok(Outcome::WouldBe(format!(
            "will roll back to {}",
            pod_template_text(&template)
        )));
    }
    let current = obj.pointer("/spec/template").cloned().unwrap_or(json!({}));
    if same_template(&template, &current) {
        return Ok(Outcome::Skipped(to));
    }
    let data = chosen.get("data").cloned().unwrap_or(json!({}));
    patch(
        api,
        r,
        obj,
        "application/strategic-merge-patch+json",
        &data,
        dry_run_query(dry_run),
    )
    .await
    .map_err(|e| restore_failed(to, &e))?;
    Ok(Outcome::RolledBack)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(rev: &str) -> Value {
        json!({"metadata": {"name": format!("web-{rev}"),
            "annotations": {REVISION: rev}}})
    }

    #[test]
    fn picks_the_previous_revision() {
        let sets = vec![rs("1"), rs("3"), rs("2")];
        let name = |v: Result<&Value>| v.ok().map(|v| super::super::name(v).to_string());
        assert_eq!(
            name(pick_replica_set(&sets, 0, "web")).as_deref(),
            Some("web-2")
        );
        assert_eq!(
            name(pick_replica_set(&sets, 1, "web")).as_deref(),
            Some("web-1")
        );
        assert!(pick_replica_set(&sets, 7, "web").is_err());
        let err = pick_replica_set(&sets[..1], 0, "web")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("error: no rollout history found for deployment \"web\"")
        );
    }
}
