//! Lambda entry point of `sync-fanout`.

use lambda_runtime::{LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init("sync-fanout");
    let connector = shared::bootstrap::start().await?;
    let connector = &connector;
    run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move {
            let deadline = shared::usecase::deadline_before(event.context.deadline, 20);
            sync_fanout::handle(connector, deadline).await?;
            Ok::<_, lambda_runtime::Error>(())
        },
    ))
    .await
}
