//! One chaos run. Athletes are linked while everything works; then, cycle after cycle of the schedules
//! (the in-memory world's queue follows the test's clock, so days pass in seconds), Polar and Smartabase
//! fail at seeded random, data keeps arriving and being revised (some of it with Polar's no-data marks),
//! webhooks race the scan and the fan-out, workers are killed mid-job and SQS delivers twice. Then the
//! faults stop, the DLQ is redriven, the schedules run until everything settles, and the run checks the
//! outcome against Polar's own records, and that no no-data mark reached Smartabase.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration as StdDuration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use chrono::{Duration, NaiveDate};
use polar_sim::{ConsentMode, FaultKind, FaultSpec, NewRecord, PolarSimConfig, RecordKind};
use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};
use serde_json::{Value, json};
use shared::clock::Clock as _;
use shared::crypto::hmac_hex;
use shared::model::AthleteStatus;
use shared::queue::{JobQueue as _, Outgoing, SyncJob};
use shared::testing::MemoryStore;
use smartabase_sim::SmartabaseSimConfig;
use testkit::front::HttpRequest;
use testkit::world::{World, WorldOptions, no_deadline};

use super::faults::{self, HTTP_TIMEOUT_MS, Tally};
use super::sync_support::{
    Linked, assert_smartabase_matches_polar, link_athletes, no_data_in_smartabase, stored_athlete,
};

/// How big a run is.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Athletes linked.
    pub athletes: usize,
    /// Days of history each starts with.
    pub days: u32,
    /// Chaos cycles (each moves the clock by [`CYCLE`]).
    pub cycles: usize,
    /// Polar timeouts at most (each costs a second of wall time).
    pub polar_timeouts: u32,
    /// The run fails if fewer faults than this happened (the plan would not be testing much).
    pub min_faults: u64,
}

/// The schedules' step: with a webhook registered, full syncs come every six hours, so every third cycle.
const CYCLE: Duration = Duration::hours(2);
/// Time passes in steps of a quarter hour (SQS's longest delay) within a cycle.
const STEP: Duration = Duration::minutes(15);
/// Settling rounds at most once the faults stop.
const SETTLE_ROUNDS: usize = 6;
/// Worker batches per drain at most (a runaway loop is a failure, not a hang).
const MAX_BATCHES: usize = 2_000;
/// Time zones of the athletes: the odd ones of the brief and some plain ones.
const OFFSETS: [i32; 8] = [-600, -570, 345, 825, 0, 60, -300, 540];

/// The chance per cycle, batch or change of each thing the test does itself.
mod odds {
    pub const DATA_CHANGE: f64 = 0.35;
    pub const WEBHOOK: f64 = 0.7;
    pub const DOUBLE_FIRE: f64 = 0.2;
    pub const RACE: f64 = 0.4;
    pub const SCAN: f64 = 0.3;
    pub const STORM: f64 = 0.25;
    pub const SMARTABASE_TIMEOUT: f64 = 0.3;
    pub const KILL: f64 = 0.08;
    pub const DEADLINE: f64 = 0.05;
    pub const CONCURRENT_DUPLICATE: f64 = 0.05;
    pub const RESEND: f64 = 0.05;
    /// Records generated with values Polar marks as not measured.
    pub const NO_DATA: f64 = 0.2;
    /// Revisions that mark a value as not measured instead of changing it.
    pub const NO_DATA_REVISION: f64 = 0.25;
}

/// What happened, for the report.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// Worker outcome lines by `outcome`.
    pub worker: BTreeMap<String, u64>,
    /// Lost writes found in Smartabase instead of being written twice (`recovered` of the synced lines).
    pub recovered: u64,
    /// Polar answers with status 429 (injected and real).
    pub polar_429s: u64,
    /// Polar API calls (`/v3/`), all phases.
    pub polar_calls: u64,
    /// Smartabase API calls, all phases.
    pub smartabase_calls: u64,
    /// Jobs that reached the DLQ (all redriven once the faults stopped).
    pub dead_lettered: usize,
    /// Scan runs that failed as a whole under the faults.
    pub scan_failures: u64,
    /// Webhook deliveries sent (duplicates included), all answered 200.
    pub webhooks: u64,
    /// Records added or revised at Polar during the chaos.
    pub data_changes: u64,
    /// Watch backlogs uploaded days after their dates (part of `data_changes`).
    pub late_uploads: u64,
    /// Settling rounds it took.
    pub settle_rounds: usize,
    /// Events checked against Polar at the end.
    pub events_checked: usize,
}

/// The whole run's state.
struct Chaos {
    world: World<MemoryStore>,
    rng: StdRng,
    athletes: Vec<Linked>,
    webhook_secret: String,
    prefix: String,
    tally: Tally,
    outcomes: Outcomes,
    smartabase_timeouts: u64,
}

/// Runs the chaos and checks the result; panics naming the seed on any failure.
pub async fn run(size: Size, seed: u64) {
    let started = Instant::now();
    println!(
        "chaos: seed {seed}: {} athletes x {} days, {} cycles (rerun with CHAOS_SEED={seed})",
        size.athletes, size.days, size.cycles
    );
    let mut chaos = Chaos::start(size, seed).await;
    let standing = faults::install_standing(
        &chaos.world.polar,
        &chaos.world.smartabase,
        size.polar_timeouts,
    );
    for _ in 0..size.cycles {
        chaos.cycle().await;
    }
    chaos.tally.read_simulators(
        &chaos.world.polar,
        &standing,
        &chaos.world.smartabase,
        chaos.smartabase_timeouts,
    );
    chaos.world.polar.clear_faults();
    chaos.world.smartabase.clear_faults();
    chaos.settle().await;
    chaos.count_outcomes();
    chaos.report(seed, started);
    chaos.verify(size, seed).await;
}

impl Chaos {
    async fn start(size: Size, seed: u64) -> Self {
        let webhook_secret = format!("chaos-webhook-secret-{seed:016x}");
        let world = World::in_memory(WorldOptions {
            polar: PolarSimConfig {
                consent_mode: ConsentMode::AutoAccept,
                seed,
                ..PolarSimConfig::default()
            },
            smartabase: SmartabaseSimConfig {
                seed,
                ..SmartabaseSimConfig::default()
            },
            webhook_secret: Some(webhook_secret.clone()),
            http_timeout: Some(StdDuration::from_millis(HTTP_TIMEOUT_MS)),
            ..WorldOptions::default()
        })
        .await
        .unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let offsets: Vec<i32> = (0..size.athletes)
            .map(|_| OFFSETS[rng.random_range(0..OFFSETS.len())])
            .collect();
        let prefix = format!("chaos{seed:x}");
        let athletes = link_athletes(&world, &prefix, &offsets).await;
        for a in &athletes {
            world
                .polar
                .generate(
                    a.polar,
                    &polar_sim::GenerateRequest {
                        days: size.days,
                        upload: polar_sim::UploadMode::Now,
                        seed: Some(rng.random()),
                        no_data: odds::NO_DATA,
                        ..polar_sim::GenerateRequest::default()
                    },
                )
                .unwrap();
        }
        Self {
            world,
            rng,
            athletes,
            webhook_secret,
            prefix,
            tally: Tally::default(),
            outcomes: Outcomes::default(),
            smartabase_timeouts: 0,
        }
    }

    /// One cycle of the schedules under faults.
    async fn cycle(&mut self) {
        self.change_data().await;
        if self.rng.random_bool(odds::STORM) {
            let count = self.rng.random_range(3..12);
            self.world
                .polar
                .inject_fault(FaultSpec {
                    path_prefix: "/v3/".into(),
                    method: None,
                    fault: FaultKind::RateLimited,
                    count: Some(count),
                    probability: None,
                })
                .unwrap();
        }
        if self.rng.random_bool(odds::SMARTABASE_TIMEOUT) {
            self.world
                .smartabase
                .add_fault(faults::smartabase_timeout())
                .unwrap();
            self.smartabase_timeouts += 1;
        }
        if self.rng.random_bool(odds::SCAN) && self.world.scan().await.is_err() {
            self.outcomes.scan_failures += 1;
        }
        if self.rng.random_bool(odds::RACE) {
            self.race().await;
        } else {
            self.world.fanout().await.unwrap();
        }
        // The cycle's two hours pass in quarter hours, so jobs deferred by a 429 or the budget come back
        // within it, as SQS delays bring them back.
        let mut passed = Duration::zero();
        while passed < CYCLE {
            self.drain().await;
            self.world.advance(STEP);
            passed += STEP;
        }
        self.drain().await;
    }

    /// New and revised records at Polar, most of them announced by a webhook (sometimes twice).
    async fn change_data(&mut self) {
        for index in 0..self.athletes.len() {
            if !self.rng.random_bool(odds::DATA_CHANGE) {
                continue;
            }
            let announced = self.change_one(index);
            self.outcomes.data_changes += 1;
            if let Some(body) = announced
                && self.rng.random_bool(odds::WEBHOOK)
            {
                let times = if self.rng.random_bool(odds::DOUBLE_FIRE) {
                    2
                } else {
                    1
                };
                for _ in 0..times {
                    let response = self.world.http(self.webhook(&body)).await.unwrap();
                    assert_eq!(response.status, 200, "webhook: {}", response.text());
                    self.outcomes.webhooks += 1;
                }
            }
        }
    }

    /// Adds or revises one record of an athlete; returns the webhook body Polar would send.
    fn change_one(&mut self, index: usize) -> Option<Value> {
        let a = self.athletes[index].clone();
        let today = (self.world.polar.now() + Duration::minutes(i64::from(a.offset))).date_naive();
        let recent = |kind: RecordKind| -> Vec<String> {
            self.world
                .polar
                .records(a.polar, Some(kind))
                .unwrap()
                .into_iter()
                .filter(|r| match kind {
                    RecordKind::Exercise => {
                        r.uploaded_at > self.world.polar.now() - Duration::hours(20)
                    }
                    // Polar revises the last days only.
                    _ => date(&r.key) >= today - Duration::days(1),
                })
                .map(|r| r.key)
                .collect()
        };
        let pick = self.rng.random_range(0..100);
        let marks = self.rng.random_bool(odds::NO_DATA_REVISION);
        let (kind, values) = match pick {
            0..30 => {
                let added = self
                    .world
                    .polar
                    .add_record(a.polar, new_record(RecordKind::Exercise, None))
                    .unwrap();
                return Some(event("EXERCISE", a.polar, Some(&added.key), None));
            }
            // Polar's no-data marks (reference §8.3) in place of one value: never a coach's data.
            30..48 if marks => (RecordKind::Activity, json!({"steps": 0})),
            48..66 if marks => (
                RecordKind::Sleep,
                json!({"sleep_charge": -1, "continuity": 0, "continuity_class": 0}),
            ),
            66..76 if marks => (
                RecordKind::Recharge,
                json!({"heart_rate_avg": 0, "beat_to_beat_avg": 0}),
            ),
            88.. if marks => (
                RecordKind::Exercise,
                json!({"heart_rate": {"average": 0, "maximum": 0}}),
            ),
            30..48 => (
                RecordKind::Activity,
                json!({"steps": self.rng.random_range(1_000..30_000)}),
            ),
            48..66 => (
                RecordKind::Sleep,
                json!({"sleep_score": self.rng.random_range(40..99)}),
            ),
            66..76 => (
                RecordKind::Recharge,
                json!({"ans_charge": f64::from(self.rng.random_range(-90..90)) / 10.0}),
            ),
            76..88 => {
                // A watch synced after days away: sessions, days, nights and recharges dated up to 20 days
                // back, uploaded now (well inside Polar's windows until the run ends). Any webhook names
                // the last night only.
                let end = today - Duration::days(self.rng.random_range(4..=20));
                self.world
                    .polar
                    .generate(
                        a.polar,
                        &polar_sim::GenerateRequest {
                            days: self.rng.random_range(1..=3),
                            end_date: Some(end),
                            upload: polar_sim::UploadMode::Now,
                            seed: Some(self.rng.random()),
                            no_data: odds::NO_DATA,
                            optional_data: false,
                        },
                    )
                    .unwrap();
                self.outcomes.late_uploads += 1;
                return Some(event("SLEEP", a.polar, None, Some(&end.to_string())));
            }
            _ => (
                RecordKind::Exercise,
                json!({"calories": self.rng.random_range(100..1_500)}),
            ),
        };

        let candidates = recent(kind);
        let values = values.as_object().cloned().unwrap_or_default();
        let key = if candidates.is_empty() {
            if kind == RecordKind::Exercise || kind == RecordKind::Recharge {
                return None;
            }
            // Nothing recent of this kind: today's record arrives.
            let mut record = new_record(kind, Some(today));
            record.values = values;
            self.world.polar.add_record(a.polar, record).unwrap().key
        } else {
            let key = candidates[self.rng.random_range(0..candidates.len())].clone();
            self.world
                .polar
                .revise_record(a.polar, kind, &key, values)
                .unwrap();
            key
        };
        if marks {
            self.tally.one("Polar no-data marks in a revision");
        }
        Some(match kind {
            RecordKind::Exercise => event("EXERCISE", a.polar, Some(&key), None),
            RecordKind::Activity => event("ACTIVITY_SUMMARY", a.polar, None, Some(&key)),
            _ => event("SLEEP", a.polar, None, Some(&key)),
        })
    }

    /// A signed delivery of `body`, as Polar sends it.
    fn webhook(&self, body: &Value) -> HttpRequest {
        let raw = body.to_string();
        let signature = hmac_hex(self.webhook_secret.as_bytes(), raw.as_bytes());
        HttpRequest::post("/polar/webhook", raw.into_bytes())
            .header("polar-webhook-event", body["event"].as_str().unwrap_or(""))
            .header("polar-webhook-signature", signature)
    }

    /// The scan, a webhook and the fan-out at once for one athlete who is due.
    async fn race(&mut self) {
        let a = self.athletes[self.rng.random_range(0..self.athletes.len())].clone();
        let today = (self.world.polar.now() + Duration::minutes(i64::from(a.offset))).date_naive();
        let delivery = self.webhook(&event(
            "ACTIVITY_SUMMARY",
            a.polar,
            None,
            Some(&today.to_string()),
        ));
        self.world
            .connector
            .update_athlete(&a.athlete(), |athlete| {
                athlete.next_sync_due = Some(self.world.clock.now())
            })
            .await
            .unwrap();
        let (scan, webhook, fanout) = tokio::join!(
            self.world.scan(),
            self.world.http(delivery),
            self.world.fanout()
        );
        if scan.is_err() {
            self.outcomes.scan_failures += 1;
        }
        let webhook = webhook.unwrap();
        assert_eq!(webhook.status, 200, "racing webhook: {}", webhook.text());
        self.outcomes.webhooks += 1;
        fanout.unwrap();
        self.tally
            .one("race: scan + webhook + fan-out for one athlete");
    }

    /// Delivers the queue to the worker until nothing is visible, killing workers, delivering batches
    /// twice at once and sending messages again along the way.
    async fn drain(&mut self) {
        let queue = &self.world.connector.queue;
        for _ in 0..MAX_BATCHES {
            let delivered = queue.receive(10).await.unwrap();
            if delivered.is_empty() {
                return;
            }
            let mut event = SqsEvent::default();
            event.records = delivered.iter().map(|r| r.message.clone()).collect();
            if self.rng.random_bool(odds::RESEND) {
                // At-least-once delivery: the same message arrives again later.
                let again = &delivered[self.rng.random_range(0..delivered.len())];
                let job = SyncJob::from_body(again.message.body.as_deref().unwrap_or("")).unwrap();
                queue
                    .send_batch(&[Outgoing {
                        job,
                        delay_seconds: 0,
                    }])
                    .await
                    .unwrap();
                self.tally.one("SQS duplicate (sent again)");
            }
            let ids = |e: &SqsEvent| -> Vec<String> {
                e.records
                    .iter()
                    .filter_map(|m| m.message_id.clone())
                    .collect()
            };
            let failed: Vec<String> = if self.rng.random_bool(odds::KILL) {
                let after = StdDuration::from_millis(self.rng.random_range(1..30));
                let all = ids(&event);
                match tokio::time::timeout(
                    after,
                    sync_worker::handle(&self.world.connector, event, no_deadline()),
                )
                .await
                {
                    Ok(response) => failures(response),
                    Err(_) => {
                        // The Lambda died mid-job: nothing was acknowledged, every message comes back.
                        self.tally.one("worker killed mid-job");
                        all
                    }
                }
            } else if self.rng.random_bool(odds::DEADLINE) {
                // The invocation's deadline comes mid-batch: unfinished jobs are handed back, not failed.
                let deadline =
                    Instant::now() + StdDuration::from_millis(self.rng.random_range(0..40));
                self.tally.one("worker deadline mid-batch");
                failures(sync_worker::handle(&self.world.connector, event, deadline).await)
            } else if self.rng.random_bool(odds::CONCURRENT_DUPLICATE) {
                // The same batch delivered to two workers at once; a message is done if either finished it.
                let (first, second) = tokio::join!(
                    sync_worker::handle(&self.world.connector, event.clone(), no_deadline()),
                    sync_worker::handle(&self.world.connector, event, no_deadline())
                );
                self.tally.one("SQS duplicate (delivered twice at once)");
                let second = failures(second);
                failures(first)
                    .into_iter()
                    .filter(|id| second.contains(id))
                    .collect()
            } else {
                failures(sync_worker::handle(&self.world.connector, event, no_deadline()).await)
            };
            queue.settle(&delivered, &failed).await.unwrap();
        }
        panic!("the worker did not drain the queue in {MAX_BATCHES} batches");
    }

    /// Faults off: redrive the DLQ, then run the schedules until Smartabase holds what Polar has.
    async fn settle(&mut self) {
        let dead = self.world.connector.queue.dead_letters().await.unwrap();
        self.outcomes.dead_lettered = dead.len();
        for chunk in dead.chunks(10) {
            let jobs: Vec<Outgoing> = chunk
                .iter()
                .map(|body| Outgoing {
                    job: SyncJob::from_body(body).unwrap(),
                    delay_seconds: 0,
                })
                .collect();
            let failed = self.world.connector.queue.send_batch(&jobs).await.unwrap();
            assert!(failed.is_empty(), "redrive refused: {failed:?}");
        }
        for round in 1..=SETTLE_ROUNDS {
            self.outcomes.settle_rounds = round;
            // Every athlete is due again, every deferred job visible.
            self.world
                .advance(connector_interval() + Duration::minutes(16));
            self.world.scan().await.unwrap();
            self.world.fanout().await.unwrap();
            let run = self.world.run_worker().await.unwrap();
            assert_eq!(run.failed, 0, "a job failed with no fault injected");
            if self.mismatches().is_empty() {
                break;
            }
        }
    }

    /// Athletes whose Smartabase events differ from Polar's records, with the first difference.
    fn mismatches(&self) -> Vec<String> {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let found = self
            .athletes
            .iter()
            .filter_map(|a| {
                catch_unwind(AssertUnwindSafe(|| {
                    assert_smartabase_matches_polar(&self.world, a)
                }))
                .err()
                .map(|e| panic_text(&e))
            })
            .collect();
        std::panic::set_hook(hook);
        found
    }

    fn count_outcomes(&mut self) {
        let prefix = &self.prefix;
        for line in testkit::logs::captured() {
            let Ok(line) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let athlete = line["athlete"]
                .as_str()
                .or_else(|| line["span"]["athlete"].as_str())
                .unwrap_or("");
            // Worker lines carry the job's span; the athlete tells this run's lines from other tests'.
            if !athlete.starts_with(&format!("{prefix}-")) || line["span"]["job_id"].is_null() {
                continue;
            }
            if let Some(outcome) = line["outcome"].as_str() {
                let key = match line["reason"].as_str() {
                    Some(reason) => format!("{outcome} ({reason})"),
                    None => outcome.to_string(),
                };
                *self.outcomes.worker.entry(key).or_default() += 1;
                self.outcomes.recovered += line["recovered"].as_u64().unwrap_or(0);
            }
        }
        let polar = self.world.polar.requests();
        self.outcomes.polar_429s = polar.iter().filter(|r| r.status == Some(429)).count() as u64;
        self.outcomes.polar_calls =
            polar.iter().filter(|r| r.path.starts_with("/v3/")).count() as u64;
        self.outcomes.smartabase_calls = self.world.smartabase.requests().len() as u64;
    }

    fn report(&self, seed: u64, started: Instant) {
        println!("chaos: seed {seed}: {} faults injected", self.tally.total());
        for (kind, count) in &self.tally.faults {
            println!("  {count:>6}  {kind}");
        }
        let o = &self.outcomes;
        println!("chaos: outcomes of the worker's jobs (log lines of this run):");
        for (outcome, count) in &o.worker {
            println!("  {count:>6}  {outcome}");
        }
        println!(
            "chaos: {} Polar calls, {} Smartabase calls",
            o.polar_calls, o.smartabase_calls
        );
        println!(
            "chaos: {} Polar 429s, {} lost writes recovered, {} jobs dead-lettered and redriven, \
             {} scan runs failed, {} webhooks, {} records added or revised ({} late backlogs)",
            o.polar_429s,
            o.recovered,
            o.dead_lettered,
            o.scan_failures,
            o.webhooks,
            o.data_changes,
            o.late_uploads
        );
        println!(
            "chaos: settled in {} round(s); {:.1} s wall time",
            o.settle_rounds,
            started.elapsed().as_secs_f64()
        );
    }

    /// The promises: everything delivered exactly once with its latest values, nothing left in the DLQ
    /// or the queue, no one unlinked by a transient error, and no write once everything is in place.
    async fn verify(&mut self, size: Size, seed: u64) {
        let fail = |what: String| -> ! {
            panic!("chaos seed {seed} (rerun with CHAOS_SEED={seed}): {what}")
        };
        let mismatches = self.mismatches();
        if !mismatches.is_empty() {
            fail(format!(
                "{} of {} athletes' Smartabase data differs from Polar's, e.g.:\n{}",
                mismatches.len(),
                self.athletes.len(),
                mismatches
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        self.outcomes.events_checked = self
            .athletes
            .iter()
            .map(|a| assert_smartabase_matches_polar(&self.world, a))
            .sum();
        let no_data: Vec<String> = self
            .athletes
            .iter()
            .flat_map(|a| no_data_in_smartabase(&self.world, a))
            .collect();
        if !no_data.is_empty() {
            fail(format!(
                "{} no-data value(s) reached Smartabase, e.g. {:?}",
                no_data.len(),
                &no_data[..no_data.len().min(5)]
            ));
        }
        let queue = &self.world.connector.queue;
        let dead = queue.dead_letters().await.unwrap();
        if dead.len() != self.outcomes.dead_lettered {
            fail(format!(
                "{} job(s) reached the DLQ after the faults stopped",
                dead.len() - self.outcomes.dead_lettered
            ));
        }
        for a in &self.athletes {
            let stored = stored_athlete(&self.world, a).await;
            if stored.status != AthleteStatus::Linked {
                fail(format!(
                    "{} is {:?} after transient errors only",
                    a.uuid, stored.status
                ));
            }
        }
        if !self.world.smartabase.dropped_fields().is_empty() {
            fail("Smartabase dropped fields".into());
        }
        // One more full round, then the stragglers (a recharge asked for again every 15 minutes, at most
        // six times): nothing left to write, nothing left queued.
        self.world.smartabase.clear_requests();
        self.world
            .advance(connector_interval() + Duration::minutes(16));
        self.world.fanout().await.unwrap();
        let mut failed = self.world.run_worker().await.unwrap().failed;
        for _ in 0..8 {
            if queue.depth().await.unwrap() == 0 {
                break;
            }
            self.world.advance(Duration::minutes(16));
            failed += self.world.run_worker().await.unwrap().failed;
        }
        let writes = self
            .world
            .smartabase
            .requests()
            .iter()
            .filter(|r| r.endpoint.as_deref() == Some("eventsimport"))
            .count();
        if failed > 0 || writes > 0 {
            fail(format!(
                "a settled connector still failed {failed} job(s) or wrote {writes} time(s)"
            ));
        }
        let left = queue.depth().await.unwrap();
        if left != 0 {
            fail(format!(
                "{left} job(s) left on the queue two hours after everything settled"
            ));
        }
        if self.tally.total() < size.min_faults {
            fail(format!(
                "only {} faults happened, fewer than the {} this size must inject",
                self.tally.total(),
                size.min_faults
            ));
        }
        println!(
            "chaos: seed {seed}: {} events in Smartabase match Polar exactly once, {} athletes still linked",
            self.outcomes.events_checked,
            self.athletes.len()
        );
    }
}

/// The scheduled interval with a webhook registered (the reconciliation interval).
fn connector_interval() -> Duration {
    shared::usecase::sync::RECONCILIATION_INTERVAL
}

fn failures(response: aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect()
}

fn new_record(kind: RecordKind, date: Option<NaiveDate>) -> NewRecord {
    NewRecord {
        kind,
        date,
        start_time: None,
        values: Default::default(),
        ready: true,
        uploaded_at: None,
    }
}

fn date(key: &str) -> NaiveDate {
    NaiveDate::parse_from_str(key, "%Y-%m-%d").unwrap()
}

/// A Polar webhook payload.
fn event(kind: &str, polar_user: i64, entity: Option<&str>, date: Option<&str>) -> Value {
    let mut body =
        json!({"event": kind, "user_id": polar_user, "timestamp": "2026-01-01T00:00:00Z"});
    if let Some(id) = entity {
        body["entity_id"] = id.into();
    }
    if let Some(date) = date {
        body["date"] = date.into();
    }
    body
}

fn panic_text(e: &Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}
