//! Seeded generator of the data behind the connector's optional forms: 24/7 heart rate, SleepWise
//! alertness (nights and naps) and cardio load.
//!
//! Heart rate and alertness draw from their own RNGs like every other record; cardio load is computed
//! from the days' exercise loads the account has (strain: 7-day average, tolerance: 28-day average),
//! and Polar lists it for every day, `LOAD_STATUS_NOT_AVAILABLE` until a week of history exists.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use rand::RngExt;
use serde_json::Value;

use super::generator::{
    GenContext, Generated, derive_rng, local_to_utc, midnight, pick, polar_user_url, round1,
    sleep_night, to_map, traits,
};
use super::wire;

/// Spacing of 24/7 heart-rate samples.
const SAMPLE_SECONDS: i64 = 300;
/// Known days within the 28-day window before Polar computes a cardio-load status.
const DAYS_FOR_A_STATUS: usize = 7;
/// Status of a day Polar could not compute.
pub(crate) const LOAD_STATUS_NOT_AVAILABLE: &str = "LOAD_STATUS_NOT_AVAILABLE";

/// `2022-11-20T20:52:20.57`: SleepWise's UTC times (no zone), hundredths when there are any.
fn sleepwise_time(at: DateTime<Utc>, hundredths: u32) -> String {
    let text = at.format("%Y-%m-%dT%H:%M:%S").to_string();
    if hundredths == 0 {
        text
    } else {
        format!("{text}.{hundredths:02}")
    }
}

/// The key of an alertness record: its sleep period's start in UTC, whole seconds.
pub(crate) fn alertness_key(start: DateTime<Utc>) -> String {
    start.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// The 24/7 heart rate of local `date`: a sample every 5 minutes (now and then a denser minute-by-
/// minute stretch), low while asleep, higher and livelier awake. With `until` (today, local), only the
/// samples measured before it; `None` when there is none yet.
pub(crate) fn heart_rate_day(
    ctx: &GenContext,
    date: NaiveDate,
    until: Option<NaiveDateTime>,
) -> Option<Generated> {
    let traits = traits(ctx);
    let mut rng = derive_rng(ctx, "heart-rate", &date.to_string());
    let (night, _) = sleep_night(ctx, &traits, date);
    let wake = night.complete_at + TimeDelta::minutes(i64::from(ctx.utc_offset_minutes));
    let wake = wake.naive_utc();
    let (_, bed) = sleep_night(ctx, &traits, date + TimeDelta::days(1));
    let day_start = midnight(date);
    let day_end = day_start + TimeDelta::days(1);
    let end = until.map_or(day_end, |until| until.min(day_end));
    let phase = rng.random_range(0..SAMPLE_SECONDS);
    // A stretch of minute-by-minute samples on some days (Polar: "sometimes denser").
    let dense = rng
        .random_bool(0.3)
        .then(|| day_start + TimeDelta::minutes(rng.random_range(9 * 60..18 * 60)));
    let resting = f64::from(traits.resting_hr);
    let mut samples = Vec::new();
    let mut at = day_start + TimeDelta::seconds(phase);
    while at < end {
        let asleep = at < wake || at >= bed;
        let value = if asleep {
            resting + 3.0 + rng.random_range(-3.0..3.0)
        } else if rng.random_bool(0.06) {
            // A brisk walk or the stairs.
            rng.random_range(95.0..135.0)
        } else {
            resting + rng.random_range(14.0..32.0)
        };
        samples.push(wire::HeartRateSample {
            heart_rate: value.clamp(35.0, f64::from(traits.max_hr)).round() as u32,
            sample_time: at.format("%H:%M:%S").to_string(),
        });
        let step = match dense {
            Some(from) if at >= from && at < from + TimeDelta::minutes(15) => 60,
            _ => SAMPLE_SECONDS,
        };
        at += TimeDelta::seconds(step);
    }
    if samples.is_empty() {
        return None;
    }
    let day = wire::HeartRateDay {
        polar_user: polar_user_url(ctx),
        date: date.to_string(),
        heart_rate_samples: samples,
    };
    let complete_at = local_to_utc(ctx, end);
    let natural_upload = if until.is_some_and(|until| until < day_end) {
        complete_at
    } else {
        complete_at + TimeDelta::seconds(rng.random_range(600..=36_000))
    };
    Some(Generated {
        key: date.to_string(),
        body: to_map(&day),
        complete_at,
        natural_upload,
    })
}

/// Whether the athlete naps on `date` (seeded, about one day in five).
pub(crate) fn naps_on(ctx: &GenContext, date: NaiveDate) -> bool {
    derive_rng(ctx, "nap", &date.to_string()).random_bool(0.2)
}

/// SleepWise alertness of the night that ended on `date` or, with `nap`, of that afternoon's nap.
pub(crate) fn alertness_on(ctx: &GenContext, date: NaiveDate, nap: bool) -> Generated {
    let traits = traits(ctx);
    let (night, night_start) = sleep_night(ctx, &traits, date);
    let mut rng = derive_rng(
        ctx,
        if nap { "alertness-nap" } else { "alertness" },
        &date.to_string(),
    );
    let (start, end) = if nap {
        let start = midnight(date) + TimeDelta::minutes(rng.random_range(13 * 60..16 * 60 + 30));
        let length = TimeDelta::minutes(rng.random_range(15..=45));
        (local_to_utc(ctx, start), local_to_utc(ctx, start + length))
    } else {
        (local_to_utc(ctx, night_start), night.complete_at)
    };
    let score = night.body.get("sleep_score").and_then(Value::as_f64);
    let base = score.unwrap_or(60.0) / 10.0;
    let grade =
        round1((base + rng.random_range(-1.2..1.2) - if nap { 1.0 } else { 0.0 }).clamp(0.0, 10.0));
    let classification = match grade {
        g if g < 4.0 => "GRADE_CLASSIFICATION_WEAK",
        g if g < 6.0 => "GRADE_CLASSIFICATION_FAIR",
        g if g < 8.0 => "GRADE_CLASSIFICATION_STRONG",
        _ => "GRADE_CLASSIFICATION_EXCELLENT",
    };
    let inertia = pick(
        &mut rng,
        &[
            "SLEEP_INERTIA_NO_INERTIA",
            "SLEEP_INERTIA_MILD",
            "SLEEP_INERTIA_MILD",
            "SLEEP_INERTIA_MODERATE",
            "SLEEP_INERTIA_HEAVY",
        ],
    )
    .copied()
    .unwrap_or("SLEEP_INERTIA_MILD");
    let validity = if rng.random_bool(0.2) {
        "VALIDITY_ESTIMATE"
    } else {
        "VALIDITY_VALID"
    };
    // The alertness period runs from waking to the next sleep, hour by hour.
    let period_end = end + TimeDelta::hours(if nap { 8 } else { 16 });
    let levels = [
        "ALERTNESS_LEVEL_MINIMAL",
        "ALERTNESS_LEVEL_VERY_LOW",
        "ALERTNESS_LEVEL_LOW",
        "ALERTNESS_LEVEL_HIGH",
        "ALERTNESS_LEVEL_VERY_HIGH",
    ];
    let hours = (period_end - end).num_hours();
    let hourly_data = (0..hours)
        .map(|hour| wire::AlertnessHour {
            validity: validity.to_owned(),
            alertness_level: pick(&mut rng, &levels)
                .copied()
                .unwrap_or("ALERTNESS_LEVEL_HIGH")
                .to_owned(),
            start_time: sleepwise_time(end + TimeDelta::hours(hour), 0),
            end_time: sleepwise_time(end + TimeDelta::hours(hour + 1), 0),
        })
        .collect();
    let alertness = wire::Alertness {
        grade,
        grade_validity_seconds: (period_end - end).num_seconds(),
        grade_type: if nap {
            "GRADE_TYPE_ADDITIONAL"
        } else {
            "GRADE_TYPE_PRIMARY"
        }
        .to_owned(),
        grade_classification: classification.to_owned(),
        validity: validity.to_owned(),
        sleep_inertia: inertia.to_owned(),
        sleep_type: if nap {
            "SLEEP_TYPE_SECONDARY"
        } else {
            "SLEEP_TYPE_PRIMARY"
        }
        .to_owned(),
        result_type: "ALERTNESS_TYPE_HISTORY".to_owned(),
        period_start_time: sleepwise_time(end, 0),
        period_end_time: sleepwise_time(period_end, 0),
        sleep_period_start_time: sleepwise_time(start, rng.random_range(0..100)),
        sleep_period_end_time: sleepwise_time(end, rng.random_range(0..100)),
        sleep_timezone_offset_minutes: ctx.utc_offset_minutes,
        hourly_data,
    };
    Generated {
        key: alertness_key(start),
        body: to_map(&alertness),
        complete_at: end,
        natural_upload: end + TimeDelta::seconds(rng.random_range(300..=5400)),
    }
}

/// The cardio load of `date` from the daily loads the account has (`loads`: date → the day's summed
/// exercise loads; a date missing there has no data). Polar's status needs a week of known days in the
/// 28-day window; before that the day is `LOAD_STATUS_NOT_AVAILABLE` with only its own load.
pub(crate) fn cardio_load_day(
    date: NaiveDate,
    loads: &BTreeMap<NaiveDate, f64>,
    complete_at: DateTime<Utc>,
    natural_upload: DateTime<Utc>,
) -> Generated {
    let window = |days: i64| -> Vec<f64> {
        loads
            .range(date - TimeDelta::days(days - 1)..=date)
            .map(|(_, load)| *load)
            .collect()
    };
    let average = |values: &[f64]| values.iter().sum::<f64>() / values.len().max(1) as f64;
    let own = round1(loads.get(&date).copied().unwrap_or(0.0));
    let (last_week, last_month) = (window(7), window(28));
    let body = if last_month.len() < DAYS_FOR_A_STATUS {
        not_available(date, own)
    } else {
        let strain = round1(average(&last_week));
        let tolerance = round1(average(&last_month));
        let ratio = if tolerance > 0.0 {
            (strain / tolerance * 100.0).round() / 100.0
        } else {
            0.0
        };
        let status = match ratio {
            r if r < 0.8 => "DETRAINING",
            r if r < 1.0 => "MAINTAINING",
            r if r < 1.3 => "PRODUCTIVE",
            r if r < 1.5 => "PRODUCTIVE_ALMOST_OVERREACHING",
            _ => "OVERREACHING",
        };
        let session = tolerance.max(1.0) * 2.0;
        wire::CardioLoad {
            date: date.to_string(),
            cardio_load_status: status.to_owned(),
            cardio_load: own,
            strain,
            tolerance,
            cardio_load_ratio: ratio,
            cardio_load_level: wire::CardioLoadLevels {
                very_low: round1(session * 0.3),
                low: round1(session * 0.6),
                medium: round1(session),
                high: round1(session * 1.5),
                very_high: round1(session * 2.2),
            },
        }
    };
    Generated {
        key: date.to_string(),
        body: to_map(&body),
        complete_at,
        natural_upload,
    }
}

/// Polar's entry for a day it could not compute: everything 0 but the day's own load.
pub(crate) fn not_available(date: NaiveDate, own_load: f64) -> wire::CardioLoad {
    wire::CardioLoad {
        date: date.to_string(),
        cardio_load_status: LOAD_STATUS_NOT_AVAILABLE.to_owned(),
        cardio_load: own_load,
        strain: 0.0,
        tolerance: 0.0,
        cardio_load_ratio: 0.0,
        cardio_load_level: wire::CardioLoadLevels {
            very_low: 0.0,
            low: 0.0,
            medium: 0.0,
            high: 0.0,
            very_high: 0.0,
        },
    }
}

/// An exercise's cardio load as the day's total counts it (`training_load_pro`'s, else
/// `training_load`).
pub(crate) fn exercise_load(body: &serde_json::Map<String, Value>) -> f64 {
    body.get("training_load_pro")
        .and_then(|pro| pro.get("cardio-load"))
        .or_else(|| body.get("training_load"))
        .and_then(Value::as_f64)
        .filter(|load| *load > 0.0)
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use chrono::Timelike;

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

    fn rates(day: &Generated) -> Vec<(String, u64)> {
        day.body["heart_rate_samples"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|s| {
                (
                    s["sample_time"].as_str().unwrap_or("").to_owned(),
                    s["heart_rate"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    }

    #[test]
    fn a_whole_day_of_heart_rate_has_a_sample_every_five_minutes_lower_at_night() {
        let day = heart_rate_day(&ctx(60), date("2025-09-02"), None).unwrap_or_else(|| {
            panic!("a whole day has samples");
        });
        let samples = rates(&day);
        assert!(
            (288..=288 + 12).contains(&samples.len()),
            "{}",
            samples.len()
        );
        let night: Vec<u64> = samples
            .iter()
            .filter(|(t, _)| t.as_str() >= "02:00" && t.as_str() < "04:00")
            .map(|(_, hr)| *hr)
            .collect();
        let afternoon: Vec<u64> = samples
            .iter()
            .filter(|(t, _)| t.as_str() >= "14:00" && t.as_str() < "16:00")
            .map(|(_, hr)| *hr)
            .collect();
        let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
        assert!(
            mean(&night) + 8.0 < mean(&afternoon),
            "{night:?} {afternoon:?}"
        );
        assert!(samples.iter().all(|(_, hr)| (35..=202).contains(hr)));
    }

    #[test]
    fn todays_heart_rate_holds_what_was_measured_so_far_and_grows() {
        let day = date("2025-09-02");
        let morning = heart_rate_day(&ctx(0), day, day.and_hms_opt(9, 0, 0)).unwrap_or_else(|| {
            panic!("samples by nine");
        });
        let noon = heart_rate_day(&ctx(0), day, day.and_hms_opt(12, 0, 0)).unwrap_or_else(|| {
            panic!("samples by noon");
        });
        let (early, later) = (rates(&morning), rates(&noon));
        assert!(early.len() < later.len());
        assert_eq!(
            &later[..early.len()],
            &early[..],
            "earlier samples do not change"
        );
        assert!(early.iter().all(|(t, _)| t.as_str() < "09:00:00"));
        assert!(heart_rate_day(&ctx(0), day, day.and_hms_opt(0, 0, 0)).is_none());
    }

    #[test]
    fn alertness_times_are_utc_with_the_athletes_offset_and_a_nap_is_its_own_period() {
        let c = ctx(345);
        let night = alertness_on(&c, date("2025-09-02"), false);
        let nap = alertness_on(&c, date("2025-09-02"), true);
        assert_ne!(night.key, nap.key);
        assert_eq!(night.body["sleep_timezone_offset_minutes"], 345);
        assert_eq!(nap.body["sleep_type"], "SLEEP_TYPE_SECONDARY");
        assert_eq!(night.body["sleep_type"], "SLEEP_TYPE_PRIMARY");
        // The night ends on the morning of the 2nd in Kathmandu: before 05:45 + 10:00 UTC.
        let end = night.complete_at + TimeDelta::minutes(345);
        assert_eq!(end.date_naive(), date("2025-09-02"));
        assert!(end.hour() < 9);
        // The nap is that afternoon, local.
        let nap_end = nap.complete_at + TimeDelta::minutes(345);
        assert_eq!(nap_end.date_naive(), date("2025-09-02"));
        assert!((13..=17).contains(&nap_end.hour()));
        let grade = night.body["grade"].as_f64().unwrap_or(-1.0);
        assert!((0.0..=10.0).contains(&grade));
    }

    #[test]
    fn cardio_load_needs_a_week_of_history_for_a_status() {
        let first = date("2025-09-01");
        let mut loads = BTreeMap::new();
        for day in 0..10 {
            loads.insert(
                first + TimeDelta::days(day),
                if day % 2 == 0 { 100.0 } else { 0.0 },
            );
        }
        let at = Utc::now();
        let sixth = cardio_load_day(first + TimeDelta::days(5), &loads, at, at);
        assert_eq!(sixth.body["cardio_load_status"], LOAD_STATUS_NOT_AVAILABLE);
        assert_eq!(sixth.body["strain"], 0.0);
        let seventh = cardio_load_day(first + TimeDelta::days(6), &loads, at, at);
        assert_ne!(
            seventh.body["cardio_load_status"],
            LOAD_STATUS_NOT_AVAILABLE
        );
        // Days 0..=6 alternate 100 and 0: four hundreds in seven days.
        assert_eq!(seventh.body["strain"], 57.1);
        assert_eq!(seventh.body["tolerance"], 57.1);
        assert_eq!(seventh.body["cardio_load_ratio"], 1.0);
        assert_eq!(seventh.body["cardio_load_status"], "PRODUCTIVE");
        assert_eq!(seventh.body["cardio_load_level"]["very-high"], 251.2);
        let rest = cardio_load_day(first + TimeDelta::days(7), &loads, at, at);
        assert_eq!(rest.body["cardio_load"], 0.0);
    }
}
