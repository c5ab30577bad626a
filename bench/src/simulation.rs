//! A simulated stretch of time for a fleet of athletes: the world's clock steps hour by hour, and within
//! an hour to each upload's time, when the record is uploaded (and, with webhooks on, Polar's signed
//! delivery goes through the `polar-webhook` function and the worker runs at once). At each hour mark the
//! scan runs on its two-hour schedule, the fan-out on the sync interval and the worker until the queue is
//! empty; jobs that come back within minutes run in minute ticks. Every call is counted from the simulators'
//! own request logs, every store call by the meter, and at the end Smartabase is checked against
//! what was uploaded: every record exactly once, in its latest version, with the time it landed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use chrono::{DateTime, Duration, DurationRound as _, Utc};
use polar_sim::{NewRecord, RecordKind};
use serde::Serialize;
use serde_json::{Map, Value, json};
use smartabase_sim::{
    EventFilter, POLAR_ACTIVITY, POLAR_NIGHTLY_RECHARGE, POLAR_SLEEP, POLAR_TRAINING,
};

use crate::habits::{self, Scheduled, Upload};
use crate::logmeter::{JobOutcomes, LogMeter, StdoutMeter};
use crate::metered::StoreUsage;
use crate::stack::{self, Athlete, BenchWorld, WorkerStats};
use testkit::webhook_relay::WebhookRelay;

/// The scan's schedule (`rate(2 hours)` in the template).
const SCAN_EVERY_HOURS: u32 = 2;
/// Jobs that come back within minutes (a busy athlete's job after 60 s) run in minute ticks for this
/// many minutes after the hour; longer delays (budget, a recharge not ready) wait for the next hour.
const RETRY_TICKS: u32 = 15;

/// How to run a simulation.
#[derive(Debug, Clone)]
pub struct SimulationOptions {
    /// Athletes.
    pub athletes: usize,
    /// Hours with uploads, counted in the per-day figures.
    pub measured_hours: u32,
    /// At most this many hours without uploads afterwards, until every record landed (not counted).
    pub drain_hours: u32,
    /// `SYNC_INTERVAL_MINUTES` (a multiple of 60: the clock steps by the hour).
    pub interval_minutes: u32,
    /// Polar webhooks registered and delivered.
    pub webhooks: bool,
    /// Concurrent worker instances.
    pub worker_instances: usize,
    /// Seed of the athletes' habits.
    pub seed: u64,
}

/// Polar calls of a stretch of time, from polar-sim's request log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PolarTally {
    /// Data calls (exercises, activity, sleep, recharge; lists and single records).
    pub data_calls: u64,
    /// Every `/v3/` call by kind.
    pub by_endpoint: BTreeMap<String, u64>,
    /// 429 answers from Polar's rate limiter.
    pub rate_limited: u64,
}

/// Smartabase calls of a stretch of time, from smartabase-sim's request log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SmartabaseTally {
    /// Calls made by worker jobs.
    pub worker_calls: u64,
    /// Calls made by the scan.
    pub scan_calls: u64,
    /// Every call by endpoint.
    pub by_endpoint: BTreeMap<String, u64>,
}

/// The fan-out runs of a stretch of time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FanoutTally {
    /// Runs.
    pub runs: u64,
    /// Jobs queued.
    pub queued: u64,
    /// Of those, queued with a delay to spread them over the budget.
    pub delayed: u64,
    /// Runs that left due athletes for later because the budget could not cover them.
    pub budget_limited_runs: u64,
    /// Time inside the fan-out function (seconds).
    pub busy_seconds: f64,
}

/// What the scheduled runs (scan and fan-out) spent that does not grow with the fleet: each run's summary
/// log and EMF lines, and its reads and writes of the budget and settings items. A deployment's runs cost
/// this whatever its size, so the cost model shares it among the deployment's athletes, not the few
/// athletes a simulation runs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PerRunTally {
    /// Scan and fan-out runs.
    pub runs: u64,
    /// Bytes of their JSON log lines.
    pub log_bytes: u64,
    /// Bytes of their EMF lines.
    pub emf_bytes: u64,
    /// Read units of [`PER_RUN_OPERATIONS`] during the runs.
    pub read_units: f64,
    /// Write units of [`PER_RUN_OPERATIONS`] during the runs.
    pub write_units: f64,
}

/// Store operations a scheduled run makes a fixed number of times, whatever the fleet's size: the scan's
/// claim of its run, its settings and pending links, the fan-out's budget read. The run's other
/// operations (the listings, the athletes it reads or marks) grow with the fleet and count as measured.
pub const PER_RUN_OPERATIONS: [&str; 5] = [
    "claim",
    "get_setting",
    "put_setting",
    "load_budget",
    "pending_links",
];

/// The webhook's reads (`get_setting`) and writes (`put_setting`) of the last delivery's time while it
/// serves deliveries: at most one of each a minute per warm instance whatever the fleet's size, so the
/// cost model charges them to the deployment, not to the few athletes a simulation runs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LastDeliveryTally {
    /// Its reads.
    pub reads: StoreUsage,
    /// Its writes.
    pub writes: StoreUsage,
}

/// Everything counted over a stretch of time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    /// Simulated hours.
    pub hours: u32,
    /// Record versions uploaded to Polar.
    pub record_versions_uploaded: u64,
    /// Polar.
    pub polar: PolarTally,
    /// Smartabase.
    pub smartabase: SmartabaseTally,
    /// Webhook deliveries run through the `polar-webhook` function.
    pub webhook_deliveries: u64,
    /// Of those, answered other than 200.
    pub webhook_refused: u64,
    /// Time inside the webhook function (seconds).
    pub webhook_busy_seconds: f64,
    /// Scan runs.
    pub scan_runs: u64,
    /// Time inside the scan function (seconds).
    pub scan_busy_seconds: f64,
    /// Fan-out.
    pub fanout: FanoutTally,
    /// Worker.
    pub worker: WorkerStats,
    /// Sync jobs by kind and outcome, from the worker's outcome lines.
    pub jobs: JobOutcomes,
    /// Store request units.
    pub store: StoreUsage,
    /// The same by store operation (the port method's name).
    pub store_by_operation: BTreeMap<String, StoreUsage>,
    /// Bytes of JSON log lines the functions wrote.
    pub log_bytes: u64,
    /// Log lines the functions wrote.
    pub log_lines: u64,
    /// Bytes of EMF metric lines the functions wrote.
    pub emf_bytes: u64,
    /// Of those, the worker's (one line per invocation).
    pub worker_emf_bytes: u64,
    /// The share of the above the scheduled runs spent whatever the fleet's size.
    pub per_run: PerRunTally,
    /// The share of the above the webhook spent on its last-delivery time.
    pub last_delivery: LastDeliveryTally,
}

impl Tally {
    fn absorb_outcomes(&mut self, outcomes: JobOutcomes) {
        for (key, totals) in outcomes.by_kind_and_outcome {
            let slot = self.jobs.by_kind_and_outcome.entry(key).or_default();
            slot.jobs += totals.jobs;
            slot.polar_calls += totals.polar_calls;
            slot.smartabase_calls += totals.smartabase_calls;
            slot.created += totals.created;
            slot.updated += totals.updated;
            slot.unchanged_records += totals.unchanged_records;
        }
        for (reason, count) in outcomes.deferral_reasons {
            *self.jobs.deferral_reasons.entry(reason).or_default() += count;
        }
    }
}

/// Percentiles of a set of durations, in minutes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Spread {
    /// How many.
    pub count: u64,
    /// Median.
    pub median: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`.
    pub fn of(mut values: Vec<f64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
        Self {
            count: values.len() as u64,
            median: at(0.5),
            p95: at(0.95),
            max: at(1.0),
        }
    }
}

/// Smartabase checked against Polar at the end.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Delivery {
    /// Records uploaded (distinct exercise ids and daily dates).
    pub records: u64,
    /// Records without an event.
    pub missing: u64,
    /// Records with more than one event.
    pub duplicated: u64,
    /// Activity events not in their latest version.
    pub stale: u64,
    /// Events that match no uploaded record.
    pub unexpected: u64,
    /// Upload of a record's first version → its event created (sim minutes).
    pub first_version_lag_minutes: Spread,
    /// Upload of a record's last version → the event holding it (sim minutes).
    pub last_version_lag_minutes: Spread,
    /// The worst lag (sim minutes) by record kind: (first version, latest version).
    pub worst_lag_minutes_by_kind: std::collections::BTreeMap<String, (f64, f64)>,
    /// First versions that landed later than one sync interval after their upload.
    pub later_than_interval: u64,
    /// Hours after the measured ones it took until everything landed.
    pub drain_hours_used: u32,
}

impl Delivery {
    /// Every record is in Smartabase exactly once, in its latest version.
    pub fn complete(&self) -> bool {
        self.missing == 0 && self.duplicated == 0 && self.stale == 0 && self.unexpected == 0
    }
}

/// The result of one simulation.
#[derive(Debug, Clone, Serialize)]
pub struct SimulationReport {
    /// Athletes.
    pub athletes: usize,
    /// Sync interval.
    pub interval_minutes: u32,
    /// Webhooks on.
    pub webhooks: bool,
    /// Concurrent worker instances.
    pub worker_instances: usize,
    /// Linking every athlete through the web flow (seconds).
    pub link_seconds: f64,
    /// The first syncs after linking (seconds).
    pub first_sync_seconds: f64,
    /// The measured hours.
    pub measured: Tally,
    /// The hours after, until everything landed.
    pub drain: Tally,
    /// Smartabase against Polar.
    pub delivery: Delivery,
    /// The whole simulation (seconds, wall clock).
    pub wall_seconds: f64,
}

/// What `operations` used between two readings of the store's meter by operation.
fn used_since(
    before: &BTreeMap<&'static str, StoreUsage>,
    after: &BTreeMap<&'static str, StoreUsage>,
    operations: &[&str],
) -> StoreUsage {
    let mut used = StoreUsage::default();
    for (operation, usage) in after {
        if operations.contains(operation) {
            used += usage.since(before.get(operation).copied().unwrap_or_default());
        }
    }
    used
}

/// What is known about one uploaded record.
#[derive(Debug, Clone)]
struct Track {
    first_at: DateTime<Utc>,
    last_at: DateTime<Utc>,
    final_steps: Option<u64>,
}

type RecordId = (usize, RecordKind, String);

/// The store's and the log meter's readings at a scheduled run's start.
struct RunReadings {
    operations: BTreeMap<&'static str, StoreUsage>,
    log_bytes: u64,
}

/// One run of the fleet through simulated time.
pub struct Simulation<'a> {
    options: SimulationOptions,
    world: Arc<BenchWorld>,
    athletes: Vec<Athlete>,
    relay: Option<WebhookRelay>,
    meter: &'a LogMeter,
    stdout: &'a StdoutMeter,
    tracks: HashMap<RecordId, Track>,
    /// (Smartabase server time of the step's end marker, the step's sim time).
    step_ends: Vec<(i64, DateTime<Utc>)>,
    marker: reqwest::Client,
    /// Start of the measured stretch (hour 0).
    start: DateTime<Utc>,
    hour: u32,
}

impl<'a> Simulation<'a> {
    /// Links the fleet a day before the measured stretch, runs the first syncs, registers the webhook
    /// when asked, and moves both clocks to the start of the measured stretch (a UTC midnight, with
    /// Polar's 24-hour window fresh).
    pub async fn prepare(
        options: SimulationOptions,
        meter: &'a LogMeter,
        stdout: &'a StdoutMeter,
        progress: &impl Fn(&str),
    ) -> anyhow::Result<(Self, f64, f64)> {
        let link_day = (Utc::now() + Duration::hours(1))
            .duration_trunc(Duration::days(1))
            .context("rounding the start time")?
            + Duration::days(1);
        let mut world = stack::world(link_day, options.interval_minutes).await?;
        // The webhook is registered before anyone links, as a deployment registers it once.
        let relay = if options.webhooks {
            let mut relay = WebhookRelay::start().await?;
            stack::register_webhook(&mut world, &mut relay).await?;
            Some(relay)
        } else {
            None
        };
        let world = Arc::new(world);
        let started = Instant::now();
        let athletes = stack::link_athletes(&world, options.athletes, |n| {
            progress(&format!("linked {n} of {} athletes", options.athletes));
        })
        .await?;
        let link_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        stack::drain(&world, options.worker_instances, stack::BATCH_SIZE).await?;
        let first_sync_seconds = started.elapsed().as_secs_f64();
        world.advance(Duration::days(1));
        let world_start = link_day + Duration::days(1);
        world.polar.clear_requests();
        world.polar.clear_deliveries();
        world.smartabase.clear_requests();
        meter.take_outcomes();
        stdout.take_bytes()?;
        let simulation = Self {
            options,
            world,
            athletes,
            relay,
            meter,
            stdout,
            tracks: HashMap::new(),
            step_ends: Vec::new(),
            marker: reqwest::Client::builder().no_proxy().build()?,
            start: world_start,
            hour: 0,
        };
        Ok((simulation, link_seconds, first_sync_seconds))
    }

    fn now(&self) -> DateTime<Utc> {
        use shared::clock::Clock as _;
        self.world.clock.now()
    }

    /// Runs the measured hours and the drain, then checks Smartabase.
    pub async fn run(
        mut self,
        link_seconds: f64,
        first_sync_seconds: f64,
        progress: &impl Fn(&str),
    ) -> anyhow::Result<SimulationReport> {
        let started = Instant::now();
        let start = self.start;
        let offsets: Vec<i32> = self.athletes.iter().map(|a| a.utc_offset_minutes).collect();
        let end = start + Duration::hours(i64::from(self.options.measured_hours));
        let plan = habits::schedule(&offsets, start, end, self.options.seed);
        let mut next = 0;
        let mut measured = Tally::default();
        for hour in 1..=self.options.measured_hours {
            let until = start + Duration::hours(i64::from(hour));
            let due_end = plan[next..].partition_point(|u| u.at <= until) + next;
            let uploads = &plan[next..due_end];
            next = due_end;
            self.step(uploads, &mut measured).await?;
            let every = (self.options.measured_hours / 4).max(1);
            if hour.is_multiple_of(every) || hour == self.options.measured_hours {
                progress(&format!(
                    "hour {hour}/{}: {} Polar calls, {} jobs so far",
                    self.options.measured_hours,
                    measured.polar.data_calls,
                    measured.jobs.jobs()
                ));
            }
        }
        let mut drain = Tally::default();
        let mut delivery = self.check_delivery();
        while !delivery.complete() && drain.hours < self.options.drain_hours {
            self.step(&[], &mut drain).await?;
            delivery = self.check_delivery();
        }
        delivery.drain_hours_used = drain.hours;
        Ok(SimulationReport {
            athletes: self.options.athletes,
            interval_minutes: self.options.interval_minutes,
            webhooks: self.options.webhooks,
            worker_instances: self.options.worker_instances,
            link_seconds,
            first_sync_seconds,
            measured,
            drain,
            delivery,
            wall_seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// One hour: the clock moves to each upload's time and the record is uploaded (with webhooks on, its
    /// delivery and the worker follow at once); at the hour mark the scan (every two hours), the fan-out
    /// and the worker run.
    async fn step(&mut self, uploads: &[Scheduled], tally: &mut Tally) -> anyhow::Result<()> {
        self.hour += 1;
        let hour_mark = self.start + Duration::hours(i64::from(self.hour));
        tally.hours += 1;
        let store_before = self.world.connector.store.usage();
        let operations_before = self.world.connector.store.usage_by_operation();
        let (log_bytes_before, log_lines_before) = self.meter.log_totals();

        for group in uploads.chunk_by(|a, b| a.at == b.at) {
            self.move_to(group[0].at);
            let mut announced = 0;
            for upload in group {
                announced += self.upload(upload)?;
            }
            if let Some(relay) = self.relay.as_mut() {
                // The world's connector is one warm `polar-webhook` instance for the whole run: its
                // memory of the last delivery lives as long as the run.
                let before = self.world.connector.store.usage_by_operation();
                let (busy, refused) =
                    stack::serve_deliveries(relay, &self.world, announced).await?;
                let after = self.world.connector.store.usage_by_operation();
                let last_delivery = &mut tally.last_delivery;
                last_delivery.reads += used_since(&before, &after, &["get_setting"]);
                last_delivery.writes += used_since(&before, &after, &["put_setting"]);
                tally.webhook_deliveries += announced as u64;
                tally.webhook_refused += refused as u64;
                tally.webhook_busy_seconds += busy.as_secs_f64();
                self.work(tally).await?;
            }
        }
        tally.record_versions_uploaded += uploads.len() as u64;

        self.move_to(hour_mark);
        let before_scan = self.world.smartabase.requests().len();
        if self.hour.is_multiple_of(SCAN_EVERY_HOURS) {
            let run = self.run_start(tally)?;
            let started = Instant::now();
            self.world.scan().await?;
            tally.scan_runs += 1;
            tally.scan_busy_seconds += started.elapsed().as_secs_f64();
            self.run_end(run, tally)?;
        }
        let after_scan = self.world.smartabase.requests().len();
        if self
            .hour
            .is_multiple_of((self.options.interval_minutes / 60).max(1))
        {
            let run = self.run_start(tally)?;
            let started = Instant::now();
            let report = self.world.fanout().await?;
            self.run_end(run, tally)?;
            let fanout = &mut tally.fanout;
            fanout.runs += 1;
            fanout.busy_seconds += started.elapsed().as_secs_f64();
            fanout.queued += report.queued;
            fanout.delayed += report.delayed;
            fanout.budget_limited_runs += u64::from(report.budget_limited);
        }
        self.work(tally).await?;

        // Tally the hour from the simulators' logs, then empty them.
        let smartabase = self.world.smartabase.requests();
        self.world.smartabase.clear_requests();
        for (index, request) in smartabase.iter().enumerate() {
            let Some(endpoint) = &request.endpoint else {
                continue; // the step marker
            };
            *tally
                .smartabase
                .by_endpoint
                .entry(endpoint.clone())
                .or_default() += 1;
            if (before_scan..after_scan).contains(&index) {
                tally.smartabase.scan_calls += 1;
            } else {
                tally.smartabase.worker_calls += 1;
            }
        }
        let polar = self.world.polar.requests();
        self.world.polar.clear_requests();
        for request in polar.iter().filter(|r| r.path.starts_with("/v3/")) {
            let kind = endpoint_kind(&request.path);
            *tally.polar.by_endpoint.entry(kind.to_string()).or_default() += 1;
            if DATA_ENDPOINTS.contains(&kind) {
                tally.polar.data_calls += 1;
            }
            if request.status == Some(429) {
                tally.polar.rate_limited += 1;
            }
        }
        self.world.polar.clear_deliveries();

        tally.absorb_outcomes(self.meter.take_outcomes());
        tally.store += self.world.connector.store.usage().since(store_before);
        for (operation, usage) in self.world.connector.store.usage_by_operation() {
            *tally
                .store_by_operation
                .entry(operation.to_string())
                .or_default() += usage.since(
                operations_before
                    .get(operation)
                    .copied()
                    .unwrap_or_default(),
            );
        }
        let (log_bytes, log_lines) = self.meter.log_totals();
        tally.log_bytes += log_bytes - log_bytes_before;
        tally.log_lines += log_lines - log_lines_before;
        tally.emf_bytes += self.stdout.take_bytes()?;
        Ok(())
    }

    /// Moves both clocks forward to `at` (never back: minute ticks may have passed it already).
    fn move_to(&self, at: DateTime<Utc>) {
        let now = self.now();
        if at > now {
            self.world.advance(at - now);
        }
    }

    /// Readings at a scheduled run's start (the EMF written before it goes to the tally).
    fn run_start(&self, tally: &mut Tally) -> anyhow::Result<RunReadings> {
        tally.emf_bytes += self.stdout.take_bytes()?;
        Ok(RunReadings {
            operations: self.world.connector.store.usage_by_operation(),
            log_bytes: self.meter.log_totals().0,
        })
    }

    /// Adds what the run since `start` spent regardless of the fleet's size to `tally.per_run` (and its
    /// EMF to the total).
    fn run_end(&self, start: RunReadings, tally: &mut Tally) -> anyhow::Result<()> {
        let emf = self.stdout.take_bytes()?;
        tally.emf_bytes += emf;
        let per_run = &mut tally.per_run;
        per_run.runs += 1;
        per_run.emf_bytes += emf;
        per_run.log_bytes += self.meter.log_totals().0 - start.log_bytes;
        let used = used_since(
            &start.operations,
            &self.world.connector.store.usage_by_operation(),
            &PER_RUN_OPERATIONS,
        );
        per_run.read_units += used.read_units;
        per_run.write_units += used.write_units;
        Ok(())
    }

    /// One drain of the worker, its EMF lines counted apart.
    async fn drain_worker(&self, tally: &mut Tally) -> anyhow::Result<WorkerStats> {
        tally.emf_bytes += self.stdout.take_bytes()?;
        let worker = stack::drain(
            &self.world,
            self.options.worker_instances,
            stack::BATCH_SIZE,
        )
        .await?;
        let emf = self.stdout.take_bytes()?;
        tally.emf_bytes += emf;
        tally.worker_emf_bytes += emf;
        Ok(worker)
    }

    /// The worker until the queue is empty, then in minute ticks for jobs that come back within minutes.
    async fn work(&mut self, tally: &mut Tally) -> anyhow::Result<()> {
        let worker = self.drain_worker(tally).await?;
        tally.worker.add(&worker);
        self.mark_step_end().await?;
        for _ in 0..RETRY_TICKS {
            if self.world.connector.queue.depth().await? == 0 {
                break;
            }
            self.world.advance(Duration::minutes(1));
            let worker = self.drain_worker(tally).await?;
            if worker.messages > 0 {
                tally.worker.add(&worker);
                self.mark_step_end().await?;
            }
        }
        Ok(())
    }

    /// Uploads one record at Polar; returns the webhook deliveries it causes.
    fn upload(&mut self, scheduled: &Scheduled) -> anyhow::Result<usize> {
        let polar = &self.world.polar;
        let account = self.athletes[scheduled.athlete].polar_user_id;
        let date = scheduled.date;
        let new = |kind: RecordKind, values: Map<String, Value>| NewRecord {
            kind,
            date: Some(date),
            start_time: None,
            values,
            ready: true,
            uploaded_at: Some(scheduled.at),
        };
        let (kind, key, steps) = match &scheduled.upload {
            Upload::Exercise { start } => {
                let view = polar.add_record(
                    account,
                    NewRecord {
                        start_time: Some(*start),
                        date: None,
                        ..new(
                            RecordKind::Exercise,
                            unrequested_parts(RecordKind::Exercise),
                        )
                    },
                )?;
                (RecordKind::Exercise, view.key, None)
            }
            Upload::Sleep => {
                let view = polar.add_record(account, new(RecordKind::Sleep, Map::new()))?;
                (RecordKind::Sleep, view.key, None)
            }
            Upload::Recharge => {
                let view = polar.add_record(account, new(RecordKind::Recharge, Map::new()))?;
                (RecordKind::Recharge, view.key, None)
            }
            Upload::ActivityFirst { steps } => {
                let mut values = unrequested_parts(RecordKind::Activity);
                values.insert("steps".to_string(), Value::from(*steps));
                let view = polar.add_record(account, new(RecordKind::Activity, values))?;
                (RecordKind::Activity, view.key, Some(*steps))
            }
            Upload::ActivityRevision { steps } => {
                let values = Map::from_iter([("steps".to_string(), Value::from(*steps))]);
                let view = polar.revise_record(
                    account,
                    RecordKind::Activity,
                    &date.to_string(),
                    values,
                )?;
                (RecordKind::Activity, view.key, Some(*steps))
            }
        };
        self.tracks
            .entry((scheduled.athlete, kind, key))
            .and_modify(|t| {
                t.last_at = scheduled.at;
                t.final_steps = steps;
            })
            .or_insert(Track {
                first_at: scheduled.at,
                last_at: scheduled.at,
                final_steps: steps,
            });
        // Polar has no webhook event for Nightly Recharge; the SLEEP event covers the night.
        Ok(usize::from(
            kind != RecordKind::Recharge && self.relay.is_some(),
        ))
    }

    /// Stamps the end of a step in Smartabase's server time: a request to an unknown path is logged with
    /// a tick later than every event written so far and earlier than every later one.
    async fn mark_step_end(&mut self) -> anyhow::Result<()> {
        let url = format!("{}/bench-step-end", self.world.smartabase.base_url());
        self.marker.get(url).send().await?;
        let marker_ms = self
            .world
            .smartabase
            .requests()
            .iter()
            .rev()
            .find(|r| r.endpoint.is_none() && r.path == "/bench-step-end")
            .map(|r| r.at_ms)
            .context("the step marker is not in smartabase-sim's log")?;
        let now = self.now();
        self.step_ends.push((marker_ms, now));
        Ok(())
    }

    fn landed(&self, server_ms: i64) -> Option<DateTime<Utc>> {
        let step = self
            .step_ends
            .partition_point(|(marker, _)| *marker < server_ms);
        self.step_ends.get(step).map(|(_, at)| *at)
    }

    /// Smartabase against what was uploaded.
    fn check_delivery(&self) -> Delivery {
        let athlete_of: HashMap<i64, usize> = self
            .athletes
            .iter()
            .enumerate()
            .map(|(i, a)| (a.user_id, i))
            .collect();
        let mut found: HashMap<RecordId, Vec<(i64, i64, Option<String>)>> = HashMap::new();
        let mut unexpected = 0;
        for event in self.world.smartabase.events(&EventFilter::default()) {
            let kind = match event.form_name.as_str() {
                POLAR_TRAINING => RecordKind::Exercise,
                POLAR_ACTIVITY => RecordKind::Activity,
                POLAR_SLEEP => RecordKind::Sleep,
                POLAR_NIGHTLY_RECHARGE => RecordKind::Recharge,
                _ => continue,
            };
            let key = match kind {
                RecordKind::Exercise => event.value("Polar Exercise ID").map(str::to_string),
                _ => Some(event.start.date().to_string()),
            };
            match (athlete_of.get(&event.user_id), key) {
                (Some(athlete), Some(key)) => {
                    found.entry((*athlete, kind, key)).or_default().push((
                        event.created_at_ms,
                        event.modified_at_ms,
                        event.value("Steps").map(str::to_string),
                    ))
                }
                _ => unexpected += 1,
            }
        }
        let mut delivery = Delivery {
            records: self.tracks.len() as u64,
            ..Delivery::default()
        };
        let mut first_lags = Vec::new();
        let mut last_lags = Vec::new();
        let mut worst_by_kind = std::collections::BTreeMap::new();
        let interval = Duration::minutes(i64::from(self.options.interval_minutes));
        for (id, track) in &self.tracks {
            let Some(events) = found.remove(id) else {
                delivery.missing += 1;
                continue;
            };
            if events.len() > 1 {
                delivery.duplicated += 1;
            }
            let (created, modified, steps) = &events[0];
            let mut worst = worst_by_kind
                .get(&id.1)
                .copied()
                .unwrap_or((0.0_f64, 0.0_f64));
            if let Some(landed) = self.landed(*created) {
                let lag = landed - track.first_at;
                let minutes = lag.num_seconds() as f64 / 60.0;
                worst.0 = worst.0.max(minutes);
                first_lags.push(minutes);
                if lag > interval {
                    delivery.later_than_interval += 1;
                }
            }
            let current = match track.final_steps {
                Some(expected) => steps.as_deref() == Some(expected.to_string().as_str()),
                None => true,
            };
            if !current {
                delivery.stale += 1;
            } else if let Some(landed) = self.landed(*modified) {
                let minutes = (landed - track.last_at).num_seconds() as f64 / 60.0;
                worst.1 = worst.1.max(minutes);
                last_lags.push(minutes);
            }
            worst_by_kind.insert(id.1, worst);
        }
        delivery.unexpected = unexpected + found.len() as u64;
        delivery.worst_lag_minutes_by_kind = worst_by_kind
            .into_iter()
            .map(|(kind, worst)| (format!("{kind:?}").to_lowercase(), worst))
            .collect();
        delivery.first_version_lag_minutes = Spread::of(first_lags);
        delivery.last_version_lag_minutes = Spread::of(last_lags);
        delivery
    }
}

/// Empty stand-ins for the parts of a record Polar serves only when asked (an exercise's `samples` and
/// `route`, an activity's minute `samples`). The connector never asks for them, so Polar's answers are
/// the same with or without them, and polar-sim, which copies whole stored records on every request,
/// stays small and fast enough for large fleets.
pub fn unrequested_parts(kind: RecordKind) -> Map<String, Value> {
    let parts = match kind {
        RecordKind::Exercise => json!({"samples": [], "route": []}),
        RecordKind::Activity => json!({"samples": {}}),
        _ => json!({}),
    };
    match parts {
        Value::Object(parts) => parts,
        _ => Map::new(),
    }
}

/// The `/v3/` data endpoints (what "Polar calls" counts).
pub const DATA_ENDPOINTS: [&str; 8] = [
    "exercises (list)",
    "exercise (one)",
    "activities (list)",
    "activity (one day)",
    "sleep (list)",
    "sleep (one night)",
    "recharge (list)",
    "recharge (one night)",
];

/// A name for what a `/v3/` path asks for.
pub fn endpoint_kind(path: &str) -> &'static str {
    let path = path.trim_end_matches('/');
    let one = |prefix: &str| path.len() > prefix.len() && path.starts_with(prefix);
    match path {
        "/v3/exercises" => "exercises (list)",
        _ if one("/v3/exercises/") => "exercise (one)",
        "/v3/users/activities" => "activities (list)",
        _ if one("/v3/users/activities/") => "activity (one day)",
        "/v3/users/sleep" => "sleep (list)",
        _ if one("/v3/users/sleep/") => "sleep (one night)",
        "/v3/users/nightly-recharge" => "recharge (list)",
        _ if one("/v3/users/nightly-recharge/") => "recharge (one night)",
        "/v3/users" => "register user",
        _ if path.starts_with("/v3/webhooks") => "webhooks",
        _ if path.starts_with("/v3/users/") => "user",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_named_by_what_they_fetch() {
        assert_eq!(endpoint_kind("/v3/exercises"), "exercises (list)");
        assert_eq!(endpoint_kind("/v3/exercises/abc"), "exercise (one)");
        assert_eq!(endpoint_kind("/v3/users/activities/"), "activities (list)");
        assert_eq!(
            endpoint_kind("/v3/users/activities/2026-03-02"),
            "activity (one day)"
        );
        assert_eq!(
            endpoint_kind("/v3/users/nightly-recharge/2026-03-02"),
            "recharge (one night)"
        );
        assert_eq!(endpoint_kind("/v3/users/12345678"), "user");
        assert_eq!(endpoint_kind("/v3/webhooks/activate"), "webhooks");
    }

    #[test]
    fn spread_takes_median_p95_and_max() {
        let spread = Spread::of((1..=100).map(f64::from).collect());
        assert_eq!(spread.count, 100);
        assert_eq!(spread.median, 51.0);
        assert_eq!(spread.p95, 95.0);
        assert_eq!(spread.max, 100.0);
        assert_eq!(Spread::of(Vec::new()).count, 0);
    }
}
