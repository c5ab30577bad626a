//! The scheduled fan-out: queue one job per `Linked` athlete who is due and not already queued, in
//! batches of ten, within the Polar budget. When the budget cannot cover everyone now, jobs are spread
//! over the next window with SQS delays and the rest stay due for the next run, rather than letting
//! workers run into 429s.
//!
//! A job sent without a delay costs no write: it runs within seconds, and a job that stays on the queue
//! longer (failed and retried by SQS, deferred, unfinished) sets the athlete's queued marker when it
//! releases the lock. Delayed jobs, first jobs and athletes overdue since the last run are marked here.
//! A run soon after another (a schedule invoked twice, a run by hand) skips the athletes that one
//! queued, from one record of the recent runs. The record also says how many delayed jobs each run
//! queued and when SQS makes them visible: those have reserved no budget yet, so a later run counts the
//! ones due in the window its own delayed jobs would go to against that window, rather than queueing a
//! second window's worth for the same reset or 429 block end. (Its undelayed jobs are not counted: they
//! reserve within seconds, and the budget then shows them.) Without the record (it could not be read or
//! written) a run soon after may queue a second window's worth: workers over the window defer to the
//! next reset, nothing is lost.

use std::collections::HashSet;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::sync::scheduled_sync_calls;
use super::{QUEUED_MARKER_TTL, Settings};
use crate::budget::{BudgetError, LimitFormula, RateBudget, SAME_WINDOW_SLACK, SHORT_WINDOW};
use crate::clock::{Clock, whole_seconds_up};
use crate::ids::AthleteUuid;
use crate::mapping::Mapping;
use crate::queue::{JobKind, JobQueue, Outgoing, SyncJob};
use crate::store::{DueAthlete, Store, StoreError};

const PAGE: usize = 200;
const MARK_CONCURRENCY: usize = 16;
/// The settings entry holding the recent runs' `RunRange`s, newest first.
pub const RECENT_RUNS_SETTING: &str = "fanout-recent-runs";

/// An athlete's place in the due listing's order (oldest due first, ties by UUID).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Position {
    due: DateTime<Utc>,
    uuid: String,
}

impl Position {
    fn of(d: &DueAthlete) -> Self {
        Self {
            due: d.due,
            uuid: d.uuid.to_string(),
        }
    }
}

/// How long a run's record keeps later runs from queueing the athletes it queued: long enough for a
/// schedule invoked twice or a run by hand, shorter than the shortest interval (15 minutes), so the next
/// scheduled run looks at everyone again.
const RECENT_RUN: Duration = Duration::minutes(10);
/// Ranges remembered at most (runs by hand in a loop).
const RECENT_RANGES_KEPT: usize = 32;

/// The delayed jobs a run queued: how many, and when SQS makes them visible (the run's time plus their
/// delay). Until then none of them has reserved budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct DelayedJobs {
    jobs: u64,
    visible_at: DateTime<Utc>,
}

/// Athletes a run queued (or found queued): those after `after` (from the listing's start if `None`) up
/// to and including `through`, in the listing's order. A run's ranges are what it reached less the
/// ranges of the recent runs it skipped, so no athlete is covered longer than [`RECENT_RUN`] after the
/// run that queued them.
///
/// The first range of a run that queued delayed jobs carries them (`delayed`); a range is kept past
/// [`RECENT_RUN`] while they are still to become visible, covering no one then. The field is optional
/// both ways: a record written before it parses (no delayed jobs known), and code from before it ignores
/// the field (no `deny_unknown_fields`) and, filtering by age, the ranges kept longer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RunRange {
    at: DateTime<Utc>,
    after: Option<Position>,
    through: Position,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delayed: Option<DelayedJobs>,
}

impl RunRange {
    fn covers(&self, position: &Position) -> bool {
        self.after.as_ref().is_none_or(|after| after < position) && *position <= self.through
    }

    /// Whether the run was recent enough at `now` that the athletes in the range have a job on the queue.
    fn recent(&self, now: DateTime<Utc>) -> bool {
        let age = now - self.at;
        age >= Duration::zero() && age < RECENT_RUN
    }

    /// Whether the record keeps the range at `now`: recent, or carrying delayed jobs not yet visible.
    fn kept(&self, now: DateTime<Utc>) -> bool {
        self.recent(now) || (self.at <= now && self.delayed.is_some_and(|d| d.visible_at > now))
    }

    /// The delayed jobs of `runs` not yet visible at `now` that become visible in the window from `start`
    /// to `end`: they will spend that window's budget, which the budget does not show yet.
    ///
    /// A window, not one release instant: jobs released at any time while it is open spend from it (a
    /// window still open at a 429 block's end takes the jobs released before it resets, whatever the
    /// delay that brought them). Jobs visible before `start` (less [`SAME_WINDOW_SLACK`]: two runs
    /// reckon one window's start from different readings and round their delays up to whole seconds)
    /// spend the window open now, or are deferred to `start` if it is spent: they are left to the
    /// budget, like undelayed jobs. Jobs visible at or after `end` spend a later window.
    fn pending_in(
        runs: &[RunRange],
        now: DateTime<Utc>,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> u64 {
        runs.iter()
            .filter_map(|r| r.delayed)
            .filter(|d| d.visible_at > now && d.visible_at >= start - SAME_WINDOW_SLACK)
            .filter(|d| d.visible_at < end)
            .fold(0, |sum, d| sum.saturating_add(d.jobs))
    }

    /// The ranges of a run at `at` that reached `through`: the listing's start through `through`, less
    /// the `recent` runs' ranges (disjoint, as every run's are).
    fn reached(at: DateTime<Utc>, through: &Position, recent: &[RunRange]) -> Vec<RunRange> {
        let mut skipped: Vec<&RunRange> = recent.iter().collect();
        skipped.sort_by(|a, b| a.after.cmp(&b.after));
        let mut ranges = Vec::new();
        let mut from: Option<Position> = None;
        let mut gap_to = |from: &Option<Position>, to: &Position| {
            let to = to.min(through);
            if from.as_ref().is_none_or(|f| f < to) {
                ranges.push(RunRange {
                    at,
                    after: from.clone(),
                    through: to.clone(),
                    delayed: None,
                });
            }
        };
        for range in skipped {
            if let Some(start) = &range.after {
                gap_to(&from, start);
            }
            if from.as_ref().is_none_or(|f| *f < range.through) {
                from = Some(range.through.clone());
            }
        }
        gap_to(&from, through);
        ranges
    }
}

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
    /// Delayed jobs of earlier runs (of the last 10 minutes, or older and still invisible) that will
    /// spend the window this run's delayed jobs would go to: counted against it (why a run soon after
    /// another may queue nothing).
    pub earlier_delayed: u64,
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
/// window resets or a 429's block ends (a delay SQS can still express), the rest wait for the next run.
/// `earlier_delayed`: recent runs' delayed jobs that will spend that window, taken off `next_window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spread {
    now: u64,
    next_window: u64,
    delay_seconds: u32,
    earlier_delayed: u64,
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

/// The ports the fan-out uses: the store (the due listing, the markers, the budget, the record of its
/// runs), the queue, the clock, the mapping (what a scheduled job can cost) and the settings (the sync
/// interval). No Polar or Smartabase client: `sync-fanout` builds none
/// ([`crate::bootstrap::start_dispatch`]).
pub struct FanoutPorts<'a, S, Q, C> {
    /// Athletes, markers, the budget and the recent runs.
    pub store: &'a S,
    /// The sync queue.
    pub queue: &'a Q,
    /// Time.
    pub clock: &'a C,
    /// The site's forms: one Polar call per list a scheduled job reads.
    pub mapping: &'a Mapping,
    /// The sync interval among them.
    pub settings: &'a Settings,
}

impl<S, Q, C> Clone for FanoutPorts<'_, S, Q, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S, Q, C> Copy for FanoutPorts<'_, S, Q, C> {}

impl<S, Q, C> FanoutPorts<'_, S, Q, C>
where
    S: Store,
    Q: JobQueue,
    C: Clock,
{
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// One fan-out run, stopping at `deadline` (athletes not reached stay due for the next run).
    pub async fn fanout(&self, deadline: Instant) -> Result<FanoutReport, FanoutError> {
        let now = self.now();
        let kept = self.recent_runs(now).await;
        let spread = self.spread(now, &kept).await?;
        let mut report = FanoutReport {
            earlier_delayed: spread.earlier_delayed,
            ..FanoutReport::default()
        };
        let listing = self.store.due_athletes(now).await?;
        report.due = listing.due.len() as u64;
        report.skipped = listing.skipped;
        let recent: Vec<RunRange> = kept.iter().filter(|r| r.recent(now)).cloned().collect();
        let interval = self.settings.sync_interval.duration();
        // A store failure on one athlete fails the run, but only once every page is done: no marker is
        // left without its job, and one athlete whose item cannot be written holds no one else up.
        let mut failed: Option<FanoutError> = None;
        let mut finished = true;
        // The last athlete, in the listing's order, this run queued.
        let mut through: Option<Position> = None;
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
            let mut outgoing = Vec::new();
            let mut marked = Vec::new();
            for d in page {
                let position = Position::of(d);
                // A marker the listing shows, or a run a moment ago that queued the athlete: a job of
                // theirs is on the queue.
                if d.queued_at(now) || recent.iter().any(|r| r.covers(&position)) {
                    report.already_queued += 1;
                    continue;
                }
                let index = report.queued + (outgoing.len() + marked.len()) as u64;
                let Some(delay_seconds) = spread.delay_for(index) else {
                    // No budget left this interval: the athlete stays due.
                    report.budget_limited = true;
                    break;
                };
                through = Some(position);
                let job = SyncJob::new(d.uuid.clone(), JobKind::Scheduled, Vec::new(), now);
                let overdue = d.due <= now - interval;
                if delay_seconds == 0 && !d.never_synced && !overdue {
                    // Runs within seconds: the worker's check for a sync since the job was queued stops a
                    // second one (or the lock, or the version it read), so no marker write is spent on it.
                    outgoing.push(Outgoing { job, delay_seconds });
                } else {
                    marked.push(Outgoing { job, delay_seconds });
                }
            }
            // Marked first, as a queued job always was:
            // - a delayed job waits on the queue for the next budget window (up to SQS's longest delay,
            //   as long as the shortest interval): the marker keeps the next run from adding a second;
            // - an athlete who never synced may have their link's first sync queued beside it: the
            //   marker keeps that one off the queue;
            // - an athlete due since before the last scheduled run may have that run's job still waiting
            //   (a worker backlog): marked, they are queued at most twice, not once per run.
            // The conditional marker also guards against one set since the listing, and a sync since.
            let marked: Vec<(Outgoing, Result<bool, StoreError>)> = futures::stream::iter(marked)
                .map(|out| async move {
                    let r = self
                        .store
                        .mark_due_queued(&out.job.athlete, now + QUEUED_MARKER_TTL, now)
                        .await;
                    (out, r)
                })
                .buffered(MARK_CONCURRENCY)
                .collect()
                .await;
            let mut holding_marker = HashSet::new();
            for (out, marked) in marked {
                match marked {
                    Ok(true) => {
                        holding_marker.insert(out.job.athlete.clone());
                        outgoing.push(out);
                    }
                    Ok(false) => report.already_queued += 1,
                    Err(e) => {
                        failed.get_or_insert(e.into());
                    }
                }
            }
            if let Err(e) = self.send_all(outgoing, &holding_marker, &mut report).await {
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
        if failed.is_none()
            && report.send_failures == 0
            && let Some(through) = through
        {
            let mut ranges = RunRange::reached(now, &through, &recent);
            if report.delayed > 0
                && let Some(first) = ranges.first_mut()
            {
                first.delayed = Some(DelayedJobs {
                    jobs: report.delayed,
                    visible_at: now + Duration::seconds(i64::from(spread.delay_seconds)),
                });
            }
            ranges.extend(kept);
            self.record_run(ranges).await;
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// The ranges of the runs of the last [`RECENT_RUN`] (EventBridge may invoke a schedule twice, and an
    /// operator may run it by hand): the athletes in them have a job on the queue. With them, older ranges
    /// whose delayed jobs are not visible yet ([`RunRange::kept`]).
    async fn recent_runs(&self, now: DateTime<Utc>) -> Vec<RunRange> {
        let recorded = match self.store.get_setting(RECENT_RUNS_SETTING).await {
            Ok(recorded) => recorded,
            Err(e) => {
                // Without them a run soon after queues a second job for some athletes: the worker drops it.
                warn!(error = %e, "could not read the recent fan-out runs");
                return Vec::new();
            }
        };
        let Some(recorded) = recorded else {
            return Vec::new();
        };
        let Ok(runs) = serde_json::from_str::<Vec<RunRange>>(&recorded) else {
            warn!("the recent fan-out runs' record is unreadable; it is ignored");
            return Vec::new();
        };
        // A delay the queue cannot express (a record edited by hand, or corrupt) would hold back the
        // windows it names for nothing: such a count is ignored.
        let max_delay = Duration::seconds(i64::from(<Q as JobQueue>::MAX_DELAY_SECONDS));
        runs.into_iter()
            .map(|mut r| {
                let latest = r.at.checked_add_signed(max_delay + SAME_WINDOW_SLACK);
                r.delayed = r
                    .delayed
                    .filter(|d| d.visible_at >= r.at && latest.is_some_and(|l| d.visible_at <= l));
                r
            })
            .filter(|r| r.kept(now))
            .collect()
    }

    /// Records this run's ranges (first) with the recent runs', for a run soon after
    /// ([`Self::recent_runs`]).
    async fn record_run(&self, mut ranges: Vec<RunRange>) {
        // Forgetting a range only lets a run soon after queue a second job, which the worker drops.
        ranges.truncate(RECENT_RANGES_KEPT);
        let record = serde_json::to_string(&ranges).unwrap_or_default();
        if let Err(e) = self.store.put_setting(RECENT_RUNS_SETTING, &record).await {
            warn!(error = %e, "could not record the fan-out run; a run soon after may queue some athletes twice (the worker drops the second job)");
        }
    }

    /// The spread of this run's jobs: what the budget shows now, then the next window less the delayed
    /// jobs of `recent` runs that will spend it ([`RunRange::pending_in`]). The undelayed jobs of a run a
    /// moment ago are not counted against `now`: they reserve within seconds of being sent, and the
    /// budget shows them then (counting them too would queue fewer than the budget allows whenever the
    /// workers had run); one not yet run when this run reads the budget is deferred by its worker to the
    /// next reset. A scheduled run an interval after the last usually finds that run's delayed jobs
    /// visible already and queues as many as the budget shows, as a single run does; if it starts before
    /// they are (a 15-minute interval after a 900 s delay, and the schedule a second early), it counts
    /// them against the window they share, which is the one they spend.
    async fn spread(&self, now: DateTime<Utc>, recent: &[RunRange]) -> Result<Spread, FanoutError> {
        let budget = RateBudget::new(self.store, LimitFormula::POLAR);
        let available = budget.available(now).await?;
        let (short, long, resets_at) = (available.short, available.long, available.short_resets_at);
        // The most a scheduled job can cost: one call per list of the site.
        let per_job = scheduled_sync_calls(self.mapping);
        let max_delay = Duration::seconds(i64::from(<Q as JobQueue>::MAX_DELAY_SECONDS));
        if available.from > now {
            // A 429's block: nobody calls Polar before it ends. The jobs the windows then hold wait on the
            // queue for its end, as for a window's reset (all stay due if it ends beyond SQS's longest
            // delay), so the athletes due meanwhile are not left to the next run.
            let wait = available.from - now;
            let (next_window, earlier_delayed) = if wait <= max_delay {
                // Spent at the block's end in the window open then, or in one opened then.
                let end = available
                    .short_resets_at
                    .filter(|r| *r > available.from)
                    .unwrap_or(available.from + SHORT_WINDOW);
                let pending = RunRange::pending_in(recent, now, available.from, end);
                ((short.min(long) / per_job).saturating_sub(pending), pending)
            } else {
                (0, 0)
            };
            return Ok(Spread {
                now: 0,
                next_window,
                delay_seconds: whole_seconds_up(wait).clamp(0, max_delay.num_seconds()) as u32,
                earlier_delayed,
            });
        }
        let jobs_now = short.min(long) / per_job;
        // No window open: the jobs sent now open one, and it resets a whole window later.
        let until_reset = resets_at.map_or(SHORT_WINDOW, |r| (r - now).max(Duration::zero()));
        let (next_window, earlier_delayed) = if until_reset <= max_delay {
            let full =
                (available.short_limit as f64 * RateBudget::<S>::SCHEDULED_SHARE) as u64 / per_job;
            let reset = now + until_reset;
            let pending = RunRange::pending_in(recent, now, reset, reset + SHORT_WINDOW);
            let next_window = full.min(long.saturating_sub(short.min(long)) / per_job);
            (next_window.saturating_sub(pending), pending)
        } else {
            (0, 0)
        };
        Ok(Spread {
            now: jobs_now,
            next_window,
            delay_seconds: whole_seconds_up(until_reset).clamp(0, max_delay.num_seconds()) as u32,
            earlier_delayed,
        })
    }

    /// Sends the jobs in batches of ten; a job that could not be sent has its marker released if this
    /// run set one (`marked`). Every batch is tried; the first store failure is returned at the end.
    async fn send_all(
        &self,
        outgoing: Vec<Outgoing>,
        marked: &HashSet<AthleteUuid>,
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
                    if marked.contains(&out.job.athlete)
                        && let Err(e) = self.store.clear_queued(&out.job.athlete).await
                    {
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
    use chrono::TimeZone as _;

    use super::*;

    fn position(minute: i64) -> Position {
        Position {
            due: Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap() + Duration::minutes(minute),
            uuid: format!("athlete-{minute}"),
        }
    }

    fn range(at: DateTime<Utc>, after: Option<i64>, through: i64) -> RunRange {
        RunRange {
            at,
            after: after.map(position),
            through: position(through),
            delayed: None,
        }
    }

    #[test]
    fn a_run_covers_what_it_reached_less_the_recent_runs_it_skipped() {
        let at = Utc.with_ymd_and_hms(2026, 12, 6, 13, 0, 0).unwrap();
        let earlier = at - Duration::minutes(5);
        // Nothing recent: everything from the listing's start.
        assert_eq!(
            RunRange::reached(at, &position(40), &[]),
            [range(at, None, 40)]
        );
        // After a recent run that reached minute 20.
        let first = range(earlier, None, 20);
        assert_eq!(
            RunRange::reached(at, &position(40), std::slice::from_ref(&first)),
            [range(at, Some(20), 40)]
        );
        // A recent run covering a middle stretch only (the one before it has lapsed): the athletes
        // before and after it are this run's.
        let middle = range(earlier, Some(10), 20);
        assert_eq!(
            RunRange::reached(at, &position(40), std::slice::from_ref(&middle)),
            [range(at, None, 10), range(at, Some(20), 40)]
        );
        // Stopping inside a recent run's range adds nothing of its own past it.
        assert_eq!(
            RunRange::reached(at, &position(15), std::slice::from_ref(&first)),
            Vec::<RunRange>::new()
        );
        assert_eq!(
            RunRange::reached(at, &position(15), std::slice::from_ref(&middle)),
            [range(at, None, 10)]
        );
        // Two recent ranges, either order.
        let late = range(earlier, Some(30), 35);
        assert_eq!(
            RunRange::reached(at, &position(40), &[late, middle]),
            [
                range(at, None, 10),
                range(at, Some(20), 30),
                range(at, Some(35), 40)
            ]
        );
    }

    #[test]
    fn a_range_covers_after_its_start_through_its_end() {
        let at = Utc.with_ymd_and_hms(2026, 12, 6, 13, 0, 0).unwrap();
        let r = range(at, Some(10), 20);
        assert!(!r.covers(&position(10)));
        assert!(r.covers(&position(11)));
        assert!(r.covers(&position(20)));
        assert!(!r.covers(&position(21)));
        assert!(range(at, None, 20).covers(&position(-1000)));
        // Same due time: the UUID orders them, as in the listing.
        let tie = Position {
            uuid: "athlete-20-b".into(),
            ..position(20)
        };
        assert!(!r.covers(&tie));
    }

    #[test]
    fn a_record_from_before_the_delayed_jobs_parses_and_its_runs_still_cover_their_athletes() {
        let at = Utc.with_ymd_and_hms(2026, 12, 6, 13, 0, 0).unwrap();
        let through = serde_json::to_string(&position(20)).unwrap();
        let after = serde_json::to_string(&position(10)).unwrap();
        // As the fan-out wrote it before the field existed.
        let old = format!(
            r#"[{{"at":"2026-12-06T12:58:00Z","after":{after},"through":{through}}},{{"at":"2026-12-06T12:55:00Z","after":null,"through":{after}}}]"#
        );
        let runs: Vec<RunRange> = serde_json::from_str(&old).unwrap();
        assert_eq!(runs.len(), 2);
        assert!(runs.iter().all(|r| r.delayed.is_none() && r.kept(at)));
        for minute in [0, 10, 11, 20] {
            assert!(
                runs.iter().any(|r| r.covers(&position(minute))),
                "minute {minute}"
            );
        }
        assert!(!runs.iter().any(|r| r.covers(&position(21))));
        // Nothing pending: the next window is the budget's alone.
        assert_eq!(RunRange::pending_in(&runs, at, at, at + SHORT_WINDOW), 0);
        // A range without delayed jobs is written as before, byte for byte.
        assert_eq!(
            serde_json::to_string(&runs).unwrap(),
            old,
            "the record's size is unchanged"
        );
    }

    #[test]
    fn a_record_with_delayed_jobs_is_read_by_the_code_from_before_them() {
        // The fan-out before the field: the same fields, unknown ones not denied.
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct OldRunRange {
            at: DateTime<Utc>,
            after: Option<Position>,
            through: Position,
        }
        let at = Utc.with_ymd_and_hms(2026, 12, 6, 13, 0, 0).unwrap();
        let runs = [RunRange {
            delayed: Some(DelayedJobs {
                jobs: 5,
                visible_at: at + Duration::seconds(450),
            }),
            ..range(at, Some(10), 20)
        }];
        let record = serde_json::to_string(&runs).unwrap();
        assert!(record.contains("\"delayed\""), "{record}");
        let old: Vec<OldRunRange> = serde_json::from_str(&record).unwrap();
        assert_eq!((old[0].at, &old[0].through), (at, &position(20)));
        let back: Vec<RunRange> = serde_json::from_str(&record).unwrap();
        assert_eq!(back, runs);
    }

    #[test]
    fn delayed_jobs_not_yet_visible_count_against_the_window_they_become_visible_in() {
        let at = Utc.with_ymd_and_hms(2026, 12, 6, 13, 0, 0).unwrap();
        let reset = at + Duration::minutes(10);
        let delayed = |jobs, visible_at| RunRange {
            delayed: Some(DelayedJobs { jobs, visible_at }),
            ..range(at, None, 20)
        };
        let runs = [
            // For this reset (a whole second later, rounded up).
            delayed(5, reset + Duration::seconds(1)),
            // For the same window after a reading moved its reset a few seconds.
            delayed(2, reset - Duration::seconds(3)),
            // Into the window open now: the budget's to show.
            delayed(7, at + Duration::minutes(3)),
            // After the next window: a later one's.
            delayed(11, reset + SHORT_WINDOW),
        ];
        let now = at + Duration::minutes(1);
        assert_eq!(
            RunRange::pending_in(&runs, now, reset, reset + SHORT_WINDOW),
            7
        );
        // Once visible they have reserved (or been deferred by their worker): no longer counted; the
        // ones still to come count against the window they become visible in.
        let later = reset + Duration::seconds(2);
        assert_eq!(
            RunRange::pending_in(&runs, later, later, later + SHORT_WINDOW),
            11
        );
    }

    #[test]
    fn a_run_s_range_lapses_after_recent_run_but_its_delayed_jobs_are_kept_until_visible() {
        let at = Utc.with_ymd_and_hms(2026, 12, 6, 13, 0, 0).unwrap();
        let r = RunRange {
            delayed: Some(DelayedJobs {
                jobs: 3,
                visible_at: at + Duration::minutes(14),
            }),
            ..range(at, None, 20)
        };
        let now = at + Duration::minutes(12);
        assert!(
            !r.recent(now) && r.kept(now),
            "covers no one, still counted"
        );
        assert!(!r.kept(at + Duration::minutes(14)));
        assert!(!range(at, None, 20).kept(now));
    }

    #[test]
    fn spread_fills_now_then_the_next_window_then_stops() {
        let spread = Spread {
            now: 2,
            next_window: 3,
            delay_seconds: 600,
            earlier_delayed: 0,
        };
        let delays: Vec<_> = (0..6).map(|i| spread.delay_for(i)).collect();
        assert_eq!(
            delays,
            [Some(0), Some(0), Some(600), Some(600), Some(600), None]
        );
    }
}
