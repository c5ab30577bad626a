//! Polar's HTTP surface: OAuth, users, data, notifications and webhooks; shared error body and
//! the two authentication modes (bearer user token, HTTP Basic client credentials).

pub(crate) mod data;
pub(crate) mod oauth;
pub(crate) mod optional;
pub(crate) mod users;
pub(crate) mod webhooks;

use std::collections::HashMap;

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rand::RngExt;
use serde_json::json;

use crate::state::{Account, SimState};
use crate::timefmt;

/// Response extension naming the account a request acted for (read by the request log).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActedFor(pub i64);

/// Tags a response with the account it acted for.
pub(crate) fn acted_for(mut response: Response, polar_user_id: i64) -> Response {
    response.extensions_mut().insert(ActedFor(polar_user_id));
    response
}

/// A 200 JSON answer for an account.
pub(crate) fn json_for(polar_user_id: i64, body: serde_json::Value) -> Response {
    acted_for(Json(body).into_response(), polar_user_id)
}

/// An empty answer (204 and friends) for an account.
pub(crate) fn status_for(polar_user_id: i64, status: StatusCode) -> Response {
    acted_for(status.into_response(), polar_user_id)
}

/// Polar's API error: `{"timestamp","status","errorType","message","corrId"}`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    status: StatusCode,
    error_type: &'static str,
    message: String,
    account: Option<i64>,
}

impl ApiError {
    pub fn new(status: StatusCode, error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_type,
            message: message.into(),
            account: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "Full authentication is required to access this resource",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    /// Tags the error with the account it concerns.
    pub fn for_account(mut self, polar_user_id: i64) -> Self {
        self.account = Some(polar_user_id);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "timestamp": timefmt::utc_millis(chrono::Utc::now()),
            "status": self.status.as_u16(),
            "errorType": self.error_type,
            "message": self.message,
            "corrId": correlation_id(),
        });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        match self.account {
            Some(id) => acted_for(response, id),
            None => response,
        }
    }
}

/// A random UUID-shaped correlation id.
pub(crate) fn correlation_id() -> String {
    let mut rng = rand::rng();
    let digits: String = (0..32)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        digits.get(0..8).unwrap_or_default(),
        digits.get(8..12).unwrap_or_default(),
        digits.get(12..16).unwrap_or_default(),
        digits.get(16..20).unwrap_or_default(),
        digits.get(20..32).unwrap_or_default()
    )
}

/// The credentials after `scheme ` in the Authorization header.
fn credentials<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (given_scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    (given_scheme.eq_ignore_ascii_case(scheme) && !rest.is_empty()).then_some(rest)
}

/// The account of a live bearer token, else 401.
pub(crate) fn token_account(state: &SimState, headers: &HeaderMap) -> Result<i64, ApiError> {
    credentials(headers, "Bearer")
        .and_then(|token| state.token_account(token))
        .ok_or_else(ApiError::unauthorized)
}

/// The account for a user-data call: live token (401), consents accepted (403) and registered
/// to the client. Calls with the token of an account that is not registered yet answer 403,
/// like consents: Polar does not document this case and 403 is what its clients handle.
pub(crate) fn data_account<'a>(
    state: &'a SimState,
    headers: &HeaderMap,
) -> Result<&'a Account, ApiError> {
    let polar_user_id = token_account(state, headers)?;
    let account = state
        .accounts
        .get(&polar_user_id)
        .ok_or_else(ApiError::unauthorized)?;
    if !account.consents_accepted {
        return Err(consents_missing().for_account(polar_user_id));
    }
    if account.registration.is_none() {
        return Err(
            ApiError::forbidden("User is not registered to this client").for_account(polar_user_id)
        );
    }
    Ok(account)
}

pub(crate) fn consents_missing() -> ApiError {
    ApiError::forbidden("User has not accepted all mandatory consents")
}

/// HTTP Basic client credentials, else 401.
pub(crate) fn client_auth(state: &SimState, headers: &HeaderMap) -> Result<(), ApiError> {
    if basic_matches(state, headers) {
        Ok(())
    } else {
        let mut error = ApiError::unauthorized();
        error.message = "Bad client credentials".to_owned();
        Err(error)
    }
}

/// Whether the Authorization header carries this client's id and secret.
pub(crate) fn basic_matches(state: &SimState, headers: &HeaderMap) -> bool {
    let Some(encoded) = credentials(headers, "Basic") else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return false;
    };
    let Ok(text) = String::from_utf8(decoded) else {
        return false;
    };
    text.split_once(':')
        .is_some_and(|(id, secret)| id == state.client_id && secret == state.client_secret)
}

/// Query parameters as a map (last value wins); `None` when the query does not parse.
pub(crate) fn query_map(query: Option<&str>) -> Option<HashMap<String, String>> {
    match query {
        None => Some(HashMap::new()),
        Some(text) => serde_urlencoded::from_str::<Vec<(String, String)>>(text)
            .ok()
            .map(|pairs| pairs.into_iter().collect()),
    }
}

/// Boolean query flags (`true`/`false`); 400 on any other value.
pub(crate) fn query_flags(
    params: &HashMap<String, String>,
    names: &[&str],
) -> Result<HashMap<String, bool>, ApiError> {
    let mut flags = HashMap::new();
    for name in names {
        let value = match params.get(*name).map(|value| value.to_ascii_lowercase()) {
            None => false,
            Some(value) if value == "true" => true,
            Some(value) if value == "false" => false,
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "query parameter {name} must be true or false"
                )));
            }
        };
        flags.insert((*name).to_owned(), value);
    }
    Ok(flags)
}
