//! Lambda entry point of `oauth-callback`.

use lambda_http::{run, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init("oauth-callback");
    let connector = shared::bootstrap::start().await?;
    run(service_fn(|request| {
        oauth_callback::handle(&connector, request)
    }))
    .await
}
