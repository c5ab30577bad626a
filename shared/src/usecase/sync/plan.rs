//! Which Polar calls a job makes.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};

use crate::mapping::Mapping;
use crate::model::{DataKind, SyncCursors};
use crate::polar::{CardioLoadRange, DateRange};
use crate::queue::{JobKind, SyncJob, Target};

/// One fetch of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Exercises {
        uploaded_since: Option<DateTime<Utc>>,
    },
    Exercise(crate::ids::ExerciseId),
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
            Self::Exercises { .. } | Self::Exercise(_) => DataKind::Training,
            Self::Activities | Self::Activity(_) => DataKind::Activity,
            Self::Sleeps | Self::Sleep(_) => DataKind::Sleep,
            Self::Recharges | Self::Recharge(_) => DataKind::Recharge,
            Self::CardioLoads(_) => DataKind::CardioLoad,
            Self::Alertness(_) => DataKind::Alertness,
            Self::DailyHeartRates(_) | Self::DailyHeartRate(_) => DataKind::DailyHeartRate,
        }
    }

    /// What a full sync reads of the optional forms `mapping` enables: like the core daily lists, the
    /// whole of the last 28 days, one call each, so a day uploaded late or revised is read again until
    /// it ages out. Cardio load and alertness have Polar's own 28-day lists; 24/7 heart rate has only a
    /// range, read for the 28 dates up to tomorrow (UTC) so that today is in it in every time zone. A
    /// site that enables none gets no step.
    pub(crate) fn optional_lists(mapping: &Mapping, today: NaiveDate) -> Vec<Self> {
        let mut steps = Vec::new();
        if mapping.is_enabled(DataKind::CardioLoad) {
            steps.push(Self::CardioLoads(CardioLoadRange::Recent));
        }
        if mapping.is_enabled(DataKind::Alertness) {
            steps.push(Self::Alertness(None));
        }
        if mapping.is_enabled(DataKind::DailyHeartRate)
            && let Some(range) = heart_rate_window(today)
        {
            steps.push(Self::DailyHeartRates(range));
        }
        steps
    }

    /// Moves the cursor of a fully delivered step. Exercises are listed by upload time, so everything
    /// uploaded before this sync is delivered; daily lists have no cursor (they are read whole).
    pub(super) fn advance(&self, cursors: &mut SyncCursors, now: DateTime<Utc>) {
        if let Self::Exercises { .. } = self {
            cursors.exercises_uploaded_since = Some(now);
        }
    }
}

/// The 28 dates a full sync reads 24/7 heart rate for: up to tomorrow (UTC), which is today east of
/// UTC (up to +14:00); west of UTC the oldest local date of Polar's window is read by the previous
/// days' syncs.
fn heart_rate_window(today: NaiveDate) -> Option<DateRange> {
    let to = today.succ_opt()?;
    let from = to.checked_sub_days(chrono::Days::new(DateRange::MAX_DAYS as u64 - 1))?;
    DateRange::new(from, to)
}

/// What a job fetches.
pub(crate) struct Plan {
    pub(super) steps: Vec<Step>,
    pub(super) advances_cursors: bool,
    pub(super) first_sync: bool,
}

impl Plan {
    /// The steps of `job`. Optional forms cost calls only where `mapping` enables them: a full sync
    /// reads their 28-day lists, a webhook's job the record it announces, and a new training also the
    /// recent cardio load (which Polar revises with the day's trainings and announces by no event).
    pub(super) fn for_job(
        job: &SyncJob,
        cursors: &SyncCursors,
        mapping: &Mapping,
        today: NaiveDate,
    ) -> Self {
        if job.kind == JobKind::Targeted {
            let mut steps = Vec::new();
            for target in &job.targets {
                match target {
                    Target::Exercise { id } => {
                        steps.push(Step::Exercise(id.clone()));
                        if mapping.is_enabled(DataKind::CardioLoad) {
                            steps.push(Step::CardioLoads(CardioLoadRange::Recent));
                        }
                    }
                    Target::Night { date } => {
                        steps.push(Step::Sleep(*date));
                        steps.push(Step::Recharge(*date));
                    }
                    Target::Recharge { date } => steps.push(Step::Recharge(*date)),
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
            return Self {
                steps,
                advances_cursors: false,
                first_sync: false,
            };
        }
        let mut steps = vec![
            Step::Exercises {
                uploaded_since: cursors.exercises_uploaded_since,
            },
            Step::Activities,
            Step::Sleeps,
            Step::Recharges,
        ];
        steps.extend(Step::optional_lists(mapping, today));
        Self {
            steps,
            advances_cursors: true,
            first_sync: cursors == &SyncCursors::default(),
        }
    }

    /// Polar calls the plan needs: one per step.
    pub(super) fn calls(&self) -> u64 {
        self.steps.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::ids::AthleteUuid;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    fn noon(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, 12, 0, 0).unwrap()
    }

    fn athlete_uuid() -> AthleteUuid {
        AthleteUuid::parse("a-1").unwrap()
    }

    #[test]
    fn a_delivered_exercise_list_moves_its_upload_cursor_and_daily_lists_have_none() {
        let mut cursors = SyncCursors::default();
        for step in [Step::Activities, Step::Sleeps, Step::Recharges] {
            step.advance(&mut cursors, noon(27));
        }
        assert_eq!(cursors, SyncCursors::default());
        Step::Exercises {
            uploaded_since: None,
        }
        .advance(&mut cursors, noon(27));
        assert_eq!(cursors.exercises_uploaded_since, Some(noon(27)));
    }

    #[test]
    fn every_full_sync_reads_each_daily_list_whole_with_one_call_per_list() {
        // However recently the athlete synced, a night dated weeks ago may be uploaded now.
        let cursors = SyncCursors {
            exercises_uploaded_since: Some(noon(27)),
            ..SyncCursors::default()
        };
        for kind in [JobKind::Scheduled, JobKind::FirstSync, JobKind::Manual] {
            let job = SyncJob::new(athlete_uuid(), kind, Vec::new(), noon(27));
            let plan = Plan::for_job(&job, &cursors, &Mapping::defaults(), day(27));
            assert_eq!(
                plan.steps,
                vec![
                    Step::Exercises {
                        uploaded_since: Some(noon(27))
                    },
                    Step::Activities,
                    Step::Sleeps,
                    Step::Recharges,
                ]
            );
            assert_eq!(plan.calls(), 4);
        }
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
        let plan = Plan::for_job(
            &job,
            &SyncCursors::default(),
            &all_optional_forms(),
            day(27),
        );
        assert_eq!(
            plan.steps[4..],
            [
                Step::CardioLoads(CardioLoadRange::Recent),
                Step::Alertness(None),
                // 28 dates up to tomorrow: today in every time zone.
                Step::DailyHeartRates(DateRange::new(day(1), day(28)).unwrap()),
            ]
        );
        assert_eq!(plan.calls(), 7);
        let only_heart_rate =
            Mapping::with_override(r#"{"daily_heart_rate": {"enabled": true}}"#).unwrap();
        let plan = Plan::for_job(&job, &SyncCursors::default(), &only_heart_rate, day(27));
        assert_eq!(plan.calls(), 5);
    }

    #[test]
    fn webhook_jobs_fetch_an_optional_form_only_where_the_site_enables_it() {
        let exercise = crate::ids::ExerciseId::parse("Xa1b2").unwrap();
        let targets = vec![
            Target::Exercise {
                id: exercise.clone(),
            },
            Target::HeartRate { date: day(26) },
            Target::Alertness {
                from: day(26),
                to: day(26),
            },
        ];
        let job = SyncJob::new(athlete_uuid(), JobKind::Targeted, targets, noon(27));
        let all = Plan::for_job(
            &job,
            &SyncCursors::default(),
            &all_optional_forms(),
            day(27),
        );
        assert_eq!(
            all.steps,
            [
                Step::Exercise(exercise.clone()),
                // Polar revises the day's cardio load with its trainings and announces it by no event.
                Step::CardioLoads(CardioLoadRange::Recent),
                Step::DailyHeartRate(day(26)),
                Step::Alertness(Some(DateRange::new(day(26), day(26)).unwrap())),
            ]
        );
        let core = Plan::for_job(&job, &SyncCursors::default(), &Mapping::defaults(), day(27));
        assert_eq!(core.steps, [Step::Exercise(exercise)]);
    }
}
