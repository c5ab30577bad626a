//! Sync jobs and the queue that carries them: SQS in production (`SqsQueue`), memory in tests.

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AthleteUuid, ExerciseId};

#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod sqs;

pub use sqs::SqsQueue;

/// Why a job exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Fan-out: the athlete is due.
    Scheduled,
    /// Just linked: take everything Polar still offers.
    FirstSync,
    /// An operator's `connector sync`.
    Manual,
    /// A webhook announced specific records.
    Targeted,
}

/// A record a webhook announced.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Target {
    /// `EXERCISE` → that exercise.
    Exercise {
        /// The hashed id.
        id: ExerciseId,
    },
    /// `SLEEP` → that night's sleep and Nightly Recharge.
    Night {
        /// The sleep date.
        date: NaiveDate,
    },
    /// A Nightly Recharge that was not ready when its sleep arrived.
    Recharge {
        /// The night's date.
        date: NaiveDate,
    },
    /// `ACTIVITY_SUMMARY` → that day.
    Activity {
        /// The day.
        date: NaiveDate,
    },
    /// `CONTINUOUS_HEART_RATE` → that day's 24/7 heart rate.
    HeartRate {
        /// The day.
        date: NaiveDate,
    },
    /// `SLEEP_WISE_ALERTNESS` → the alertness periods of these local dates.
    Alertness {
        /// First date.
        from: NaiveDate,
        /// Last date (included).
        to: NaiveDate,
    },
}

/// One message on the sync queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncJob {
    /// Unique id, carried into every log line of the job.
    pub job_id: String,
    /// Whose data.
    pub athlete: AthleteUuid,
    /// Why.
    pub kind: JobKind,
    /// For targeted jobs: what to fetch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Target>,
    /// When first enqueued (deferrals keep it, so lag is measured from here).
    pub enqueued_at: DateTime<Utc>,
    /// How many times the job was deferred (budget, busy athlete, recharge not ready).
    #[serde(default)]
    pub deferrals: u32,
    /// The fan-out reserved this job's Polar calls with its run's (one budget write per page of jobs):
    /// the worker only checks that no 429 blocks Polar. Every other job reserves its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub budget_reserved: bool,
}

impl SyncJob {
    /// A new job with a fresh id.
    pub fn new(
        athlete: AthleteUuid,
        kind: JobKind,
        targets: Vec<Target>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            job_id: uuid::Uuid::new_v4().to_string(),
            athlete,
            kind,
            targets,
            enqueued_at: now,
            deferrals: 0,
            budget_reserved: false,
        }
    }

    /// The message body.
    pub fn to_body(&self) -> String {
        // Serialising these plain fields cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a message body; the error says which field is wrong, never echoing the body.
    pub fn from_body(body: &str) -> Result<Self, String> {
        serde_json::from_str(body)
            .map_err(|e| format!("not a sync job: {}", crate::error::describe_json_error(&e)))
    }
}

/// Queue failures.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue refused or could not be reached.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
}

/// A job to send, with an optional delivery delay (SQS caps it at 15 minutes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The job.
    pub job: SyncJob,
    /// Seconds before it becomes visible, 0..=900.
    pub delay_seconds: u32,
}

/// Where jobs go.
pub trait JobQueue: Send + Sync {
    /// SQS's longest delivery delay.
    const MAX_DELAY_SECONDS: u32 = 900;

    /// Sends up to 10 jobs in one batch; returns the indices of the ones that failed.
    fn send_batch(
        &self,
        jobs: &[Outgoing],
    ) -> impl Future<Output = Result<Vec<usize>, QueueError>> + Send;
}
