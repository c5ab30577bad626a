//! Lambda entry point of `sync-fanout`.

use lambda_runtime::{LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init("sync-fanout");
    let deps = shared::bootstrap::start_dispatch().await?;
    let deps = &deps;
    run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move {
            let deadline = shared::usecase::deadline_before(event.context.deadline, 20);
            sync_fanout::handle(deps.fanout_ports(), deadline).await?;
            Ok::<_, lambda_runtime::Error>(())
        },
    ))
    .await
}
