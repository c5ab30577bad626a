//! A bare `lambda_runtime` function answering every event with a greeting: the baseline the cold-start
//! benchmark compares the connector's six functions with.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(json!({ "hello": event.payload }))
    }))
    .await
}
