//! A whole connector on the local stack: both simulators, a store (memory, or DynamoDB on moto), the
//! sync queue ([`LocalQueue`]) and the connector built exactly as the functions build it, with the
//! functions' own handlers behind [`World::http`], [`World::run_worker`], [`World::scan`] and
//! [`World::fanout`]. Time is a [`FixedClock`] that [`World::advance`] moves together with Polar's.

use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context, anyhow};
use aws_lambda_events::event::sqs::SqsEvent;
use base64::Engine as _;
use chrono::{Duration, Utc};
use polar_sim::{ConsentMode, NewAccount, PolarSim, PolarSimConfig, PolarSimHandle};
use shared::bootstrap::{self, MAPPING_SETTING};
use shared::budget::BudgetState;
use shared::config::{Config, Secrets};
use shared::ids::{AthleteUuid, SmartabaseUserId};
use shared::mapping::{Mapping, OPTIONAL_FORMS};
use shared::polar::PolarClient;
use shared::queue::SqsQueue;
use shared::smartabase::SmartabaseClient;
use shared::store::{DynamoStore, Store};
use shared::testing::{FixedClock, MemoryStore};
use shared::usecase::Connector;
use shared::usecase::fanout::FanoutReport;
use shared::usecase::scan::ScanReport;
use smartabase_sim::{
    FieldDefinition, FieldKind, FormDefinition, NewUser, SmartabaseSim, SmartabaseSimConfig,
    SmartabaseSimHandle,
};

use crate::front::{self, HttpRequest, HttpResponse};
use crate::queue::LocalQueue;

/// The public URL the connector believes it has (requests reach it through [`World::http`]).
pub const PUBLIC_BASE_URL: &str = "https://connector.test";

/// How to build a world.
#[derive(Debug, Clone)]
pub struct WorldOptions {
    /// Polar simulator settings (the redirect URI and client credentials are set by the world).
    pub polar: PolarSimConfig,
    /// Smartabase simulator settings.
    pub smartabase: SmartabaseSimConfig,
    /// Register a webhook secret in the connector's secrets.
    pub webhook_secret: Option<String>,
    /// `SYNC_INTERVAL_MINUTES`.
    pub sync_interval_minutes: u32,
    /// Per-request timeout of the connector's Polar and Smartabase HTTP clients; `None` keeps
    /// production's (20 s and Smartabase's own). The chaos suite shortens it to turn delays into timeouts.
    pub http_timeout: Option<StdDuration>,
    /// A mapping override stored before the connector starts, as `connector mapping set` does (e.g.
    /// `{"cardio_load": {"enabled": true}}`). The site gets every optional form it enables, with the
    /// mapping's names, unless `smartabase.forms` already has a form of that name.
    pub mapping: Option<String>,
    /// The OAuth callback's time budget for Polar and Smartabase; `None` keeps production's. Tests of slow
    /// outside services shorten it so they need not wait the production 20 s.
    pub callback_budget: Option<StdDuration>,
    /// `BACKFILL_DAYS`; `None` leaves it unset (the contract's default, 365).
    pub backfill_days: Option<u32>,
}

impl Default for WorldOptions {
    fn default() -> Self {
        Self {
            polar: PolarSimConfig {
                consent_mode: ConsentMode::AutoAccept,
                ..PolarSimConfig::default()
            },
            smartabase: SmartabaseSimConfig::default(),
            webhook_secret: None,
            sync_interval_minutes: 60,
            http_timeout: None,
            mapping: None,
            callback_budget: None,
            backfill_days: None,
        }
    }
}

/// The connector type of a world.
pub type WorldConnector<S> = Connector<S, LocalQueue, PolarClient, SmartabaseClient, FixedClock>;

/// A running local stack.
pub struct World<S> {
    /// The Polar simulator.
    pub polar: PolarSimHandle,
    /// The Smartabase simulator.
    pub smartabase: SmartabaseSimHandle,
    /// The connector.
    pub connector: WorldConnector<S>,
    /// The connector's clock (shared with `connector.clock`).
    pub clock: FixedClock,
    /// The environment the functions would see.
    pub config: Config,
    /// The secret the functions would read.
    pub secrets: Secrets,
    /// The secret as JSON (what `connector init --secrets` takes).
    pub secrets_json: String,
}

/// Random test secrets for both simulators' credentials.
pub fn test_secrets_json(
    polar: &PolarSimHandle,
    smartabase: &SmartabaseSimHandle,
    webhook_secret: Option<&str>,
) -> String {
    let random = |n: usize| {
        let mut bytes = vec![0u8; n];
        rand::fill(&mut bytes[..]);
        bytes
    };
    let mut json = serde_json::json!({
        "polar_client_id": polar.client_id(),
        "polar_client_secret": polar.client_secret(),
        "smartabase_username": smartabase.config().username,
        "smartabase_password": smartabase.config().password,
        "link_signing_key": hex::encode(random(24)),
        "token_encryption_key": base64::engine::general_purpose::STANDARD.encode(random(32)),
        "revoke_hook_secret": hex::encode(random(24)),
    });
    if let Some(secret) = webhook_secret {
        json["polar_webhook_secret"] = secret.into();
    }
    json.to_string()
}

/// The environment for the functions, as `NAME=value` pairs.
pub fn environment(
    table: &str,
    queue_url: &str,
    secret_id: &str,
    polar: &PolarSimHandle,
    smartabase: &SmartabaseSimHandle,
    public_base_url: &str,
    interval: u32,
) -> Vec<(String, String)> {
    [
        ("CONNECTOR_TABLE", table.to_string()),
        ("SYNC_QUEUE_URL", queue_url.to_string()),
        ("CONNECTOR_SECRET_ID", secret_id.to_string()),
        ("PUBLIC_BASE_URL", public_base_url.to_string()),
        ("SMARTABASE_URL", smartabase.site_url()),
        ("POLAR_AUTH_URL", polar.auth_url()),
        ("POLAR_TOKEN_URL", polar.token_url()),
        ("POLAR_API_URL", polar.api_url()),
        ("SYNC_INTERVAL_MINUTES", interval.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The mapping a world's connector runs with: the built-in one with `override_json` over it.
pub fn mapping(override_json: Option<&str>) -> anyhow::Result<Mapping> {
    override_json
        .map_or_else(|| Ok(Mapping::defaults()), Mapping::with_override)
        .context("the world's mapping override")
}

/// The forms of a site that follows `mapping`: `configured`, plus each optional form the mapping
/// enables and the site does not have yet, built as a consultant would: the mapping's form and field
/// names (a field mapped to `null` left out), each field of the kind of its default.
pub fn site_forms(mut configured: Vec<FormDefinition>, mapping: &Mapping) -> Vec<FormDefinition> {
    let defaults = Mapping::defaults();
    let templates = smartabase_sim::optional_forms();
    for ((key, spec), (_, default)) in mapping.forms().into_iter().zip(defaults.forms()) {
        let wanted = OPTIONAL_FORMS.contains(&key) && spec.enabled;
        if !wanted || configured.iter().any(|form| form.name == spec.form) {
            continue;
        }
        let template = templates.iter().find(|form| form.name == default.form);
        let mut form = FormDefinition::event(&spec.form);
        for (role, name) in spec.fields() {
            let Some(name) = name else { continue };
            let kind = default
                .field(role)
                .and_then(|default_name| template?.field(default_name))
                .map_or(FieldKind::Text, |field| field.kind);
            form.fields.push(FieldDefinition {
                name: name.to_string(),
                kind,
            });
        }
        configured.push(form);
    }
    configured
}

async fn simulators(
    options: &WorldOptions,
    public_base_url: &str,
) -> anyhow::Result<(PolarSimHandle, SmartabaseSimHandle)> {
    let mut polar_config = options.polar.clone();
    polar_config.redirect_uris = vec![format!("{public_base_url}/polar/callback")];
    let polar = PolarSim::start(polar_config)
        .await
        .context("starting polar-sim")?;
    let mut smartabase_config = options.smartabase.clone();
    smartabase_config.forms = site_forms(
        smartabase_config.forms,
        &mapping(options.mapping.as_deref())?,
    );
    let smartabase = SmartabaseSim::start(smartabase_config)
        .await
        .context("starting smartabase-sim")?;
    Ok((polar, smartabase))
}

/// Replays a run at another time of day: every world starts `TESTKIT_CLOCK_SHIFT_MINUTES` from now.
/// Dates in Polar and the rhythm follow the athletes' clocks, so a test can pass at most hours and fail
/// at a few (`TESTKIT_CLOCK_SHIFT_MINUTES=600 cargo test -p system-tests --test sync_safety`).
pub const CLOCK_SHIFT_VAR: &str = "TESTKIT_CLOCK_SHIFT_MINUTES";

fn clock_shift() -> anyhow::Result<Duration> {
    match std::env::var(CLOCK_SHIFT_VAR) {
        Err(_) => Ok(Duration::zero()),
        Ok(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|m| (0..=7 * 24 * 60).contains(m))
            .map(Duration::minutes)
            .ok_or_else(|| {
                anyhow!("{CLOCK_SHIFT_VAR}={text:?}: expected whole minutes, 0 to 10080")
            }),
    }
}

impl World<MemoryStore> {
    /// A world with the in-memory store and queue: fast, for handler-level tests.
    pub async fn in_memory(options: WorldOptions) -> anyhow::Result<Self> {
        let (polar, smartabase) = simulators(&options, PUBLIC_BASE_URL).await?;
        let clock = FixedClock::new(Utc::now());
        let queue = LocalQueue::memory(clock.clone());
        Self::assemble(
            options,
            polar,
            smartabase,
            MemoryStore::new(),
            queue,
            clock,
            "memory",
            "memory",
        )
        .await
    }
}

impl World<DynamoStore> {
    /// A world on moto: the real DynamoDB table, SQS queues (with the DLQ redrive) and adapters.
    pub async fn on_moto(options: WorldOptions) -> anyhow::Result<Self> {
        let moto = crate::moto::shared().await;
        let (polar, smartabase) = simulators(&options, PUBLIC_BASE_URL).await?;
        let sdk = moto.sdk_config().await;
        let name = crate::moto::unique_name("world");
        moto.create_table(&name).await?;
        let (url, dlq_url) = moto.create_queues(&name).await?;
        let store = DynamoStore::from_config(&sdk, name.clone());
        let queue = LocalQueue::Sqs {
            queue: SqsQueue::from_config(&sdk, url.clone()),
            client: aws_sdk_sqs::Client::new(&sdk),
            url: url.clone(),
            dlq_url,
        };
        Self::assemble(
            options,
            polar,
            smartabase,
            store,
            queue,
            FixedClock::new(Utc::now()),
            &name,
            &url,
        )
        .await
    }
}

impl<S: Store> World<S> {
    #[allow(clippy::too_many_arguments)]
    async fn assemble(
        options: WorldOptions,
        polar: PolarSimHandle,
        smartabase: SmartabaseSimHandle,
        store: S,
        queue: LocalQueue,
        clock: FixedClock,
        table: &str,
        queue_url: &str,
    ) -> anyhow::Result<Self> {
        let secrets_json =
            test_secrets_json(&polar, &smartabase, options.webhook_secret.as_deref());
        let mut env = environment(
            table,
            queue_url,
            "test-secret",
            &polar,
            &smartabase,
            PUBLIC_BASE_URL,
            options.sync_interval_minutes,
        );
        if let Some(days) = options.backfill_days {
            env.push(("BACKFILL_DAYS".to_string(), days.to_string()));
        }
        let config = Config::from_lookup(|name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })?;
        let secrets = Secrets::from_json(&secrets_json)?;
        if let Some(mapping) = &options.mapping {
            store
                .put_setting(MAPPING_SETTING, mapping.trim())
                .await
                .context("storing the world's mapping override")?;
        }
        // Every world's logs are captured (and written for the suite-wide scan) with its secrets beside them.
        crate::logs::install();
        crate::logs::record_secrets(secret_values(&secrets_json));
        let mut connector =
            bootstrap::connector(&config, &secrets, store, queue, clock.clone()).await?;
        if let Some(budget) = options.callback_budget {
            connector.settings.callback_budget = budget;
        }
        if let Some(timeout) = options.http_timeout {
            connector.polar = connector.polar.clone().with_request_timeout(timeout);
            connector.smartabase = connector.smartabase.clone().with_request_timeout(timeout);
        }
        let world = Self {
            polar,
            smartabase,
            connector,
            clock,
            config,
            secrets,
            secrets_json,
        };
        world.advance(clock_shift()?);
        Ok(world)
    }

    /// Moves the connector's and Polar's clocks by `by`.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
        if let Err(e) = self.polar.advance_clock(by.num_seconds()) {
            panic!("cannot advance polar-sim's clock: {e}");
        }
    }

    /// Moves both clocks forward to `hour`:00 on the clock of an athlete `offset` minutes from UTC, for a
    /// test whose steps assume a time of day (today has begun: a sample, a night; and does not end
    /// within the test). Every other test keeps starting at the real time, so the suite still sees
    /// all hours.
    pub fn advance_to_local_hour(&self, offset: i32, hour: u32) {
        let local = (self.clock_now() + Duration::minutes(i64::from(offset))).naive_utc();
        let mut target = local
            .date()
            .and_hms_opt(hour, 0, 0)
            .unwrap_or_else(|| panic!("{hour} is not an hour of the day"));
        if target <= local {
            target += Duration::days(1);
        }
        // Whole seconds, rounded up: polar-sim's clock moves by whole seconds, and must not stay before
        // the hour (on the day before, for hour 0).
        let by = target - local;
        self.advance(Duration::seconds(
            by.num_seconds() + i64::from(by.subsec_nanos() > 0),
        ));
    }

    /// Replaces the shared Polar budget, as if Polar's headers had said so.
    pub async fn set_budget(&self, state: &BudgetState) -> anyhow::Result<()> {
        let store = &self.connector.store;
        let version = store
            .load_budget::<BudgetState>()
            .await?
            .map_or(0, |(_, version)| version);
        store.save_budget(state, version).await?;
        Ok(())
    }

    /// Puts an athlete on the Smartabase roster; returns their Smartabase user id.
    pub fn add_athlete(&self, uuid: &str, first: &str, last: &str) -> SmartabaseUserId {
        let user = self.smartabase.add_user(NewUser {
            first_name: first.into(),
            last_name: last.into(),
            uuid: uuid.into(),
            ..NewUser::default()
        });
        SmartabaseUserId::new(user.user_id)
            .unwrap_or_else(|e| panic!("sim gave a bad user id: {e}"))
    }

    /// Creates a Polar account in a time zone (`utc_offset_minutes`); returns its Polar user id.
    pub fn polar_account(&self, utc_offset_minutes: i32) -> i64 {
        self.polar
            .create_account(NewAccount {
                utc_offset_minutes: Some(utc_offset_minutes),
                ..NewAccount::default()
            })
            .unwrap_or_else(|e| panic!("cannot create a Polar account: {e}"))
            .polar_user_id
    }

    /// Sends a request through the API Gateway front to the owning function.
    pub async fn http(&self, request: HttpRequest) -> anyhow::Result<HttpResponse> {
        front::dispatch(&self.connector, &request).await
    }

    /// The athlete's signed authorisation link, as a path and query for [`World::http`].
    pub fn link_path(&self, uuid: &str) -> String {
        let uuid = AthleteUuid::parse(uuid).unwrap_or_else(|e| panic!("bad uuid {uuid}: {e}"));
        let url = self.connector.authorisation_link(&uuid, self.clock_now());
        url.strip_prefix(PUBLIC_BASE_URL)
            .map(str::to_string)
            .unwrap_or(url)
    }

    fn clock_now(&self) -> chrono::DateTime<Utc> {
        use shared::clock::Clock as _;
        self.clock.now()
    }

    /// The web flow end to end in one browser: the athlete's link → `GET /polar/authorize` → Polar's
    /// consent (the simulator's browser session logged in as `polar_user`) → `GET /polar/callback` with
    /// the cookie the authorize answer set. Returns the callback's response (and the authorize response
    /// if it did not redirect).
    pub async fn link_via_web(&self, uuid: &str, polar_user: i64) -> anyhow::Result<HttpResponse> {
        let authorize = self.http(HttpRequest::get(self.link_path(uuid))).await?;
        if authorize.status != 302 {
            return Ok(authorize);
        }
        let callback = self.consent_at_polar(&authorize, polar_user).await?;
        self.http(HttpRequest::get(callback).with_cookies_from(&authorize))
            .await
    }

    /// Follows a `302` to Polar's authorisation page as a browser logged in as `polar_user` would, and
    /// returns the callback path and query Polar redirects back to.
    pub async fn consent_at_polar(
        &self,
        authorize: &HttpResponse,
        polar_user: i64,
    ) -> anyhow::Result<String> {
        let location = authorize
            .header("location")
            .ok_or_else(|| anyhow!("no Location on the authorize response"))?;
        self.polar.login(Some(polar_user))?;
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let at_polar = browser.get(location).send().await?;
        let back = at_polar
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow!("Polar did not redirect back (status {})", at_polar.status()))?
            .to_string();
        Ok(back
            .strip_prefix(PUBLIC_BASE_URL)
            .map(str::to_string)
            .unwrap_or(back))
    }

    /// Runs the scan function once (no time limit).
    pub async fn scan(&self) -> anyhow::Result<ScanReport> {
        athlete_scan::handle(
            &self.connector,
            Instant::now() + StdDuration::from_secs(600),
        )
        .await
        .map_err(Into::into)
    }

    /// Runs the fan-out function once.
    pub async fn fanout(&self) -> anyhow::Result<FanoutReport> {
        sync_fanout::handle(
            self.connector.fanout_ports(),
            Instant::now() + StdDuration::from_secs(600),
        )
        .await
        .map_err(Into::into)
    }

    /// Delivers visible messages to the worker function, batch after batch, until none is visible;
    /// failed messages are redelivered (and dead-lettered after five receives) within the same run.
    pub async fn run_worker(&self) -> anyhow::Result<WorkerRun> {
        let mut run = WorkerRun::default();
        for _ in 0..10_000 {
            let delivered = self.connector.queue.receive(10).await?;
            if delivered.is_empty() {
                return Ok(run);
            }
            let mut event = SqsEvent::default();
            event.records = delivered.iter().map(|r| r.message.clone()).collect();
            let response = sync_worker::handle(&self.connector, event, no_deadline()).await;
            let failed: Vec<String> = response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect();
            run.delivered += delivered.len();
            run.failed += failed.len();
            self.connector.queue.settle(&delivered, &failed).await?;
        }
        Err(anyhow!(
            "the worker did not drain the queue in 10,000 batches"
        ))
    }

    /// Scan, then fan-out and worker until the queue is empty: one full cycle of the schedules.
    pub async fn cycle(&self) -> anyhow::Result<WorkerRun> {
        self.scan().await?;
        self.fanout().await?;
        self.run_worker().await
    }
}

impl<S> Drop for World<S> {
    /// Records the tokens and codes Polar issued and the Smartabase session tokens during the test for
    /// the suite-wide log scan (only in a process whose logs are captured: a benchmark building its own
    /// world has nothing to scan).
    fn drop(&mut self) {
        if crate::logs::installed() {
            crate::logs::record_secrets(self.polar.issued_credentials());
            crate::logs::record_secrets(self.smartabase.issued_sessions());
        }
    }
}

/// The values of a secret JSON that must never be logged: every string but the two account names.
pub fn secret_values(secrets_json: &str) -> Vec<String> {
    let parsed: serde_json::Value = serde_json::from_str(secrets_json).unwrap_or_default();
    parsed
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, _)| !matches!(name.as_str(), "polar_client_id" | "smartabase_username"))
        .filter_map(|(_, value)| value.as_str().map(str::to_string))
        .collect()
}

/// A worker deadline no test reaches (the worker's own tests of its deadline pass a near one).
pub fn no_deadline() -> Instant {
    Instant::now() + StdDuration::from_secs(600)
}

/// What a worker run delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerRun {
    /// Messages delivered (redeliveries counted again).
    pub delivered: usize,
    /// Deliveries that failed.
    pub failed: usize,
}

#[cfg(test)]
mod tests {
    use smartabase_sim::{
        POLAR_ALERTNESS, POLAR_CARDIO_LOAD, POLAR_DAILY_HEART_RATE, default_forms, optional_forms,
    };

    use super::*;

    fn fields(form: &FormDefinition) -> Vec<(&str, FieldKind)> {
        form.fields
            .iter()
            .map(|f| (f.name.as_str(), f.kind))
            .collect()
    }

    #[test]
    fn the_simulators_optional_forms_are_the_mappings_defaults() {
        let everything = Mapping::with_override(
            r#"{"cardio_load": {"enabled": true}, "alertness": {"enabled": true},
                "daily_heart_rate": {"enabled": true}}"#,
        )
        .unwrap();
        for (key, spec) in everything.forms() {
            if !OPTIONAL_FORMS.contains(&key) {
                continue;
            }
            let form = optional_forms()
                .into_iter()
                .find(|f| f.name == spec.form)
                .unwrap_or_else(|| panic!("no site form for {key}"));
            let mut mapped: Vec<&str> = spec.fields().filter_map(|(_, name)| name).collect();
            let mut built: Vec<&str> = form.fields.iter().map(|f| f.name.as_str()).collect();
            mapped.sort_unstable();
            built.sort_unstable();
            assert_eq!(built, mapped, "{key}");
        }
    }

    #[test]
    fn a_site_gets_the_optional_forms_its_mapping_enables_with_the_mappings_names() {
        let plain = site_forms(default_forms(), &Mapping::defaults());
        assert_eq!(plain, default_forms(), "nothing enabled, nothing added");

        let mapping = Mapping::with_override(
            r#"{"cardio_load": {"enabled": true, "form": "Club Load",
                "fields": {"strain": "Acute Load", "cardio_load_ratio": null}},
                "daily_heart_rate": {"enabled": true}}"#,
        )
        .unwrap();
        let forms = site_forms(default_forms(), &mapping);
        let names: Vec<&str> = forms.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names.len(), default_forms().len() + 2);
        assert!(!names.contains(&POLAR_ALERTNESS) && !names.contains(&POLAR_CARDIO_LOAD));
        let club = forms.iter().find(|f| f.name == "Club Load").unwrap();
        assert_eq!(club.kind, smartabase_sim::FormKind::Event);
        let mut club_fields = fields(club);
        club_fields.sort_unstable_by_key(|(name, _)| *name);
        assert_eq!(
            club_fields,
            [
                ("Acute Load", FieldKind::Number),
                ("Cardio Load", FieldKind::Number),
                ("Cardio Load Date", FieldKind::Text),
                ("Cardio Load Status", FieldKind::Text),
                ("Tolerance", FieldKind::Number),
            ]
        );
        let heart = forms
            .iter()
            .find(|f| f.name == POLAR_DAILY_HEART_RATE)
            .unwrap();
        let template = optional_forms()
            .into_iter()
            .find(|f| f.name == POLAR_DAILY_HEART_RATE)
            .unwrap();
        let mut built = fields(heart);
        let mut expected = fields(&template);
        built.sort_unstable_by_key(|(name, _)| *name);
        expected.sort_unstable_by_key(|(name, _)| *name);
        assert_eq!(built, expected);

        // A site that already has the form keeps its own.
        let own = FormDefinition::event("Club Load").with_text_fields(&["Cardio Load Date"]);
        let kept = site_forms(vec![own.clone()], &mapping);
        assert_eq!(kept.iter().filter(|f| f.name == "Club Load").count(), 1);
        assert_eq!(kept[0], own);
    }

    #[tokio::test]
    async fn a_world_with_a_mapping_runs_the_connector_and_the_site_with_it() {
        let world = World::in_memory(WorldOptions {
            mapping: Some(r#"{"alertness": {"enabled": true}}"#.into()),
            ..WorldOptions::default()
        })
        .await
        .unwrap();
        assert!(world.connector.mapping.alertness.enabled);
        assert!(!world.connector.mapping.cardio_load.enabled);
        let site = &world.smartabase.config().forms;
        assert!(site.iter().any(|f| f.name == POLAR_ALERTNESS));
        assert!(!site.iter().any(|f| f.name == POLAR_CARDIO_LOAD));
        let keys: Vec<&str> = world
            .connector
            .mapping
            .enabled_forms()
            .iter()
            .map(|f| f.key)
            .collect();
        assert!(keys.contains(&"alertness"));

        let refused = World::in_memory(WorldOptions {
            mapping: Some(r#"{"alertness": {"enabled": "yes"}}"#.into()),
            ..WorldOptions::default()
        })
        .await;
        assert!(refused.is_err());
    }
}
