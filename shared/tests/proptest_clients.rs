//! Property tests of the two API clients against a scripted HTTP server that answers with anything:
//! every status, `RateLimit-*` and `Retry-After` headers with garbage or extreme numbers in them, and
//! bodies that are the documented shapes with random fields broken (extreme durations, dates at the
//! calendar's edges, huge numbers, Polar's no-data marks), arbitrary JSON, or arbitrary bytes. Whatever
//! comes back, a client call never panics, returns a typed result, and an error says what went wrong
//! without the secrets the client holds (the Polar client secret and token, the Smartabase password),
//! even when the server echoes them. What the Polar client returns is then taken on as the use cases
//! take it (records mapped to events, readings and 429s into the rate budget, the token's expiry), so
//! a number that would overflow a date or duration computation downstream is caught here too.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::budget::{BudgetState, LONG_WINDOW, LimitFormula, polar_wait_until};
use shared::ids::{
    AccessToken, AthleteUuid, AuthCode, EventId, ExerciseId, PolarUserId, SmartabaseUserId,
};
use shared::mapping::Mapping;
use shared::polar::{
    CardioLoadRange, DateRange, PolarApi, PolarClient, PolarEndpoints, PolarError, WebhookEventType,
};
use shared::smartabase::{EventWrite, ProfileEntry, SmartabaseApi, SmartabaseClient};

/// Secrets the clients hold; the scripted server sometimes echoes them back.
const CLIENT_SECRET: &str = "polar-client-secret-5b0c9e";
const TOKEN: &str = "a9f3c2e17b6d4e0f8a1c3b5d7e9f0a2c4e6b8d0f";
const CODE: &str = "c0de5ecre7c0de5ecre7c0de5ecre7";
const PASSWORD: &str = "smartabase-password-77e1";
/// A secret-looking value the server puts into data fields (a token Polar would never echo).
const MARKER: &str = "5ecre7-marker-9d2f41b7c6e0a83d5f1b";

/// What the server answers next.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

type Script = Arc<Mutex<Answer>>;

/// A server on a free loopback port that answers every request with the current [`Answer`].
async fn scripted_server() -> (String, Script) {
    use axum::extract::State;
    use axum::http::{HeaderName, HeaderValue, StatusCode};
    use axum::response::IntoResponse;

    let script: Script = Arc::new(Mutex::new(Answer {
        status: 200,
        headers: Vec::new(),
        body: Vec::new(),
    }));
    async fn answer(State(script): State<Script>) -> axum::response::Response {
        let answer = script.lock().unwrap().clone();
        let status = StatusCode::from_u16(answer.status).unwrap();
        let mut response = (status, answer.body).into_response();
        for (name, value) in answer.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, script)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------------
// Generators

/// Strings that break parsers: empty, huge numbers, odd dates and durations, control characters, the
/// secrets themselves.
fn tricky_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("PT".to_string()),
        Just("P1Y2M".to_string()),
        Just("PT-5S".to_string()),
        Just("PT99999999999999999999H".to_string()),
        Just("PT1e308S".to_string()),
        Just("P99999999D".to_string()),
        Just("P4294967295W".to_string()),
        Just("P4294967295DT4294967295H4294967295M4294967295.999S".to_string()),
        Just("PT-1H-30M".to_string()),
        Just("-PT0S".to_string()),
        Just("2025-13-40".to_string()),
        Just("2025-02-30T25:61:61".to_string()),
        Just("+262143-12-31T23:59:59+14:00".to_string()),
        Just("+262142-12-31T23:30:00".to_string()),
        Just("+262142-12-31".to_string()),
        Just("-0001-01-01T00:00:00".to_string()),
        Just("9999-12-31T23:30:00".to_string()),
        Just("NOT_AVAILABLE".to_string()),
        Just("9999999999999999999999".to_string()),
        Just("1.78432026E9".to_string()),
        Just("NaN".to_string()),
        Just("\u{0}\u{7f}\u{202e}".to_string()),
        Just(MARKER.to_string()),
        Just(TOKEN.to_string()),
        Just(PASSWORD.to_string()),
        "\\PC{0,24}",
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(json!(-0.0)),
        Just(json!(1e300)),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(99_999_999)),
        Just(json!(i64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(u64::MAX)),
        tricky_string().prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-z_-]{1,14}",
                    Just("data".to_string()),
                    Just("events".to_string()),
                    Just("state".to_string()),
                    Just("result".to_string()),
                    Just("ids".to_string()),
                    Just("error".to_string()),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every path (object keys, array indices) in `value`.
fn paths(value: &Value, prefix: Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let mut p = prefix.clone();
                p.push(PathStep::Key(k.clone()));
                out.push(p.clone());
                paths(v, p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let mut p = prefix.clone();
                p.push(PathStep::Index(i));
                out.push(p.clone());
                paths(v, p, out);
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum PathStep {
    Key(String),
    Index(usize),
}

/// Replaces (or, with `None`, removes) the value at `path`.
fn mutate(value: &mut Value, path: &[PathStep], replacement: Option<Value>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = value;
    for step in parents {
        at = match (step, at) {
            (PathStep::Key(k), Value::Object(m)) => match m.get_mut(k) {
                Some(v) => v,
                None => return,
            },
            (PathStep::Index(i), Value::Array(a)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return,
            },
            _ => return,
        };
    }
    match (last, at, replacement) {
        (PathStep::Key(k), Value::Object(m), Some(r)) => {
            m.insert(k.clone(), r);
        }
        (PathStep::Key(k), Value::Object(m), None) => {
            m.remove(k);
        }
        (PathStep::Index(i), Value::Array(a), Some(r)) if *i < a.len() => a[*i] = r,
        (PathStep::Index(i), Value::Array(a), None) if *i < a.len() => {
            a.remove(*i);
        }
        _ => {}
    }
}

/// A documented body with up to five fields replaced by odd values or removed.
fn near(template: Value) -> impl Strategy<Value = Value> {
    let mut all = Vec::new();
    paths(&template, Vec::new(), &mut all);
    let count = all.len().max(1);
    prop::collection::vec((0..count, prop::option::weighted(0.85, json_value())), 0..5).prop_map(
        move |changes| {
            let mut body = template.clone();
            for (index, replacement) in changes {
                if let Some(path) = all.get(index) {
                    mutate(&mut body, path, replacement);
                }
            }
            body
        },
    )
}

/// A body for an endpoint whose documented answer is `template`.
fn body(template: Value) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => near(template.clone()).prop_map(|v| v.to_string().into_bytes()),
        2 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => near(template).prop_map(|v| {
            let text = v.to_string().into_bytes();
            text[..text.len() / 2].to_vec()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        // Error bodies as the APIs write them, with anything in the code and message.
        1 => (tricky_string(), tricky_string()).prop_map(|(code, message)| {
            json!({"error": code, "errorType": code, "message": message, "state": code})
                .to_string()
                .into_bytes()
        }),
    ]
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        6 => Just(200),
        3 => prop::sample::select(vec![201, 204, 301, 400, 401, 403, 404, 408, 409, 429, 500, 502, 503]),
        1 => 200u16..600,
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    let extreme = || {
        prop_oneof![
            0u64..100_000,
            Just(86_401u64),
            Just(i64::MAX as u64),
            Just(u64::MAX),
            any::<u64>(),
        ]
    };
    prop_oneof![
        (0u64..100_000, 0u64..100_000).prop_map(|(a, b)| format!("{a}, {b}")),
        (extreme(), extreme()).prop_map(|(a, b)| format!("{a},{b}")),
        extreme().prop_map(|a| a.to_string()),
        Just("18446744073709551615, 18446744073709551615".to_string()),
        Just("-1, -5".to_string()),
        "[ -~]{0,24}",
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            prop::sample::select(vec![
                "ratelimit-usage",
                "ratelimit-limit",
                "ratelimit-reset",
                "retry-after",
                "content-type",
                "location",
                "session-header",
                "set-cookie",
            ]),
            header_value(),
        ),
        0..5,
    )
    .prop_map(|h| h.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn answer(template: Value) -> impl Strategy<Value = Answer> {
    (status(), headers(), body(template)).prop_map(|(status, headers, body)| Answer {
        status,
        headers,
        body,
    })
}

// ---------------------------------------------------------------------------------------------------
// Documented answers (reference examples)

fn exercise() -> Value {
    json!({
        "id": "Xy7Qp2Lr", "upload_time": "2025-09-02T06:41:17.000Z", "device": "Polar Vantage V3",
        "start_time": "2025-09-02T07:05:00", "start_time_utc_offset": 120, "duration": "PT1H2M30S",
        "calories": 712, "distance": 12450.0, "heart_rate": {"average": 148, "maximum": 176},
        "training_load": 118.4, "sport": "RUNNING", "detailed_sport_info": "ROAD_RUNNING",
        "heart_rate_zones": [
            {"index": 1, "lower-limit": 96, "upper-limit": 115, "in-zone": "PT2M10S"},
            {"index": 5, "lower-limit": 172, "upper-limit": 192, "in-zone": "PT0M50S"}
        ],
        "training_load_pro": {"cardio-load": 52.3, "muscle-load": 421.9}
    })
}

fn activity() -> Value {
    json!({
        "start_time": "2025-09-01T00:00:00", "end_time": "2025-09-01T23:59:59",
        "active_duration": "PT4H12M", "calories": 2841, "active_calories": 1120, "steps": 13207,
        "distance_from_steps": 9874.5
    })
}

fn sleep() -> Value {
    json!({
        "date": "2025-09-02", "sleep_start_time": "2025-09-01T23:14:05+02:00",
        "sleep_end_time": "2025-09-02T06:48:40+02:00", "continuity": 3.4, "light_sleep": 14820,
        "deep_sleep": 5430, "rem_sleep": 5610, "unrecognized_sleep_stage": 0, "sleep_score": 78,
        "total_interruption_duration": 1415, "sleep_charge": 3
    })
}

fn recharge() -> Value {
    json!({
        "date": "2025-09-02", "heart_rate_avg": 54, "heart_rate_variability_avg": 62,
        "breathing_rate_avg": 13.6, "nightly_recharge_status": 4, "ans_charge": -1.5
    })
}

fn cardio_load() -> Value {
    json!({
        "date": "2025-09-02", "cardio_load_status": "PRODUCTIVE", "cardio_load": 118.4, "strain": 96.2,
        "tolerance": 81.5, "cardio_load_ratio": 1.18,
        "cardio_load_level": {"very_low": 20.1, "low": 48.3, "medium": 97.0, "high": 150.2, "very-high": 210.8}
    })
}

fn alertness() -> Value {
    json!({
        "grade": 9.9, "grade_validity_seconds": 57600, "grade_type": "GRADE_TYPE_PRIMARY",
        "grade_classification": "GRADE_CLASSIFICATION_STRONG", "validity": "VALIDITY_ESTIMATE",
        "sleep_inertia": "SLEEP_INERTIA_MILD", "sleep_type": "SLEEP_TYPE_PRIMARY",
        "result_type": "ALERTNESS_TYPE_HISTORY", "sleep_period_start_time": "2022-11-20T20:52:20.57",
        "sleep_period_end_time": "2022-11-21T04:11:20.57", "sleep_timezone_offset_minutes": 120
    })
}

fn heart_rate_day() -> Value {
    json!({
        "polar_user": "https://polaraccesslink.com/v3/users/627139", "date": "2022-09-12",
        "heart_rate_samples": [
            {"heart_rate": 63, "sample_time": "00:02:08"}, {"heart_rate": 62, "sample_time": "00:07:08"}
        ]
    })
}

fn user() -> Value {
    json!({
        "polar-user-id": 48211902, "member-id": "athlete-1", "registration-date": "2025-09-01T10:00:00.000Z",
        "first-name": "A", "last-name": "B"
    })
}

/// Which Polar call to make.
#[derive(Debug, Clone, Copy)]
enum PolarCall {
    Exchange,
    Register,
    GetUser,
    DeleteUser,
    Exercises,
    Exercise,
    Activities,
    Activity,
    Sleeps,
    Sleep,
    Recharges,
    Recharge,
    CardioLoads,
    Alertness,
    DailyHeartRate,
    DailyHeartRates,
    CreateWebhook,
    Webhooks,
    ActivateWebhook,
    DeleteWebhook,
}

impl PolarCall {
    const ALL: [PolarCall; 20] = [
        Self::Exchange,
        Self::Register,
        Self::GetUser,
        Self::DeleteUser,
        Self::Exercises,
        Self::Exercise,
        Self::Activities,
        Self::Activity,
        Self::Sleeps,
        Self::Sleep,
        Self::Recharges,
        Self::Recharge,
        Self::CardioLoads,
        Self::Alertness,
        Self::DailyHeartRate,
        Self::DailyHeartRates,
        Self::CreateWebhook,
        Self::Webhooks,
        Self::ActivateWebhook,
        Self::DeleteWebhook,
    ];

    /// The documented answer of the call.
    fn template(self) -> Value {
        match self {
            Self::Exchange => json!({
                "access_token": MARKER, "token_type": "bearer", "expires_in": 31535999, "x_user_id": 48211902
            }),
            Self::Register | Self::GetUser | Self::DeleteUser => user(),
            Self::Exercises => json!([exercise(), exercise()]),
            Self::Exercise => exercise(),
            Self::Activities => json!([activity(), activity()]),
            Self::Activity => activity(),
            Self::Sleeps => json!({"nights": [sleep(), sleep()]}),
            Self::Sleep => sleep(),
            Self::Recharges => json!({"recharges": [recharge(), recharge()]}),
            Self::Recharge => recharge(),
            Self::CardioLoads => json!([cardio_load(), cardio_load()]),
            Self::Alertness => json!([alertness(), alertness()]),
            Self::DailyHeartRate => heart_rate_day(),
            Self::DailyHeartRates => json!({"heart_rates": [heart_rate_day(), heart_rate_day()]}),
            Self::CreateWebhook => json!({"data": {
                "id": "abdf33", "events": ["EXERCISE"], "url": "https://x.test/hook",
                "signature_secret_key": MARKER
            }}),
            Self::Webhooks | Self::ActivateWebhook | Self::DeleteWebhook => json!({"data": [{
                "id": "abdf33", "events": ["EXERCISE", "SLEEP"], "url": "https://x.test/hook", "active": true
            }]}),
        }
    }

    /// Makes the call and takes on what came back as the use cases do (mapped into events, the
    /// token's expiry, a 429's wait); returns the error text, or the `Debug` of what came back.
    async fn make(self, client: &PolarClient) -> Result<String, String> {
        let token = AccessToken::new(TOKEN.to_string());
        let user = PolarUserId::new(48211902).unwrap();
        let day = NaiveDate::from_ymd_opt(2025, 9, 2).unwrap();
        let exercise = ExerciseId::parse("Xy7Qp2Lr").unwrap();
        let m = Mapping::defaults();
        let debug = |r: Result<String, PolarError>| {
            r.map_err(|e| {
                if let PolarError::RateLimited {
                    retry_after_seconds,
                } = e
                {
                    // The sync defers until then and blocks the budget as long.
                    let until = polar_wait_until(now(), retry_after_seconds);
                    assert!(until - now() <= LONG_WINDOW, "a 429 waits {until}");
                    BudgetState::initial(LimitFormula::POLAR, 0)
                        .rate_limited(retry_after_seconds, now());
                }
                e.to_string()
            })
        };
        match self {
            Self::Exchange => debug(
                client
                    .exchange_code(&AuthCode::new(CODE.to_string()), "https://x.test/cb")
                    .await
                    .map(|g| format!("{g:?} expires {:?}", g.expires_at(now()))),
            ),
            Self::Register => debug(
                client
                    .register_user(&token, &AthleteUuid::parse("athlete-1").unwrap())
                    .await
                    .map(|r| format!("{r:?}")),
            ),
            Self::GetUser => debug(
                client
                    .get_user(&token, user)
                    .await
                    .map(|r| format!("{r:?}")),
            ),
            Self::DeleteUser => debug(
                client
                    .delete_user(&token, user)
                    .await
                    .map(|r| format!("{r:?}")),
            ),
            Self::Exercises => debug(client.exercises(&token).await.map(|r| {
                let events: Vec<_> = r.records.iter().map(|e| m.training(e)).collect();
                format!("{r:?} {events:?}")
            })),
            Self::Exercise => debug(client.exercise(&token, &exercise).await.map(|r| {
                let events: Vec<_> = r.iter().map(|e| m.training(e)).collect();
                format!("{r:?} {events:?}")
            })),
            Self::Activities => debug(client.activities(&token).await.map(|r| {
                let events: Vec<_> = r.records.iter().map(|a| m.activity(a)).collect();
                format!("{r:?} {events:?}")
            })),
            Self::Activity => debug(client.activity(&token, day).await.map(|r| {
                let events: Vec<_> = r.iter().map(|a| m.activity(a)).collect();
                format!("{r:?} {events:?}")
            })),
            Self::Sleeps => debug(client.sleeps(&token).await.map(|r| {
                let events: Vec<_> = r.records.iter().map(|s| m.sleep(s)).collect();
                format!("{r:?} {events:?}")
            })),
            Self::Sleep => debug(client.sleep(&token, day).await.map(|r| {
                let events: Vec<_> = r.iter().map(|s| m.sleep(s)).collect();
                format!("{r:?} {events:?}")
            })),
            Self::Recharges => debug(client.recharges(&token).await.map(|r| {
                let events: Vec<_> = r.records.iter().map(|n| m.recharge(n)).collect();
                format!("{r:?} {events:?}")
            })),
            Self::Recharge => debug(client.recharge(&token, day).await.map(|r| {
                let events: Vec<_> = r.iter().map(|n| m.recharge(n)).collect();
                format!("{r:?} {events:?}")
            })),
            Self::CardioLoads => debug(
                client
                    .cardio_loads(&token, CardioLoadRange::Recent)
                    .await
                    .map(|r| {
                        let events: Vec<_> = r.records.iter().map(|c| m.cardio_load(c)).collect();
                        format!("{r:?} {events:?}")
                    }),
            ),
            Self::Alertness => debug(client.alertness(&token, None).await.map(|r| {
                let events: Vec<_> = r.records.iter().map(|a| m.alertness(a)).collect();
                format!("{r:?} {events:?}")
            })),
            Self::DailyHeartRate => debug(client.daily_heart_rate(&token, day).await.map(|r| {
                let events: Vec<_> = r.iter().map(|d| m.daily_heart_rate(d)).collect();
                format!("{r:?} {events:?}")
            })),
            Self::DailyHeartRates => debug(
                client
                    .daily_heart_rates(&token, DateRange::new(day, day).unwrap())
                    .await
                    .map(|r| {
                        let events: Vec<_> =
                            r.records.iter().map(|d| m.daily_heart_rate(d)).collect();
                        format!("{r:?} {events:?}")
                    }),
            ),
            Self::CreateWebhook => debug(
                client
                    .create_webhook("https://x.test/hook", &WebhookEventType::SUBSCRIBED)
                    .await
                    .map(|r| format!("{r:?}")),
            ),
            Self::Webhooks => debug(client.webhooks().await.map(|r| format!("{r:?}"))),
            Self::ActivateWebhook => {
                debug(client.activate_webhook().await.map(|r| format!("{r:?}")))
            }
            Self::DeleteWebhook => debug(
                client
                    .delete_webhook("abdf33")
                    .await
                    .map(|r| format!("{r:?}")),
            ),
        }
    }
}

/// Which Smartabase call to make.
#[derive(Debug, Clone, Copy)]
enum SmartabaseCall {
    Roster,
    Profiles,
    SaveProfile,
    Import,
    ImportUpdate,
    Find,
    Login,
    FormMetadata,
}

impl SmartabaseCall {
    const ALL: [SmartabaseCall; 8] = [
        Self::Roster,
        Self::Profiles,
        Self::SaveProfile,
        Self::Import,
        Self::ImportUpdate,
        Self::Find,
        Self::Login,
        Self::FormMetadata,
    ];

    fn template(self) -> Value {
        let pairs = json!([{"row": 0, "pairs": [{"key": "Sleep Score", "value": "78"}]}]);
        match self {
            Self::Roster => json!({"users": [
                {"userId": 72827, "uuid": "athlete-1", "firstName": "A", "lastName": "B"},
                {"userId": {"userId": 72828}, "uuid": "athlete-2", "firstName": "C", "lastName": "D"}
            ], "cursor": "next-page"}),
            Self::Profiles => json!({"profiles": [
                {"id": 991122, "formName": "Polar Access Token", "userId": 72827, "rows": pairs}
            ]}),
            Self::SaveProfile => json!({"state": "SUCCESSFULLY_IMPORTED", "message": "ok"}),
            Self::Import | Self::ImportUpdate => json!({
                "result": {"state": "SUCCESSFULLY_IMPORTED", "message": "Imported"}, "ids": [2875223, 2875224]
            }),
            Self::Find => json!({"events": [{
                "id": 2875223, "formName": "Polar Sleep", "startDate": "02/09/2025", "startTime": "12:00 AM",
                "finishDate": "02/09/2025", "finishTime": "11:59 PM", "userId": 72827, "rows": pairs
            }]}),
            Self::Login => json!({
                "isCoach": true, "user": {"id": 120855, "username": "api.user"},
                "permissions": ["Import Data", "Import Profile Data"]
            }),
            // One answer serves the login, the summaries and the schema: a body shaped like all three.
            Self::FormMetadata => json!({
                "user": {"id": 120855},
                "event": [{"id": 2001, "name": "Polar Sleep", "isReadOnly": false}],
                "type": "Form", "name": "Polar Sleep",
                "children": [{"type": "FormPage", "children": [{"type": "FormItem", "name": "Sleep Score"}]}]
            }),
        }
    }

    async fn make(self, client: &SmartabaseClient) -> Result<String, String> {
        let user = SmartabaseUserId::new(72827).unwrap();
        let day = NaiveDate::from_ymd_opt(2025, 9, 2).unwrap();
        let at = |h| NaiveDateTime::new(day, chrono::NaiveTime::from_hms_opt(h, 0, 0).unwrap());
        let event = |existing: Option<i64>| EventWrite {
            form: "Polar Sleep".into(),
            user_id: user,
            start: at(0),
            finish: at(23),
            existing_event_id: existing.map(|id| EventId::new(id).unwrap()),
            pairs: vec![("Sleep Score".into(), "78".into())],
        };
        let r = match self {
            Self::Roster => client
                .roster_page(Some("cursor"))
                .await
                .map(|r| format!("{r:?}")),
            Self::Profiles => client
                .profiles("Polar Access Token", &[user])
                .await
                .map(|r| format!("{r:?}")),
            Self::SaveProfile => client
                .save_profile(&ProfileEntry {
                    form: "Polar Access Token".into(),
                    user_id: user,
                    fields: [("Status".to_string(), "Linked".to_string())].into(),
                })
                .await
                .map(|r| format!("{r:?}")),
            Self::Import => client
                .import_events(&[event(None), event(None)])
                .await
                .map(|r| format!("{r:?}")),
            Self::ImportUpdate => client
                .import_events(&[event(Some(2875223)), event(None)])
                .await
                .map(|r| format!("{r:?}")),
            Self::Find => client
                .find_events("Polar Sleep", user, day, day)
                .await
                .map(|r| format!("{r:?}")),
            Self::Login => client.login().await.map(|r| format!("{r:?}")),
            Self::FormMetadata => {
                async {
                    let mut session = client.login().await?;
                    let forms = client.form_summaries(&mut session).await?;
                    match forms.first() {
                        Some(form) => client
                            .form_field_names(&mut session, form)
                            .await
                            .map(|r| format!("{r:?}")),
                        None => Ok(format!("{forms:?}")),
                    }
                }
                .await
            }
        };
        r.map_err(|e| e.to_string())
    }
}

/// The time the answers are taken on at.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_796_400_000, 0).unwrap()
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    })
}

/// An error must name a problem and carry none of `secrets`.
fn check_error(error: &str, secrets: &[&str]) -> Result<(), TestCaseError> {
    prop_assert!(!error.trim().is_empty(), "an error without a message");
    for secret in secrets {
        prop_assert!(
            !error.contains(secret),
            "the error echoes a secret: {error}"
        );
    }
    Ok(())
}

#[test]
fn the_polar_client_survives_any_answer_and_never_echoes_a_secret() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, script) = runtime.block_on(scripted_server());
    let base = url::Url::parse(&url).unwrap();
    let client = PolarClient::new(
        PolarEndpoints {
            auth_url: base.join("/oauth2/authorization").unwrap(),
            token_url: base.join("/v2/oauth2/token").unwrap(),
            api_url: base.clone(),
        },
        "client-id".into(),
        SecretString::from(CLIENT_SECRET),
        http(),
    );
    let cases = prop::sample::select(PolarCall::ALL.to_vec())
        .prop_flat_map(|call| (Just(call), answer(call.template())));
    let tally = Mutex::new((0, 0));
    runner()
        .run(&cases, |(call, answer)| {
            *script.lock().unwrap() = answer;
            let outcome = runtime.block_on(call.make(&client));
            // Whatever headers came with it, the reading goes into the shared budget.
            if let Some(reading) = client.latest_rate_limit() {
                let state = BudgetState::initial(LimitFormula::POLAR, 0).observe(reading);
                for window in [state.short, state.long] {
                    let resets_at = window.resets_at.unwrap();
                    prop_assert!(resets_at - reading.observed_at <= LONG_WINDOW);
                }
                let _ = state.reserve(4, 0.9, reading.observed_at);
            }
            let mut tally = tally.lock().unwrap();
            match outcome {
                Err(error) => {
                    tally.1 += 1;
                    check_error(&error, &[CLIENT_SECRET, TOKEN, CODE, MARKER])?
                }
                // What came back is printed redacted: a token or webhook secret never shows.
                Ok(debug) => {
                    tally.0 += 1;
                    prop_assert!(!debug.contains(MARKER), "{call:?} shows a secret: {debug}")
                }
            }
            Ok(())
        })
        .unwrap();
    let (ok, failed) = *tally.lock().unwrap();
    println!("polar client: {ok} answers read, {failed} refused");
    assert!(
        ok > 50 && failed > 50,
        "the answers must exercise both paths: {ok} ok, {failed} errors"
    );
}

#[test]
fn the_smartabase_client_survives_any_answer_and_never_echoes_its_password() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, script) = runtime.block_on(scripted_server());
    let client = SmartabaseClient::new(
        url::Url::parse(&format!("{url}/club")).unwrap(),
        "api.user".into(),
        SecretString::from(PASSWORD),
        http(),
    )
    .unwrap();
    let cases = prop::sample::select(SmartabaseCall::ALL.to_vec())
        .prop_flat_map(|call| (Just(call), answer(call.template())));
    let tally = Mutex::new((0, 0));
    runner()
        .run(&cases, |(call, answer)| {
            *script.lock().unwrap() = answer;
            let outcome = runtime.block_on(call.make(&client));
            let mut tally = tally.lock().unwrap();
            match outcome {
                // Smartabase's own failure messages are passed on (shortened), never the password.
                Err(error) => {
                    tally.1 += 1;
                    check_error(&error, &[PASSWORD])?
                }
                Ok(_) => tally.0 += 1,
            }
            Ok(())
        })
        .unwrap();
    let (ok, failed) = *tally.lock().unwrap();
    println!("smartabase client: {ok} answers read, {failed} refused");
    assert!(
        ok > 50 && failed > 50,
        "the answers must exercise both paths: {ok} ok, {failed} errors"
    );
}
