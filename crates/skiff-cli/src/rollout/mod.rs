//! `skiff rollout status|history|undo|pause|resume|restart`: kubectl's rollout verbs for
//! Deployments (revisions on ReplicaSets) and DaemonSets and StatefulSets (ControllerRevisions).

mod history;
mod pause;
mod restart;
mod status;
mod undo;

use http::Method;
use serde_json::Value;

use crate::client::{Api, ConnArgs, encode};
use crate::get::finish;
use crate::manifest;
use crate::printer::{Output, print_objects, with_type};
use crate::resource::{self, Resource};
use crate::{CliError, Result};

/// The Deployment annotation that carries its revision (copied onto its ReplicaSets).
const REVISION: &str = "deployment.kubernetes.io/revision";
/// Where `kubectl annotate --record` style tooling leaves the reason of a revision.
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
/// The label that tells a Deployment's ReplicaSets (and their pods) apart.
const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// The pod template annotation whose change makes `rollout restart` replace every pod.
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// The field manager kubectl's pause, resume and restart patch with.
const FIELD_MANAGER: &str = "kubectl-rollout";

#[derive(clap::Args, Debug)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub command: RolloutCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum RolloutCommand {
    /// Show the status of the rollout.
    Status(status::StatusArgs),
    /// View rollout history.
    History(history::HistoryArgs),
    /// Undo a previous rollout.
    Undo(undo::UndoArgs),
    /// Mark the provided resource as paused.
    Pause(pause::PauseArgs),
    /// Resume a paused resource.
    Resume(pause::PauseArgs),
    /// Restart a resource.
    Restart(restart::RestartArgs),
}

pub async fn run(args: RolloutArgs) -> Result<()> {
    match args.command {
        RolloutCommand::Status(a) => status::run(a).await,
        RolloutCommand::History(a) => history::run(a).await,
        RolloutCommand::Undo(a) => undo::run(a).await,
        RolloutCommand::Pause(a) => pause::run(a, pause::Action::Pause).await,
        RolloutCommand::Resume(a) => pause::run(a, pause::Action::Resume).await,
        RolloutCommand::Restart(a) => restart::run(a).await,
    }
}

/// What every rollout verb selects objects by, as kubectl's resource builder takes them.
#[derive(clap::Args, Debug)]
pub struct Selection {
    /// TYPE NAME..., TYPE/NAME..., or TYPE (every object, or those matching -l).
    pub args: Vec<String>,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Filename, directory, or URL to files identifying the resource.
    #[arg(short = 'f', long = "filename")]
    pub filename: Vec<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// The failures particular to the rollout verbs; the server's own errors stay [`CliError`]s.
#[derive(Debug, thiserror::Error)]
enum RolloutError {
    #[error("required resource not specified")]
    NoResource,
    #[error("revision must be a positive integer: {0}")]
    NegativeRevision(i64),
    #[error("unable to find the specified revision")]
    NoSuchRevision,
    #[error("unable to find specified revision {0} in history")]
    RevisionNotInHistory(i64),
    #[error("no rollout history found for deployment \"{0}\"")]
    NoHistory(String),
    #[error("no last revision to roll back to")]
    NoLastRevision,
    #[error("desired revision ({desired}) is different from the running revision ({running})")]
    RevisionMismatch { desired: i64, running: i64 },
    #[error("cannot get the revision of deployment \"{0}\": invalid revision annotation {1:?}")]
    BadRevision(String, String),
    #[error("deployment \"{0}\" exceeded its progress deadline")]
    ProgressDeadlineExceeded(String),
    #[error("rollout status is only available for RollingUpdate strategy type")]
    NotRollingUpdate,
    #[error("no status viewer has been implemented for {0}")]
    NoStatusViewer(String),
    #[error(
        "error retrieving {what} for \"{group_kind}\", no visitor method exists for {{{group} {kind}}}"
    )]
    NoVisitor {
        what: &'static str,
        group_kind: String,
        group: String,
        kind: String,
    },
    #[error("no history viewer has been implemented for \"{0}\"")]
    NoHistoryViewer(String),
    #[error("no rollbacker has been implemented for \"{0}\"")]
    NoRollbacker(String),
    #[error(
        "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again"
    )]
    RollbackPaused,
    #[error("{resource} \"{name}\" {problem}")]
    Object {
        resource: String,
        name: String,
        problem: &'static str,
    },
    #[error(
        "failed to create patch for {0}: if restart has already been triggered within the past second, please wait before attempting to trigger another"
    )]
    RestartTooSoon(String),
    #[error("failed restoring revision {revision}: {message}")]
    Restore { revision: i64, message: String },
    #[error("failed to patch: {0}")]
    Patch(String),
    #[error("object has been deleted")]
    Deleted,
    #[error("timed out waiting for the condition")]
    Timeout,
    #[error(
        "unable to match a printer suitable for the output format \"{0}\", allowed formats are: go-template,go-template-file,json,jsonpath,jsonpath-as-json,jsonpath-file,name,template,templatefile,yaml"
    )]
    BadOutput(String),
    #[error("Invalid dry-run value ({0}). Must be \"none\", \"server\", or \"client\".")]
    BadDryRun(String),
}

impl From<RolloutError> for CliError {
    fn from(e: RolloutError) -> CliError {
        CliError::Client(e.to_string())
    }
}

/// The message of an error as kubectl nests it in its own (`failed to patch: ...`).
fn message_of(e: &CliError) -> String {
    match e {
        CliError::Client(m) => m.clone(),
        CliError::Server { message, .. } => message.clone(),
    }
}

/// The kinds with a rollout: a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Deployment,
    DaemonSet,
    StatefulSet,
}

impl Workload {
    fn of(r: &Resource) -> Option<Workload> {
        if r.group != "apps" && r.group != "extensions" {
            return None;
        }
        match r.kind.as_str() {
            "Deployment" => Some(Workload::Deployment),
            "DaemonSet" => Some(Workload::DaemonSet),
            "StatefulSet" if r.group == "apps" => Some(Workload::StatefulSet),
            _ => None,
        }
    }
}

/// kubectl's `GroupKind` string: `Deployment.apps`, `ConfigMap`.
fn group_kind(r: &Resource) -> String {
    if r.group.is_empty() {
        r.kind.clone()
    } else {
        format!("{}.{}", r.kind, r.group)
    }
}

/// The error for a kind kubectl's history viewer or rollbacker does not handle: the kinds of
/// its apps visitor get "not implemented", the others "no visitor method".
fn unsupported(r: &Resource, what: &'static str) -> RolloutError {
    let visited = match r.kind.as_str() {
        "Job" | "CronJob" => r.group == "batch",
        "Pod" | "ReplicationController" => r.group.is_empty() || r.group == "core",
        "ReplicaSet" => r.group == "apps" || r.group == "extensions",
        _ => false,
    };
    match (visited, what) {
        (true, "history") => RolloutError::NoHistoryViewer(group_kind(r)),
        (true, _) => RolloutError::NoRollbacker(group_kind(r)),
        (false, _) => RolloutError::NoVisitor {
            what,
            group_kind: group_kind(r),
            group: r.group.clone(),
            kind: r.kind.clone(),
        },
    }
}

fn name(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn uid(obj: &Value) -> &str {
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `deployment.apps/web`: the start of every line kubectl's name printer writes.
fn object_ref(r: &Resource, obj: &Value) -> String {
    format!("{}/{}", r.name_prefix(), name(obj))
}

/// One selected object, or why it could not be read.
type Selected = Result<(Resource, Value)>;

/// Reads the selected objects in the order given, as kubectl's builder visits them:
/// named objects one by one (a missing one is an error in its place), types as lists.
async fn select(api: &Api, sel: &Selection) -> Result<Vec<Selected>> {
    if sel.args.is_empty() && sel.filename.is_empty() {
        return Err(RolloutError::NoResource.into());
    }
    let mut out = Vec::new();
    if !sel.filename.is_empty() {
        for m in manifest::read_all(&sel.filename, false)? {
            let r = resource::for_object(api, &m.object).await?;
            let ns = m
                .object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(&api.namespace)
                .to_string();
            out.push(
                api.get(&r.object_path(&ns, name(&m.object)))
                    .await
                    .map(|o| (r, o)),
            );
        }
    }
    if sel.args.is_empty() {
        return Ok(out);
    }
    let targets = resource::parse_targets(api, &sel.args).await?;
    if sel.selector.is_some() && targets.iter().any(|t| !t.names.is_empty()) {
        return Err(CliError::client(
            "name cannot be provided when a selector is specified",
        ));
    }
    for t in targets {
        if t.names.is_empty() {
            let q = sel
                .selector
                .as_ref()
                .map(|l| format!("?labelSelector={}", encode(l)))
                .unwrap_or_default();
            let path = format!("{}{q}", t.resource.collection_path(Some(&api.namespace)));
            let list = api.get(&path).await?;
            for item in list
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                out.push(Ok((
                    t.resource.clone(),
                    with_type(&t.resource, item.clone()),
                )));
            }
            continue;
        }
        for n in &t.names {
            let got = api.get(&t.resource.object_path(&api.namespace, n)).await;
            out.push(got.map(|o| (t.resource.clone(), o)));
        }
    }
    Ok(out)
}

/// kubectl's `No resources found in NS namespace.` on stderr, for an empty selection.
fn no_resources(api: &Api) {
    eprintln!("No resources found in {} namespace.", api.namespace);
}

/// The `-o` formats of kubectl's rollout printers (no tables).
fn output(o: Option<&str>) -> Result<Option<Output>> {
    let Some(o) = o else { return Ok(None) };
    match Output::parse(Some(o))? {
        Output::Table | Output::Wide | Output::CustomColumns(_) => {
            let kind = o.split_once('=').map_or(o, |(k, _)| k);
            Err(RolloutError::BadOutput(kind.to_string()).into())
        }
        out => Ok(Some(out)),
    }
}

/// Prints one object as kubectl's rollout verbs do: `deployment.apps/web OPERATION`, or the
/// object itself in the `-o` format.
fn print_result(out: Option<&Output>, r: &Resource, obj: &Value, operation: &str) -> Result<()> {
    match out {
        None => println!("{} {operation}", object_ref(r, obj)),
        Some(o) => print!(
            "{}",
            print_objects(o, &[(r.clone(), with_type(r, obj.clone()))], true)?
        ),
    }
    Ok(())
}

/// A JSON body for a PATCH of `obj` with `content_type`; the answer is the patched object.
async fn patch(
    api: &Api,
    r: &Resource,
    obj: &Value,
    content_type: &str,
    body: &Value,
    query: &str,
) -> Result<Value> {
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(&api.namespace);
    let bytes = serde_json::to_vec(body)
        .map_err(|e| CliError::client(format!("encoding the patch: {e}")))?;
    api.request(
        Method::PATCH,
        &format!("{}{query}", r.object_path(ns, name(obj))),
        None,
        Some((content_type, bytes)),
    )
    .await
}

/// A Deployment's revision annotation; a missing one is revision 0, as in kubectl.
fn revision_of(obj: &Value) -> Option<i64> {
    match obj
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION))
        .and_then(Value::as_str)
    {
        None => Some(0),
        Some(v) => v.parse().ok(),
    }
}

/// The ReplicaSets a Deployment controls, oldest first.
async fn replica_sets(api: &Api, d: &Value) -> Result<Vec<Value>> {
    owned(
        api,
        &format!("/apis/apps/v1/namespaces/{}/replicasets", namespace(api, d)),
        d,
    )
    .await
}

/// The ControllerRevisions a DaemonSet or StatefulSet controls, lowest revision first.
async fn controller_revisions(api: &Api, obj: &Value) -> Result<Vec<Value>> {
    let mut revs = owned(
        api,
        &format!(
            "/apis/apps/v1/namespaces/{}/controllerrevisions",
            namespace(api, obj)
        ),
        obj,
    )
    .await?;
    revs.sort_by_key(history_revision);
    Ok(revs)
}

fn history_revision(h: &Value) -> i64 {
    h.get("revision").and_then(Value::as_i64).unwrap_or(0)
}

fn namespace<'a>(api: &'a Api, obj: &'a Value) -> &'a str {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(&api.namespace)
}

/// The items of a collection whose controller is `owner`, by creation time.
async fn owned(api: &Api, path: &str, owner: &Value) -> Result<Vec<Value>> {
    let list = api.get(path).await?;
    let owner_uid = uid(owner);
    let mut items: Vec<Value> = list
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|i| {
            i.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|o| o["controller"] == true && o["uid"] == owner_uid)
        })
        .cloned()
        .collect();
    items.sort_by(|a, b| {
        let ts = |v: &Value| {
            v.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        ts(a).cmp(&ts(b))
    });
    Ok(items)
}

/// The pod template a ControllerRevision recorded (its data is a patch that replaces it).
fn recorded_template(h: &Value) -> Value {
    let mut t = h
        .pointer("/data/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    if let Value::Object(m) = &mut t {
        m.remove("$patch");
    }
    t
}

/// Compares two pod templates as Kubernetes' semantic equality does: absent, null, empty
/// and zero values are alike, and `pod-template-hash` is ignored.
fn same_template(a: &Value, b: &Value) -> bool {
    let strip = |t: &Value| {
        let mut t = t.clone();
        if let Some(labels) = t
            .pointer_mut("/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            labels.remove(POD_TEMPLATE_HASH);
        }
        normalized(&t)
    };
    strip(a) == strip(b)
}

fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Number(_) => false,
    }
}

/// kubectl's `--dry-run` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DryRun {
    None,
    Client,
    Server,
}

impl DryRun {
    fn parse(s: &str) -> Result<DryRun> {
        match s {
            "none" | "false" => Ok(DryRun::None),
            "client" | "true" | "unchanged" => Ok(DryRun::Client),
            "server" => Ok(DryRun::Server),
            other => Err(RolloutError::BadDryRun(other.to_string()).into()),
        }
    }
}

/// Runs `visit` on every selected object, reporting errors as kubectl's builder does: each in
/// its place, all but the last printed at once, the last one the command's error.
async fn for_each<F, Fut>(api: &Api, sel: &Selection, mut visit: F) -> Result<bool>
where
    F: FnMut(Resource, Value) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let selected = select(api, sel).await?;
    let found = !selected.is_empty();
    let mut errors = Vec::new();
    for s in selected {
        let result = match s {
            Ok((r, obj)) => visit(r, obj).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            errors.push(e);
        }
    }
    finish(errors)?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_compare_semantically() {
        let a = json!({"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}},
            "spec": {"containers": [{"name": "c", "image": "x", "resources": {}}]}});
        let b = json!({"metadata": {"labels": {"app": "web"}, "annotations": {}},
            "spec": {"containers": [{"image": "x", "name": "c"}], "hostNetwork": false}});
        assert!(same_template(&a, &b));
        let c = json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"image": "y", "name": "c"}]}});
        assert!(!same_template(&a, &c));
    }

    #[test]
    fn recorded_templates_drop_the_patch_directive() {
        let h = json!({"revision": 2, "data": {"spec": {"template": {"$patch": "replace",
            "metadata": {"labels": {"app": "a"}}}}}});
        assert_eq!(
            recorded_template(&h),
            json!({"metadata": {"labels": {"app": "a"}}})
        );
        assert_eq!(history_revision(&h), 2);
    }

    #[test]
    fn revisions_default_to_zero() {
        assert_eq!(revision_of(&json!({"metadata": {}})), Some(0));
        let d = json!({"metadata": {"annotations": {REVISION: "3"}}});
        assert_eq!(revision_of(&d), Some(3));
        let bad = json!({"metadata": {"annotations": {REVISION: "x"}}});
        assert_eq!(revision_of(&bad), None);
    }

    #[test]
    fn unsupported_kinds_name_their_group_kind() {
        let cm = resource::resolve_builtin("cm").map(|r| unsupported(&r, "history"));
        assert_eq!(
            cm.map(|e| e.to_string()).as_deref(),
            Some(
                "error retrieving history for \"ConfigMap\", no visitor method exists for { ConfigMap}"
            )
        );
        let job = resource::resolve_builtin("job").map(|r| unsupported(&r, "rollbacker"));
        assert_eq!(
            job.map(|e| e.to_string()).as_deref(),
            Some("no rollbacker has been implemented for \"Job.batch\"")
        );
    }
}
