//! `PolarClient` over HTTP against the Polar simulator: OAuth, registration, users, the four data
//! kinds (lists and single getters), status mapping, rate limits, transport faults, lenient lists
//! and webhook management.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{Duration as Days, NaiveDate};
use polar_sim::{
    AccountView, ConsentMode, FaultKind, FaultSpec, GenerateRequest, NewAccount, NewRecord,
    PolarSim, PolarSimConfig, PolarSimHandle, RateLimits, RecordKind, SettingsPatch, UploadMode,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use shared::ids::{AccessToken, AthleteUuid, AuthCode, AuthState, ExerciseId, PolarUserId};
use shared::polar::{
    CardioLoadRange, DateRange, Deregistration, PastDays, PolarApi, PolarClient, PolarEndpoints,
    PolarError, Records, Registration, TokenGrant, WebhookEventType,
};
use url::Url;

/// The redirect URI the simulator registers by default.
const REDIRECT_URI: &str = "http://127.0.0.1:3000/polar/callback";
/// Every test athlete lives at UTC+02:00, so local times are predictable.
const OFFSET_MINUTES: i32 = 120;

async fn start_sim(config: PolarSimConfig) -> PolarSimHandle {
    PolarSim::start(PolarSimConfig {
        consent_mode: ConsentMode::AutoAccept,
        ..config
    })
    .await
    .unwrap()
}

fn endpoints(sim: &PolarSimHandle) -> PolarEndpoints {
    PolarEndpoints {
        auth_url: Url::parse(&sim.auth_url()).unwrap(),
        token_url: Url::parse(&sim.token_url()).unwrap(),
        api_url: Url::parse(&sim.api_url()).unwrap(),
    }
}

/// The production client (production HTTP settings) with the simulator's client credentials.
fn client_for(sim: &PolarSimHandle) -> PolarClient {
    client_with(sim, sim.client_secret(), shared::http::client().unwrap())
}

fn client_with(sim: &PolarSimHandle, secret: &str, http: reqwest::Client) -> PolarClient {
    PolarClient::new(
        endpoints(sim),
        sim.client_id().to_owned(),
        SecretString::from(secret.to_owned()),
        http,
    )
}

fn athlete(sim: &PolarSimHandle, consents_accepted: bool) -> AccountView {
    sim.create_account(NewAccount {
        consents_accepted,
        utc_offset_minutes: Some(OFFSET_MINUTES),
        ..NewAccount::default()
    })
    .unwrap()
}

/// Plays the athlete's browser: opens the authorisation URL without following the redirect and reads
/// the code from `Location`, checking that `state` comes back unchanged.
async fn authorisation_code(sim: &PolarSimHandle, client: &PolarClient, account: i64) -> AuthCode {
    sim.login(Some(account)).unwrap();
    let state = AuthState::generate();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = browser
        .get(client.authorization_url(&state, REDIRECT_URI))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = Url::parse(
        response
            .headers()
            .get(reqwest::header::LOCATION)
            .unwrap()
            .to_str()
            .unwrap(),
    )
    .unwrap();
    assert!(location.as_str().starts_with(REDIRECT_URI), "{location}");
    let query: Map<String, Value> = location
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), Value::from(v.into_owned())))
        .collect();
    assert_eq!(query["state"], state.as_str());
    AuthCode::new(query["code"].as_str().unwrap())
}

async fn authorise(sim: &PolarSimHandle, client: &PolarClient, account: i64) -> TokenGrant {
    let code = authorisation_code(sim, client, account).await;
    client.exchange_code(&code, REDIRECT_URI).await.unwrap()
}

/// A registered athlete at UTC+02:00 and their token.
async fn linked(sim: &PolarSimHandle, client: &PolarClient) -> (AccountView, AccessToken) {
    let account = athlete(sim, true);
    let grant = authorise(sim, client, account.polar_user_id).await;
    let member = AthleteUuid::parse(format!("athlete-{}", account.polar_user_id)).unwrap();
    assert_eq!(
        client
            .register_user(&grant.access_token, &member)
            .await
            .unwrap(),
        Registration::Registered {
            polar_user_id: Some(PolarUserId::new(account.polar_user_id).unwrap())
        }
    );
    (account, grant.access_token)
}

fn fault(path_prefix: &str, fault: FaultKind) -> FaultSpec {
    FaultSpec {
        path_prefix: path_prefix.to_owned(),
        method: None,
        fault,
        count: Some(1),
        probability: None,
    }
}

/// The athlete's local date today (UTC+02:00) on the simulator's clock.
fn local_today(sim: &PolarSimHandle) -> NaiveDate {
    (sim.now() + Days::minutes(i64::from(OFFSET_MINUTES))).date_naive()
}

fn values(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn record(kind: RecordKind, date: Option<NaiveDate>, fields: Value) -> NewRecord {
    NewRecord {
        kind,
        date,
        start_time: None,
        values: values(fields),
        ready: true,
        uploaded_at: None,
    }
}

fn assert_close(actual: Option<f64>, expected: f64) {
    let actual = actual.unwrap();
    assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
}

// ---------------------------------------------------------------------------------------------
// OAuth

#[tokio::test]
async fn oauth_exchange_returns_the_token_and_polar_user_id() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let account = athlete(&sim, true);

    let grant = authorise(&sim, &client, account.polar_user_id).await;

    assert_eq!(grant.polar_user_id.get(), account.polar_user_id);
    assert_eq!(grant.expires_in_seconds, Some(31_535_999));
    assert!(!grant.access_token.expose_secret().is_empty());
    assert_eq!(sim.account(account.polar_user_id).unwrap().active_tokens, 1);
}

#[tokio::test]
async fn reusing_a_code_is_invalid_grant_and_kills_the_first_token() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let account = athlete(&sim, true);
    let code = authorisation_code(&sim, &client, account.polar_user_id).await;
    let grant = client.exchange_code(&code, REDIRECT_URI).await.unwrap();

    let reused = client.exchange_code(&code, REDIRECT_URI).await;

    assert!(
        matches!(reused, Err(PolarError::InvalidGrant)),
        "{reused:?}"
    );
    let member = AthleteUuid::parse("athlete-1").unwrap();
    assert!(matches!(
        client.register_user(&grant.access_token, &member).await,
        Err(PolarError::Unauthorized)
    ));
}

#[tokio::test]
async fn a_different_redirect_uri_at_exchange_is_invalid_grant() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let account = athlete(&sim, true);
    let code = authorisation_code(&sim, &client, account.polar_user_id).await;

    let result = client
        .exchange_code(&code, "http://127.0.0.1:3000/other/callback")
        .await;

    assert!(
        matches!(result, Err(PolarError::InvalidGrant)),
        "{result:?}"
    );
}

#[tokio::test]
async fn wrong_client_secret_is_invalid_client_and_never_echoed() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let good = client_for(&sim);
    let account = athlete(&sim, true);
    let code = authorisation_code(&sim, &good, account.polar_user_id).await;
    let bad = client_with(&sim, "WRONG-SECRET-123", shared::http::client().unwrap());

    let result = bad.exchange_code(&code, REDIRECT_URI).await;

    assert!(
        matches!(result, Err(PolarError::InvalidClient)),
        "{result:?}"
    );
    let printed = format!("{result:?} {bad:?}");
    assert!(!printed.contains("WRONG-SECRET"), "{printed}");
}

#[tokio::test]
async fn the_code_exchange_is_sent_once_even_when_it_fails() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let account = athlete(&sim, true);
    let code = authorisation_code(&sim, &client, account.polar_user_id).await;
    sim.inject_fault(fault("/v2/oauth2/token", FaultKind::Status { status: 503 }))
        .unwrap();
    sim.clear_requests();

    let result = client.exchange_code(&code, REDIRECT_URI).await;

    assert!(
        matches!(result, Err(PolarError::Server { status: 503 })),
        "{result:?}"
    );
    let token_calls = sim
        .requests()
        .iter()
        .filter(|r| r.path == "/v2/oauth2/token")
        .count();
    assert_eq!(token_calls, 1);
}

// ---------------------------------------------------------------------------------------------
// Users

#[tokio::test]
async fn registering_twice_answers_already_registered() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let (account, token) = linked(&sim, &client).await;
    let member = AthleteUuid::parse(format!("athlete-{}", account.polar_user_id)).unwrap();

    let again = client.register_user(&token, &member).await.unwrap();

    assert_eq!(again, Registration::AlreadyRegistered);
    assert_eq!(
        sim.account(account.polar_user_id).unwrap().member_id,
        Some(member.to_string())
    );
}

#[tokio::test]
async fn missing_consents_answer_consents_missing() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let account = athlete(&sim, false);
    let grant = authorise(&sim, &client, account.polar_user_id).await;

    let result = client
        .register_user(&grant.access_token, &AthleteUuid::parse("a-1").unwrap())
        .await;

    assert!(
        matches!(result, Err(PolarError::ConsentsMissing)),
        "{result:?}"
    );
    assert!(!sim.account(account.polar_user_id).unwrap().registered);
}

#[tokio::test]
async fn get_user_then_delete_user_revokes_the_token() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let (account, token) = linked(&sim, &client).await;
    let user_id = PolarUserId::new(account.polar_user_id).unwrap();

    let user = client.get_user(&token, user_id).await.unwrap().unwrap();
    assert_eq!(user.polar_user_id, user_id);
    assert_eq!(
        user.member_id.as_deref(),
        Some(format!("athlete-{}", account.polar_user_id).as_str())
    );
    let registered_at = sim.account(account.polar_user_id).unwrap().registered_at;
    assert_eq!(
        user.registered_at.map(|t| t.timestamp_millis()),
        registered_at.map(|t| t.timestamp_millis())
    );
    // Another user's id is "not found" (204) for this token.
    let other = PolarUserId::new(account.polar_user_id + 1).unwrap();
    assert_eq!(client.get_user(&token, other).await.unwrap(), None);

    assert_eq!(
        client.delete_user(&token, user_id).await.unwrap(),
        Deregistration::Deleted
    );
    assert!(!sim.account(account.polar_user_id).unwrap().registered);
    assert!(matches!(
        client.exercises(&token).await,
        Err(PolarError::Unauthorized)
    ));
    // Deleting again with the revoked token: the link is already gone.
    assert_eq!(
        client.delete_user(&token, user_id).await.unwrap(),
        Deregistration::AlreadyGone
    );
}

#[tokio::test]
async fn disconnecting_on_polars_side_makes_every_user_call_unauthorized() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let (account, token) = linked(&sim, &client).await;

    sim.disconnect(account.polar_user_id).unwrap();

    assert!(matches!(
        client.sleeps(&token).await,
        Err(PolarError::Unauthorized)
    ));
    assert!(matches!(
        client.activity(&token, local_today(&sim)).await,
        Err(PolarError::Unauthorized)
    ));
    assert!(matches!(
        client
            .get_user(&token, PolarUserId::new(account.polar_user_id).unwrap())
            .await,
        Err(PolarError::Unauthorized)
    ));
}

// ---------------------------------------------------------------------------------------------
// Data

#[tokio::test]
async fn an_exercise_maps_to_exact_domain_values() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let (account, token) = linked(&sim, &client).await;
    let start = (local_today(&sim) - Days::days(1))
        .and_hms_opt(7, 5, 0)
        .unwrap();
    sim.add_record(
        account.polar_user_id,
        NewRecord {
            start_time: Some(start),
            ..record(
                RecordKind::Exercise,
                None,
                json!({
                    "id": "Xy7Qp2Lr",
                    "duration": "PT14295.773S",
                    "calories": 712,
                    "distance": 12450.0,
                    "heart_rate": {"average": 148, "maximum": 176},
                    "sport": "RUNNING",
                    "detailed_sport_info": "ROAD_RUNNING",
                    "heart_rate_zones": [
                        {"index": 1, "lower-limit": 96, "upper-limit": 115, "in-zone": "PT2M10S"},
                        {"index": 2, "lower-limit": 115, "upper-limit": 134, "in-zone": "PT9M45S"},
                        {"index": 3, "lower-limit": 134, "upper-limit": 153, "in-zone": "PT31M5S"},
                        {"index": 4, "lower-limit": 153, "upper-limit": 172, "in-zone": "PT18M40S"},
                        {"index": 5, "lower-limit": 172, "upper-limit": 192, "in-zone": "PT0M50S"}
                    ],
                    "training_load_pro": {"cardio-load": 118.4, "muscle-load": 402.0}
                }),
            )
        },
    )
    .unwrap();
    let id = ExerciseId::parse("Xy7Qp2Lr").unwrap();

    let listed = client.exercises(&token).await.unwrap();
    let single = client.exercise(&token, &id).await.unwrap().unwrap();

    assert!(listed.broken.is_empty(), "{:?}", listed.broken);
    assert_eq!(listed.records, vec![single.clone()]);
    assert_eq!(single.id, id);
    assert_eq!(single.start_time, start);
    assert_eq!(single.start_time_utc_offset_minutes, OFFSET_MINUTES);
    assert_close(single.duration_seconds, 14_295.773);
    assert_eq!(single.calories, Some(712.0));
    assert_eq!(single.distance_metres, Some(12_450.0));
    assert_eq!(single.heart_rate_average, Some(148.0));
    assert_eq!(single.heart_rate_maximum, Some(176.0));
    assert_eq!(single.detailed_sport_info.as_deref(), Some("ROAD_RUNNING"));
    let zones: Vec<(u8, f64)> = single
        .heart_rate_zones
        .iter()
        .map(|z| (z.index, z.in_zone_seconds))
        .collect();
    assert_eq!(
        zones,
        vec![(1, 130.0), (2, 585.0), (3, 1865.0), (4, 1120.0), (5, 50.0)]
    );
    assert_eq!(single.cardio_load, Some(118.4));
    assert_eq!(single.muscle_load, Some(402.0));
    // Zones are embedded only on request: the client asks for them on both paths.
    let asked: Vec<Option<String>> = sim
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v3/exercises"))
        .map(|r| r.query.clone())
        .collect();
    assert_eq!(asked, vec![Some("zones=true".into()); 2]);
}

#[tokio::test]
async fn sleep_recharge_and_activity_map_to_exact_domain_values() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let (account, token) = linked(&sim, &client).await;
    let night = local_today(&sim) - Days::days(1);
    let id = account.polar_user_id;
    sim.add_record(
        id,
        record(
            RecordKind::Sleep,
            Some(night),
            json!({"light_sleep": 14820, "deep_sleep": 5430, "rem_sleep": 5610,
                   "unrecognized_sleep_stage": 0, "total_interruption_duration": 1415,
                   "sleep_score": 78, "sleep_charge": 3, "continuity": 3.4}),
        ),
    )
    .unwrap();
    sim.add_record(
        id,
        record(
            RecordKind::Recharge,
            Some(night),
            json!({"nightly_recharge_status": 4, "ans_charge": -1.5, "heart_rate_avg": 54,
                   "heart_rate_variability_avg": 62, "breathing_rate_avg": 13.6}),
        ),
    )
    .unwrap();
    sim.add_record(
        id,
        record(
            RecordKind::Activity,
            Some(night),
            json!({"active_duration": "PT4H12M", "calories": 2841, "active_calories": 1120,
                   "steps": 13207, "distance_from_steps": 9874.5}),
        ),
    )
    .unwrap();

    let sleep = client.sleep(&token, night).await.unwrap().unwrap();
    assert_eq!(
        client.sleeps(&token).await.unwrap().records,
        vec![sleep.clone()]
    );
    assert_eq!(sleep.date, night);
    assert_eq!(sleep.light_sleep_seconds, Some(14820));
    assert_eq!(sleep.deep_sleep_seconds, Some(5430));
    assert_eq!(sleep.rem_sleep_seconds, Some(5610));
    assert_eq!(sleep.unrecognized_sleep_seconds, Some(0));
    assert_eq!(sleep.total_interruption_seconds, Some(1415));
    assert_eq!(sleep.sleep_score, Some(78.0));
    assert_eq!(sleep.sleep_charge, Some(3.0));
    assert_eq!(sleep.continuity, Some(3.4));
    let (start, end) = (sleep.sleep_start.unwrap(), sleep.sleep_end.unwrap());
    assert_eq!(start.offset().local_minus_utc(), OFFSET_MINUTES * 60);
    assert!(start < end);
    assert_eq!(end.date_naive(), night, "the sleep date is the wake-up day");

    let recharge = client.recharge(&token, night).await.unwrap().unwrap();
    assert_eq!(
        client.recharges(&token).await.unwrap().records,
        vec![recharge.clone()]
    );
    assert_eq!(recharge.date, night);
    assert_eq!(recharge.nightly_recharge_status, Some(4));
    assert_eq!(recharge.ans_charge, Some(-1.5));
    assert_eq!(recharge.heart_rate_avg, Some(54.0));
    assert_eq!(recharge.heart_rate_variability_avg, Some(62.0));
    assert_eq!(recharge.breathing_rate_avg, Some(13.6));

    let activity = client.activity(&token, night).await.unwrap().unwrap();
    let listed = client.activities(&token).await.unwrap();
    assert_eq!(listed.records, vec![activity.clone()]);
    assert_eq!(activity.date, night);
    assert_eq!(activity.active_duration_seconds, Some(15_120.0));
    assert_eq!(activity.calories, Some(2841.0));
    assert_eq!(activity.active_calories, Some(1120.0));
    assert_eq!(activity.steps, Some(13207));
    assert_eq!(activity.distance_from_steps_metres, Some(9874.5));
}

#[tokio::test]
async fn generated_history_parses_without_broken_records() {
    let sim = start_sim(PolarSimConfig {
        history_before_registration: true,
        ..PolarSimConfig::default()
    })
    .await;
    let client = client_for(&sim);
    let (account, token) = linked(&sim, &client).await;
    let summary = sim
        .generate(
            account.polar_user_id,
            &GenerateRequest {
                days: 14,
                upload: UploadMode::Now,
                ..GenerateRequest::default()
            },
        )
        .unwrap();

    let exercises = client.exercises(&token).await.unwrap();
    let activities = client.activities(&token).await.unwrap();
    let sleeps = client.sleeps(&token).await.unwrap();
    let recharges = client.recharges(&token).await.unwrap();

    for broken in [
        &exercises.broken,
        &activities.broken,
        &sleeps.broken,
        &recharges.broken,
    ] {
        assert!(broken.is_empty(), "{broken:?}");
    }
    let mut ids: Vec<String> = exercises.records.iter().map(|e| e.id.to_string()).collect();
    let mut expected_ids = summary.exercises.clone();
    ids.sort();
    expected_ids.sort();
    assert_eq!(ids, expected_ids);
    assert!(
        exercises
            .records
            .iter()
            .all(|e| e.start_time_utc_offset_minutes == OFFSET_MINUTES
                && e.duration_seconds.is_some_and(|s| s > 0.0))
    );
    let dates = |mut dates: Vec<NaiveDate>| {
        dates.sort();
        dates
    };
    assert_eq!(
        dates(activities.records.iter().map(|a| a.date).collect()),
        dates(summary.activities.clone())
    );
    assert_eq!(
        dates(sleeps.records.iter().map(|s| s.date).collect()),
        dates(summary.sleeps.clone())
    );
    assert_eq!(
        dates(recharges.records.iter().map(|r| r.date).collect()),
        dates(summary.recharges.clone())
    );
}

#[tokio::test]
async fn missing_single_records_are_none_and_not_ready_recharge_appears_when_ready() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let (account, token) = linked(&sim, &client).await;
    let night = local_today(&sim) - Days::days(1);
    sim.add_record(
        account.polar_user_id,
        NewRecord {
            ready: false,
            ..record(RecordKind::Recharge, Some(night), json!({}))
        },
    )
    .unwrap();

    // 404 (exercise, sleep, recharge) and 204 (activity) both mean "no record".
    let unknown = ExerciseId::parse("NoSuchId").unwrap();
    assert_eq!(client.exercise(&token, &unknown).await.unwrap(), None);
    assert_eq!(client.activity(&token, night).await.unwrap(), None);
    assert_eq!(client.sleep(&token, night).await.unwrap(), None);
    assert_eq!(client.recharge(&token, night).await.unwrap(), None);
    let statuses: Vec<Option<u16>> = sim
        .requests()
        .iter()
        .rev()
        .take(4)
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![Some(404), Some(404), Some(204), Some(404)]);
    assert!(client.recharges(&token).await.unwrap().records.is_empty());

    sim.set_record_ready(
        account.polar_user_id,
        RecordKind::Recharge,
        &night.to_string(),
        true,
    )
    .unwrap();
    assert_eq!(
        client
            .recharge(&token, night)
            .await
            .unwrap()
            .map(|r| r.date),
        Some(night)
    );
}

// ---------------------------------------------------------------------------------------------
// Failures

#[tokio::test]
async fn one_malformed_record_is_broken_and_the_rest_are_parsed() {
    let sim = start_sim(PolarSimConfig {
        history_before_registration: true,
        ..PolarSimConfig::default()
    })
    .await;
    let client = client_for(&sim);
    let (account, token) = linked(&sim, &client).await;
    sim.generate(
        account.polar_user_id,
        &GenerateRequest {
            days: 5,
            upload: UploadMode::Now,
            ..GenerateRequest::default()
        },
    )
    .unwrap();
    let clean_exercises = client.exercises(&token).await.unwrap().records;
    let clean_sleeps = client.sleeps(&token).await.unwrap().records;

    sim.inject_fault(fault("/v3/exercises", FaultKind::MalformedRecord))
        .unwrap();
    sim.inject_fault(fault("/v3/users/sleep", FaultKind::MalformedRecord))
        .unwrap();
    let exercises = client.exercises(&token).await.unwrap();
    let sleeps = client.sleeps(&token).await.unwrap();

    assert_eq!(exercises.records, clean_exercises);
    assert_eq!(exercises.broken.len(), 1);
    assert!(
        exercises.broken[0].reason.starts_with("field `"),
        "{:?}",
        exercises.broken[0]
    );
    assert_eq!(sleeps.records, clean_sleeps);
    assert_eq!(sleeps.broken.len(), 1);
    assert!(
        !sleeps.broken[0].reason.contains("not-a-number"),
        "the reason names the field, not the value: {:?}",
        sleeps.broken[0]
    );
}

#[tokio::test]
async fn truncated_json_is_malformed() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let (_, token) = linked(&sim, &client).await;
    sim.inject_fault(fault(
        "/v3/users/nightly-recharge",
        FaultKind::MalformedJson,
    ))
    .unwrap();

    let result = client.recharges(&token).await;

    assert!(
        matches!(result, Err(PolarError::Malformed { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn server_errors_are_server() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let (_, token) = linked(&sim, &client).await;
    sim.inject_fault(fault("/v3/users/sleep", FaultKind::Status { status: 502 }))
        .unwrap();

    let result = client.sleeps(&token).await;

    assert!(
        matches!(result, Err(PolarError::Server { status: 502 })),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_dropped_connection_is_transport() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let (_, token) = linked(&sim, &client).await;
    sim.inject_fault(fault(
        "/v3/exercises",
        FaultKind::Drop {
            after_processing: false,
        },
    ))
    .unwrap();

    let result = client.exercises(&token).await;

    let Err(PolarError::Transport { message, source }) = result else {
        panic!("expected Transport, got {result:?}");
    };
    assert!(!message.contains("127.0.0.1"), "{message}");
    let source = source.expect("reqwest's error is kept");
    let source = source
        .downcast_ref::<reqwest::Error>()
        .expect("the source is reqwest's error");
    assert!(source.url().is_none(), "{source:?}");
}

#[tokio::test]
async fn an_answer_slower_than_the_client_timeout_is_timeout() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let (_, token) = linked(&sim, &client_for(&sim)).await;
    let impatient = client_with(&sim, sim.client_secret(), shared::http::client().unwrap())
        .with_request_timeout(Duration::from_millis(300));
    sim.inject_fault(fault("/v3/exercises", FaultKind::Delay { ms: 2_000 }))
        .unwrap();

    let result = impatient.exercises(&token).await;

    assert!(matches!(result, Err(PolarError::Timeout)), "{result:?}");
}

// ---------------------------------------------------------------------------------------------
// Rate limits

#[tokio::test]
async fn every_response_updates_the_rate_limit_reading_and_clones_share_it() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let clone = client.clone();
    assert_eq!(client.latest_rate_limit(), None);
    let (_, token) = linked(&sim, &client).await;

    // The registration call was answered while nobody was registered yet: the bare bases.
    let first = client.latest_rate_limit().unwrap().info;
    assert_eq!((first.short_limit, first.long_limit), (500, 5_000));
    assert_eq!((first.short_used, first.long_used), (1, 1));
    assert!(first.short_reset_seconds <= 900 && first.long_reset_seconds <= 86_400);

    // An error answer (404) carries the headers too, now with one registered user (reference §7).
    let unknown = ExerciseId::parse("NoSuchId").unwrap();
    assert_eq!(clone.exercise(&token, &unknown).await.unwrap(), None);
    let second = client.latest_rate_limit().unwrap();
    assert_eq!(
        (second.info.short_limit, second.info.long_limit),
        (520, 5_100)
    );
    assert_eq!((second.info.short_used, second.info.long_used), (2, 2));
    assert!(second.observed_at <= chrono::Utc::now());
}

#[tokio::test]
async fn exceeding_the_short_window_is_rate_limited_until_its_reset() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let (_, token) = linked(&sim, &client).await;
    sim.update_settings(SettingsPatch {
        rate_limits: Some(RateLimits {
            short_base: 3,
            short_per_user: 0,
            long_base: 1_000,
            long_per_user: 0,
        }),
        ..SettingsPatch::default()
    });
    // Registration was call 1 of the window; calls 2 and 3 pass, call 4 is refused.
    client.sleeps(&token).await.unwrap();
    client.sleeps(&token).await.unwrap();

    let refused = client.sleeps(&token).await;

    let Err(PolarError::RateLimited {
        retry_after_seconds,
    }) = refused
    else {
        panic!("expected RateLimited, got {refused:?}");
    };
    let reading = client.latest_rate_limit().unwrap().info;
    assert_eq!(retry_after_seconds, reading.short_reset_seconds);
    assert!((1..=900).contains(&retry_after_seconds));
    sim.advance_clock(i64::try_from(retry_after_seconds).unwrap())
        .unwrap();
    assert!(client.sleeps(&token).await.is_ok());
}

#[tokio::test]
async fn exceeding_the_long_window_waits_for_the_long_reset() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let (_, token) = linked(&sim, &client).await;
    sim.update_settings(SettingsPatch {
        rate_limits: Some(RateLimits {
            short_base: 1_000,
            short_per_user: 0,
            long_base: 2,
            long_per_user: 0,
        }),
        ..SettingsPatch::default()
    });
    client.sleeps(&token).await.unwrap();

    let refused = client.sleeps(&token).await;

    let Err(PolarError::RateLimited {
        retry_after_seconds,
    }) = refused
    else {
        panic!("expected RateLimited, got {refused:?}");
    };
    let reading = client.latest_rate_limit().unwrap().info;
    assert_eq!(retry_after_seconds, reading.long_reset_seconds);
    assert!(retry_after_seconds > 900, "{retry_after_seconds}");
}

// ---------------------------------------------------------------------------------------------
// Webhooks

/// A tiny receiver that answers every POST 200 and records the `Polar-Webhook-Event` header.
async fn start_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let router = Router::new().route(
        "/polar/webhook",
        post(move |headers: HeaderMap| {
            let seen = seen.clone();
            async move {
                let event = headers
                    .get("polar-webhook-event")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                seen.lock().unwrap().push(event);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/polar/webhook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, events)
}

#[tokio::test]
async fn webhook_create_list_activate_and_delete() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let (url, received) = start_receiver().await;

    let created = client
        .create_webhook(&url, &WebhookEventType::SUBSCRIBED)
        .await
        .unwrap();

    assert_eq!(received.lock().unwrap().as_slice(), ["PING"]);
    let held = sim.webhook().unwrap();
    assert_eq!(created.id, held.id);
    assert_eq!(
        created.signature_secret.expose_secret(),
        held.signature_secret_key
    );
    assert!(!format!("{created:?}").contains(&held.signature_secret_key));

    let again = client
        .create_webhook(&url, &WebhookEventType::SUBSCRIBED)
        .await;
    assert!(
        matches!(&again, Err(PolarError::BadRequest { status: 409, detail }) if detail == "webhook already exists"),
        "{again:?}"
    );

    let listed = client.webhooks().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, created.id);
    assert_eq!(listed[0].url, url);
    assert_eq!(listed[0].events, ["EXERCISE", "SLEEP", "ACTIVITY_SUMMARY"]);
    assert_eq!(listed[0].active, Some(true));

    assert!(client.activate_webhook().await.unwrap());
    assert_eq!(received.lock().unwrap().len(), 2, "activation pings again");

    client.delete_webhook(&created.id).await.unwrap();
    assert!(sim.webhook().is_none());
    assert!(client.webhooks().await.unwrap().is_empty());
    assert!(!client.activate_webhook().await.unwrap(), "204: no webhook");
    assert!(matches!(
        client.delete_webhook(&created.id).await,
        Err(PolarError::BadRequest { status: 404, .. })
    ));
}

#[tokio::test]
async fn webhook_calls_with_wrong_client_credentials_are_invalid_client() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let bad = client_with(&sim, "WRONG", shared::http::client().unwrap());

    let result = bad.webhooks().await;

    assert!(
        matches!(result, Err(PolarError::InvalidClient)),
        "{result:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Optional forms' data: cardio load, SleepWise alertness, 24/7 heart rate

/// A linked athlete with `days` of history (optional data included) up to yesterday, uploaded now.
async fn with_optional_data(
    sim: &PolarSimHandle,
    client: &PolarClient,
    days: u32,
) -> (AccountView, AccessToken, NaiveDate) {
    let (account, token) = linked(sim, client).await;
    let yesterday = local_today(sim) - Days::days(1);
    sim.generate(
        account.polar_user_id,
        &GenerateRequest {
            days,
            end_date: Some(yesterday),
            upload: UploadMode::Now,
            optional_data: true,
            ..GenerateRequest::default()
        },
    )
    .unwrap();
    (account, token, yesterday)
}

fn stored(sim: &PolarSimHandle, account: &AccountView, kind: RecordKind) -> Vec<Value> {
    sim.records(account.polar_user_id, Some(kind))
        .unwrap()
        .into_iter()
        .map(|r| r.body)
        .collect()
}

#[tokio::test]
async fn cardio_load_reads_every_range_to_the_same_exact_days() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let (account, token, yesterday) = with_optional_data(&sim, &client, 10).await;

    let recent = client
        .cardio_loads(&token, CardioLoadRange::Recent)
        .await
        .unwrap();
    assert!(recent.broken.is_empty());
    // Ten days of history: each is a record (a load or a status); the 18 days without data are not.
    let dates: Vec<NaiveDate> = recent.records.iter().map(|d| d.date).collect();
    let expected: Vec<NaiveDate> = (0..10)
        .rev()
        .map(|back| yesterday - Days::days(back))
        .filter(|day| {
            let body = stored(&sim, &account, RecordKind::CardioLoad)
                .into_iter()
                .find(|b| b["date"] == day.to_string())
                .unwrap();
            body["cardio_load_status"] != "LOAD_STATUS_NOT_AVAILABLE"
                || body["cardio_load"].as_f64().unwrap() > 0.0
        })
        .collect();
    assert_eq!(dates, expected);
    for day in &recent.records {
        let body = stored(&sim, &account, RecordKind::CardioLoad)
            .into_iter()
            .find(|b| b["date"] == day.date.to_string())
            .unwrap();
        if body["cardio_load_status"] == "LOAD_STATUS_NOT_AVAILABLE" {
            assert_eq!((day.status.as_deref(), day.strain), (None, None));
        } else {
            assert_eq!(day.status.as_deref(), body["cardio_load_status"].as_str());
            assert_close(day.strain, body["strain"].as_f64().unwrap());
            assert_close(day.tolerance, body["tolerance"].as_f64().unwrap());
            assert_close(
                day.cardio_load_ratio,
                body["cardio_load_ratio"].as_f64().unwrap(),
            );
            assert_close(day.cardio_load, body["cardio_load"].as_f64().unwrap());
        }
    }
    // The last four days with a status, three ways.
    let last_days: Vec<_> = recent
        .records
        .iter()
        .filter(|d| d.date > yesterday - Days::days(4))
        .cloned()
        .collect();
    let range = DateRange::new(yesterday - Days::days(3), yesterday).unwrap();
    let by_dates = client
        .cardio_loads(&token, CardioLoadRange::Dates(range))
        .await
        .unwrap();
    assert_eq!(by_dates.records, last_days);
    let by_period = client
        .cardio_loads(&token, CardioLoadRange::PastDays(PastDays::new(5).unwrap()))
        .await
        .unwrap();
    assert_eq!(by_period.records, last_days, "today has no cardio load yet");
    let longest = client
        .cardio_loads(
            &token,
            CardioLoadRange::PastDays(PastDays::new(180).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(longest.records, recent.records);
}

#[tokio::test]
async fn alertness_periods_read_in_utc_and_date_by_the_local_end() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let (account, token) = linked(&sim, &client).await;
    assert_eq!(
        client.alertness(&token, None).await.unwrap(),
        Records::default(),
        "204 before SleepWise has five nights"
    );
    let yesterday = local_today(&sim) - Days::days(1);
    sim.generate(
        account.polar_user_id,
        &GenerateRequest {
            days: 8,
            end_date: Some(yesterday),
            upload: UploadMode::Now,
            optional_data: true,
            ..GenerateRequest::default()
        },
    )
    .unwrap();
    sim.add_record(
        account.polar_user_id,
        record(
            RecordKind::Alertness,
            Some(yesterday),
            json!({"sleep_type": "SLEEP_TYPE_SECONDARY", "grade": 6.4, "validity": "VALIDITY_VALID"}),
        ),
    )
    .unwrap();

    let periods = client.alertness(&token, None).await.unwrap();
    assert!(periods.broken.is_empty());
    let bodies = stored(&sim, &account, RecordKind::Alertness);
    assert_eq!(periods.records.len(), bodies.len());
    let nights: Vec<NaiveDate> = periods
        .records
        .iter()
        .filter(|p| p.sleep_type.as_deref() == Some("SLEEP_TYPE_PRIMARY"))
        .map(|p| p.local_end_date())
        .collect();
    let expected: Vec<NaiveDate> = (0..4).rev().map(|b| yesterday - Days::days(b)).collect();
    assert_eq!(nights, expected, "from the fifth night on");
    let nap = periods
        .records
        .iter()
        .find(|p| p.grade == Some(6.4))
        .unwrap();
    assert_eq!(nap.sleep_type.as_deref(), Some("SLEEP_TYPE_SECONDARY"));
    assert_eq!(nap.local_end_date(), yesterday);
    assert_eq!(nap.sleep_timezone_offset_minutes, OFFSET_MINUTES);
    // Local (UTC+02:00) afternoon: 11:00–14:30 UTC.
    let start = nap.sleep_period_start.time();
    assert!(
        (chrono::NaiveTime::from_hms_opt(11, 0, 0).unwrap()
            ..chrono::NaiveTime::from_hms_opt(14, 30, 0).unwrap())
            .contains(&start),
        "{start}"
    );

    let yesterday_only = client
        .alertness(&token, Some(DateRange::new(yesterday, yesterday).unwrap()))
        .await
        .unwrap();
    let types: Vec<Option<&str>> = yesterday_only
        .records
        .iter()
        .map(|p| p.sleep_type.as_deref())
        .collect();
    assert!(
        types.contains(&Some("SLEEP_TYPE_PRIMARY"))
            && types.contains(&Some("SLEEP_TYPE_SECONDARY"))
    );
    assert!(
        yesterday_only
            .records
            .iter()
            .all(|p| p.local_end_date() == yesterday)
    );
}

#[tokio::test]
async fn heart_rate_reads_one_day_and_the_wrapped_range_alike() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let (account, token, yesterday) = with_optional_data(&sim, &client, 3).await;

    let day = client
        .daily_heart_rate(&token, yesterday)
        .await
        .unwrap()
        .unwrap();
    let body = stored(&sim, &account, RecordKind::HeartRate)
        .into_iter()
        .find(|b| b["date"] == yesterday.to_string())
        .unwrap();
    let sent: Vec<(String, u16)> = body["heart_rate_samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["sample_time"].as_str().unwrap().to_owned(),
                u16::try_from(s["heart_rate"].as_u64().unwrap()).unwrap(),
            )
        })
        .collect();
    let read: Vec<(String, u16)> = day
        .samples
        .iter()
        .map(|s| (s.time.format("%H:%M:%S").to_string(), s.heart_rate))
        .collect();
    assert_eq!(read, sent);

    let range = DateRange::new(yesterday - Days::days(2), yesterday).unwrap();
    let days = client.daily_heart_rates(&token, range).await.unwrap();
    assert!(days.broken.is_empty());
    assert_eq!(
        days.records.iter().map(|d| d.date).collect::<Vec<_>>(),
        [
            yesterday - Days::days(2),
            yesterday - Days::days(1),
            yesterday
        ]
    );
    assert_eq!(days.records[2], day);

    let empty = yesterday - Days::days(20);
    assert_eq!(client.daily_heart_rate(&token, empty).await.unwrap(), None);
    let nothing = client
        .daily_heart_rates(&token, DateRange::new(empty, empty).unwrap())
        .await
        .unwrap();
    assert_eq!(nothing, Records::default());
}

#[tokio::test]
async fn off_wrist_samples_and_not_available_days_are_read_as_no_data() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let (account, token) = linked(&sim, &client).await;
    let yesterday = local_today(&sim) - Days::days(1);
    let off_wrist = json!({"heart_rate_samples": [
        {"heart_rate": 0, "sample_time": "00:02:08"}, {"heart_rate": 0, "sample_time": "00:07:08"}
    ]});
    sim.add_record(
        account.polar_user_id,
        record(RecordKind::HeartRate, Some(yesterday), off_wrist),
    )
    .unwrap();
    assert_eq!(
        client.daily_heart_rate(&token, yesterday).await.unwrap(),
        None
    );
    let charging = json!({"heart_rate_samples": [
        {"heart_rate": 61, "sample_time": "00:02:08"}, {"heart_rate": 0, "sample_time": "00:07:08"},
        {"heart_rate": 64, "sample_time": "00:12:08"}
    ]});
    sim.add_record(
        account.polar_user_id,
        record(RecordKind::HeartRate, Some(yesterday), charging),
    )
    .unwrap();
    let day = client
        .daily_heart_rate(&token, yesterday)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        day.samples.iter().map(|s| s.heart_rate).collect::<Vec<_>>(),
        [61, 64]
    );
    // A cardio-load day of a new account: Polar lists it, nothing in it is data.
    let list = client
        .cardio_loads(&token, CardioLoadRange::Recent)
        .await
        .unwrap();
    assert_eq!(list, Records::default());
}

#[tokio::test]
async fn a_malformed_day_or_period_is_broken_and_the_rest_are_read() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let (_, token, yesterday) = with_optional_data(&sim, &client, 8).await;
    let range = DateRange::new(yesterday - Days::days(2), yesterday).unwrap();
    let clean_days = client.daily_heart_rates(&token, range).await.unwrap();
    let clean_periods = client.alertness(&token, None).await.unwrap();
    let clean_loads = client
        .cardio_loads(&token, CardioLoadRange::Recent)
        .await
        .unwrap();

    for path in [
        "/v3/users/continuous-heart-rate",
        "/v3/users/sleepwise/alertness",
        "/v3/users/cardio-load",
    ] {
        sim.inject_fault(fault(path, FaultKind::MalformedRecord))
            .unwrap();
    }
    let days = client.daily_heart_rates(&token, range).await.unwrap();
    let periods = client.alertness(&token, None).await.unwrap();
    let loads = client
        .cardio_loads(&token, CardioLoadRange::Recent)
        .await
        .unwrap();
    assert_eq!((days.records, days.broken.len()), (clean_days.records, 1));
    assert_eq!(
        (periods.records, periods.broken.len()),
        (clean_periods.records.clone(), 1)
    );
    assert_eq!(
        (loads.records, loads.broken.len()),
        (clean_loads.records, 1)
    );

    sim.inject_fault(fault(
        "/v3/users/sleepwise/alertness",
        FaultKind::ExtremeRecord,
    ))
    .unwrap();
    let extreme = client.alertness(&token, None).await.unwrap();
    assert_eq!(extreme.broken.len(), 1);
    assert_eq!(
        extreme.broken[0].reason,
        "field `sleep_timezone_offset_minutes`: is more than 24 hours from UTC"
    );
    assert_eq!(extreme.records, clean_periods.records);
}

#[tokio::test]
async fn the_optional_calls_share_the_errors_and_rate_limits_of_the_others() {
    let sim = start_sim(PolarSimConfig::default()).await;
    let client = client_for(&sim);
    let (account, token, yesterday) = with_optional_data(&sim, &client, 2).await;
    sim.update_settings(SettingsPatch {
        rate_limits: Some(RateLimits {
            short_base: 4,
            short_per_user: 0,
            long_base: 1_000,
            long_per_user: 0,
        }),
        ..SettingsPatch::default()
    });
    // Registration was call 1 of the window.
    client.daily_heart_rate(&token, yesterday).await.unwrap();
    let after_two = client.latest_rate_limit().unwrap().info;
    assert_eq!((after_two.short_used, after_two.short_limit), (2, 4));
    client.alertness(&token, None).await.unwrap();
    client
        .cardio_loads(&token, CardioLoadRange::Recent)
        .await
        .unwrap();
    let refused = client
        .daily_heart_rates(&token, DateRange::new(yesterday, yesterday).unwrap())
        .await;
    assert!(
        matches!(refused, Err(PolarError::RateLimited { retry_after_seconds }) if retry_after_seconds >= 1),
        "{refused:?}"
    );
    sim.advance_clock(900).unwrap();

    sim.inject_fault(fault(
        "/v3/users/cardio-load",
        FaultKind::Status { status: 503 },
    ))
    .unwrap();
    assert!(matches!(
        client.cardio_loads(&token, CardioLoadRange::Recent).await,
        Err(PolarError::Server { status: 503 })
    ));
    sim.update_account(
        account.polar_user_id,
        polar_sim::AccountPatch {
            consents_accepted: Some(false),
            ..polar_sim::AccountPatch::default()
        },
    )
    .unwrap();
    assert!(matches!(
        client.alertness(&token, None).await,
        Err(PolarError::ConsentsMissing)
    ));
    sim.disconnect(account.polar_user_id).unwrap();
    assert!(matches!(
        client.daily_heart_rate(&token, yesterday).await,
        Err(PolarError::Unauthorized)
    ));
}
