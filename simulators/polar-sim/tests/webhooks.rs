//! Webhook management (PING handshake, one per client, secret once), signed deliveries,
//! SLEEP double-firing, and pull notifications, over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use chrono::TimeDelta;
use common::{Harness, Received, Receiver, keys, start_default};
use hmac::{Hmac, KeyInit, Mac};
use polar_sim::{NewAccount, NewRecord, RecordKind};
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};
use sha2::Sha256;

async fn create_webhook(h: &Harness, url: &str, events: Value) -> reqwest::Response {
    h.http
        .post(h.url("/v3/webhooks"))
        .header(AUTHORIZATION, h.basic())
        .json(&json!({"events": events, "url": url}))
        .send()
        .await
        .unwrap()
}

async fn list_webhooks(h: &Harness) -> Value {
    h.http
        .get(h.url("/v3/webhooks"))
        .header(AUTHORIZATION, h.basic())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Independent check of Polar's signature: HMAC-SHA256(secret, raw body), lower-case hex.
fn verify(secret: &str, body: &[u8], signature: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    expected == signature
}

fn add_now(h: &Harness, id: i64, kind: RecordKind) -> String {
    h.sim.add_record(id, NewRecord::of(kind)).unwrap().key
}

#[tokio::test]
async fn create_pings_first_then_returns_the_secret_once_and_refuses_a_second_webhook() {
    let h = start_default().await;
    let receiver = Receiver::start(200).await;
    let created = create_webhook(&h, &receiver.url, json!(["EXERCISE", "SLEEP"])).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: Value = created.json().await.unwrap();
    assert_eq!(keys(&body), ["data"]);
    assert_eq!(
        keys(&body["data"]),
        ["events", "id", "signature_secret_key", "url"]
    );
    assert_eq!(body["data"]["url"], receiver.url.as_str());
    assert_eq!(body["data"]["events"], json!(["EXERCISE", "SLEEP"]));
    assert!(body["data"]["signature_secret_key"].as_str().unwrap().len() >= 32);

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].event.as_deref(), Some("PING"));
    let ping: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(keys(&ping), ["event", "timestamp"]);
    assert_eq!(ping["event"], "PING");

    let listed = list_webhooks(&h).await;
    let data = listed["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(keys(&data[0]), ["active", "events", "id", "url"]);
    assert_eq!(data[0]["active"], true);
    assert!(
        !listed
            .to_string()
            .contains(body["data"]["signature_secret_key"].as_str().unwrap())
    );

    let second = create_webhook(&h, &receiver.url, json!(["SLEEP"])).await;
    assert_eq!(second.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn create_fails_when_the_ping_is_not_answered_with_200() {
    let h = start_default().await;
    let receiver = Receiver::start(500).await;
    let created = create_webhook(&h, &receiver.url, json!(["SLEEP"])).await;
    assert_eq!(created.status(), StatusCode::BAD_REQUEST);
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(list_webhooks(&h).await, json!({"data": []}));
    assert!(h.sim.webhook().is_none());

    let unreachable = create_webhook(&h, "http://127.0.0.1:9/hook", json!(["SLEEP"])).await;
    assert_eq!(unreachable.status(), StatusCode::BAD_REQUEST);
    for (events, url) in [
        (json!([]), receiver.url.as_str()),
        (json!(["NIGHTLY_RECHARGE"]), receiver.url.as_str()),
        (json!(["SLEEP"]), "not a url"),
    ] {
        let response = create_webhook(&h, url, events).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    let unauthorized = h
        .http
        .post(h.url("/v3/webhooks"))
        .json(&json!({"events": ["SLEEP"], "url": receiver.url}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn new_data_is_delivered_signed_with_the_secret() {
    let h = start_default().await;
    let receiver = Receiver::start(200).await;
    let created: Value = create_webhook(
        &h,
        &receiver.url,
        json!(["EXERCISE", "SLEEP", "ACTIVITY_SUMMARY"]),
    )
    .await
    .json()
    .await
    .unwrap();
    let secret = created["data"]["signature_secret_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (id, _) = h.linked(NewAccount::default()).await;

    let sleep_date = add_now(&h, id, RecordKind::Sleep);
    let exercise_id = add_now(&h, id, RecordKind::Exercise);
    let activity_date = add_now(&h, id, RecordKind::Activity);
    // Nightly Recharge has no webhook event.
    add_now(&h, id, RecordKind::Recharge);
    let deliveries = h.sim.wait_for_deliveries(3, Duration::from_secs(5)).await;
    assert_eq!(deliveries.len(), 3);
    assert!(deliveries.iter().all(|d| d.status == Some(200)));

    let received = receiver.received();
    let events: Vec<&Received> = received.iter().skip(1).collect();
    assert_eq!(events.len(), 3);
    for event in &events {
        let signature = event.signature.as_deref().unwrap();
        assert_eq!(signature.len(), 64);
        assert!(verify(&secret, &event.body, signature));
        assert!(!verify("wrong-secret", &event.body, signature));
    }
    let payloads: Vec<Value> = events
        .iter()
        .map(|event| serde_json::from_slice(&event.body).unwrap())
        .collect();
    let base = h.sim.base_url();
    assert_eq!(events[0].event.as_deref(), Some("SLEEP"));
    assert_eq!(
        keys(&payloads[0]),
        ["date", "event", "timestamp", "url", "user_id"]
    );
    assert_eq!(payloads[0]["user_id"], id);
    assert_eq!(payloads[0]["date"], sleep_date);
    assert_eq!(
        payloads[0]["url"],
        format!("{base}/v3/users/sleep/{sleep_date}")
    );
    assert_eq!(events[1].event.as_deref(), Some("EXERCISE"));
    assert_eq!(
        keys(&payloads[1]),
        ["entity_id", "event", "timestamp", "url", "user_id"]
    );
    assert_eq!(payloads[1]["entity_id"], exercise_id);
    assert_eq!(
        payloads[1]["url"],
        format!("{base}/v3/exercises/{exercise_id}")
    );
    assert_eq!(events[2].event.as_deref(), Some("ACTIVITY_SUMMARY"));
    assert_eq!(
        payloads[2]["url"],
        format!("{base}/v3/users/activities/{activity_date}")
    );
    assert!(payloads[0]["timestamp"].as_str().unwrap().ends_with('Z'));
    // The recorded delivery is the exact body that was sent.
    assert_eq!(deliveries[0].body.as_bytes(), &events[0].body[..]);
}

#[tokio::test]
async fn sleep_events_fire_twice_when_double_firing_is_on() {
    let h = start_default().await;
    let receiver = Receiver::start(200).await;
    create_webhook(&h, &receiver.url, json!(["SLEEP", "EXERCISE"])).await;
    let (id, _) = h.linked(NewAccount::default()).await;
    let settings = h
        .http
        .patch(h.url("/_sim/settings"))
        .json(&json!({"double_fire_sleep": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(settings.status(), StatusCode::OK);
    add_now(&h, id, RecordKind::Sleep);
    add_now(&h, id, RecordKind::Exercise);
    let deliveries = h.sim.wait_for_deliveries(3, Duration::from_secs(5)).await;
    let events: Vec<&str> = deliveries.iter().map(|d| d.event.as_str()).collect();
    assert_eq!(events, ["SLEEP", "SLEEP", "EXERCISE"]);
    assert_eq!(deliveries[0].body, deliveries[1].body);
}

#[tokio::test]
async fn only_registered_users_and_subscribed_events_are_delivered() {
    let h = start_default().await;
    let receiver = Receiver::start(200).await;
    create_webhook(&h, &receiver.url, json!(["EXERCISE"])).await;
    let unregistered = h.sim.create_account(NewAccount::default()).unwrap();
    add_now(&h, unregistered.polar_user_id, RecordKind::Exercise);
    let (id, _) = h.linked(NewAccount::default()).await;
    add_now(&h, id, RecordKind::Sleep);
    let exercise = add_now(&h, id, RecordKind::Exercise);
    let deliveries = h.sim.wait_for_deliveries(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let deliveries_after = h.sim.deliveries();
    assert_eq!(deliveries_after.len(), 1);
    assert_eq!(deliveries[0].polar_user_id, Some(id));
    assert!(deliveries[0].body.contains(&exercise));
}

#[tokio::test]
async fn patch_delete_activate_and_deactivate() {
    let h = start_default().await;
    let first = Receiver::start(200).await;
    let second = Receiver::start(200).await;
    let created: Value = create_webhook(&h, &first.url, json!(["SLEEP"]))
        .await
        .json()
        .await
        .unwrap();
    let webhook_id = created["data"]["id"].as_str().unwrap().to_owned();
    let (id, _) = h.linked(NewAccount::default()).await;

    // Moving to a new URL pings it first.
    let patched = h
        .http
        .patch(h.url(&format!("/v3/webhooks/{webhook_id}")))
        .header(AUTHORIZATION, h.basic())
        .json(&json!({"url": second.url, "events": ["SLEEP", "EXERCISE"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    let body: Value = patched.json().await.unwrap();
    assert_eq!(body["data"]["url"], second.url.as_str());
    assert!(body["data"].get("signature_secret_key").is_none());
    assert_eq!(second.received()[0].event.as_deref(), Some("PING"));

    // Deactivated: nothing is sent.
    let off = h
        .http
        .post(h.url("/v3/webhooks/deactivate"))
        .header(AUTHORIZATION, h.basic())
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), StatusCode::OK);
    assert_eq!(list_webhooks(&h).await["data"][0]["active"], false);
    add_now(&h, id, RecordKind::Exercise);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(h.sim.deliveries().is_empty());

    // Activation needs a successful PING.
    second.set_status(503);
    let failed = h
        .http
        .post(h.url("/v3/webhooks/activate"))
        .header(AUTHORIZATION, h.basic())
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::BAD_REQUEST);
    second.set_status(200);
    let on = h
        .http
        .post(h.url("/v3/webhooks/activate"))
        .header(AUTHORIZATION, h.basic())
        .send()
        .await
        .unwrap();
    assert_eq!(on.status(), StatusCode::OK);
    assert_eq!(list_webhooks(&h).await["data"][0]["active"], true);

    let unknown = h
        .http
        .delete(h.url("/v3/webhooks/nope"))
        .header(AUTHORIZATION, h.basic())
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let deleted = h
        .http
        .delete(h.url(&format!("/v3/webhooks/{webhook_id}")))
        .header(AUTHORIZATION, h.basic())
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    for path in ["/v3/webhooks/activate", "/v3/webhooks/deactivate"] {
        let response = h
            .http
            .post(h.url(path))
            .header(AUTHORIZATION, h.basic())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{path}");
    }
}

#[tokio::test]
async fn failing_receiver_is_recorded_and_deactivated_after_seven_days() {
    let h = start_default().await;
    let receiver = Receiver::start(200).await;
    create_webhook(&h, &receiver.url, json!(["EXERCISE"])).await;
    let (id, _) = h.linked(NewAccount::default()).await;
    receiver.set_status(500);
    add_now(&h, id, RecordKind::Exercise);
    let first = h.sim.wait_for_deliveries(1, Duration::from_secs(5)).await;
    assert_eq!(first[0].status, Some(500));
    assert!(h.sim.webhook().unwrap().active);
    h.sim.advance_clock(7 * 86_400).unwrap();
    add_now(&h, id, RecordKind::Exercise);
    h.sim.wait_for_deliveries(2, Duration::from_secs(5)).await;
    assert!(!h.sim.webhook().unwrap().active);
}

#[tokio::test]
async fn control_api_delivers_events_on_demand_and_lists_deliveries() {
    let h = start_default().await;
    let receiver = Receiver::start(200).await;
    create_webhook(&h, &receiver.url, json!(["EXERCISE"])).await;
    let (id, _) = h.linked(NewAccount::default()).await;
    let date = h.safe_local_today(0) - TimeDelta::days(1);
    let response = h
        .http
        .post(h.url("/_sim/webhook/deliver"))
        .json(&json!({"event": "SLEEP", "polar_user_id": id, "date": date}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let bad = h
        .http
        .post(h.url("/_sim/webhook/deliver"))
        .json(&json!({"event": "EXERCISE", "polar_user_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    h.sim.wait_for_deliveries(1, Duration::from_secs(5)).await;
    let listed: Value = h
        .http
        .get(h.url("/_sim/webhook/deliveries"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let delivery = &listed[0];
    assert_eq!(delivery["event"], "SLEEP");
    assert_eq!(delivery["status"], 200);
    let secret = h.sim.webhook().unwrap().signature_secret_key;
    assert!(verify(
        &secret,
        delivery["body"].as_str().unwrap().as_bytes(),
        delivery["signature"].as_str().unwrap()
    ));
    let view: Value = h
        .http
        .get(h.url("/_sim/webhook"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["signature_secret_key"], secret.as_str());
    let cleared = h
        .http
        .delete(h.url("/_sim/webhook/deliveries"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    assert!(h.sim.deliveries().is_empty());
}

#[tokio::test]
async fn pull_notifications_list_users_with_transactional_data() {
    let h = start_default().await;
    let get = || {
        h.http
            .get(h.url("/v3/notifications"))
            .header(AUTHORIZATION, h.basic())
            .send()
    };
    assert_eq!(get().await.unwrap().status(), StatusCode::NO_CONTENT);
    let (id, _) = h.linked(NewAccount::default()).await;
    add_now(&h, id, RecordKind::Exercise);
    add_now(&h, id, RecordKind::Exercise);
    add_now(&h, id, RecordKind::Sleep);
    let response = get().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let entries = body["available-user-data"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(keys(&entries[0]), ["data-type", "url", "user-id"]);
    assert_eq!(entries[0]["user-id"], id);
    assert_eq!(entries[0]["data-type"], "EXERCISE");
    assert!(
        entries[0]["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v3/users/{id}/exercise-transactions"))
    );
    let unauthorized = h
        .http
        .get(h.url("/v3/notifications"))
        .basic_auth(h.sim.client_id(), Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
}
