//! `polar-webhook`: `POST /polar/webhook`. Verifies Polar's signature over the raw body, answers PING,
//! queues a targeted sync and answers at once.

use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::clock::Clock;
use shared::edge::{header, is_route};
use shared::error::Disposition;
use shared::metrics::Metrics;
use shared::queue::JobQueue;
use shared::store::{AthleteStore, MarkerStore, SettingsStore};
use shared::usecase::webhook::{WebhookError, WebhookOutcome, WebhookPorts};
use tracing::{error, warn};

/// Polar's event header.
pub const EVENT_HEADER: &str = "polar-webhook-event";
/// Polar's signature header.
pub const SIGNATURE_HEADER: &str = "polar-webhook-signature";

/// Handles one delivery.
pub async fn handle<S, Q, C>(
    ports: WebhookPorts<'_, S, Q, C>,
    request: Request,
) -> Result<Response<Body>, lambda_http::Error>
where
    S: AthleteStore + MarkerStore + SettingsStore,
    Q: JobQueue,
    C: Clock,
{
    if !is_route(&request, "POST", "/polar/webhook") {
        return Ok(reply(404, json!({"error": "not found"})));
    }
    let body: &[u8] = request.body().as_ref();
    let mut metrics = Metrics::new("polar-webhook");
    let response = match ports
        .webhook(
            header(&request, EVENT_HEADER),
            header(&request, SIGNATURE_HEADER),
            body,
        )
        .await
    {
        Ok(outcome) => {
            let name = match outcome {
                WebhookOutcome::Ping => "WebhookPings",
                WebhookOutcome::Queued { .. } => "WebhookDeliveries",
                WebhookOutcome::Duplicate => "WebhookDuplicates",
                WebhookOutcome::Ignored(_) => "WebhookIgnored",
            };
            metrics.count(name, 1);
            reply(200, json!({"status": "ok"}))
        }
        Err(e) => {
            metrics.count("WebhookRejected", 1);
            // The body says only what the sender can act on: a store error's text is ours, not Polar's.
            let (status, public) = match &e {
                WebhookError::BadSignature | WebhookError::NotConfigured => {
                    (401, "signature missing or invalid".to_string())
                }
                WebhookError::Malformed(_) => (400, e.to_string()),
                WebhookError::Store(_) => (503, "temporarily unavailable; retry".to_string()),
            };
            match e.disposition() {
                Disposition::Retry | Disposition::Bug => {
                    error!(error = %e, outcome = "failed", "webhook delivery failed")
                }
                Disposition::Reject | Disposition::Defer(_) | Disposition::Reauthorise => {
                    warn!(error = %e, outcome = "rejected", "webhook delivery refused")
                }
            }
            reply(status, json!({"error": public}))
        }
    };
    metrics.emit(ports.clock.now());
    Ok(response)
}

fn reply(status: u16, body: serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}
