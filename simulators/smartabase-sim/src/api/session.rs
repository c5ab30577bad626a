//! The v2 session login and the v3 form-metadata calls (reference §1.3, §1.6), built from the site's
//! configured forms. A session token comes back twice (the `session-header` header and a `JSESSIONID`
//! cookie); v3 calls need one of them, Basic auth alone is refused; summaries are keyed by form type;
//! a form's fields hang in a tree of pages and (nested) field sets.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::{Outcome, Reply, asks_for_json, authorised, finish, inject_fault, start_record};
use crate::config::{FieldKind, FormDefinition, FormKind, SmartabaseSimConfig};
use crate::faults::Endpoint;
use crate::state::{RequestRecord, Shared};

/// Form ids are this plus the form's position in the site's configuration.
const FORM_ID_BASE: i64 = 5_101;
/// The header carrying the session token, both ways.
const SESSION_HEADER: &str = "session-header";
/// The cookie carrying the same token.
const SESSION_COOKIE: &str = "JSESSIONID";

/// The permissions the simulated API account holds (reference §1.3 recording).
const PERMISSIONS: [&str; 4] = [
    "Enter Data",
    "Import Data",
    "Import Profile Data",
    "Account Read",
];

/// The summaries key (and `{type}` path segment) of a form kind.
fn type_key(kind: FormKind) -> &'static str {
    match kind {
        FormKind::Event => "event",
        FormKind::Profile => "profile",
    }
}

/// `POST /{app}/api/v2/user/loginUser?informat=json&format=json`.
pub(crate) async fn login_user(
    State(shared): State<Arc<Shared>>,
    Path(app): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut record = start_record(&shared, &method, &uri, &headers, &body);
    record.endpoint = Some(Endpoint::LoginUser.name().to_owned());
    let mut token = None;
    let request = Request {
        app: &app,
        method: &method,
        query: uri.query().unwrap_or_default(),
        headers: &headers,
    };
    let outcome = login(&shared, &request, &body, &mut record, &mut token).await;
    let mut response = finish(&shared, record, outcome);
    if let Some(token) = token {
        let cookie = format!("{SESSION_COOKIE}={token}; Path=/; Secure; HttpOnly");
        for (name, value) in [
            (SESSION_HEADER, token),
            (header::SET_COOKIE.as_str(), cookie),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
}

/// The parts of a request the checks need.
struct Request<'a> {
    app: &'a str,
    method: &'a Method,
    query: &'a str,
    headers: &'a HeaderMap,
}

async fn login(
    shared: &Shared,
    request: &Request<'_>,
    body: &[u8],
    record: &mut RequestRecord,
    token: &mut Option<String>,
) -> Outcome {
    let config = &shared.config;
    if request.app != config.app_name {
        return Outcome::Answer(Reply::Text(StatusCode::NOT_FOUND, "Not Found"));
    }
    if *request.method != Method::POST {
        return Outcome::Answer(Reply::Text(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
        ));
    }
    if !asks_for_json(request.query) {
        return Outcome::Answer(Reply::bad_request(
            "the query parameters informat=json&format=json are required",
        ));
    }
    let injected = match inject_fault(shared, Endpoint::LoginUser, record).await {
        Ok(injected) => injected,
        Err(outcome) => return outcome,
    };
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return Outcome::Answer(Reply::bad_request("the body is not valid JSON"));
    };
    let text = |key: &str| body.get(key).and_then(Value::as_str);
    // The official flow carries the credentials in the body; Basic auth, which the clients add, must
    // agree when it is sent.
    let body_matches = text("username") == Some(config.username.as_str())
        && text("password") == Some(config.password.as_str());
    let basic_agrees =
        !request.headers.contains_key(header::AUTHORIZATION) || authorised(request.headers, config);
    if !(body_matches && basic_agrees) {
        return Outcome::Answer(Reply::Text(StatusCode::UNAUTHORIZED, "Unauthorized"));
    }
    let app_name = body
        .get("loginProperties")
        .and_then(|properties| properties.get("appName"))
        .and_then(Value::as_str);
    if app_name != Some(config.app_name.as_str()) {
        // A login the server cannot place fails as an RPC exception with HTTP 200 (reference §1.3).
        return injected.outcome(Reply::ok(json!({
            "__is_rpc_exception__": true,
            "value": {"detailMessage": format!("Unknown application: {}", app_name.unwrap_or(""))},
        })));
    }
    let issued = shared.state().open_session();
    *token = Some(issued);
    injected.outcome(Reply::ok(json!({
        "isAthlete": false,
        "isCoach": true,
        "isAdmin": false,
        "user": {
            "id": config.api_user_id,
            "username": config.username,
            "firstName": "Polar",
            "lastName": "Connector",
            "uuid": null,
            "active": true,
        },
        "applicationId": 1044,
        "permissions": PERMISSIONS,
    })))
}

/// `GET /{app}/api/v3/forms/summaries`.
pub(crate) async fn form_summaries(
    State(shared): State<Arc<Shared>>,
    Path(app): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = Call {
        app: &app,
        method: &method,
        uri: &uri,
        headers: &headers,
        body: &body,
    };
    session_call(&shared, &call, Endpoint::FormSummaries, || {
        summaries(&shared.config)
    })
    .await
}

/// `GET /{app}/api/v3/forms/{type}/{id}`.
pub(crate) async fn form_schema(
    State(shared): State<Arc<Shared>>,
    Path((app, form_type, id)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = Call {
        app: &app,
        method: &method,
        uri: &uri,
        headers: &headers,
        body: &body,
    };
    session_call(&shared, &call, Endpoint::FormSchema, || {
        schema(&shared.config, &form_type, &id)
    })
    .await
}

/// A v3 GET as it arrived.
struct Call<'a> {
    app: &'a str,
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

/// A v3 GET, logged: the site, a valid session, the method, then faults, then the answer.
async fn session_call(
    shared: &Shared,
    call: &Call<'_>,
    endpoint: Endpoint,
    answer: impl FnOnce() -> Reply,
) -> Response {
    let mut record = start_record(shared, call.method, call.uri, call.headers, call.body);
    record.endpoint = Some(endpoint.name().to_owned());
    let outcome = if call.app != shared.config.app_name {
        Outcome::Answer(Reply::Text(StatusCode::NOT_FOUND, "Not Found"))
    } else if !has_session(shared, call.headers) {
        Outcome::Answer(Reply::Text(StatusCode::UNAUTHORIZED, "Unauthorized"))
    } else if *call.method != Method::GET {
        Outcome::Answer(Reply::Text(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
        ))
    } else {
        match inject_fault(shared, endpoint, &mut record).await {
            Ok(injected) => injected.outcome(answer()),
            Err(outcome) => outcome,
        }
    };
    finish(shared, record, outcome)
}

/// Whether the request carries a valid session, as the `session-header` header or the `JSESSIONID`
/// cookie.
fn has_session(shared: &Shared, headers: &HeaderMap) -> bool {
    let from_header = headers
        .get(SESSION_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::trim);
    let from_cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|cookie| cookie.trim().split_once('='))
        .filter(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value);
    let sessions = &shared.state().sessions;
    from_header
        .into_iter()
        .chain(from_cookies)
        .any(|token| sessions.iter().any(|valid| valid == token))
}

fn summaries(config: &SmartabaseSimConfig) -> Reply {
    let list = |kind: FormKind| -> Vec<Value> {
        config
            .forms
            .iter()
            .zip(FORM_ID_BASE..)
            .filter(|(form, _)| form.kind == kind)
            .map(|(form, id)| {
                json!({
                    "id": id,
                    "name": form.name,
                    "mainCategory": "Polar",
                    "isReadOnly": false,
                    "groupEntryEnabled": false,
                })
            })
            .collect()
    };
    Reply::ok(json!({
        "event": list(FormKind::Event),
        "profile": list(FormKind::Profile),
        "database": null,
        "linkedOnlyEvent": [],
        "linkedOnlyProfile": [],
    }))
}

fn schema(config: &SmartabaseSimConfig, form_type: &str, id: &str) -> Reply {
    let found = id.parse::<i64>().ok().and_then(|id| {
        config
            .forms
            .iter()
            .zip(FORM_ID_BASE..)
            .find(|(form, form_id)| *form_id == id && type_key(form.kind) == form_type)
    });
    match found {
        Some((form, id)) => Reply::ok(schema_tree(form, id)),
        None => Reply::Json(
            StatusCode::NOT_FOUND,
            json!({"message": format!("No {form_type} form with id {id}")}),
        ),
    }
}

/// The form as a node tree: the first half of its fields in a field set on page 1, the rest in a field
/// set nested in another field set on page 2 (a client that reads one level or one page misses fields).
fn schema_tree(form: &FormDefinition, id: i64) -> Value {
    let item = |field: &crate::config::FieldDefinition| {
        json!({
            "type": "FormItem",
            "name": field.name,
            "formItemType": match field.kind {
                FieldKind::Text => "Text",
                FieldKind::Number => "Number",
            },
            "required": false,
            "options": [],
            "defaultsToLastKnownValue": false,
            "children": [],
        })
    };
    let (first, rest) = form.fields.split_at(form.fields.len().div_ceil(2));
    let set = |name: &str, children: Vec<Value>| json!({"type": "FormFieldSet", "name": name, "children": children});
    let page = |name: &str, children: Vec<Value>| json!({"type": "FormPage", "name": name, "children": children});
    json!({
        "id": id,
        "name": form.name,
        "type": "Form",
        "formType": type_key(form.kind),
        "children": [
            page("Summary", vec![set("Details", first.iter().map(item).collect())]),
            page("Values", vec![set("Polar", vec![set("More", rest.iter().map(item).collect())])]),
        ],
    })
}
