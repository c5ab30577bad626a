//! How every item of the table is written as DynamoDB attributes and read back: the attribute names, the
//! item builders and [`Reader`], whose every failure names the item and the attribute. The stores of
//! each aggregate (the sibling modules) only send requests; what an item looks like is decided here, so
//! items written by earlier versions stay readable in one place.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::str::FromStr;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, NaiveDate, Utc};
use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;

use super::super::schema::{
    self, EXPIRES_AT, LEDGER_PREFIX, PENDING_LINKS_PK, PK, POLAR_USER_KEY, SK, SK_ATHLETE,
    SK_MARKER, SK_SETTING, SK_STATE, STATUS_KEY, UUID,
};
use super::super::{DueAthlete, StoreError};
use crate::crypto::SealedToken;
use crate::ids::{AthleteUuid, AuthState, EventId, PolarUserId, SmartabaseUserId};
use crate::model::{
    Athlete, AthleteStatus, LastError, LedgerEntry, LedgerKey, LedgerState, PendingLink,
    StoredToken, SyncCursors, SyncLock, TokenSource,
};

pub(super) type Item = HashMap<String, AttributeValue>;

// Attribute names of the items (the key and index attributes live in `schema`).
pub(super) const VERSION: &str = "version";
pub(super) const STATUS: &str = "status";
pub(super) const SMARTABASE_USER_ID: &str = "smartabase_user_id";
pub(super) const POLAR_USER_ID: &str = "polar_user_id";
pub(super) const LINKED_AT: &str = "linked_at";
pub(super) const STATUS_CHANGED_AT: &str = "status_changed_at";
pub(super) const LAST_SYNC_AT: &str = "last_sync_at";
pub(super) const NEXT_SYNC_DUE: &str = "next_sync_due";
pub(super) const QUEUED_UNTIL: &str = "queued_until";
pub(super) const ROSTER_SEEN_AT: &str = "roster_seen_at";
/// Cursors as JSON text: items written before [`CURSORS_DEFLATED`] (read, never written).
pub(super) const CURSORS: &str = "cursors";
/// Cursors as deflated JSON, a binary attribute.
pub(super) const CURSORS_DEFLATED: &str = "cursors_deflated";
pub(super) const LAST_ERROR: &str = "last_error";
pub(super) const SEALED: &str = "sealed";
pub(super) const ISSUED_AT: &str = "issued_at";
pub(super) const TOKEN_EXPIRES_AT: &str = "expires_at_token";
pub(super) const SOURCE: &str = "source";
pub(super) const FINGERPRINT: &str = "fingerprint";
pub(super) const ATHLETE: &str = "athlete";
pub(super) const BROWSER_HASH: &str = "browser_hash";
pub(super) const REPLACES: &str = "replaces_polar_user_id";
pub(super) const CONTENT_HASH: &str = "content_hash";
pub(super) const EVENT_ID: &str = "event_id";
pub(super) const LEDGER_STATE: &str = "state";
pub(super) const EVENT_START_DATE: &str = "event_start_date";
pub(super) const UPDATED_AT: &str = "updated_at";
pub(super) const LOCK_OWNER: &str = "lock_owner";
pub(super) const LOCK_UNTIL: &str = "lock_until";
pub(super) const LOCKS_TAKEN: &str = "locks_taken";
pub(super) const UNTIL: &str = "until";
pub(super) const BUDGET_STATE: &str = "state";
pub(super) const VALUE: &str = "value";

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn instant(at: DateTime<Utc>) -> AttributeValue {
    s(schema::format_instant(at))
}

pub(super) fn key(pk: String, sk: &str) -> Item {
    HashMap::from([(PK.to_string(), s(pk)), (SK.to_string(), s(sk))])
}

pub(super) fn item_name(pk: &str, sk: &str) -> String {
    format!("{pk}/{sk}")
}

/// The attributes of a stored token (the token item's, and a pending link's).
pub(super) fn token_attributes(token: &StoredToken) -> Item {
    let mut item = Item::new();
    item.insert(SEALED.into(), s(token.sealed.as_str()));
    if let Some(user) = token.polar_user_id {
        item.insert(POLAR_USER_ID.into(), n(user.get()));
    }
    item.insert(ISSUED_AT.into(), instant(token.issued_at));
    if let Some(at) = token.expires_at {
        item.insert(TOKEN_EXPIRES_AT.into(), instant(at));
    }
    item.insert(SOURCE.into(), s(token_source_name(token.source)));
    item.insert(FINGERPRINT.into(), s(&token.fingerprint));
    item
}

pub(super) fn token_from_item(item: &Item) -> Result<StoredToken, StoreError> {
    let r = Reader::new(item);
    let source = r.string(SOURCE)?;
    Ok(StoredToken {
        sealed: SealedToken::from_stored(r.string(SEALED)?.to_string()),
        polar_user_id: r
            .opt_number::<i64>(POLAR_USER_ID)?
            .map(|id| PolarUserId::new(id).map_err(|e| r.corrupt(e)))
            .transpose()?,
        issued_at: r.instant(ISSUED_AT)?,
        expires_at: r.opt_instant(TOKEN_EXPIRES_AT)?,
        source: token_source_from_name(source)
            .ok_or_else(|| r.corrupt(format!("unknown token source {source:?}")))?,
        fingerprint: r.string(FINGERPRINT)?.to_string(),
    })
}

pub(super) fn pending_link_from_item(item: &Item) -> Result<PendingLink, StoreError> {
    let r = Reader::new(item);
    Ok(PendingLink {
        athlete: r.uuid(ATHLETE)?,
        token: token_from_item(item)?,
        replaces: r
            .opt_number::<i64>(REPLACES)?
            .map(|id| PolarUserId::new(id).map_err(|e| r.corrupt(e)))
            .transpose()?,
    })
}

pub(super) fn token_source_name(source: TokenSource) -> &'static str {
    match source {
        TokenSource::WebFlow => "web_flow",
        TokenSource::AthleteApp => "athlete_app",
    }
}

pub(super) fn token_source_from_name(name: &str) -> Option<TokenSource> {
    [TokenSource::WebFlow, TokenSource::AthleteApp]
        .into_iter()
        .find(|s| token_source_name(*s) == name)
}

pub(super) fn ledger_state_name(state: LedgerState) -> &'static str {
    match state {
        LedgerState::Pending => "pending",
        LedgerState::Confirmed => "confirmed",
        LedgerState::LookedUp => "looked-up",
    }
}

pub(super) fn ledger_state_from_name(name: &str) -> Option<LedgerState> {
    [
        LedgerState::Pending,
        LedgerState::Confirmed,
        LedgerState::LookedUp,
    ]
    .into_iter()
    .find(|s| ledger_state_name(*s) == name)
}

pub(super) fn athlete_item(athlete: &Athlete, version: u64) -> Result<Item, StoreError> {
    let pk = schema::athlete_pk(&athlete.uuid);
    let cursors = deflated_cursors(&athlete.cursors).map_err(|reason| StoreError::Corrupt {
        key: item_name(&pk, SK_ATHLETE),
        reason,
    })?;
    let mut item = key(pk, SK_ATHLETE);
    item.insert(UUID.into(), s(athlete.uuid.as_str()));
    item.insert(VERSION.into(), n(version));
    item.insert(STATUS.into(), s(athlete.status.as_str()));
    item.insert(STATUS_KEY.into(), s(athlete.status.as_str()));
    if let Some(id) = athlete.smartabase_user_id {
        item.insert(SMARTABASE_USER_ID.into(), n(id.get()));
    }
    if let Some(id) = athlete.polar_user_id {
        item.insert(POLAR_USER_ID.into(), n(id.get()));
        item.insert(POLAR_USER_KEY.into(), s(schema::polar_user_key(id)));
    }
    for (name, value) in [
        (LINKED_AT, athlete.linked_at),
        (STATUS_CHANGED_AT, athlete.status_changed_at),
        (LAST_SYNC_AT, athlete.last_sync_at),
        (NEXT_SYNC_DUE, athlete.next_sync_due),
        (QUEUED_UNTIL, athlete.queued_until),
        (ROSTER_SEEN_AT, athlete.roster_seen_at),
    ] {
        if let Some(at) = value {
            item.insert(name.into(), instant(at));
        }
    }
    item.insert(
        CURSORS_DEFLATED.into(),
        AttributeValue::B(Blob::new(cursors)),
    );
    if let Some(error) = &athlete.last_error {
        item.insert(LAST_ERROR.into(), s(error.as_str()));
    }
    if let Some(lock) = &athlete.sync_lock {
        item.insert(LOCK_OWNER.into(), s(&lock.owner));
        item.insert(LOCK_UNTIL.into(), instant(lock.until));
    }
    if athlete.locks_taken > 0 {
        item.insert(LOCKS_TAKEN.into(), n(athlete.locks_taken));
    }
    Ok(item)
}

/// The bytes DynamoDB bills for an item: each attribute's name and value (a number takes a byte per two
/// significant digits and one more); a write costs one unit per started KB of it.
pub(super) fn item_bytes(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_bytes(value))
        .sum()
}

fn value_bytes(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(text) => text.len(),
        AttributeValue::N(number) => number_bytes(number),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| k.len() + value_bytes(v) + 1)
                .sum::<usize>()
        }
        AttributeValue::L(list) => 3 + list.iter().map(|v| value_bytes(v) + 1).sum::<usize>(),
        AttributeValue::B(blob) => blob.as_ref().len(),
        AttributeValue::Ss(texts) => texts.iter().map(String::len).sum(),
        AttributeValue::Ns(numbers) => numbers.iter().map(|n| number_bytes(n)).sum(),
        AttributeValue::Bs(blobs) => blobs.iter().map(|b| b.as_ref().len()).sum(),
        // A type this SDK version does not know: the codec never writes one.
        _ => 0,
    }
}

/// A number's bytes: one per two significant digits (leading and trailing zeros do not count), and one.
fn number_bytes(number: &str) -> usize {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.div_ceil(2) + 1
}

/// The attributes of an athlete item the fan-out's due listing reads ([`due_entry_from_item`]).
pub(super) const DUE_ENTRY_ATTRIBUTES: [&str; 5] =
    [UUID, STATUS, NEXT_SYNC_DUE, QUEUED_UNTIL, LAST_SYNC_AT];

/// The due listing's entry for an athlete item read with [`DUE_ENTRY_ATTRIBUTES`]: `None` unless
/// `Linked` and due at `now`.
pub(super) fn due_entry_from_item(
    item: &Item,
    now: DateTime<Utc>,
) -> Result<Option<DueAthlete>, StoreError> {
    let r = Reader::new(item);
    Ok(DueAthlete::at(
        &r.uuid(UUID)?,
        athlete_status(&r)?,
        r.opt_instant(NEXT_SYNC_DUE)?,
        r.opt_instant(QUEUED_UNTIL)?,
        r.opt_instant(LAST_SYNC_AT)?,
        now,
    ))
}

fn athlete_status(r: &Reader<'_>) -> Result<AthleteStatus, StoreError> {
    let name = r.string(STATUS)?;
    AthleteStatus::parse(name).ok_or_else(|| r.corrupt(format!("unknown status {name:?}")))
}

/// The cursors' JSON, deflated: the digests and instants of a fully synced athlete take the item over
/// 1 KB as text (two write units for every write of the athlete), under it deflated.
fn deflated_cursors(cursors: &SyncCursors) -> Result<Vec<u8>, String> {
    let json = serde_json::to_vec(cursors).map_err(|e| format!("cursors: {e}"))?;
    if json.len() as u64 > MAX_CURSORS_BYTES {
        return Err(format!(
            "cursors: {} bytes, over {MAX_CURSORS_BYTES}",
            json.len()
        ));
    }
    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::best());
    encoder
        .write_all(&json)
        .and_then(|()| encoder.finish())
        .map_err(|e| format!("cursors: {e}"))
}

/// Cursors take about a kilobyte as JSON; anything past this is not the connector's (nor written by it).
const MAX_CURSORS_BYTES: u64 = 256 * 1024;

fn cursors_from_item(r: &Reader<'_>) -> Result<SyncCursors, StoreError> {
    let json = match r.item.get(CURSORS_DEFLATED) {
        Some(AttributeValue::B(deflated)) => {
            let mut json = Vec::new();
            DeflateDecoder::new(deflated.as_ref())
                .take(MAX_CURSORS_BYTES + 1)
                .read_to_end(&mut json)
                .map_err(|e| r.corrupt(format!("{CURSORS_DEFLATED}: {e}")))?;
            if json.len() as u64 > MAX_CURSORS_BYTES {
                return Err(r.corrupt(format!(
                    "{CURSORS_DEFLATED} inflates past {MAX_CURSORS_BYTES} bytes"
                )));
            }
            json
        }
        Some(_) => return Err(r.corrupt(format!("{CURSORS_DEFLATED} is not binary"))),
        None => r.string(CURSORS)?.as_bytes().to_vec(),
    };
    serde_json::from_slice(&json).map_err(|e| r.corrupt(format!("cursors: {e}")))
}

pub(super) fn athlete_from_item(item: &Item) -> Result<Athlete, StoreError> {
    let r = Reader::new(item);
    let cursors = cursors_from_item(&r)?;
    Ok(Athlete {
        uuid: r.uuid(UUID)?,
        smartabase_user_id: r
            .opt_number::<i64>(SMARTABASE_USER_ID)?
            .map(|id| SmartabaseUserId::new(id).map_err(|e| r.corrupt(e)))
            .transpose()?,
        status: athlete_status(&r)?,
        polar_user_id: r
            .opt_number::<i64>(POLAR_USER_ID)?
            .map(|id| PolarUserId::new(id).map_err(|e| r.corrupt(e)))
            .transpose()?,
        linked_at: r.opt_instant(LINKED_AT)?,
        status_changed_at: r.opt_instant(STATUS_CHANGED_AT)?,
        last_sync_at: r.opt_instant(LAST_SYNC_AT)?,
        next_sync_due: r.opt_instant(NEXT_SYNC_DUE)?,
        queued_until: r.opt_instant(QUEUED_UNTIL)?,
        roster_seen_at: r.opt_instant(ROSTER_SEEN_AT)?,
        cursors,
        last_error: r.opt_string(LAST_ERROR)?.map(LastError::from),
        sync_lock: match (r.opt_string(LOCK_OWNER)?, r.opt_instant(LOCK_UNTIL)?) {
            (Some(owner), Some(until)) => Some(SyncLock {
                owner: owner.to_string(),
                until,
            }),
            _ => None,
        },
        locks_taken: r.opt_number(LOCKS_TAKEN)?.unwrap_or(0),
        version: r.number(VERSION)?,
    })
}

pub(super) fn ledger_from_item(item: &Item) -> Result<(LedgerKey, LedgerEntry), StoreError> {
    let r = Reader::new(item);
    let sk = r.string(SK)?;
    let key = sk
        .strip_prefix(LEDGER_PREFIX)
        .and_then(LedgerKey::decode)
        .ok_or_else(|| r.corrupt("not a ledger key"))?;
    let state = r.string(LEDGER_STATE)?;
    let date = r.string(EVENT_START_DATE)?;
    let entry = LedgerEntry {
        content_hash: r.string(CONTENT_HASH)?.to_string(),
        event_id: r
            .opt_number::<i64>(EVENT_ID)?
            .map(|id| EventId::new(id).map_err(|e| r.corrupt(e)))
            .transpose()?,
        state: ledger_state_from_name(state)
            .ok_or_else(|| r.corrupt(format!("unknown ledger state {state:?}")))?,
        event_start_date: NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .map_err(|_| r.corrupt(format!("{EVENT_START_DATE} is not a date")))?,
        updated_at: r.instant(UPDATED_AT)?,
    };
    Ok((key, entry))
}

/// A token item.
pub(super) fn token_item(uuid: &AthleteUuid, token: &StoredToken) -> Item {
    let mut item = key(schema::athlete_pk(uuid), schema::SK_TOKEN);
    item.extend(token_attributes(token));
    item
}

/// A pending link's item.
pub(super) fn pending_link_item(link: &PendingLink) -> Item {
    let mut item = key(
        PENDING_LINKS_PK.to_string(),
        &schema::pending_link_sk(&link.athlete, &link.token.fingerprint),
    );
    item.extend(token_attributes(&link.token));
    item.insert(ATHLETE.into(), s(link.athlete.as_str()));
    if let Some(user) = link.replaces {
        item.insert(REPLACES.into(), n(user.get()));
    }
    item
}

/// An auth state's item, deleted by TTL after `expires_at`.
pub(super) fn state_item(
    state: &AuthState,
    athlete: &AthleteUuid,
    browser_hash: &str,
    expires_at: DateTime<Utc>,
) -> Item {
    let mut item = key(schema::state_pk(state), SK_STATE);
    item.insert(ATHLETE.into(), s(athlete.as_str()));
    item.insert(BROWSER_HASH.into(), s(browser_hash));
    item.insert(EXPIRES_AT.into(), n(schema::epoch_seconds(expires_at)));
    item
}

/// The athlete an auth state item names, `None` once it expired (TTL deletion is lazy: an expired state
/// may still be there, and counts as absent).
pub(super) fn state_from_item(
    item: &Item,
    now: DateTime<Utc>,
) -> Result<Option<(AthleteUuid, Option<String>)>, StoreError> {
    let r = Reader::new(item);
    if r.number::<i64>(EXPIRES_AT)? <= schema::epoch_seconds(now) {
        return Ok(None);
    }
    Ok(Some((
        r.uuid(ATHLETE)?,
        r.opt_string(BROWSER_HASH)?.map(str::to_string),
    )))
}

/// A ledger entry's item.
pub(super) fn ledger_item(uuid: &AthleteUuid, sk: &str, entry: &LedgerEntry) -> Item {
    let mut item = key(schema::athlete_pk(uuid), sk);
    item.insert(CONTENT_HASH.into(), s(&entry.content_hash));
    if let Some(id) = entry.event_id {
        item.insert(EVENT_ID.into(), n(id.get()));
    }
    item.insert(LEDGER_STATE.into(), s(ledger_state_name(entry.state)));
    item.insert(
        EVENT_START_DATE.into(),
        s(entry.event_start_date.format("%Y-%m-%d").to_string()),
    );
    item.insert(UPDATED_AT.into(), instant(entry.updated_at));
    item
}

/// The rate budget's item: the budget's own serialisation (the store does not interpret it) and its version.
pub(super) fn budget_item(document: String, version: u64) -> Item {
    let mut item = key(schema::BUDGET_PK.to_string(), schema::BUDGET_SK);
    item.insert(BUDGET_STATE.into(), s(document));
    item.insert(VERSION.into(), n(version));
    item
}

/// The budget document and its version.
pub(super) fn budget_from_item(item: &Item) -> Result<(&str, u64), StoreError> {
    let r = Reader::new(item);
    Ok((r.string(BUDGET_STATE)?, r.number(VERSION)?))
}

/// A marker's item, deleted by TTL after `until`.
pub(super) fn marker_item(marker: &str, until: DateTime<Utc>) -> Item {
    let mut item = key(schema::marker_pk(marker), SK_MARKER);
    item.insert(UNTIL.into(), n(schema::epoch_seconds(until)));
    item.insert(EXPIRES_AT.into(), n(schema::epoch_seconds(until)));
    item
}

/// A setting's item.
pub(super) fn setting_item(name: &str, value: &str) -> Item {
    let mut item = key(schema::setting_pk(name), SK_SETTING);
    item.insert(VALUE.into(), s(value));
    item
}

/// A setting's value.
pub(super) fn setting_from_item(item: &Item) -> Result<String, StoreError> {
    Reader::new(item).string(VALUE).map(str::to_string)
}

/// Typed access to one item's attributes; every failure names the item and the attribute.
pub(super) struct Reader<'a> {
    item: &'a Item,
}

impl<'a> Reader<'a> {
    pub(super) fn new(item: &'a Item) -> Self {
        Self { item }
    }

    pub(super) fn corrupt(&self, reason: impl ToString) -> StoreError {
        let part = |name: &str| match self.item.get(name) {
            Some(AttributeValue::S(v)) => v.as_str(),
            _ => "?",
        };
        StoreError::Corrupt {
            key: item_name(part(PK), part(SK)),
            reason: reason.to_string(),
        }
    }

    pub(super) fn opt_string(&self, name: &str) -> Result<Option<&'a str>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v.as_str())),
            Some(_) => Err(self.corrupt(format!("{name} is not a string"))),
        }
    }

    pub(super) fn string(&self, name: &str) -> Result<&'a str, StoreError> {
        self.opt_string(name)?
            .ok_or_else(|| self.corrupt(format!("{name} is missing")))
    }

    pub(super) fn opt_number<T: FromStr>(&self, name: &str) -> Result<Option<T>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(v)) => v
                .parse()
                .map(Some)
                .map_err(|_| self.corrupt(format!("{name} is out of range"))),
            Some(_) => Err(self.corrupt(format!("{name} is not a number"))),
        }
    }

    pub(super) fn number<T: FromStr>(&self, name: &str) -> Result<T, StoreError> {
        self.opt_number(name)?
            .ok_or_else(|| self.corrupt(format!("{name} is missing")))
    }

    pub(super) fn opt_instant(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.opt_string(name)?
            .map(|v| {
                schema::parse_instant(v)
                    .ok_or_else(|| self.corrupt(format!("{name} is not an RFC 3339 instant")))
            })
            .transpose()
    }

    pub(super) fn instant(&self, name: &str) -> Result<DateTime<Utc>, StoreError> {
        self.opt_instant(name)?
            .ok_or_else(|| self.corrupt(format!("{name} is missing")))
    }

    pub(super) fn uuid(&self, name: &str) -> Result<AthleteUuid, StoreError> {
        AthleteUuid::parse(self.string(name)?).map_err(|e| self.corrupt(format!("{name}: {e}")))
    }
}
