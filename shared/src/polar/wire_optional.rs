//! Polar's JSON for the data of the optional forms (design §5b): cardio load, SleepWise alertness and
//! 24/7 heart rate, with the same rules as [`super::wire`]: only the fields the forms use are declared,
//! a record that does not parse is broken and the rest of its list is kept, values outside their scale
//! are Polar's "no data" and read as absent, and a record with nothing measured is no record.
//!
//! What "no data" is here:
//! - Cardio load: a day whose `cardio_load_status` is `LOAD_STATUS_NOT_AVAILABLE` (or `UNRECOGNIZED`)
//!   has no status, no strain, tolerance or ratio (Polar sends zeros there), and a cardio load only
//!   when more than 0 (a training's load is known before the history for a status is). Once the status
//!   is available, a cardio load of 0 is a rest day and is data.
//! - SleepWise: an enum value ending in `_UNKNOWN` is no value; the grade and its classification are
//!   data only when `validity` is not `VALIDITY_NOT_VALID`, `VALIDITY_RESET` or `VALIDITY_UNKNOWN`.
//!   A period is dated by its end in the athlete's local time (UTC + `sleep_timezone_offset_minutes`).
//! - 24/7 heart rate: a sample outside 20–250 bpm (a `0` when the watch was off the wrist) is dropped;
//!   a day without a sample that is data is no record, as Polar's 404 is.

use chrono::{DateTime, Datelike, NaiveTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::scale;
use super::wire::{
    FieldError, MAX_UTC_OFFSET_MINUTES, MAX_YEAR, RecordHint, Rounded, WireRecord, date_hint,
    date_part_of, four_digit_year, parse_date, parse_utc, text,
};
use super::{Alertness, CardioLoad, DailyHeartRate, HeartRateSample};

// ---------------------------------------------------------------------------------------------
// Cardio load

/// The statuses that mean Polar could not compute the day.
const LOAD_STATUS_NO_DATA: [&str; 2] = ["LOAD_STATUS_NOT_AVAILABLE", "UNRECOGNIZED"];

/// One day of `/v3/users/cardio-load` (every list of it is a top-level array, one entry per day).
/// `cardio_load_level` (the session thresholds, with Polar's `very_low` next to `very-high`) is not
/// a form field and is not read.
#[derive(Deserialize)]
pub(crate) struct CardioLoadWire {
    date: String,
    cardio_load_status: Option<String>,
    cardio_load: Option<f64>,
    strain: Option<f64>,
    tolerance: Option<f64>,
    cardio_load_ratio: Option<f64>,
}

impl WireRecord for CardioLoadWire {
    type Domain = CardioLoad;

    fn into_domain(self) -> Result<Option<CardioLoad>, FieldError> {
        let date = parse_date("date", &self.date)?;
        let status =
            text(self.cardio_load_status).filter(|s| !LOAD_STATUS_NO_DATA.contains(&s.as_str()));
        let computed = status.is_some();
        let averaged =
            |value: Option<f64>, scale: scale::Scale| scale.data(value).filter(|_| computed);
        let load = CardioLoad {
            date,
            cardio_load: if computed {
                scale::DAY_CARDIO_LOAD.data(self.cardio_load)
            } else {
                scale::LOAD.data(self.cardio_load)
            },
            strain: averaged(self.strain, scale::LOAD_AVERAGE),
            tolerance: averaged(self.tolerance, scale::LOAD_AVERAGE),
            cardio_load_ratio: averaged(self.cardio_load_ratio, scale::LOAD_RATIO),
            status,
        };
        let measured = load.status.is_some()
            || load.cardio_load.is_some()
            || load.strain.is_some()
            || load.tolerance.is_some()
            || load.cardio_load_ratio.is_some();
        Ok(measured.then_some(load))
    }

    fn hint(raw: &Value) -> RecordHint {
        date_hint(raw)
    }
}

// ---------------------------------------------------------------------------------------------
// SleepWise alertness

/// Validities under which Polar's grade is not a grade.
const GRADE_NOT_VALID: [&str; 3] = ["VALIDITY_NOT_VALID", "VALIDITY_RESET", "VALIDITY_UNKNOWN"];

/// One period of `/v3/users/sleepwise/alertness` (a top-level array); every time is UTC.
#[derive(Deserialize)]
pub(crate) struct AlertnessWire {
    sleep_period_start_time: String,
    sleep_period_end_time: String,
    sleep_timezone_offset_minutes: Rounded,
    grade: Option<f64>,
    grade_classification: Option<String>,
    sleep_inertia: Option<String>,
    sleep_type: Option<String>,
    validity: Option<String>,
}

/// An enum value of SleepWise, absent when blank or `…_UNKNOWN`.
fn known(value: Option<String>) -> Option<String> {
    text(value).filter(|v| !v.ends_with("_UNKNOWN"))
}

/// A SleepWise time: UTC, written without a zone (`2022-11-20T20:52:20.57`) or with one.
fn sleepwise_time(field: &str, text: &str) -> Result<DateTime<Utc>, FieldError> {
    if !four_digit_year(text) {
        return Err(FieldError::new(field, "is not a UTC timestamp"));
    }
    parse_utc(field, text)
}

impl WireRecord for AlertnessWire {
    type Domain = Alertness;

    fn into_domain(self) -> Result<Option<Alertness>, FieldError> {
        let start = sleepwise_time("sleep_period_start_time", &self.sleep_period_start_time)?;
        let end = sleepwise_time("sleep_period_end_time", &self.sleep_period_end_time)?;
        if end < start {
            return Err(FieldError::new(
                "sleep_period_end_time",
                "is before the sleep period's start",
            ));
        }
        let offset = i32::try_from(self.sleep_timezone_offset_minutes.0)
            .ok()
            .filter(|minutes| minutes.abs() <= MAX_UTC_OFFSET_MINUTES)
            .ok_or_else(|| {
                FieldError::new(
                    "sleep_timezone_offset_minutes",
                    "is more than 24 hours from UTC",
                )
            })?;
        let validity = text(self.validity);
        let graded = validity
            .as_deref()
            .is_none_or(|v| !GRADE_NOT_VALID.contains(&v));
        let validity = known(validity);
        let alertness = Alertness {
            sleep_period_start: start,
            sleep_period_end: end,
            sleep_timezone_offset_minutes: offset,
            grade: scale::ALERTNESS_GRADE.data(self.grade).filter(|_| graded),
            grade_classification: known(self.grade_classification).filter(|_| graded),
            sleep_inertia: known(self.sleep_inertia),
            sleep_type: known(self.sleep_type),
            validity,
        };
        if alertness.local_end_date().year() > MAX_YEAR {
            return Err(FieldError::new(
                "sleep_period_end_time",
                "ends after the year 9999 in the athlete's time zone",
            ));
        }
        let measured = alertness.grade.is_some()
            || alertness.grade_classification.is_some()
            || alertness.sleep_inertia.is_some();
        Ok(measured.then_some(alertness))
    }

    fn hint(raw: &Value) -> RecordHint {
        RecordHint {
            label: raw
                .get("sleep_period_start_time")
                .and_then(Value::as_str)
                .and_then(|t| sleepwise_time("sleep_period_start_time", t).ok())
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            date: date_part_of(raw, "sleep_period_end_time"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 24/7 heart rate

/// One day of `/v3/users/continuous-heart-rate[/{date}]`.
#[derive(Deserialize)]
pub(crate) struct DailyHeartRateWire {
    date: String,
    heart_rate_samples: Option<Vec<HeartRateSampleWire>>,
}

#[derive(Deserialize)]
struct HeartRateSampleWire {
    /// Documented as an integer; read as any number so one absurd sample drops only itself.
    heart_rate: Option<f64>,
    sample_time: String,
}

/// `HH:MM:SS` (documented), also with fractions or without seconds.
fn sample_time(field: &str, text: &str) -> Result<NaiveTime, FieldError> {
    ["%H:%M:%S%.f", "%H:%M"]
        .iter()
        .find_map(|format| NaiveTime::parse_from_str(text.trim(), format).ok())
        .ok_or_else(|| FieldError::new(field, "is not a time of day (hh:mm:ss)"))
}

impl WireRecord for DailyHeartRateWire {
    type Domain = DailyHeartRate;

    fn into_domain(self) -> Result<Option<DailyHeartRate>, FieldError> {
        let date = parse_date("date", &self.date)?;
        let mut samples = Vec::new();
        for (position, sample) in self
            .heart_rate_samples
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let time = sample_time(
                &format!("heart_rate_samples[{position}].sample_time"),
                &sample.sample_time,
            )?;
            // Within 20–250 once rounded: exactly a u16.
            let bpm = scale::HEART_RATE.data(sample.heart_rate.map(f64::round));
            if let Some(bpm) = bpm {
                samples.push(HeartRateSample {
                    time,
                    heart_rate: bpm as u16,
                });
            }
        }
        Ok((!samples.is_empty()).then_some(DailyHeartRate { date, samples }))
    }

    fn hint(raw: &Value) -> RecordHint {
        date_hint(raw)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};
    use serde_json::json;

    use super::*;
    use crate::polar::wire::{ListShape, parse_list, parse_one};
    use crate::polar::{BrokenRecord, PolarError, Records};

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn one<W: WireRecord>(body: &Value) -> Option<W::Domain> {
        parse_one::<W>(body.to_string().as_bytes())
            .unwrap()
            .into_domain()
            .unwrap()
    }

    /// Polar's documented cardio-load entry, with the level object's `very-high` quirk.
    fn cardio_load_day() -> Value {
        json!({
            "date": "2025-09-02", "cardio_load_status": "PRODUCTIVE", "cardio_load": 118.4,
            "strain": 96.2, "tolerance": 81.5, "cardio_load_ratio": 1.18,
            "cardio_load_level": {"very_low": 20.1, "low": 48.3, "medium": 97.0, "high": 150.2, "very-high": 210.8}
        })
    }

    #[test]
    fn a_computed_cardio_load_day_keeps_every_value_and_ignores_the_levels() {
        assert_eq!(
            one::<CardioLoadWire>(&cardio_load_day()),
            Some(CardioLoad {
                date: date("2025-09-02"),
                status: Some("PRODUCTIVE".into()),
                cardio_load: Some(118.4),
                strain: Some(96.2),
                tolerance: Some(81.5),
                cardio_load_ratio: Some(1.18),
            })
        );
    }

    #[test]
    fn a_rest_day_with_a_status_has_a_cardio_load_of_zero() {
        let mut rest = cardio_load_day();
        rest["cardio_load"] = json!(0);
        rest["cardio_load_status"] = json!("DETRAINING");
        let day = one::<CardioLoadWire>(&rest).unwrap();
        assert_eq!(day.cardio_load, Some(0.0));
        assert_eq!(day.status.as_deref(), Some("DETRAINING"));
    }

    #[test]
    fn a_day_without_a_status_keeps_only_a_positive_load_and_with_nothing_is_no_record() {
        let not_available = json!({
            "date": "2025-09-02", "cardio_load_status": "LOAD_STATUS_NOT_AVAILABLE", "cardio_load": 0.0,
            "strain": 0.0, "tolerance": 0.0, "cardio_load_ratio": 0.0,
            "cardio_load_level": {"very_low": 0, "low": 0, "medium": 0, "high": 0, "very-high": 0}
        });
        assert_eq!(one::<CardioLoadWire>(&not_available), None);
        let mut trained = not_available.clone();
        trained["cardio_load"] = json!(52.3);
        trained["strain"] = json!(7.5);
        assert_eq!(
            one::<CardioLoadWire>(&trained),
            Some(CardioLoad {
                date: date("2025-09-02"),
                status: None,
                cardio_load: Some(52.3),
                strain: None,
                tolerance: None,
                cardio_load_ratio: None,
            })
        );
        let mut unrecognized = cardio_load_day();
        unrecognized["cardio_load_status"] = json!("UNRECOGNIZED");
        let day = one::<CardioLoadWire>(&unrecognized).unwrap();
        assert_eq!((day.status, day.strain), (None, None));
    }

    #[test]
    fn cardio_load_values_outside_their_scale_are_absent() {
        let mut odd = cardio_load_day();
        odd["cardio_load"] = json!(-1);
        odd["strain"] = json!(1e300);
        odd["tolerance"] = json!(-0.5);
        odd["cardio_load_ratio"] = json!(100.5);
        let day = one::<CardioLoadWire>(&odd).unwrap();
        assert_eq!(
            (
                day.cardio_load,
                day.strain,
                day.tolerance,
                day.cardio_load_ratio
            ),
            (None, None, None, None)
        );
        assert_eq!(day.status.as_deref(), Some("PRODUCTIVE"));
    }

    #[test]
    fn a_cardio_load_list_keeps_good_days_next_to_a_broken_one() {
        let body = json!([
            cardio_load_day(),
            {"date": "2025-09-03", "cardio_load_status": 7},
            {"date": "+262143-01-01", "cardio_load_status": "PRODUCTIVE", "cardio_load": 5},
            {"date": "2025-09-04", "cardio_load_status": "LOAD_STATUS_NOT_AVAILABLE", "cardio_load": 0}
        ]);
        let records =
            parse_list::<CardioLoadWire>(body.to_string().as_bytes(), ListShape::Array).unwrap();
        assert_eq!(records.records.len(), 1);
        assert_eq!(
            records.broken,
            vec![
                BrokenRecord {
                    hint: Some("2025-09-03".into()),
                    date: Some(date("2025-09-03")),
                    reason: "field `cardio_load_status`: invalid type, expected a string".into(),
                },
                BrokenRecord {
                    hint: None,
                    date: None,
                    reason: "field `date`: is not a YYYY-MM-DD date".into(),
                },
            ]
        );
    }

    /// Polar's documented alertness period.
    fn alertness_period() -> Value {
        json!({
            "grade": 9.9, "grade_validity_seconds": 57600, "grade_type": "GRADE_TYPE_PRIMARY",
            "grade_classification": "GRADE_CLASSIFICATION_STRONG", "validity": "VALIDITY_ESTIMATE",
            "sleep_inertia": "SLEEP_INERTIA_MILD", "sleep_type": "SLEEP_TYPE_PRIMARY",
            "result_type": "ALERTNESS_TYPE_HISTORY", "period_start_time": "2022-11-20T20:52:20",
            "period_end_time": "2022-11-21T19:15:52", "sleep_period_start_time": "2022-11-20T20:52:20.57",
            "sleep_period_end_time": "2022-11-21T04:11:20.57", "sleep_timezone_offset_minutes": 120,
            "hourly_data": [{"validity": "VALIDITY_ESTIMATE", "alertness_level": "ALERTNESS_LEVEL_LOW",
                             "start_time": "2022-11-21T04:12:00", "end_time": "2022-11-21T05:00:00"}]
        })
    }

    #[test]
    fn the_documented_alertness_period_reads_in_utc_with_its_offset() {
        let period = one::<AlertnessWire>(&alertness_period()).unwrap();
        assert_eq!(
            period,
            Alertness {
                sleep_period_start: Utc
                    .with_ymd_and_hms(2022, 11, 20, 20, 52, 20)
                    .unwrap()
                    .checked_add_signed(chrono::Duration::milliseconds(570))
                    .unwrap(),
                sleep_period_end: Utc
                    .with_ymd_and_hms(2022, 11, 21, 4, 11, 20)
                    .unwrap()
                    .checked_add_signed(chrono::Duration::milliseconds(570))
                    .unwrap(),
                sleep_timezone_offset_minutes: 120,
                grade: Some(9.9),
                grade_classification: Some("GRADE_CLASSIFICATION_STRONG".into()),
                sleep_inertia: Some("SLEEP_INERTIA_MILD".into()),
                sleep_type: Some("SLEEP_TYPE_PRIMARY".into()),
                validity: Some("VALIDITY_ESTIMATE".into()),
            }
        );
        assert_eq!(period.local_end_date(), date("2022-11-21"));
    }

    #[test]
    fn alertness_is_dated_by_the_local_end_of_the_sleep_period() {
        // 2022-11-21T04:11 UTC is still the 20th at −09:30 and already the 21st at +05:45 and +13:45;
        // 10:20 UTC is the 22nd at +13:45.
        for (end, offset, local_date) in [
            ("2022-11-21T04:11:20Z", -570, "2022-11-20"),
            ("2022-11-21T04:11:20", 345, "2022-11-21"),
            ("2022-11-21T04:11:20.5", 825, "2022-11-21"),
            ("2022-11-21T10:20:00", 825, "2022-11-22"),
            ("2022-11-21T09:29:59", -570, "2022-11-20"),
            ("2022-11-21T09:30:00", -570, "2022-11-21"),
            ("2022-11-21T18:15:00+00:00", 345, "2022-11-22"),
        ] {
            let mut body = alertness_period();
            body["sleep_period_end_time"] = json!(end);
            body["sleep_timezone_offset_minutes"] = json!(offset);
            let period = one::<AlertnessWire>(&body).unwrap();
            assert_eq!(period.local_end_date(), date(local_date), "{end} {offset}");
        }
    }

    #[test]
    fn an_alertness_grade_polar_calls_not_valid_is_absent_and_unknown_values_are_left_out() {
        for validity in ["VALIDITY_NOT_VALID", "VALIDITY_RESET"] {
            let mut body = alertness_period();
            body["validity"] = json!(validity);
            let period = one::<AlertnessWire>(&body).unwrap();
            assert_eq!(period.grade, None, "{validity}");
            assert_eq!(period.grade_classification, None, "{validity}");
            assert_eq!(period.validity.as_deref(), Some(validity));
            assert_eq!(period.sleep_inertia.as_deref(), Some("SLEEP_INERTIA_MILD"));
        }
        let mut body = alertness_period();
        body["validity"] = json!("VALIDITY_VALID");
        body["sleep_type"] = json!("SLEEP_TYPE_UNKNOWN");
        body["sleep_inertia"] = json!(" ");
        body["grade"] = json!(10.5);
        let period = one::<AlertnessWire>(&body).unwrap();
        assert_eq!(
            (period.grade, period.sleep_type, period.sleep_inertia),
            (None, None, None)
        );
        assert_eq!(
            period.grade_classification.as_deref(),
            Some("GRADE_CLASSIFICATION_STRONG")
        );
    }

    #[test]
    fn an_alertness_period_with_nothing_graded_is_no_record() {
        let mut body = alertness_period();
        body["validity"] = json!("VALIDITY_UNKNOWN");
        body["sleep_inertia"] = json!("SLEEP_INERTIA_UNKNOWN");
        assert_eq!(one::<AlertnessWire>(&body), None);
    }

    #[test]
    fn alertness_periods_that_cannot_be_placed_are_broken_and_the_rest_kept() {
        let with = |field: &str, value: Value| {
            let mut body = alertness_period();
            body[field] = value;
            body
        };
        let body = json!([
            with("sleep_timezone_offset_minutes", json!(99_999_999)),
            with("sleep_period_end_time", json!("2022-11-20T20:00:00")),
            with("sleep_period_start_time", json!("+262143-11-20T20:00:00")),
            with("sleep_period_end_time", json!("9999-12-31T23:00:00")),
            with("sleep_period_end_time", json!("late")),
            alertness_period(),
        ]);
        let records =
            parse_list::<AlertnessWire>(body.to_string().as_bytes(), ListShape::Array).unwrap();
        assert_eq!(records.records.len(), 1);
        let reasons: Vec<&str> = records.broken.iter().map(|b| b.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "field `sleep_timezone_offset_minutes`: is more than 24 hours from UTC",
                "field `sleep_period_end_time`: is before the sleep period's start",
                "field `sleep_period_start_time`: is not a UTC timestamp",
                "field `sleep_period_end_time`: ends after the year 9999 in the athlete's time zone",
                "field `sleep_period_end_time`: is not a UTC timestamp",
            ]
        );
        assert_eq!(
            records.broken[0].hint.as_deref(),
            Some("2022-11-20T20:52:20Z")
        );
        assert_eq!(records.broken[0].date, Some(date("2022-11-21")));
    }

    fn heart_rate_day() -> Value {
        json!({
            "polar_user": "https://polaraccesslink.com/v3/users/627139", "date": "2022-09-12",
            "heart_rate_samples": [
                {"heart_rate": 63, "sample_time": "00:02:08"}, {"heart_rate": 62, "sample_time": "00:07:08"},
                {"heart_rate": 0, "sample_time": "00:12:08"}, {"heart_rate": 71.0, "sample_time": "00:17"},
                {"heart_rate": null, "sample_time": "00:22:08"}, {"heart_rate": 251, "sample_time": "00:27:08"}
            ]
        })
    }

    #[test]
    fn a_heart_rate_day_keeps_the_samples_that_are_data() {
        let day = one::<DailyHeartRateWire>(&heart_rate_day()).unwrap();
        let at = |h, m, s| NaiveTime::from_hms_opt(h, m, s).unwrap();
        assert_eq!(
            day,
            DailyHeartRate {
                date: date("2022-09-12"),
                samples: vec![
                    HeartRateSample {
                        time: at(0, 2, 8),
                        heart_rate: 63
                    },
                    HeartRateSample {
                        time: at(0, 7, 8),
                        heart_rate: 62
                    },
                    HeartRateSample {
                        time: at(0, 17, 0),
                        heart_rate: 71
                    },
                ],
            }
        );
        let off_wrist = json!({"date": "2022-09-12", "heart_rate_samples": [{"heart_rate": 0, "sample_time": "00:02:08"}]});
        assert_eq!(one::<DailyHeartRateWire>(&off_wrist), None);
        let empty = json!({"date": "2022-09-12", "heart_rate_samples": null});
        assert_eq!(one::<DailyHeartRateWire>(&empty), None);
    }

    #[test]
    fn the_heart_rate_range_is_read_in_every_shape_polar_sends() {
        let day = |d: &str| {
            let mut body = heart_rate_day();
            body["date"] = json!(d);
            body
        };
        let dates = |records: Records<DailyHeartRate>| -> Vec<NaiveDate> {
            records.records.iter().map(|r| r.date).collect()
        };
        let shape = ListShape::Lenient("heart_rates");
        let wrapped = json!({"heart_rates": [day("2022-09-12"), day("2022-09-13")]});
        let array = json!([day("2022-09-12"), day("2022-09-13")]);
        for body in [wrapped, array] {
            let records =
                parse_list::<DailyHeartRateWire>(body.to_string().as_bytes(), shape).unwrap();
            assert_eq!(dates(records), [date("2022-09-12"), date("2022-09-13")]);
        }
        let single =
            parse_list::<DailyHeartRateWire>(day("2022-09-14").to_string().as_bytes(), shape)
                .unwrap();
        assert_eq!(dates(single), [date("2022-09-14")]);
        for nothing in [
            r#"{"heart_rates": []}"#,
            r#"{"heart_rates": null}"#,
            "{}",
            "[]",
        ] {
            assert_eq!(
                parse_list::<DailyHeartRateWire>(nothing.as_bytes(), shape).unwrap(),
                Records::default(),
                "{nothing}"
            );
        }
        for malformed in [r#"{"heart_rates": 5}"#, "7", r#""text""#] {
            assert!(
                matches!(
                    parse_list::<DailyHeartRateWire>(malformed.as_bytes(), shape),
                    Err(PolarError::Malformed { .. })
                ),
                "{malformed}"
            );
        }
    }

    #[test]
    fn a_heart_rate_day_with_an_unreadable_sample_is_broken_and_the_other_days_are_kept() {
        let mut bad = heart_rate_day();
        bad["date"] = json!("2022-09-13");
        bad["heart_rate_samples"][1]["sample_time"] = json!("25:00:00");
        let body = json!({"heart_rates": [heart_rate_day(), bad]});
        let records = parse_list::<DailyHeartRateWire>(
            body.to_string().as_bytes(),
            ListShape::Lenient("heart_rates"),
        )
        .unwrap();
        assert_eq!(records.records.len(), 1);
        assert_eq!(
            records.broken,
            vec![BrokenRecord {
                hint: Some("2022-09-13".into()),
                date: Some(date("2022-09-13")),
                reason:
                    "field `heart_rate_samples[1].sample_time`: is not a time of day (hh:mm:ss)"
                        .into(),
            }]
        );
    }
}
