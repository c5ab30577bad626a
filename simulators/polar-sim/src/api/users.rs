//! `/v3/users`: register (200/403/409), get (200/204) and de-register (204, revokes the token).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiError, consents_missing, json_for, status_for, token_account};
use crate::state::{Account, Registration, Shared};
use crate::timefmt;

type App = State<Arc<Shared>>;

/// The kebab-case `user` object.
fn user_json(account: &Account, registration: &Registration) -> Value {
    json!({
        "polar-user-id": account.polar_user_id,
        "member-id": registration.member_id,
        "registration-date": timefmt::utc_millis(registration.registered_at),
        "first-name": account.first_name,
        "last-name": account.last_name,
        "birthdate": account.traits.birthdate.to_string(),
        "gender": account.traits.gender,
        "weight": account.traits.weight,
        "height": account.traits.height,
        "extra-info": [],
    })
}

fn member_id(body: &[u8]) -> Option<String> {
    let document: Value = serde_json::from_slice(body).ok()?;
    document
        .get("member-id")?
        .as_str()
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

/// `POST /v3/users` with `{"member-id": "..."}`.
pub(crate) async fn register(State(app): App, headers: HeaderMap, body: Bytes) -> Response {
    let mut state = app.lock();
    let polar_user_id = match token_account(&state, &headers) {
        Ok(id) => id,
        Err(error) => return error.into_response(),
    };
    let Some(member_id) = member_id(&body) else {
        return ApiError::bad_request("Body must be JSON {\"member-id\": \"...\"}")
            .for_account(polar_user_id)
            .into_response();
    };
    let member_id_taken = state.accounts.values().any(|other| {
        other.polar_user_id != polar_user_id
            && other
                .registration
                .as_ref()
                .is_some_and(|registration| registration.member_id == member_id)
    });
    let now = state.now();
    let Some(account) = state.accounts.get_mut(&polar_user_id) else {
        return ApiError::unauthorized().into_response();
    };
    if !account.consents_accepted {
        return consents_missing()
            .for_account(polar_user_id)
            .into_response();
    }
    if account.registration.is_some() {
        return ApiError::new(
            StatusCode::CONFLICT,
            "CONFLICT",
            "User already registered to partner",
        )
        .for_account(polar_user_id)
        .into_response();
    }
    if member_id_taken {
        return ApiError::new(StatusCode::CONFLICT, "CONFLICT", "Duplicated member-id")
            .for_account(polar_user_id)
            .into_response();
    }
    let registration = Registration {
        member_id,
        registered_at: now,
    };
    let body = user_json(account, &registration);
    account.registration = Some(registration);
    json_for(polar_user_id, body)
}

fn path_user_id(text: &str, caller: i64) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .map_err(|_| ApiError::bad_request("user-id must be an integer").for_account(caller))
}

/// `GET /v3/users/{user-id}`: 200, or 204 when it is not this token's registered user.
pub(crate) async fn get_user(
    State(app): App,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let state = app.lock();
    let polar_user_id = match token_account(&state, &headers) {
        Ok(id) => id,
        Err(error) => return error.into_response(),
    };
    let requested = match path_user_id(&user_id, polar_user_id) {
        Ok(id) => id,
        Err(error) => return error.into_response(),
    };
    let Some(account) = state.accounts.get(&polar_user_id) else {
        return ApiError::unauthorized().into_response();
    };
    if !account.consents_accepted {
        return consents_missing()
            .for_account(polar_user_id)
            .into_response();
    }
    match &account.registration {
        Some(registration) if requested == polar_user_id => {
            json_for(polar_user_id, user_json(account, registration))
        }
        _ => status_for(polar_user_id, StatusCode::NO_CONTENT),
    }
}

/// `DELETE /v3/users/{user-id}`: de-registers and revokes the account's tokens.
pub(crate) async fn delete_user(
    State(app): App,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut state = app.lock();
    let polar_user_id = match token_account(&state, &headers) {
        Ok(id) => id,
        Err(error) => return error.into_response(),
    };
    let requested = match path_user_id(&user_id, polar_user_id) {
        Ok(id) => id,
        Err(error) => return error.into_response(),
    };
    let registered = state
        .accounts
        .get(&polar_user_id)
        .is_some_and(|account| account.registration.is_some());
    if requested != polar_user_id || !registered {
        return ApiError::not_found("User not found")
            .for_account(polar_user_id)
            .into_response();
    }
    if let Some(account) = state.accounts.get_mut(&polar_user_id) {
        account.registration = None;
    }
    state.revoke_tokens(polar_user_id);
    status_for(polar_user_id, StatusCode::NO_CONTENT)
}
