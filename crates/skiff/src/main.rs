//! The one skiff binary: wires the subcommands.

mod server;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "skiff",
    version,
    about = "Kubernetes and Docker, rebuilt as one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (API server and datastore) on this machine.
    Server(server::ServerArgs),
    /// Join a node to a cluster (`--hollow N` runs N simulated nodes).
    Agent(skiff_agent::AgentArgs),
    #[command(flatten)]
    Kubectl(skiff_cli::Verb),
}

/// mimalloc, not glibc's malloc: the API server's request and watch paths are allocation-heavy
/// (docs/adr/003-mimalloc.md). Built without transparent huge pages (`no_thp`): with them an
/// idle server's RSS grows by ~40 MB of mostly empty 2 MiB pages.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The kubectl verbs print their own output: only warnings from the libraries.
    let default_filter = match cli.command {
        Command::Server(_) | Command::Agent(_) => "info",
        Command::Kubectl(_) => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SKIFF_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Server(args) => runtime
            .block_on(server::run(args))
            .map_err(|e| e.to_string()),
        Command::Agent(args) => runtime.block_on(run_agent(args)),
        Command::Kubectl(verb) => return runtime.block_on(skiff_cli::run(verb)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the agent until SIGTERM or Ctrl-C; its error becomes one line.
async fn run_agent(args: skiff_agent::AgentArgs) -> Result<(), String> {
    let cancel = tokio_util::sync::CancellationToken::new();
    let stop = cancel.clone();
    let agent = skiff_agent::run(args, cancel);
    tokio::pin!(agent);
    tokio::select! {
        r = &mut agent => return r.map_err(|e| skiff_agent::error_chain(&e)),
        _ = server::shutdown_signal() => {}
    }
    tracing::info!("shutting down: nodes stay registered, their leases stop");
    stop.cancel();
    agent.await.map_err(|e| skiff_agent::error_chain(&e))
}
