//! Seeded generator of realistic Polar records (exercises, daily activity, sleep, Nightly Recharge).
//!
//! Every record draws from its own RNG derived from (seed, Polar user id, kind, date), so a given
//! day is identical whatever range it was generated in, and the same seed gives identical JSON.

use std::collections::BTreeMap;
use std::f64::consts::PI;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Timelike, Utc};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::wire;
use crate::model::RecordKind;
use crate::timefmt;

/// Who the data belongs to and the seed it is drawn from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GenContext {
    pub seed: u64,
    pub polar_user_id: i64,
    pub utc_offset_minutes: i32,
}

/// One generated record before it is stored.
#[derive(Debug, Clone)]
pub(crate) struct Generated {
    /// Exercise id or `YYYY-MM-DD`.
    pub key: String,
    pub body: Map<String, Value>,
    /// When the event was over (exercise end, wake-up, end of the day), UTC.
    pub complete_at: DateTime<Utc>,
    /// When a watch would typically have uploaded it, UTC.
    pub natural_upload: DateTime<Utc>,
}

/// Everything one calendar day (local) produces.
#[derive(Debug, Clone)]
pub(crate) struct DayRecords {
    pub exercises: Vec<Generated>,
    pub activity: Generated,
    pub sleep: Generated,
    pub recharge: Option<Generated>,
}

/// Stable per-athlete traits (device, heart rates, body).
#[derive(Debug, Clone)]
pub(crate) struct Traits {
    pub first_name: String,
    pub last_name: String,
    pub birthdate: NaiveDate,
    pub gender: &'static str,
    pub weight: f64,
    pub height: f64,
    device: &'static str,
    device_id: String,
    pub(super) max_hr: u32,
    pub(super) resting_hr: u32,
    hrv_base: u32,
    bmr: u32,
    stride_m: f64,
    home: (f64, f64),
}

const FIRST_NAMES: [&str; 12] = [
    "Aino", "Mikko", "Sofia", "Liam", "Maya", "Noah", "Emilia", "Kai", "Olivia", "Mateo", "Hana",
    "Tane",
];
const LAST_NAMES: [&str; 12] = [
    "Virtanen", "Smith", "Nguyen", "Garcia", "Kowalski", "Tanaka", "Singh", "Brown", "Rossi",
    "Ngata", "Silva", "Jensen",
];
const DEVICES: [&str; 5] = [
    "Polar Vantage V3",
    "Polar Grit X2 Pro",
    "Polar Pacer Pro",
    "Polar Ignite 3",
    "Polar Vantage M2",
];
const HOMES: [(f64, f64); 6] = [
    (60.1699, 24.9384),
    (-36.8485, 174.7633),
    (51.5072, -0.1276),
    (-33.8688, 151.2093),
    (19.0760, 72.8777),
    (40.7128, -74.0060),
];

/// RNG for one (kind, key) of one athlete.
pub(super) fn derive_rng(ctx: &GenContext, tag: &str, key: &str) -> StdRng {
    let mut hasher = Sha256::new();
    hasher.update(ctx.seed.to_le_bytes());
    hasher.update(ctx.polar_user_id.to_le_bytes());
    hasher.update(tag.as_bytes());
    hasher.update([0u8]);
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    let folded = digest
        .iter()
        .take(8)
        .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
    StdRng::seed_from_u64(folded)
}

pub(super) fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> Option<&'a T> {
    if items.is_empty() {
        None
    } else {
        items.get(rng.random_range(0..items.len()))
    }
}

pub(super) fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

fn round7(value: f64) -> f64 {
    (value * 1e7).round() / 1e7
}

pub(crate) fn to_map<T: Serialize>(value: &T) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

pub(super) fn polar_user_url(ctx: &GenContext) -> String {
    format!(
        "https://www.polaraccesslink.com/v3/users/{}",
        ctx.polar_user_id
    )
}

pub(super) fn local_to_utc(ctx: &GenContext, local: NaiveDateTime) -> DateTime<Utc> {
    Utc.from_utc_datetime(&(local - TimeDelta::minutes(i64::from(ctx.utc_offset_minutes))))
}

pub(super) fn midnight(date: NaiveDate) -> NaiveDateTime {
    date.and_time(NaiveTime::MIN)
}

/// Per-athlete traits, a pure function of seed and user id.
pub(crate) fn traits(ctx: &GenContext) -> Traits {
    let mut rng = derive_rng(ctx, "traits", "");
    let female = rng.random_bool(0.5);
    let device_id: String = (0..8)
        .map(|_| {
            let nibble: u32 = rng.random_range(0..16);
            char::from_digit(nibble, 16)
                .unwrap_or('0')
                .to_ascii_uppercase()
        })
        .collect();
    let birth_year = rng.random_range(1975..=2006);
    Traits {
        first_name: pick(&mut rng, &FIRST_NAMES)
            .copied()
            .unwrap_or("Alex")
            .to_owned(),
        last_name: pick(&mut rng, &LAST_NAMES)
            .copied()
            .unwrap_or("Doe")
            .to_owned(),
        birthdate: NaiveDate::from_ymd_opt(
            birth_year,
            rng.random_range(1..=12),
            rng.random_range(1..=28),
        )
        .unwrap_or_default(),
        gender: if female { "FEMALE" } else { "MALE" },
        weight: round1(if female {
            rng.random_range(52.0..78.0)
        } else {
            rng.random_range(64.0..95.0)
        }),
        height: round1(if female {
            rng.random_range(158.0..182.0)
        } else {
            rng.random_range(168.0..198.0)
        }),
        device: pick(&mut rng, &DEVICES)
            .copied()
            .unwrap_or("Polar Vantage V3"),
        device_id,
        max_hr: rng.random_range(178..=202),
        resting_hr: rng.random_range(42..=60),
        hrv_base: rng.random_range(35..=95),
        bmr: rng.random_range(1350..=1950),
        stride_m: rng.random_range(0.65..0.82),
        home: pick(&mut rng, &HOMES).copied().unwrap_or((60.17, 24.94)),
    }
}

/// All records of one local calendar day: trainings started that day, the activity summary of
/// that day, the night that ended that morning and (for most nights) its Nightly Recharge.
pub(crate) fn day(ctx: &GenContext, date: NaiveDate) -> DayRecords {
    let traits = traits(ctx);
    let mut rng = derive_rng(ctx, "plan", &date.to_string());
    let mut exercises = Vec::new();
    let roll: f64 = rng.random();
    if roll < 0.08 {
        // Two sessions: morning and evening.
        for (index, slot) in [Slot::Morning, Slot::Evening].into_iter().enumerate() {
            let (start, min_secs) = slot.start(&mut rng, date);
            exercises.push(exercise_with(
                ctx,
                &traits,
                start,
                min_secs,
                &format!("{date}#{index}"),
            ));
        }
    } else if roll < 0.85 {
        let slot = Slot::draw(&mut rng);
        let (start, min_secs) = slot.start(&mut rng, date);
        exercises.push(exercise_with(
            ctx,
            &traits,
            start,
            min_secs,
            &format!("{date}#0"),
        ));
    }
    let (sleep, sleep_start) = sleep_night(ctx, &traits, date);
    let recharge = if rng.random_bool(0.9) {
        Some(recharge_after(
            ctx,
            &traits,
            date,
            sleep_start,
            sleep.natural_upload,
        ))
    } else {
        None
    };
    DayRecords {
        exercises,
        activity: activity_day(ctx, &traits, date),
        sleep,
        recharge,
    }
}

/// With seeded chance `probability` (per record), lays over a generated record the marks Polar uses for
/// values it did not measure (reference §8.3: out-of-scale numbers, `null` series): a session without a
/// heart-rate sensor, power meter or distance; a day the watch was off; a night without sleep charge or
/// with nothing measured at all; a Nightly Recharge without HRV.
pub(crate) fn mark_no_data(
    ctx: &GenContext,
    kind: RecordKind,
    generated: &mut Generated,
    probability: f64,
) {
    let mut rng = derive_rng(
        ctx,
        "no-data",
        &format!("{}#{}", kind.as_str(), generated.key),
    );
    if !rng.random_bool(probability.clamp(0.0, 1.0)) {
        return;
    }
    let body = &mut generated.body;
    match (kind, rng.random_range(0..3)) {
        (RecordKind::Exercise, 0) => {
            body.insert(
                "heart_rate".into(),
                serde_json::json!({"average": 0, "maximum": 0}),
            );
            body.insert("training_load".into(), Value::from(0));
            if let Some(Value::Array(zones)) = body.get_mut("heart_rate_zones") {
                for zone in zones.iter_mut() {
                    zone["in-zone"] = Value::from("PT0S");
                }
            }
            if let Some(pro) = body
                .get_mut("training_load_pro")
                .and_then(Value::as_object_mut)
            {
                pro.insert("cardio-load".to_owned(), Value::from(0));
                pro.insert(
                    "cardio-load-interpretation".to_owned(),
                    Value::from("NOT_AVAILABLE"),
                );
            }
        }
        (RecordKind::Exercise, 1) => match body
            .get_mut("training_load_pro")
            .and_then(Value::as_object_mut)
        {
            Some(pro) => {
                pro.insert("muscle-load".to_owned(), Value::from(-1));
                pro.insert(
                    "muscle-load-interpretation".to_owned(),
                    Value::from("NOT_AVAILABLE"),
                );
            }
            None => {
                body.insert("calories".into(), Value::from(0));
            }
        },
        (RecordKind::Exercise, _) => {
            body.insert("distance".into(), Value::from(0.0));
        }
        (RecordKind::Activity, _) => {
            body.insert("steps".into(), Value::from(0));
            body.insert("active_calories".into(), Value::from(0));
            body.insert("active_duration".into(), Value::from("PT0S"));
            body.insert("distance_from_steps".into(), Value::from(0.0));
        }
        (RecordKind::Sleep, 0) => {
            // Nothing measured: markers only, no sleep period.
            for stage in [
                "light_sleep",
                "deep_sleep",
                "rem_sleep",
                "unrecognized_sleep_stage",
            ] {
                body.insert(stage.into(), Value::from(0));
            }
            for name in [
                "sleep_start_time",
                "sleep_end_time",
                "total_interruption_duration",
            ] {
                body.remove(name);
            }
            body.insert("sleep_score".into(), Value::from(0));
            body.insert("sleep_charge".into(), Value::from(-1));
            body.insert("continuity".into(), Value::from(0));
            body.insert("continuity_class".into(), Value::from(0));
            body.insert("hypnogram".into(), Value::Null);
            body.insert("heart_rate_samples".into(), Value::Null);
        }
        (RecordKind::Sleep, _) => {
            body.insert("sleep_charge".into(), Value::from(-1));
            body.insert("continuity".into(), Value::from(0));
            body.insert("continuity_class".into(), Value::from(0));
            body.insert("heart_rate_samples".into(), Value::Null);
        }
        (RecordKind::HeartRate, 0) => {
            // Off the wrist all day: every sample 0.
            if let Some(Value::Array(samples)) = body.get_mut("heart_rate_samples") {
                for sample in samples.iter_mut() {
                    sample["heart_rate"] = Value::from(0);
                }
            }
        }
        (RecordKind::HeartRate, _) => {
            // Charging for a stretch: those samples are 0.
            if let Some(Value::Array(samples)) = body.get_mut("heart_rate_samples") {
                let third = samples.len() / 3;
                for sample in samples.iter_mut().skip(third).take(third) {
                    sample["heart_rate"] = Value::from(0);
                }
            }
        }
        (RecordKind::CardioLoad, _) => {
            body.insert(
                "cardio_load_status".into(),
                Value::from(super::optional::LOAD_STATUS_NOT_AVAILABLE),
            );
            for name in ["strain", "tolerance", "cardio_load_ratio"] {
                body.insert(name.into(), Value::from(0.0));
            }
        }
        (RecordKind::Alertness, 0) => {
            body.insert("validity".into(), Value::from("VALIDITY_NOT_VALID"));
        }
        (RecordKind::Alertness, _) => {
            body.insert("validity".into(), Value::from("VALIDITY_UNKNOWN"));
            body.insert(
                "grade_classification".into(),
                Value::from("GRADE_CLASSIFICATION_UNKNOWN"),
            );
            body.insert("sleep_inertia".into(), Value::from("SLEEP_INERTIA_UNKNOWN"));
        }
        (RecordKind::Recharge, _) => {
            body.insert("heart_rate_variability_avg".into(), Value::from(0));
            body.insert("beat_to_beat_avg".into(), Value::from(0));
            body.insert("nightly_recharge_status".into(), Value::from(0));
            body.insert("ans_charge_status".into(), Value::from(0));
            body.insert("hrv_samples".into(), Value::Null);
            body.remove("ans_charge");
        }
    }
}

/// A single exercise starting at the given local time (for "add one record").
pub(crate) fn exercise_at(ctx: &GenContext, start_local: NaiveDateTime) -> Generated {
    let traits = traits(ctx);
    exercise_with(ctx, &traits, start_local, 0, &start_local.to_string())
}

/// The night that ended on `date` (wake-up day).
pub(crate) fn sleep_on(ctx: &GenContext, date: NaiveDate) -> Generated {
    sleep_night(ctx, &traits(ctx), date).0
}

/// Nightly Recharge for the night that ended on `date`.
pub(crate) fn recharge_on(ctx: &GenContext, date: NaiveDate) -> Generated {
    let traits = traits(ctx);
    let (sleep, sleep_start) = sleep_night(ctx, &traits, date);
    recharge_after(ctx, &traits, date, sleep_start, sleep.natural_upload)
}

/// Daily activity summary of `date`.
pub(crate) fn activity_on(ctx: &GenContext, date: NaiveDate) -> Generated {
    activity_day(ctx, &traits(ctx), date)
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Morning,
    Noon,
    Evening,
    /// Starts late and crosses local midnight.
    Late,
    /// Starts between 00:00 and 00:59 local.
    AfterMidnight,
}

impl Slot {
    fn draw(rng: &mut StdRng) -> Self {
        let roll: f64 = rng.random();
        match roll {
            r if r < 0.30 => Self::Morning,
            r if r < 0.48 => Self::Noon,
            r if r < 0.80 => Self::Evening,
            r if r < 0.90 => Self::Late,
            _ => Self::AfterMidnight,
        }
    }

    /// Local start and the minimum duration in seconds (to cross midnight for `Late`).
    fn start(self, rng: &mut StdRng, date: NaiveDate) -> (NaiveDateTime, i64) {
        let (from_minute, to_minute) = match self {
            Self::Morning => (5 * 60 + 45, 8 * 60 + 59),
            Self::Noon => (12 * 60, 12 * 60 + 59),
            Self::Evening => (17 * 60, 20 * 60 + 30),
            Self::Late => (22 * 60 + 45, 23 * 60 + 35),
            Self::AfterMidnight => (0, 59),
        };
        let minute: i64 = rng.random_range(from_minute..=to_minute);
        let second: i64 = rng.random_range(0..60);
        let start = midnight(date) + TimeDelta::seconds(minute * 60 + second);
        let min_secs = match self {
            Self::Late => (24 * 3600 - (minute * 60 + second)) + 600,
            _ => 0,
        };
        (start, min_secs)
    }
}

struct SportKind {
    sport: &'static str,
    /// (detailed_sport_info, outdoor)
    detailed: &'static [(&'static str, bool)],
    speed_mps: Option<(f64, f64)>,
    minutes: (i64, i64),
    running: bool,
    strength: bool,
    weight: u32,
}

const SPORTS: [SportKind; 6] = [
    SportKind {
        sport: "RUNNING",
        detailed: &[
            ("RUNNING", true),
            ("ROAD_RUNNING", true),
            ("TRAIL_RUNNING", true),
            ("TREADMILL_RUNNING", false),
        ],
        speed_mps: Some((2.6, 4.2)),
        minutes: (25, 110),
        running: true,
        strength: false,
        weight: 35,
    },
    SportKind {
        sport: "CYCLING",
        detailed: &[
            ("ROAD_BIKING", true),
            ("MOUNTAIN_BIKING", true),
            ("INDOOR_CYCLING", false),
        ],
        speed_mps: Some((6.0, 9.5)),
        minutes: (40, 180),
        running: false,
        strength: false,
        weight: 20,
    },
    SportKind {
        sport: "STRENGTH_TRAINING",
        detailed: &[("STRENGTH_TRAINING", false)],
        speed_mps: None,
        minutes: (30, 80),
        running: false,
        strength: true,
        weight: 18,
    },
    SportKind {
        sport: "SWIMMING",
        detailed: &[("POOL_SWIMMING", false)],
        speed_mps: Some((0.6, 1.0)),
        minutes: (30, 70),
        running: false,
        strength: false,
        weight: 8,
    },
    SportKind {
        sport: "SOCCER",
        detailed: &[("SOCCER", true)],
        speed_mps: Some((1.6, 2.4)),
        minutes: (60, 105),
        running: false,
        strength: false,
        weight: 9,
    },
    SportKind {
        sport: "OTHER",
        detailed: &[("OTHER_INDOOR", false)],
        speed_mps: None,
        minutes: (30, 75),
        running: false,
        strength: false,
        weight: 10,
    },
];

fn draw_sport(rng: &mut StdRng) -> &'static SportKind {
    let total: u32 = SPORTS.iter().map(|sport| sport.weight).sum();
    let mut roll = rng.random_range(0..total.max(1));
    for sport in &SPORTS {
        if roll < sport.weight {
            return sport;
        }
        roll -= sport.weight;
    }
    &SPORTS[0]
}

const INTERPRETATIONS: [&str; 5] = ["VERY_LOW", "LOW", "MEDIUM", "HIGH", "VERY_HIGH"];
const RPES: [&str; 9] = [
    "RPE_EASY",
    "RPE_LIGHT",
    "RPE_FAIRLY_BRISK",
    "RPE_BRISK",
    "RPE_MODERATE",
    "RPE_FAIRLY_HARD",
    "RPE_HARD",
    "RPE_EXHAUSTING",
    "RPE_EXTREME",
];

fn interpretation(value: f64, scale: f64) -> String {
    let index = ((value / scale).floor() as usize).min(INTERPRETATIONS.len() - 1);
    INTERPRETATIONS
        .get(index)
        .copied()
        .unwrap_or("UNKNOWN")
        .to_owned()
}

fn exercise_id(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..8)
        .map(|_| {
            let index = rng.random_range(0..ALPHABET.len());
            char::from(ALPHABET.get(index).copied().unwrap_or(b'X'))
        })
        .collect()
}

fn exercise_with(
    ctx: &GenContext,
    traits: &Traits,
    start_local: NaiveDateTime,
    min_secs: i64,
    rng_key: &str,
) -> Generated {
    let mut rng = derive_rng(ctx, "exercise", rng_key);
    let id = exercise_id(&mut rng);
    let kind = draw_sport(&mut rng);
    let (detailed, outdoor) = pick(&mut rng, kind.detailed)
        .copied()
        .unwrap_or((kind.sport, false));
    let minutes = rng.random_range(kind.minutes.0..=kind.minutes.1);
    let millis = (minutes * 60 + rng.random_range(0..60)) * 1000 + rng.random_range(0..1000);
    let millis = millis.max(min_secs * 1000);
    let secs = millis / 1000;
    let end_local = start_local + TimeDelta::milliseconds(millis);
    let end_utc = local_to_utc(ctx, end_local);
    let natural_upload = end_utc + TimeDelta::seconds(rng.random_range(120..=10_800));

    let average = if kind.strength {
        rng.random_range(95..=125)
    } else {
        rng.random_range(118..=158)
    }
    .min(traits.max_hr.saturating_sub(20));
    let maximum = (average + rng.random_range(14..=38)).min(traits.max_hr);
    let intensity = f64::from(average.saturating_sub(traits.resting_hr))
        / f64::from(traits.max_hr.saturating_sub(traits.resting_hr).max(1));
    let training_load = round1(secs as f64 / 60.0 * intensity * 1.9);
    let distance = kind
        .speed_mps
        .map(|(low, high)| round1(secs as f64 * rng.random_range(low..high)));
    let style = match rng.random_range(0..10) {
        0..=4 => timefmt::DurationStyle::Clock,
        5..=7 => timefmt::DurationStyle::Seconds,
        _ => timefmt::DurationStyle::ClockFraction,
    };
    let has_route = outdoor && distance.is_some() && rng.random_bool(0.9);
    let calories_value =
        (secs as f64 / 60.0 * f64::from(average.saturating_sub(55)) / 9.0).round() as u32;
    let calories = rng.random_bool(0.95).then_some(calories_value);
    let device_id = rng.random_bool(0.85).then(|| traits.device_id.clone());
    let (fat, carbs, protein) = if rng.random_bool(0.8) {
        let fat: u32 = rng.random_range(15..=55);
        let protein: u32 = rng.random_range(1..=6);
        (Some(fat), Some(100 - fat - protein), Some(protein))
    } else {
        (None, None, None)
    };
    let running_index =
        (kind.running && outdoor && rng.random_bool(0.8)).then(|| rng.random_range(38..=62));
    let club = rng.random_bool(0.05);
    let training_load_pro = rng.random_bool(0.7).then(|| {
        let muscle_load = if kind.strength {
            round1(rng.random_range(150.0..650.0))
        } else {
            round1(rng.random_range(0.0..160.0))
        };
        let perceived_load = round1(secs as f64 / 60.0 * rng.random_range(2.0..7.0));
        wire::TrainingLoadPro {
            date: start_local.date().to_string(),
            cardio_load: training_load,
            muscle_load,
            perceived_load,
            cardio_load_interpretation: interpretation(training_load, 50.0),
            muscle_load_interpretation: interpretation(muscle_load, 150.0),
            perceived_load_interpretation: interpretation(perceived_load, 100.0),
            user_rpe: pick(&mut rng, &RPES)
                .copied()
                .unwrap_or("RPE_MODERATE")
                .to_owned(),
        }
    });

    let exercise = wire::Exercise {
        id: id.clone(),
        upload_time: timefmt::utc_millis(natural_upload),
        polar_user: polar_user_url(ctx),
        device: traits.device.to_owned(),
        device_id,
        start_time: timefmt::naive_local(start_local),
        start_time_utc_offset: ctx.utc_offset_minutes,
        duration: timefmt::iso_duration(millis, style),
        calories,
        distance,
        heart_rate: wire::HeartRate { average, maximum },
        training_load,
        sport: kind.sport.to_owned(),
        has_route,
        club_id: club.then_some(999),
        club_name: club.then(|| "Polar Club".to_owned()),
        detailed_sport_info: detailed.to_owned(),
        fat_percentage: fat,
        carbohydrate_percentage: carbs,
        protein_percentage: protein,
        running_index,
        heart_rate_zones: heart_rate_zones(&mut rng, traits, average, secs),
        samples: exercise_samples(&mut rng, traits, average, maximum, secs, distance, outdoor),
        route: if has_route {
            route(&mut rng, traits, secs, distance.unwrap_or(0.0))
        } else {
            Vec::new()
        },
        training_load_pro,
    };
    Generated {
        key: id,
        body: to_map(&exercise),
        complete_at: end_utc,
        natural_upload,
    }
}

fn heart_rate_zones(
    rng: &mut StdRng,
    traits: &Traits,
    average: u32,
    secs: i64,
) -> Vec<wire::HeartRateZone> {
    let max = f64::from(traits.max_hr);
    let limits: Vec<u32> = (5..=10)
        .map(|tenth| (max * f64::from(tenth) / 10.0).round() as u32)
        .collect();
    let centre = (f64::from(average) / max - 0.5) / 0.1;
    let weights: Vec<f64> = (0..5)
        .map(|index| {
            let distance = f64::from(index) - centre;
            (-(distance * distance) / 1.2).exp() * rng.random_range(0.7..1.3)
        })
        .collect();
    let total_weight: f64 = weights.iter().sum::<f64>().max(f64::EPSILON);
    let mut seconds: Vec<i64> = weights
        .iter()
        .map(|weight| (secs as f64 * weight / total_weight).floor() as i64)
        .collect();
    let assigned: i64 = seconds.iter().sum();
    if let Some(largest) = seconds.iter_mut().max() {
        *largest += secs - assigned;
    }
    seconds
        .iter()
        .enumerate()
        .map(|(index, in_zone)| wire::HeartRateZone {
            index: index as u32 + 1,
            lower_limit: limits.get(index).copied().unwrap_or(0),
            upper_limit: limits.get(index + 1).copied().unwrap_or(traits.max_hr),
            in_zone: timefmt::iso_duration(in_zone * 1000, timefmt::DurationStyle::Clock),
        })
        .collect()
}

fn exercise_samples(
    rng: &mut StdRng,
    traits: &Traits,
    average: u32,
    maximum: u32,
    secs: i64,
    distance: Option<f64>,
    outdoor: bool,
) -> Vec<wire::ExerciseSamples> {
    // Keep bodies reasonable: at most ~720 values per series.
    let rate = ((secs + 719) / 720).max(5);
    let count = (secs / rate).max(1);
    let warmup = (count / 8).max(1);
    let heart_rates: Vec<String> = (0..count)
        .map(|index| {
            let base = if index < warmup {
                let fraction = index as f64 / warmup as f64;
                f64::from(traits.resting_hr + 30)
                    + (f64::from(average) - f64::from(traits.resting_hr + 30)) * fraction
            } else {
                f64::from(average)
            };
            let value = (base + rng.random_range(-6.0..6.0))
                .clamp(f64::from(traits.resting_hr), f64::from(maximum));
            format!("{}", value.round() as u32)
        })
        .collect();
    let mut series = vec![wire::ExerciseSamples {
        recording_rate: rate as u32,
        sample_type: "0".to_owned(),
        data: heart_rates.join(","),
    }];
    if let Some(metres) = distance {
        let kmh = metres / secs.max(1) as f64 * 3.6;
        let speeds: Vec<String> = (0..count)
            .map(|_| format!("{:.1}", (kmh + rng.random_range(-1.5..1.5)).max(0.0)))
            .collect();
        series.push(wire::ExerciseSamples {
            recording_rate: rate as u32,
            sample_type: "1".to_owned(),
            data: speeds.join(","),
        });
    }
    if outdoor {
        let base: f64 = rng.random_range(5.0..300.0);
        let altitudes: Vec<String> = (0..count)
            .map(|index| {
                let wave = (index as f64 / count as f64 * 2.0 * PI).sin() * 12.0;
                format!("{:.1}", base + wave)
            })
            .collect();
        series.push(wire::ExerciseSamples {
            recording_rate: rate as u32,
            sample_type: "3".to_owned(),
            data: altitudes.join(","),
        });
    }
    series
}

fn route(rng: &mut StdRng, traits: &Traits, secs: i64, distance: f64) -> Vec<wire::RoutePoint> {
    let points = (secs / 30).max(2);
    // A loop around home whose circumference is the distance covered.
    let radius_m = distance / (2.0 * PI);
    let radius_lat = radius_m / 111_320.0;
    let (home_lat, home_lon) = traits.home;
    let radius_lon = radius_lat / home_lat.to_radians().cos().abs().max(0.1);
    (0..points)
        .map(|index| {
            let angle = 2.0 * PI * index as f64 / points as f64;
            let millis = index * 30_000 + rng.random_range(0..1000);
            wire::RoutePoint {
                latitude: round7(home_lat + radius_lat * angle.sin()),
                longitude: round7(home_lon + radius_lon * (angle.cos() - 1.0)),
                time: timefmt::iso_duration(millis, timefmt::DurationStyle::Seconds),
                satellites: rng.random_range(5..=14),
                fix: 1,
            }
        })
        .collect()
}

/// Sleep stage codes used in the hypnogram.
const WAKE: u8 = 0;
const REM: u8 = 1;
const LIGHTER: u8 = 2;
const LIGHT: u8 = 3;
const DEEP: u8 = 4;
const UNKNOWN_STAGE: u8 = 5;

/// The night ending on `date`, and its local start.
pub(super) fn sleep_night(
    ctx: &GenContext,
    traits: &Traits,
    date: NaiveDate,
) -> (Generated, NaiveDateTime) {
    let mut rng = derive_rng(ctx, "sleep", &date.to_string());
    let start_offset_secs: i64 = if rng.random_bool(0.12) {
        rng.random_range(0..=40) * 60
    } else {
        -(rng.random_range(10..=70) * 60)
    };
    let start_local =
        midnight(date) + TimeDelta::seconds(start_offset_secs + rng.random_range(0..60));
    let end_local = midnight(date)
        + TimeDelta::seconds(
            (6 * 60 + 10 + rng.random_range(0..=95)) * 60 + rng.random_range(0..60),
        );
    let total = (end_local - start_local).num_seconds().max(60);

    // Stage segments in whole minutes, cycle by cycle, cut at the wake-up time.
    let mut plan: Vec<(u8, i64)> = Vec::new();
    let mut planned = 0;
    let mut cycle: i64 = 0;
    while planned < total {
        let deep_minutes = (35 - cycle * 8).max(4) + rng.random_range(-4..=4);
        let rem_minutes = 6 + cycle * 5 + rng.random_range(-3..=5);
        let mut cycle_plan = vec![
            (LIGHT, rng.random_range(8..=20)),
            (LIGHTER, rng.random_range(3..=10)),
            (DEEP, deep_minutes.max(2)),
            (LIGHT, rng.random_range(5..=15)),
            (REM, rem_minutes.max(3)),
        ];
        if rng.random_bool(0.35) {
            cycle_plan.push((WAKE, rng.random_range(1..=2)));
        }
        if rng.random_bool(0.08) {
            cycle_plan.push((WAKE, rng.random_range(3..=9)));
        }
        if rng.random_bool(0.05) {
            cycle_plan.push((UNKNOWN_STAGE, rng.random_range(1..=2)));
        }
        for (stage, minutes) in cycle_plan {
            if planned >= total {
                break;
            }
            let length = (minutes * 60).min(total - planned);
            plan.push((stage, length));
            planned += length;
        }
        cycle += 1;
    }

    let mut hypnogram = BTreeMap::new();
    let mut seconds_by_stage = [0i64; 6];
    let mut short_interruptions = 0;
    let mut long_interruptions = 0;
    let mut wake_count = 0;
    let mut rem_count = 0;
    let mut offset = 0;
    for (stage, length) in &plan {
        let at = start_local + TimeDelta::seconds(offset);
        hypnogram.insert(at.format("%H:%M").to_string(), *stage);
        if let Some(slot) = seconds_by_stage.get_mut(usize::from(*stage)) {
            *slot += length;
        }
        match *stage {
            WAKE if *length <= 120 => {
                short_interruptions += length;
                wake_count += 1;
            }
            WAKE => {
                long_interruptions += length;
                wake_count += 1;
            }
            REM => rem_count += 1,
            _ => {}
        }
        offset += length;
    }

    let mut heart_rate_samples = BTreeMap::new();
    // Samples sit on 5-minute clock marks after falling asleep.
    let first_sample = {
        let to_next =
            i64::from((5 - start_local.minute() % 5) * 60) - i64::from(start_local.second());
        start_local + TimeDelta::seconds(to_next)
    };
    let mut at = first_sample;
    while at < end_local {
        let progress = (at - start_local).num_seconds() as f64 / total as f64;
        let dip = (progress * PI).sin() * 6.0;
        let value = f64::from(traits.resting_hr) + 8.0 - dip + rng.random_range(-2.5..2.5);
        heart_rate_samples.insert(at.format("%H:%M").to_string(), value.round() as u32);
        at += TimeDelta::minutes(5);
    }

    let light = seconds_by_stage[usize::from(LIGHT)] + seconds_by_stage[usize::from(LIGHTER)];
    let deep = seconds_by_stage[usize::from(DEEP)];
    let rem = seconds_by_stage[usize::from(REM)];
    let unrecognized = seconds_by_stage[usize::from(UNKNOWN_STAGE)];
    let asleep_hours = (light + deep + rem + unrecognized) as f64 / 3600.0;
    let continuity =
        round1((5.0 - 0.35 * f64::from(wake_count) - rng.random_range(0.0..0.6)).clamp(1.0, 5.0));
    let sleep_score = (50.0 + (asleep_hours - 5.0) * 12.0 - f64::from(wake_count) * 2.0
        + rng.random_range(-6.0..6.0))
    .clamp(1.0, 100.0)
    .round() as u32;
    let restorative = (deep + rem) as f64 / (light + deep + rem).max(1) as f64;
    let end_utc = local_to_utc(ctx, end_local);
    let offset_minutes = ctx.utc_offset_minutes;
    let sleep = wire::Sleep {
        polar_user: polar_user_url(ctx),
        date: date.to_string(),
        sleep_start_time: timefmt::with_offset(start_local, offset_minutes),
        sleep_end_time: timefmt::with_offset(end_local, offset_minutes),
        device_id: traits.device_id.clone(),
        continuity,
        continuity_class: (continuity.round() as u32).clamp(1, 5),
        light_sleep: light,
        deep_sleep: deep,
        rem_sleep: rem,
        unrecognized_sleep_stage: unrecognized,
        sleep_score,
        total_interruption_duration: short_interruptions + long_interruptions,
        sleep_charge: (sleep_score / 20 + 1).clamp(1, 5),
        sleep_goal: 28_800,
        sleep_rating: if rng.random_bool(0.3) {
            0
        } else {
            rng.random_range(1..=5)
        },
        short_interruption_duration: short_interruptions,
        long_interruption_duration: long_interruptions,
        sleep_cycles: rem_count,
        group_duration_score: round1((asleep_hours / 8.0 * 100.0).clamp(1.0, 100.0)),
        group_solidity_score: round1((continuity / 5.0 * 100.0).clamp(1.0, 100.0)),
        group_regeneration_score: round1((restorative * 200.0).clamp(1.0, 100.0)),
        hypnogram,
        heart_rate_samples,
    };
    let generated = Generated {
        key: date.to_string(),
        body: to_map(&sleep),
        complete_at: end_utc,
        natural_upload: end_utc + TimeDelta::seconds(rng.random_range(300..=5400)),
    };
    (generated, start_local)
}

fn recharge_after(
    ctx: &GenContext,
    traits: &Traits,
    date: NaiveDate,
    sleep_start: NaiveDateTime,
    sleep_upload: DateTime<Utc>,
) -> Generated {
    let mut rng = derive_rng(ctx, "recharge", &date.to_string());
    let heart_rate_avg = (i64::from(traits.resting_hr) + rng.random_range(-3..=6)).max(35) as u32;
    let hrv_avg = (i64::from(traits.hrv_base) + rng.random_range(-15..=15)).clamp(15, 150) as u32;
    let breathing_avg = round1(rng.random_range(12.0..16.5));
    // Sum of two uniforms: centred on 0, fractional, within −10..10.
    let ans_charge = round1((rng.random_range(0.0..1.0) + rng.random_range(0.0..1.0) - 1.0) * 10.0);
    let ans_charge_status = match ans_charge {
        value if value < -6.0 => 1,
        value if value < -2.0 => 2,
        value if value <= 2.0 => 3,
        value if value <= 6.0 => 4,
        _ => 5,
    };
    let status = (((ans_charge + 10.0) / 20.0 * 5.0).round() as i64 + 1 + rng.random_range(-1..=1))
        .clamp(1, 6) as u32;
    let mut hrv_samples = BTreeMap::new();
    let mut breathing_samples = BTreeMap::new();
    let first = sleep_start + TimeDelta::minutes(30);
    for index in 0..48 {
        let at = first + TimeDelta::minutes(5 * index);
        let key = at.format("%H:%M").to_string();
        let hrv = (i64::from(hrv_avg) + rng.random_range(-12..=12)).max(5) as u32;
        hrv_samples.insert(key.clone(), hrv);
        breathing_samples.insert(key, round1(breathing_avg + rng.random_range(-0.8..0.8)));
    }
    let recharge = wire::Recharge {
        polar_user: polar_user_url(ctx),
        date: date.to_string(),
        heart_rate_avg,
        beat_to_beat_avg: 60_000 / heart_rate_avg.max(1),
        heart_rate_variability_avg: hrv_avg,
        breathing_rate_avg: breathing_avg,
        nightly_recharge_status: status,
        ans_charge,
        ans_charge_status,
        hrv_samples,
        breathing_samples,
    };
    let complete_at = local_to_utc(ctx, first + TimeDelta::hours(4));
    Generated {
        key: date.to_string(),
        body: to_map(&recharge),
        complete_at,
        natural_upload: sleep_upload + TimeDelta::seconds(rng.random_range(0..=1800)),
    }
}

/// Relative walking likelihood per local hour.
const HOURLY_STEPS_WEIGHT: [u32; 24] = [
    0, 0, 0, 0, 0, 0, 2, 8, 6, 4, 4, 5, 7, 5, 4, 4, 5, 8, 7, 5, 4, 3, 1, 0,
];

fn activity_day(ctx: &GenContext, traits: &Traits, date: NaiveDate) -> Generated {
    let mut rng = derive_rng(ctx, "activity", &date.to_string());
    let wake_minute: usize = rng.random_range(370..=450);
    let bed_minute: usize = rng.random_range(1350..=1400);
    let mut steps_per_minute = [0u32; 1440];
    let weight_total: u32 = HOURLY_STEPS_WEIGHT.iter().sum();
    let bouts = rng.random_range(12..=40);
    for _ in 0..bouts {
        let mut roll = rng.random_range(0..weight_total.max(1));
        let mut hour = 12;
        for (candidate, weight) in HOURLY_STEPS_WEIGHT.iter().enumerate() {
            if roll < *weight {
                hour = candidate;
                break;
            }
            roll -= weight;
        }
        let start = hour * 60 + rng.random_range(0..60);
        let length = rng.random_range(1..=10);
        let cadence: u32 = rng.random_range(45..=120);
        for minute in start..(start + length).min(1440) {
            if minute < wake_minute || minute >= bed_minute {
                continue;
            }
            let value = (i64::from(cadence) + rng.random_range(-8..=8)).max(1) as u32;
            if let Some(slot) = steps_per_minute.get_mut(minute) {
                *slot = (*slot).max(value);
            }
        }
    }

    let day_start = midnight(date);
    let minute_stamp = |minute: usize| {
        (day_start + TimeDelta::minutes(minute as i64))
            .format("%Y-%m-%dT%H:%M")
            .to_string()
    };
    let mut step_samples = Vec::new();
    let mut zone_samples = Vec::new();
    let mut previous_steps = None;
    let mut previous_zone = None;
    for (minute, steps) in steps_per_minute.iter().enumerate() {
        // Polar drops consecutive identical samples.
        if previous_steps != Some(*steps) {
            step_samples.push(wire::StepSample {
                steps: *steps,
                timestamp: minute_stamp(minute),
            });
            previous_steps = Some(*steps);
        }
        let zone = match *steps {
            _ if minute < wake_minute || minute >= bed_minute => "SLEEP",
            0 => "SEDENTARY",
            1..=79 => "LIGHT",
            80..=109 => "MODERATE",
            _ => "VIGOROUS",
        };
        if previous_zone != Some(zone) {
            zone_samples.push(wire::ZoneSample {
                zone: zone.to_owned(),
                timestamp: minute_stamp(minute),
            });
            previous_zone = Some(zone);
        }
    }
    let total_steps: u32 = steps_per_minute.iter().sum();
    let active_minutes = steps_per_minute.iter().filter(|steps| **steps > 0).count() as i64;
    let awake_minutes = (bed_minute - wake_minute) as i64;
    let alerts = rng.random_range(0..=3);
    let inactivity_stamps = (0..alerts)
        .map(|index| wire::InactivityStamp {
            stamp: (day_start
                + TimeDelta::minutes(9 * 60 + 150 * i64::from(index) + rng.random_range(0..60)))
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string(),
        })
        .collect();
    let active_calories =
        (f64::from(total_steps) * 0.045 + rng.random_range(80.0..450.0)).round() as u32;
    let activity = wire::Activity {
        start_time: timefmt::naive_local(day_start),
        end_time: timefmt::naive_local(day_start + TimeDelta::seconds(86_399)),
        active_duration: timefmt::iso_duration(
            active_minutes * 60_000,
            timefmt::DurationStyle::Clock,
        ),
        inactive_duration: timefmt::iso_duration(
            (awake_minutes - active_minutes).max(0) * 60_000,
            timefmt::DurationStyle::Clock,
        ),
        daily_activity: round1(f64::from(total_steps) / 100.0 * rng.random_range(0.9..1.1)),
        calories: traits.bmr + active_calories,
        active_calories,
        steps: total_steps,
        inactivity_alert_count: alerts,
        distance_from_steps: round1(f64::from(total_steps) * traits.stride_m),
        samples: wire::ActivitySamples {
            date: date.to_string(),
            steps: wire::StepSamples {
                interval_ms: 60_000,
                total_steps,
                samples: step_samples,
            },
            activity_zones: wire::ZoneSamples {
                samples: zone_samples,
            },
            inactivity_stamps,
        },
    };
    let complete_at = local_to_utc(ctx, day_start + TimeDelta::days(1));
    Generated {
        key: date.to_string(),
        body: to_map(&activity),
        complete_at,
        natural_upload: complete_at + TimeDelta::seconds(rng.random_range(600..=36_000)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(offset: i32) -> GenContext {
        GenContext {
            seed: 7,
            polar_user_id: 48_211_902,
            utc_offset_minutes: offset,
        }
    }

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap_or_default()
    }

    #[test]
    fn sleep_stages_and_interruptions_sum_to_time_in_bed() {
        for day in 1..=28 {
            let date = date(&format!("2025-09-{day:02}"));
            let sleep = sleep_on(&ctx(345), date).body;
            let field = |name: &str| sleep.get(name).and_then(Value::as_i64).unwrap_or(-1);
            let start = DateTime::parse_from_rfc3339(
                sleep
                    .get("sleep_start_time")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            )
            .unwrap_or_default();
            let end = DateTime::parse_from_rfc3339(
                sleep
                    .get("sleep_end_time")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            )
            .unwrap_or_default();
            let in_bed = (end - start).num_seconds();
            let parts = field("light_sleep")
                + field("deep_sleep")
                + field("rem_sleep")
                + field("unrecognized_sleep_stage")
                + field("total_interruption_duration");
            assert_eq!(parts, in_bed, "night ending {date}");
            assert_eq!(
                field("short_interruption_duration") + field("long_interruption_duration"),
                field("total_interruption_duration")
            );
            assert!(in_bed > 5 * 3600 && in_bed < 10 * 3600, "{in_bed}");
        }
    }

    #[test]
    fn late_slot_crosses_midnight() {
        let mut rng = StdRng::seed_from_u64(1);
        let day = date("2025-09-01");
        let (start, min_secs) = Slot::Late.start(&mut rng, day);
        let end = start + TimeDelta::seconds(min_secs);
        assert_eq!(start.date(), day);
        assert!(end.date() > day);
    }

    #[test]
    fn activity_step_samples_drop_repeats_and_sum_to_total() {
        let body = activity_on(&ctx(0), date("2025-09-01")).body;
        let steps = &body["samples"]["steps"];
        let samples = steps["samples"].as_array().cloned().unwrap_or_default();
        let values: Vec<u64> = samples.iter().filter_map(|s| s["steps"].as_u64()).collect();
        assert!(values.windows(2).all(|pair| pair[0] != pair[1]));
        assert_eq!(steps["total_steps"], body["steps"]);
        assert!(body["steps"].as_u64().unwrap_or(0) > 1000);
    }
}
