//! Idempotent provisioning of the sync queues and the secret (the table's lives in
//! [`crate::store::schema`]), and the operators' secret-key updates and dead-letter-queue lookup: the
//! `connector` CLI's side of AWS, never on a function's path.

use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName;

use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};

use super::{error_code, sdk_source};
use crate::error::Cause;

/// A provisioning step (or an operator's lookup) failed; names the resource, the operation and the SDK's
/// error code.
#[derive(Debug, thiserror::Error)]
#[error("{resource}: {operation} failed: {code}")]
pub struct ProvisionError {
    /// What was being set up (`table X`, `queue Y`, `secret Z`).
    pub resource: String,
    /// The AWS operation.
    pub operation: &'static str,
    /// The error code or reason.
    pub code: String,
    /// The SDK's failure, never its raw response ([`super::sdk_source`]).
    #[source]
    source: Option<Cause>,
}

impl ProvisionError {
    /// A failure with no underlying error (an answer missing what it must hold).
    pub(crate) fn new(resource: impl Into<String>, operation: &'static str, code: String) -> Self {
        Self {
            resource: resource.into(),
            operation,
            code,
            source: None,
        }
    }

    /// `operation` failed in the SDK: its error code, and what of its failure is safe to keep.
    pub(crate) fn sdk<E, R>(
        resource: impl Into<String>,
        operation: &'static str,
        err: SdkError<E, R>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        Self {
            code: error_code(&err),
            source: sdk_source(err),
            ..Self::new(resource, operation, String::new())
        }
    }

    /// A request the SDK refused to build, keeping its error.
    pub(crate) fn invalid_request(
        resource: impl Into<String>,
        operation: &'static str,
        err: aws_sdk_dynamodb::error::BuildError,
    ) -> Self {
        Self {
            code: format!("invalid request: {err}"),
            source: Some(Box::new(err)),
            ..Self::new(resource, operation, String::new())
        }
    }
}

/// What an idempotent provisioning step found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioned {
    /// It did not exist and was created.
    Created,
    /// It existed as wanted; nothing changed.
    Unchanged,
    /// It existed with other settings or content, which were replaced.
    Updated,
}

/// The sync queue's visibility timeout: six times the worker's 150 s timeout, as AWS recommends.
pub const SYNC_QUEUE_VISIBILITY_TIMEOUT_SECONDS: u32 = 900;
/// Receives before a sync job moves to the dead-letter queue.
pub const SYNC_QUEUE_MAX_RECEIVE_COUNT: u32 = 5;
/// How long the dead-letter queue keeps jobs: 14 days, SQS's maximum.
pub const DLQ_RETENTION_SECONDS: u32 = 14 * 24 * 60 * 60;

/// The sync queue and its dead-letter queue after [`ensure_sync_queues`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncQueues {
    /// The sync queue's URL (`SYNC_QUEUE_URL`).
    pub queue_url: String,
    /// What happened to the sync queue.
    pub queue: Provisioned,
    /// The dead-letter queue's URL.
    pub dlq_url: String,
    /// What happened to the dead-letter queue.
    pub dlq: Provisioned,
}

/// The dead-letter queue's name for the sync queue `name`.
pub fn dlq_name(name: &str) -> String {
    format!("{name}-dlq")
}

/// Creates, idempotently, the sync queue `name` (visibility timeout 900 s, redrive to the DLQ after 5
/// receives) and its dead-letter queue `<name>-dlq` (retention 14 days). Existing queues whose settings
/// differ are brought in line.
pub async fn ensure_sync_queues(
    client: &aws_sdk_sqs::Client,
    name: &str,
) -> Result<SyncQueues, ProvisionError> {
    let dlq_name = dlq_name(name);
    let (dlq_url, dlq) = ensure_queue(
        client,
        &dlq_name,
        HashMap::from([(
            QueueAttributeName::MessageRetentionPeriod,
            DLQ_RETENTION_SECONDS.to_string(),
        )]),
    )
    .await?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| ProvisionError::sdk(format!("queue {dlq_name}"), "GetQueueAttributes", e))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| {
            ProvisionError::new(
                format!("queue {dlq_name}"),
                "GetQueueAttributes",
                "no QueueArn returned".to_string(),
            )
        })?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": SYNC_QUEUE_MAX_RECEIVE_COUNT,
    });
    let (queue_url, queue) = ensure_queue(
        client,
        name,
        HashMap::from([
            (
                QueueAttributeName::VisibilityTimeout,
                SYNC_QUEUE_VISIBILITY_TIMEOUT_SECONDS.to_string(),
            ),
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
        ]),
    )
    .await?;
    Ok(SyncQueues {
        queue_url,
        queue,
        dlq_url,
        dlq,
    })
}

/// Whether a queue attribute as SQS reports it means `wanted`. Redrive policies are compared as JSON,
/// since SQS may report `maxReceiveCount` as a number or a string.
fn attribute_matches(name: &QueueAttributeName, current: Option<&String>, wanted: &str) -> bool {
    let Some(current) = current else {
        return false;
    };
    if *name != QueueAttributeName::RedrivePolicy {
        return current == wanted;
    }
    let normalise = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .map(|v| {
                let count = match &v["maxReceiveCount"] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (v["deadLetterTargetArn"].as_str().map(str::to_string), count)
            })
    };
    normalise(current).is_some_and(|c| Some(c) == normalise(wanted))
}

async fn ensure_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    wanted: HashMap<QueueAttributeName, String>,
) -> Result<(String, Provisioned), ProvisionError> {
    let resource = format!("queue {name}");
    let existing = match client.get_queue_url().queue_name(name).send().await {
        Ok(out) => out.queue_url,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_queue_does_not_exist()) =>
        {
            None
        }
        Err(e) => return Err(ProvisionError::sdk(resource, "GetQueueUrl", e)),
    };
    let Some(url) = existing else {
        let url = client
            .create_queue()
            .queue_name(name)
            .set_attributes(Some(wanted))
            .send()
            .await
            .map_err(|e| ProvisionError::sdk(&resource, "CreateQueue", e))?
            .queue_url
            .ok_or_else(|| {
                ProvisionError::new(&resource, "CreateQueue", "no QueueUrl returned".to_string())
            })?;
        return Ok((url, Provisioned::Created));
    };
    let current = client
        .get_queue_attributes()
        .queue_url(&url)
        .set_attribute_names(Some(wanted.keys().cloned().collect()))
        .send()
        .await
        .map_err(|e| ProvisionError::sdk(&resource, "GetQueueAttributes", e))?
        .attributes
        .unwrap_or_default();
    let differs = wanted
        .iter()
        .any(|(name, value)| !attribute_matches(name, current.get(name), value));
    if !differs {
        return Ok((url, Provisioned::Unchanged));
    }
    client
        .set_queue_attributes()
        .queue_url(&url)
        .set_attributes(Some(wanted))
        .send()
        .await
        .map_err(|e| ProvisionError::sdk(&resource, "SetQueueAttributes", e))?;
    Ok((url, Provisioned::Updated))
}

/// Stores `json` as the secret `secret_id`: creates it, leaves it alone when it already holds the same
/// JSON (compared as JSON values), or puts `json` as its new current value.
pub async fn ensure_secret(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
    json: &str,
) -> Result<Provisioned, ProvisionError> {
    let resource = format!("secret {secret_id}");
    let wanted: Option<serde_json::Value> = serde_json::from_str(json).ok();
    match client.get_secret_value().secret_id(secret_id).send().await {
        Ok(out) => {
            let current = out
                .secret_string()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok());
            if current.is_some() && current == wanted {
                return Ok(Provisioned::Unchanged);
            }
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            match client
                .create_secret()
                .name(secret_id)
                .secret_string(json)
                .send()
                .await
            {
                Ok(_) => return Ok(Provisioned::Created),
                // It exists without a current value (or was created meanwhile): put the value below.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_exists_exception()) => {}
                Err(e) => {
                    return Err(ProvisionError::sdk(resource, "CreateSecret", e));
                }
            }
        }
        Err(e) => {
            return Err(ProvisionError::sdk(resource, "GetSecretValue", e));
        }
    }
    client
        .put_secret_value()
        .secret_id(secret_id)
        .secret_string(json)
        .send()
        .await
        .map_err(|e| ProvisionError::sdk(resource, "PutSecretValue", e))?;
    Ok(Provisioned::Updated)
}

/// Sets one key of the JSON secret `secret_id` to `value` (or removes it with `None`), keeping every other
/// key: read, modify, put a new version. Used for values that arrive after `connector init`, such as
/// Polar's webhook signing key. Returns whether the secret changed. Errors never echo the secret.
pub async fn set_secret_key(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
    key: &str,
    value: Option<&str>,
) -> Result<bool, ProvisionError> {
    let resource = format!("secret {secret_id}");
    let current = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| ProvisionError::sdk(&resource, "GetSecretValue", e))?;
    let mut object: serde_json::Map<String, serde_json::Value> = current
        .secret_string()
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| {
            ProvisionError::new(
                &resource,
                "GetSecretValue",
                "the secret is not a JSON object".to_string(),
            )
        })?;
    let changed = match value {
        Some(value) => {
            object.insert(
                key.to_string(),
                serde_json::Value::String(value.to_string()),
            ) != Some(serde_json::Value::String(value.to_string()))
        }
        None => object.remove(key).is_some(),
    };
    if !changed {
        return Ok(false);
    }
    client
        .put_secret_value()
        .secret_id(secret_id)
        .secret_string(serde_json::Value::Object(object).to_string())
        .send()
        .await
        .map_err(|e| ProvisionError::sdk(&resource, "PutSecretValue", e))?;
    Ok(true)
}

/// The URL of the dead-letter queue of the queue at `queue_url`, found from its `RedrivePolicy` (so it
/// works whatever the DLQ is called, e.g. when SAM named it).
pub async fn dead_letter_queue_url(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<String, ProvisionError> {
    let resource = format!("queue {queue_url}");
    let policy = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|e| ProvisionError::sdk(&resource, "GetQueueAttributes", e))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::RedrivePolicy))
        .ok_or_else(|| {
            ProvisionError::new(
                &resource,
                "GetQueueAttributes",
                "the queue has no RedrivePolicy (no dead-letter queue)".to_string(),
            )
        })?;
    let (account, name) = dead_letter_target(&policy).ok_or_else(|| {
        ProvisionError::new(
            &resource,
            "GetQueueAttributes",
            "the RedrivePolicy names no deadLetterTargetArn".to_string(),
        )
    })?;
    client
        .get_queue_url()
        .queue_name(&name)
        .queue_owner_aws_account_id(account)
        .send()
        .await
        .map_err(|e| ProvisionError::sdk(format!("queue {name}"), "GetQueueUrl", e))?
        .queue_url
        .ok_or_else(|| {
            ProvisionError::new(
                format!("queue {name}"),
                "GetQueueUrl",
                "no QueueUrl returned".to_string(),
            )
        })
}

/// The account and queue name of a redrive policy's `deadLetterTargetArn`
/// (`arn:aws:sqs:<region>:<account>:<name>`).
fn dead_letter_target(policy: &str) -> Option<(String, String)> {
    let policy: serde_json::Value = serde_json::from_str(policy).ok()?;
    let arn = policy["deadLetterTargetArn"].as_str()?;
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some("sqs"), Some(_region), Some(account), Some(name)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    (!account.is_empty() && !name.is_empty()).then(|| (account.to_string(), name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_targets_come_from_the_arn() {
        assert_eq!(
            dead_letter_target(
                r#"{"deadLetterTargetArn":"arn:aws:sqs:eu-west-1:123456789012:sync-dlq","maxReceiveCount":"5"}"#
            ),
            Some(("123456789012".to_string(), "sync-dlq".to_string()))
        );
        assert_eq!(
            dead_letter_target(r#"{"deadLetterTargetArn":"arn:aws:sns:eu-west-1:1:topic"}"#),
            None
        );
        assert_eq!(dead_letter_target(r#"{"maxReceiveCount":5}"#), None);
        assert_eq!(dead_letter_target("not json"), None);
    }

    #[test]
    fn redrive_policies_compare_as_json_whatever_the_count_type() {
        let wanted =
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:q-dlq","maxReceiveCount":5}"#;
        let as_string =
            r#"{"maxReceiveCount":"5", "deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:q-dlq"}"#
                .to_string();
        let other_count =
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:q-dlq","maxReceiveCount":3}"#
                .to_string();
        let other_target =
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:x","maxReceiveCount":5}"#
                .to_string();
        let redrive = QueueAttributeName::RedrivePolicy;
        assert!(attribute_matches(&redrive, Some(&as_string), wanted));
        assert!(!attribute_matches(&redrive, Some(&other_count), wanted));
        assert!(!attribute_matches(&redrive, Some(&other_target), wanted));
        assert!(!attribute_matches(&redrive, None, wanted));
        let timeout = QueueAttributeName::VisibilityTimeout;
        assert!(attribute_matches(&timeout, Some(&"900".to_string()), "900"));
        assert!(!attribute_matches(&timeout, Some(&"30".to_string()), "900"));
    }
}
