//! History backfill on link (design §3 `BACKFILL_DAYS`): once an athlete is linked, fetch what Polar
//! serves further back than the first sync read, window by window, oldest last.
//!
//! Only activity (365 days, 28-day ranges) and an enabled cardio load (180 days) reach further back than
//! the first sync: exercises are served for 30 days and the sleep, Nightly Recharge, alertness and 24/7
//! heart-rate lists for 28, all of which the first sync reads whole.
//!
//! The backfill is the lowest-priority work there is. It runs at the end of a full sync job that
//! delivered, under that job's athlete lock (so it races no other write for the athlete and delays no job
//! of theirs: their own sync is already done), at most [`WINDOWS_PER_JOB`] windows a job, and only while
//! the app-wide Polar budget is less than [`RateBudget::BACKFILL_SHARE`] used; otherwise it stops and the
//! athlete's next sync continues it. A thousand athletes linking at once therefore spread their history
//! over their syncs instead of taking the budget regular work needs.
//!
//! It writes through the sync's ledger and delivery: a record the ledger holds as confirmed is skipped
//! (whatever version it is, the regular sync owns it), anything else is created, or looked up first when
//! an earlier attempt left it pending. Progress ([`BackfillProgress`], kept with the sync cursors) moves
//! past a window only after Smartabase confirmed all of it, so a crash or a deferral resumes at the window
//! that was not finished, and a re-link of the same account finds its progress where it was.

use std::time::Instant;

use chrono::{DateTime, Days, NaiveDate, Utc};
use tracing::{info, warn};

use super::Connector;
use super::sync::{DAILY_HISTORY_DAYS, SyncCounts, SyncError, SyncOutcome, SyncReport};
use crate::budget::{BudgetError, CallPool, LimitFormula, RateBudget};
use crate::clock::Clock;
use crate::config::BackfillDays;
use crate::ids::{AccessToken, AthleteUuid, SmartabaseUserId};
use crate::mapping::MappedEvent;
use crate::model::{
    Athlete, AthleteStatus, BackfillEnd, BackfillProgress, DataKind, LedgerState, RecordKey,
    SyncCursors,
};
use crate::polar::{CardioLoadRange, DateRange, PolarApi, PolarError, Records};
use crate::queue::{JobKind, JobQueue, SyncJob};
use crate::smartabase::SmartabaseApi;
use crate::store::Store;

/// Windows (Polar calls) one job may spend on the backfill after its own sync: a year of activity takes
/// three syncs, and a job's neighbours in the worker's batch wait seconds, not minutes.
pub const WINDOWS_PER_JOB: usize = 6;

/// How many days back, today included, Polar serves `kind` through a date-range endpoint; `None` when the
/// first sync already reads everything Polar serves of it (reference §5).
pub fn polar_reach(kind: DataKind) -> Option<u32> {
    match kind {
        DataKind::Activity => Some(365),
        DataKind::CardioLoad => Some(180),
        DataKind::Training
        | DataKind::Sleep
        | DataKind::Recharge
        | DataKind::Alertness
        | DataKind::DailyHeartRate => None,
    }
}

/// The backfill of `kind` for an athlete linked on `linked_on`, or `None` when there is nothing beyond
/// the first sync to plan (`BACKFILL_DAYS=0`, or a kind Polar serves only as far back as the first sync
/// reads). The first sync read the 28 dates up to the link date in the athlete's own time zone; the
/// backfill starts at the oldest of them as a UTC date, so no time zone leaves a gap (a day it may share
/// with the first sync is skipped through the ledger).
pub fn plan(kind: DataKind, linked_on: NaiveDate, days: BackfillDays) -> Option<BackfillProgress> {
    let reach = polar_reach(kind)?;
    let days = i64::from(days.days().min(reach));
    if days == 0 {
        return None;
    }
    let next_to = days_before(linked_on, DAILY_HISTORY_DAYS - 1);
    let floor = days_before(linked_on, days - 1);
    Some(BackfillProgress {
        floor,
        next_to,
        oldest_delivered: None,
        finished: (days < DAILY_HISTORY_DAYS).then_some(BackfillEnd::Complete),
    })
}

fn days_before(date: NaiveDate, days: i64) -> NaiveDate {
    date.checked_sub_days(Days::new(days.max(0) as u64))
        .unwrap_or(NaiveDate::MIN)
}

/// What to ask Polar next for one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextWindow {
    /// This range (at most 28 days, newest not yet fetched first).
    Fetch(DateRange),
    /// Nothing left: every date down to the floor is done, or what is left has aged out of Polar's reach.
    Done,
}

/// The next window of `progress` for `kind` on `today` (UTC). Polar counts its reach from the athlete's
/// own date, at most a day either side of UTC's: `reach` dates up to UTC's today are within it for both.
pub fn next_window(kind: DataKind, progress: &BackfillProgress, today: NaiveDate) -> NextWindow {
    let Some(reach) = polar_reach(kind) else {
        return NextWindow::Done;
    };
    if progress.finished.is_some() {
        return NextWindow::Done;
    }
    let oldest_served = days_before(today, i64::from(reach) - 1);
    let oldest = progress.floor.max(oldest_served);
    if progress.next_to < oldest {
        return NextWindow::Done;
    }
    let from = days_before(progress.next_to, DateRange::MAX_DAYS - 1).max(oldest);
    DateRange::new(from, progress.next_to).map_or(NextWindow::Done, NextWindow::Fetch)
}

/// Moves `progress` past `window`, whose records Smartabase now holds; `oldest_found` is the oldest
/// record date Polar served in it. A first window without a record means Polar keeps nothing from before
/// the athlete registered: the kind is finished rather than asked again, window after empty window.
pub fn advance(
    progress: &mut BackfillProgress,
    window: DateRange,
    oldest_found: Option<NaiveDate>,
) {
    if oldest_found.is_none() && progress.oldest_delivered.is_none() {
        progress.finished = Some(BackfillEnd::NothingBeforeRegistration);
        return;
    }
    progress.oldest_delivered = match (progress.oldest_delivered, oldest_found) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    progress.next_to = days_before(window.from(), 1);
    if window.from() <= progress.floor {
        progress.finished = Some(BackfillEnd::Complete);
    }
}

/// How a backfill slice ended, for its log line.
#[derive(Debug, Default)]
struct Slice {
    counts: SyncCounts,
    windows: u64,
    stopped: Option<&'static str>,
}

/// The history backfill still to do for one athlete ([`Connector::backfill_left`]).
struct BackfillLeft {
    /// Enabled kinds with no plan yet, and their plans (a newly linked athlete, or a form enabled since).
    unplanned: Vec<(DataKind, BackfillProgress)>,
    /// Enabled kinds planned and not finished, in the cursors' order.
    unfinished: Vec<(DataKind, BackfillProgress)>,
}

impl<S, Q, P, B, C> Connector<S, Q, P, B, C>
where
    S: Store,
    Q: JobQueue,
    P: PolarApi,
    B: SmartabaseApi,
    C: Clock,
{
    /// After a full sync that delivered, and still under its lock: a slice of the athlete's backfill.
    /// The backfill never changes how the job itself ended; its failures wait for the next sync.
    pub(super) async fn backfill_after_sync(
        &self,
        job: &SyncJob,
        mut report: SyncReport,
        athlete: Athlete,
        deadline: Instant,
        pool: &CallPool,
    ) -> Result<SyncReport, SyncError> {
        if job.kind == JobKind::Targeted || self.settings.backfill_days == BackfillDays::NONE {
            return Ok(report);
        }
        let SyncOutcome::Synced(counts) = &mut report.outcome else {
            return Ok(report);
        };
        match self.backfill_slice(athlete, deadline, pool).await {
            Ok(slice) => {
                counts.backfilled += slice.counts.created + slice.counts.updated;
                counts.recovered += slice.counts.recovered;
                counts.broken += slice.counts.broken;
                counts.dropped_fields += slice.counts.dropped_fields;
                counts.polar_calls += slice.counts.polar_calls;
                counts.smartabase_calls += slice.counts.smartabase_calls;
                if slice.windows > 0 || slice.stopped.is_some() {
                    info!(
                        athlete = %job.athlete,
                        outcome = "backfill",
                        windows = slice.windows,
                        backfilled = slice.counts.created + slice.counts.updated,
                        stopped = slice.stopped.unwrap_or("-"),
                        "history backfill"
                    );
                }
            }
            Err(e) => {
                warn!(athlete = %job.athlete, error = %e, outcome = "backfill_failed", "history backfill stopped; the next sync resumes it");
            }
        }
        Ok(report)
    }

    /// Whether a backfill slice follows `job`'s sync of `athlete`, whose cursors the sync leaves as
    /// `cursors`: as [`Self::backfill_slice`] decides it, so the sync keeps its lock exactly then.
    pub(super) fn backfill_follows(
        &self,
        job: &SyncJob,
        athlete: &Athlete,
        cursors: &SyncCursors,
    ) -> bool {
        if job.kind == JobKind::Targeted || self.settings.backfill_days == BackfillDays::NONE {
            return false;
        }
        let (Some(_), Some(linked_at), AthleteStatus::Linked) = (
            athlete.smartabase_user_id,
            athlete.linked_at,
            athlete.status,
        ) else {
            return false;
        };
        // Planned even when the plan comes back finished: the slice stores it, once.
        let left = self.backfill_left(cursors, linked_at);
        !left.unplanned.is_empty() || !left.unfinished.is_empty()
    }

    /// What the history backfill has left for an athlete linked at `linked_at` whose cursors are
    /// `cursors`. The one selection [`Self::backfill_follows`] (does the sync keep its lock?),
    /// [`Self::plan_backfill`] and [`Self::backfill_slice`] all make.
    fn backfill_left(&self, cursors: &SyncCursors, linked_at: DateTime<Utc>) -> BackfillLeft {
        let enabled = |kind: &DataKind| self.mapping.is_enabled(*kind);
        BackfillLeft {
            unplanned: DataKind::ALL
                .into_iter()
                .filter(|kind| enabled(kind) && !cursors.backfill.contains_key(kind))
                .filter_map(|kind| {
                    plan(kind, linked_at.date_naive(), self.settings.backfill_days)
                        .map(|p| (kind, p))
                })
                .collect(),
            unfinished: cursors
                .backfill
                .iter()
                .filter(|(kind, p)| p.finished.is_none() && enabled(kind))
                .map(|(kind, p)| (*kind, p.clone()))
                .collect(),
        }
    }

    /// `athlete` as the sync just stored it.
    async fn backfill_slice(
        &self,
        athlete: Athlete,
        deadline: Instant,
        pool: &CallPool,
    ) -> Result<Slice, SyncError> {
        let mut slice = Slice::default();
        let uuid = &athlete.uuid.clone();
        let (Some(user), Some(linked_at), AthleteStatus::Linked) = (
            athlete.smartabase_user_id,
            athlete.linked_at,
            athlete.status,
        ) else {
            return Ok(slice);
        };
        let athlete = self.plan_backfill(athlete, linked_at).await?;
        let mut pending = self.backfill_left(&athlete.cursors, linked_at).unfinished;
        if pending.is_empty() {
            return Ok(slice);
        }
        let token = self.open_token(uuid).await?;
        let budget = RateBudget::for_backfill(&self.store, LimitFormula::POLAR);
        while let Some((kind, progress)) = pending.first_mut() {
            if slice.windows as usize >= WINDOWS_PER_JOB {
                break;
            }
            if Instant::now() >= deadline {
                slice.stopped = Some("deadline");
                break;
            }
            let now = self.now();
            let window = match next_window(*kind, progress, now.date_naive()) {
                NextWindow::Fetch(window) => window,
                NextWindow::Done => {
                    progress.finished = Some(BackfillEnd::Complete);
                    self.save_progress(&athlete, *kind, progress).await?;
                    pending.remove(0);
                    continue;
                }
            };
            match budget.reserve(1, now).await {
                Ok(_) => {}
                Err(BudgetError::Exhausted(_)) => {
                    slice.stopped = Some("budget kept for regular syncs");
                    break;
                }
                Err(BudgetError::Store(e)) => return Err(e.into()),
            }
            slice.counts.polar_calls += 1;
            slice.windows += 1;
            let fetched = match self.fetch_window(&token, *kind, window).await {
                Ok(fetched) => fetched,
                Err(PolarError::BadRequest { status: 400, .. }) => {
                    // Polar refuses the range as too old: it will not serve it later either.
                    warn!(athlete = %uuid, kind = kind.as_str(), from = %window.from(), "Polar refused a backfill window as out of range; the backfill of this type ends here");
                    progress.finished = Some(BackfillEnd::Complete);
                    self.save_progress(&athlete, *kind, progress).await?;
                    pending.remove(0);
                    continue;
                }
                Err(e) => {
                    if let PolarError::RateLimited {
                        retry_after_seconds,
                    } = e
                    {
                        self.polar_rate_limited(pool, retry_after_seconds).await;
                    }
                    // A dead token or missing consents are the regular sync's to find and report.
                    slice.stopped = Some("Polar did not serve the window");
                    warn!(athlete = %uuid, kind = kind.as_str(), error = %e, "backfill window not fetched; the next sync retries it");
                    break;
                }
            };
            slice.counts.broken += fetched.broken as u64;
            let oldest_found = fetched
                .events
                .iter()
                .filter_map(|e| match e.key.record {
                    RecordKey::Date(date) => Some(date),
                    _ => None,
                })
                .chain(fetched.broken_dates.iter().copied())
                .min();
            let delivered = self
                .deliver_unknown(uuid, user, fetched.events, &mut slice.counts, now, deadline)
                .await?;
            if !delivered {
                // Left pending: the next slice fetches this window again and looks those records up.
                slice.stopped = Some(if Instant::now() >= deadline {
                    "deadline"
                } else {
                    "Smartabase did not confirm every record"
                });
                break;
            }
            advance(progress, window, oldest_found);
            self.save_progress(&athlete, *kind, progress).await?;
            if let Some(end) = progress.finished {
                info!(
                    athlete = %uuid,
                    kind = kind.as_str(),
                    oldest_delivered = %progress.oldest_delivered.map_or("-".to_string(), |d| d.to_string()),
                    finished = end.as_str(),
                    outcome = "backfill_finished",
                    "history backfill of one data type finished"
                );
                pending.remove(0);
            }
        }
        Ok(slice)
    }

    /// Plans the backfill of every enabled kind that has none yet (a newly linked athlete, or an optional
    /// form enabled since), counted from the link date.
    async fn plan_backfill(
        &self,
        athlete: Athlete,
        linked_at: DateTime<Utc>,
    ) -> Result<Athlete, SyncError> {
        let planned = self.backfill_left(&athlete.cursors, linked_at).unplanned;
        if planned.is_empty() {
            return Ok(athlete);
        }
        Ok(self
            .update_athlete(&athlete.uuid, |a| {
                if a.same_link(&athlete) {
                    for (kind, progress) in &planned {
                        a.cursors
                            .backfill
                            .entry(*kind)
                            .or_insert_with(|| progress.clone());
                    }
                }
            })
            .await?)
    }

    /// Stores one kind's progress, unless the athlete re-linked meanwhile (a new link plans afresh).
    async fn save_progress(
        &self,
        athlete: &Athlete,
        kind: DataKind,
        progress: &BackfillProgress,
    ) -> Result<(), SyncError> {
        self.update_athlete(&athlete.uuid, |a| {
            if a.same_link(athlete) {
                a.cursors.backfill.insert(kind, progress.clone());
            }
        })
        .await?;
        Ok(())
    }

    async fn fetch_window(
        &self,
        token: &AccessToken,
        kind: DataKind,
        window: DateRange,
    ) -> Result<Window, PolarError> {
        let m = &self.mapping;
        match kind {
            DataKind::Activity => {
                let records = self.polar.activities_range(token, window).await?;
                Ok(Window::of(records, |a| m.activity(a)))
            }
            DataKind::CardioLoad => {
                let records = self
                    .polar
                    .cardio_loads(token, CardioLoadRange::Dates(window))
                    .await?;
                Ok(Window::of(records, |c| m.cardio_load(c)))
            }
            // `polar_reach` plans no other kind.
            _ => Ok(Window::default()),
        }
    }

    /// Delivers the records the ledger does not hold as confirmed (a confirmed one may be newer than this
    /// fetch: the regular sync owns it). `true` when Smartabase confirmed all of them.
    async fn deliver_unknown(
        &self,
        uuid: &AthleteUuid,
        user: SmartabaseUserId,
        events: Vec<MappedEvent>,
        counts: &mut SyncCounts,
        now: DateTime<Utc>,
        deadline: Instant,
    ) -> Result<bool, SyncError> {
        let keys: Vec<_> = events.iter().map(|e| e.key.clone()).collect();
        let known = self.store.ledger_get(uuid, &keys).await?;
        let unknown: Vec<MappedEvent> = events
            .into_iter()
            .filter(|e| {
                known
                    .get(&e.key)
                    .is_none_or(|entry| entry.state != LedgerState::Confirmed)
            })
            .collect();
        // No confirmed list holds what the ledger does not hold as confirmed: nothing to take out.
        let mut delivery = self
            .deliver(uuid, user, unknown, counts, None, now, deadline)
            .await?;
        // Unconfirmed writes of an earlier slice are looked up before they are sent again.
        let pending = std::mem::take(&mut delivery.pending);
        if !delivery.unfinished && !pending.is_empty() {
            self.resolve_pending(uuid, user, pending, counts, &mut delivery, now, deadline)
                .await?;
        } else if !pending.is_empty() {
            delivery.unfinished = true;
        }
        Ok(delivery.failures.is_empty() && !delivery.unfinished)
    }
}

/// One window's records, mapped.
#[derive(Default)]
struct Window {
    events: Vec<MappedEvent>,
    broken: usize,
    broken_dates: Vec<NaiveDate>,
}

impl Window {
    fn of<T>(records: Records<T>, map: impl Fn(&T) -> MappedEvent) -> Self {
        Self {
            events: records.records.iter().map(map).collect(),
            broken: records.broken.len(),
            broken_dates: records.broken.iter().filter_map(|b| b.date).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn year() -> BackfillDays {
        BackfillDays::DEFAULT
    }

    fn windows_until_done(
        kind: DataKind,
        mut progress: BackfillProgress,
        today: NaiveDate,
    ) -> Vec<(NaiveDate, NaiveDate)> {
        let mut seen = Vec::new();
        while let NextWindow::Fetch(window) = next_window(kind, &progress, today) {
            seen.push((window.from(), window.to()));
            advance(&mut progress, window, Some(window.from()));
            assert!(seen.len() < 100, "the backfill never ends");
        }
        seen
    }

    #[test]
    fn a_year_of_activity_is_asked_for_in_28_day_windows_from_the_first_syncs_oldest_day_back() {
        let linked = date("2026-12-05");
        let progress = plan(DataKind::Activity, linked, year()).unwrap();
        // The first sync read the 28 dates up to the link date.
        assert_eq!(progress.next_to, date("2026-11-08"));
        assert_eq!(progress.floor, date("2025-12-06"));
        let windows = windows_until_done(DataKind::Activity, progress, linked);
        assert_eq!(windows.len(), 13);
        assert_eq!(windows[0], (date("2026-10-12"), date("2026-11-08")));
        // Contiguous, oldest last, none longer than Polar accepts, and nothing older than Polar serves.
        for pair in windows.windows(2) {
            assert_eq!(pair[1].1.succ_opt().unwrap(), pair[0].0);
        }
        assert!(
            windows
                .iter()
                .all(|(from, to)| (*to - *from).num_days() < 28)
        );
        let oldest = windows.last().unwrap().0;
        assert_eq!(oldest, date("2025-12-06"), "365 dates up to the link date");
    }

    #[test]
    fn cardio_load_goes_back_180_days_and_backfill_days_clip_every_type() {
        let linked = date("2026-12-05");
        let cardio = plan(DataKind::CardioLoad, linked, year()).unwrap();
        assert_eq!(linked - cardio.floor, chrono::Duration::days(179));
        let windows = windows_until_done(DataKind::CardioLoad, cardio, linked);
        assert_eq!(windows.last().unwrap().0, date("2026-06-09"));
        assert_eq!(windows.len(), 6);

        let ninety = BackfillDays::parse("90").unwrap();
        let activity = plan(DataKind::Activity, linked, ninety).unwrap();
        assert_eq!(linked - activity.floor, chrono::Duration::days(89));
        let windows = windows_until_done(DataKind::Activity, activity, linked);
        assert_eq!(windows.len(), 3);
        assert_eq!(windows.last().unwrap().0, date("2026-09-07"));
    }

    #[test]
    fn nothing_is_planned_without_backfill_days_or_for_types_the_first_sync_reads_whole() {
        let linked = date("2026-12-05");
        assert_eq!(plan(DataKind::Activity, linked, BackfillDays::NONE), None);
        for kind in [
            DataKind::Training,
            DataKind::Sleep,
            DataKind::Recharge,
            DataKind::Alertness,
            DataKind::DailyHeartRate,
        ] {
            assert_eq!(plan(kind, linked, year()), None, "{kind:?}");
        }
        // Fewer days than the first sync read: planned as already finished, no call.
        let week = plan(
            DataKind::Activity,
            linked,
            BackfillDays::parse("7").unwrap(),
        )
        .unwrap();
        assert_eq!(week.finished, Some(BackfillEnd::Complete));
        assert_eq!(
            next_window(DataKind::Activity, &week, linked),
            NextWindow::Done
        );
    }

    #[test]
    fn an_empty_first_window_means_polar_keeps_nothing_before_registration_and_stops_the_type() {
        let linked = date("2026-12-05");
        let mut progress = plan(DataKind::Activity, linked, year()).unwrap();
        let NextWindow::Fetch(window) = next_window(DataKind::Activity, &progress, linked) else {
            panic!("a first window");
        };
        advance(&mut progress, window, None);
        assert_eq!(
            progress.finished,
            Some(BackfillEnd::NothingBeforeRegistration)
        );
        assert_eq!(progress.oldest_delivered, None);
        assert_eq!(
            next_window(DataKind::Activity, &progress, linked),
            NextWindow::Done
        );
    }

    #[test]
    fn an_empty_window_after_history_was_found_is_a_gap_and_the_backfill_goes_on() {
        let linked = date("2026-12-05");
        let mut progress = plan(DataKind::Activity, linked, year()).unwrap();
        let first = match next_window(DataKind::Activity, &progress, linked) {
            NextWindow::Fetch(w) => w,
            NextWindow::Done => panic!("a first window"),
        };
        advance(&mut progress, first, Some(date("2026-10-20")));
        let second = match next_window(DataKind::Activity, &progress, linked) {
            NextWindow::Fetch(w) => w,
            NextWindow::Done => panic!("a second window"),
        };
        assert_eq!(second.to(), first.from().pred_opt().unwrap());
        advance(&mut progress, second, None);
        assert_eq!(progress.finished, None);
        assert_eq!(progress.oldest_delivered, Some(date("2026-10-20")));
        assert_eq!(progress.next_to, second.from().pred_opt().unwrap());
    }

    #[test]
    fn a_backfill_resumed_months_later_asks_only_for_what_polar_still_serves() {
        let linked = date("2026-12-05");
        let mut progress = plan(DataKind::Activity, linked, year()).unwrap();
        let first = match next_window(DataKind::Activity, &progress, linked) {
            NextWindow::Fetch(w) => w,
            NextWindow::Done => panic!("a first window"),
        };
        advance(&mut progress, first, Some(first.from()));
        // Two hundred days later the oldest dates are beyond Polar's 365 days.
        let later = linked + chrono::Duration::days(200);
        let windows = windows_until_done(DataKind::Activity, progress.clone(), later);
        let oldest = windows.last().unwrap().0;
        assert!(later - oldest <= chrono::Duration::days(364), "{oldest}");
        // A year later nothing is left to ask for.
        let much_later = linked + chrono::Duration::days(400);
        assert_eq!(
            next_window(DataKind::Activity, &progress, much_later),
            NextWindow::Done
        );
    }

    #[test]
    fn progress_is_stored_with_the_cursors_and_read_back_by_older_and_newer_code() {
        let mut cursors = crate::model::SyncCursors::default();
        assert_eq!(
            serde_json::to_string(&cursors).unwrap(),
            r#"{"exercises_uploaded_since":null}"#
        );
        cursors.backfill.insert(
            DataKind::CardioLoad,
            plan(DataKind::CardioLoad, date("2026-12-05"), year()).unwrap(),
        );
        let json = serde_json::to_string(&cursors).unwrap();
        assert!(json.contains(r#""backfill":{"cardio_load":{"#), "{json}");
        let back: crate::model::SyncCursors = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cursors);
        // Cursors written before the backfill existed read as "not planned yet".
        let old: crate::model::SyncCursors =
            serde_json::from_str(r#"{"exercises_uploaded_since":null}"#).unwrap();
        assert!(old.backfill.is_empty());
    }
}
