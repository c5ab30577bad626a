//! User-data endpoints: exercises (30-day upload window), daily activity, sleep and Nightly
//! Recharge (28-day date windows), with Polar's status codes for empty and invalid requests.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, TimeDelta};
use serde_json::{Map, Value};

use super::{ApiError, data_account, json_for, query_flags, query_map, status_for};
use crate::data::store::StoredRecord;
use crate::model::RecordKind;
use crate::state::{Account, Shared, SimState};
use crate::timefmt;

/// Exercises are listed by upload time within this window.
const EXERCISE_WINDOW: TimeDelta = TimeDelta::days(30);
/// Activity, sleep and recharge lists cover this many local dates, today included.
const DATE_WINDOW_DAYS: i64 = 28;
/// Dated activity requests may go back this far.
const ACTIVITY_HISTORY_DAYS: i64 = 365;

const EXERCISE_FLAGS: [&str; 3] = ["zones", "samples", "route"];
const ACTIVITY_FLAGS: [&str; 3] = ["steps", "activity_zones", "inactivity_stamps"];

type App = State<Arc<Shared>>;

fn flags_from(query: Option<&str>, names: &[&str]) -> Result<HashMap<String, bool>, ApiError> {
    let params = query_map(query).ok_or_else(|| ApiError::bad_request("malformed query"))?;
    query_flags(&params, names)
}

/// Drops the embedded parts that were not asked for.
fn shape_exercise(body: &Map<String, Value>, flags: &HashMap<String, bool>) -> Value {
    let mut body = body.clone();
    for (flag, field) in [
        ("zones", "heart_rate_zones"),
        ("samples", "samples"),
        ("route", "route"),
    ] {
        if !flags.get(flag).copied().unwrap_or(false) {
            body.remove(field);
        }
    }
    Value::Object(body)
}

/// Keeps `samples` only with the parts asked for (steps, activity_zones, inactivity_stamps).
fn shape_activity(body: &Map<String, Value>, flags: &HashMap<String, bool>) -> Value {
    let mut body = body.clone();
    let wanted: Vec<&str> = ACTIVITY_FLAGS
        .into_iter()
        .filter(|flag| flags.get(*flag).copied().unwrap_or(false))
        .collect();
    match body.remove("samples") {
        Some(Value::Object(samples)) if !wanted.is_empty() => {
            let kept: Map<String, Value> = samples
                .into_iter()
                .filter(|(name, _)| name == "date" || wanted.contains(&name.as_str()))
                .collect();
            body.insert("samples".to_owned(), Value::Object(kept));
        }
        _ => {}
    }
    Value::Object(body)
}

/// Served records of a date-keyed kind whose date is within `from..=to`.
fn dated(
    state: &SimState,
    account: &Account,
    kind: RecordKind,
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<(NaiveDate, StoredRecord)> {
    let mut records: Vec<(NaiveDate, StoredRecord)> = state
        .served_records(account, kind)
        .into_iter()
        .filter_map(|(key, record)| timefmt::parse_date(&key).map(|date| (date, record)))
        .filter(|(date, _)| (from..=to).contains(date))
        .collect();
    records.sort_by_key(|(date, _)| *date);
    records
}

fn window(state: &SimState, account: &Account) -> (NaiveDate, NaiveDate) {
    let today = state.local_today(account);
    (today - TimeDelta::days(DATE_WINDOW_DAYS - 1), today)
}

fn parse_path_date(text: &str, account: i64) -> Result<NaiveDate, ApiError> {
    timefmt::parse_date(text)
        .ok_or_else(|| ApiError::bad_request("Invalid date, use YYYY-MM-DD").for_account(account))
}

/// `GET /v3/exercises`
pub(crate) async fn list_exercises(
    State(app): App,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let flags = match flags_from(query.as_deref(), &EXERCISE_FLAGS) {
        Ok(flags) => flags,
        Err(error) => return error.into_response(),
    };
    let state = app.lock();
    let account = match data_account(&state, &headers) {
        Ok(account) => account,
        Err(error) => return error.into_response(),
    };
    let since = state.now() - EXERCISE_WINDOW;
    let list: Vec<Value> = state
        .served_records(account, RecordKind::Exercise)
        .into_iter()
        .filter(|(_, record)| record.uploaded_at > since)
        .map(|(_, record)| shape_exercise(&record.body, &flags))
        .collect();
    json_for(account.polar_user_id, Value::Array(list))
}

/// `GET /v3/exercises/{id}`
pub(crate) async fn get_exercise(
    State(app): App,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let flags = match flags_from(query.as_deref(), &EXERCISE_FLAGS) {
        Ok(flags) => flags,
        Err(error) => return error.into_response(),
    };
    let state = app.lock();
    let account = match data_account(&state, &headers) {
        Ok(account) => account,
        Err(error) => return error.into_response(),
    };
    let since = state.now() - EXERCISE_WINDOW;
    match state
        .served_record(account, RecordKind::Exercise, &id)
        .filter(|record| record.uploaded_at > since)
    {
        Some(record) => json_for(account.polar_user_id, shape_exercise(&record.body, &flags)),
        None => ApiError::not_found("Exercise not found")
            .for_account(account.polar_user_id)
            .into_response(),
    }
}

/// `GET /v3/users/activities`, `/v3/users/activities/` and either with `?from=&to=`.
pub(crate) async fn list_activities(
    State(app): App,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(params) = query_map(query.as_deref()) else {
        return ApiError::bad_request("malformed query").into_response();
    };
    let flags = match query_flags(&params, &ACTIVITY_FLAGS) {
        Ok(flags) => flags,
        Err(error) => return error.into_response(),
    };
    let state = app.lock();
    let account = match data_account(&state, &headers) {
        Ok(account) => account,
        Err(error) => return error.into_response(),
    };
    let id = account.polar_user_id;
    let range = if params.contains_key("from") || params.contains_key("to") {
        match activity_range(&state, account, &params) {
            Ok(range) => range,
            Err(error) => return error.for_account(id).into_response(),
        }
    } else {
        window(&state, account)
    };
    let list: Vec<Value> = dated(&state, account, RecordKind::Activity, range.0, range.1)
        .into_iter()
        .map(|(_, record)| shape_activity(&record.body, &flags))
        .collect();
    json_for(id, Value::Array(list))
}

/// `from` required, `to` defaults to today; span at most 28 dates (inclusive), `from` at most
/// 365 days back.
fn activity_range(
    state: &SimState,
    account: &Account,
    params: &HashMap<String, String>,
) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let today = state.local_today(account);
    let from = params
        .get("from")
        .and_then(|text| timefmt::parse_date(text))
        .ok_or_else(|| ApiError::bad_request("from must be a date YYYY-MM-DD"))?;
    let to = match params.get("to") {
        Some(text) => timefmt::parse_date(text)
            .ok_or_else(|| ApiError::bad_request("to must be a date YYYY-MM-DD"))?,
        None => today,
    };
    if to < from {
        return Err(ApiError::bad_request("to is before from"));
    }
    if (today - from).num_days() > ACTIVITY_HISTORY_DAYS {
        return Err(ApiError::bad_request("from is older than 365 days"));
    }
    if (to - from).num_days() + 1 > DATE_WINDOW_DAYS {
        return Err(ApiError::bad_request("range is longer than 28 days"));
    }
    Ok((from, to))
}

/// `GET /v3/users/activities/{date}`: 204 when there is no data.
pub(crate) async fn get_activity(
    State(app): App,
    Path(date): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let flags = match flags_from(query.as_deref(), &ACTIVITY_FLAGS) {
        Ok(flags) => flags,
        Err(error) => return error.into_response(),
    };
    let state = app.lock();
    let account = match data_account(&state, &headers) {
        Ok(account) => account,
        Err(error) => return error.into_response(),
    };
    let id = account.polar_user_id;
    let date = match parse_path_date(&date, id) {
        Ok(date) => date,
        Err(error) => return error.into_response(),
    };
    if (state.local_today(account) - date).num_days() > ACTIVITY_HISTORY_DAYS {
        return ApiError::bad_request("date is older than 365 days")
            .for_account(id)
            .into_response();
    }
    match state.served_record(account, RecordKind::Activity, &date.to_string()) {
        Some(record) => json_for(id, shape_activity(&record.body, &flags)),
        None => status_for(id, StatusCode::NO_CONTENT),
    }
}

/// `GET /v3/users/sleep` → `{"nights": [...]}`.
pub(crate) async fn list_sleep(State(app): App, headers: HeaderMap) -> Response {
    list_wrapped(&app, &headers, RecordKind::Sleep, "nights")
}

/// `GET /v3/users/nightly-recharge` → `{"recharges": [...]}`.
pub(crate) async fn list_recharge(State(app): App, headers: HeaderMap) -> Response {
    list_wrapped(&app, &headers, RecordKind::Recharge, "recharges")
}

fn list_wrapped(app: &Shared, headers: &HeaderMap, kind: RecordKind, wrapper: &str) -> Response {
    let state = app.lock();
    let account = match data_account(&state, headers) {
        Ok(account) => account,
        Err(error) => return error.into_response(),
    };
    let (from, to) = window(&state, account);
    let list: Vec<Value> = dated(&state, account, kind, from, to)
        .into_iter()
        .map(|(_, record)| Value::Object(record.body))
        .collect();
    let mut body = Map::new();
    body.insert(wrapper.to_owned(), Value::Array(list));
    json_for(account.polar_user_id, Value::Object(body))
}

/// `GET /v3/users/sleep/{date}`: 404 when there is no data.
pub(crate) async fn get_sleep(
    State(app): App,
    Path(date): Path<String>,
    headers: HeaderMap,
) -> Response {
    get_dated(&app, &headers, RecordKind::Sleep, &date)
}

/// `GET /v3/users/nightly-recharge/{date}`: 404 when there is no data or it is not ready yet.
pub(crate) async fn get_recharge(
    State(app): App,
    Path(date): Path<String>,
    headers: HeaderMap,
) -> Response {
    get_dated(&app, &headers, RecordKind::Recharge, &date)
}

fn get_dated(app: &Shared, headers: &HeaderMap, kind: RecordKind, date: &str) -> Response {
    let state = app.lock();
    let account = match data_account(&state, headers) {
        Ok(account) => account,
        Err(error) => return error.into_response(),
    };
    let id = account.polar_user_id;
    let date = match parse_path_date(date, id) {
        Ok(date) => date,
        Err(error) => return error.into_response(),
    };
    match state.served_record(account, kind, &date.to_string()) {
        Some(record) => json_for(id, Value::Object(record.body)),
        None => ApiError::not_found("No data found for the date")
            .for_account(id)
            .into_response(),
    }
}
