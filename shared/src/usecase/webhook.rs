//! Polar's webhook: verify the signature over the raw body, answer PING, and queue a job targeted at
//! the announced record. Polar double-fires; duplicates within a short window coalesce. The events of
//! an optional form (`CONTINUOUS_HEART_RATE`, `SLEEP_WISE_ALERTNESS`) are synced only where the site
//! enables the form, and ignored elsewhere (a webhook registered before the form was disabled).

use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Deserialize;
use tracing::{error, info, warn};

use super::{Settings, enqueue_now, update_athlete};
use crate::clock::Clock;
use crate::crypto::verify_webhook_signature;
use crate::error::{Disposition, describe_json_error};
use crate::ids::{AthleteUuid, ExerciseId, PolarUserId};
use crate::mapping::Mapping;
use crate::model::{AthleteStatus, DataKind};
use crate::queue::{JobKind, JobQueue, Outgoing, SyncJob, Target};
use crate::store::{AthleteStore, MarkerStore, SettingsStore, StoreError};

/// Deliveries of the same announcement (same event, record and Polar timestamp) within this window are one.
pub const DUPLICATE_WINDOW: Duration = Duration::minutes(10);

/// The setting holding the time of the last signed delivery (to [`LAST_DELIVERY_RESOLUTION`]).
pub const LAST_DELIVERY_SETTING: &str = "webhook-last-delivery";
/// How stale the recorded last delivery may be.
pub const LAST_DELIVERY_RESOLUTION: Duration = Duration::minutes(1);
/// The setting holding the time of Polar's last ping.
pub const LAST_PING_SETTING: &str = "webhook-last-ping";
/// The dates, counted from today (UTC), a webhook can name a record by: Polar serves a day at most 365
/// days back from the athlete's own today, which can be a day ahead of UTC. Outside them Polar would
/// refuse the date (a job that can never succeed), so such a delivery syncs the athlete fully, like an
/// impossible date.
const TARGET_DAYS_FROM_TODAY: std::ops::RangeInclusive<i64> = -364..=1;

/// What a delivery led to (all answered 200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Polar's handshake.
    Ping,
    /// A targeted job was queued.
    Queued {
        /// For whom.
        athlete: AthleteUuid,
        /// What.
        target: Option<Target>,
    },
    /// The same event arrived again within [`DUPLICATE_WINDOW`].
    Duplicate,
    /// A Polar user the connector does not know, or an athlete not linked (answered 200 so Polar does
    /// not deactivate the webhook).
    Ignored(&'static str),
}

/// A delivery refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No webhook secret configured: nothing can be verified.
    #[error("the Polar webhook secret is not configured")]
    NotConfigured,
    /// Signature missing or wrong: 401.
    #[error("webhook signature missing or invalid")]
    BadSignature,
    /// Signed, but not a payload we understand: 400.
    #[error("webhook payload invalid: {0}")]
    Malformed(String),
    /// The store failed: 5xx so Polar retries.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl WebhookError {
    /// What the failure calls for.
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::Store(_) => Disposition::Retry,
            Self::NotConfigured => Disposition::Bug,
            _ => Disposition::Reject,
        }
    }
}

#[derive(Deserialize)]
struct Payload {
    event: String,
    user_id: Option<i64>,
    entity_id: Option<String>,
    date: Option<String>,
    /// `SLEEP_WISE_ALERTNESS`: the first and last date of the announced periods.
    from: Option<String>,
    to: Option<String>,
    /// Polar's send time: a re-delivery repeats it, a revision of the record carries a new one.
    timestamp: Option<serde_json::Value>,
}

impl Payload {
    /// The record the delivery announces: `Ok(None)` when it names none usable (sync fully), `Err` for
    /// an event type this site does not sync. Dates are Polar's (the athlete's local dates), within
    /// [`TARGET_DAYS_FROM_TODAY`] of `today`.
    fn target(&self, mapping: &Mapping, today: NaiveDate) -> Result<Option<Target>, ()> {
        let day = |text: Option<&str>| {
            text.and_then(|d| NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok())
                .filter(|d| TARGET_DAYS_FROM_TODAY.contains(&(*d - today).num_days()))
        };
        let date = day(self.date.as_deref());
        let optional = |kind: DataKind| mapping.is_enabled(kind);
        Ok(match self.event.as_str() {
            "EXERCISE" => self
                .entity_id
                .as_deref()
                .and_then(|id| ExerciseId::parse(id).ok())
                .map(|id| Target::Exercise { id }),
            "SLEEP" => date.map(|date| Target::Night { date }),
            "ACTIVITY_SUMMARY" => date.map(|date| Target::Activity { date }),
            "CONTINUOUS_HEART_RATE" if optional(DataKind::DailyHeartRate) => {
                date.map(|date| Target::HeartRate { date })
            }
            "SLEEP_WISE_ALERTNESS" if optional(DataKind::Alertness) => {
                match (day(self.from.as_deref()), day(self.to.as_deref())) {
                    (Some(from), Some(to)) if from <= to => Some(Target::Alertness { from, to }),
                    _ => None,
                }
            }
            _ => return Err(()),
        })
    }

    /// The same announcement delivered again (Polar double-fires, or retries) has the same key and
    /// coalesces; a revision of the record is a new announcement (a new timestamp) and always gets its
    /// own job, or it would wait for the next reconciliation.
    fn dedupe_key(&self, user: PolarUserId, target: Option<&Target>) -> String {
        format!(
            "webhook#{user}#{}#{}#{}",
            self.event,
            target.map_or_else(|| "full".to_string(), |t| format!("{t:?}")),
            self.timestamp
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        )
    }
}

/// A function instance's memory of the recorded last delivery: the time it last read there or wrote.
/// While that is under [`LAST_DELIVERY_RESOLUTION`] old, the record needs no write, so a warm instance
/// neither reads nor writes it: at most one read and one write a minute per instance, however many
/// deliveries it serves. One per instance (held beside the ports, which borrow it).
#[derive(Debug, Default)]
pub struct LastDelivery(Mutex<Option<DateTime<Utc>>>);

impl LastDelivery {
    fn is_fresh(&self, now: DateTime<Utc>) -> bool {
        // A poisoned lock still holds a time; bookkeeping never fails a delivery.
        let at = *self.0.lock().unwrap_or_else(PoisonError::into_inner);
        at.is_some_and(|at| is_fresh(at, now))
    }

    fn remember(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(at);
    }
}

/// A record made at `at` needs no rewrite at `now` (one from the future, another instance's clock ahead
/// of this one's, is rewritten).
fn is_fresh(at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let age = now - at;
    age >= Duration::zero() && age < LAST_DELIVERY_RESOLUTION
}

/// The ports the webhook uses: the store, the queue, the clock, the site's mapping (which optional forms
/// it syncs), settings (Polar's signing secret) and the instance's [`LastDelivery`]. No Polar or
/// Smartabase client: `polar-webhook` builds none ([`crate::bootstrap::start_dispatch`]).
pub struct WebhookPorts<'a, S, Q, C> {
    /// Athletes, the duplicate markers and the delivery times.
    pub store: &'a S,
    /// The sync queue.
    pub queue: &'a Q,
    /// Time.
    pub clock: &'a C,
    /// Form and field names.
    pub mapping: &'a Mapping,
    /// Polar's webhook signing secret among them.
    pub settings: &'a Settings,
    /// This instance's memory of the recorded last delivery: it must live as long as the instance.
    pub last_delivery: &'a LastDelivery,
}

impl<S, Q, C> Clone for WebhookPorts<'_, S, Q, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S, Q, C> Copy for WebhookPorts<'_, S, Q, C> {}

impl<S, Q, C> WebhookPorts<'_, S, Q, C>
where
    S: AthleteStore + MarkerStore + SettingsStore,
    Q: JobQueue,
    C: Clock,
{
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Records the time of a signed delivery for `connector webhook status`, at most once per
    /// [`LAST_DELIVERY_RESOLUTION`]: a write per delivery was a tenth of a webhook site's DynamoDB
    /// writes, and a read per delivery most of its settings reads. While the instance's memory says the
    /// record is fresh it is not read either.
    async fn record_delivery(&self, now: DateTime<Utc>) {
        if self.last_delivery.is_fresh(now) {
            return;
        }
        // An unreadable record is rewritten.
        let recorded = match self.store.get_setting(LAST_DELIVERY_SETTING).await {
            Ok(at) => at.and_then(|at| DateTime::parse_from_rfc3339(&at).ok()),
            Err(e) => {
                warn!(error = %e, "could not read the last delivery's time; recording this one");
                None
            }
        };
        if let Some(at) = recorded
            .map(|at| at.with_timezone(&Utc))
            .filter(|at| is_fresh(*at, now))
        {
            self.last_delivery.remember(at);
            return;
        }
        // Bookkeeping: a failed write is logged, and the delivery still queues its job (the next
        // delivery tries again: nothing is remembered).
        match self
            .store
            .put_setting(LAST_DELIVERY_SETTING, &now.to_rfc3339())
            .await
        {
            Ok(()) => self.last_delivery.remember(now),
            Err(e) => warn!(error = %e, "could not record the delivery's time"),
        }
    }

    /// Polar pings before the secret exists (on create and activate); a ping changes nothing. Its time is
    /// bookkeeping: a store hiccup must not fail Polar's handshake.
    async fn record_ping(&self, now: DateTime<Utc>) {
        info!(outcome = "ping", "Polar webhook ping");
        if let Err(e) = self
            .store
            .put_setting(LAST_PING_SETTING, &now.to_rfc3339())
            .await
        {
            warn!(error = %e, "could not record the webhook ping");
        }
    }

    /// Queues the delivery's job: a webhook's job for the announced record, or a full sync when the
    /// payload named none usable (Polar's examples carry impossible dates). If the queue refuses, nothing
    /// is lost: the athlete becomes due and the next fan-out syncs them.
    async fn queue_job(
        &self,
        athlete: &AthleteUuid,
        target: Option<&Target>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let queued = match target {
            Some(t) => {
                let job = SyncJob::new(athlete.clone(), JobKind::Targeted, vec![t.clone()], now);
                let sent = self
                    .queue
                    .send_batch(&[Outgoing {
                        job,
                        delay_seconds: 0,
                    }])
                    .await;
                matches!(sent, Ok(failed) if failed.is_empty())
            }
            None => enqueue_now(self.store, self.queue, athlete, JobKind::Manual, now).await,
        };
        if !queued {
            warn!(athlete = %athlete, "could not queue the webhook's job; athlete marked due");
            update_athlete(self.store, athlete, |a| {
                a.next_sync_due = Some(a.next_sync_due.map_or(now, |d| d.min(now)))
            })
            .await?;
        }
        Ok(())
    }

    /// `POST /polar/webhook`.
    pub async fn webhook(
        &self,
        event_header: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<WebhookOutcome, WebhookError> {
        let now = self.now();
        if event_header.is_some_and(|e| e.eq_ignore_ascii_case("PING")) {
            self.record_ping(now).await;
            return Ok(WebhookOutcome::Ping);
        }
        let Some(secret) = &self.settings.polar_webhook_secret else {
            error!(
                "webhook delivery received but polar_webhook_secret is not configured; run `connector webhook register`"
            );
            return Err(WebhookError::NotConfigured);
        };
        if !verify_webhook_signature(secret, signature, body) {
            warn!(
                outcome = "rejected",
                "webhook delivery with a bad signature"
            );
            return Err(WebhookError::BadSignature);
        }
        let payload: Payload = serde_json::from_slice(body)
            .map_err(|e| WebhookError::Malformed(describe_json_error(&e)))?;
        self.record_delivery(now).await;
        if payload.event.eq_ignore_ascii_case("PING") {
            return Ok(WebhookOutcome::Ping);
        }
        let user = payload
            .user_id
            .and_then(|id| PolarUserId::new(id).ok())
            .ok_or_else(|| WebhookError::Malformed("user_id missing".into()))?;
        let Some(athlete) = self.store.athlete_for_polar_user(user).await? else {
            info!(polar_user_id = %user, outcome = "ignored", "webhook for a Polar user the connector does not know");
            return Ok(WebhookOutcome::Ignored("unknown Polar user"));
        };
        let linked = self
            .store
            .get_athlete(&athlete)
            .await?
            .is_some_and(|a| a.status == AthleteStatus::Linked);
        if !linked {
            info!(athlete = %athlete, outcome = "ignored", "webhook for an athlete who is not linked");
            return Ok(WebhookOutcome::Ignored("athlete not linked"));
        }
        let Ok(target) = payload.target(self.mapping, now.date_naive()) else {
            info!(athlete = %athlete, event = %payload.event, outcome = "ignored", "webhook event type not synced");
            return Ok(WebhookOutcome::Ignored("event type not synced"));
        };
        if !self
            .store
            .claim(
                &payload.dedupe_key(user, target.as_ref()),
                now,
                now + DUPLICATE_WINDOW,
            )
            .await?
        {
            info!(athlete = %athlete, outcome = "duplicate", "webhook delivery coalesced with an earlier one");
            return Ok(WebhookOutcome::Duplicate);
        }
        self.queue_job(&athlete, target.as_ref(), now).await?;
        info!(athlete = %athlete, event = %payload.event, outcome = "queued", "webhook job queued");
        Ok(WebhookOutcome::Queued { athlete, target })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_s_de_duplication_key_is_the_one_earlier_releases_claimed() {
        // Claims outlive a deploy: a key spelled differently would queue a re-delivery twice.
        let payload: Payload = serde_json::from_str(
            r#"{"event":"SLEEP","user_id":4711,"date":"2026-12-06","timestamp":"2026-12-07T05:00:00.000Z"}"#,
        )
        .unwrap();
        let night = NaiveDate::from_ymd_opt(2026, 12, 6).unwrap();
        let target = payload
            .target(&Mapping::defaults(), night + Duration::days(1))
            .unwrap();
        assert_eq!(target, Some(Target::Night { date: night }));
        let user = PolarUserId::new(4711).unwrap();
        assert_eq!(
            payload.dedupe_key(user, target.as_ref()),
            r#"webhook#4711#SLEEP#Night { date: 2026-12-06 }#"2026-12-07T05:00:00.000Z""#
        );
        assert_eq!(
            payload.dedupe_key(user, None),
            r#"webhook#4711#SLEEP#full#"2026-12-07T05:00:00.000Z""#
        );
    }

    #[test]
    fn the_webhook_memory_of_the_last_delivery_is_fresh_for_a_minute_even_after_a_panic() {
        let memory = LastDelivery::default();
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert!(!memory.is_fresh(at), "a cold instance knows nothing");
        memory.remember(at);
        assert!(memory.is_fresh(at + Duration::seconds(59)));
        assert!(!memory.is_fresh(at + LAST_DELIVERY_RESOLUTION));
        assert!(
            !memory.is_fresh(at - Duration::seconds(1)),
            "a time ahead of this clock"
        );
        // A thread that panicked holding the lock leaves the time readable and writable.
        std::thread::scope(|s| {
            let _ = s
                .spawn(|| {
                    let _held = memory.0.lock();
                    panic!("poisons the lock");
                })
                .join();
        });
        assert!(memory.0.is_poisoned());
        assert!(memory.is_fresh(at + Duration::seconds(1)));
        memory.remember(at + Duration::minutes(5));
        assert!(memory.is_fresh(at + Duration::minutes(5)));
    }
}
