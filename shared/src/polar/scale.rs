//! Where each Polar value is data, and what Polar means by the values outside.
//!
//! Polar marks a value it does not have with a number outside the documented scale (reference §8.3:
//! `sleep_charge: -1`, `continuity: 0`, heart rates of `0`), and a missing sensor leaves zeros where no
//! measurement can be zero (an average heart rate, a day's calories including BMR). Such a value is read
//! as absent, exactly like `null`, when Polar's JSON is read, so nothing past this module can mistake it
//! for data. The same goes for values no body or watch can produce (NaN, negative durations, a heart rate
//! of 400): whatever produced them, they are not a measurement a coach can use.
//!
//! The decision for every field of every form, with the reasons, is the table in [`crate::mapping`]; the
//! scales below are that table's numbers.

/// The values of one field that are data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scale {
    min: f64,
    /// Whether `min` itself is data (`false`: only values above it, e.g. "more than zero").
    min_is_data: bool,
    max: f64,
}

impl Scale {
    /// `min..=max`.
    const fn within(min: f64, max: f64) -> Self {
        Self {
            min,
            min_is_data: true,
            max,
        }
    }

    /// More than zero, up to `max`: zero is what Polar sends when nothing was measured.
    const fn positive(max: f64) -> Self {
        Self {
            min: 0.0,
            min_is_data: false,
            max,
        }
    }

    /// Whether `value` is data on this scale (never NaN or infinite).
    pub(crate) fn holds(self, value: f64) -> bool {
        let above_min = if self.min_is_data {
            value >= self.min
        } else {
            value > self.min
        };
        value.is_finite() && above_min && value <= self.max
    }

    /// `value` if it is data, else `None`.
    pub(crate) fn data(self, value: Option<f64>) -> Option<f64> {
        value.filter(|v| self.holds(*v))
    }

    /// An integer `value` if it is data, else `None`.
    pub(crate) fn data_integer(self, value: Option<i64>) -> Option<i64> {
        value.filter(|v| self.holds(*v as f64))
    }

    /// The largest value that is data.
    pub(crate) fn max(self) -> f64 {
        self.max
    }
}

const HOUR: f64 = 3_600.0;
const DAY: f64 = 24.0 * HOUR;

/// Heart rate in bpm, awake or asleep: a human heart beats between 20 and 250 times a minute (0 is what
/// a session without a heart-rate sensor carries).
pub(crate) const HEART_RATE: Scale = Scale::within(20.0, 250.0);

/// An exercise's `duration`, seconds. Longer than seven days is past every Polar watch's training
/// battery (at most 140 h): such a record is broken, not a session without a duration.
pub(crate) const EXERCISE_DURATION: Scale = Scale::positive(7.0 * DAY);
/// Time in one heart-rate zone, seconds: zero is data when another zone has time.
pub(crate) const ZONE_TIME: Scale = Scale::within(0.0, 7.0 * DAY);
/// An exercise's `distance`, metres (0 when nothing measured it: no GPS, no foot pod).
pub(crate) const EXERCISE_DISTANCE: Scale = Scale::positive(10_000_000.0);
/// An exercise's `calories`, kcal.
pub(crate) const EXERCISE_CALORIES: Scale = Scale::positive(100_000.0);
/// `training_load`, `cardio-load`, `muscle-load` (0 or less: not computed, e.g. no power meter).
pub(crate) const LOAD: Scale = Scale::positive(100_000.0);

/// A day's `steps` (a worn watch counts arm movement all day; 0 means it counted nothing).
pub(crate) const STEPS: Scale = Scale::positive(300_000.0);
/// A day's `calories` and `active_calories`, kcal.
pub(crate) const DAY_CALORIES: Scale = Scale::positive(50_000.0);
/// A day's `active_duration`, seconds (a calendar day has at most 25 hours).
pub(crate) const ACTIVE_TIME: Scale = Scale::positive(25.0 * HOUR);
/// A day's `distance_from_steps`, metres.
pub(crate) const DAY_DISTANCE: Scale = Scale::positive(1_000_000.0);

/// A sleep stage's seconds (0 is data when another stage has time: a night may have no REM).
pub(crate) const SLEEP_STAGE: Scale = Scale::within(0.0, DAY);
/// `total_interruption_duration`, seconds (0: an unbroken night).
pub(crate) const INTERRUPTIONS: Scale = Scale::within(0.0, DAY);
/// `sleep_score`, 1–100.
pub(crate) const SLEEP_SCORE: Scale = Scale::within(1.0, 100.0);
/// `sleep_charge`, 1–5 (−1 or 0: not computed).
pub(crate) const SLEEP_CHARGE: Scale = Scale::within(1.0, 5.0);
/// `continuity`, 1.0–5.0 (0: not computed).
pub(crate) const CONTINUITY: Scale = Scale::within(1.0, 5.0);

/// `nightly_recharge_status`, 1 (very poor) – 6 (very good).
pub(crate) const RECHARGE_STATUS: Scale = Scale::within(1.0, 6.0);
/// `ans_charge`, −10.0 … +10.0; 0 is the athlete's usual level, data like any other.
pub(crate) const ANS_CHARGE: Scale = Scale::within(-10.0, 10.0);
/// `heart_rate_variability_avg` (RMSSD), ms: never 0 for a beating heart, never a second.
pub(crate) const HRV: Scale = Scale::positive(1_000.0);
/// `breathing_rate_avg`, breaths a minute.
pub(crate) const BREATHING_RATE: Scale = Scale::positive(60.0);

/// A day's `cardio_load` (TRIMP) once Polar computes the day's status: 0 is a rest day, data like any
/// other (the acute:chronic picture needs the rest days). On a day whose status is not available only
/// more than 0 is data ([`LOAD`]).
pub(crate) const DAY_CARDIO_LOAD: Scale = Scale::within(0.0, 100_000.0);
/// `strain` and `tolerance`: averages of daily loads, 0 after weeks without training.
pub(crate) const LOAD_AVERAGE: Scale = Scale::within(0.0, 100_000.0);
/// `cardio_load_ratio` (strain / tolerance): a 7-day average is at most four times a 28-day one that
/// holds it; 100 leaves room for whatever weighting Polar applies.
pub(crate) const LOAD_RATIO: Scale = Scale::within(0.0, 100.0);
/// SleepWise `grade`: 0–10 (Polar's example: 9.9).
pub(crate) const ALERTNESS_GRADE: Scale = Scale::within(0.0, 10.0);

/// Of a group of durations that only mean something together (a night's stages, an exercise's zones),
/// the ones that are data: none when every one is zero (the watch measured nothing), else each one on
/// `scale`.
pub(crate) fn group(scale: Scale, values: &[Option<f64>]) -> Vec<Option<f64>> {
    let measured = values.iter().flatten().any(|v| scale.holds(*v) && *v > 0.0);
    values
        .iter()
        .map(|v| scale.data(*v).filter(|_| measured))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_scale_keeps_both_ends_and_nothing_outside() {
        assert!(SLEEP_CHARGE.holds(1.0) && SLEEP_CHARGE.holds(5.0));
        for outside in [-1.0, 0.0, 0.99, 5.01, f64::NAN, f64::INFINITY] {
            assert!(!SLEEP_CHARGE.holds(outside), "{outside}");
        }
        assert!(ANS_CHARGE.holds(0.0) && ANS_CHARGE.holds(-10.0) && ANS_CHARGE.holds(10.0));
    }

    #[test]
    fn a_positive_scale_refuses_zero_and_keeps_the_smallest_amounts() {
        assert!(!STEPS.holds(0.0) && !STEPS.holds(-1.0));
        assert!(STEPS.holds(1.0) && LOAD.holds(0.1));
        assert!(!STEPS.holds(f64::MAX));
    }

    #[test]
    fn a_group_of_zeros_is_no_data_but_a_zero_next_to_time_is() {
        assert_eq!(
            group(SLEEP_STAGE, &[Some(0.0), Some(0.0), None]),
            [None, None, None]
        );
        assert_eq!(
            group(SLEEP_STAGE, &[Some(0.0), Some(60.0), Some(-1.0)]),
            [Some(0.0), Some(60.0), None]
        );
        // A value outside the scale does not make the others measured.
        assert_eq!(group(ZONE_TIME, &[Some(0.0), Some(1e15)]), [None, None]);
    }
}

/// Every field of every form, from Polar's JSON to the Smartabase event: each no-data look leaves its
/// field out (and only it), each value at the edge of the scale is written.
#[cfg(test)]
mod per_field {
    use serde_json::{Value, json};

    use crate::mapping::{MappedEvent, Mapping};
    use crate::polar::wire::{
        ActivityWire, ExerciseWire, RechargeWire, SleepWire, WireRecord, parse_one,
    };
    use crate::polar::wire_optional::{AlertnessWire, CardioLoadWire, DailyHeartRateWire};

    #[derive(Clone, Copy)]
    enum Form {
        Training,
        Activity,
        Sleep,
        Recharge,
        CardioLoad,
        Alertness,
        DailyHeartRate,
    }

    /// Reference §8.1–§8.4, the fields the forms use.
    fn reference(form: Form) -> Value {
        match form {
            Form::Training => json!({
                "id": "Xy7Qp2Lr", "upload_time": "2025-09-02T06:41:17.000Z", "device": "Polar Vantage V3",
                "start_time": "2025-09-02T07:05:00", "start_time_utc_offset": 120, "duration": "PT1H2M30S",
                "calories": 712, "distance": 12450.0, "heart_rate": {"average": 148, "maximum": 176},
                "training_load": 118.4, "sport": "RUNNING", "detailed_sport_info": "ROAD_RUNNING",
                "heart_rate_zones": [
                    {"index": 1, "in-zone": "PT2M10S"}, {"index": 2, "in-zone": "PT9M45S"},
                    {"index": 3, "in-zone": "PT31M5S"}, {"index": 4, "in-zone": "PT18M40S"},
                    {"index": 5, "in-zone": "PT0M50S"}
                ],
                "training_load_pro": {
                    "cardio-load": 118.4, "muscle-load": 402.0,
                    "cardio-load-interpretation": "HIGH", "muscle-load-interpretation": "MEDIUM"
                }
            }),
            Form::Activity => json!({
                "start_time": "2025-09-01T00:00:00", "end_time": "2025-09-01T23:59:59",
                "active_duration": "PT4H12M", "calories": 2841, "active_calories": 1120,
                "steps": 13207, "distance_from_steps": 9874.5
            }),
            Form::Sleep => json!({
                "date": "2025-09-02", "sleep_start_time": "2025-09-01T23:14:05+02:00",
                "sleep_end_time": "2025-09-02T06:48:40+02:00", "continuity": 3.4, "continuity_class": 3,
                "light_sleep": 14820, "deep_sleep": 5430, "rem_sleep": 5610, "unrecognized_sleep_stage": 0,
                "sleep_score": 78, "total_interruption_duration": 1415, "sleep_charge": 3
            }),
            Form::Recharge => json!({
                "date": "2025-09-02", "heart_rate_avg": 54, "beat_to_beat_avg": 1111,
                "heart_rate_variability_avg": 62, "breathing_rate_avg": 13.6,
                "nightly_recharge_status": 4, "ans_charge": -1.5, "ans_charge_status": 2
            }),
            Form::CardioLoad => json!({
                "date": "2025-09-02", "cardio_load_status": "PRODUCTIVE", "cardio_load": 118.4,
                "strain": 96.2, "tolerance": 81.5, "cardio_load_ratio": 1.18,
                "cardio_load_level": {"very_low": 20.1, "low": 48.3, "medium": 97.0, "high": 150.2, "very-high": 210.8}
            }),
            Form::Alertness => json!({
                "grade": 9.9, "grade_validity_seconds": 57600, "grade_type": "GRADE_TYPE_PRIMARY",
                "grade_classification": "GRADE_CLASSIFICATION_STRONG", "validity": "VALIDITY_ESTIMATE",
                "sleep_inertia": "SLEEP_INERTIA_MILD", "sleep_type": "SLEEP_TYPE_PRIMARY",
                "result_type": "ALERTNESS_TYPE_HISTORY", "sleep_period_start_time": "2022-11-20T20:52:20.57",
                "sleep_period_end_time": "2022-11-21T04:11:20.57", "sleep_timezone_offset_minutes": 120
            }),
            Form::DailyHeartRate => json!({
                "polar_user": "https://polaraccesslink.com/v3/users/627139", "date": "2022-09-12",
                "heart_rate_samples": [
                    {"heart_rate": 63, "sample_time": "00:02:08"}, {"heart_rate": 58, "sample_time": "00:07:08"},
                    {"heart_rate": 97, "sample_time": "12:02:08"}, {"heart_rate": 61, "sample_time": "23:57:08"}
                ]
            }),
        }
    }

    /// The event a body becomes; `None` when Polar's record has nothing measured (no event at all).
    fn event(form: Form, body: &Value) -> Option<MappedEvent> {
        fn domain<W: WireRecord>(body: &Value) -> Option<W::Domain> {
            let wire: W = parse_one(body.to_string().as_bytes()).unwrap();
            wire.into_domain().unwrap_or_else(|e| panic!("broken: {e}"))
        }
        let m = Mapping::defaults();
        match form {
            Form::Training => domain::<ExerciseWire>(body).map(|e| m.training(&e)),
            Form::Activity => domain::<ActivityWire>(body).map(|a| m.activity(&a)),
            Form::Sleep => domain::<SleepWire>(body).map(|s| m.sleep(&s)),
            Form::Recharge => domain::<RechargeWire>(body).map(|r| m.recharge(&r)),
            Form::CardioLoad => domain::<CardioLoadWire>(body).map(|c| m.cardio_load(&c)),
            Form::Alertness => domain::<AlertnessWire>(body).map(|a| m.alertness(&a)),
            Form::DailyHeartRate => {
                domain::<DailyHeartRateWire>(body).map(|d| m.daily_heart_rate(&d))
            }
        }
    }

    fn with(form: Form, pointer: &str, value: &Value) -> Value {
        let mut body = reference(form);
        *body.pointer_mut(pointer).unwrap() = value.clone();
        body
    }

    /// `pointer`'s no-data values leave `field` out and keep every other field; its data values are
    /// written as given.
    fn check(form: Form, pointer: &str, field: &str, no_data: &[Value], data: &[(Value, &str)]) {
        let full = event(form, &reference(form)).unwrap();
        assert!(full.value(field).is_some(), "the reference has {field}");
        for marker in no_data {
            let mapped = event(form, &with(form, pointer, marker)).unwrap_or_else(|| {
                panic!("{pointer} = {marker}: the other values still make an event")
            });
            assert_eq!(
                mapped.value(field),
                None,
                "{pointer} = {marker} reached {field}"
            );
            for (other, value) in &full.pairs {
                if other != field && !depends_on(field, other) {
                    assert_eq!(
                        mapped.value(other),
                        Some(value.as_str()),
                        "{pointer} = {marker} lost {other}"
                    );
                }
            }
        }
        for (value, written) in data {
            let mapped = event(form, &with(form, pointer, value)).unwrap();
            assert_eq!(mapped.value(field), Some(*written), "{pointer} = {value}");
        }
    }

    /// Fields computed from others (a night's total from its stages) or valid only with another (the
    /// averages with a computed cardio-load status, the alertness grade with its validity).
    fn depends_on(field: &str, other: &str) -> bool {
        (other == "Total Sleep (min)" && field.ends_with("Sleep (min)"))
            || (field == "Cardio Load Status"
                && ["Strain", "Tolerance", "Cardio Load Ratio"].contains(&other))
            || (field == "Validity" && ["Alertness Grade", "Grade Classification"].contains(&other))
    }

    #[test]
    fn training_no_data_values_are_left_out_field_by_field() {
        let t = Form::Training;
        check(
            t,
            "/duration",
            "Duration (min)",
            &[json!("PT0S"), json!("PT-1S"), json!("-PT5M"), Value::Null],
            &[(json!("PT6S"), "0.1"), (json!("P7D"), "10080.0")],
        );
        check(
            t,
            "/distance",
            "Distance (km)",
            &[
                json!(0),
                json!(-1),
                json!(10_000_001_000.0_f64),
                json!(1e300),
                Value::Null,
            ],
            &[(json!(10.0), "0.01"), (json!(10_000_000.0), "10000.00")],
        );
        check(
            t,
            "/calories",
            "Calories",
            &[json!(0), json!(-1), json!(100_001), json!(1e300)],
            &[(json!(1), "1"), (json!(100_000), "100000")],
        );
        for (pointer, field) in [
            ("/heart_rate/average", "Average HR"),
            ("/heart_rate/maximum", "Maximum HR"),
        ] {
            check(
                t,
                pointer,
                field,
                &[json!(0), json!(-1), json!(19), json!(251), json!(1e300)],
                &[
                    (json!(20), "20"),
                    (json!(250), "250"),
                    (json!(148.5), "148.5"),
                ],
            );
        }
        check(
            t,
            "/training_load",
            "Training Load",
            &[json!(0), json!(-1.0), json!(100_000.5)],
            &[(json!(0.1), "0.1"), (json!(100_000), "100000")],
        );
        check(
            t,
            "/training_load_pro/cardio-load",
            "Cardio Load",
            &[json!(0), json!(-1)],
            &[(json!(0.1), "0.1")],
        );
        check(
            t,
            "/training_load_pro/muscle-load",
            "Muscle Load",
            &[json!(0.0), json!(-1)],
            &[(json!(0.1), "0.1")],
        );
        check(
            t,
            "/training_load_pro/cardio-load-interpretation",
            "Cardio Load",
            &[json!("NOT_AVAILABLE")],
            &[(json!("UNKNOWN"), "118.4"), (json!(7), "118.4")],
        );
        check(
            t,
            "/training_load_pro/muscle-load-interpretation",
            "Muscle Load",
            &[json!("NOT_AVAILABLE")],
            &[(json!("VERY_LOW"), "402")],
        );
        check(
            t,
            "/heart_rate_zones/4/in-zone",
            "Zone 5 (min)",
            &[json!("PT-1S"), json!("P8D"), json!("P99999999D")],
            &[(json!("PT0S"), "0.0"), (json!("P7D"), "10080.0")],
        );
        check(
            t,
            "/device",
            "Device",
            &[json!(""), json!("  "), Value::Null],
            &[(json!("Polar Pacer"), "Polar Pacer")],
        );
        check(
            t,
            "/detailed_sport_info",
            "Sport",
            &[],
            &[(json!(" "), "RUNNING"), (Value::Null, "RUNNING")],
        );
    }

    #[test]
    fn training_zones_that_are_all_zero_are_left_out() {
        let mut body = reference(Form::Training);
        for zone in body["heart_rate_zones"].as_array_mut().unwrap() {
            zone["in-zone"] = json!("PT0S");
        }
        let mapped = event(Form::Training, &body).unwrap();
        for index in 1..=5 {
            assert_eq!(mapped.value(&format!("Zone {index} (min)")), None);
        }
        assert_eq!(mapped.value("Average HR"), Some("148"));
    }

    #[test]
    fn a_session_without_any_measured_value_is_still_an_event() {
        let body = json!({
            "id": "Bare1", "start_time": "2025-09-02T07:05:00", "start_time_utc_offset": 0,
            "duration": "PT0S", "calories": 0, "distance": 0, "heart_rate": {"average": 0, "maximum": 0},
            "training_load": 0, "sport": "STRENGTH_TRAINING",
            "heart_rate_zones": [{"index": 1, "in-zone": "PT0S"}],
            "training_load_pro": {"cardio-load": -1, "muscle-load": -1}
        });
        let mapped = event(Form::Training, &body).unwrap();
        let fields: Vec<&str> = mapped.pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(fields, ["Polar Exercise ID", "Sport"]);
        assert_eq!(mapped.finish, mapped.start);
    }

    #[test]
    fn activity_no_data_values_are_left_out_field_by_field() {
        let a = Form::Activity;
        check(
            a,
            "/steps",
            "Steps",
            &[json!(0), json!(-1), json!(300_001), json!(1e12)],
            &[(json!(1), "1"), (json!(300_000), "300000")],
        );
        check(
            a,
            "/active_calories",
            "Active Calories",
            &[json!(0), json!(-5), json!(50_001)],
            &[(json!(1), "1"), (json!(50_000), "50000")],
        );
        check(
            a,
            "/calories",
            "Total Calories",
            &[json!(0), json!(-5), json!(1e9)],
            &[(json!(1), "1")],
        );
        check(
            a,
            "/active_duration",
            "Active Time (min)",
            &[
                json!("PT0S"),
                json!("PT-1M"),
                json!("PT25H1S"),
                json!("P99999999D"),
            ],
            &[(json!("PT1M"), "1.0"), (json!("PT25H"), "1500.0")],
        );
        check(
            a,
            "/distance_from_steps",
            "Distance (km)",
            &[json!(0), json!(-1), json!(1_000_001)],
            &[(json!(1000), "1.00")],
        );
    }

    #[test]
    fn sleep_no_data_values_are_left_out_field_by_field() {
        let s = Form::Sleep;
        check(
            s,
            "/sleep_score",
            "Sleep Score",
            &[json!(0), json!(-1), json!(101), json!(1e300)],
            &[(json!(1), "1"), (json!(100), "100")],
        );
        check(
            s,
            "/sleep_charge",
            "Sleep Charge",
            &[json!(-1), json!(0), json!(6), json!(0.5)],
            &[(json!(1), "1"), (json!(5), "5")],
        );
        check(
            s,
            "/continuity",
            "Continuity",
            &[json!(0), json!(-1), json!(5.1)],
            &[(json!(1.0), "1"), (json!(5), "5"), (json!(3.4), "3.4")],
        );
        check(
            s,
            "/total_interruption_duration",
            "Interruptions (min)",
            &[json!(-1), json!(86_401)],
            &[(json!(0), "0.0"), (json!(86_400), "1440.0")],
        );
        for (pointer, field) in [
            ("/deep_sleep", "Deep Sleep (min)"),
            ("/rem_sleep", "REM Sleep (min)"),
            ("/light_sleep", "Light Sleep (min)"),
        ] {
            check(
                s,
                pointer,
                field,
                &[json!(-1), json!(86_401), json!(9e18)],
                &[(json!(0), "0.0"), (json!(60), "1.0")],
            );
        }
    }

    #[test]
    fn a_stage_that_is_no_data_does_not_count_towards_total_sleep() {
        let mapped = event(Form::Sleep, &with(Form::Sleep, "/deep_sleep", &json!(-1))).unwrap();
        // light 14820 + REM 5610 + unrecognised 0 seconds.
        assert_eq!(mapped.value("Total Sleep (min)"), Some("340.5"));
        let mapped = event(
            Form::Sleep,
            &with(Form::Sleep, "/unrecognized_sleep_stage", &json!(-60)),
        )
        .unwrap();
        assert_eq!(mapped.value("Total Sleep (min)"), Some("431.0"));
    }

    #[test]
    fn sleep_stages_that_are_all_zero_are_left_out_with_their_total() {
        let mut body = reference(Form::Sleep);
        for stage in [
            "light_sleep",
            "deep_sleep",
            "rem_sleep",
            "unrecognized_sleep_stage",
        ] {
            body[stage] = json!(0);
        }
        let mapped = event(Form::Sleep, &body).unwrap();
        for field in [
            "Total Sleep (min)",
            "Deep Sleep (min)",
            "REM Sleep (min)",
            "Light Sleep (min)",
        ] {
            assert_eq!(mapped.value(field), None, "{field}");
        }
        assert_eq!(mapped.value("Sleep Score"), Some("78"));
    }

    #[test]
    fn recharge_no_data_values_are_left_out_field_by_field() {
        let r = Form::Recharge;
        check(
            r,
            "/nightly_recharge_status",
            "Nightly Recharge Status",
            &[json!(0), json!(-1), json!(7)],
            &[(json!(1), "1"), (json!(6), "6")],
        );
        check(
            r,
            "/ans_charge",
            "ANS Charge",
            &[json!(-10.1), json!(10.1), json!(1e300), json!(-1e300)],
            &[
                (json!(0), "0"),
                (json!(0.0), "0"),
                (json!(-10), "-10"),
                (json!(10.0), "10"),
            ],
        );
        check(
            r,
            "/heart_rate_avg",
            "Average HR",
            &[json!(0), json!(19), json!(251)],
            &[(json!(20), "20"), (json!(250), "250")],
        );
        check(
            r,
            "/heart_rate_variability_avg",
            "Average HRV (ms)",
            &[json!(0), json!(-1), json!(1001)],
            &[(json!(1), "1"), (json!(1000), "1000")],
        );
        check(
            r,
            "/breathing_rate_avg",
            "Breathing Rate",
            &[json!(0), json!(-1), json!(61)],
            &[(json!(0.5), "0.5"), (json!(60), "60")],
        );
    }

    #[test]
    fn cardio_load_no_data_values_are_left_out_field_by_field() {
        let c = Form::CardioLoad;
        check(
            c,
            "/cardio_load",
            "Cardio Load",
            &[json!(-1), json!(100_001), json!(1e300), Value::Null],
            &[(json!(0), "0"), (json!(118.4), "118.4")],
        );
        for (pointer, field) in [("/strain", "Strain"), ("/tolerance", "Tolerance")] {
            check(
                c,
                pointer,
                field,
                &[json!(-0.5), json!(100_001), json!(1e300)],
                &[(json!(0), "0"), (json!(96.2), "96.2")],
            );
        }
        check(
            c,
            "/cardio_load_ratio",
            "Cardio Load Ratio",
            &[json!(-1), json!(100.5)],
            &[(json!(0), "0"), (json!(100), "100"), (json!(1.18), "1.18")],
        );
        check(
            c,
            "/cardio_load_status",
            "Cardio Load Status",
            &[
                json!("LOAD_STATUS_NOT_AVAILABLE"),
                json!("UNRECOGNIZED"),
                json!(" "),
                Value::Null,
            ],
            &[(json!("OVERREACHING"), "OVERREACHING")],
        );
    }

    #[test]
    fn a_cardio_load_day_without_a_status_keeps_only_a_positive_load() {
        let not_available = with(
            Form::CardioLoad,
            "/cardio_load_status",
            &json!("LOAD_STATUS_NOT_AVAILABLE"),
        );
        let mapped = event(Form::CardioLoad, &not_available).unwrap();
        let fields: Vec<&str> = mapped.pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(fields, ["Cardio Load Date", "Cardio Load"]);
        let mut zeros = not_available;
        zeros["cardio_load"] = json!(0);
        assert!(
            event(Form::CardioLoad, &zeros).is_none(),
            "nothing computed, no event"
        );
    }

    #[test]
    fn alertness_no_data_values_are_left_out_field_by_field() {
        let a = Form::Alertness;
        check(
            a,
            "/grade",
            "Alertness Grade",
            &[json!(-0.1), json!(10.1), json!(1e300), Value::Null],
            &[(json!(0), "0"), (json!(10), "10"), (json!(9.9), "9.9")],
        );
        for (pointer, field, unknown, other) in [
            (
                "/grade_classification",
                "Grade Classification",
                "GRADE_CLASSIFICATION_UNKNOWN",
                "GRADE_CLASSIFICATION_WEAK",
            ),
            (
                "/sleep_inertia",
                "Sleep Inertia",
                "SLEEP_INERTIA_UNKNOWN",
                "SLEEP_INERTIA_NO_INERTIA",
            ),
            (
                "/sleep_type",
                "Sleep Type",
                "SLEEP_TYPE_UNKNOWN",
                "SLEEP_TYPE_SECONDARY",
            ),
            (
                "/validity",
                "Validity",
                "VALIDITY_UNKNOWN",
                "VALIDITY_VALID",
            ),
        ] {
            check(
                a,
                pointer,
                field,
                &[json!(unknown), json!(""), Value::Null],
                &[(json!(other), other)],
            );
        }
    }

    #[test]
    fn an_alertness_grade_polar_calls_not_valid_is_left_out_with_its_classification() {
        for validity in ["VALIDITY_NOT_VALID", "VALIDITY_RESET", "VALIDITY_UNKNOWN"] {
            let body = with(Form::Alertness, "/validity", &json!(validity));
            let mapped = event(Form::Alertness, &body).unwrap();
            assert_eq!(mapped.value("Alertness Grade"), None, "{validity}");
            assert_eq!(mapped.value("Grade Classification"), None, "{validity}");
            assert_eq!(mapped.value("Sleep Inertia"), Some("SLEEP_INERTIA_MILD"));
        }
    }

    #[test]
    fn daily_heart_rate_counts_only_the_samples_that_are_data() {
        let full = event(Form::DailyHeartRate, &reference(Form::DailyHeartRate)).unwrap();
        let values = |e: &MappedEvent| -> Vec<String> {
            ["Lowest HR", "Average HR", "Highest HR", "Samples"]
                .iter()
                .map(|f| e.value(f).unwrap_or("-").to_string())
                .collect()
        };
        // (63 + 58 + 97 + 61) / 4 = 69.75
        assert_eq!(values(&full), ["58", "69.8", "97", "4"]);
        for marker in [
            json!(0),
            json!(-1),
            json!(19),
            json!(251),
            json!(1e300),
            Value::Null,
        ] {
            let body = with(
                Form::DailyHeartRate,
                "/heart_rate_samples/1/heart_rate",
                &marker,
            );
            let mapped = event(Form::DailyHeartRate, &body).unwrap();
            // (63 + 97 + 61) / 3 = 73.67
            assert_eq!(values(&mapped), ["61", "73.7", "97", "3"], "{marker}");
        }
        for (edge, expected) in [
            (json!(20), ["20", "60.3", "97", "4"]),
            (json!(250), ["61", "117.8", "250", "4"]),
        ] {
            let body = with(
                Form::DailyHeartRate,
                "/heart_rate_samples/1/heart_rate",
                &edge,
            );
            let mapped = event(Form::DailyHeartRate, &body).unwrap();
            assert_eq!(values(&mapped), expected, "{edge}");
        }
        let off_wrist = json!({"date": "2022-09-12", "heart_rate_samples": [
            {"heart_rate": 0, "sample_time": "00:02:08"}, {"heart_rate": 0, "sample_time": "00:07:08"}
        ]});
        assert!(
            event(Form::DailyHeartRate, &off_wrist).is_none(),
            "a day with no sample is no event"
        );
    }

    #[test]
    fn a_daily_record_without_any_measured_value_makes_no_event() {
        let night = json!({
            "date": "2025-09-02", "continuity": 0, "continuity_class": 0, "light_sleep": 0, "deep_sleep": 0,
            "rem_sleep": 0, "unrecognized_sleep_stage": 0, "sleep_score": 0, "sleep_charge": -1,
            "total_interruption_duration": -1, "heart_rate_samples": null, "hypnogram": null
        });
        assert!(event(Form::Sleep, &night).is_none(), "an empty night");
        let recharge = json!({
            "date": "2025-09-02", "heart_rate_avg": 0, "beat_to_beat_avg": 0, "heart_rate_variability_avg": 0,
            "breathing_rate_avg": 0, "nightly_recharge_status": 0, "ans_charge": -99, "hrv_samples": null
        });
        assert!(
            event(Form::Recharge, &recharge).is_none(),
            "an empty recharge"
        );
        let day = json!({
            "start_time": "2025-09-01T00:00:00", "active_duration": "PT0S", "calories": 0,
            "active_calories": 0, "steps": 0, "distance_from_steps": 0
        });
        assert!(event(Form::Activity, &day).is_none(), "an empty day");
        // One measured value is enough for an event.
        let mut slept = night.clone();
        slept["sleep_start_time"] = json!("2025-09-01T23:14:05+02:00");
        let mapped = event(Form::Sleep, &slept).unwrap();
        let fields: Vec<&str> = mapped.pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(fields, ["Sleep Date", "Sleep Start"]);
    }
}
