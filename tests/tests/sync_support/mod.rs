//! Helpers shared by the sync and webhook tests: linking athletes through the real web flow, the
//! events a Polar record must become (computed here from the simulator's JSON, independently of the
//! connector's mapping code), and readers of the resulting state.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration as StdDuration;

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use polar_sim::{GenerateRequest, RecordKind, RecordView, UploadMode};
use serde_json::Value;
use shared::ids::{AthleteUuid, ExerciseId};
use shared::model::{Athlete, DataKind, LedgerEntry, LedgerKey, RecordKey};
use shared::store::Store;
use smartabase_sim::SimEvent;
use testkit::front::{HttpRequest, HttpResponse};
use testkit::world::World;

/// The four odd time zones of the brief: −10:00, −09:30, +05:45, +13:45 (minutes east of UTC).
pub const ODD_OFFSETS: [i32; 4] = [-600, -570, 345, 825];

/// One athlete linked on both sides.
#[derive(Debug, Clone)]
pub struct Linked {
    /// Smartabase UUID.
    pub uuid: String,
    /// Smartabase user id.
    pub user: i64,
    /// Polar user id.
    pub polar: i64,
    /// The Polar account's UTC offset in minutes.
    pub offset: i32,
}

impl Linked {
    /// The UUID as the connector's type.
    pub fn athlete(&self) -> AthleteUuid {
        AthleteUuid::parse(self.uuid.clone()).unwrap()
    }
}

/// Puts one athlete per offset on the roster, runs the scan, and links each through the web flow
/// (authorisation link → Polar consent → callback). Every link queues a first-sync job.
pub async fn link_athletes<S: Store>(
    world: &World<S>,
    prefix: &str,
    offsets: &[i32],
) -> Vec<Linked> {
    let mut athletes = Vec::new();
    for (i, offset) in offsets.iter().enumerate() {
        let uuid = format!("{prefix}-{i:04}");
        let user = world.add_athlete(&uuid, "Test", &format!("Athlete{i}"));
        let polar = world.polar_account(*offset);
        athletes.push(Linked {
            uuid,
            user: user.get(),
            polar,
            offset: *offset,
        });
    }
    world.scan().await.unwrap();
    for a in &athletes {
        let page = world.link_via_web(&a.uuid, a.polar).await.unwrap();
        assert_eq!(
            page.status,
            200,
            "linking {} failed: {}",
            a.uuid,
            page.text()
        );
    }
    athletes
}

/// Generates `days` days of every kind for the athlete, uploaded now (after registration).
pub fn generate(world: &World<impl Store>, athlete: &Linked, days: u32) {
    world
        .polar
        .generate(
            athlete.polar,
            &GenerateRequest {
                days,
                upload: UploadMode::Now,
                ..GenerateRequest::default()
            },
        )
        .unwrap();
}

/// The records Polar offers right now for an athlete, of one kind: served (uploaded, ready, after
/// registration) and inside Polar's windows (exercises uploaded in the last 30 days, daily records of
/// the 28 local dates up to today).
pub fn served(world: &World<impl Store>, polar: i64, kind: RecordKind) -> Vec<RecordView> {
    let now = world.polar.now();
    let offset = world.polar.account(polar).unwrap().utc_offset_minutes;
    let today = (now + Duration::minutes(i64::from(offset))).date_naive();
    world
        .polar
        .records(polar, Some(kind))
        .unwrap()
        .into_iter()
        .filter(|r| r.served)
        .filter(|r| match kind {
            RecordKind::Exercise => r.uploaded_at > now - Duration::days(30),
            _ => {
                let date = record_date(r);
                date > today - Duration::days(28) && date <= today
            }
        })
        .collect()
}

/// The date of a daily record: its key, or for an alertness period the athlete's local date at the end
/// of the sleep (UTC + `sleep_timezone_offset_minutes`).
pub fn record_date(record: &RecordView) -> NaiveDate {
    match record.kind {
        RecordKind::Alertness => {
            let end = record.body["sleep_period_end_time"].as_str().unwrap();
            let end = NaiveDateTime::parse_from_str(&end[..19], "%Y-%m-%dT%H:%M:%S").unwrap();
            let offset = record.body["sleep_timezone_offset_minutes"]
                .as_i64()
                .unwrap();
            (end + Duration::minutes(offset)).date()
        }
        _ => NaiveDate::parse_from_str(&record.key, "%Y-%m-%d").unwrap(),
    }
}

/// The event form a record kind lands in (design §1).
pub fn form_of(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Exercise => "Polar Training",
        RecordKind::Activity => "Polar Activity",
        RecordKind::Sleep => "Polar Sleep",
        RecordKind::Recharge => "Polar Nightly Recharge",
        RecordKind::CardioLoad => "Polar Cardio Load",
        RecordKind::Alertness => "Polar Alertness",
        RecordKind::HeartRate => "Polar Daily Heart Rate",
    }
}

/// All four core kinds.
pub const KINDS: [RecordKind; 4] = [
    RecordKind::Exercise,
    RecordKind::Activity,
    RecordKind::Sleep,
    RecordKind::Recharge,
];

/// The kinds of the optional forms (design §5b).
pub const OPTIONAL_KINDS: [RecordKind; 3] = [
    RecordKind::CardioLoad,
    RecordKind::Alertness,
    RecordKind::HeartRate,
];

/// A mapping override that enables the three optional forms.
pub const ALL_OPTIONAL_FORMS: &str = r#"{"cardio_load": {"enabled": true}, "alertness": {"enabled": true}, "daily_heart_rate": {"enabled": true}}"#;

/// The data kind of a simulator record kind.
pub fn data_kind(kind: RecordKind) -> DataKind {
    match kind {
        RecordKind::Exercise => DataKind::Training,
        RecordKind::Activity => DataKind::Activity,
        RecordKind::Sleep => DataKind::Sleep,
        RecordKind::Recharge => DataKind::Recharge,
        RecordKind::CardioLoad => DataKind::CardioLoad,
        RecordKind::Alertness => DataKind::Alertness,
        RecordKind::HeartRate => DataKind::DailyHeartRate,
    }
}

/// The kinds the world's site gets events of: the core four and the optional forms it enables.
pub fn synced_kinds(world: &World<impl Store>) -> Vec<RecordKind> {
    KINDS
        .into_iter()
        .chain(
            OPTIONAL_KINDS
                .into_iter()
                .filter(|k| world.connector.mapping.is_enabled(data_kind(*k))),
        )
        .collect()
}

/// Generates `days` days of every kind, the optional forms' data included, uploaded now.
pub fn generate_all(world: &World<impl Store>, athlete: &Linked, days: u32) {
    world
        .polar
        .generate(
            athlete.polar,
            &GenerateRequest {
                days,
                upload: UploadMode::Now,
                optional_data: true,
                ..GenerateRequest::default()
            },
        )
        .unwrap();
}

/// An event as Smartabase should hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedEvent {
    /// Form name.
    pub form: &'static str,
    /// Local start, to the minute.
    pub start: NaiveDateTime,
    /// Local finish, to the minute.
    pub finish: NaiveDateTime,
    /// Field → value.
    pub fields: BTreeMap<String, String>,
}

/// A number "as Polar gives it": integers without a decimal point, fractions as written.
fn plain(value: &Value) -> Option<String> {
    if let Some(i) = value.as_i64() {
        return Some(i.to_string());
    }
    let f = value.as_f64()?;
    Some(if f.fract() == 0.0 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    })
}

/// Seconds of an ISO-8601 duration such as `PT1H2M30S`, `PT14295.773S` or `PT1H2M3.456S`.
pub fn iso_seconds(text: &str) -> f64 {
    let rest = text.strip_prefix('P').expect("ISO duration starts with P");
    let mut seconds = 0.0;
    let mut number = String::new();
    for c in rest.chars() {
        match c {
            'T' => {}
            '0'..='9' | '.' => number.push(c),
            unit => {
                let n: f64 = number.parse().expect("number before a unit");
                number.clear();
                seconds += n * match unit {
                    'D' => 86_400.0,
                    'H' => 3600.0,
                    'M' => 60.0,
                    'S' => 1.0,
                    other => panic!("unexpected duration unit {other} in {text}"),
                };
            }
        }
    }
    seconds
}

fn minutes(seconds: f64) -> String {
    format!("{:.1}", seconds / 60.0)
}

fn km(metres: f64) -> String {
    format!("{:.2}", metres / 1000.0)
}

/// `dd/mm/yyyy`.
pub fn smartabase_date(date: NaiveDate) -> String {
    date.format("%d/%m/%Y").to_string()
}

/// `h:mm AM`, with the midnight hour written `00:MM AM` (Smartabase reads `12:MM AM` as noon).
pub fn smartabase_time(hour: u32, minute: u32) -> String {
    match hour {
        0 => format!("00:{minute:02} AM"),
        1..=11 => format!("{hour}:{minute:02} AM"),
        12 => format!("12:{minute:02} PM"),
        _ => format!("{}:{minute:02} PM", hour - 12),
    }
}

fn to_minute(at: NaiveDateTime) -> NaiveDateTime {
    at.with_second(0).unwrap().with_nanosecond(0).unwrap()
}

fn whole_day(date: NaiveDate) -> (NaiveDateTime, NaiveDateTime) {
    (
        date.and_time(NaiveTime::MIN),
        date.and_hms_opt(23, 59, 0).unwrap(),
    )
}

/// A number at `pointer` if it is data: within `min..=max`, and above `min` when `min` is not data
/// (the README's "no data" table: Polar marks what it did not measure with numbers outside the scale).
fn measured<'a>(
    body: &'a Value,
    pointer: &str,
    min: f64,
    min_is_data: bool,
    max: f64,
) -> Option<&'a Value> {
    let value = body.pointer(pointer)?;
    let number = value.as_f64()?;
    let above = if min_is_data {
        number >= min
    } else {
        number > min
    };
    (above && number <= max).then_some(value)
}

/// The event a served Polar record must become, from the record's own JSON (design §5), leaving out
/// what Polar marks as not measured; `None` for a daily record with nothing measured (no event).
pub fn expected_event(record: &RecordView) -> Option<ExpectedEvent> {
    let body = &record.body;
    let mut fields = BTreeMap::new();
    let mut put = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            fields.insert(name.to_string(), v);
        }
    };
    // Positive amounts (zero is "not measured") and values on a closed scale.
    let positive = |pointer: &str, max: f64| measured(body, pointer, 0.0, false, max);
    let within = |pointer: &str, min: f64, max: f64| measured(body, pointer, min, true, max);
    let form = form_of(record.kind);
    let (start, finish) = match record.kind {
        RecordKind::CardioLoad => {
            let date = record_date(record);
            put("Cardio Load Date", Some(smartabase_date(date)));
            let status = body
                .get("cardio_load_status")
                .and_then(Value::as_str)
                .filter(|s| !["LOAD_STATUS_NOT_AVAILABLE", "UNRECOGNIZED"].contains(s));
            if let Some(status) = status {
                // Computed: a load of 0 is a rest day; the averages and ratio are data.
                put(
                    "Cardio Load",
                    within("/cardio_load", 0.0, 1e5).and_then(plain),
                );
                put("Strain", within("/strain", 0.0, 1e5).and_then(plain));
                put("Tolerance", within("/tolerance", 0.0, 1e5).and_then(plain));
                put(
                    "Cardio Load Ratio",
                    within("/cardio_load_ratio", 0.0, 100.0).and_then(plain),
                );
                put("Cardio Load Status", Some(status.to_string()));
            } else {
                // Not computed: only a training's own load, and zeros are Polar's filler.
                put("Cardio Load", positive("/cardio_load", 1e5).and_then(plain));
            }
            whole_day(date)
        }
        RecordKind::Alertness => {
            let date = record_date(record);
            let known = |key: &str| {
                body.get(key)
                    .and_then(Value::as_str)
                    .filter(|v| !v.trim().is_empty() && !v.ends_with("_UNKNOWN"))
                    .map(str::to_string)
            };
            let validity = body.get("validity").and_then(Value::as_str);
            let graded = !validity.is_some_and(|v| {
                ["VALIDITY_NOT_VALID", "VALIDITY_RESET", "VALIDITY_UNKNOWN"].contains(&v)
            });
            put("Alertness Date", Some(smartabase_date(date)));
            let grade = within("/grade", 0.0, 10.0)
                .and_then(plain)
                .filter(|_| graded);
            let classification = known("grade_classification").filter(|_| graded);
            let inertia = known("sleep_inertia");
            // A period with none of these is nothing measured.
            if grade.is_none() && classification.is_none() && inertia.is_none() {
                return None;
            }
            put("Alertness Grade", grade);
            put("Grade Classification", classification);
            put("Sleep Inertia", inertia);
            put("Sleep Type", known("sleep_type"));
            put("Validity", known("validity"));
            whole_day(date)
        }
        RecordKind::HeartRate => {
            let date = record_date(record);
            let rates: Vec<u64> = body["heart_rate_samples"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|sample| sample["heart_rate"].as_f64())
                .map(f64::round)
                .filter(|bpm| (20.0..=250.0).contains(bpm))
                .map(|bpm| bpm as u64)
                .collect();
            put("Heart Rate Date", Some(smartabase_date(date)));
            if !rates.is_empty() {
                let count = rates.len() as u64;
                let total: u64 = rates.iter().sum();
                // One decimal, halves up.
                let tenths = (total * 20 + count) / (2 * count);
                put("Lowest HR", rates.iter().min().map(u64::to_string));
                put(
                    "Average HR",
                    Some(format!("{}.{}", tenths / 10, tenths % 10)),
                );
                put("Highest HR", rates.iter().max().map(u64::to_string));
                put("Samples", Some(count.to_string()));
            }
            whole_day(date)
        }
        RecordKind::Exercise => {
            let start = NaiveDateTime::parse_from_str(
                body["start_time"].as_str().unwrap(),
                "%Y-%m-%dT%H:%M:%S",
            )
            .unwrap();
            let duration = body["duration"]
                .as_str()
                .filter(|d| !d.contains('-'))
                .map(iso_seconds)
                .filter(|s| *s > 0.0);
            let finish =
                start + Duration::milliseconds((duration.unwrap_or(0.0) * 1000.0).round() as i64);
            put("Polar Exercise ID", Some(record.key.clone()));
            let text = |key: &str| {
                body.get(key)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
            };
            let sport = text("detailed_sport_info").or_else(|| text("sport"));
            put("Sport", sport.map(str::to_string));
            put("Duration (min)", duration.map(minutes));
            put(
                "Distance (km)",
                positive("/distance", 1e7).and_then(Value::as_f64).map(km),
            );
            put("Calories", positive("/calories", 1e5).and_then(plain));
            put(
                "Average HR",
                within("/heart_rate/average", 20.0, 250.0).and_then(plain),
            );
            put(
                "Maximum HR",
                within("/heart_rate/maximum", 20.0, 250.0).and_then(plain),
            );
            put(
                "Training Load",
                positive("/training_load", 1e5).and_then(plain),
            );
            for (pointer, interpretation, field) in [
                (
                    "/training_load_pro/cardio-load",
                    "/training_load_pro/cardio-load-interpretation",
                    "Cardio Load",
                ),
                (
                    "/training_load_pro/muscle-load",
                    "/training_load_pro/muscle-load-interpretation",
                    "Muscle Load",
                ),
            ] {
                let available = body.pointer(interpretation) != Some(&Value::from("NOT_AVAILABLE"));
                put(
                    field,
                    positive(pointer, 1e5).filter(|_| available).and_then(plain),
                );
            }
            let zones: Vec<(i64, f64)> = body
                .get("heart_rate_zones")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|zone| {
                    let in_zone = zone["in-zone"].as_str().unwrap();
                    let seconds = if in_zone.contains('-') {
                        -1.0
                    } else {
                        iso_seconds(in_zone)
                    };
                    (zone["index"].as_i64().unwrap(), seconds)
                })
                .filter(|(_, seconds)| (0.0..=7.0 * 86_400.0).contains(seconds))
                .collect();
            // Zones that are all zero: no heart rate was recorded.
            if zones.iter().any(|(_, seconds)| *seconds > 0.0) {
                for (index, seconds) in zones {
                    put(&format!("Zone {index} (min)"), Some(minutes(seconds)));
                }
            }
            put("Device", text("device").map(str::to_string));
            (to_minute(start), to_minute(finish))
        }
        RecordKind::Activity => {
            let date = NaiveDate::parse_from_str(&record.key, "%Y-%m-%d").unwrap();
            put("Activity Date", Some(smartabase_date(date)));
            put("Steps", positive("/steps", 300_000.0).and_then(plain));
            put(
                "Active Calories",
                positive("/active_calories", 50_000.0).and_then(plain),
            );
            put(
                "Total Calories",
                positive("/calories", 50_000.0).and_then(plain),
            );
            put(
                "Active Time (min)",
                body.get("active_duration")
                    .and_then(Value::as_str)
                    .filter(|d| !d.contains('-'))
                    .map(iso_seconds)
                    .filter(|s| *s > 0.0 && *s <= 25.0 * 3600.0)
                    .map(minutes),
            );
            put(
                "Distance (km)",
                positive("/distance_from_steps", 1e6)
                    .and_then(Value::as_f64)
                    .map(km),
            );
            whole_day(date)
        }
        RecordKind::Sleep => {
            let date = NaiveDate::parse_from_str(&record.key, "%Y-%m-%d").unwrap();
            // `2025-09-01T23:14:05+02:00`: the local clock time is the text before the offset.
            let clock = |key: &str| {
                body.get(key).and_then(Value::as_str).map(|t| {
                    let local =
                        NaiveDateTime::parse_from_str(&t[..19], "%Y-%m-%dT%H:%M:%S").unwrap();
                    smartabase_time(local.hour(), local.minute())
                })
            };
            // Stage seconds within a day; all of them zero is a night nothing was measured in.
            let staged =
                |key: &str| within(&format!("/{key}"), 0.0, 86_400.0).and_then(Value::as_i64);
            let stages = [
                "light_sleep",
                "deep_sleep",
                "rem_sleep",
                "unrecognized_sleep_stage",
            ];
            let any_stage_time = stages.iter().any(|s| staged(s).is_some_and(|v| v > 0));
            let seconds = |key: &str| staged(key).filter(|_| any_stage_time);
            put("Sleep Date", Some(smartabase_date(date)));
            put("Sleep Start", clock("sleep_start_time"));
            put("Sleep End", clock("sleep_end_time"));
            let present: Vec<i64> = stages.iter().filter_map(|s| seconds(s)).collect();
            if !present.is_empty() {
                put(
                    "Total Sleep (min)",
                    Some(minutes(present.iter().sum::<i64>() as f64)),
                );
            }
            put(
                "Deep Sleep (min)",
                seconds("deep_sleep").map(|s| minutes(s as f64)),
            );
            put(
                "REM Sleep (min)",
                seconds("rem_sleep").map(|s| minutes(s as f64)),
            );
            put(
                "Light Sleep (min)",
                seconds("light_sleep").map(|s| minutes(s as f64)),
            );
            put(
                "Interruptions (min)",
                within("/total_interruption_duration", 0.0, 86_400.0)
                    .and_then(Value::as_i64)
                    .map(|s| minutes(s as f64)),
            );
            put(
                "Sleep Score",
                within("/sleep_score", 1.0, 100.0).and_then(plain),
            );
            put(
                "Sleep Charge",
                within("/sleep_charge", 1.0, 5.0).and_then(plain),
            );
            put(
                "Continuity",
                within("/continuity", 1.0, 5.0).and_then(plain),
            );
            whole_day(date)
        }
        RecordKind::Recharge => {
            let date = NaiveDate::parse_from_str(&record.key, "%Y-%m-%d").unwrap();
            put("Recharge Date", Some(smartabase_date(date)));
            put(
                "Nightly Recharge Status",
                within("/nightly_recharge_status", 1.0, 6.0).and_then(plain),
            );
            put(
                "ANS Charge",
                within("/ans_charge", -10.0, 10.0).and_then(plain),
            );
            put(
                "Average HR",
                within("/heart_rate_avg", 20.0, 250.0).and_then(plain),
            );
            put(
                "Average HRV (ms)",
                positive("/heart_rate_variability_avg", 1_000.0).and_then(plain),
            );
            put(
                "Breathing Rate",
                positive("/breathing_rate_avg", 60.0).and_then(plain),
            );
            whole_day(date)
        }
    };
    // A daily record is its date field plus what was measured: with nothing measured, no event.
    if record.kind != RecordKind::Exercise && fields.len() == 1 {
        return None;
    }
    Some(ExpectedEvent {
        form,
        start,
        finish,
        fields,
    })
}

/// A stored event as an [`ExpectedEvent`], for whole-value comparison.
pub fn as_expected(event: &SimEvent, form: &'static str) -> ExpectedEvent {
    ExpectedEvent {
        form,
        start: event.start,
        finish: event.finish,
        fields: event
            .pairs()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect(),
    }
}

/// The identity of a stored event: the exercise id, the start date of a daily event, or for an
/// alertness period its date and sleep type (a night and a nap may share a date).
pub fn identity(kind: RecordKind, event: &SimEvent) -> String {
    match kind {
        RecordKind::Exercise => event
            .value("Polar Exercise ID")
            .unwrap_or("<no exercise id>")
            .to_string(),
        RecordKind::Alertness => format!(
            "{} {}",
            event.start.date(),
            event.value("Sleep Type").unwrap_or("<no sleep type>")
        ),
        _ => event.start.date().to_string(),
    }
}

/// The identity ([`identity`]) the event of a served record must have.
pub fn record_identity(record: &RecordView, expected: &ExpectedEvent) -> String {
    match record.kind {
        RecordKind::Alertness => format!(
            "{} {}",
            expected.start.date(),
            expected
                .fields
                .get("Sleep Type")
                .map_or("<no sleep type>", String::as_str)
        ),
        _ => record.key.clone(),
    }
}

/// Asserts that Smartabase holds exactly one event per served record of every kind the site syncs
/// (the core four and the optional forms its mapping enables) that has something measured, each with exactly the expected dates, times and field values. Returns how many events were
/// checked.
pub fn assert_smartabase_matches_polar(world: &World<impl Store>, athlete: &Linked) -> usize {
    let mut checked = 0;
    for kind in synced_kinds(world) {
        let form = form_of(kind);
        let mut records: Vec<(RecordView, ExpectedEvent)> = Vec::new();
        // Served records with nothing measured: they make no event, but one written for an earlier
        // version is kept with its values (mapping module), so at most one event may hold their identity.
        let mut blank: Vec<String> = Vec::new();
        for record in served(world, athlete.polar, kind) {
            match expected_event(&record) {
                Some(expected) => records.push((record, expected)),
                None => blank.push(record.key),
            }
        }
        let events = world.smartabase.events_for(athlete.user, form);
        let mut by_identity: HashMap<String, &SimEvent> = HashMap::new();
        for e in &events {
            let previous = by_identity.insert(identity(kind, e), e);
            assert!(
                previous.is_none(),
                "{}: two {form} events for {}",
                athlete.uuid,
                identity(kind, e)
            );
        }
        let kept = blank
            .iter()
            .filter(|key| by_identity.contains_key(*key))
            .count();
        // Records Polar served whose date (upload time for trainings) has left its window since, as the
        // athlete's midnight passed during the test: an event may hold one, with exactly its values.
        let mut aged = 0;
        let in_window: HashSet<String> = records
            .iter()
            .map(|(r, _)| r.key.clone())
            .chain(blank.iter().cloned())
            .collect();
        let out_of_window = world.polar.records(athlete.polar, Some(kind)).unwrap();
        for record in out_of_window
            .iter()
            .filter(|r| r.served && !in_window.contains(&r.key))
        {
            let expected = expected_event(record);
            let id = match &expected {
                Some(e) => record_identity(record, e),
                None => record.key.clone(),
            };
            let Some(event) = by_identity.get(&id) else {
                continue;
            };
            if let Some(expected) = &expected {
                assert_eq!(
                    &as_expected(event, form),
                    expected,
                    "{}: {form} event for {} (out of Polar's window now)",
                    athlete.uuid,
                    record.key
                );
            }
            aged += 1;
        }
        assert_eq!(
            events.len(),
            records.len() + kept + aged,
            "{}: {form} holds {} events for {} served records ({kept} kept from before Polar blanked them, {aged} out of Polar's window now)",
            athlete.uuid,
            events.len(),
            records.len()
        );
        for (record, expected) in &records {
            let Some(event) = by_identity.get(&record_identity(record, expected)) else {
                panic!("{}: no {form} event for {}", athlete.uuid, record.key);
            };
            assert_eq!(
                &as_expected(event, form),
                expected,
                "{}: {form} event for {} (offset {})",
                athlete.uuid,
                record.key,
                athlete.offset
            );
            checked += 1;
        }
    }
    checked
}

/// Every value in the athlete's Smartabase events that is one of Polar's no-data marks or no
/// measurement at all (the README's table: out of scale, zero where zero is impossible), as
/// `form/field=value`. Empty when coaches see only data.
pub fn no_data_in_smartabase(world: &World<impl Store>, athlete: &Linked) -> Vec<String> {
    // (field, lowest value that is data, whether that lowest value itself is data, highest)
    const POSITIVE: (f64, bool, f64) = (0.0, false, f64::MAX);
    const TIME: (f64, bool, f64) = (0.0, true, f64::MAX);
    let scale = |form: &str, field: &str| -> Option<(f64, bool, f64)> {
        Some(match (form, field) {
            (_, "Average HR" | "Maximum HR") => (20.0, true, 250.0),
            ("Polar Training", f) if f.starts_with("Zone ") => TIME,
            (
                "Polar Training",
                "Duration (min)" | "Distance (km)" | "Calories" | "Training Load" | "Cardio Load"
                | "Muscle Load",
            ) => POSITIVE,
            (
                "Polar Activity",
                "Steps" | "Active Calories" | "Total Calories" | "Active Time (min)"
                | "Distance (km)",
            ) => POSITIVE,
            // A night's total is written only when some stage had time.
            ("Polar Sleep", "Total Sleep (min)") => POSITIVE,
            (
                "Polar Sleep",
                "Deep Sleep (min)"
                | "REM Sleep (min)"
                | "Light Sleep (min)"
                | "Interruptions (min)",
            ) => TIME,
            ("Polar Sleep", "Sleep Score") => (1.0, true, 100.0),
            ("Polar Sleep", "Sleep Charge" | "Continuity") => (1.0, true, 5.0),
            ("Polar Nightly Recharge", "Nightly Recharge Status") => (1.0, true, 6.0),
            ("Polar Nightly Recharge", "ANS Charge") => (-10.0, true, 10.0),
            ("Polar Nightly Recharge", "Average HRV (ms)" | "Breathing Rate") => POSITIVE,
            ("Polar Cardio Load", "Cardio Load" | "Strain" | "Tolerance") => TIME,
            ("Polar Cardio Load", "Cardio Load Ratio") => (0.0, true, 100.0),
            ("Polar Alertness", "Alertness Grade") => (0.0, true, 10.0),
            ("Polar Daily Heart Rate", "Lowest HR" | "Highest HR") => (20.0, true, 250.0),
            ("Polar Daily Heart Rate", "Samples") => POSITIVE,
            _ => return None,
        })
    };
    let mut found = Vec::new();
    for kind in KINDS.into_iter().chain(OPTIONAL_KINDS) {
        let form = form_of(kind);
        for event in world.smartabase.events_for(athlete.user, form) {
            for pair in event.pairs() {
                if pair.value.trim().is_empty() {
                    found.push(format!("{form}/{}=<empty>", pair.key));
                    continue;
                }
                let Some((min, min_is_data, max)) = scale(form, &pair.key) else {
                    continue;
                };
                let data = pair
                    .value
                    .trim()
                    .parse::<f64>()
                    .is_ok_and(|v| (if min_is_data { v >= min } else { v > min }) && v <= max);
                if !data {
                    found.push(format!("{form}/{}={}", pair.key, pair.value));
                }
            }
        }
    }
    found
}

/// The ledger key of a served record.
pub fn ledger_key(record: &RecordView) -> LedgerKey {
    let (kind, key) = match record.kind {
        RecordKind::Exercise => (
            DataKind::Training,
            RecordKey::Exercise(ExerciseId::parse(record.key.clone()).unwrap()),
        ),
        RecordKind::Alertness => (
            DataKind::Alertness,
            RecordKey::sleep_period(
                NaiveDateTime::parse_from_str(&record.key, "%Y-%m-%dT%H:%M:%S")
                    .unwrap()
                    .and_utc(),
            ),
        ),
        other => {
            let date = RecordKey::Date(NaiveDate::parse_from_str(&record.key, "%Y-%m-%d").unwrap());
            let kind = match other {
                RecordKind::Activity => DataKind::Activity,
                RecordKind::Sleep => DataKind::Sleep,
                RecordKind::CardioLoad => DataKind::CardioLoad,
                RecordKind::HeartRate => DataKind::DailyHeartRate,
                _ => DataKind::Recharge,
            };
            (kind, date)
        }
    };
    LedgerKey { kind, record: key }
}

/// The athlete's ledger entries for every served record.
pub async fn ledger<S: Store>(
    world: &World<S>,
    athlete: &Linked,
) -> HashMap<LedgerKey, LedgerEntry> {
    let keys: Vec<LedgerKey> = synced_kinds(world)
        .iter()
        .flat_map(|k| served(world, athlete.polar, *k))
        .map(|r| ledger_key(&r))
        .collect();
    world
        .connector
        .store
        .ledger_get(&athlete.athlete(), &keys)
        .await
        .unwrap()
}

/// Every ledger entry of the athlete is confirmed: nothing is left pending or looked up.
pub async fn assert_every_entry_confirmed<S: Store>(world: &World<S>, athlete: &Linked) {
    let entries = ledger(world, athlete).await;
    assert!(
        entries
            .values()
            .all(|e| e.state == shared::model::LedgerState::Confirmed),
        "{entries:?}"
    );
}

/// No job reached the dead-letter queue.
pub async fn assert_no_dead_letters(world: &World<impl Store>) {
    let dead = world.connector.queue.dead_letters().await.unwrap();
    assert!(dead.is_empty(), "{} job(s) dead-lettered", dead.len());
}

/// The athlete as stored.
pub async fn stored_athlete<S: Store>(world: &World<S>, athlete: &Linked) -> Athlete {
    world
        .connector
        .store
        .get_athlete(&athlete.athlete())
        .await
        .unwrap()
        .expect("athlete stored")
}

/// Paths of the Polar data calls made for one account since the log was last cleared.
/// From now on every Smartabase import lands, but its answer is lost on the wire.
pub fn lose_every_import_answer(world: &World<impl Store>) {
    world
        .smartabase
        .add_fault(smartabase_sim::FaultRule::probability(
            Some(smartabase_sim::Endpoint::EventsImport),
            smartabase_sim::FaultKind::DropConnection {
                after_processing: true,
            },
            1.0,
        ))
        .unwrap();
}

/// One Lambda invocation of the worker: receives one batch, hands it to the worker, which starts no work
/// after `deadline`, and settles it as Lambda would (the failed ids stay on the queue).
pub async fn invoke_worker_once(
    world: &World<impl Store>,
    deadline: std::time::Instant,
) -> WorkerInvocation {
    invoke_worker_on(world, 10, deadline).await
}

/// [`invoke_worker_once`] on a batch of at most `max` messages.
pub async fn invoke_worker_on(
    world: &World<impl Store>,
    max: usize,
    deadline: std::time::Instant,
) -> WorkerInvocation {
    let delivered = world.connector.queue.receive(max).await.unwrap();
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = delivered.iter().map(|r| r.message.clone()).collect();
    let bodies = delivered
        .iter()
        .filter_map(|r| r.message.body.clone())
        .collect();
    let response = sync_worker::handle(&world.connector, event, deadline).await;
    let failed: Vec<String> = response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect();
    world
        .connector
        .queue
        .settle(&delivered, &failed)
        .await
        .unwrap();
    WorkerInvocation {
        delivered: delivered.len(),
        failed,
        bodies,
    }
}

/// What one worker invocation took and reported.
pub struct WorkerInvocation {
    /// Messages handed to the worker.
    pub delivered: usize,
    /// The ids it reported as failed.
    pub failed: Vec<String>,
    /// The bodies of the messages handed to it.
    pub bodies: Vec<String>,
}

/// One athlete (UTC+1) with three days of data, linked at 14:00 their time and synced twice: the second
/// sync found nothing new, so every list is stored as confirmed whole. The time of day is fixed because
/// the rhythm decides the order of the next sync's lists: linked at 01:00, that sync reads the sleep list
/// before the recharge, and a test that stops the worker at the sleep read finds the recharge unwritten.
pub async fn synced_twice<S: Store>(world: &World<S>, name: &str) -> Linked {
    world.advance_to_local_hour(60, 14);
    let a = link_athletes(world, name, &[60]).await.remove(0);
    generate(world, &a, 3);
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    world.advance(Duration::minutes(61));
    world.fanout().await.unwrap();
    assert_eq!(world.run_worker().await.unwrap().failed, 0);
    a
}

/// [`invoke_worker_once`] with time to spare; returns how many messages were delivered and the ids the
/// worker reported as failed.
pub async fn one_delivery(world: &World<impl Store>) -> (usize, Vec<String>) {
    let run = invoke_worker_once(world, testkit::world::no_deadline()).await;
    (run.delivered, run.failed)
}

pub fn polar_paths(world: &World<impl Store>, polar: i64) -> Vec<String> {
    world
        .polar
        .requests()
        .into_iter()
        .filter(|r| r.polar_user_id == Some(polar) && r.path.starts_with("/v3/"))
        .map(|r| r.path)
        .collect()
}

/// Smartabase calls to one endpoint since the log was last cleared.
pub fn smartabase_calls(world: &World<impl Store>, endpoint: &str) -> usize {
    world
        .smartabase
        .requests()
        .iter()
        .filter(|r| r.endpoint.as_deref() == Some(endpoint))
        .count()
}

/// The oldest date among the user's events in `form`.
pub fn oldest_event_date(world: &World<impl Store>, user: i64, form: &str) -> Option<NaiveDate> {
    world
        .smartabase
        .events_for(user, form)
        .iter()
        .map(|e| e.start.date())
        .min()
}

/// Holds Smartabase's next event import for three seconds: a write still in flight while the test acts.
pub fn hold_next_import(world: &World<impl Store>) {
    world
        .smartabase
        .add_fault(smartabase_sim::FaultRule::next(
            Some(smartabase_sim::Endpoint::EventsImport),
            smartabase_sim::FaultKind::Delay { ms: 3_000 },
            1,
        ))
        .unwrap();
}

/// Waits until the import [`hold_next_import`] holds has started.
pub async fn until_the_held_import_started(world: &World<impl Store>) {
    while !world.smartabase.faults().is_empty() {
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

/// [`testkit::webhook_relay::WebhookRelay`] for tests: failures panic, answers pair with requests.
pub struct WebhookRelay {
    /// The URL to register at Polar.
    pub url: String,
    relay: testkit::webhook_relay::WebhookRelay,
}

impl WebhookRelay {
    /// Starts the server on a free loopback port.
    pub async fn start() -> Self {
        let relay = testkit::webhook_relay::WebhookRelay::start().await.unwrap();
        Self {
            url: relay.url.clone(),
            relay,
        }
    }

    /// Serves the next `count` requests Polar sends through the world's HTTP front (waiting up to ten
    /// seconds for each), and returns each request with the function's answer.
    pub async fn serve<S: Store>(
        &mut self,
        world: &World<S>,
        count: usize,
    ) -> Vec<(HttpRequest, HttpResponse)> {
        self.relay
            .serve(world, count, StdDuration::from_secs(10))
            .await
            .unwrap()
            .into_iter()
            .map(|served| (served.request, served.response))
            .collect()
    }

    /// Asserts that Polar sends nothing more within `wait`.
    pub async fn assert_quiet(&mut self, wait: StdDuration) {
        if let Some(request) = self.relay.next_within(wait).await {
            panic!(
                "unexpected webhook request: {}",
                String::from_utf8_lossy(&request.body)
            );
        }
    }
}
