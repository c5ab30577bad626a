//! AWS wiring every function runs: the SDK configuration, the secret read once per cold start, and the
//! SDK error codes logs and errors carry. What only the `connector` CLI and the tests do (creating the
//! queues and the secret, operators' lookups) is in [`provision`].

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};

use crate::config::{ConfigError, Secrets};
use crate::error::Cause;

pub mod provision;

/// The SDK configuration from the environment (region, credentials, and `AWS_ENDPOINT_URL`, which points
/// every client at a local stack such as moto).
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Reads and parses the connector's secret. Failures name the secret id and the SDK's error code, or the
/// missing/invalid key; never a value.
pub async fn read_secrets(config: &SdkConfig, secret_id: &str) -> Result<Secrets, ConfigError> {
    let unavailable = |reason: String, source: Option<Cause>| ConfigError::SecretUnavailable {
        secret_id: secret_id.to_string(),
        reason,
        source,
    };
    let out = aws_sdk_secretsmanager::Client::new(config)
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| unavailable(error_code(&e), sdk_source(e)))?;
    let json = out
        .secret_string()
        .ok_or_else(|| unavailable("the secret has no string value".to_string(), None))?;
    Secrets::from_json(json)
}

/// What of an AWS SDK failure an error may keep as its source: the modelled service error (code, AWS's
/// message, request id) or the cause of a dispatch, timeout or construction failure (I/O, TLS, DNS,
/// credentials). Never the raw response: a response that did not parse is the payload itself (an item's
/// sealed token, the secret's value), so an unreadable response keeps nothing.
pub fn sdk_source<E, R>(err: SdkError<E, R>) -> Option<Cause>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match err {
        SdkError::ResponseError(_) => None,
        // A 2xx body that did not deserialize comes back as an unmodelled service error with no code,
        // whose source is the JSON reader's error: that quotes bytes of the payload.
        SdkError::ServiceError(ref e) if e.err().code().is_none() => None,
        other => other.into_source().ok(),
    }
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

#[cfg(test)]
mod tests {
    use aws_sdk_secretsmanager::error::ConnectorError;
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
    use aws_sdk_secretsmanager::types::error::ResourceNotFoundException;

    use super::*;

    type Failure = SdkError<GetSecretValueError, String>;

    /// Everything an error shows: its chain and its `Debug`.
    fn shown(source: &Option<Cause>) -> String {
        source.as_deref().map_or_else(String::new, |cause| {
            format!("{} {cause:?}", crate::error::with_causes(cause))
        })
    }

    #[test]
    fn the_source_of_an_sdk_failure_never_holds_the_raw_response() {
        // A raw response stands in for the secret's value (or an item) the SDK would keep.
        let raw = || r#"{"SecretString": "SECRET-VALUE"}"#.to_string();

        let service = sdk_source(Failure::service_error(
            GetSecretValueError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .message("Secrets Manager can't find the specified secret.")
                    // As the SDK reads it from an answer: with its code.
                    .meta(
                        aws_sdk_secretsmanager::error::ErrorMetadata::builder()
                            .code("ResourceNotFoundException")
                            .build(),
                    )
                    .build(),
            ),
            raw(),
        ));
        assert!(
            service
                .as_deref()
                .and_then(|cause| cause.downcast_ref::<GetSecretValueError>())
                .is_some_and(GetSecretValueError::is_resource_not_found_exception),
            "the modelled error is kept: {service:?}"
        );

        let dispatch = sdk_source(Failure::dispatch_failure(ConnectorError::io(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into(),
        )));
        assert!(
            dispatch
                .as_deref()
                .and_then(|cause| cause.downcast_ref::<ConnectorError>())
                .is_some_and(ConnectorError::is_io),
            "the connector's error is kept: {dispatch:?}"
        );

        let unreadable = sdk_source(Failure::response_error(
            std::io::Error::other("unexpected token"),
            raw(),
        ));
        assert!(unreadable.is_none(), "{unreadable:?}");

        for source in [service, dispatch, unreadable] {
            assert!(!shown(&source).contains("SECRET-VALUE"), "{source:?}");
        }
    }
}
