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

/// A fresh state for `uuid`: the `state` of the authorize redirect.
async fn state_for(world: &MemoryWorld, uuid: &str) -> String {
    let answer = call(world, HttpRequest::get(world.link_path(uuid))).await;
    assert_eq!(answer.status, 302, "{}", answer.text);
    let location = answer.header("location").unwrap();
    let query = location.split_once('?').unwrap().1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("state="))
        .unwrap()
        .to_string()
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
    let state = state_for(&world, &uuid).await;
    assert_page(
        &call(
            &world,
            HttpRequest::get(format!("/polar/callback?state={state}")),
        )
        .await,
        400,
        "This link is incomplete",
    );
    assert_page(
        &call(
            &world,
            HttpRequest::get(format!("/polar/callback?state={state}&code=abc")),
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
    let state = state_for(&world, &uuid).await;
    let answer = call(
        &world,
        HttpRequest::get(format!(
            "/polar/callback?error=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state={state}"
        )),
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
    let state = state_for(&world, &uuid).await;
    let answer = call(
        &world,
        HttpRequest::get(format!("/polar/callback?code=not-a-code&state={state}")),
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
async fn polar_failing_after_the_code_exchange_answers_503_and_stores_nothing() {
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
    let answer = world.link_via_web(&uuid, polar_user).await.unwrap();
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert_eq!(answer.header("retry-after"), Some("120"));
    assert!(answer.text().contains("Please try again in a few minutes"));
    assert_not_linked(&world, &uuid).await;
    assert!(world.connector.queue.sent().is_empty());

    // Trying again from the link works.
    let again = world.link_via_web(&uuid, polar_user).await.unwrap();
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(world.connector.queue.sent().len(), 1);
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
