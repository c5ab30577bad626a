//! `connector`: the operators' command line. `init` provisions the AWS resources; each further task
//! (athletes, athlete, link, sync, revoke, webhook, dlq) is one module with its own `Args` and `run`.

mod error;
mod init;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::CliError;

/// Polar → Smartabase connector: set up and operate the connector's AWS resources.
///
/// Talks to whatever the AWS SDK's environment points at (`AWS_ENDPOINT_URL` for a local stack).
#[derive(Debug, Parser)]
#[command(name = "connector", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create (idempotently) the table, the sync queue with its DLQ and the secret, then print the
    /// functions' environment as NAME=value lines.
    Init(init::InitArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<(), CliError> = match cli.command {
        Command::Init(args) => init::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
