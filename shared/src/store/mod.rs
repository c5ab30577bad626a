//! Durable state as ports: athletes, tokens, auth states, the write ledger, locks, the rate budget,
//! one-shot markers and settings. `DynamoStore` keeps them in one DynamoDB table; `MemoryStore` (feature
//! `testing`) in memory, with the same contract tests run against both.

use std::collections::HashMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Cause;
use crate::ids::{AthleteUuid, AuthState, PolarUserId};
use crate::model::{Athlete, AthleteStatus, LedgerEntry, LedgerKey, PendingLink, StoredToken};

pub mod dynamo;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod schema;

pub use dynamo::{DynamoStore, athlete_item_bytes};

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An optimistic-concurrency check failed: someone else wrote first. Re-read and try again.
    #[error("concurrent update of {0}")]
    Conflict(String),
    /// The store throttled or was unreachable.
    #[error("store unavailable: {message}")]
    Unavailable {
        /// The operation and the SDK's error code (or what failed), never an item's content.
        message: String,
        /// The SDK's failure, without its raw response ([`crate::aws::sdk_source`]).
        #[source]
        source: Option<Cause>,
    },
    /// A stored item could not be read back (a defect or a manual edit).
    #[error("stored item {key} is corrupt: {reason}")]
    Corrupt {
        /// The item's key.
        key: String,
        /// What was wrong.
        reason: String,
    },
}

impl StoreError {
    /// [`Self::Unavailable`] with no underlying error (retries used up, an injected fault).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// [`Self::Unavailable`] keeping `source`, which must show no item content or secret.
    pub fn unavailable_from(message: impl Into<String>, source: impl Into<Cause>) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

/// Of several athletes carrying one Polar user id, the one a webhook means: the linked one, else the
/// most recently linked, ties by UUID. Both stores apply this rule.
pub(crate) fn preferred_for_polar_user<'a>(
    candidates: impl Iterator<Item = &'a Athlete>,
) -> Option<AthleteUuid> {
    candidates
        .min_by(|a, b| {
            (a.status != AthleteStatus::Linked)
                .cmp(&(b.status != AthleteStatus::Linked))
                .then(b.linked_at.cmp(&a.linked_at))
                .then(a.uuid.cmp(&b.uuid))
        })
        .map(|a| a.uuid.clone())
}

/// What the fan-out's due listing found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DueListing {
    /// The due athletes, oldest due first, ties by UUID.
    pub due: Vec<DueAthlete>,
    /// Linked athletes skipped because their item or index entry could not be decoded (a defect or a
    /// manual edit); each is logged. They get no scheduled sync until fixed.
    pub skipped: u64,
}

/// A `Linked` athlete whose scheduled sync is due, as the fan-out sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueAthlete {
    /// The athlete.
    pub uuid: AthleteUuid,
    /// Their `next_sync_due`.
    pub due: DateTime<Utc>,
    /// Their queued marker: a job of theirs is in the queue until then (lapsed if before now).
    pub queued_until: Option<DateTime<Utc>>,
    /// No sync has finished for them yet (the link's first sync may still be queued beside a fan-out's
    /// job).
    pub never_synced: bool,
}

impl DueAthlete {
    /// Whether a job of theirs is still in the queue at `now` (the rule [`AthleteStore::mark_queued`]
    /// applies).
    pub fn queued_at(&self, now: DateTime<Utc>) -> bool {
        self.queued_until.is_some_and(|until| until >= now)
    }

    /// The athlete as the due listing at `now` shows them: `None` unless `Linked` and due.
    pub(crate) fn at(
        uuid: &AthleteUuid,
        status: AthleteStatus,
        next_sync_due: Option<DateTime<Utc>>,
        queued_until: Option<DateTime<Utc>>,
        last_sync_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<Self> {
        let due = next_sync_due.filter(|due| *due <= now)?;
        (status == AthleteStatus::Linked).then(|| Self {
            uuid: uuid.clone(),
            due,
            queued_until,
            never_synced: last_sync_at.is_none(),
        })
    }

    /// Oldest due first, ties by UUID (both stores' order).
    pub(crate) fn sort(listing: &mut [Self]) {
        listing.sort_by(|a, b| a.due.cmp(&b.due).then_with(|| a.uuid.cmp(&b.uuid)));
    }
}

/// A page position for listings; opaque to callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken(pub String);

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// Items.
    pub items: Vec<T>,
    /// Where the next page starts; `None` at the end.
    pub next: Option<PageToken>,
}

/// Athletes and the Polar-user index.
pub trait AthleteStore: Send + Sync {
    /// One athlete.
    fn get_athlete(
        &self,
        uuid: &AthleteUuid,
    ) -> impl Future<Output = Result<Option<Athlete>, StoreError>> + Send;

    /// Writes `athlete` if the stored version still equals `athlete.version` (0 = must not exist yet), and
    /// returns the athlete with its new version. Keeps the status and Polar-user indexes in step.
    fn save_athlete(
        &self,
        athlete: &Athlete,
    ) -> impl Future<Output = Result<Athlete, StoreError>> + Send;

    /// The athlete linked to a Polar user, for webhooks.
    fn athlete_for_polar_user(
        &self,
        user: PolarUserId,
    ) -> impl Future<Output = Result<Option<AthleteUuid>, StoreError>> + Send;

    /// Every `Linked` athlete whose `next_sync_due` ≤ `now`, oldest due first (ties by UUID), with the
    /// queued marker each carries. The read may lag recent writes by a moment (like an index query):
    /// [`AthleteStore::mark_due_queued`] is the guard against queueing twice. An athlete whose item
    /// cannot be decoded is skipped and counted, so one bad item never stops everyone's syncs.
    fn due_athletes(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<DueListing, StoreError>> + Send;

    /// All athletes, optionally of one status (operators' listings, the scan's removal pass).
    fn list_athletes(
        &self,
        status: Option<AthleteStatus>,
        page: Option<PageToken>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<Athlete>, StoreError>> + Send;

    /// Sets the queued marker if the athlete is `Linked` and not already queued (or the marker lapsed).
    /// `false` means "do not enqueue". Moves the version like any write of the athlete, so a save from
    /// an earlier read conflicts instead of writing the old marker back (its caller reads again).
    fn mark_queued(
        &self,
        uuid: &AthleteUuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// [`Self::mark_queued`] for the fan-out: also only while the athlete is still due at `now` (its
    /// listing may be older than a sync that ran since).
    fn mark_due_queued(
        &self,
        uuid: &AthleteUuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Clears the queued marker (the job ran, or sending it failed); moves the version likewise.
    fn clear_queued(
        &self,
        uuid: &AthleteUuid,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Polar tokens, sealed.
pub trait TokenStore: Send + Sync {
    /// Stores (replaces) the athlete's token.
    fn put_token(
        &self,
        uuid: &AthleteUuid,
        token: &StoredToken,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The athlete's token.
    fn get_token(
        &self,
        uuid: &AthleteUuid,
    ) -> impl Future<Output = Result<Option<StoredToken>, StoreError>> + Send;
    /// Deletes the athlete's token (idempotent).
    fn delete_token(
        &self,
        uuid: &AthleteUuid,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores (replaces) a pending link, keyed by athlete and token fingerprint.
    fn put_pending_link(
        &self,
        link: &PendingLink,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The athlete's pending link of the token with this fingerprint.
    fn pending_link(
        &self,
        uuid: &AthleteUuid,
        fingerprint: &str,
    ) -> impl Future<Output = Result<Option<PendingLink>, StoreError>> + Send;
    /// Every pending link, a page at a time (the scan finishes them).
    fn pending_links(
        &self,
        page: Option<PageToken>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<PendingLink>, StoreError>> + Send;
    /// Deletes a pending link (idempotent).
    fn delete_pending_link(
        &self,
        uuid: &AthleteUuid,
        fingerprint: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// An authorisation attempt as stored with its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredState {
    /// Who started it.
    pub athlete: AthleteUuid,
    /// SHA-256 (hex) of the secret the browser that started it holds in a cookie; `None` for a state
    /// stored before browsers were bound (never accepted).
    pub browser_hash: Option<String>,
}

/// Single-use OAuth states.
pub trait AuthStateStore: Send + Sync {
    /// Stores a fresh state for `athlete`, bound to the browser holding the secret hashed to
    /// `browser_hash`, valid until `expires_at`.
    fn put_state(
        &self,
        state: &AuthState,
        athlete: &AthleteUuid,
        browser_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Reads a state without consuming it; `None` when unknown, used or expired.
    fn get_state(
        &self,
        state: &AuthState,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<StoredState>, StoreError>> + Send;
    /// Atomically consumes a state: the first caller gets the athlete, every later caller (and any caller
    /// after expiry) gets `None`.
    fn take_state(
        &self,
        state: &AuthState,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<AthleteUuid>, StoreError>> + Send;
}

/// The exactly-once write ledger.
pub trait LedgerStore: Send + Sync {
    /// Entries for `keys` (missing keys are absent from the map).
    fn ledger_get(
        &self,
        uuid: &AthleteUuid,
        keys: &[LedgerKey],
    ) -> impl Future<Output = Result<HashMap<LedgerKey, LedgerEntry>, StoreError>> + Send;
    /// Writes entries (create or replace).
    fn ledger_put(
        &self,
        uuid: &AthleteUuid,
        entries: &[(LedgerKey, LedgerEntry)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// How many entries the athlete has, by data kind name (for `connector athlete`).
    fn ledger_counts(
        &self,
        uuid: &AthleteUuid,
    ) -> impl Future<Output = Result<HashMap<String, u64>, StoreError>> + Send;
}

/// Per-athlete sync locks, kept in the athlete item, with a lapse time so a crashed worker's lock is
/// taken over.
pub trait LockStore: Send + Sync {
    /// Takes the athlete's lock for `owner` if free or lapsed at `now`, and hands back the athlete as
    /// locked: the job's read under the lock costs no request of its own.
    fn try_lock(
        &self,
        uuid: &AthleteUuid,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<Locking, StoreError>> + Send;
    /// Takes the athlete's lock for `owner` only if the athlete is still at `version`, as a job read it
    /// (free, or lapsed) before deciding it needs the lock: hands back the athlete as locked, or `None`
    /// when anyone wrote it since (a lock taken included) or it is gone.
    fn lock_unchanged(
        &self,
        uuid: &AthleteUuid,
        version: u64,
        owner: &str,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Athlete>, StoreError>> + Send;
    /// Releases the lock if `owner` still holds it, setting the queued marker until `queued_until` in
    /// the same write when given (the job stays on the queue: SQS retries it, or it comes back delayed).
    /// A job's last write of the athlete usually releases it instead ([`Athlete::sync_lock`] set to
    /// `None` in a `save_athlete`).
    fn unlock(
        &self,
        uuid: &AthleteUuid,
        owner: &str,
        queued_until: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What [`LockStore::try_lock`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locking {
    /// The lock is the caller's; the athlete as it is now, lock included.
    Taken(Box<Athlete>),
    /// Another job holds it.
    Busy,
    /// No such athlete: nothing to lock.
    NoAthlete,
}

/// The app-wide Polar rate budget as one versioned document, read and written with optimistic
/// concurrency. The store keeps the document's serialisation and nothing of its meaning: that is
/// `crate::budget`'s, which depends on this port and never the other way round.
pub trait BudgetStore: Send + Sync {
    /// The budget and its version (`None` before the first write).
    fn load_budget<T: DeserializeOwned + Send>(
        &self,
    ) -> impl Future<Output = Result<Option<(T, u64)>, StoreError>> + Send;
    /// Writes the budget if the version is still `expected_version` (0 = must not exist); returns the new version.
    fn save_budget<T: Serialize + Sync>(
        &self,
        state: &T,
        expected_version: u64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// One-shot markers with an expiry: webhook de-duplication and similar "first caller wins" guards.
pub trait MarkerStore: Send + Sync {
    /// Claims `key` until `until`. `true` for the first claim; `false` while an unexpired claim exists.
    fn claim(
        &self,
        key: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Small named settings: scan continuation, mapping override, webhook state.
pub trait SettingsStore: Send + Sync {
    /// A setting's value.
    fn get_setting(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// Sets a setting.
    fn put_setting(
        &self,
        name: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Every store port; what the production store and the in-memory one implement.
pub trait Store:
    AthleteStore
    + TokenStore
    + AuthStateStore
    + LedgerStore
    + LockStore
    + BudgetStore
    + MarkerStore
    + SettingsStore
{
}

impl<T> Store for T where
    T: AthleteStore
        + TokenStore
        + AuthStateStore
        + LedgerStore
        + LockStore
        + BudgetStore
        + MarkerStore
        + SettingsStore
{
}
