//! `sync-worker`: takes sync jobs from SQS and runs each athlete's sync, answering with partial batch
//! failures. Transient failures fail the message (SQS retries with backoff, then the DLQ); deferrals
//! go back on the queue with a delay and are acknowledged, so they never count as failed receives.
//!
//! The worker stops starting work [`DEADLINE_MARGIN_SECONDS`] before the Lambda deadline: jobs it did not
//! start or finish go back on the queue as new messages, and the originals are acknowledged. A Lambda that
//! ran out of time would instead charge every message of its batch a receive, and a job whose neighbours
//! were slow could reach the DLQ without ever failing.

use std::time::Instant;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use shared::budget::CallPool;
use shared::clock::{Clock, whole_seconds_up};
use shared::error::{Deferral, Disposition};
use shared::metrics::Metrics;
use shared::model::DataKind;
use shared::polar::PolarApi;
use shared::queue::{JobQueue, Outgoing, SyncJob, coalesce};
use shared::smartabase::SmartabaseApi;
use shared::store::Store;
use shared::usecase::Connector;
use shared::usecase::sync::{SyncOutcome, SyncReport};
use tracing::{Instrument as _, error, info, info_span, warn};

/// Messages of one batch processed at once (they belong to different athletes; one athlete's jobs are
/// serialised by its lock).
pub const CONCURRENCY: usize = 5;
/// The queue's `maxReceiveCount`: the receive that moves a failing job to the DLQ is logged as such.
pub const MAX_RECEIVES: u32 = 5;
/// Seconds before the Lambda deadline after which no Polar or Smartabase call starts: what may still be in
/// flight then (one Smartabase call, up to its 60 s timeout, and its ledger writes) and handing back the
/// unfinished jobs must fit in it. The function's timeout (`infra/template.yaml`) is 150 s.
pub const DEADLINE_MARGIN_SECONDS: u64 = 75;

/// Handles one SQS batch, starting no work after `deadline` (the invocation's deadline less
/// [`DEADLINE_MARGIN_SECONDS`]). One athlete's webhook jobs in the batch run as one job (a phone sync
/// announces several records at once: [`shared::queue::coalesce`]), and one athlete's jobs run one after
/// the other, so none of them finds the athlete busy; different athletes run at once.
pub async fn handle<S, Q, P, B, C>(
    connector: &Connector<S, Q, P, B, C>,
    event: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse
where
    S: Store,
    Q: JobQueue,
    P: PolarApi,
    B: SmartabaseApi,
    C: Clock,
{
    let mut unreadable = Vec::new();
    let mut readable = Vec::new();
    for message in event.records {
        match read(&message) {
            Ok(job) => readable.push((message, job)),
            Err(id) => unreadable.push(id),
        }
    }
    let mut by_athlete: Vec<Vec<(Vec<SqsMessage>, SyncJob)>> = Vec::new();
    for (messages, job) in coalesce(readable) {
        match by_athlete
            .iter_mut()
            .find(|runs| runs[0].1.athlete == job.athlete)
        {
            Some(runs) => runs.push((messages, job)),
            None => by_athlete.push(vec![(messages, job)]),
        }
    }
    // Budget reserved for the jobs running at once (one athlete's run one after the other); what they
    // leave goes back at the end.
    let pool = connector.call_pool(by_athlete.len().min(CONCURRENCY));
    let pool = &pool;
    let runs: Vec<(Vec<String>, Metrics)> = futures::stream::iter(by_athlete)
        .map(|runs| async move {
            let mut failed = Vec::new();
            let mut metrics = Metrics::new("sync-worker");
            for (messages, job) in runs {
                let (retry, job_metrics) = process(connector, messages, job, deadline, pool).await;
                failed.extend(retry);
                metrics.merge(&job_metrics);
            }
            (failed, metrics)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    connector.give_back_calls(pool).await;
    // One EMF line for the batch, not one per job: at ten jobs a batch it was most of the worker's log
    // bytes. Counts add up and every job's lag stays a sample, so the alarms and graphs read the same.
    let mut metrics = Metrics::new("sync-worker");
    let mut failures = Vec::new();
    for (failed, run_metrics) in runs {
        failures.push(failed);
        metrics.merge(&run_metrics);
    }
    metrics.emit(connector.now());
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = unreadable
        .into_iter()
        .chain(failures.into_iter().flatten())
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

/// The job a message carries, or its id if it carries none.
fn read(message: &SqsMessage) -> Result<SyncJob, String> {
    let message_id = message.message_id.clone().unwrap_or_default();
    SyncJob::from_body(message.body.as_deref().unwrap_or_default()).map_err(|e| {
        // Fails until it reaches the DLQ, where an operator can look at it: never dropped silently.
        error!(message_id, receives = receives(message), error = %e, outcome = "failed", "unreadable sync job");
        message_id
    })
}

fn receives(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// Runs one job for the messages that carry it; the ids of the messages to retry (all or none), and the
/// job's metrics.
async fn process<S, Q, P, B, C>(
    connector: &Connector<S, Q, P, B, C>,
    messages: Vec<SqsMessage>,
    job: SyncJob,
    deadline: Instant,
    pool: &CallPool,
) -> (Vec<String>, Metrics)
where
    S: Store,
    Q: JobQueue,
    P: PolarApi,
    B: SmartabaseApi,
    C: Clock,
{
    let message_ids: Vec<String> = messages
        .iter()
        .map(|m| m.message_id.clone().unwrap_or_default())
        .collect();
    let receives = messages.iter().map(receives).max().unwrap_or(1);
    let message_id = message_ids.join(",");
    let span = info_span!("sync", athlete = %job.athlete, job_id = %job.job_id, job_kind = ?job.kind, message_id);
    async {
        let started = connector.now();
        let mut metrics = Metrics::new("sync-worker");
        if message_ids.len() > 1 {
            metrics.count("JobsCoalesced", message_ids.len() as u64 - 1);
        }
        let result = if Instant::now() >= deadline {
            // Waited behind slow neighbours: handed back untouched.
            Ok(SyncReport {
                outcome: SyncOutcome::Unfinished(Default::default()),
                follow_ups: Vec::new(),
            })
        } else {
            connector.sync_job(&job, deadline, pool).await
        };
        let (disposition, mut follow_ups) = match result {
            Ok(report) => (
                report.outcome.disposition(),
                record(&job, report, started, &mut metrics),
            ),
            Err(e) => {
                let disposition = e.disposition();
                metrics.count("JobsFailed", 1);
                error!(
                    athlete = %job.athlete,
                    error = %e,
                    disposition = ?disposition,
                    receives,
                    moving_to_dlq = receives >= MAX_RECEIVES,
                    outcome = disposition.outcome(),
                    "sync failed; SQS retries it"
                );
                (Some(disposition), Vec::new())
            }
        };
        // The worker's whole policy: the job's disposition alone decides what happens to its message.
        let retry = match disposition {
            None | Some(Disposition::Reauthorise | Disposition::Reject) => false,
            Some(Disposition::Defer(deferral)) => {
                follow_ups.push(deferred::<Q>(connector.now(), &job, deferral, &mut metrics));
                false
            }
            // SQS retries the message with backoff, and moves it to the DLQ after MAX_RECEIVES.
            Some(Disposition::Retry | Disposition::Bug) => true,
        };
        let retry = retry || !send_follow_ups(&connector.queue, follow_ups).await;
        let retried = if retry {
            message_ids.clone()
        } else {
            Vec::new()
        };
        (retried, metrics)
    }
    .instrument(span)
    .await
}

/// The job again, delayed until the deferral's end (as a new message: a deferral is not a failed receive).
fn deferred<Q: JobQueue>(
    now: DateTime<Utc>,
    job: &SyncJob,
    deferral: Deferral,
    metrics: &mut Metrics,
) -> Outgoing {
    metrics.count("JobsDeferred", 1);
    if deferral.cause.is_polar_limit() {
        metrics.count("BudgetDeferrals", 1);
    }
    let delay = whole_seconds_up(deferral.until - now)
        .clamp(1, i64::from(<Q as JobQueue>::MAX_DELAY_SECONDS)) as u32;
    let mut again = job.clone();
    again.deferrals = again.deferrals.saturating_add(1);
    info!(
        athlete = %job.athlete,
        outcome = "deferred",
        reason = deferral.cause.label(),
        delay_seconds = delay,
        "job deferred"
    );
    Outgoing {
        job: again,
        delay_seconds: delay,
    }
}

/// Counts and logs a finished job; returns the jobs it asks for (follow-ups, and an unfinished job's
/// continuation).
fn record(
    job: &SyncJob,
    report: SyncReport,
    started: DateTime<Utc>,
    metrics: &mut Metrics,
) -> Vec<Outgoing> {
    let mut follow_ups: Vec<Outgoing> = report
        .follow_ups
        .into_iter()
        .map(|(job, delay_seconds)| Outgoing { job, delay_seconds })
        .collect();
    match &report.outcome {
        SyncOutcome::Synced(counts) => {
            metrics
                .count("JobsSynced", 1)
                .count("RecordsCreated", counts.created)
                .count("RecordsUpdated", counts.updated)
                .count("RecordsUnchanged", counts.unchanged)
                .count("RecordsBroken", counts.broken)
                .count("RecordsRecovered", counts.recovered)
                .count("RecordsBackfilled", counts.backfilled)
                .count("FieldsDropped", counts.dropped_fields)
                .count("PolarCalls", counts.polar_calls)
                .count("SmartabaseCalls", counts.smartabase_calls)
                .seconds(
                    "SyncLagSeconds",
                    (started - job.enqueued_at).num_milliseconds() as f64 / 1000.0,
                );
            for (kind, written) in &counts.written {
                metrics.count(records_written_metric(*kind), *written);
            }
            info!(
                athlete = %job.athlete,
                outcome = report.outcome.label(),
                created = counts.created,
                updated = counts.updated,
                unchanged = counts.unchanged,
                broken = counts.broken,
                recovered = counts.recovered,
                backfilled = counts.backfilled,
                polar_calls = counts.polar_calls,
                smartabase_calls = counts.smartabase_calls,
                "sync finished"
            );
        }
        // Counted and logged where the job is put back ([`deferred`]).
        SyncOutcome::Deferred(_) => {}
        SyncOutcome::Released(cause) => {
            metrics.count("JobsReleased", 1).count("BudgetDeferrals", 1);
            info!(
                athlete = %job.athlete,
                outcome = "released",
                reason = cause.label(),
                "job released; the athlete stays due"
            );
        }
        SyncOutcome::Unfinished(counts) => {
            metrics
                .count("JobsUnfinished", 1)
                .count("RecordsCreated", counts.created)
                .count("RecordsUpdated", counts.updated)
                .count("RecordsRecovered", counts.recovered)
                .count("PolarCalls", counts.polar_calls)
                .count("SmartabaseCalls", counts.smartabase_calls);
            // The same job as a new message: its receive count starts again, as nothing failed.
            follow_ups.push(Outgoing {
                job: job.clone(),
                delay_seconds: 0,
            });
            info!(
                athlete = %job.athlete,
                outcome = "unfinished",
                created = counts.created,
                updated = counts.updated,
                recovered = counts.recovered,
                polar_calls = counts.polar_calls,
                smartabase_calls = counts.smartabase_calls,
                "the worker's deadline came first; the job continues in a new message"
            );
        }
        SyncOutcome::Reauthorise => {
            metrics.count("AthletesNeedingReauthorisation", 1);
        }
        SyncOutcome::Skipped(reason) => {
            metrics.count("JobsSkipped", 1);
            info!(athlete = %job.athlete, outcome = "skipped", reason, "nothing to do");
        }
        SyncOutcome::ConsentsMissing => {
            metrics.count("JobsSkipped", 1);
            warn!(
                athlete = %job.athlete,
                outcome = "consents_missing",
                "athlete has not accepted Polar's consents"
            );
        }
    }
    follow_ups
}

/// Queues the jobs a message asked for; `false` if one could not be queued (retrying the original message
/// redoes the work safely: the ledger makes it a no-op).
async fn send_follow_ups(queue: &impl JobQueue, follow_ups: Vec<Outgoing>) -> bool {
    for batch in follow_ups.chunks(10) {
        match queue.send_batch(batch).await {
            Ok(failed) if failed.is_empty() => {}
            result => {
                error!(queue_error = ?result.err(), "could not queue a follow-up job; retrying the message");
                return false;
            }
        }
    }
    true
}

/// The metric counting the records of `kind` written to Smartabase (the dashboard graphs each one).
fn records_written_metric(kind: DataKind) -> &'static str {
    match kind {
        DataKind::Training => "TrainingRecordsWritten",
        DataKind::Activity => "ActivityRecordsWritten",
        DataKind::Sleep => "SleepRecordsWritten",
        DataKind::Recharge => "RechargeRecordsWritten",
        DataKind::CardioLoad => "CardioLoadRecordsWritten",
        DataKind::Alertness => "AlertnessRecordsWritten",
        DataKind::DailyHeartRate => "DailyHeartRateRecordsWritten",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_kind_has_its_own_written_metric_on_the_dashboard() {
        let template = include_str!("../../../infra/template.yaml");
        let names: BTreeSet<&str> = DataKind::ALL
            .into_iter()
            .map(records_written_metric)
            .collect();
        assert_eq!(names.len(), DataKind::ALL.len());
        for name in names {
            assert!(
                template.contains(&format!(
                    "[\"PolarConnector\", \"{name}\", \"Function\", \"sync-worker\""
                )),
                "{name} is not graphed"
            );
        }
    }
}
