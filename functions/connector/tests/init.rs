//! `connector init` as an operator runs it: the built binary against moto, twice, then with changed and
//! with broken secrets.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::Write as _;
use std::process::Output;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};
use testkit::moto::{Moto, unique_name};

fn secrets() -> Value {
    json!({
        "polar_client_id": "client-1",
        "polar_client_secret": "POLAR-CLIENT-SECRET",
        "smartabase_username": "api.user",
        "smartabase_password": "SB-PASSWORD-xyz",
        "link_signing_key": "LINK-SIGNING-KEY-0123456789",
        "token_encryption_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "revoke_hook_secret": "REVOKE-HOOK-SECRET-0123456789",
    })
}

fn secrets_file(content: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(content.as_bytes()).unwrap();
    file
}

struct Names {
    table: String,
    queue: String,
    secret_id: String,
}

impl Names {
    fn new() -> Self {
        Self {
            table: unique_name("init-table"),
            queue: unique_name("init-q"),
            secret_id: format!("{}/secrets", unique_name("init")),
        }
    }
}

async fn init(moto: &Moto, secrets: &std::path::Path, names: &Names) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_connector"));
    moto.configure_command(&mut command).args([
        "init".as_ref(),
        "--secrets".as_ref(),
        secrets.as_os_str(),
        "--table".as_ref(),
        names.table.as_ref(),
        "--queue".as_ref(),
        names.queue.as_ref(),
        "--secret-id".as_ref(),
        names.secret_id.as_ref(),
    ]);
    tokio::process::Command::from(command)
        .output()
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What init set up, as AWS reports it; equal snapshots mean nothing changed.
#[derive(Debug, PartialEq)]
struct Snapshot {
    table_created: String,
    ttl: Option<String>,
    queue_attributes: HashMap<QueueAttributeName, String>,
    dlq_attributes: HashMap<QueueAttributeName, String>,
    secret_version: String,
    secret_value: Value,
}

async fn snapshot(moto: &Moto, names: &Names) -> Snapshot {
    let config = moto.sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let table = dynamo
        .describe_table()
        .table_name(&names.table)
        .send()
        .await
        .unwrap();
    let ttl = dynamo
        .describe_time_to_live()
        .table_name(&names.table)
        .send()
        .await
        .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let mut attributes = Vec::new();
    for name in [names.queue.clone(), format!("{}-dlq", names.queue)] {
        let url = sqs
            .get_queue_url()
            .queue_name(&name)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        attributes.push(
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::All)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap(),
        );
    }
    let dlq_attributes = attributes.pop().unwrap();
    let queue_attributes = attributes.pop().unwrap();
    let secret = aws_sdk_secretsmanager::Client::new(&config)
        .get_secret_value()
        .secret_id(&names.secret_id)
        .send()
        .await
        .unwrap();
    Snapshot {
        table_created: format!("{:?}", table.table().and_then(|t| t.creation_date_time())),
        ttl: ttl.time_to_live_description().map(|d| {
            format!(
                "{}:{}",
                d.attribute_name().unwrap_or_default(),
                d.time_to_live_status().map_or("", |s| s.as_str())
            )
        }),
        queue_attributes,
        dlq_attributes,
        secret_version: secret.version_id().unwrap().to_string(),
        secret_value: serde_json::from_str(secret.secret_string().unwrap()).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn init_twice_creates_once_and_prints_the_same_environment() {
    let moto = testkit::moto::shared().await;
    let names = Names::new();
    let file = secrets_file(&secrets().to_string());

    let first = init(moto, file.path(), &names).await;
    let stderr = text(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    let stdout = text(&first.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let queue_url = format!(
        "{}/{}/{}",
        moto.endpoint(),
        testkit::moto::ACCOUNT_ID,
        names.queue
    );
    assert_eq!(
        lines,
        [
            format!("CONNECTOR_TABLE={}", names.table),
            format!("SYNC_QUEUE_URL={queue_url}"),
            format!("CONNECTOR_SECRET_ID={}", names.secret_id),
        ]
    );
    for expected in [
        format!("created table {}", names.table),
        format!("created queue {}-dlq", names.queue),
        format!("created queue {}", names.queue),
        format!("created secret {}", names.secret_id),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in {stderr}"
        );
    }
    assert!(!stderr.contains("SB-PASSWORD"), "a secret leaked: {stderr}");

    let created = snapshot(moto, &names).await;
    assert_eq!(created.ttl.as_deref(), Some("expires_at:ENABLED"));
    assert_eq!(
        created.queue_attributes[&QueueAttributeName::VisibilityTimeout],
        "900"
    );
    let redrive: Value =
        serde_json::from_str(&created.queue_attributes[&QueueAttributeName::RedrivePolicy])
            .unwrap();
    assert_eq!(
        redrive["deadLetterTargetArn"],
        created.dlq_attributes[&QueueAttributeName::QueueArn].as_str()
    );
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "5"
    );
    assert_eq!(
        created.dlq_attributes[&QueueAttributeName::MessageRetentionPeriod],
        "1209600"
    );
    assert_eq!(created.secret_value, secrets());

    // The functions read the stored secret back.
    let read = shared::aws::read_secrets(&moto.sdk_config().await, &names.secret_id)
        .await
        .unwrap();
    assert_eq!(read.polar_client_id, "client-1");

    // Again: same output, everything reported as existing, nothing changed.
    let second = init(moto, file.path(), &names).await;
    let stderr = text(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert_eq!(text(&second.stdout), stdout);
    assert!(!stderr.contains("created"), "{stderr}");
    for expected in [
        format!("table {} already exists", names.table),
        format!("queue {}-dlq already exists", names.queue),
        format!("queue {} already exists", names.queue),
        format!("secret {} already exists", names.secret_id),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in {stderr}"
        );
    }
    assert_eq!(snapshot(moto, &names).await, created);

    // A changed secrets file replaces the stored value, and says so.
    let mut changed = secrets();
    changed["polar_webhook_secret"] = "WEBHOOK-SECRET-abc".into();
    let changed_file = secrets_file(&changed.to_string());
    let third = init(moto, changed_file.path(), &names).await;
    let stderr = text(&third.stderr);
    assert!(third.status.success(), "{stderr}");
    assert!(stderr.contains("stored the new value"), "{stderr}");
    let after = snapshot(moto, &names).await;
    assert_eq!(after.secret_value, changed);
    assert_ne!(after.secret_version, created.secret_version);
    assert_eq!(after.queue_attributes, created.queue_attributes);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_secrets_exit_2_naming_the_key_and_create_nothing() {
    let moto = testkit::moto::shared().await;
    let names = Names::new();
    let mut broken = secrets();
    broken
        .as_object_mut()
        .unwrap()
        .remove("token_encryption_key");
    let file = secrets_file(&broken.to_string());

    let output = init(moto, file.path(), &names).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("token_encryption_key"), "{stderr}");
    assert!(output.stdout.is_empty());

    let missing = init(
        moto,
        std::path::Path::new("/nonexistent/secrets.json"),
        &names,
    )
    .await;
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("/nonexistent/secrets.json"));

    let config = moto.sdk_config().await;
    let table = aws_sdk_dynamodb::Client::new(&config)
        .describe_table()
        .table_name(&names.table)
        .send()
        .await;
    assert!(
        table
            .unwrap_err()
            .as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())
    );
    for queue in [names.queue.clone(), format!("{}-dlq", names.queue)] {
        let found = aws_sdk_sqs::Client::new(&config)
            .get_queue_url()
            .queue_name(&queue)
            .send()
            .await;
        assert!(
            found
                .unwrap_err()
                .as_service_error()
                .is_some_and(|e| e.is_queue_does_not_exist()),
            "{queue}"
        );
    }
    let secret = aws_sdk_secretsmanager::Client::new(&config)
        .describe_secret()
        .secret_id(&names.secret_id)
        .send()
        .await;
    assert!(
        secret
            .unwrap_err()
            .as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())
    );
}

#[tokio::test]
async fn reading_a_missing_secret_names_it() {
    let moto = testkit::moto::shared().await;
    let id = unique_name("absent");
    let error = shared::aws::read_secrets(&moto.sdk_config().await, &id)
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(&id) && message.contains("ResourceNotFoundException"),
        "{message}"
    );
    assert!(
        std::error::Error::source(&error)
            .and_then(|cause| cause.downcast_ref::<aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError>())
            .is_some_and(|cause| cause.is_resource_not_found_exception()),
        "the service error is kept as the source: {error:?}"
    );
}

#[test]
fn help_lists_every_init_option() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_connector"))
        .args(["init", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = text(&output.stdout);
    for option in [
        "--secrets",
        "--table",
        "--queue",
        "--secret-id",
        "polar-connector-sync",
    ] {
        assert!(help.contains(option), "{option} missing from {help}");
    }
}
