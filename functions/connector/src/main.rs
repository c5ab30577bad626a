//! `connector`: the operators' command line. `init` provisions the AWS resources, `doctor` checks a
//! deployment against its site; each further task (athletes, athlete, link, sync, revoke, webhook, dlq,
//! mapping) is one module with its own arguments and `run`. Results go to stdout, notes to stderr; exit
//! code 0 = done, 1 = the operation failed, 2 = bad usage or configuration. No secret value is ever
//! printed.

mod athletes;
mod dlq;
mod doctor;
mod environment;
mod error;
mod init;
mod link;
mod mapping;
mod output;
mod revoke;
mod sync;
mod webhook;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::environment::{Environment, Operator};
use crate::error::CliError;

/// Polar → Smartabase connector: set up and operate the connector's AWS resources.
///
/// Reads the functions' own settings (CONNECTOR_TABLE, SYNC_QUEUE_URL, CONNECTOR_SECRET_ID,
/// PUBLIC_BASE_URL, SMARTABASE_URL, POLAR_*_URL, SYNC_INTERVAL_MINUTES) from the environment, with
/// --env-file filling gaps, and talks to whatever the AWS SDK's environment points at (AWS_ENDPOINT_URL
/// for a local stack). Exit codes: 0 done, 1 the operation failed, 2 bad usage or configuration.
#[derive(Debug, Parser)]
#[command(name = "connector", version, about)]
struct Cli {
    /// Read settings from FILE (`NAME=value` lines, e.g. what `connector init` prints); variables set
    /// in the environment win over the file.
    #[arg(long, global = true, value_name = "FILE")]
    env_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create (idempotently) the table, the sync queue with its DLQ and the secret, then print the
    /// functions' environment as NAME=value lines.
    Init(init::InitArgs),
    /// Check the deployment against its site: configuration, secret, AWS resources, Smartabase account,
    /// athletes and forms, Polar client and webhook; one line per check with the fix. Exit code 1 when a
    /// check fails.
    Doctor(doctor::DoctorArgs),
    #[command(flatten)]
    Task(Task),
}

/// The operator tasks: they need the functions' configuration.
#[derive(Debug, Subcommand)]
enum Task {
    /// List athletes: UUID, status, Polar user id, last sync, next due, last error.
    Athletes(athletes::ListArgs),
    /// Show one athlete: status, ids, sync times, cursors, ledger counts, last error, token held.
    Athlete(athletes::ShowArgs),
    /// Print an athlete's signed authorisation link, for an administrator to send them.
    Link(link::LinkArgs),
    /// Queue a sync now for one athlete, or for every linked athlete with --all.
    Sync(sync::SyncArgs),
    /// Revoke an athlete: deregister at Polar, delete the token, stop syncing.
    Revoke(revoke::RevokeArgs),
    /// Manage Polar's webhook: register, status, activate, delete.
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// Inspect the sync queue's dead-letter queue and move jobs back: list, redrive.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Show, set or reset the site's form and field names.
    #[command(subcommand)]
    Mapping(mapping::MappingCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let environment = Environment::load(cli.env_file.as_deref())?;
    let task = match cli.command {
        Command::Init(args) => return init::run(args, &environment.sdk_config().await).await,
        // Doctor reports an incomplete configuration as a check instead of refusing to start.
        Command::Doctor(args) => return doctor::run(args, &environment).await,
        Command::Task(task) => task,
    };
    let operator = Operator::new(&environment).await?;
    match task {
        Task::Athletes(args) => athletes::list(&operator, args).await,
        Task::Athlete(args) => athletes::show(&operator, args).await,
        Task::Link(args) => link::run(&operator, args).await,
        Task::Sync(args) => sync::run(&operator, args).await,
        Task::Revoke(args) => revoke::run(&operator, args).await,
        Task::Webhook(command) => webhook::run(&operator, command).await,
        Task::Dlq(command) => dlq::run(&operator, command).await,
        Task::Mapping(command) => mapping::run(&operator, command).await,
    }
}
