//! `oauth-callback`'s handler on API Gateway v2 events, over the in-memory world (both simulators, memory
//! store and queue): routing, every page's status and headers, and the failures the whole-system tests do
//! not reach (malformed queries, refused codes, Polar failing after the exchange, our own
//! misconfiguration).
#![allow(clippy::unwrap_used)]

use lambda_http::{Body, Response};
use polar_sim::{FaultKind, FaultSpec};
use shared::ids::AthleteUuid;
use shared::model::AthleteStatus;
use shared::store::{AthleteStore as _, TokenStore as _};
use shared::testing::MemoryStore;
use testkit::front::{HttpRequest, apigw_event};
use testkit::world::{World, WorldOptions};

type MemoryWorld = World<MemoryStore>;

async fn world() -> MemoryWorld {
    testkit::logs::install();
    World::in_memory(WorldOptions::default()).await.unwrap()
}

struct Answer {
    status: u16,
    headers: lambda_http::http::HeaderMap,
    text: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Calls the handler directly with the API Gateway v2 event Lambda would deliver for `request`.
async fn call(world: &MemoryWorld, request: HttpRequest) -> Answer {
    let event = apigw_event(&request).to_string();
    let request = lambda_http::request::from_str(&event).unwrap();
    let response: Response<Body> = oauth_callback::handle(&world.connector, request)
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = match response.into_body() {
        Body::Text(t) => t,
        Body::Binary(b) => String::from_utf8(b).unwrap(),
        _ => String::new(),
    };
    Answer {
        status,
        headers,
        text,
    }
}

fn athlete(world: &MemoryWorld, tag: &str) -> String {
    let uuid = testkit::moto::unique_name(tag);
    world.add_athlete(&uuid, "Handler", tag);
    uuid
}

/// A fresh attempt for `uuid` in one browser: the `state` of the authorize redirect, and the browser's
/// `cookie` header for the callback (the cookie the redirect set).
async fn state_for(world: &MemoryWorld, uuid: &str) -> (String, String) {
    let answer = call(world, HttpRequest::get(world.link_path(uuid))).await;
    assert_eq!(answer.status, 302, "{}", answer.text);
    let location = answer.header("location").unwrap();
    let query = location.split_once('?').unwrap().1;
    let state = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("state="))
        .unwrap()
        .to_string();
    let cookie = answer
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    (state, cookie)
}

/// The callback as the browser that started the attempt sends it.
fn callback(path_and_query: String, cookie: &str) -> HttpRequest {
    HttpRequest::get(path_and_query).header("cookie", cookie)
}

fn assert_page(answer: &Answer, status: u16, phrase: &str) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(
        answer.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    assert!(
        answer
            .header("content-security-policy")
            .is_some_and(|csp| csp.contains("default-src 'none'"))
    );
    assert!(answer.text.starts_with("<!doctype html>"));
    assert!(
        answer.text.contains(phrase),
        "{phrase:?} not in {}",
        answer.text
    );
}

async fn assert_not_linked(world: &MemoryWorld, uuid: &str) {
    let id = AthleteUuid::parse(uuid).unwrap();
    let stored = world.connector.store.get_athlete(&id).await.unwrap();
    assert!(
        stored.is_none_or(|a| a.status == AthleteStatus::Unlinked),
        "{uuid} should not be linked"
    );
    assert!(
        world
            .connector
            .store
            .get_token(&id)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn routes_only_get_on_the_two_paths_behind_any_stage_prefix() {
    let world = world().await;
    let uuid = athlete(&world, "route");
    let link = world.link_path(&uuid);
    assert_page(
        &call(&world, HttpRequest::get("/polar/elsewhere")).await,
        404,
        "Page not found",
    );
    let mut post = HttpRequest::post("/polar/authorize", Vec::new());
    post.path_and_query = link.clone();
    assert_page(&call(&world, post).await, 404, "Page not found");
    // API Gateway may put a stage name in front of the path.
    let staged = call(&world, HttpRequest::get(format!("/prod{link}"))).await;
    assert_eq!(staged.status, 302, "{}", staged.text);
    assert_eq!(staged.header("cache-control"), Some("no-store"));
    assert!(staged.text.is_empty());
}

#[tokio::test]
async fn an_incomplete_or_malformed_link_answers_400() {
    let world = world().await;
    let uuid = athlete(&world, "malformed");
    let link = world.link_path(&uuid);
    let exp = link
        .split("exp=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    for bad in [
        "/polar/authorize".to_string(),
        link.split("&sig=").next().unwrap().to_string(),
        link.replace(&format!("exp={exp}"), "exp=soon"),
        link.replace(&format!("athlete={uuid}"), "athlete=has%20space"),
    ] {
        assert_page(
            &call(&world, HttpRequest::get(bad.clone())).await,
            400,
            "This link is incomplete",
        );
    }
    assert!(world.polar.requests().is_empty());
    testkit::logs::assert_clean(&[]);
}

#[tokio::test]
async fn a_callback_without_a_usable_state_or_code_answers_400() {
    let world = world().await;
    let uuid = athlete(&world, "nocode");
    assert_page(
        &call(&world, HttpRequest::get("/polar/callback")).await,
        400,
        "This link is incomplete",
    );
    // A state not shaped like ours is refused before any lookup; one shaped like ours but unknown
    // is "used or expired".
    assert_page(
        &call(
            &world,
            HttpRequest::get("/polar/callback?code=abc&state=unknown-state"),
        )
        .await,
        400,
        "This link is incomplete",
    );
    assert_page(
        &call(
            &world,
            HttpRequest::get(format!(
                "/polar/callback?code=abc&state={}",
                "ab".repeat(32)
            )),
        )
        .await,
        400,
        "already been used or has expired",
    );
    // A real state without a code is used up, and nothing is linked.
    let (state, cookie) = state_for(&world, &uuid).await;
    assert_page(
        &call(
            &world,
            callback(format!("/polar/callback?state={state}"), &cookie),
        )
        .await,
        400,
        "This link is incomplete",
    );
    assert_page(
        &call(
            &world,
            callback(format!("/polar/callback?state={state}&code=abc"), &cookie),
        )
        .await,
        400,
        "already been used or has expired",
    );
    assert!(world.polar.requests().is_empty());
    assert_not_linked(&world, &uuid).await;
}

#[tokio::test]
async fn another_error_from_polar_answers_502_without_echoing_it() {
    let world = world().await;
    let uuid = athlete(&world, "polarerror");
    let (state, cookie) = state_for(&world, &uuid).await;
    let answer = call(
        &world,
        callback(
            format!("/polar/callback?error=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state={state}"),
            &cookie,
        ),
    )
    .await;
    assert_page(&answer, 502, "Polar could not complete the authorisation");
    assert!(!answer.text.contains("<script>"));
    assert!(world.polar.requests().is_empty());
    assert_not_linked(&world, &uuid).await;
}

#[tokio::test]
async fn a_code_polar_refuses_answers_400_and_links_nothing() {
    let world = world().await;
    let uuid = athlete(&world, "badcode");
    let (state, cookie) = state_for(&world, &uuid).await;
    let answer = call(
        &world,
        callback(
            format!("/polar/callback?code=not-a-code&state={state}"),
            &cookie,
        ),
    )
    .await;
    assert_page(&answer, 400, "Authorisation could not be completed");
    let token_calls: Vec<_> = world
        .polar
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v2/oauth2/token")
        .collect();
    assert_eq!(token_calls.len(), 1);
    assert_eq!(token_calls[0].status, Some(400));
    assert_not_linked(&world, &uuid).await;
    testkit::logs::assert_clean(&["not-a-code"]);
}

#[tokio::test]
async fn a_polar_registration_failing_once_after_the_code_exchange_is_retried_and_links() {
    let world = world().await;
    let uuid = athlete(&world, "regfail");
    let polar_user = world.polar_account(0);
    world
        .polar
        .inject_fault(FaultSpec {
            path_prefix: "/v3/users".into(),
            method: Some("POST".into()),
            fault: FaultKind::Status { status: 502 },
            count: Some(1),
            probability: None,
        })
        .unwrap();
    // The code is spent: the athlete cannot try again, so the callback does.
    let answer = world.link_via_web(&uuid, polar_user).await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(answer.text().contains("Your Polar account is linked"));
    let statuses: Vec<_> = world
        .polar
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v3/users")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [Some(502), Some(200)]);
    let id = AthleteUuid::parse(uuid.as_str()).unwrap();
    let stored = world
        .connector
        .store
        .get_athlete(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, AthleteStatus::Linked);
    assert_eq!(world.connector.queue.sent().len(), 1);
}

#[tokio::test]
async fn a_callback_without_the_browser_cookie_answers_403_and_spends_nothing() {
    let world = world().await;
    let uuid = athlete(&world, "nocookie");
    let (state, cookie) = state_for(&world, &uuid).await;
    for request in [
        HttpRequest::get(format!("/polar/callback?code=abc&state={state}")),
        HttpRequest::get(format!("/polar/callback?code=abc&state={state}"))
            .header("cookie", "unrelated=1"),
    ] {
        let answer = call(&world, request).await;
        assert_page(&answer, 403, "open your authorisation link again");
    }
    assert!(world.polar.requests().is_empty());
    assert_not_linked(&world, &uuid).await;
    // The attempt is still there for the browser that started it.
    let answer = call(
        &world,
        callback(format!("/polar/callback?code=abc&state={state}"), &cookie),
    )
    .await;
    assert_page(&answer, 400, "Authorisation could not be completed");
}

#[tokio::test]
async fn polar_refusing_our_client_credentials_is_our_fault_500() {
    let world = world().await;
    let uuid = athlete(&world, "misconfigured");
    let polar_user = world.polar_account(0);
    world
        .polar
        .inject_fault(FaultSpec {
            path_prefix: "/v2/oauth2/token".into(),
            method: None,
            fault: FaultKind::Status { status: 401 },
            count: Some(1),
            probability: None,
        })
        .unwrap();
    let answer = world.link_via_web(&uuid, polar_user).await.unwrap();
    assert_eq!(answer.status, 500, "{}", answer.text());
    assert!(answer.text().contains("Something went wrong on our side"));
    assert_not_linked(&world, &uuid).await;
    let failed: Vec<_> = testkit::logs::lines_where("athlete", &uuid)
        .into_iter()
        .filter(|l| l["outcome"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["level"], "ERROR");
}

#[tokio::test]
#[ignore = "run by every_callback_prints_one_emf_line_and_a_relink_is_counted in a child process"]
async fn child_link_then_relink() {
    let world = world().await;
    let uuid = athlete(&world, "relinkmetric");
    let first = world.polar_account(0);
    let second = world.polar_account(0);
    assert_eq!(world.link_via_web(&uuid, first).await.unwrap().status, 200);
    assert_eq!(world.link_via_web(&uuid, second).await.unwrap().status, 200);
}

#[test]
fn every_callback_prints_one_emf_line_and_a_relink_is_counted() {
    let lines = testkit::emf::lines_of_child_test("child_link_then_relink").unwrap();
    let callbacks: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["Function"] == "oauth-callback")
        .collect();
    assert_eq!(callbacks.len(), 2, "one line per callback: {lines:?}");
    for line in &callbacks {
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "PolarConnector"
        );
        assert_eq!(line["AthletesLinked"], 1.0);
    }
    assert_eq!(callbacks[0]["AthletesRelinked"], 0.0);
    assert_eq!(callbacks[1]["AthletesRelinked"], 1.0);
}
