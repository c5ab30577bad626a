//! Lambda entry point of `polar-webhook`.

use lambda_http::{run, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init("polar-webhook");
    let connector = shared::bootstrap::start().await?;
    run(service_fn(|request| {
        polar_webhook::handle(&connector, request)
    }))
    .await
}
