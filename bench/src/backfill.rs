//! History backfill at scale: 1,000 athletes link on the same day, each with a year of daily activity at
//! Polar (`BACKFILL_DAYS` = 365), in memory with Polar's real formulas enforced by polar-sim. The
//! schedules then run hour by hour (the fan-out at the 60-minute interval, four worker instances) until
//! every athlete's backfill is finished. Reports the Polar calls the backfill made, the regular calls
//! beside them, the 429s and budget stops, the wall time, and whether every day landed exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use chrono::{Duration, DurationRound as _, NaiveDate, Utc};
use polar_sim::{NewRecord, RecordKind, SettingsPatch};
use serde::Serialize;
use shared::config::BackfillDays;
use shared::model::BackfillEnd;
use shared::store::AthleteStore as _;

use crate::simulation::unrequested_parts;
use crate::stack;

/// Athletes linking on the same day.
pub const ATHLETES: usize = 1_000;
/// Days of activity each has at Polar (and `BACKFILL_DAYS`).
pub const DAYS: u32 = 365;
const WORKER_INSTANCES: usize = 4;
const MAX_HOURS: u32 = 48;

/// One hour of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Hour {
    /// Hours since the athletes linked (0 = the first syncs).
    pub hour: u32,
    /// Polar date-range calls of the backfill.
    pub backfill_calls: u64,
    /// Every other Polar data call (the first and the regular syncs).
    pub regular_calls: u64,
    /// Athletes whose backfill is finished at the end of the hour.
    pub finished: usize,
}

/// The backfill benchmark's result.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillReport {
    /// Athletes.
    pub athletes: usize,
    /// Days of activity each has at Polar, and `BACKFILL_DAYS`.
    pub days: u32,
    /// Sim hours of hourly syncs until every backfill finished (0 = within the first syncs).
    pub hours_to_finish: u32,
    /// Polar date-range calls of the backfill, all athletes.
    pub backfill_calls: u64,
    /// The same per athlete.
    pub backfill_calls_per_athlete: f64,
    /// Polar data calls of the first and regular syncs over the same hours.
    pub regular_calls: u64,
    /// 429s Polar answered.
    pub rate_limited: u64,
    /// Fan-out runs the budget stopped before every due athlete was queued.
    pub fanout_budget_limited: u64,
    /// `eventsimport` calls, all athletes.
    pub smartabase_imports: u64,
    /// Activity events older than what the first sync read (written by the backfill).
    pub backfilled_events: u64,
    /// Oldest days that aged out of the 365 dates up to UTC's today (the backfill's reach: Polar's from
    /// every time zone) at a UTC midnight before the backfill reached them.
    pub aged_out: u64,
    /// Wall time from the first syncs to the last backfill finished (seconds).
    pub wall_seconds: f64,
    /// Wall time of linking the athletes (seconds).
    pub link_seconds: f64,
    /// Hour by hour.
    pub hours: Vec<Hour>,
    /// Every day within Polar's reach in Smartabase exactly once.
    pub all_once: bool,
}

/// Runs the benchmark.
pub async fn run(athletes: usize, progress: &impl Fn(&str)) -> anyhow::Result<BackfillReport> {
    let start = (Utc::now() + Duration::hours(2))
        .duration_trunc(Duration::hours(1))
        .context("start time")?;
    let world = stack::world(start, 60).await?;
    world.polar.update_settings(SettingsPatch {
        history_before_registration: Some(true),
        ..SettingsPatch::default()
    });
    let linking = Instant::now();
    let linked = stack::link_athletes(&world, athletes, |n| {
        progress(&format!("linked {n} athletes"))
    })
    .await?;
    let link_seconds = linking.elapsed().as_secs_f64();
    progress(&format!(
        "linked {athletes} athletes in {link_seconds:.0} s; adding a year of activity each"
    ));

    // A year of days up to yesterday in each athlete's own time zone, uploaded the morning after.
    for athlete in &linked {
        let today = (start + Duration::minutes(i64::from(athlete.utc_offset_minutes))).date_naive();
        for back in 1..=i64::from(DAYS) {
            let date = today - Duration::days(back);
            let mut values = unrequested_parts(RecordKind::Activity);
            values.insert("steps".into(), (6_000 + back * 17 % 9_000).into());
            world.polar.add_record(
                athlete.polar_user_id,
                NewRecord {
                    kind: RecordKind::Activity,
                    date: Some(date),
                    start_time: None,
                    values,
                    ready: true,
                    uploaded_at: Some(
                        (date + Duration::days(1))
                            .and_hms_opt(7, 0, 0)
                            .unwrap_or_default()
                            .and_utc()
                            .min(start),
                    ),
                },
            )?;
        }
    }
    world.polar.clear_requests();
    world.smartabase.clear_requests();

    let world = Arc::new(world);
    let started = Instant::now();
    let mut hours = Vec::new();
    let mut fanout_budget_limited = 0;
    let mut hour = 0;
    loop {
        stack::drain(&world, WORKER_INSTANCES, stack::BATCH_SIZE).await?;
        let requests = world.polar.requests();
        world.polar.clear_requests();
        let data: Vec<_> = requests
            .iter()
            .filter(|r| r.path.starts_with("/v3/users/") || r.path.starts_with("/v3/exercises"))
            .collect();
        let backfill_calls = data
            .iter()
            .filter(|r| r.query.as_deref().is_some_and(|q| q.contains("from=")))
            .count() as u64;
        let mut finished = 0;
        for athlete in &linked {
            let stored = world.connector.store.get_athlete(&athlete.uuid).await?;
            if stored.is_some_and(|a| {
                !a.cursors.backfill.is_empty()
                    && a.cursors.backfill.values().all(|p| p.finished.is_some())
            }) {
                finished += 1;
            }
        }
        let rate_limited = requests.iter().filter(|r| r.status == Some(429)).count() as u64;
        hours.push((
            Hour {
                hour,
                backfill_calls,
                regular_calls: data.len() as u64 - backfill_calls,
                finished,
            },
            rate_limited,
        ));
        progress(&format!(
            "hour {hour}: {backfill_calls} backfill calls, {finished} of {athletes} backfills finished"
        ));
        if finished == athletes || hour >= MAX_HOURS {
            break;
        }
        hour += 1;
        world.advance(Duration::hours(1));
        if world.fanout().await?.budget_limited {
            fanout_budget_limited += 1;
        }
    }
    let wall_seconds = started.elapsed().as_secs_f64();

    // Exactly once: one event per day within Polar's reach (365 dates up to the link date, UTC). The
    // oldest of them leave that reach at each UTC midnight the run passes; those the backfill had not
    // reached by then may be missing (Polar no longer serves them), never doubled.
    let reach = i64::from(BackfillDays::DEFAULT.days()) - 1;
    let floor = start.date_naive() - Duration::days(reach);
    let end_floor = (start + Duration::hours(i64::from(hour))).date_naive() - Duration::days(reach);
    let first_sync_oldest = start.date_naive() - Duration::days(27);
    let mut by_user: BTreeMap<i64, Vec<NaiveDate>> = BTreeMap::new();
    for event in world.smartabase.events(&Default::default()) {
        if event.form_name == "Polar Activity" {
            by_user
                .entry(event.user_id)
                .or_default()
                .push(event.start.date());
        }
    }
    let mut all_once = true;
    let mut backfilled_events = 0;
    let mut aged_out = 0;
    for athlete in &linked {
        let today = (start + Duration::minutes(i64::from(athlete.utc_offset_minutes))).date_naive();
        let at_polar = (1..=i64::from(DAYS)).map(|back| today - Duration::days(back));
        let required: BTreeSet<NaiveDate> = at_polar.clone().filter(|d| *d >= end_floor).collect();
        let allowed: BTreeSet<NaiveDate> = at_polar.filter(|d| *d >= floor).collect();
        let dates = by_user.remove(&athlete.user_id).unwrap_or_default();
        let unique: BTreeSet<NaiveDate> = dates.iter().copied().collect();
        let once = unique.len() == dates.len()
            && unique.is_superset(&required)
            && unique.is_subset(&allowed);
        if !once && all_once {
            let missing: Vec<_> = required.difference(&unique).collect();
            let unexpected: Vec<_> = unique.difference(&allowed).collect();
            progress(&format!(
                "delivery check failed for athlete {}: {} events for {} dates, missing {missing:?}, outside the reach {unexpected:?}",
                athlete.user_id,
                dates.len(),
                unique.len()
            ));
        }
        all_once &= once;
        aged_out += allowed.difference(&unique).count() as u64;
        backfilled_events += dates.iter().filter(|d| **d < first_sync_oldest).count() as u64;
        let stored = world.connector.store.get_athlete(&athlete.uuid).await?;
        let complete = stored.is_some_and(|a| {
            a.cursors
                .backfill
                .values()
                .all(|p| p.finished == Some(BackfillEnd::Complete))
        });
        if !complete && all_once {
            progress(&format!(
                "delivery check failed for athlete {}: a backfill not `complete`",
                athlete.user_id
            ));
        }
        all_once &= complete;
    }
    let smartabase_imports = world
        .smartabase
        .requests()
        .iter()
        .filter(|r| r.endpoint.as_deref() == Some("eventsimport"))
        .count() as u64;
    let backfill_calls: u64 = hours.iter().map(|(h, _)| h.backfill_calls).sum();
    Ok(BackfillReport {
        athletes,
        days: DAYS,
        hours_to_finish: hour,
        backfill_calls,
        backfill_calls_per_athlete: backfill_calls as f64 / athletes as f64,
        regular_calls: hours.iter().map(|(h, _)| h.regular_calls).sum(),
        rate_limited: hours.iter().map(|(_, r)| r).sum(),
        fanout_budget_limited,
        smartabase_imports,
        backfilled_events,
        aged_out,
        wall_seconds,
        link_seconds,
        hours: hours.into_iter().map(|(h, _)| h).collect(),
        all_once,
    })
}
