//! `smartabase-sim`: serves a simulated Smartabase site until Ctrl-C or SIGTERM.

use std::net::{IpAddr, SocketAddr};

use clap::{Parser, ValueEnum};
use smartabase_sim::{EmptyResults, SmartabaseSim, SmartabaseSimConfig};

/// Command-line options; defaults match `SmartabaseSimConfig::default()`.
#[derive(Parser)]
#[command(about = "Smartabase v1 API simulator")]
struct Args {
    /// Port to listen on (0 = a free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// App (site) name: the last path segment of the site URL.
    #[arg(long, default_value = "club")]
    app: String,
    /// API account username.
    #[arg(long, default_value = "polar.connector")]
    username: String,
    /// API account password.
    #[arg(long, default_value = "sim-password")]
    password: String,
    /// The API account's own user id.
    #[arg(long, default_value_t = 120_855)]
    api_user_id: i64,
    /// Number of athletes (with UUIDs) to generate.
    #[arg(long, default_value_t = 0)]
    athletes: usize,
    /// Seed for generated data and probabilistic faults.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// What searches answer when nothing matches.
    #[arg(long, value_enum, default_value_t = EmptyAnswer::Body)]
    empty_results: EmptyAnswer,
}

/// `--empty-results` values.
#[derive(Clone, Copy, ValueEnum)]
enum EmptyAnswer {
    /// An empty body.
    Body,
    /// `{"events": []}` / `{"profiles": []}`.
    List,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = SmartabaseSimConfig {
        app_name: args.app,
        username: args.username,
        password: args.password,
        api_user_id: args.api_user_id,
        seed: args.seed,
        athletes: args.athletes,
        empty_results: match args.empty_results {
            EmptyAnswer::Body => EmptyResults::EmptyBody,
            EmptyAnswer::List => EmptyResults::EmptyList,
        },
        ..SmartabaseSimConfig::default()
    };
    let sim = SmartabaseSim::start_at(config, SocketAddr::new(args.host, args.port)).await?;
    println!("smartabase-sim listening on {}", sim.site_url());
    wait_for_stop().await?;
    sim.shutdown().await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn wait_for_stop() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
