//! OAuth authorization-code flow and user registration lifecycle, over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{REDIRECT, keys, location, query_param, start, start_default};
use polar_sim::{AccountPatch, ConsentMode, NewAccount, PolarSimConfig, SettingsPatch};
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};

fn authorize_query(client_id: &str, redirect: Option<&str>) -> Vec<(&'static str, String)> {
    let mut query = vec![
        ("response_type", "code".to_owned()),
        ("client_id", client_id.to_owned()),
        ("scope", "accesslink.read_all".to_owned()),
        ("state", "xyz-123".to_owned()),
    ];
    if let Some(uri) = redirect {
        query.push(("redirect_uri", uri.to_owned()));
    }
    query
}

#[tokio::test]
async fn manual_consent_page_accept_redirects_with_code_that_exchanges_for_a_token() {
    let h = start_default().await;
    let athlete = h
        .sim
        .create_account(NewAccount {
            first_name: Some("Aino".into()),
            last_name: Some("Virtanen".into()),
            ..NewAccount::default()
        })
        .unwrap();
    h.sim.login(Some(athlete.polar_user_id)).unwrap();

    let page = h
        .http
        .get(h.url("/oauth2/authorization"))
        .query(&authorize_query(h.sim.client_id(), Some(REDIRECT)))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Logged in as Aino Virtanen"));
    assert!(html.contains(&format!(
        "<option value=\"{}\" selected>",
        athlete.polar_user_id
    )));
    assert!(html.contains("value=\"accept\""));
    assert!(html.contains("value=\"deny\""));
    assert!(html.contains("name=\"state\" value=\"xyz-123\""));

    // The browser submits the form as rendered.
    let mut form = authorize_query(h.sim.client_id(), Some(REDIRECT));
    form.push(("account", athlete.polar_user_id.to_string()));
    form.push(("decision", "accept".to_owned()));
    let accepted = h
        .http
        .post(h.url("/oauth2/authorization"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::FOUND);
    let target = location(&accepted);
    assert!(target.starts_with(REDIRECT), "{target}");
    assert_eq!(query_param(&target, "state").as_deref(), Some("xyz-123"));
    let code = query_param(&target, "code").unwrap();

    let token = h.exchange(&code, Some(REDIRECT)).await;
    assert_eq!(token.status(), StatusCode::OK);
    let body: Value = token.json().await.unwrap();
    assert_eq!(
        keys(&body),
        ["access_token", "expires_in", "token_type", "x_user_id"]
    );
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 31_535_999);
    assert_eq!(body["x_user_id"], athlete.polar_user_id);
    assert!(body["access_token"].as_str().unwrap().len() >= 32);
}

#[tokio::test]
async fn the_token_lifetime_polar_answers_is_a_setting_of_any_size() {
    let h = start_default().await;
    let id = h
        .sim
        .create_account(NewAccount::default())
        .unwrap()
        .polar_user_id;
    for expires_in in [i64::MAX, -1, 0, 31_535_999] {
        let settings = h.sim.update_settings(SettingsPatch {
            token_expires_in: Some(expires_in),
            ..SettingsPatch::default()
        });
        assert_eq!(settings.token_expires_in, expires_in);
        let code = h.code_for(id, None).await;
        let body: Value = h.exchange(&code, None).await.json().await.unwrap();
        assert_eq!(body["expires_in"], expires_in);
    }
}

#[tokio::test]
async fn consent_page_escapes_echoed_values() {
    let h = start_default().await;
    let mut query = authorize_query(h.sim.client_id(), None);
    query.retain(|(name, _)| *name != "state");
    query.push(("state", "\"><script>alert(1)</script>".to_owned()));
    let html = h
        .http
        .get(h.url("/oauth2/authorization"))
        .query(&query)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("<script>"));
    assert!(html.contains("&lt;script&gt;"));
}

#[tokio::test]
async fn auto_accept_redirects_at_once_for_the_logged_in_account() {
    let h = start(PolarSimConfig {
        consent_mode: ConsentMode::AutoAccept,
        ..PolarSimConfig::default()
    })
    .await;
    let athlete = h.sim.create_account(NewAccount::default()).unwrap();

    let not_logged_in = h
        .http
        .get(h.url("/oauth2/authorization"))
        .query(&authorize_query(h.sim.client_id(), None))
        .send()
        .await
        .unwrap();
    assert_eq!(not_logged_in.status(), StatusCode::BAD_REQUEST);

    h.sim.login(Some(athlete.polar_user_id)).unwrap();
    let response = h
        .http
        .get(h.url("/oauth2/authorization"))
        .query(&authorize_query(h.sim.client_id(), None))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let target = location(&response);
    // No redirect_uri given: the default (first registered) one is used.
    assert!(target.starts_with(REDIRECT));
    let code = query_param(&target, "code").unwrap();
    let token = h.exchange(&code, None).await;
    assert_eq!(token.status(), StatusCode::OK);
    let body: Value = token.json().await.unwrap();
    assert_eq!(body["x_user_id"], athlete.polar_user_id);
}

#[tokio::test]
async fn deny_redirects_with_access_denied_in_manual_and_auto_deny_modes() {
    let h = start_default().await;
    let athlete = h.sim.create_account(NewAccount::default()).unwrap();
    let mut form = authorize_query(h.sim.client_id(), Some(REDIRECT));
    form.push(("account", athlete.polar_user_id.to_string()));
    form.push(("decision", "deny".to_owned()));
    let denied = h
        .http
        .post(h.url("/oauth2/authorization"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::FOUND);
    let target = location(&denied);
    assert_eq!(
        query_param(&target, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&target, "state").as_deref(), Some("xyz-123"));
    assert!(query_param(&target, "code").is_none());

    let auto = start(PolarSimConfig {
        consent_mode: ConsentMode::AutoDeny,
        ..PolarSimConfig::default()
    })
    .await;
    let response = auto
        .http
        .get(auto.url("/oauth2/authorization"))
        .query(&authorize_query(auto.sim.client_id(), Some(REDIRECT)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        query_param(&location(&response), "error").as_deref(),
        Some("access_denied")
    );
}

#[tokio::test]
async fn reused_code_is_invalid_grant_and_deletes_every_token_of_the_account() {
    let h = start_default().await;
    let athlete = h.sim.create_account(NewAccount::default()).unwrap();
    let id = athlete.polar_user_id;
    let earlier_token = h.token_for(id).await;
    let code = h.code_for(id, Some(REDIRECT)).await;
    let first = h.exchange(&code, Some(REDIRECT)).await;
    assert_eq!(first.status(), StatusCode::OK);
    let token = first.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(h.register(&token, "m-1").await.status(), StatusCode::OK);
    assert_eq!(
        h.get("/v3/exercises", &token).await.status(),
        StatusCode::OK
    );
    assert_eq!(h.sim.account(id).unwrap().active_tokens, 2);

    let second = h.exchange(&code, Some(REDIRECT)).await;
    assert_eq!(second.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        second.json::<Value>().await.unwrap(),
        json!({"error": "invalid_grant"})
    );
    for dead in [&token, &earlier_token] {
        assert_eq!(
            h.get("/v3/exercises", dead).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(h.sim.account(id).unwrap().active_tokens, 0);
}

#[tokio::test]
async fn code_expires_after_ten_minutes_of_sim_time() {
    let h = start_default().await;
    let id = h
        .sim
        .create_account(NewAccount::default())
        .unwrap()
        .polar_user_id;
    let fresh = h.code_for(id, Some(REDIRECT)).await;
    let stale = h.code_for(id, Some(REDIRECT)).await;
    h.sim.advance_clock(9 * 60).unwrap();
    assert_eq!(
        h.exchange(&fresh, Some(REDIRECT)).await.status(),
        StatusCode::OK
    );
    h.sim.advance_clock(2 * 60).unwrap();
    let expired = h.exchange(&stale, Some(REDIRECT)).await;
    assert_eq!(expired.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        expired.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn redirect_uri_must_match_exactly_at_authorize_and_token() {
    let h = start(PolarSimConfig {
        redirect_uris: vec![REDIRECT.to_owned(), "https://other.example/cb".to_owned()],
        ..PolarSimConfig::default()
    })
    .await;
    let id = h
        .sim
        .create_account(NewAccount::default())
        .unwrap()
        .polar_user_id;

    // Unknown redirect (trailing slash differs): the error goes to the default redirect.
    let unknown = format!("{REDIRECT}/");
    let response = h
        .http
        .get(h.url("/oauth2/authorization"))
        .query(&authorize_query(h.sim.client_id(), Some(&unknown)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let target = location(&response);
    assert!(target.starts_with(&format!("{REDIRECT}?")), "{target}");
    assert_eq!(
        query_param(&target, "error").as_deref(),
        Some("invalid_request")
    );

    // Given at authorize → must be repeated identically at the token endpoint.
    let code = h.code_for(id, Some("https://other.example/cb")).await;
    for wrong in [Some(REDIRECT), None] {
        let response = h.exchange(&code, wrong).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.json::<Value>().await.unwrap()["error"],
            "invalid_grant"
        );
    }
    assert_eq!(
        h.exchange(&code, Some("https://other.example/cb"))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn bad_client_credentials_are_invalid_client_and_unknown_client_gets_an_error_page() {
    let h = start_default().await;
    let id = h
        .sim
        .create_account(NewAccount::default())
        .unwrap()
        .polar_user_id;
    let code = h.code_for(id, Some(REDIRECT)).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    let wrong_secret = h
        .http
        .post(h.url("/v2/oauth2/token"))
        .basic_auth(h.sim.client_id(), Some("not-the-secret"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_secret.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong_secret.json::<Value>().await.unwrap(),
        json!({"error": "invalid_client"})
    );
    let missing = h
        .http
        .post(h.url("/v2/oauth2/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let garbage = h
        .http
        .post(h.url("/v2/oauth2/token"))
        .header(AUTHORIZATION, "Basic %%%not-base64")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::UNAUTHORIZED);
    // The code was not consumed by the failed attempts.
    assert_eq!(
        h.exchange(&code, Some(REDIRECT)).await.status(),
        StatusCode::OK
    );

    let page = h
        .http
        .get(h.url("/oauth2/authorization"))
        .query(&authorize_query("someone-else", Some(REDIRECT)))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);
    assert!(page.text().await.unwrap().contains("Unknown client"));
}

#[tokio::test]
async fn token_request_errors_follow_oauth() {
    let h = start_default().await;
    let post = |form: Vec<(&'static str, &'static str)>| {
        h.http
            .post(h.url("/v2/oauth2/token"))
            .header(AUTHORIZATION, h.basic())
            .form(&form)
            .send()
    };
    let unsupported = post(vec![("grant_type", "refresh_token"), ("code", "x")])
        .await
        .unwrap();
    assert_eq!(
        unsupported.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    let no_code = post(vec![("grant_type", "authorization_code")])
        .await
        .unwrap();
    assert_eq!(no_code.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        no_code.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let unknown = post(vec![("grant_type", "authorization_code"), ("code", "nope")])
        .await
        .unwrap();
    assert_eq!(
        unknown.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn register_returns_the_kebab_case_user_then_409_for_repeats_and_reused_member_ids() {
    let h = start_default().await;
    let first = h.sim.create_account(NewAccount::default()).unwrap();
    let token = h.token_for(first.polar_user_id).await;
    let registered = h.register(&token, "athlete-uuid-1").await;
    assert_eq!(registered.status(), StatusCode::OK);
    let user: Value = registered.json().await.unwrap();
    assert_eq!(
        keys(&user),
        [
            "birthdate",
            "extra-info",
            "first-name",
            "gender",
            "height",
            "last-name",
            "member-id",
            "polar-user-id",
            "registration-date",
            "weight"
        ]
    );
    assert_eq!(user["polar-user-id"], first.polar_user_id);
    assert_eq!(user["member-id"], "athlete-uuid-1");
    assert!(user["registration-date"].as_str().unwrap().ends_with('Z'));

    let again = h.register(&token, "athlete-uuid-1").await;
    assert_eq!(again.status(), StatusCode::CONFLICT);

    let second = h.sim.create_account(NewAccount::default()).unwrap();
    let second_token = h.token_for(second.polar_user_id).await;
    assert_eq!(
        h.register(&second_token, "athlete-uuid-1").await.status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        h.register(&second_token, "athlete-uuid-2").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        h.sim
            .account(second.polar_user_id)
            .unwrap()
            .member_id
            .as_deref(),
        Some("athlete-uuid-2")
    );
}

#[tokio::test]
async fn register_is_403_until_consents_are_accepted() {
    let h = start_default().await;
    let athlete = h
        .sim
        .create_account(NewAccount {
            consents_accepted: false,
            ..NewAccount::default()
        })
        .unwrap();
    let token = h.token_for(athlete.polar_user_id).await;
    assert_eq!(
        h.register(&token, "m").await.status(),
        StatusCode::FORBIDDEN
    );
    assert!(!h.sim.account(athlete.polar_user_id).unwrap().registered);
    h.sim
        .update_account(
            athlete.polar_user_id,
            AccountPatch {
                consents_accepted: Some(true),
                ..AccountPatch::default()
            },
        )
        .unwrap();
    assert_eq!(h.register(&token, "m").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn register_rejects_bad_bodies_and_bad_tokens() {
    let h = start_default().await;
    let id = h
        .sim
        .create_account(NewAccount::default())
        .unwrap()
        .polar_user_id;
    let token = h.token_for(id).await;
    for body in ["", "{", "{\"member-id\": 5}", "{\"member-id\": \"\"}", "[]"] {
        let response = h
            .http
            .post(h.url("/v3/users"))
            .bearer_auth(&token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "body {body:?}");
    }
    let no_auth = h
        .http
        .post(h.url("/v3/users"))
        .json(&json!({"member-id": "m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_auth.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        h.register("made-up-token", "m").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn get_user_then_delete_revokes_the_token() {
    let h = start_default().await;
    let (id, token) = h.linked(NewAccount::default()).await;
    let user = h.get_json(&format!("/v3/users/{id}"), &token).await;
    assert_eq!(user["polar-user-id"], id);
    assert_eq!(
        h.get(&format!("/v3/users/{}", id + 1), &token)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.get("/v3/users/not-a-number", &token).await.status(),
        StatusCode::BAD_REQUEST
    );

    let deleted = h
        .http
        .delete(h.url(&format!("/v3/users/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(!h.sim.account(id).unwrap().registered);
    assert_eq!(
        h.get(&format!("/v3/users/{id}"), &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.get("/v3/users/sleep", &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn data_calls_with_a_token_of_an_unregistered_account_are_403() {
    let h = start_default().await;
    let id = h
        .sim
        .create_account(NewAccount::default())
        .unwrap()
        .polar_user_id;
    let token = h.token_for(id).await;
    for path in [
        "/v3/exercises",
        "/v3/users/activities",
        "/v3/users/sleep",
        "/v3/users/nightly-recharge",
    ] {
        assert_eq!(
            h.get(path, &token).await.status(),
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    // A registered user count of zero is visible in the rate-limit formula.
    let response = h.get("/v3/exercises", &token).await;
    assert_eq!(
        response.headers()["ratelimit-limit"].to_str().unwrap(),
        "500,5000"
    );
}

#[tokio::test]
async fn disconnect_on_polar_side_makes_every_user_call_401() {
    let h = start_default().await;
    let (id, token) = h.linked(NewAccount::default()).await;
    assert_eq!(
        h.get("/v3/users/sleep", &token).await.status(),
        StatusCode::OK
    );
    let response = h
        .http
        .post(h.url(&format!("/_sim/accounts/{id}/disconnect")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    for path in [
        format!("/v3/users/{id}"),
        "/v3/exercises".to_owned(),
        "/v3/exercises/abc".to_owned(),
        "/v3/users/activities".to_owned(),
        "/v3/users/activities/2025-09-01".to_owned(),
        "/v3/users/sleep".to_owned(),
        "/v3/users/sleep/2025-09-01".to_owned(),
        "/v3/users/nightly-recharge".to_owned(),
        "/v3/users/nightly-recharge/2025-09-01".to_owned(),
    ] {
        let response = h.get(&path, &token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], 401);
    }
    assert_eq!(
        h.register(&token, "again").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let view = h.sim.account(id).unwrap();
    assert!(!view.registered);
    assert_eq!(view.active_tokens, 0);
}
