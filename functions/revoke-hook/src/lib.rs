//! `revoke-hook`: `POST /polar/revoke`, signed with `X-Connector-Signature` (design §4).

use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::clock::Clock;
use shared::edge::{header, is_route};
use shared::error::Disposition;
use shared::polar::PolarApi;
use shared::queue::JobQueue;
use shared::smartabase::SmartabaseApi;
use shared::store::Store;
use shared::usecase::Connector;
use shared::usecase::revoke::RevokeError;
use tracing::field::Empty;
use tracing::{Instrument as _, error, info_span, warn};

/// The contract's signature header.
pub const SIGNATURE_HEADER: &str = "x-connector-signature";

/// Handles one request; every outcome a caller can cause is an `Ok` JSON response.
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
    if !is_route(&request, "POST", "/polar/revoke") {
        return Ok(reply(404, json!({"error": "not found"})));
    }
    let signature = header(&request, SIGNATURE_HEADER);
    let body: &[u8] = request.body().as_ref();
    // The use case records the athlete on this span once the signature is verified.
    let span = info_span!("revoke", athlete = Empty);
    let result = connector
        .revoke_hook(signature, body)
        .instrument(span.clone())
        .await;
    Ok(span.in_scope(|| match result {
        Ok(_) => reply(200, json!({"status": "revoked"})),
        Err(e) => {
            let (status, message) = match &e {
                RevokeError::Unauthenticated(_) => (
                    401,
                    "signature missing, invalid or outside the 5-minute window",
                ),
                RevokeError::BadRequest(_) => (400, "body must be {\"athlete_uuid\": \"<uuid>\"}"),
                RevokeError::UnknownAthlete => (404, "unknown athlete"),
                RevokeError::Store(_) => (503, "temporarily unavailable; retry"),
            };
            match e.disposition() {
                Disposition::Retry | Disposition::Bug => {
                    error!(error = %e, outcome = "failed", "revoke failed")
                }
                Disposition::Reject | Disposition::Defer(_) | Disposition::Reauthorise => {
                    warn!(error = %e, outcome = "rejected", "revoke refused")
                }
            }
            reply(status, json!({"error": message}))
        }
    }))
}

fn reply(status: u16, body: serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}
