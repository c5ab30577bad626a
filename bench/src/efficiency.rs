//! API efficiency: a simulated week of a fleet of typical athletes at the 60-minute interval, once with
//! scheduled syncs only (each data type on its own rhythm) and once with Polar's webhooks (a job per
//! phone sync reading the announced records' lists, the scheduled sync as the daily reconciliation of
//! the lists no job read). The figures compare Polar calls with the physical floor, one fetch per
//! record version uploaded, and split Smartabase calls by syncs that wrote something and syncs that
//! found nothing new.

use serde::Serialize;

use crate::logmeter::LogMeter;
use crate::logmeter::StdoutMeter;
use crate::simulation::{Simulation, SimulationOptions, SimulationReport};

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// Webhooks on.
    pub webhooks: bool,
    /// Athletes × days measured.
    pub athlete_days: f64,
    /// Polar data calls per athlete-day.
    pub polar_calls_per_athlete_day: f64,
    /// Record versions uploaded per athlete-day: the floor of one fetch each.
    pub floor_per_athlete_day: f64,
    /// Polar calls over the floor.
    pub times_floor: f64,
    /// Sync jobs per athlete-day (every kind and outcome).
    pub syncs_per_athlete_day: f64,
    /// Syncs that wrote to Smartabase.
    pub syncs_with_changes: u64,
    /// Syncs that found nothing new.
    pub syncs_without_changes: u64,
    /// Smartabase calls per sync that wrote.
    pub smartabase_calls_per_sync_with_changes: f64,
    /// Smartabase calls per sync that found nothing new.
    pub smartabase_calls_per_sync_without_changes: f64,
    /// Polar calls per sync that wrote.
    pub polar_calls_per_sync_with_changes: f64,
    /// Polar calls per sync that found nothing new.
    pub polar_calls_per_sync_without_changes: f64,
    /// Events created or updated per athlete-day.
    pub events_written_per_athlete_day: f64,
    /// Smartabase calls by the worker per athlete-day.
    pub smartabase_worker_calls_per_athlete_day: f64,
    /// Smartabase calls by the two-hourly scan per athlete-day.
    pub smartabase_scan_calls_per_athlete_day: f64,
    /// Webhook deliveries per athlete-day.
    pub webhook_deliveries_per_athlete_day: f64,
}

impl Figures {
    /// The figures of a report.
    pub fn of(report: &SimulationReport) -> Self {
        let m = &report.measured;
        let athlete_days = report.athletes as f64 * f64::from(m.hours) / 24.0;
        let per_day = |v: u64| v as f64 / athlete_days;
        let synced = m.jobs.outcome("synced");
        let unchanged = m.jobs.outcome("unchanged");
        let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
        Self {
            webhooks: report.webhooks,
            athlete_days,
            polar_calls_per_athlete_day: per_day(m.polar.data_calls),
            floor_per_athlete_day: per_day(m.record_versions_uploaded),
            times_floor: ratio(m.polar.data_calls, m.record_versions_uploaded),
            syncs_per_athlete_day: per_day(m.jobs.jobs()),
            syncs_with_changes: synced.jobs,
            syncs_without_changes: unchanged.jobs,
            smartabase_calls_per_sync_with_changes: ratio(synced.smartabase_calls, synced.jobs),
            smartabase_calls_per_sync_without_changes: ratio(
                unchanged.smartabase_calls,
                unchanged.jobs,
            ),
            polar_calls_per_sync_with_changes: ratio(synced.polar_calls, synced.jobs),
            polar_calls_per_sync_without_changes: ratio(unchanged.polar_calls, unchanged.jobs),
            events_written_per_athlete_day: per_day(synced.created + synced.updated),
            smartabase_worker_calls_per_athlete_day: per_day(m.smartabase.worker_calls),
            smartabase_scan_calls_per_athlete_day: per_day(m.smartabase.scan_calls),
            webhook_deliveries_per_athlete_day: per_day(m.webhook_deliveries),
        }
    }
}

/// Both runs.
#[derive(Debug, Clone, Serialize)]
pub struct EfficiencyReport {
    /// Scheduled syncs only, then with webhooks.
    pub runs: Vec<SimulationReport>,
    /// Their figures.
    pub figures: Vec<Figures>,
}

/// Runs the week twice: webhooks off, then on.
pub async fn run(
    athletes: usize,
    days: u32,
    meter: &LogMeter,
    stdout: &StdoutMeter,
    progress: &impl Fn(&str),
) -> anyhow::Result<EfficiencyReport> {
    let mut runs = Vec::new();
    for webhooks in [false, true] {
        progress(&format!(
            "{athletes} athletes, {days} days, webhooks {}",
            if webhooks { "on" } else { "off" }
        ));
        let options = SimulationOptions {
            athletes,
            measured_hours: days * 24,
            drain_hours: 6,
            interval_minutes: 60,
            webhooks,
            worker_instances: 2,
            seed: 20_261_127,
        };
        let (simulation, link, first) =
            Simulation::prepare(options, meter, stdout, progress).await?;
        let report = simulation.run(link, first, progress).await?;
        let figures = Figures::of(&report);
        progress(&format!(
            "  {:.1} Polar calls per athlete-day (floor {:.1}, {:.1}×); Smartabase {:.2} calls per sync with changes, {:.2} without; delivered: {}",
            figures.polar_calls_per_athlete_day,
            figures.floor_per_athlete_day,
            figures.times_floor,
            figures.smartabase_calls_per_sync_with_changes,
            figures.smartabase_calls_per_sync_without_changes,
            report.delivery.complete()
        ));
        runs.push(report);
    }
    let figures = runs.iter().map(Figures::of).collect();
    Ok(EfficiencyReport { runs, figures })
}
