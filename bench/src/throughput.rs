//! Throughput: sync jobs per minute through the worker, wall clock, with every Polar and Smartabase call
//! slowed to a realistic round trip by the simulators' delay faults. The worker runs as the event source
//! mapping runs it: batches of up to ten messages, with one or ten concurrent instances. Each round is
//! one scheduled sync of every athlete, either with a new record of each kind waiting (four Polar
//! fetches, four Smartabase imports) or with nothing new (four fetches, no import). A last round gives
//! each job an invocation of its own, as a lone webhook job gets: it measures one job's own duration.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use chrono::{Duration, DurationRound as _, NaiveDate, Utc};
use polar_sim::{FaultKind as PolarFault, FaultSpec, NewRecord, RecordKind};
use serde::Serialize;
use smartabase_sim::{FaultKind as SmartabaseFault, FaultRule};

use crate::logmeter::LogMeter;
use crate::metered::StoreUsage;
use crate::simulation::unrequested_parts;
use crate::stack::{self, Athlete, BenchWorld};

/// One round.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// Concurrent worker instances.
    pub instances: usize,
    /// Messages per invocation at most.
    pub batch: usize,
    /// Whether every athlete had new records.
    pub with_changes: bool,
    /// Jobs run.
    pub jobs: u64,
    /// Jobs the worker reported failed.
    pub failed: u64,
    /// Jobs that ended otherwise than expected (`synced` with changes, `unchanged` without).
    pub unexpected_outcomes: u64,
    /// Worker invocations.
    pub invocations: u64,
    /// Wall clock from the first receive to the empty queue (seconds).
    pub wall_seconds: f64,
    /// Jobs per minute.
    pub jobs_per_minute: f64,
    /// Invocation time per job: what Lambda bills per job at this batching (seconds).
    pub billed_seconds_per_job: f64,
    /// Polar calls per job (from the outcome lines).
    pub polar_calls_per_job: f64,
    /// Smartabase calls per job.
    pub smartabase_calls_per_job: f64,
    /// DynamoDB units of the round (its fan-out run and every job).
    pub store: StoreUsage,
    /// The same by store operation.
    pub store_by_operation: BTreeMap<String, StoreUsage>,
}

/// The throughput benchmark's result.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputReport {
    /// Athletes (jobs per round).
    pub athletes: usize,
    /// Added to every Polar and Smartabase call (ms).
    pub latency_ms: u64,
    /// The rounds.
    pub rounds: Vec<Round>,
}

/// New records of every kind for each athlete, dated `days_back` days before their local today.
fn upload_day(world: &BenchWorld, athletes: &[Athlete], days_back: i64) -> anyhow::Result<()> {
    let now = world.polar.now();
    for athlete in athletes {
        let local_now = now + Duration::minutes(i64::from(athlete.utc_offset_minutes));
        let date: NaiveDate = local_now.date_naive() - Duration::days(days_back);
        let record = |kind: RecordKind| NewRecord {
            kind,
            date: Some(date),
            start_time: None,
            values: unrequested_parts(kind),
            ready: true,
            uploaded_at: None,
        };
        world.polar.add_record(
            athlete.polar_user_id,
            NewRecord {
                start_time: Some(
                    local_now.naive_utc() - Duration::hours(2) - Duration::days(days_back),
                ),
                date: None,
                ..record(RecordKind::Exercise)
            },
        )?;
        for kind in [
            RecordKind::Sleep,
            RecordKind::Recharge,
            RecordKind::Activity,
        ] {
            world
                .polar
                .add_record(athlete.polar_user_id, record(kind))?;
        }
    }
    Ok(())
}

/// Runs the rounds: (1 instance, 10 instances) × (with changes, without) in batches of ten, then one
/// job per invocation with changes.
pub async fn run(
    athletes: usize,
    latency_ms: u64,
    meter: &LogMeter,
    progress: &impl Fn(&str),
) -> anyhow::Result<ThroughputReport> {
    let start = (Utc::now() + Duration::hours(1))
        .duration_trunc(Duration::days(1))
        .context("rounding the start time")?
        + Duration::days(1);
    let world = Arc::new(stack::world(start, 60).await?);
    let linked = stack::link_athletes(&world, athletes, |_| {}).await?;
    stack::drain(&world, 4, stack::BATCH_SIZE).await?;
    world.polar.inject_fault(FaultSpec {
        path_prefix: "/v3/".into(),
        method: None,
        fault: PolarFault::Delay { ms: latency_ms },
        count: None,
        probability: Some(1.0),
    })?;
    world.smartabase.add_fault(FaultRule::probability(
        None,
        SmartabaseFault::Delay { ms: latency_ms },
        1.0,
    ))?;
    meter.take_outcomes();

    let mut rounds = Vec::new();
    let mut changed_rounds = 0;
    let batch = stack::BATCH_SIZE;
    for (instances, batch, with_changes) in [
        (1, batch, true),
        (1, batch, false),
        (10, batch, true),
        (10, batch, false),
        (10, 1, true),
    ] {
        // Everyone is due again an interval later; new records wait when the round has changes.
        world.advance(Duration::minutes(61));
        if with_changes {
            upload_day(&world, &linked, changed_rounds)?;
            changed_rounds += 1;
        }
        let store_before = world.connector.store.usage();
        let operations_before = world.connector.store.usage_by_operation();
        let fanout = world.fanout().await?;
        if fanout.queued != athletes as u64 {
            bail!(
                "the fan-out queued {} jobs for {athletes} athletes",
                fanout.queued
            );
        }
        let started = Instant::now();
        let worker = stack::drain(&world, instances, batch).await?;
        let wall_seconds = started.elapsed().as_secs_f64();
        let store = world.connector.store.usage().since(store_before);
        let store_by_operation = world
            .connector
            .store
            .usage_by_operation()
            .into_iter()
            .map(|(op, usage)| {
                let before = operations_before.get(op).copied().unwrap_or_default();
                (op.to_string(), usage.since(before))
            })
            .filter(|(_, usage)| usage.requests > 0)
            .collect();
        let outcomes = meter.take_outcomes();
        let expected = if with_changes { "synced" } else { "unchanged" };
        let done = outcomes.outcome(expected);
        let jobs = worker.messages;
        let round = Round {
            instances,
            batch,
            with_changes,
            jobs,
            failed: worker.failed,
            unexpected_outcomes: jobs - done.jobs.min(jobs),
            invocations: worker.invocations,
            wall_seconds,
            jobs_per_minute: jobs as f64 / wall_seconds * 60.0,
            billed_seconds_per_job: worker.busy_seconds / jobs.max(1) as f64,
            polar_calls_per_job: done.polar_calls as f64 / done.jobs.max(1) as f64,
            smartabase_calls_per_job: done.smartabase_calls as f64 / done.jobs.max(1) as f64,
            store,
            store_by_operation,
        };
        progress(&format!(
            "concurrency {instances}, batch {batch}, {}: {:.0} jobs/min ({} jobs in {:.1} s)",
            if with_changes {
                "with changes"
            } else {
                "no changes"
            },
            round.jobs_per_minute,
            round.jobs,
            round.wall_seconds
        ));
        rounds.push(round);
    }
    world.polar.clear_faults();
    world.smartabase.clear_faults();
    Ok(ThroughputReport {
        athletes,
        latency_ms,
        rounds,
    })
}
