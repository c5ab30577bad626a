//! `SqsQueue`: sync jobs onto the SQS sync queue with `SendMessageBatch`, one delay per entry.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use super::{JobQueue, Outgoing, QueueError};
use crate::aws::{error_code, sdk_source};

/// SendMessageBatch's limit.
pub const MAX_BATCH: usize = 10;

/// The production queue: one SQS queue URL.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    /// A queue at `queue_url` through `client`.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// A queue at `queue_url` with a client built from `config`.
    pub fn from_config(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::new(Client::new(config), queue_url)
    }

    /// The queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

impl JobQueue for SqsQueue {
    /// Sends up to [`MAX_BATCH`] jobs in one call; more is refused without sending anything. Delays above
    /// [`JobQueue::MAX_DELAY_SECONDS`] are capped (the job's own deferral logic re-defers it on arrival).
    async fn send_batch(&self, jobs: &[Outgoing]) -> Result<Vec<usize>, QueueError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        if jobs.len() > MAX_BATCH {
            return Err(QueueError::unavailable(format!(
                "a batch holds at most {MAX_BATCH} jobs, {} given",
                jobs.len()
            )));
        }
        let entries = jobs
            .iter()
            .enumerate()
            .map(|(index, outgoing)| {
                let delay = outgoing.delay_seconds.min(Self::MAX_DELAY_SECONDS);
                SendMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message_body(outgoing.job.to_body())
                    .delay_seconds(i32::try_from(delay).unwrap_or(0))
                    .build()
                    .map_err(|e| QueueError::Unavailable {
                        message: format!("SendMessageBatch: {e}"),
                        source: Some(Box::new(e)),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| QueueError::Unavailable {
                message: format!("SendMessageBatch: {}", error_code(&e)),
                source: sdk_source(e),
            })?;
        let mut failed: Vec<usize> = out
            .failed()
            .iter()
            .filter_map(|entry| {
                let index = entry.id().parse::<usize>().ok()?;
                tracing::warn!(
                    job_id = jobs.get(index).map(|o| o.job.job_id.as_str()),
                    code = entry.code(),
                    "SQS refused a sync job"
                );
                Some(index)
            })
            .collect();
        failed.sort_unstable();
        Ok(failed)
    }
}
