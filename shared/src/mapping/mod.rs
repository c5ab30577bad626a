//! Polar records → Smartabase events, as pure functions, with every form and field name taken from a
//! mapping that a site can override without rebuilding (`default.json` merged with the site's file).
//!
//! Event dates and times are the athlete's local ones (design §5); values are strings without units:
//! minutes with one decimal, km with two, everything else as Polar gives it. A value Polar does not
//! provide is left out, never sent as `0` or `""`.
//!
//! # Values Polar does not have
//!
//! Polar marks a value it did not measure with a number outside the field's documented scale
//! (reference §8.3: `sleep_charge: -1`, `continuity: 0`, heart rates of `0`), and a missing sensor leaves
//! zeros where no measurement can be zero. Such a value is **no data**: its field is left out of the
//! event, exactly like a `null`. So is a value no body or watch can produce (negative, NaN, beyond the
//! limits below). The check is made once, where Polar's JSON is read (`polar::scale`), so every value
//! this module sees is data and Polar's quirks stay in the Polar module.
//!
//! - A daily record (activity, sleep, recharge) with **nothing measured** is no record, as Polar's 404
//!   is: it makes no event. A coach reads an event as "the watch measured this"; an event holding only
//!   its date would look like a night that was slept and not recorded. (An event already written for
//!   that date keeps its values.) A training session is always an event: that the athlete trained is
//!   news even when nothing was measured.
//! - A record whose **time cannot be placed** (a date without the documented four-digit year, a start
//!   more than 24 h from UTC, a session longer than 7 days or ending after 9999) is broken: skipped with
//!   a log line and a metric, retried next cycle, the rest of its list delivered.
//!
//! | form | field | Polar source | data | no data (left out) | why |
//! |---|---|---|---|---|---|
//! | Training | `Duration (min)` | `duration` (ISO-8601) | more than 0, at most 7 days | 0, negative (`PT-1S`); longer than 7 days: broken record | a recorded session lasts; no Polar watch records 7 days (at most 140 h) |
//! | Training | `Distance (km)` | `distance` m | more than 0, at most 10,000 km | 0 (no GPS, no foot pod), negative | a session without a distance sensor carries 0 |
//! | Training | `Calories` | `calories` kcal | more than 0, at most 100,000 | 0, negative | every session burns energy |
//! | Training | `Average HR`, `Maximum HR` | `heart_rate.average`, `.maximum` bpm | 20–250 | 0 (no sensor), below 20, above 250 | no beating heart is outside 20–250 |
//! | Training | `Training Load` | `training_load` | more than 0, at most 100,000 | 0, negative | not computed without heart rate |
//! | Training | `Cardio Load`, `Muscle Load` | `training_load_pro.cardio-load`, `.muscle-load` | more than 0, at most 100,000 | 0, negative, or `…-interpretation: NOT_AVAILABLE` | muscle load needs a power meter, cardio load heart rate |
//! | Training | `Zone 1 (min)` … `Zone 5 (min)` | `heart_rate_zones[].in-zone` | 0 to 7 days | every zone 0 (no heart rate recorded), negative, longer than 7 days | 0 minutes in a zone is data when another zone has time |
//! | Training | `Sport`, `Device` | `detailed_sport_info` else `sport`; `device` | text | blank | — |
//! | Activity | `Steps` | `steps` | 1–300,000 | 0, negative | a worn watch counts arm movement all day: 0 means it counted nothing (not worn), not that the athlete did not move |
//! | Activity | `Active Calories` | `active_calories` kcal | more than 0, at most 50,000 | 0, negative | as steps |
//! | Activity | `Total Calories` | `calories` kcal | more than 0, at most 50,000 | 0, negative | includes BMR: never 0 |
//! | Activity | `Active Time (min)` | `active_duration` (ISO-8601) | more than 0, at most 25 h | 0, negative, longer than a day | as steps; a day has at most 25 hours |
//! | Activity | `Distance (km)` | `distance_from_steps` m | more than 0, at most 1,000 km | 0, negative | derived from steps |
//! | Sleep | `Sleep Start`, `Sleep End` | `sleep_start_time`, `sleep_end_time` | a date-time with offset | absent | — |
//! | Sleep | `Deep`, `REM`, `Light Sleep (min)`, `Total Sleep (min)` | `deep_sleep`, `rem_sleep`, `light_sleep` (+ `unrecognized_sleep_stage` in the total) s | 0 to 24 h | every stage 0 (nothing staged), negative, over 24 h; the total sums the stages that are data | a night may have no REM: 0 is data next to other stages |
//! | Sleep | `Interruptions (min)` | `total_interruption_duration` s | 0 to 24 h | negative, over 24 h | 0 is an unbroken night |
//! | Sleep | `Sleep Score` | `sleep_score` | 1–100 | 0, outside | documented scale |
//! | Sleep | `Sleep Charge` | `sleep_charge` | 1–5 | −1, 0, outside | documented scale; −1 is Polar's "not computed" |
//! | Sleep | `Continuity` | `continuity` | 1.0–5.0 | 0, outside | documented scale |
//! | Recharge | `Nightly Recharge Status` | `nightly_recharge_status` | 1–6 | 0, outside | documented scale |
//! | Recharge | `ANS Charge` | `ans_charge` | −10.0 to +10.0 | outside | documented scale: 0 is the athlete's usual level and negative values are data |
//! | Recharge | `Average HR` | `heart_rate_avg` bpm | 20–250 | 0, outside | as training |
//! | Recharge | `Average HRV (ms)` | `heart_rate_variability_avg` ms | more than 0, at most 1,000 | 0, negative | RMSSD of a beating heart is never 0 |
//! | Recharge | `Breathing Rate` | `breathing_rate_avg` /min | more than 0, at most 60 | 0, negative | nobody asleep breathes 0 or 60+ times a minute |
//!
//! The date fields (`Activity Date`, `Sleep Date`, `Recharge Date`) and `Polar Exercise ID` are always
//! written: without them there is no record.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use serde::Deserialize;

use crate::crypto::sha256_hex;
use crate::ids::{EventId, SmartabaseUserId};
use crate::model::{DataKind, LedgerKey, RecordKey};
use crate::polar::{DailyActivity, Exercise, NightlyRecharge, Sleep};
use crate::smartabase::{EventWrite, format_date, format_time};

/// The built-in mapping: the forms and field names of design §5.
pub const DEFAULT_MAPPING_JSON: &str = include_str!("default.json");

/// A mapping override that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// Not JSON of the expected shape.
    #[error("mapping is not valid JSON of the expected shape: {0}")]
    Shape(String),
    /// A form key that does not exist.
    #[error(
        "mapping: unknown form `{0}` (known: training, activity, sleep, recharge, auth_portal, access_token)"
    )]
    UnknownForm(String),
    /// A field role that does not exist on that form.
    #[error("mapping: form `{form}` has no field `{role}`")]
    UnknownField {
        /// Form key.
        form: String,
        /// Field role.
        role: String,
    },
    /// An empty name, or a required field switched off.
    #[error("mapping: `{form}.{role}` must be a non-empty name")]
    EmptyName {
        /// Form key.
        form: String,
        /// Field role (or `form`).
        role: String,
    },
    /// Two kinds of data written to one event form: after a lost answer the connector could not tell
    /// their events apart (a lookup finds a record's event by form and date), and would overwrite one.
    #[error(
        "mapping: `{first}` and `{second}` both write to the form `{form}`; each kind of data needs its own event form"
    )]
    SharedForm {
        /// Form key.
        first: String,
        /// The other form key.
        second: String,
        /// The form name both name.
        form: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForm {
    form: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, Option<String>>,
}

/// One form: its name and, for each field role, the Smartabase field name (`None` = not on this site's form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormSpec {
    /// The form's exact name.
    pub form: String,
    fields: BTreeMap<String, Option<String>>,
}

impl FormSpec {
    /// The Smartabase field name of `role`, if the site has that field.
    pub fn field(&self, role: &str) -> Option<&str> {
        self.fields.get(role).and_then(|f| f.as_deref())
    }

    /// Each field role with the site's field name (`None` = left out on this site), by role.
    pub fn fields(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.fields
            .iter()
            .map(|(role, name)| (role.as_str(), name.as_deref()))
    }
}

/// Whether a form holds dated events or one record per athlete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormKind {
    /// One event per Polar record (`eventsimport`).
    Event,
    /// One record per athlete (`profileimport`).
    Profile,
}

/// A form the connector writes on this site.
#[derive(Debug, Clone, Copy)]
pub struct SiteForm<'a> {
    /// The mapping's key (`training`, `auth_portal`, …).
    pub key: &'static str,
    /// Event or profile form.
    pub kind: FormKind,
    /// Its name and field names on this site.
    pub spec: &'a FormSpec,
}

/// All six forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// `Polar Training`.
    pub training: FormSpec,
    /// `Polar Activity`.
    pub activity: FormSpec,
    /// `Polar Sleep`.
    pub sleep: FormSpec,
    /// `Polar Nightly Recharge`.
    pub recharge: FormSpec,
    /// `Polar Auth Portal` (profile).
    pub auth_portal: FormSpec,
    /// `Polar Access Token` (profile).
    pub access_token: FormSpec,
}

const FORM_KEYS: [&str; 6] = [
    "training",
    "activity",
    "sleep",
    "recharge",
    "auth_portal",
    "access_token",
];
const PROFILE_FORMS: [&str; 2] = ["auth_portal", "access_token"];

fn parse_forms(json: &str) -> Result<BTreeMap<String, RawForm>, MappingError> {
    serde_json::from_str(json)
        .map_err(|e| MappingError::Shape(format!("line {}, column {}", e.line(), e.column())))
}

impl Mapping {
    /// The built-in mapping.
    pub fn defaults() -> Self {
        match Self::build(parse_forms(DEFAULT_MAPPING_JSON), None) {
            Ok(mapping) => mapping,
            // `default.json` is compiled in and checked by a unit test.
            Err(e) => unreachable!("built-in mapping is invalid: {e}"),
        }
    }

    /// The built-in mapping with a site's override merged over it. The override names only what differs;
    /// a field set to `null` is left out of every write (the site's form does not have it).
    pub fn with_override(json: &str) -> Result<Self, MappingError> {
        Self::build(parse_forms(DEFAULT_MAPPING_JSON), Some(parse_forms(json)?))
    }

    fn build(
        defaults: Result<BTreeMap<String, RawForm>, MappingError>,
        site: Option<BTreeMap<String, RawForm>>,
    ) -> Result<Self, MappingError> {
        let mut forms = defaults?;
        for (key, raw) in site.unwrap_or_default() {
            let base = forms
                .get_mut(&key)
                .ok_or_else(|| MappingError::UnknownForm(key.clone()))?;
            if let Some(name) = raw.form {
                base.form = Some(name);
            }
            for (role, name) in raw.fields {
                let slot =
                    base.fields
                        .get_mut(&role)
                        .ok_or_else(|| MappingError::UnknownField {
                            form: key.clone(),
                            role: role.clone(),
                        })?;
                *slot = name;
            }
        }
        let mut take = |key: &str| -> Result<FormSpec, MappingError> {
            let raw = forms
                .remove(key)
                .ok_or_else(|| MappingError::UnknownForm(key.to_string()))?;
            let form = raw.form.filter(|f| !f.trim().is_empty()).ok_or_else(|| {
                MappingError::EmptyName {
                    form: key.to_string(),
                    role: "form".into(),
                }
            })?;
            for (role, name) in &raw.fields {
                let required = PROFILE_FORMS.contains(&key);
                let empty = name.as_deref().is_some_and(|n| n.trim().is_empty());
                if empty || (required && name.is_none()) {
                    return Err(MappingError::EmptyName {
                        form: key.to_string(),
                        role: role.clone(),
                    });
                }
            }
            Ok(FormSpec {
                form,
                fields: raw.fields,
            })
        };
        let mapping = Self {
            training: take(FORM_KEYS[0])?,
            activity: take(FORM_KEYS[1])?,
            sleep: take(FORM_KEYS[2])?,
            recharge: take(FORM_KEYS[3])?,
            auth_portal: take(FORM_KEYS[4])?,
            access_token: take(FORM_KEYS[5])?,
        };
        let event_forms = DataKind::ALL.map(|kind| (kind, &mapping.form(kind).form));
        for (i, (first, form)) in event_forms.iter().enumerate() {
            if let Some((second, _)) = event_forms[i + 1..].iter().find(|(_, f)| f == form) {
                return Err(MappingError::SharedForm {
                    first: first.as_str().to_string(),
                    second: second.as_str().to_string(),
                    form: form.to_string(),
                });
            }
        }
        Ok(mapping)
    }

    /// Every form the connector writes on this site, in the order of `default.json`: the forms a site
    /// must have. A form the mapping switches off is not listed.
    pub fn enabled_forms(&self) -> Vec<SiteForm<'_>> {
        let kind = |key: &str| {
            if PROFILE_FORMS.contains(&key) {
                FormKind::Profile
            } else {
                FormKind::Event
            }
        };
        [
            (FORM_KEYS[0], &self.training),
            (FORM_KEYS[1], &self.activity),
            (FORM_KEYS[2], &self.sleep),
            (FORM_KEYS[3], &self.recharge),
            (FORM_KEYS[4], &self.auth_portal),
            (FORM_KEYS[5], &self.access_token),
        ]
        .into_iter()
        .map(|(key, spec)| SiteForm {
            key,
            kind: kind(key),
            spec,
        })
        .collect()
    }

    /// The event form for a data kind.
    pub fn form(&self, kind: DataKind) -> &FormSpec {
        match kind {
            DataKind::Training => &self.training,
            DataKind::Activity => &self.activity,
            DataKind::Sleep => &self.sleep,
            DataKind::Recharge => &self.recharge,
        }
    }

    /// A training session: local start → local start + duration (which may cross midnight).
    pub fn training(&self, exercise: &Exercise) -> MappedEvent {
        let start = exercise.start_time;
        // Polar's reading keeps the duration within seven days and the finish within year 9999; should a
        // finish still not exist, the session is shown at its start rather than taking the worker down.
        let finish = exercise
            .duration_seconds
            .filter(|seconds| *seconds > 0.0)
            .and_then(|seconds| Duration::try_milliseconds((seconds * 1000.0).round() as i64))
            .and_then(|length| start.checked_add_signed(length))
            .unwrap_or(start);
        let mut b = PairsBuilder::new(&self.training);
        b.text("exercise_id", Some(exercise.id.as_str()));
        b.text(
            "sport",
            exercise
                .detailed_sport_info
                .as_deref()
                .or(exercise.sport.as_deref()),
        );
        b.minutes("duration_min", exercise.duration_seconds);
        b.km("distance_km", exercise.distance_metres);
        b.number("calories", exercise.calories);
        b.number("average_hr", exercise.heart_rate_average);
        b.number("maximum_hr", exercise.heart_rate_maximum);
        b.number("training_load", exercise.training_load);
        b.number("cardio_load", exercise.cardio_load);
        b.number("muscle_load", exercise.muscle_load);
        for zone in &exercise.heart_rate_zones {
            if (1..=5).contains(&zone.index) {
                b.minutes(
                    &format!("zone_{}_min", zone.index),
                    Some(zone.in_zone_seconds),
                );
            }
        }
        b.text("device", exercise.device.as_deref());
        MappedEvent::new(
            DataKind::Training,
            RecordKey::Exercise(exercise.id.clone()),
            &self.training,
            start,
            finish,
            b.pairs,
        )
    }

    /// A day's activity: that date, 12:00 AM → 11:59 PM.
    pub fn activity(&self, activity: &DailyActivity) -> MappedEvent {
        let mut b = PairsBuilder::new(&self.activity);
        b.date("activity_date", activity.date);
        b.integer("steps", activity.steps);
        b.number("active_calories", activity.active_calories);
        b.number("total_calories", activity.calories);
        b.minutes("active_time_min", activity.active_duration_seconds);
        b.km("distance_km", activity.distance_from_steps_metres);
        let (start, finish) = whole_day(activity.date);
        MappedEvent::new(
            DataKind::Activity,
            RecordKey::Date(activity.date),
            &self.activity,
            start,
            finish,
            b.pairs,
        )
    }

    /// A night's sleep: the sleep date (the wake-up day), 12:00 AM → 11:59 PM; start and end as local clock times.
    pub fn sleep(&self, sleep: &Sleep) -> MappedEvent {
        let mut b = PairsBuilder::new(&self.sleep);
        b.date("sleep_date", sleep.date);
        b.clock("sleep_start", sleep.sleep_start.map(|t| t.time()));
        b.clock("sleep_end", sleep.sleep_end.map(|t| t.time()));
        let stages = [
            sleep.light_sleep_seconds,
            sleep.deep_sleep_seconds,
            sleep.rem_sleep_seconds,
            sleep.unrecognized_sleep_seconds,
        ];
        let total = stages
            .iter()
            .flatten()
            .copied()
            .reduce(|a, b| a.saturating_add(b));
        b.minutes("total_sleep_min", total.map(|s| s as f64));
        b.minutes("deep_sleep_min", sleep.deep_sleep_seconds.map(|s| s as f64));
        b.minutes("rem_sleep_min", sleep.rem_sleep_seconds.map(|s| s as f64));
        b.minutes(
            "light_sleep_min",
            sleep.light_sleep_seconds.map(|s| s as f64),
        );
        b.minutes(
            "interruptions_min",
            sleep.total_interruption_seconds.map(|s| s as f64),
        );
        b.number("sleep_score", sleep.sleep_score);
        b.number("sleep_charge", sleep.sleep_charge);
        b.number("continuity", sleep.continuity);
        let (start, finish) = whole_day(sleep.date);
        MappedEvent::new(
            DataKind::Sleep,
            RecordKey::Date(sleep.date),
            &self.sleep,
            start,
            finish,
            b.pairs,
        )
    }

    /// A Nightly Recharge: that date, 12:00 AM → 11:59 PM.
    pub fn recharge(&self, recharge: &NightlyRecharge) -> MappedEvent {
        let mut b = PairsBuilder::new(&self.recharge);
        b.date("recharge_date", recharge.date);
        b.integer("status", recharge.nightly_recharge_status);
        b.number("ans_charge", recharge.ans_charge);
        b.number("average_hr", recharge.heart_rate_avg);
        b.number("average_hrv_ms", recharge.heart_rate_variability_avg);
        b.number("breathing_rate", recharge.breathing_rate_avg);
        let (start, finish) = whole_day(recharge.date);
        MappedEvent::new(
            DataKind::Recharge,
            RecordKey::Date(recharge.date),
            &self.recharge,
            start,
            finish,
            b.pairs,
        )
    }
}

fn whole_day(date: NaiveDate) -> (NaiveDateTime, NaiveDateTime) {
    let start = date.and_time(NaiveTime::MIN);
    let finish = date.and_hms_opt(23, 59, 0).unwrap_or(start);
    (start, finish)
}

/// Collects pairs for the roles the site's form has, formatted as Smartabase wants them.
struct PairsBuilder<'a> {
    spec: &'a FormSpec,
    pairs: Vec<(String, String)>,
}

impl<'a> PairsBuilder<'a> {
    fn new(spec: &'a FormSpec) -> Self {
        Self {
            spec,
            pairs: Vec::new(),
        }
    }

    fn push(&mut self, role: &str, value: Option<String>) {
        if let (Some(name), Some(value)) = (self.spec.field(role), value) {
            self.pairs.push((name.to_string(), value));
        }
    }

    fn text(&mut self, role: &str, value: Option<&str>) {
        self.push(
            role,
            value
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string),
        );
    }

    fn number(&mut self, role: &str, value: Option<f64>) {
        self.push(role, value.filter(|v| v.is_finite()).map(plain_number));
    }

    fn integer(&mut self, role: &str, value: Option<i64>) {
        self.push(role, value.map(|v| v.to_string()));
    }

    fn minutes(&mut self, role: &str, seconds: Option<f64>) {
        self.push(
            role,
            seconds
                .filter(|v| v.is_finite())
                .map(|s| format!("{:.1}", s / 60.0)),
        );
    }

    fn km(&mut self, role: &str, metres: Option<f64>) {
        self.push(
            role,
            metres
                .filter(|v| v.is_finite())
                .map(|m| format!("{:.2}", m / 1000.0)),
        );
    }

    fn date(&mut self, role: &str, date: NaiveDate) {
        self.push(role, Some(format_date(date)));
    }

    fn clock(&mut self, role: &str, time: Option<NaiveTime>) {
        self.push(role, time.map(format_time));
    }
}

/// A number as Polar gave it: integers without a decimal point, fractions in their shortest exact form,
/// never in exponent notation (Smartabase would store the text as is).
pub fn plain_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// One Polar record as the Smartabase event it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedEvent {
    /// Which ledger entry it belongs to.
    pub key: LedgerKey,
    /// The form.
    pub form: String,
    /// Local start.
    pub start: NaiveDateTime,
    /// Local finish.
    pub finish: NaiveDateTime,
    /// Field name → value.
    pub pairs: Vec<(String, String)>,
    /// Hash of everything above: equal hashes mean nothing to write.
    pub content_hash: String,
}

impl MappedEvent {
    fn new(
        kind: DataKind,
        record: RecordKey,
        spec: &FormSpec,
        start: NaiveDateTime,
        finish: NaiveDateTime,
        pairs: Vec<(String, String)>,
    ) -> Self {
        let canonical = serde_json::json!({
            "form": spec.form,
            "start": start.format("%Y-%m-%dT%H:%M").to_string(),
            "finish": finish.format("%Y-%m-%dT%H:%M").to_string(),
            "pairs": pairs,
        });
        let content_hash = sha256_hex(canonical.to_string().as_bytes())[..32].to_string();
        Self {
            key: LedgerKey { kind, record },
            form: spec.form.clone(),
            start,
            finish,
            pairs,
            content_hash,
        }
    }

    /// The import request for this event: a create, or a replacement of `existing`.
    pub fn to_write(&self, user: SmartabaseUserId, existing: Option<EventId>) -> EventWrite {
        EventWrite {
            form: self.form.clone(),
            user_id: user,
            start: self.start,
            finish: self.finish,
            existing_event_id: existing,
            pairs: self.pairs.clone(),
        }
    }

    /// The value of one field, for tests and lookups.
    pub fn value(&self, field: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, FixedOffset};

    use super::*;
    use crate::ids::ExerciseId;
    use crate::polar::HeartRateZone;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn reference_exercise() -> Exercise {
        // polar-accesslink.md §8.1
        Exercise {
            id: ExerciseId::parse("Xy7Qp2Lr").unwrap(),
            upload_time: None,
            device: Some("Polar Vantage V3".into()),
            start_time: date(2025, 9, 2).and_hms_opt(7, 5, 0).unwrap(),
            start_time_utc_offset_minutes: 120,
            duration_seconds: Some(3750.0),
            calories: Some(712.0),
            distance_metres: Some(12450.0),
            heart_rate_average: Some(148.0),
            heart_rate_maximum: Some(176.0),
            training_load: Some(118.4),
            sport: Some("RUNNING".into()),
            detailed_sport_info: Some("ROAD_RUNNING".into()),
            heart_rate_zones: [130.0, 585.0, 1865.0, 1120.0, 50.0]
                .into_iter()
                .enumerate()
                .map(|(i, s)| HeartRateZone {
                    index: i as u8 + 1,
                    in_zone_seconds: s,
                })
                .collect(),
            cardio_load: Some(118.4),
            muscle_load: Some(402.0),
        }
    }

    #[test]
    fn default_mapping_has_the_design_names() {
        let m = Mapping::defaults();
        assert_eq!(m.training.form, "Polar Training");
        assert_eq!(m.activity.form, "Polar Activity");
        assert_eq!(m.sleep.form, "Polar Sleep");
        assert_eq!(m.recharge.form, "Polar Nightly Recharge");
        assert_eq!(
            m.auth_portal.field("authorisation_link"),
            Some("Authorisation Link")
        );
        assert_eq!(m.access_token.field("status"), Some("Status"));
        assert_eq!(m.recharge.field("average_hrv_ms"), Some("Average HRV (ms)"));
    }

    #[test]
    fn training_maps_every_field_of_the_reference_exercise() {
        let e = Mapping::defaults().training(&reference_exercise());
        let expected = [
            ("Polar Exercise ID", "Xy7Qp2Lr"),
            ("Sport", "ROAD_RUNNING"),
            ("Duration (min)", "62.5"),
            ("Distance (km)", "12.45"),
            ("Calories", "712"),
            ("Average HR", "148"),
            ("Maximum HR", "176"),
            ("Training Load", "118.4"),
            ("Cardio Load", "118.4"),
            ("Muscle Load", "402"),
            ("Zone 1 (min)", "2.2"),
            ("Zone 2 (min)", "9.8"),
            ("Zone 3 (min)", "31.1"),
            ("Zone 4 (min)", "18.7"),
            ("Zone 5 (min)", "0.8"),
            ("Device", "Polar Vantage V3"),
        ];
        let got: Vec<(&str, &str)> = e
            .pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, expected);
        assert_eq!(e.form, "Polar Training");
        assert_eq!(e.start, date(2025, 9, 2).and_hms_opt(7, 5, 0).unwrap());
        assert_eq!(e.finish, date(2025, 9, 2).and_hms_opt(8, 7, 30).unwrap());
    }

    #[test]
    fn training_crossing_midnight_finishes_the_next_local_day_and_missing_values_are_left_out() {
        let mut ex = reference_exercise();
        ex.start_time = date(2025, 12, 31).and_hms_opt(23, 30, 0).unwrap();
        ex.duration_seconds = Some(5400.0);
        ex.distance_metres = None;
        ex.calories = None;
        ex.detailed_sport_info = None;
        ex.heart_rate_zones.clear();
        ex.device = Some("   ".into());
        let e = Mapping::defaults().training(&ex);
        assert_eq!(e.finish, date(2026, 1, 1).and_hms_opt(1, 0, 0).unwrap());
        assert_eq!(e.value("Sport"), Some("RUNNING"));
        for absent in ["Distance (km)", "Calories", "Zone 1 (min)", "Device"] {
            assert_eq!(e.value(absent), None, "{absent}");
        }
    }

    #[test]
    fn a_training_whose_duration_runs_off_the_calendar_is_mapped_without_panicking() {
        let mut ex = reference_exercise();
        for (start, seconds) in [
            (NaiveDateTime::MAX, 60.0),
            (date(2025, 9, 2).and_hms_opt(7, 5, 0).unwrap(), 1e300),
            (date(2025, 9, 2).and_hms_opt(7, 5, 0).unwrap(), f64::NAN),
            (NaiveDateTime::MIN, -1e18),
        ] {
            ex.start_time = start;
            ex.duration_seconds = Some(seconds);
            let e = Mapping::defaults().training(&ex);
            assert!(e.finish >= e.start, "{start} + {seconds}");
        }
    }

    fn sleep_reference() -> Sleep {
        // polar-accesslink.md §8.3
        let at = |s: &str| DateTime::<FixedOffset>::parse_from_rfc3339(s).unwrap();
        Sleep {
            date: date(2025, 9, 2),
            sleep_start: Some(at("2025-09-01T23:14:05+02:00")),
            sleep_end: Some(at("2025-09-02T06:48:40+02:00")),
            light_sleep_seconds: Some(14820),
            deep_sleep_seconds: Some(5430),
            rem_sleep_seconds: Some(5610),
            unrecognized_sleep_seconds: Some(0),
            total_interruption_seconds: Some(1415),
            sleep_score: Some(78.0),
            sleep_charge: Some(3.0),
            continuity: Some(3.4),
        }
    }

    #[test]
    fn sleep_uses_the_wake_up_day_and_local_clock_times() {
        let e = Mapping::defaults().sleep(&sleep_reference());
        assert_eq!(e.start, date(2025, 9, 2).and_hms_opt(0, 0, 0).unwrap());
        assert_eq!(e.finish, date(2025, 9, 2).and_hms_opt(23, 59, 0).unwrap());
        let expected = [
            ("Sleep Date", "02/09/2025"),
            ("Sleep Start", "11:14 PM"),
            ("Sleep End", "6:48 AM"),
            ("Total Sleep (min)", "431.0"),
            ("Deep Sleep (min)", "90.5"),
            ("REM Sleep (min)", "93.5"),
            ("Light Sleep (min)", "247.0"),
            ("Interruptions (min)", "23.6"),
            ("Sleep Score", "78"),
            ("Sleep Charge", "3"),
            ("Continuity", "3.4"),
        ];
        let got: Vec<(&str, &str)> = e
            .pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn sleep_start_in_the_midnight_hour_is_written_00() {
        let mut s = sleep_reference();
        s.sleep_start = Some(DateTime::parse_from_rfc3339("2025-09-02T00:05:00+13:45").unwrap());
        assert_eq!(
            Mapping::defaults().sleep(&s).value("Sleep Start"),
            Some("00:05 AM")
        );
    }

    #[test]
    fn activity_and_recharge_map_to_their_date() {
        let m = Mapping::defaults();
        let a = m.activity(&DailyActivity {
            date: date(2025, 9, 1),
            active_duration_seconds: Some(15120.0),
            calories: Some(2841.0),
            active_calories: Some(1120.0),
            steps: Some(13207),
            distance_from_steps_metres: Some(9874.5),
        });
        let got: Vec<(&str, &str)> = a
            .pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("Activity Date", "01/09/2025"),
                ("Steps", "13207"),
                ("Active Calories", "1120"),
                ("Total Calories", "2841"),
                ("Active Time (min)", "252.0"),
                ("Distance (km)", "9.87"),
            ]
        );
        let r = m.recharge(&NightlyRecharge {
            date: date(2025, 9, 2),
            nightly_recharge_status: Some(4),
            ans_charge: Some(-1.5),
            heart_rate_avg: Some(54.0),
            heart_rate_variability_avg: Some(62.0),
            breathing_rate_avg: Some(13.6),
        });
        let got: Vec<(&str, &str)> = r
            .pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("Recharge Date", "02/09/2025"),
                ("Nightly Recharge Status", "4"),
                ("ANS Charge", "-1.5"),
                ("Average HR", "54"),
                ("Average HRV (ms)", "62"),
                ("Breathing Rate", "13.6"),
            ]
        );
        assert_eq!(r.key.encode(), "recharge#2025-09-02");
    }

    #[test]
    fn content_hash_changes_with_values_only() {
        let m = Mapping::defaults();
        let a = m.sleep(&sleep_reference());
        assert_eq!(a.content_hash, m.sleep(&sleep_reference()).content_hash);
        let mut revised = sleep_reference();
        revised.sleep_score = Some(80.0);
        assert_ne!(a.content_hash, m.sleep(&revised).content_hash);
    }

    #[test]
    fn site_override_renames_and_switches_fields_off() {
        let m = Mapping::with_override(
            r#"{"training": {"form": "Training (Polar)", "fields": {"device": null, "sport": "Activity Type"}}}"#,
        )
        .unwrap();
        let e = m.training(&reference_exercise());
        assert_eq!(e.form, "Training (Polar)");
        assert_eq!(e.value("Activity Type"), Some("ROAD_RUNNING"));
        assert_eq!(e.value("Sport"), None);
        assert_eq!(e.value("Device"), None);
        assert_eq!(
            m.sleep.form, "Polar Sleep",
            "untouched forms keep their defaults"
        );
    }

    #[test]
    fn bad_overrides_are_refused_with_the_offending_name() {
        assert_eq!(
            Mapping::with_override(r#"{"trainings": {}}"#),
            Err(MappingError::UnknownForm("trainings".into()))
        );
        assert_eq!(
            Mapping::with_override(r#"{"sleep": {"fields": {"snore_min": "Snoring"}}}"#),
            Err(MappingError::UnknownField {
                form: "sleep".into(),
                role: "snore_min".into()
            })
        );
        assert!(matches!(
            Mapping::with_override(r#"{"access_token": {"fields": {"status": null}}}"#),
            Err(MappingError::EmptyName { .. })
        ));
        assert!(matches!(
            Mapping::with_override(r#"{"sleep": {"form": " "}}"#),
            Err(MappingError::EmptyName { .. })
        ));
        assert!(matches!(
            Mapping::with_override("[1,2"),
            Err(MappingError::Shape(_))
        ));
    }

    #[test]
    fn enabled_forms_are_the_six_forms_with_their_site_names_and_kinds() {
        let m = Mapping::with_override(
            r#"{"sleep": {"form": "Club Sleep", "fields": {"continuity": null}}}"#,
        )
        .unwrap();
        let forms = m.enabled_forms();
        let listed: Vec<(&str, FormKind, &str)> = forms
            .iter()
            .map(|f| (f.key, f.kind, f.spec.form.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                ("training", FormKind::Event, "Polar Training"),
                ("activity", FormKind::Event, "Polar Activity"),
                ("sleep", FormKind::Event, "Club Sleep"),
                ("recharge", FormKind::Event, "Polar Nightly Recharge"),
                ("auth_portal", FormKind::Profile, "Polar Auth Portal"),
                ("access_token", FormKind::Profile, "Polar Access Token"),
            ]
        );
        let sleep: Vec<(&str, Option<&str>)> = forms[2].spec.fields().collect();
        assert_eq!(sleep.len(), 11);
        assert!(sleep.contains(&("continuity", None)));
        assert!(sleep.contains(&("sleep_score", Some("Sleep Score"))));
    }

    #[test]
    fn two_kinds_of_data_writing_one_event_form_are_refused() {
        assert_eq!(
            Mapping::with_override(r#"{"recharge": {"form": "Polar Sleep"}}"#),
            Err(MappingError::SharedForm {
                first: "sleep".into(),
                second: "recharge".into(),
                form: "Polar Sleep".into()
            })
        );
        assert!(Mapping::with_override(r#"{"recharge": {"form": "Polar Recharge"}}"#).is_ok());
    }

    #[test]
    fn numbers_are_plain() {
        assert_eq!(plain_number(712.0), "712");
        assert_eq!(plain_number(-1.5), "-1.5");
        assert_eq!(plain_number(1.78432026e9), "1784320260");
        assert_eq!(plain_number(0.0001), "0.0001");
    }
}
