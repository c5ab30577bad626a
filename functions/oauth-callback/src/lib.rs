//! `oauth-callback`: `GET /polar/authorize` (signed link → Polar consent) and `GET /polar/callback`
//! (code → token → linked), answered with small HTML pages.

pub mod pages;

use lambda_http::{Body, Request, Response};
use shared::clock::Clock;
use shared::edge::{Query, is_route};
use shared::ids::AuthCode;
use shared::polar::PolarApi;
use shared::queue::JobQueue;
use shared::smartabase::SmartabaseApi;
use shared::store::Store;
use shared::usecase::Connector;
use shared::usecase::link::{AuthorizeError, AuthorizeRequest, CallbackError, CallbackRequest};
use tracing::field::Empty;
use tracing::{Instrument as _, error, info_span, warn};

use crate::pages::Page;

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
        callback(connector, &query)
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
        Ok(polar_url) => redirect(&polar_url),
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
    query: &Query,
) -> Response<Body>
where
    S: Store,
    Q: JobQueue,
    P: PolarApi,
    B: SmartabaseApi,
    C: Clock,
{
    let request = CallbackRequest {
        code: query.get("code").map(AuthCode::new),
        state: query.get("state"),
        error: query.get("error"),
    };
    match connector.complete_authorization(request).await {
        Ok(_) => page(&pages::LINKED),
        Err(e) => {
            let shown = match &e {
                CallbackError::Malformed => &pages::LINK_MALFORMED,
                CallbackError::StateUsedOrExpired => &pages::STATE_USED,
                CallbackError::AccessDenied => &pages::ACCESS_DENIED,
                CallbackError::PolarReportedError => &pages::POLAR_ERROR,
                CallbackError::CodeRefused => &pages::CODE_REFUSED,
                CallbackError::ConsentsMissing => &pages::CONSENTS_MISSING,
                CallbackError::PolarUnavailable(_) | CallbackError::Store(_) => &pages::TRY_AGAIN,
                CallbackError::Misconfigured(_) | CallbackError::Crypto => &pages::OUR_FAULT,
            };
            if shown.status >= 500 {
                error!(error = %e, outcome = "failed", "callback failed");
            } else {
                warn!(error = %e, outcome = "rejected", "callback refused");
            }
            page(shown)
        }
    }
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

fn redirect(location: &str) -> Response<Body> {
    Response::builder()
        .status(302)
        .header("location", location)
        .header("cache-control", "no-store")
        .body(Body::Empty)
        .unwrap_or_default()
}
