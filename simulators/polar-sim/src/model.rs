//! Public request and view types of the control API (shared by handle methods and `/_sim/` JSON).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{ConsentMode, RateLimits};

/// A Polar account to create (`POST /_sim/accounts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewAccount {
    /// Polar user id; picked (seeded, 8 digits) when absent.
    pub polar_user_id: Option<i64>,
    /// Whether the mandatory consents are accepted (else `/v3/users` answers 403). Default true.
    pub consents_accepted: bool,
    /// UTC offset in minutes (−720..=840); when absent the next of
    /// −600, −570, −180, 0, 60, 120, 330, 345, 525, 600, 765, 825 in turn.
    pub utc_offset_minutes: Option<i32>,
    /// First name; seeded when absent.
    pub first_name: Option<String>,
    /// Last name; seeded when absent.
    pub last_name: Option<String>,
}

impl Default for NewAccount {
    fn default() -> Self {
        Self {
            polar_user_id: None,
            consents_accepted: true,
            utc_offset_minutes: None,
            first_name: None,
            last_name: None,
        }
    }
}

/// Changes to an account (`PATCH /_sim/accounts/{id}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountPatch {
    /// Accept or withdraw the mandatory consents.
    pub consents_accepted: Option<bool>,
    /// Move the athlete to another time zone (affects data generated afterwards).
    pub utc_offset_minutes: Option<i32>,
}

/// An account as the control API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountView {
    /// Polar user id (`x_user_id`).
    pub polar_user_id: i64,
    /// Mandatory consents accepted.
    pub consents_accepted: bool,
    /// UTC offset in minutes.
    pub utc_offset_minutes: i32,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Registered to the client (`POST /v3/users` succeeded and not deleted/disconnected).
    pub registered: bool,
    /// The registered member-id.
    pub member_id: Option<String>,
    /// When it was registered (sim clock).
    pub registered_at: Option<DateTime<Utc>>,
    /// Access tokens that currently work.
    pub active_tokens: usize,
    /// Whether this account is the one logged in in the simulated browser.
    pub logged_in: bool,
}

/// Which upload time generated records get.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadMode {
    /// Shortly after each event (history); data before registration is then not served.
    #[default]
    Natural,
    /// All at the current sim time, like a watch syncing its backlog now.
    Now,
}

/// Generate N days of data for an account (`POST /_sim/accounts/{id}/generate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateRequest {
    /// Number of local calendar days, 1..=400. Default 7.
    pub days: u32,
    /// Last day (local) to generate; default yesterday in the athlete's time zone. Not after today.
    pub end_date: Option<NaiveDate>,
    /// Upload times: natural (default) or now.
    pub upload: UploadMode,
    /// Override the simulator seed for this generation.
    pub seed: Option<u64>,
    /// Share (0..=1) of records in which Polar marks values as not measured, the way live data does
    /// (reference §8.3): a session without a heart-rate sensor (`0` bpm, zones all `PT0S`, loads
    /// `NOT_AVAILABLE`), a day the watch was off (`0` steps), a night without sleep charge
    /// (`sleep_charge: -1`, `continuity: 0`) or with nothing measured at all, a Nightly Recharge
    /// without HRV; a day of 24/7 heart rate with off-wrist `0` samples, a cardio-load day Polar could
    /// not compute, an alertness period whose grade is not valid. Default 0.
    pub no_data: f64,
    /// Also cardio load, SleepWise alertness (naps included) and 24/7 heart rate, the data of the
    /// connector's optional forms. Off by default: those days are large (288 heart-rate samples each).
    pub optional_data: bool,
}

impl Default for GenerateRequest {
    fn default() -> Self {
        Self {
            days: 7,
            end_date: None,
            upload: UploadMode::Natural,
            seed: None,
            no_data: 0.0,
            optional_data: false,
        }
    }
}

/// Kinds of stored records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// Training session (`/v3/exercises`), keyed by hashed id.
    Exercise,
    /// Daily activity (`/v3/users/activities`), keyed by date.
    Activity,
    /// Sleep (`/v3/users/sleep`), keyed by wake-up date.
    Sleep,
    /// Nightly Recharge (`/v3/users/nightly-recharge`), keyed by date.
    Recharge,
    /// Cardio load (`/v3/users/cardio-load`), keyed by date.
    CardioLoad,
    /// SleepWise alertness (`/v3/users/sleepwise/alertness`), keyed by the sleep period's start in UTC
    /// (`YYYY-MM-DDThh:mm:ss`): a night and a nap are two records.
    Alertness,
    /// 24/7 heart rate (`/v3/users/continuous-heart-rate`), keyed by date.
    HeartRate,
}

impl RecordKind {
    /// Path segment / JSON name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exercise => "exercise",
            Self::Activity => "activity",
            Self::Sleep => "sleep",
            Self::Recharge => "recharge",
            Self::CardioLoad => "cardio_load",
            Self::Alertness => "alertness",
            Self::HeartRate => "heart_rate",
        }
    }

    /// Parse a path segment.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "exercise" => Some(Self::Exercise),
            "activity" => Some(Self::Activity),
            "sleep" => Some(Self::Sleep),
            "recharge" => Some(Self::Recharge),
            "cardio_load" => Some(Self::CardioLoad),
            "alertness" => Some(Self::Alertness),
            "heart_rate" => Some(Self::HeartRate),
            _ => None,
        }
    }
}

/// What generation stored (`exercises` are ids, the others dates).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerateSummary {
    /// Hashed exercise ids.
    pub exercises: Vec<String>,
    /// Activity dates.
    pub activities: Vec<NaiveDate>,
    /// Sleep (wake-up) dates.
    pub sleeps: Vec<NaiveDate>,
    /// Nightly Recharge dates.
    pub recharges: Vec<NaiveDate>,
    /// Cardio-load dates (with `optional_data`).
    #[serde(default)]
    pub cardio_loads: Vec<NaiveDate>,
    /// Alertness keys: sleep period starts in UTC (with `optional_data`).
    #[serde(default)]
    pub alertness: Vec<String>,
    /// 24/7 heart-rate dates (with `optional_data`).
    #[serde(default)]
    pub heart_rates: Vec<NaiveDate>,
}

/// One record to add (`POST /_sim/accounts/{id}/records`): a realistic generated record for the
/// date (or exercise start) with `values` laid over its top-level fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRecord {
    /// Record kind.
    pub kind: RecordKind,
    /// Date for the daily kinds; default today (athlete's local date). For alertness: the day the night
    /// ends (`values` with `sleep_type: SLEEP_TYPE_SECONDARY` makes it that day's nap). Today's heart
    /// rate and cardio load hold what the watch measured until now; adding them again later is
    /// Polar revising them.
    #[serde(default)]
    pub date: Option<NaiveDate>,
    /// Local start for an exercise; default two hours ago (local).
    #[serde(default)]
    pub start_time: Option<NaiveDateTime>,
    /// Top-level fields to set (e.g. `{"steps": 12000}`); an exercise `id` here sets its id.
    #[serde(default)]
    pub values: Map<String, Value>,
    /// `false` = stored but "not ready yet" (hidden until marked ready). Default true.
    #[serde(default = "default_true")]
    pub ready: bool,
    /// Upload time; default now (sim clock).
    #[serde(default)]
    pub uploaded_at: Option<DateTime<Utc>>,
}

fn default_true() -> bool {
    true
}

impl NewRecord {
    /// A generated record of `kind` as the defaults make it: today's (an exercise two hours ago), ready,
    /// uploaded now.
    pub fn of(kind: RecordKind) -> Self {
        Self {
            kind,
            date: None,
            start_time: None,
            values: Map::new(),
            ready: true,
            uploaded_at: None,
        }
    }
}

/// Body of `POST .../revise`: new values for top-level fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRevision {
    /// Fields to change.
    pub values: Map<String, Value>,
}

/// Body of `POST .../ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadyFlag {
    /// Whether the record is served.
    pub ready: bool,
}

/// A stored record with its bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordView {
    /// Kind.
    pub kind: RecordKind,
    /// Exercise id or date.
    pub key: String,
    /// Upload time (sim clock).
    pub uploaded_at: DateTime<Utc>,
    /// Served once uploaded (false = "not ready yet").
    pub ready: bool,
    /// 1 for the first version, +1 per revision.
    pub version: u32,
    /// Whether the API serves it right now (ready, uploaded, registration boundary).
    pub served: bool,
    /// Full stored JSON (including zones/samples/route parts served only on request).
    pub body: Value,
}

/// The fault to inject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this status (e.g. 500, 502, 503) and a Polar error body.
    Status {
        /// HTTP status code.
        status: u16,
    },
    /// Wait this long, then answer normally.
    Delay {
        /// Milliseconds.
        ms: u64,
    },
    /// Close the connection without any HTTP answer.
    Drop {
        /// Process the request first (its effects happen), then drop the answer.
        #[serde(default)]
        after_processing: bool,
    },
    /// 429 with RateLimit headers.
    RateLimited,
    /// Process normally, then answer 200 with a truncated JSON body.
    MalformedJson,
    /// Insert one record with wrong field types into a list answer (only list endpoints;
    /// the fault is not used up on other answers).
    MalformedRecord,
    /// Insert one record of the right types with values no record can have into a list answer: an
    /// exercise lasting 99,999,999 days or eight, one ending after the year 9999, a start 99,999,999
    /// minutes from UTC, a date at the edge of chrono's calendar or before year 0 (each application
    /// the next of these). Only list endpoints; not used up on other answers.
    ExtremeRecord,
    /// Answer with `RateLimit-Reset: 18446744073709551615,9223372036854775807` and `Retry-After:
    /// 9223372036854775807` (`u64::MAX` and `i64::MAX` seconds) and, with `rate_limited`, a 429
    /// instead of processing the request.
    ExtremeHeaders {
        /// Refuse the request with 429.
        #[serde(default)]
        rate_limited: bool,
    },
}

impl FaultKind {
    /// Short name for the request log.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Status { .. } => "status",
            Self::Delay { .. } => "delay",
            Self::Drop { .. } => "drop",
            Self::RateLimited => "rate_limited",
            Self::MalformedJson => "malformed_json",
            Self::MalformedRecord => "malformed_record",
            Self::ExtremeRecord => "extreme_record",
            Self::ExtremeHeaders { .. } => "extreme_headers",
        }
    }
}

/// A fault rule (`POST /_sim/faults`), e.g.
/// `{"path_prefix": "/v3/exercises", "kind": "status", "status": 503, "count": 2}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// Applies to request paths starting with this (e.g. `/v3/exercises`, `/v2/oauth2/token`).
    pub path_prefix: String,
    /// Only this method (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// What happens.
    #[serde(flatten)]
    pub fault: FaultKind,
    /// Apply to the next N matching requests. With neither `count` nor `probability`: 1.
    #[serde(default)]
    pub count: Option<u32>,
    /// Apply to each matching request with this probability (seeded); unlimited unless `count`.
    #[serde(default)]
    pub probability: Option<f64>,
}

/// An installed fault rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultView {
    /// Rule id.
    pub id: u64,
    /// The rule as given.
    pub spec: FaultSpec,
    /// Remaining applications (None = unlimited).
    pub remaining: Option<u32>,
    /// How often it was applied.
    pub applied: u32,
}

/// One request the simulator answered (or dropped). Never contains credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestLogEntry {
    /// Sequence number, from 1.
    pub seq: u64,
    /// Sim time of arrival.
    pub at: DateTime<Utc>,
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Raw query string.
    pub query: Option<String>,
    /// Status sent; None when the connection was dropped.
    pub status: Option<u16>,
    /// The account the request acted for (resolved from the token or code).
    pub polar_user_id: Option<i64>,
    /// Injected fault, if any (its kind name).
    pub fault: Option<String>,
    /// Rejected by the (real, not injected) rate limiter.
    pub rate_limited: bool,
}

/// A webhook event to send now (`POST /_sim/webhook/deliver`), whatever the subscription.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEventRequest {
    /// `EXERCISE`, `SLEEP`, `ACTIVITY_SUMMARY`, `CONTINUOUS_HEART_RATE`, `SLEEP_WISE_ALERTNESS` or
    /// `PING`.
    pub event: String,
    /// The user (not for PING).
    #[serde(default)]
    pub polar_user_id: Option<i64>,
    /// Exercise id for EXERCISE.
    #[serde(default)]
    pub entity_id: Option<String>,
    /// Date for the date-based events.
    #[serde(default)]
    pub date: Option<NaiveDate>,
    /// First date for SLEEP_WISE_ALERTNESS.
    #[serde(default)]
    pub from: Option<NaiveDate>,
    /// Last date for SLEEP_WISE_ALERTNESS.
    #[serde(default)]
    pub to: Option<NaiveDate>,
}

/// One webhook delivery attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryView {
    /// Sequence number, from 1.
    pub seq: u64,
    /// Event type.
    pub event: String,
    /// The user the event is about.
    pub polar_user_id: Option<i64>,
    /// Target URL.
    pub url: String,
    /// Exact body sent.
    pub body: String,
    /// `Polar-Webhook-Signature` sent.
    pub signature: String,
    /// Receiver's status code, None if the request failed.
    pub status: Option<u16>,
    /// Transport error, if any.
    pub error: Option<String>,
    /// Sim time of the attempt.
    pub attempted_at: DateTime<Utc>,
}

/// The client's webhook as the simulator holds it (includes the secret: sim-only view).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookView {
    /// Webhook id.
    pub id: String,
    /// Subscribed events.
    pub events: Vec<String>,
    /// Target URL.
    pub url: String,
    /// Active (deliveries are sent).
    pub active: bool,
    /// The signing secret.
    pub signature_secret_key: String,
}

/// The simulator clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockView {
    /// Sim now.
    pub now: DateTime<Utc>,
    /// Offset from real time, seconds.
    pub offset_seconds: i64,
}

/// Body of `POST /_sim/clock/advance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockAdvance {
    /// Seconds to move forward (≥ 0).
    pub seconds: i64,
}

/// Body of `POST /_sim/session`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// Account to log in; null logs out.
    pub polar_user_id: Option<i64>,
}

/// Runtime settings (`GET/PATCH /_sim/settings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimSettings {
    /// Registered redirect URIs (first = default).
    pub redirect_uris: Vec<String>,
    /// Consent page behaviour.
    pub consent_mode: ConsentMode,
    /// Serve data uploaded before registration.
    pub history_before_registration: bool,
    /// Send SLEEP webhook events twice.
    pub double_fire_sleep: bool,
    /// Rate-limit bases.
    pub rate_limits: RateLimits,
    /// `expires_in` of the tokens the token endpoint issues (Polar's documented `31535999`).
    pub token_expires_in: i64,
}

/// Partial update of [`SimSettings`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SettingsPatch {
    /// Replace the redirect URIs.
    pub redirect_uris: Option<Vec<String>>,
    /// Change the consent mode.
    pub consent_mode: Option<ConsentMode>,
    /// Change the registration boundary.
    pub history_before_registration: Option<bool>,
    /// Change SLEEP double firing.
    pub double_fire_sleep: Option<bool>,
    /// Change the rate-limit bases.
    pub rate_limits: Option<RateLimits>,
    /// Change the `expires_in` of tokens issued from now on (any number: Polar's answer is outside input).
    pub token_expires_in: Option<i64>,
}
