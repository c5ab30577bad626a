//! User-data endpoints: registration boundary, exact JSON shapes, windows, empty answers,
//! revisions and "not ready yet", over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta};
use common::{Harness, keys, start, start_default};
use polar_sim::{GenerateRequest, NewAccount, NewRecord, PolarSimConfig, RecordKind, UploadMode};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

const EXERCISE_REQUIRED: [&str; 12] = [
    "id",
    "upload_time",
    "polar_user",
    "device",
    "start_time",
    "start_time_utc_offset",
    "duration",
    "heart_rate",
    "training_load",
    "sport",
    "has_route",
    "detailed_sport_info",
];
const EXERCISE_OPTIONAL: [&str; 13] = [
    "device_id",
    "calories",
    "distance",
    "club_id",
    "club_name",
    "fat_percentage",
    "carbohydrate_percentage",
    "protein_percentage",
    "running-index",
    "training_load_pro",
    "heart_rate_zones",
    "samples",
    "route",
];
const SLEEP_KEYS: [&str; 24] = [
    "continuity",
    "continuity_class",
    "date",
    "deep_sleep",
    "device_id",
    "group_duration_score",
    "group_regeneration_score",
    "group_solidity_score",
    "heart_rate_samples",
    "hypnogram",
    "light_sleep",
    "long_interruption_duration",
    "polar_user",
    "rem_sleep",
    "short_interruption_duration",
    "sleep_charge",
    "sleep_cycles",
    "sleep_end_time",
    "sleep_goal",
    "sleep_rating",
    "sleep_score",
    "sleep_start_time",
    "total_interruption_duration",
    "unrecognized_sleep_stage",
];
const RECHARGE_KEYS: [&str; 11] = [
    "ans_charge",
    "ans_charge_status",
    "beat_to_beat_avg",
    "breathing_rate_avg",
    "breathing_samples",
    "date",
    "heart_rate_avg",
    "heart_rate_variability_avg",
    "hrv_samples",
    "nightly_recharge_status",
    "polar_user",
];
const ACTIVITY_KEYS: [&str; 10] = [
    "active_calories",
    "active_duration",
    "calories",
    "daily_activity",
    "distance_from_steps",
    "end_time",
    "inactive_duration",
    "inactivity_alert_count",
    "start_time",
    "steps",
];

fn add(h: &Harness, id: i64, kind: RecordKind, date: Option<NaiveDate>) {
    add_with(h, id, kind, date, Map::new(), true);
}

fn add_with(
    h: &Harness,
    id: i64,
    kind: RecordKind,
    date: Option<NaiveDate>,
    values: Map<String, Value>,
    ready: bool,
) {
    h.sim
        .add_record(
            id,
            NewRecord {
                kind,
                date,
                start_time: None,
                values,
                ready,
                uploaded_at: None,
            },
        )
        .unwrap();
}

fn array(value: &Value) -> Vec<Value> {
    value.as_array().expect("JSON array").clone()
}

#[tokio::test]
async fn data_uploaded_before_registration_is_not_served_unless_configured() {
    for history in [false, true] {
        let h = start(PolarSimConfig {
            history_before_registration: history,
            ..PolarSimConfig::default()
        })
        .await;
        let account = h.sim.create_account(NewAccount::default()).unwrap();
        let id = account.polar_user_id;
        let summary = h
            .sim
            .generate(
                id,
                &GenerateRequest {
                    days: 10,
                    ..GenerateRequest::default()
                },
            )
            .unwrap();
        assert!(!summary.exercises.is_empty());
        assert_eq!(summary.sleeps.len(), 10);
        // Make sure registration is strictly after every natural upload.
        h.sim.advance_clock(1).unwrap();
        let token = h.token_for(id).await;
        assert_eq!(h.register(&token, "m").await.status(), StatusCode::OK);

        let exercises = array(&h.get_json("/v3/exercises", &token).await);
        let nights = array(&h.get_json("/v3/users/sleep", &token).await["nights"]);
        let activities = array(&h.get_json("/v3/users/activities", &token).await);
        let recharges = array(&h.get_json("/v3/users/nightly-recharge", &token).await["recharges"]);
        if history {
            assert_eq!(exercises.len(), summary.exercises.len());
            assert_eq!(nights.len(), 10);
            assert_eq!(activities.len(), 10);
            assert_eq!(recharges.len(), summary.recharges.len());
        } else {
            assert!(exercises.is_empty());
            assert!(nights.is_empty());
            assert!(activities.is_empty());
            assert!(recharges.is_empty());
            let date = summary.sleeps[0];
            assert_eq!(
                h.get(&format!("/v3/users/sleep/{date}"), &token)
                    .await
                    .status(),
                StatusCode::NOT_FOUND
            );
            assert!(h.sim.records(id, None).unwrap().iter().all(|r| !r.served));
            // Data uploaded after registration is served.
            h.sim
                .generate(
                    id,
                    &GenerateRequest {
                        days: 10,
                        upload: UploadMode::Now,
                        ..GenerateRequest::default()
                    },
                )
                .unwrap();
            let nights = array(&h.get_json("/v3/users/sleep", &token).await["nights"]);
            assert_eq!(nights.len(), 10);
        }
    }
}

#[tokio::test]
async fn exercises_have_polar_field_names_and_embed_parts_only_on_request() {
    let h = start_default().await;
    let (id, token) = h.linked(NewAccount::default()).await;
    let summary = h
        .sim
        .generate(
            id,
            &GenerateRequest {
                days: 30,
                upload: UploadMode::Now,
                ..GenerateRequest::default()
            },
        )
        .unwrap();
    assert!(summary.exercises.len() >= 15);
    let allowed: BTreeSet<&str> = EXERCISE_REQUIRED
        .iter()
        .chain(EXERCISE_OPTIONAL.iter())
        .copied()
        .collect();

    let plain = array(&h.get_json("/v3/exercises", &token).await);
    assert_eq!(plain.len(), summary.exercises.len());
    for exercise in &plain {
        let names = keys(exercise);
        for required in EXERCISE_REQUIRED {
            assert!(names.iter().any(|n| n == required), "{required} missing");
        }
        for name in &names {
            assert!(allowed.contains(name.as_str()), "unexpected field {name}");
        }
        for embedded in ["heart_rate_zones", "samples", "route"] {
            assert!(exercise.get(embedded).is_none());
        }
        let start = exercise["start_time"].as_str().unwrap();
        assert!(NaiveDateTime::parse_from_str(start, "%Y-%m-%dT%H:%M:%S").is_ok());
        assert!(exercise["upload_time"].as_str().unwrap().ends_with('Z'));
        assert!(exercise["duration"].as_str().unwrap().starts_with("PT"));
        assert_eq!(keys(&exercise["heart_rate"]), ["average", "maximum"]);
        assert!(exercise["id"].is_string());
    }

    // With all flags the answer is exactly the stored record.
    let full = array(
        &h.get_json("/v3/exercises?zones=true&samples=true&route=true", &token)
            .await,
    );
    let stored = h.sim.records(id, Some(RecordKind::Exercise)).unwrap();
    for exercise in &full {
        let record = stored
            .iter()
            .find(|r| Value::String(r.key.clone()) == exercise["id"])
            .unwrap();
        assert_eq!(exercise, &record.body);
        let zones = array(&exercise["heart_rate_zones"]);
        assert_eq!(zones.len(), 5);
        assert_eq!(
            keys(&zones[0]),
            ["in-zone", "index", "lower-limit", "upper-limit"]
        );
        let samples = array(&exercise["samples"]);
        assert_eq!(keys(&samples[0]), ["data", "recording-rate", "sample-type"]);
        assert_eq!(samples[0]["sample-type"], "0");
        assert_eq!(
            exercise.get("route").is_some(),
            exercise["has_route"] == json!(true)
        );
    }
    let with_route = full.iter().find(|e| e.get("route").is_some()).unwrap();
    assert_eq!(
        keys(&array(&with_route["route"])[0]),
        ["fix", "latitude", "longitude", "satellites", "time"]
    );
    let with_load = full
        .iter()
        .find(|e| e.get("training_load_pro").is_some())
        .unwrap();
    assert_eq!(
        keys(&with_load["training_load_pro"]),
        [
            "cardio-load",
            "cardio-load-interpretation",
            "date",
            "muscle-load",
            "muscle-load-interpretation",
            "perceived-load",
            "perceived-load-interpretation",
            "user-rpe"
        ]
    );

    let one_id = full[0]["id"].as_str().unwrap();
    let one = h
        .get_json(&format!("/v3/exercises/{one_id}?zones=true"), &token)
        .await;
    assert!(one.get("heart_rate_zones").is_some());
    assert!(one.get("samples").is_none());
    assert_eq!(
        h.get("/v3/exercises/NoSuchId", &token).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.get("/v3/exercises?zones=maybe", &token).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn exercises_age_out_thirty_days_after_upload() {
    let h = start_default().await;
    let (id, token) = h.linked(NewAccount::default()).await;
    let mut values = Map::new();
    values.insert("id".into(), json!("Old1"));
    add_with(&h, id, RecordKind::Exercise, None, values, true);
    h.sim.advance_clock(29 * 86_400).unwrap();
    assert_eq!(array(&h.get_json("/v3/exercises", &token).await).len(), 1);
    assert_eq!(
        h.get("/v3/exercises/Old1", &token).await.status(),
        StatusCode::OK
    );
    h.sim.advance_clock(2 * 86_400).unwrap();
    assert!(array(&h.get_json("/v3/exercises", &token).await).is_empty());
    assert_eq!(
        h.get("/v3/exercises/Old1", &token).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn activity_list_date_and_range_endpoints() {
    let h = start_default().await;
    let (id, token) = h
        .linked(NewAccount {
            utc_offset_minutes: Some(-570),
            ..NewAccount::default()
        })
        .await;
    let today = h.safe_local_today(-570);
    let day = |back: i64| today - TimeDelta::days(back);
    for back in [1, 27, 28] {
        add(&h, id, RecordKind::Activity, Some(day(back)));
    }
    let dates_of = |list: &Vec<Value>| -> Vec<String> {
        list.iter()
            .map(|a| a["start_time"].as_str().unwrap()[..10].to_owned())
            .collect()
    };

    let list = array(&h.get_json("/v3/users/activities", &token).await);
    assert_eq!(dates_of(&list), [day(27).to_string(), day(1).to_string()]);
    for activity in &list {
        assert_eq!(keys(activity), ACTIVITY_KEYS);
    }
    let first = &list[0];
    assert_eq!(first["start_time"], format!("{}T00:00:00", day(27)));
    assert_eq!(first["end_time"], format!("{}T23:59:59", day(27)));
    assert!(first["active_duration"].as_str().unwrap().starts_with("PT"));

    let with_steps = h
        .get_json(
            &format!("/v3/users/activities/{}?steps=true", day(1)),
            &token,
        )
        .await;
    assert_eq!(keys(&with_steps["samples"]), ["date", "steps"]);
    assert_eq!(
        keys(&with_steps["samples"]["steps"]),
        ["interval_ms", "samples", "total_steps"]
    );
    assert_eq!(
        with_steps["samples"]["steps"]["total_steps"],
        with_steps["steps"]
    );
    let step_sample = &array(&with_steps["samples"]["steps"]["samples"])[0];
    assert_eq!(keys(step_sample), ["steps", "timestamp"]);
    let other_parts = h
        .get_json(
            &format!(
                "/v3/users/activities/{}?activity_zones=true&inactivity_stamps=true",
                day(1)
            ),
            &token,
        )
        .await;
    assert_eq!(
        keys(&other_parts["samples"]),
        ["activity_zones", "date", "inactivity_stamps"]
    );

    let empty = h
        .get(&format!("/v3/users/activities/{}", day(5)), &token)
        .await;
    assert_eq!(empty.status(), StatusCode::NO_CONTENT);
    assert!(empty.bytes().await.unwrap().is_empty());
    for bad in [
        day(366).to_string(),
        "2025-13-01".to_owned(),
        "yesterday".to_owned(),
    ] {
        assert_eq!(
            h.get(&format!("/v3/users/activities/{bad}"), &token)
                .await
                .status(),
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }

    for path in ["/v3/users/activities/", "/v3/users/activities"] {
        let range = array(
            &h.get_json(&format!("{path}?from={}&to={}", day(27), today), &token)
                .await,
        );
        assert_eq!(dates_of(&range), [day(27).to_string(), day(1).to_string()]);
    }
    let older = array(
        &h.get_json(
            &format!("/v3/users/activities/?from={}&to={}", day(28), day(1)),
            &token,
        )
        .await,
    );
    assert_eq!(dates_of(&older).len(), 3);
    let to_defaults_to_today = array(
        &h.get_json(&format!("/v3/users/activities/?from={}", day(2)), &token)
            .await,
    );
    assert_eq!(dates_of(&to_defaults_to_today), [day(1).to_string()]);
    for query in [
        format!("from={}&to={}", day(28), today),
        format!("from={}&to={}", day(1), day(3)),
        format!("from={}&to={}", day(370), day(360)),
        format!("to={today}"),
        "from=bad".to_owned(),
    ] {
        assert_eq!(
            h.get(&format!("/v3/users/activities/?{query}"), &token)
                .await
                .status(),
            StatusCode::BAD_REQUEST,
            "{query}"
        );
    }
}

#[tokio::test]
async fn sleep_list_and_date_endpoints() {
    let h = start_default().await;
    let (id, token) = h
        .linked(NewAccount {
            utc_offset_minutes: Some(345),
            ..NewAccount::default()
        })
        .await;
    let today = h.safe_local_today(345);
    add(&h, id, RecordKind::Sleep, Some(today));
    add(&h, id, RecordKind::Sleep, Some(today - TimeDelta::days(28)));

    let body = h.get_json("/v3/users/sleep", &token).await;
    assert_eq!(keys(&body), ["nights"]);
    let nights = array(&body["nights"]);
    assert_eq!(nights.len(), 1);
    let night = &nights[0];
    assert_eq!(keys(night), SLEEP_KEYS);
    assert_eq!(night["date"], today.to_string());
    let start = DateTime::parse_from_rfc3339(night["sleep_start_time"].as_str().unwrap()).unwrap();
    let end = DateTime::parse_from_rfc3339(night["sleep_end_time"].as_str().unwrap()).unwrap();
    assert!(
        night["sleep_end_time"]
            .as_str()
            .unwrap()
            .ends_with("+05:45")
    );
    assert_eq!(end.date_naive(), today);
    let parts: i64 = [
        "light_sleep",
        "deep_sleep",
        "rem_sleep",
        "unrecognized_sleep_stage",
        "total_interruption_duration",
    ]
    .iter()
    .map(|name| night[*name].as_i64().unwrap())
    .sum();
    assert_eq!(parts, (end - start).num_seconds());
    let hypnogram = night["hypnogram"].as_object().unwrap();
    assert!(hypnogram.keys().all(|k| k.len() == 5 && &k[2..3] == ":"));
    assert!(
        hypnogram
            .values()
            .all(|v| (0..=5).contains(&v.as_i64().unwrap()))
    );

    assert_eq!(
        h.get_json(&format!("/v3/users/sleep/{today}"), &token)
            .await,
        *night
    );
    let missing = h
        .get(
            &format!("/v3/users/sleep/{}", today - TimeDelta::days(3)),
            &token,
        )
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        h.get("/v3/users/sleep/2025-02-30", &token).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn nightly_recharge_not_ready_yet_is_404_until_marked_ready() {
    let h = start_default().await;
    let (id, token) = h.linked(NewAccount::default()).await;
    let today = h.safe_local_today(h.sim.account(id).unwrap().utc_offset_minutes);
    add(&h, id, RecordKind::Sleep, Some(today));
    add_with(&h, id, RecordKind::Recharge, Some(today), Map::new(), false);

    let path = format!("/v3/users/nightly-recharge/{today}");
    assert_eq!(h.get(&path, &token).await.status(), StatusCode::NOT_FOUND);
    let list = h.get_json("/v3/users/nightly-recharge", &token).await;
    assert_eq!(list, json!({"recharges": []}));
    assert_eq!(
        h.get_json(&format!("/v3/users/sleep/{today}"), &token)
            .await["date"],
        today.to_string()
    );

    let response = h
        .http
        .post(h.url(&format!(
            "/_sim/accounts/{id}/records/recharge/{today}/ready"
        )))
        .json(&json!({"ready": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let recharge = h.get_json(&path, &token).await;
    assert_eq!(keys(&recharge), RECHARGE_KEYS);
    let ans = recharge["ans_charge"].as_f64().unwrap();
    assert!((-10.0..=10.0).contains(&ans));
    assert!((1..=6).contains(&recharge["nightly_recharge_status"].as_i64().unwrap()));
    assert_eq!(
        array(&h.get_json("/v3/users/nightly-recharge", &token).await["recharges"]).len(),
        1
    );
}

#[tokio::test]
async fn revised_sleep_and_activity_are_served_from_then_on() {
    let h = start_default().await;
    let (id, token) = h.linked(NewAccount::default()).await;
    let today = h.safe_local_today(h.sim.account(id).unwrap().utc_offset_minutes);
    let yesterday = today - TimeDelta::days(1);
    let mut values = Map::new();
    values.insert("sleep_score".into(), json!(70));
    add_with(&h, id, RecordKind::Sleep, Some(today), values, true);
    add(&h, id, RecordKind::Activity, Some(yesterday));
    let sleep_path = format!("/v3/users/sleep/{today}");
    assert_eq!(h.get_json(&sleep_path, &token).await["sleep_score"], 70);

    let revised = h
        .http
        .post(h.url(&format!("/_sim/accounts/{id}/records/sleep/{today}/revise")))
        .json(&json!({"values": {"sleep_score": 55, "deep_sleep": 4321}}))
        .send()
        .await
        .unwrap();
    assert_eq!(revised.status(), StatusCode::OK);
    let view: Value = revised.json().await.unwrap();
    assert_eq!(view["version"], 2);
    let night = h.get_json(&sleep_path, &token).await;
    assert_eq!(night["sleep_score"], 55);
    assert_eq!(night["deep_sleep"], 4321);

    let mut steps = Map::new();
    steps.insert("steps".into(), json!(23_456));
    h.sim
        .revise_record(id, RecordKind::Activity, &yesterday.to_string(), steps)
        .unwrap();
    let activity = h
        .get_json(&format!("/v3/users/activities/{yesterday}"), &token)
        .await;
    assert_eq!(activity["steps"], 23_456);

    let unknown = h
        .http
        .post(h.url(&format!(
            "/_sim/accounts/{id}/records/sleep/1999-01-01/revise"
        )))
        .json(&json!({"values": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn added_records_take_given_values_via_the_control_api() {
    let h = start_default().await;
    let (id, token) = h.linked(NewAccount::default()).await;
    let created = h
        .http
        .post(h.url(&format!("/_sim/accounts/{id}/records")))
        .json(&json!({"kind": "exercise", "values": {"id": "Custom1", "calories": 999, "sport": "RUNNING"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let view: Value = created.json().await.unwrap();
    assert_eq!(view["key"], "Custom1");
    assert_eq!(view["served"], true);
    let exercise = h.get_json("/v3/exercises/Custom1", &token).await;
    assert_eq!(exercise["calories"], 999);
    assert_eq!(exercise["id"], "Custom1");

    let listed: Value = h
        .http
        .get(h.url(&format!("/_sim/accounts/{id}/records?kind=exercise")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(array(&listed).len(), 1);

    for (body, status) in [
        (json!({"kind": "weather"}), StatusCode::BAD_REQUEST),
        (
            json!({"kind": "sleep", "date": "not-a-date"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"kind": "sleep", "date": "0001-01-01"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let response = h
            .http
            .post(h.url(&format!("/_sim/accounts/{id}/records")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{body}");
    }
    let unknown_account = h
        .http
        .post(h.url("/_sim/accounts/1/records"))
        .json(&json!({"kind": "sleep"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_account.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn odd_requests_get_polar_errors_and_the_simulator_keeps_serving() {
    let h = start_default().await;
    let (_, token) = h.linked(NewAccount::default()).await;
    let unknown = h.get("/v3/unknown/endpoint", &token).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(
        keys(&body),
        ["corrId", "errorType", "message", "status", "timestamp"]
    );
    for path in [
        "/v3/users/activities/?from=%ZZ",
        "/v3/users/sleep/%00",
        "/v3/users/nightly-recharge/99999-99-99",
        "/v3/users/activities/2025-01-01?steps=sure",
    ] {
        let status = h.get(path, &token).await.status();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
    }
    let wrong_scheme = h
        .http
        .get(h.url("/v3/exercises"))
        .header(reqwest::header::AUTHORIZATION, "Token abc")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_scheme.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        h.get("/v3/users/sleep", &token).await.status(),
        StatusCode::OK
    );
}
