//! AWS wiring every function runs: the SDK configuration, the secret read once per cold start, and the
//! SDK error codes logs and errors carry. What only the `connector` CLI and the tests do (creating the
//! queues and the secret, operators' lookups) is in [`provision`].

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};

use crate::config::{ConfigError, Secrets};

pub mod provision;

/// The SDK configuration from the environment (region, credentials, and `AWS_ENDPOINT_URL`, which points
/// every client at a local stack such as moto).
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Reads and parses the connector's secret. Failures name the secret id and the SDK's error code, or the
/// missing/invalid key; never a value.
pub async fn read_secrets(config: &SdkConfig, secret_id: &str) -> Result<Secrets, ConfigError> {
    let unavailable = |reason: String| ConfigError::SecretUnavailable {
        secret_id: secret_id.to_string(),
        reason,
    };
    let out = aws_sdk_secretsmanager::Client::new(config)
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| unavailable(error_code(&e)))?;
    let json = out
        .secret_string()
        .ok_or_else(|| unavailable("the secret has no string value".to_string()))?;
    Secrets::from_json(json)
}

/// The error code of any AWS SDK failure (`ConditionalCheckFailedException`, `timeout`, `dispatch
/// failure`, …) for logs and errors: never the request or response payload.
pub fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> String {
    match err {
        SdkError::ServiceError(e) => e
            .err()
            .code()
            .unwrap_or("unknown service error")
            .to_string(),
        SdkError::TimeoutError(_) => "timeout".to_string(),
        SdkError::DispatchFailure(_) => "dispatch failure".to_string(),
        SdkError::ResponseError(_) => "unreadable response".to_string(),
        SdkError::ConstructionFailure(_) => "request construction failure".to_string(),
        _ => "unknown SDK error".to_string(),
    }
}
