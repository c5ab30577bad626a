//! The cold-start benchmark's second baseline: `hello-lambda` plus the one network round trip every
//! connector function must make before its first poll (the AWS config loaded and the secret read, from
//! `CONNECTOR_SECRET_ID` on the endpoint `AWS_ENDPOINT_URL` names). The functions' init over this one is
//! what the connector adds beyond that round trip.

use aws_config::BehaviorVersion;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let secret_id = std::env::var("CONNECTOR_SECRET_ID")?;
    let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let secret = aws_sdk_secretsmanager::Client::new(&sdk)
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await?;
    let length = secret.secret_string().map_or(0, str::len);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(json!({ "hello": event.payload, "secret_length": length }))
    }))
    .await
}
