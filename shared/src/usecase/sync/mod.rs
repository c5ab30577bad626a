//! One athlete's sync: plan the Polar calls a job makes, fetch and map what Polar has, and deliver each
//! record to Smartabase exactly once (`deliver`), then move the athlete's cursors.
//!
//! - `plan`: which steps (one Polar call each) a job runs.
//! - `fetch`: one step's Polar call, its records mapped.
//! - `deliver`: the ledger and the writes: exactly once, lost answers looked up.
//! - `rhythm`: when each data type is due again.
//! - `lock`: the athlete's lock, taken once there is something to deliver.
//! - `end`: the job's record on the athlete, Polar's stops (401, 429, consents), deferral.
//! - this file: the job's outline (`sync_job`, `sync_steps`: reserve the calls, run each step, look up
//!   unanswered writes) and its outcome.

mod deliver;
mod end;
mod fetch;
mod lock;
mod plan;
mod rhythm;

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use tracing::warn;

use super::{Connector, QUEUED_MARKER_TTL};
use crate::budget::{
    BudgetError, CallPool, LimitFormula, RateBudget, SHORT_WINDOW, polar_wait_until,
};
use crate::clock::Clock;
use crate::crypto::CryptoError;
use crate::error::{DeferCause, Deferral, Disposition};
use crate::ids::{AccessToken, AthleteUuid, EventId, PolarUserId, SmartabaseUserId};
use crate::mapping::{MappedEvent, Mapping};
use crate::model::{
    Athlete, AthleteStatus, DataKind, LedgerEntry, LedgerKey, RecordKey, SyncCursors,
};
use crate::polar::{BrokenRecord, PolarApi, PolarError};
use crate::queue::{JobKind, JobQueue, SyncJob, Target};
use crate::smartabase::{SmartabaseApi, SmartabaseError};
use crate::store::{Locking, Store, StoreError};
use deliver::{Delivery, ListDigest};
pub(crate) use fetch::{FetchError, Fetched, Stop};
pub use lock::LOCK_TTL;
use lock::{attempt_owner, busy, lists_counted_before_its_lock};
pub(crate) use plan::Step;
use plan::{Newest, Plan, newest_date};
pub use rhythm::{Cadence, DAY_RHYTHM, NIGHT_RHYTHM, RECONCILIATION_INTERVAL, Rhythm};

/// Polar keeps daily data for 28 days and exercises for 30. Every read of a list takes the whole window
/// (each type on its rhythm: `rhythm`): a night uploaded weeks late, or revised after delivery, is in
/// it, and the ledger's content hash keeps what did not change at zero Smartabase calls.
pub const DAILY_HISTORY_DAYS: i64 = 28;
/// The longest a batch's end waits for the budget store to take back its unspent calls.
pub const GIVE_BACK_TIME: std::time::Duration = std::time::Duration::from_secs(10);
/// A busy athlete's job comes back after this long.
pub const BUSY_RETRY: Duration = Duration::seconds(60);
/// A recharge not ready when its sleep arrived is asked for again after this long (SQS's longest delay),
/// this many times.
pub const RECHARGE_RETRY: Duration = Duration::minutes(15);
/// See [`RECHARGE_RETRY`].
pub const RECHARGE_MAX_RETRIES: u32 = 6;

/// Counts of one sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncCounts {
    /// Records Polar returned, by kind.
    pub fetched: BTreeMap<DataKind, u64>,
    /// Events created or updated, by kind.
    pub written: BTreeMap<DataKind, u64>,
    /// Events created.
    pub created: u64,
    /// Events updated in place.
    pub updated: u64,
    /// Records unchanged since the last write (no Smartabase call).
    pub unchanged: u64,
    /// Records Polar sent malformed (skipped, retried next cycle).
    pub broken: u64,
    /// Records that could not be written this time.
    pub failed: u64,
    /// Lost writes recovered from Smartabase instead of being written twice.
    pub recovered: u64,
    /// Field names Smartabase dropped (a form is missing them).
    pub dropped_fields: u64,
    /// Older records the history backfill wrote (counted here only, not in `written` or `created`).
    pub backfilled: u64,
    /// Polar calls made.
    pub polar_calls: u64,
    /// Smartabase calls made.
    pub smartabase_calls: u64,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Everything fetched was delivered (or unchanged).
    Synced(SyncCounts),
    /// The job had nothing to do: unknown athlete, or not linked (revoked jobs become no-ops).
    Skipped(&'static str),
    /// Try again later; the job goes back on the queue with a delay (not a failed receive).
    Deferred(Deferral),
    /// Budget or a 429 block lasts beyond the queue's longest delay: the job is dropped and the athlete
    /// left due, so the fan-out sends it again when there is budget.
    Released(DeferCause),
    /// Polar confirmed the token is dead: the athlete now needs reauthorisation.
    Reauthorise,
    /// The athlete's Polar consents are missing: recorded, retried at the next interval.
    ConsentsMissing,
    /// The worker's deadline came before the job was done: what Smartabase confirmed is kept, and the job
    /// continues in a new message (not a failed receive).
    Unfinished(SyncCounts),
}

impl SyncOutcome {
    /// The `outcome` field of the job's log line.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Synced(c) if c.created + c.updated + c.recovered == 0 => "unchanged",
            Self::Synced(_) => "synced",
            Self::Skipped(_) => "skipped",
            Self::Deferred(_) => "deferred",
            Self::Released(_) => "released",
            Self::Reauthorise => "reauthorise",
            Self::ConsentsMissing => "consents_missing",
            Self::Unfinished(_) => "unfinished",
        }
    }

    /// What the job's end calls for beyond acknowledging its message: a deferral goes back on the queue,
    /// a confirmed 401 was recorded. `None` for a job that is done (or continues in a follow-up).
    pub fn disposition(&self) -> Option<Disposition> {
        match self {
            Self::Deferred(deferral) => Some(Disposition::Defer(*deferral)),
            Self::Reauthorise => Some(Disposition::Reauthorise),
            Self::Synced(_)
            | Self::Skipped(_)
            | Self::Released(_)
            | Self::ConsentsMissing
            | Self::Unfinished(_) => None,
        }
    }
}

/// A sync that must be retried (the message fails; SQS retries with backoff, then the DLQ).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Polar failed transiently (5xx, timeout, dropped connection, malformed body). The client's text
    /// names Polar already.
    #[error("{0}")]
    Polar(#[source] PolarError),
    /// Smartabase failed or did not confirm. The client's text names Smartabase already.
    #[error("{0}")]
    Smartabase(#[source] SmartabaseError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Some records could not be written; the rest were.
    #[error("{failed} record(s) could not be written: {first}")]
    Partial {
        /// How many.
        failed: u64,
        /// The first failure.
        first: String,
    },
    /// A Linked athlete without a stored token: a defect.
    #[error("the athlete's token cannot be used: no token stored")]
    NoToken,
    /// A Linked athlete whose token does not open: a defect or a rotated key.
    #[error("the athlete's token cannot be used: {0}")]
    Token(#[source] CryptoError),
}

impl SyncError {
    /// What the failure calls for.
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::NoToken | Self::Token(_) => Disposition::Bug,
            _ => Disposition::Retry,
        }
    }
}

/// Successful job: its outcome plus, for the worker, jobs to queue as follow-ups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// The outcome.
    pub outcome: SyncOutcome,
    /// Follow-up jobs (a recharge that was not ready yet) with their delays in seconds.
    pub follow_ups: Vec<(SyncJob, u32)>,
}

impl SyncReport {
    fn only(outcome: SyncOutcome) -> Self {
        Self {
            outcome,
            follow_ups: Vec::new(),
        }
    }
}

/// A job's end: its report, and the athlete as it last read or wrote it (the backfill goes
/// on from there).
struct Ran {
    report: Result<SyncReport, SyncError>,
    athlete: Athlete,
    /// Whether it started a ledger or Smartabase write.
    wrote: bool,
}

/// The athlete as a job last read or wrote it, and whether the job started a ledger or Smartabase write.
struct Held {
    athlete: Athlete,
    wrote: bool,
}

/// Where a job got to: what it counted, the cursors it moved, the jobs it asks for, what failed.
struct Progress {
    /// The Polar account the job started with: a re-link to another while it ran starts afresh, and the
    /// job's cursors, schedule and errors are not written over it.
    account: Option<PolarUserId>,
    counts: SyncCounts,
    cursors: SyncCursors,
    follow_ups: Vec<(SyncJob, u32)>,
    failures: Vec<String>,
    unfinished: bool,
    /// A webhook's record was not in its list yet: the next scheduled sync comes at the interval.
    announced_missing: bool,
    /// The budget let a full sync read only some of its lists: it continues when the window resets.
    cut_short: Option<DateTime<Utc>>,
}

impl Progress {
    /// Where a job starts: the cursors it read, trusting only the list digests stored at the lock count
    /// before its own (a job that wrote and never recorded its end moved the count on past them).
    fn starting(job: &SyncJob, athlete: &Athlete, cut_short: Option<DateTime<Utc>>) -> Self {
        let mut cursors = athlete.cursors.clone();
        // A webhook's job read the athlete as it locked it, one lock later; a full sync read it unlocked.
        let locks_before = if job.kind == JobKind::Targeted {
            athlete.locks_taken.saturating_sub(1)
        } else {
            athlete.locks_taken
        };
        cursors.trust_lists_stored_at(locks_before);
        Self {
            account: athlete.polar_user_id,
            counts: SyncCounts::default(),
            cursors,
            follow_ups: Vec::new(),
            failures: Vec::new(),
            unfinished: false,
            announced_missing: false,
            cut_short,
        }
    }
}

/// What a job's steps run with: the athlete as the job read them, and the token it opened.
struct JobRun<'a> {
    job: &'a SyncJob,
    athlete: &'a Athlete,
    user: SmartabaseUserId,
    token: AccessToken,
    now: DateTime<Utc>,
    deadline: Instant,
    pool: &'a CallPool,
}

/// Records written without an answer, looked up after every step has written its fresh ones, and the
/// steps whose cursors move once they are confirmed.
#[derive(Default)]
struct Unanswered {
    pending: Vec<(MappedEvent, LedgerEntry)>,
    owners: HashMap<EventId, LedgerKey>,
    steps: Vec<(Step, Newest, Option<ListDigest>)>,
}

/// How a step left the job.
enum StepEnd {
    /// On to the next step.
    Next,
    /// It delivered a new record: the watch just synced, so the other lists come along (`read_along`).
    News,
    /// The deadline came before its records were all tried.
    Unfinished,
    /// The job ends with this report (Polar stopped it, or another job holds the athlete).
    Stop(SyncReport),
}

impl<S, Q, P, B, C> Connector<S, Q, P, B, C>
where
    S: Store,
    Q: JobQueue,
    P: PolarApi,
    B: SmartabaseApi,
    C: Clock,
{
    /// Runs one sync job, starting no Polar or Smartabase call after `deadline`; its Polar calls come
    /// from `pool`, the worker batch's reservation. A webhook's job takes the athlete's lock first. A
    /// full sync reads the athlete and takes the lock only once it has something to deliver (or a first
    /// sync or backfill to run), at the version it read: most full syncs find nothing new, and a read
    /// costs a fifth of the lock's write.
    pub async fn sync_job(
        &self,
        job: &SyncJob,
        deadline: Instant,
        pool: &CallPool,
    ) -> Result<SyncReport, SyncError> {
        // The lock's owner is this attempt, not the message: SQS may deliver one message twice at once,
        // and neither copy may take, or release, the other's lock as its own.
        let attempt = SyncJob {
            job_id: attempt_owner(&job.job_id),
            ..job.clone()
        };
        let job = &attempt;
        let now = self.now();
        let unknown = || SyncReport::only(SyncOutcome::Skipped("unknown athlete"));
        // Either read reads the athlete as it is now: a job that just finished may have moved the cursors.
        let current = if job.kind == JobKind::Targeted {
            match self
                .store
                .try_lock(&job.athlete, &job.job_id, now, now + LOCK_TTL)
                .await?
            {
                Locking::Taken(current) => *current,
                Locking::Busy => return Ok(busy(now)),
                Locking::NoAthlete => return Ok(unknown()),
            }
        } else {
            match self.store.get_athlete(&job.athlete).await? {
                Some(current) if current.lock_held(now) => return Ok(busy(now)),
                Some(current) => current,
                None => return Ok(unknown()),
            }
        };
        let (result, last_written, wrote) = if current.status != AthleteStatus::Linked {
            let cleared = match current.queued_until {
                Some(_) => self.store.clear_queued(&job.athlete).await,
                None => Ok(()),
            };
            let skipped = SyncReport::only(SyncOutcome::Skipped("athlete is not linked"));
            (
                cleared.map(|()| skipped).map_err(SyncError::from),
                current,
                false,
            )
        } else if redundant(job, &current) {
            let skipped = SyncReport::only(SyncOutcome::Skipped(
                "the athlete was synced after this job was queued",
            ));
            (Ok(skipped), current, false)
        } else {
            let ran = self.sync_athlete(job, current, now, deadline, pool).await;
            match ran.report {
                // The history backfill runs under the lock, which the sync then kept (a sync it
                // follows stored its digests at this lock; the backfill writes only records no digest
                // stands for, so they still count).
                Ok(report) if ran.athlete.locked_by(&job.job_id) => {
                    let athlete = ran.athlete.clone();
                    let report = self
                        .backfill_after_sync(job, report, athlete, deadline, pool)
                        .await;
                    (report, ran.athlete, ran.wrote)
                }
                report => (report, ran.athlete, ran.wrote),
            }
        };
        // Released by the sync's last write of the athlete, unless it ended another way (or that write
        // failed, or the backfill followed it). A full sync that stays on the queue sets the queued marker
        // in the same write, so the fan-out does not pile up a second job meanwhile (only for a linked
        // athlete: the fan-out takes no one else).
        let queued_until = (last_written.status == AthleteStatus::Linked
            && stays_queued(job, &result))
        .then(|| self.now() + QUEUED_MARKER_TTL);
        if last_written.locked_by(&job.job_id) {
            let released = if !wrote && lists_counted_before_its_lock(&last_written) {
                self.release_unwritten(job, &last_written, queued_until)
                    .await
            } else {
                self.store
                    .unlock(&job.athlete, &job.job_id, queued_until)
                    .await
            };
            if let Err(e) = released {
                // The lock lapses by itself after LOCK_TTL.
                warn!(athlete = %job.athlete, error = %e, "could not release the athlete's lock");
            }
        } else if let Some(until) = queued_until
            && last_written.queued_until.is_none_or(|q| q < self.now())
        {
            // A full sync that never needed the lock marks on its own (a failure's end already did).
            if let Err(e) = self
                .store
                .mark_queued(&job.athlete, until, self.now())
                .await
            {
                warn!(athlete = %job.athlete, error = %e, "could not mark the athlete queued; the fan-out may send a second job, which finds the sync done");
            }
        }
        // The batch records the last one with its give-back, on the connector's clock (the client keeps
        // the wall clock's: the same in production, not under a test's clock).
        if let Some(reading) = self.polar.latest_rate_limit() {
            let age = (Utc::now() - reading.observed_at).max(Duration::zero());
            pool.note_reading(reading, self.now() - age).await;
        }
        result
    }

    /// The Polar-call pool of a worker batch running `at_once` jobs at a time: the first job short of
    /// calls reserves for the others running beside it too (at the most a sync can cost), so a batch
    /// writes the budget a few times, not once per job, and parks little of it.
    pub fn call_pool(&self, at_once: usize) -> CallPool {
        let others = at_once.saturating_sub(1) as u64;
        CallPool::expecting(
            others.saturating_mul(self.scheduled_sync_calls()),
            self.polar.latest_rate_limit(),
        )
    }

    /// The batch's end: gives back the calls its pool holds unspent and records Polar's last reading
    /// its jobs noted, within [`GIVE_BACK_TIME`] (the worker's deadline margin covers it).
    pub async fn give_back_calls(&self, pool: &CallPool) {
        let given_back =
            tokio::time::timeout(GIVE_BACK_TIME, self.budget().give_back(pool, self.now())).await;
        if let Err(e) = given_back.unwrap_or_else(|elapsed| {
            Err(
                StoreError::unavailable_from("the budget store did not answer in time", elapsed)
                    .into(),
            )
        }) {
            warn!(error = %e, "could not give back a batch's unspent Polar calls or record Polar's reading; the calls count as spent until the windows reset");
        }
    }

    /// Polar answered 429: the batch's other jobs call Polar no more, and every worker learns it from the
    /// budget. The wait counts from the 429, not from the job's start (a block that ended early would
    /// send every worker back to Polar too soon). Returns when Polar may be called again.
    pub(super) async fn polar_rate_limited(
        &self,
        pool: &CallPool,
        retry_after_seconds: u64,
    ) -> DateTime<Utc> {
        let at = self.now();
        let until = polar_wait_until(at, retry_after_seconds);
        pool.block(until).await;
        if let Err(e) = self.budget().rate_limited(retry_after_seconds, at).await {
            warn!(error = %e, "could not record the 429 in the budget");
        }
        until
    }

    fn budget(&self) -> RateBudget<'_, S> {
        RateBudget::new(&self.store, LimitFormula::POLAR)
    }

    /// How this site's records reach the connector: webhooks once their secret is configured.
    pub(crate) fn cadence(&self) -> Cadence {
        let interval = self.settings.sync_interval.duration();
        if self.settings.polar_webhook_secret.is_some() {
            Cadence::Webhooks(interval)
        } else {
            Cadence::Polling(interval)
        }
    }

    /// [`scheduled_sync_calls`] of this site.
    pub fn scheduled_sync_calls(&self) -> u64 {
        scheduled_sync_calls(&self.mapping)
    }

    async fn sync_athlete(
        &self,
        job: &SyncJob,
        athlete: Athlete,
        now: DateTime<Utc>,
        deadline: Instant,
        pool: &CallPool,
    ) -> Ran {
        let mut held = Held {
            athlete: athlete.clone(),
            wrote: false,
        };
        let report = self
            .sync_steps(job, athlete, &mut held, now, deadline, pool)
            .await;
        Ran {
            report,
            athlete: held.athlete,
            wrote: held.wrote,
        }
    }

    /// The job's steps and their delivery. `held` follows the athlete as this job last read or wrote it,
    /// and whether it started a write.
    async fn sync_steps(
        &self,
        job: &SyncJob,
        athlete: Athlete,
        held: &mut Held,
        now: DateTime<Utc>,
        deadline: Instant,
        pool: &CallPool,
    ) -> Result<SyncReport, SyncError> {
        let Some(user) = athlete.smartabase_user_id else {
            // Linked through the web flow before the scan saw them on the roster: the scan fills this in.
            return Ok(SyncReport::only(SyncOutcome::Deferred(Deferral {
                until: now + Duration::minutes(15),
                cause: DeferCause::SmartabaseUserUnknown,
            })));
        };
        let token = self.open_token(&job.athlete).await?;

        let rhythm =
            Rhythm::new(&athlete.cursors, now, self.cadence()).linked_at(athlete.linked_at);
        let mut plan = Plan::for_job(job, &athlete.cursors, &self.mapping, &rhythm, now);
        // A first sync always delivers, and the backfill runs under the sync's lock.
        if (plan.first_sync || self.backfill_follows(job, &athlete, &athlete.cursors))
            && !self.hold_lock(job, &mut held.athlete).await?
        {
            return Ok(busy(now));
        }
        let cut_short = match self
            .reserve_calls(job, &mut plan, &athlete, now, pool)
            .await?
        {
            ControlFlow::Continue(cut_short) => cut_short,
            ControlFlow::Break(deferred) => return Ok(deferred),
        };

        let run = JobRun {
            job,
            athlete: &athlete,
            user,
            token,
            now,
            deadline,
            pool,
        };
        let mut progress = Progress::starting(job, &athlete, cut_short);
        let mut unanswered = Unanswered::default();
        let mut next = 0;
        while let Some(step) = plan.steps.get(next).cloned() {
            next += 1;
            if Instant::now() >= deadline {
                progress.unfinished = true;
                break;
            }
            // Another job of the batch met a 429 (and told the budget): this one waits as it does.
            if let Some(until) = pool.blocked_until(self.now()).await {
                return Ok(self
                    .defer_or_release(
                        job,
                        athlete.polar_user_id,
                        until,
                        self.now(),
                        DeferCause::PolarRateLimited,
                    )
                    .await?);
            }
            let ended = self
                .run_step(&run, &plan, &step, held, &mut progress, &mut unanswered)
                .await?;
            match ended {
                StepEnd::Next => {}
                StepEnd::News => {
                    self.read_along(&mut plan, &rhythm, &athlete.cursors, now, pool)
                        .await;
                }
                StepEnd::Unfinished => {
                    progress.unfinished = true;
                    break;
                }
                StepEnd::Stop(report) => return Ok(report),
            }
        }
        if !progress.unfinished {
            self.look_up_unanswered(&run, held, &mut progress, unanswered)
                .await?;
        }
        self.conclude(job, &plan, &mut held.athlete, progress, now)
            .await
    }

    /// Reserves the plan's Polar calls: a webhook's job all of them, a full sync those that fit (the
    /// plan keeps the steps they pay for, and `Continue` says when the rest can be had: the job keeps its
    /// place on the queue for them). `Break` ends the job: the budget has no call for it.
    async fn reserve_calls(
        &self,
        job: &SyncJob,
        plan: &mut Plan,
        athlete: &Athlete,
        now: DateTime<Utc>,
        pool: &CallPool,
    ) -> Result<ControlFlow<SyncReport, Option<DateTime<Utc>>>, SyncError> {
        if plan.calls() == 0 {
            return Ok(ControlFlow::Continue(None));
        }
        let whole = job.kind == JobKind::Targeted;
        match self
            .budget()
            .take(pool, plan.calls(), whole, self.now())
            .await
        {
            Ok((granted, more_at)) if granted < plan.calls() => {
                plan.steps.truncate(granted as usize);
                Ok(ControlFlow::Continue(Some(
                    more_at.unwrap_or(now + SHORT_WINDOW),
                )))
            }
            Ok(_) => Ok(ControlFlow::Continue(None)),
            Err(BudgetError::Exhausted(e)) => Ok(ControlFlow::Break(
                self.defer_or_release(
                    job,
                    athlete.polar_user_id,
                    e.until,
                    now,
                    DeferCause::PolarBudget,
                )
                .await?,
            )),
            Err(BudgetError::Store(e)) => Err(e.into()),
        }
    }

    /// One step: its Polar call, then, unless its list is exactly as Smartabase last confirmed it, its
    /// records' delivery under the athlete's lock. Its cursors move once every record is confirmed.
    async fn run_step(
        &self,
        run: &JobRun<'_>,
        plan: &Plan,
        step: &Step,
        held: &mut Held,
        progress: &mut Progress,
        unanswered: &mut Unanswered,
    ) -> Result<StepEnd, SyncError> {
        let (job, now) = (run.job, run.now);
        let fetched = match self.fetch(&run.token, step, &mut progress.counts).await {
            Ok(f) => f,
            Err(FetchError::Failed(e)) => {
                let failure = format!("{} fetch: {e}", step.kind().as_str());
                progress.failures.push(failure);
                step.forget(&mut progress.cursors);
                return Ok(StepEnd::Next);
            }
            Err(FetchError::Stop(stop)) => {
                let counts = std::mem::take(&mut progress.counts);
                return self.stopped(run, stop, counts).await.map(StepEnd::Stop);
            }
        };
        progress
            .follow_ups
            .extend(recharge_retry(job, step, &fetched));
        progress.counts.broken += fetched.broken.len() as u64;
        log_broken(&job.athlete, step, &fetched.broken);
        let newest = (newest_date(&fetched.events), fetched.utc_offset_minutes);
        let complete = plan.holds_announced(step, &fetched.events);
        progress.announced_missing |= !complete;
        // A whole list that Polar answers exactly as when Smartabase last confirmed all of it.
        let digest = step.is_list().then(|| ListDigest::of(&fetched.events));
        if let Some(digest) = &digest
            && complete
            && fetched.broken.is_empty()
            && progress.cursors.confirmed_lists.get(&step.kind()) == Some(&digest.value)
        {
            progress.counts.unchanged += digest.records;
            step.advance(&mut progress.cursors, now, newest);
            return Ok(StepEnd::Next);
        }
        if !self.hold_lock(job, &mut held.athlete).await? {
            return Ok(StepEnd::Stop(busy(self.now())));
        }
        if !held.athlete.cursors.uncounted_lists.is_empty() {
            // The release before trusts these: none may outlive a write they do not stand for.
            held.athlete = self
                .update_known_athlete(&held.athlete, |a| a.cursors.uncounted_lists.clear())
                .await?;
        }
        let created_before = progress.counts.created;
        held.wrote = true;
        let written = self
            .deliver(
                &job.athlete,
                run.user,
                fetched.events,
                &mut progress.counts,
                Some(&mut progress.cursors),
                now,
                run.deadline,
            )
            .await?;
        progress.failures.extend(written.failures.first().cloned());
        if written.unfinished {
            return Ok(StepEnd::Unfinished);
        }
        let clean = complete && fetched.broken.is_empty() && written.failures.is_empty();
        if !clean {
            step.forget(&mut progress.cursors);
        }
        if written.pending.is_empty() {
            if clean {
                step.advance(&mut progress.cursors, now, newest);
                confirm_list(&mut progress.cursors, step, digest);
            }
        } else {
            unanswered.pending.extend(written.pending);
            unanswered.owners.extend(written.owners);
            if clean {
                unanswered.steps.push((step.clone(), newest, digest));
            }
        }
        Ok(if progress.counts.created > created_before {
            StepEnd::News
        } else {
            StepEnd::Next
        })
    }

    /// Looks up the records whose writes went unanswered (written after every step, see
    /// `resolve_pending`); the steps they came from move their cursors once all are confirmed.
    async fn look_up_unanswered(
        &self,
        run: &JobRun<'_>,
        held: &mut Held,
        progress: &mut Progress,
        unanswered: Unanswered,
    ) -> Result<(), SyncError> {
        if unanswered.pending.is_empty() {
            return Ok(());
        }
        let mut resolved = Delivery {
            owners: unanswered.owners,
            ..Delivery::default()
        };
        held.wrote = true;
        self.resolve_pending(
            &run.job.athlete,
            run.user,
            unanswered.pending,
            &mut progress.counts,
            &mut resolved,
            run.now,
            run.deadline,
        )
        .await?;
        progress.failures.extend(resolved.failures.first().cloned());
        progress.unfinished = resolved.unfinished;
        if !progress.unfinished && resolved.failures.is_empty() {
            for (step, newest, digest) in unanswered.steps {
                step.advance(&mut progress.cursors, run.now, newest);
                confirm_list(&mut progress.cursors, &step, digest);
            }
        }
        Ok(())
    }

    /// A list brought a new record: the watch just synced, so the other core lists the rhythm allows are
    /// read in the same job (each call reserved first; without budget they wait for their rhythm).
    async fn read_along(
        &self,
        plan: &mut Plan,
        rhythm: &Rhythm<'_>,
        cursors: &SyncCursors,
        now: DateTime<Utc>,
        pool: &CallPool,
    ) {
        for kind in Plan::site_kinds(&self.mapping) {
            if plan.steps.iter().any(|s| s.kind() == kind) || !rhythm.after_news(kind) {
                continue;
            }
            let Some(step) = Step::list(kind, cursors, now.date_naive()) else {
                continue;
            };
            match self.budget().take(pool, 1, true, self.now()).await {
                Ok(_) => plan.steps.push(step),
                Err(BudgetError::Exhausted(_)) => return,
                Err(BudgetError::Store(e)) => {
                    warn!(error = %e, kind = kind.as_str(), "could not reserve a read-along call; the list waits for its rhythm");
                    return;
                }
            }
        }
    }

    /// The athlete's Polar token, opened (for the sync and a backfill alike).
    pub(super) async fn open_token(&self, athlete: &AthleteUuid) -> Result<AccessToken, SyncError> {
        let stored = self
            .store
            .get_token(athlete)
            .await?
            .ok_or(SyncError::NoToken)?;
        self.cipher
            .open(athlete, &stored.sealed)
            .map_err(SyncError::Token)
    }
}

/// The most Polar calls a scheduled sync on a site with `mapping` can cost: one per list (the fan-out
/// spreads jobs by it, a worker batch reserves by it). Most cost less, as each list has its rhythm, and a
/// batch gives back what its jobs did not spend; a fan-out that counted on the average would queue jobs
/// the budget cannot run, and their deferrals would take the next window from the athletes waiting
/// longest.
pub fn scheduled_sync_calls(mapping: &Mapping) -> u64 {
    Plan::site_kinds(mapping).len() as u64
}

/// Nightly Recharge may lag its sleep: a webhook's night whose recharge is not there yet is asked for
/// again later, a few times.
fn recharge_retry(job: &SyncJob, step: &Step, fetched: &Fetched) -> Option<(SyncJob, u32)> {
    let awaited = match step {
        Step::Recharge(date) => vec![*date],
        Step::Recharges => Plan::awaited_recharges(job),
        _ => return None,
    };
    let missing: Vec<Target> = awaited
        .into_iter()
        .filter(|date| {
            !fetched
                .events
                .iter()
                .any(|e| e.key.record == RecordKey::Date(*date))
        })
        .map(|date| Target::Recharge { date })
        .collect();
    if missing.is_empty() || !fetched.broken.is_empty() || job.deferrals >= RECHARGE_MAX_RETRIES {
        return None;
    }
    let mut later = SyncJob::new(
        job.athlete.clone(),
        JobKind::Targeted,
        missing,
        job.enqueued_at,
    );
    later.deferrals = job.deferrals + 1;
    Some((later, RECHARGE_RETRY.num_seconds() as u32))
}

/// Keeps a delivered full-sync list's digest: every record of the answer is confirmed with its content.
fn confirm_list(cursors: &mut SyncCursors, step: &Step, digest: Option<ListDigest>) {
    if let Some(digest) = digest {
        cursors.confirmed_lists.insert(step.kind(), digest.value);
    }
}

fn log_broken(athlete: &AthleteUuid, step: &Step, broken: &[BrokenRecord]) {
    for record in broken {
        warn!(
            athlete = %athlete,
            kind = step.kind().as_str(),
            record = record.hint.as_deref().unwrap_or("?"),
            reason = %record.reason,
            outcome = "broken_record",
            "Polar sent a malformed record; skipped, retried next cycle"
        );
    }
}

/// Whether a full sync's job stays on the queue after this attempt: SQS retries a failure, and a
/// deferred or unfinished job comes back as a new message. (A webhook's job sets no marker: the fan-out's
/// full sync does not wait for it.)
fn stays_queued(job: &SyncJob, result: &Result<SyncReport, SyncError>) -> bool {
    job.kind != JobKind::Targeted
        && match result {
            Err(_) => true,
            Ok(report) => matches!(
                report.outcome,
                SyncOutcome::Deferred(_) | SyncOutcome::Unfinished(_)
            ),
        }
}

/// Whether a full sync finished after this full job was queued: a redelivered message, or a second job
/// for the athlete (the first-sync job and a fan-out's, a deferred one and a newer one). Running it
/// again would spend Polar budget to find nothing new; webhook jobs name records and always run.
fn redundant(job: &SyncJob, athlete: &Athlete) -> bool {
    job.kind != JobKind::Targeted
        && athlete
            .last_sync_at
            .is_some_and(|synced| synced > job.enqueued_at)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::ids::AthleteUuid;

    fn noon(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_full_job_is_redundant_only_after_a_later_full_sync() {
        let mut athlete = Athlete::new(athlete_uuid());
        let queued_at = noon(27);
        let job = |kind| SyncJob::new(athlete_uuid(), kind, Vec::new(), queued_at);
        assert!(
            !redundant(&job(JobKind::Scheduled), &athlete),
            "never synced"
        );
        athlete.last_sync_at = Some(queued_at);
        assert!(
            !redundant(&job(JobKind::Scheduled), &athlete),
            "synced as it was queued"
        );
        athlete.last_sync_at = Some(queued_at + Duration::seconds(1));
        assert!(redundant(&job(JobKind::Scheduled), &athlete));
        assert!(redundant(&job(JobKind::FirstSync), &athlete));
        assert!(
            !redundant(&job(JobKind::Targeted), &athlete),
            "webhook jobs name records a full sync may have missed"
        );
    }

    fn athlete_uuid() -> AthleteUuid {
        AthleteUuid::parse("a-1").unwrap()
    }

    #[test]
    fn a_clients_failure_names_its_service_once_and_stays_the_source() {
        let smartabase = SyncError::Smartabase(SmartabaseError::Timeout);
        assert_eq!(smartabase.to_string(), "Smartabase did not answer in time");
        assert_eq!(
            crate::error::with_causes(&smartabase),
            "Smartabase did not answer in time"
        );
        assert!(std::error::Error::source(&smartabase).is_some());
        let polar = SyncError::Polar(PolarError::Timeout);
        assert_eq!(polar.to_string(), "Polar did not answer in time");
        assert!(std::error::Error::source(&polar).is_some());
    }

    #[test]
    fn a_token_that_does_not_open_is_a_bug_whose_error_chain_never_shows_the_token() {
        use base64::Engine as _;
        let key = crate::config::EncryptionKey::from_base64(
            &base64::engine::general_purpose::STANDARD.encode([3u8; 32]),
        )
        .unwrap();
        let cipher = crate::crypto::TokenCipher::new(&key);
        let sealed = cipher
            .seal(&athlete_uuid(), &AccessToken::new("POLAR-TOKEN-xyz"))
            .unwrap();
        let other = AthleteUuid::parse("a-2").unwrap();
        let error = SyncError::Token(cipher.open(&other, &sealed).unwrap_err());

        let mut chain = vec![error.to_string()];
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            chain.push(cause.to_string());
            source = cause.source();
        }
        assert_eq!(
            chain.len(),
            2,
            "the cipher's error is kept as the source: {chain:?}"
        );
        for line in &chain {
            assert!(!line.contains("POLAR-TOKEN"), "{line}");
            assert!(!line.contains(sealed.as_str()), "{line}");
        }
        assert_eq!(error.disposition(), Disposition::Bug);
    }
}
