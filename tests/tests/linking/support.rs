//! What every linking test needs: a world on moto with the log capture on, roster athletes with unique
//! UUIDs, the web flow step by step, a token the way the Athlete app gets one, the signed revoke request,
//! and readers of the state the assertions look at (store, raw DynamoDB items, queue, simulators' logs).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use polar_sim::RequestLogEntry;
use reqwest::Url;
use shared::clock::Clock as _;
use shared::crypto::hmac_hex;
use shared::ids::AthleteUuid;
use shared::model::{Athlete, StoredToken};
use shared::queue::SyncJob;
use shared::store::{DynamoStore, Store, TokenStore as _};
use smartabase_sim::{POLAR_ACCESS_TOKEN, SimPair, SimProfile};
use testkit::front::{HttpRequest, HttpResponse};
use testkit::world::{PUBLIC_BASE_URL, World, WorldOptions};

/// The world every linking test runs in.
pub type MotoWorld = World<DynamoStore>;

/// A whole connector on moto and both simulators, with the log capture installed.
pub async fn world() -> MotoWorld {
    world_with(WorldOptions::default()).await
}

/// [`world`] with other options.
pub async fn world_with(options: WorldOptions) -> MotoWorld {
    testkit::logs::install();
    World::on_moto(options).await.unwrap()
}

/// A rostered athlete: their UUID (unique in the process, so log lines can be told apart) and
/// Smartabase user id.
pub struct Rostered {
    pub uuid: String,
    pub user_id: i64,
}

/// Puts a new athlete on the Smartabase roster.
pub fn roster<S: Store>(world: &World<S>, tag: &str) -> Rostered {
    let uuid = testkit::moto::unique_name(tag);
    let user_id = world.add_athlete(&uuid, "Test", tag).get();
    Rostered { uuid, user_id }
}

/// Every secret value the world's functions hold (the secret JSON's values).
pub fn world_secrets(world: &MotoWorld) -> Vec<String> {
    let json: serde_json::Value = serde_json::from_str(&world.secrets_json).unwrap();
    let values: Vec<String> = json
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| *name != "polar_client_id" && *name != "smartabase_username")
        .filter_map(|(_, v)| v.as_str().map(str::to_string))
        .collect();
    assert!(values.len() >= 5, "{values:?}");
    values
}

/// Fails if any captured log line holds one of the world's secrets or `seen` (tokens, codes).
pub fn assert_logs_clean(world: &MotoWorld, seen: &[String]) {
    let mut secrets = world_secrets(world);
    secrets.extend(seen.iter().cloned());
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    testkit::logs::assert_clean(&secrets);
}

/// The log lines about `athlete` with this `outcome`.
pub fn outcome_lines(athlete: &str, outcome: &str) -> Vec<serde_json::Value> {
    testkit::logs::lines_where("athlete", athlete)
        .into_iter()
        .filter(|line| line["outcome"] == outcome)
        .collect()
}

/// One run of the web flow, step by step, in one browser.
pub struct WebLink {
    /// Where Polar sent the browser back (path and query), if it did.
    pub callback_path: Option<String>,
    /// The code in it.
    pub code: Option<String>,
    /// The callback's answer (or the authorize answer when it did not redirect).
    pub response: HttpResponse,
}

/// A query parameter of a path-and-query or URL.
pub fn query_param(path_or_url: &str, name: &str) -> Option<String> {
    let url = if path_or_url.starts_with('/') {
        Url::parse(&format!("{PUBLIC_BASE_URL}{path_or_url}"))
    } else {
        Url::parse(path_or_url)
    }
    .unwrap();
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Authorize with the athlete's current link and consent at Polar as `polar_user`, without the callback.
pub async fn consent(world: &MotoWorld, uuid: &str, polar_user: i64) -> (HttpResponse, String) {
    let authorize = world
        .http(HttpRequest::get(world.link_path(uuid)))
        .await
        .unwrap();
    assert_eq!(authorize.status, 302, "{}", authorize.text());
    let callback = world
        .consent_at_polar(&authorize, polar_user)
        .await
        .unwrap();
    (authorize, callback)
}

/// The whole web flow in one browser: link → authorize → consent at Polar → callback (carrying the
/// cookie the authorize answer set).
pub async fn link_on_web(world: &MotoWorld, uuid: &str, polar_user: i64) -> WebLink {
    let authorize = world
        .http(HttpRequest::get(world.link_path(uuid)))
        .await
        .unwrap();
    if authorize.status != 302 {
        return WebLink {
            response: authorize,
            callback_path: None,
            code: None,
        };
    }
    let callback_path = world
        .consent_at_polar(&authorize, polar_user)
        .await
        .unwrap();
    let response = world
        .http(HttpRequest::get(callback_path.clone()).with_cookies_from(&authorize))
        .await
        .unwrap();
    WebLink {
        code: query_param(&callback_path, "code"),
        callback_path: Some(callback_path),
        response,
    }
}

/// A Polar token the way the Smartabase Athlete app gets one: its own OAuth round at Polar for the
/// connector's client. Returns (token, code).
pub async fn app_token<S: Store>(world: &World<S>, polar_user: i64) -> (String, String) {
    world.polar.login(Some(polar_user)).unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let redirect_uri = format!("{PUBLIC_BASE_URL}/polar/callback");
    let consent = http
        .get(world.polar.auth_url())
        .query(&[
            ("response_type", "code"),
            ("client_id", world.polar.client_id()),
            ("redirect_uri", redirect_uri.as_str()),
            ("state", "athlete-app"),
        ])
        .send()
        .await
        .unwrap();
    let location = consent.headers()["location"].to_str().unwrap().to_string();
    let code = query_param(&location, "code").unwrap();
    let grant: serde_json::Value = http
        .post(world.polar.token_url())
        .basic_auth(world.polar.client_id(), Some(world.polar.client_secret()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = grant["access_token"].as_str().unwrap().to_string();
    (token, code)
}

/// The Athlete app leaves `token` (and the Polar user id) in the athlete's `Polar Access Token` profile.
pub fn app_leaves_token<S: Store>(
    world: &World<S>,
    athlete: &Rostered,
    token: &str,
    polar_user: i64,
) {
    leave_in_profile(world, athlete, token, Some(polar_user));
}

/// The Athlete app leaves `token` alone, without the Polar user id it belongs to.
pub fn app_leaves_token_without_user_id<S: Store>(
    world: &World<S>,
    athlete: &Rostered,
    token: &str,
) {
    leave_in_profile(world, athlete, token, None);
}

fn leave_in_profile<S: Store>(
    world: &World<S>,
    athlete: &Rostered,
    token: &str,
    polar_user: Option<i64>,
) {
    let mut pairs = vec![SimPair::new("Access Token", token)];
    if let Some(user) = polar_user {
        pairs.push(SimPair::new("Polar User ID", &user.to_string()));
    }
    world
        .smartabase
        .set_profile(athlete.user_id, POLAR_ACCESS_TOKEN, pairs, None)
        .unwrap();
}

/// The Athlete app registers `token`'s account at Polar itself, with the athlete's UUID as member-id,
/// before it leaves the token: the connector's registration then answers 409 and names nobody.
pub async fn app_registers<S: Store>(world: &World<S>, token: &str, uuid: &str) {
    let registered = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/v3/users", world.polar.api_url()))
        .bearer_auth(token)
        .json(&serde_json::json!({ "member-id": uuid }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 200);
}

/// The athlete as the connector stores them.
pub async fn stored_athlete<S: Store>(world: &World<S>, uuid: &str) -> Option<Athlete> {
    let id = AthleteUuid::parse(uuid).unwrap();
    world.connector.store.get_athlete(&id).await.unwrap()
}

/// The athlete's sealed token, as stored.
pub async fn stored_token(world: &MotoWorld, uuid: &str) -> Option<StoredToken> {
    let id = AthleteUuid::parse(uuid).unwrap();
    world.connector.store.get_token(&id).await.unwrap()
}

/// The athlete's token opened with the connector's key (what the worker would use).
pub async fn opened_token(world: &MotoWorld, uuid: &str) -> Option<String> {
    let id = AthleteUuid::parse(uuid).unwrap();
    let stored = stored_token(world, uuid).await?;
    let token = world.connector.cipher.open(&id, &stored.sealed).unwrap();
    Some(token.expose_secret().to_string())
}

/// Every item of the world's DynamoDB table, read with the plain SDK client.
pub async fn raw_items(world: &MotoWorld) -> Vec<HashMap<String, AttributeValue>> {
    let sdk = testkit::moto::shared().await.sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(&world.config.table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        items.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

/// The items (as text) that contain `needle` anywhere.
pub async fn items_containing(world: &MotoWorld, needle: &str) -> Vec<String> {
    raw_items(world)
        .await
        .iter()
        .map(|item| format!("{item:?}"))
        .filter(|text| text.contains(needle))
        .collect()
}

/// Sort keys of the items whose partition key starts with `prefix` (e.g. `STATE#`).
pub async fn item_keys(world: &MotoWorld, prefix: &str) -> Vec<(String, String)> {
    raw_items(world)
        .await
        .iter()
        .filter_map(|item| {
            let pk = item.get("pk")?.as_s().ok()?;
            let sk = item.get("sk")?.as_s().ok()?;
            pk.starts_with(prefix).then(|| (pk.clone(), sk.clone()))
        })
        .collect()
}

/// The jobs waiting on the sync queue; they stay queued (made visible again).
pub async fn queued_jobs(world: &MotoWorld) -> Vec<SyncJob> {
    let queue = &world.connector.queue;
    let mut received = Vec::new();
    loop {
        let batch = queue.receive(10).await.unwrap();
        if batch.is_empty() {
            break;
        }
        received.extend(batch);
    }
    let ids: Vec<String> = received
        .iter()
        .filter_map(|r| r.message.message_id.clone())
        .collect();
    queue.settle(&received, &ids).await.unwrap();
    received
        .iter()
        .map(|r| SyncJob::from_body(r.message.body.as_deref().unwrap()).unwrap())
        .collect()
}

/// Polar requests with this method whose path starts with `prefix`.
pub fn polar_calls(world: &MotoWorld, method: &str, prefix: &str) -> Vec<RequestLogEntry> {
    world
        .polar
        .requests()
        .into_iter()
        .filter(|r| r.method == method && r.path.starts_with(prefix))
        .collect()
}

/// Polar data calls (anything under `/v3/` except user registration and lookup).
pub fn polar_data_calls(world: &MotoWorld) -> Vec<RequestLogEntry> {
    world
        .polar
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v3/") && !is_user_path(&r.path))
        .collect()
}

fn is_user_path(path: &str) -> bool {
    path == "/v3/users"
        || path
            .strip_prefix("/v3/users/")
            .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()))
}

/// Smartabase calls of one endpoint (e.g. `profileimport`) that name `form`.
pub fn smartabase_calls(world: &MotoWorld, endpoint: &str, form: Option<&str>) -> usize {
    world
        .smartabase
        .requests()
        .iter()
        .filter(|r| r.endpoint.as_deref() == Some(endpoint))
        .filter(|r| form.is_none_or(|f| r.summary.contains(f)))
        .count()
}

/// Smartabase writes (profiles and events) of any kind.
pub fn smartabase_writes(world: &MotoWorld) -> usize {
    world
        .smartabase
        .requests()
        .iter()
        .filter(|r| {
            matches!(
                r.endpoint.as_deref(),
                Some("profileimport" | "eventimport" | "eventsimport")
            )
        })
        .count()
}

/// A profile record of the athlete.
pub fn profile(world: &MotoWorld, athlete: &Rostered, form: &str) -> Option<SimProfile> {
    world.smartabase.profile(athlete.user_id, form)
}

/// A field of a profile record of the athlete.
pub fn profile_value(
    world: &MotoWorld,
    athlete: &Rostered,
    form: &str,
    key: &str,
) -> Option<String> {
    profile(world, athlete, form).and_then(|p| p.value(key).map(str::to_string))
}

/// The world's clock.
pub fn now(world: &MotoWorld) -> DateTime<Utc> {
    world.clock.now()
}

/// The raw revoke secret.
pub fn revoke_secret(world: &MotoWorld) -> String {
    let json: serde_json::Value = serde_json::from_str(&world.secrets_json).unwrap();
    json["revoke_hook_secret"].as_str().unwrap().to_string()
}

/// `POST /polar/revoke` for `uuid`, signed per the contract at `at` with `secret`:
/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
pub fn revoke_request_signed(uuid: &str, at: DateTime<Utc>, secret: &str) -> HttpRequest {
    let body = serde_json::json!({ "athlete_uuid": uuid }).to_string();
    let t = at.timestamp();
    let signature = hmac_hex(secret.as_bytes(), format!("{t}.{body}").as_bytes());
    HttpRequest::post("/polar/revoke", body)
        .header("X-Connector-Signature", format!("t={t},v1={signature}"))
}

/// `POST /polar/revoke` for `uuid`, signed now with the world's revoke secret.
pub fn revoke_request(world: &MotoWorld, uuid: &str) -> HttpRequest {
    revoke_request_signed(uuid, now(world), &revoke_secret(world))
}

/// Revokes `uuid` through the signed revoke hook, as Smartabase's button does, and checks it answered 200.
pub async fn revoke_on_hook(world: &MotoWorld, uuid: &str) {
    let revoked = world.http(revoke_request(world, uuid)).await.unwrap();
    assert_eq!(revoked.status, 200, "{}", revoked.text());
}

/// Rosters `count` athletes, each with a Polar account whose token the Athlete app left in their profile
/// (the next scan links them). Returns the athletes, their Polar users and the tokens and codes.
pub async fn app_linked_roster(
    world: &MotoWorld,
    tag: &str,
    count: usize,
) -> (Vec<Rostered>, Vec<i64>, Vec<String>) {
    let mut athletes = Vec::new();
    let mut users = Vec::new();
    let mut seen = Vec::new();
    for i in 0..count {
        let athlete = roster(world, &format!("{tag}{i}"));
        let polar_user = world.polar_account(0);
        let (token, code) = app_token(world, polar_user).await;
        app_leaves_token(world, &athlete, &token, polar_user);
        athletes.push(athlete);
        users.push(polar_user);
        seen.extend([token, code]);
    }
    (athletes, users, seen)
}
