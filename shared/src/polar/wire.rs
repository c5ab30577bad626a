//! Polar's JSON exactly as AccessLink sends it, and its translation into the domain types.
//!
//! Casing follows each resource: snake_case data with kebab-case leftovers (`in-zone`, `cardio-load`),
//! kebab-case users. Only the fields the connector uses are declared; everything else is ignored, so
//! a field we never read cannot break a record. Integers may arrive as floats (`13207.0`).
//! Lists are parsed per record: one bad record lands in [`Records::broken`] and the rest are kept.
//! Values outside their scale are Polar's "no data" and read as absent ([`super::scale`]); a daily record
//! with nothing measured at all is no record, as Polar's 404 is. Dates and times must have the documented
//! four-digit year, so nothing computed from them can leave the calendar.

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use secrecy::SecretString;
use serde::de::{self, DeserializeOwned, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::duration;
use super::scale;
use super::{
    BrokenRecord, CreatedWebhook, DailyActivity, Exercise, HeartRateZone, NightlyRecharge,
    PolarError, PolarUser, Records, Sleep, TokenGrant, WebhookEventType, WebhookInfo,
};
use crate::ids::{AccessToken, ExerciseId, PolarUserId};

// ---------------------------------------------------------------------------------------------
// Numbers

/// An integer that Polar may send as `42` or `42.0`; a fraction is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Integral(pub(crate) i64);

/// A count or whole-second measurement that Polar may send as a float; fractions are rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rounded(pub(crate) i64);

struct IntegerVisitor {
    round_fractions: bool,
}

impl Visitor<'_> for IntegerVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        // i64::MAX as f64 rounds up to 2^63, so the upper bound is exclusive.
        let in_range = v.is_finite() && v >= i64::MIN as f64 && v < i64::MAX as f64;
        if in_range && (self.round_fractions || v.fract() == 0.0) {
            Ok(v.round() as i64)
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &self))
        }
    }
}

impl<'de> Deserialize<'de> for Integral {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(IntegerVisitor {
                round_fractions: false,
            })
            .map(Self)
    }
}

impl<'de> Deserialize<'de> for Rounded {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(IntegerVisitor {
                round_fractions: true,
            })
            .map(Self)
    }
}

/// A webhook id: Polar documents a string, but a number is accepted and kept as its decimal text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebhookId(pub(crate) String);

impl<'de> Deserialize<'de> for WebhookId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(u64),
        }
        Ok(Self(match Raw::deserialize(deserializer)? {
            Raw::Text(text) => text,
            Raw::Number(number) => number.to_string(),
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// OAuth

/// The token endpoint's form body.
#[derive(Serialize)]
pub(crate) struct TokenRequest<'a> {
    pub(crate) grant_type: &'static str,
    pub(crate) code: &'a str,
    pub(crate) redirect_uri: &'a str,
}

/// Polar documents about a year (`31535999`); a hundred years is past any token's life.
const MAX_TOKEN_LIFETIME_SECONDS: i64 = 100 * 366 * 24 * 3600;

/// `200` from the token endpoint.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    access_token: String,
    expires_in: Option<Integral>,
    x_user_id: Integral,
}

impl TokenResponse {
    pub(crate) fn into_grant(self) -> Result<TokenGrant, FieldError> {
        if self.access_token.is_empty() {
            return Err(FieldError::new("access_token", "is empty"));
        }
        let polar_user_id = PolarUserId::new(self.x_user_id.0)
            .map_err(|_| FieldError::new("x_user_id", "is not a positive integer"))?;
        let expires_in_seconds = self.expires_in.map(|seconds| seconds.0).filter(|seconds| {
            let believable = (1..=MAX_TOKEN_LIFETIME_SECONDS).contains(seconds);
            if !believable {
                tracing::warn!(
                    field = "expires_in",
                    "Polar sent a token lifetime that is not a time span; stored without an expiry"
                );
            }
            believable
        });
        Ok(TokenGrant {
            access_token: AccessToken::new(self.access_token),
            polar_user_id,
            expires_in_seconds,
        })
    }
}

/// Error bodies: `{"error": "invalid_grant"}` from OAuth, `{"errorType": ...}` from the API.
#[derive(Deserialize)]
pub(crate) struct ErrorBody {
    error: Option<String>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
}

impl ErrorBody {
    /// Polar's error code if the body carries a plausible one (`invalid_grant`, `CONFLICT`): words of
    /// letters joined by `_`, `-` or `.`. Free text is never passed on, and neither is anything with a
    /// digit in it: a token or an authorisation code echoed back would look like that.
    pub(crate) fn code_from(body: &[u8]) -> Option<String> {
        let parsed: Self = serde_json::from_slice(body).ok()?;
        parsed.error.or(parsed.error_type).filter(|code| {
            !code.is_empty()
                && code.len() <= 64
                && code
                    .chars()
                    .all(|c| c.is_ascii_alphabetic() || matches!(c, '_' | '-' | '.'))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Users

/// `POST /v3/users` body.
#[derive(Serialize)]
pub(crate) struct RegisterUserRequest<'a> {
    #[serde(rename = "member-id")]
    pub(crate) member_id: &'a str,
}

/// Polar's `user` object (kebab-case).
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct UserWire {
    polar_user_id: Integral,
    member_id: Option<String>,
    registration_date: Option<String>,
}

impl UserWire {
    pub(crate) fn into_domain(self) -> Result<PolarUser, FieldError> {
        Ok(PolarUser {
            polar_user_id: PolarUserId::new(self.polar_user_id.0)
                .map_err(|_| FieldError::new("polar-user-id", "is not a positive integer"))?,
            member_id: self.member_id,
            registered_at: self
                .registration_date
                .as_deref()
                .map(|text| parse_utc("registration-date", text))
                .transpose()?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Exercises

/// One exercise of `/v3/exercises` (snake_case with kebab-case leftovers).
#[derive(Deserialize)]
pub(crate) struct ExerciseWire {
    id: String,
    upload_time: Option<String>,
    device: Option<String>,
    start_time: String,
    start_time_utc_offset: Integral,
    duration: Option<String>,
    calories: Option<f64>,
    distance: Option<f64>,
    heart_rate: Option<HeartRateWire>,
    training_load: Option<f64>,
    sport: Option<String>,
    detailed_sport_info: Option<String>,
    heart_rate_zones: Option<Vec<HeartRateZoneWire>>,
    training_load_pro: Option<TrainingLoadProWire>,
}

#[derive(Deserialize)]
struct HeartRateWire {
    average: Option<f64>,
    maximum: Option<f64>,
}

#[derive(Deserialize)]
struct HeartRateZoneWire {
    index: Integral,
    #[serde(rename = "in-zone")]
    in_zone: String,
}

#[derive(Deserialize)]
struct TrainingLoadProWire {
    #[serde(rename = "cardio-load")]
    cardio_load: Option<f64>,
    #[serde(rename = "muscle-load")]
    muscle_load: Option<f64>,
    /// Read only for `NOT_AVAILABLE`, so any other value (of any type) cannot break the record.
    #[serde(rename = "cardio-load-interpretation")]
    cardio_load_interpretation: Option<Value>,
    #[serde(rename = "muscle-load-interpretation")]
    muscle_load_interpretation: Option<Value>,
}

impl TrainingLoadProWire {
    /// Cardio and muscle load, each absent when Polar interprets it as `NOT_AVAILABLE`.
    fn loads(self) -> (Option<f64>, Option<f64>) {
        let available = |load: Option<f64>, interpretation: Option<Value>| {
            let not_available = interpretation.is_some_and(|i| i == "NOT_AVAILABLE");
            scale::LOAD.data(load).filter(|_| !not_available)
        };
        (
            available(self.cardio_load, self.cardio_load_interpretation),
            available(self.muscle_load, self.muscle_load_interpretation),
        )
    }
}

/// An offset further than a day from UTC is not a time zone.
pub(super) const MAX_UTC_OFFSET_MINUTES: i32 = 24 * 60;

impl WireRecord for ExerciseWire {
    type Domain = Exercise;

    /// Always a record: a session the athlete recorded is news to the coach even with nothing measured.
    fn into_domain(self) -> Result<Option<Exercise>, FieldError> {
        let id = ExerciseId::parse(self.id).map_err(|e| FieldError::new("id", e.to_string()))?;
        let offset = i32::try_from(self.start_time_utc_offset.0)
            .ok()
            .filter(|minutes| minutes.abs() <= MAX_UTC_OFFSET_MINUTES)
            .ok_or_else(|| {
                FieldError::new("start_time_utc_offset", "is more than 24 hours from UTC")
            })?;
        let zones = self
            .heart_rate_zones
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(position, zone)| {
                let field = || format!("heart_rate_zones[{position}]");
                let index = u8::try_from(zone.index.0)
                    .map_err(|_| FieldError::new(format!("{}.index", field()), "out of range"))?;
                let seconds = parse_duration(&format!("{}.in-zone", field()), &zone.in_zone)?;
                Ok((index, seconds))
            })
            .collect::<Result<Vec<_>, FieldError>>()?;
        let zone_times: Vec<Option<f64>> = zones.iter().map(|(_, s)| Some(*s)).collect();
        let heart_rate_zones = zones
            .iter()
            .zip(scale::group(scale::ZONE_TIME, &zone_times))
            .filter_map(|((index, _), seconds)| {
                seconds.map(|in_zone_seconds| HeartRateZone {
                    index: *index,
                    in_zone_seconds,
                })
            })
            .collect();
        let (cardio_load, muscle_load) = self
            .training_load_pro
            .map_or((None, None), TrainingLoadProWire::loads);
        let start_time = parse_local("start_time", &self.start_time)?;
        let duration_seconds = self
            .duration
            .as_deref()
            .map(|text| exercise_duration(start_time, text))
            .transpose()?
            .flatten();
        let heart_rate = |read: fn(&HeartRateWire) -> Option<f64>| {
            scale::HEART_RATE.data(self.heart_rate.as_ref().and_then(read))
        };
        Ok(Some(Exercise {
            id,
            upload_time: self
                .upload_time
                .as_deref()
                .map(|text| parse_utc("upload_time", text))
                .transpose()?,
            device: text(self.device),
            start_time,
            start_time_utc_offset_minutes: offset,
            duration_seconds,
            calories: scale::EXERCISE_CALORIES.data(self.calories),
            distance_metres: scale::EXERCISE_DISTANCE.data(self.distance),
            heart_rate_average: heart_rate(|hr| hr.average),
            heart_rate_maximum: heart_rate(|hr| hr.maximum),
            training_load: scale::LOAD.data(self.training_load),
            sport: text(self.sport),
            detailed_sport_info: text(self.detailed_sport_info),
            heart_rate_zones,
            cardio_load,
            muscle_load,
        }))
    }

    fn hint(raw: &Value) -> RecordHint {
        RecordHint {
            label: raw
                .get("id")
                .and_then(Value::as_str)
                .filter(|id| ExerciseId::parse(*id).is_ok())
                .map(str::to_string),
            date: date_part_of(raw, "start_time"),
        }
    }
}

/// A text value, without surrounding blanks; blank text is no data.
pub(super) fn text(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// An exercise's duration in seconds; `None` when it is no data (zero or negative). Longer than the
/// scale allows, or ending past the four-digit years, the record cannot be placed: broken.
fn exercise_duration(start: NaiveDateTime, text: &str) -> Result<Option<f64>, FieldError> {
    let seconds = parse_duration("duration", text)?;
    if seconds > scale::EXERCISE_DURATION.max() {
        return Err(FieldError::new("duration", "is longer than 7 days"));
    }
    let seconds = scale::EXERCISE_DURATION.data(Some(seconds));
    if let Some(seconds) = seconds {
        let finish = TimeDelta::try_milliseconds((seconds * 1000.0).round() as i64)
            .and_then(|length| start.checked_add_signed(length));
        if finish.is_none_or(|finish| finish.year() > MAX_YEAR) {
            return Err(FieldError::new("duration", "ends after the year 9999"));
        }
    }
    Ok(seconds)
}

// ---------------------------------------------------------------------------------------------
// Daily activity

/// One daily summary of `/v3/users/activities`. It has no `date`: the day is `start_time`'s date part.
#[derive(Deserialize)]
pub(crate) struct ActivityWire {
    start_time: Option<String>,
    active_duration: Option<String>,
    calories: Option<f64>,
    active_calories: Option<f64>,
    steps: Option<Rounded>,
    distance_from_steps: Option<f64>,
}

impl ActivityWire {
    /// The domain record for a known day (the date a single-day request asked for); `None` when the
    /// day has nothing measured.
    pub(crate) fn into_domain_on(
        self,
        date: NaiveDate,
    ) -> Result<Option<DailyActivity>, FieldError> {
        let activity = DailyActivity {
            date,
            active_duration_seconds: self
                .active_duration
                .as_deref()
                .map(|text| parse_duration("active_duration", text))
                .transpose()?
                .and_then(|seconds| scale::ACTIVE_TIME.data(Some(seconds))),
            calories: scale::DAY_CALORIES.data(self.calories),
            active_calories: scale::DAY_CALORIES.data(self.active_calories),
            steps: scale::STEPS.data_integer(self.steps.map(|steps| steps.0)),
            distance_from_steps_metres: scale::DAY_DISTANCE.data(self.distance_from_steps),
        };
        let measured = activity.active_duration_seconds.is_some()
            || activity.calories.is_some()
            || activity.active_calories.is_some()
            || activity.steps.is_some()
            || activity.distance_from_steps_metres.is_some();
        Ok(measured.then_some(activity))
    }
}

impl WireRecord for ActivityWire {
    type Domain = DailyActivity;

    fn into_domain(self) -> Result<Option<DailyActivity>, FieldError> {
        let date = match self.start_time.as_deref() {
            Some(text) => parse_date_part("start_time", text)?,
            None => {
                return Err(FieldError::new(
                    "start_time",
                    "is missing (it gives the day)",
                ));
            }
        };
        self.into_domain_on(date)
    }

    fn hint(raw: &Value) -> RecordHint {
        let date = date_part_of(raw, "start_time");
        RecordHint {
            label: date.map(|d| d.to_string()),
            date,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sleep and Nightly Recharge

/// One night of `/v3/users/sleep`; stage durations are integer seconds, times carry `+hh:mm`.
#[derive(Deserialize)]
pub(crate) struct SleepWire {
    date: String,
    sleep_start_time: Option<String>,
    sleep_end_time: Option<String>,
    light_sleep: Option<Rounded>,
    deep_sleep: Option<Rounded>,
    rem_sleep: Option<Rounded>,
    unrecognized_sleep_stage: Option<Rounded>,
    total_interruption_duration: Option<Rounded>,
    sleep_score: Option<f64>,
    sleep_charge: Option<f64>,
    continuity: Option<f64>,
}

impl WireRecord for SleepWire {
    type Domain = Sleep;

    fn into_domain(self) -> Result<Option<Sleep>, FieldError> {
        let seconds = |value: Option<Rounded>| value.map(|v| v.0 as f64);
        let stages = scale::group(
            scale::SLEEP_STAGE,
            &[
                seconds(self.light_sleep),
                seconds(self.deep_sleep),
                seconds(self.rem_sleep),
                seconds(self.unrecognized_sleep_stage),
            ],
        );
        // Whole seconds on the scale of a day: exact as integers.
        let stage = |index: usize| stages.get(index).copied().flatten().map(|s| s as i64);
        let sleep = Sleep {
            date: parse_date("date", &self.date)?,
            sleep_start: self
                .sleep_start_time
                .as_deref()
                .map(|text| parse_with_offset("sleep_start_time", text))
                .transpose()?,
            sleep_end: self
                .sleep_end_time
                .as_deref()
                .map(|text| parse_with_offset("sleep_end_time", text))
                .transpose()?,
            light_sleep_seconds: stage(0),
            deep_sleep_seconds: stage(1),
            rem_sleep_seconds: stage(2),
            unrecognized_sleep_seconds: stage(3),
            total_interruption_seconds: scale::INTERRUPTIONS
                .data_integer(self.total_interruption_duration.map(|v| v.0)),
            sleep_score: scale::SLEEP_SCORE.data(self.sleep_score),
            sleep_charge: scale::SLEEP_CHARGE.data(self.sleep_charge),
            continuity: scale::CONTINUITY.data(self.continuity),
        };
        let measured = sleep.sleep_start.is_some()
            || sleep.sleep_end.is_some()
            || stages.iter().any(Option::is_some)
            || sleep.total_interruption_seconds.is_some()
            || sleep.sleep_score.is_some()
            || sleep.sleep_charge.is_some()
            || sleep.continuity.is_some();
        Ok(measured.then_some(sleep))
    }

    fn hint(raw: &Value) -> RecordHint {
        date_hint(raw)
    }
}

/// One night of `/v3/users/nightly-recharge`.
#[derive(Deserialize)]
pub(crate) struct RechargeWire {
    date: String,
    nightly_recharge_status: Option<Rounded>,
    ans_charge: Option<f64>,
    heart_rate_avg: Option<f64>,
    heart_rate_variability_avg: Option<f64>,
    breathing_rate_avg: Option<f64>,
}

impl WireRecord for RechargeWire {
    type Domain = NightlyRecharge;

    fn into_domain(self) -> Result<Option<NightlyRecharge>, FieldError> {
        let recharge = NightlyRecharge {
            date: parse_date("date", &self.date)?,
            nightly_recharge_status: scale::RECHARGE_STATUS
                .data_integer(self.nightly_recharge_status.map(|status| status.0)),
            ans_charge: scale::ANS_CHARGE.data(self.ans_charge),
            heart_rate_avg: scale::HEART_RATE.data(self.heart_rate_avg),
            heart_rate_variability_avg: scale::HRV.data(self.heart_rate_variability_avg),
            breathing_rate_avg: scale::BREATHING_RATE.data(self.breathing_rate_avg),
        };
        let measured = recharge.nightly_recharge_status.is_some()
            || recharge.ans_charge.is_some()
            || recharge.heart_rate_avg.is_some()
            || recharge.heart_rate_variability_avg.is_some()
            || recharge.breathing_rate_avg.is_some();
        Ok(measured.then_some(recharge))
    }

    fn hint(raw: &Value) -> RecordHint {
        date_hint(raw)
    }
}

// ---------------------------------------------------------------------------------------------
// Webhooks

/// `POST /v3/webhooks` body.
#[derive(Serialize)]
pub(crate) struct CreateWebhookRequest<'a> {
    pub(crate) events: &'a [WebhookEventType],
    pub(crate) url: &'a str,
}

/// The `{"data": ...}` wrapper of the webhook endpoints.
#[derive(Deserialize)]
pub(crate) struct DataEnvelope<T> {
    pub(crate) data: T,
}

/// `201` from `POST /v3/webhooks`: the only response that shows the signing secret.
#[derive(Deserialize)]
pub(crate) struct CreatedWebhookWire {
    id: WebhookId,
    signature_secret_key: String,
}

impl CreatedWebhookWire {
    pub(crate) fn into_domain(self) -> Result<CreatedWebhook, FieldError> {
        if self.signature_secret_key.is_empty() {
            return Err(FieldError::new("signature_secret_key", "is empty"));
        }
        Ok(CreatedWebhook {
            id: self.id.0,
            signature_secret: SecretString::from(self.signature_secret_key),
        })
    }
}

/// One entry of `GET /v3/webhooks`.
#[derive(Deserialize)]
pub(crate) struct WebhookInfoWire {
    id: WebhookId,
    #[serde(default)]
    events: Vec<String>,
    url: String,
    active: Option<bool>,
}

impl From<WebhookInfoWire> for WebhookInfo {
    fn from(wire: WebhookInfoWire) -> Self {
        Self {
            id: wire.id.0,
            events: wire.events,
            url: wire.url,
            active: wire.active,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lenient list parsing

/// A field that could not be read: its JSON path and what was wrong, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    field: String,
    problem: String,
}

impl FieldError {
    pub(super) fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// From a serde failure: the path it names and the kind of problem, stripped of the offending value.
    fn from_serde(error: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        Self {
            field: if path == "." { String::new() } else { path },
            problem: redact_serde_message(&message),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.problem)
        } else {
            write!(f, "field `{}`: {}", self.field, self.problem)
        }
    }
}

/// serde's messages quote the offending value (`invalid type: string "…", expected f64`). Keep the kind
/// and the expectation; the value may be health data or, in a token response, a secret.
fn redact_serde_message(message: &str) -> String {
    let message = message.split(" at line ").next().unwrap_or(message);
    if message.starts_with("missing field") {
        return message.to_string();
    }
    let kind = message.split(':').next().unwrap_or(message);
    match message.rfind(", expected ") {
        Some(at) => format!("{kind}{}", &message[at..]),
        None => kind.to_string(),
    }
}

/// What identifies a record in a log line even when it does not parse.
#[derive(Debug, Default)]
pub(crate) struct RecordHint {
    pub(super) label: Option<String>,
    pub(super) date: Option<NaiveDate>,
}

/// A list element type: how it becomes a domain record and how to name it when it cannot.
pub(crate) trait WireRecord: DeserializeOwned {
    /// The domain type it becomes.
    type Domain;
    /// Checks and converts the parsed fields; `None` when Polar's record has nothing measured (the same
    /// as Polar answering 404 for it).
    fn into_domain(self) -> Result<Option<Self::Domain>, FieldError>;
    /// Id or date read from the raw element, for [`BrokenRecord`].
    fn hint(raw: &Value) -> RecordHint;
}

/// Where a list response keeps its records.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ListShape {
    /// A top-level array (exercises, activities).
    Array,
    /// An array under one key (`nights`, `recharges`).
    Field(&'static str),
    /// Whatever Polar sends: an array under one key, a top-level array, or one record on its own (the
    /// 24/7 heart-rate range is reported as `{"heart_rates": [...]}` but documented as one day).
    Lenient(&'static str),
}

/// Parses a list body record by record. A body that is not JSON or not the expected container is
/// `Malformed`; a record that does not parse becomes a [`BrokenRecord`] and the others are kept.
pub(crate) fn parse_list<W: WireRecord>(
    body: &[u8],
    shape: ListShape,
) -> Result<Records<W::Domain>, PolarError> {
    let document: Value = serde_json::from_slice(body).map_err(|e| {
        PolarError::not_json(format!("list body is not JSON ({})", json_failure(&e)), e)
    })?;
    let elements = match (shape, document) {
        (ListShape::Array, Value::Array(elements)) => elements,
        (ListShape::Field(key), Value::Object(mut object)) => match object.remove(key) {
            Some(Value::Array(elements)) => elements,
            _ => {
                return Err(PolarError::malformed(format!(
                    "list body has no `{key}` array"
                )));
            }
        },
        (ListShape::Lenient(_), Value::Array(elements)) => elements,
        (ListShape::Lenient(key), Value::Object(mut object)) => match object.remove(key) {
            Some(Value::Array(elements)) => elements,
            Some(Value::Null) => Vec::new(),
            None if object.is_empty() => Vec::new(),
            None => vec![Value::Object(object)],
            Some(_) => {
                return Err(PolarError::malformed(format!(
                    "list body's `{key}` is not an array"
                )));
            }
        },
        (ListShape::Array, _) => {
            return Err(PolarError::malformed("list body is not an array"));
        }
        (ListShape::Lenient(key), _) => {
            return Err(PolarError::malformed(format!(
                "list body is neither an array nor an object (`{key}` or one record)"
            )));
        }
        (ListShape::Field(key), _) => {
            return Err(PolarError::malformed(format!(
                "list body is not an object with a `{key}` array"
            )));
        }
    };
    let mut records = Records::default();
    for element in elements {
        match parse_element::<W>(&element) {
            Ok(Some(record)) => records.records.push(record),
            Ok(None) => {}
            Err(error) => {
                let hint = W::hint(&element);
                records.broken.push(BrokenRecord {
                    hint: hint.label,
                    date: hint.date,
                    reason: error.to_string(),
                });
            }
        }
    }
    Ok(records)
}

/// Parses a single-record body (`/v3/exercises/{id}`, `/sleep/{date}`, ...) into its wire type.
pub(crate) fn parse_one<T: DeserializeOwned>(body: &[u8]) -> Result<T, PolarError> {
    let document: Value = serde_json::from_slice(body)
        .map_err(|e| PolarError::not_json(format!("body is not JSON ({})", json_failure(&e)), e))?;
    // No source: serde's data errors quote the value (a token, in a token response).
    serde_path_to_error::deserialize(document)
        .map_err(|e| PolarError::malformed(FieldError::from_serde(e).to_string()))
}

fn parse_element<W: WireRecord>(element: &Value) -> Result<Option<W::Domain>, FieldError> {
    let wire: W = serde_path_to_error::deserialize(element).map_err(FieldError::from_serde)?;
    wire.into_domain()
}

/// The category of a JSON syntax failure, without the text around it.
fn json_failure(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Eof => "truncated",
    }
}

pub(super) fn date_hint(raw: &Value) -> RecordHint {
    let date = raw
        .get("date")
        .and_then(Value::as_str)
        .and_then(|text| parse_date("date", text).ok());
    RecordHint {
        label: date.map(|d| d.to_string()),
        date,
    }
}

pub(super) fn date_part_of(raw: &Value, key: &str) -> Option<NaiveDate> {
    raw.get(key)
        .and_then(Value::as_str)
        .and_then(|text| parse_date_part(key, text).ok())
}

// ---------------------------------------------------------------------------------------------
// Times

const DATE_FORMAT: &str = "%Y-%m-%d";
/// Local wall-clock forms Polar uses: with seconds (and fractions) and, in live data, without seconds.
const LOCAL_FORMATS: [&str; 2] = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"];
/// The last year the documented `YYYY` (and Smartabase's `dd/mm/yyyy`) can write.
pub(super) const MAX_YEAR: i32 = 9999;

/// Whether `text` starts with the documented four-digit year and its dash. chrono's `%Y` also reads
/// signed and longer years (`+262143-12-31`, `-0001-01-01`), at the edges of its calendar where adding
/// a day overflows: no Polar record is dated there.
pub(super) fn four_digit_year(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() > 4 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-'
}

pub(super) fn parse_date(field: &str, text: &str) -> Result<NaiveDate, FieldError> {
    four_digit_year(text)
        .then(|| NaiveDate::parse_from_str(text, DATE_FORMAT).ok())
        .flatten()
        .ok_or_else(|| FieldError::new(field, "is not a YYYY-MM-DD date"))
}

/// The calendar day of a timestamp, whatever follows the date.
fn parse_date_part(field: &str, text: &str) -> Result<NaiveDate, FieldError> {
    text.get(..10)
        .and_then(|date| parse_date(field, date).ok())
        .ok_or_else(|| FieldError::new(field, "does not start with a YYYY-MM-DD date"))
}

fn parse_local(field: &str, text: &str) -> Result<NaiveDateTime, FieldError> {
    LOCAL_FORMATS
        .iter()
        .filter(|_| four_digit_year(text))
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .ok_or_else(|| FieldError::new(field, "is not a local date-time (YYYY-MM-DDThh:mm[:ss])"))
}

fn parse_with_offset(field: &str, text: &str) -> Result<DateTime<FixedOffset>, FieldError> {
    four_digit_year(text)
        .then(|| {
            DateTime::parse_from_rfc3339(text)
                .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
                .ok()
        })
        .flatten()
        .ok_or_else(|| FieldError::new(field, "is not a date-time with a UTC offset"))
}

/// A UTC timestamp: RFC 3339 (`…Z` or an offset) or, leniently, a naive value taken as UTC.
pub(super) fn parse_utc(field: &str, text: &str) -> Result<DateTime<Utc>, FieldError> {
    if let Ok(stamped) = DateTime::parse_from_rfc3339(text) {
        return Ok(stamped.with_timezone(&Utc));
    }
    parse_local(field, text)
        .map(|naive| naive.and_utc())
        .map_err(|_| FieldError::new(field, "is not a UTC timestamp"))
}

fn parse_duration(field: &str, text: &str) -> Result<f64, FieldError> {
    duration::parse_seconds(text).map_err(|e| FieldError::new(field, e.to_string()))
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveTime, TimeZone};
    use secrecy::ExposeSecret;
    use serde_json::json;

    use super::*;

    /// Reference §8.1, verbatim.
    const EXERCISE_8_1: &str = r#"{
      "id": "Xy7Qp2Lr",
      "upload_time": "2025-09-02T06:41:17.000Z",
      "polar_user": "https://www.polaraccesslink.com/v3/users/48211902",
      "device": "Polar Vantage V3",
      "device_id": "C0FFEE12",
      "start_time": "2025-09-02T07:05:00",
      "start_time_utc_offset": 120,
      "duration": "PT1H2M30S",
      "calories": 712,
      "distance": 12450.0,
      "heart_rate": { "average": 148, "maximum": 176 },
      "training_load": 118.4,
      "sport": "RUNNING",
      "detailed_sport_info": "ROAD_RUNNING",
      "has_route": true,
      "fat_percentage": 31,
      "carbohydrate_percentage": 66,
      "protein_percentage": 3,
      "running-index": 54,
      "heart_rate_zones": [
        { "index": 1, "lower-limit": 96,  "upper-limit": 115, "in-zone": "PT2M10S" },
        { "index": 2, "lower-limit": 115, "upper-limit": 134, "in-zone": "PT9M45S" },
        { "index": 3, "lower-limit": 134, "upper-limit": 153, "in-zone": "PT31M5S" },
        { "index": 4, "lower-limit": 153, "upper-limit": 172, "in-zone": "PT18M40S" },
        { "index": 5, "lower-limit": 172, "upper-limit": 192, "in-zone": "PT0M50S" }
      ],
      "samples": [
        { "recording-rate": 1, "sample-type": "0", "data": "92,95,101,108,117,124" },
        { "recording-rate": 1, "sample-type": "1", "data": "0.0,6.1,9.8,11.2,11.9,12.0" }
      ],
      "training_load_pro": {
        "date": "2025-09-02",
        "cardio-load": 118.4,
        "muscle-load": 402.0,
        "perceived-load": 375.0,
        "cardio-load-interpretation": "HIGH",
        "muscle-load-interpretation": "MEDIUM",
        "perceived-load-interpretation": "MEDIUM",
        "user-rpe": "RPE_HARD"
      }
    }"#;

    /// Reference §8.2, verbatim.
    const ACTIVITY_8_2: &str = r#"{
      "start_time": "2025-09-01T00:00:00",
      "end_time": "2025-09-01T23:59:59",
      "active_duration": "PT4H12M",
      "inactive_duration": "PT11H3M",
      "daily_activity": 104.6,
      "calories": 2841,
      "active_calories": 1120,
      "steps": 13207,
      "inactivity_alert_count": 0,
      "distance_from_steps": 9874.5,
      "samples": {
        "date": "2025-09-01",
        "steps": {
          "interval_ms": 60000,
          "total_steps": 13207,
          "samples": [
            { "steps": 0,  "timestamp": "2025-09-01T00:00" },
            { "steps": 84, "timestamp": "2025-09-01T07:12" },
            { "steps": 0,  "timestamp": "2025-09-01T07:13" }
          ]
        }
      }
    }"#;

    /// Reference §8.3, verbatim.
    const SLEEP_8_3: &str = r#"{
      "polar_user": "https://www.polaraccesslink.com/v3/users/48211902",
      "date": "2025-09-02",
      "sleep_start_time": "2025-09-01T23:14:05+02:00",
      "sleep_end_time": "2025-09-02T06:48:40+02:00",
      "device_id": "C0FFEE12",
      "continuity": 3.4,
      "continuity_class": 3,
      "light_sleep": 14820,
      "deep_sleep": 5430,
      "rem_sleep": 5610,
      "unrecognized_sleep_stage": 0,
      "sleep_score": 78,
      "total_interruption_duration": 1415,
      "sleep_charge": 3,
      "sleep_goal": 28800,
      "sleep_rating": 4,
      "short_interruption_duration": 620,
      "long_interruption_duration": 795,
      "sleep_cycles": 5,
      "group_duration_score": 82.0,
      "group_solidity_score": 71.5,
      "group_regeneration_score": 76.0,
      "hypnogram": { "23:14": 3, "23:41": 4, "00:32": 3, "01:15": 1, "01:38": 0, "01:40": 3 },
      "heart_rate_samples": { "23:15": 61, "23:20": 58, "23:25": 55, "00:05": 52 }
    }"#;

    /// Reference §8.4, verbatim.
    const RECHARGE_8_4: &str = r#"{
      "polar_user": "https://www.polaraccesslink.com/v3/users/48211902",
      "date": "2025-09-02",
      "heart_rate_avg": 54,
      "beat_to_beat_avg": 1111,
      "heart_rate_variability_avg": 62,
      "breathing_rate_avg": 13.6,
      "nightly_recharge_status": 4,
      "ans_charge": -1.5,
      "ans_charge_status": 2,
      "hrv_samples": { "23:44": 58, "23:49": 64, "23:54": 66 },
      "breathing_samples": { "23:44": 13.9, "23:49": 13.5, "23:54": 13.4 }
    }"#;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, DATE_FORMAT).unwrap()
    }

    fn one<W: WireRecord>(json: &str) -> W::Domain {
        parse_one::<W>(json.as_bytes())
            .unwrap()
            .into_domain()
            .unwrap_or_else(|e| panic!("{e}"))
            .expect("a measured record")
    }

    fn list_of(elements: &[&str]) -> Vec<u8> {
        format!("[{}]", elements.join(",")).into_bytes()
    }

    #[test]
    fn exercise_8_1_maps_to_exact_domain_values() {
        let exercise = one::<ExerciseWire>(EXERCISE_8_1);
        assert_eq!(exercise.id.as_str(), "Xy7Qp2Lr");
        assert_eq!(
            exercise.upload_time,
            Some(Utc.with_ymd_and_hms(2025, 9, 2, 6, 41, 17).unwrap())
        );
        assert_eq!(exercise.device.as_deref(), Some("Polar Vantage V3"));
        assert_eq!(
            exercise.start_time,
            date("2025-09-02").and_time(NaiveTime::from_hms_opt(7, 5, 0).unwrap())
        );
        assert_eq!(exercise.start_time_utc_offset_minutes, 120);
        assert_eq!(exercise.duration_seconds, Some(3750.0));
        assert_eq!(exercise.calories, Some(712.0));
        assert_eq!(exercise.distance_metres, Some(12450.0));
        assert_eq!(exercise.heart_rate_average, Some(148.0));
        assert_eq!(exercise.heart_rate_maximum, Some(176.0));
        assert_eq!(exercise.training_load, Some(118.4));
        assert_eq!(exercise.sport.as_deref(), Some("RUNNING"));
        assert_eq!(
            exercise.detailed_sport_info.as_deref(),
            Some("ROAD_RUNNING")
        );
        let zones: Vec<(u8, f64)> = exercise
            .heart_rate_zones
            .iter()
            .map(|z| (z.index, z.in_zone_seconds))
            .collect();
        assert_eq!(
            zones,
            vec![(1, 130.0), (2, 585.0), (3, 1865.0), (4, 1120.0), (5, 50.0)]
        );
        assert_eq!(exercise.cardio_load, Some(118.4));
        assert_eq!(exercise.muscle_load, Some(402.0));
    }

    #[test]
    fn exercise_without_optional_fields_parses_with_none() {
        let exercise = one::<ExerciseWire>(
            r#"{"id":"abc","start_time":"2025-09-02T00:30:00.5","start_time_utc_offset":-570,
                "sport":"STRENGTH_TRAINING"}"#,
        );
        assert_eq!(exercise.start_time_utc_offset_minutes, -570);
        assert_eq!(
            exercise.start_time,
            date("2025-09-02").and_time(NaiveTime::from_hms_milli_opt(0, 30, 0, 500).unwrap())
        );
        assert_eq!(exercise.duration_seconds, None);
        assert_eq!(exercise.distance_metres, None);
        assert_eq!(exercise.heart_rate_average, None);
        assert!(exercise.heart_rate_zones.is_empty());
        assert_eq!(exercise.cardio_load, None);
    }

    #[test]
    fn integers_sent_as_floats_are_accepted() {
        let exercise = one::<ExerciseWire>(
            r#"{"id":"abc","start_time":"2025-09-02T07:05:00","start_time_utc_offset":825.0,
                "heart_rate_zones":[{"index":2.0,"in-zone":"PT4S"}]}"#,
        );
        assert_eq!(exercise.start_time_utc_offset_minutes, 825);
        assert_eq!(exercise.heart_rate_zones[0].index, 2);
        let activity = one::<ActivityWire>(r#"{"start_time":"2025-09-01T00:00","steps":13207.0}"#);
        assert_eq!(activity.steps, Some(13207));
        let sleep = one::<SleepWire>(r#"{"date":"2025-09-02","deep_sleep":5430.4}"#);
        assert_eq!(sleep.deep_sleep_seconds, Some(5430));
    }

    #[test]
    fn fractional_ids_and_offsets_are_refused() {
        let broken = parse_one::<ExerciseWire>(
            br#"{"id":"abc","start_time":"2025-09-02T07:05:00","start_time_utc_offset":1.5}"#,
        )
        .err();
        assert!(
            matches!(&broken, Some(PolarError::Malformed { message: m, .. }) if m == "field `start_time_utc_offset`: invalid value, expected an integer"),
            "{broken:?}"
        );
    }

    #[test]
    fn activity_8_2_takes_its_date_from_start_time() {
        let activity = one::<ActivityWire>(ACTIVITY_8_2);
        assert_eq!(
            activity,
            DailyActivity {
                date: date("2025-09-01"),
                active_duration_seconds: Some(15_120.0),
                calories: Some(2841.0),
                active_calories: Some(1120.0),
                steps: Some(13207),
                distance_from_steps_metres: Some(9874.5),
            }
        );
    }

    #[test]
    fn activity_without_start_time_is_broken_in_a_list_but_fine_for_a_known_day() {
        let records = parse_list::<ActivityWire>(br#"[{"steps": 5}]"#, ListShape::Array).unwrap();
        assert!(records.records.is_empty());
        assert_eq!(
            records.broken[0].reason,
            "field `start_time`: is missing (it gives the day)"
        );
        let wire: ActivityWire = parse_one(br#"{"steps": 5}"#).unwrap();
        assert_eq!(
            wire.into_domain_on(date("2025-09-03"))
                .unwrap()
                .unwrap()
                .date,
            date("2025-09-03")
        );
    }

    #[test]
    fn sleep_8_3_keeps_offsets_and_seconds() {
        let sleep = one::<SleepWire>(SLEEP_8_3);
        let plus_two = FixedOffset::east_opt(2 * 3600).unwrap();
        assert_eq!(sleep.date, date("2025-09-02"));
        assert_eq!(
            sleep.sleep_start,
            Some(plus_two.with_ymd_and_hms(2025, 9, 1, 23, 14, 5).unwrap())
        );
        assert_eq!(
            sleep.sleep_end,
            Some(plus_two.with_ymd_and_hms(2025, 9, 2, 6, 48, 40).unwrap())
        );
        assert_eq!(sleep.light_sleep_seconds, Some(14820));
        assert_eq!(sleep.deep_sleep_seconds, Some(5430));
        assert_eq!(sleep.rem_sleep_seconds, Some(5610));
        assert_eq!(sleep.unrecognized_sleep_seconds, Some(0));
        assert_eq!(sleep.total_interruption_seconds, Some(1415));
        assert_eq!(sleep.sleep_score, Some(78.0));
        assert_eq!(sleep.sleep_charge, Some(3.0));
        assert_eq!(sleep.continuity, Some(3.4));
    }

    #[test]
    fn sleep_times_with_compact_or_negative_offsets_parse() {
        let sleep = one::<SleepWire>(
            r#"{"date":"2025-09-02","sleep_start_time":"2025-09-01T23:14:05-0930",
                "sleep_end_time":"2025-09-02T06:48:40+13:45"}"#,
        );
        assert_eq!(
            sleep.sleep_start.map(|t| t.offset().local_minus_utc()),
            Some(-(9 * 3600 + 30 * 60))
        );
        assert_eq!(
            sleep.sleep_end.map(|t| t.offset().local_minus_utc()),
            Some(13 * 3600 + 45 * 60)
        );
    }

    #[test]
    fn recharge_8_4_maps_to_exact_domain_values() {
        assert_eq!(
            one::<RechargeWire>(RECHARGE_8_4),
            NightlyRecharge {
                date: date("2025-09-02"),
                nightly_recharge_status: Some(4),
                ans_charge: Some(-1.5),
                heart_rate_avg: Some(54.0),
                heart_rate_variability_avg: Some(62.0),
                breathing_rate_avg: Some(13.6),
            }
        );
    }

    #[test]
    fn a_wrong_typed_record_is_broken_and_the_others_are_kept() {
        let bad = r#"{"id":"Bad1","start_time":"2025-09-03T18:00:00","start_time_utc_offset":0,
                      "heart_rate":{"average":"fast"}}"#;
        let body = list_of(&[EXERCISE_8_1, bad, EXERCISE_8_1]);
        let records = parse_list::<ExerciseWire>(&body, ListShape::Array).unwrap();
        assert_eq!(records.records.len(), 2);
        assert_eq!(
            records.broken,
            vec![BrokenRecord {
                hint: Some("Bad1".into()),
                date: Some(date("2025-09-03")),
                reason: "field `heart_rate.average`: invalid type, expected f64".into(),
            }]
        );
    }

    #[test]
    fn broken_reasons_never_carry_the_offending_value() {
        let bad = r#"{"date":"2025-09-02","sleep_score":"SECRET-VALUE, expected nothing"}"#;
        let body = format!(r#"{{"nights":[{bad},{SLEEP_8_3}]}}"#);
        let records = parse_list::<SleepWire>(body.as_bytes(), ListShape::Field("nights")).unwrap();
        assert_eq!(records.records.len(), 1);
        let reason = &records.broken[0].reason;
        assert_eq!(reason, "field `sleep_score`: invalid type, expected f64");
        assert!(!reason.contains("SECRET"));
        assert_eq!(records.broken[0].hint.as_deref(), Some("2025-09-02"));
    }

    #[test]
    fn broken_records_name_missing_fields_and_bad_conversions() {
        let body = list_of(&[
            r#"{"start_time":"2025-09-02T07:05:00","start_time_utc_offset":0}"#,
            r#"{"id":"a/b","start_time":"2025-09-02T07:05:00","start_time_utc_offset":0}"#,
            r#"{"id":"z1","start_time":"07:05","start_time_utc_offset":0}"#,
            r#"{"id":"z2","start_time":"2025-09-02T07:05:00","start_time_utc_offset":0,"duration":"1h"}"#,
            r#"{"id":"z3","start_time":"2025-09-02T07:05:00","start_time_utc_offset":0,
                "heart_rate_zones":[{"index":1,"in-zone":"PT1M"},{"index":2,"in-zone":"soon"}]}"#,
            r#"{"id":"z4","start_time":"2025-09-02T07:05:00","start_time_utc_offset":3000}"#,
            r#""not an object""#,
        ]);
        let records = parse_list::<ExerciseWire>(&body, ListShape::Array).unwrap();
        assert!(records.records.is_empty());
        let reasons: Vec<&str> = records.broken.iter().map(|b| b.reason.as_str()).collect();
        assert_eq!(
            reasons,
            vec![
                "missing field `id`",
                "field `id`: exercise id contains a character that is not allowed (whitespace, control, '#', '/', '?' or '&')",
                "field `start_time`: is not a local date-time (YYYY-MM-DDThh:mm[:ss])",
                "field `duration`: not an ISO-8601 duration",
                "field `heart_rate_zones[1].in-zone`: not an ISO-8601 duration",
                "field `start_time_utc_offset`: is more than 24 hours from UTC",
                "invalid type, expected struct ExerciseWire",
            ]
        );
        // A path-like id is not echoed as a hint; a readable one is.
        assert_eq!(records.broken[1].hint, None);
        assert_eq!(records.broken[3].hint.as_deref(), Some("z2"));
    }

    #[test]
    fn absurd_durations_and_dates_make_the_record_broken_and_the_rest_of_the_list_is_kept() {
        let exercise = |id: &str, start: &str, duration: &str| {
            format!(
                r#"{{"id":"{id}","start_time":"{start}","start_time_utc_offset":0,"duration":"{duration}"}}"#
            )
        };
        let body = list_of(&[
            &exercise("Days", "2025-09-02T07:05:00", "P99999999D"),
            &exercise("Weeks", "2025-09-02T07:05:00", "P4294967295W"),
            &exercise("Most", "2025-09-02T07:05:00", "P4294967295DT4294967295H"),
            &exercise("Eight", "2025-09-02T07:05:00", "P8D"),
            &exercise("Edge", "9999-12-31T23:00:00", "PT2H"),
            &exercise("Far", "+262142-12-31T23:00:00", "PT2H"),
            &exercise("Before", "-0001-01-01T00:00:00", "PT2H"),
            r#"{"id":"Offset","start_time":"2025-09-02T07:05:00","start_time_utc_offset":99999999}"#,
            r#"{"id":"Huge","start_time":"2025-09-02T07:05:00","start_time_utc_offset":1e300}"#,
            EXERCISE_8_1,
            &exercise("Week", "2025-09-02T07:05:00", "P7D"),
        ]);
        let records = parse_list::<ExerciseWire>(&body, ListShape::Array).unwrap();
        let kept: Vec<&str> = records.records.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(kept, ["Xy7Qp2Lr", "Week"]);
        let reasons: Vec<(&str, &str)> = records
            .broken
            .iter()
            .map(|b| (b.hint.as_deref().unwrap_or("?"), b.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                ("Days", "field `duration`: is longer than 7 days"),
                ("Weeks", "field `duration`: is longer than 7 days"),
                ("Most", "field `duration`: is longer than 7 days"),
                ("Eight", "field `duration`: is longer than 7 days"),
                ("Edge", "field `duration`: ends after the year 9999"),
                (
                    "Far",
                    "field `start_time`: is not a local date-time (YYYY-MM-DDThh:mm[:ss])"
                ),
                (
                    "Before",
                    "field `start_time`: is not a local date-time (YYYY-MM-DDThh:mm[:ss])"
                ),
                (
                    "Offset",
                    "field `start_time_utc_offset`: is more than 24 hours from UTC"
                ),
                (
                    "Huge",
                    "field `start_time_utc_offset`: invalid value, expected an integer"
                ),
            ]
        );
        // What was kept maps without panicking (the worker maps every record it keeps).
        let mapping = crate::mapping::Mapping::defaults();
        for exercise in &records.records {
            let event = mapping.training(exercise);
            assert!(event.finish >= event.start);
        }
    }

    #[test]
    fn daily_records_dated_outside_the_four_digit_years_are_broken() {
        let nights = br#"{"nights":[
            {"date":"+262143-12-31","sleep_score":70},
            {"date":"-0001-01-01","sleep_score":70},
            {"date":"99999-01-01","sleep_score":70},
            {"date":"2025-09-02","sleep_score":70,"sleep_start_time":"+262143-12-31T23:00:00+02:00"},
            {"date":"9999-12-31","sleep_score":70}
        ]}"#;
        let records = parse_list::<SleepWire>(nights, ListShape::Field("nights")).unwrap();
        assert_eq!(
            records.records.iter().map(|s| s.date).collect::<Vec<_>>(),
            [date("9999-12-31")]
        );
        assert_eq!(records.broken.len(), 4);
        // A broken night's date outside the four-digit years is no hint (it would hold a cursor there).
        assert_eq!(records.broken[0].date, None);
        assert_eq!(records.broken[3].date, Some(date("2025-09-02")));
        let days = br#"[{"start_time":"+262143-12-31T00:00","steps":5},{"start_time":"2025-09-01T00:00","steps":5}]"#;
        let records = parse_list::<ActivityWire>(days, ListShape::Array).unwrap();
        assert_eq!(records.records.len(), 1);
        assert_eq!(records.broken[0].hint, None);
    }

    #[test]
    fn list_containers_are_checked() {
        let not_json = parse_list::<ExerciseWire>(b"[{\"id\": ", ListShape::Array);
        assert!(
            matches!(&not_json, Err(PolarError::Malformed { message: m, .. }) if m == "list body is not JSON (truncated)"),
            "{not_json:?}"
        );
        assert!(matches!(
            parse_list::<ExerciseWire>(b"{}", ListShape::Array),
            Err(PolarError::Malformed { .. })
        ));
        assert!(matches!(
            parse_list::<SleepWire>(br#"{"recharges": []}"#, ListShape::Field("nights")),
            Err(PolarError::Malformed { .. })
        ));
        assert!(matches!(
            parse_list::<SleepWire>(br#"[]"#, ListShape::Field("nights")),
            Err(PolarError::Malformed { .. })
        ));
        let empty =
            parse_list::<RechargeWire>(br#"{"recharges": []}"#, ListShape::Field("recharges"))
                .unwrap();
        assert_eq!(empty, Records::default());
    }

    #[test]
    fn token_response_becomes_a_grant() {
        let grant = parse_one::<TokenResponse>(
            br#"{"access_token":"tok-1","token_type":"bearer","expires_in":31535999,"x_user_id":48211902}"#,
        )
        .unwrap()
        .into_grant()
        .unwrap();
        assert_eq!(grant.access_token.expose_secret(), "tok-1");
        assert_eq!(grant.polar_user_id.get(), 48211902);
        assert_eq!(grant.expires_in_seconds, Some(31535999));
    }

    #[test]
    fn a_token_lifetime_that_is_not_a_time_span_is_ignored() {
        for expires_in in [
            "0",
            "-1",
            "9223372036854775807",
            "-9223372036854775808",
            "3162240001",
        ] {
            let body =
                format!(r#"{{"access_token":"tok-1","expires_in":{expires_in},"x_user_id":5}}"#);
            let grant = parse_one::<TokenResponse>(body.as_bytes())
                .unwrap()
                .into_grant()
                .unwrap();
            assert_eq!(grant.expires_in_seconds, None, "{expires_in}");
        }
        let far = parse_one::<TokenResponse>(
            br#"{"access_token":"tok-1","expires_in":3162240000,"x_user_id":5}"#,
        )
        .unwrap()
        .into_grant()
        .unwrap();
        assert_eq!(far.expires_in_seconds, Some(3_162_240_000));
        let issued = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
        assert_eq!(
            far.expires_at(issued),
            Some(issued + chrono::Duration::seconds(3_162_240_000))
        );
        // Whatever a grant holds, its expiry is an answer, never a panic.
        for lifetime in [i64::MAX, i64::MIN, 1] {
            let grant = TokenGrant {
                expires_in_seconds: Some(lifetime),
                ..far.clone()
            };
            assert_eq!(grant.expires_at(DateTime::<Utc>::MAX_UTC), None);
            assert_eq!(grant.expires_at(issued).is_some(), lifetime == 1);
        }
    }

    #[test]
    fn malformed_token_response_does_not_echo_the_token() {
        let result = parse_one::<TokenResponse>(
            br#"{"access_token":"tok-SECRET","x_user_id":"tok-SECRET"}"#,
        );
        let Err(PolarError::Malformed { message, .. }) = result else {
            panic!("expected Malformed");
        };
        assert_eq!(
            message,
            "field `x_user_id`: invalid type, expected an integer"
        );
    }

    #[test]
    fn error_codes_are_read_but_free_text_is_not() {
        assert_eq!(
            ErrorBody::code_from(br#"{"error":"invalid_grant"}"#).as_deref(),
            Some("invalid_grant")
        );
        assert_eq!(
            ErrorBody::code_from(
                br#"{"timestamp":"x","status":409,"errorType":"CONFLICT","message":"hi"}"#
            )
            .as_deref(),
            Some("CONFLICT")
        );
        assert_eq!(
            ErrorBody::code_from(br#"{"error":"code tok-123 reused"}"#),
            None
        );
        assert_eq!(ErrorBody::code_from(b"<html>"), None);
        // A token or code echoed back is no error code.
        assert_eq!(
            ErrorBody::code_from(br#"{"error":"a9f3c2e17b6d4e0f8a1c3b5d7e9f0a2c"}"#),
            None
        );
    }

    #[test]
    fn user_object_is_kebab_case() {
        let user = parse_one::<UserWire>(
            br#"{"polar-user-id":2278512,"member-id":"i09u9ujj","registration-date":"2011-10-14T12:50:37.000Z",
                 "first-name":"Eka","weight":66.0,"extra-info":null}"#,
        )
        .unwrap()
        .into_domain()
        .unwrap();
        assert_eq!(user.polar_user_id.get(), 2278512);
        assert_eq!(user.member_id.as_deref(), Some("i09u9ujj"));
        assert_eq!(
            user.registered_at,
            Some(Utc.with_ymd_and_hms(2011, 10, 14, 12, 50, 37).unwrap())
        );
    }

    #[test]
    fn webhook_envelopes_parse() {
        let created: DataEnvelope<CreatedWebhookWire> = parse_one(
            br#"{"data":{"id":"abdf33","events":["EXERCISE","SLEEP"],"url":"https://x/polar/webhook",
                 "signature_secret_key":"sig-secret"}}"#,
        )
        .unwrap();
        let created = created.data.into_domain().unwrap();
        assert_eq!(created.id, "abdf33");
        assert_eq!(created.signature_secret.expose_secret(), "sig-secret");

        let listed: DataEnvelope<Vec<WebhookInfoWire>> = parse_one(
            br#"{"data":[{"id":7,"events":["EXERCISE"],"url":"https://x/polar/webhook","active":true}]}"#,
        )
        .unwrap();
        let listed: Vec<WebhookInfo> = listed.data.into_iter().map(Into::into).collect();
        assert_eq!(
            listed,
            vec![WebhookInfo {
                id: "7".into(),
                events: vec!["EXERCISE".into()],
                url: "https://x/polar/webhook".into(),
                active: Some(true),
            }]
        );
    }

    #[test]
    fn webhook_request_spells_event_types_as_polar_does() {
        let body = serde_json::to_value(CreateWebhookRequest {
            events: &WebhookEventType::SUBSCRIBED,
            url: "https://x/polar/webhook",
        })
        .unwrap();
        assert_eq!(
            body,
            json!({"events": ["EXERCISE", "SLEEP", "ACTIVITY_SUMMARY"], "url": "https://x/polar/webhook"})
        );
        assert_eq!(
            serde_json::to_value(RegisterUserRequest { member_id: "u-1" }).unwrap(),
            json!({"member-id": "u-1"})
        );
        let optional = serde_json::to_value(CreateWebhookRequest {
            events: &[
                WebhookEventType::ContinuousHeartRate,
                WebhookEventType::SleepWiseAlertness,
            ],
            url: "https://x/polar/webhook",
        })
        .unwrap();
        assert_eq!(
            optional["events"],
            json!(["CONTINUOUS_HEART_RATE", "SLEEP_WISE_ALERTNESS"])
        );
    }
}
