//! Linking an athlete's Polar account. The web flow: a signed personal link → Polar consent → the
//! callback, bound to the browser that started it, that exchanges the code exactly once. Then, for the web
//! flow and the Athlete app alike, the Polar side of the link: a replaced Polar account is deregistered
//! (it holds the athlete's `member-id`), the new one registered, the token held and the first sync queued.
//!
//! The code is single use, so once Polar has exchanged it the token is kept before anything that can be
//! slow, as a pending link; the callback finishes what fits in API Gateway's time and the scan the rest.

use std::future::Future;
use std::time::Instant;

use chrono::Duration;
use tracing::{Span, info, warn};

use super::{Connector, STORED_TOKEN_MARKER};
use crate::clock::Clock;
use crate::crypto::{CryptoError, LinkError, matches_sha256_hex, random_hex, sha256_hex};
use crate::error::Disposition;
use crate::ids::{AccessToken, AthleteUuid, AuthCode, AuthState, PolarUserId};
use crate::model::{
    Athlete, AthleteStatus, CONSENTS_MISSING_ERROR, NEEDS_POLAR_CONSENTS,
    POLAR_ACCOUNT_OF_ANOTHER_ATHLETE, PendingLink, StoredToken, SyncCursors, TokenSource,
};
use crate::polar::{PolarApi, PolarError, Registration};
use crate::queue::{JobKind, JobQueue};
use crate::smartabase::SmartabaseApi;
use crate::store::{Store, StoreError};

/// How long an authorisation attempt (the `state`, and the browser cookie bound to it) stays valid.
pub const STATE_TTL: Duration = Duration::minutes(15);

/// How long the callback may wait for Polar and Smartabase in all. API Gateway gives up on the function
/// after 30 s (and the function's own timeout is 29 s); what is left over covers the start-up and the
/// store writes. Work that does not fit is finished by the scan.
pub const CALLBACK_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

/// The first pause between registration attempts within the callback; it doubles after each.
const REGISTRATION_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

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

/// A started authorisation: where to send the browser, and the secret it must bring back.
#[derive(Clone)]
pub struct AuthorizationStart {
    /// Polar's authorisation URL with the fresh state.
    pub polar_url: String,
    /// The fresh state.
    pub state: AuthState,
    /// A random secret for the browser to keep (a cookie) and present at the callback; only its hash is
    /// stored with the state.
    pub browser_secret: String,
}

impl std::fmt::Debug for AuthorizationStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationStart")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The query of `GET /polar/callback` as received, and the browser's secret for its state.
#[derive(Clone, Default)]
pub struct CallbackRequest {
    /// `code`.
    pub code: Option<AuthCode>,
    /// `state`.
    pub state: Option<String>,
    /// `error` (e.g. `access_denied`).
    pub error: Option<String>,
    /// The secret the browser holds for this state (its cookie), if it sent one.
    pub browser_secret: Option<String>,
}

/// A link completed: registered at Polar, token held, athlete `Linked`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    /// Who.
    pub athlete: AthleteUuid,
    /// Whether Polar already had them registered (409).
    pub already_registered: bool,
    /// Whether the first sync was queued right away (else the next fan-out takes it).
    pub first_sync_queued: bool,
    /// The Polar account this link replaced (a re-link to another account).
    pub relinked_from: Option<PolarUserId>,
    /// The same Polar account linked again while linked: a new token, nothing else.
    pub refreshed: bool,
}

/// What the callback achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Linked now.
    Linked(Linked),
    /// The token is held, but Polar did not finish its side in the callback's time: the scan does.
    Pending {
        /// Who.
        athlete: AthleteUuid,
    },
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
    /// The browser does not hold the secret of the browser that started the attempt (a forwarded
    /// consent link, a forged callback, or cookies blocked): nothing was spent or exchanged.
    #[error("the callback came from another browser than the one that started the authorisation")]
    OtherBrowser,
    /// The athlete declined at Polar.
    #[error("access was denied at Polar")]
    AccessDenied,
    /// Polar sent another `error`.
    #[error("Polar reported an authorisation error")]
    PolarReportedError,
    /// The code was refused (expired, reused, redirect mismatch), or the token right after it.
    #[error("Polar refused the authorisation code")]
    CodeRefused,
    /// The athlete has not accepted Polar's mandatory consents.
    #[error("mandatory consents are missing at Polar")]
    ConsentsMissing,
    /// The Polar account signed in is linked to another athlete.
    #[error("the Polar account is linked to another athlete")]
    AccountOfAnotherAthlete,
    /// Polar failed or timed out on the code exchange; nothing was stored, the athlete can retry.
    #[error("Polar is unavailable: {0}")]
    PolarUnavailable(#[source] PolarError),
    /// Our Polar client credentials are wrong (an operator must fix the secret).
    #[error("the connector's Polar client is misconfigured: {0}")]
    Misconfigured(#[source] PolarError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sealing failed.
    #[error("token could not be sealed")]
    Crypto(#[source] CryptoError),
}

impl CallbackError {
    /// What the failure calls for.
    pub fn disposition(&self) -> Disposition {
        match self {
            // Polar's own error on the redirect: the athlete tries again in a few minutes.
            Self::PolarUnavailable(_) | Self::PolarReportedError | Self::Store(_) => {
                Disposition::Retry
            }
            Self::Misconfigured(_) | Self::Crypto(_) => Disposition::Bug,
            _ => Disposition::Reject,
        }
    }
}

/// How far finishing a pending link got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkStep {
    /// Done: linked now.
    Linked(Linked),
    /// Polar did not finish in time, or failed: the pending link stays for the scan.
    Waiting,
    /// Polar wants its mandatory consents accepted first.
    ConsentsMissing,
    /// Polar refused the token (401): the pending link is dropped.
    TokenRefused,
    /// A later link, revoke or removal made this one moot: the pending link is dropped.
    Superseded,
    /// The Polar account is another athlete's link: refused, the pending link is dropped.
    AccountOfAnotherAthlete,
}

/// The link's outcome for the logs (no token: ids and how it came).
fn log_linked(pending: &PendingLink, linked: &Linked) {
    let athlete = &pending.athlete;
    let polar_user_id = pending.token.polar_user_id.map(|id| id.to_string());
    let polar_user_id = polar_user_id.as_deref();
    let source = match pending.token.source {
        TokenSource::WebFlow => "web",
        TokenSource::AthleteApp => "athlete_app",
    };
    let first_sync_queued = linked.first_sync_queued;
    match pending.replaces {
        Some(previous) => info!(
            athlete = %athlete,
            polar_user_id,
            previous_polar_user_id = %previous,
            source,
            first_sync_queued,
            outcome = "relinked",
            "athlete re-linked to another Polar account; the previous one is deregistered"
        ),
        None => info!(
            athlete = %athlete,
            polar_user_id,
            source,
            already_registered = linked.already_registered,
            refreshed = linked.refreshed,
            first_sync_queued,
            outcome = "linked",
            "athlete linked"
        ),
    }
}

/// `fut`, given until `deadline` (if any); `None` when it did not finish in time.
async fn within<T>(deadline: Option<Instant>, fut: impl Future<Output = T>) -> Option<T> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline.into(), fut).await.ok(),
        None => Some(fut.await),
    }
}

/// Whether something that happened to the athlete after `pending`'s token was issued overrides it: a
/// newer token held, or a revoke or removal.
fn superseded(
    pending: &PendingLink,
    athlete: Option<&Athlete>,
    held: Option<&StoredToken>,
) -> bool {
    let issued = pending.token.issued_at;
    held.is_some_and(|h| h.issued_at > issued)
        || athlete.is_some_and(|a| {
            matches!(a.status, AthleteStatus::Revoked | AthleteStatus::Removed)
                && a.status_changed_at.is_some_and(|at| at > issued)
        })
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
    /// fresh single-use state bound to that athlete and to a secret for the browser.
    pub async fn start_authorization(
        &self,
        request: &AuthorizeRequest,
    ) -> Result<AuthorizationStart, AuthorizeError> {
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
        let browser_secret = random_hex(32);
        self.store
            .put_state(
                &state,
                &athlete,
                &sha256_hex(browser_secret.as_bytes()),
                now + STATE_TTL,
            )
            .await?;
        info!(athlete = %athlete, outcome = "redirected", "authorisation started");
        Ok(AuthorizationStart {
            polar_url: self
                .polar
                .authorization_url(&state, &self.settings.redirect_uri),
            state,
            browser_secret,
        })
    }

    /// `GET /polar/callback`: checks the browser, consumes the state once, exchanges the code once, keeps
    /// the token as a pending link and finishes the link with what is left of the time until `deadline`.
    pub async fn complete_authorization(
        &self,
        request: CallbackRequest,
        deadline: Instant,
    ) -> Result<Completion, CallbackError> {
        let now = self.now();
        let state = request
            .state
            .as_deref()
            .and_then(|s| AuthState::parse(s).ok())
            .ok_or(CallbackError::Malformed)?;
        let started = self
            .store
            .get_state(&state, now)
            .await?
            .ok_or(CallbackError::StateUsedOrExpired)?;
        Span::current().record("athlete", started.athlete.as_str());
        // A browser without the secret spends nothing: a forwarded consent link or a forged callback can
        // neither link another account to this athlete nor burn the athlete's own attempt.
        let same_browser = started
            .browser_hash
            .as_deref()
            .zip(request.browser_secret.as_deref())
            .is_some_and(|(hash, secret)| matches_sha256_hex(secret, hash));
        if !same_browser {
            return Err(CallbackError::OtherBrowser);
        }
        // Consuming the state first makes every replay of this callback fail here, before Polar is called.
        let athlete = self
            .store
            .take_state(&state, now)
            .await?
            .ok_or(CallbackError::StateUsedOrExpired)?;
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
        let exchange = self.polar.exchange_code(&code, &self.settings.redirect_uri);
        let grant = within(Some(deadline), exchange)
            .await
            .unwrap_or(Err(PolarError::Timeout))
            .map_err(|e| match e {
                PolarError::InvalidGrant | PolarError::BadRequest { .. } => {
                    CallbackError::CodeRefused
                }
                PolarError::InvalidClient => CallbackError::Misconfigured(e),
                other => CallbackError::PolarUnavailable(other),
            })?;
        let sealed = self
            .cipher
            .seal(&athlete, &grant.access_token)
            .map_err(CallbackError::Crypto)?;
        let pending = PendingLink {
            athlete: athlete.clone(),
            token: StoredToken {
                sealed,
                polar_user_id: Some(grant.polar_user_id),
                issued_at: now,
                expires_at: grant.expires_at(now),
                source: TokenSource::WebFlow,
                fingerprint: sha256_hex(grant.access_token.expose_secret().as_bytes()),
            },
            replaces: None,
        };
        // The code is spent: from here on the athlete never sees a failure that asks them to start again
        // because Polar or Smartabase was slow. The token is kept first; what does not fit, the scan does.
        self.store.put_pending_link(&pending).await?;
        // Boxed: the link's steps nested in the callback's future would make its type deeper than the
        // compiler's limit for callers that nest the handler further (the test front, the benchmarks).
        match Box::pin(self.finish_link(&pending, Some(deadline))).await? {
            LinkStep::Linked(linked) => Ok(Completion::Linked(linked)),
            LinkStep::Waiting => Ok(Completion::Pending { athlete }),
            LinkStep::ConsentsMissing => Err(CallbackError::ConsentsMissing),
            LinkStep::AccountOfAnotherAthlete => Err(CallbackError::AccountOfAnotherAthlete),
            LinkStep::TokenRefused | LinkStep::Superseded => Err(CallbackError::CodeRefused),
        }
    }

    /// Whether another athlete holds a link to `polar_user` (linked, waiting for reauthorisation, or still
    /// holding its token). Polar registers an account once per client, so linking it here too would pour
    /// that athlete's data into this one's forms, and a later deregistration would cut both.
    async fn held_by_another_athlete(
        &self,
        athlete: &AthleteUuid,
        polar_user: PolarUserId,
    ) -> Result<bool, StoreError> {
        let Some(owner) = self.store.athlete_for_polar_user(polar_user).await? else {
            return Ok(false);
        };
        if owner == *athlete {
            return Ok(false);
        }
        let linked = self
            .store
            .get_athlete(&owner)
            .await?
            .is_some_and(|a| a.polar_user_id == Some(polar_user) && a.status.holds_link());
        Ok(linked || self.store.get_token(&owner).await?.is_some())
    }

    /// After Polar's 409 (reference §3.1: the account is registered to our client already): whether
    /// Polar names another `member-id` for it. An answer that does not come in time names nobody.
    async fn registered_to_another_member(
        &self,
        token: &AccessToken,
        athlete: &AthleteUuid,
        polar_user: PolarUserId,
        deadline: Option<Instant>,
    ) -> bool {
        match within(deadline, self.polar.get_user(token, polar_user)).await {
            Some(Ok(Some(user))) => user
                .member_id
                .is_some_and(|member| member.trim() != athlete.as_str()),
            _ => false,
        }
    }

    async fn refuse_another_athletes_account(
        &self,
        pending: &PendingLink,
        current: Option<&Athlete>,
        polar_user: PolarUserId,
        deadline: Option<Instant>,
    ) -> Result<LinkStep, StoreError> {
        let athlete = &pending.athlete;
        self.store
            .delete_pending_link(athlete, &pending.token.fingerprint)
            .await?;
        warn!(athlete = %athlete, polar_user_id = %polar_user, outcome = "account_of_another_athlete",
            "the Polar account is linked to another athlete; this link is refused");
        self.show_link_outcome(current, false, POLAR_ACCOUNT_OF_ANOTHER_ATHLETE, deadline)
            .await;
        Ok(LinkStep::AccountOfAnotherAthlete)
    }

    /// Writes a link attempt's outcome to the athlete's profile `Status`, unless their own link still
    /// stands (`Linked`, untouched by this attempt): that status stays true and the page explains. A
    /// Smartabase failure is logged; the attempt's outcome does not depend on it.
    async fn show_link_outcome(
        &self,
        athlete: Option<&Athlete>,
        committed: bool,
        status: &str,
        deadline: Option<Instant>,
    ) {
        let Some(athlete) = athlete else { return };
        let write = if committed {
            // The attempt is the athlete's link now: its status says the outcome.
            self.write_access_token_profile_as(athlete, athlete.profile_label(), None)
        } else if athlete.status == AthleteStatus::Linked {
            return;
        } else {
            self.write_access_token_profile_as(athlete, status, None)
        };
        match within(deadline, write).await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                warn!(athlete = %athlete.uuid, error = %e, "could not write the link's outcome to the profile")
            }
            None => {
                warn!(athlete = %athlete.uuid, "Smartabase too slow for the link's outcome in the profile")
            }
        }
    }

    /// Finishes the Polar side of a pending link, giving Polar and Smartabase until `deadline` (the
    /// callback's; the scan has none): deregisters the Polar account it replaces (which holds the
    /// athlete's `member-id`: Polar refuses a second account with the same one), registers the new account,
    /// holds the token, marks the athlete `Linked`, writes their profile entry and queues the first sync.
    /// Idempotent: the scan calls it again for what is left.
    pub async fn finish_link(
        &self,
        pending: &PendingLink,
        deadline: Option<Instant>,
    ) -> Result<LinkStep, StoreError> {
        let athlete = &pending.athlete;
        let fingerprint = pending.token.fingerprint.as_str();
        let token = match self.cipher.open(athlete, &pending.token.sealed) {
            Ok(token) => token,
            Err(e) => {
                warn!(athlete = %athlete, error = %e, outcome = "failed", "a pending link's token cannot be opened; dropped");
                self.store.delete_pending_link(athlete, fingerprint).await?;
                return Ok(LinkStep::TokenRefused);
            }
        };
        let current = self.store.get_athlete(athlete).await?;
        let held = self.store.get_token(athlete).await?;
        // Held already: committed before registration (a re-link), or the last attempt stopped after it.
        let committed = held.as_ref().is_some_and(|h| h.fingerprint == fingerprint);
        if !committed && superseded(pending, current.as_ref(), held.as_ref()) {
            info!(athlete = %athlete, outcome = "superseded", "a later link, revoke or removal replaced a pending link; dropped");
            self.store.delete_pending_link(athlete, fingerprint).await?;
            return Ok(LinkStep::Superseded);
        }
        // The account of the token held now (a revoke still waiting to deregister it holds one too).
        let held_account = held.as_ref().and_then(|h| {
            h.polar_user_id
                .or(current.as_ref().and_then(|a| a.polar_user_id))
        });
        // The account an Athlete-app token of unknown user refreshes when Polar's answer names nobody:
        // this link's own token's (committed by an earlier attempt) or the live link's. An ended link's
        // says nothing about it.
        let live_link = current.as_ref().is_some_and(|a| a.status.holds_link());
        let refreshed_account = match held.as_ref() {
            Some(h) if h.fingerprint == fingerprint => h.polar_user_id,
            Some(_) if live_link => held_account,
            _ => None,
        };
        let mut pending = pending.clone();
        if !committed
            && let Some(new) = pending.token.polar_user_id
            && self.held_by_another_athlete(athlete, new).await?
        {
            // Checked before anything changes: a re-link to it would otherwise give up the athlete's own
            // account first.
            return self
                .refuse_another_athletes_account(&pending, current.as_ref(), new, deadline)
                .await;
        }
        if !committed
            && held.is_some()
            && let (Some(old), Some(new)) = (held_account, pending.token.polar_user_id)
            && old != new
            && !self
                .give_up_replaced_account(&mut pending, old, new, deadline)
                .await?
        {
            return Ok(LinkStep::Waiting);
        }
        let committed = committed || pending.replaces.is_some();

        let registration = match self.register_until(&token, athlete, deadline).await {
            Ok(registration) => registration,
            Err(e) => {
                return self
                    .registration_failed(&pending, committed, e, deadline)
                    .await;
            }
        };
        if registration == Registration::AlreadyRegistered
            && !committed
            && let Some(new) = pending.token.polar_user_id
            && self
                .registered_to_another_member(&token, athlete, new, deadline)
                .await
        {
            return self
                .refuse_another_athletes_account(&pending, current.as_ref(), new, deadline)
                .await;
        }
        let registered_as = match registration {
            Registration::Registered { polar_user_id } => polar_user_id,
            Registration::AlreadyRegistered => None,
        };
        if pending.token.polar_user_id.is_none() {
            let ended_account = current.as_ref().and_then(|a| a.polar_user_id);
            self.name_the_account(
                &mut pending,
                &token,
                registered_as.or(refreshed_account),
                ended_account,
                deadline,
            )
            .await;
            if registered_as.is_some() {
                // Polar names the account once: a retry after a stop below gets 409 and no id.
                self.store.put_pending_link(&pending).await?;
            }
        }
        let already_registered = registration == Registration::AlreadyRegistered;
        let linked = self
            .complete_link(
                &pending,
                current.as_ref(),
                committed,
                already_registered,
                deadline,
            )
            .await?;
        log_linked(&pending, &linked);
        Ok(LinkStep::Linked(linked))
    }

    /// Deregisters the Polar account a re-link replaces, with its own token, as a revoke does it; once
    /// Polar confirms, the athlete moves to the new account, unscheduled until it is registered. `false`
    /// while Polar has not confirmed: the old token stays, the old link keeps syncing and the scan tries
    /// again.
    async fn give_up_replaced_account(
        &self,
        pending: &mut PendingLink,
        old: PolarUserId,
        new: PolarUserId,
        deadline: Option<Instant>,
    ) -> Result<bool, StoreError> {
        let athlete = &pending.athlete;
        match within(deadline, self.deregister(athlete)).await {
            Some(Ok(true)) => {}
            Some(Ok(false)) | None => {
                info!(athlete = %athlete, polar_user_id = %new, previous_polar_user_id = %old, outcome = "link_pending",
                    "the replaced Polar account could not be deregistered yet; the scan finishes the re-link");
                return Ok(false);
            }
            Some(Err(e)) => return Err(e),
        }
        pending.replaces = Some(old);
        self.store.put_pending_link(pending).await?;
        self.commit_link(pending, false, false).await?;
        Ok(true)
    }

    /// Commits a registered link (marks the athlete `Linked` with the new token, unless the same account
    /// only refreshed its token), drops the pending link, writes the profile entry and queues the first
    /// sync.
    async fn complete_link(
        &self,
        pending: &PendingLink,
        current: Option<&Athlete>,
        committed: bool,
        already_registered: bool,
        deadline: Option<Instant>,
    ) -> Result<Linked, StoreError> {
        let athlete = &pending.athlete;
        let fingerprint = pending.token.fingerprint.as_str();
        let refreshed = !committed
            && current.is_some_and(|a| {
                a.status == AthleteStatus::Linked
                    && a.next_sync_due.is_some()
                    && a.polar_user_id.is_some()
                    && a.polar_user_id == pending.token.polar_user_id
            });
        let linked_athlete = self.commit_link(pending, true, refreshed).await?;
        self.store.delete_pending_link(athlete, fingerprint).await?;
        match within(
            deadline,
            self.write_access_token_profile(&linked_athlete, Some(STORED_TOKEN_MARKER)),
        )
        .await
        {
            Some(Ok(())) => {}
            // The link itself is complete; the scan writes the profile status on its next pass.
            Some(Err(e)) => {
                warn!(athlete = %athlete, error = %e, "could not write the Polar Access Token profile entry")
            }
            None => {
                warn!(athlete = %athlete, "Smartabase too slow for the Polar Access Token profile entry; the scan writes it")
            }
        }
        // Another finish of this link committed it first and its first sync has run already.
        let synced_since_linked = linked_athlete
            .last_sync_at
            .zip(linked_athlete.linked_at)
            .is_some_and(|(synced, linked)| synced > linked);
        let first_sync_queued = !refreshed
            && !synced_since_linked
            && self
                .enqueue_now(athlete, JobKind::FirstSync, self.now())
                .await;
        Ok(Linked {
            athlete: athlete.clone(),
            already_registered,
            first_sync_queued,
            relinked_from: pending.replaces,
            refreshed,
        })
    }

    /// Ends a link whose registration Polar refused or did not answer: consents to accept, a token Polar
    /// refuses, or (anything else) a try again by the scan.
    async fn registration_failed(
        &self,
        pending: &PendingLink,
        committed: bool,
        error: PolarError,
        deadline: Option<Instant>,
    ) -> Result<LinkStep, StoreError> {
        let athlete = &pending.athlete;
        let fingerprint = pending.token.fingerprint.as_str();
        match error {
            PolarError::ConsentsMissing => {
                if committed {
                    // Linked to the new account already: the scan registers them once they accept.
                    self.update_athlete(athlete, |a| {
                        a.last_error = Some(CONSENTS_MISSING_ERROR.into());
                    })
                    .await?;
                } else {
                    // Nothing changed: they accept at Polar and open their link again.
                    self.store.delete_pending_link(athlete, fingerprint).await?;
                }
                info!(athlete = %athlete, outcome = "consents_missing", "Polar's mandatory consents are not accepted");
                // The profile says what to do (the web flow's page does too; the Athlete app shows only this).
                let now_linked = self.store.get_athlete(athlete).await?;
                self.show_link_outcome(
                    now_linked.as_ref(),
                    committed,
                    NEEDS_POLAR_CONSENTS,
                    deadline,
                )
                .await;
                Ok(LinkStep::ConsentsMissing)
            }
            PolarError::Unauthorized => {
                warn!(athlete = %athlete, outcome = "rejected", "Polar refused the new token (401); pending link dropped");
                self.store.delete_pending_link(athlete, fingerprint).await?;
                if committed {
                    // The worker's confirmed 401 then shows the athlete as needing reauthorisation.
                    let now = self.now();
                    self.update_athlete(athlete, |a| a.next_sync_due = Some(now))
                        .await?;
                }
                Ok(LinkStep::TokenRefused)
            }
            e => {
                info!(athlete = %athlete, error = %e, outcome = "link_pending", "Polar registration did not complete; the scan finishes the link");
                Ok(LinkStep::Waiting)
            }
        }
    }

    /// Names the Polar account of an Athlete-app token of unknown user: Polar's registration answer, else
    /// the token it refreshes (`known`); else the account of an ended link (`ended_account`) if Polar
    /// serves it to this token (the same account connected again), so a later revoke can deregister it.
    /// Without an id the athlete syncs but cannot be deregistered at Polar later.
    async fn name_the_account(
        &self,
        pending: &mut PendingLink,
        token: &AccessToken,
        known: Option<PolarUserId>,
        ended_account: Option<PolarUserId>,
        deadline: Option<Instant>,
    ) {
        pending.token.polar_user_id = known;
        if known.is_none()
            && let Some(old) = ended_account
            && let Some(Ok(Some(user))) = within(deadline, self.polar.get_user(token, old)).await
            && user.polar_user_id == old
        {
            pending.token.polar_user_id = Some(old);
        }
    }

    /// `POST /v3/users`, tried again on transient failures while `deadline` leaves time for it (once
    /// without a deadline: the scan's next run is the retry).
    async fn register_until(
        &self,
        token: &AccessToken,
        athlete: &AthleteUuid,
        deadline: Option<Instant>,
    ) -> Result<Registration, PolarError> {
        let mut pause = REGISTRATION_RETRY_PAUSE;
        loop {
            let attempt = within(deadline, self.polar.register_user(token, athlete))
                .await
                .unwrap_or(Err(PolarError::Timeout));
            match (attempt, deadline) {
                (Err(e), Some(deadline))
                    if e.is_transient() && Instant::now() + pause < deadline =>
                {
                    info!(athlete = %athlete, error = %e, "Polar registration failed; trying again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                (result, _) => return result,
            }
        }
    }

    /// Holds the pending link's token and marks the athlete `Linked` to its Polar account: scheduled now
    /// once `registered` (a refresh keeps its schedule), unscheduled until then. A re-link starts the new
    /// account's data from scratch.
    async fn commit_link(
        &self,
        pending: &PendingLink,
        registered: bool,
        refreshed: bool,
    ) -> Result<Athlete, StoreError> {
        let now = self.now();
        self.store
            .put_token(&pending.athlete, &pending.token)
            .await?;
        let polar_user = pending.token.polar_user_id;
        let relinked = pending.replaces.is_some();
        self.update_athlete(&pending.athlete, |a| {
            // Linked to this account and scheduled already: another finish of the same pending link (the
            // scan beside the callback, or a retry after a stop past this point) committed it first; its
            // schedule and marker stand for the first sync it queued.
            let committed_before = registered
                && !refreshed
                && a.status == AthleteStatus::Linked
                && a.next_sync_due.is_some()
                && polar_user.is_some_and(|user| a.polar_user_id == Some(user));
            if committed_before {
                a.last_error = None;
                return;
            }
            // Another account's cursors (a re-link, or a link after a revoke) would skip the new one's
            // history: its upload times and lists have nothing to do with the old one's.
            // After a revoke or removal, only the same known account keeps its cursors.
            let link_ended = !a.status.holds_link();
            let another_account = (relinked && !registered)
                || (a.polar_user_id.is_some() && a.polar_user_id != polar_user)
                || (link_ended && (a.polar_user_id.is_none() || polar_user.is_none()));
            if another_account {
                a.cursors = SyncCursors::default();
            }
            a.set_status(AthleteStatus::Linked, now);
            // None only for a token of unknown account held in place of none: the id kept from a revoked
            // link is not its account's (and must not route that account's webhooks here).
            a.polar_user_id = polar_user;
            a.linked_at = Some(now);
            a.last_error = None;
            if !refreshed {
                a.next_sync_due = registered.then_some(now);
                // A job of the old link may still hold the marker; the new link's first sync is queued now.
                a.queued_until = None;
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_the_athlete_can_repeat_later_is_a_retry_and_one_they_refused_is_final() {
        assert_eq!(
            CallbackError::PolarReportedError.disposition(),
            Disposition::Retry
        );
        assert_eq!(
            CallbackError::PolarUnavailable(PolarError::Timeout).disposition(),
            Disposition::Retry
        );
        assert_eq!(
            CallbackError::AccessDenied.disposition(),
            Disposition::Reject
        );
        assert_eq!(
            CallbackError::StateUsedOrExpired.disposition(),
            Disposition::Reject
        );
        assert_eq!(
            CallbackError::Misconfigured(PolarError::InvalidClient).disposition(),
            Disposition::Bug
        );
    }
}
