//! Helpers shared by the sync and webhook tests: linking athletes through the real web flow, the
//! events a Polar record must become (computed here from the simulator's JSON, independently of the
//! connector's mapping code), and readers of the resulting state.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration as StdDuration;

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use polar_sim::{GenerateRequest, RecordKind, RecordView, UploadMode};
use serde_json::Value;
use shared::ids::{AthleteUuid, ExerciseId};
use shared::model::{Athlete, DataKind, LedgerEntry, LedgerKey, RecordKey};
use shared::store::Store;
use smartabase_sim::SimEvent;
use testkit::front::{HttpRequest, HttpResponse};
use testkit::world::World;
use tokio::sync::{mpsc, oneshot};

/// The four odd time zones of the brief: −10:00, −09:30, +05:45, +13:45 (minutes east of UTC).
pub const ODD_OFFSETS: [i32; 4] = [-600, -570, 345, 825];

/// One athlete linked on both sides.
#[derive(Debug, Clone)]
pub struct Linked {
    /// Smartabase UUID.
    pub uuid: String,
    /// Smartabase user id.
    pub user: i64,
    /// Polar user id.
    pub polar: i64,
    /// The Polar account's UTC offset in minutes.
    pub offset: i32,
}

impl Linked {
    /// The UUID as the connector's type.
    pub fn athlete(&self) -> AthleteUuid {
        AthleteUuid::parse(self.uuid.clone()).unwrap()
    }
}

/// Puts one athlete per offset on the roster, runs the scan, and links each through the web flow
/// (authorisation link → Polar consent → callback). Every link queues a first-sync job.
pub async fn link_athletes<S: Store>(
    world: &World<S>,
    prefix: &str,
    offsets: &[i32],
) -> Vec<Linked> {
    let mut athletes = Vec::new();
    for (i, offset) in offsets.iter().enumerate() {
        let uuid = format!("{prefix}-{i:04}");
        let user = world.add_athlete(&uuid, "Test", &format!("Athlete{i}"));
        let polar = world.polar_account(*offset);
        athletes.push(Linked {
            uuid,
            user: user.get(),
            polar,
            offset: *offset,
        });
    }
    world.scan().await.unwrap();
    for a in &athletes {
        let page = world.link_via_web(&a.uuid, a.polar).await.unwrap();
        assert_eq!(
            page.status,
            200,
            "linking {} failed: {}",
            a.uuid,
            page.text()
        );
    }
    athletes
}

/// Generates `days` days of every kind for the athlete, uploaded now (after registration).
pub fn generate(world: &World<impl Store>, athlete: &Linked, days: u32) {
    world
        .polar
        .generate(
            athlete.polar,
            &GenerateRequest {
                days,
                upload: UploadMode::Now,
                ..GenerateRequest::default()
            },
        )
        .unwrap();
}

/// The records Polar offers right now for an athlete, of one kind: served (uploaded, ready, after
/// registration) and inside Polar's windows (exercises uploaded in the last 30 days, daily records of
/// the 28 local dates up to today).
pub fn served(world: &World<impl Store>, polar: i64, kind: RecordKind) -> Vec<RecordView> {
    let now = world.polar.now();
    let offset = world.polar.account(polar).unwrap().utc_offset_minutes;
    let today = (now + Duration::minutes(i64::from(offset))).date_naive();
    world
        .polar
        .records(polar, Some(kind))
        .unwrap()
        .into_iter()
        .filter(|r| r.served)
        .filter(|r| match kind {
            RecordKind::Exercise => r.uploaded_at > now - Duration::days(30),
            _ => {
                let date = NaiveDate::parse_from_str(&r.key, "%Y-%m-%d").unwrap();
                date > today - Duration::days(28) && date <= today
            }
        })
        .collect()
}

/// The event form a record kind lands in (design §1).
pub fn form_of(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Exercise => "Polar Training",
        RecordKind::Activity => "Polar Activity",
        RecordKind::Sleep => "Polar Sleep",
        RecordKind::Recharge => "Polar Nightly Recharge",
    }
}

/// All four kinds.
pub const KINDS: [RecordKind; 4] = [
    RecordKind::Exercise,
    RecordKind::Activity,
    RecordKind::Sleep,
    RecordKind::Recharge,
];

/// An event as Smartabase should hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedEvent {
    /// Form name.
    pub form: &'static str,
    /// Local start, to the minute.
    pub start: NaiveDateTime,
    /// Local finish, to the minute.
    pub finish: NaiveDateTime,
    /// Field → value.
    pub fields: BTreeMap<String, String>,
}

/// A number "as Polar gives it": integers without a decimal point, fractions as written.
fn plain(value: &Value) -> Option<String> {
    if let Some(i) = value.as_i64() {
        return Some(i.to_string());
    }
    let f = value.as_f64()?;
    Some(if f.fract() == 0.0 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    })
}

/// Seconds of an ISO-8601 duration such as `PT1H2M30S`, `PT14295.773S` or `PT1H2M3.456S`.
pub fn iso_seconds(text: &str) -> f64 {
    let rest = text.strip_prefix('P').expect("ISO duration starts with P");
    let mut seconds = 0.0;
    let mut number = String::new();
    for c in rest.chars() {
        match c {
            'T' => {}
            '0'..='9' | '.' => number.push(c),
            unit => {
                let n: f64 = number.parse().expect("number before a unit");
                number.clear();
                seconds += n * match unit {
                    'D' => 86_400.0,
                    'H' => 3600.0,
                    'M' => 60.0,
                    'S' => 1.0,
                    other => panic!("unexpected duration unit {other} in {text}"),
                };
            }
        }
    }
    seconds
}

fn minutes(seconds: f64) -> String {
    format!("{:.1}", seconds / 60.0)
}

fn km(metres: f64) -> String {
    format!("{:.2}", metres / 1000.0)
}

/// `dd/mm/yyyy`.
pub fn smartabase_date(date: NaiveDate) -> String {
    date.format("%d/%m/%Y").to_string()
}

/// `h:mm AM`, with the midnight hour written `00:MM AM` (Smartabase reads `12:MM AM` as noon).
pub fn smartabase_time(hour: u32, minute: u32) -> String {
    match hour {
        0 => format!("00:{minute:02} AM"),
        1..=11 => format!("{hour}:{minute:02} AM"),
        12 => format!("12:{minute:02} PM"),
        _ => format!("{}:{minute:02} PM", hour - 12),
    }
}

fn to_minute(at: NaiveDateTime) -> NaiveDateTime {
    at.with_second(0).unwrap().with_nanosecond(0).unwrap()
}

fn whole_day(date: NaiveDate) -> (NaiveDateTime, NaiveDateTime) {
    (
        date.and_time(NaiveTime::MIN),
        date.and_hms_opt(23, 59, 0).unwrap(),
    )
}

/// The event a served Polar record must become, from the record's own JSON (design §5).
pub fn expected_event(record: &RecordView) -> ExpectedEvent {
    let body = &record.body;
    let mut fields = BTreeMap::new();
    let mut put = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            fields.insert(name.to_string(), v);
        }
    };
    let num = |key: &str| body.get(key).and_then(plain);
    let form = form_of(record.kind);
    let (start, finish) = match record.kind {
        RecordKind::Exercise => {
            let start = NaiveDateTime::parse_from_str(
                body["start_time"].as_str().unwrap(),
                "%Y-%m-%dT%H:%M:%S",
            )
            .unwrap();
            let duration = body["duration"].as_str().map(iso_seconds);
            let finish =
                start + Duration::milliseconds((duration.unwrap_or(0.0) * 1000.0).round() as i64);
            put("Polar Exercise ID", Some(record.key.clone()));
            let sport = body
                .get("detailed_sport_info")
                .and_then(Value::as_str)
                .or_else(|| body.get("sport").and_then(Value::as_str));
            put("Sport", sport.map(str::to_string));
            put("Duration (min)", duration.map(minutes));
            put(
                "Distance (km)",
                body.get("distance").and_then(Value::as_f64).map(km),
            );
            put("Calories", num("calories"));
            put(
                "Average HR",
                body.pointer("/heart_rate/average").and_then(plain),
            );
            put(
                "Maximum HR",
                body.pointer("/heart_rate/maximum").and_then(plain),
            );
            put("Training Load", num("training_load"));
            put(
                "Cardio Load",
                body.pointer("/training_load_pro/cardio-load")
                    .and_then(plain),
            );
            put(
                "Muscle Load",
                body.pointer("/training_load_pro/muscle-load")
                    .and_then(plain),
            );
            for zone in body
                .get("heart_rate_zones")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let index = zone["index"].as_i64().unwrap();
                let in_zone = iso_seconds(zone["in-zone"].as_str().unwrap());
                put(&format!("Zone {index} (min)"), Some(minutes(in_zone)));
            }
            put(
                "Device",
                body.get("device")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            );
            (to_minute(start), to_minute(finish))
        }
        RecordKind::Activity => {
            let date = NaiveDate::parse_from_str(&record.key, "%Y-%m-%d").unwrap();
            put("Activity Date", Some(smartabase_date(date)));
            put("Steps", num("steps"));
            put("Active Calories", num("active_calories"));
            put("Total Calories", num("calories"));
            put(
                "Active Time (min)",
                body.get("active_duration")
                    .and_then(Value::as_str)
                    .map(|d| minutes(iso_seconds(d))),
            );
            put(
                "Distance (km)",
                body.get("distance_from_steps")
                    .and_then(Value::as_f64)
                    .map(km),
            );
            whole_day(date)
        }
        RecordKind::Sleep => {
            let date = NaiveDate::parse_from_str(&record.key, "%Y-%m-%d").unwrap();
            // `2025-09-01T23:14:05+02:00`: the local clock time is the text before the offset.
            let clock = |key: &str| {
                body.get(key).and_then(Value::as_str).map(|t| {
                    let local =
                        NaiveDateTime::parse_from_str(&t[..19], "%Y-%m-%dT%H:%M:%S").unwrap();
                    smartabase_time(local.hour(), local.minute())
                })
            };
            let seconds = |key: &str| body.get(key).and_then(Value::as_i64);
            put("Sleep Date", Some(smartabase_date(date)));
            put("Sleep Start", clock("sleep_start_time"));
            put("Sleep End", clock("sleep_end_time"));
            let stages = [
                "light_sleep",
                "deep_sleep",
                "rem_sleep",
                "unrecognized_sleep_stage",
            ];
            let present: Vec<i64> = stages.iter().filter_map(|s| seconds(s)).collect();
            if !present.is_empty() {
                put(
                    "Total Sleep (min)",
                    Some(minutes(present.iter().sum::<i64>() as f64)),
                );
            }
            put(
                "Deep Sleep (min)",
                seconds("deep_sleep").map(|s| minutes(s as f64)),
            );
            put(
                "REM Sleep (min)",
                seconds("rem_sleep").map(|s| minutes(s as f64)),
            );
            put(
                "Light Sleep (min)",
                seconds("light_sleep").map(|s| minutes(s as f64)),
            );
            put(
                "Interruptions (min)",
                seconds("total_interruption_duration").map(|s| minutes(s as f64)),
            );
            put("Sleep Score", num("sleep_score"));
            put("Sleep Charge", num("sleep_charge"));
            put("Continuity", num("continuity"));
            whole_day(date)
        }
        RecordKind::Recharge => {
            let date = NaiveDate::parse_from_str(&record.key, "%Y-%m-%d").unwrap();
            put("Recharge Date", Some(smartabase_date(date)));
            put("Nightly Recharge Status", num("nightly_recharge_status"));
            put("ANS Charge", num("ans_charge"));
            put("Average HR", num("heart_rate_avg"));
            put("Average HRV (ms)", num("heart_rate_variability_avg"));
            put("Breathing Rate", num("breathing_rate_avg"));
            whole_day(date)
        }
    };
    ExpectedEvent {
        form,
        start,
        finish,
        fields,
    }
}

/// A stored event as an [`ExpectedEvent`], for whole-value comparison.
pub fn as_expected(event: &SimEvent, form: &'static str) -> ExpectedEvent {
    ExpectedEvent {
        form,
        start: event.start,
        finish: event.finish,
        fields: event
            .pairs()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect(),
    }
}

/// The identity of a stored event: the exercise id, or the start date of a daily event.
pub fn identity(kind: RecordKind, event: &SimEvent) -> String {
    match kind {
        RecordKind::Exercise => event
            .value("Polar Exercise ID")
            .unwrap_or("<no exercise id>")
            .to_string(),
        _ => event.start.date().to_string(),
    }
}

/// Asserts that Smartabase holds exactly one event per served record of every kind, each with
/// exactly the expected dates, times and field values. Returns how many events were checked.
pub fn assert_smartabase_matches_polar(world: &World<impl Store>, athlete: &Linked) -> usize {
    let mut checked = 0;
    for kind in KINDS {
        let form = form_of(kind);
        let records = served(world, athlete.polar, kind);
        let events = world.smartabase.events_for(athlete.user, form);
        assert_eq!(
            events.len(),
            records.len(),
            "{}: {form} holds {} events for {} served records",
            athlete.uuid,
            events.len(),
            records.len()
        );
        let mut by_identity: HashMap<String, &SimEvent> = HashMap::new();
        for e in &events {
            let previous = by_identity.insert(identity(kind, e), e);
            assert!(
                previous.is_none(),
                "{}: two {form} events for {}",
                athlete.uuid,
                identity(kind, e)
            );
        }
        for record in &records {
            let expected = expected_event(record);
            let Some(event) = by_identity.get(&record.key) else {
                panic!("{}: no {form} event for {}", athlete.uuid, record.key);
            };
            assert_eq!(
                as_expected(event, form),
                expected,
                "{}: {form} event for {} (offset {})",
                athlete.uuid,
                record.key,
                athlete.offset
            );
            checked += 1;
        }
    }
    checked
}

/// The ledger key of a served record.
pub fn ledger_key(record: &RecordView) -> LedgerKey {
    let (kind, key) = match record.kind {
        RecordKind::Exercise => (
            DataKind::Training,
            RecordKey::Exercise(ExerciseId::parse(record.key.clone()).unwrap()),
        ),
        other => {
            let date = RecordKey::Date(NaiveDate::parse_from_str(&record.key, "%Y-%m-%d").unwrap());
            let kind = match other {
                RecordKind::Activity => DataKind::Activity,
                RecordKind::Sleep => DataKind::Sleep,
                _ => DataKind::Recharge,
            };
            (kind, date)
        }
    };
    LedgerKey { kind, record: key }
}

/// The athlete's ledger entries for every served record.
pub async fn ledger<S: Store>(
    world: &World<S>,
    athlete: &Linked,
) -> HashMap<LedgerKey, LedgerEntry> {
    let keys: Vec<LedgerKey> = KINDS
        .iter()
        .flat_map(|k| served(world, athlete.polar, *k))
        .map(|r| ledger_key(&r))
        .collect();
    world
        .connector
        .store
        .ledger_get(&athlete.athlete(), &keys)
        .await
        .unwrap()
}

/// The athlete as stored.
pub async fn stored_athlete<S: Store>(world: &World<S>, athlete: &Linked) -> Athlete {
    world
        .connector
        .store
        .get_athlete(&athlete.athlete())
        .await
        .unwrap()
        .expect("athlete stored")
}

/// Paths of the Polar data calls made for one account since the log was last cleared.
pub fn polar_paths(world: &World<impl Store>, polar: i64) -> Vec<String> {
    world
        .polar
        .requests()
        .into_iter()
        .filter(|r| r.polar_user_id == Some(polar) && r.path.starts_with("/v3/"))
        .map(|r| r.path)
        .collect()
}

/// Smartabase calls to one endpoint since the log was last cleared.
pub fn smartabase_calls(world: &World<impl Store>, endpoint: &str) -> usize {
    world
        .smartabase
        .requests()
        .iter()
        .filter(|r| r.endpoint.as_deref() == Some(endpoint))
        .count()
}

/// A local HTTP server standing in for the connector's public webhook URL: each request Polar sends
/// is handed to the test, which runs it through [`World::http`] (the real API Gateway front and the
/// `polar-webhook` function) and sends the function's answer back to Polar.
pub struct WebhookRelay {
    /// The URL to register at Polar.
    pub url: String,
    requests: mpsc::UnboundedReceiver<(HttpRequest, oneshot::Sender<HttpResponse>)>,
}

impl WebhookRelay {
    /// Starts the server on a free loopback port.
    pub async fn start() -> Self {
        use axum::body::Bytes;
        use axum::extract::State;
        use axum::http::{HeaderMap, StatusCode};

        type Relay = mpsc::UnboundedSender<(HttpRequest, oneshot::Sender<HttpResponse>)>;
        async fn forward(
            State(relay): State<Relay>,
            headers: HeaderMap,
            body: Bytes,
        ) -> (StatusCode, String) {
            let mut request = HttpRequest::post("/polar/webhook", body.to_vec());
            for (name, value) in &headers {
                if let Ok(value) = value.to_str() {
                    request = request.header(name.as_str(), value);
                }
            }
            let (reply, answer) = oneshot::channel();
            if relay.send((request, reply)).is_err() {
                return (StatusCode::SERVICE_UNAVAILABLE, "test ended".into());
            }
            match answer.await {
                Ok(response) => (
                    StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY),
                    response.text(),
                ),
                Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "test ended".into()),
            }
        }

        let (sender, requests) = mpsc::unbounded_channel();
        let app = axum::Router::new()
            .route("/polar/webhook", axum::routing::post(forward))
            .with_state(sender);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/polar/webhook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, requests }
    }

    /// Serves the next `count` requests Polar sends through the world's HTTP front (waiting up to ten
    /// seconds for each), and returns each request with the function's answer.
    pub async fn serve<S: Store>(
        &mut self,
        world: &World<S>,
        count: usize,
    ) -> Vec<(HttpRequest, HttpResponse)> {
        let mut answers = Vec::new();
        for _ in 0..count {
            let (request, reply) =
                tokio::time::timeout(StdDuration::from_secs(10), self.requests.recv())
                    .await
                    .expect("Polar sent no webhook request within 10 s")
                    .expect("relay closed");
            let response = world.http(request.clone()).await.unwrap();
            answers.push((request, response.clone()));
            let _ = reply.send(response);
        }
        answers
    }

    /// Asserts that Polar sends nothing more within `wait`.
    pub async fn assert_quiet(&mut self, wait: StdDuration) {
        if let Ok(Some((request, _))) = tokio::time::timeout(wait, self.requests.recv()).await {
            panic!(
                "unexpected webhook request: {}",
                String::from_utf8_lossy(&request.body)
            );
        }
    }
}
