//! `revoke-hook`'s handler on API Gateway v2 events, over the in-memory world: routing, the signature
//! checked before the body is read, body validation, secret rotation, and revoking athletes who were
//! never linked.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use lambda_http::{Body, Response};
use shared::clock::Clock as _;
use shared::crypto::hmac_hex;
use shared::ids::AthleteUuid;
use shared::model::AthleteStatus;
use shared::store::AthleteStore as _;
use shared::testing::MemoryStore;
use testkit::front::{HttpRequest, apigw_event};
use testkit::world::{World, WorldOptions};

type MemoryWorld = World<MemoryStore>;

async fn world() -> MemoryWorld {
    testkit::logs::install();
    World::in_memory(WorldOptions::default()).await.unwrap()
}

fn revoke_secret(world: &MemoryWorld) -> String {
    let json: serde_json::Value = serde_json::from_str(&world.secrets_json).unwrap();
    json["revoke_hook_secret"].as_str().unwrap().to_string()
}

/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` for each secret given.
fn signature(body: &[u8], at: DateTime<Utc>, secrets: &[&str]) -> String {
    let t = at.timestamp();
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(body);
    let mut header = format!("t={t}");
    for secret in secrets {
        header.push_str(&format!(",v1={}", hmac_hex(secret.as_bytes(), &message)));
    }
    header
}

fn signed(world: &MemoryWorld, body: &[u8]) -> HttpRequest {
    let header = signature(body, world.clock.now(), &[&revoke_secret(world)]);
    HttpRequest::post("/polar/revoke", body.to_vec()).header("x-connector-signature", header)
}

async fn call(world: &MemoryWorld, request: HttpRequest) -> (u16, serde_json::Value) {
    let event = apigw_event(&request).to_string();
    let request = lambda_http::request::from_str(&event).unwrap();
    let response: Response<Body> = revoke_hook::handle(&world.connector, request)
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let body: &[u8] = response.body().as_ref();
    (status, serde_json::from_slice(body).unwrap())
}

/// A linked athlete (web flow), their Polar user id and the token the connector holds.
async fn linked(world: &MemoryWorld, tag: &str) -> (String, i64) {
    let uuid = testkit::moto::unique_name(tag);
    world.add_athlete(&uuid, "Revoke", tag);
    let polar_user = world.polar_account(0);
    world.scan().await.unwrap();
    let page = world.link_via_web(&uuid, polar_user).await.unwrap();
    assert_eq!(page.status, 200, "{}", page.text());
    (uuid, polar_user)
}

async fn status_of(world: &MemoryWorld, uuid: &str) -> Option<AthleteStatus> {
    let id = AthleteUuid::parse(uuid).unwrap();
    world
        .connector
        .store
        .get_athlete(&id)
        .await
        .unwrap()
        .map(|a| a.status)
}

#[tokio::test]
async fn only_post_on_the_revoke_path_is_served() {
    let world = world().await;
    let body = br#"{"athlete_uuid": "someone"}"#;
    let mut get = signed(&world, body);
    get.method = "GET".into();
    assert_eq!(
        call(&world, get).await,
        (404, serde_json::json!({"error": "not found"}))
    );
    let mut elsewhere = signed(&world, body);
    elsewhere.path_and_query = "/polar/revoked".into();
    assert_eq!(call(&world, elsewhere).await.0, 404);
}

#[tokio::test]
async fn the_signature_is_checked_before_the_body_is_read() {
    let world = world().await;
    // Garbage, unsigned: 401, not 400 — nothing about the body is revealed to an unsigned caller.
    let unsigned = HttpRequest::post("/polar/revoke", b"not json".to_vec());
    assert_eq!(call(&world, unsigned).await.0, 401);
    let mut wrongly_signed = signed(&world, b"not json");
    wrongly_signed.body = b"not json either".to_vec();
    assert_eq!(call(&world, wrongly_signed).await.0, 401);
}

#[tokio::test]
async fn a_signed_body_that_is_not_the_contracts_answers_400() {
    let world = world().await;
    for body in [
        &b"not json"[..],
        br#"{"athlete": "x"}"#,
        br#"{"athlete_uuid": "x", "also": 1}"#,
        br#"{"athlete_uuid": "has space"}"#,
        br#"{"athlete_uuid": ""}"#,
    ] {
        let (status, answer) = call(&world, signed(&world, body)).await;
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(body));
        assert!(answer["error"].as_str().unwrap().contains("athlete_uuid"));
    }
}

#[tokio::test]
async fn during_a_secret_rotation_either_signature_may_match() {
    let world = world().await;
    let (uuid, polar_user) = linked(&world, "rotation").await;
    let body = serde_json::json!({ "athlete_uuid": uuid }).to_string();
    let header = signature(
        body.as_bytes(),
        world.clock.now(),
        &["the-retired-secret", &revoke_secret(&world)],
    );
    let request = HttpRequest::post("/polar/revoke", body).header("x-connector-signature", header);
    assert_eq!(
        call(&world, request).await,
        (200, serde_json::json!({"status": "revoked"}))
    );
    assert_eq!(status_of(&world, &uuid).await, Some(AthleteStatus::Revoked));
    assert!(!world.polar.account(polar_user).unwrap().registered);
}

#[tokio::test]
async fn revoking_a_rostered_athlete_who_never_linked_answers_200_and_changes_nothing() {
    let world = world().await;
    let uuid = testkit::moto::unique_name("never");
    world.add_athlete(&uuid, "Never", "Linked");
    world.scan().await.unwrap();
    world.polar.clear_requests();
    world.smartabase.clear_requests();
    let body = serde_json::json!({ "athlete_uuid": uuid }).to_string();
    assert_eq!(
        call(&world, signed(&world, body.as_bytes())).await,
        (200, serde_json::json!({"status": "revoked"}))
    );
    assert_eq!(
        status_of(&world, &uuid).await,
        Some(AthleteStatus::Unlinked)
    );
    assert!(world.polar.requests().is_empty());
    assert!(
        world
            .smartabase
            .requests()
            .iter()
            .all(|r| r.endpoint.as_deref() != Some("profileimport"))
    );
}

#[tokio::test]
async fn the_outcome_line_names_the_athlete_and_no_secret() {
    let world = world().await;
    let (uuid, _) = linked(&world, "logged").await;
    let body = serde_json::json!({ "athlete_uuid": uuid }).to_string();
    let request = signed(&world, body.as_bytes());
    let header = request.headers[0].1.clone();
    assert_eq!(call(&world, request).await.0, 200);
    let lines = testkit::logs::lines_where("athlete", &uuid);
    let revoked: Vec<_> = lines.iter().filter(|l| l["outcome"] == "revoked").collect();
    assert_eq!(revoked.len(), 1, "{lines:?}");
    assert_eq!(revoked[0]["origin"], "revoke hook");
    let signature_hex = header.split("v1=").nth(1).unwrap();
    testkit::logs::assert_clean(&[&revoke_secret(&world), signature_hex]);
}
