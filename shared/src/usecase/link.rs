//! The web authorisation flow: a signed personal link → Polar consent → the callback that exchanges the
//! code exactly once, registers the athlete at Polar, seals the token and starts the first sync.

use chrono::{DateTime, Duration, Utc};
use tracing::{Span, info, warn};

use super::{Connector, STORED_TOKEN_MARKER};
use crate::clock::Clock;
use crate::crypto::{LinkError, sha256_hex};
use crate::error::Disposition;
use crate::ids::{AthleteUuid, AuthCode, AuthState};
use crate::model::{AthleteStatus, StoredToken, TokenSource};
use crate::polar::{PolarApi, PolarError, Registration};
use crate::queue::{JobKind, JobQueue, Outgoing, SyncJob};
use crate::smartabase::SmartabaseApi;
use crate::store::{Store, StoreError};

/// How long an authorisation attempt (the `state`) stays valid.
pub const STATE_TTL: Duration = Duration::minutes(15);

/// Why `GET /polar/authorize` refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    /// Parameters missing or malformed.
    #[error("the authorisation link is incomplete or malformed")]
    Malformed,
    /// Signature does not match (tampered, or another athlete's link edited).
    #[error("the authorisation link's signature is not valid")]
    BadSignature,
    /// Past its expiry.
    #[error("the authorisation link has expired")]
    Expired,
    /// The state could not be stored.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The query of `GET /polar/authorize` as received.
#[derive(Debug, Clone, Default)]
pub struct AuthorizeRequest {
    /// `athlete`.
    pub athlete: Option<String>,
    /// `exp`.
    pub exp: Option<String>,
    /// `sig`.
    pub sig: Option<String>,
}

/// The query of `GET /polar/callback` as received.
#[derive(Debug, Clone, Default)]
pub struct CallbackRequest {
    /// `code`.
    pub code: Option<AuthCode>,
    /// `state`.
    pub state: Option<String>,
    /// `error` (e.g. `access_denied`).
    pub error: Option<String>,
}

/// What the callback achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    /// Who.
    pub athlete: AthleteUuid,
    /// Whether Polar already had them registered (409).
    pub already_registered: bool,
    /// Whether the first sync was queued right away (else the next fan-out takes it).
    pub first_sync_queued: bool,
}

/// Why the callback did not link the athlete; each is a page telling them what to do.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// No usable `state`/`code` in the query.
    #[error("the callback is missing its state or code")]
    Malformed,
    /// State unknown, already used, or older than 15 minutes (also every replayed callback).
    #[error("this authorisation attempt was already used or has expired")]
    StateUsedOrExpired,
    /// The athlete declined at Polar.
    #[error("access was denied at Polar")]
    AccessDenied,
    /// Polar sent another `error`.
    #[error("Polar reported an authorisation error")]
    PolarReportedError,
    /// The code was refused (expired, reused, redirect mismatch).
    #[error("Polar refused the authorisation code")]
    CodeRefused,
    /// The athlete has not accepted Polar's mandatory consents.
    #[error("mandatory consents are missing at Polar")]
    ConsentsMissing,
    /// Polar failed or timed out; nothing was stored, the athlete can retry.
    #[error("Polar is unavailable: {0}")]
    PolarUnavailable(PolarError),
    /// Our Polar client credentials are wrong (an operator must fix the secret).
    #[error("the connector's Polar client is misconfigured: {0}")]
    Misconfigured(PolarError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sealing failed.
    #[error("token could not be sealed")]
    Crypto,
}

impl CallbackError {
    /// What the failure calls for.
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::PolarUnavailable(_) | Self::Store(_) => Disposition::Retry,
            Self::Misconfigured(_) | Self::Crypto => Disposition::Bug,
            _ => Disposition::Reject,
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
    /// `GET /polar/authorize`: checks the athlete's signed link and returns Polar's authorisation URL with a
    /// fresh single-use state bound to that athlete.
    pub async fn start_authorization(
        &self,
        request: &AuthorizeRequest,
    ) -> Result<String, AuthorizeError> {
        let now = self.now();
        let (Some(athlete), Some(exp), Some(sig)) = (&request.athlete, &request.exp, &request.sig)
        else {
            return Err(AuthorizeError::Malformed);
        };
        let athlete =
            AthleteUuid::parse(athlete.as_str()).map_err(|_| AuthorizeError::Malformed)?;
        // The claimed athlete goes on the request's span (if it has the field), so the outcome line names
        // them whatever happens next.
        Span::current().record("athlete", athlete.as_str());
        let exp: i64 = exp.trim().parse().map_err(|_| AuthorizeError::Malformed)?;
        self.signer
            .verify(&athlete, exp, sig, now)
            .map_err(|e| match e {
                LinkError::BadSignature => AuthorizeError::BadSignature,
                LinkError::Expired => AuthorizeError::Expired,
            })?;
        let state = AuthState::generate();
        self.store
            .put_state(&state, &athlete, now + STATE_TTL)
            .await?;
        info!(athlete = %athlete, outcome = "redirected", "authorisation started");
        Ok(self
            .polar
            .authorization_url(&state, &self.settings.redirect_uri))
    }

    /// `GET /polar/callback`: consumes the state once, exchanges the code once, registers, stores the
    /// sealed token, marks the athlete `Linked`, writes their profile entry and queues the first sync.
    pub async fn complete_authorization(
        &self,
        request: CallbackRequest,
    ) -> Result<Linked, CallbackError> {
        let now = self.now();
        let state = request
            .state
            .as_deref()
            .and_then(|s| AuthState::parse(s).ok())
            .ok_or(CallbackError::Malformed)?;
        // Consuming the state first makes every replay of this callback fail here, before Polar is called.
        let athlete = self
            .store
            .take_state(&state, now)
            .await?
            .ok_or(CallbackError::StateUsedOrExpired)?;
        Span::current().record("athlete", athlete.as_str());
        if let Some(error) = request.error.as_deref() {
            info!(
                polar_error = error,
                "Polar returned an error to the callback"
            );
            return Err(if error == "access_denied" {
                CallbackError::AccessDenied
            } else {
                CallbackError::PolarReportedError
            });
        }
        let code = request.code.ok_or(CallbackError::Malformed)?;
        let grant = self
            .polar
            .exchange_code(&code, &self.settings.redirect_uri)
            .await
            .map_err(|e| match e {
                PolarError::InvalidGrant | PolarError::BadRequest { .. } => {
                    CallbackError::CodeRefused
                }
                PolarError::InvalidClient => CallbackError::Misconfigured(e),
                other => CallbackError::PolarUnavailable(other),
            })?;
        let registration = match self
            .polar
            .register_user(&grant.access_token, &athlete)
            .await
        {
            Ok(r) => r,
            Err(PolarError::ConsentsMissing) => return Err(CallbackError::ConsentsMissing),
            Err(e) => return Err(CallbackError::PolarUnavailable(e)),
        };
        let sealed = self
            .cipher
            .seal(&athlete, &grant.access_token)
            .map_err(|_| CallbackError::Crypto)?;
        let token = StoredToken {
            sealed,
            polar_user_id: Some(grant.polar_user_id),
            issued_at: now,
            expires_at: grant.expires_at(now),
            source: TokenSource::WebFlow,
            fingerprint: sha256_hex(grant.access_token.expose_secret().as_bytes()),
        };
        self.store.put_token(&athlete, &token).await?;
        let linked = self
            .update_athlete(&athlete, |a| {
                a.set_status(AthleteStatus::Linked, now);
                a.polar_user_id = Some(grant.polar_user_id);
                a.linked_at = Some(now);
                a.next_sync_due = Some(now);
                a.last_error = None;
            })
            .await?;
        if let Err(e) = self
            .write_access_token_profile(&linked, Some(STORED_TOKEN_MARKER))
            .await
        {
            // The link itself is complete; the scan writes the profile status on its next pass.
            warn!(athlete = %athlete, error = %e, "could not write the Polar Access Token profile entry");
        }
        let first_sync_queued = self.enqueue_now(&athlete, JobKind::FirstSync, now).await;
        info!(
            athlete = %athlete,
            polar_user_id = %grant.polar_user_id,
            already_registered = registration == Registration::AlreadyRegistered,
            first_sync_queued,
            outcome = "linked",
            "athlete linked through the web flow"
        );
        Ok(Linked {
            athlete,
            already_registered: registration == Registration::AlreadyRegistered,
            first_sync_queued,
        })
    }

    /// Queues a job for `athlete` now, guarded by the queued marker; `false` if it was not queued (already
    /// queued, or the queue failed — the athlete stays due, so the fan-out takes it).
    pub async fn enqueue_now(
        &self,
        athlete: &AthleteUuid,
        kind: JobKind,
        now: DateTime<Utc>,
    ) -> bool {
        let until = now + super::QUEUED_MARKER_TTL;
        match self.store.mark_queued(athlete, until, now).await {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => {
                warn!(athlete = %athlete, error = %e, "could not mark the athlete queued");
                return false;
            }
        }
        let job = SyncJob::new(athlete.clone(), kind, Vec::new(), now);
        match self
            .queue
            .send_batch(&[Outgoing {
                job,
                delay_seconds: 0,
            }])
            .await
        {
            Ok(failed) if failed.is_empty() => true,
            result => {
                warn!(athlete = %athlete, queue_error = ?result.err(), "could not queue a sync job");
                if let Err(e) = self.store.clear_queued(athlete).await {
                    warn!(athlete = %athlete, error = %e, "could not clear the queued marker");
                }
                false
            }
        }
    }
}
