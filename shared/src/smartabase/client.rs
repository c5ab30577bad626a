//! `SmartabaseClient`: the [`SmartabaseApi`] over HTTP — site URL, Basic auth, headers, status codes,
//! chunking and batch limits. Body shapes and their quirks are read in `wire`.

use std::fmt;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use reqwest::header::{ACCEPT, COOKIE};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use serde_json::Value;
use url::Url;

use super::forms::{self, FormSummary, SmartabaseSession};
use super::wire;
use super::{
    EventRead, EventWrite, ImportOutcome, ProfileEntry, RosterPage, SmartabaseApi, SmartabaseError,
};
use crate::error::with_causes;
use crate::http::SharedHttp;
use crate::ids::SmartabaseUserId;

/// `X-APP-ID` sent on every call, so Smartabase support can trace the connector's requests.
pub const APP_ID: &str = "polar-smartabase-connector";
/// Whole-request timeout of every Smartabase call unless [`SmartabaseClient::with_request_timeout`] says
/// otherwise: large Smartabase calls are slow (reference §7.1).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Most events one `eventsimport` call carries (Teamworks' own sample size, reference §3.6).
pub const MAX_EVENTS_PER_IMPORT: usize = 25;
/// Most user ids one `profilesearch` call carries (reference §4.1).
pub const MAX_USERS_PER_SEARCH: usize = 200;

const USER_SYNCHRONISE: &str = "usersynchronise";
const PROFILE_SEARCH: &str = "profilesearch";
const PROFILE_IMPORT: &str = "profileimport";
const EVENTS_IMPORT: &str = "eventsimport";
const EVENT_SEARCH: &str = "eventsearch";
/// The v2 session login and the v3 form-metadata calls (reference §1.3, §1.6).
const LOGIN_USER: &str = "v2/user/loginUser";
const FORM_SUMMARIES: &str = "v3/forms/summaries";
const FORM_SCHEMA: &str = "v3/forms/{type}/{id}";

/// Why a site URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Smartabase site URL {0}")]
pub struct SiteUrlError(&'static str);

/// The Smartabase v1 API of one site, with the API account's credentials.
#[derive(Clone)]
pub struct SmartabaseClient {
    /// `{site_url}/api/v1/`.
    api_base: Url,
    app_name: String,
    username: String,
    password: SecretString,
    api_user_id: Option<SmartabaseUserId>,
    http: SharedHttp,
    request_timeout: Duration,
}

impl fmt::Debug for SmartabaseClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmartabaseClient")
            .field("api_base", &self.api_base.as_str())
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("api_user_id", &self.api_user_id)
            .finish_non_exhaustive()
    }
}

impl SmartabaseClient {
    /// A client of the site at `site_url` (`https://host/{appName}`; the app name is its last path segment),
    /// sending through `http` (the function's one [`crate::http::client`]).
    pub fn new(
        site_url: Url,
        username: String,
        password: SecretString,
        http: impl Into<SharedHttp>,
    ) -> Result<Self, SiteUrlError> {
        if !site_url.username().is_empty() || site_url.password().is_some() {
            return Err(SiteUrlError(
                "must not carry credentials (they come from the secret)",
            ));
        }
        let app_name = site_url
            .path()
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|segment| !segment.is_empty())
            .map(str::to_owned)
            .ok_or(SiteUrlError("must end with the site's app name"))?;
        let mut api_base = site_url;
        api_base.set_query(None);
        api_base.set_fragment(None);
        api_base
            .path_segments_mut()
            .map_err(|()| SiteUrlError("must be an http(s) URL"))?
            .pop_if_empty()
            .extend(["api", "v1", ""]);
        Ok(Self {
            api_base,
            app_name,
            username,
            password,
            api_user_id: None,
            http: http.into(),
            request_timeout: REQUEST_TIMEOUT,
        })
    }

    /// Sends `enteredByUserId` = the API account's own user id on writes (omitted when unknown, and
    /// Smartabase then uses the authenticated account).
    pub fn with_api_user_id(mut self, user_id: SmartabaseUserId) -> Self {
        self.api_user_id = Some(user_id);
        self
    }

    /// The shared HTTP client, built on first use.
    fn http(&self) -> Result<&reqwest::Client, SmartabaseError> {
        self.http
            .get()
            .map_err(|e| SmartabaseError::transport(format!("no HTTP client: {e}")))
    }

    /// Gives each request `timeout` instead of [`REQUEST_TIMEOUT`] (tests use short ones).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The site's app name (last path segment of the site URL).
    pub fn app_name(&self) -> &str {
        &self.app_name
    }

    /// `{site}/api/v1/{endpoint}?informat=json&format=json`.
    fn endpoint_url(&self, endpoint: &str) -> Result<Url, SmartabaseError> {
        let mut url = self
            .api_base
            .join(endpoint)
            .map_err(|error| SmartabaseError::Transport {
                message: format!("{endpoint}: {error}"),
                source: Some(Box::new(error)),
            })?;
        url.set_query(Some("informat=json&format=json"));
        Ok(url)
    }

    /// `{site}/api/{version}/{path…}`, each path segment percent-encoded; with `informat=json&format=json`
    /// when `json_query` (v2 takes it like v1; the clients send v3 GETs without it).
    fn versioned_url(
        &self,
        version: &str,
        path: &[&str],
        json_query: bool,
    ) -> Result<Url, SmartabaseError> {
        let mut url = self.api_base.clone();
        url.path_segments_mut()
            .map_err(|()| SmartabaseError::transport("the site URL cannot be a base"))?
            .pop_if_empty()
            .pop()
            .push(version)
            .extend(path);
        if json_query {
            url.set_query(Some("informat=json&format=json"));
        }
        Ok(url)
    }

    /// Opens a v2/v3 session for the form-metadata calls: `POST /api/v2/user/loginUser` with the account's
    /// credentials in the body and as Basic auth, as the open-source clients do (reference §1.3). 401 is
    /// [`SmartabaseError::Unauthorized`]; an RPC exception answered with HTTP 200 is a rejection.
    pub async fn login(&self) -> Result<SmartabaseSession, SmartabaseError> {
        self.scrubbed(self.login_unscrubbed().await)
    }

    async fn login_unscrubbed(&self) -> Result<SmartabaseSession, SmartabaseError> {
        let request = forms::LoginRequest {
            username: &self.username,
            password: self.password.expose_secret(),
            login_properties: forms::LoginProperties {
                app_name: &self.app_name,
                client_time: chrono::Utc::now().format("%Y-%m-%dT%H:%M").to_string(),
            },
        };
        let login = self
            .http()?
            .post(self.versioned_url("v2", &["user", "loginUser"], true)?)
            .timeout(self.request_timeout)
            .basic_auth(&self.username, Some(self.password.expose_secret()))
            .json(&request);
        let (headers, body) = self.session_exchange(LOGIN_USER, login).await?;
        forms::login_answer(&headers, body.as_ref())
    }

    /// `GET /api/v3/forms/summaries`: every form the API account can see, with its type.
    pub async fn form_summaries(
        &self,
        session: &mut SmartabaseSession,
    ) -> Result<Vec<FormSummary>, SmartabaseError> {
        let body = self.scrubbed(
            self.session_get(session, FORM_SUMMARIES, &["forms", "summaries"])
                .await,
        )?;
        forms::form_summaries(body.as_ref())
    }

    /// `GET /api/v3/forms/{type}/{id}`: the exact names of every field of one form.
    pub async fn form_field_names(
        &self,
        session: &mut SmartabaseSession,
        form: &FormSummary,
    ) -> Result<Vec<String>, SmartabaseError> {
        let id = form.id.to_string();
        let body = self.scrubbed(
            self.session_get(session, FORM_SCHEMA, &["forms", &form.form_type, &id])
                .await,
        )?;
        forms::form_field_names(body.as_ref())
    }

    /// One v3 GET with the session's header and cookie. Session lifetime is undocumented (reference
    /// §1.3): a 401/403 logs in again once and retries with the new session.
    async fn session_get(
        &self,
        session: &mut SmartabaseSession,
        endpoint: &'static str,
        path: &[&str],
    ) -> Result<Option<Value>, SmartabaseError> {
        let url = self.versioned_url("v3", path, false)?;
        match self.session_get_once(session, endpoint, url.clone()).await {
            Err(SmartabaseError::Unauthorized { .. }) => {
                *session = self.login_unscrubbed().await?;
                self.session_get_once(session, endpoint, url).await
            }
            other => other,
        }
    }

    async fn session_get_once(
        &self,
        session: &SmartabaseSession,
        endpoint: &'static str,
        url: Url,
    ) -> Result<Option<Value>, SmartabaseError> {
        let token = session.token().expose_secret();
        let get = self
            .http()?
            .get(url)
            .timeout(self.request_timeout)
            .header(forms::SESSION_HEADER, token)
            .header(COOKIE, forms::cookie_header(token));
        let (_, body) = self.session_exchange(endpoint, get).await?;
        Ok(body)
    }

    /// Sends one session call: the answer's headers and JSON body (`None` when empty) on 2xx, else the
    /// error its status means.
    async fn session_exchange(
        &self,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::header::HeaderMap, Option<Value>), SmartabaseError> {
        let response = request
            .header(ACCEPT, "application/json")
            .header("X-APP-ID", APP_ID)
            .send()
            .await
            .map_err(|error| request_error(endpoint, error))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| request_error(endpoint, error))?;
        tracing::debug!(endpoint, status = status.as_u16(), "smartabase call");
        if !status.is_success() {
            return Err(wire::status_error(status.as_u16(), &bytes));
        }
        Ok((headers, wire::json_body(endpoint, &bytes)?))
    }

    /// One v1 call: the JSON body of a 2xx answer (`None` when empty), or the error its status means.
    async fn post<B: Serialize + ?Sized>(
        &self,
        endpoint: &'static str,
        body: &B,
    ) -> Result<Option<Value>, SmartabaseError> {
        let started = Instant::now();
        let response = self
            .http()?
            .post(self.endpoint_url(endpoint)?)
            .timeout(self.request_timeout)
            .basic_auth(&self.username, Some(self.password.expose_secret()))
            .header(ACCEPT, "application/json")
            .header("X-APP-ID", APP_ID)
            .json(body)
            .send()
            .await
            .map_err(|error| request_error(endpoint, error))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| request_error(endpoint, error))?;
        tracing::debug!(
            endpoint,
            status = status.as_u16(),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            bytes = bytes.len(),
            "smartabase call"
        );
        if !status.is_success() {
            return Err(wire::status_error(status.as_u16(), &bytes));
        }
        wire::json_body(endpoint, &bytes)
    }

    /// Removes the password from any server text an error carries, in case a server echoes it.
    fn scrubbed<T>(&self, result: Result<T, SmartabaseError>) -> Result<T, SmartabaseError> {
        let password = self.password.expose_secret();
        if password.is_empty() {
            return result;
        }
        let scrub = |text: String| text.replace(password, "[redacted]");
        result.map_err(|error| match error {
            SmartabaseError::Rejected { state, message } => SmartabaseError::Rejected {
                state: scrub(state),
                message: scrub(message),
            },
            SmartabaseError::BadRequest { status, detail } => SmartabaseError::BadRequest {
                status,
                detail: scrub(detail),
            },
            SmartabaseError::UnexpectedIds(text) => SmartabaseError::UnexpectedIds(scrub(text)),
            SmartabaseError::Unconfirmed(text) => SmartabaseError::Unconfirmed(scrub(text)),
            SmartabaseError::Transport { message, source } => SmartabaseError::Transport {
                message: scrub(message),
                source: source.filter(|cause| !mentions(cause.as_ref(), password)),
            },
            SmartabaseError::Malformed { message, source } => SmartabaseError::Malformed {
                message: scrub(message),
                source: source.filter(|cause| !mentions(cause.as_ref(), password)),
            },
            other @ (SmartabaseError::Unauthorized { .. }
            | SmartabaseError::Server { .. }
            | SmartabaseError::Timeout) => other,
        })
    }

    async fn roster_page_unscrubbed(
        &self,
        cursor: Option<&str>,
    ) -> Result<RosterPage, SmartabaseError> {
        let request = wire::UserSynchroniseRequest::full_roster(cursor);
        let body = self.post(USER_SYNCHRONISE, &request).await?;
        wire::roster_page(body.as_ref())
    }

    async fn profiles_unscrubbed(
        &self,
        form: &str,
        users: &[SmartabaseUserId],
    ) -> Result<Vec<ProfileEntry>, SmartabaseError> {
        let mut entries = Vec::new();
        for chunk in users.chunks(MAX_USERS_PER_SEARCH) {
            let request = wire::ProfileSearchRequest {
                form_names: [form],
                user_ids: chunk,
            };
            let body = self.post(PROFILE_SEARCH, &request).await?;
            entries.extend(wire::profile_entries(body.as_ref(), form)?);
        }
        Ok(entries)
    }

    async fn save_profile_unscrubbed(&self, entry: &ProfileEntry) -> Result<(), SmartabaseError> {
        let request = wire::ProfileImportRequest::new(entry, self.api_user_id);
        let body = self.post(PROFILE_IMPORT, &request).await?;
        let dropped = wire::profile_import_result(body.as_ref())?;
        if !dropped.is_empty() {
            tracing::warn!(form = %entry.form, dropped_fields = ?dropped, "Smartabase dropped profile fields the form does not have");
        }
        Ok(())
    }

    async fn import_events_unscrubbed(
        &self,
        events: &[EventWrite],
    ) -> Result<ImportOutcome, SmartabaseError> {
        let Some(first) = events.first() else {
            return Ok(ImportOutcome {
                ids: Vec::new(),
                dropped_fields: Vec::new(),
            });
        };
        if events.len() > MAX_EVENTS_PER_IMPORT {
            return Err(refused(format!(
                "{} events in one import (at most {MAX_EVENTS_PER_IMPORT})",
                events.len()
            )));
        }
        if events.iter().any(|event| event.form != first.form) {
            return Err(refused(
                "events of more than one form in one import".to_owned(),
            ));
        }
        let request = wire::EventsImportRequest {
            events: events
                .iter()
                .map(|event| wire::EventImport::new(event, self.api_user_id))
                .collect(),
        };
        let body = self.post(EVENTS_IMPORT, &request).await?;
        let outcome = wire::events_import_outcome(body.as_ref(), events)?;
        if !outcome.dropped_fields.is_empty() {
            tracing::warn!(form = %first.form, dropped_fields = ?outcome.dropped_fields, "Smartabase dropped event fields the form does not have");
        }
        Ok(outcome)
    }

    async fn find_events_unscrubbed(
        &self,
        form: &str,
        user: SmartabaseUserId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<EventRead>, SmartabaseError> {
        let request = wire::EventSearchRequest::days(form, user, from, to);
        let body = self.post(EVENT_SEARCH, &request).await?;
        wire::events_found(body.as_ref(), form, user)
    }
}

impl SmartabaseApi for SmartabaseClient {
    async fn roster_page(&self, cursor: Option<&str>) -> Result<RosterPage, SmartabaseError> {
        self.scrubbed(self.roster_page_unscrubbed(cursor).await)
    }

    async fn profiles(
        &self,
        form: &str,
        users: &[SmartabaseUserId],
    ) -> Result<Vec<ProfileEntry>, SmartabaseError> {
        self.scrubbed(self.profiles_unscrubbed(form, users).await)
    }

    async fn save_profile(&self, entry: &ProfileEntry) -> Result<(), SmartabaseError> {
        self.scrubbed(self.save_profile_unscrubbed(entry).await)
    }

    async fn import_events(&self, events: &[EventWrite]) -> Result<ImportOutcome, SmartabaseError> {
        self.scrubbed(self.import_events_unscrubbed(events).await)
    }

    async fn find_events(
        &self,
        form: &str,
        user: SmartabaseUserId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<EventRead>, SmartabaseError> {
        self.scrubbed(self.find_events_unscrubbed(form, user, from, to).await)
    }
}

/// A batch refused before anything was sent (status 0: there was no answer).
fn refused(detail: String) -> SmartabaseError {
    SmartabaseError::BadRequest {
        status: 0,
        detail: format!("not sent: {detail}"),
    }
}

/// The error for a request that got no (complete) answer.
fn request_error(endpoint: &str, error: reqwest::Error) -> SmartabaseError {
    if error.is_timeout() {
        SmartabaseError::Timeout
    } else {
        SmartabaseError::transport_from(endpoint, error)
    }
}

/// Whether `secret` shows anywhere in `error`'s chain or its `Debug` output. A kept source cannot be
/// scrubbed like text, so one that shows the password is dropped instead.
fn mentions(error: &(dyn std::error::Error + 'static), secret: &str) -> bool {
    with_causes(error).contains(secret) || format!("{error:?}").contains(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::testing::{
        assert_never_shows, assert_refused_connection_without_url, closed_port,
    };

    fn client(site: &str) -> SmartabaseClient {
        SmartabaseClient::new(
            Url::parse(site).unwrap(),
            "api.user".to_owned(),
            SecretString::from("SB-PASSWORD-xyz"),
            reqwest::Client::new(),
        )
        .unwrap()
    }

    #[test]
    fn endpoint_urls_hang_under_the_site_with_the_json_query() {
        for site in [
            "https://club.smartabase.com/club",
            "https://club.smartabase.com/club/",
            "https://club.smartabase.com/club?x=1#frag",
        ] {
            let client = client(site);
            assert_eq!(client.app_name(), "club", "{site}");
            assert_eq!(
                client.endpoint_url("eventsimport").unwrap().as_str(),
                "https://club.smartabase.com/club/api/v1/eventsimport?informat=json&format=json",
                "{site}"
            );
        }
        let nested = client("https://usopc.smartabase.com/athlete360-usss");
        assert_eq!(nested.app_name(), "athlete360-usss");
    }

    #[test]
    fn session_calls_hang_under_the_site_with_their_version() {
        let client = client("https://usopc.smartabase.com/athlete360-usss/");
        assert_eq!(
            client
                .versioned_url("v2", &["user", "loginUser"], true)
                .unwrap()
                .as_str(),
            "https://usopc.smartabase.com/athlete360-usss/api/v2/user/loginUser?informat=json&format=json"
        );
        assert_eq!(
            client
                .versioned_url("v3", &["forms", "event", "2001"], false)
                .unwrap()
                .as_str(),
            "https://usopc.smartabase.com/athlete360-usss/api/v3/forms/event/2001"
        );
        assert_eq!(
            client
                .versioned_url("v3", &["forms", "a/b c"], false)
                .unwrap()
                .as_str(),
            "https://usopc.smartabase.com/athlete360-usss/api/v3/forms/a%2Fb%20c"
        );
    }

    #[test]
    fn site_url_without_app_name_or_with_credentials_is_refused() {
        let new = |site: &str| {
            SmartabaseClient::new(
                Url::parse(site).unwrap(),
                "u".to_owned(),
                SecretString::from("p"),
                reqwest::Client::new(),
            )
        };
        assert!(new("https://club.smartabase.com").is_err());
        assert!(new("https://club.smartabase.com/").is_err());
        assert!(new("https://user:pw@club.smartabase.com/club").is_err());
    }

    #[test]
    fn debug_output_redacts_the_password() {
        let printed = format!("{:?}", client("https://club.smartabase.com/club"));
        assert!(!printed.contains("SB-PASSWORD-xyz"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
        assert!(printed.contains("api.user"), "{printed}");
    }

    #[test]
    fn server_text_echoing_the_password_is_scrubbed_from_errors() {
        let client = client("https://club.smartabase.com/club");
        let result: Result<(), _> = client.scrubbed(Err(SmartabaseError::Rejected {
            state: "UNEXPECTED_ERROR".to_owned(),
            message: "bad login SB-PASSWORD-xyz".to_owned(),
        }));
        let printed = result.unwrap_err().to_string();
        assert!(!printed.contains("SB-PASSWORD-xyz"), "{printed}");
        assert!(printed.contains("bad login [redacted]"), "{printed}");
    }

    #[tokio::test]
    async fn a_request_that_fails_keeps_reqwest_s_error_but_never_its_url_or_the_password() {
        let closed = closed_port();
        let client = client(&format!("{closed}/SECRET-PATH/club"));

        let error = client.roster_page(None).await.unwrap_err();

        let SmartabaseError::Transport {
            source: Some(source),
            ..
        } = &error
        else {
            panic!("expected Transport with a source, got {error:?}");
        };
        assert_refused_connection_without_url(source);
        assert_never_shows(&error, "SECRET-PATH");
        assert_never_shows(&error, "SB-PASSWORD-xyz");
        assert!(error.is_transient());
    }

    #[test]
    fn a_source_showing_the_password_is_dropped_and_any_other_kept() {
        let client = client("https://club.smartabase.com/club");
        let transport = |cause: &str| {
            client
                .scrubbed::<()>(Err(SmartabaseError::Transport {
                    message: "usersynchronise: SB-PASSWORD-xyz".to_owned(),
                    source: Some(Box::new(std::io::Error::other(cause.to_owned()))),
                }))
                .unwrap_err()
        };

        let echoed = transport("echo SB-PASSWORD-xyz");
        assert!(
            matches!(&echoed, SmartabaseError::Transport { message, source: None } if message == "usersynchronise: [redacted]"),
            "{echoed:?}"
        );
        let plain = transport("connection reset");
        assert!(
            matches!(
                &plain,
                SmartabaseError::Transport {
                    source: Some(_),
                    ..
                }
            ),
            "{plain:?}"
        );
    }

    #[test]
    fn a_body_that_is_not_json_keeps_the_syntax_error() {
        let error = wire::json_body("eventsimport", b"<html>SECRET</html>").unwrap_err();
        let SmartabaseError::Malformed {
            source: Some(source),
            ..
        } = &error
        else {
            panic!("expected Malformed with a source, got {error:?}");
        };
        assert!(
            source
                .downcast_ref::<serde_json::Error>()
                .unwrap()
                .is_syntax()
        );
        assert_never_shows(&error, "SECRET");
    }

    #[test]
    fn production_http_client_builds() {
        assert!(crate::http::client().is_ok());
    }
}
