//! The v2 session login and the v3 form-metadata calls (reference §1.3, §1.6): what `connector doctor`
//! reads to compare a site's forms with the mapping. The connector's data path never needs them (v1 with
//! Basic auth does everything); these answers are read here, leniently, with their quirks: the session
//! token arrives as the `session-header` header and as the `JSESSIONID` cookie, login failures may come as
//! HTTP 200 RPC exceptions, summaries are keyed by form type, and a form's fields hang in a tree of pages
//! and field sets.

use std::fmt;

use reqwest::header::{HeaderMap, SET_COOKIE};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;

use super::SmartabaseError;
use super::wire::{id_number, read_failure, rpc_exception};
use crate::ids::SmartabaseUserId;

/// The response header carrying the session token.
pub(crate) const SESSION_HEADER: &str = "session-header";
/// The cookie carrying the same token.
const SESSION_COOKIE: &str = "JSESSIONID";

/// The summaries key of event forms.
pub const EVENT_FORMS: &str = "event";
/// The summaries key of profile forms.
pub const PROFILE_FORMS: &str = "profile";

/// A logged-in v2/v3 session of the API account. The token is a credential: never printed.
pub struct SmartabaseSession {
    token: SecretString,
    /// What the login said about the API account.
    pub account: ApiAccount,
}

impl SmartabaseSession {
    pub(crate) fn token(&self) -> &SecretString {
        &self.token
    }
}

impl fmt::Debug for SmartabaseSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmartabaseSession")
            .field("token", &"[redacted]")
            .field("account", &self.account)
            .finish()
    }
}

/// The API account as the login describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiAccount {
    /// Its own Smartabase user id (`user.id`).
    pub user_id: Option<SmartabaseUserId>,
    /// Its permissions (`Import Data`, `Import Profile Data`, …); empty when the login did not list them.
    pub permissions: Vec<String>,
}

/// One form of `GET /api/v3/forms/summaries`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormSummary {
    /// The form's id.
    pub id: i64,
    /// Its exact name.
    pub name: String,
    /// The summaries key it was listed under ([`EVENT_FORMS`], [`PROFILE_FORMS`], `database`, …); also the
    /// `{type}` of `GET /api/v3/forms/{type}/{id}`.
    pub form_type: String,
    /// `isReadOnly`: the API account may read but not enter data.
    pub read_only: bool,
}

/// `POST /api/v2/user/loginUser`, as the open-source clients send it (with Basic auth as well).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoginRequest<'a> {
    pub(crate) username: &'a str,
    pub(crate) password: &'a str,
    pub(crate) login_properties: LoginProperties<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoginProperties<'a> {
    pub(crate) app_name: &'a str,
    /// `YYYY-MM-DDTHH:MM` (reference §1.3).
    pub(crate) client_time: String,
}

/// Reads a 2xx login answer: the token from `session-header` (or else the `JSESSIONID` cookie), the
/// account from the body. An RPC exception or a failure state is a refusal even with HTTP 200.
pub(crate) fn login_answer(
    headers: &HeaderMap,
    body: Option<&Value>,
) -> Result<SmartabaseSession, SmartabaseError> {
    if let Some(error) = body.and_then(failure) {
        return Err(error);
    }
    let from_header = headers
        .get(SESSION_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .map(str::to_owned);
    let token = from_header
        .or_else(|| session_cookie(headers))
        .ok_or_else(|| {
            SmartabaseError::malformed(
                "the login answered without a session-header or JSESSIONID cookie".to_owned(),
            )
        })?;
    let user = body.and_then(|body| body.get("user"));
    let account = ApiAccount {
        user_id: user
            .and_then(|user| user.get("id").or_else(|| user.get("userId")))
            .and_then(id_number)
            .and_then(|id| SmartabaseUserId::new(id).ok()),
        permissions: body
            .and_then(|body| body.get("permissions"))
            .and_then(Value::as_array)
            .map(|names| {
                names
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    };
    Ok(SmartabaseSession {
        token: SecretString::from(token),
        account,
    })
}

/// A failure answered with HTTP 200: an RPC exception, or a `state` that is not a success.
fn failure(body: &Value) -> Option<SmartabaseError> {
    rpc_exception(body).or_else(|| read_failure(body))
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|cookie| {
            let first = cookie.split(';').next()?;
            let (name, value) = first.split_once('=')?;
            (name.trim() == SESSION_COOKIE && !value.trim().is_empty())
                .then(|| value.trim().to_owned())
        })
}

/// The `Cookie` request header of a session.
pub(crate) fn cookie_header(token: &str) -> String {
    format!("{SESSION_COOKIE}={token}")
}

/// Reads `GET /api/v3/forms/summaries`: an object keyed by form type, each a list (or `null`) of forms.
/// Entries without an id or a name are skipped; an answer that is not an object is malformed.
pub(crate) fn form_summaries(body: Option<&Value>) -> Result<Vec<FormSummary>, SmartabaseError> {
    let Some(body) = body else {
        return Ok(Vec::new());
    };
    if let Some(error) = failure(body) {
        return Err(error);
    }
    let types = body
        .as_object()
        .ok_or_else(|| SmartabaseError::malformed("forms/summaries answer: not an object"))?;
    let mut forms = Vec::new();
    for (form_type, list) in types {
        for form in list.as_array().into_iter().flatten() {
            let id = form.get("id").and_then(id_number);
            let name = form.get("name").and_then(Value::as_str);
            if let (Some(id), Some(name)) = (id, name) {
                forms.push(FormSummary {
                    id,
                    name: name.to_owned(),
                    form_type: form_type.clone(),
                    read_only: form.get("isReadOnly").and_then(Value::as_bool) == Some(true),
                });
            }
        }
    }
    Ok(forms)
}

/// Reads `GET /api/v3/forms/{type}/{id}`: the names of every `FormItem` node, depth first, wherever it
/// hangs (pages, field sets, nested field sets).
pub(crate) fn form_field_names(body: Option<&Value>) -> Result<Vec<String>, SmartabaseError> {
    fn walk(node: &Value, names: &mut Vec<String>) {
        match node {
            Value::Object(object) => {
                if object.get("type").and_then(Value::as_str) == Some("FormItem")
                    && let Some(name) = object.get("name").and_then(Value::as_str)
                {
                    names.push(name.to_owned());
                }
                if let Some(children) = object.get("children") {
                    walk(children, names);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, names)),
            _ => {}
        }
    }
    let body = body.ok_or_else(|| SmartabaseError::malformed("form schema answer: empty body"))?;
    if let Some(error) = failure(body) {
        return Err(error);
    }
    if !body.is_object() {
        return Err(SmartabaseError::malformed(
            "form schema answer: not an object".to_owned(),
        ));
    }
    let mut names = Vec::new();
    walk(body, &mut names);
    Ok(names)
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;
    use serde_json::json;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn login_reads_the_session_header_and_the_recorded_account() {
        // reference §1.3, abridged recording
        let body = json!({
            "isAthlete": true, "isCoach": true, "isAdmin": false,
            "user": {"id": 120855, "username": "python.connector", "uuid": null},
            "applicationId": 1044,
            "permissions": ["Enter Data", "Import Data", "Import Profile Data", "Account Read"],
        });
        let session = login_answer(
            &headers(&[
                ("session-header", "tok-123"),
                ("set-cookie", "JSESSIONID=tok-123; Path=/; Secure; HttpOnly"),
            ]),
            Some(&body),
        )
        .unwrap();
        use secrecy::ExposeSecret as _;
        assert_eq!(session.token().expose_secret(), "tok-123");
        assert_eq!(
            session.account.user_id,
            Some(SmartabaseUserId::new(120_855).unwrap())
        );
        assert!(
            session
                .account
                .permissions
                .contains(&"Import Profile Data".to_owned())
        );
        let printed = format!("{session:?}");
        assert!(!printed.contains("tok-123"), "{printed}");
    }

    #[test]
    fn login_falls_back_to_the_cookie_and_refuses_an_answer_without_a_token() {
        use secrecy::ExposeSecret as _;
        let cookie_only = login_answer(
            &headers(&[
                ("set-cookie", "AWSALB=x; Path=/"),
                ("set-cookie", "JSESSIONID=from-cookie; Path=/; HttpOnly"),
            ]),
            Some(&json!({})),
        )
        .unwrap();
        assert_eq!(cookie_only.token().expose_secret(), "from-cookie");
        assert_eq!(cookie_only.account, ApiAccount::default());
        assert!(matches!(
            login_answer(&HeaderMap::new(), Some(&json!({"user": {"id": 1}}))),
            Err(SmartabaseError::Malformed { .. })
        ));
    }

    #[test]
    fn a_login_rpc_exception_with_http_200_is_a_refusal() {
        let body = json!({"__is_rpc_exception__": true, "value": {"detailMessage": "Unknown application"}});
        let error = login_answer(&headers(&[("session-header", "t")]), Some(&body)).unwrap_err();
        assert!(
            matches!(&error, SmartabaseError::Rejected { message, .. } if message == "Unknown application"),
            "{error:?}"
        );
    }

    #[test]
    fn summaries_are_read_from_every_form_type_with_lenient_ids() {
        let body = json!({
            "event": [
                {"id": 2001, "name": "Polar Sleep", "mainCategory": "Wearables", "isReadOnly": false, "groupEntryEnabled": false},
                {"id": "2002", "name": "Polar Training", "isReadOnly": true},
                {"name": "no id"},
            ],
            "profile": [{"id": 3001, "name": "Polar Access Token"}],
            "database": null,
            "linkedOnlyEvent": [],
        });
        let forms = form_summaries(Some(&body)).unwrap();
        assert_eq!(
            forms,
            [
                FormSummary {
                    id: 2001,
                    name: "Polar Sleep".into(),
                    form_type: "event".into(),
                    read_only: false
                },
                FormSummary {
                    id: 2002,
                    name: "Polar Training".into(),
                    form_type: "event".into(),
                    read_only: true
                },
                FormSummary {
                    id: 3001,
                    name: "Polar Access Token".into(),
                    form_type: "profile".into(),
                    read_only: false
                },
            ]
        );
        assert!(form_summaries(None).unwrap().is_empty());
        assert!(matches!(
            form_summaries(Some(&json!([1, 2]))),
            Err(SmartabaseError::Malformed { .. })
        ));
        // A failure state with HTTP 200 is not "no forms".
        assert!(matches!(
            form_summaries(Some(
                &json!({"state": "UNEXPECTED_ERROR", "message": "down"})
            )),
            Err(SmartabaseError::Rejected { .. })
        ));
    }

    #[test]
    fn field_names_come_from_every_form_item_of_the_tree() {
        let body = json!({
            "id": 2001, "name": "Polar Sleep", "type": "Form",
            "children": [
                {"type": "FormPage", "name": "Night", "children": [
                    {"type": "FormFieldSet", "name": "Times", "children": [
                        {"type": "FormItem", "name": "Sleep Date", "formItemType": "Date", "required": false},
                        {"type": "FormItem", "name": "Sleep Start", "formItemType": "Text"},
                    ]},
                ]},
                {"type": "FormPage", "name": "Stages", "children": [
                    {"type": "FormFieldSet", "name": "Outer", "children": [
                        {"type": "FormFieldSet", "name": "Inner", "children": [
                            {"type": "FormItem", "name": "Deep Sleep (min)", "formItemType": "Number"},
                        ]},
                    ]},
                ]},
            ],
        });
        assert_eq!(
            form_field_names(Some(&body)).unwrap(),
            ["Sleep Date", "Sleep Start", "Deep Sleep (min)"]
        );
        assert!(form_field_names(None).is_err());
        assert!(form_field_names(Some(&json!("x"))).is_err());
    }
}
