//! The `/_sim/` control API: the same operations as the handle methods, as JSON over HTTP.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::api::query_map;
use crate::error::SimError;
use crate::model::{
    AccountPatch, ClockAdvance, ClockView, FaultSpec, GenerateRequest, NewAccount, NewRecord,
    ReadyFlag, RecordKind, RecordRevision, SessionRequest, SettingsPatch, WebhookEventRequest,
};
use crate::state::Shared;

type App = State<Arc<Shared>>;

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        (self.status(), Json(json!({ "error": self.to_string() }))).into_response()
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, SimError> {
    serde_json::from_slice(body).map_err(|error| SimError::BadRequest(error.to_string()))
}

/// Like [`parse`], but an empty body means `T::default()`.
fn parse_or_default<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, SimError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse(body)
    }
}

fn answer<T: Serialize>(status: StatusCode, result: Result<T, SimError>) -> Response {
    match result {
        Ok(value) => (status, Json(value)).into_response(),
        Err(error) => error.into_response(),
    }
}

fn kind(text: &str) -> Result<RecordKind, SimError> {
    RecordKind::parse(text).ok_or_else(|| {
        SimError::BadRequest("kind must be exercise, activity, sleep, recharge, cardio_load, alertness or heart_rate".to_owned())
    })
}

/// Routes, to be nested under `/_sim`.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/accounts", get(list_accounts).post(create_account))
        .route("/accounts/{id}", get(get_account).patch(patch_account))
        .route("/accounts/{id}/disconnect", post(disconnect))
        .route("/accounts/{id}/generate", post(generate))
        .route("/accounts/{id}/records", get(list_records).post(add_record))
        .route("/accounts/{id}/records/{kind}/{key}/revise", post(revise))
        .route("/accounts/{id}/records/{kind}/{key}/ready", post(ready))
        .route("/session", get(get_session).post(set_session))
        .route("/clock", get(clock))
        .route("/clock/advance", post(advance_clock))
        .route(
            "/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/requests", get(list_requests).delete(clear_requests))
        .route("/webhook", get(webhook))
        .route("/webhook/deliver", post(deliver))
        .route(
            "/webhook/deliveries",
            get(list_deliveries).delete(clear_deliveries),
        )
        .route("/settings", get(settings).patch(patch_settings))
}

async fn list_accounts(State(app): App) -> Response {
    Json(app.lock().account_views()).into_response()
}

async fn create_account(State(app): App, body: Bytes) -> Response {
    let result = parse_or_default::<NewAccount>(&body)
        .and_then(|request| app.lock().create_account(request));
    answer(StatusCode::CREATED, result)
}

async fn get_account(State(app): App, Path(id): Path<i64>) -> Response {
    let state = app.lock();
    let result = state.account(id).map(|account| state.account_view(account));
    answer(StatusCode::OK, result)
}

async fn patch_account(State(app): App, Path(id): Path<i64>, body: Bytes) -> Response {
    let result = parse::<AccountPatch>(&body).and_then(|patch| app.lock().patch_account(id, patch));
    answer(StatusCode::OK, result)
}

async fn disconnect(State(app): App, Path(id): Path<i64>) -> Response {
    match app.lock().disconnect(id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error.into_response(),
    }
}

async fn generate(State(app): App, Path(id): Path<i64>, body: Bytes) -> Response {
    let result = parse_or_default::<GenerateRequest>(&body)
        .and_then(|request| app.lock().generate(id, &request));
    answer(StatusCode::OK, result)
}

async fn list_records(State(app): App, Path(id): Path<i64>, RawQuery(query): RawQuery) -> Response {
    let wanted = query_map(query.as_deref())
        .ok_or_else(|| SimError::BadRequest("malformed query".to_owned()))
        .and_then(|params| params.get("kind").map(|text| kind(text)).transpose());
    let result = wanted.and_then(|wanted| app.lock().record_views(id, wanted));
    answer(StatusCode::OK, result)
}

async fn add_record(State(app): App, Path(id): Path<i64>, body: Bytes) -> Response {
    let result = parse::<NewRecord>(&body).and_then(|request| app.lock().add_record(id, request));
    answer(StatusCode::CREATED, result)
}

async fn revise(
    State(app): App,
    Path((id, kind_text, key)): Path<(i64, String, String)>,
    body: Bytes,
) -> Response {
    let result = kind(&kind_text).and_then(|kind| {
        parse::<RecordRevision>(&body)
            .and_then(|revision| app.lock().revise_record(id, kind, &key, revision.values))
    });
    answer(StatusCode::OK, result)
}

async fn ready(
    State(app): App,
    Path((id, kind_text, key)): Path<(i64, String, String)>,
    body: Bytes,
) -> Response {
    let result = kind(&kind_text).and_then(|kind| {
        parse::<ReadyFlag>(&body)
            .and_then(|flag| app.lock().set_record_ready(id, kind, &key, flag.ready))
    });
    answer(StatusCode::OK, result)
}

async fn get_session(State(app): App) -> Response {
    Json(SessionRequest {
        polar_user_id: app.lock().session,
    })
    .into_response()
}

async fn set_session(State(app): App, body: Bytes) -> Response {
    let result = parse::<SessionRequest>(&body)
        .and_then(|request| app.lock().set_session(request.polar_user_id));
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error.into_response(),
    }
}

/// The clock as the control API shows it.
pub(crate) fn clock_view(app: &Shared) -> ClockView {
    let state = app.lock();
    ClockView {
        now: state.now(),
        offset_seconds: state.clock_offset().num_seconds(),
    }
}

async fn clock(State(app): App) -> Response {
    Json(clock_view(&app)).into_response()
}

async fn advance_clock(State(app): App, body: Bytes) -> Response {
    let result = parse::<ClockAdvance>(&body)
        .and_then(|advance| app.lock().advance_clock(advance.seconds))
        .map(|()| clock_view(&app));
    answer(StatusCode::OK, result)
}

async fn list_faults(State(app): App) -> Response {
    Json(app.lock().fault_views()).into_response()
}

async fn add_fault(State(app): App, body: Bytes) -> Response {
    let result = parse::<FaultSpec>(&body).and_then(|spec| app.lock().add_fault(spec));
    answer(StatusCode::CREATED, result)
}

async fn clear_faults(State(app): App) -> Response {
    app.lock().clear_faults();
    StatusCode::NO_CONTENT.into_response()
}

async fn list_requests(State(app): App) -> Response {
    Json(app.lock().requests.clone()).into_response()
}

async fn clear_requests(State(app): App) -> Response {
    app.lock().requests.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn webhook(State(app): App) -> Response {
    Json(app.lock().webhook.as_ref().map(|webhook| webhook.view())).into_response()
}

async fn deliver(State(app): App, body: Bytes) -> Response {
    let result =
        parse::<WebhookEventRequest>(&body).and_then(|request| app.lock().deliver_now(request));
    match result {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(error) => error.into_response(),
    }
}

async fn list_deliveries(State(app): App) -> Response {
    Json(app.lock().deliveries.clone()).into_response()
}

async fn clear_deliveries(State(app): App) -> Response {
    app.lock().deliveries.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn settings(State(app): App) -> Response {
    Json(app.lock().settings.clone()).into_response()
}

async fn patch_settings(State(app): App, body: Bytes) -> Response {
    let result = parse::<SettingsPatch>(&body).map(|patch| app.lock().apply_settings(patch));
    answer(StatusCode::OK, result)
}
