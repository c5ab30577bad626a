//! The sync queue of the local stack, with what the worker's event source mapping does around it:
//! receive counts, visibility after a failure, delays, and the dead-letter queue after five receives.
//!
//! [`LocalQueue::Sqs`] is a real SQS queue (moto) with its redrive policy; [`LocalQueue::Memory`] is an
//! in-memory twin whose delays follow the world's [`FixedClock`], so tests move time instead of waiting.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lambda_events::event::sqs::SqsMessage;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use chrono::{DateTime, Duration, Utc};
use shared::clock::Clock;
use shared::queue::{JobQueue, Outgoing, QueueError, SqsQueue, SyncJob};
use shared::testing::FixedClock;

/// Receives before a failing message moves to the DLQ (the queue's `maxReceiveCount`).
pub const MAX_RECEIVES: u32 = 5;

#[derive(Debug, Clone)]
struct Item {
    message_id: String,
    body: String,
    visible_at: DateTime<Utc>,
    receives: u32,
    in_flight: bool,
}

/// In-memory SQS twin.
#[derive(Debug)]
pub struct MemorySqs {
    clock: FixedClock,
    items: Mutex<Vec<Item>>,
    dead: Mutex<Vec<String>>,
    sent: Mutex<Vec<Outgoing>>,
    batch_sizes: Mutex<Vec<usize>>,
    next_id: Mutex<u64>,
    /// Sends still to refuse ([`LocalQueue::refuse_next_sends`]).
    refused_sends: Mutex<u32>,
}

/// The local sync queue.
#[derive(Debug)]
pub enum LocalQueue {
    /// In memory, delays on the world's clock.
    Memory(MemorySqs),
    /// SQS on moto.
    Sqs {
        /// The adapter the connector sends through.
        queue: SqsQueue,
        /// For receiving, deleting and reading the DLQ.
        client: aws_sdk_sqs::Client,
        /// The sync queue.
        url: String,
        /// Its DLQ.
        dlq_url: String,
    },
}

/// A message handed to the worker.
#[derive(Debug, Clone)]
pub struct Received {
    /// The SQS message as Lambda delivers it.
    pub message: SqsMessage,
    receipt: String,
}

impl LocalQueue {
    /// An in-memory queue on `clock`.
    pub fn memory(clock: FixedClock) -> Self {
        Self::Memory(MemorySqs {
            clock,
            items: Mutex::new(Vec::new()),
            dead: Mutex::new(Vec::new()),
            sent: Mutex::new(Vec::new()),
            batch_sizes: Mutex::new(Vec::new()),
            next_id: Mutex::new(0),
            refused_sends: Mutex::new(0),
        })
    }

    /// The next `sends` batches sent to the in-memory queue fail entry by entry, as a throttled SQS
    /// answers (no effect on SQS on moto).
    pub fn refuse_next_sends(&self, sends: u32) {
        if let Self::Memory(q) = self {
            *lock(&q.refused_sends) = sends;
        }
    }

    /// Up to `max` visible messages, as the event source mapping would deliver them.
    pub async fn receive(&self, max: usize) -> anyhow::Result<Vec<Received>> {
        match self {
            Self::Memory(q) => Ok(q.receive(max)),
            Self::Sqs { client, url, .. } => {
                let out = client
                    .receive_message()
                    .queue_url(url)
                    .max_number_of_messages(max.clamp(1, 10) as i32)
                    .wait_time_seconds(0)
                    .message_system_attribute_names(MessageSystemAttributeName::All)
                    .send()
                    .await?;
                Ok(out
                    .messages
                    .unwrap_or_default()
                    .into_iter()
                    .map(|m| {
                        let mut message = SqsMessage::default();
                        message.message_id = m.message_id.clone();
                        message.body = m.body.clone();
                        message.receipt_handle = m.receipt_handle.clone();
                        if let Some(attrs) = &m.attributes {
                            for (k, v) in attrs {
                                message.attributes.insert(k.as_str().to_string(), v.clone());
                            }
                        }
                        Received {
                            message,
                            receipt: m.receipt_handle.unwrap_or_default(),
                        }
                    })
                    .collect())
            }
        }
    }

    /// Deletes the delivered messages that did not fail; failed ones become visible again at once (the
    /// local stand-in for the visibility timeout) and go to the DLQ after [`MAX_RECEIVES`].
    pub async fn settle(&self, delivered: &[Received], failed: &[String]) -> anyhow::Result<()> {
        match self {
            Self::Memory(q) => {
                q.settle(delivered, failed);
                Ok(())
            }
            Self::Sqs { client, url, .. } => {
                let done: Vec<_> = delivered
                    .iter()
                    .filter(|r| {
                        !failed
                            .iter()
                            .any(|f| Some(f) == r.message.message_id.as_ref())
                    })
                    .enumerate()
                    .filter_map(|(i, r)| {
                        DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(&r.receipt)
                            .build()
                            .ok()
                    })
                    .collect();
                if !done.is_empty() {
                    client
                        .delete_message_batch()
                        .queue_url(url)
                        .set_entries(Some(done))
                        .send()
                        .await?;
                }
                for r in delivered.iter().filter(|r| {
                    failed
                        .iter()
                        .any(|f| Some(f) == r.message.message_id.as_ref())
                }) {
                    client
                        .change_message_visibility()
                        .queue_url(url)
                        .receipt_handle(&r.receipt)
                        .visibility_timeout(0)
                        .send()
                        .await?;
                }
                Ok(())
            }
        }
    }

    /// Bodies of the messages in the DLQ.
    pub async fn dead_letters(&self) -> anyhow::Result<Vec<String>> {
        match self {
            Self::Memory(q) => Ok(lock(&q.dead).clone()),
            Self::Sqs {
                client, dlq_url, ..
            } => {
                let out = client
                    .receive_message()
                    .queue_url(dlq_url)
                    .max_number_of_messages(10)
                    .visibility_timeout(0)
                    .send()
                    .await?;
                Ok(out
                    .messages
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|m| m.body)
                    .collect())
            }
        }
    }

    /// Every job sent so far, with its delay (memory only; SQS does not keep history).
    pub fn sent(&self) -> Vec<Outgoing> {
        match self {
            Self::Memory(q) => lock(&q.sent).clone(),
            Self::Sqs { .. } => Vec::new(),
        }
    }

    /// The size of every `send_batch` call so far, in order (memory only).
    pub fn batch_sizes(&self) -> Vec<usize> {
        match self {
            Self::Memory(q) => lock(&q.batch_sizes).clone(),
            Self::Sqs { .. } => Vec::new(),
        }
    }

    /// Messages waiting, visible or delayed, not yet deleted (memory: exact; SQS: approximate).
    pub async fn depth(&self) -> anyhow::Result<usize> {
        match self {
            Self::Memory(q) => Ok(lock(&q.items).len()),
            Self::Sqs { client, url, .. } => {
                let attrs = client
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                    .send()
                    .await?;
                let attrs = attrs.attributes.unwrap_or_default();
                let count = |name: aws_sdk_sqs::types::QueueAttributeName| {
                    attrs
                        .get(&name)
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0)
                };
                Ok(count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                    + count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
                    + count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemorySqs {
    fn receive(&self, max: usize) -> Vec<Received> {
        let now = self.clock.now();
        let mut items = lock(&self.items);
        let mut out = Vec::new();
        for item in items
            .iter_mut()
            .filter(|i| !i.in_flight && i.visible_at <= now)
            .take(max)
        {
            item.receives += 1;
            item.in_flight = true;
            let mut message = SqsMessage::default();
            message.message_id = Some(item.message_id.clone());
            message.body = Some(item.body.clone());
            message.receipt_handle = Some(item.message_id.clone());
            message
                .attributes
                .insert("ApproximateReceiveCount".into(), item.receives.to_string());
            out.push(Received {
                message,
                receipt: item.message_id.clone(),
            });
        }
        out
    }

    fn settle(&self, delivered: &[Received], failed: &[String]) {
        let now = self.clock.now();
        let mut items = lock(&self.items);
        let mut dead = lock(&self.dead);
        items.retain_mut(|item| {
            if !delivered.iter().any(|r| r.receipt == item.message_id) {
                return true;
            }
            if !failed.contains(&item.message_id) {
                return false;
            }
            item.in_flight = false;
            item.visible_at = now;
            if item.receives >= MAX_RECEIVES {
                dead.push(item.body.clone());
                return false;
            }
            true
        });
    }
}

impl JobQueue for LocalQueue {
    async fn send_batch(&self, jobs: &[Outgoing]) -> Result<Vec<usize>, QueueError> {
        match self {
            Self::Sqs { queue, .. } => queue.send_batch(jobs).await,
            Self::Memory(q) => {
                if jobs.len() > 10 {
                    return Err(QueueError::unavailable(format!(
                        "a batch holds at most 10 jobs, {} given",
                        jobs.len()
                    )));
                }
                {
                    let mut refused = lock(&q.refused_sends);
                    if *refused > 0 {
                        *refused -= 1;
                        return Ok((0..jobs.len()).collect());
                    }
                }
                let now = q.clock.now();
                let mut items = lock(&q.items);
                let mut next = lock(&q.next_id);
                for out in jobs {
                    *next += 1;
                    items.push(Item {
                        message_id: format!("m-{next}"),
                        body: out.job.to_body(),
                        visible_at: now + Duration::seconds(i64::from(out.delay_seconds)),
                        receives: 0,
                        in_flight: false,
                    });
                }
                lock(&q.sent).extend(jobs.iter().cloned());
                lock(&q.batch_sizes).push(jobs.len());
                Ok(Vec::new())
            }
        }
    }
}

/// Jobs in `sent` for `athlete`, for assertions.
pub fn jobs_for<'a>(
    sent: &'a [Outgoing],
    athlete: &'a str,
) -> impl Iterator<Item = &'a SyncJob> + 'a {
    sent.iter()
        .map(|o| &o.job)
        .filter(move |j| j.athlete.as_str() == athlete)
}

/// Count of each `job_id` in a list of bodies (for duplicate-delivery assertions).
pub fn job_id_counts(bodies: &[String]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for body in bodies {
        if let Ok(job) = SyncJob::from_body(body) {
            *counts.entry(job.job_id).or_insert(0) += 1;
        }
    }
    counts
}
