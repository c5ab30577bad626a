//! JSON logs for every function: one subscriber, set up once at start.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber for `function` (level from `AWS_LAMBDA_LOG_LEVEL`, then `RUST_LOG`,
/// default `info`). CloudWatch stamps each line, so no timestamp is written. Safe to call twice.
pub fn init(function: &'static str) {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_string())
        .to_lowercase();
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    let installed = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .try_init()
        .is_ok();
    if installed {
        tracing::info!(function, "starting");
    }
}
