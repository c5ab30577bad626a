//! The connector in this process on both simulators, as the benchmarks drive it: a `testkit` world
//! over a metered in-memory store whose clocks start where the benchmark says, athletes linked through
//! the real web flow, Polar's signed webhook deliveries relayed into the `polar-webhook` handler, and
//! the SQS event source mapping played by one or more concurrent worker instances.

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context as _, anyhow, bail};
use aws_lambda_events::event::sqs::SqsEvent;
use chrono::{DateTime, Utc};
use polar_sim::{ConsentMode, NewAccount, PolarSim, PolarSimConfig};
use serde::Serialize;
use shared::bootstrap;
use shared::config::{Config, Secrets};
use shared::ids::AthleteUuid;
use shared::polar::{PolarApi as _, WebhookEventType};
use shared::store::Store;
use shared::testing::{FixedClock, MemoryStore};
use smartabase_sim::{NewUser, SmartabaseSim, SmartabaseSimConfig};
use testkit::front::HttpRequest;
use testkit::queue::LocalQueue;
use testkit::webhook_relay::WebhookRelay;
use testkit::world::{PUBLIC_BASE_URL, World, environment, test_secrets_json};

use crate::metered::MeteredStore;

/// The world every in-process benchmark runs.
pub type BenchWorld = World<MeteredStore<MemoryStore>>;

/// A world whose connector clock and Polar clock both show `start`.
pub async fn world(start: DateTime<Utc>, sync_interval_minutes: u32) -> anyhow::Result<BenchWorld> {
    let polar = PolarSim::start(PolarSimConfig {
        consent_mode: ConsentMode::AutoAccept,
        redirect_uris: vec![format!("{PUBLIC_BASE_URL}/polar/callback")],
        ..PolarSimConfig::default()
    })
    .await
    .context("starting polar-sim")?;
    let smartabase = SmartabaseSim::start(SmartabaseSimConfig::default())
        .await
        .context("starting smartabase-sim")?;
    // polar-sim runs on real time plus an offset, in whole seconds: move it to just past `start`, so a
    // record uploaded "now" on the connector's clock is never in Polar's future.
    let ahead = (start - polar.now()).num_seconds() + 1;
    if ahead < 1 {
        bail!("the benchmark must start in the future (polar-sim's clock only moves forward)");
    }
    polar.advance_clock(ahead)?;
    let clock = FixedClock::new(start);
    let secrets_json = test_secrets_json(&polar, &smartabase, None);
    let env = environment(
        "memory",
        "memory",
        "bench-secret",
        &polar,
        &smartabase,
        PUBLIC_BASE_URL,
        sync_interval_minutes,
    );
    let config =
        Config::from_lookup(|name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))?;
    let secrets = Secrets::from_json(&secrets_json)?;
    let connector = bootstrap::connector(
        &config,
        &secrets,
        MeteredStore::new(MemoryStore::new()),
        LocalQueue::memory(clock.clone()),
        clock.clone(),
    )
    .await?;
    Ok(World {
        polar,
        smartabase,
        connector,
        clock,
        config,
        secrets,
        secrets_json,
    })
}

/// One athlete linked on both sides.
#[derive(Debug, Clone)]
pub struct Athlete {
    /// Smartabase UUID.
    pub uuid: AthleteUuid,
    /// Smartabase user id.
    pub user_id: i64,
    /// Polar user id.
    pub polar_user_id: i64,
    /// The Polar account's UTC offset in minutes.
    pub utc_offset_minutes: i32,
}

/// Puts `count` athletes on the roster, runs the scan, and links each through the web flow
/// (authorisation link → Polar's consent → callback); every link queues a first sync. Polar accounts
/// take the simulator's rotation of twelve time zones, from UTC−10:00 to UTC+13:45.
pub async fn link_athletes<S: Store>(
    world: &World<S>,
    count: usize,
    progress: impl Fn(usize),
) -> anyhow::Result<Vec<Athlete>> {
    let users = world.smartabase.add_users(
        (0..count)
            .map(|i| NewUser {
                first_name: "Bench".into(),
                last_name: format!("Athlete{i}"),
                uuid: format!("bench-{i:06}"),
                ..NewUser::default()
            })
            .collect(),
    );
    let mut athletes = Vec::with_capacity(count);
    for user in users {
        let account = world.polar.create_account(NewAccount::default())?;
        athletes.push(Athlete {
            uuid: AthleteUuid::parse(user.uuid.clone())?,
            user_id: user.user_id,
            polar_user_id: account.polar_user_id,
            utc_offset_minutes: account.utc_offset_minutes,
        });
    }
    world.scan().await?;
    // One browser for every consent (building a client per link would dominate the linking time).
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()?;
    for (i, athlete) in athletes.iter().enumerate() {
        let authorize = world
            .http(HttpRequest::get(world.link_path(athlete.uuid.as_str())))
            .await?;
        let location = authorize
            .header("location")
            .ok_or_else(|| anyhow!("authorize answered {} without a redirect", authorize.status))?;
        world.polar.login(Some(athlete.polar_user_id))?;
        let at_polar = browser.get(location).send().await?;
        let back = at_polar
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow!("Polar did not redirect back ({})", at_polar.status()))?;
        let callback = back.strip_prefix(PUBLIC_BASE_URL).unwrap_or(back);
        let page = world
            .http(HttpRequest::get(callback).with_cookies_from(&authorize))
            .await?;
        if page.status != 200 {
            bail!("linking {} failed: {}", athlete.uuid, page.text());
        }
        if (i + 1) % 1000 == 0 {
            progress(i + 1);
        }
    }
    Ok(athletes)
}

/// Serves the next `count` webhook deliveries; returns how long the webhook function took in total and
/// how many it did not answer 200.
pub async fn serve_deliveries<S: Store>(
    relay: &mut WebhookRelay,
    world: &World<S>,
    count: usize,
) -> anyhow::Result<(StdDuration, usize)> {
    let served = relay
        .serve(world, count, StdDuration::from_secs(30))
        .await?;
    let busy = served.iter().map(|s| s.took).sum();
    let refused = served.iter().filter(|s| s.response.status != 200).count();
    Ok((busy, refused))
}

/// Registers a webhook for the connector's events at Polar (Polar pings the relay, which the
/// `polar-webhook` function answers) and gives the connector its signing secret, as
/// `connector webhook register` does for a deployment.
pub async fn register_webhook(
    world: &mut BenchWorld,
    relay: &mut WebhookRelay,
) -> anyhow::Result<()> {
    let url = relay.url.clone();
    let created = {
        let world = &*world;
        let (created, pinged) = tokio::join!(
            world
                .connector
                .polar
                .create_webhook(&url, &WebhookEventType::SUBSCRIBED),
            serve_deliveries(relay, world, 1)
        );
        pinged?;
        created.map_err(|e| anyhow!("registering the webhook at Polar: {e}"))?
    };
    world.connector.settings.polar_webhook_secret = Some(created.signature_secret);
    Ok(())
}

/// What the worker did while draining the queue.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerStats {
    /// Worker invocations (one SQS batch each).
    pub invocations: u64,
    /// Messages delivered (redeliveries counted again).
    pub messages: u64,
    /// Messages the worker reported as failed.
    pub failed: u64,
    /// Time spent inside the worker, summed over invocations (seconds).
    pub busy_seconds: f64,
    /// Wall-clock time of the drain (seconds).
    pub wall_seconds: f64,
}

impl WorkerStats {
    /// Adds another drain.
    pub fn add(&mut self, other: &WorkerStats) {
        self.invocations += other.invocations;
        self.messages += other.messages;
        self.failed += other.failed;
        self.busy_seconds += other.busy_seconds;
        self.wall_seconds += other.wall_seconds;
    }
}

/// The event source mapping's batch size (the template's `BatchSize`).
pub const BATCH_SIZE: usize = 10;

/// Delivers every visible message to the worker, as the event source mapping does with `instances`
/// concurrent invocations (each a task of its own, so they share the machine's cores) of up to `batch`
/// messages each, until no message is visible. Failed messages come back at once and go to the DLQ
/// after five receives.
pub async fn drain<S: Store + 'static>(
    world: &Arc<World<S>>,
    instances: usize,
    batch: usize,
) -> anyhow::Result<WorkerStats> {
    let started = Instant::now();
    let runs: Vec<_> = (0..instances.max(1))
        .map(|_| tokio::spawn(worker_instance(world.clone(), batch)))
        .collect();
    let mut total = WorkerStats::default();
    for run in runs {
        total.add(&run.await.context("a worker instance panicked")??);
    }
    total.wall_seconds = started.elapsed().as_secs_f64();
    Ok(total)
}

async fn worker_instance<S: Store>(
    world: Arc<World<S>>,
    batch: usize,
) -> anyhow::Result<WorkerStats> {
    let mut stats = WorkerStats::default();
    loop {
        let delivered = world.connector.queue.receive(batch).await?;
        if delivered.is_empty() {
            return Ok(stats);
        }
        let mut event = SqsEvent::default();
        event.records = delivered.iter().map(|r| r.message.clone()).collect();
        let started = Instant::now();
        let response =
            sync_worker::handle(&world.connector, event, testkit::world::no_deadline()).await;
        stats.busy_seconds += started.elapsed().as_secs_f64();
        stats.invocations += 1;
        stats.messages += delivered.len() as u64;
        let failed: Vec<String> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        stats.failed += failed.len() as u64;
        world.connector.queue.settle(&delivered, &failed).await?;
    }
}
