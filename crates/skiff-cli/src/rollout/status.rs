//! `skiff rollout status`: prints kubectl's progress line for every change of the object until
//! its rollout is done, `--watch=false` stops after the first line, `--timeout` bounds the wait.

use std::time::Duration;

use serde_json::Value;

use super::{
    RolloutError, Selection, Workload, for_each, group_kind, name, no_resources, revision_of,
};
use crate::client::{Api, encode, parse_duration};
use crate::resource::Resource;
use crate::{CliError, Result};

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub sel: Selection,
    /// Watch the status of the rollout until it's done.
    #[arg(
        short = 'w',
        long,
        default_value = "true",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
        action = clap::ArgAction::Set
    )]
    pub watch: bool,
    /// Pin to a specific revision for showing its status. Defaults to 0 (last revision).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub revision: i64,
    /// How long to wait before ending the watch, zero means never (e.g. 1s, 2m, 3h).
    #[arg(long, default_value = "0s")]
    pub timeout: String,
}

pub async fn run(args: StatusArgs) -> Result<()> {
    if args.sel.args.is_empty() && args.sel.filename.is_empty() {
        return Err(RolloutError::NoResource.into());
    }
    if args.revision < 0 {
        return Err(RolloutError::NegativeRevision(args.revision).into());
    }
    let timeout = parse_duration(&args.timeout)?;
    let api = Api::connect(&args.sel.conn).await?;
    let found = for_each(&api, &args.sel, |r, obj| {
        let api = &api;
        let args = &args;
        async move {
            let Some(w) = Workload::of(&r) else {
                return Err(RolloutError::NoStatusViewer(group_kind(&r)).into());
            };
            let watch = follow(api, &r, w, obj, args);
            if timeout.is_zero() {
                watch.await
            } else {
                tokio::time::timeout(timeout, watch)
                    .await
                    .map_err(|_| CliError::from(RolloutError::Timeout))?
            }
        }
    })
    .await?;
    if !found {
        no_resources(&api);
    }
    Ok(())
}

/// Prints the status of `obj`, then of every later version of it, until done.
async fn follow(api: &Api, r: &Resource, w: Workload, obj: Value, args: &StatusArgs) -> Result<()> {
    if print_status(w, &obj, args.revision)? || !args.watch {
        return Ok(());
    }
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(&api.namespace)
        .to_string();
    let name = name(&obj).to_string();
    let mut rv = resource_version(&obj);
    loop {
        let path = format!(
            "{}?watch=1&fieldSelector={}&resourceVersion={}",
            r.collection_path(Some(&ns)),
            encode(&format!("metadata.name={name}")),
            encode(&rv)
        );
        let mut events = match api.watch(&path, None).await {
            Ok(s) => s,
            Err(e) if is_expired(&e) => {
                // The version is too old to watch from: start over from the object as it is.
                let obj = api.get(&r.object_path(&ns, &name)).await?;
                if print_status(w, &obj, args.revision)? {
                    return Ok(());
                }
                rv = resource_version(&obj);
                continue;
            }
            Err(e) => return Err(e),
        };
        loop {
            let ev = match events.next().await {
                Ok(Some(ev)) => ev,
                // The server ended the watch: open another from the last version seen.
                Ok(None) => break,
                Err(e) if is_expired(&e) => {
                    rv = String::new();
                    break;
                }
                Err(e) => return Err(e),
            };
            let obj = ev.get("object").cloned().unwrap_or(Value::Null);
            match ev.get("type").and_then(Value::as_str).unwrap_or_default() {
                "ADDED" | "MODIFIED" => {
                    rv = resource_version(&obj);
                    if print_status(w, &obj, args.revision)? {
                        return Ok(());
                    }
                }
                "BOOKMARK" => rv = resource_version(&obj),
                "DELETED" => return Err(RolloutError::Deleted.into()),
                other => {
                    return Err(CliError::client(format!(
                        "internal error: unexpected event {other}"
                    )));
                }
            }
        }
        // Do not spin against a server that closes watches at once.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn is_expired(e: &CliError) -> bool {
    matches!(e, CliError::Server { reason, .. } if reason == "Expired" || reason == "Gone")
}

fn resource_version(obj: &Value) -> String {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Prints the object's status line; true when its rollout is done.
fn print_status(w: Workload, obj: &Value, revision: i64) -> Result<bool> {
    let (line, done) = status(w, obj, revision)?;
    println!("{line}");
    Ok(done)
}

fn int(obj: &Value, ptr: &str) -> i64 {
    obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

/// kubectl's status viewers: the line to print and whether the rollout is done.
fn status(w: Workload, obj: &Value, revision: i64) -> Result<(String, bool), RolloutError> {
    match w {
        Workload::Deployment => deployment_status(obj, revision),
        Workload::DaemonSet => daemon_set_status(obj),
        Workload::StatefulSet => stateful_set_status(obj),
    }
}

fn deployment_status(d: &Value, revision: i64) -> Result<(String, bool), RolloutError> {
    let name = name(d);
    if revision > 0 {
        let running = revision_of(d).ok_or_else(|| {
            RolloutError::BadRevision(
                name.to_string(),
                d.pointer("/metadata/annotations")
                    .and_then(|a| a.get(super::REVISION))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            )
        })?;
        if running != revision {
            return Err(RolloutError::RevisionMismatch {
                desired: revision,
                running,
            });
        }
    }
    if int(d, "/metadata/generation") > int(d, "/status/observedGeneration") {
        return Ok((
            "Waiting for deployment spec update to be observed...".into(),
            false,
        ));
    }
    let timed_out = d
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Progressing")
        .is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded");
    if timed_out {
        return Err(RolloutError::ProgressDeadlineExceeded(name.to_string()));
    }
    let updated = int(d, "/status/updatedReplicas");
    let replicas = int(d, "/status/replicas");
    let available = int(d, "/status/availableReplicas");
    if let Some(want) = d.pointer("/spec/replicas").and_then(Value::as_i64)
        && updated < want
    {
        return Ok((
            format!(
                "Waiting for deployment \"{name}\" rollout to finish: {updated} out of {want} new replicas have been updated..."
            ),
            false,
        ));
    }
    if replicas > updated {
        return Ok((
            format!(
                "Waiting for deployment \"{name}\" rollout to finish: {} old replicas are pending termination...",
                replicas - updated
            ),
            false,
        ));
    }
    if available < updated {
        return Ok((
            format!(
                "Waiting for deployment \"{name}\" rollout to finish: {available} of {updated} updated replicas are available..."
            ),
            false,
        ));
    }
    Ok((
        format!("deployment \"{name}\" successfully rolled out"),
        true,
    ))
}

fn daemon_set_status(ds: &Value) -> Result<(String, bool), RolloutError> {
    let name = name(ds);
    // A DaemonSet's strategy defaults to RollingUpdate.
    let strategy = ds
        .pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        .unwrap_or("RollingUpdate");
    if strategy != "RollingUpdate" {
        return Err(RolloutError::NotRollingUpdate);
    }
    if int(ds, "/metadata/generation") > int(ds, "/status/observedGeneration") {
        return Ok((
            "Waiting for daemon set spec update to be observed...".into(),
            false,
        ));
    }
    let desired = int(ds, "/status/desiredNumberScheduled");
    let updated = int(ds, "/status/updatedNumberScheduled");
    let available = int(ds, "/status/numberAvailable");
    if updated < desired {
        return Ok((
            format!(
                "Waiting for daemon set \"{name}\" rollout to finish: {updated} out of {desired} new pods have been updated..."
            ),
            false,
        ));
    }
    if available < desired {
        return Ok((
            format!(
                "Waiting for daemon set \"{name}\" rollout to finish: {available} of {desired} updated pods are available..."
            ),
            false,
        ));
    }
    Ok((
        format!("daemon set \"{name}\" successfully rolled out"),
        true,
    ))
}

fn stateful_set_status(sts: &Value) -> Result<(String, bool), RolloutError> {
    let strategy = sts
        .pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        .unwrap_or("RollingUpdate");
    if strategy != "RollingUpdate" {
        return Err(RolloutError::NotRollingUpdate);
    }
    let observed = int(sts, "/status/observedGeneration");
    if observed == 0 || int(sts, "/metadata/generation") > observed {
        return Ok((
            "Waiting for statefulset spec update to be observed...".into(),
            false,
        ));
    }
    let want = sts.pointer("/spec/replicas").and_then(Value::as_i64);
    let ready = int(sts, "/status/readyReplicas");
    if let Some(want) = want
        && ready < want
    {
        return Ok((
            format!("Waiting for {} pods to be ready...", want - ready),
            false,
        ));
    }
    let updated = int(sts, "/status/updatedReplicas");
    if let Some(rolling) = sts
        .pointer("/spec/updateStrategy/rollingUpdate")
        .filter(|v| !v.is_null())
    {
        if let (Some(want), Some(partition)) =
            (want, rolling.get("partition").and_then(Value::as_i64))
            && updated < want - partition
        {
            return Ok((
                format!(
                    "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                    want - partition
                ),
                false,
            ));
        }
        return Ok((
            format!("partitioned roll out complete: {updated} new pods have been updated..."),
            true,
        ));
    }
    let s = |p: &str| {
        sts.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (update_rev, current_rev) = (s("/status/updateRevision"), s("/status/currentRevision"));
    if update_rev != current_rev {
        return Ok((
            format!(
                "waiting for statefulset rolling update to complete {updated} pods at revision {update_rev}..."
            ),
            false,
        ));
    }
    Ok((
        format!(
            "statefulset rolling update complete {} pods at revision {current_rev}...",
            int(sts, "/status/currentReplicas")
        ),
        true,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(status: Value) -> Value {
        json!({"metadata": {"name": "web", "generation": 2,
            "annotations": {"deployment.kubernetes.io/revision": "2"}},
            "spec": {"replicas": 5}, "status": status})
    }

    #[test]
    fn deployment_lines() {
        let line = |st| deployment_status(&deploy(st), 0).map(|(l, _)| l).ok();
        assert_eq!(
            line(json!({"observedGeneration": 1})).as_deref(),
            Some("Waiting for deployment spec update to be observed...")
        );
        assert_eq!(
            line(json!({"observedGeneration": 2, "updatedReplicas": 2, "replicas": 6})).as_deref(),
            Some(
                "Waiting for deployment \"web\" rollout to finish: 2 out of 5 new replicas have been updated..."
            )
        );
        assert_eq!(
            line(json!({"observedGeneration": 2, "updatedReplicas": 5, "replicas": 6})).as_deref(),
            Some(
                "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination..."
            )
        );
        assert_eq!(
            line(
                json!({"observedGeneration": 2, "updatedReplicas": 5, "replicas": 5,
                "availableReplicas": 3})
            )
            .as_deref(),
            Some(
                "Waiting for deployment \"web\" rollout to finish: 3 of 5 updated replicas are available..."
            )
        );
        let done = deployment_status(
            &deploy(
                json!({"observedGeneration": 2, "updatedReplicas": 5, "replicas": 5,
                "availableReplicas": 5}),
            ),
            2,
        );
        assert_eq!(
            done.ok(),
            Some(("deployment \"web\" successfully rolled out".into(), true))
        );
        let err = deployment_status(&deploy(json!({"observedGeneration": 2})), 3);
        assert_eq!(
            err.err().map(|e| e.to_string()).as_deref(),
            Some("desired revision (3) is different from the running revision (2)")
        );
        let stuck = deploy(json!({"observedGeneration": 2, "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}));
        assert_eq!(
            deployment_status(&stuck, 0)
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some("deployment \"web\" exceeded its progress deadline")
        );
    }

    #[test]
    fn stateful_set_lines() {
        let sts = json!({"metadata": {"name": "db", "generation": 1},
            "spec": {"replicas": 3, "updateStrategy": {"type": "RollingUpdate",
                "rollingUpdate": {"partition": 1}}},
            "status": {"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 1}});
        assert_eq!(
            stateful_set_status(&sts).ok(),
            Some((
                "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated..."
                    .into(),
                false
            ))
        );
        let ondelete = json!({"metadata": {"name": "db"},
            "spec": {"updateStrategy": {"type": "OnDelete"}}});
        assert!(stateful_set_status(&ondelete).is_err());
    }
}
