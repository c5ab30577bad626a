//! Lambda entry point of `sync-worker`.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init("sync-worker");
    let connector = shared::bootstrap::start().await?;
    let connector = &connector;
    run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
        let deadline = shared::usecase::deadline_before(
            event.context.deadline,
            sync_worker::DEADLINE_MARGIN_SECONDS,
        );
        Ok::<_, lambda_runtime::Error>(
            sync_worker::handle(connector, event.payload, deadline).await,
        )
    }))
    .await
}
