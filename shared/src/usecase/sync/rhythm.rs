//! Which of Polar's 28-day lists a scheduled sync reads: each data type on its own rhythm.
//!
//! Every list still reads the whole of Polar's window, so a record uploaded weeks late or revised after
//! delivery lands whenever its type is next read; the rhythm only decides how often that is:
//!
//! - without webhooks, trainings every sync (they must land within one interval); the day's activity
//!   and 24/7 heart rate, revised all day, every [`DAY_RHYTHM`]; the night types every
//!   [`NIGHT_RHYTHM`], and sleep every sync while today's night (the athlete's local date, Polar's own
//!   date) of an athlete who tracks sleep is not in yet, its recharge likewise once the sleep is. A list
//!   that brings a new record means the watch just synced, so the other lists are read in the same
//!   job ([`Rhythm::after_news`]);
//! - with webhooks, each announced record's job reads its type's list (one call, like the single
//!   record), and a scheduled sync reads only the lists no job read for [`RECONCILIATION_INTERVAL`],
//!   and the Nightly Recharge, which no webhook announces, every [`NIGHT_RHYTHM`] while today's night
//!   is in without it.
//!
//! A list whose read was not delivered in full (a broken record, a failed write) keeps its old time and
//! is read again at the next sync.

use chrono::{DateTime, Duration, NaiveDate, Timelike as _, Utc};

use crate::model::{DataKind, SyncCursors};

/// With webhooks, each list is read at least this often (the safety net for a missed delivery).
pub const RECONCILIATION_INTERVAL: Duration = Duration::hours(24);
/// Without webhooks: daily activity and 24/7 heart rate, which Polar revises all day.
pub const DAY_RHYTHM: Duration = Duration::hours(3);
/// Without webhooks: sleep, Nightly Recharge, alertness and cardio load once today's is in (a night is
/// rarely revised, and a revision or a late night lands within this).
pub const NIGHT_RHYTHM: Duration = Duration::hours(6);
/// Today's night is looked for from this local hour on: a night ends in the morning (one that ends
/// earlier lands with the night rhythm).
pub const MORNING_HOUR: u32 = 4;
/// An athlete whose newest night is older than this does not sleep with the watch (or is away): their
/// sleep is read on [`NIGHT_RHYTHM`] alone, not every sync.
pub const TRACKING_DAYS: i64 = 2;
/// With webhooks, today's Nightly Recharge is looked for every [`NIGHT_RHYTHM`] once today's night is in
/// if the athlete had one within this many days: Polar leaves a night without one now and then (too
/// short, too restless), and no webhook announces a recharge, so two such nights in a row must not make
/// the next one wait for the daily reconciliation. Four reads a day at most, only on such days.
pub const RECHARGE_TRACKING_DAYS: i64 = 14;

/// How the athlete's records reach the connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    /// Scheduled syncs at this interval, nothing else.
    Polling(Duration),
    /// Webhooks announce records; scheduled syncs reconcile (at this interval at the most).
    Webhooks(Duration),
}

impl Cadence {
    fn interval(self) -> Duration {
        match self {
            Self::Polling(i) | Self::Webhooks(i) => i,
        }
    }
}

/// One athlete's rhythm at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Rhythm<'a> {
    cursors: &'a SyncCursors,
    now: DateTime<Utc>,
    cadence: Cadence,
    linked_at: Option<DateTime<Utc>>,
}

impl<'a> Rhythm<'a> {
    /// The rhythm of an athlete with `cursors` at `now`.
    pub fn new(cursors: &'a SyncCursors, now: DateTime<Utc>, cadence: Cadence) -> Self {
        Self {
            cursors,
            now,
            cadence,
            linked_at: None,
        }
    }

    /// The same rhythm for an athlete linked at `linked_at`: in their first `TRACKING_DAYS` nobody
    /// knows yet whether they sleep with the watch, so today's night is looked for as if they did.
    pub fn linked_at(self, linked_at: Option<DateTime<Utc>>) -> Self {
        Self { linked_at, ..self }
    }

    /// Whether a scheduled sync now reads `kind`'s list.
    pub fn due(&self, kind: DataKind) -> bool {
        let Some(last) = self.cursors.lists.get(&kind) else {
            return true;
        };
        // A sync a little early (the fan-out's spread, a late previous job) still counts as on time, so
        // syncs at the hour marks read a 3-hour type every third sync, not every fourth.
        let on_time = |period: Duration| self.now - last.at + self.cadence.interval() / 2 >= period;
        match self.cadence {
            Cadence::Webhooks(_) => on_time(self.reconciliation_period(kind)),
            Cadence::Polling(_) => match kind {
                DataKind::Training => true,
                DataKind::Activity | DataKind::DailyHeartRate => on_time(DAY_RHYTHM),
                DataKind::Sleep => on_time(NIGHT_RHYTHM) || self.awaited(DataKind::Sleep),
                DataKind::Recharge => {
                    on_time(NIGHT_RHYTHM)
                        || (self.has_today(DataKind::Sleep) && self.awaited(DataKind::Recharge))
                }
                DataKind::CardioLoad | DataKind::Alertness => on_time(NIGHT_RHYTHM),
            },
        }
    }

    /// Without webhooks, a list that brought a new record (the watch just synced, and Polar revised the
    /// day's load and heart rate with it) makes the site's other lists due in the same job unless read
    /// within the last interval; with webhooks each record is announced, so nothing follows.
    pub fn after_news(&self, kind: DataKind) -> bool {
        matches!(self.cadence, Cadence::Polling(_))
            && self
                .cursors
                .lists
                .get(&kind)
                .is_none_or(|last| self.now - last.at >= self.cadence.interval())
    }

    /// When the next scheduled sync is due: the interval without webhooks; with them, when the oldest
    /// of `kinds`' lists reaches [`RECONCILIATION_INTERVAL`] (webhook jobs read lists too, so a steady
    /// flow of deliveries keeps pushing it out), never sooner than the interval.
    pub fn next_due(&self, kinds: &[DataKind]) -> DateTime<Utc> {
        let soonest = self.now + self.cadence.interval();
        match self.cadence {
            Cadence::Polling(_) => soonest,
            Cadence::Webhooks(_) => kinds
                .iter()
                .map(|k| {
                    self.cursors
                        .lists
                        .get(k)
                        .map_or(self.now, |last| last.at + self.reconciliation_period(*k))
                })
                .min()
                .unwrap_or(self.now + RECONCILIATION_INTERVAL)
                .max(soonest),
        }
    }

    /// The athlete's local time now (UTC until a record told their offset).
    fn local_now(&self) -> chrono::NaiveDateTime {
        let offset = Duration::minutes(i64::from(self.cursors.utc_offset_minutes.unwrap_or(0)));
        (self.now + offset).naive_utc()
    }

    fn local_today(&self) -> NaiveDate {
        self.local_now().date()
    }

    fn newest(&self, kind: DataKind) -> Option<NaiveDate> {
        self.cursors.lists.get(&kind).and_then(|l| l.newest)
    }

    fn has_today(&self, kind: DataKind) -> bool {
        self.newest(kind).is_some_and(|d| d >= self.local_today())
    }

    /// With webhooks, how often `kind`'s list is read at the least: [`RECONCILIATION_INTERVAL`], but
    /// [`NIGHT_RHYTHM`] for a Nightly Recharge while today's night is in without it (Polar may compute
    /// it hours after the sleep, after a webhook job's retries, and no webhook announces it).
    fn reconciliation_period(&self, kind: DataKind) -> Duration {
        let recharge_awaited = kind == DataKind::Recharge
            && self.has_today(DataKind::Sleep)
            && self.awaited_within(DataKind::Recharge, RECHARGE_TRACKING_DAYS);
        if recharge_awaited {
            NIGHT_RHYTHM
        } else {
            RECONCILIATION_INTERVAL
        }
    }

    /// Today's record of `kind` is not in yet, it is morning or later, and the athlete had one within
    /// `TRACKING_DAYS`.
    fn awaited(&self, kind: DataKind) -> bool {
        self.awaited_within(kind, TRACKING_DAYS)
    }

    /// [`Self::awaited`] for an athlete who had one within `days` (a new athlete still only in their
    /// first `TRACKING_DAYS`).
    fn awaited_within(&self, kind: DataKind, days: i64) -> bool {
        let local = self.local_now();
        let today = local.date();
        let tracking = Duration::days(days);
        let new_athlete = self
            .linked_at
            .is_some_and(|at| self.now - at <= Duration::days(TRACKING_DAYS));
        // Without a known offset it may be morning somewhere in the athlete's day at any UTC hour.
        let morning = self.cursors.utc_offset_minutes.is_none() || local.hour() >= MORNING_HOUR;
        morning
            && match self.newest(kind) {
                Some(newest) => newest < today && today - newest <= tracking,
                None => new_athlete,
            }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;
    use crate::model::ListRead;

    const HOUR: Duration = Duration::hours(1);

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
    }

    fn date(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
    }

    fn read(kind: DataKind, at: DateTime<Utc>, newest: Option<NaiveDate>) -> (DataKind, ListRead) {
        (kind, ListRead { at, newest })
    }

    fn cursors(lists: &[(DataKind, ListRead)], offset: Option<i32>) -> SyncCursors {
        SyncCursors {
            lists: lists.iter().copied().collect(),
            utc_offset_minutes: offset,
            ..SyncCursors::default()
        }
    }

    fn due_at(cursors: &SyncCursors, now: DateTime<Utc>, cadence: Cadence) -> Vec<DataKind> {
        DataKind::ALL
            .into_iter()
            .filter(|k| Rhythm::new(cursors, now, cadence).due(*k))
            .collect()
    }

    #[test]
    fn a_type_never_read_is_due_whatever_the_cadence() {
        let none = SyncCursors::default();
        for cadence in [Cadence::Polling(HOUR), Cadence::Webhooks(HOUR)] {
            assert_eq!(due_at(&none, at(27, 9), cadence), DataKind::ALL);
        }
    }

    #[test]
    fn hourly_polling_reads_trainings_every_sync_and_the_day_every_third() {
        // Read at 09:00 (UTC athlete); today's night is in.
        let c = cursors(
            &DataKind::ALL.map(|k| read(k, at(27, 9), Some(date(27)))),
            Some(0),
        );
        let polling = Cadence::Polling(HOUR);
        assert_eq!(due_at(&c, at(27, 10), polling), [DataKind::Training]);
        assert_eq!(due_at(&c, at(27, 11), polling), [DataKind::Training]);
        assert_eq!(
            due_at(&c, at(27, 12), polling),
            [
                DataKind::Training,
                DataKind::Activity,
                DataKind::DailyHeartRate
            ]
        );
        assert_eq!(
            due_at(&c, at(27, 15), polling),
            DataKind::ALL,
            "the night types every six hours"
        );
    }

    #[test]
    fn sleep_is_read_every_sync_until_todays_night_is_in_in_the_athletes_time_zone() {
        // An athlete at UTC-8 whose newest night is the 26th; their 27th's morning (04:00) is 12:00 UTC.
        let lists = [
            read(DataKind::Sleep, at(27, 7), Some(date(26))),
            read(DataKind::Recharge, at(27, 7), Some(date(26))),
        ];
        let west = cursors(&lists, Some(-480));
        let polling = Cadence::Polling(HOUR);
        let sleep_due = |c: &SyncCursors, now| Rhythm::new(c, now, polling).due(DataKind::Sleep);
        assert!(!sleep_due(&west, at(27, 12) - Duration::minutes(1)));
        assert!(sleep_due(&west, at(27, 12)));
        assert!(
            !Rhythm::new(&west, at(27, 12), polling).due(DataKind::Recharge),
            "the recharge waits for its sleep"
        );
        // Once the 27th's night is in, the recharge is awaited instead, and sleep rests.
        let found = cursors(
            &[
                read(DataKind::Sleep, at(27, 15), Some(date(27))),
                read(DataKind::Recharge, at(27, 15), Some(date(26))),
            ],
            Some(-480),
        );
        assert!(!sleep_due(&found, at(27, 16)));
        assert!(Rhythm::new(&found, at(27, 16), polling).due(DataKind::Recharge));
    }

    #[test]
    fn an_athlete_who_does_not_sleep_with_the_watch_costs_no_hourly_sleep_read() {
        let away = cursors(&[read(DataKind::Sleep, at(27, 9), Some(date(20)))], Some(0));
        let polling = Cadence::Polling(HOUR);
        assert!(!Rhythm::new(&away, at(27, 10), polling).due(DataKind::Sleep));
        assert!(Rhythm::new(&away, at(27, 15), polling).due(DataKind::Sleep));
        let never = cursors(&[read(DataKind::Sleep, at(27, 9), None)], Some(0));
        assert!(!Rhythm::new(&never, at(27, 10), polling).due(DataKind::Sleep));
        // Linked yesterday: their habits are not known yet, so today's night is looked for, at any
        // hour while no record told their time zone.
        let new = Rhythm::new(&never, at(27, 10), polling).linked_at(Some(at(26, 10)));
        assert!(new.due(DataKind::Sleep));
        let unknown_zone = cursors(&[read(DataKind::Sleep, at(27, 0), None)], None);
        let new = Rhythm::new(&unknown_zone, at(27, 1), polling).linked_at(Some(at(26, 10)));
        assert!(new.due(DataKind::Sleep));
    }

    #[test]
    fn with_webhooks_a_list_read_by_a_webhook_job_today_waits_a_day() {
        let c = cursors(
            &[
                read(DataKind::Training, at(27, 9), None),
                read(DataKind::Activity, at(26, 20), Some(date(26))),
                read(DataKind::Sleep, at(26, 7), Some(date(26))),
                read(DataKind::Recharge, at(26, 7), Some(date(26))),
            ],
            Some(0),
        );
        let hooks = Cadence::Webhooks(HOUR);
        let core = [
            DataKind::Training,
            DataKind::Activity,
            DataKind::Sleep,
            DataKind::Recharge,
        ];
        let due: Vec<_> = core
            .into_iter()
            .filter(|k| Rhythm::new(&c, at(27, 7), hooks).due(*k))
            .collect();
        assert_eq!(due, [DataKind::Sleep, DataKind::Recharge]);
        // The next reconciliation: when the oldest list is a day old, not sooner than the interval.
        assert_eq!(Rhythm::new(&c, at(27, 6), hooks).next_due(&core), at(27, 7));
        assert_eq!(Rhythm::new(&c, at(27, 7), hooks).next_due(&core), at(27, 8));
        assert_eq!(
            Rhythm::new(&c, at(27, 7), Cadence::Polling(HOUR)).next_due(&core),
            at(27, 8)
        );
    }

    #[test]
    fn with_webhooks_a_recharge_polar_computes_hours_after_its_night_is_looked_for_every_six_hours()
    {
        let hooks = Cadence::Webhooks(HOUR);
        let core = [
            DataKind::Training,
            DataKind::Activity,
            DataKind::Sleep,
            DataKind::Recharge,
        ];
        // This morning's night came by webhook at 07:00; its job (and its retries) did not find the
        // recharge, last read at 08:30.
        let waiting = cursors(
            &[
                read(DataKind::Training, at(27, 7), None),
                read(DataKind::Activity, at(27, 7), Some(date(27))),
                read(DataKind::Sleep, at(27, 7), Some(date(27))),
                read(DataKind::Recharge, at(27, 8) + HOUR / 2, Some(date(26))),
            ],
            Some(0),
        );
        let due = |c: &SyncCursors, now| Rhythm::new(c, now, hooks).due(DataKind::Recharge);
        assert!(!due(&waiting, at(27, 12)));
        assert!(due(&waiting, at(27, 14)), "six hours after its last read");
        assert_eq!(
            Rhythm::new(&waiting, at(27, 9), hooks).next_due(&core),
            at(27, 14) + HOUR / 2
        );
        // Once it is in, a day as for every list.
        let mut found = waiting.clone();
        found.lists.extend([read(
            DataKind::Recharge,
            at(27, 8) + HOUR / 2,
            Some(date(27)),
        )]);
        assert!(!due(&found, at(27, 14)));
        assert_eq!(
            Rhythm::new(&found, at(27, 9), hooks).next_due(&core),
            at(28, 7)
        );
    }

    #[test]
    fn with_webhooks_a_recharge_after_nights_without_one_is_still_looked_for_every_six_hours() {
        let hooks = Cadence::Webhooks(HOUR);
        // This morning's night is in; Polar left the two nights before without a recharge.
        let after_gap = |newest: u32| {
            cursors(
                &[
                    read(DataKind::Sleep, at(27, 7), Some(date(27))),
                    read(DataKind::Recharge, at(27, 7), Some(date(newest))),
                ],
                Some(0),
            )
        };
        let due = |c: &SyncCursors, now| Rhythm::new(c, now, hooks).due(DataKind::Recharge);
        let gap = after_gap(24);
        assert!(!due(&gap, at(27, 12)));
        assert!(due(&gap, at(27, 13)), "six hours after its last read");
        assert_eq!(
            Rhythm::new(&gap, at(27, 8), hooks).next_due(&[DataKind::Recharge]),
            at(27, 13)
        );
        // A watch that has computed none for longer than `RECHARGE_TRACKING_DAYS`: the daily reconciliation.
        let stopped = after_gap(12);
        assert!(!due(&stopped, at(27, 13)));
        assert_eq!(
            Rhythm::new(&stopped, at(27, 8), hooks).next_due(&[DataKind::Recharge]),
            at(28, 7)
        );
        // Without webhooks such an athlete's recharge keeps the six-hour rhythm, not every sync.
        let polling = |now| Rhythm::new(&gap, now, Cadence::Polling(HOUR)).due(DataKind::Recharge);
        assert!(!polling(at(27, 8)));
        assert!(polling(at(27, 13)));
    }

    #[test]
    fn news_in_one_list_brings_the_other_lists_along_only_when_polling() {
        let c = cursors(
            &[
                read(DataKind::Sleep, at(27, 9), Some(date(27))),
                read(DataKind::Recharge, at(27, 6), Some(date(26))),
            ],
            Some(0),
        );
        let polling = Rhythm::new(&c, at(27, 9), Cadence::Polling(HOUR));
        assert!(!polling.after_news(DataKind::Sleep), "read this very hour");
        assert!(polling.after_news(DataKind::Recharge));
        assert!(polling.after_news(DataKind::Activity));
        assert!(
            polling.after_news(DataKind::CardioLoad),
            "Polar revises the day's load with a training"
        );
        let hooks = Rhythm::new(&c, at(27, 9), Cadence::Webhooks(HOUR));
        assert!(!hooks.after_news(DataKind::Recharge));
    }
}
