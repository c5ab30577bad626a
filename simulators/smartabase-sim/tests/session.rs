//! The v2 session login and the v3 form-metadata calls, spoken raw: the token in a header and a cookie,
//! credentials in the body, RPC exceptions with HTTP 200, session-only v3 auth, summaries keyed by form
//! type, and each form's fields in a tree built from the site's configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Site;
use reqwest::StatusCode;
use serde_json::{Value, json};
use smartabase_sim::{FormKind, POLAR_SLEEP, SmartabaseSimConfig};

fn login_body(site: &Site, password: &str, app: &str) -> Value {
    json!({
        "username": site.sim.config().username,
        "password": password,
        "loginProperties": {"appName": app, "clientTime": "2026-04-30T09:00"},
    })
}

fn login_url(site: &Site) -> String {
    format!(
        "{}/api/v2/user/loginUser?informat=json&format=json",
        site.sim.site_url()
    )
}

async fn login_with(site: &Site, body: &Value) -> reqwest::Response {
    site.client
        .post(login_url(site))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Logs in and returns the session token.
async fn session(site: &Site) -> String {
    let password = site.sim.config().password.clone();
    let response = login_with(site, &login_body(site, &password, "club")).await;
    assert_eq!(response.status(), StatusCode::OK);
    response
        .headers()
        .get("session-header")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

async fn v3(site: &Site, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = site
        .client
        .get(format!("{}/api/v3/{path}", site.sim.site_url()));
    if let Some(token) = token {
        request = request.header("session-header", token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn login_returns_one_token_as_header_and_cookie_and_the_recorded_account() {
    let site = Site::start().await;
    let password = site.sim.config().password.clone();
    let response = login_with(&site, &login_body(&site, &password, "club")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let token = response.headers()["session-header"]
        .to_str()
        .unwrap()
        .to_owned();
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        cookie,
        format!("JSESSIONID={token}; Path=/; Secure; HttpOnly")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["id"], site.sim.config().api_user_id);
    assert_eq!(body["user"]["username"], site.sim.config().username);
    assert!(
        body["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("Import Profile Data"))
    );
    assert_eq!(site.sim.issued_sessions(), std::slice::from_ref(&token));
    // A second login gets a new token.
    assert_ne!(session(&site).await, token);
}

#[tokio::test]
async fn login_refuses_wrong_credentials_in_the_body_or_in_a_disagreeing_basic_header() {
    let site = Site::start().await;
    let password = site.sim.config().password.clone();
    let wrong = login_with(&site, &login_body(&site, "wrong", "club")).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("session-header").is_none());
    let disagreeing = site
        .client
        .post(login_url(&site))
        .basic_auth("someone.else", Some(&password))
        .json(&login_body(&site, &password, "club"))
        .send()
        .await
        .unwrap();
    assert_eq!(disagreeing.status(), StatusCode::UNAUTHORIZED);
    let agreeing = site
        .client
        .post(login_url(&site))
        .basic_auth(&site.sim.config().username, Some(&password))
        .json(&login_body(&site, &password, "club"))
        .send()
        .await
        .unwrap();
    assert_eq!(agreeing.status(), StatusCode::OK);
    assert_eq!(site.sim.issued_sessions().len(), 1);
}

#[tokio::test]
async fn login_of_another_application_fails_with_http_200_and_no_session() {
    let site = Site::start().await;
    let password = site.sim.config().password.clone();
    let response = login_with(&site, &login_body(&site, &password, "otherclub")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("session-header").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["__is_rpc_exception__"], true);
    assert!(site.sim.issued_sessions().is_empty());
}

#[tokio::test]
async fn login_needs_post_and_the_json_query() {
    let site = Site::start().await;
    let password = site.sim.config().password.clone();
    let no_query = site
        .client
        .post(format!("{}/api/v2/user/loginUser", site.sim.site_url()))
        .json(&login_body(&site, &password, "club"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_query.status(), StatusCode::BAD_REQUEST);
    let get = site.client.get(login_url(&site)).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn v3_calls_need_a_session_basic_auth_is_not_enough() {
    let site = Site::start().await;
    let config = site.sim.config().clone();
    let basic_only = site
        .client
        .get(format!("{}/api/v3/forms/summaries", site.sim.site_url()))
        .basic_auth(&config.username, Some(&config.password))
        .send()
        .await
        .unwrap();
    assert_eq!(basic_only.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        v3(&site, "forms/summaries", Some("made-up")).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let token = session(&site).await;
    assert_eq!(
        v3(&site, "forms/summaries", Some(&token)).await.status(),
        StatusCode::OK
    );
    let by_cookie = site
        .client
        .get(format!("{}/api/v3/forms/summaries", site.sim.site_url()))
        .header("cookie", format!("other=1; JSESSIONID={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), StatusCode::OK);

    site.sim.expire_sessions();
    assert_eq!(
        v3(&site, "forms/summaries", Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn summaries_list_the_configured_forms_keyed_by_type() {
    let mut config = SmartabaseSimConfig::default();
    config.forms.retain(|form| form.name != POLAR_SLEEP);
    let site = Site::start_with(config).await;
    let token = session(&site).await;
    let body: Value = v3(&site, "forms/summaries", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let names = |key: &str| -> Vec<String> {
        body[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|form| form["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let configured = |kind: FormKind| -> Vec<String> {
        site.sim
            .config()
            .forms
            .iter()
            .filter(|form| form.kind == kind)
            .map(|form| form.name.clone())
            .collect()
    };
    assert_eq!(names("event"), configured(FormKind::Event));
    assert_eq!(names("profile"), configured(FormKind::Profile));
    assert!(!names("event").contains(&POLAR_SLEEP.to_owned()));
    assert_eq!(body["database"], Value::Null);
    let first = &body["event"][0];
    assert!(
        first["id"].is_i64() && first["isReadOnly"] == false,
        "{first}"
    );
}

#[tokio::test]
async fn a_form_schema_holds_every_field_in_nested_pages_and_field_sets() {
    let site = Site::start().await;
    let token = session(&site).await;
    let summaries: Value = v3(&site, "forms/summaries", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let sleep = summaries["event"]
        .as_array()
        .unwrap()
        .iter()
        .find(|form| form["name"] == POLAR_SLEEP)
        .unwrap();
    let id = sleep["id"].as_i64().unwrap();
    let schema: Value = v3(&site, &format!("forms/event/{id}"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(schema["name"], POLAR_SLEEP);
    let pages = schema["children"].as_array().unwrap();
    assert_eq!(pages.len(), 2);
    assert!(pages.iter().all(|page| page["type"] == "FormPage"));
    // Page 2 nests its field set inside another.
    let nested = &pages[1]["children"][0]["children"][0];
    assert_eq!(nested["type"], "FormFieldSet");
    let mut names = Vec::new();
    for set in [&pages[0]["children"][0], nested] {
        for item in set["children"].as_array().unwrap() {
            assert_eq!(item["type"], "FormItem");
            names.push(item["name"].as_str().unwrap().to_owned());
        }
    }
    let configured: Vec<String> = site
        .sim
        .config()
        .form(POLAR_SLEEP)
        .unwrap()
        .fields
        .iter()
        .map(|field| field.name.clone())
        .collect();
    assert_eq!(names, configured);

    for wrong in [format!("forms/profile/{id}"), "forms/event/999".to_owned()] {
        assert_eq!(
            v3(&site, &wrong, Some(&token)).await.status(),
            StatusCode::NOT_FOUND,
            "{wrong}"
        );
    }
    let log = site.sim.requests();
    assert_eq!(
        log.iter()
            .map(|r| r.endpoint.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
        [
            "v2/user/loginUser",
            "v3/forms/summaries",
            "v3/forms/{type}/{id}",
            "v3/forms/{type}/{id}",
            "v3/forms/{type}/{id}",
        ]
    );
    let raw = serde_json::to_string(&log).unwrap();
    for secret in [token.as_str(), site.sim.config().password.as_str()] {
        assert!(!raw.contains(secret), "the log leaks {secret}: {raw}");
    }
}
