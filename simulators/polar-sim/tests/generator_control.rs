//! Seeded data generator (determinism, realism, time zones), the control API over HTTP, and
//! the `polar-sim` binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use common::{Harness, location, start, start_default};
use polar_sim::{GenerateRequest, NewAccount, PolarSimConfig, RecordKind};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Seconds in an ISO-8601 duration such as `PT1H2M3.5S` (test-side parser).
fn duration_seconds(text: &str) -> f64 {
    let mut rest = text.strip_prefix("PT").expect("PT prefix");
    let mut total = 0.0;
    for (unit, factor) in [('H', 3600.0), ('M', 60.0), ('S', 1.0)] {
        if let Some((number, tail)) = rest.split_once(unit) {
            total += number.parse::<f64>().unwrap() * factor;
            rest = tail;
        }
    }
    assert!(rest.is_empty(), "unparsed duration {text}");
    total
}

async fn records_json(h: &Harness, id: i64) -> Value {
    h.http
        .get(h.url(&format!("/_sim/accounts/{id}/records")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn seeded_history(seed: u64) -> Value {
    let h = start(PolarSimConfig {
        seed,
        ..PolarSimConfig::default()
    })
    .await;
    let created = h
        .http
        .post(h.url("/_sim/accounts"))
        .json(&json!({"polar_user_id": 48211902, "utc_offset_minutes": 120}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let generated = h
        .http
        .post(h.url("/_sim/accounts/48211902/generate"))
        .json(&json!({"days": 30, "end_date": "2025-09-30"}))
        .send()
        .await
        .unwrap();
    assert_eq!(generated.status(), StatusCode::OK);
    records_json(&h, 48211902).await
}

#[tokio::test]
async fn the_same_seed_generates_identical_json() {
    let first = seeded_history(11).await;
    let second = seeded_history(11).await;
    let other = seeded_history(12).await;
    assert!(first.as_array().unwrap().len() > 100);
    assert_eq!(first, second);
    assert_ne!(first, other);
}

fn bodies(records: &[polar_sim::RecordView]) -> Vec<&Value> {
    records.iter().map(|record| &record.body).collect()
}

#[tokio::test]
async fn generated_history_is_realistic() {
    let h = start(PolarSimConfig {
        seed: 3,
        ..PolarSimConfig::default()
    })
    .await;
    let offset = 825;
    let id = h
        .sim
        .create_account(NewAccount {
            utc_offset_minutes: Some(offset),
            ..NewAccount::default()
        })
        .unwrap()
        .polar_user_id;
    let summary = h
        .sim
        .generate(
            id,
            &GenerateRequest {
                days: 60,
                end_date: NaiveDate::from_ymd_opt(2025, 9, 29),
                ..GenerateRequest::default()
            },
        )
        .unwrap();
    assert_eq!(summary.activities.len(), 60);
    assert_eq!(summary.sleeps.len(), 60);
    assert!(summary.recharges.len() >= 45 && summary.recharges.len() < 60);
    assert!(summary.exercises.len() >= 40);

    let exercises = h.sim.records(id, Some(RecordKind::Exercise)).unwrap();
    let mut midnight_crossers = 0;
    let mut after_midnight = 0;
    let mut at_noon = 0;
    for record in &exercises {
        let body = &record.body;
        let start = NaiveDateTime::parse_from_str(
            body["start_time"].as_str().unwrap(),
            "%Y-%m-%dT%H:%M:%S",
        )
        .unwrap();
        assert_eq!(body["start_time_utc_offset"], offset);
        let seconds = duration_seconds(body["duration"].as_str().unwrap());
        let end_local = start + TimeDelta::milliseconds((seconds * 1000.0) as i64);
        if end_local.date() > start.date() {
            midnight_crossers += 1;
        }
        match start.time() {
            time if time < NaiveTime::from_hms_opt(1, 0, 0).unwrap() => after_midnight += 1,
            time if (NaiveTime::from_hms_opt(12, 0, 0).unwrap()
                ..NaiveTime::from_hms_opt(13, 0, 0).unwrap())
                .contains(&time) =>
            {
                at_noon += 1
            }
            _ => {}
        }
        // UTC = local − offset: the upload comes minutes to hours after the end.
        let end_utc = (end_local - TimeDelta::minutes(i64::from(offset))).and_utc();
        let upload: DateTime<Utc> = body["upload_time"].as_str().unwrap().parse().unwrap();
        let lag = upload - end_utc;
        assert!(
            lag >= TimeDelta::zero() && lag <= TimeDelta::hours(3),
            "upload {upload} vs end {end_utc}"
        );
        assert_eq!(record.uploaded_at, upload);
        if body["sport"] == "STRENGTH_TRAINING" {
            assert!(body.get("distance").is_none());
            assert_eq!(body["has_route"], false);
        }
    }
    assert!(midnight_crossers >= 1, "no session crossing midnight");
    assert!(after_midnight >= 1, "no session starting 00:00-00:59");
    assert!(at_noon >= 1, "no session at 12:xx");
    let all = bodies(&exercises);
    let has = |field: &str| all.iter().filter(|b| b.get(field).is_some()).count();
    assert!(has("training_load_pro") > 0 && has("training_load_pro") < all.len());
    assert!(has("device_id") > 0 && has("device_id") < all.len());
    assert!(has("running-index") > 0);
    assert!(all.iter().any(|b| b["sport"] == "STRENGTH_TRAINING"));
    let durations: Vec<&str> = all
        .iter()
        .map(|b| b["duration"].as_str().unwrap())
        .collect();
    assert!(durations.iter().any(|d| d.contains('.')));
    assert!(
        durations
            .iter()
            .any(|d| d.contains('H') && !d.contains('.'))
    );

    for record in h.sim.records(id, Some(RecordKind::Sleep)).unwrap() {
        let body = &record.body;
        let start =
            DateTime::parse_from_rfc3339(body["sleep_start_time"].as_str().unwrap()).unwrap();
        let end = DateTime::parse_from_rfc3339(body["sleep_end_time"].as_str().unwrap()).unwrap();
        assert!(
            body["sleep_start_time"]
                .as_str()
                .unwrap()
                .ends_with("+13:45")
        );
        assert_eq!(end.date_naive().to_string(), record.key);
        let start_hour = start.naive_local().time();
        assert!(
            start_hour >= NaiveTime::from_hms_opt(22, 0, 0).unwrap()
                || start_hour < NaiveTime::from_hms_opt(1, 0, 0).unwrap(),
            "{start_hour}"
        );
        let end_hour = end.naive_local().time();
        assert!(
            (NaiveTime::from_hms_opt(6, 0, 0).unwrap()..NaiveTime::from_hms_opt(8, 0, 0).unwrap())
                .contains(&end_hour),
            "{end_hour}"
        );
        let stages: i64 = [
            "light_sleep",
            "deep_sleep",
            "rem_sleep",
            "unrecognized_sleep_stage",
        ]
        .iter()
        .map(|name| body[*name].as_i64().unwrap())
        .sum();
        let interruptions = body["total_interruption_duration"].as_i64().unwrap();
        assert_eq!(stages + interruptions, (end - start).num_seconds());
        assert!(
            body["deep_sleep"].as_i64().unwrap() > 0 && body["rem_sleep"].as_i64().unwrap() > 0
        );
    }
    for record in h.sim.records(id, Some(RecordKind::Activity)).unwrap() {
        let body = &record.body;
        let steps = body["steps"].as_u64().unwrap();
        assert!((2_000..=40_000).contains(&steps), "{steps}");
        let samples = body["samples"]["steps"]["samples"].as_array().unwrap();
        let stamps: Vec<&str> = samples
            .iter()
            .map(|s| s["timestamp"].as_str().unwrap())
            .collect();
        assert!(stamps.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(stamps.iter().all(|stamp| stamp.starts_with(&record.key)));
        assert!(body["calories"].as_u64().unwrap() > body["active_calories"].as_u64().unwrap());
    }
}

#[tokio::test]
async fn default_time_zones_span_minus_ten_to_plus_thirteen_forty_five() {
    let h = start_default().await;
    let offsets: BTreeSet<i32> = (0..12)
        .map(|_| {
            h.sim
                .create_account(NewAccount::default())
                .unwrap()
                .utc_offset_minutes
        })
        .collect();
    assert_eq!(
        offsets,
        BTreeSet::from([-600, -570, -180, 0, 60, 120, 330, 345, 525, 600, 765, 825])
    );
    for (offset, suffix) in [
        (-600, "-10:00"),
        (-570, "-09:30"),
        (345, "+05:45"),
        (825, "+13:45"),
    ] {
        let account = h
            .sim
            .accounts()
            .into_iter()
            .find(|account| account.utc_offset_minutes == offset)
            .unwrap();
        h.sim
            .generate(
                account.polar_user_id,
                &GenerateRequest {
                    days: 3,
                    end_date: NaiveDate::from_ymd_opt(2025, 9, 3),
                    ..GenerateRequest::default()
                },
            )
            .unwrap();
        let records = h.sim.records(account.polar_user_id, None).unwrap();
        for record in &records {
            match record.kind {
                RecordKind::Sleep => {
                    assert!(
                        record.body["sleep_end_time"]
                            .as_str()
                            .unwrap()
                            .ends_with(suffix)
                    );
                }
                RecordKind::Exercise => {
                    assert_eq!(record.body["start_time_utc_offset"], offset);
                }
                _ => {}
            }
        }
    }
}

#[tokio::test]
async fn generation_with_no_data_marks_records_the_way_polar_does_and_only_then() {
    let h = start(PolarSimConfig {
        seed: 5,
        ..PolarSimConfig::default()
    })
    .await;
    let generate = |id: i64, no_data: f64| {
        h.sim.generate(
            id,
            &GenerateRequest {
                days: 60,
                end_date: NaiveDate::from_ymd_opt(2025, 9, 29),
                no_data,
                ..GenerateRequest::default()
            },
        )
    };
    let marked = h
        .sim
        .create_account(NewAccount::default())
        .unwrap()
        .polar_user_id;
    let plain = h
        .sim
        .create_account(NewAccount::default())
        .unwrap()
        .polar_user_id;
    generate(marked, 0.5).unwrap();
    generate(plain, 0.0).unwrap();
    assert!(generate(plain, 1.5).is_err(), "no_data is a share");

    let count = |id: i64, kind: RecordKind, marker: &dyn Fn(&Value) -> bool| {
        let records = h.sim.records(id, Some(kind)).unwrap();
        (
            records.iter().filter(|r| marker(&r.body)).count(),
            records.len(),
        )
    };
    let no_heart_rate = |b: &Value| b["heart_rate"]["average"] == 0;
    let watch_off = |b: &Value| b["steps"] == 0 && b["active_duration"] == "PT0S";
    let no_charge = |b: &Value| b["sleep_charge"] == -1 && b["continuity"] == 0;
    let empty_night = |b: &Value| no_charge(b) && b.get("sleep_start_time").is_none();
    let no_hrv = |b: &Value| b["heart_rate_variability_avg"] == 0 && b.get("ans_charge").is_none();
    for (kind, marker) in [
        (
            RecordKind::Exercise,
            &no_heart_rate as &dyn Fn(&Value) -> bool,
        ),
        (RecordKind::Activity, &watch_off),
        (RecordKind::Sleep, &no_charge),
        (RecordKind::Sleep, &empty_night),
        (RecordKind::Recharge, &no_hrv),
    ] {
        let (hits, all) = count(marked, kind, marker);
        assert!(hits > 0 && hits < all, "{kind:?}: {hits} of {all} marked");
        assert_eq!(count(plain, kind, marker).0, 0, "{kind:?} without no_data");
    }
    // The marks are in place of values, not on top of a broken record: the rest stays realistic.
    for record in h.sim.records(marked, Some(RecordKind::Sleep)).unwrap() {
        assert!(record.body["date"].is_string());
        assert!(record.body["light_sleep"].is_i64());
    }
    // The marks are seeded: the same request marks the same records.
    let bodies_of = |id| -> Vec<Value> {
        h.sim
            .records(id, None)
            .unwrap()
            .into_iter()
            .map(|r| r.body)
            .collect()
    };
    let first = bodies_of(marked);
    generate(marked, 0.5).unwrap();
    assert_eq!(bodies_of(marked), first);
}

#[tokio::test]
async fn control_api_manages_accounts_session_clock_and_settings() {
    let h = start_default().await;
    let post = |path: &str, body: Value| h.http.post(h.url(path)).json(&body).send();
    let empty = h.http.post(h.url("/_sim/accounts")).send().await.unwrap();
    assert_eq!(empty.status(), StatusCode::CREATED);
    let view: Value = empty.json().await.unwrap();
    assert_eq!(view["consents_accepted"], true);
    assert_eq!(view["registered"], false);
    let given = post(
        "/_sim/accounts",
        json!({"polar_user_id": 777, "consents_accepted": false}),
    )
    .await
    .unwrap();
    assert_eq!(given.status(), StatusCode::CREATED);
    for (body, status) in [
        (json!({"polar_user_id": 777}), StatusCode::CONFLICT),
        (json!({"utc_offset_minutes": 900}), StatusCode::BAD_REQUEST),
        (json!({"nickname": "x"}), StatusCode::BAD_REQUEST),
        (json!({"polar_user_id": -1}), StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(
            post("/_sim/accounts", body.clone()).await.unwrap().status(),
            status,
            "{body}"
        );
    }
    let listed: Value = h
        .http
        .get(h.url("/_sim/accounts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let patched = h
        .http
        .patch(h.url("/_sim/accounts/777"))
        .json(&json!({"consents_accepted": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        patched.json::<Value>().await.unwrap()["consents_accepted"],
        true
    );
    assert_eq!(
        h.http
            .get(h.url("/_sim/accounts/1"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );

    assert_eq!(
        post("/_sim/session", json!({"polar_user_id": 777}))
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    let session: Value = h
        .http
        .get(h.url("/_sim/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session, json!({"polar_user_id": 777}));
    assert_eq!(
        post("/_sim/session", json!({"polar_user_id": 1}))
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );

    let before = h.sim.now();
    let clock: Value = post("/_sim/clock/advance", json!({"seconds": 3600}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(clock["offset_seconds"], 3600);
    let now: DateTime<Utc> = clock["now"].as_str().unwrap().parse().unwrap();
    assert!(now - before >= TimeDelta::seconds(3600));
    assert_eq!(
        post("/_sim/clock/advance", json!({"seconds": -5}))
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );

    let settings: Value = h
        .http
        .patch(h.url("/_sim/settings"))
        .json(&json!({"consent_mode": "auto_accept"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["consent_mode"], "auto_accept");
    let redirect = h
        .http
        .get(h.url("/oauth2/authorization"))
        .query(&[("response_type", "code"), ("client_id", h.sim.client_id())])
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), StatusCode::FOUND);
    assert!(location(&redirect).contains("code="));

    let generated: Value = h
        .http
        .post(h.url("/_sim/accounts/777/generate"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(generated["sleeps"].as_array().unwrap().len(), 7);
    assert_eq!(
        post("/_sim/accounts/777/generate", json!({"days": 0}))
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );
    let malformed = h
        .http
        .post(h.url("/_sim/faults"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn binary_prints_its_address_and_serves_pregenerated_accounts() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_polar-sim"))
        .args([
            "--port",
            "0",
            "--athletes",
            "2",
            "--days",
            "3",
            "--consent",
            "accept",
            "--redirect-uri",
            "http://127.0.0.1:4000/cb",
            "--rate-short-base",
            "9",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).await.unwrap();
    let base = line
        .trim()
        .strip_prefix("polar-sim listening on ")
        .expect("listening line")
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"));
    let http = reqwest::Client::new();
    let accounts: Value = http
        .get(format!("{base}/_sim/accounts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let accounts = accounts.as_array().unwrap();
    assert_eq!(accounts.len(), 2);
    let id = accounts[0]["polar_user_id"].as_i64().unwrap();
    let records: Value = http
        .get(format!("{base}/_sim/accounts/{id}/records?kind=sleep"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(records.as_array().unwrap().len(), 3);
    let settings: Value = http
        .get(format!("{base}/_sim/settings"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["consent_mode"], "auto_accept");
    assert_eq!(
        settings["redirect_uris"],
        json!(["http://127.0.0.1:4000/cb"])
    );
    assert_eq!(settings["rate_limits"]["short_base"], 9);
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}
