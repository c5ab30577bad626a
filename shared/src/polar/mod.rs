//! Polar AccessLink v3: the port the use cases call, its domain types and errors.
//!
//! Everything Polar-specific (URLs, auth headers, status codes, field casing, lenient parsing, the
//! `RateLimit-*` headers, the numbers Polar uses to mean "no data") lives under this module; the rest of
//! the connector sees only these types. Every value in the record types is data: what Polar marks as not
//! measured is `None` (the scales are in `scale.rs`, the decisions in [`crate::mapping`]'s docs).

use std::future::Future;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::error::{Cause, json_syntax_cause, with_causes};
use crate::ids::{AccessToken, AthleteUuid, AuthCode, AuthState, ExerciseId, PolarUserId};

pub mod client;
pub mod duration;
mod scale;
mod wire;
mod wire_optional;

pub use client::{PolarClient, PolarEndpoints};

/// Polar's `RateLimit-*` headers from one response: short (15 min) and long (24 h) windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitInfo {
    /// Requests used in the short window.
    pub short_used: u64,
    /// Short-window limit.
    pub short_limit: u64,
    /// Seconds until the short window resets.
    pub short_reset_seconds: u64,
    /// Requests used in the long window.
    pub long_used: u64,
    /// Long-window limit.
    pub long_limit: u64,
    /// Seconds until the long window resets.
    pub long_reset_seconds: u64,
}

/// A rate-limit reading with the time it was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitObservation {
    /// The headers.
    pub info: RateLimitInfo,
    /// When the response arrived.
    pub observed_at: DateTime<Utc>,
}

/// Failures of a Polar call, by what the caller must do about them.
#[derive(Debug, thiserror::Error)]
pub enum PolarError {
    /// 401: the token is revoked, deleted or the athlete disconnected (confirm before acting).
    #[error("Polar answered 401 Unauthorized")]
    Unauthorized,
    /// 403: the athlete has not accepted Polar's mandatory consents.
    #[error("Polar answered 403: mandatory consents not accepted")]
    ConsentsMissing,
    /// 429: over the rate limit; retry after the reset.
    #[error("Polar answered 429 Too Many Requests (retry in {retry_after_seconds}s)")]
    RateLimited {
        /// Seconds until the window that refused us resets.
        retry_after_seconds: u64,
    },
    /// Token endpoint `invalid_grant`: code expired, reused or redirect URI mismatch.
    #[error("Polar refused the authorisation code (invalid_grant)")]
    InvalidGrant,
    /// Token endpoint `invalid_client`: our client id/secret are wrong (configuration).
    #[error("Polar refused the client credentials (invalid_client)")]
    InvalidClient,
    /// Another 4xx: our request is wrong.
    #[error("Polar answered {status}: {detail}")]
    BadRequest {
        /// HTTP status.
        status: u16,
        /// Polar's error code or a short description; never a token.
        detail: String,
    },
    /// 5xx.
    #[error("Polar answered {status} (server error)")]
    Server {
        /// HTTP status.
        status: u16,
    },
    /// No answer in time.
    #[error("Polar did not answer in time")]
    Timeout,
    /// Connection refused, reset or dropped.
    #[error("Polar could not be reached: {message}")]
    Transport {
        /// What failed, with its causes; never a URL or a header.
        message: String,
        /// The HTTP client's error, without its URL (which could carry a code or a state).
        #[source]
        source: Option<Cause>,
    },
    /// 2xx with a body that is not what the API documents.
    #[error("Polar sent a malformed response: {message}")]
    Malformed {
        /// What was wrong, never a value from the body.
        message: String,
        /// The JSON syntax error, when the body was not JSON (a field that does not read keeps none:
        /// serde's data errors quote the value, which may be a token).
        #[source]
        source: Option<Cause>,
    },
}

impl PolarError {
    /// Whether retrying later may succeed (5xx, timeouts, dropped connections, malformed bodies, 429).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Server { .. }
                | Self::Timeout
                | Self::Transport { .. }
                | Self::Malformed { .. }
                | Self::RateLimited { .. }
        )
    }

    /// [`Self::Transport`] with no underlying error (no HTTP client, a simulated fault).
    pub fn transport(message: impl Into<String>) -> Self {
        Self::Transport {
            message: message.into(),
            source: None,
        }
    }

    /// [`Self::Transport`] keeping reqwest's error, stripped of its URL, as the source; the message is
    /// its description and causes.
    pub fn transport_from(error: reqwest::Error) -> Self {
        let error = error.without_url();
        Self::Transport {
            message: with_causes(&error),
            source: Some(Box::new(error)),
        }
    }

    /// [`Self::Malformed`] with no underlying error.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::Malformed {
            message: message.into(),
            source: None,
        }
    }

    /// [`Self::Malformed`] for a body that is not JSON, keeping the syntax error (see
    /// [`json_syntax_cause`]).
    pub fn not_json(message: impl Into<String>, error: serde_json::Error) -> Self {
        Self::Malformed {
            message: message.into(),
            source: json_syntax_cause(error),
        }
    }
}

/// A successful token exchange.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    /// The bearer token (redacted in `Debug`).
    pub access_token: AccessToken,
    /// `x_user_id`.
    pub polar_user_id: PolarUserId,
    /// `expires_in` seconds, if sent and a believable lifetime (1 s to 100 years).
    pub expires_in_seconds: Option<i64>,
}

impl TokenGrant {
    /// When the token expires by Polar's `expires_in` counted from `issued`, if Polar sent one that is a
    /// time span (never a panic, whatever the number).
    pub fn expires_at(&self, issued: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.expires_in_seconds
            .and_then(chrono::Duration::try_seconds)
            .and_then(|lifetime| issued.checked_add_signed(lifetime))
    }
}

/// Result of `POST /v3/users`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// 200: newly registered; Polar's user object names the user id.
    Registered {
        /// `polar-user-id` of the answer, when readable.
        polar_user_id: Option<PolarUserId>,
    },
    /// 409: already registered to our client (fine).
    AlreadyRegistered,
}

/// Result of `DELETE /v3/users/{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deregistration {
    /// 204: deregistered and token revoked.
    Deleted,
    /// 401/404: already gone.
    AlreadyGone,
}

/// Polar's `user` object, the parts the connector uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolarUser {
    /// `polar-user-id`.
    pub polar_user_id: PolarUserId,
    /// `member-id` (our athlete UUID).
    pub member_id: Option<String>,
    /// `registration-date`.
    pub registered_at: Option<DateTime<Utc>>,
}

/// One heart-rate zone of an exercise.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartRateZone {
    /// 1..=5.
    pub index: u8,
    /// Time in the zone.
    pub in_zone_seconds: f64,
}

/// A training session from `/v3/exercises` (with `zones=true`).
#[derive(Debug, Clone, PartialEq)]
pub struct Exercise {
    /// Hashed id.
    pub id: ExerciseId,
    /// When it reached Polar Flow (UTC).
    pub upload_time: Option<DateTime<Utc>>,
    /// Device model.
    pub device: Option<String>,
    /// Local wall-clock start (no offset).
    pub start_time: NaiveDateTime,
    /// Minutes east of UTC: UTC = local − offset.
    pub start_time_utc_offset_minutes: i32,
    /// Session length in seconds.
    pub duration_seconds: Option<f64>,
    /// kcal.
    pub calories: Option<f64>,
    /// Metres.
    pub distance_metres: Option<f64>,
    /// bpm.
    pub heart_rate_average: Option<f64>,
    /// bpm.
    pub heart_rate_maximum: Option<f64>,
    /// `training_load`.
    pub training_load: Option<f64>,
    /// `sport`.
    pub sport: Option<String>,
    /// `detailed_sport_info`.
    pub detailed_sport_info: Option<String>,
    /// Heart-rate zones, when embedded.
    pub heart_rate_zones: Vec<HeartRateZone>,
    /// `training_load_pro.cardio-load`.
    pub cardio_load: Option<f64>,
    /// `training_load_pro.muscle-load`.
    pub muscle_load: Option<f64>,
}

/// One day's activity summary from `/v3/users/activities`.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyActivity {
    /// The calendar day (from `start_time`'s date part).
    pub date: NaiveDate,
    /// `active_duration` in seconds.
    pub active_duration_seconds: Option<f64>,
    /// kcal including BMR.
    pub calories: Option<f64>,
    /// kcal excluding BMR.
    pub active_calories: Option<f64>,
    /// Steps.
    pub steps: Option<i64>,
    /// `distance_from_steps`, metres.
    pub distance_from_steps_metres: Option<f64>,
}

/// One night from `/v3/users/sleep`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sleep {
    /// The sleep's result date (the wake-up day).
    pub date: NaiveDate,
    /// Local start with its offset.
    pub sleep_start: Option<DateTime<chrono::FixedOffset>>,
    /// Local end with its offset.
    pub sleep_end: Option<DateTime<chrono::FixedOffset>>,
    /// Seconds.
    pub light_sleep_seconds: Option<i64>,
    /// Seconds.
    pub deep_sleep_seconds: Option<i64>,
    /// Seconds.
    pub rem_sleep_seconds: Option<i64>,
    /// Seconds.
    pub unrecognized_sleep_seconds: Option<i64>,
    /// Seconds.
    pub total_interruption_seconds: Option<i64>,
    /// 1–100.
    pub sleep_score: Option<f64>,
    /// 1–5.
    pub sleep_charge: Option<f64>,
    /// 1.0–5.0.
    pub continuity: Option<f64>,
}

/// One Nightly Recharge from `/v3/users/nightly-recharge`.
#[derive(Debug, Clone, PartialEq)]
pub struct NightlyRecharge {
    /// The night's date.
    pub date: NaiveDate,
    /// 1–6.
    pub nightly_recharge_status: Option<i64>,
    /// −10.0..=10.0.
    pub ans_charge: Option<f64>,
    /// bpm.
    pub heart_rate_avg: Option<f64>,
    /// ms.
    pub heart_rate_variability_avg: Option<f64>,
    /// breaths/min.
    pub breathing_rate_avg: Option<f64>,
}

/// One day of `/v3/users/cardio-load`: the day's training impulse and the acute:chronic picture.
#[derive(Debug, Clone, PartialEq)]
pub struct CardioLoad {
    /// Polar's date.
    pub date: NaiveDate,
    /// `cardio_load_status` as Polar spells it (`PRODUCTIVE`, `OVERREACHING`, …); absent when Polar
    /// could not compute it (`LOAD_STATUS_NOT_AVAILABLE`, `UNRECOGNIZED`).
    pub status: Option<String>,
    /// `cardio_load` (TRIMP of the day's training; 0 on a rest day once a status is computed).
    pub cardio_load: Option<f64>,
    /// `strain`: average daily load of the last 7 days.
    pub strain: Option<f64>,
    /// `tolerance`: average daily load of the last 28 days.
    pub tolerance: Option<f64>,
    /// `cardio_load_ratio`: strain / tolerance.
    pub cardio_load_ratio: Option<f64>,
}

/// Which days `/v3/users/cardio-load` is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardioLoadRange {
    /// `GET /v3/users/cardio-load`: the last 28 days.
    Recent,
    /// `GET /v3/users/cardio-load/date?from=&to=`: one entry per day of the range.
    Dates(DateRange),
    /// `GET /v3/users/cardio-load/period/days/{days}`: history counted back from Polar's today.
    PastDays(PastDays),
}

/// A number of days back for `/cardio-load/period/days/{days}`: 1 to 180, as Polar allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PastDays(u16);

impl PastDays {
    /// The most Polar serves.
    pub const MAX: u16 = 180;

    /// `days`, if Polar accepts it (1–180).
    pub fn new(days: u16) -> Option<Self> {
        (1..=Self::MAX).contains(&days).then_some(Self(days))
    }

    /// The number of days.
    pub fn get(self) -> u16 {
        self.0
    }
}

/// An inclusive date range Polar accepts in one request (`?from=&to=`): at most 28 days, the limit of
/// the SleepWise and continuous heart-rate ranges (their clients chunk at 28 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    from: NaiveDate,
    to: NaiveDate,
}

impl DateRange {
    /// The most days one range may span, both ends included.
    pub const MAX_DAYS: i64 = 28;

    /// `from..=to`, if `from` is not after `to` and the range spans at most 28 days.
    pub fn new(from: NaiveDate, to: NaiveDate) -> Option<Self> {
        let days = (to - from).num_days() + 1;
        (1..=Self::MAX_DAYS)
            .contains(&days)
            .then_some(Self { from, to })
    }

    /// `from..=to` cut into consecutive ranges of at most 28 days, oldest first (none when `from` is
    /// after `to`).
    pub fn chunks(from: NaiveDate, to: NaiveDate) -> Vec<Self> {
        let mut chunks = Vec::new();
        let mut start = from;
        while start <= to {
            let end = start
                .checked_add_days(chrono::Days::new(Self::MAX_DAYS as u64 - 1))
                .map_or(to, |end| end.min(to));
            chunks.push(Self {
                from: start,
                to: end,
            });
            match end.succ_opt() {
                Some(next) => start = next,
                None => break,
            }
        }
        chunks
    }

    /// The first day.
    pub fn from(self) -> NaiveDate {
        self.from
    }

    /// The last day (included).
    pub fn to(self) -> NaiveDate {
        self.to
    }
}

/// One SleepWise alertness period from `/v3/users/sleepwise/alertness`: one per sleep period (a nap is
/// its own). Polar gives its times in UTC with the offset of the athlete's time zone at the time.
#[derive(Debug, Clone, PartialEq)]
pub struct Alertness {
    /// `sleep_period_start_time` (UTC): what identifies the record (its end may move when Polar revises it).
    pub sleep_period_start: DateTime<Utc>,
    /// `sleep_period_end_time` (UTC).
    pub sleep_period_end: DateTime<Utc>,
    /// `sleep_timezone_offset_minutes`: local = UTC + offset.
    pub sleep_timezone_offset_minutes: i32,
    /// `grade` (0–10), when Polar says the grade is valid or an estimate.
    pub grade: Option<f64>,
    /// `grade_classification` as Polar spells it (`GRADE_CLASSIFICATION_STRONG`, …).
    pub grade_classification: Option<String>,
    /// `sleep_inertia` (`SLEEP_INERTIA_MILD`, …).
    pub sleep_inertia: Option<String>,
    /// `sleep_type` (`SLEEP_TYPE_PRIMARY` for the night, `SLEEP_TYPE_SECONDARY` for a nap, …).
    pub sleep_type: Option<String>,
    /// `validity` (`VALIDITY_VALID`, `VALIDITY_ESTIMATE`, `VALIDITY_NOT_VALID`, `VALIDITY_RESET`).
    pub validity: Option<String>,
}

impl Alertness {
    /// The athlete's local date at the end of the sleep period (UTC + offset): the date of its event.
    pub fn local_end_date(&self) -> NaiveDate {
        let offset = chrono::Duration::minutes(i64::from(self.sleep_timezone_offset_minutes));
        // Polar's reading keeps the offset within a day and the end within the four-digit years.
        self.sleep_period_end
            .checked_add_signed(offset)
            .unwrap_or(self.sleep_period_end)
            .date_naive()
    }
}

/// One 24/7 heart-rate sample (`heart_rate_samples[]`), in the device's local time of its date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartRateSample {
    /// `sample_time`.
    pub time: NaiveTime,
    /// `heart_rate`, bpm.
    pub heart_rate: u16,
}

/// One day of `/v3/users/continuous-heart-rate`: the samples that are data (at least one).
#[derive(Debug, Clone, PartialEq)]
pub struct DailyHeartRate {
    /// Polar's date (the device's local day).
    pub date: NaiveDate,
    /// The measured samples, in Polar's order.
    pub samples: Vec<HeartRateSample>,
}

/// A record in a list that could not be parsed; the rest of the list is still used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenRecord {
    /// Its id or date if those could be read, for logs and for holding the cursor back.
    pub hint: Option<String>,
    /// The date it belongs to, if readable.
    pub date: Option<NaiveDate>,
    /// What was wrong (field name and expectation; never the whole body).
    pub reason: String,
}

/// A list response: the records that parsed and the ones that did not.
#[derive(Debug, Clone, PartialEq)]
pub struct Records<T> {
    /// Parsed records.
    pub records: Vec<T>,
    /// Records skipped as malformed.
    pub broken: Vec<BrokenRecord>,
}

impl<T> Default for Records<T> {
    fn default() -> Self {
        Self {
            records: Vec::new(),
            broken: Vec::new(),
        }
    }
}

/// Webhook event types the connector subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WebhookEventType {
    /// New training session.
    Exercise,
    /// New or revised sleep.
    Sleep,
    /// New or revised daily activity.
    ActivitySummary,
    /// New or revised 24/7 heart rate of a day (`date`).
    ContinuousHeartRate,
    /// New or revised SleepWise alertness (`from`, `to`).
    SleepWiseAlertness,
}

impl WebhookEventType {
    /// The types the connector registers.
    pub const SUBSCRIBED: [Self; 3] = [Self::Exercise, Self::Sleep, Self::ActivitySummary];
}

/// A webhook as `GET /v3/webhooks` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookInfo {
    /// Polar's id.
    pub id: String,
    /// Subscribed events (as Polar spells them; unknown ones kept).
    pub events: Vec<String>,
    /// Delivery URL.
    pub url: String,
    /// Whether Polar is delivering (it deactivates after 7 days of failures).
    pub active: Option<bool>,
}

/// A webhook just created: the only time Polar shows its signing secret.
#[derive(Debug, Clone)]
pub struct CreatedWebhook {
    /// Polar's id.
    pub id: String,
    /// `signature_secret_key`.
    pub signature_secret: SecretString,
}

/// Everything the connector asks of Polar. [`PolarClient`] talks HTTP; tests run it against `polar-sim`,
/// the project's simulator of AccessLink.
pub trait PolarApi: Send + Sync {
    /// The browser URL that starts authorisation (pure; no request).
    fn authorization_url(&self, state: &AuthState, redirect_uri: &str) -> String;

    /// Exchanges a code once; never retried by the client (a reused code kills the athlete's tokens).
    fn exchange_code(
        &self,
        code: &AuthCode,
        redirect_uri: &str,
    ) -> impl Future<Output = Result<TokenGrant, PolarError>> + Send;

    /// `POST /v3/users` with `member-id`.
    fn register_user(
        &self,
        token: &AccessToken,
        member_id: &AthleteUuid,
    ) -> impl Future<Output = Result<Registration, PolarError>> + Send;

    /// `GET /v3/users/{id}`: `None` on 204. Used to confirm a 401 before unlinking anyone.
    fn get_user(
        &self,
        token: &AccessToken,
        user: PolarUserId,
    ) -> impl Future<Output = Result<Option<PolarUser>, PolarError>> + Send;

    /// `DELETE /v3/users/{id}`.
    fn delete_user(
        &self,
        token: &AccessToken,
        user: PolarUserId,
    ) -> impl Future<Output = Result<Deregistration, PolarError>> + Send;

    /// `GET /v3/exercises?zones=true`: the last 30 days of uploads.
    fn exercises(
        &self,
        token: &AccessToken,
    ) -> impl Future<Output = Result<Records<Exercise>, PolarError>> + Send;

    /// `GET /v3/exercises/{id}?zones=true`: `None` on 404 (unknown or older than 30 days).
    fn exercise(
        &self,
        token: &AccessToken,
        id: &ExerciseId,
    ) -> impl Future<Output = Result<Option<Exercise>, PolarError>> + Send;

    /// `GET /v3/users/activities`: the last 28 days, in the athlete's own time zone (which can be a day
    /// ahead of UTC).
    fn activities(
        &self,
        token: &AccessToken,
    ) -> impl Future<Output = Result<Records<DailyActivity>, PolarError>> + Send;

    /// `GET /v3/users/activities/?from=&to=`: the days of `range` (`from` at most 365 days back).
    fn activities_range(
        &self,
        token: &AccessToken,
        range: DateRange,
    ) -> impl Future<Output = Result<Records<DailyActivity>, PolarError>> + Send;

    /// `GET /v3/users/activities/{date}`: `None` on 204.
    fn activity(
        &self,
        token: &AccessToken,
        date: NaiveDate,
    ) -> impl Future<Output = Result<Option<DailyActivity>, PolarError>> + Send;

    /// `GET /v3/users/sleep`: the last 28 nights.
    fn sleeps(
        &self,
        token: &AccessToken,
    ) -> impl Future<Output = Result<Records<Sleep>, PolarError>> + Send;

    /// `GET /v3/users/sleep/{date}`: `None` on 404.
    fn sleep(
        &self,
        token: &AccessToken,
        date: NaiveDate,
    ) -> impl Future<Output = Result<Option<Sleep>, PolarError>> + Send;

    /// `GET /v3/users/nightly-recharge`: the last 28 nights.
    fn recharges(
        &self,
        token: &AccessToken,
    ) -> impl Future<Output = Result<Records<NightlyRecharge>, PolarError>> + Send;

    /// `GET /v3/users/nightly-recharge/{date}`: `None` on 404 (no data, or not computed yet).
    fn recharge(
        &self,
        token: &AccessToken,
        date: NaiveDate,
    ) -> impl Future<Output = Result<Option<NightlyRecharge>, PolarError>> + Send;

    /// Cardio load, one entry per day of `range` (`LOAD_STATUS_NOT_AVAILABLE` days with nothing
    /// measured are no record).
    fn cardio_loads(
        &self,
        token: &AccessToken,
        range: CardioLoadRange,
    ) -> impl Future<Output = Result<Records<CardioLoad>, PolarError>> + Send;

    /// SleepWise alertness periods: `None` → `GET /v3/users/sleepwise/alertness` (the last 28 days),
    /// `Some(range)` → `/alertness/date?from=&to=`. 204 (no data, or a device without SleepWise) is empty.
    fn alertness(
        &self,
        token: &AccessToken,
        range: Option<DateRange>,
    ) -> impl Future<Output = Result<Records<Alertness>, PolarError>> + Send;

    /// `GET /v3/users/continuous-heart-rate/{date}`: `None` on 404 (no data) or when no sample is data.
    fn daily_heart_rate(
        &self,
        token: &AccessToken,
        date: NaiveDate,
    ) -> impl Future<Output = Result<Option<DailyHeartRate>, PolarError>> + Send;

    /// `GET /v3/users/continuous-heart-rate?from=&to=`: one record per day with samples.
    fn daily_heart_rates(
        &self,
        token: &AccessToken,
        range: DateRange,
    ) -> impl Future<Output = Result<Records<DailyHeartRate>, PolarError>> + Send;

    /// `POST /v3/webhooks` (client credentials). Polar pings `url` first.
    fn create_webhook(
        &self,
        url: &str,
        events: &[WebhookEventType],
    ) -> impl Future<Output = Result<CreatedWebhook, PolarError>> + Send;

    /// `GET /v3/webhooks`.
    fn webhooks(&self) -> impl Future<Output = Result<Vec<WebhookInfo>, PolarError>> + Send;

    /// `POST /v3/webhooks/activate`: `false` when there is no webhook.
    fn activate_webhook(&self) -> impl Future<Output = Result<bool, PolarError>> + Send;

    /// `DELETE /v3/webhooks/{id}`.
    fn delete_webhook(&self, id: &str) -> impl Future<Output = Result<(), PolarError>> + Send;

    /// The most recent `RateLimit-*` reading of any response through this client, for the budget.
    fn latest_rate_limit(&self) -> Option<RateLimitObservation>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_date_range_spans_one_to_28_days() {
        let from = date("2026-02-01");
        assert!(DateRange::new(from, from).is_some());
        assert!(DateRange::new(from, date("2026-02-28")).is_some());
        assert!(DateRange::new(from, date("2026-03-01")).is_none());
        assert!(DateRange::new(from, date("2026-01-31")).is_none());
        assert!(DateRange::new(NaiveDate::MIN, NaiveDate::MAX).is_none());
    }

    #[test]
    fn a_long_span_is_cut_into_28_day_ranges_oldest_first() {
        let chunks = DateRange::chunks(date("2025-01-01"), date("2025-03-01"));
        let bounds: Vec<(NaiveDate, NaiveDate)> =
            chunks.iter().map(|c| (c.from(), c.to())).collect();
        assert_eq!(
            bounds,
            [
                (date("2025-01-01"), date("2025-01-28")),
                (date("2025-01-29"), date("2025-02-25")),
                (date("2025-02-26"), date("2025-03-01")),
            ]
        );
        assert!(DateRange::chunks(date("2025-01-02"), date("2025-01-01")).is_empty());
        // At the calendar's end the last chunk stops there, without overflowing.
        let end = DateRange::chunks(NaiveDate::MAX - chrono::Days::new(30), NaiveDate::MAX);
        assert_eq!(end.last().map(|c| c.to()), Some(NaiveDate::MAX));
        assert_eq!(end.len(), 2);
    }

    #[test]
    fn past_days_are_what_polar_serves() {
        assert_eq!(PastDays::new(0), None);
        assert_eq!(PastDays::new(1).map(PastDays::get), Some(1));
        assert_eq!(PastDays::new(180).map(PastDays::get), Some(180));
        assert_eq!(PastDays::new(181), None);
    }
}
