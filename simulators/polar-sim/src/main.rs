//! `polar-sim`: runs the Polar AccessLink simulator as a standalone server.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use polar_sim::{ConsentMode, GenerateRequest, NewAccount, PolarSim, PolarSimConfig, RateLimits};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Consent {
    Manual,
    Accept,
    Deny,
}

/// Polar AccessLink v3 simulator (control API under /_sim/).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Port to listen on (0 = any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Registered client id.
    #[arg(long, default_value = "polar-sim-client")]
    client_id: String,
    /// Registered client secret.
    #[arg(long, default_value = "polar-sim-secret")]
    client_secret: String,
    /// Registered redirect URI (repeatable; the first is the default).
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// Consent page behaviour.
    #[arg(long, value_enum, default_value = "manual")]
    consent: Consent,
    /// Seed for ids, tokens, faults and generated data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Accounts to create at start (consents accepted).
    #[arg(long, default_value_t = 0)]
    athletes: u32,
    /// Days of data to generate for each created account.
    #[arg(long, default_value_t = 14)]
    days: u32,
    /// Serve data uploaded before registration.
    #[arg(long)]
    history_before_registration: bool,
    /// Send every SLEEP webhook event twice.
    #[arg(long)]
    double_fire_sleep: bool,
    /// Short-term (15 min) rate-limit base.
    #[arg(long, default_value_t = 500)]
    rate_short_base: u64,
    /// Short-term increment per registered user.
    #[arg(long, default_value_t = 20)]
    rate_short_per_user: u64,
    /// Long-term (24 h) rate-limit base.
    #[arg(long, default_value_t = 5000)]
    rate_long_base: u64,
    /// Long-term increment per registered user.
    #[arg(long, default_value_t = 100)]
    rate_long_per_user: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let defaults = PolarSimConfig::default();
    let config = PolarSimConfig {
        client_id: args.client_id,
        client_secret: args.client_secret,
        redirect_uris: if args.redirect_uris.is_empty() {
            defaults.redirect_uris
        } else {
            args.redirect_uris
        },
        rate_limits: RateLimits {
            short_base: args.rate_short_base,
            short_per_user: args.rate_short_per_user,
            long_base: args.rate_long_base,
            long_per_user: args.rate_long_per_user,
        },
        consent_mode: match args.consent {
            Consent::Manual => ConsentMode::Manual,
            Consent::Accept => ConsentMode::AutoAccept,
            Consent::Deny => ConsentMode::AutoDeny,
        },
        seed: args.seed,
        history_before_registration: args.history_before_registration,
        double_fire_sleep: args.double_fire_sleep,
    };
    let sim = PolarSim::start_on(config, SocketAddr::new(args.host, args.port)).await?;
    for _ in 0..args.athletes {
        let account = sim.create_account(NewAccount::default())?;
        sim.generate(
            account.polar_user_id,
            &GenerateRequest {
                days: args.days,
                ..GenerateRequest::default()
            },
        )
        .with_context(|| format!("generating data for {}", account.polar_user_id))?;
        tracing::info!(
            polar_user_id = account.polar_user_id,
            utc_offset_minutes = account.utc_offset_minutes,
            "account created"
        );
    }
    println!("polar-sim listening on {}", sim.base_url());
    wait_for_signal().await?;
    sim.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
