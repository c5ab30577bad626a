//! Cardio load, SleepWise alertness and 24/7 heart rate over HTTP, with Polar's quirks: an entry per
//! day with `LOAD_STATUS_NOT_AVAILABLE`, UTC times with an offset, 204 and 404 for no data, the range
//! of heart rate wrapped differently from the single day, today's values revised during the day, naps,
//! their webhook events with real signatures, and rate limits counting every call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use common::{Harness, Receiver, keys, start_default};
use hmac::{Hmac, KeyInit, Mac};
use polar_sim::{
    GenerateRequest, NewAccount, NewRecord, RecordKind, UploadMode, WebhookEventRequest,
};
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;
use serde_json::{Map, Value, json};
use sha2::Sha256;

/// Kathmandu: local dates differ from UTC's for a quarter of the day.
const OFFSET: i32 = 345;

fn account() -> NewAccount {
    NewAccount {
        utc_offset_minutes: Some(OFFSET),
        ..NewAccount::default()
    }
}

/// A linked athlete with `days` of data up to `end` (local), optional data included, uploaded now.
async fn with_data(h: &Harness, days: u32, end: Option<NaiveDate>) -> (i64, String) {
    let (id, token) = h.linked(account()).await;
    h.sim
        .generate(
            id,
            &GenerateRequest {
                days,
                end_date: end,
                upload: UploadMode::Now,
                optional_data: true,
                ..GenerateRequest::default()
            },
        )
        .unwrap();
    (id, token)
}

fn add(h: &Harness, id: i64, kind: RecordKind, date: Option<NaiveDate>, values: Value) -> String {
    let Value::Object(values) = values else {
        panic!("values are an object");
    };
    h.sim
        .add_record(
            id,
            NewRecord {
                kind,
                date,
                start_time: None,
                values,
                ready: true,
                uploaded_at: None,
            },
        )
        .unwrap()
        .key
}

fn version(h: &Harness, id: i64, kind: RecordKind, key: &str) -> u32 {
    h.sim
        .records(id, Some(kind))
        .unwrap()
        .into_iter()
        .find(|r| r.key == key)
        .map(|r| r.version)
        .unwrap_or(0)
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

#[tokio::test]
async fn cardio_load_lists_every_day_not_available_until_a_week_of_history() {
    let h = start_default().await;
    let today = h.safe_local_today(OFFSET);
    let (_, token) = with_data(&h, 10, Some(today - TimeDelta::days(1))).await;

    let list = h.get_json("/v3/users/cardio-load", &token).await;
    let days = list.as_array().unwrap();
    assert_eq!(days.len(), 28, "one entry per day of the last 28");
    let dates: Vec<NaiveDate> = days
        .iter()
        .map(|d| date(d["date"].as_str().unwrap()))
        .collect();
    assert_eq!(dates.first(), Some(&(today - TimeDelta::days(27))));
    assert_eq!(dates.last(), Some(&today));
    let status = |d: &Value| d["cardio_load_status"].as_str().unwrap().to_owned();
    // 17 days without data, then the first six generated days without a status, then four with one;
    // today has no data yet.
    let statuses: Vec<String> = days.iter().map(status).collect();
    assert!(
        statuses[..23]
            .iter()
            .all(|s| s == "LOAD_STATUS_NOT_AVAILABLE"),
        "{statuses:?}"
    );
    assert!(
        statuses[23..27]
            .iter()
            .all(|s| s != "LOAD_STATUS_NOT_AVAILABLE"),
        "{statuses:?}"
    );
    assert_eq!(statuses[27], "LOAD_STATUS_NOT_AVAILABLE");
    for day in days {
        assert_eq!(
            keys(day),
            [
                "cardio_load",
                "cardio_load_level",
                "cardio_load_ratio",
                "cardio_load_status",
                "date",
                "strain",
                "tolerance"
            ]
        );
        assert_eq!(
            keys(&day["cardio_load_level"]),
            ["high", "low", "medium", "very-high", "very_low"],
            "Polar's very_low next to very-high"
        );
    }
    let not_available = &days[0];
    for field in ["cardio_load", "strain", "tolerance", "cardio_load_ratio"] {
        assert_eq!(not_available[field], 0.0, "{field}");
    }
    let computed = &days[26];
    assert!(computed["tolerance"].as_f64().unwrap() > 0.0);

    // The same days with a trailing slash, by date range, by period and as a single date.
    let slash = h.get_json("/v3/users/cardio-load/", &token).await;
    assert_eq!(slash, list);
    let from = today - TimeDelta::days(3);
    let range = h
        .get_json(
            &format!("/v3/users/cardio-load/date?from={from}&to={today}"),
            &token,
        )
        .await;
    assert_eq!(range.as_array().unwrap(), &days[24..]);
    let period = h
        .get_json("/v3/users/cardio-load/period/days/4", &token)
        .await;
    assert_eq!(period, range);
    let one = h
        .get_json(&format!("/v3/users/cardio-load/{from}"), &token)
        .await;
    assert_eq!(one.as_array().unwrap(), &days[24..25]);
    let long_ago = h
        .get_json(
            "/v3/users/cardio-load/date?from=2020-01-01&to=2020-01-03",
            &token,
        )
        .await;
    assert_eq!(long_ago.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn cardio_load_ranges_outside_polars_limits_are_refused() {
    let h = start_default().await;
    let (_, token) = with_data(&h, 3, None).await;
    for path in [
        "/v3/users/cardio-load/date",
        "/v3/users/cardio-load/date?from=2025-01-01",
        "/v3/users/cardio-load/date?from=2025-01-10&to=2025-01-01",
        "/v3/users/cardio-load/date?from=2025-01-01&to=2025-06-30",
        "/v3/users/cardio-load/period/days/0",
        "/v3/users/cardio-load/period/days/181",
        "/v3/users/cardio-load/period/days/week",
        "/v3/users/cardio-load/2025-02-30",
    ] {
        assert_eq!(
            h.get(path, &token).await.status(),
            StatusCode::BAD_REQUEST,
            "{path}"
        );
    }
    let most = h
        .get_json("/v3/users/cardio-load/period/days/180", &token)
        .await;
    assert_eq!(most.as_array().unwrap().len(), 180);
}

#[tokio::test]
async fn a_training_today_revises_todays_cardio_load() {
    let h = start_default().await;
    let today = h.safe_local_today(OFFSET);
    let (id, token) = with_data(&h, 14, Some(today - TimeDelta::days(1))).await;
    let before = add(&h, id, RecordKind::CardioLoad, None, json!({}));
    assert_eq!(before, today.to_string());
    let first = version(&h, id, RecordKind::CardioLoad, &before);
    let load = |body: &Value| {
        body.as_array()
            .unwrap()
            .iter()
            .find(|d| d["date"] == today.to_string())
            .map(|d| d["cardio_load"].as_f64().unwrap())
            .unwrap()
    };
    let morning = load(&h.get_json("/v3/users/cardio-load", &token).await);

    h.sim.advance_clock(60).unwrap();
    let local_now =
        (h.sim.now() + TimeDelta::minutes(i64::from(OFFSET))).naive_utc() - TimeDelta::minutes(1);
    h.sim
        .add_record(
            id,
            NewRecord {
                kind: RecordKind::Exercise,
                date: None,
                start_time: Some(local_now.max(today.and_hms_opt(0, 0, 0).unwrap())),
                values: Map::from_iter([
                    ("training_load".to_owned(), json!(80.0)),
                    ("training_load_pro".to_owned(), Value::Null),
                ]),
                ready: true,
                uploaded_at: None,
            },
        )
        .unwrap();
    assert_eq!(version(&h, id, RecordKind::CardioLoad, &before), first + 1);
    let evening = load(&h.get_json("/v3/users/cardio-load", &token).await);
    assert!(evening >= morning + 80.0 - 0.1, "{morning} → {evening}");
}

#[tokio::test]
async fn alertness_is_in_utc_with_the_offset_after_five_nights_and_naps_are_their_own() {
    let h = start_default().await;
    let today = h.safe_local_today(OFFSET);
    let end = today - TimeDelta::days(1);
    let (id, token) = with_data(&h, 20, Some(end)).await;
    let periods = h.get_json("/v3/users/sleepwise/alertness", &token).await;
    let periods = periods.as_array().unwrap();
    let offset = TimeDelta::minutes(i64::from(OFFSET));
    let local_end = |p: &Value| {
        let text = p["sleep_period_end_time"].as_str().unwrap();
        assert!(
            !text.ends_with('Z') && !text.contains('+'),
            "UTC without a zone: {text}"
        );
        let utc = NaiveDateTime::parse_from_str(&text[..19], "%Y-%m-%dT%H:%M:%S").unwrap();
        (utc + offset).date()
    };
    let nights: BTreeSet<NaiveDate> = periods
        .iter()
        .filter(|p| p["sleep_type"] == "SLEEP_TYPE_PRIMARY")
        .map(local_end)
        .collect();
    // SleepWise starts once five nights of the last seven exist: not on the first four days.
    let first = end - TimeDelta::days(19);
    let expected: BTreeSet<NaiveDate> = (4..20).map(|d| first + TimeDelta::days(d)).collect();
    assert_eq!(nights, expected);
    for period in periods {
        assert_eq!(period["sleep_timezone_offset_minutes"], OFFSET);
    }
    // Generated naps fall on days SleepWise has a night for.
    for nap in periods
        .iter()
        .filter(|p| p["sleep_type"] == "SLEEP_TYPE_SECONDARY")
    {
        assert!(nights.contains(&local_end(nap)));
    }
    // A nap is added by hand too: it ends the same local day as that day's night.
    let nap_key = add(
        &h,
        id,
        RecordKind::Alertness,
        Some(end),
        json!({"sleep_type": "SLEEP_TYPE_SECONDARY"}),
    );
    let with_nap = h
        .get_json(
            &format!("/v3/users/sleepwise/alertness/date?from={end}&to={end}"),
            &token,
        )
        .await;
    let on_end: Vec<&Value> = with_nap.as_array().unwrap().iter().collect();
    assert!(on_end.iter().all(|p| local_end(p) == end));
    let types: BTreeSet<&str> = on_end
        .iter()
        .map(|p| p["sleep_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        BTreeSet::from(["SLEEP_TYPE_PRIMARY", "SLEEP_TYPE_SECONDARY"])
    );
    assert!(on_end.iter().any(|p| {
        p["sleep_period_start_time"]
            .as_str()
            .unwrap()
            .starts_with(&nap_key)
    }));
}

#[tokio::test]
async fn sleepwise_answers_204_without_data_and_refuses_long_ranges() {
    let h = start_default().await;
    let (_, token) = h.linked(account()).await;
    assert_eq!(
        h.get("/v3/users/sleepwise/alertness", &token)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.get(
            "/v3/users/sleepwise/alertness/date?from=2025-01-01&to=2025-01-28",
            &token
        )
        .await
        .status(),
        StatusCode::NO_CONTENT
    );
    for path in [
        "/v3/users/sleepwise/alertness/date?from=2025-01-01&to=2025-01-29",
        "/v3/users/sleepwise/alertness/date?to=2025-01-29",
        "/v3/users/sleepwise/alertness/date?from=someday&to=2025-01-29",
    ] {
        assert_eq!(
            h.get(path, &token).await.status(),
            StatusCode::BAD_REQUEST,
            "{path}"
        );
    }
}

#[tokio::test]
async fn heart_rate_by_day_and_by_range_come_in_different_shapes() {
    let h = start_default().await;
    let today = h.safe_local_today(OFFSET);
    let end = today - TimeDelta::days(1);
    let (_, token) = with_data(&h, 3, Some(end)).await;
    let day = h
        .get_json(&format!("/v3/users/continuous-heart-rate/{end}"), &token)
        .await;
    assert_eq!(keys(&day), ["date", "heart_rate_samples", "polar_user"]);
    let samples = day["heart_rate_samples"].as_array().unwrap();
    assert!(samples.len() >= 288, "{}", samples.len());
    assert_eq!(keys(&samples[0]), ["heart_rate", "sample_time"]);
    let time = samples[0]["sample_time"].as_str().unwrap();
    assert!(
        chrono::NaiveTime::parse_from_str(time, "%H:%M:%S").is_ok(),
        "{time}"
    );

    let from = end - TimeDelta::days(2);
    let range = h
        .get_json(
            &format!("/v3/users/continuous-heart-rate?from={from}&to={end}"),
            &token,
        )
        .await;
    assert_eq!(keys(&range), ["heart_rates"]);
    let days = range["heart_rates"].as_array().unwrap();
    assert_eq!(days.len(), 3);
    assert_eq!(keys(&days[0]), ["date", "heart_rate_samples"]);
    assert_eq!(days[2]["heart_rate_samples"], day["heart_rate_samples"]);

    // No data: 404 for a day, an empty wrapper for a range; `from` and `to` are both required.
    let empty = end - TimeDelta::days(10);
    assert_eq!(
        h.get(&format!("/v3/users/continuous-heart-rate/{empty}"), &token)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let none = h
        .get_json(
            &format!("/v3/users/continuous-heart-rate?from={empty}&to={empty}"),
            &token,
        )
        .await;
    assert_eq!(none, json!({"heart_rates": []}));
    for path in [
        "/v3/users/continuous-heart-rate".to_owned(),
        format!("/v3/users/continuous-heart-rate?from={from}"),
        format!(
            "/v3/users/continuous-heart-rate?from={}&to={end}",
            end - TimeDelta::days(28)
        ),
    ] {
        assert_eq!(
            h.get(&path, &token).await.status(),
            StatusCode::BAD_REQUEST,
            "{path}"
        );
    }
}

#[tokio::test]
async fn todays_heart_rate_grows_during_the_day_as_new_versions() {
    let h = start_default().await;
    let (id, token) = h.linked(account()).await;
    // Mid-morning, local: well past the first samples and far from midnight.
    let local = h.sim.now() + TimeDelta::minutes(i64::from(OFFSET));
    let to_ten = (10 * 3600 - i64::from(chrono::Timelike::num_seconds_from_midnight(&local)))
        .rem_euclid(86_400);
    h.sim.advance_clock(to_ten).unwrap();
    let today = h.safe_local_today(OFFSET);
    let key = add(&h, id, RecordKind::HeartRate, None, json!({}));
    assert_eq!(key, today.to_string());
    let count = |body: &Value| body["heart_rate_samples"].as_array().unwrap().len();
    let path = format!("/v3/users/continuous-heart-rate/{today}");
    let morning = count(&h.get_json(&path, &token).await);
    assert!((100..=140).contains(&morning), "{morning} samples by 10:00");

    h.sim.advance_clock(3 * 3600).unwrap();
    add(&h, id, RecordKind::HeartRate, Some(today), json!({}));
    assert_eq!(version(&h, id, RecordKind::HeartRate, &key), 2);
    let afternoon = count(&h.get_json(&path, &token).await);
    assert!(afternoon >= morning + 36, "{morning} → {afternoon}");
}

/// Independent check of Polar's signature: HMAC-SHA256(secret, raw body), lower-case hex.
fn signed_with(secret: &str, body: &[u8], signature: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes()) == signature
}

#[tokio::test]
async fn heart_rate_and_alertness_are_announced_with_their_events_and_cardio_load_is_not() {
    let h = start_default().await;
    let receiver = Receiver::start(200).await;
    let created: Value = h
        .http
        .post(h.url("/v3/webhooks"))
        .header(AUTHORIZATION, h.basic())
        .json(&json!({"events": ["CONTINUOUS_HEART_RATE", "SLEEP_WISE_ALERTNESS"], "url": receiver.url}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = created["data"]["signature_secret_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (id, _) = h.linked(account()).await;
    let today = h.safe_local_today(OFFSET);
    let yesterday = today - TimeDelta::days(1);

    add(&h, id, RecordKind::HeartRate, Some(yesterday), json!({}));
    let nap = add(
        &h,
        id,
        RecordKind::Alertness,
        Some(yesterday),
        json!({"sleep_type": "SLEEP_TYPE_SECONDARY"}),
    );
    add(&h, id, RecordKind::CardioLoad, Some(yesterday), json!({}));
    let delivered = h.sim.wait_for_deliveries(2, Duration::from_secs(5)).await;
    assert_eq!(delivered.len(), 2);
    let received = receiver.received();
    let events: Vec<&str> = received[1..]
        .iter()
        .map(|r| r.event.as_deref().unwrap())
        .collect();
    assert_eq!(
        events,
        ["CONTINUOUS_HEART_RATE", "SLEEP_WISE_ALERTNESS"],
        "cardio load has no event"
    );
    for r in &received[1..] {
        assert!(signed_with(
            &secret,
            &r.body,
            r.signature.as_deref().unwrap()
        ));
    }
    let heart: Value = serde_json::from_slice(&received[1].body).unwrap();
    assert_eq!(
        keys(&heart),
        ["date", "event", "timestamp", "url", "user_id"]
    );
    assert_eq!(heart["date"], yesterday.to_string());
    assert_eq!(heart["user_id"], id);
    assert!(
        heart["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v3/users/continuous-heart-rate/{yesterday}"))
    );
    let alertness: Value = serde_json::from_slice(&received[2].body).unwrap();
    assert_eq!(
        keys(&alertness),
        ["event", "from", "timestamp", "to", "url", "user_id"]
    );
    // The nap ends on the local date it was added for.
    assert_eq!(alertness["from"], yesterday.to_string());
    assert_eq!(alertness["to"], yesterday.to_string());
    assert!(alertness["url"].as_str().unwrap().ends_with(&format!(
        "/v3/users/sleepwise/alertness/date?from={yesterday}&to={yesterday}"
    )));
    assert!(!nap.is_empty());

    // Sent on request too: SLEEP_WISE_ALERTNESS needs from and to.
    let missing = h.sim.deliver_webhook(WebhookEventRequest {
        event: "SLEEP_WISE_ALERTNESS".into(),
        polar_user_id: Some(id),
        ..WebhookEventRequest::default()
    });
    assert!(missing.is_err());
    h.sim
        .deliver_webhook(WebhookEventRequest {
            event: "SLEEP_WISE_ALERTNESS".into(),
            polar_user_id: Some(id),
            from: Some(yesterday - TimeDelta::days(2)),
            to: Some(yesterday),
            ..WebhookEventRequest::default()
        })
        .unwrap();
    let delivered = h.sim.wait_for_deliveries(3, Duration::from_secs(5)).await;
    let sent: Value = serde_json::from_str(&delivered[2].body).unwrap();
    assert_eq!(sent["from"], (yesterday - TimeDelta::days(2)).to_string());
}

#[tokio::test]
async fn every_optional_endpoint_counts_against_the_rate_limit() {
    let h = start_default().await;
    let (_, token) = with_data(&h, 2, None).await;
    let usage = |r: &reqwest::Response| -> i64 {
        let text = r.headers()["ratelimit-usage"].to_str().unwrap().to_owned();
        text.split(',').next().unwrap().trim().parse().unwrap()
    };
    let first = h.get("/v3/users/cardio-load", &token).await;
    let start = usage(&first);
    let mut last = start;
    for path in [
        "/v3/users/cardio-load/period/days/3",
        "/v3/users/sleepwise/alertness",
        "/v3/users/continuous-heart-rate/2020-01-01",
        "/v3/users/continuous-heart-rate?from=2020-01-01&to=2020-01-02",
        "/v3/users/continuous-heart-rate",
    ] {
        let response = h.get(path, &token).await;
        last = usage(&response);
        assert!(response.headers().contains_key("ratelimit-limit"), "{path}");
    }
    assert_eq!(last, start + 5, "404s, 204s and 400s count too");
    let logged: Vec<String> = h
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("cardio-load") || r.path.contains("sleepwise"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(logged.len(), 3);
}

#[tokio::test]
async fn generated_optional_data_carries_polars_no_data_marks_when_asked() {
    let h = start_default().await;
    let (id, _) = h.linked(account()).await;
    h.sim
        .generate(
            id,
            &GenerateRequest {
                days: 30,
                upload: UploadMode::Now,
                optional_data: true,
                no_data: 1.0,
                ..GenerateRequest::default()
            },
        )
        .unwrap();
    let zero_samples = h
        .sim
        .records(id, Some(RecordKind::HeartRate))
        .unwrap()
        .iter()
        .filter(|r| {
            r.body["heart_rate_samples"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["heart_rate"] == 0)
        })
        .count();
    assert_eq!(zero_samples, 30);
    let cardio = h.sim.records(id, Some(RecordKind::CardioLoad)).unwrap();
    assert!(
        cardio
            .iter()
            .all(|r| r.body["cardio_load_status"] == "LOAD_STATUS_NOT_AVAILABLE")
    );
    let validities: BTreeSet<String> = h
        .sim
        .records(id, Some(RecordKind::Alertness))
        .unwrap()
        .iter()
        .map(|r| r.body["validity"].as_str().unwrap().to_owned())
        .collect();
    assert!(!validities.is_empty());
    assert!(
        validities
            .iter()
            .all(|v| v == "VALIDITY_NOT_VALID" || v == "VALIDITY_UNKNOWN"),
        "{validities:?}"
    );
}

#[tokio::test]
async fn without_optional_data_generation_makes_only_the_core_records() {
    let h = start_default().await;
    let (id, token) = h.linked(account()).await;
    let summary = h
        .sim
        .generate(
            id,
            &GenerateRequest {
                days: 10,
                upload: UploadMode::Now,
                ..GenerateRequest::default()
            },
        )
        .unwrap();
    assert!(
        summary.cardio_loads.is_empty()
            && summary.alertness.is_empty()
            && summary.heart_rates.is_empty()
    );
    assert_eq!(summary.sleeps.len(), 10);
    let list = h.get_json("/v3/users/cardio-load", &token).await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|d| d["cardio_load_status"] == "LOAD_STATUS_NOT_AVAILABLE")
    );
}
