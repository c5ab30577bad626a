//! The scheduled fan-out: queue one job per `Linked` athlete who is due and not already queued, in
//! batches of ten, within the Polar budget. When the budget cannot cover everyone now, jobs are spread
//! over the next window with SQS delays and the rest stay due for the next run, rather than letting
//! workers run into 429s.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt as _;
use tracing::{info, warn};

use super::{Connector, QUEUED_MARKER_TTL};
use crate::budget::{BudgetError, LimitFormula, RateBudget, SHORT_WINDOW};
use crate::clock::Clock;
use crate::ids::AthleteUuid;
use crate::polar::PolarApi;
use crate::queue::{JobKind, JobQueue, Outgoing, SyncJob};
use crate::smartabase::SmartabaseApi;
use crate::store::{DueAthlete, Store, StoreError};

const PAGE: usize = 200;
const MARK_CONCURRENCY: usize = 16;

/// What one run did (the counts of its log line and metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FanoutReport {
    /// Due athletes found.
    pub due: u64,
    /// Linked athletes the listing could not read (logged; they stay due).
    pub skipped: u64,
    /// Jobs queued.
    pub queued: u64,
    /// Of those, queued with a delay to spread them over the next budget window.
    pub delayed: u64,
    /// Due athletes skipped because a job of theirs is still queued.
    pub already_queued: u64,
    /// Whether the run stopped because the budget could not cover more this interval.
    pub budget_limited: bool,
    /// Jobs that could not be sent (left due for the next run).
    pub send_failures: u64,
    /// Whether every due athlete was looked at.
    pub complete: bool,
}

/// A fan-out run that failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The Polar budget could not be read.
    #[error(transparent)]
    Budget(#[from] BudgetError),
}

/// Spreads jobs over the budget: the first `now` fit at once, the next `next_window` after the short
/// window resets (a delay SQS can still express), the rest wait for the next run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spread {
    now: u64,
    next_window: u64,
    delay_seconds: u32,
}

impl Spread {
    fn delay_for(&self, index: u64) -> Option<u32> {
        if index < self.now {
            Some(0)
        } else if index < self.now + self.next_window {
            Some(self.delay_seconds)
        } else {
            None
        }
    }
}

impl<S, Q, P, B, C> Connector<S, Q, P, B, C>
where
    S: Store,
    Q: JobQueue,
    P: PolarApi,
    B: SmartabaseApi,
    C: Clock,
{
    /// One fan-out run, stopping at `deadline` (athletes not reached stay due for the next run).
    pub async fn fanout(&self, deadline: Instant) -> Result<FanoutReport, FanoutError> {
        let now = self.now();
        let spread = self.spread(now).await?;
        let mut report = FanoutReport::default();
        let listing = self.store.due_athletes(now).await?;
        report.due = listing.due.len() as u64;
        report.skipped = listing.skipped;
        // A store failure on one athlete fails the run, but only once every page is done: no marker is
        // left without its job, and one athlete whose item cannot be written holds no one else up.
        let mut failed: Option<FanoutError> = None;
        let mut finished = true;
        for page in listing.due.chunks(PAGE) {
            if Instant::now() >= deadline {
                info!(
                    queued = report.queued,
                    outcome = "continued",
                    "fan-out reached its deadline; the next run continues"
                );
                finished = false;
                break;
            }
            // A marker the listing shows is skipped without a write; the conditional marker still
            // guards against one set since, and against a sync that ran since the listing was read.
            let (queued, unqueued): (Vec<&DueAthlete>, Vec<&DueAthlete>) =
                page.iter().partition(|d| d.queued_at(now));
            report.already_queued += queued.len() as u64;
            let marked: Vec<(AthleteUuid, Result<bool, StoreError>)> =
                futures::stream::iter(unqueued)
                    .map(|d| async move {
                        let r = self
                            .store
                            .mark_due_queued(&d.uuid, now + QUEUED_MARKER_TTL, now)
                            .await;
                        (d.uuid.clone(), r)
                    })
                    .buffered(MARK_CONCURRENCY)
                    .collect()
                    .await;
            let mut outgoing = Vec::new();
            for (uuid, marked) in marked {
                match marked {
                    Ok(true) => {}
                    Ok(false) => {
                        report.already_queued += 1;
                        continue;
                    }
                    Err(e) => {
                        failed.get_or_insert(e.into());
                        continue;
                    }
                }
                let Some(delay_seconds) = spread.delay_for(report.queued + outgoing.len() as u64)
                else {
                    // No budget left this interval: release the marker so the athlete stays due.
                    report.budget_limited = true;
                    if let Err(e) = self.store.clear_queued(&uuid).await {
                        failed.get_or_insert(e.into());
                    }
                    continue;
                };
                outgoing.push(Outgoing {
                    job: SyncJob::new(uuid, JobKind::Scheduled, Vec::new(), now),
                    delay_seconds,
                });
            }
            if let Err(e) = self.send_all(outgoing, &mut report).await {
                failed.get_or_insert(e);
            }
            if report.budget_limited {
                warn!(
                    queued = report.queued,
                    delayed = report.delayed,
                    outcome = "budget_limited",
                    "Polar budget cannot cover every due athlete this interval; the rest stay due"
                );
                finished = false;
                break;
            }
        }
        report.complete = finished;
        match failed {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    async fn spread(&self, now: DateTime<Utc>) -> Result<Spread, FanoutError> {
        let budget = RateBudget::new(&self.store, LimitFormula::POLAR);
        let available = budget.available(now).await?;
        let (short, long, resets_at) = (available.short, available.long, available.short_resets_at);
        // The most a scheduled job can cost: one call per list of the site.
        let per_job = self.scheduled_sync_calls();
        let jobs_now = short.min(long) / per_job;
        // No window open: the jobs sent now open one, and it resets a whole window later.
        let until_reset = resets_at.map_or(SHORT_WINDOW, |r| (r - now).max(Duration::zero()));
        let max_delay = Duration::seconds(i64::from(<Q as JobQueue>::MAX_DELAY_SECONDS));
        let next_window = if until_reset <= max_delay {
            let full =
                (available.short_limit as f64 * RateBudget::<S>::SCHEDULED_SHARE) as u64 / per_job;
            full.min(long.saturating_sub(short.min(long)) / per_job)
        } else {
            0
        };
        Ok(Spread {
            now: jobs_now,
            next_window,
            delay_seconds: until_reset.num_seconds().clamp(0, max_delay.num_seconds()) as u32,
        })
    }

    /// Sends the jobs in batches of ten; a job that could not be sent has its marker released. Every
    /// batch is tried; the first store failure is returned at the end.
    async fn send_all(
        &self,
        outgoing: Vec<Outgoing>,
        report: &mut FanoutReport,
    ) -> Result<(), FanoutError> {
        let mut store_failure = None;
        for batch in outgoing.chunks(10) {
            let failed = match self.queue.send_batch(batch).await {
                Ok(failed) => failed,
                Err(e) => {
                    warn!(error = %e, "could not send a batch of sync jobs");
                    (0..batch.len()).collect()
                }
            };
            for (i, out) in batch.iter().enumerate() {
                if failed.contains(&i) {
                    report.send_failures += 1;
                    if let Err(e) = self.store.clear_queued(&out.job.athlete).await {
                        store_failure.get_or_insert(e);
                    }
                } else {
                    report.queued += 1;
                    if out.delay_seconds > 0 {
                        report.delayed += 1;
                    }
                }
            }
        }
        store_failure.map_or(Ok(()), |e| Err(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_fills_now_then_the_next_window_then_stops() {
        let spread = Spread {
            now: 2,
            next_window: 3,
            delay_seconds: 600,
        };
        let delays: Vec<_> = (0..6).map(|i| spread.delay_for(i)).collect();
        assert_eq!(
            delays,
            [Some(0), Some(0), Some(600), Some(600), Some(600), None]
        );
    }
}
