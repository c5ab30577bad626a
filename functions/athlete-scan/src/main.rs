//! Lambda entry point of `athlete-scan`.

use lambda_runtime::{LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init("athlete-scan");
    let connector = shared::bootstrap::start().await?;
    let connector = &connector;
    run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move {
            let deadline = shared::usecase::deadline_before(event.context.deadline, 30);
            athlete_scan::handle(connector, deadline).await?;
            Ok::<_, lambda_runtime::Error>(())
        },
    ))
    .await
}
