//! `polar-webhook` behind the API Gateway front: status codes for every outcome a caller can cause
//! (404 off-route, 401 unsigned or unconfigured, 400 signed nonsense, 503 when the store is down so
//! Polar retries, 200 otherwise) and exactly one job per accepted delivery; the last delivery's time
//! recorded to the minute, with a warm instance not touching the record while it knows it is fresh.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Duration, Utc};
use hmac::{KeyInit, Mac};
use shared::clock::Clock;
use shared::ids::{AthleteUuid, PolarUserId};
use shared::model::{Athlete, AthleteStatus};
use shared::queue::JobQueue;
use shared::store::{
    AthleteStore, DueListing, MarkerStore, Page, PageToken, SettingsStore, StoreError,
};
use shared::testing::MemoryStore;
use shared::usecase::webhook::{LAST_DELIVERY_SETTING, LastDelivery, WebhookPorts};
use testkit::front::{HttpRequest, HttpResponse};
use testkit::world::{World, WorldOptions};

const SECRET: &str = "handler-test-webhook-secret";

/// HMAC-SHA256 hex of `body` with the test secret, computed here with the `hmac` crate.
fn sign(body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

async fn world(secret: Option<&str>) -> World<MemoryStore> {
    World::in_memory(WorldOptions {
        webhook_secret: secret.map(str::to_string),
        ..WorldOptions::default()
    })
    .await
    .unwrap()
}

async fn deliver(
    world: &World<MemoryStore>,
    event: &str,
    body: &str,
    signed: bool,
) -> HttpResponse {
    let mut request = HttpRequest::post("/polar/webhook", body)
        .header("content-type", "application/json")
        .header("Polar-Webhook-Event", event);
    if signed {
        request = request.header("Polar-Webhook-Signature", sign(body));
    }
    world.http(request).await.unwrap()
}

/// A linked athlete: (uuid, Polar user id).
async fn linked(world: &World<MemoryStore>) -> (String, i64) {
    let uuid = "hook-athlete".to_string();
    world.add_athlete(&uuid, "Web", "Hook");
    let polar = world.polar_account(-570);
    world.scan().await.unwrap();
    assert_eq!(world.link_via_web(&uuid, polar).await.unwrap().status, 200);
    // The first-sync job the link queued is not this test's business.
    world.run_worker().await.unwrap();
    (uuid, polar)
}

#[tokio::test]
async fn other_methods_on_the_route_get_404() {
    let world = world(Some(SECRET)).await;
    let response = world
        .http(HttpRequest::get("/polar/webhook"))
        .await
        .unwrap();
    assert_eq!(response.status, 404);
}

#[tokio::test]
async fn a_signed_delivery_queues_one_targeted_job_and_answers_200() {
    let world = world(Some(SECRET)).await;
    let (uuid, polar) = linked(&world).await;
    let sent_before = world.connector.queue.sent().len();
    let body = format!(
        r#"{{"event":"ACTIVITY_SUMMARY","user_id":{polar},"date":"2026-01-02","timestamp":"2026-01-02T10:00:00.000Z","url":"x"}}"#
    );
    let response = deliver(&world, "ACTIVITY_SUMMARY", &body, true).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    let sent = world.connector.queue.sent().split_off(sent_before);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].job.athlete.as_str(), uuid);
    assert_eq!(sent[0].delay_seconds, 0);
    assert_eq!(
        serde_json::to_value(&sent[0].job.targets).unwrap(),
        serde_json::json!([{"type": "activity", "date": "2026-01-02"}])
    );
    // The same delivery again (Polar retrying) coalesces.
    let again = deliver(&world, "ACTIVITY_SUMMARY", &body, true).await;
    assert_eq!(again.status, 200);
    assert_eq!(world.connector.queue.sent().len(), sent_before + 1);
}

#[tokio::test]
async fn unsigned_or_wrongly_signed_deliveries_get_401_and_queue_nothing() {
    let world = world(Some(SECRET)).await;
    let (_, polar) = linked(&world).await;
    let sent_before = world.connector.queue.sent().len();
    let body = format!(r#"{{"event":"EXERCISE","user_id":{polar},"entity_id":"abc"}}"#);
    assert_eq!(deliver(&world, "EXERCISE", &body, false).await.status, 401);
    let wrong = world
        .http(
            HttpRequest::post("/polar/webhook", body.clone())
                .header("Polar-Webhook-Event", "EXERCISE")
                .header("Polar-Webhook-Signature", sign(&format!("{body} "))),
        )
        .await
        .unwrap();
    assert_eq!(wrong.status, 401);
    assert!(!wrong.text().contains(SECRET));
    assert_eq!(world.connector.queue.sent().len(), sent_before);
}

#[tokio::test]
async fn without_a_configured_secret_deliveries_get_401_but_pings_200() {
    let world = world(None).await;
    let body = r#"{"event":"EXERCISE","user_id":1,"entity_id":"abc"}"#;
    assert_eq!(deliver(&world, "EXERCISE", body, false).await.status, 401);
    let ping = deliver(&world, "PING", r#"{"event":"PING","timestamp":"x"}"#, false).await;
    assert_eq!(ping.status, 200);
}

#[tokio::test]
async fn a_signed_body_that_is_not_a_webhook_payload_gets_400() {
    let world = world(Some(SECRET)).await;
    for body in ["not json", r#"{"user_id":1}"#, r#"{"event":"EXERCISE"}"#] {
        let response = deliver(&world, "EXERCISE", body, true).await;
        assert_eq!(response.status, 400, "{body}: {}", response.text());
    }
}

#[tokio::test]
async fn a_delivery_for_an_unknown_user_or_event_type_is_answered_200_and_ignored() {
    let world = world(Some(SECRET)).await;
    let (_, polar) = linked(&world).await;
    let sent_before = world.connector.queue.sent().len();
    let unknown_user = r#"{"event":"SLEEP","user_id":99999999,"date":"2026-01-02"}"#;
    assert_eq!(
        deliver(&world, "SLEEP", unknown_user, true).await.status,
        200
    );
    let unsynced_type =
        format!(r#"{{"event":"CONTINUOUS_HEART_RATE","user_id":{polar},"date":"2026-01-02"}}"#);
    assert_eq!(
        deliver(&world, "CONTINUOUS_HEART_RATE", &unsynced_type, true)
            .await
            .status,
        200
    );
    assert_eq!(world.connector.queue.sent().len(), sent_before);
}

#[tokio::test]
async fn a_store_outage_answers_503_so_polar_retries_but_pings_still_succeed() {
    let world = world(Some(SECRET)).await;
    let (_, polar) = linked(&world).await;
    world.connector.store.set_unavailable(true);
    let body = format!(r#"{{"event":"EXERCISE","user_id":{polar},"entity_id":"abc"}}"#);
    let response = deliver(&world, "EXERCISE", &body, true).await;
    assert_eq!(response.status, 503);
    // The answer tells Polar to retry; the store's own error stays in our logs.
    let answer = String::from_utf8_lossy(&response.body);
    assert!(answer.contains("retry"), "{answer}");
    assert!(!answer.contains("memory store"), "{answer}");
    // Polar's handshake still succeeds: a ping needs no store.
    let ping = deliver(&world, "PING", r#"{"event":"PING","timestamp":"x"}"#, false).await;
    assert_eq!(ping.status, 200);
    world.connector.store.set_unavailable(false);
    assert_eq!(deliver(&world, "EXERCISE", &body, true).await.status, 200);
}

#[tokio::test]
async fn the_last_delivery_is_recorded_to_the_minute_not_on_every_delivery() {
    let world = world(Some(SECRET)).await;
    let (_, polar) = linked(&world).await;
    let recorded = || async {
        let at = world
            .connector
            .store
            .get_setting(LAST_DELIVERY_SETTING)
            .await
            .unwrap()
            .expect("a delivery was recorded");
        chrono::DateTime::parse_from_rfc3339(&at)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let delivery = |n: u32| {
        format!(
            r#"{{"event":"ACTIVITY_SUMMARY","user_id":{polar},"date":"2026-01-02","timestamp":"2026-01-02T10:00:0{n}.000Z","url":"x"}}"#
        )
    };

    let first_at = world.clock.now();
    assert_eq!(
        deliver(&world, "ACTIVITY_SUMMARY", &delivery(1), true)
            .await
            .status,
        200
    );
    assert_eq!(recorded().await, first_at);
    // Half a minute later another delivery is queued, and the record stands (no write).
    world.advance(chrono::Duration::seconds(30));
    let sent_before = world.connector.queue.sent().len();
    assert_eq!(
        deliver(&world, "ACTIVITY_SUMMARY", &delivery(2), true)
            .await
            .status,
        200
    );
    assert_eq!(world.connector.queue.sent().len(), sent_before + 1);
    assert_eq!(recorded().await, first_at);
    // A minute after the record, the next delivery moves it.
    world.advance(chrono::Duration::seconds(31));
    assert_eq!(
        deliver(&world, "ACTIVITY_SUMMARY", &delivery(3), true)
            .await
            .status,
        200
    );
    assert_eq!(recorded().await, world.clock.now());
    // A delivery with a bad signature is no delivery.
    world.advance(chrono::Duration::minutes(5));
    assert_eq!(
        deliver(&world, "ACTIVITY_SUMMARY", &delivery(4), false)
            .await
            .status,
        401
    );
    assert!(recorded().await < world.clock.now());
}

/// The world's store, counting the reads and writes of the last delivery's record.
struct Counted<'a> {
    store: &'a MemoryStore,
    reads: AtomicUsize,
    writes: AtomicUsize,
}

impl<'a> Counted<'a> {
    fn new(store: &'a MemoryStore) -> Self {
        Self {
            store,
            reads: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
        }
    }

    /// (reads, writes) of the last delivery's record so far.
    fn last_delivery_calls(&self) -> (usize, usize) {
        (
            self.reads.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }

    fn count(&self, counter: &AtomicUsize, name: &str) {
        if name == LAST_DELIVERY_SETTING {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn recorded(&self) -> DateTime<Utc> {
        let at = self
            .store
            .get_setting(LAST_DELIVERY_SETTING)
            .await
            .unwrap()
            .expect("a delivery was recorded");
        DateTime::parse_from_rfc3339(&at)
            .unwrap()
            .with_timezone(&Utc)
    }
}

impl SettingsStore for Counted<'_> {
    async fn get_setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.count(&self.reads, name);
        self.store.get_setting(name).await
    }

    async fn put_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.count(&self.writes, name);
        self.store.put_setting(name, value).await
    }
}

impl MarkerStore for Counted<'_> {
    async fn claim(
        &self,
        key: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.store.claim(key, now, until).await
    }
}

impl AthleteStore for Counted<'_> {
    async fn get_athlete(&self, uuid: &AthleteUuid) -> Result<Option<Athlete>, StoreError> {
        self.store.get_athlete(uuid).await
    }

    async fn save_athlete(&self, athlete: &Athlete) -> Result<Athlete, StoreError> {
        self.store.save_athlete(athlete).await
    }

    async fn athlete_for_polar_user(
        &self,
        user: PolarUserId,
    ) -> Result<Option<AthleteUuid>, StoreError> {
        self.store.athlete_for_polar_user(user).await
    }

    async fn due_athletes(&self, now: DateTime<Utc>) -> Result<DueListing, StoreError> {
        self.store.due_athletes(now).await
    }

    async fn list_athletes(
        &self,
        status: Option<AthleteStatus>,
        page: Option<PageToken>,
        limit: usize,
    ) -> Result<Page<Athlete>, StoreError> {
        self.store.list_athletes(status, page, limit).await
    }

    async fn mark_queued(
        &self,
        uuid: &AthleteUuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.store.mark_queued(uuid, until, now).await
    }

    async fn mark_due_queued(
        &self,
        uuid: &AthleteUuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.store.mark_due_queued(uuid, until, now).await
    }

    async fn clear_queued(&self, uuid: &AthleteUuid) -> Result<(), StoreError> {
        self.store.clear_queued(uuid).await
    }
}

/// One `polar-webhook` instance over the world's queue, clock and settings: its store and its memory of
/// the last delivery are the caller's.
fn instance<'a>(
    world: &'a World<MemoryStore>,
    store: &'a Counted<'a>,
    last_delivery: &'a LastDelivery,
) -> WebhookPorts<'a, Counted<'a>, impl JobQueue, impl Clock> {
    let connector = &world.connector;
    WebhookPorts {
        store,
        queue: &connector.queue,
        clock: &connector.clock,
        mapping: &connector.mapping,
        settings: &connector.settings,
        last_delivery,
    }
}

/// The `n`th signed activity delivery for `polar`, through the instance's handler; its status.
async fn deliver_to(
    ports: WebhookPorts<'_, Counted<'_>, impl JobQueue, impl Clock>,
    polar: i64,
    n: u32,
) -> u16 {
    let body = format!(
        r#"{{"event":"ACTIVITY_SUMMARY","user_id":{polar},"date":"2026-01-02","timestamp":"2026-01-02T10:00:{n:02}.000Z","url":"x"}}"#
    );
    let request = HttpRequest::post("/polar/webhook", body.clone())
        .header("content-type", "application/json")
        .header("Polar-Webhook-Event", "ACTIVITY_SUMMARY")
        .header("Polar-Webhook-Signature", sign(&body));
    let event = testkit::front::apigw_event(&request).to_string();
    let request = lambda_http::request::from_str(&event).unwrap();
    polar_webhook::handle(ports, request)
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_warm_instance_neither_reads_nor_writes_the_last_delivery_within_the_minute() {
    let world = world(Some(SECRET)).await;
    let (_, polar) = linked(&world).await;
    let store = Counted::new(&world.connector.store);
    let memory = LastDelivery::default();
    let ports = instance(&world, &store, &memory);

    let first_at = world.clock.now();
    assert_eq!(deliver_to(ports, polar, 1).await, 200);
    assert_eq!(
        store.last_delivery_calls(),
        (1, 1),
        "a cold instance reads, then records"
    );
    world.advance(Duration::seconds(59));
    let sent_before = world.connector.queue.sent().len();
    assert_eq!(deliver_to(ports, polar, 2).await, 200);
    assert_eq!(world.connector.queue.sent().len(), sent_before + 1);
    assert_eq!(
        store.last_delivery_calls(),
        (1, 1),
        "the warm instance knows the record is fresh"
    );
    assert_eq!(store.recorded().await, first_at);
}

#[tokio::test]
async fn a_warm_instance_records_the_first_delivery_a_minute_after_its_record() {
    let world = world(Some(SECRET)).await;
    let (_, polar) = linked(&world).await;
    let store = Counted::new(&world.connector.store);
    let memory = LastDelivery::default();
    let ports = instance(&world, &store, &memory);

    assert_eq!(deliver_to(ports, polar, 1).await, 200);
    world.advance(Duration::seconds(30));
    assert_eq!(deliver_to(ports, polar, 2).await, 200);
    assert_eq!(store.last_delivery_calls(), (1, 1));
    world.advance(Duration::seconds(31));
    assert_eq!(deliver_to(ports, polar, 3).await, 200);
    assert_eq!(
        store.last_delivery_calls(),
        (2, 2),
        "a stale memory reads, then records"
    );
    assert_eq!(store.recorded().await, world.clock.now());
    // What it wrote is what it remembers.
    world.advance(Duration::seconds(30));
    assert_eq!(deliver_to(ports, polar, 4).await, 200);
    assert_eq!(store.last_delivery_calls(), (2, 2));
}

#[tokio::test]
async fn a_second_instance_reads_the_record_once_and_keeps_the_fresh_time_another_wrote() {
    let world = world(Some(SECRET)).await;
    let (_, polar) = linked(&world).await;
    let store = Counted::new(&world.connector.store);
    let (first_memory, second_memory) = (LastDelivery::default(), LastDelivery::default());
    let first = instance(&world, &store, &first_memory);
    let second = instance(&world, &store, &second_memory);

    let first_at = world.clock.now();
    assert_eq!(deliver_to(first, polar, 1).await, 200);
    assert_eq!(store.last_delivery_calls(), (1, 1));
    // The second instance's first delivery reads the first one's fresh record and leaves it.
    world.advance(Duration::seconds(20));
    assert_eq!(deliver_to(second, polar, 2).await, 200);
    assert_eq!(store.last_delivery_calls(), (2, 1));
    assert_eq!(store.recorded().await, first_at);
    // It remembers what it read.
    world.advance(Duration::seconds(20));
    assert_eq!(deliver_to(second, polar, 3).await, 200);
    assert_eq!(store.last_delivery_calls(), (2, 1));
    // A minute after the record, whichever instance serves the delivery records it...
    world.advance(Duration::seconds(21));
    let second_at = world.clock.now();
    assert_eq!(deliver_to(second, polar, 4).await, 200);
    assert_eq!(store.last_delivery_calls(), (3, 2));
    assert_eq!(store.recorded().await, second_at);
    // ...and the other, its own memory stale, reads that and does not write.
    world.advance(Duration::seconds(9));
    assert_eq!(deliver_to(first, polar, 5).await, 200);
    assert_eq!(store.last_delivery_calls(), (4, 2));
    assert_eq!(store.recorded().await, second_at);
}
