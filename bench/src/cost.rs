//! What the connector costs on AWS per 1,000 athlete-months, computed from measured counts: Lambda
//! (requests, and GB-seconds from measured durations at the template's 256 MB on arm64, init included),
//! SQS requests, DynamoDB on-demand request units, Secrets Manager reads, CloudWatch Logs ingestion and
//! the HTTP API's webhook requests. The prices are assumptions stated in [`Prices::US_EAST_1_2026`].

use serde::Serialize;

use crate::coldstart::ColdStartReport;
use crate::metered::StoreUsage;
use crate::simulation::SimulationReport;
use crate::throughput::ThroughputReport;

/// Average days per month (365.25 / 12).
pub const DAYS_PER_MONTH: f64 = 30.4375;
/// The template's `MemorySize` for every function (GB).
pub const FUNCTION_MEMORY_GB: f64 = 0.25;
/// Bytes of Lambda's own JSON platform lines (`platform.start`, `platform.report`) per invocation.
pub const PLATFORM_LOG_BYTES_PER_INVOCATION: f64 = 700.0;

/// List prices (USD), with where and when they hold.
#[derive(Debug, Clone, Serialize)]
pub struct Prices {
    /// Region.
    pub region: &'static str,
    /// What the figures are.
    pub as_of: &'static str,
    /// Lambda arm64 duration, per GB-second (first pricing tier).
    pub lambda_gb_second: f64,
    /// Lambda, per request.
    pub lambda_request: f64,
    /// SQS standard queue, per request (64 KB chunk).
    pub sqs_request: f64,
    /// DynamoDB on-demand, per write request unit.
    pub dynamodb_write_unit: f64,
    /// DynamoDB on-demand, per read request unit.
    pub dynamodb_read_unit: f64,
    /// Secrets Manager, per secret and month.
    pub secret_month: f64,
    /// Secrets Manager, per API call.
    pub secret_call: f64,
    /// CloudWatch Logs standard ingestion, per GB.
    pub logs_ingestion_gb: f64,
    /// API Gateway HTTP API, per request (first 300 million).
    pub http_api_request: f64,
}

impl Prices {
    /// us-east-1 list prices, assumed to hold in 2026 (free tiers ignored).
    pub const US_EAST_1_2026: Prices = Prices {
        region: "us-east-1",
        as_of: "list prices assumed for 2026 (as published since the Nov 2024 DynamoDB on-demand cut); free tiers ignored",
        lambda_gb_second: 0.000_013_333_4,
        lambda_request: 0.20 / 1e6,
        sqs_request: 0.40 / 1e6,
        dynamodb_write_unit: 0.625 / 1e6,
        dynamodb_read_unit: 0.125 / 1e6,
        secret_month: 0.40,
        secret_call: 0.05 / 10_000.0,
        logs_ingestion_gb: 0.50,
        http_api_request: 1.00 / 1e6,
    };
}

/// Usage of one athlete for one day, as measured (or derived from measurements).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DailyUsage {
    /// Lambda invocations (all functions).
    pub invocations: f64,
    /// Lambda billed seconds, handlers (all functions).
    pub busy_seconds: f64,
    /// Cold starts (each reads the secret once and bills its init).
    pub cold_starts: f64,
    /// Init time billed per cold start (seconds).
    pub init_seconds: f64,
    /// SQS requests.
    pub sqs_requests: f64,
    /// DynamoDB read request units.
    pub read_units: f64,
    /// DynamoDB write request units.
    pub write_units: f64,
    /// Bytes ingested into CloudWatch Logs (log lines, EMF lines, platform lines).
    pub log_bytes: f64,
    /// HTTP API requests (webhook deliveries).
    pub http_requests: f64,
}

/// Cost per 1,000 athlete-months by service (USD).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cost {
    /// Lambda requests.
    pub lambda_requests: f64,
    /// Lambda duration (handlers and inits).
    pub lambda_duration: f64,
    /// SQS.
    pub sqs: f64,
    /// DynamoDB reads.
    pub dynamodb_reads: f64,
    /// DynamoDB writes.
    pub dynamodb_writes: f64,
    /// Secrets Manager reads (the secret's own monthly fee is per deployment, not here).
    pub secrets_reads: f64,
    /// CloudWatch Logs ingestion.
    pub logs: f64,
    /// HTTP API.
    pub http_api: f64,
    /// Sum.
    pub total: f64,
}

/// Cost of 1,000 athletes for a month at `usage` per athlete-day.
pub fn per_thousand_athlete_months(usage: &DailyUsage, prices: &Prices) -> Cost {
    let scale = DAYS_PER_MONTH * 1000.0;
    let gb_seconds =
        (usage.busy_seconds + usage.cold_starts * usage.init_seconds) * FUNCTION_MEMORY_GB;
    let mut cost = Cost {
        lambda_requests: usage.invocations * prices.lambda_request * scale,
        lambda_duration: gb_seconds * prices.lambda_gb_second * scale,
        sqs: usage.sqs_requests * prices.sqs_request * scale,
        dynamodb_reads: usage.read_units * prices.dynamodb_read_unit * scale,
        dynamodb_writes: usage.write_units * prices.dynamodb_write_unit * scale,
        secrets_reads: usage.cold_starts * prices.secret_call * scale,
        logs: usage.log_bytes / 1e9 * prices.logs_ingestion_gb * scale,
        http_api: usage.http_requests * prices.http_api_request * scale,
        total: 0.0,
    };
    cost.total = cost.lambda_requests
        + cost.lambda_duration
        + cost.sqs
        + cost.dynamodb_reads
        + cost.dynamodb_writes
        + cost.secrets_reads
        + cost.logs
        + cost.http_api;
    cost
}

/// Fixed monthly costs of one deployment, whatever its size (USD).
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentFixed {
    /// The one secret.
    pub secret: f64,
    /// The SQS event source mapping's long polls of an idle queue (about 15 ReceiveMessage a minute).
    pub idle_queue_polling: f64,
}

impl DeploymentFixed {
    /// At `prices`.
    pub fn at(prices: &Prices) -> Self {
        Self {
            secret: prices.secret_month,
            idle_queue_polling: 15.0 * 60.0 * 24.0 * DAYS_PER_MONTH * prices.sqs_request,
        }
    }
}

/// Athletes of the deployment the per-deployment work (schedules, cold starts) is shared by.
pub const DEPLOYMENT_ATHLETES: f64 = 1000.0;
/// The scan runs every two hours, the fan-out every hour (60-minute interval).
const SCAN_RUNS_PER_DAY: f64 = 12.0;
const FANOUT_RUNS_PER_DAY: f64 = 24.0;
/// Cold starts an hour: the fan-out, half a scan, the worker at the template's concurrency of 10, and
/// the webhook function when webhooks are on (an hour idle is longer than Lambda keeps environments).
const WORKER_COLD_STARTS_PER_HOUR: f64 = 10.0;
/// A warm `polar-webhook` instance reads and writes the last delivery's time at most once a minute
/// whatever the fleet's size; the estimate assumes one (the hourly cold start above replaces it).
pub const LAST_DELIVERY_RECORDS_PER_DAY: f64 = 24.0 * 60.0;
/// Init time when the cold-start benchmark did not run (seconds).
const DEFAULT_INIT_SECONDS: f64 = 0.1;

/// One mode's usage and cost.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// `webhooks off` or `webhooks on`.
    pub mode: String,
    /// Usage per athlete-day.
    pub usage: DailyUsage,
    /// Cost per 1,000 athlete-months.
    pub cost: Cost,
}

/// The cost benchmark's result.
#[derive(Debug, Clone, Serialize)]
pub struct CostReport {
    /// The prices used.
    pub prices: Prices,
    /// Per-deployment monthly costs.
    pub fixed: DeploymentFixed,
    /// Webhooks off, then on.
    pub estimates: Vec<Estimate>,
    /// How the usage was derived from the measurements.
    pub assumptions: Vec<String>,
}

/// Billed seconds per job of a throughput round.
fn billed(throughput: &ThroughputReport, instances: usize, batch: usize, changes: bool) -> f64 {
    throughput
        .rounds
        .iter()
        .find(|r| r.instances == instances && r.batch == batch && r.with_changes == changes)
        .map_or(0.0, |r| r.billed_seconds_per_job)
}

/// Usage per athlete-day of one simulated week, with Lambda durations from the throughput benchmark.
pub fn daily_usage(
    run: &SimulationReport,
    throughput: &ThroughputReport,
    init_seconds: f64,
) -> DailyUsage {
    let m = &run.measured;
    let athlete_days = run.athletes as f64 * f64::from(m.hours) / 24.0;
    let share = 1.0 / DEPLOYMENT_ATHLETES;
    let kind = |name: &str| {
        m.jobs
            .by_kind_and_outcome
            .iter()
            .filter(|(key, _)| key.split('/').next() == Some(name))
            .fold((0u64, 0u64, 0u64), |(jobs, synced, calls), (key, t)| {
                (
                    jobs + t.jobs,
                    synced + if key.ends_with("/synced") { t.jobs } else { 0 },
                    calls + t.polar_calls + t.smartabase_calls,
                )
            })
    };
    let (scheduled, scheduled_synced, _) = kind("Scheduled");
    let (targeted, _, targeted_calls) = kind("Targeted");
    let deferred = m.jobs.outcome("deferred").jobs;

    // A lone job's duration, scaled by its calls: the one-job-per-invocation round did 8 calls a job.
    let single = throughput
        .rounds
        .iter()
        .find(|r| r.batch == 1)
        .map_or((0.0, 1.0), |r| {
            (
                r.billed_seconds_per_job,
                (r.polar_calls_per_job + r.smartabase_calls_per_job).max(1.0),
            )
        });
    let targeted_seconds = if targeted > 0 {
        targeted as f64 * single.0 * (targeted_calls as f64 / targeted as f64) / single.1
    } else {
        0.0
    };
    let worker_seconds = scheduled_synced as f64 * billed(throughput, 1, 10, true)
        + (scheduled - scheduled_synced) as f64 * billed(throughput, 1, 10, false)
        + targeted_seconds;
    let scan_seconds = m.scan_busy_seconds
        + m.smartabase.scan_calls as f64 * throughput.latency_ms as f64 / 1000.0;
    // Lambda bills at least a millisecond per invocation.
    let webhook_seconds = m
        .webhook_busy_seconds
        .max(m.webhook_deliveries as f64 * 0.001);
    let worker_invocations = scheduled as f64 / 10.0 + targeted as f64;
    let webhooks_on = m.webhook_deliveries > 0;
    // What the deployment spends whatever its size is shared by its athletes like the runs'
    // invocations (the simulated fleet is far smaller): `measured` of which `own` was the deployment's
    // in the simulation, and `charged` is the deployment's over the same stretch.
    let fleet_share = run.athletes as f64 * share;
    let per_athlete_day = |measured: f64, own: f64, charged: f64| {
        (measured - own + charged * fleet_share) / athlete_days
    };
    // The scheduled runs' summary lines and budget and settings items: the same runs in any deployment.
    let per_run = &m.per_run;
    let run_lines = (per_run.log_bytes + per_run.emf_bytes) as f64;
    // The webhook's last-delivery time: the simulated rate scaled to the deployment, at most its cap.
    let days = f64::from(m.hours) / 24.0;
    let last_delivery = |used: StoreUsage, units: f64| {
        let requests = used.requests as f64;
        let charged = (requests / fleet_share).min(LAST_DELIVERY_RECORDS_PER_DAY * days);
        units / requests.max(1.0) * charged
    };
    let (reads, writes) = (m.last_delivery.reads, m.last_delivery.writes);
    // The worker writes one EMF line per invocation; the simulation's batches are smaller than the
    // full batches billed here.
    let worker_emf_per_invocation = m.worker_emf_bytes as f64 / m.worker.invocations.max(1) as f64;
    let lines = (m.log_bytes + m.emf_bytes) as f64 - m.worker_emf_bytes as f64;

    let invocations = worker_invocations / athlete_days
        + (SCAN_RUNS_PER_DAY + FANOUT_RUNS_PER_DAY) * share
        + m.webhook_deliveries as f64 / athlete_days;
    let cold_starts_per_hour =
        1.0 + 0.5 + WORKER_COLD_STARTS_PER_HOUR + if webhooks_on { 1.0 } else { 0.0 };
    let sqs =
        (scheduled as f64 / 10.0 + targeted as f64 + deferred as f64 + 2.0 * worker_invocations)
            / athlete_days;
    DailyUsage {
        invocations,
        busy_seconds: (worker_seconds + scan_seconds + m.fanout.busy_seconds + webhook_seconds)
            / athlete_days,
        cold_starts: cold_starts_per_hour * 24.0 * share,
        init_seconds,
        sqs_requests: sqs,
        read_units: per_athlete_day(
            m.store.read_units,
            per_run.read_units + reads.read_units,
            per_run.read_units + last_delivery(reads, reads.read_units),
        ),
        write_units: per_athlete_day(
            m.store.write_units,
            per_run.write_units + writes.write_units,
            per_run.write_units + last_delivery(writes, writes.write_units),
        ),
        log_bytes: per_athlete_day(lines, run_lines, run_lines)
            + worker_emf_per_invocation * worker_invocations / athlete_days
            + invocations * PLATFORM_LOG_BYTES_PER_INVOCATION,
        http_requests: m.webhook_deliveries as f64 / athlete_days,
    }
}

/// Costs of each simulated week.
pub fn estimate(
    runs: &[SimulationReport],
    throughput: &ThroughputReport,
    cold_starts: Option<&ColdStartReport>,
) -> CostReport {
    let prices = Prices::US_EAST_1_2026;
    let init_seconds = cold_starts
        .and_then(|c| c.functions.iter().find(|f| f.function == "sync-worker"))
        .map_or(DEFAULT_INIT_SECONDS, |f| f.init_median_ms / 1000.0);
    let estimates = runs
        .iter()
        .map(|run| {
            let usage = daily_usage(run, throughput, init_seconds);
            let cost = per_thousand_athlete_months(&usage, &prices);
            Estimate {
                mode: if run.webhooks {
                    "webhooks on"
                } else {
                    "webhooks off"
                }
                .to_string(),
                usage,
                cost,
            }
        })
        .collect();
    CostReport {
        fixed: DeploymentFixed::at(&prices),
        prices,
        estimates,
        assumptions: vec![
            "Counts per athlete-day come from the simulated week (API efficiency); DynamoDB request units from the metered store (strongly consistent reads of items under 4 KB; writes by item size, one unit per started KB of the larger of the item before and after, athlete items measured as the store encodes them, the other items under 1 KB; index entries the write changes).".to_string(),
            format!(
                "Worker duration per job is the invocation time per job measured by the throughput benchmark ({} ms added to every Polar and Smartabase call, batches of 10 at concurrency 1); a webhook job runs alone, timed by the one-job-per-invocation round and scaled by its number of calls. DynamoDB and SQS latency are not included (the store is in memory).",
                throughput.latency_ms
            ),
            format!(
                "Scan and fan-out durations are their in-process times plus {} ms per Smartabase call of the scan; the schedules (scan 12, fan-out 24 runs a day) are shared by a deployment of {} athletes, and so is what a run spends whatever the fleet's size (its summary log and EMF lines, the scan's claim, settings and pending-link reads, the fan-out's budget read; measured per run); the listings and every athlete's reads and writes count per athlete. The webhook's reads and writes of its last delivery's time (made when the instance's memory of it is a minute old) are the deployment's too: the simulated rate scaled to the deployment, at most {:.0} of each a day (one warm instance, once a minute), shared likewise.",
                throughput.latency_ms, DEPLOYMENT_ATHLETES, LAST_DELIVERY_RECORDS_PER_DAY
            ),
            format!(
                "Worker invocations: scheduled jobs in full batches of 10, every webhook job alone. Cold starts: every scheduled run and {WORKER_COLD_STARTS_PER_HOUR} worker instances each hour, plus one webhook instance an hour when webhooks are on; each reads the secret once and bills its init ({:.0} ms, the measured sync-worker median).",
                init_seconds * 1000.0
            ),
            "SQS: one SendMessageBatch per 10 scheduled jobs, one SendMessage per webhook job and per deferral, one ReceiveMessage and one DeleteMessageBatch per invocation; the idle long polling of the event source mapping is a per-deployment cost.".to_string(),
            format!(
                "CloudWatch Logs: the measured bytes of the functions' JSON log lines and EMF lines (the worker's EMF line per billed invocation), plus {PLATFORM_LOG_BYTES_PER_INVOCATION:.0} bytes of Lambda platform lines per invocation."
            ),
            "Not included: storage (DynamoDB ledger and logs, cents per month), alarms and the dashboard (per deployment), data transfer, free tiers.".to_string(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn one_unit_of_each_per_athlete_day_costs_its_price_times_30_4_thousand() {
        let prices = Prices::US_EAST_1_2026;
        let usage = DailyUsage {
            invocations: 1.0,
            busy_seconds: 4.0,
            cold_starts: 0.5,
            init_seconds: 0.1,
            sqs_requests: 2.0,
            read_units: 10.0,
            write_units: 8.0,
            log_bytes: 2_000.0,
            http_requests: 3.0,
        };
        let cost = per_thousand_athlete_months(&usage, &prices);
        let n = 30_437.5;
        assert!(close(cost.lambda_requests, 0.2e-6 * n));
        // (4 s + 0.5 × 0.1 s) × 0.25 GB = 1.0125 GB-s a day.
        assert!(close(cost.lambda_duration, 1.0125 * 0.000_013_333_4 * n));
        assert!(close(cost.sqs, 2.0 * 0.4e-6 * n));
        assert!(close(cost.dynamodb_reads, 10.0 * 0.125e-6 * n));
        assert!(close(cost.dynamodb_writes, 8.0 * 0.625e-6 * n));
        assert!(close(cost.secrets_reads, 0.5 * 5e-6 * n));
        assert!(close(cost.logs, 2e-6 * 0.5 * n));
        assert!(close(cost.http_api, 3.0 * 1e-6 * n));
        let sum = cost.lambda_requests
            + cost.lambda_duration
            + cost.sqs
            + cost.dynamodb_reads
            + cost.dynamodb_writes
            + cost.secrets_reads
            + cost.logs
            + cost.http_api;
        assert!(close(cost.total, sum));
        // 8 WRU a day for 1,000 athletes is 243,500 WRU a month: about 15 cents.
        assert!((cost.dynamodb_writes - 0.1522).abs() < 0.001);
    }

    /// A day of 10 athletes whose scheduled runs spent 12 write units and 36,000 log bytes whatever the
    /// fleet's size, beside 1,000 write units and 2,000 log bytes of the athletes' own.
    fn ten_athlete_day() -> SimulationReport {
        let mut measured = crate::simulation::Tally {
            hours: 24,
            log_bytes: 2_000 + 36_000,
            ..Default::default()
        };
        measured.store.write_units = 1_000.0 + 12.0;
        measured.per_run.runs = 36;
        measured.per_run.log_bytes = 36_000;
        measured.per_run.write_units = 12.0;
        SimulationReport {
            athletes: 10,
            interval_minutes: 60,
            webhooks: false,
            worker_instances: 2,
            link_seconds: 0.0,
            first_sync_seconds: 0.0,
            measured,
            drain: Default::default(),
            delivery: Default::default(),
            wall_seconds: 0.0,
        }
    }

    #[test]
    fn what_a_scheduled_run_spends_whatever_the_fleet_is_shared_by_the_deployments_athletes() {
        let throughput = ThroughputReport {
            athletes: 0,
            latency_ms: 50,
            rounds: Vec::new(),
        };
        let usage = daily_usage(&ten_athlete_day(), &throughput, 0.0);
        // 1,000 units over 10 athlete-days, plus 12 units shared by 1,000 athletes.
        assert!(
            close(usage.write_units, 100.0 + 12.0 / 1_000.0),
            "{usage:?}"
        );
        let platform = usage.invocations * PLATFORM_LOG_BYTES_PER_INVOCATION;
        assert!(close(usage.log_bytes - platform, 200.0 + 36.0), "{usage:?}");
    }

    #[test]
    fn the_webhooks_last_delivery_time_is_the_deployments_at_most_once_a_minute() {
        let throughput = ThroughputReport {
            athletes: 0,
            latency_ms: 50,
            rounds: Vec::new(),
        };
        let with_records = |records: u64| {
            let mut run = ten_athlete_day();
            let units = records as f64;
            run.measured.store.read_units += units;
            run.measured.store.write_units += units;
            let last_delivery = &mut run.measured.last_delivery;
            last_delivery.reads.read_units = units;
            last_delivery.reads.requests = records;
            last_delivery.writes.write_units = units;
            last_delivery.writes.requests = records;
            daily_usage(&run, &throughput, 0.0)
        };
        // 300 a day among 10 athletes would be 30,000 among 1,000: at most 1,440, shared by them.
        let busy = with_records(300);
        assert!(close(busy.read_units, 1.44), "{busy:?}");
        assert!(
            close(busy.write_units, 100.0 + 12.0 / 1_000.0 + 1.44),
            "{busy:?}"
        );
        // 5 a day among 10 athletes stay under the cap at 1,000: half a unit each per athlete-day.
        let quiet = with_records(5);
        assert!(close(quiet.read_units, 0.5), "{quiet:?}");
        assert!(
            close(quiet.write_units, 100.0 + 12.0 / 1_000.0 + 0.5),
            "{quiet:?}"
        );
    }

    #[test]
    fn the_workers_emf_line_is_billed_per_invocation_of_a_full_batch() {
        let throughput = ThroughputReport {
            athletes: 0,
            latency_ms: 50,
            rounds: Vec::new(),
        };
        let mut run = ten_athlete_day();
        // 240 scheduled jobs run 5 to an invocation, each invocation writing a 1,000-byte EMF line.
        run.measured.worker.invocations = 48;
        run.measured.worker_emf_bytes = 48_000;
        run.measured.emf_bytes = 48_000;
        run.measured
            .jobs
            .by_kind_and_outcome
            .insert("Scheduled/unchanged".into(), Default::default());
        run.measured
            .jobs
            .by_kind_and_outcome
            .get_mut("Scheduled/unchanged")
            .unwrap()
            .jobs = 240;
        let usage = daily_usage(&run, &throughput, 0.0);
        let platform = usage.invocations * PLATFORM_LOG_BYTES_PER_INVOCATION;
        // 24 invocations of 10 jobs: 2.4 EMF lines per athlete-day.
        assert!(
            close(usage.log_bytes - platform, 200.0 + 36.0 + 2_400.0),
            "{usage:?}"
        );
    }

    #[test]
    fn idle_polling_is_about_a_quarter_dollar_a_month() {
        let fixed = DeploymentFixed::at(&Prices::US_EAST_1_2026);
        assert!((fixed.idle_queue_polling - 0.263).abs() < 0.001);
        assert_eq!(fixed.secret, 0.40);
    }
}
