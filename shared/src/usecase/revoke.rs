//! Revoking: the signed revoke hook (Smartabase's Athlete-app toggle), the operator's `connector revoke`,
//! and deregistration at Polar. Idempotent: revoking a revoked athlete answers the same and changes nothing.

use serde::Deserialize;
use tracing::{Span, info, warn};

use super::Connector;
use crate::clock::Clock;
use crate::crypto::{RevokeSignatureError, verify_revoke_signature};
use crate::error::Disposition;
use crate::ids::AthleteUuid;
use crate::model::AthleteStatus;
use crate::polar::{Deregistration, PolarApi};
use crate::queue::JobQueue;
use crate::smartabase::SmartabaseApi;
use crate::store::{Store, StoreError};

/// Result of a revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The athlete was linked (or awaiting reauthorisation) and is now revoked.
    Revoked,
    /// Nothing to do: already revoked, never linked, or a replay of a request already handled.
    AlreadyRevoked,
}

/// Why a revoke was refused.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// Bad, missing or stale signature: 401, nothing changed.
    #[error("revoke request not authenticated: {0}")]
    Unauthenticated(#[source] RevokeSignatureError),
    /// The body is not `{"athlete_uuid": "<uuid>"}`.
    #[error("revoke request body is invalid: {0}")]
    BadRequest(String),
    /// No such athlete: 404.
    #[error("unknown athlete")]
    UnknownAthlete,
    /// The store failed: 5xx, the caller retries.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RevokeError {
    /// What the failure calls for.
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::Store(_) => Disposition::Retry,
            _ => Disposition::Reject,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    athlete_uuid: String,
}

impl<S, Q, P, B, C> Connector<S, Q, P, B, C>
where
    S: Store,
    Q: JobQueue,
    P: PolarApi,
    B: SmartabaseApi,
    C: Clock,
{
    /// `POST /polar/revoke`: verifies the timestamped signature over the raw body before reading it, then
    /// revokes. A request signed before the athlete's current link was made (a replay, within the
    /// five-minute window, of a revoke that preceded a re-link) changes nothing.
    pub async fn revoke_hook(
        &self,
        signature_header: Option<&str>,
        body: &[u8],
    ) -> Result<RevokeOutcome, RevokeError> {
        let now = self.now();
        let signed_at = verify_revoke_signature(
            &self.settings.revoke_hook_secret,
            signature_header,
            body,
            now,
        )
        .map_err(RevokeError::Unauthenticated)?;
        let parsed: RevokeBody = serde_json::from_slice(body).map_err(|_| {
            RevokeError::BadRequest("expected {\"athlete_uuid\": \"<uuid>\"}".into())
        })?;
        let athlete = AthleteUuid::parse(parsed.athlete_uuid)
            .map_err(|e| RevokeError::BadRequest(e.to_string()))?;
        // Named on the request's span (if it has the field) once the signature vouched for the body.
        Span::current().record("athlete", athlete.as_str());
        let current = self
            .store
            .get_athlete(&athlete)
            .await?
            .ok_or(RevokeError::UnknownAthlete)?;
        // `t` has whole seconds: a link made in the same second as the signature does not make the
        // request stale, or a revoke right after linking would be ignored.
        if current
            .linked_at
            .is_some_and(|linked| linked.timestamp() > signed_at.timestamp())
        {
            info!(athlete = %athlete, outcome = "stale", "revoke request predates the current link; ignored");
            return Ok(RevokeOutcome::AlreadyRevoked);
        }
        self.revoke_athlete(&athlete, "revoke hook").await
    }

    /// Revokes `athlete`: deregisters at Polar (401/404 there = already gone), deletes the token, marks
    /// `Revoked` here and in the profile. Jobs already queued for the athlete become no-ops. If Polar is
    /// unreachable the athlete is still revoked at once and the token kept sealed until the scan
    /// completes the deregistration.
    pub async fn revoke_athlete(
        &self,
        athlete: &AthleteUuid,
        origin: &'static str,
    ) -> Result<RevokeOutcome, RevokeError> {
        let now = self.now();
        let current = self
            .store
            .get_athlete(athlete)
            .await?
            .ok_or(RevokeError::UnknownAthlete)?;
        let token_held = self.store.get_token(athlete).await?.is_some();
        if matches!(
            current.status,
            AthleteStatus::Revoked | AthleteStatus::Unlinked | AthleteStatus::Removed
        ) && !token_held
        {
            info!(athlete = %athlete, origin, outcome = "already_revoked", "revoke: nothing to do");
            return Ok(RevokeOutcome::AlreadyRevoked);
        }
        let revoked = self
            .update_athlete(athlete, |a| {
                if a.status.holds_link() {
                    a.set_status(AthleteStatus::Revoked, now);
                }
                a.queued_until = None;
            })
            .await?;
        let deregistered = self.deregister(athlete).await?;
        if let Err(e) = self.write_access_token_profile(&revoked, None).await {
            warn!(athlete = %athlete, error = %e, "could not write Revoked to the profile form; the scan retries");
        }
        info!(athlete = %athlete, origin, deregistered, outcome = "revoked", "athlete revoked");
        Ok(RevokeOutcome::Revoked)
    }

    /// Deregisters the athlete at Polar with their token and deletes the token. `Ok(false)` if Polar could
    /// not be reached: the sealed token stays for a later attempt.
    pub async fn deregister(&self, athlete: &AthleteUuid) -> Result<bool, StoreError> {
        let Some(stored) = self.store.get_token(athlete).await? else {
            return Ok(true);
        };
        let polar_user = match stored.polar_user_id {
            Some(id) => Some(id),
            None => self
                .store
                .get_athlete(athlete)
                .await?
                .and_then(|a| a.polar_user_id),
        };
        match (self.cipher.open(athlete, &stored.sealed), polar_user) {
            (Ok(token), Some(user)) => match self.polar.delete_user(&token, user).await {
                Ok(Deregistration::Deleted | Deregistration::AlreadyGone) => {}
                Err(e) if e.is_transient() => {
                    warn!(athlete = %athlete, error = %e, outcome = "deferred", "Polar deregistration failed; will retry");
                    return Ok(false);
                }
                Err(e) => {
                    warn!(athlete = %athlete, error = %e, "Polar refused deregistration; deleting the token anyway")
                }
            },
            (Ok(_), None) => {
                warn!(athlete = %athlete, "no Polar user id known; token deleted without deregistering")
            }
            (Err(e), _) => {
                warn!(athlete = %athlete, error = %e, "stored token cannot be opened; deleting it")
            }
        }
        self.store.delete_token(athlete).await?;
        Ok(true)
    }
}
