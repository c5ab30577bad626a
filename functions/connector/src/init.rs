//! `connector init`: validates the secret JSON, then creates idempotently the DynamoDB table (with TTL),
//! the sync queue and its DLQ, and the secret. Progress goes to stderr; stdout carries only the three
//! `NAME=value` lines the functions need, so `connector init ... > env` captures them.

use std::path::PathBuf;

use anyhow::Context as _;
use aws_config::SdkConfig;
use shared::aws::provision::{Provisioned, dlq_name, ensure_secret, ensure_sync_queues};
use shared::config::Secrets;
use shared::store::schema;

use crate::error::CliError;

/// Arguments of `connector init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The secret JSON to store (polar_client_id, polar_client_secret, smartabase_username,
    /// smartabase_password, link_signing_key, token_encryption_key, revoke_hook_secret, and optionally
    /// polar_webhook_secret). Checked before anything is created.
    #[arg(long, value_name = "FILE.json")]
    secrets: PathBuf,
    /// DynamoDB table to create (CONNECTOR_TABLE).
    #[arg(long, value_name = "NAME", default_value = "polar-connector")]
    table: String,
    /// SQS sync queue to create (SYNC_QUEUE_URL); its dead-letter queue is `<NAME>-dlq`.
    #[arg(long, value_name = "NAME", default_value = "polar-connector-sync")]
    queue: String,
    /// Secrets Manager secret to create or update (CONNECTOR_SECRET_ID).
    #[arg(long, value_name = "NAME", default_value = "polar-connector/secrets")]
    secret_id: String,
}

/// Runs `connector init` against the AWS endpoint of `config`.
pub async fn run(args: InitArgs, config: &SdkConfig) -> Result<(), CliError> {
    let secrets_file = args.secrets.display().to_string();
    let json = std::fs::read_to_string(&args.secrets)
        .with_context(|| format!("cannot read the secrets file {secrets_file}"))
        .map_err(CliError::Input)?;
    Secrets::from_json(&json)
        .with_context(|| format!("the secrets file {secrets_file} is not valid"))
        .map_err(CliError::Input)?;

    let table = schema::create_table(&aws_sdk_dynamodb::Client::new(config), &args.table)
        .await
        .context("creating the table")?;
    if table.created {
        eprintln!("created table {}", args.table);
    } else {
        eprintln!("table {} already exists", args.table);
    }
    if table.ttl_enabled {
        eprintln!("enabled TTL on {}.{}", args.table, schema::EXPIRES_AT);
    }

    let queues = ensure_sync_queues(&aws_sdk_sqs::Client::new(config), &args.queue)
        .await
        .context("creating the sync queues")?;
    report("queue", &dlq_name(&args.queue), queues.dlq);
    report("queue", &args.queue, queues.queue);

    let secret = ensure_secret(
        &aws_sdk_secretsmanager::Client::new(config),
        &args.secret_id,
        &json,
    )
    .await
    .context("storing the secret")?;
    match secret {
        Provisioned::Created => eprintln!("created secret {}", args.secret_id),
        Provisioned::Unchanged => eprintln!(
            "secret {} already exists with the same value",
            args.secret_id
        ),
        Provisioned::Updated => eprintln!(
            "secret {} already existed with a different value: stored the new value",
            args.secret_id
        ),
    }

    println!("CONNECTOR_TABLE={}", args.table);
    println!("SYNC_QUEUE_URL={}", queues.queue_url);
    println!("CONNECTOR_SECRET_ID={}", args.secret_id);
    Ok(())
}

fn report(kind: &str, name: &str, outcome: Provisioned) {
    match outcome {
        Provisioned::Created => eprintln!("created {kind} {name}"),
        Provisioned::Unchanged => eprintln!("{kind} {name} already exists"),
        Provisioned::Updated => {
            eprintln!("{kind} {name} already existed with other settings: updated them")
        }
    }
}
