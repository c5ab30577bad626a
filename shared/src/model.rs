//! The connector's own records: athletes, their link status, sync cursors, stored tokens, ledger entries, jobs.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::crypto::SealedToken;
use crate::ids::{AthleteUuid, EventId, ExerciseId, PolarUserId, SmartabaseUserId};

/// Where an athlete stands with the connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AthleteStatus {
    /// On the roster, never linked (or the link was never completed).
    Unlinked,
    /// Linked to Polar and syncing.
    Linked,
    /// Unlinked by the revoke hook or an operator.
    Revoked,
    /// Polar confirmed the token is dead (the athlete disconnected on Polar's side).
    NeedsReauthorisation,
    /// No longer on the Smartabase roster: deregistered at Polar, token deleted.
    Removed,
}

impl AthleteStatus {
    /// Every status, for listings.
    pub const ALL: [Self; 5] = [
        Self::Unlinked,
        Self::Linked,
        Self::Revoked,
        Self::NeedsReauthorisation,
        Self::Removed,
    ];

    /// Whether the athlete's link to their Polar account stands: syncing, or waiting for them to
    /// authorise again (not revoked, removed or never linked).
    pub fn holds_link(self) -> bool {
        matches!(self, Self::Linked | Self::NeedsReauthorisation)
    }

    /// The `Status` value written to the `Polar Access Token` profile form (design §5).
    pub fn profile_label(self) -> &'static str {
        match self {
            Self::Unlinked => "Not Linked",
            Self::Linked => "Linked",
            Self::Revoked => "Revoked",
            Self::NeedsReauthorisation => "Needs Reauthorisation",
            Self::Removed => "Removed",
        }
    }

    /// Stable machine name (stored, and accepted by `connector athletes --status`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unlinked => "unlinked",
            Self::Linked => "linked",
            Self::Revoked => "revoked",
            Self::NeedsReauthorisation => "needs-reauthorisation",
            Self::Removed => "removed",
        }
    }

    /// Parses [`Self::as_str`] (and the profile labels, case-insensitively).
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| {
            s.as_str().eq_ignore_ascii_case(value) || s.profile_label().eq_ignore_ascii_case(value)
        })
    }
}

/// How far delivery to Smartabase has got; only advanced after Smartabase confirmed. Daily data has no
/// cursor: a record may be uploaded weeks after its date, so every sync reads Polar's whole 28-day lists
/// (cursors stored by earlier versions carry daily fields, which are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncCursors {
    /// Exercises uploaded before this instant are delivered (the list is re-read; this bounds ledger lookups).
    pub exercises_uploaded_since: Option<DateTime<Utc>>,
    /// The history fetched once after linking (design §3 `BACKFILL_DAYS`), per data type that Polar
    /// serves further back than the first sync reads; empty until planned, and with `BACKFILL_DAYS=0`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backfill: BTreeMap<DataKind, BackfillProgress>,
    /// Per data type, the digest of the last whole list Polar answered whose every record the ledger
    /// held as confirmed with exactly that content. A later answer with the same digest needs neither a
    /// ledger read nor a write. They count only at the lock they were stored under
    /// ([`Self::confirmed_lists_at_lock`]), so none stands for a record whose write is unconfirmed.
    /// Stored as `counted_lists`: releases before the count stored them as `confirmed_lists` and trust
    /// them without it, so neither trusts the other's (each reads its ledger once instead).
    #[serde(
        default,
        rename = "counted_lists",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub confirmed_lists: BTreeMap<DataKind, String>,
    /// Digests a release before the count stored (`confirmed_lists`), never trusted here. That release
    /// trusts them, so the first job of this one to write takes them out first (a rollback finds none
    /// that a write since undermined); a save of the athlete drops them.
    #[serde(default, rename = "confirmed_lists", skip_serializing)]
    pub uncounted_lists: BTreeMap<DataKind, String>,
    /// The athlete's lock count ([`Athlete::locks_taken`]) of the job that stored the digests, which held
    /// the lock and took out those of the types it wrote. Only a job holding the lock writes records, and
    /// taking it counts: a count moved on since means a job wrote without recording its end (killed, or
    /// failed mid-write), and no digest is trusted. `None` (items from before it) trusts none either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_lists_at_lock: Option<u64>,
    /// Per data type, the last time its whole Polar list was read and delivered: each type is read on
    /// its own rhythm (`usecase::sync` plan), and a type missing here is due (items written before the
    /// rhythm existed read everything once).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lists: BTreeMap<DataKind, ListRead>,
    /// The athlete's UTC offset in minutes, as their latest night or training carried it: Polar dates
    /// daily data by the athlete's local date, so "today's night is in" is asked in their time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utc_offset_minutes: Option<i32>,
}

impl SyncCursors {
    /// Drops the confirmed-list digests unless they were stored under the lock counted `locks_taken`,
    /// the athlete's count before this job took the lock.
    pub fn trust_lists_stored_at(&mut self, locks_taken: u64) {
        if self.confirmed_lists_at_lock != Some(locks_taken) {
            self.confirmed_lists.clear();
        }
    }
}

/// One read of a data type's whole Polar list that was delivered in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRead {
    /// When.
    pub at: DateTime<Utc>,
    /// The newest record date it held (a daily type's Polar date, the athlete's local date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest: Option<NaiveDate>,
}

/// How far one data type's history backfill has got. Only moved after Smartabase confirmed a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillProgress {
    /// The oldest date to ask for: `BACKFILL_DAYS` and Polar's reach, counted back from the link date.
    pub floor: NaiveDate,
    /// The newest date not fetched yet: the next window ends here.
    pub next_to: NaiveDate,
    /// The oldest record date the backfill found in Polar and has in Smartabase.
    pub oldest_delivered: Option<NaiveDate>,
    /// Set once nothing is left to ask for, with the reason.
    pub finished: Option<BackfillEnd>,
}

/// Why a backfill stopped asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackfillEnd {
    /// Every window down to the floor is in Smartabase (or has aged out of Polar's reach meanwhile).
    Complete,
    /// Polar served nothing older than what the first sync read: it keeps no history from before the
    /// athlete registered, so further windows would be empty.
    NothingBeforeRegistration,
}

impl BackfillEnd {
    /// Stable machine name (logs, `connector athlete`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::NothingBeforeRegistration => "nothing_before_registration",
        }
    }
}

/// One athlete as the connector knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Athlete {
    /// Smartabase UUID: the key of everything.
    pub uuid: AthleteUuid,
    /// Smartabase `userId`, learned from the roster.
    pub smartabase_user_id: Option<SmartabaseUserId>,
    /// Link status.
    pub status: AthleteStatus,
    /// Polar user id once linked.
    pub polar_user_id: Option<PolarUserId>,
    /// When the current link was made.
    pub linked_at: Option<DateTime<Utc>>,
    /// When `status` last changed.
    pub status_changed_at: Option<DateTime<Utc>>,
    /// Last successful sync.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// When the next scheduled sync is due (only meaningful while `Linked`).
    pub next_sync_due: Option<DateTime<Utc>>,
    /// A job for this athlete is in the queue until then (fan-out's duplicate guard).
    pub queued_until: Option<DateTime<Utc>>,
    /// The start of an unfinished scan pass that saw this athlete on the roster: recorded only when a pass
    /// takes several runs, for the run that finishes it (one run keeps its sightings in memory).
    pub roster_seen_at: Option<DateTime<Utc>>,
    /// Delivery cursors.
    pub cursors: SyncCursors,
    /// Last sync failure, short and free of secrets, for operators (bounded: see [`LastError`]).
    pub last_error: Option<LastError>,
    /// The sync job working on the athlete, if any: kept in the athlete item so taking it reads the
    /// athlete in the same write, and the job's last write of the athlete releases it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_lock: Option<SyncLock>,
    /// How many times a job has taken the sync lock: a job that read the athlete without it tells by this
    /// whether another job locked and wrote in between, even one that left everything else as it was.
    #[serde(default)]
    pub locks_taken: u64,
    /// Optimistic-concurrency version, bumped on every write.
    pub version: u64,
}

/// An athlete's sync lock: one job at a time, and a crashed worker's lock lapses at `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncLock {
    /// The job holding it (its id).
    pub owner: String,
    /// When it lapses: another job may take it from then on.
    pub until: DateTime<Utc>,
}

impl Athlete {
    /// A roster athlete not linked yet.
    pub fn new(uuid: AthleteUuid) -> Self {
        Self {
            uuid,
            smartabase_user_id: None,
            status: AthleteStatus::Unlinked,
            polar_user_id: None,
            linked_at: None,
            status_changed_at: None,
            last_sync_at: None,
            next_sync_due: None,
            queued_until: None,
            roster_seen_at: None,
            cursors: SyncCursors::default(),
            last_error: None,
            sync_lock: None,
            locks_taken: 0,
            version: 0,
        }
    }

    /// Whether a job holds the athlete's sync lock at `now` (a lapsed lock is free to take).
    pub fn lock_held(&self, now: DateTime<Utc>) -> bool {
        self.sync_lock.as_ref().is_some_and(|l| l.until >= now)
    }

    /// Whether the job `owner` holds the athlete's sync lock (lapsed or not: nobody else took it).
    pub fn locked_by(&self, owner: &str) -> bool {
        self.sync_lock.as_ref().is_some_and(|l| l.owner == owner)
    }

    /// Moves to `status` at `now`, keeping `status_changed_at` true.
    pub fn set_status(&mut self, status: AthleteStatus, now: DateTime<Utc>) {
        if self.status != status {
            self.status = status;
            self.status_changed_at = Some(now);
        }
        if status != AthleteStatus::Linked {
            self.next_sync_due = None;
        }
    }
}

/// The bytes an athlete's [`LastError`] keeps at most, the ellipsis included. Bytes, not characters:
/// DynamoDB bills bytes, and a character takes up to four. With this bound an athlete with the four core
/// forms, every time set and the lock held (900–930 bytes, as their cursors' instants compress) stays
/// under 1 KB with any error; one with all seven forms is about 1,000 bytes without one, which no useful
/// bound keeps in one unit (the consents error alone is 38 bytes), and is billed two units with an
/// error, never more.
pub const LAST_ERROR_MAX_BYTES: usize = 80;

/// What a cut [`LastError`] ends with.
const LAST_ERROR_ELLIPSIS: char = '…';

/// An athlete's last sync failure as stored: at most [`LAST_ERROR_MAX_BYTES`] bytes of UTF-8. A longer
/// text (a Smartabase rejection quotes its message) keeps its start, cut on a character boundary, and
/// ends with `…`. The athlete item is billed one write unit per started KB on every lock and end write,
/// so the error it carries is bounded here, once, for every store; the whole text stays in the
/// sync-worker's log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub struct LastError(String);

impl LastError {
    /// `text`, cut to [`LAST_ERROR_MAX_BYTES`] with an ellipsis if longer.
    pub fn new(text: impl Into<String>) -> Self {
        let mut text = text.into();
        if text.len() > LAST_ERROR_MAX_BYTES {
            let mut end = LAST_ERROR_MAX_BYTES - LAST_ERROR_ELLIPSIS.len_utf8();
            // Index 0 is a boundary, so this ends.
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push(LAST_ERROR_ELLIPSIS);
        }
        Self(text)
    }

    /// The stored text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for LastError {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for LastError {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

impl From<&str> for LastError {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<LastError> for String {
    fn from(error: LastError) -> Self {
        error.0
    }
}

/// `last_error` of a linked athlete whose Polar consents are missing (Polar answers 403).
pub const CONSENTS_MISSING_ERROR: &str = "Polar: mandatory consents not accepted";

/// Profile `Status` of an athlete whose Polar consents are missing: nothing arrives until they accept.
pub const NEEDS_POLAR_CONSENTS: &str = "Needs Polar Consents";

/// Profile `Status` of an athlete who tried to link a Polar account another athlete holds: refused.
pub const POLAR_ACCOUNT_OF_ANOTHER_ATHLETE: &str = "Polar Account Of Another Athlete";

impl Athlete {
    /// Whether `other` holds the same link as this athlete: the same Polar account, linked at the same
    /// moment (a backfill is planned from the link date; a re-link plans afresh).
    pub fn same_link(&self, other: &Athlete) -> bool {
        self.linked_at == other.linked_at && self.polar_user_id == other.polar_user_id
    }

    /// The `Status` the athlete's `Polar Access Token` profile shows: their link status, except that a
    /// link whose Polar consents are missing says so (it syncs nothing until they accept).
    pub fn profile_label(&self) -> &'static str {
        if self.status == AthleteStatus::Linked
            && self.last_error.as_deref() == Some(CONSENTS_MISSING_ERROR)
        {
            NEEDS_POLAR_CONSENTS
        } else {
            self.status.profile_label()
        }
    }
}

/// How a token reached the connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenSource {
    /// The web flow's callback.
    WebFlow,
    /// Picked up from the `Polar Access Token` profile form (Athlete app).
    AthleteApp,
}

/// A Polar token at rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// AES-256-GCM sealed, bound to the athlete.
    pub sealed: SealedToken,
    /// The Polar user the token belongs to.
    pub polar_user_id: Option<PolarUserId>,
    /// When the connector received it.
    pub issued_at: DateTime<Utc>,
    /// Polar's `expires_in` turned into an instant, when known.
    pub expires_at: Option<DateTime<Utc>>,
    /// How it arrived.
    pub source: TokenSource,
    /// SHA-256 of the raw token, to recognise the same token in the profile form without storing it twice.
    pub fingerprint: String,
}

/// A link whose token Polar has issued but whose Polar side (deregistering the account it replaces,
/// registering the new one) is not finished yet: kept until it is, so a slow or failing Polar never
/// loses a token whose code is already spent. The scan finishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLink {
    /// Whose link.
    pub athlete: AthleteUuid,
    /// The new token (its fingerprint tells this pending link from another of the same athlete).
    pub token: StoredToken,
    /// The Polar user this link replaced, once the replacement is committed (for the `relinked` line).
    pub replaces: Option<PolarUserId>,
}

/// The event forms, by role (names come from the mapping): the four core forms and the three optional
/// ones a site may enable (design §5b).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataKind {
    /// `Polar Training`.
    Training,
    /// `Polar Activity`.
    Activity,
    /// `Polar Sleep`.
    Sleep,
    /// `Polar Nightly Recharge`.
    Recharge,
    /// `Polar Cardio Load` (optional): one event per Polar date.
    CardioLoad,
    /// `Polar Alertness` (optional): one event per sleep period.
    Alertness,
    /// `Polar Daily Heart Rate` (optional): one event per Polar date.
    DailyHeartRate,
}

impl DataKind {
    /// All seven.
    pub const ALL: [Self; 7] = [
        Self::Training,
        Self::Activity,
        Self::Sleep,
        Self::Recharge,
        Self::CardioLoad,
        Self::Alertness,
        Self::DailyHeartRate,
    ];

    /// Stable machine name used in keys, metrics and logs (the optional forms' mapping keys).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Training => "training",
            Self::Activity => "activity",
            Self::Sleep => "sleep",
            Self::Recharge => "recharge",
            Self::CardioLoad => "cardio_load",
            Self::Alertness => "alertness",
            Self::DailyHeartRate => "daily_heart_rate",
        }
    }

    /// One of the four forms every site has (the others are optional).
    pub fn is_core(self) -> bool {
        matches!(
            self,
            Self::Training | Self::Activity | Self::Sleep | Self::Recharge
        )
    }
}

/// What identifies one Polar record: the exercise id, the calendar date of a daily record, or the start
/// of a sleep period (SleepWise alertness: a night and a nap may end on the same date).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKey {
    /// A training session.
    Exercise(ExerciseId),
    /// A daily record's date.
    Date(NaiveDate),
    /// A sleep period's start in UTC, whole seconds ([`RecordKey::sleep_period`]).
    SleepPeriod(DateTime<Utc>),
}

impl RecordKey {
    /// The key of the sleep period starting at `start`: whole seconds, so a start Polar writes with
    /// more or fewer fraction digits is the same record.
    pub fn sleep_period(start: DateTime<Utc>) -> Self {
        Self::SleepPeriod(start.trunc_subsecs(0))
    }
}

/// How a sleep period's start is written in a ledger key.
const SLEEP_PERIOD_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

/// The ledger's key: one Smartabase event per (athlete, form, record).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LedgerKey {
    /// Which form.
    pub kind: DataKind,
    /// Which record.
    pub record: RecordKey,
}

impl LedgerKey {
    /// `training#<exercise id>`, `sleep#2025-09-02` or `alertness#2025-09-01T21:14:05Z`: the stored form
    /// of the key.
    pub fn encode(&self) -> String {
        let kind = self.kind.as_str();
        match &self.record {
            RecordKey::Exercise(id) => format!("{kind}#{id}"),
            RecordKey::Date(d) => format!("{kind}#{}", d.format("%Y-%m-%d")),
            RecordKey::SleepPeriod(start) => {
                format!("{kind}#{}", start.format(SLEEP_PERIOD_FORMAT))
            }
        }
    }

    /// Reverses [`Self::encode`].
    pub fn decode(value: &str) -> Option<Self> {
        let (kind, rest) = value.split_once('#')?;
        let kind = DataKind::ALL.into_iter().find(|k| k.as_str() == kind)?;
        let record = match kind {
            DataKind::Training => RecordKey::Exercise(ExerciseId::parse(rest).ok()?),
            DataKind::Alertness => RecordKey::SleepPeriod(
                NaiveDateTime::parse_from_str(rest, SLEEP_PERIOD_FORMAT)
                    .ok()?
                    .and_utc(),
            ),
            DataKind::Activity
            | DataKind::Sleep
            | DataKind::Recharge
            | DataKind::CardioLoad
            | DataKind::DailyHeartRate => {
                RecordKey::Date(NaiveDate::parse_from_str(rest, "%Y-%m-%d").ok()?)
            }
        };
        Some(Self { kind, record })
    }
}

/// Whether Smartabase has confirmed the ledger entry's event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerState {
    /// An import was sent and not confirmed (the worker may have died): look the event up before writing again.
    Pending,
    /// Smartabase answered `SUCCESSFULLY_IMPORTED` with this event id.
    Confirmed,
    /// A lookup after an unconfirmed write settled what Smartabase holds: the event id it found (holding
    /// other content), or none. The next write updates or creates accordingly without looking again.
    LookedUp,
}

/// What the connector last wrote for one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Hash of the event content last written (or being written).
    pub content_hash: String,
    /// The Smartabase event, once known.
    pub event_id: Option<EventId>,
    /// Confirmed or in flight.
    pub state: LedgerState,
    /// The event's start date, where a lookup searches for a lost event.
    pub event_start_date: NaiveDate,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn round_trip(key: &LedgerKey) -> Option<LedgerKey> {
        LedgerKey::decode(&key.encode())
    }

    #[test]
    fn a_last_error_within_the_bound_is_kept_whole() {
        for text in ["", "Smartabase 503", &"é".repeat(LAST_ERROR_MAX_BYTES / 2)] {
            assert_eq!(LastError::new(text).as_str(), text);
        }
        // The texts the connector writes itself, which `profile_label` and operators compare whole.
        for text in [
            CONSENTS_MISSING_ERROR,
            "Polar: access revoked on Polar's side (confirmed 401)",
        ] {
            assert!(text.len() <= LAST_ERROR_MAX_BYTES, "{text}");
            assert_eq!(LastError::new(text).as_str(), text);
        }
        let mut a = Athlete::new(AthleteUuid::parse("consents").unwrap());
        a.set_status(AthleteStatus::Linked, Utc::now());
        a.last_error = Some(CONSENTS_MISSING_ERROR.into());
        assert_eq!(a.profile_label(), NEEDS_POLAR_CONSENTS);
    }

    #[test]
    fn a_longer_last_error_keeps_its_start_on_a_character_boundary_and_ends_with_an_ellipsis() {
        // Every UTF-8 width, and the bound falling at every offset inside each character.
        for lead in 0..4 {
            for unit in ["x", "é", "€", "𝄞", "é€𝄞x"] {
                let text = format!(
                    "{}{}",
                    "x".repeat(lead),
                    unit.repeat(LAST_ERROR_MAX_BYTES + 1)
                );
                let error = LastError::new(text.clone());
                assert!(error.len() <= LAST_ERROR_MAX_BYTES, "{} bytes", error.len());
                assert!(
                    error.len() > LAST_ERROR_MAX_BYTES - 3 - 4,
                    "{} bytes",
                    error.len()
                );
                let kept = error.strip_suffix('…').expect("an ellipsis");
                assert!(text.starts_with(kept), "{error}");
            }
        }
        // One byte over is cut too.
        let error = LastError::new("y".repeat(LAST_ERROR_MAX_BYTES + 1));
        assert_eq!(error.len(), LAST_ERROR_MAX_BYTES);
        assert!(error.ends_with('…'));
    }

    #[test]
    fn a_last_error_read_back_from_json_is_bounded_too() {
        let long = "z".repeat(5_000);
        let error: LastError = serde_json::from_value(serde_json::json!(long)).unwrap();
        assert_eq!(error, LastError::new(long));
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            serde_json::json!(error.as_str())
        );
    }

    #[test]
    fn cursors_stored_by_the_linked_fleet_read_back_without_confirmed_lists_and_keep_them_once_set()
    {
        // An athlete item written before confirmed lists existed, and one written by a release that
        // stored them without the lock count: neither has digests this release trusts.
        let old: SyncCursors = serde_json::from_str(
            r#"{"exercises_uploaded_since":"2026-11-27T12:00:00Z","backfill":{}}"#,
        )
        .unwrap();
        assert!(old.confirmed_lists.is_empty());
        let uncounted: SyncCursors = serde_json::from_str(
            r#"{"exercises_uploaded_since":null,"confirmed_lists":{"sleep":"0f1e2d3c"}}"#,
        )
        .unwrap();
        assert!(uncounted.confirmed_lists.is_empty());
        assert_eq!(
            serde_json::to_string(&SyncCursors::default()).unwrap(),
            r#"{"exercises_uploaded_since":null}"#,
            "cursors without confirmed lists are stored as before"
        );
        let mut cursors = old;
        cursors
            .confirmed_lists
            .insert(DataKind::Sleep, "0f1e2d3c4b5a69788796a5b4c3d2e1f0".into());
        let json = serde_json::to_string(&cursors).unwrap();
        assert!(json.contains(r#""counted_lists":{"sleep":"#), "{json}");
        assert!(!json.contains("confirmed_lists"), "{json}");
        assert_eq!(serde_json::from_str::<SyncCursors>(&json).unwrap(), cursors);
    }

    #[test]
    fn confirmed_lists_count_only_at_the_lock_they_were_stored_under() {
        let mut stored = SyncCursors::default();
        stored
            .confirmed_lists
            .insert(DataKind::Sleep, "0f1e2d3c4b5a69788796a5b4c3d2e1f0".into());
        stored.confirmed_lists_at_lock = Some(4);
        let mut unchanged = stored.clone();
        unchanged.trust_lists_stored_at(4);
        assert_eq!(unchanged, stored);
        // A job locked since and never recorded its end: it may have written any type.
        let mut after_a_lost_end = stored.clone();
        after_a_lost_end.trust_lists_stored_at(5);
        assert!(after_a_lost_end.confirmed_lists.is_empty());
        // Stored before the count was kept: unknown, so not trusted.
        let mut older = stored.clone();
        older.confirmed_lists_at_lock = None;
        older.trust_lists_stored_at(4);
        assert!(older.confirmed_lists.is_empty());
    }

    #[test]
    fn every_kind_has_a_ledger_key_that_reads_back() {
        let day = NaiveDate::from_ymd_opt(2025, 9, 2).unwrap();
        let start = Utc.with_ymd_and_hms(2025, 9, 1, 21, 14, 5).unwrap();
        for kind in DataKind::ALL {
            let record = match kind {
                DataKind::Training => RecordKey::Exercise(ExerciseId::parse("Xy7Qp2Lr").unwrap()),
                DataKind::Alertness => RecordKey::sleep_period(start),
                _ => RecordKey::Date(day),
            };
            let key = LedgerKey { kind, record };
            assert_eq!(round_trip(&key), Some(key.clone()), "{}", key.encode());
        }
        let optional: Vec<String> = [
            (DataKind::CardioLoad, RecordKey::Date(day)),
            (DataKind::Alertness, RecordKey::sleep_period(start)),
            (DataKind::DailyHeartRate, RecordKey::Date(day)),
        ]
        .into_iter()
        .map(|(kind, record)| LedgerKey { kind, record }.encode())
        .collect();
        assert_eq!(
            optional,
            [
                "cardio_load#2025-09-02",
                "alertness#2025-09-01T21:14:05Z",
                "daily_heart_rate#2025-09-02",
            ]
        );
    }

    #[test]
    fn a_sleep_period_is_the_same_record_whatever_fraction_of_a_second_polar_writes() {
        let start = Utc.with_ymd_and_hms(2022, 11, 20, 20, 52, 20).unwrap();
        assert_eq!(
            RecordKey::sleep_period(start + Duration::milliseconds(570)),
            RecordKey::sleep_period(start)
        );
        assert_ne!(
            RecordKey::sleep_period(start + Duration::seconds(1)),
            RecordKey::sleep_period(start)
        );
    }

    #[test]
    fn keys_of_the_wrong_shape_for_their_kind_do_not_decode() {
        for stored in [
            "alertness#2025-09-02",
            "cardio_load#2025-09-01T21:14:05Z",
            "daily_heart_rate#Xy7Qp2Lr",
            "heart_rate#2025-09-02",
            "alertness#2025-09-01T21:14:05+02:00",
        ] {
            assert_eq!(LedgerKey::decode(stored), None, "{stored}");
        }
    }

    #[test]
    fn cursors_stored_before_the_rhythm_read_back_with_every_list_due() {
        let stored = r#"{"exercises_uploaded_since":"2026-11-27T12:00:00Z","activities_through":"2026-11-26"}"#;
        let cursors: SyncCursors = serde_json::from_str(stored).unwrap();
        assert_eq!(
            cursors.exercises_uploaded_since,
            Some(Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap())
        );
        assert!(cursors.lists.is_empty());
        assert_eq!(cursors.utc_offset_minutes, None);
        // And a default cursor writes none of the new fields.
        assert_eq!(
            serde_json::to_string(&SyncCursors::default()).unwrap(),
            r#"{"exercises_uploaded_since":null}"#
        );
    }
}
