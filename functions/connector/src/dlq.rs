//! `connector dlq list|redrive`: the sync queue's dead-letter queue, found from the queue's
//! `RedrivePolicy`. Listing holds the messages briefly and hands them back, so nothing is consumed;
//! redriving sends each chosen message to the sync queue, then deletes it from the DLQ.

use std::collections::BTreeSet;

use anyhow::{Context as _, anyhow};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::aws::error_code;
use shared::aws::provision::dead_letter_queue_url;
use shared::error::with_causes;
use shared::queue::SyncJob;

use crate::environment::Operator;
use crate::error::CliError;
use crate::output::{self, NONE};

/// How long messages stay hidden while the CLI looks at them; they are handed back at once afterwards,
/// and reappear by themselves after this if the CLI dies in between.
const HOLD_SECONDS: i32 = 60;
/// SQS's most messages per receive.
const RECEIVE_BATCH: i32 = 10;
/// A bound on one listing, far above any healthy DLQ.
const MAX_MESSAGES: usize = 10_000;

/// `connector dlq …`.
#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// List the dead-letter queue's messages without consuming them (SQS has no peek: each listing
    /// counts as one more receive in the receive counts shown).
    List {
        /// A JSON array instead of the table, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Move messages from the dead-letter queue back to the sync queue.
    Redrive(RedriveArgs),
}

/// Arguments of `connector dlq redrive`.
#[derive(Debug, clap::Args)]
pub struct RedriveArgs {
    /// Every message in the dead-letter queue.
    #[arg(long, conflicts_with = "message_ids")]
    all: bool,
    /// The messages to move (ids as `connector dlq list` shows them).
    #[arg(value_name = "MESSAGE-ID", required_unless_present = "all")]
    message_ids: Vec<String>,
}

/// One dead-lettered job as listed.
#[derive(Debug, Serialize)]
struct DeadLetter {
    message_id: String,
    job_id: Option<String>,
    athlete: Option<String>,
    kind: Option<String>,
    enqueued_at: Option<DateTime<Utc>>,
    receive_count: Option<u32>,
    sent_at: Option<DateTime<Utc>>,
}

impl DeadLetter {
    fn from_message(message: &Message) -> Self {
        let job = message
            .body()
            .and_then(|body| SyncJob::from_body(body).ok());
        let attribute = |name: MessageSystemAttributeName| {
            message
                .attributes()
                .and_then(|attributes| attributes.get(&name))
        };
        Self {
            message_id: message.message_id().unwrap_or(NONE).to_string(),
            job_id: job.as_ref().map(|j| j.job_id.clone()),
            athlete: job.as_ref().map(|j| j.athlete.as_str().to_string()),
            kind: job.as_ref().map(|j| output::json_name(&j.kind)),
            enqueued_at: job.as_ref().map(|j| j.enqueued_at),
            receive_count: attribute(MessageSystemAttributeName::ApproximateReceiveCount)
                .and_then(|v| v.parse().ok()),
            sent_at: attribute(MessageSystemAttributeName::SentTimestamp)
                .and_then(|v| v.parse::<i64>().ok())
                .and_then(DateTime::from_timestamp_millis),
        }
    }
}

/// Runs `connector dlq …`.
pub async fn run(operator: &Operator, command: DlqCommand) -> Result<(), CliError> {
    let sqs = operator.sqs();
    let queue_url = &operator.config.sync_queue_url;
    let dlq_url = dead_letter_queue_url(&sqs, queue_url)
        .await
        .context("finding the dead-letter queue")?;
    match command {
        DlqCommand::List { json } => list(&sqs, &dlq_url, json).await,
        DlqCommand::Redrive(args) => redrive(&sqs, queue_url, &dlq_url, args).await,
    }
}

async fn list(sqs: &Client, dlq_url: &str, json: bool) -> Result<(), CliError> {
    let messages = hold_all(sqs, dlq_url).await?;
    let letters: Vec<DeadLetter> = messages.iter().map(DeadLetter::from_message).collect();
    release(sqs, dlq_url, &messages).await?;
    if json {
        return output::print_json(&letters);
    }
    let count = letters.len();
    output::print_table(
        &[
            "MESSAGE ID",
            "ATHLETE",
            "KIND",
            "ENQUEUED AT",
            "RECEIVES",
            "SENT AT",
        ],
        letters
            .into_iter()
            .map(|l| {
                vec![
                    l.message_id,
                    output::optional(l.athlete),
                    l.kind.unwrap_or_else(|| "(not a sync job)".to_string()),
                    output::instant(l.enqueued_at),
                    output::optional(l.receive_count),
                    output::instant(l.sent_at),
                ]
            })
            .collect(),
    );
    eprintln!("{count} message(s) in {dlq_url}");
    Ok(())
}

async fn redrive(
    sqs: &Client,
    queue_url: &str,
    dlq_url: &str,
    args: RedriveArgs,
) -> Result<(), CliError> {
    let messages = hold_all(sqs, dlq_url).await?;
    let wanted: BTreeSet<&str> = args.message_ids.iter().map(String::as_str).collect();
    let (chosen, others): (Vec<Message>, Vec<Message>) = messages
        .into_iter()
        .partition(|m| args.all || m.message_id().is_some_and(|id| wanted.contains(id)));
    release(sqs, dlq_url, &others).await?;

    let mut moved = 0usize;
    let mut failures = Vec::new();
    for (index, message) in chosen.iter().enumerate() {
        let id = message.message_id().unwrap_or(NONE);
        match move_to(sqs, queue_url, dlq_url, message).await {
            Ok(()) => moved += 1,
            Err(e) => {
                failures.push(format!("{id}: {}", with_causes(e.as_ref())));
                // Hand back what was not moved, so nothing stays hidden for the hold time.
                release(sqs, dlq_url, &chosen[index..]).await?;
                break;
            }
        }
    }
    println!("redrove {moved} message(s) to the sync queue");
    let found: BTreeSet<&str> = chosen.iter().filter_map(Message::message_id).collect();
    let missing: Vec<&str> = wanted.difference(&found).copied().collect();
    if !missing.is_empty() {
        failures.push(format!(
            "not in the dead-letter queue: {}",
            missing.join(", ")
        ));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("{}", failures.join("; ")).into())
    }
}

/// Sends the message's body to the sync queue, then deletes it from the DLQ; if the delete fails the
/// job is in both queues, which the worker's ledger makes harmless.
async fn move_to(
    sqs: &Client,
    queue_url: &str,
    dlq_url: &str,
    message: &Message,
) -> anyhow::Result<()> {
    let body = message
        .body()
        .ok_or_else(|| anyhow!("the message has no body"))?;
    sqs.send_message()
        .queue_url(queue_url)
        .message_body(body)
        .send()
        .await
        .map_err(|e| anyhow!("SendMessage to the sync queue failed: {}", error_code(&e)))?;
    sqs.delete_message()
        .queue_url(dlq_url)
        .receipt_handle(message.receipt_handle().unwrap_or_default())
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "sent to the sync queue, but DeleteMessage from the DLQ failed: {}",
                error_code(&e)
            )
        })?;
    Ok(())
}

/// Receives every message of the DLQ, hiding each for [`HOLD_SECONDS`] so none is seen twice. Long
/// polling (one second) asks every SQS server, so an empty answer means the queue is drained.
async fn hold_all(sqs: &Client, dlq_url: &str) -> Result<Vec<Message>, CliError> {
    let mut messages: Vec<Message> = Vec::new();
    while messages.len() < MAX_MESSAGES {
        let received = sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(RECEIVE_BATCH)
            .visibility_timeout(HOLD_SECONDS)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await;
        let batch = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                release(sqs, dlq_url, &messages).await?;
                return Err(anyhow!(
                    "ReceiveMessage from the dead-letter queue failed: {}",
                    error_code(&e)
                )
                .into());
            }
        };
        if batch.is_empty() {
            break;
        }
        for message in batch {
            if !messages
                .iter()
                .any(|m| m.message_id() == message.message_id())
            {
                messages.push(message);
            }
        }
    }
    Ok(messages)
}

/// Makes held messages visible again at once.
async fn release(sqs: &Client, dlq_url: &str, messages: &[Message]) -> Result<(), CliError> {
    for chunk in messages.chunks(RECEIVE_BATCH as usize) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(index, message)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .visibility_timeout(0)
                    .build()
                    .context("building a ChangeMessageVisibility entry")
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let out = sqs
            .change_message_visibility_batch()
            .queue_url(dlq_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "could not hand messages back to the dead-letter queue ({}); they reappear within {HOLD_SECONDS} s",
                    error_code(&e)
                )
            })?;
        if !out.failed().is_empty() {
            return Err(anyhow!(
                "{} message(s) could not be handed back to the dead-letter queue; they reappear within {HOLD_SECONDS} s",
                out.failed().len()
            )
            .into());
        }
    }
    Ok(())
}
