//! Polar's JSON shapes (reference §5, §8): exact field names, snake_case with kebab-case leftovers.

use std::collections::BTreeMap;

use serde::Serialize;

/// Non-transactional exercise (`/v3/exercises`).
#[derive(Debug, Serialize)]
pub(crate) struct Exercise {
    pub id: String,
    pub upload_time: String,
    pub polar_user: String,
    pub device: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    pub start_time: String,
    pub start_time_utc_offset: i32,
    pub duration: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calories: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance: Option<f64>,
    pub heart_rate: HeartRate,
    pub training_load: f64,
    pub sport: String,
    pub has_route: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub club_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub club_name: Option<String>,
    pub detailed_sport_info: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fat_percentage: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carbohydrate_percentage: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protein_percentage: Option<u32>,
    #[serde(rename = "running-index", skip_serializing_if = "Option::is_none")]
    pub running_index: Option<u32>,
    /// Stored always; served only with `zones=true`.
    pub heart_rate_zones: Vec<HeartRateZone>,
    /// Stored always; served only with `samples=true`.
    pub samples: Vec<ExerciseSamples>,
    /// Stored when `has_route`; served only with `route=true`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RoutePoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_load_pro: Option<TrainingLoadPro>,
}

#[derive(Debug, Serialize)]
pub(crate) struct HeartRate {
    pub average: u32,
    pub maximum: u32,
}

#[derive(Debug, Serialize)]
pub(crate) struct HeartRateZone {
    pub index: u32,
    #[serde(rename = "lower-limit")]
    pub lower_limit: u32,
    #[serde(rename = "upper-limit")]
    pub upper_limit: u32,
    #[serde(rename = "in-zone")]
    pub in_zone: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct ExerciseSamples {
    #[serde(rename = "recording-rate")]
    pub recording_rate: u32,
    #[serde(rename = "sample-type")]
    pub sample_type: String,
    pub data: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct RoutePoint {
    pub latitude: f64,
    pub longitude: f64,
    pub time: String,
    pub satellites: u32,
    pub fix: u32,
}

#[derive(Debug, Serialize)]
pub(crate) struct TrainingLoadPro {
    pub date: String,
    #[serde(rename = "cardio-load")]
    pub cardio_load: f64,
    #[serde(rename = "muscle-load")]
    pub muscle_load: f64,
    #[serde(rename = "perceived-load")]
    pub perceived_load: f64,
    #[serde(rename = "cardio-load-interpretation")]
    pub cardio_load_interpretation: String,
    #[serde(rename = "muscle-load-interpretation")]
    pub muscle_load_interpretation: String,
    #[serde(rename = "perceived-load-interpretation")]
    pub perceived_load_interpretation: String,
    #[serde(rename = "user-rpe")]
    pub user_rpe: String,
}

/// Non-transactional daily activity summary (`/v3/users/activities`).
#[derive(Debug, Serialize)]
pub(crate) struct Activity {
    pub start_time: String,
    pub end_time: String,
    pub active_duration: String,
    pub inactive_duration: String,
    pub daily_activity: f64,
    pub calories: u32,
    pub active_calories: u32,
    pub steps: u32,
    pub inactivity_alert_count: u32,
    pub distance_from_steps: f64,
    /// Stored always; each part served only with its query flag.
    pub samples: ActivitySamples,
}

#[derive(Debug, Serialize)]
pub(crate) struct ActivitySamples {
    pub date: String,
    pub steps: StepSamples,
    pub activity_zones: ZoneSamples,
    pub inactivity_stamps: Vec<InactivityStamp>,
}

#[derive(Debug, Serialize)]
pub(crate) struct StepSamples {
    pub interval_ms: u32,
    pub total_steps: u32,
    pub samples: Vec<StepSample>,
}

#[derive(Debug, Serialize)]
pub(crate) struct StepSample {
    pub steps: u32,
    pub timestamp: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct ZoneSamples {
    pub samples: Vec<ZoneSample>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ZoneSample {
    pub zone: String,
    pub timestamp: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct InactivityStamp {
    pub stamp: String,
}

/// Sleep Plus Stages night (`/v3/users/sleep`).
#[derive(Debug, Serialize)]
pub(crate) struct Sleep {
    pub polar_user: String,
    pub date: String,
    pub sleep_start_time: String,
    pub sleep_end_time: String,
    pub device_id: String,
    pub continuity: f64,
    pub continuity_class: u32,
    pub light_sleep: i64,
    pub deep_sleep: i64,
    pub rem_sleep: i64,
    pub unrecognized_sleep_stage: i64,
    pub sleep_score: u32,
    pub total_interruption_duration: i64,
    pub sleep_charge: u32,
    pub sleep_goal: i64,
    pub sleep_rating: u32,
    pub short_interruption_duration: i64,
    pub long_interruption_duration: i64,
    pub sleep_cycles: u32,
    pub group_duration_score: f64,
    pub group_solidity_score: f64,
    pub group_regeneration_score: f64,
    pub hypnogram: BTreeMap<String, u8>,
    pub heart_rate_samples: BTreeMap<String, u32>,
}

/// Nightly Recharge result (`/v3/users/nightly-recharge`).
#[derive(Debug, Serialize)]
pub(crate) struct Recharge {
    pub polar_user: String,
    pub date: String,
    pub heart_rate_avg: u32,
    pub beat_to_beat_avg: u32,
    pub heart_rate_variability_avg: u32,
    pub breathing_rate_avg: f64,
    pub nightly_recharge_status: u32,
    pub ans_charge: f64,
    pub ans_charge_status: u32,
    pub hrv_samples: BTreeMap<String, u32>,
    pub breathing_samples: BTreeMap<String, f64>,
}

/// One day of `/v3/users/cardio-load` (every list of it is a top-level array).
#[derive(Debug, Serialize)]
pub(crate) struct CardioLoad {
    pub date: String,
    pub cardio_load_status: String,
    pub cardio_load: f64,
    pub strain: f64,
    pub tolerance: f64,
    pub cardio_load_ratio: f64,
    pub cardio_load_level: CardioLoadLevels,
}

/// Session-load thresholds; Polar spells the last one with a dash.
#[derive(Debug, Serialize)]
pub(crate) struct CardioLoadLevels {
    pub very_low: f64,
    pub low: f64,
    pub medium: f64,
    pub high: f64,
    #[serde(rename = "very-high")]
    pub very_high: f64,
}

/// One SleepWise alertness period (`/v3/users/sleepwise/alertness`); every time is UTC.
#[derive(Debug, Serialize)]
pub(crate) struct Alertness {
    pub grade: f64,
    pub grade_validity_seconds: i64,
    pub grade_type: String,
    pub grade_classification: String,
    pub validity: String,
    pub sleep_inertia: String,
    pub sleep_type: String,
    pub result_type: String,
    pub period_start_time: String,
    pub period_end_time: String,
    pub sleep_period_start_time: String,
    pub sleep_period_end_time: String,
    pub sleep_timezone_offset_minutes: i32,
    pub hourly_data: Vec<AlertnessHour>,
}

#[derive(Debug, Serialize)]
pub(crate) struct AlertnessHour {
    pub validity: String,
    pub alertness_level: String,
    pub start_time: String,
    pub end_time: String,
}

/// One day of `/v3/users/continuous-heart-rate/{date}` (the range wraps days without `polar_user`).
#[derive(Debug, Serialize)]
pub(crate) struct HeartRateDay {
    pub polar_user: String,
    pub date: String,
    pub heart_rate_samples: Vec<HeartRateSample>,
}

#[derive(Debug, Serialize)]
pub(crate) struct HeartRateSample {
    pub heart_rate: u32,
    pub sample_time: String,
}
