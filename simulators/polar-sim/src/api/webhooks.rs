//! Client-credential endpoints: pull notifications and webhook management (one webhook per
//! client; PING handshake on create, URL change and activate; secret shown only on create).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::TimeDelta;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, client_auth};
use crate::model::RecordKind;
use crate::state::Shared;
use crate::webhook::{self, Webhook};

type App = State<Arc<Shared>>;

/// `GET /v3/notifications`: one entry per registered user and transactional type with data
/// uploaded in the window (exercises 30 days, activity 28 days); 204 when there is none.
/// Transactions themselves are not simulated, so the same entries are offered until the data
/// ages out of the window.
pub(crate) async fn notifications(State(app): App, headers: HeaderMap) -> Response {
    let state = app.lock();
    if let Err(error) = client_auth(&state, &headers) {
        return error.into_response();
    }
    let now = state.now();
    let mut available = Vec::new();
    for account in state
        .accounts
        .values()
        .filter(|account| account.registration.is_some())
    {
        for (kind, data_type, transactions, days) in [
            (
                RecordKind::Exercise,
                "EXERCISE",
                "exercise-transactions",
                30,
            ),
            (
                RecordKind::Activity,
                "ACTIVITY_SUMMARY",
                "activity-transactions",
                28,
            ),
        ] {
            let fresh = state
                .served_records(account, kind)
                .iter()
                .any(|(_, record)| record.uploaded_at > now - TimeDelta::days(days));
            if fresh {
                available.push(json!({
                    "user-id": account.polar_user_id,
                    "data-type": data_type,
                    "url": format!(
                        "{}/v3/users/{}/{transactions}",
                        app.base_url, account.polar_user_id
                    ),
                }));
            }
        }
    }
    if available.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        Json(json!({"available-user-data": available})).into_response()
    }
}

#[derive(Debug, Deserialize)]
struct WebhookBody {
    events: Option<Vec<String>>,
    url: Option<String>,
}

fn parse_body(body: &[u8]) -> Result<WebhookBody, ApiError> {
    serde_json::from_slice(body).map_err(|_| {
        ApiError::bad_request("Body must be JSON {\"events\": [...], \"url\": \"...\"}")
    })
}

fn validate(events: Option<&Vec<String>>, url: Option<&String>) -> Result<(), ApiError> {
    if let Some(events) = events
        && !webhook::valid_events(events)
    {
        return Err(ApiError::bad_request(format!(
            "events must be a non-empty list of {}",
            webhook::EVENT_TYPES.join(", ")
        )));
    }
    if let Some(url) = url
        && !webhook::valid_url(url)
    {
        return Err(ApiError::bad_request("url must be an http(s) URL"));
    }
    Ok(())
}

fn conflict() -> Response {
    ApiError::new(
        StatusCode::CONFLICT,
        "CONFLICT",
        "Webhook already exists for the client",
    )
    .into_response()
}

/// `POST /v3/webhooks`: PING first; 201 with the secret (only here); 409 when one exists.
pub(crate) async fn create(State(app): App, headers: HeaderMap, body: Bytes) -> Response {
    let (events, url, id, secret, now) = {
        let mut state = app.lock();
        if let Err(error) = client_auth(&state, &headers) {
            return error.into_response();
        }
        let body = match parse_body(&body) {
            Ok(body) => body,
            Err(error) => return error.into_response(),
        };
        let (Some(events), Some(url)) = (body.events, body.url) else {
            return ApiError::bad_request("events and url are required").into_response();
        };
        if let Err(error) = validate(Some(&events), Some(&url)) {
            return error.into_response();
        }
        if state.webhook.is_some() {
            return conflict();
        }
        let id = state.random_hex(12);
        let secret = state.random_hex(32);
        (events, url, id, secret, state.now())
    };
    if let Err(reason) = webhook::ping(&app.http, &url, &secret, now).await {
        return ApiError::bad_request(format!("Webhook cannot be created: {reason}"))
            .into_response();
    }
    let mut state = app.lock();
    if state.webhook.is_some() {
        return conflict();
    }
    state.webhook = Some(Webhook {
        id: id.clone(),
        events: events.clone(),
        url: url.clone(),
        secret: secret.clone(),
        active: true,
        failing_since: None,
    });
    (
        StatusCode::CREATED,
        Json(json!({"data": {
            "id": id,
            "events": events,
            "url": url,
            "signature_secret_key": secret,
        }})),
    )
        .into_response()
}

/// `GET /v3/webhooks`: `{"data": [{"id","events","url","active"}]}` (no secret).
pub(crate) async fn list(State(app): App, headers: HeaderMap) -> Response {
    let state = app.lock();
    if let Err(error) = client_auth(&state, &headers) {
        return error.into_response();
    }
    let data: Vec<Value> = state
        .webhook
        .iter()
        .map(|webhook| {
            json!({
                "id": webhook.id,
                "events": webhook.events,
                "url": webhook.url,
                "active": webhook.active,
            })
        })
        .collect();
    Json(json!({ "data": data })).into_response()
}

fn not_found() -> Response {
    ApiError::not_found("Webhook not found").into_response()
}

/// `PATCH /v3/webhooks/{id}` with `events` and/or `url` (a new URL is pinged first).
pub(crate) async fn patch(
    State(app): App,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (body, ping_target, now) = {
        let state = app.lock();
        if let Err(error) = client_auth(&state, &headers) {
            return error.into_response();
        }
        let body = match parse_body(&body) {
            Ok(body) => body,
            Err(error) => return error.into_response(),
        };
        if body.events.is_none() && body.url.is_none() {
            return ApiError::bad_request("give events and/or url").into_response();
        }
        if let Err(error) = validate(body.events.as_ref(), body.url.as_ref()) {
            return error.into_response();
        }
        let Some(webhook) = state.webhook.as_ref().filter(|webhook| webhook.id == id) else {
            return not_found();
        };
        let ping_target = body
            .url
            .clone()
            .filter(|url| *url != webhook.url)
            .map(|url| (url, webhook.secret.clone()));
        (body, ping_target, state.now())
    };
    if let Some((url, secret)) = ping_target
        && let Err(reason) = webhook::ping(&app.http, &url, &secret, now).await
    {
        return ApiError::bad_request(format!("Webhook cannot be updated: {reason}"))
            .into_response();
    }
    let mut state = app.lock();
    let Some(webhook) = state.webhook.as_mut().filter(|webhook| webhook.id == id) else {
        return not_found();
    };
    if let Some(events) = body.events {
        webhook.events = events;
    }
    if let Some(url) = body.url {
        webhook.url = url;
    }
    Json(json!({"data": {
        "id": webhook.id,
        "events": webhook.events,
        "url": webhook.url,
    }}))
    .into_response()
}

/// `DELETE /v3/webhooks/{id}`: 204, or 404.
pub(crate) async fn delete(
    State(app): App,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut state = app.lock();
    if let Err(error) = client_auth(&state, &headers) {
        return error.into_response();
    }
    if state
        .webhook
        .as_ref()
        .is_some_and(|webhook| webhook.id == id)
    {
        state.webhook = None;
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found()
    }
}

/// `POST /v3/webhooks/activate`: 200 when the PING succeeds, 400 when not, 204 without webhook.
pub(crate) async fn activate(State(app): App, headers: HeaderMap) -> Response {
    let (url, secret, now) = {
        let state = app.lock();
        if let Err(error) = client_auth(&state, &headers) {
            return error.into_response();
        }
        let Some(webhook) = state.webhook.as_ref() else {
            return StatusCode::NO_CONTENT.into_response();
        };
        (webhook.url.clone(), webhook.secret.clone(), state.now())
    };
    if let Err(reason) = webhook::ping(&app.http, &url, &secret, now).await {
        return ApiError::bad_request(format!("Webhook cannot be activated: {reason}"))
            .into_response();
    }
    let mut state = app.lock();
    match state.webhook.as_mut() {
        Some(webhook) => {
            webhook.active = true;
            webhook.failing_since = None;
            StatusCode::OK.into_response()
        }
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// `POST /v3/webhooks/deactivate`: 200, or 204 without webhook.
pub(crate) async fn deactivate(State(app): App, headers: HeaderMap) -> Response {
    let mut state = app.lock();
    if let Err(error) = client_auth(&state, &headers) {
        return error.into_response();
    }
    match state.webhook.as_mut() {
        Some(webhook) => {
            webhook.active = false;
            StatusCode::OK.into_response()
        }
        None => StatusCode::NO_CONTENT.into_response(),
    }
}
