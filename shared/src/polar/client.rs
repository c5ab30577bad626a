//! HTTP client for Polar AccessLink v3: URLs, auth headers, status codes and the `RateLimit-*` headers.
//!
//! No method retries on its own: the use cases decide what a failure means (a reused authorisation code
//! would delete the athlete's tokens). Secrets never reach an error, a log line or `Debug` output.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use chrono::{NaiveDate, Utc};
use reqwest::header::{ACCEPT, HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use tracing::warn;
use url::Url;

use super::wire::{
    self, ActivityWire, CreateWebhookRequest, CreatedWebhookWire, DataEnvelope, ErrorBody,
    ExerciseWire, ListShape, RechargeWire, RegisterUserRequest, SleepWire, TokenRequest,
    TokenResponse, UserWire, WebhookInfoWire, WireRecord,
};
use super::wire_optional::{AlertnessWire, CardioLoadWire, DailyHeartRateWire};
use super::{
    Alertness, CardioLoad, CardioLoadRange, CreatedWebhook, DailyActivity, DailyHeartRate,
    DateRange, Deregistration, Exercise, NightlyRecharge, PolarApi, PolarError, PolarUser,
    RateLimitInfo, RateLimitObservation, Records, Registration, Sleep, TokenGrant,
    WebhookEventType, WebhookInfo,
};
use crate::config::Config;
use crate::http::SharedHttp;
use crate::ids::{AccessToken, AthleteUuid, AuthCode, AuthState, ExerciseId, PolarUserId};

/// How long to wait after a 429 that carries no reset time.
/// Whole-request timeout of every Polar call unless [`PolarClient::with_request_timeout`] says otherwise.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

const DEFAULT_RETRY_AFTER_SECONDS: u64 = 60;
/// The longest wait a Polar header can mean: its long window lasts 24 hours (plus an hour for clocks).
/// A header asking for more is not believed: it is ignored with a log line.
const MAX_BELIEVABLE_WAIT_SECONDS: u64 = 25 * 3600;

/// The three Polar base URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolarEndpoints {
    /// Browser authorisation endpoint (`POLAR_AUTH_URL`).
    pub auth_url: Url,
    /// OAuth token endpoint (`POLAR_TOKEN_URL`).
    pub token_url: Url,
    /// AccessLink base URL (`POLAR_API_URL`); paths `/v3/...` are appended to it.
    pub api_url: Url,
}

impl PolarEndpoints {
    /// The endpoints the configuration names.
    pub fn from_config(config: &Config) -> Self {
        Self {
            auth_url: config.polar_auth_url.clone(),
            token_url: config.polar_token_url.clone(),
            api_url: config.polar_api_url.clone(),
        }
    }
}

/// [`PolarApi`] over HTTP. Cheap to clone; clones share the latest rate-limit reading.
#[derive(Clone)]
pub struct PolarClient {
    endpoints: PolarEndpoints,
    client_id: String,
    client_secret: SecretString,
    http: SharedHttp,
    request_timeout: Duration,
    latest_rate_limit: Arc<Mutex<Option<RateLimitObservation>>>,
}

impl fmt::Debug for PolarClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolarClient")
            .field("endpoints", &self.endpoints)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Which credentials a request carries.
enum Auth<'a> {
    /// The athlete's token: `/v3/users/**` and `/v3/exercises/**`.
    Bearer(&'a AccessToken),
    /// Our client id and secret (HTTP Basic): the token endpoint and `/v3/webhooks/**`.
    Client,
}

/// A response read to the end, with its status and headers.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl PolarClient {
    /// A client for `endpoints`, authenticating as `client_id`/`client_secret`, sending through `http`
    /// (the function's one [`crate::http::client`]), each request limited to [`REQUEST_TIMEOUT`].
    pub fn new(
        endpoints: PolarEndpoints,
        client_id: String,
        client_secret: SecretString,
        http: impl Into<SharedHttp>,
    ) -> Self {
        Self {
            endpoints,
            client_id,
            client_secret,
            http: http.into(),
            request_timeout: REQUEST_TIMEOUT,
            latest_rate_limit: Arc::new(Mutex::new(None)),
        }
    }

    /// Gives each request `timeout` instead of [`REQUEST_TIMEOUT`] (tests use short ones).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// `{api_url}/{segments…}`, each segment percent-encoded.
    fn api_url(&self, segments: &[&str]) -> Url {
        let mut url = self.endpoints.api_url.clone();
        // Fails only for URLs that cannot be a base (`mailto:`); configuration accepts http(s) only.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn request(
        &self,
        method: reqwest::Method,
        url: Url,
        auth: Auth<'_>,
    ) -> Result<RequestBuilder, PolarError> {
        let http = self
            .http
            .get()
            .map_err(|e| PolarError::transport(format!("no HTTP client: {e}")))?;
        let request = http
            .request(method, url)
            .timeout(self.request_timeout)
            .header(ACCEPT, "application/json");
        Ok(match auth {
            Auth::Bearer(token) => request.bearer_auth(token.expose_secret()),
            Auth::Client => {
                request.basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
            }
        })
    }

    /// Sends once, records the rate-limit headers and reads the whole body.
    async fn send(&self, request: RequestBuilder) -> Result<Reply, PolarError> {
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(info) = parse_rate_limit(&headers) {
            let observation = RateLimitObservation {
                info,
                observed_at: Utc::now(),
            };
            *self
                .latest_rate_limit
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(observation);
        }
        let body = response.bytes().await.map_err(transport_error)?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    async fn get(&self, url: Url, token: &AccessToken) -> Result<Reply, PolarError> {
        self.send(self.request(reqwest::Method::GET, url, Auth::Bearer(token))?)
            .await
    }

    /// A list endpoint: 200 parsed per record, 204 empty.
    async fn list<W: WireRecord>(
        &self,
        url: Url,
        token: &AccessToken,
        shape: ListShape,
    ) -> Result<Records<W::Domain>, PolarError> {
        let reply = self.get(url, token).await?;
        match reply.status {
            StatusCode::OK => wire::parse_list::<W>(&reply.body, shape),
            StatusCode::NO_CONTENT => Ok(Records::default()),
            _ => Err(status_error(&reply)),
        }
    }

    /// A single-record endpoint: 200 parsed (`None` when nothing in it is measured), 204 and 404 (no
    /// data) `None`.
    async fn single<W: WireRecord>(
        &self,
        url: Url,
        token: &AccessToken,
    ) -> Result<Option<W::Domain>, PolarError> {
        match self.single_wire::<W>(url, token).await? {
            Some(record) => record
                .into_domain()
                .map_err(|e| PolarError::malformed(e.to_string())),
            None => Ok(None),
        }
    }

    async fn single_wire<W: WireRecord>(
        &self,
        url: Url,
        token: &AccessToken,
    ) -> Result<Option<W>, PolarError> {
        let reply = self.get(url, token).await?;
        match reply.status {
            StatusCode::OK => wire::parse_one::<W>(&reply.body).map(Some),
            StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(None),
            _ => Err(status_error(&reply)),
        }
    }
}

impl PolarApi for PolarClient {
    fn authorization_url(&self, state: &AuthState, redirect_uri: &str) -> String {
        let mut url = self.endpoints.auth_url.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "accesslink.read_all")
            .append_pair("state", state.as_str());
        url.into()
    }

    async fn exchange_code(
        &self,
        code: &AuthCode,
        redirect_uri: &str,
    ) -> Result<TokenGrant, PolarError> {
        let form = TokenRequest {
            grant_type: "authorization_code",
            code: code.expose_secret(),
            redirect_uri,
        };
        let request = self
            .request(
                reqwest::Method::POST,
                self.endpoints.token_url.clone(),
                Auth::Client,
            )?
            .form(&form);
        let reply = self.send(request).await?;
        if reply.status == StatusCode::OK {
            return wire::parse_one::<TokenResponse>(&reply.body)?
                .into_grant()
                .map_err(|e| PolarError::malformed(e.to_string()));
        }
        let code = ErrorBody::code_from(&reply.body);
        Err(match (reply.status, code.as_deref()) {
            (status, Some("invalid_grant")) if status.is_client_error() => PolarError::InvalidGrant,
            (StatusCode::UNAUTHORIZED, _) | (_, Some("invalid_client")) => {
                PolarError::InvalidClient
            }
            (StatusCode::TOO_MANY_REQUESTS, _) => status_error(&reply),
            // Any other refusal is about our request (never "consents": no athlete is involved yet).
            (status, _) if status.is_client_error() => PolarError::BadRequest {
                status: status.as_u16(),
                detail: client_error_detail(&reply),
            },
            _ => status_error(&reply),
        })
    }

    async fn register_user(
        &self,
        token: &AccessToken,
        member_id: &AthleteUuid,
    ) -> Result<Registration, PolarError> {
        let request = self
            .request(
                reqwest::Method::POST,
                self.api_url(&["v3", "users"]),
                Auth::Bearer(token),
            )?
            .json(&RegisterUserRequest {
                member_id: member_id.as_str(),
            });
        let reply = self.send(request).await?;
        match reply.status {
            // The user object names the Polar user id; a body we cannot read does not undo the registration.
            StatusCode::OK | StatusCode::CREATED => Ok(Registration::Registered {
                polar_user_id: wire::parse_one::<UserWire>(&reply.body)
                    .ok()
                    .and_then(|user| user.into_domain().ok())
                    .map(|user| user.polar_user_id),
            }),
            StatusCode::CONFLICT => Ok(Registration::AlreadyRegistered),
            _ => Err(status_error(&reply)),
        }
    }

    async fn get_user(
        &self,
        token: &AccessToken,
        user: PolarUserId,
    ) -> Result<Option<PolarUser>, PolarError> {
        let user_id = user.to_string();
        let reply = self
            .get(self.api_url(&["v3", "users", &user_id]), token)
            .await?;
        match reply.status {
            StatusCode::OK => wire::parse_one::<UserWire>(&reply.body)?
                .into_domain()
                .map(Some)
                .map_err(|e| PolarError::malformed(e.to_string())),
            StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(None),
            _ => Err(status_error(&reply)),
        }
    }

    async fn delete_user(
        &self,
        token: &AccessToken,
        user: PolarUserId,
    ) -> Result<Deregistration, PolarError> {
        let user_id = user.to_string();
        let request = self.request(
            reqwest::Method::DELETE,
            self.api_url(&["v3", "users", &user_id]),
            Auth::Bearer(token),
        )?;
        let reply = self.send(request).await?;
        match reply.status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(Deregistration::Deleted),
            // A revoked token or an unknown user: either way the link no longer exists.
            StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND => Ok(Deregistration::AlreadyGone),
            _ => Err(status_error(&reply)),
        }
    }

    async fn exercises(&self, token: &AccessToken) -> Result<Records<Exercise>, PolarError> {
        let mut url = self.api_url(&["v3", "exercises"]);
        url.query_pairs_mut().append_pair("zones", "true");
        self.list::<ExerciseWire>(url, token, ListShape::Array)
            .await
    }

    async fn exercise(
        &self,
        token: &AccessToken,
        id: &ExerciseId,
    ) -> Result<Option<Exercise>, PolarError> {
        let mut url = self.api_url(&["v3", "exercises", id.as_str()]);
        url.query_pairs_mut().append_pair("zones", "true");
        self.single::<ExerciseWire>(url, token).await
    }

    async fn activities(&self, token: &AccessToken) -> Result<Records<DailyActivity>, PolarError> {
        let url = self.api_url(&["v3", "users", "activities"]);
        self.list::<ActivityWire>(url, token, ListShape::Array)
            .await
    }

    async fn activities_range(
        &self,
        token: &AccessToken,
        range: DateRange,
    ) -> Result<Records<DailyActivity>, PolarError> {
        // The documented path has a slash before the query.
        let url = with_range(self.api_url(&["v3", "users", "activities", ""]), range);
        self.list::<ActivityWire>(url, token, ListShape::Array)
            .await
    }

    async fn activity(
        &self,
        token: &AccessToken,
        date: NaiveDate,
    ) -> Result<Option<DailyActivity>, PolarError> {
        let day = date.to_string();
        let url = self.api_url(&["v3", "users", "activities", &day]);
        // The day asked for is the record's day, whatever clock `start_time` follows.
        match self.single_wire::<ActivityWire>(url, token).await? {
            Some(record) => record
                .into_domain_on(date)
                .map_err(|e| PolarError::malformed(e.to_string())),
            None => Ok(None),
        }
    }

    async fn sleeps(&self, token: &AccessToken) -> Result<Records<Sleep>, PolarError> {
        let url = self.api_url(&["v3", "users", "sleep"]);
        self.list::<SleepWire>(url, token, ListShape::Field("nights"))
            .await
    }

    async fn sleep(
        &self,
        token: &AccessToken,
        date: NaiveDate,
    ) -> Result<Option<Sleep>, PolarError> {
        let day = date.to_string();
        let url = self.api_url(&["v3", "users", "sleep", &day]);
        self.single::<SleepWire>(url, token).await
    }

    async fn recharges(&self, token: &AccessToken) -> Result<Records<NightlyRecharge>, PolarError> {
        let url = self.api_url(&["v3", "users", "nightly-recharge"]);
        self.list::<RechargeWire>(url, token, ListShape::Field("recharges"))
            .await
    }

    async fn recharge(
        &self,
        token: &AccessToken,
        date: NaiveDate,
    ) -> Result<Option<NightlyRecharge>, PolarError> {
        let day = date.to_string();
        let url = self.api_url(&["v3", "users", "nightly-recharge", &day]);
        self.single::<RechargeWire>(url, token).await
    }

    async fn cardio_loads(
        &self,
        token: &AccessToken,
        range: CardioLoadRange,
    ) -> Result<Records<CardioLoad>, PolarError> {
        let url = match range {
            CardioLoadRange::Recent => self.api_url(&["v3", "users", "cardio-load"]),
            CardioLoadRange::Dates(range) => {
                with_range(self.api_url(&["v3", "users", "cardio-load", "date"]), range)
            }
            CardioLoadRange::PastDays(days) => {
                let days = days.get().to_string();
                self.api_url(&["v3", "users", "cardio-load", "period", "days", &days])
            }
        };
        self.list::<CardioLoadWire>(url, token, ListShape::Array)
            .await
    }

    async fn alertness(
        &self,
        token: &AccessToken,
        range: Option<DateRange>,
    ) -> Result<Records<Alertness>, PolarError> {
        let url = match range {
            None => self.api_url(&["v3", "users", "sleepwise", "alertness"]),
            Some(range) => with_range(
                self.api_url(&["v3", "users", "sleepwise", "alertness", "date"]),
                range,
            ),
        };
        self.list::<AlertnessWire>(url, token, ListShape::Array)
            .await
    }

    async fn daily_heart_rate(
        &self,
        token: &AccessToken,
        date: NaiveDate,
    ) -> Result<Option<DailyHeartRate>, PolarError> {
        let day = date.to_string();
        let url = self.api_url(&["v3", "users", "continuous-heart-rate", &day]);
        self.single::<DailyHeartRateWire>(url, token).await
    }

    async fn daily_heart_rates(
        &self,
        token: &AccessToken,
        range: DateRange,
    ) -> Result<Records<DailyHeartRate>, PolarError> {
        let url = with_range(
            self.api_url(&["v3", "users", "continuous-heart-rate"]),
            range,
        );
        // Reported to wrap the days as `{"heart_rates": [...]}`, documented as one day's object.
        self.list::<DailyHeartRateWire>(url, token, ListShape::Lenient("heart_rates"))
            .await
    }

    async fn create_webhook(
        &self,
        url: &str,
        events: &[WebhookEventType],
    ) -> Result<CreatedWebhook, PolarError> {
        let request = self
            .request(
                reqwest::Method::POST,
                self.api_url(&["v3", "webhooks"]),
                Auth::Client,
            )?
            .json(&CreateWebhookRequest { events, url });
        let reply = self.send(request).await?;
        match reply.status {
            StatusCode::CREATED | StatusCode::OK => {
                wire::parse_one::<DataEnvelope<CreatedWebhookWire>>(&reply.body)?
                    .data
                    .into_domain()
                    .map_err(|e| PolarError::malformed(e.to_string()))
            }
            StatusCode::CONFLICT => Err(PolarError::BadRequest {
                status: 409,
                detail: "webhook already exists".into(),
            }),
            _ => Err(client_credentials_error(&reply)),
        }
    }

    async fn webhooks(&self) -> Result<Vec<WebhookInfo>, PolarError> {
        let request = self.request(
            reqwest::Method::GET,
            self.api_url(&["v3", "webhooks"]),
            Auth::Client,
        )?;
        let reply = self.send(request).await?;
        match reply.status {
            StatusCode::OK => {
                let listed = wire::parse_one::<DataEnvelope<Vec<WebhookInfoWire>>>(&reply.body)?;
                Ok(listed.data.into_iter().map(WebhookInfo::from).collect())
            }
            StatusCode::NO_CONTENT => Ok(Vec::new()),
            _ => Err(client_credentials_error(&reply)),
        }
    }

    async fn activate_webhook(&self) -> Result<bool, PolarError> {
        let request = self.request(
            reqwest::Method::POST,
            self.api_url(&["v3", "webhooks", "activate"]),
            Auth::Client,
        )?;
        let reply = self.send(request).await?;
        match reply.status {
            StatusCode::OK => Ok(true),
            StatusCode::NO_CONTENT => Ok(false),
            _ => Err(client_credentials_error(&reply)),
        }
    }

    async fn delete_webhook(&self, id: &str) -> Result<(), PolarError> {
        let request = self.request(
            reqwest::Method::DELETE,
            self.api_url(&["v3", "webhooks", id]),
            Auth::Client,
        )?;
        let reply = self.send(request).await?;
        match reply.status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
            StatusCode::NOT_FOUND => Err(PolarError::BadRequest {
                status: 404,
                detail: "webhook not found".into(),
            }),
            _ => Err(client_credentials_error(&reply)),
        }
    }

    fn latest_rate_limit(&self) -> Option<RateLimitObservation> {
        *self
            .latest_rate_limit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// `url` with `?from=&to=` (both inclusive).
fn with_range(mut url: Url, range: DateRange) -> Url {
    url.query_pairs_mut()
        .append_pair("from", &range.from().to_string())
        .append_pair("to", &range.to().to_string());
    url
}

/// The error for a status the endpoint gives no special meaning.
fn status_error(reply: &Reply) -> PolarError {
    let status = reply.status;
    match status.as_u16() {
        401 => PolarError::Unauthorized,
        403 => PolarError::ConsentsMissing,
        429 => PolarError::RateLimited {
            retry_after_seconds: retry_after_seconds(&reply.headers),
        },
        500..=599 => PolarError::Server {
            status: status.as_u16(),
        },
        400..=499 => PolarError::BadRequest {
            status: status.as_u16(),
            detail: client_error_detail(reply),
        },
        other => PolarError::malformed(format!("unexpected HTTP status {other}")),
    }
}

/// Polar's error code if the body has one, else the status's reason phrase; never free text.
fn client_error_detail(reply: &Reply) -> String {
    ErrorBody::code_from(&reply.body).unwrap_or_else(|| {
        reply
            .status
            .canonical_reason()
            .unwrap_or("client error")
            .to_string()
    })
}

/// Like [`status_error`] for endpoints that authenticate our client: a 401 there means our client
/// credentials are wrong, not that an athlete's token died.
fn client_credentials_error(reply: &Reply) -> PolarError {
    match reply.status {
        StatusCode::UNAUTHORIZED => PolarError::InvalidClient,
        _ => status_error(reply),
    }
}

/// Timeouts become [`PolarError::Timeout`]; everything else [`PolarError::Transport`] (without the URL;
/// reqwest never includes headers).
fn transport_error(error: reqwest::Error) -> PolarError {
    if error.is_timeout() {
        return PolarError::Timeout;
    }
    PolarError::transport_from(error)
}

/// One `RateLimit-*` header: two comma-separated integers (short window first).
fn header_pair(headers: &HeaderMap, name: &str) -> Option<(u64, u64)> {
    let text = headers.get(name)?.to_str().ok()?;
    let (short, long) = text.split_once(',')?;
    Some((short.trim().parse().ok()?, long.trim().parse().ok()?))
}

/// `RateLimit-Reset`, unless a window would reset later than any of Polar's can (logged, then ignored).
fn reset_pair(headers: &HeaderMap) -> Option<(u64, u64)> {
    let (short, long) = header_pair(headers, "ratelimit-reset")?;
    if short.max(long) > MAX_BELIEVABLE_WAIT_SECONDS {
        warn!(
            header = "RateLimit-Reset",
            "Polar sent a reset time beyond its 24-hour window; header ignored"
        );
        return None;
    }
    Some((short, long))
}

/// `Retry-After` in seconds, unless longer than any of Polar's windows (logged, then ignored).
fn retry_after_header(headers: &HeaderMap) -> Option<u64> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if seconds > MAX_BELIEVABLE_WAIT_SECONDS {
        warn!(
            header = "Retry-After",
            "Polar asked to wait beyond its 24-hour window; header ignored"
        );
        return None;
    }
    Some(seconds)
}

/// The three `RateLimit-*` headers; `None` when any is missing, malformed or not believable (never an
/// error).
fn parse_rate_limit(headers: &HeaderMap) -> Option<RateLimitInfo> {
    let (short_used, long_used) = header_pair(headers, "ratelimit-usage")?;
    let (short_limit, long_limit) = header_pair(headers, "ratelimit-limit")?;
    let (short_reset_seconds, long_reset_seconds) = reset_pair(headers)?;
    Some(RateLimitInfo {
        short_used,
        short_limit,
        short_reset_seconds,
        long_used,
        long_limit,
        long_reset_seconds,
    })
}

/// How long a 429 asks us to wait: the reset of the window that is exhausted (the later one if both
/// are). When usage shows neither exhausted, or there are no usage figures, the short window is
/// assumed: blocking every athlete for up to a day on an unexplained 429 costs far more than one more
/// 429 with fresh headers.
/// Without a believable `RateLimit-Reset`, a believable `Retry-After` in seconds, else 60 s. Never less
/// than a second, never more than a day and an hour.
fn retry_after_seconds(headers: &HeaderMap) -> u64 {
    let seconds = match reset_pair(headers) {
        Some((short_reset, long_reset)) => {
            let usage = header_pair(headers, "ratelimit-usage");
            let limit = header_pair(headers, "ratelimit-limit");
            match usage.zip(limit) {
                Some(((short_used, long_used), (short_limit, long_limit))) => {
                    match (short_used >= short_limit, long_used >= long_limit) {
                        (true, true) => short_reset.max(long_reset),
                        (false, true) => long_reset,
                        (_, false) => short_reset,
                    }
                }
                None => short_reset,
            }
        }
        None => retry_after_header(headers).unwrap_or(DEFAULT_RETRY_AFTER_SECONDS),
    };
    seconds.max(1)
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;
    use crate::error::testing::{assert_never_shows, assert_refused_connection_without_url};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn client(api: &str) -> PolarClient {
        PolarClient::new(
            PolarEndpoints {
                auth_url: Url::parse("https://flow.polar.com/oauth2/authorization").unwrap(),
                token_url: Url::parse("https://polarremote.com/v2/oauth2/token").unwrap(),
                api_url: Url::parse(api).unwrap(),
            },
            "client-1".into(),
            SecretString::from("CLIENT-SECRET-XYZ"),
            reqwest::Client::new(),
        )
    }

    #[test]
    fn rate_limit_headers_parse_into_both_windows() {
        let info = parse_rate_limit(&headers(&[
            ("RateLimit-Usage", "12, 340"),
            ("RateLimit-Limit", "1500,10000"),
            ("RateLimit-Reset", "512,80000"),
        ]));
        assert_eq!(
            info,
            Some(RateLimitInfo {
                short_used: 12,
                short_limit: 1500,
                short_reset_seconds: 512,
                long_used: 340,
                long_limit: 10000,
                long_reset_seconds: 80000,
            })
        );
    }

    #[test]
    fn malformed_or_partial_rate_limit_headers_are_ignored() {
        let good_limit = ("RateLimit-Limit", "1500,10000");
        let good_reset = ("RateLimit-Reset", "512,80000");
        for usage in ["12", "12,340,5", "a,b", "-1,5", "", "12;340"] {
            assert_eq!(
                parse_rate_limit(&headers(&[
                    ("RateLimit-Usage", usage),
                    good_limit,
                    good_reset
                ])),
                None,
                "{usage:?}"
            );
        }
        assert_eq!(parse_rate_limit(&headers(&[good_limit, good_reset])), None);
        let mut non_text = headers(&[good_limit, good_reset]);
        non_text.insert(
            "RateLimit-Usage",
            HeaderValue::from_bytes(b"1\xff,2").unwrap(),
        );
        assert_eq!(parse_rate_limit(&non_text), None);
    }

    #[test]
    fn retry_after_follows_the_exhausted_window() {
        let short_exhausted = headers(&[
            ("RateLimit-Usage", "1500,4000"),
            ("RateLimit-Limit", "1500,10000"),
            ("RateLimit-Reset", "300,50000"),
        ]);
        assert_eq!(retry_after_seconds(&short_exhausted), 300);
        let long_exhausted = headers(&[
            ("RateLimit-Usage", "20,10000"),
            ("RateLimit-Limit", "1500,10000"),
            ("RateLimit-Reset", "300,50000"),
        ]);
        assert_eq!(retry_after_seconds(&long_exhausted), 50000);
        let both = headers(&[
            ("RateLimit-Usage", "1501,10001"),
            ("RateLimit-Limit", "1500,10000"),
            ("RateLimit-Reset", "300,50000"),
        ]);
        assert_eq!(retry_after_seconds(&both), 50000);
        let neither = headers(&[
            ("RateLimit-Usage", "3,4"),
            ("RateLimit-Limit", "1500,10000"),
            ("RateLimit-Reset", "300,50000"),
        ]);
        assert_eq!(retry_after_seconds(&neither), 300);
    }

    #[test]
    fn retry_after_falls_back_sensibly() {
        assert_eq!(
            retry_after_seconds(&headers(&[("RateLimit-Reset", "240,9000")])),
            240
        );
        assert_eq!(retry_after_seconds(&headers(&[("Retry-After", "17")])), 17);
        assert_eq!(retry_after_seconds(&HeaderMap::new()), 60);
        assert_eq!(
            retry_after_seconds(&headers(&[("RateLimit-Reset", "garbage")])),
            60
        );
        assert_eq!(
            retry_after_seconds(&headers(&[
                ("RateLimit-Usage", "1500,1"),
                ("RateLimit-Limit", "1500,10000"),
                ("RateLimit-Reset", "0,50000"),
            ])),
            1
        );
    }

    #[test]
    fn rate_limit_headers_asking_for_absurd_waits_are_ignored() {
        for reset in [
            "18446744073709551615,18446744073709551615",
            "900,9223372036854775807",
            "90001,80000",
        ] {
            let absurd = headers(&[
                ("RateLimit-Usage", "1500,4000"),
                ("RateLimit-Limit", "1500,10000"),
                ("RateLimit-Reset", reset),
            ]);
            assert_eq!(parse_rate_limit(&absurd), None, "{reset}");
            assert_eq!(retry_after_seconds(&absurd), 60, "{reset}");
        }
        for retry_after in ["18446744073709551615", "9223372036854775807", "90001"] {
            assert_eq!(
                retry_after_seconds(&headers(&[("Retry-After", retry_after)])),
                60,
                "{retry_after}"
            );
        }
        // Polar's own extremes are believed.
        let longest = headers(&[
            ("RateLimit-Usage", "20,10000"),
            ("RateLimit-Limit", "1500,10000"),
            ("RateLimit-Reset", "900,86400"),
        ]);
        assert_eq!(retry_after_seconds(&longest), 86_400);
        assert!(parse_rate_limit(&longest).is_some());
    }

    #[test]
    fn authorization_url_carries_every_parameter_encoded() {
        let state = AuthState::generate();
        let link = client("https://www.polaraccesslink.com")
            .authorization_url(&state, "https://api.example.com/prod/polar/callback");
        let url = Url::parse(&link).unwrap();
        assert_eq!(url.host_str(), Some("flow.polar.com"));
        assert_eq!(url.path(), "/oauth2/authorization");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            vec![
                ("response_type".into(), "code".into()),
                ("client_id".into(), "client-1".into()),
                (
                    "redirect_uri".into(),
                    "https://api.example.com/prod/polar/callback".into()
                ),
                ("scope".into(), "accesslink.read_all".into()),
                ("state".into(), state.as_str().into()),
            ]
        );
        assert!(!link.contains("CLIENT-SECRET"));
    }

    #[test]
    fn api_urls_append_encoded_segments_to_the_base() {
        let root = client("https://www.polaraccesslink.com");
        assert_eq!(
            root.api_url(&["v3", "users", "activities", ""]).as_str(),
            "https://www.polaraccesslink.com/v3/users/activities/"
        );
        let prefixed = client("http://127.0.0.1:8080/polar/");
        assert_eq!(
            prefixed.api_url(&["v3", "webhooks", "a b/c"]).as_str(),
            "http://127.0.0.1:8080/polar/v3/webhooks/a%20b%2Fc"
        );
    }

    #[test]
    fn debug_output_hides_the_client_secret() {
        let printed = format!("{:?}", client("https://www.polaraccesslink.com"));
        assert!(!printed.contains("CLIENT-SECRET"), "{printed}");
        assert!(printed.contains("client-1"));
    }

    #[tokio::test]
    async fn a_request_that_fails_keeps_reqwest_s_error_but_never_its_url_or_credentials() {
        let base = crate::error::testing::closed_port();
        let client = PolarClient::new(
            PolarEndpoints {
                auth_url: Url::parse("https://flow.polar.com/oauth2/authorization").unwrap(),
                token_url: Url::parse(&format!("{base}/v2/oauth2/token?code=SECRET-IN-URL"))
                    .unwrap(),
                api_url: Url::parse(&format!("{base}/?state=SECRET-IN-URL")).unwrap(),
            },
            "client-1".into(),
            SecretString::from("CLIENT-SECRET-XYZ"),
            reqwest::Client::new(),
        );
        let token = AccessToken::new("POLAR-TOKEN-SECRET");
        let failures = [
            client.exercises(&token).await.unwrap_err(),
            client
                .exchange_code(&AuthCode::new("AUTH-CODE-SECRET"), "https://cb/?r=SECRET")
                .await
                .unwrap_err(),
        ];

        for error in failures {
            let PolarError::Transport {
                source: Some(source),
                ..
            } = &error
            else {
                panic!("expected Transport with a source, got {error:?}");
            };
            assert_refused_connection_without_url(source);
            assert_never_shows(&error, "SECRET");
            assert!(error.is_transient());
        }
    }

    #[test]
    fn a_body_that_is_not_json_keeps_the_syntax_error_but_a_field_error_keeps_no_value() {
        // A token response cut short: the JSON error names a position, not the token.
        let Err(truncated) = wire::parse_one::<TokenResponse>(br#"{"access_token": "TOKEN-SECRET"#)
        else {
            panic!("a truncated body does not parse");
        };
        let PolarError::Malformed {
            source: Some(source),
            ..
        } = &truncated
        else {
            panic!("expected Malformed with a source, got {truncated:?}");
        };
        assert!(source.downcast_ref::<serde_json::Error>().unwrap().is_eof());
        assert!(truncated.is_transient());

        // A field of the wrong type: serde's error quotes the value, so none is kept.
        let Err(wrong_type) = wire::parse_one::<TokenResponse>(
            br#"{"access_token": "TOKEN-SECRET", "x_user_id": "TOKEN-SECRET"}"#,
        ) else {
            panic!("a user id that is not a number does not parse");
        };
        assert!(matches!(
            &wrong_type,
            PolarError::Malformed { source: None, .. }
        ));
        // And a data error handed to `not_json` is not kept either.
        let data = serde_json::from_str::<u64>(r#""TOKEN-SECRET""#).unwrap_err();
        let handed = PolarError::not_json("body is not JSON", data);
        assert!(matches!(
            &handed,
            PolarError::Malformed { source: None, .. }
        ));

        for error in [truncated, wrong_type, handed] {
            assert_never_shows(&error, "TOKEN-SECRET");
        }
    }

    #[test]
    fn status_errors_map_by_meaning() {
        let reply = |status: u16, body: &'static str| Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from_static(body.as_bytes()),
        };
        assert!(matches!(
            status_error(&reply(401, "")),
            PolarError::Unauthorized
        ));
        assert!(matches!(
            status_error(&reply(403, "")),
            PolarError::ConsentsMissing
        ));
        assert!(matches!(
            status_error(&reply(429, "")),
            PolarError::RateLimited {
                retry_after_seconds: 60
            }
        ));
        assert!(matches!(
            status_error(&reply(503, "")),
            PolarError::Server { status: 503 }
        ));
        assert!(matches!(
            status_error(&reply(400, r#"{"errorType":"BAD_DATE","message":"no"}"#)),
            PolarError::BadRequest { status: 400, detail } if detail == "BAD_DATE"
        ));
        assert!(matches!(
            status_error(&reply(418, "<html>teapot</html>")),
            PolarError::BadRequest { status: 418, detail } if detail == "I'm a teapot"
        ));
        assert!(matches!(
            status_error(&reply(302, "")),
            PolarError::Malformed { message: m, .. } if m == "unexpected HTTP status 302"
        ));
        assert!(matches!(
            client_credentials_error(&reply(401, "")),
            PolarError::InvalidClient
        ));
    }
}
