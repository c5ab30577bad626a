//! The connector's use cases, written once over the ports so every function, the admin CLI and the
//! tests run the same code: linking (web and Athlete app), the roster scan, revoking, fan-out, the
//! per-athlete sync and webhooks.

use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;

use crate::clock::Clock;
use crate::config::{BackfillDays, Config, Secrets, SyncInterval};
use crate::crypto::{LinkSigner, TokenCipher};
use crate::ids::AthleteUuid;
use crate::mapping::Mapping;
use crate::model::Athlete;
use crate::polar::PolarApi;
use crate::queue::{JobKind, JobQueue, Outgoing, SyncJob};
use crate::smartabase::{ProfileEntry, SmartabaseApi, SmartabaseError};
use crate::store::{AthleteStore, Store, StoreError};
use tracing::warn;

pub mod backfill;
pub mod fanout;
pub mod link;
pub mod revoke;
pub mod scan;
pub mod sync;
pub mod webhook;

/// Settings the use cases need beyond the ports.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `{PUBLIC_BASE_URL}/polar/callback`, exactly as registered at Polar.
    pub redirect_uri: String,
    /// `{PUBLIC_BASE_URL}/polar/authorize`, where athletes' links point.
    pub authorize_endpoint: String,
    /// Per-athlete sync interval.
    pub sync_interval: SyncInterval,
    /// History fetched once after linking (`BACKFILL_DAYS`).
    pub backfill_days: BackfillDays,
    /// Revoke-hook HMAC key.
    pub revoke_hook_secret: SecretString,
    /// Polar webhook signing secret, once a webhook is registered.
    pub polar_webhook_secret: Option<SecretString>,
    /// How long the OAuth callback may spend on Polar and Smartabase before it answers and leaves the
    /// rest to the scan ([`link::CALLBACK_BUDGET`]; tests shorten it).
    pub callback_budget: std::time::Duration,
}

impl Settings {
    /// Settings from the environment and the secret.
    pub fn new(config: &Config, secrets: &Secrets) -> Self {
        Self {
            redirect_uri: config.redirect_uri(),
            authorize_endpoint: config.authorize_endpoint(),
            sync_interval: config.sync_interval,
            backfill_days: config.backfill_days,
            revoke_hook_secret: secrets.revoke_hook_secret.clone(),
            polar_webhook_secret: secrets.polar_webhook_secret.clone(),
            callback_budget: link::CALLBACK_BUDGET,
        }
    }
}

/// Everything a use case runs on: the ports plus keys and settings. Built once per container.
pub struct Connector<S, Q, P, B, C> {
    /// Durable state.
    pub store: S,
    /// The sync queue.
    pub queue: Q,
    /// Polar.
    pub polar: P,
    /// Smartabase.
    pub smartabase: B,
    /// Time.
    pub clock: C,
    /// Seals tokens.
    pub cipher: TokenCipher,
    /// Signs athletes' links.
    pub signer: LinkSigner,
    /// Form and field names.
    pub mapping: Mapping,
    /// URLs, interval and hook secrets.
    pub settings: Settings,
    /// The webhook's memory of its last recorded delivery, kept for the container's life.
    pub last_delivery: webhook::LastDelivery,
}

impl<S, Q, P, B, C> Connector<S, Q, P, B, C> {
    /// The ports the fan-out uses.
    pub fn fanout_ports(&self) -> fanout::FanoutPorts<'_, S, Q, C> {
        fanout::FanoutPorts {
            store: &self.store,
            queue: &self.queue,
            clock: &self.clock,
            mapping: &self.mapping,
            settings: &self.settings,
        }
    }

    /// The ports the webhook uses.
    pub fn webhook_ports(&self) -> webhook::WebhookPorts<'_, S, Q, C> {
        webhook::WebhookPorts {
            store: &self.store,
            queue: &self.queue,
            clock: &self.clock,
            mapping: &self.mapping,
            settings: &self.settings,
            last_delivery: &self.last_delivery,
        }
    }
}

impl<S, Q, P, B, C> Connector<S, Q, P, B, C>
where
    S: Store,
    Q: JobQueue,
    P: PolarApi,
    B: SmartabaseApi,
    C: Clock,
{
    /// Now.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The signed authorisation link of `athlete`, valid for [`LinkSigner::VALIDITY_DAYS`] from `now`.
    pub fn authorisation_link(&self, athlete: &AthleteUuid, now: DateTime<Utc>) -> String {
        self.signer.url(
            &self.settings.authorize_endpoint,
            athlete,
            now + Duration::days(LinkSigner::VALIDITY_DAYS),
        )
    }

    /// [`update_athlete`] on this connector's store.
    pub async fn update_athlete(
        &self,
        uuid: &AthleteUuid,
        change: impl Fn(&mut Athlete),
    ) -> Result<Athlete, StoreError> {
        update_athlete(&self.store, uuid, change).await
    }

    /// [`enqueue_now`] on this connector's store and queue.
    pub async fn enqueue_now(
        &self,
        athlete: &AthleteUuid,
        kind: JobKind,
        now: DateTime<Utc>,
    ) -> bool {
        enqueue_now(&self.store, &self.queue, athlete, kind, now).await
    }

    /// [`Self::update_athlete`] from `known`, the athlete as the caller last read or wrote it: no read
    /// unless someone else wrote since (the version check then fails and the change is applied to a
    /// fresh read), no write when the change leaves `known` as it is.
    pub(crate) async fn update_known_athlete(
        &self,
        known: &Athlete,
        change: impl Fn(&mut Athlete),
    ) -> Result<Athlete, StoreError> {
        let mut athlete = known.clone();
        change(&mut athlete);
        if &athlete == known {
            return Ok(athlete);
        }
        match self.store.save_athlete(&athlete).await {
            Err(StoreError::Conflict(_)) => self.update_athlete(&known.uuid, change).await,
            saved => saved,
        }
    }

    /// Writes the athlete's status (and Polar user id, link time) into their `Polar Access Token` profile,
    /// read-modify-write so fields the connector does not own survive. Never writes a token.
    pub async fn write_access_token_profile(
        &self,
        athlete: &Athlete,
        access_token_field: Option<&str>,
    ) -> Result<(), SmartabaseError> {
        self.write_access_token_profile_as(athlete, athlete.profile_label(), access_token_field)
            .await
    }

    /// [`Self::write_access_token_profile`] with another `Status` than the athlete's own: the outcome of
    /// a link attempt that changed nothing (consents missing, another athlete's Polar account).
    pub async fn write_access_token_profile_as(
        &self,
        athlete: &Athlete,
        status: &str,
        access_token_field: Option<&str>,
    ) -> Result<(), SmartabaseError> {
        let Some(user) = athlete.smartabase_user_id else {
            return Ok(());
        };
        let spec = &self.mapping.access_token;
        let existing = self.smartabase.profiles(&spec.form, &[user]).await?;
        let mut entry = existing.into_iter().next().unwrap_or_else(|| ProfileEntry {
            form: spec.form.clone(),
            user_id: user,
            fields: Default::default(),
        });
        let mut set = |role: &str, value: Option<String>| {
            if let (Some(name), Some(value)) = (spec.field(role), value) {
                entry.fields.insert(name.to_string(), value);
            }
        };
        set("status", Some(status.to_string()));
        set(
            "polar_user_id",
            athlete.polar_user_id.map(|id| id.to_string()),
        );
        set("linked_at", athlete.linked_at.map(format_instant));
        set("access_token", access_token_field.map(str::to_string));
        self.smartabase.save_profile(&entry).await
    }
}

/// Re-reads the athlete, applies `change`, writes with the version check (skipped when nothing changed),
/// and retries on conflicts (the callback, the scan, the revoke hook and workers may touch one athlete at
/// once).
pub async fn update_athlete<S: AthleteStore>(
    store: &S,
    uuid: &AthleteUuid,
    change: impl Fn(&mut Athlete),
) -> Result<Athlete, StoreError> {
    const ATTEMPTS: usize = 6;
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let stored = store.get_athlete(uuid).await?;
        let mut athlete = stored.clone().unwrap_or_else(|| Athlete::new(uuid.clone()));
        change(&mut athlete);
        if stored.as_ref() == Some(&athlete) {
            // Nothing changed: no write (the scan visits every athlete every two hours).
            return Ok(athlete);
        }
        match store.save_athlete(&athlete).await {
            Ok(saved) => return Ok(saved),
            Err(StoreError::Conflict(what)) => last = Some(what),
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict(last.unwrap_or_default()))
}

/// Queues a job for `athlete` now, guarded by the queued marker; `false` if it was not queued (already
/// queued, or the queue failed — the athlete stays due, so the fan-out takes it).
pub async fn enqueue_now<S: AthleteStore, Q: JobQueue>(
    store: &S,
    queue: &Q,
    athlete: &AthleteUuid,
    kind: JobKind,
    now: DateTime<Utc>,
) -> bool {
    let until = now + QUEUED_MARKER_TTL;
    match store.mark_queued(athlete, until, now).await {
        Ok(true) => {}
        Ok(false) => return false,
        Err(e) => {
            warn!(athlete = %athlete, error = %e, "could not mark the athlete queued");
            return false;
        }
    }
    let job = SyncJob::new(athlete.clone(), kind, Vec::new(), now);
    match queue
        .send_batch(&[Outgoing {
            job,
            delay_seconds: 0,
        }])
        .await
    {
        Ok(failed) if failed.is_empty() => true,
        result => {
            warn!(athlete = %athlete, queue_error = ?result.err(), "could not queue a sync job");
            if let Err(e) = store.clear_queued(athlete).await {
                warn!(athlete = %athlete, error = %e, "could not clear the queued marker");
            }
            false
        }
    }
}

/// How the connector writes an instant into a text field a coach reads: `27/11/2026 10:15 AM UTC`.
pub fn format_instant(at: DateTime<Utc>) -> String {
    format!(
        "{} {} UTC",
        crate::smartabase::format_date(at.date_naive()),
        crate::smartabase::format_time(at.time())
    )
}

/// What profile-form `Access Token` value means "the connector holds it".
pub const STORED_TOKEN_MARKER: &str = "stored";

/// How long the queued marker keeps the fan-out from queueing an athlete again; the worker clears it when
/// the job ends, so this only matters for jobs lost or parked in the DLQ.
pub const QUEUED_MARKER_TTL: Duration = Duration::hours(2);

/// The instant `margin_seconds` before a Lambda invocation's deadline (epoch milliseconds), for
/// use cases that stop in time and leave a continuation.
pub fn deadline_before(deadline_epoch_ms: u64, margin_seconds: u64) -> std::time::Instant {
    let now_ms = Utc::now().timestamp_millis().max(0) as u64;
    let remaining = deadline_epoch_ms
        .saturating_sub(now_ms)
        .saturating_sub(margin_seconds.saturating_mul(1000));
    let now = std::time::Instant::now();
    // A deadline past what an `Instant` can hold is no deadline a run can reach: a day is as good.
    now.checked_add(std::time::Duration::from_millis(remaining))
        .unwrap_or(now + std::time::Duration::from_secs(24 * 3600))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_lambda_deadline_of_any_size_gives_an_instant_without_panicking() {
        let before = Instant::now();
        assert!(deadline_before(0, 5) <= Instant::now());
        assert!(deadline_before(u64::MAX, u64::MAX) <= Instant::now());
        let far = deadline_before(u64::MAX, 0);
        assert!(far > before + Duration::from_secs(3600));
    }
}
