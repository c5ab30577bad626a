//! The endpoints behind the connector's optional forms, with Polar's quirks: cardio load lists every
//! day of a range (`LOAD_STATUS_NOT_AVAILABLE` where there is nothing), SleepWise answers 204 when it
//! has nothing and gives UTC times with an offset, and 24/7 heart rate answers 404 for a day without
//! data while its range endpoint wraps the days as `{"heart_rates": [{date, heart_rate_samples}]}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, TimeDelta};
use serde_json::{Map, Value, json};

use super::{ApiError, data_account, json_for, query_map, status_for};
use crate::data::generator::to_map;
use crate::data::optional;
use crate::model::RecordKind;
use crate::state::{Account, Shared, SimState};
use crate::timefmt;
use crate::webhook::alertness_local_date;

type App = State<Arc<Shared>>;

/// Lists without a range cover this many local dates, today included.
const RECENT_DAYS: i64 = 28;
/// The longest SleepWise and heart-rate range (Polar: 28 days).
const RANGE_DAYS: i64 = 28;
/// The longest cardio-load range, and the most `/period/days/{days}` accepts.
const CARDIO_LOAD_DAYS: i64 = 180;

fn recent(state: &SimState, account: &Account) -> (NaiveDate, NaiveDate) {
    let today = state.local_today(account);
    (today - TimeDelta::days(RECENT_DAYS - 1), today)
}

/// `from` and `to` (both required, inclusive), at most `max_days` apart.
fn required_range(query: Option<&str>, max_days: i64) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let params: HashMap<String, String> =
        query_map(query).ok_or_else(|| ApiError::bad_request("malformed query"))?;
    let date = |name: &str| {
        params
            .get(name)
            .and_then(|text| timefmt::parse_date(text))
            .ok_or_else(|| ApiError::bad_request(format!("{name} must be a date YYYY-MM-DD")))
    };
    let (from, to) = (date("from")?, date("to")?);
    if to < from {
        return Err(ApiError::bad_request("to is before from"));
    }
    if (to - from).num_days() + 1 > max_days {
        return Err(ApiError::bad_request(format!(
            "range is longer than {max_days} days"
        )));
    }
    Ok((from, to))
}

/// Runs `answer` for the account of a user-data call.
fn for_account(
    app: &Shared,
    headers: &HeaderMap,
    answer: impl FnOnce(&SimState, &Account) -> Result<Response, ApiError>,
) -> Response {
    let state = app.lock();
    let account = match data_account(&state, headers) {
        Ok(account) => account,
        Err(error) => return error.into_response(),
    };
    let id = account.polar_user_id;
    answer(&state, account).unwrap_or_else(|error| error.for_account(id).into_response())
}

// ---------------------------------------------------------------------------------------------
// Cardio load

/// One entry per date of `from..=to`: the served record, else Polar's "not available" day.
fn cardio_load_days(state: &SimState, account: &Account, from: NaiveDate, to: NaiveDate) -> Value {
    let days = from
        .iter_days()
        .take_while(|date| *date <= to)
        .map(|date| {
            state
                .served_record(account, RecordKind::CardioLoad, &date.to_string())
                .map_or_else(
                    || Value::Object(to_map(&optional::not_available(date, 0.0))),
                    |record| Value::Object(record.body),
                )
        })
        .collect();
    Value::Array(days)
}

/// `GET /v3/users/cardio-load` (and with a trailing slash): the last 28 days.
pub(crate) async fn list_cardio_load(State(app): App, headers: HeaderMap) -> Response {
    for_account(&app, &headers, |state, account| {
        let (from, to) = recent(state, account);
        Ok(json_for(
            account.polar_user_id,
            cardio_load_days(state, account, from, to),
        ))
    })
}

/// `GET /v3/users/cardio-load/date?from=&to=`: every day of the range.
pub(crate) async fn cardio_load_range(
    State(app): App,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    for_account(&app, &headers, |state, account| {
        let (from, to) = required_range(query.as_deref(), CARDIO_LOAD_DAYS)?;
        Ok(json_for(
            account.polar_user_id,
            cardio_load_days(state, account, from, to),
        ))
    })
}

/// `GET /v3/users/cardio-load/{date}`: that day, as a list of one.
pub(crate) async fn cardio_load_on(
    State(app): App,
    Path(date): Path<String>,
    headers: HeaderMap,
) -> Response {
    for_account(&app, &headers, |state, account| {
        let date = timefmt::parse_date(&date)
            .ok_or_else(|| ApiError::bad_request("Invalid date, use YYYY-MM-DD"))?;
        Ok(json_for(
            account.polar_user_id,
            cardio_load_days(state, account, date, date),
        ))
    })
}

/// `GET /v3/users/cardio-load/period/days/{days}`: 1–180 days counted back from today.
pub(crate) async fn cardio_load_period(
    State(app): App,
    Path(days): Path<String>,
    headers: HeaderMap,
) -> Response {
    for_account(&app, &headers, |state, account| {
        let days = days
            .parse::<i64>()
            .ok()
            .filter(|days| (1..=CARDIO_LOAD_DAYS).contains(days))
            .ok_or_else(|| ApiError::bad_request("days must be within 1..=180"))?;
        let today = state.local_today(account);
        let from = today - TimeDelta::days(days - 1);
        Ok(json_for(
            account.polar_user_id,
            cardio_load_days(state, account, from, today),
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// SleepWise alertness

/// Served alertness periods ending (local) within `from..=to`, by sleep start; 204 when none.
fn alertness_between(
    state: &SimState,
    account: &Account,
    from: NaiveDate,
    to: NaiveDate,
) -> Response {
    let mut periods: Vec<(String, Map<String, Value>)> = state
        .served_records(account, RecordKind::Alertness)
        .into_iter()
        .filter(|(_, record)| {
            alertness_local_date(&record.body).is_some_and(|date| (from..=to).contains(&date))
        })
        .map(|(key, record)| (key, record.body))
        .collect();
    periods.sort_by(|a, b| a.0.cmp(&b.0));
    if periods.is_empty() {
        return status_for(account.polar_user_id, StatusCode::NO_CONTENT);
    }
    let list = periods
        .into_iter()
        .map(|(_, body)| Value::Object(body))
        .collect();
    json_for(account.polar_user_id, Value::Array(list))
}

/// `GET /v3/users/sleepwise/alertness`: the last 28 days.
pub(crate) async fn list_alertness(State(app): App, headers: HeaderMap) -> Response {
    for_account(&app, &headers, |state, account| {
        let (from, to) = recent(state, account);
        Ok(alertness_between(state, account, from, to))
    })
}

/// `GET /v3/users/sleepwise/alertness/date?from=&to=`: at most 28 days.
pub(crate) async fn alertness_range(
    State(app): App,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    for_account(&app, &headers, |state, account| {
        let (from, to) = required_range(query.as_deref(), RANGE_DAYS)?;
        Ok(alertness_between(state, account, from, to))
    })
}

// ---------------------------------------------------------------------------------------------
// 24/7 heart rate

/// `GET /v3/users/continuous-heart-rate/{date}`: the day's object; 404 when there is no data.
pub(crate) async fn heart_rate_on(
    State(app): App,
    Path(date): Path<String>,
    headers: HeaderMap,
) -> Response {
    for_account(&app, &headers, |state, account| {
        let date = timefmt::parse_date(&date)
            .ok_or_else(|| ApiError::bad_request("Invalid date, use YYYY-MM-DD"))?;
        state
            .served_record(account, RecordKind::HeartRate, &date.to_string())
            .map(|record| json_for(account.polar_user_id, Value::Object(record.body)))
            .ok_or_else(|| ApiError::not_found("No data found for the date"))
    })
}

/// `GET /v3/users/continuous-heart-rate?from=&to=` (both required): unlike the single day, the days
/// come wrapped as `{"heart_rates": [{date, heart_rate_samples}]}`.
pub(crate) async fn heart_rate_range(
    State(app): App,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    for_account(&app, &headers, |state, account| {
        let (from, to) = required_range(query.as_deref(), RANGE_DAYS)?;
        let days: Vec<Value> = from
            .iter_days()
            .take_while(|date| *date <= to)
            .filter_map(|date| {
                state.served_record(account, RecordKind::HeartRate, &date.to_string())
            })
            .map(|record| {
                json!({
                    "date": record.body.get("date").cloned().unwrap_or(Value::Null),
                    "heart_rate_samples": record
                        .body
                        .get("heart_rate_samples")
                        .cloned()
                        .unwrap_or(Value::Null),
                })
            })
            .collect();
        Ok(json_for(
            account.polar_user_id,
            json!({ "heart_rates": days }),
        ))
    })
}
