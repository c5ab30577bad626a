//! OAuth 2.0 authorization-code flow: the browser consent page (flow.polar.com) and the token
//! endpoint (polarremote.com), with Polar's traps: exact redirect URIs, 10-minute single-use
//! codes, and a reused code deleting every token of the account.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{acted_for, basic_matches};
use crate::config::ConsentMode;
use crate::state::{CODE_LIFETIME, Shared, SimState};

type App = State<Arc<Shared>>;

/// The only scope.
const SCOPE: &str = "accesslink.read_all";

#[derive(Debug, Default, Deserialize)]
struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    /// Consent form only: chosen account.
    account: Option<String>,
    /// Consent form only: `accept` or `deny`.
    decision: Option<String>,
}

/// A request that passed client and redirect checks.
struct Checked {
    /// Where to redirect (the given URI, else the default).
    target: String,
    /// The redirect_uri as given, which the token request must repeat.
    given_redirect: Option<String>,
    state: Option<String>,
}

/// Minimal HTML escaping for values echoed into the consent page.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{message}</p></body></html>",
        title = escape(title),
        message = escape(message)
    );
    (status, Html(html)).into_response()
}

/// 302 to `target` with the pairs added to its query; 400 page if `target` is not a URL.
fn redirect(target: &str, pairs: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(target) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid redirect URI",
            "The registered redirect URI is not a valid URL.",
        );
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs {
            query.append_pair(name, value);
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

fn redirect_error(target: &str, error: &str, state: Option<&str>) -> Response {
    match state {
        Some(state) => redirect(target, &[("error", error), ("state", state)]),
        None => redirect(target, &[("error", error)]),
    }
}

fn redirect_code(checked: &Checked, code: &str) -> Response {
    match checked.state.as_deref() {
        Some(state) => redirect(&checked.target, &[("code", code), ("state", state)]),
        None => redirect(&checked.target, &[("code", code)]),
    }
}

/// Client id, redirect URI (exact match; an unknown one sends the error to the default
/// redirect), response type and scope.
fn check(sim: &SimState, params: &AuthorizeParams) -> Result<Checked, Box<Response>> {
    if params.client_id.as_deref() != Some(sim.client_id.as_str()) {
        return Err(Box::new(page(
            StatusCode::BAD_REQUEST,
            "Unknown client",
            "The client_id is missing or not registered.",
        )));
    }
    let state = params.state.clone();
    let registered = &sim.settings.redirect_uris;
    let default = registered.first();
    if let Some(given) = &params.redirect_uri
        && !registered.contains(given)
    {
        return Err(Box::new(match default {
            Some(default) => redirect_error(default, "invalid_request", state.as_deref()),
            None => page(
                StatusCode::BAD_REQUEST,
                "Invalid redirect URI",
                "The redirect_uri is not registered for this client.",
            ),
        }));
    }
    let Some(target) = params.redirect_uri.clone().or_else(|| default.cloned()) else {
        return Err(Box::new(page(
            StatusCode::BAD_REQUEST,
            "No redirect URI",
            "The client has no registered redirect URI.",
        )));
    };
    match params.response_type.as_deref() {
        Some("code") => {}
        None => {
            return Err(Box::new(redirect_error(
                &target,
                "invalid_request",
                state.as_deref(),
            )));
        }
        Some(_) => {
            return Err(Box::new(redirect_error(
                &target,
                "unsupported_response_type",
                state.as_deref(),
            )));
        }
    }
    if let Some(scope) = params
        .scope
        .as_deref()
        .filter(|scope| !scope.trim().is_empty())
        && !scope.split_whitespace().all(|part| part == SCOPE)
    {
        return Err(Box::new(redirect_error(
            &target,
            "invalid_scope",
            state.as_deref(),
        )));
    }
    Ok(Checked {
        target,
        given_redirect: params.redirect_uri.clone(),
        state,
    })
}

fn consent_page(sim: &SimState, params: &AuthorizeParams) -> Response {
    let logged_in = sim
        .session
        .and_then(|id| sim.accounts.get(&id))
        .map_or_else(
            || "Not logged in".to_owned(),
            |account| {
                format!(
                    "Logged in as {} {} ({})",
                    account.first_name, account.last_name, account.polar_user_id
                )
            },
        );
    let mut hidden = String::new();
    for (name, value) in [
        ("response_type", &params.response_type),
        ("client_id", &params.client_id),
        ("redirect_uri", &params.redirect_uri),
        ("scope", &params.scope),
        ("state", &params.state),
    ] {
        if let Some(value) = value {
            hidden.push_str(&format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                escape(value)
            ));
        }
    }
    let options: String = sim
        .accounts
        .values()
        .map(|account| {
            let selected = if sim.session == Some(account.polar_user_id) {
                " selected"
            } else {
                ""
            };
            format!(
                "<option value=\"{id}\"{selected}>{} {} ({id})</option>",
                escape(&account.first_name),
                escape(&account.last_name),
                id = account.polar_user_id
            )
        })
        .collect();
    let chooser = if options.is_empty() {
        "<p>No Polar accounts exist yet (create one with POST /_sim/accounts).</p>".to_owned()
    } else {
        format!(
            "<p><label>Account <select name=\"account\">{options}</select></label></p>\
             <button type=\"submit\" name=\"decision\" value=\"accept\">Accept</button> "
        )
    };
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Polar Flow - Authorize</title>\
         </head><body><h1>Polar Flow (simulated)</h1><p id=\"session\">{}</p>\
         <p>The application <b>{}</b> asks to read your Polar data ({SCOPE}).</p>\
         <form method=\"post\" action=\"/oauth2/authorization\">{hidden}{chooser}\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>\
         </body></html>",
        escape(&logged_in),
        escape(params.client_id.as_deref().unwrap_or_default()),
    );
    Html(html).into_response()
}

/// `GET /oauth2/authorization`
pub(crate) async fn authorize(State(app): App, RawQuery(query): RawQuery) -> Response {
    let Ok(params) =
        serde_urlencoded::from_str::<AuthorizeParams>(query.as_deref().unwrap_or_default())
    else {
        return page(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "Malformed query string.",
        );
    };
    let mut sim = app.lock();
    let checked = match check(&sim, &params) {
        Ok(checked) => checked,
        Err(response) => return *response,
    };
    match sim.settings.consent_mode {
        ConsentMode::Manual => consent_page(&sim, &params),
        ConsentMode::AutoDeny => {
            redirect_error(&checked.target, "access_denied", checked.state.as_deref())
        }
        ConsentMode::AutoAccept => match sim.session.filter(|id| sim.accounts.contains_key(id)) {
            Some(account) => {
                let code = sim.issue_code(account, checked.given_redirect.clone());
                acted_for(redirect_code(&checked, &code), account)
            }
            None => page(
                StatusCode::BAD_REQUEST,
                "Not logged in",
                "No Polar account is logged in in this browser (POST /_sim/session).",
            ),
        },
    }
}

/// `POST /oauth2/authorization`: the consent form's Accept/Deny.
pub(crate) async fn decide(State(app): App, body: Bytes) -> Response {
    let Ok(params) = serde_urlencoded::from_bytes::<AuthorizeParams>(&body) else {
        return page(StatusCode::BAD_REQUEST, "Bad request", "Malformed form.");
    };
    let mut sim = app.lock();
    let checked = match check(&sim, &params) {
        Ok(checked) => checked,
        Err(response) => return *response,
    };
    match params.decision.as_deref() {
        Some("accept") => {
            let account = params
                .account
                .as_deref()
                .and_then(|text| text.parse::<i64>().ok())
                .filter(|id| sim.accounts.contains_key(id));
            let Some(account) = account else {
                return page(
                    StatusCode::BAD_REQUEST,
                    "Unknown account",
                    "Choose an existing Polar account.",
                );
            };
            // Choosing an account logs the browser in as it.
            sim.session = Some(account);
            let code = sim.issue_code(account, checked.given_redirect.clone());
            acted_for(redirect_code(&checked, &code), account)
        }
        Some("deny") => redirect_error(&checked.target, "access_denied", checked.state.as_deref()),
        _ => page(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "decision must be accept or deny.",
        ),
    }
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    let mut response = (status, Json(json!({ "error": error }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"polar\""),
        );
    }
    response
}

#[derive(Debug, Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
}

/// `POST /v2/oauth2/token` (HTTP Basic client auth, form body).
pub(crate) async fn token(State(app): App, headers: HeaderMap, body: Bytes) -> Response {
    let mut sim = app.lock();
    if !basic_matches(&sim, &headers) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let Ok(form) = serde_urlencoded::from_bytes::<TokenForm>(&body) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    match form.grant_type.as_deref() {
        Some("authorization_code") => {}
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
        Some(_) => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
    let Some(code) = form.code.filter(|code| !code.is_empty()) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    let now = sim.now();
    let default_redirect = sim.settings.redirect_uris.first().cloned();
    let Some(record) = sim.code_mut(&code) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let account = record.polar_user_id;
    if record.used {
        // Per Polar's docs: reusing a code deletes every token issued for the account.
        sim.revoke_tokens(account);
        return acted_for(
            oauth_error(StatusCode::BAD_REQUEST, "invalid_grant"),
            account,
        );
    }
    if now - record.issued_at > CODE_LIFETIME {
        return acted_for(
            oauth_error(StatusCode::BAD_REQUEST, "invalid_grant"),
            account,
        );
    }
    let redirect_ok = match (&record.redirect_uri, &form.redirect_uri) {
        (Some(given_at_authorize), Some(given_now)) => given_at_authorize == given_now,
        (Some(_), None) => false,
        (None, Some(given_now)) => default_redirect.as_ref() == Some(given_now),
        (None, None) => true,
    };
    if !redirect_ok {
        return acted_for(
            oauth_error(StatusCode::BAD_REQUEST, "invalid_grant"),
            account,
        );
    }
    record.used = true;
    let access_token = sim.issue_token(account);
    let mut response = Json(json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": sim.settings.token_expires_in,
        "x_user_id": account,
    }))
    .into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    acted_for(response, account)
}
