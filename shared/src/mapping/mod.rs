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
//! - A daily record (activity, sleep, recharge, cardio load, 24/7 heart rate) or an alertness period
//!   with **nothing measured** is no record, as Polar's 404 is: it makes no event. A coach reads an event as "the watch measured this"; an event holding only
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
//! | Cardio Load | `Cardio Load Status` | `cardio_load_status` | Polar's status (`PRODUCTIVE`, `MAINTAINING`, …) | `LOAD_STATUS_NOT_AVAILABLE`, `UNRECOGNIZED`, blank | Polar lists every day, computable or not |
//! | Cardio Load | `Cardio Load` | `cardio_load` (TRIMP) | with a status: 0 to 100,000 (0 is a rest day); without: more than 0 | negative; 0 on a day without a status | a rest day's 0 is part of the acute:chronic picture; without a status Polar sends 0 for "not computed" |
//! | Cardio Load | `Strain`, `Tolerance` | `strain`, `tolerance` | 0 to 100,000, when the day has a status | negative; any value on a day without a status | averages of daily loads, not computed without enough history |
//! | Cardio Load | `Cardio Load Ratio` | `cardio_load_ratio` | 0 to 100, when the day has a status | negative, above 100; any value on a day without a status | strain / tolerance: at most 4 for Polar's averages |
//! | Alertness | `Alertness Grade` | `grade` | 0–10, when `validity` is valid or an estimate | outside 0–10; `VALIDITY_NOT_VALID`, `VALIDITY_RESET`, `VALIDITY_UNKNOWN` | Polar's own word that the grade is not a grade |
//! | Alertness | `Grade Classification` | `grade_classification` | Polar's class (`GRADE_CLASSIFICATION_STRONG`, …) when the grade is valid | `…_UNKNOWN`, blank; a grade that is not valid | as the grade |
//! | Alertness | `Sleep Inertia`, `Sleep Type`, `Validity` | `sleep_inertia`, `sleep_type`, `validity` | Polar's value (`SLEEP_TYPE_SECONDARY` is a nap) | `…_UNKNOWN`, blank | the enums' own "unknown" |
//! | Daily Heart Rate | `Lowest HR`, `Average HR`, `Highest HR`, `Samples` | `heart_rate_samples[].heart_rate` bpm | computed from the samples of 20–250 bpm | samples of 0 (watch off the wrist) or outside 20–250 are not counted; a day without one is no event | as training |
//!
//! The date fields (`Activity Date`, `Sleep Date`, `Recharge Date`, `Cardio Load Date`, `Alertness Date`,
//! `Heart Rate Date`) and `Polar Exercise ID` are always written: without them there is no record.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use serde::Deserialize;

use crate::crypto::sha256_hex;
use crate::ids::{EventId, SmartabaseUserId};
use crate::model::{DataKind, LedgerKey, RecordKey};
use crate::polar::{
    Alertness, CardioLoad, DailyActivity, DailyHeartRate, Exercise, NightlyRecharge, Sleep,
    WebhookEventType,
};
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
        "mapping: unknown form `{0}` (known: training, activity, sleep, recharge, cardio_load, alertness, \
         daily_heart_rate, auth_portal, access_token)"
    )]
    UnknownForm(String),
    /// `enabled` on a form the connector always writes.
    #[error(
        "mapping: `{0}.enabled`: the form `{0}` is always written; only cardio_load, alertness and \
         daily_heart_rate can be enabled"
    )]
    AlwaysEnabled(String),
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
    enabled: Option<bool>,
    #[serde(default)]
    fields: BTreeMap<String, Option<String>>,
}

/// One form: its name, whether the connector writes it, and for each field role the Smartabase field
/// name (`None` = not on this site's form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormSpec {
    /// The form's exact name.
    pub form: String,
    /// Whether the connector writes this form on this site: always for the core forms, for an optional
    /// form (design §5b) once the site enables it. A disabled form costs no Polar call.
    pub enabled: bool,
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

/// All nine forms: six the connector always writes, three a site may enable.
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
    /// `Polar Cardio Load` (optional).
    pub cardio_load: FormSpec,
    /// `Polar Alertness` (optional).
    pub alertness: FormSpec,
    /// `Polar Daily Heart Rate` (optional).
    pub daily_heart_rate: FormSpec,
    /// `Polar Auth Portal` (profile).
    pub auth_portal: FormSpec,
    /// `Polar Access Token` (profile).
    pub access_token: FormSpec,
}

/// Every form key, in the order of `default.json`.
pub const FORM_KEYS: [&str; 9] = [
    "training",
    "activity",
    "sleep",
    "recharge",
    "cardio_load",
    "alertness",
    "daily_heart_rate",
    "auth_portal",
    "access_token",
];
const PROFILE_FORMS: [&str; 2] = ["auth_portal", "access_token"];
/// The forms a site enables (`{"cardio_load": {"enabled": true}}`); off by default.
pub const OPTIONAL_FORMS: [&str; 3] = ["cardio_load", "alertness", "daily_heart_rate"];

/// The forms of a mapping file; a shape error names the key it is at.
fn parse_forms(json: &str) -> Result<BTreeMap<String, RawForm>, MappingError> {
    let mut reader = serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let (line, column) = (inner.line(), inner.column());
        let what = inner.to_string();
        let what = what.split(" at line ").next().unwrap_or(&what);
        MappingError::Shape(if path == "." {
            format!("{what} (line {line}, column {column})")
        } else {
            format!("`{path}`: {what} (line {line}, column {column})")
        })
    })
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
            if let Some(enabled) = raw.enabled {
                if !OPTIONAL_FORMS.contains(&key.as_str()) {
                    return Err(MappingError::AlwaysEnabled(key));
                }
                base.enabled = Some(enabled);
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
            // The core forms are always written; an optional one only when the site enables it.
            let enabled = !OPTIONAL_FORMS.contains(&key) || raw.enabled.unwrap_or(false);
            Ok(FormSpec {
                form,
                enabled,
                fields: raw.fields,
            })
        };
        let mapping = Self {
            training: take(FORM_KEYS[0])?,
            activity: take(FORM_KEYS[1])?,
            sleep: take(FORM_KEYS[2])?,
            recharge: take(FORM_KEYS[3])?,
            cardio_load: take(FORM_KEYS[4])?,
            alertness: take(FORM_KEYS[5])?,
            daily_heart_rate: take(FORM_KEYS[6])?,
            auth_portal: take(FORM_KEYS[7])?,
            access_token: take(FORM_KEYS[8])?,
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

    /// Every form with its key, in the order of `default.json`.
    pub fn forms(&self) -> [(&'static str, &FormSpec); 9] {
        [
            (FORM_KEYS[0], &self.training),
            (FORM_KEYS[1], &self.activity),
            (FORM_KEYS[2], &self.sleep),
            (FORM_KEYS[3], &self.recharge),
            (FORM_KEYS[4], &self.cardio_load),
            (FORM_KEYS[5], &self.alertness),
            (FORM_KEYS[6], &self.daily_heart_rate),
            (FORM_KEYS[7], &self.auth_portal),
            (FORM_KEYS[8], &self.access_token),
        ]
    }

    /// Every form the connector writes on this site, in the order of `default.json`: the forms a site
    /// must have. An optional form is listed only when the site enables it.
    pub fn enabled_forms(&self) -> Vec<SiteForm<'_>> {
        let kind = |key: &str| {
            if PROFILE_FORMS.contains(&key) {
                FormKind::Profile
            } else {
                FormKind::Event
            }
        };
        self.forms()
            .into_iter()
            .filter(|(_, spec)| spec.enabled)
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
            DataKind::CardioLoad => &self.cardio_load,
            DataKind::Alertness => &self.alertness,
            DataKind::DailyHeartRate => &self.daily_heart_rate,
        }
    }

    /// Whether this site gets events of `kind` (the core kinds always; an optional one when enabled):
    /// a kind that is not enabled must cost no Polar call.
    pub fn is_enabled(&self, kind: DataKind) -> bool {
        self.form(kind).enabled
    }

    /// The webhook events this site needs: the core three, and the events that announce an enabled
    /// optional form's data (cardio load has none: it follows the day's exercises).
    pub fn webhook_events(&self) -> Vec<WebhookEventType> {
        let mut events = WebhookEventType::SUBSCRIBED.to_vec();
        if self.daily_heart_rate.enabled {
            events.push(WebhookEventType::ContinuousHeartRate);
        }
        if self.alertness.enabled {
            events.push(WebhookEventType::SleepWiseAlertness);
        }
        events
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

    /// A day's cardio load: Polar's date, 12:00 AM → 11:59 PM. (A day Polar could not compute at all is
    /// no [`CardioLoad`] record, so it makes no event.)
    pub fn cardio_load(&self, day: &CardioLoad) -> MappedEvent {
        let mut b = PairsBuilder::new(&self.cardio_load);
        b.date("cardio_load_date", day.date);
        b.number("cardio_load", day.cardio_load);
        b.number("strain", day.strain);
        b.number("tolerance", day.tolerance);
        b.number("cardio_load_ratio", day.cardio_load_ratio);
        b.text("cardio_load_status", day.status.as_deref());
        let (start, finish) = whole_day(day.date);
        MappedEvent::new(
            DataKind::CardioLoad,
            RecordKey::Date(day.date),
            &self.cardio_load,
            start,
            finish,
            b.pairs,
        )
    }

    /// A SleepWise alertness period: one event per sleep period (a nap is its own), on the athlete's
    /// local date at the period's end (UTC + `sleep_timezone_offset_minutes`), 12:00 AM → 11:59 PM.
    pub fn alertness(&self, period: &Alertness) -> MappedEvent {
        let date = period.local_end_date();
        let mut b = PairsBuilder::new(&self.alertness);
        b.date("alertness_date", date);
        b.number("grade", period.grade);
        b.text(
            "grade_classification",
            period.grade_classification.as_deref(),
        );
        b.text("sleep_inertia", period.sleep_inertia.as_deref());
        b.text("sleep_type", period.sleep_type.as_deref());
        b.text("validity", period.validity.as_deref());
        let (start, finish) = whole_day(date);
        MappedEvent::new(
            DataKind::Alertness,
            RecordKey::sleep_period(period.sleep_period_start),
            &self.alertness,
            start,
            finish,
            b.pairs,
        )
    }

    /// A day's 24/7 heart rate: Polar's date, 12:00 AM → 11:59 PM; the lowest, mean (one decimal) and
    /// highest of the day's samples and how many there are.
    pub fn daily_heart_rate(&self, day: &DailyHeartRate) -> MappedEvent {
        let rates = || day.samples.iter().map(|s| s.heart_rate);
        let count = day.samples.len() as u64;
        let total: u64 = rates().map(u64::from).sum();
        // The mean in tenths, halves rounded up (60.25 → 60.3), exactly: integers, no float ties.
        let mean = (count > 0).then(|| {
            let tenths = (total * 20 + count) / (2 * count);
            format!("{}.{}", tenths / 10, tenths % 10)
        });
        let mut b = PairsBuilder::new(&self.daily_heart_rate);
        b.date("heart_rate_date", day.date);
        b.integer("lowest_hr", rates().min().map(i64::from));
        b.push("average_hr", mean);
        b.integer("highest_hr", rates().max().map(i64::from));
        b.integer(
            "samples",
            (count > 0).then(|| i64::try_from(count).unwrap_or(i64::MAX)),
        );
        let (start, finish) = whole_day(day.date);
        MappedEvent::new(
            DataKind::DailyHeartRate,
            RecordKey::Date(day.date),
            &self.daily_heart_rate,
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
    use std::collections::BTreeSet;

    use chrono::{DateTime, FixedOffset};

    use super::*;
    use crate::ids::ExerciseId;
    use crate::polar::{HeartRateSample, HeartRateZone};

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

    fn pairs(event: &MappedEvent) -> Vec<(&str, &str)> {
        event
            .pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn on(m: &Mapping, key: &str) -> bool {
        m.enabled_forms().iter().any(|f| f.key == key)
    }

    #[test]
    fn the_optional_forms_are_off_by_default_with_the_design_names() {
        let m = Mapping::defaults();
        for (kind, key, form) in [
            (DataKind::CardioLoad, "cardio_load", "Polar Cardio Load"),
            (DataKind::Alertness, "alertness", "Polar Alertness"),
            (
                DataKind::DailyHeartRate,
                "daily_heart_rate",
                "Polar Daily Heart Rate",
            ),
        ] {
            assert_eq!(m.form(kind).form, form);
            assert!(!m.is_enabled(kind), "{key}");
            assert!(!on(&m, key), "{key}");
        }
        for kind in [
            DataKind::Training,
            DataKind::Activity,
            DataKind::Sleep,
            DataKind::Recharge,
        ] {
            assert!(m.is_enabled(kind));
        }
        let names = |spec: &FormSpec| -> Vec<String> {
            spec.fields()
                .filter_map(|(_, name)| name.map(str::to_string))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        assert_eq!(
            names(&m.cardio_load),
            [
                "Cardio Load",
                "Cardio Load Date",
                "Cardio Load Ratio",
                "Cardio Load Status",
                "Strain",
                "Tolerance"
            ]
        );
        assert_eq!(
            names(&m.alertness),
            [
                "Alertness Date",
                "Alertness Grade",
                "Grade Classification",
                "Sleep Inertia",
                "Sleep Type",
                "Validity"
            ]
        );
        assert_eq!(
            names(&m.daily_heart_rate),
            [
                "Average HR",
                "Heart Rate Date",
                "Highest HR",
                "Lowest HR",
                "Samples"
            ]
        );
        assert_eq!(m.webhook_events(), WebhookEventType::SUBSCRIBED);
    }

    #[test]
    fn a_site_enables_an_optional_form_and_only_that_one_is_listed() {
        let m = Mapping::with_override(r#"{"cardio_load": {"enabled": true}}"#).unwrap();
        let keys: Vec<&str> = m.enabled_forms().iter().map(|f| f.key).collect();
        assert_eq!(
            keys,
            [
                "training",
                "activity",
                "sleep",
                "recharge",
                "cardio_load",
                "auth_portal",
                "access_token"
            ]
        );
        assert!(m.is_enabled(DataKind::CardioLoad));
        assert!(!m.is_enabled(DataKind::Alertness));
        let cardio = m.enabled_forms()[4];
        assert_eq!(
            (cardio.kind, cardio.spec.form.as_str()),
            (FormKind::Event, "Polar Cardio Load")
        );
        // Enabling cardio load needs no new webhook event; heart rate and alertness do.
        assert_eq!(m.webhook_events(), WebhookEventType::SUBSCRIBED);
        let all = Mapping::with_override(
            r#"{"cardio_load": {"enabled": true}, "alertness": {"enabled": true},
                "daily_heart_rate": {"enabled": true}}"#,
        )
        .unwrap();
        assert_eq!(all.enabled_forms().len(), 9);
        assert_eq!(
            all.webhook_events(),
            [
                WebhookEventType::Exercise,
                WebhookEventType::Sleep,
                WebhookEventType::ActivitySummary,
                WebhookEventType::ContinuousHeartRate,
                WebhookEventType::SleepWiseAlertness,
            ]
        );
        let off = Mapping::with_override(r#"{"alertness": {"enabled": false}}"#).unwrap();
        assert_eq!(off, Mapping::defaults());
    }

    #[test]
    fn an_optional_form_is_renamed_like_the_core_forms() {
        let m = Mapping::with_override(
            r#"{"alertness": {"enabled": true, "form": "Sleep Boost",
                "fields": {"grade": "Boost", "sleep_inertia": null}}}"#,
        )
        .unwrap();
        let event = m.alertness(&alertness_at("2026-01-10T06:30:00Z", 0));
        assert_eq!(event.form, "Sleep Boost");
        assert_eq!(event.value("Boost"), Some("7.4"));
        assert_eq!(event.value("Alertness Grade"), None);
        assert_eq!(event.value("Sleep Inertia"), None);
        assert_eq!(event.value("Sleep Type"), Some("SLEEP_TYPE_PRIMARY"));
        assert_eq!(m.enabled_forms()[4].spec.form, "Sleep Boost");
    }

    #[test]
    fn bad_optional_form_overrides_name_the_offending_key() {
        assert_eq!(
            Mapping::with_override(r#"{"training": {"enabled": false}}"#),
            Err(MappingError::AlwaysEnabled("training".into()))
        );
        assert_eq!(
            MappingError::AlwaysEnabled("sleep".into()).to_string(),
            "mapping: `sleep.enabled`: the form `sleep` is always written; only cardio_load, \
             alertness and daily_heart_rate can be enabled"
        );
        assert_eq!(
            Mapping::with_override(r#"{"cardio_load": {"fields": {"acwr": "ACWR"}}}"#),
            Err(MappingError::UnknownField {
                form: "cardio_load".into(),
                role: "acwr".into()
            })
        );
        assert_eq!(
            Mapping::with_override(r#"{"daily_heart_rate": {"fields": {"samples": " "}}}"#),
            Err(MappingError::EmptyName {
                form: "daily_heart_rate".into(),
                role: "samples".into()
            })
        );
        let Err(MappingError::Shape(wrong_type)) =
            Mapping::with_override(r#"{"cardio_load": {"enabled": "yes"}}"#)
        else {
            panic!("a string is no switch");
        };
        assert!(
            wrong_type.starts_with(
                "`cardio_load.enabled`: invalid type: string \"yes\", expected a boolean"
            ),
            "{wrong_type}"
        );
        let Err(MappingError::Shape(misspelt)) =
            Mapping::with_override(r#"{"alertness": {"enable": true}}"#)
        else {
            panic!("an unknown key is refused");
        };
        assert!(
            misspelt.starts_with("`alertness.enable`: unknown field `enable`"),
            "{misspelt}"
        );
        assert!(
            MappingError::UnknownForm("heart_rate".into())
                .to_string()
                .contains("daily_heart_rate")
        );
    }

    fn cardio(date_: NaiveDate) -> CardioLoad {
        CardioLoad {
            date: date_,
            status: Some("PRODUCTIVE".into()),
            cardio_load: Some(118.4),
            strain: Some(96.2),
            tolerance: Some(81.5),
            cardio_load_ratio: Some(1.18),
        }
    }

    #[test]
    fn cardio_load_is_one_event_on_its_date_with_every_value() {
        let e = Mapping::defaults().cardio_load(&cardio(date(2025, 9, 2)));
        assert_eq!(e.form, "Polar Cardio Load");
        assert_eq!(
            (e.start, e.finish),
            (
                date(2025, 9, 2).and_hms_opt(0, 0, 0).unwrap(),
                date(2025, 9, 2).and_hms_opt(23, 59, 0).unwrap()
            )
        );
        assert_eq!(
            pairs(&e),
            [
                ("Cardio Load Date", "02/09/2025"),
                ("Cardio Load", "118.4"),
                ("Strain", "96.2"),
                ("Tolerance", "81.5"),
                ("Cardio Load Ratio", "1.18"),
                ("Cardio Load Status", "PRODUCTIVE"),
            ]
        );
        assert_eq!(e.key.encode(), "cardio_load#2025-09-02");
        // A rest day is a load of 0; a day without a status keeps only its load.
        let rest = CardioLoad {
            cardio_load: Some(0.0),
            ..cardio(date(2025, 9, 3))
        };
        assert_eq!(
            Mapping::defaults().cardio_load(&rest).value("Cardio Load"),
            Some("0")
        );
        let early = CardioLoad {
            status: None,
            strain: None,
            tolerance: None,
            cardio_load_ratio: None,
            ..cardio(date(2025, 9, 4))
        };
        assert_eq!(
            pairs(&Mapping::defaults().cardio_load(&early)),
            [("Cardio Load Date", "04/09/2025"), ("Cardio Load", "118.4")]
        );
    }

    #[test]
    fn todays_cardio_load_revised_during_the_day_updates_the_same_event() {
        let m = Mapping::defaults();
        let morning = m.cardio_load(&cardio(date(2026, 3, 1)));
        let evening = m.cardio_load(&CardioLoad {
            cardio_load: Some(163.0),
            strain: Some(102.6),
            cardio_load_ratio: Some(1.26),
            ..cardio(date(2026, 3, 1))
        });
        assert_eq!(morning.key, evening.key);
        assert_ne!(morning.content_hash, evening.content_hash);
        assert_eq!(evening.value("Cardio Load"), Some("163"));
    }

    /// A night ending at `end` (UTC) in a time zone `offset` minutes east of UTC, started 8 hours before.
    fn alertness_at(end: &str, offset: i32) -> Alertness {
        let end = DateTime::parse_from_rfc3339(end).unwrap().to_utc();
        Alertness {
            sleep_period_start: end - Duration::hours(8),
            sleep_period_end: end,
            sleep_timezone_offset_minutes: offset,
            grade: Some(7.4),
            grade_classification: Some("GRADE_CLASSIFICATION_STRONG".into()),
            sleep_inertia: Some("SLEEP_INERTIA_MILD".into()),
            sleep_type: Some("SLEEP_TYPE_PRIMARY".into()),
            validity: Some("VALIDITY_VALID".into()),
        }
    }

    #[test]
    fn alertness_is_dated_by_the_local_date_at_the_end_of_the_sleep_period() {
        let m = Mapping::defaults();
        for (end_utc, offset, local_date, dmy) in [
            // 18:45 UTC is the next morning at +13:45 (Chatham), the same evening at −09:30.
            ("2026-01-09T18:45:00Z", 825, date(2026, 1, 10), "10/01/2026"),
            ("2026-01-09T18:45:00Z", -570, date(2026, 1, 9), "09/01/2026"),
            // 07:10 UTC is 23:40 the day before at −09:30 (Marquesas), 12:55 the same day at +05:45.
            ("2026-01-10T07:10:00Z", -570, date(2026, 1, 9), "09/01/2026"),
            ("2026-01-10T07:10:00Z", 345, date(2026, 1, 10), "10/01/2026"),
            // 18:15 UTC is already the next day at +05:45 (Kathmandu).
            ("2026-01-10T18:15:00Z", 345, date(2026, 1, 11), "11/01/2026"),
            ("2026-01-10T18:14:59Z", 345, date(2026, 1, 10), "10/01/2026"),
        ] {
            let e = m.alertness(&alertness_at(end_utc, offset));
            assert_eq!(
                (e.start, e.finish),
                (
                    local_date.and_hms_opt(0, 0, 0).unwrap(),
                    local_date.and_hms_opt(23, 59, 0).unwrap()
                ),
                "{end_utc} at {offset}"
            );
            assert_eq!(
                e.value("Alertness Date"),
                Some(dmy),
                "{end_utc} at {offset}"
            );
        }
        let e = m.alertness(&alertness_at("2026-01-09T18:45:00Z", 825));
        assert_eq!(
            pairs(&e),
            [
                ("Alertness Date", "10/01/2026"),
                ("Alertness Grade", "7.4"),
                ("Grade Classification", "GRADE_CLASSIFICATION_STRONG"),
                ("Sleep Inertia", "SLEEP_INERTIA_MILD"),
                ("Sleep Type", "SLEEP_TYPE_PRIMARY"),
                ("Validity", "VALIDITY_VALID"),
            ]
        );
        assert_eq!(e.key.encode(), "alertness#2026-01-09T10:45:00Z");
    }

    #[test]
    fn a_nap_on_the_same_date_as_the_night_is_its_own_event() {
        let m = Mapping::defaults();
        let night = m.alertness(&alertness_at("2026-01-10T05:30:00Z", 345));
        let nap = m.alertness(&Alertness {
            sleep_period_start: DateTime::parse_from_rfc3339("2026-01-10T08:00:00Z")
                .unwrap()
                .to_utc(),
            sleep_period_end: DateTime::parse_from_rfc3339("2026-01-10T08:25:00Z")
                .unwrap()
                .to_utc(),
            sleep_type: Some("SLEEP_TYPE_SECONDARY".into()),
            grade: Some(8.1),
            ..alertness_at("2026-01-10T05:30:00Z", 345)
        });
        assert_eq!(night.start, nap.start, "both on the local 10th");
        assert_ne!(night.key, nap.key);
        assert_eq!(nap.value("Sleep Type"), Some("SLEEP_TYPE_SECONDARY"));
        // The night revised later (a longer sleep, a new grade) stays the same record.
        let revised = m.alertness(&Alertness {
            sleep_period_end: DateTime::parse_from_rfc3339("2026-01-10T05:55:00Z")
                .unwrap()
                .to_utc(),
            grade: Some(7.9),
            ..alertness_at("2026-01-10T05:30:00Z", 345)
        });
        assert_eq!(revised.key, night.key);
        assert_ne!(revised.content_hash, night.content_hash);
    }

    fn heart_rate_day(rates: &[u16]) -> DailyHeartRate {
        DailyHeartRate {
            date: date(2026, 1, 10),
            samples: rates
                .iter()
                .enumerate()
                .map(|(i, bpm)| HeartRateSample {
                    time: NaiveTime::from_hms_opt(0, 0, 0).unwrap()
                        + Duration::minutes(5 * i as i64),
                    heart_rate: *bpm,
                })
                .collect(),
        }
    }

    #[test]
    fn daily_heart_rate_summarises_the_days_samples() {
        let e = Mapping::defaults().daily_heart_rate(&heart_rate_day(&[58, 61, 64, 143, 52, 70]));
        assert_eq!(e.form, "Polar Daily Heart Rate");
        assert_eq!(
            pairs(&e),
            [
                ("Heart Rate Date", "10/01/2026"),
                ("Lowest HR", "52"),
                // 448 / 6 = 74.67
                ("Average HR", "74.7"),
                ("Highest HR", "143"),
                ("Samples", "6"),
            ]
        );
        assert_eq!(
            (e.start, e.finish),
            (
                date(2026, 1, 10).and_hms_opt(0, 0, 0).unwrap(),
                date(2026, 1, 10).and_hms_opt(23, 59, 0).unwrap()
            )
        );
        assert_eq!(e.key.encode(), "daily_heart_rate#2026-01-10");
        let one = Mapping::defaults().daily_heart_rate(&heart_rate_day(&[61]));
        assert_eq!(one.value("Average HR"), Some("61.0"));
        // Halves round up, as a coach rounds: 241 / 4 = 60.25, 243 / 4 = 60.75.
        let tie = Mapping::defaults().daily_heart_rate(&heart_rate_day(&[63, 20, 97, 61]));
        assert_eq!(tie.value("Average HR"), Some("60.3"));
        let tie = Mapping::defaults().daily_heart_rate(&heart_rate_day(&[63, 22, 97, 61]));
        assert_eq!(tie.value("Average HR"), Some("60.8"));
        let flat = Mapping::defaults().daily_heart_rate(&heart_rate_day(&[250; 300]));
        assert_eq!(flat.value("Average HR"), Some("250.0"));
        // Polar adds samples to today during the day: the same event with new values.
        let later =
            Mapping::defaults().daily_heart_rate(&heart_rate_day(&[58, 61, 64, 143, 52, 70, 49]));
        assert_eq!(later.key, e.key);
        assert_eq!(later.value("Lowest HR"), Some("49"));
        assert_eq!(later.value("Samples"), Some("7"));
        assert_ne!(later.content_hash, e.content_hash);
        // No sample, no values (Polar's reading makes such a day no record).
        let none = Mapping::defaults().daily_heart_rate(&heart_rate_day(&[]));
        assert_eq!(pairs(&none), [("Heart Rate Date", "10/01/2026")]);
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
