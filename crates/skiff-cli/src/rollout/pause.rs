//! `skiff rollout pause|resume`: flips a Deployment's `spec.paused` with a strategic merge
//! patch; kubectl supports no other kind.

use serde_json::{Value, json};

use super::{
    FIELD_MANAGER, RolloutError, Selection, Workload, for_each, message_of, no_resources, output,
    patch, print_result,
};
use crate::Result;
use crate::client::Api;

#[derive(clap::Args, Debug)]
pub struct PauseArgs {
    #[command(flatten)]
    pub sel: Selection,
    /// Output format: json, yaml, name, jsonpath=...
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Name of the manager used to track field ownership.
    #[arg(long, default_value = FIELD_MANAGER)]
    pub field_manager: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
}

impl Action {
    fn done(self) -> &'static str {
        match self {
            Action::Pause => "paused",
            Action::Resume => "resumed",
        }
    }
}

pub async fn run(args: PauseArgs, action: Action) -> Result<()> {
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
            let problem = |problem| RolloutError::Object {
                resource: r.qualified_plural(),
                name: super::name(&obj).to_string(),
                problem,
            };
            if Workload::of(&r) != Some(Workload::Deployment) {
                return Err(problem(match action {
                    Action::Pause => "pausing is not supported",
                    Action::Resume => "resuming is not supported",
                })
                .into());
            }
            let paused = obj.pointer("/spec/paused") == Some(&Value::Bool(true));
            let body = match (action, paused) {
                (Action::Pause, true) => return Err(problem("is already paused").into()),
                (Action::Resume, false) => return Err(problem("is not paused").into()),
                (Action::Pause, false) => json!({"spec": {"paused": true}}),
                (Action::Resume, true) => json!({"spec": {"paused": null}}),
            };
            let query = format!(
                "?fieldManager={}",
                crate::client::encode(&args.field_manager)
            );
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
            print_result(out, &r, &patched, action.done())
        }
    })
    .await?;
    if !found {
        no_resources(&api);
    }
    Ok(())
}
