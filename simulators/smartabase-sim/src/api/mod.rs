//! The simulated API: URL shape, Basic auth, faults, dispatch and the request log of the v1 calls; the
//! v2 session login and v3 form metadata in `session`.

mod events;
mod import;
mod profiles;
mod session;
mod users;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

pub(crate) use session::{form_schema, form_summaries, login_user};
pub use users::USERS_PER_PAGE;

use crate::config::{EmptyResults, SmartabaseSimConfig};
use crate::faults::{Endpoint, FaultKind, UnreadableAnswer, pick_fault};
use crate::state::{RequestRecord, Shared};

/// Marks a response whose connection must be closed without sending it.
#[derive(Clone, Copy)]
pub(crate) struct DropConnection;

/// An answer to a v1 call.
pub(crate) enum Reply {
    Json(StatusCode, Value),
    /// HTTP 200, `Content-Type: application/json`, zero-length body.
    EmptyBody,
    Text(StatusCode, &'static str),
    /// HTTP 200 with this content type and body, as sent (not necessarily valid).
    Raw(&'static str, String),
}

impl Reply {
    pub(crate) fn ok(body: Value) -> Self {
        Reply::Json(StatusCode::OK, body)
    }

    pub(crate) fn bad_request(message: &str) -> Self {
        Reply::Json(StatusCode::BAD_REQUEST, json!({ "message": message }))
    }

    fn status(&self) -> StatusCode {
        match self {
            Reply::Json(status, _) | Reply::Text(status, _) => *status,
            Reply::EmptyBody | Reply::Raw(..) => StatusCode::OK,
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Reply::Json(status, body) => (status, axum::Json(body)).into_response(),
            Reply::EmptyBody => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "",
            )
                .into_response(),
            Reply::Text(status, text) => (status, text).into_response(),
            Reply::Raw(content_type, body) => {
                (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
            }
        }
    }
}

/// HTTP 422 for an unknown top-level key.
pub(crate) fn unprocessable(key: &str) -> Reply {
    Reply::Json(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({ "message": format!("Unrecognized field \"{key}\"") }),
    )
}

/// HTTP 200 carrying a failure state, in the endpoint's answer shape.
pub(crate) fn failure_body(endpoint: Endpoint, message: &str) -> Reply {
    match endpoint {
        Endpoint::EventsImport => Reply::ok(json!({
            "result": {"state": "UNEXPECTED_ERROR", "message": message},
        })),
        Endpoint::DeleteEvent => Reply::ok(json!({"state": "FAILURE", "message": message})),
        _ => Reply::ok(json!({"state": "UNEXPECTED_ERROR", "message": message})),
    }
}

/// What a search answers when nothing matches (see [`EmptyResults`]).
pub(crate) fn empty_results(config: &SmartabaseSimConfig, list_key: &str) -> Reply {
    match config.empty_results {
        EmptyResults::EmptyBody => Reply::EmptyBody,
        EmptyResults::EmptyList => Reply::ok(json!({ list_key: [] })),
    }
}

/// The outcome of one call: an answer, or a connection closed without one.
pub(crate) enum Outcome {
    Answer(Reply),
    Dropped,
}

/// Everything about a call the handlers need besides the shared state.
struct Call<'a> {
    app: &'a str,
    endpoint: &'a str,
    method: &'a Method,
    query: &'a str,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

/// `/{app}/api/v1/{endpoint}`: every simulated API call enters here.
pub(crate) async fn v1_call(
    State(shared): State<Arc<Shared>>,
    Path((app, endpoint)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut record = start_record(&shared, &method, &uri, &headers, &body);
    record.endpoint = Some(endpoint.clone());
    let call = Call {
        app: &app,
        endpoint: &endpoint,
        method: &method,
        query: uri.query().unwrap_or_default(),
        headers: &headers,
        body: &body,
    };
    let outcome = serve(&shared, &call, &mut record).await;
    finish(&shared, record, outcome)
}

/// Any other path outside `/_sim/`: 404, logged like every call.
pub(crate) async fn unknown_path(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let not_found = Reply::Text(StatusCode::NOT_FOUND, "Not Found");
    if uri.path().starts_with("/_sim/") {
        return not_found.into_response();
    }
    let record = start_record(&shared, &method, &uri, &headers, &body);
    finish(&shared, record, Outcome::Answer(not_found))
}

pub(crate) fn start_record(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> RequestRecord {
    RequestRecord {
        at_ms: shared.state().tick(),
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        endpoint: None,
        status: None,
        summary: summarize(body),
        app_id: headers
            .get("x-app-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        fault: None,
    }
}

pub(crate) fn finish(shared: &Shared, mut record: RequestRecord, outcome: Outcome) -> Response {
    let response = match outcome {
        Outcome::Answer(reply) => {
            record.status = Some(reply.status().as_u16());
            let mut response = reply.into_response();
            if record.status == Some(StatusCode::UNAUTHORIZED.as_u16()) {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"Smartabase\""),
                );
            }
            response
        }
        Outcome::Dropped => {
            let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
            response.extensions_mut().insert(DropConnection);
            response
        }
    };
    shared.state().requests.push(record);
    response
}

async fn serve(shared: &Shared, call: &Call<'_>, record: &mut RequestRecord) -> Outcome {
    let config = &shared.config;
    if call.app != config.app_name {
        return Outcome::Answer(Reply::Text(StatusCode::NOT_FOUND, "Not Found"));
    }
    if !authorised(call.headers, config) {
        return Outcome::Answer(Reply::Text(StatusCode::UNAUTHORIZED, "Unauthorized"));
    }
    let Some(endpoint) = Endpoint::from_name(call.endpoint) else {
        return Outcome::Answer(Reply::Text(StatusCode::NOT_FOUND, "Not Found"));
    };
    if *call.method != Method::POST {
        return Outcome::Answer(Reply::Text(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
        ));
    }
    if !asks_for_json(call.query) {
        return Outcome::Answer(Reply::bad_request(
            "the query parameters informat=json&format=json are required",
        ));
    }

    let injected = match inject_fault(shared, endpoint, record).await {
        Ok(injected) => injected,
        Err(outcome) => return outcome,
    };
    let reply = dispatch(shared, endpoint, call.body, injected.fewer_ids);
    injected.outcome(reply)
}

/// What an injected fault leaves for a call that goes on.
#[derive(Default)]
pub(crate) struct Injected {
    /// Event imports store one event fewer than sent.
    fewer_ids: bool,
    /// The call is carried out, then the connection is closed without the answer.
    drop_after: bool,
    /// The call is carried out, then answered with HTTP 200 and a body that does not say what happened.
    garble: Option<UnreadableAnswer>,
}

impl Injected {
    fn outcome(&self, reply: Reply) -> Outcome {
        match self.garble {
            _ if self.drop_after => Outcome::Dropped,
            Some(answer) => Outcome::Answer(unreadable(reply, answer)),
            None => Outcome::Answer(reply),
        }
    }
}

/// Picks and applies the fault of one call (recorded in `record`): `Err` = the call ends here.
async fn inject_fault(
    shared: &Shared,
    endpoint: Endpoint,
    record: &mut RequestRecord,
) -> Result<Injected, Outcome> {
    let fault = {
        let mut state = shared.state();
        let state = &mut *state;
        pick_fault(&mut state.faults, endpoint, &mut state.rng)
    };
    record.fault = fault.as_ref().map(|fault| fault.label().to_owned());
    let mut injected = Injected::default();
    match fault {
        Some(FaultKind::Http500) => {
            return Err(Outcome::Answer(Reply::Text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
            )));
        }
        Some(FaultKind::FailureBody) => {
            return Err(Outcome::Answer(failure_body(
                endpoint,
                "An unexpected error occurred (simulated)",
            )));
        }
        Some(FaultKind::RpcException) => {
            return Err(Outcome::Answer(Reply::ok(json!({
                "__is_rpc_exception__": true,
                "value": {"detailMessage": "Simulated RPC exception"},
            }))));
        }
        Some(FaultKind::DropConnection {
            after_processing: false,
        }) => return Err(Outcome::Dropped),
        Some(FaultKind::DropConnection {
            after_processing: true,
        }) => injected.drop_after = true,
        Some(FaultKind::Delay { ms }) => tokio::time::sleep(Duration::from_millis(ms)).await,
        Some(FaultKind::FewerIds) => injected.fewer_ids = true,
        Some(FaultKind::Unreadable {
            answer,
            after_processing: false,
        }) => {
            let failure = failure_body(endpoint, "An unexpected error occurred (simulated)");
            return Err(Outcome::Answer(unreadable(failure, answer)));
        }
        Some(FaultKind::Unreadable {
            answer,
            after_processing: true,
        }) => injected.garble = Some(answer),
        None => {}
    }
    Ok(injected)
}

/// `reply` turned into an HTTP 200 whose body does not say what happened.
fn unreadable(reply: Reply, answer: UnreadableAnswer) -> Reply {
    let body = match reply {
        Reply::Json(_, body) => body,
        _ => json!({}),
    };
    match answer {
        UnreadableAnswer::EmptyObject => Reply::ok(json!({})),
        UnreadableAnswer::NoState => {
            let mut body = body;
            if let Some(object) = body.as_object_mut() {
                object.remove("state");
                if let Some(result) = object.get_mut("result").and_then(Value::as_object_mut) {
                    result.remove("state");
                }
            }
            Reply::ok(body)
        }
        UnreadableAnswer::Truncated => {
            let text = body.to_string();
            let mut cut = text.len() / 2;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            Reply::Raw("application/json", text[..cut].to_owned())
        }
        UnreadableAnswer::NotJson => Reply::Raw(
            "text/html",
            "<html><body><h1>502 Bad Gateway</h1></body></html>".to_owned(),
        ),
    }
}

fn dispatch(shared: &Shared, endpoint: Endpoint, body: &[u8], fewer_ids: bool) -> Reply {
    if body.is_empty() {
        return Reply::bad_request("a JSON body is required");
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return Reply::bad_request("the body is not valid JSON");
    };
    match endpoint {
        Endpoint::UserSearch => users::user_search(shared, &body),
        Endpoint::UserSynchronise => users::user_synchronise(shared, &body),
        Endpoint::ProfileSearch => profiles::profile_search(shared, &body),
        Endpoint::ProfileImport => profiles::profile_import(shared, &body),
        Endpoint::EventImport => import::event_import(shared, &body, fewer_ids),
        Endpoint::EventsImport => import::events_import(shared, &body, fewer_ids),
        Endpoint::EventSearch => events::event_search(shared, &body),
        Endpoint::Synchronise => events::synchronise(shared, &body),
        Endpoint::DeleteEvent => events::delete_event(shared, &body),
        // Served under their own routes (`session`), never as `/api/v1/{name}`.
        Endpoint::LoginUser | Endpoint::FormSummaries | Endpoint::FormSchema => {
            Reply::Text(StatusCode::NOT_FOUND, "Not Found")
        }
    }
}

/// HTTP Basic auth with the API account's username and password.
pub(crate) fn authorised(headers: &HeaderMap, config: &SmartabaseSimConfig) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(credentials) = String::from_utf8(decoded) else {
        return false;
    };
    credentials.split_once(':') == Some((config.username.as_str(), config.password.as_str()))
}

/// Whether the query carries `informat=json` and `format=json`.
pub(crate) fn asks_for_json(query: &str) -> bool {
    let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(query) else {
        return false;
    };
    let has = |name: &str| {
        pairs
            .iter()
            .any(|(key, value)| key == name && value == "json")
    };
    has("informat") && has("format")
}

/// A short description of a request body for the log: its keys, the forms and user ids it
/// names and how many events it carries. Never values of pairs, which may hold tokens.
fn summarize(body: &[u8]) -> String {
    if body.is_empty() {
        return "empty body".to_owned();
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return format!("invalid JSON ({} bytes)", body.len());
    };
    let Some(object) = value.as_object() else {
        return format!("JSON {} ({} bytes)", json_kind(&value), body.len());
    };
    let mut forms: Vec<String> = Vec::new();
    let mut users: Vec<i64> = Vec::new();
    let mut note = |record: &Value| {
        if let Some(name) = record.get("formName").and_then(Value::as_str)
            && !forms.iter().any(|known| known == name)
        {
            forms.push(name.to_owned());
        }
        match record.get("formNames") {
            Some(Value::String(name)) => forms.push(name.clone()),
            Some(Value::Array(names)) => {
                forms.extend(names.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            _ => {}
        }
        let user = record.get("userId");
        if let Some(id) = user
            .and_then(|user| user.get("userId"))
            .or(user)
            .and_then(wire::id_value)
            && !users.contains(&id)
        {
            users.push(id);
        }
        if let Some(ids) = record.get("userIds").and_then(Value::as_array) {
            users.extend(ids.iter().filter_map(wire::id_value));
        }
    };
    note(&value);
    let events = object.get("events").and_then(Value::as_array);
    for event in events.into_iter().flatten() {
        note(event);
    }
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut summary = format!("keys=[{}]", keys.join(", "));
    if let Some(events) = events {
        summary.push_str(&format!(" events={}", events.len()));
    }
    if !forms.is_empty() {
        summary.push_str(&format!(" forms=[{}]", forms.join(", ")));
    }
    if !users.is_empty() {
        let shown: Vec<String> = users.iter().take(10).map(i64::to_string).collect();
        let more = if users.len() > 10 { ", …" } else { "" };
        summary.push_str(&format!(" users=[{}{more}]", shown.join(", ")));
    }
    summary
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null => "null",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_forms_users_and_counts_but_no_values() {
        let body = json!({"events": [{
            "formName": "Polar Access Token", "userId": {"userId": 72827},
            "rows": [{"row": 0, "pairs": [{"key": "Access Token", "value": "secret-token"}]}],
        }]});
        let summary = summarize(body.to_string().as_bytes());
        assert_eq!(
            summary,
            "keys=[events] events=1 forms=[Polar Access Token] users=[72827]"
        );
    }

    #[test]
    fn query_must_ask_for_json_both_ways() {
        assert!(asks_for_json("informat=json&format=json"));
        assert!(!asks_for_json("format=json"));
        assert!(!asks_for_json("informat=xml&format=json"));
    }
}
