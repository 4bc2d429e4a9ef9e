//! kubectl-style commands: `skiff get|apply|create|delete|describe|label|annotate|scale|
//! edit|api-resources|version|wait|rollout`, talking to the API server like kubectl does.

mod apply;
mod client;
mod delete;
mod describe;
mod edit;
mod get;
mod info;
mod jsonpath;
mod label;
mod manifest;
mod printer;
mod resource;
mod rollout;
mod scale;
mod wait;
mod yaml;

use std::process::ExitCode;

pub use client::ConnArgs;

/// The kubectl verbs, flattened into the binary's subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Verb {
    /// Display one or many resources.
    Get(get::GetArgs),
    /// Apply a configuration to resources by file name or stdin (client-side apply).
    Apply(apply::ApplyArgs),
    /// Create resources from a file or stdin.
    Create(apply::CreateArgs),
    /// Delete resources by file names, stdin, resources and names, or by label selector.
    Delete(delete::DeleteArgs),
    /// Show details of a specific resource or group of resources.
    Describe(describe::DescribeArgs),
    /// Update the labels on a resource.
    Label(label::LabelArgs),
    /// Update the annotations on a resource.
    Annotate(label::LabelArgs),
    /// Set a new size for a deployment, replica set, replication controller, or stateful set.
    Scale(scale::ScaleArgs),
    /// Edit a resource on the server with $EDITOR.
    Edit(edit::EditArgs),
    /// Print the supported API resources on the server.
    ApiResources(info::ApiResourcesArgs),
    /// Print the client and server version information.
    Version(info::VersionArgs),
    /// Wait for a specific condition on one or many resources.
    Wait(wait::WaitArgs),
    /// Manage the rollout of deployments, daemon sets and stateful sets.
    Rollout(rollout::RolloutArgs),
}

/// A failed command, printed as one line like kubectl prints it.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A client-side problem: bad flags, files, unknown types.
    #[error("error: {0}")]
    Client(String),
    /// A `Status` answer from the server.
    #[error("Error from server ({reason}): {message}")]
    Server { reason: String, message: String },
}

impl CliError {
    pub(crate) fn client(msg: impl Into<String>) -> CliError {
        CliError::Client(msg.into())
    }

    /// The same error with `context` (e.g. `error when creating "f.yaml"`) before its message.
    pub(crate) fn with_context(self, context: &str) -> CliError {
        match self {
            CliError::Client(m) => CliError::Client(format!("{context}: {m}")),
            CliError::Server { reason, message } => CliError::Server {
                reason,
                message: format!("{context}: {message}"),
            },
        }
    }

    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, CliError::Server { reason, .. } if reason == "NotFound")
    }
}

pub(crate) type Result<T, E = CliError> = std::result::Result<T, E>;

/// Runs one verb; errors are printed on stderr as one line and give exit code 1.
pub async fn run(verb: Verb) -> ExitCode {
    let result = match verb {
        Verb::Get(a) => get::run(a).await,
        Verb::Apply(a) => apply::run_apply(a).await,
        Verb::Create(a) => apply::run_create(a).await,
        Verb::Delete(a) => delete::run(a).await,
        Verb::Describe(a) => describe::run(a).await,
        Verb::Label(a) => label::run(a, label::Field::Labels).await,
        Verb::Annotate(a) => label::run(a, label::Field::Annotations).await,
        Verb::Scale(a) => scale::run(a).await,
        Verb::Edit(a) => edit::run(a).await,
        Verb::ApiResources(a) => info::api_resources(a).await,
        Verb::Version(a) => info::version(a).await,
        Verb::Wait(a) => wait::run(a).await,
        Verb::Rollout(a) => rollout::run(a).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
