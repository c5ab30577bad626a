//! Scale under Polar's limits: a large fleet for a simulated day, in memory, with Polar's real formulas
//! (500 + 20 × users per 15 minutes, 5,000 + 100 × users per 24 hours) enforced by polar-sim and planned
//! for by the connector's budget. Reports the 429s Polar answered, the jobs and records the budget held
//! back, the worst freshness lag, and whether every record reached Smartabase exactly once.

use serde::Serialize;
use shared::budget::{LimitFormula, RateBudget};
use shared::testing::MemoryStore;

use crate::logmeter::{LogMeter, StdoutMeter};
use crate::simulation::{Simulation, SimulationOptions, SimulationReport};

/// The fleet the issue asks for.
pub const TARGET_ATHLETES: usize = 20_000;

/// Polar's daily budget against a fleet's daily demand.
#[derive(Debug, Clone, Serialize)]
pub struct Budget {
    /// Athletes.
    pub athletes: usize,
    /// Polar's 15-minute limit for them.
    pub short_limit: u64,
    /// Polar's 24-hour limit for them.
    pub long_limit: u64,
    /// The share of each window scheduled work may spend (the rest is headroom for linking).
    pub scheduled_share: f64,
    /// Polar calls a day the fleet needs at the interval (measured calls per sync × syncs a day).
    pub daily_demand: f64,
    /// Demand over the scheduled share of the long limit.
    pub demand_over_budget: f64,
}

impl Budget {
    /// The budget for `athletes` at `calls_per_athlete_day`.
    pub fn for_fleet(athletes: usize, calls_per_athlete_day: f64) -> Self {
        let (short_limit, long_limit) = LimitFormula::POLAR.limits(athletes as u64);
        let scheduled_share = RateBudget::<MemoryStore>::SCHEDULED_SHARE;
        let daily_demand = calls_per_athlete_day * athletes as f64;
        Self {
            athletes,
            short_limit,
            long_limit,
            scheduled_share,
            daily_demand,
            demand_over_budget: daily_demand / (long_limit as f64 * scheduled_share),
        }
    }
}

/// The scale benchmark's result.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleReport {
    /// The simulated day.
    pub simulation: SimulationReport,
    /// Polar calls per athlete-day made (the day and the hours after it; the budget caps this).
    pub polar_calls_per_athlete_day: f64,
    /// Polar calls per sync job (synced or unchanged) over the measured day.
    pub polar_calls_per_sync: f64,
    /// Polar calls per athlete-day the interval asks for: calls per sync × syncs a day.
    pub demand_per_athlete_day: f64,
    /// The measured fleet's budget.
    pub measured_budget: Budget,
    /// The target fleet's budget at the same rate (an extrapolation when fewer athletes ran).
    pub target_budget: Budget,
    /// Whether the target fleet ran, or the figures for it are extrapolated.
    pub extrapolated: bool,
    /// Sync jobs deferred or released because of the budget or a 429.
    pub jobs_held_back: u64,
    /// Every record in Smartabase exactly once in its latest version.
    pub all_delivered: bool,
}

/// Runs one simulated day for `athletes`, then up to twelve hours more for what the budget held back.
pub async fn run(
    athletes: usize,
    meter: &LogMeter,
    stdout: &StdoutMeter,
    progress: &impl Fn(&str),
) -> anyhow::Result<ScaleReport> {
    let options = SimulationOptions {
        athletes,
        measured_hours: 24,
        drain_hours: 12,
        interval_minutes: 60,
        webhooks: false,
        worker_instances: 4,
        seed: 20_000,
    };
    let (simulation, link, first) = Simulation::prepare(options, meter, stdout, progress).await?;
    progress(&format!(
        "linked {athletes} athletes in {link:.0} s, first syncs in {first:.0} s"
    ));
    let report = simulation.run(link, first, progress).await?;
    let days = f64::from(report.measured.hours + report.drain.hours) / 24.0;
    let calls = report.measured.polar.data_calls + report.drain.polar.data_calls;
    let polar_calls_per_athlete_day = calls as f64 / (athletes as f64 * days);
    let ran = |t: &crate::simulation::Tally| {
        let (synced, unchanged) = (t.jobs.outcome("synced"), t.jobs.outcome("unchanged"));
        (
            synced.polar_calls + unchanged.polar_calls,
            synced.jobs + unchanged.jobs,
        )
    };
    // The measured day's syncs alone: each data type is read on its own rhythm, so a sync's cost depends
    // on the hour of the athlete's day, and the quiet hours after the day would understate it.
    let (day_calls, day_jobs) = ran(&report.measured);
    let polar_calls_per_sync = day_calls as f64 / day_jobs.max(1) as f64;
    let syncs_per_day = 24.0 * 60.0 / f64::from(report.interval_minutes);
    let demand_per_athlete_day = polar_calls_per_sync * syncs_per_day;
    let held_back = |t: &crate::simulation::Tally| {
        t.jobs.outcome("deferred").jobs + t.jobs.outcome("released").jobs
    };
    Ok(ScaleReport {
        polar_calls_per_athlete_day,
        polar_calls_per_sync,
        demand_per_athlete_day,
        measured_budget: Budget::for_fleet(athletes, demand_per_athlete_day),
        target_budget: Budget::for_fleet(TARGET_ATHLETES, demand_per_athlete_day),
        extrapolated: athletes < TARGET_ATHLETES,
        jobs_held_back: held_back(&report.measured) + held_back(&report.drain),
        all_delivered: report.delivery.complete(),
        simulation: report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_thousand_athletes_get_polars_published_limits() {
        let budget = Budget::for_fleet(20_000, 96.0);
        assert_eq!(budget.short_limit, 400_500);
        assert_eq!(budget.long_limit, 2_005_000);
        // 1.92 M calls against 90 % of 2.005 M.
        assert!((budget.demand_over_budget - 1_920_000.0 / 1_804_500.0).abs() < 1e-9);
    }
}
