//! Property tests of the three HTTP functions on API Gateway HTTP API (payload 2.0) events made of
//! anything: any method and path, query strings in both of API Gateway's forms (raw and parsed, which need
//! not agree), any headers (signature headers with anything in them), and bodies as text, as valid base64
//! and as base64 that is not. Some requests carry a correct signature or link over a random body or
//! athlete, so the code past the checks is reached too.
//!
//! Each event goes to `oauth-callback`, `revoke-hook` and `polar-webhook` alike (API Gateway routes by
//! path; a function must cope with any). Whatever comes in: no panic, no `Err` (which API Gateway would
//! turn into an opaque 500), a status the contract allows, a well-formed body, and nothing from the request
//! reflected into the response.

mod sync_support;

use base64::Engine as _;
use chrono::Duration;
use lambda_http::{Body, Response};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};
use shared::clock::Clock as _;
use shared::crypto::{hmac_hex, revoke_signature_header};
use shared::ids::AthleteUuid;
use shared::testing::MemoryStore;
use testkit::world::{World, WorldOptions};

/// Put into queries, headers and bodies; a response must never show it.
const MARKER: &str = "reflected-5ecre7-9d2f41b7";
const WEBHOOK_SECRET: &str = "security-webhook-secret-0123";

/// Text an attacker would try.
fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(MARKER.to_string()),
        Just(format!("<script>{MARKER}</script>")),
        Just(format!("\"'><img src=x onerror={MARKER}>")),
        Just("%00%ff%zz%".to_string()),
        Just("../../etc/passwd".to_string()),
        Just("9".repeat(30)),
        Just("-9223372036854775808".to_string()),
        Just("t=-9223372036854775808,v1=00".to_string()),
        Just("\u{0}\u{202e}\u{feff}".to_string()),
        "\\PC{0,30}",
        "[ -~]{0,40}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "/polar/authorize", "/polar/callback", "/polar/revoke", "/polar/webhook",
            "/prod/polar/authorize", "/polar/revoke/", "/", "",
        ]).prop_map(str::to_string),
        2 => prop::collection::vec("[a-zA-Z0-9._~!$&'()*+,;=:@-]{0,12}", 0..5)
            .prop_map(|segments| format!("/{}", segments.join("/"))),
        // As API Gateway passes them: percent-encoded; and rarely raw.
        2 => nasty().prop_map(|s| format!("/polar/{}", percent_encode(&s))),
        1 => nasty().prop_map(|s| format!("/polar/{s}")),
    ]
}

fn query_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            prop_oneof![
                prop::sample::select(vec!["athlete", "exp", "sig", "code", "state", "error"])
                    .prop_map(str::to_string),
                "[a-z]{1,8}",
            ],
            nasty(),
        ),
        0..6,
    )
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The raw query string of `pairs`, sometimes percent-encoded properly, sometimes not.
fn raw_query(pairs: &[(String, String)], encode: bool) -> String {
    if encode {
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    } else {
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }
}

fn header_map() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            prop_oneof![
                8 => prop::sample::select(vec![
                    "x-connector-signature",
                    "polar-webhook-signature",
                    "polar-webhook-event",
                    "content-type",
                    "cookie",
                    "content-length",
                    "transfer-encoding",
                ])
                .prop_map(str::to_string),
                4 => "[a-z-]{1,16}",
                // Rarely: API Gateway routes by `Host`, so a bad one never reaches a function.
                1 => Just("host".to_string()),
            ],
            // HTTP carries no control characters in headers (lambda_http refuses those events anyway).
            prop_oneof![
                3 => "[ -~]{0,40}",
                1 => nasty(),
            ],
        ),
        0..6,
    )
}

/// How the body arrives.
#[derive(Debug, Clone)]
enum RawBody {
    Absent,
    Text(String),
    Base64(Vec<u8>),
    BrokenBase64(String),
}

fn raw_body() -> impl Strategy<Value = RawBody> {
    prop_oneof![
        Just(RawBody::Absent),
        nasty().prop_map(RawBody::Text),
        Just(RawBody::Text(format!("{{\"athlete_uuid\": \"{MARKER}\"}}"))),
        Just(RawBody::Text(
            json!({"event": "EXERCISE", "user_id": 1, "entity_id": MARKER}).to_string()
        )),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(RawBody::Base64),
        nasty().prop_map(RawBody::BrokenBase64),
    ]
}

/// What signs the request, if anything.
#[derive(Debug, Clone, Copy)]
enum Signing {
    None,
    /// A correct `X-Connector-Signature` over the body, at the world's now.
    Revoke,
    /// A correct `Polar-Webhook-Signature` over the body.
    Webhook,
    /// A correct link for a random athlete and expiry in the query (replacing `athlete`/`exp`/`sig`).
    Link(i64),
}

fn signing() -> impl Strategy<Value = Signing> {
    prop_oneof![
        3 => Just(Signing::None),
        1 => Just(Signing::Revoke),
        1 => Just(Signing::Webhook),
        1 => (-100_000i64..10_000_000).prop_map(Signing::Link),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    method: String,
    path: String,
    pairs: Vec<(String, String)>,
    encode_query: bool,
    parsed_pairs: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: RawBody,
    signing: Signing,
    athlete: String,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![
            3 => prop::sample::select(vec!["GET", "POST"]).prop_map(str::to_string),
            1 => prop::sample::select(vec!["PUT", "DELETE", "OPTIONS", "HEAD", "PATCH", "get"]).prop_map(str::to_string),
        ],
        path(),
        query_pairs(),
        prop::bool::weighted(0.9),
        prop_oneof![Just(None), query_pairs().prop_map(Some)],
        header_map(),
        raw_body(),
        signing(),
        prop_oneof![Just(MARKER.to_string()), "[a-zA-Z0-9._-]{1,20}"],
    )
        .prop_map(
            |(method, path, pairs, encode_query, parsed, headers, body, signing, athlete)| Case {
                parsed_pairs: parsed.unwrap_or_else(|| pairs.clone()),
                method,
                path,
                pairs,
                encode_query,
                headers,
                body,
                signing,
                athlete,
            },
        )
}

impl Case {
    /// The API Gateway v2 event, with the signature this case asks for.
    fn event(&self, world: &World<MemoryStore>) -> String {
        let body_bytes: Vec<u8> = match &self.body {
            RawBody::Absent => Vec::new(),
            RawBody::Text(t) | RawBody::BrokenBase64(t) => t.clone().into_bytes(),
            RawBody::Base64(b) => b.clone(),
        };
        let mut pairs = self.pairs.clone();
        let mut parsed = self.parsed_pairs.clone();
        let mut headers: Map<String, Value> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect();
        let (mut method, mut path) = (self.method.clone(), self.path.clone());
        let mut route = |m: &str, p: &str| {
            method = m.to_string();
            path = p.to_string();
        };
        match self.signing {
            Signing::None => {}
            Signing::Revoke => {
                route("POST", "/polar/revoke");
                let secret = &world.connector.settings.revoke_hook_secret;
                headers.insert(
                    "x-connector-signature".into(),
                    revoke_signature_header(secret, &body_bytes, world.clock.now()).into(),
                );
            }
            Signing::Webhook => {
                route("POST", "/polar/webhook");
                headers.insert(
                    "polar-webhook-signature".into(),
                    hmac_hex(WEBHOOK_SECRET.as_bytes(), &body_bytes).into(),
                );
            }
            Signing::Link(valid_for) => {
                route("GET", "/polar/authorize");
                if let Ok(athlete) = AthleteUuid::parse(self.athlete.clone()) {
                    let link = world
                        .connector
                        .signer
                        .sign(&athlete, world.clock.now() + Duration::seconds(valid_for));
                    let signed = [
                        ("athlete".to_string(), athlete.as_str().to_string()),
                        ("exp".to_string(), link.expires.to_string()),
                        ("sig".to_string(), link.signature),
                    ];
                    pairs.retain(|(k, _)| !matches!(k.as_str(), "athlete" | "exp" | "sig"));
                    pairs.extend(signed.iter().cloned());
                    parsed = pairs.clone();
                }
            }
        }
        let parsed_map: Map<String, Value> = parsed
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect();
        let (body, encoded) = match &self.body {
            RawBody::Absent => (Value::Null, false),
            RawBody::Text(t) => (Value::from(t.clone()), false),
            RawBody::Base64(b) => (
                Value::from(base64::engine::general_purpose::STANDARD.encode(b)),
                true,
            ),
            RawBody::BrokenBase64(t) => (Value::from(t.clone()), true),
        };
        json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": raw_query(&pairs, self.encode_query),
            "queryStringParameters": parsed_map,
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012", "apiId": "local", "domainName": "localhost",
                "domainPrefix": "localhost",
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": MARKER},
                "requestId": "id", "routeKey": "$default", "stage": "$default",
                "time": "27/Nov/2026:12:00:00 +0000", "timeEpoch": 1_800_000_000_000_u64
            },
            "body": body,
            "isBase64Encoded": encoded
        })
        .to_string()
    }
}

/// Status, content type and body of a response.
fn parts(response: Response<Body>) -> (u16, String, Vec<u8>) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match response.into_body() {
        Body::Text(t) => t.into_bytes(),
        Body::Binary(b) => b,
        _ => Vec::new(),
    };
    (status, content_type, body)
}

#[test]
fn every_http_function_answers_any_event_with_a_contract_status_and_reflects_nothing() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let world = runtime.block_on(async {
        let world = World::in_memory(WorldOptions {
            webhook_secret: Some(WEBHOOK_SECRET.into()),
            ..WorldOptions::default()
        })
        .await
        .unwrap();
        // One linked athlete, so a signed webhook or revoke for a real Polar user reaches the store.
        sync_support::link_athletes(&world, "security", &[0]).await;
        world
    });
    let counts = std::cell::RefCell::new([0usize; 4]);
    let mut runner = TestRunner::new(Config {
        cases: 1024,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&case(), |case| {
            let event = case.event(&world);
            // An event lambda_http cannot read never reaches a function: the runtime answers it. lambda_http
            // panics (`expect`) on two kinds: `isBase64Encoded` with a body that is not base64 (documented
            // by aws_lambda_events; API Gateway never sends one) and a raw path, query or `Host` that makes
            // no valid URI (e.g. a raw `"` a client did not encode). lambda_runtime's panic layer turns both
            // into an invocation error (API Gateway answers 500) before any connector code runs.
            let readable =
                std::panic::catch_unwind(|| lambda_http::request::from_str(&event).is_ok()).ok();
            if readable != Some(true) {
                let sent: Value = serde_json::from_str(&event).unwrap();
                let text = |v: &Value| v.as_str().unwrap_or("").to_string();
                // API Gateway routes by `Host`, so it always holds the API's domain; here it may not.
                let host = sent["headers"]["host"].as_str().unwrap_or("localhost");
                let (path, query) = (text(&sent["rawPath"]), text(&sent["rawQueryString"]));
                // lambda_http reads them with both `url` and `http`.
                let not_a_uri = url::Url::parse(&format!("https://{host}{path}")).is_err()
                    || lambda_http::http::Uri::try_from(format!("https://{host}{path}?{query}"))
                        .is_err();
                prop_assert!(
                    readable == Some(false)
                        || not_a_uri
                        || matches!(case.body, RawBody::BrokenBase64(_)),
                    "lambda_http panicked on an event with a valid URI and body"
                );
                counts.borrow_mut()[0] += 1;
                return Ok(());
            }
            let request = || lambda_http::request::from_str(&event).unwrap();
            runtime.block_on(async {
                let (status, content_type, body) = parts(
                    oauth_callback::handle(&world.connector, request())
                        .await
                        .unwrap(),
                );
                prop_assert!(
                    [200, 302, 400, 403, 404, 500, 503].contains(&status),
                    "oauth-callback answered {status}"
                );
                if status == 302 {
                    counts.borrow_mut()[1] += 1;
                } else {
                    prop_assert!(content_type.starts_with("text/html"), "{content_type}");
                }
                let text = String::from_utf8_lossy(&body);
                prop_assert!(
                    !text.contains(MARKER),
                    "oauth-callback reflects input: {text}"
                );

                for (name, response) in [
                    (
                        "revoke-hook",
                        revoke_hook::handle(&world.connector, request()).await,
                    ),
                    (
                        "polar-webhook",
                        polar_webhook::handle(world.connector.webhook_ports(), request()).await,
                    ),
                ] {
                    let (status, content_type, body) = parts(response.unwrap());
                    prop_assert!(
                        [200, 400, 401, 404, 503].contains(&status),
                        "{name} answered {status}"
                    );
                    prop_assert_eq!(content_type.as_str(), "application/json");
                    let json: Value = serde_json::from_slice(&body).map_err(|e| {
                        TestCaseError::fail(format!("{name}: body is not JSON: {e}"))
                    })?;
                    prop_assert!(json.is_object(), "{name}: {json}");
                    prop_assert!(
                        !json.to_string().contains(MARKER),
                        "{name} reflects input: {json}"
                    );
                    // Past the signature check: a revoke read (200, 400 or the unknown athlete's 404), a
                    // webhook accepted.
                    let past = match name {
                        "revoke-hook" => {
                            status == 200 || status == 400 || json["error"] == "unknown athlete"
                        }
                        _ => status == 200,
                    };
                    if past {
                        counts.borrow_mut()[if name == "revoke-hook" { 2 } else { 3 }] += 1;
                    }
                }
                Ok(())
            })
        })
        .unwrap();
    let counts = counts.into_inner();
    println!(
        "{} events lambda_http refused; past the checks: {} authorize redirects, {} signed revokes read, {} webhooks accepted",
        counts[0], counts[1], counts[2], counts[3]
    );
    assert!(
        counts[1] > 10 && counts[2] > 10 && counts[3] > 10,
        "signed requests must get past the checks: {counts:?}"
    );
}
