//! URL shape, Basic auth on every call, and the request log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use common::{Site, activity_event};
use reqwest::StatusCode;
use serde_json::json;
use smartabase_sim::{POLAR_ACCESS_TOKEN, RequestRecord};

#[tokio::test]
async fn call_without_credentials_is_401() {
    let site = Site::start().await;
    let response = site
        .client
        .post(site.url("usersearch"))
        .json(&json!({"identification": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
}

#[tokio::test]
async fn call_with_wrong_password_or_username_is_401() {
    let site = Site::start().await;
    let username = site.sim.config().username.clone();
    for (user, password) in [
        (username.as_str(), "wrong"),
        ("someone.else", "sim-password"),
    ] {
        let response = site
            .client
            .post(site.url("usersearch"))
            .basic_auth(user, Some(password))
            .json(&json!({"identification": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{user}");
    }
}

#[tokio::test]
async fn every_endpoint_demands_auth_not_only_the_first_call() {
    let site = Site::start().await;
    site.call_ok("usersearch", &json!({"identification": []}))
        .await;
    let response = site
        .client
        .post(site.url("eventsimport"))
        .json(&json!({"events": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn wrong_app_name_is_404() {
    let site = Site::start().await;
    let config = site.sim.config();
    let url = format!(
        "{}/otherclub/api/v1/usersearch?informat=json&format=json",
        site.sim.base_url()
    );
    let response = site
        .client
        .post(url)
        .basic_auth(&config.username, Some(&config.password))
        .json(&json!({"identification": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_endpoint_is_404() {
    let site = Site::start().await;
    let answer = site.call("eventupsert", &json!({})).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn v1_calls_need_the_json_query_parameters() {
    let site = Site::start().await;
    let config = site.sim.config();
    let url = format!("{}/api/v1/usersearch", site.sim.site_url());
    let response = site
        .client
        .post(url)
        .basic_auth(&config.username, Some(&config.password))
        .json(&json!({"identification": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("informat=json"));
}

#[tokio::test]
async fn v1_calls_must_be_post() {
    let site = Site::start().await;
    let config = site.sim.config();
    let response = site
        .client
        .get(site.url("usersearch"))
        .basic_auth(&config.username, Some(&config.password))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn body_that_is_not_json_is_400() {
    let site = Site::start().await;
    let config = site.sim.config();
    let response = site
        .client
        .post(site.url("usersearch"))
        .basic_auth(&config.username, Some(&config.password))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn request_log_records_calls_without_credentials_or_values() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let config = site.sim.config().clone();
    let response = site
        .client
        .post(site.url("profileimport"))
        .basic_auth(&config.username, Some(&config.password))
        .header("X-APP-ID", "acme.polar-connector")
        .json(&json!({
            "formName": POLAR_ACCESS_TOKEN,
            "userId": {"userId": athlete.user_id},
            "rows": [{"row": 0, "pairs": [{"key": "Access Token", "value": "tok-SECRET-123"}]}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    site.client
        .post(site.url("usersearch"))
        .json(&json!({"identification": []}))
        .send()
        .await
        .unwrap();

    let log: Vec<RequestRecord> = site
        .client
        .get(site.control("requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    let import = &log[0];
    assert_eq!(import.method, "POST");
    assert_eq!(import.path, "/club/api/v1/profileimport");
    assert_eq!(import.query, "informat=json&format=json");
    assert_eq!(import.endpoint.as_deref(), Some("profileimport"));
    assert_eq!(import.status, Some(200));
    assert_eq!(import.app_id.as_deref(), Some("acme.polar-connector"));
    assert!(
        import.summary.contains("forms=[Polar Access Token]"),
        "{}",
        import.summary
    );
    assert!(import.summary.contains(&athlete.user_id.to_string()));
    assert_eq!(log[1].status, Some(401));
    assert_eq!(log, site.sim.requests());

    let raw = serde_json::to_string(&log).unwrap();
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", config.username, config.password));
    for secret in [basic.as_str(), config.password.as_str(), "tok-SECRET-123"] {
        assert!(!raw.contains(secret), "log leaks {secret}: {raw}");
    }
}

#[tokio::test]
async fn request_log_can_be_cleared_and_ignores_control_calls() {
    let site = Site::start().await;
    let athlete = site.athlete("Sam", "Silva");
    site.call_ok(
        "eventsimport",
        &json!({"events": [activity_event(athlete.user_id, "01/09/2025", "9000")]}),
    )
    .await;
    site.client
        .get(site.control("events"))
        .send()
        .await
        .unwrap();
    assert_eq!(site.sim.requests().len(), 1);
    let cleared = site
        .client
        .delete(site.control("requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    assert!(site.sim.requests().is_empty());
}

#[tokio::test]
async fn other_paths_are_404_and_logged() {
    let site = Site::start().await;
    let response = site
        .client
        .post(format!("{}/club/api/v2/person/get", site.sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let log = site.sim.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].path, "/club/api/v2/person/get");
    assert_eq!(log[0].status, Some(404));
}
