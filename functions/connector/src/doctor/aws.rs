//! The AWS side: the table, the sync queue and its DLQ, the secret (present and complete) and the mapping
//! override stored in the table. Each needs only its own setting, so one missing variable does not hide
//! the state of the others.

use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;
use shared::aws::error_code;
use shared::aws::provision::dead_letter_queue_url;
use shared::bootstrap::MAPPING_SETTING;
use shared::config::Secrets;
use shared::mapping::Mapping;
use shared::store::{DynamoStore, SettingsStore as _};

use super::Check;
use crate::environment::Environment;

/// What the later checks need from these.
pub(super) struct Resources {
    /// The secret, when it is readable and complete.
    pub secrets: Option<Secrets>,
    /// The effective mapping, when the table and the stored override are readable.
    pub mapping: Option<Mapping>,
}

const INIT_FIX: &str = "`connector init --secrets FILE.json` creates the table, the queues and the \
    secret (a deployed stack creates them itself: check the variable against the stack's outputs)";

pub(super) async fn check_resources(
    sdk: &SdkConfig,
    environment: &Environment,
    checks: &mut Vec<Check>,
) -> Resources {
    let table = environment.get("CONNECTOR_TABLE");
    let table_exists = match &table {
        Some(table) => {
            let check = check_table(sdk, table).await;
            let exists = check.status != super::Status::Fail;
            checks.push(check);
            exists
        }
        None => {
            checks.push(unset("table", "CONNECTOR_TABLE"));
            false
        }
    };
    match environment.get("SYNC_QUEUE_URL") {
        Some(url) => check_queues(sdk, &url, checks).await,
        None => {
            checks.push(unset("sync_queue", "SYNC_QUEUE_URL"));
            checks.push(unset("dlq", "SYNC_QUEUE_URL"));
        }
    }
    let secrets = match environment.get("CONNECTOR_SECRET_ID") {
        Some(secret_id) => {
            let (check, secrets) = check_secret(sdk, &secret_id).await;
            checks.push(check);
            secrets
        }
        None => {
            checks.push(unset("secret", "CONNECTOR_SECRET_ID"));
            None
        }
    };
    let mapping = match table.filter(|_| table_exists) {
        Some(table) => {
            let (check, mapping) = check_mapping(&DynamoStore::from_config(sdk, table)).await;
            checks.push(check);
            mapping
        }
        None => {
            checks.push(Check::not_checked(
                "mapping",
                "table",
                "the mapping override lives in the table",
            ));
            None
        }
    };
    Resources { secrets, mapping }
}

fn unset(name: &str, variable: &str) -> Check {
    Check::not_checked(name, "configuration", &format!("{variable} is not set"))
}

async fn check_table(sdk: &SdkConfig, table: &str) -> Check {
    let described = aws_sdk_dynamodb::Client::new(sdk)
        .describe_table()
        .table_name(table)
        .send()
        .await;
    match described {
        Ok(out) => {
            let status = out
                .table()
                .and_then(|t| t.table_status())
                .map_or("unknown", |s| s.as_str());
            Check::ok("table", format!("{table} exists ({status})"))
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Check::fail(
                "table",
                format!("table {table} (CONNECTOR_TABLE) does not exist"),
                INIT_FIX,
            )
        }
        Err(e) => Check::fail(
            "table",
            format!("DescribeTable of {table} failed: {}", error_code(&e)),
            "check the AWS credentials, region and the permission dynamodb:DescribeTable",
        ),
    }
}

async fn check_queues(sdk: &SdkConfig, url: &str, checks: &mut Vec<Check>) {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await;
    match attributes {
        Ok(_) => checks.push(Check::ok("sync_queue", format!("{url} exists"))),
        Err(e) => {
            let missing = e
                .as_service_error()
                .is_some_and(|s| s.is_queue_does_not_exist());
            checks.push(if missing {
                Check::fail(
                    "sync_queue",
                    format!("the queue {url} (SYNC_QUEUE_URL) does not exist"),
                    INIT_FIX,
                )
            } else {
                Check::fail(
                    "sync_queue",
                    format!("GetQueueAttributes of {url} failed: {}", error_code(&e)),
                    "check SYNC_QUEUE_URL, the AWS credentials and region",
                )
            });
            checks.push(Check::not_checked(
                "dlq",
                "sync_queue",
                "the dead-letter queue is found through the sync queue",
            ));
            return;
        }
    }
    checks.push(match dead_letter_queue_url(&sqs, url).await {
        Ok(dlq) => Check::ok("dlq", format!("{dlq} receives jobs that fail five times")),
        Err(e) => Check::fail(
            "dlq",
            e.to_string(),
            "give the sync queue a redrive policy to an existing dead-letter queue: `connector init` \
             sets it up (the stack does too)",
        ),
    });
}

/// Reads the secret and names every missing key at once; never shows a value.
async fn check_secret(sdk: &SdkConfig, secret_id: &str) -> (Check, Option<Secrets>) {
    let put_fix = format!(
        "aws secretsmanager put-secret-value --secret-id {secret_id} --secret-string \
         file://secrets.json (the JSON with every key; README, Configuration)"
    );
    let read = aws_sdk_secretsmanager::Client::new(sdk)
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await;
    let json = match read {
        Ok(out) => out.secret_string().map(str::to_owned),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            let check = Check::fail(
                "secret",
                format!("secret {secret_id} (CONNECTOR_SECRET_ID) does not exist or has no value"),
                INIT_FIX,
            );
            return (check, None);
        }
        Err(e) => {
            let check = Check::fail(
                "secret",
                format!("GetSecretValue of {secret_id} failed: {}", error_code(&e)),
                "check the AWS credentials, region and the permission secretsmanager:GetSecretValue",
            );
            return (check, None);
        }
    };
    let Some(json) = json else {
        let check = Check::fail(
            "secret",
            format!("secret {secret_id} has no string value"),
            put_fix,
        );
        return (check, None);
    };
    let missing = missing_keys(&json);
    if !missing.is_empty() {
        let check = Check::fail(
            "secret",
            format!(
                "secret {secret_id} lacks {}: every function refuses to start",
                missing.join(", ")
            ),
            put_fix,
        );
        return (check, None);
    }
    match Secrets::from_json(&json) {
        Ok(secrets) => {
            let webhook_key = if secrets.polar_webhook_secret.is_some() {
                "with"
            } else {
                "without"
            };
            let check = Check::ok(
                "secret",
                format!(
                    "secret {secret_id} holds every key ({webhook_key} {})",
                    Secrets::WEBHOOK_SECRET_KEY
                ),
            );
            (check, Some(secrets))
        }
        Err(e) => (
            Check::fail("secret", format!("secret {secret_id}: {e}"), put_fix),
            None,
        ),
    }
}

/// The required keys that are absent, empty or `null` (a stack creates the secret with empty keys).
fn missing_keys(json: &str) -> Vec<&'static str> {
    let object: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(json) {
        Ok(object) => object,
        // Not an object: `Secrets::from_json` names that.
        Err(_) => return Vec::new(),
    };
    Secrets::REQUIRED_KEYS
        .into_iter()
        .filter(|key| match object.get(*key) {
            None | Some(serde_json::Value::Null) => true,
            Some(serde_json::Value::String(value)) => value.trim().is_empty(),
            Some(_) => false,
        })
        .collect()
}

async fn check_mapping(store: &DynamoStore) -> (Check, Option<Mapping>) {
    let fix =
        "replace it with `connector mapping set FILE` or drop it with `connector mapping reset`";
    match store.get_setting(MAPPING_SETTING).await {
        Ok(None) => (
            Check::ok("mapping", "the built-in form and field names (no override)"),
            Some(Mapping::defaults()),
        ),
        Ok(Some(json)) => match Mapping::with_override(&json) {
            Ok(mapping) => (
                Check::ok(
                    "mapping",
                    "the site's override of form and field names (`connector mapping show`)",
                ),
                Some(mapping),
            ),
            Err(e) => (
                Check::fail(
                    "mapping",
                    format!(
                        "the stored override is invalid ({e}): every function refuses to start"
                    ),
                    fix,
                ),
                None,
            ),
        },
        Err(e) => (
            Check::fail(
                "mapping",
                format!("the mapping override could not be read: {e}"),
                "check the AWS credentials and the permission dynamodb:GetItem on the table",
            ),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_keys_are_all_named_and_empty_ones_count_as_missing() {
        let json = r#"{"polar_client_id": "c", "polar_client_secret": "", "smartabase_username": null,
            "smartabase_password": "p", "link_signing_key": "  ", "token_encryption_key": "k"}"#;
        assert_eq!(
            missing_keys(json),
            [
                "polar_client_secret",
                "smartabase_username",
                "link_signing_key",
                "revoke_hook_secret"
            ]
        );
        assert!(missing_keys("not json").is_empty());
    }
}
