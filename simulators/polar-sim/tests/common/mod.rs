//! Test helpers: a started simulator, a non-redirecting HTTP client, OAuth/registration
//! shortcuts over HTTP, and a webhook receiver.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use chrono::{NaiveDate, TimeDelta, Timelike};
use polar_sim::{NewAccount, PolarSim, PolarSimConfig, PolarSimHandle};
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};

pub const REDIRECT: &str = "http://127.0.0.1:3000/polar/callback";

pub struct Harness {
    pub sim: PolarSimHandle,
    pub http: reqwest::Client,
}

pub async fn start(config: PolarSimConfig) -> Harness {
    let sim = PolarSim::start(config).await.unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Harness { sim, http }
}

pub async fn start_default() -> Harness {
    start(PolarSimConfig::default()).await
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    pub fn basic(&self) -> String {
        let raw = format!("{}:{}", self.sim.client_id(), self.sim.client_secret());
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// Accepts the consent form for `account` (works in every consent mode) → the code.
    pub async fn code_for(&self, account: i64, redirect_uri: Option<&str>) -> String {
        let mut form = vec![
            ("response_type", "code".to_owned()),
            ("client_id", self.sim.client_id().to_owned()),
            ("state", "st".to_owned()),
            ("account", account.to_string()),
            ("decision", "accept".to_owned()),
        ];
        if let Some(uri) = redirect_uri {
            form.push(("redirect_uri", uri.to_owned()));
        }
        let response = self
            .http
            .post(self.url("/oauth2/authorization"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        query_param(&location(&response), "code").expect("code in redirect")
    }

    pub async fn exchange(&self, code: &str, redirect_uri: Option<&str>) -> reqwest::Response {
        let mut form = vec![("grant_type", "authorization_code"), ("code", code)];
        if let Some(uri) = redirect_uri {
            form.push(("redirect_uri", uri));
        }
        self.http
            .post(self.url("/v2/oauth2/token"))
            .header(AUTHORIZATION, self.basic())
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// A working access token for the account.
    pub async fn token_for(&self, account: i64) -> String {
        let code = self.code_for(account, Some(REDIRECT)).await;
        let response = self.exchange(&code, Some(REDIRECT)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn register(&self, token: &str, member_id: &str) -> reqwest::Response {
        self.http
            .post(self.url("/v3/users"))
            .bearer_auth(token)
            .json(&json!({ "member-id": member_id }))
            .send()
            .await
            .unwrap()
    }

    /// A new account (with the given settings), authorised and registered → (id, token).
    pub async fn linked(&self, request: NewAccount) -> (i64, String) {
        let account = self.sim.create_account(request).unwrap();
        let id = account.polar_user_id;
        let token = self.token_for(id).await;
        let response = self.register(&token, &format!("member-{id}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        (id, token)
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        let response = self.get(path, token).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    /// The athlete's local date, after nudging the sim clock away from local midnight so a
    /// test never straddles a date change.
    pub fn safe_local_today(&self, offset_minutes: i32) -> NaiveDate {
        let local = self.sim.now() + TimeDelta::minutes(i64::from(offset_minutes));
        let minute_of_day = local.hour() * 60 + local.minute();
        if minute_of_day >= 23 * 60 + 55 {
            self.sim.advance_clock(15 * 60).unwrap();
        }
        (self.sim.now() + TimeDelta::minutes(i64::from(offset_minutes))).date_naive()
    }
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .expect("Location header")
        .to_str()
        .unwrap()
        .to_owned()
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

pub fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

/// One webhook request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub event: Option<String>,
    pub signature: Option<String>,
    pub body: Bytes,
}

/// A webhook receiver answering `status` (changeable) and recording every request.
pub struct Receiver {
    pub url: String,
    pub status: Arc<AtomicU16>,
    pub received: Arc<Mutex<Vec<Received>>>,
}

#[derive(Clone)]
struct ReceiverState {
    status: Arc<AtomicU16>,
    received: Arc<Mutex<Vec<Received>>>,
}

async fn receive(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    state.received.lock().unwrap().push(Received {
        event: header("polar-webhook-event"),
        signature: header("polar-webhook-signature"),
        body,
    });
    StatusCode::from_u16(state.status.load(Ordering::SeqCst)).unwrap()
}

impl Receiver {
    pub async fn start(status: u16) -> Receiver {
        let status = Arc::new(AtomicU16::new(status));
        let received = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(ReceiverState {
                status: status.clone(),
                received: received.clone(),
            });
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            status,
            received,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
}
