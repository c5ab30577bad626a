//! The `/_sim/` control API for the roster and site facts, and the `smartabase-sim` binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use common::Site;
use reqwest::StatusCode;
use serde_json::json;
use smartabase_sim::{DroppedField, SimUser, SiteInfo};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn users_are_added_changed_and_removed_over_http() {
    let site = Site::start().await;
    let response = site
        .client
        .post(site.control("users"))
        .json(&json!([
            {"firstName": "Riley", "lastName": "Jones", "username": "riley.jones",
             "emailAddress": "riley@club.example", "uuid": "uuid-riley"},
            {"firstName": "Pat", "lastName": "Coach", "uuid": ""},
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let added: Vec<SimUser> = response.json().await.unwrap();
    assert_eq!(added.len(), 2);
    assert_eq!(added[0].username, "riley.jones");
    assert_eq!(added[1].uuid, "");
    assert!(!added[1].username.is_empty(), "a username is derived");
    assert_ne!(added[0].user_id, added[1].user_id);

    let patched: SimUser = site
        .client
        .patch(site.control(&format!("users/{}", added[1].user_id)))
        .json(&json!({"uuid": "uuid-pat"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patched.uuid, "uuid-pat");
    assert!(patched.modified_at_ms > added[1].modified_at_ms);

    let removed = site
        .client
        .delete(site.control(&format!("users/{}", added[0].user_id)))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let again = site
        .client
        .delete(site.control(&format!("users/{}", added[0].user_id)))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);

    let roster: Vec<SimUser> = site
        .client
        .get(site.control("users"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(roster, vec![patched]);
    let search = site
        .call_ok("usersearch", &json!({"identification": []}))
        .await;
    assert_eq!(search["results"][0]["results"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn info_names_the_site_and_its_forms() {
    let site = Site::start().await;
    let info: SiteInfo = site
        .client
        .get(site.control("info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info.app_name, "club");
    assert_eq!(info.api_user_id, 120855);
    assert_eq!(
        info.event_forms,
        vec![
            "Polar Training",
            "Polar Activity",
            "Polar Sleep",
            "Polar Nightly Recharge"
        ]
    );
    assert_eq!(
        info.profile_forms,
        vec!["Polar Auth Portal", "Polar Access Token"]
    );
}

#[tokio::test]
async fn dropped_fields_are_listed_over_http() {
    let site = Site::start().await;
    let athlete = site.athlete("Riley", "Jones");
    let mut event = common::activity_event(athlete.user_id, "01/09/2025", "9000");
    event["rows"][0]["pairs"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "Step Count", "value": "1"}));
    site.call_ok("eventimport", &event).await;
    let dropped: Vec<DroppedField> = site
        .client
        .get(site.control("dropped-fields"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].name, "Step Count");
    assert_eq!(dropped[0].endpoint, "eventimport");
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let site = Site::start().await;
    let url = site.url("usersearch");
    let client = site.client.clone();
    site.sim.shutdown().await;
    let result = client
        .post(url)
        .json(&json!({"identification": []}))
        .send()
        .await;
    assert!(result.is_err(), "nothing listens after shutdown");
}

#[tokio::test]
async fn binary_prints_its_site_url_and_serves_the_seeded_roster() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_smartabase-sim"))
        .args([
            "--port",
            "0",
            "--app",
            "demo",
            "--username",
            "demo.api",
            "--password",
            "pw",
            "--athletes",
            "4",
            "--seed",
            "3",
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = BufReader::new(stdout)
        .lines()
        .next_line()
        .await
        .unwrap()
        .unwrap();
    let site_url = line
        .strip_prefix("smartabase-sim listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"));
    assert!(site_url.starts_with("http://127.0.0.1:"), "{site_url}");
    assert!(site_url.ends_with("/demo"), "{site_url}");

    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!(
            "{site_url}/api/v1/usersearch?informat=json&format=json"
        ))
        .basic_auth("demo.api", Some("pw"))
        .json(&json!({"identification": []}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let users = answer["results"][0]["results"].as_array().unwrap();
    assert_eq!(users.len(), 4);
    assert!(
        users
            .iter()
            .all(|user| user["uuid"].as_str().unwrap().len() == 36)
    );
    child.kill().await.unwrap();
}
