//! `connector-local`: the local runner behind `make demo` and `make local`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use testkit::local::LocalOptions;

/// The Polar → Smartabase connector on this machine: moto, the simulators and the real function binaries.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the narrated demo (what `make demo` does).
    Demo {
        /// Leave everything running afterwards (HTTP API, schedules, SQS poller) until Ctrl-C.
        #[arg(long)]
        keep: bool,
        /// Use release binaries (target/release) instead of debug ones.
        #[arg(long)]
        release: bool,
        /// Port of the connector's HTTP API (0 = any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Starts moto and both simulators in the foreground and prints their URLs (what `make local` does).
    Local {
        /// Port of the Polar simulator (0 = any).
        #[arg(long, default_value_t = 0)]
        polar_port: u16,
        /// Port of the Smartabase simulator (0 = any).
        #[arg(long, default_value_t = 0)]
        smartabase_port: u16,
    },
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = workspace();
    match cli.command {
        Command::Demo {
            keep,
            release,
            port,
        } => {
            let options = LocalOptions {
                workspace: root.clone(),
                profile: if release {
                    "release".into()
                } else {
                    "debug".into()
                },
                front_port: port,
                polar_port: 0,
                smartabase_port: 0,
                work_dir: root.join("target").join("demo"),
                history_before_registration: true,
                sync_interval_minutes: 60,
                mapping: Some(testkit::demo::DEMO_MAPPING.into()),
            };
            testkit::demo::run(options, keep).await
        }
        Command::Local {
            polar_port,
            smartabase_port,
        } => testkit::demo::local_only(polar_port, smartabase_port).await,
    }
}
