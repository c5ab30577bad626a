//! Lambda entry point of `revoke-hook`.

use lambda_http::{run, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init("revoke-hook");
    let connector = shared::bootstrap::start().await?;
    run(service_fn(|request| {
        revoke_hook::handle(&connector, request)
    }))
    .await
}
