//! `skiff rollout restart`: stamps `kubectl.kubernetes.io/restartedAt` on the pod template,
//! which rolls every pod of a Deployment, DaemonSet or StatefulSet.

use serde_json::{Value, json};

use super::{
    FIELD_MANAGER, RESTARTED_AT, RolloutError, Selection, Workload, for_each, message_of,
    no_resources, output, patch, print_result,
};
use crate::Result;
use crate::client::{Api, encode};

#[derive(clap::Args, Debug)]
pub struct RestartArgs {
    #[command(flatten)]
    pub sel: Selection,
    /// Output format: json, yaml, name, jsonpath=...
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Name of the manager used to track field ownership.
    #[arg(long, default_value = FIELD_MANAGER)]
    pub field_manager: String,
}

/// Now as Go's `time.RFC3339` in the local zone: seconds, and `Z` for UTC.
fn now_rfc3339() -> String {
    chrono::Local::now()
        .fixed_offset()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub async fn run(args: RestartArgs) -> Result<()> {
    if args.sel.args.is_empty() && args.sel.filename.is_empty() {
        return Err(RolloutError::NoResource.into());
    }
    let out = output(args.output.as_deref())?;
    let api = Api::connect(&args.sel.conn).await?;
    let found = for_each(&api, &args.sel, |r, obj| {
        let api = &api;
        let out = out.as_ref();
        let args = &args;
        async move {
            let name = super::name(&obj).to_string();
            let problem = |problem| RolloutError::Object {
                resource: r.qualified_plural(),
                name: name.clone(),
                problem,
            };
            match Workload::of(&r) {
                None => return Err(problem("restarting is not supported").into()),
                Some(Workload::Deployment)
                    if obj.pointer("/spec/paused") == Some(&Value::Bool(true)) =>
                {
                    return Err(problem(
                        "can't restart paused deployment (run rollout resume first)",
                    )
                    .into());
                }
                Some(_) => {}
            }
            let now = now_rfc3339();
            let current = obj
                .pointer("/spec/template/metadata/annotations")
                .and_then(|a| a.get(RESTARTED_AT))
                .and_then(Value::as_str);
            if current == Some(now.as_str()) {
                return Err(RolloutError::RestartTooSoon(name).into());
            }
            let body =
                json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}});
            let query = format!("?fieldManager={}", encode(&args.field_manager));
            let patched = patch(
                api,
                &r,
                &obj,
                "application/strategic-merge-patch+json",
                &body,
                &query,
            )
            .await
            .map_err(|e| RolloutError::Patch(message_of(&e)))?;
            print_result(out, &r, &patched, "restarted")
        }
    })
    .await?;
    if !found {
        no_resources(&api);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_seconds() {
        let t = now_rfc3339();
        assert!(chrono::DateTime::parse_from_rfc3339(&t).is_ok(), "{t}");
        assert!(!t.contains('.'), "{t}");
    }
}
