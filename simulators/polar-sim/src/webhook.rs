//! The client's one webhook: event payloads, HMAC signing, PING, and the background task that
//! delivers events and records each attempt.
//!
//! Auto-deactivation follows Polar: after 7 days (sim clock) without a successful delivery the
//! webhook turns inactive; events for an inactive webhook are not sent (nor recorded).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::error::SimError;
use crate::model::{DeliveryView, RecordKind, WebhookEventRequest, WebhookView};
use crate::state::{Shared, SimState};
use crate::timefmt;

/// Event types a webhook can subscribe to (official enum).
pub(crate) const EVENT_TYPES: [&str; 6] = [
    "EXERCISE",
    "SLEEP",
    "CONTINUOUS_HEART_RATE",
    "SLEEP_WISE_CIRCADIAN_BEDTIME",
    "SLEEP_WISE_ALERTNESS",
    "ACTIVITY_SUMMARY",
];

/// Failing this long without one success deactivates the webhook.
const DEACTIVATE_AFTER: TimeDelta = TimeDelta::days(7);

/// Timeout of one PING or delivery.
pub(crate) const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The registered webhook.
#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    pub id: String,
    pub events: Vec<String>,
    pub url: String,
    pub secret: String,
    pub active: bool,
    pub failing_since: Option<DateTime<Utc>>,
}

impl Webhook {
    pub fn view(&self) -> WebhookView {
        WebhookView {
            id: self.id.clone(),
            events: self.events.clone(),
            url: self.url.clone(),
            active: self.active,
            signature_secret_key: self.secret.clone(),
        }
    }
}

/// One queued delivery.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryJob {
    pub event: String,
    pub polar_user_id: Option<i64>,
    pub url: String,
    pub secret: String,
    pub body: Vec<u8>,
}

/// Lower-case hex HMAC-SHA256 of `body` with `secret`.
pub(crate) fn sign(secret: &str, body: &[u8]) -> String {
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// Sends a PING; Ok only when the receiver answers 200.
pub(crate) async fn ping(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let body = json!({"event": "PING", "timestamp": timefmt::utc_millis(now)}).to_string();
    let response = http
        .post(url)
        .timeout(DELIVERY_TIMEOUT)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Polar-Webhook-Event", "PING")
        .header("Polar-Webhook-Signature", sign(secret, body.as_bytes()))
        .body(body)
        .send()
        .await
        .map_err(|error| format!("ping failed: {error}"))?;
    if response.status() == reqwest::StatusCode::OK {
        Ok(())
    } else {
        Err(format!("ping answered {}", response.status().as_u16()))
    }
}

/// Whether a URL is acceptable for a webhook.
pub(crate) fn valid_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|parsed| matches!(parsed.scheme(), "http" | "https"))
}

/// Whether a list of event names is acceptable.
pub(crate) fn valid_events(events: &[String]) -> bool {
    !events.is_empty()
        && events
            .iter()
            .all(|event| EVENT_TYPES.contains(&event.as_str()))
}

/// The event announcing a record of `kind`; Nightly Recharge and cardio load have none.
fn event_for(kind: RecordKind) -> Option<&'static str> {
    match kind {
        RecordKind::Exercise => Some("EXERCISE"),
        RecordKind::Sleep => Some("SLEEP"),
        RecordKind::Activity => Some("ACTIVITY_SUMMARY"),
        RecordKind::HeartRate => Some("CONTINUOUS_HEART_RATE"),
        RecordKind::Alertness => Some("SLEEP_WISE_ALERTNESS"),
        RecordKind::Recharge | RecordKind::CardioLoad => None,
    }
}

/// The local date an alertness period ends on (its `sleep_period_end_time` in UTC plus the offset).
pub(crate) fn alertness_local_date(body: &serde_json::Map<String, Value>) -> Option<NaiveDate> {
    let end = body.get("sleep_period_end_time")?.as_str()?;
    let end = chrono::NaiveDateTime::parse_from_str(end.get(..19)?, "%Y-%m-%dT%H:%M:%S").ok()?;
    let offset = body.get("sleep_timezone_offset_minutes")?.as_i64()?;
    let local = end.checked_add_signed(TimeDelta::try_minutes(offset)?)?;
    Some(local.date())
}

impl SimState {
    /// Queues the webhook event for a record that just became served, if subscribed.
    pub fn announce(&mut self, polar_user_id: i64, kind: RecordKind, key: &str) {
        let Some(event) = event_for(kind) else {
            return;
        };
        let registered = self
            .accounts
            .get(&polar_user_id)
            .is_some_and(|account| account.registration.is_some());
        let subscribed = self.webhook.as_ref().is_some_and(|webhook| {
            webhook.active && webhook.events.iter().any(|name| name == event)
        });
        if !registered || !subscribed {
            return;
        }
        let (entity_id, date) = match kind {
            RecordKind::Exercise => (Some(key.to_owned()), None),
            RecordKind::Alertness => (
                None,
                self.accounts
                    .get(&polar_user_id)
                    .and_then(|account| account.records.get(&(kind, key.to_owned())))
                    .and_then(|record| alertness_local_date(&record.body)),
            ),
            _ => (None, timefmt::parse_date(key)),
        };
        let range = date.map(|date| (date, date));
        if let Ok(payload) = self.payload(event, Some(polar_user_id), entity_id, date, range) {
            let times = if event == "SLEEP" && self.settings.double_fire_sleep {
                2
            } else {
                1
            };
            for _ in 0..times {
                self.enqueue(event, Some(polar_user_id), &payload);
            }
        }
    }

    /// Sends an event now whatever the subscription or active flag (control API).
    pub fn deliver_now(&mut self, request: WebhookEventRequest) -> Result<(), SimError> {
        if self.webhook.is_none() {
            return Err(SimError::BadRequest("no webhook registered".to_owned()));
        }
        if let Some(id) = request.polar_user_id {
            self.account(id)?;
        }
        let range = request.from.zip(request.to);
        let payload = self.payload(
            &request.event,
            request.polar_user_id,
            request.entity_id,
            request.date,
            range,
        )?;
        self.enqueue(&request.event, request.polar_user_id, &payload);
        Ok(())
    }

    /// Payload per the reference table: `event`, `user_id`, `timestamp`, `url` and `entity_id`
    /// (EXERCISE), `date` (date-based events) or `from` and `to` (SLEEP_WISE_ALERTNESS); PING only
    /// `event`, `timestamp`.
    fn payload(
        &self,
        event: &str,
        polar_user_id: Option<i64>,
        entity_id: Option<String>,
        date: Option<NaiveDate>,
        range: Option<(NaiveDate, NaiveDate)>,
    ) -> Result<Value, SimError> {
        let timestamp = timefmt::utc_millis(self.now());
        if event == "PING" {
            return Ok(json!({"event": "PING", "timestamp": timestamp}));
        }
        let user_id = polar_user_id
            .ok_or_else(|| SimError::BadRequest(format!("{event} needs polar_user_id")))?;
        let base = &self.base_url;
        match event {
            "EXERCISE" => {
                let entity_id = entity_id
                    .ok_or_else(|| SimError::BadRequest("EXERCISE needs entity_id".to_owned()))?;
                Ok(json!({
                    "event": event,
                    "user_id": user_id,
                    "entity_id": entity_id,
                    "timestamp": timestamp,
                    "url": format!("{base}/v3/exercises/{entity_id}"),
                }))
            }
            "SLEEP" | "ACTIVITY_SUMMARY" | "CONTINUOUS_HEART_RATE" => {
                let date =
                    date.ok_or_else(|| SimError::BadRequest(format!("{event} needs date")))?;
                let path = match event {
                    "SLEEP" => "users/sleep",
                    "ACTIVITY_SUMMARY" => "users/activities",
                    _ => "users/continuous-heart-rate",
                };
                Ok(json!({
                    "event": event,
                    "user_id": user_id,
                    "date": date.to_string(),
                    "timestamp": timestamp,
                    "url": format!("{base}/v3/{path}/{date}"),
                }))
            }
            "SLEEP_WISE_ALERTNESS" => {
                let (from, to) = range
                    .ok_or_else(|| SimError::BadRequest(format!("{event} needs from and to")))?;
                Ok(json!({
                    "event": event,
                    "user_id": user_id,
                    "from": from.to_string(),
                    "to": to.to_string(),
                    "timestamp": timestamp,
                    "url": format!("{base}/v3/users/sleepwise/alertness/date?from={from}&to={to}"),
                }))
            }
            other => Err(SimError::BadRequest(format!(
                "cannot send event {other}; use EXERCISE, SLEEP, ACTIVITY_SUMMARY, \
                 CONTINUOUS_HEART_RATE, SLEEP_WISE_ALERTNESS or PING"
            ))),
        }
    }

    fn enqueue(&mut self, event: &str, polar_user_id: Option<i64>, payload: &Value) {
        let Some(webhook) = &self.webhook else {
            return;
        };
        let job = DeliveryJob {
            event: event.to_owned(),
            polar_user_id,
            url: webhook.url.clone(),
            secret: webhook.secret.clone(),
            body: payload.to_string().into_bytes(),
        };
        // The receiver lives as long as the server; a closed channel means shutdown.
        let _ = self.delivery_tx.send(job);
    }

    /// Records an attempt; 7 days without success deactivate the webhook.
    fn record_delivery(
        &mut self,
        job: DeliveryJob,
        signature: String,
        status: Option<u16>,
        error: Option<String>,
    ) {
        let now = self.now();
        let success = status == Some(200);
        if let Some(webhook) = self.webhook.as_mut().filter(|w| w.url == job.url) {
            if success {
                webhook.failing_since = None;
            } else {
                let since = *webhook.failing_since.get_or_insert(now);
                if now - since >= DEACTIVATE_AFTER {
                    webhook.active = false;
                }
            }
        }
        let seq = self.deliveries.last().map_or(1, |last| last.seq + 1);
        self.deliveries.push(DeliveryView {
            seq,
            event: job.event,
            polar_user_id: job.polar_user_id,
            url: job.url,
            body: String::from_utf8_lossy(&job.body).into_owned(),
            signature,
            status,
            error,
            attempted_at: now,
        });
    }
}

/// Delivers queued events one by one until the channel closes.
pub(crate) async fn run_deliveries(
    shared: Arc<Shared>,
    mut jobs: mpsc::UnboundedReceiver<DeliveryJob>,
) {
    while let Some(job) = jobs.recv().await {
        let signature = sign(&job.secret, &job.body);
        let result = shared
            .http
            .post(&job.url)
            .timeout(DELIVERY_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Polar-Webhook-Event", &job.event)
            .header("Polar-Webhook-Signature", &signature)
            .body(job.body.clone())
            .send()
            .await;
        let (status, error) = match result {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(error) => (None, Some(error.to_string())),
        };
        shared.lock().record_delivery(job, signature, status, error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc4231_test_case_2() {
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn only_known_events_and_http_urls_are_accepted() {
        assert!(valid_events(&["EXERCISE".to_owned(), "SLEEP".to_owned()]));
        assert!(!valid_events(&[]));
        assert!(!valid_events(&["NIGHTLY_RECHARGE".to_owned()]));
        assert!(valid_url("https://example.com/hook"));
        assert!(!valid_url("ftp://example.com/hook"));
        assert!(!valid_url("not a url"));
    }
}
