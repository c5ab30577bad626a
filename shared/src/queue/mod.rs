//! Sync jobs and the queue that carries them: SQS in production (`SqsQueue`), memory in tests.

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Cause;
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

/// One athlete's webhook jobs that arrived together, run as one: a phone sync uploads several records at
/// once and Polar sends a delivery for each, so running them apart would only make all but one wait for
/// the athlete's lock. `jobs` pairs each job with its message; the result pairs each job to run with the
/// messages it answers for, in the order the jobs came. Targeted jobs of one athlete become one job with
/// the union of their targets (the earliest `enqueued_at`, the fewest `deferrals`: a fresh night's
/// recharge gets its retries even when it meets an old night's last one); full jobs stay as they are
/// (a second full job is skipped as redundant by the sync).
pub fn coalesce<M>(jobs: Vec<(M, SyncJob)>) -> Vec<(Vec<M>, SyncJob)> {
    let mut out: Vec<(Vec<M>, SyncJob)> = Vec::new();
    for (message, job) in jobs {
        let merged_into = (job.kind == JobKind::Targeted)
            .then(|| {
                out.iter_mut()
                    .find(|(_, j)| j.kind == JobKind::Targeted && j.athlete == job.athlete)
            })
            .flatten();
        match merged_into {
            Some((messages, into)) => {
                messages.push(message);
                for target in job.targets {
                    if !into.targets.contains(&target) {
                        into.targets.push(target);
                    }
                }
                into.enqueued_at = into.enqueued_at.min(job.enqueued_at);
                into.deferrals = into.deferrals.min(job.deferrals);
            }
            None => out.push((vec![message], job)),
        }
    }
    out
}

/// Queue failures.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue refused or could not be reached.
    #[error("queue unavailable: {message}")]
    Unavailable {
        /// The operation and the SDK's error code (or what was wrong), never a job's body.
        message: String,
        /// The SDK's failure, without its raw response ([`crate::aws::sdk_source`]).
        #[source]
        source: Option<Cause>,
    },
}

impl QueueError {
    /// [`Self::Unavailable`] with no underlying error (a batch too large, an injected fault).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: None,
        }
    }
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 7, minute, 0).unwrap()
    }

    fn job(athlete: &str, kind: JobKind, targets: Vec<Target>, minute: u32) -> SyncJob {
        SyncJob::new(
            AthleteUuid::parse(athlete).unwrap(),
            kind,
            targets,
            at(minute),
        )
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn one_phone_syncs_webhook_jobs_run_as_one_job_with_every_target() {
        let night = Target::Night { date: day(27) };
        let activity = Target::Activity { date: day(27) };
        let mut retried = job(
            "a-1",
            JobKind::Targeted,
            vec![Target::Recharge { date: day(26) }],
            1,
        );
        retried.deferrals = 3;
        let jobs = vec![
            ("m1", job("a-1", JobKind::Targeted, vec![night.clone()], 5)),
            (
                "m2",
                job("b-2", JobKind::Targeted, vec![activity.clone()], 5),
            ),
            (
                "m3",
                job(
                    "a-1",
                    JobKind::Targeted,
                    vec![activity.clone(), night.clone()],
                    6,
                ),
            ),
            ("m4", retried),
        ];
        let runs = coalesce(jobs);
        assert_eq!(runs.len(), 2);
        let (messages, a) = &runs[0];
        assert_eq!(messages, &["m1", "m3", "m4"]);
        assert_eq!(
            a.targets,
            [night, activity.clone(), Target::Recharge { date: day(26) }]
        );
        assert_eq!(
            a.enqueued_at,
            at(1),
            "lag is measured from the oldest announcement"
        );
        assert_eq!(
            a.deferrals, 0,
            "the fresh night keeps its recharge retries though an old night's retry came along"
        );
        assert_eq!(runs[1].0, ["m2"]);
        assert_eq!(runs[1].1.targets, [activity]);
    }

    #[test]
    fn full_jobs_are_never_merged_into_webhook_jobs_or_each_other() {
        let jobs = vec![
            ("m1", job("a-1", JobKind::Scheduled, Vec::new(), 0)),
            (
                "m2",
                job(
                    "a-1",
                    JobKind::Targeted,
                    vec![Target::Activity { date: day(27) }],
                    1,
                ),
            ),
            ("m3", job("a-1", JobKind::Manual, Vec::new(), 2)),
        ];
        let kinds: Vec<_> = coalesce(jobs)
            .into_iter()
            .map(|(m, j)| (m, j.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                (vec!["m1"], JobKind::Scheduled),
                (vec!["m2"], JobKind::Targeted),
                (vec!["m3"], JobKind::Manual)
            ]
        );
    }
}
