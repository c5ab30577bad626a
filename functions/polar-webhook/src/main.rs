//! Lambda entry point of `polar-webhook`.

use lambda_http::{run, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init("polar-webhook");
    let deps = shared::bootstrap::start_dispatch().await?;
    run(service_fn(|request| {
        polar_webhook::handle(deps.webhook_ports(), request)
    }))
    .await
}
