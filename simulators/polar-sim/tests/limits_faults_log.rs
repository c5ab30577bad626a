//! Rate limits, fault injection and the request log, over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Harness, REDIRECT, start, start_default};
use polar_sim::{
    FaultKind, FaultSpec, GenerateRequest, NewAccount, PolarSimConfig, RateLimits, UploadMode,
};
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .to_str()
        .unwrap()
        .to_owned()
}

fn pair(text: &str) -> (i64, i64) {
    let (short, long) = text.split_once(',').unwrap();
    (short.parse().unwrap(), long.parse().unwrap())
}

async fn notifications(h: &Harness) -> reqwest::Response {
    h.http
        .get(h.url("/v3/notifications"))
        .header(AUTHORIZATION, h.basic())
        .send()
        .await
        .unwrap()
}

fn limits(
    short_base: u64,
    short_per_user: u64,
    long_base: u64,
    long_per_user: u64,
) -> PolarSimConfig {
    PolarSimConfig {
        rate_limits: RateLimits {
            short_base,
            short_per_user,
            long_base,
            long_per_user,
        },
        ..PolarSimConfig::default()
    }
}

#[tokio::test]
async fn every_v3_answer_carries_rate_limit_headers_scaled_by_registered_users() {
    let h = start(limits(50, 5, 1000, 10)).await;
    let before = notifications(&h).await;
    assert_eq!(header(&before, "ratelimit-limit"), "50,1000");
    assert_eq!(header(&before, "ratelimit-usage"), "1,1");
    let (short_reset, long_reset) = pair(&header(&before, "ratelimit-reset"));
    assert!((899..=900).contains(&short_reset), "{short_reset}");
    assert!((86_399..=86_400).contains(&long_reset), "{long_reset}");

    let mut token = String::new();
    for _ in 0..3 {
        token = h.linked(NewAccount::default()).await.1;
    }
    let ok = h.get("/v3/exercises", &token).await;
    let unauthorized = h.get("/v3/exercises", "bogus").await;
    let not_found = h.get("/v3/exercises/nope", &token).await;
    let bad_client = h
        .http
        .get(h.url("/v3/webhooks"))
        .basic_auth("x", Some("y"))
        .send()
        .await
        .unwrap();
    let statuses: Vec<StatusCode> = [&ok, &unauthorized, &not_found, &bad_client]
        .iter()
        .map(|r| r.status())
        .collect();
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::UNAUTHORIZED,
            StatusCode::NOT_FOUND,
            StatusCode::UNAUTHORIZED
        ]
    );
    let usages: Vec<(i64, i64)> = [&ok, &unauthorized, &not_found, &bad_client]
        .iter()
        .map(|r| {
            assert_eq!(header(r, "ratelimit-limit"), "65,1030");
            pair(&header(r, "ratelimit-usage"))
        })
        .collect();
    // 1 notification + 3 registrations before these four.
    assert_eq!(usages, [(5, 5), (6, 6), (7, 7), (8, 8)]);

    // OAuth endpoints live on other hosts at Polar and are not rate limited here.
    let code = h
        .code_for(h.sim.accounts()[0].polar_user_id, Some(REDIRECT))
        .await;
    let token_response = h.exchange(&code, Some(REDIRECT)).await;
    assert!(token_response.headers().get("ratelimit-usage").is_none());
}

#[tokio::test]
async fn over_the_limit_is_429_rejected_calls_count_and_windows_restart_after_reset() {
    let h = start(limits(3, 0, 7, 0)).await;
    let mut seen = Vec::new();
    for _ in 0..5 {
        let response = notifications(&h).await;
        seen.push((response.status(), header(&response, "ratelimit-usage")));
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["status"], 429);
        }
    }
    assert_eq!(
        seen,
        [
            (StatusCode::NO_CONTENT, "1,1".to_owned()),
            (StatusCode::NO_CONTENT, "2,2".to_owned()),
            (StatusCode::NO_CONTENT, "3,3".to_owned()),
            (StatusCode::TOO_MANY_REQUESTS, "4,4".to_owned()),
            (StatusCode::TOO_MANY_REQUESTS, "5,5".to_owned()),
        ]
    );

    // The short window restarts with the first call after 15 minutes; the long one goes on.
    h.sim.advance_clock(15 * 60).unwrap();
    let fresh = notifications(&h).await;
    assert_eq!(fresh.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&fresh, "ratelimit-usage"), "1,6");
    assert_eq!(pair(&header(&fresh, "ratelimit-reset")).0, 900);
    assert_eq!(notifications(&h).await.status(), StatusCode::NO_CONTENT);
    // 8 > 7: over the long limit although the short window has room.
    let long_rejected = notifications(&h).await;
    assert_eq!(long_rejected.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&long_rejected, "ratelimit-usage"), "3,8");
    h.sim.advance_clock(15 * 60).unwrap();
    assert_eq!(
        notifications(&h).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    h.sim.advance_clock(24 * 3600).unwrap();
    let next_day = notifications(&h).await;
    assert_eq!(next_day.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&next_day, "ratelimit-usage"), "1,1");

    let log = h.sim.requests();
    assert_eq!(log.iter().filter(|entry| entry.rate_limited).count(), 4);
}

async fn inject(h: &Harness, spec: Value) -> Value {
    let response = h
        .http
        .post(h.url("/_sim/faults"))
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "{spec}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn status_fault_hits_the_next_n_matching_requests_only() {
    let h = start_default().await;
    let (_, token) = h.linked(NewAccount::default()).await;
    let fault = inject(
        &h,
        json!({"path_prefix": "/v3/exercises", "kind": "status", "status": 503, "count": 2}),
    )
    .await;
    assert_eq!(fault["remaining"], 2);
    assert_eq!(
        h.get("/v3/users/sleep", &token).await.status(),
        StatusCode::OK
    );
    for _ in 0..2 {
        let response = h.get("/v3/exercises", &token).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().get("ratelimit-usage").is_some());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], 503);
    }
    assert_eq!(
        h.get("/v3/exercises", &token).await.status(),
        StatusCode::OK
    );
    let faults = h.sim.faults();
    assert_eq!(faults[0].remaining, Some(0));
    assert_eq!(faults[0].applied, 2);

    let bad = h
        .http
        .post(h.url("/_sim/faults"))
        .json(&json!({"path_prefix": "/_sim/accounts", "kind": "drop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn delay_fault_answers_normally_after_the_delay() {
    let h = start_default().await;
    let (_, token) = h.linked(NewAccount::default()).await;
    h.sim
        .inject_fault(FaultSpec {
            path_prefix: "/v3/users/sleep".into(),
            method: Some("GET".into()),
            fault: FaultKind::Delay { ms: 300 },
            count: Some(1),
            probability: None,
        })
        .unwrap();
    let started = Instant::now();
    let response = h.get("/v3/users/sleep", &token).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .json::<Value>()
            .await
            .unwrap()
            .get("nights")
            .is_some()
    );
}

#[tokio::test]
async fn dropped_connection_is_a_transport_error_not_an_http_answer() {
    let h = start_default().await;
    let (_, token) = h.linked(NewAccount::default()).await;
    inject(&h, json!({"path_prefix": "/v3/exercises", "kind": "drop"})).await;
    let result = h
        .http
        .get(h.url("/v3/exercises"))
        .bearer_auth(&token)
        .send()
        .await;
    let error = result.expect_err("the connection must be dropped");
    assert!(error.status().is_none());
    assert!(error.is_request() || error.is_connect(), "{error:?}");
    assert_eq!(
        h.get("/v3/exercises", &token).await.status(),
        StatusCode::OK
    );
    let dropped = h
        .sim
        .requests()
        .into_iter()
        .find(|entry| entry.fault.as_deref() == Some("drop"))
        .unwrap();
    assert_eq!(dropped.status, None);
    assert_eq!(dropped.path, "/v3/exercises");
}

#[tokio::test]
async fn answer_dropped_after_processing_leaves_the_code_consumed() {
    let h = start_default().await;
    let id = h
        .sim
        .create_account(NewAccount::default())
        .unwrap()
        .polar_user_id;
    let code = h.code_for(id, Some(REDIRECT)).await;
    inject(
        &h,
        json!({"path_prefix": "/v2/oauth2/token", "kind": "drop", "after_processing": true}),
    )
    .await;
    let lost = h
        .http
        .post(h.url("/v2/oauth2/token"))
        .header(AUTHORIZATION, h.basic())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await;
    assert!(lost.is_err());
    assert_eq!(h.sim.account(id).unwrap().active_tokens, 1);
    // A blind retry reuses the code: invalid_grant, and the token issued is deleted.
    let retry = h.exchange(&code, Some(REDIRECT)).await;
    assert_eq!(retry.status(), StatusCode::BAD_REQUEST);
    assert_eq!(h.sim.account(id).unwrap().active_tokens, 0);
    let entry = h
        .sim
        .requests()
        .into_iter()
        .find(|entry| entry.fault.is_some())
        .unwrap();
    assert_eq!(entry.polar_user_id, Some(id));
}

#[tokio::test]
async fn injected_429_carries_rate_limit_headers() {
    let h = start_default().await;
    let (_, token) = h.linked(NewAccount::default()).await;
    inject(
        &h,
        json!({"path_prefix": "/v3/users/activities", "kind": "rate_limited"}),
    )
    .await;
    let response = h.get("/v3/users/activities", &token).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    for name in ["ratelimit-usage", "ratelimit-limit", "ratelimit-reset"] {
        assert_eq!(header(&response, name).split(',').count(), 2, "{name}");
    }
    assert_eq!(
        h.get("/v3/users/activities", &token).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn malformed_json_fault_sends_truncated_json_with_200() {
    let h = start_default().await;
    let (id, token) = h.linked(NewAccount::default()).await;
    h.sim
        .generate(
            id,
            &GenerateRequest {
                days: 3,
                upload: UploadMode::Now,
                ..GenerateRequest::default()
            },
        )
        .unwrap();
    inject(
        &h,
        json!({"path_prefix": "/v3/users/sleep", "kind": "malformed_json"}),
    )
    .await;
    let response = h.get("/v3/users/sleep", &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), "application/json");
    let text = response.text().await.unwrap();
    assert!(text.starts_with("{\"nights\""));
    assert!(serde_json::from_str::<Value>(&text).is_err());
    assert!(
        h.get("/v3/users/sleep", &token)
            .await
            .json::<Value>()
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn malformed_record_fault_puts_one_wrongly_typed_record_into_a_list() {
    let h = start_default().await;
    let (id, token) = h.linked(NewAccount::default()).await;
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
    let normal: Vec<Value> = h
        .get_json("/v3/exercises", &token)
        .await
        .as_array()
        .unwrap()
        .clone();
    inject(
        &h,
        json!({"path_prefix": "/v3/exercises", "kind": "malformed_record", "count": 1}),
    )
    .await;
    // A single-object answer has no list: the fault is not used up there.
    let one_id = normal[0]["id"].as_str().unwrap();
    let single = h.get_json(&format!("/v3/exercises/{one_id}"), &token).await;
    assert_eq!(single["id"], one_id);
    assert_eq!(h.sim.faults()[0].remaining, Some(1));

    let faulted: Vec<Value> = h
        .get_json("/v3/exercises", &token)
        .await
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(faulted.len(), normal.len() + 1);
    let broken: Vec<&Value> = faulted.iter().filter(|e| !e["id"].is_string()).collect();
    assert_eq!(broken.len(), 1);
    assert!(broken[0]["start_time"].is_number());
    assert!(broken[0]["heart_rate"].is_string());
    let intact: Vec<Value> = faulted
        .into_iter()
        .filter(|e| e["id"].is_string())
        .collect();
    assert_eq!(intact, normal);
    assert_eq!(h.sim.faults()[0].remaining, Some(0));

    inject(
        &h,
        json!({"path_prefix": "/v3/users/nightly-recharge", "kind": "malformed_record"}),
    )
    .await;
    let recharges = h.get_json("/v3/users/nightly-recharge", &token).await;
    let list = recharges["recharges"].as_array().unwrap();
    assert_eq!(list.iter().filter(|r| r["date"].is_number()).count(), 1);
}

#[tokio::test]
async fn extreme_record_fault_puts_one_record_no_calendar_holds_into_a_list() {
    let h = start_default().await;
    let (id, token) = h.linked(NewAccount::default()).await;
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
    let normal: Vec<Value> = h
        .get_json("/v3/exercises", &token)
        .await
        .as_array()
        .unwrap()
        .clone();
    inject(
        &h,
        json!({"path_prefix": "/v3/exercises", "kind": "extreme_record", "count": 5}),
    )
    .await;
    // A single-object answer has no list: the fault is not used up there.
    let one_id = normal[0]["id"].as_str().unwrap();
    let single = h.get_json(&format!("/v3/exercises/{one_id}"), &token).await;
    assert_eq!(single["id"], one_id);
    assert_eq!(h.sim.faults()[0].remaining, Some(5));

    let mut seen = Vec::new();
    for nth in 1..=5 {
        let faulted: Vec<Value> = h
            .get_json("/v3/exercises", &token)
            .await
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(faulted.len(), normal.len() + 1);
        let (extreme, intact): (Vec<Value>, Vec<Value>) = faulted
            .into_iter()
            .partition(|e| e["id"] == format!("Extreme{nth}"));
        assert_eq!(intact, normal, "the real records are untouched");
        let extreme = &extreme[0];
        // The right types, values no session has.
        assert!(extreme["duration"].is_string() && extreme["start_time"].is_string());
        assert!(extreme["start_time_utc_offset"].is_i64());
        seen.push(format!(
            "{} {} {}",
            extreme["start_time"], extreme["start_time_utc_offset"], extreme["duration"]
        ));
    }
    assert!(seen.iter().any(|s| s.contains("P99999999D")));
    assert!(seen.iter().any(|s| s.contains("99999999 ")));
    assert!(seen.iter().any(|s| s.contains("+262142-12-31")));
    assert_eq!(h.sim.faults()[0].remaining, Some(0));

    inject(
        &h,
        json!({"path_prefix": "/v3/users/sleep", "kind": "extreme_record"}),
    )
    .await;
    let nights = h.get_json("/v3/users/sleep", &token).await;
    let dates: Vec<&str> = nights["nights"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["date"].as_str())
        .filter(|d| !d.starts_with("20"))
        .collect();
    assert_eq!(dates, ["+262142-12-31"]);
}

#[tokio::test]
async fn extreme_header_fault_sends_rate_limit_waits_no_window_can_mean() {
    let h = start_default().await;
    let (_, token) = h.linked(NewAccount::default()).await;
    inject(
        &h,
        json!({"path_prefix": "/v3/exercises", "kind": "extreme_headers"}),
    )
    .await;
    let answered = h.get("/v3/exercises", &token).await;
    assert_eq!(answered.status(), StatusCode::OK);
    assert_eq!(
        header(&answered, "ratelimit-reset"),
        "18446744073709551615,9223372036854775807"
    );
    assert_eq!(header(&answered, "retry-after"), "9223372036854775807");
    assert_eq!(header(&answered, "ratelimit-usage").split(',').count(), 2);

    inject(
        &h,
        json!({"path_prefix": "/v3/exercises", "kind": "extreme_headers", "rate_limited": true}),
    )
    .await;
    let refused = h.get("/v3/exercises", &token).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "retry-after"), "9223372036854775807");
    let normal = h.get("/v3/exercises", &token).await;
    assert_eq!(normal.status(), StatusCode::OK);
    assert!(normal.headers().get("retry-after").is_none());
    assert_eq!(
        h.sim
            .requests()
            .iter()
            .filter_map(|r| r.fault.as_deref())
            .collect::<Vec<_>>(),
        ["extreme_headers", "extreme_headers"]
    );
}

#[tokio::test]
async fn probabilistic_faults_are_reproducible_for_a_seed() {
    let mut patterns = Vec::new();
    for _ in 0..2 {
        let h = start(PolarSimConfig {
            seed: 7,
            ..PolarSimConfig::default()
        })
        .await;
        inject(
            &h,
            json!({"path_prefix": "/v3/notifications", "kind": "status", "status": 502, "probability": 0.5}),
        )
        .await;
        let mut pattern = Vec::new();
        for _ in 0..24 {
            pattern.push(notifications(&h).await.status().as_u16());
        }
        patterns.push(pattern);
    }
    assert_eq!(patterns[0], patterns[1]);
    assert!(patterns[0].contains(&502));
    assert!(patterns[0].contains(&204));
}

#[tokio::test]
async fn clearing_faults_restores_normal_answers() {
    let h = start_default().await;
    inject(
        &h,
        json!({"path_prefix": "/v3/", "kind": "status", "status": 500, "count": 100}),
    )
    .await;
    assert_eq!(
        notifications(&h).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let cleared = h.http.delete(h.url("/_sim/faults")).send().await.unwrap();
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    assert_eq!(notifications(&h).await.status(), StatusCode::NO_CONTENT);
    let listed: Value = h
        .http
        .get(h.url("/_sim/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]));
}

#[tokio::test]
async fn request_log_records_exactly_the_calls_and_never_credentials() {
    let h = start_default().await;
    let id = h
        .sim
        .create_account(NewAccount::default())
        .unwrap()
        .polar_user_id;
    let code = h.code_for(id, Some(REDIRECT)).await;
    let token_body: Value = h
        .exchange(&code, Some(REDIRECT))
        .await
        .json()
        .await
        .unwrap();
    let token = token_body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(h.register(&token, "m-1").await.status(), StatusCode::OK);
    assert_eq!(
        h.get("/v3/exercises?zones=true", &token).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        h.get("/v3/users/sleep", "stolen-token").await.status(),
        StatusCode::UNAUTHORIZED
    );

    let log: Value = h
        .http
        .get(h.url("/_sim/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let calls: Vec<(String, String, Option<u64>, Option<i64>)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["method"].as_str().unwrap().to_owned(),
                entry["path"].as_str().unwrap().to_owned(),
                entry["status"].as_u64(),
                entry["polar_user_id"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            (
                "POST".into(),
                "/oauth2/authorization".into(),
                Some(302),
                Some(id)
            ),
            (
                "POST".into(),
                "/v2/oauth2/token".into(),
                Some(200),
                Some(id)
            ),
            ("POST".into(), "/v3/users".into(), Some(200), Some(id)),
            ("GET".into(), "/v3/exercises".into(), Some(200), Some(id)),
            ("GET".into(), "/v3/users/sleep".into(), Some(401), None),
        ]
    );
    let entries = log.as_array().unwrap();
    assert_eq!(entries[3]["query"], "zones=true");
    assert_eq!(entries[0]["seq"], 1);
    assert!(entries.iter().all(|entry| entry["fault"].is_null()));
    let text = log.to_string();
    for secret in [
        token.as_str(),
        code.as_str(),
        "stolen-token",
        h.sim.client_secret(),
        "Bearer",
        "Basic",
    ] {
        assert!(!text.contains(secret), "log leaks {secret}");
    }

    let cleared = h.http.delete(h.url("/_sim/requests")).send().await.unwrap();
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    assert!(h.sim.requests().is_empty());
}
