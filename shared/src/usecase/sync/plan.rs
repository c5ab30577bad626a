//! Which Polar calls a job makes: a first sync reads every list whole, a scheduled sync the lists
//! whose rhythm has come (`rhythm`), a webhook's job its record's list (or the record, outside the
//! list's 28 days).

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};

use super::rhythm::Rhythm;
use crate::mapping::{MappedEvent, Mapping};
use crate::model::{DataKind, ListRead, RecordKey, SyncCursors};
use crate::polar::{CardioLoadRange, DateRange};
use crate::queue::{JobKind, SyncJob, Target};

/// One fetch of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Exercises {
        uploaded_since: Option<DateTime<Utc>>,
    },
    /// Polar's 28-day list: whatever date a record has, it is read until it ages out of Polar's window.
    Activities,
    Activity(NaiveDate),
    Sleeps,
    Sleep(NaiveDate),
    Recharges,
    Recharge(NaiveDate),
    /// Cardio load of these days (the full sync: Polar's last 28 days).
    CardioLoads(CardioLoadRange),
    /// SleepWise alertness periods ending on these local dates (`None`: Polar's last 28 days).
    Alertness(Option<DateRange>),
    /// 24/7 heart rate of these days.
    DailyHeartRates(DateRange),
    /// 24/7 heart rate of one day (a webhook's `date`).
    DailyHeartRate(NaiveDate),
}

impl Step {
    pub(super) fn kind(&self) -> DataKind {
        match self {
            Self::Exercises { .. } => DataKind::Training,
            Self::Activities | Self::Activity(_) => DataKind::Activity,
            Self::Sleeps | Self::Sleep(_) => DataKind::Sleep,
            Self::Recharges | Self::Recharge(_) => DataKind::Recharge,
            Self::CardioLoads(_) => DataKind::CardioLoad,
            Self::Alertness(_) => DataKind::Alertness,
            Self::DailyHeartRates(_) | Self::DailyHeartRate(_) => DataKind::DailyHeartRate,
        }
    }

    /// The read of `kind`'s whole list: Polar's 28-day lists (exercises by upload time), and for 24/7
    /// heart rate, which has only a range, the 28 dates up to tomorrow (UTC) so that today is in it in
    /// every time zone.
    pub(super) fn list(kind: DataKind, cursors: &SyncCursors, today: NaiveDate) -> Option<Self> {
        Some(match kind {
            DataKind::Training => Self::Exercises {
                uploaded_since: cursors.exercises_uploaded_since,
            },
            DataKind::Activity => Self::Activities,
            DataKind::Sleep => Self::Sleeps,
            DataKind::Recharge => Self::Recharges,
            DataKind::CardioLoad => Self::CardioLoads(CardioLoadRange::Recent),
            DataKind::Alertness => Self::Alertness(None),
            DataKind::DailyHeartRate => Self::DailyHeartRates(heart_rate_window(today)?),
        })
    }

    /// Whether this step reads its type's whole list (and so counts for the rhythm).
    pub(super) fn is_list(&self) -> bool {
        matches!(
            self,
            Self::Exercises { .. }
                | Self::Activities
                | Self::Sleeps
                | Self::Recharges
                | Self::CardioLoads(CardioLoadRange::Recent)
                | Self::Alertness(None)
                | Self::DailyHeartRates(_)
        )
    }

    /// Moves the cursors of a fully delivered step: a list read counts for its type's rhythm (with the
    /// newest date it held, and the athlete's UTC offset if its records told it), and exercises are
    /// listed by upload time, so everything uploaded before this sync is delivered.
    pub(super) fn advance(
        &self,
        cursors: &mut SyncCursors,
        now: DateTime<Utc>,
        (newest, utc_offset_minutes): Newest,
    ) {
        // To the millisecond: a clock's nanoseconds cost the athlete item 53 bytes with all seven types,
        // taking it past 1 KB (two write units a write); a read stamped up to 1 ms early changes nothing.
        let now = now.trunc_subsecs(3);
        if let Self::Exercises { .. } = self {
            cursors.exercises_uploaded_since = Some(now);
        }
        if self.is_list() {
            if utc_offset_minutes.is_some() {
                cursors.utc_offset_minutes = utc_offset_minutes;
            }
            cursors
                .lists
                .insert(self.kind(), ListRead { at: now, newest });
        }
    }

    /// A list read that did not deliver in full (a broken record, a failed call or write, an announced
    /// record missing) makes its type due at the next sync, whatever its rhythm.
    pub(super) fn forget(&self, cursors: &mut SyncCursors) {
        if self.is_list() {
            cursors.lists.remove(&self.kind());
        }
    }
}

/// What a list read tells the rhythm: the newest daily date it held, and the athlete's UTC offset in
/// minutes if its records told it.
pub(super) type Newest = (Option<NaiveDate>, Option<i32>);

/// The newest daily date among `events` (their Polar dates), for the rhythm.
pub(super) fn newest_date(events: &[MappedEvent]) -> Option<NaiveDate> {
    events
        .iter()
        .filter_map(|e| match e.key.record {
            RecordKey::Date(date) => Some(date),
            _ => None,
        })
        .max()
}

/// The 28 dates a full sync reads 24/7 heart rate for: up to tomorrow (UTC), which is today east of
/// UTC (up to +14:00); west of UTC the oldest local date of Polar's window is read by the previous
/// days' syncs.
fn heart_rate_window(today: NaiveDate) -> Option<DateRange> {
    let to = today.succ_opt()?;
    let from = to.checked_sub_days(chrono::Days::new(DateRange::MAX_DAYS as u64 - 1))?;
    DateRange::new(from, to)
}

/// Whether Polar's 28-day list holds `date` in every time zone: the athlete's local today is at most a
/// day from UTC's, so the 27 dates up to UTC's today and tomorrow are in it.
fn in_lists(date: NaiveDate, today: NaiveDate) -> bool {
    let days = (date - today).num_days();
    (-(DateRange::MAX_DAYS - 2)..=1).contains(&days)
}

/// What a job fetches.
pub(crate) struct Plan {
    pub(super) steps: Vec<Step>,
    pub(super) first_sync: bool,
    /// The records a webhook announced, by type: a list read without one of them is not counted for
    /// the rhythm (Polar did not have it yet), and the athlete's next scheduled sync comes at the interval.
    pub(super) announced: Vec<(DataKind, RecordKey)>,
}

impl Plan {
    /// The steps of `job`. Optional forms cost calls only where `mapping` enables them: a full sync
    /// reads their 28-day lists, a webhook's job the record it announces, and a new training also the
    /// recent cardio load (which Polar revises with the day's trainings and announces by no event).
    pub(super) fn for_job(
        job: &SyncJob,
        cursors: &SyncCursors,
        mapping: &Mapping,
        rhythm: &Rhythm<'_>,
        now: DateTime<Utc>,
    ) -> Self {
        let today = now.date_naive();
        if job.kind == JobKind::Targeted {
            return Self::announced(job, mapping, today);
        }
        let first_sync = cursors == &SyncCursors::default();
        // A first sync, and an operator's, read everything; any other what its rhythm asks for (a first
        // sync the budget cut short goes on with the lists it has not read).
        let everything = first_sync || job.kind == JobKind::Manual;
        let mut kinds: Vec<DataKind> = Self::site_kinds(mapping)
            .into_iter()
            .filter(|kind| everything || rhythm.due(*kind))
            .collect();
        // The stalest list first: a sync the budget cuts short reads what has waited longest.
        kinds.sort_by_key(|kind| cursors.lists.get(kind).map(|l| l.at));
        let steps = kinds
            .into_iter()
            .filter_map(|kind| Step::list(kind, cursors, today))
            .collect();
        Self {
            steps,
            first_sync,
            announced: Vec::new(),
        }
    }

    /// The types whose lists the site reads: the four core forms and the optional ones it enables.
    pub(super) fn site_kinds(mapping: &Mapping) -> Vec<DataKind> {
        DataKind::ALL
            .into_iter()
            .filter(|kind| kind.is_core() || mapping.is_enabled(*kind))
            .collect()
    }

    /// A webhook's job: each announced record's list (one call, like the record itself, and it counts
    /// as the type's reconciliation), or the record alone when its date is outside the list's 28 days.
    fn announced(job: &SyncJob, mapping: &Mapping, today: NaiveDate) -> Self {
        let mut steps = Vec::new();
        let mut announced = Vec::new();
        for target in &job.targets {
            match target {
                Target::Exercise { id } => {
                    // Every listed exercise, whatever its upload time: an edited or late-listed
                    // session may carry an upload time before the cursor, and it is announced now.
                    steps.push(Step::Exercises {
                        uploaded_since: None,
                    });
                    announced.push((DataKind::Training, RecordKey::Exercise(id.clone())));
                    if mapping.is_enabled(DataKind::CardioLoad) {
                        steps.push(Step::CardioLoads(CardioLoadRange::Recent));
                    }
                }
                Target::Night { date } if in_lists(*date, today) => {
                    steps.push(Step::Sleeps);
                    steps.push(Step::Recharges);
                    announced.push((DataKind::Sleep, RecordKey::Date(*date)));
                }
                Target::Night { date } => {
                    steps.push(Step::Sleep(*date));
                    steps.push(Step::Recharge(*date));
                }
                Target::Recharge { date } if in_lists(*date, today) => steps.push(Step::Recharges),
                Target::Recharge { date } => steps.push(Step::Recharge(*date)),
                Target::Activity { date } if in_lists(*date, today) => {
                    steps.push(Step::Activities);
                    announced.push((DataKind::Activity, RecordKey::Date(*date)));
                }
                Target::Activity { date } => steps.push(Step::Activity(*date)),
                Target::HeartRate { date } => {
                    if mapping.is_enabled(DataKind::DailyHeartRate) {
                        steps.push(Step::DailyHeartRate(*date));
                    }
                }
                Target::Alertness { from, to } => {
                    if mapping.is_enabled(DataKind::Alertness) {
                        steps.extend(
                            DateRange::chunks(*from, *to)
                                .into_iter()
                                .map(|range| Step::Alertness(Some(range))),
                        );
                    }
                }
            }
        }
        let mut seen = HashSet::new();
        steps.retain(|s| seen.insert(format!("{s:?}")));
        Self {
            steps,
            first_sync: false,
            announced,
        }
    }

    /// The nights whose Nightly Recharge this job waits for (it may lag its sleep).
    pub(super) fn awaited_recharges(job: &SyncJob) -> Vec<NaiveDate> {
        job.targets
            .iter()
            .filter_map(|t| match t {
                Target::Night { date } | Target::Recharge { date } => Some(*date),
                _ => None,
            })
            .collect()
    }

    /// Whether `events`, read by `step`, hold every record this job announced of the step's type.
    pub(super) fn holds_announced(&self, step: &Step, events: &[MappedEvent]) -> bool {
        self.announced
            .iter()
            .filter(|(kind, _)| *kind == step.kind() && step.is_list())
            .all(|(_, record)| events.iter().any(|e| &e.key.record == record))
    }

    /// Polar calls the plan needs: one per step.
    pub(super) fn calls(&self) -> u64 {
        self.steps.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};

    use super::super::rhythm::Cadence;
    use super::*;
    use crate::ids::{AthleteUuid, ExerciseId};

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    fn noon(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, 12, 0, 0).unwrap()
    }

    fn athlete_uuid() -> AthleteUuid {
        AthleteUuid::parse("a-1").unwrap()
    }

    const HOURLY: Cadence = Cadence::Polling(Duration::hours(1));

    fn plan(job: &SyncJob, cursors: &SyncCursors, mapping: &Mapping, now: DateTime<Utc>) -> Plan {
        Plan::for_job(
            job,
            cursors,
            mapping,
            &Rhythm::new(cursors, now, HOURLY),
            now,
        )
    }

    #[test]
    fn a_delivered_list_counts_for_its_rhythm_and_exercises_move_their_upload_cursor() {
        let mut cursors = SyncCursors::default();
        Step::Sleeps.advance(&mut cursors, noon(27), (Some(day(27)), Some(-570)));
        Step::Sleep(day(20)).advance(&mut cursors, noon(28), (Some(day(20)), Some(60)));
        assert_eq!(
            cursors.lists[&DataKind::Sleep],
            ListRead {
                at: noon(27),
                newest: Some(day(27))
            },
            "one night fetched by date is no read of the list"
        );
        assert_eq!(
            cursors.utc_offset_minutes,
            Some(-570),
            "the list's newest night tells it"
        );
        assert_eq!(cursors.exercises_uploaded_since, None);
        Step::Exercises {
            uploaded_since: None,
        }
        .advance(&mut cursors, noon(27), (None, None));
        assert_eq!(cursors.exercises_uploaded_since, Some(noon(27)));
        assert!(cursors.lists.contains_key(&DataKind::Training));
        // A clock's nanoseconds are kept to the millisecond.
        let precise = noon(27) + Duration::nanoseconds(456_123_987);
        let ms = noon(27) + Duration::milliseconds(456);
        Step::Exercises {
            uploaded_since: None,
        }
        .advance(&mut cursors, precise, (None, None));
        assert_eq!(cursors.exercises_uploaded_since, Some(ms));
        assert_eq!(cursors.lists[&DataKind::Training].at, ms);
        // A read that did not deliver in full leaves its type due at the next sync.
        Step::Sleeps.forget(&mut cursors);
        assert!(!cursors.lists.contains_key(&DataKind::Sleep));
    }

    #[test]
    fn a_first_or_operators_sync_reads_each_list_whole_with_one_call_per_list() {
        // However recently the athlete synced, a night dated weeks ago may be uploaded now.
        let read = ListRead {
            at: noon(27),
            newest: Some(day(27)),
        };
        let cursors = SyncCursors {
            exercises_uploaded_since: Some(noon(27)),
            lists: DataKind::ALL.map(|k| (k, read)).into(),
            ..SyncCursors::default()
        };
        let everything = vec![
            Step::Exercises {
                uploaded_since: Some(noon(27)),
            },
            Step::Activities,
            Step::Sleeps,
            Step::Recharges,
        ];
        let manual = SyncJob::new(athlete_uuid(), JobKind::Manual, Vec::new(), noon(27));
        let operators = plan(&manual, &cursors, &Mapping::defaults(), noon(27));
        assert_eq!(operators.steps, everything);
        assert_eq!(operators.calls(), 4);
        let first = SyncJob::new(athlete_uuid(), JobKind::FirstSync, Vec::new(), noon(27));
        assert_eq!(
            plan(
                &first,
                &SyncCursors::default(),
                &Mapping::defaults(),
                noon(27)
            )
            .steps[1..],
            everything[1..]
        );
        // A first sync the budget cut short after the trainings goes on with the rest, the lists never
        // read first (the trainings are due at every sync).
        let trainings_only = SyncCursors {
            exercises_uploaded_since: Some(noon(27)),
            lists: [(DataKind::Training, read)].into(),
            ..SyncCursors::default()
        };
        assert_eq!(
            plan(&first, &trainings_only, &Mapping::defaults(), noon(27)).steps,
            [&everything[1..], &everything[..1]].concat()
        );
        // A scheduled one an hour later: the trainings only (the rest is on its rhythm).
        let job = SyncJob::new(athlete_uuid(), JobKind::Scheduled, Vec::new(), noon(27));
        let later = noon(27) + Duration::hours(1);
        assert_eq!(
            plan(&job, &cursors, &Mapping::defaults(), later).steps,
            everything[..1]
        );
        // Cursors stored before the rhythm existed read everything once.
        let old = SyncCursors {
            exercises_uploaded_since: Some(noon(27)),
            ..SyncCursors::default()
        };
        assert_eq!(
            plan(&job, &old, &Mapping::defaults(), later).steps,
            everything
        );
    }

    fn all_optional_forms() -> Mapping {
        Mapping::with_override(
            r#"{"cardio_load": {"enabled": true}, "alertness": {"enabled": true},
                "daily_heart_rate": {"enabled": true}}"#,
        )
        .unwrap()
    }

    #[test]
    fn a_full_sync_reads_each_enabled_optional_form_whole_with_one_call_each() {
        let job = SyncJob::new(athlete_uuid(), JobKind::Scheduled, Vec::new(), noon(27));
        let none = SyncCursors::default();
        let plan_all = plan(&job, &none, &all_optional_forms(), noon(27));
        assert_eq!(
            plan_all.steps[4..],
            [
                Step::CardioLoads(CardioLoadRange::Recent),
                Step::Alertness(None),
                // 28 dates up to tomorrow: today in every time zone.
                Step::DailyHeartRates(DateRange::new(day(1), day(28)).unwrap()),
            ]
        );
        assert_eq!(plan_all.calls(), 7);
        let only_heart_rate =
            Mapping::with_override(r#"{"daily_heart_rate": {"enabled": true}}"#).unwrap();
        assert_eq!(plan(&job, &none, &only_heart_rate, noon(27)).calls(), 5);
    }

    #[test]
    fn a_webhook_job_reads_its_records_list_in_one_call_and_a_day_outside_it_alone() {
        let exercise = ExerciseId::parse("Xa1b2").unwrap();
        let targets = vec![
            Target::Exercise {
                id: exercise.clone(),
            },
            Target::Night { date: day(26) },
            Target::Activity { date: day(26) },
            Target::Activity { date: day(27) },
            // A day older than the 28-day lists: fetched by its date.
            Target::Activity {
                date: day(1) - Duration::days(3),
            },
        ];
        let job = SyncJob::new(athlete_uuid(), JobKind::Targeted, targets, noon(27));
        let p = plan(
            &job,
            &SyncCursors::default(),
            &Mapping::defaults(),
            noon(27),
        );
        assert_eq!(
            p.steps,
            [
                Step::Exercises {
                    uploaded_since: None
                },
                Step::Sleeps,
                Step::Recharges,
                Step::Activities,
                Step::Activity(day(1) - Duration::days(3)),
            ]
        );
        let listed = |kind, record: RecordKey| {
            let event = crate::mapping::MappedEvent {
                key: crate::model::LedgerKey { kind, record },
                form: String::new(),
                start: day(26).and_hms_opt(0, 0, 0).unwrap(),
                finish: day(26).and_hms_opt(0, 0, 0).unwrap(),
                pairs: Vec::new(),
                content_hash: String::new(),
            };
            vec![event]
        };
        // A list without the announced record (Polar not caught up yet) does not count as read.
        assert!(p.holds_announced(
            &Step::Sleeps,
            &listed(DataKind::Sleep, RecordKey::Date(day(26)))
        ));
        assert!(!p.holds_announced(
            &Step::Sleeps,
            &listed(DataKind::Sleep, RecordKey::Date(day(25)))
        ));
        assert!(!p.holds_announced(
            &Step::Activities,
            &listed(DataKind::Activity, RecordKey::Date(day(26)))
        ));
        assert!(
            p.holds_announced(&Step::Recharges, &[]),
            "the recharge has its retry"
        );
    }

    #[test]
    fn webhook_jobs_fetch_an_optional_form_only_where_the_site_enables_it() {
        let exercise = ExerciseId::parse("Xa1b2").unwrap();
        let targets = vec![
            Target::Exercise { id: exercise },
            Target::HeartRate { date: day(26) },
            Target::Alertness {
                from: day(26),
                to: day(26),
            },
        ];
        let job = SyncJob::new(athlete_uuid(), JobKind::Targeted, targets, noon(27));
        let all = plan(
            &job,
            &SyncCursors::default(),
            &all_optional_forms(),
            noon(27),
        );
        let trainings = Step::Exercises {
            uploaded_since: None,
        };
        assert_eq!(
            all.steps,
            [
                trainings.clone(),
                // Polar revises the day's cardio load with its trainings and announces it by no event.
                Step::CardioLoads(CardioLoadRange::Recent),
                Step::DailyHeartRate(day(26)),
                Step::Alertness(Some(DateRange::new(day(26), day(26)).unwrap())),
            ]
        );
        let core = plan(
            &job,
            &SyncCursors::default(),
            &Mapping::defaults(),
            noon(27),
        );
        assert_eq!(core.steps, [trainings]);
    }
}
