//! Polar AccessLink v3 simulator: OAuth, user registration, exercises, daily activity, sleep,
//! Nightly Recharge, cardio load, SleepWise alertness, 24/7 heart rate, pull notifications, webhooks
//! and rate limits, with Polar's traps, plus a control API for tests (accounts, data, clock, faults,
//! request log, webhook deliveries).
//!
//! # Embedding
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use polar_sim::{ConsentMode, NewAccount, PolarSim, PolarSimConfig};
//!
//! let sim = PolarSim::start(PolarSimConfig {
//!     consent_mode: ConsentMode::AutoAccept,
//!     redirect_uris: vec!["http://127.0.0.1:9000/polar/callback".into()],
//!     ..PolarSimConfig::default()
//! })
//! .await?;
//! let athlete = sim.create_account(NewAccount::default())?;
//! sim.login(Some(athlete.polar_user_id))?;
//! // Point the connector at sim.auth_url(), sim.token_url(), sim.api_url() ...
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Endpoints: `GET|POST /oauth2/authorization` (consent page / form), `POST /v2/oauth2/token`,
//! `/v3/users[/{id}]`, `/v3/exercises[/{id}]`, `/v3/users/activities[/][/{date}]`,
//! `/v3/users/sleep[/{date}]`, `/v3/users/nightly-recharge[/{date}]`,
//! `/v3/users/cardio-load[/][/{date}|/date?from=&to=|/period/days/{days}]`,
//! `/v3/users/sleepwise/alertness[/date?from=&to=]`, `/v3/users/continuous-heart-rate[/{date}|?from=&to=]`,
//! `/v3/notifications`, `/v3/webhooks[/{id}|/activate|/deactivate]`. Transactional endpoints,
//! SleepWise circadian bedtime and Elixir biosensing are not simulated.
//!
//! Behaviour worth knowing:
//! - Only data uploaded after registration is served (unless `history_before_registration`).
//!   Calls with the token of an account that is not registered answer 403.
//! - Exercises: uploaded in the last 30 days. Activity/sleep/recharge lists: the 28 local dates
//!   up to today. A record is served from its upload time on, whatever its date: a watch synced
//!   days late (`UploadMode::Now` with an older `end_date`, or `uploaded_at` on a record) adds
//!   nights dated long before the upload. Activity ranges: `from` required, `to` default today, at most 28 dates
//!   inclusive, `from` at most 365 days back. No data: activity date → 204, sleep/recharge → 404.
//! - Cardio load: one entry per local date of the list or range (`from`, `to` required, at most 180
//!   days; `/period/days/1..=180`), `LOAD_STATUS_NOT_AVAILABLE` with zeros where there is no data, and
//!   until the account has a week of history; a training added today revises today's entry.
//! - SleepWise alertness: a top-level array of periods (a nap is its own), UTC times without a zone
//!   plus `sleep_timezone_offset_minutes`, dated by the local end of the sleep; only once five nights
//!   of the last seven exist; ranges at most 28 days; no data → 204.
//! - 24/7 heart rate: one day → `{polar_user, date, heart_rate_samples}`, no data → 404; the range
//!   (`from`, `to` required, at most 28 days) → `{"heart_rates": [{date, heart_rate_samples}]}`.
//!   Today's day holds the samples until now; adding it again later is Polar revising it.
//! - These three are generated only with `generate`'s `optional_data`.
//! - Every `/v3/` response carries `RateLimit-Usage/Limit/Reset` (short,long); OAuth endpoints
//!   (other hosts at Polar) are not rate limited. Rejected calls still count.
//! - A reused authorization code answers `invalid_grant` and deletes every token of the account.
//! - Outside values Polar may send are there on request: `generate` with `no_data` marks values as
//!   not measured the way live data does (`sleep_charge: -1`, `0` bpm, ...); the fault kinds
//!   `extreme_record` (a record with a duration, offset or date no calendar holds) and
//!   `extreme_headers` (`RateLimit-Reset`/`Retry-After` of `u64::MAX`/`i64::MAX` seconds); the setting
//!   `token_expires_in` (any number in the token answer).
//!
//! # Control API (`/_sim/`, JSON, no auth; each has a [`PolarSimHandle`] method)
//!
//! | Method & path | Body → answer |
//! |---|---|
//! | `GET /_sim/accounts` | → `[AccountView]` |
//! | `POST /_sim/accounts` | [`NewAccount`] (empty = defaults) → 201 [`AccountView`] |
//! | `GET` / `PATCH /_sim/accounts/{id}` | [`AccountPatch`] → [`AccountView`] |
//! | `POST /_sim/accounts/{id}/disconnect` | → 204; every token of the account answers 401 |
//! | `POST /_sim/accounts/{id}/generate` | [`GenerateRequest`] → [`GenerateSummary`] |
//! | `GET /_sim/accounts/{id}/records?kind=` | → `[RecordView]` |
//! | `POST /_sim/accounts/{id}/records` | [`NewRecord`] → 201 [`RecordView`] |
//! | `POST /_sim/accounts/{id}/records/{kind}/{key}/revise` | [`RecordRevision`] → [`RecordView`] |
//! | `POST /_sim/accounts/{id}/records/{kind}/{key}/ready` | [`ReadyFlag`] → [`RecordView`] |
//! | `GET` / `POST /_sim/session` | [`SessionRequest`] (the browser's logged-in account) → 204 |
//! | `GET /_sim/clock`, `POST /_sim/clock/advance` | [`ClockAdvance`] → [`ClockView`] |
//! | `GET` / `POST` / `DELETE /_sim/faults` | [`FaultSpec`] → 201 [`FaultView`] |
//! | `GET` / `DELETE /_sim/requests` | → `[RequestLogEntry]` |
//! | `GET /_sim/webhook` | → [`WebhookView`] or null (includes the secret) |
//! | `POST /_sim/webhook/deliver` | [`WebhookEventRequest`] → 202 |
//! | `GET` / `DELETE /_sim/webhook/deliveries` | → `[DeliveryView]` |
//! | `GET` / `PATCH /_sim/settings` | [`SettingsPatch`] → [`SimSettings`] |
//!
//! Errors: `{"error": "..."}` with 400 (bad input), 404 (unknown account/record), 409 (exists).
//! Record kinds in paths: `exercise`, `activity`, `sleep`, `recharge`, `cardio_load`, `alertness`,
//! `heart_rate`; keys are exercise ids, dates, or (alertness) the sleep period's start in UTC
//! (`YYYY-MM-DDThh:mm:ss`). Revising a record uploads it again (now). Webhook events are sent when a record
//! becomes served for a registered account (add, generate, revise, ready) and the webhook is
//! active and subscribed (24/7 heart rate: `CONTINUOUS_HEART_RATE` with `date`; alertness:
//! `SLEEP_WISE_ALERTNESS` with `from` and `to`, its local date; cardio load and Nightly Recharge have
//! no event); after 7 days (sim clock) without a successful delivery the webhook is
//! deactivated, as at Polar.

mod api;
mod config;
mod control;
mod data;
mod error;
mod faults;
mod layer;
mod model;
mod ratelimit;
mod server;
mod state;
mod timefmt;
mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use config::{ConsentMode, PolarSimConfig, RateLimits};
pub use error::SimError;
pub use model::{
    AccountPatch, AccountView, ClockAdvance, ClockView, DeliveryView, FaultKind, FaultSpec,
    FaultView, GenerateRequest, GenerateSummary, NewAccount, NewRecord, ReadyFlag, RecordKind,
    RecordRevision, RecordView, RequestLogEntry, SessionRequest, SettingsPatch, SimSettings,
    UploadMode, WebhookEventRequest, WebhookView,
};

use state::{Shared, SimState};

/// Entry point: starts simulator servers.
pub struct PolarSim;

impl PolarSim {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    pub async fn start(config: PolarSimConfig) -> anyhow::Result<PolarSimHandle> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Binds `addr` (port 0 = any free port) and serves on the current tokio runtime.
    pub async fn start_on(
        config: PolarSimConfig,
        addr: SocketAddr,
    ) -> anyhow::Result<PolarSimHandle> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding polar-sim to {addr}"))?;
        let local = listener.local_addr().context("reading the bound address")?;
        let base_url = format!("http://{local}");
        // Webhook receivers are local test servers: never route them through a proxy.
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("building the webhook HTTP client")?;
        let (delivery_tx, delivery_rx) = mpsc::unbounded_channel();
        let state = SimState::new(&config, base_url.clone(), delivery_tx);
        let shared = Arc::new(Shared::new(state, base_url.clone(), http));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let server = tokio::spawn(server::serve(
            listener,
            server::router(shared.clone()),
            shutdown_rx,
        ));
        let deliveries = tokio::spawn(webhook::run_deliveries(shared.clone(), delivery_rx));
        Ok(PolarSimHandle {
            shared,
            base_url,
            client_id: config.client_id,
            client_secret: config.client_secret,
            shutdown: shutdown_tx,
            server,
            deliveries,
        })
    }
}

/// A running simulator. Dropping it stops the server too; [`PolarSimHandle::shutdown`] also
/// waits for that.
pub struct PolarSimHandle {
    shared: Arc<Shared>,
    base_url: String,
    client_id: String,
    client_secret: String,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    deliveries: JoinHandle<()>,
}

impl PolarSimHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Authorization page (Polar: `https://flow.polar.com/oauth2/authorization`).
    pub fn auth_url(&self) -> String {
        format!("{}/oauth2/authorization", self.base_url)
    }

    /// Token endpoint (Polar: `https://polarremote.com/v2/oauth2/token`).
    pub fn token_url(&self) -> String {
        format!("{}/v2/oauth2/token", self.base_url)
    }

    /// API base (Polar: `https://www.polaraccesslink.com`); paths are `/v3/...`.
    pub fn api_url(&self) -> String {
        self.base_url.clone()
    }

    /// The registered client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The registered client secret.
    pub fn client_secret(&self) -> &str {
        &self.client_secret
    }

    /// Creates a Polar account.
    pub fn create_account(&self, request: NewAccount) -> Result<AccountView, SimError> {
        self.shared.lock().create_account(request)
    }

    /// All accounts.
    pub fn accounts(&self) -> Vec<AccountView> {
        self.shared.lock().account_views()
    }

    /// One account.
    pub fn account(&self, polar_user_id: i64) -> Result<AccountView, SimError> {
        let state = self.shared.lock();
        let account = state.account(polar_user_id)?;
        Ok(state.account_view(account))
    }

    /// Changes consents or time zone of an account.
    pub fn update_account(
        &self,
        polar_user_id: i64,
        patch: AccountPatch,
    ) -> Result<AccountView, SimError> {
        self.shared.lock().patch_account(polar_user_id, patch)
    }

    /// Logs the simulated browser in as this account (`None` logs out).
    pub fn login(&self, polar_user_id: Option<i64>) -> Result<(), SimError> {
        self.shared.lock().set_session(polar_user_id)
    }

    /// The account logged in in the simulated browser.
    pub fn session(&self) -> Option<i64> {
        self.shared.lock().session
    }

    /// The athlete disconnects the app in Polar Flow: registration and tokens are gone.
    pub fn disconnect(&self, polar_user_id: i64) -> Result<(), SimError> {
        self.shared.lock().disconnect(polar_user_id)
    }

    /// Generates N days of seeded data.
    pub fn generate(
        &self,
        polar_user_id: i64,
        request: &GenerateRequest,
    ) -> Result<GenerateSummary, SimError> {
        self.shared.lock().generate(polar_user_id, request)
    }

    /// Adds one record.
    pub fn add_record(
        &self,
        polar_user_id: i64,
        request: NewRecord,
    ) -> Result<RecordView, SimError> {
        self.shared.lock().add_record(polar_user_id, request)
    }

    /// Stored records of an account (optionally one kind).
    pub fn records(
        &self,
        polar_user_id: i64,
        kind: Option<RecordKind>,
    ) -> Result<Vec<RecordView>, SimError> {
        self.shared.lock().record_views(polar_user_id, kind)
    }

    /// Revises a record: changed values, new version, uploaded now.
    pub fn revise_record(
        &self,
        polar_user_id: i64,
        kind: RecordKind,
        key: &str,
        values: Map<String, Value>,
    ) -> Result<RecordView, SimError> {
        self.shared
            .lock()
            .revise_record(polar_user_id, kind, key, values)
    }

    /// Marks a record ready or "not ready yet".
    pub fn set_record_ready(
        &self,
        polar_user_id: i64,
        kind: RecordKind,
        key: &str,
        ready: bool,
    ) -> Result<RecordView, SimError> {
        self.shared
            .lock()
            .set_record_ready(polar_user_id, kind, key, ready)
    }

    /// Sim now.
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.lock().now()
    }

    /// The clock.
    pub fn clock(&self) -> ClockView {
        control::clock_view(&self.shared)
    }

    /// Moves the sim clock forward.
    pub fn advance_clock(&self, seconds: i64) -> Result<ClockView, SimError> {
        self.shared.lock().advance_clock(seconds)?;
        Ok(self.clock())
    }

    /// Installs a fault rule.
    pub fn inject_fault(&self, spec: FaultSpec) -> Result<FaultView, SimError> {
        self.shared.lock().add_fault(spec)
    }

    /// Installed fault rules.
    pub fn faults(&self) -> Vec<FaultView> {
        self.shared.lock().fault_views()
    }

    /// Removes all fault rules.
    pub fn clear_faults(&self) {
        self.shared.lock().clear_faults();
    }

    /// The request log.
    pub fn requests(&self) -> Vec<RequestLogEntry> {
        self.shared.lock().requests.clone()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Every authorization code and access token issued so far, used or revoked ones included, so a
    /// test can check that none of them reached a log (in-process only; not on the control API).
    pub fn issued_credentials(&self) -> Vec<String> {
        self.shared.lock().issued_credentials()
    }

    /// Current settings.
    pub fn settings(&self) -> SimSettings {
        self.shared.lock().settings.clone()
    }

    /// Changes settings (redirect URIs, consent mode, boundary, SLEEP double-fire, limits).
    pub fn update_settings(&self, patch: SettingsPatch) -> SimSettings {
        self.shared.lock().apply_settings(patch)
    }

    /// The registered webhook, with its secret.
    pub fn webhook(&self) -> Option<WebhookView> {
        self.shared
            .lock()
            .webhook
            .as_ref()
            .map(|webhook| webhook.view())
    }

    /// Sends a webhook event now (in the background), whatever the subscription.
    pub fn deliver_webhook(&self, request: WebhookEventRequest) -> Result<(), SimError> {
        self.shared.lock().deliver_now(request)
    }

    /// Recorded delivery attempts.
    pub fn deliveries(&self) -> Vec<DeliveryView> {
        self.shared.lock().deliveries.clone()
    }

    /// Empties the delivery record.
    pub fn clear_deliveries(&self) {
        self.shared.lock().deliveries.clear();
    }

    /// Waits until at least `count` deliveries are recorded (or `timeout`), then returns them.
    pub async fn wait_for_deliveries(&self, count: usize, timeout: Duration) -> Vec<DeliveryView> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let deliveries = self.deliveries();
            if deliveries.len() >= count || tokio::time::Instant::now() >= deadline {
                return deliveries;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops accepting, closes open connections and stops webhook delivery.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        // A join error only means the server task already ended.
        let _ = (&mut self.server).await;
    }
}

impl Drop for PolarSimHandle {
    /// The server stops when the shutdown sender drops; the delivery task is stopped here.
    fn drop(&mut self) {
        self.deliveries.abort();
    }
}
