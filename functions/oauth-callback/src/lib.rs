//! `oauth-callback`: `GET /polar/authorize` (signed link → Polar consent, with a cookie binding the attempt
//! to the browser) and `GET /polar/callback` (code → token → linked), answered with small HTML pages, and
//! one EMF metric line per callback.

pub mod pages;

use std::time::Instant;

use cookie::{Cookie, SameSite};
use lambda_http::{Body, Request, RequestExt as _, Response};
use shared::clock::Clock;
use shared::edge::{Query, cookie, is_route};
use shared::error::Disposition;
use shared::ids::{AuthCode, AuthState};
use shared::metrics::Metrics;
use shared::polar::PolarApi;
use shared::queue::JobQueue;
use shared::smartabase::SmartabaseApi;
use shared::store::Store;
use shared::usecase::link::{
    AuthorizeError, AuthorizeRequest, CallbackError, CallbackRequest, Completion, STATE_TTL,
};
use shared::usecase::{Connector, deadline_before};
use tracing::field::Empty;
use tracing::{Instrument as _, error, info_span, warn};

use crate::pages::Page;

/// Start of the name of the cookie binding an attempt to its browser; the rest is the start of the
/// attempt's state, so two attempts in one browser (two tabs) each keep their own.
const BROWSER_COOKIE_PREFIX: &str = "polar_link_";

/// Seconds kept free before the Lambda deadline when it is nearer than the callback's own budget.
const LAMBDA_DEADLINE_MARGIN_SECONDS: u64 = 5;

/// Routes one request. Every outcome a caller can cause is an `Ok` response.
pub async fn handle<S, Q, P, B, C>(
    connector: &Connector<S, Q, P, B, C>,
    request: Request,
) -> Result<Response<Body>, lambda_http::Error>
where
    S: Store,
    Q: JobQueue,
    P: PolarApi,
    B: SmartabaseApi,
    C: Clock,
{
    let query = Query::of(&request);
    // The use cases record the athlete on these spans once they know who it is.
    let response = if is_route(&request, "GET", "/polar/authorize") {
        authorize(connector, &query)
            .instrument(info_span!("authorize", athlete = Empty))
            .await
    } else if is_route(&request, "GET", "/polar/callback") {
        let deadline = callback_deadline(&request, connector.settings.callback_budget);
        callback(connector, &request, &query, deadline)
            .instrument(info_span!("callback", athlete = Empty))
            .await
    } else {
        page(&pages::NOT_FOUND)
    };
    Ok(response)
}

async fn authorize<S, Q, P, B, C>(
    connector: &Connector<S, Q, P, B, C>,
    query: &Query,
) -> Response<Body>
where
    S: Store,
    Q: JobQueue,
    P: PolarApi,
    B: SmartabaseApi,
    C: Clock,
{
    let request = AuthorizeRequest {
        athlete: query.get("athlete"),
        exp: query.get("exp"),
        sig: query.get("sig"),
    };
    match connector.start_authorization(&request).await {
        Ok(started) => {
            let cookie = browser_cookie(
                &connector.settings.redirect_uri,
                browser_cookie_name(&started.state),
                started.browser_secret,
                STATE_TTL.num_seconds(),
            );
            redirect(&started.polar_url, &cookie)
        }
        Err(e) => {
            warn!(error = %e, outcome = "rejected", "authorisation link refused");
            page(match e {
                AuthorizeError::Malformed => &pages::LINK_MALFORMED,
                AuthorizeError::BadSignature => &pages::LINK_BAD_SIGNATURE,
                AuthorizeError::Expired => &pages::LINK_EXPIRED,
                AuthorizeError::Store(_) => &pages::TRY_AGAIN,
            })
        }
    }
}

async fn callback<S, Q, P, B, C>(
    connector: &Connector<S, Q, P, B, C>,
    http_request: &Request,
    query: &Query,
    deadline: Instant,
) -> Response<Body>
where
    S: Store,
    Q: JobQueue,
    P: PolarApi,
    B: SmartabaseApi,
    C: Clock,
{
    let state = query.get("state");
    let cookie_name = state
        .as_deref()
        .and_then(|s| AuthState::parse(s).ok())
        .map(|s| browser_cookie_name(&s));
    let browser_secret = cookie_name
        .as_deref()
        .and_then(|name| cookie(http_request, name));
    // The attempt's cookie has done its job whatever happens: the browser forgets it.
    let cleared = cookie_name
        .as_deref()
        .filter(|_| browser_secret.is_some())
        .map(|name| {
            browser_cookie(
                &connector.settings.redirect_uri,
                name.to_string(),
                String::new(),
                0,
            )
        });
    let request = CallbackRequest {
        code: query.get("code").map(AuthCode::new),
        state,
        error: query.get("error"),
        browser_secret,
    };
    let mut metrics = Metrics::new("oauth-callback");
    let result = connector.complete_authorization(request, deadline).await;
    let (linked, relinked, pending) = match &result {
        Ok(Completion::Linked(l)) => (1, u64::from(l.relinked_from.is_some()), 0),
        Ok(Completion::Pending { .. }) => (0, 0, 1),
        Err(_) => (0, 0, 0),
    };
    let shown = match result {
        Ok(Completion::Linked(_)) => &pages::LINKED,
        Ok(Completion::Pending { .. }) => &pages::LINK_PENDING,
        Err(e) => {
            let shown = match &e {
                CallbackError::Malformed => &pages::LINK_MALFORMED,
                CallbackError::StateUsedOrExpired => &pages::STATE_USED,
                CallbackError::OtherBrowser => &pages::OTHER_BROWSER,
                CallbackError::AccessDenied => &pages::ACCESS_DENIED,
                CallbackError::PolarReportedError => &pages::POLAR_ERROR,
                CallbackError::CodeRefused => &pages::CODE_REFUSED,
                CallbackError::ConsentsMissing => &pages::CONSENTS_MISSING,
                CallbackError::AccountOfAnotherAthlete => &pages::ACCOUNT_OF_ANOTHER_ATHLETE,
                CallbackError::PolarUnavailable(_) | CallbackError::Store(_) => &pages::TRY_AGAIN,
                CallbackError::Misconfigured(_) | CallbackError::Crypto(_) => &pages::OUR_FAULT,
            };
            match e.disposition() {
                Disposition::Retry | Disposition::Bug => {
                    error!(error = %e, outcome = "failed", "callback failed")
                }
                Disposition::Reject | Disposition::Defer(_) | Disposition::Reauthorise => {
                    warn!(error = %e, outcome = "rejected", "callback refused")
                }
            }
            shown
        }
    };
    metrics
        .count("AthletesLinked", linked)
        .count("AthletesRelinked", relinked)
        .count("LinksPending", pending)
        .count(
            "CallbacksRefused",
            u64::from((400..500).contains(&shown.status)),
        )
        .count("CallbacksFailed", u64::from(shown.status >= 500));
    metrics.emit(connector.now());
    let mut response = page(shown);
    if let Some(cleared) = cleared
        && let Ok(value) = lambda_http::http::HeaderValue::from_str(&cleared)
    {
        response
            .headers_mut()
            .append(lambda_http::http::header::SET_COOKIE, value);
    }
    response
}

/// When the callback must have answered: its budget from now, or earlier if the Lambda deadline (when
/// running in Lambda) is nearer.
fn callback_deadline(request: &Request, budget: std::time::Duration) -> Instant {
    let by_budget = Instant::now() + budget;
    match request.lambda_context_ref() {
        Some(context) if context.deadline > 0 => by_budget.min(deadline_before(
            context.deadline,
            LAMBDA_DEADLINE_MARGIN_SECONDS,
        )),
        _ => by_budget,
    }
}

fn browser_cookie_name(state: &AuthState) -> String {
    let start: String = state.as_str().chars().take(16).collect();
    format!("{BROWSER_COOKIE_PREFIX}{start}")
}

/// The path the cookie is sent back on: the redirect URI's directory (`/polar`, or below a stage or a
/// custom domain's base path).
fn cookie_path(redirect_uri: &str) -> String {
    url::Url::parse(redirect_uri)
        .ok()
        .and_then(|u| u.path().strip_suffix("/callback").map(str::to_string))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/polar".to_string())
}

/// `Set-Cookie` for the cookie `name` binding an attempt to this browser: HttpOnly, Secure,
/// SameSite=Lax (sent on Polar's redirect back, a top-level GET), for `max_age_seconds` (0 = forget it).
fn browser_cookie(redirect_uri: &str, name: String, value: String, max_age_seconds: i64) -> String {
    Cookie::build((name, value))
        .path(cookie_path(redirect_uri))
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(max_age_seconds))
        .build()
        .to_string()
}

fn page(page: &Page) -> Response<Body> {
    let mut builder = Response::builder()
        .status(page.status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header("x-content-type-options", "nosniff")
        .header(
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'",
        );
    if page.status == 503 {
        builder = builder.header("retry-after", "120");
    }
    builder.body(Body::from(page.html())).unwrap_or_default()
}

fn redirect(location: &str, set_cookie: &str) -> Response<Body> {
    Response::builder()
        .status(302)
        .header("location", location)
        .header("set-cookie", set_cookie)
        .header("cache-control", "no-store")
        .body(Body::Empty)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::cookie_path;

    #[test]
    fn the_cookie_goes_back_on_the_redirect_uri_s_directory() {
        for (redirect_uri, path) in [
            ("https://connector.example.org/polar/callback", "/polar"),
            (
                "https://abc.execute-api.eu-west-1.amazonaws.com/prod/polar/callback",
                "/prod/polar",
            ),
            (
                "https://club.example.org/base/polar/callback?x=1",
                "/base/polar",
            ),
            // Shapes without a directory to name fall back to the contract's `/polar`.
            ("https://connector.example.org/polar/callback/", "/polar"),
            ("https://connector.example.org/callback", "/polar"),
            ("not a uri", "/polar"),
        ] {
            assert_eq!(cookie_path(redirect_uri), path, "{redirect_uri}");
        }
    }
}
