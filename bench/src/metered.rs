//! A store wrapper that counts what each call would cost on DynamoDB on-demand: the request units
//! `DynamoStore` consumes for the same call (read units for strongly consistent gets, query units for
//! its index queries, write units for each item by its size as DynamoDB bills it, and for each
//! secondary-index entry it changes).
//!
//! The wrapped store does the work; the meter only counts, so the in-memory benchmarks learn the
//! DynamoDB bill of the real store without a DynamoDB.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::ids::{AthleteUuid, AuthState, PolarUserId};
use shared::model::{Athlete, AthleteStatus, LedgerEntry, LedgerKey, PendingLink, StoredToken};
use shared::store::{
    AthleteStore, AuthStateStore, BudgetStore, DueListing, LedgerStore, LockStore, Locking,
    MarkerStore, Page, PageToken, SettingsStore, StoreError, StoredState, TokenStore,
    athlete_item_bytes,
};

/// Bytes one key-only entry of the status index takes in a query result (keys of table and index).
const INDEX_ENTRY_BYTES: u64 = 120;
/// Bytes of one pending-link item in a query result (sealed token, fingerprint, ids and instants).
const PENDING_LINK_BYTES: u64 = 480;
/// DynamoDB rounds query reads up to 4 KB; an eventually consistent read unit covers 8 KB of them.
const QUERY_BYTES_PER_UNIT: u64 = 8 * 1024;

/// Request units and API requests counted so far (read units are in halves, so index queries that cost
/// 0.5 units add up exactly).
#[derive(Debug, Default)]
pub struct StoreMeter {
    half_read_units: AtomicU64,
    write_units: AtomicU64,
    requests: AtomicU64,
    /// The same counts by store operation (the port method's name): (half read units, write units, requests).
    by_operation: Mutex<BTreeMap<&'static str, (u64, u64, u64)>>,
}

/// A reading of the meter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StoreUsage {
    /// Read request units.
    pub read_units: f64,
    /// Write request units.
    pub write_units: f64,
    /// DynamoDB API requests.
    pub requests: u64,
}

impl StoreUsage {
    /// The usage between `earlier` and this reading.
    pub fn since(self, earlier: StoreUsage) -> StoreUsage {
        StoreUsage {
            read_units: self.read_units - earlier.read_units,
            write_units: self.write_units - earlier.write_units,
            requests: self.requests - earlier.requests,
        }
    }
}

impl std::ops::AddAssign for StoreUsage {
    fn add_assign(&mut self, other: StoreUsage) {
        self.read_units += other.read_units;
        self.write_units += other.write_units;
        self.requests += other.requests;
    }
}

impl StoreMeter {
    fn count(&self, operation: &'static str, half_reads: u64, writes: u64, requests: u64) {
        self.half_read_units
            .fetch_add(half_reads, Ordering::Relaxed);
        self.write_units.fetch_add(writes, Ordering::Relaxed);
        self.requests.fetch_add(requests, Ordering::Relaxed);
        let mut by_operation = self
            .by_operation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let counts = by_operation.entry(operation).or_default();
        counts.0 += half_reads;
        counts.1 += writes;
        counts.2 += requests;
    }

    fn read(&self, operation: &'static str, units: u64, requests: u64) {
        self.count(operation, units * 2, 0, requests);
    }

    fn query(&self, operation: &'static str, entries: u64) {
        self.query_bytes(operation, entries.saturating_mul(INDEX_ENTRY_BYTES));
    }

    /// An eventually consistent query returning `bytes`.
    fn query_bytes(&self, operation: &'static str, bytes: u64) {
        let halves = bytes.div_ceil(QUERY_BYTES_PER_UNIT).max(1);
        self.count(operation, halves, 0, 1);
    }

    fn write(&self, operation: &'static str, units: u64, requests: u64) {
        self.count(operation, 0, units, requests);
    }

    /// The counts so far by store operation.
    pub fn by_operation(&self) -> BTreeMap<&'static str, StoreUsage> {
        self.by_operation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|(op, (half_reads, writes, requests))| {
                (
                    *op,
                    StoreUsage {
                        read_units: *half_reads as f64 / 2.0,
                        write_units: *writes as f64,
                        requests: *requests,
                    },
                )
            })
            .collect()
    }

    /// The counts so far.
    pub fn usage(&self) -> StoreUsage {
        StoreUsage {
            read_units: self.half_read_units.load(Ordering::Relaxed) as f64 / 2.0,
            write_units: self.write_units.load(Ordering::Relaxed) as f64,
            requests: self.requests.load(Ordering::Relaxed),
        }
    }
}

/// `inner` with every call metered.
pub struct MeteredStore<S> {
    inner: S,
    meter: StoreMeter,
}

impl<S> MeteredStore<S> {
    /// Meters `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            meter: StoreMeter::default(),
        }
    }

    /// The counts so far.
    pub fn usage(&self) -> StoreUsage {
        self.meter.usage()
    }

    /// The counts so far by store operation.
    pub fn usage_by_operation(&self) -> BTreeMap<&'static str, StoreUsage> {
        self.meter.by_operation()
    }
}

/// Write units the two secondary indexes of the athlete item add when it changes from `old` to `new`:
/// an index entry that appears or disappears costs one, one whose key changes two (delete and put).
fn index_write_units(old: Option<&Athlete>, new: &Athlete) -> u64 {
    fn changed<T: PartialEq>(old: Option<T>, new: Option<T>) -> u64 {
        match (old, new) {
            (Some(a), Some(b)) if a == b => 0,
            (Some(_), Some(_)) => 2,
            (None, None) => 0,
            _ => 1,
        }
    }
    changed(old.map(|a| a.status), Some(new.status))
        + changed(old.and_then(|a| a.polar_user_id), new.polar_user_id)
}

impl<S: AthleteStore> MeteredStore<S> {
    /// The write units of a write that took `uuid`'s athlete item from `old` to what the wrapped store
    /// holds now: one per started KB of the larger of the two, as DynamoDB bills it (a refused
    /// conditional update, which changed nothing, is billed for the item as it is).
    async fn athlete_write_units(&self, old: Option<&Athlete>, uuid: &AthleteUuid) -> u64 {
        let new = self.inner.get_athlete(uuid).await.ok().flatten();
        let bytes = |a: Option<&Athlete>| a.and_then(|a| athlete_item_bytes(a).ok()).unwrap_or(0);
        (bytes(old).max(bytes(new.as_ref())) as u64)
            .div_ceil(1024)
            .max(1)
    }
}

impl<S: AthleteStore> AthleteStore for MeteredStore<S> {
    async fn get_athlete(&self, uuid: &AthleteUuid) -> Result<Option<Athlete>, StoreError> {
        self.meter.read("get_athlete", 1, 1);
        self.inner.get_athlete(uuid).await
    }

    async fn save_athlete(&self, athlete: &Athlete) -> Result<Athlete, StoreError> {
        // The previous item decides which index entries change; reading it from the wrapped store is free.
        let old = self.inner.get_athlete(&athlete.uuid).await?;
        let saved = self.inner.save_athlete(athlete).await;
        let index_units = match &saved {
            Ok(new) => index_write_units(old.as_ref(), new),
            Err(_) => 0,
        };
        // A refused conditional put is billed for the item it would have written too; a request that
        // failed otherwise (throttled, never sent) is not billed.
        let item_units = match &saved {
            Ok(_) => self.athlete_write_units(old.as_ref(), &athlete.uuid).await,
            Err(StoreError::Conflict(_)) => {
                self.athlete_write_units(Some(athlete), &athlete.uuid).await
            }
            Err(_) => 0,
        };
        self.meter
            .write("save_athlete", item_units + index_units, 1);
        saved
    }

    async fn athlete_for_polar_user(
        &self,
        user: PolarUserId,
    ) -> Result<Option<AthleteUuid>, StoreError> {
        self.meter.query("athlete_for_polar_user", 1);
        self.inner.athlete_for_polar_user(user).await
    }

    async fn due_athletes(&self, now: DateTime<Utc>) -> Result<DueListing, StoreError> {
        // DynamoStore reads every linked athlete's keys from the status index (pages of 1,000) and
        // their due times by eventually consistent BatchGetItem (half a unit per item under 4 KB).
        let linked = self
            .inner
            .list_athletes(Some(AthleteStatus::Linked), None, usize::MAX)
            .await?
            .items
            .len() as u64;
        for page in 0..linked.div_ceil(1000).max(1) {
            let entries = (linked - page * 1000).min(1000);
            self.meter
                .query_bytes("due_athletes", entries * INDEX_ENTRY_BYTES);
        }
        self.meter
            .count("due_athletes", linked, 0, linked.div_ceil(100));
        self.inner.due_athletes(now).await
    }

    async fn list_athletes(
        &self,
        status: Option<AthleteStatus>,
        page: Option<PageToken>,
        limit: usize,
    ) -> Result<Page<Athlete>, StoreError> {
        let listed = self.inner.list_athletes(status, page, limit).await;
        let items = listed.as_ref().map_or(0, |p| p.items.len() as u64);
        // The status index lists keys; the athletes are then fetched with BatchGetItem.
        self.meter.query("list_athletes", items);
        self.meter.read("list_athletes", items, items.div_ceil(100));
        listed
    }

    async fn mark_queued(
        &self,
        uuid: &AthleteUuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let old = self.inner.get_athlete(uuid).await.ok().flatten();
        let written = self.inner.mark_queued(uuid, until, now).await;
        let units = self.athlete_write_units(old.as_ref(), uuid).await;
        self.meter.write("mark_queued", units, 1);
        written
    }

    async fn mark_due_queued(
        &self,
        uuid: &AthleteUuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let old = self.inner.get_athlete(uuid).await.ok().flatten();
        let written = self.inner.mark_due_queued(uuid, until, now).await;
        let units = self.athlete_write_units(old.as_ref(), uuid).await;
        self.meter.write("mark_queued", units, 1);
        written
    }

    async fn clear_queued(&self, uuid: &AthleteUuid) -> Result<(), StoreError> {
        let old = self.inner.get_athlete(uuid).await.ok().flatten();
        let written = self.inner.clear_queued(uuid).await;
        let units = self.athlete_write_units(old.as_ref(), uuid).await;
        self.meter.write("clear_queued", units, 1);
        written
    }
}

impl<S: TokenStore> TokenStore for MeteredStore<S> {
    async fn put_token(&self, uuid: &AthleteUuid, token: &StoredToken) -> Result<(), StoreError> {
        self.meter.write("put_token", 1, 1);
        self.inner.put_token(uuid, token).await
    }

    async fn get_token(&self, uuid: &AthleteUuid) -> Result<Option<StoredToken>, StoreError> {
        self.meter.read("get_token", 1, 1);
        self.inner.get_token(uuid).await
    }

    async fn delete_token(&self, uuid: &AthleteUuid) -> Result<(), StoreError> {
        self.meter.write("delete_token", 1, 1);
        self.inner.delete_token(uuid).await
    }

    async fn put_pending_link(&self, link: &PendingLink) -> Result<(), StoreError> {
        self.meter.write("put_pending_link", 1, 1);
        self.inner.put_pending_link(link).await
    }

    async fn pending_link(
        &self,
        uuid: &AthleteUuid,
        fingerprint: &str,
    ) -> Result<Option<PendingLink>, StoreError> {
        self.meter.read("pending_link", 1, 1);
        self.inner.pending_link(uuid, fingerprint).await
    }

    async fn pending_links(
        &self,
        page: Option<PageToken>,
        limit: usize,
    ) -> Result<Page<PendingLink>, StoreError> {
        let listed = self.inner.pending_links(page, limit).await;
        self.meter.query_bytes(
            "pending_links",
            listed
                .as_ref()
                .map_or(0, |p| p.items.len() as u64 * PENDING_LINK_BYTES),
        );
        listed
    }

    async fn delete_pending_link(
        &self,
        uuid: &AthleteUuid,
        fingerprint: &str,
    ) -> Result<(), StoreError> {
        self.meter.write("delete_pending_link", 1, 1);
        self.inner.delete_pending_link(uuid, fingerprint).await
    }
}

impl<S: AuthStateStore> AuthStateStore for MeteredStore<S> {
    async fn put_state(
        &self,
        state: &AuthState,
        athlete: &AthleteUuid,
        browser_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.meter.write("put_state", 1, 1);
        self.inner
            .put_state(state, athlete, browser_hash, expires_at)
            .await
    }

    async fn get_state(
        &self,
        state: &AuthState,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredState>, StoreError> {
        self.meter.read("get_state", 1, 1);
        self.inner.get_state(state, now).await
    }

    async fn take_state(
        &self,
        state: &AuthState,
        now: DateTime<Utc>,
    ) -> Result<Option<AthleteUuid>, StoreError> {
        self.meter.write("take_state", 1, 1);
        self.inner.take_state(state, now).await
    }
}

impl<S: LedgerStore> LedgerStore for MeteredStore<S> {
    async fn ledger_get(
        &self,
        uuid: &AthleteUuid,
        keys: &[LedgerKey],
    ) -> Result<HashMap<LedgerKey, LedgerEntry>, StoreError> {
        let keys_read = keys.len() as u64;
        self.meter
            .read("ledger_get", keys_read, keys_read.div_ceil(100).max(1));
        self.inner.ledger_get(uuid, keys).await
    }

    async fn ledger_put(
        &self,
        uuid: &AthleteUuid,
        entries: &[(LedgerKey, LedgerEntry)],
    ) -> Result<(), StoreError> {
        let distinct: std::collections::HashSet<&LedgerKey> =
            entries.iter().map(|(k, _)| k).collect();
        let items = distinct.len() as u64;
        self.meter
            .write("ledger_put", items, items.div_ceil(25).max(1));
        self.inner.ledger_put(uuid, entries).await
    }

    async fn ledger_counts(&self, uuid: &AthleteUuid) -> Result<HashMap<String, u64>, StoreError> {
        let counts = self.inner.ledger_counts(uuid).await;
        for total in counts.iter().flat_map(|c| c.values()) {
            self.meter.query("ledger_counts", *total);
        }
        counts
    }
}

impl<S: LockStore + AthleteStore> LockStore for MeteredStore<S> {
    async fn try_lock(
        &self,
        uuid: &AthleteUuid,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Locking, StoreError> {
        let old = self.inner.get_athlete(uuid).await.ok().flatten();
        let locking = self.inner.try_lock(uuid, owner, now, until).await;
        let units = self.athlete_write_units(old.as_ref(), uuid).await;
        self.meter.write("try_lock", units, 1);
        if matches!(locking, Ok(Locking::Busy | Locking::NoAthlete)) {
            // A refused lock reads the item to tell which.
            self.meter.read("try_lock", 1, 1);
        }
        locking
    }

    async fn lock_unchanged(
        &self,
        uuid: &AthleteUuid,
        version: u64,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<Option<Athlete>, StoreError> {
        let old = self.inner.get_athlete(uuid).await.ok().flatten();
        let locked = self.inner.lock_unchanged(uuid, version, owner, until).await;
        let units = self.athlete_write_units(old.as_ref(), uuid).await;
        self.meter.write("lock_unchanged", units, 1);
        locked
    }

    async fn unlock(
        &self,
        uuid: &AthleteUuid,
        owner: &str,
        queued_until: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let old = self.inner.get_athlete(uuid).await.ok().flatten();
        let unlocked = self.inner.unlock(uuid, owner, queued_until).await;
        let units = self.athlete_write_units(old.as_ref(), uuid).await;
        self.meter.write("unlock", units, 1);
        unlocked
    }
}

impl<S: BudgetStore> BudgetStore for MeteredStore<S> {
    async fn load_budget<T: DeserializeOwned + Send>(
        &self,
    ) -> Result<Option<(T, u64)>, StoreError> {
        self.meter.read("load_budget", 1, 1);
        self.inner.load_budget().await
    }

    async fn save_budget<T: Serialize + Sync>(
        &self,
        state: &T,
        expected_version: u64,
    ) -> Result<u64, StoreError> {
        self.meter.write("save_budget", 1, 1);
        self.inner.save_budget(state, expected_version).await
    }
}

impl<S: MarkerStore> MarkerStore for MeteredStore<S> {
    async fn claim(
        &self,
        key: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.meter.write("claim", 1, 1);
        self.inner.claim(key, now, until).await
    }
}

impl<S: SettingsStore> SettingsStore for MeteredStore<S> {
    async fn get_setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.meter.read("get_setting", 1, 1);
        self.inner.get_setting(name).await
    }

    async fn put_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.meter.write("put_setting", 1, 1);
        self.inner.put_setting(name, value).await
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use shared::testing::MemoryStore;

    use super::*;

    #[tokio::test]
    async fn saving_a_linked_athlete_counts_its_item_and_the_index_entries_it_changes() {
        let store = MeteredStore::new(MemoryStore::new());
        let uuid = AthleteUuid::parse("bench-athlete").unwrap();
        let mut athlete = Athlete::new(uuid.clone());
        // New item: table + status index entry.
        let saved = store.save_athlete(&athlete).await.unwrap();
        assert_eq!(store.usage().write_units, 2.0);
        athlete = saved;
        athlete.status = AthleteStatus::Linked;
        athlete.polar_user_id = Some(PolarUserId::new(77).unwrap());
        athlete.next_sync_due = Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
        // Status key changes (2), Polar-user entry appears (1), plus the item.
        let saved = store.save_athlete(&athlete).await.unwrap();
        assert_eq!(store.usage().write_units, 2.0 + 4.0);
        // Only the due time moves (every sync): no index entry changes, the item alone.
        let mut later = saved;
        later.next_sync_due = Some(Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0).unwrap());
        store.save_athlete(&later).await.unwrap();
        assert_eq!(store.usage().write_units, 2.0 + 4.0 + 1.0);
        assert_eq!(store.usage().requests, 3);
    }

    #[tokio::test]
    async fn reads_count_one_unit_per_item_and_queries_half_a_unit_per_8_kb() {
        let store = MeteredStore::new(MemoryStore::new());
        let uuid = AthleteUuid::parse("bench-athlete").unwrap();
        store.get_athlete(&uuid).await.unwrap();
        store.get_token(&uuid).await.unwrap();
        assert_eq!(store.usage().read_units, 2.0);
        store.due_athletes(Utc::now()).await.unwrap();
        assert_eq!(store.usage().read_units, 2.5);
        assert_eq!(store.usage().requests, 3);
    }

    #[tokio::test]
    async fn the_due_listing_reads_every_linked_athlete_at_half_a_unit() {
        let store = MeteredStore::new(MemoryStore::new());
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        for i in 0..250 {
            let mut athlete = Athlete::new(AthleteUuid::parse(format!("linked-{i}")).unwrap());
            athlete.set_status(AthleteStatus::Linked, now);
            // A fifth are due; the listing reads everyone linked to find them.
            athlete.next_sync_due = Some(now + chrono::Duration::minutes(i % 5));
            store.save_athlete(&athlete).await.unwrap();
        }
        let before = store.usage();
        let listing = store.due_athletes(now).await.unwrap();
        assert_eq!((listing.due.len(), listing.skipped), (50, 0));
        let used = store.usage().since(before);
        // One status-index page (250 × 120 bytes: 4 halves) and 250 items at half a unit.
        assert_eq!(used.read_units, 2.0 + 125.0);
        assert_eq!(used.write_units, 0.0);
        // The query and three BatchGetItem calls.
        assert_eq!(used.requests, 4);
    }

    #[tokio::test]
    async fn athlete_writes_are_billed_by_the_item_size_as_dynamodb_does() {
        let store = MeteredStore::new(MemoryStore::new());
        let uuid = AthleteUuid::parse("sized").unwrap();
        let saved = store
            .save_athlete(&Athlete::new(uuid.clone()))
            .await
            .unwrap();
        // The item and its status-index entry.
        assert_eq!(store.usage().write_units, 2.0);

        // A lock owner long enough to take the item past 1 KB (the cursors deflate and the last error is
        // bounded; the owner is neither).
        let mut long = saved.clone();
        long.sync_lock = Some(shared::model::SyncLock {
            owner: "x".repeat(1100),
            until: Utc::now(),
        });
        let before = store.usage();
        let long = store.save_athlete(&long).await.unwrap();
        assert_eq!(store.usage().since(before).write_units, 2.0);
        // Shrinking it back is billed by the larger item before it.
        let before = store.usage();
        let short = store
            .save_athlete(&Athlete {
                sync_lock: None,
                ..long.clone()
            })
            .await
            .unwrap();
        assert_eq!(store.usage().since(before).write_units, 2.0);
        // A refused conditional put is billed; the lock on a small item costs one unit.
        let before = store.usage();
        assert!(store.save_athlete(&long).await.is_err());
        assert_eq!(store.usage().since(before).write_units, 2.0);
        let before = store.usage();
        let now = Utc::now();
        let locked = store
            .try_lock(&uuid, "job", now, now + chrono::Duration::seconds(180))
            .await
            .unwrap();
        assert!(matches!(locked, Locking::Taken(_)));
        assert_eq!(store.usage().since(before).write_units, 1.0);
        assert_eq!(short.sync_lock, None);
    }
}
