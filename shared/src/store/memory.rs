//! `MemoryStore`: every store port in memory, with the semantics of `DynamoStore` (version conflicts,
//! second-resolution expiry of states and markers, due order, paging). The contract tests in
//! `shared/tests/store_contract.rs` run against both, so the two cannot drift.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::schema;
use super::{
    AthleteStore, AuthStateStore, BudgetStore, DueAthlete, DueListing, LedgerStore, LockStore,
    Locking, MarkerStore, Page, PageToken, SettingsStore, StoreError, StoredState, TokenStore,
    preferred_for_polar_user,
};
use crate::ids::{AthleteUuid, AuthState, PolarUserId};
use crate::model::{
    Athlete, AthleteStatus, DataKind, LedgerEntry, LedgerKey, PendingLink, StoredToken, SyncLock,
};

#[derive(Default)]
struct State {
    athletes: BTreeMap<AthleteUuid, Athlete>,
    tokens: HashMap<AthleteUuid, StoredToken>,
    /// `<uuid>#<fingerprint>` → pending link, in the order the table lists them
    pending_links: BTreeMap<String, PendingLink>,
    /// state → (attempt, expiry in epoch seconds)
    auth_states: HashMap<String, (StoredState, i64)>,
    ledger: HashMap<AthleteUuid, BTreeMap<LedgerKey, LedgerEntry>>,
    /// The budget document as DynamoDB keeps it (serialised), and its version.
    budget: Option<(String, u64)>,
    /// key → claimed until, epoch seconds
    markers: HashMap<String, i64>,
    settings: HashMap<String, String>,
    unavailable: bool,
    /// athlete → reads of them still to fail
    failing_athlete_reads: HashMap<AthleteUuid, u32>,
    /// athlete → queued-marker writes for them still to fail
    failing_marker_writes: HashMap<AthleteUuid, u32>,
    /// pending-link deletes still to fail
    failing_pending_link_deletes: u32,
    /// token writes still to fail
    failing_token_writes: u32,
    /// athlete writes still to fail
    failing_athlete_writes: u32,
}

/// The in-memory store for handler tests. Cheap to create; share it by reference.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// Sets the queued marker if the athlete is `Linked`, not queued at `now`, and `also` holds.
    fn mark_queued_where(
        &self,
        uuid: &AthleteUuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
        also: impl Fn(&Athlete) -> bool,
    ) -> Result<bool, StoreError> {
        let mut state = self.state()?;
        if let Some(left) = state.failing_marker_writes.get_mut(uuid)
            && *left > 0
        {
            *left -= 1;
            return Err(StoreError::unavailable("queued-marker write set to fail"));
        }
        match state.athletes.get_mut(uuid) {
            Some(a)
                if a.status == AthleteStatus::Linked
                    && a.queued_until.is_none_or(|q| q < now)
                    && also(a) =>
            {
                a.queued_until = Some(until);
                a.version += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// While `true`, every call fails with [`StoreError::Unavailable`], as a throttled table would.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.lock_state().unavailable = unavailable;
    }

    /// The next `times` reads of `uuid`'s athlete item fail with [`StoreError::Unavailable`] (one item
    /// throttled while everything else works).
    pub fn fail_athlete_reads(&self, uuid: &AthleteUuid, times: u32) {
        self.lock_state()
            .failing_athlete_reads
            .insert(uuid.clone(), times);
    }

    /// The next `times` queued-marker writes for `uuid` fail with [`StoreError::Unavailable`] (one item
    /// throttled while the rest of the fan-out's work goes through).
    pub fn fail_marker_writes(&self, uuid: &AthleteUuid, times: u32) {
        self.lock_state()
            .failing_marker_writes
            .insert(uuid.clone(), times);
    }

    /// The next `times` pending-link deletes fail with [`StoreError::Unavailable`] (a link that stops
    /// after it was committed).
    pub fn fail_pending_link_deletes(&self, times: u32) {
        self.lock_state().failing_pending_link_deletes = times;
    }

    /// The next `times` token writes fail with [`StoreError::Unavailable`] (a link that stops after
    /// Polar registered the athlete, before anything was committed).
    pub fn fail_token_writes(&self, times: u32) {
        self.lock_state().failing_token_writes = times;
    }

    /// The next `times` athlete writes (`save_athlete`) fail with [`StoreError::Unavailable`] (a link
    /// that stops after it holds its token, before the athlete says so).
    pub fn fail_athlete_writes(&self, times: u32) {
        self.lock_state().failing_athlete_writes = times;
    }

    /// Every athlete, in UUID order: for assertions on the resulting state.
    pub fn athletes(&self) -> Vec<Athlete> {
        self.lock_state().athletes.values().cloned().collect()
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves consistent data: every change is one step.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn state(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        let state = self.lock_state();
        if state.unavailable {
            return Err(StoreError::unavailable("memory store set unavailable"));
        }
        Ok(state)
    }
}

fn page_after(token: Option<PageToken>) -> Option<String> {
    token.map(|t| t.0)
}

impl AthleteStore for MemoryStore {
    async fn get_athlete(&self, uuid: &AthleteUuid) -> Result<Option<Athlete>, StoreError> {
        let mut state = self.state()?;
        if let Some(left) = state
            .failing_athlete_reads
            .get_mut(uuid)
            .filter(|n| **n > 0)
        {
            *left -= 1;
            return Err(StoreError::unavailable(format!(
                "memory store failing reads of {uuid}"
            )));
        }
        Ok(state.athletes.get(uuid).cloned())
    }

    async fn save_athlete(&self, athlete: &Athlete) -> Result<Athlete, StoreError> {
        let mut state = self.state()?;
        if state.failing_athlete_writes > 0 {
            state.failing_athlete_writes -= 1;
            return Err(StoreError::unavailable("athlete write set to fail"));
        }
        let stored = state.athletes.get(&athlete.uuid).map(|a| a.version);
        let matches = match stored {
            None => athlete.version == 0,
            Some(v) => athlete.version != 0 && v == athlete.version,
        };
        if !matches {
            return Err(StoreError::Conflict(format!("athlete {}", athlete.uuid)));
        }
        let saved = Athlete {
            version: athlete.version + 1,
            ..athlete.clone()
        };
        state.athletes.insert(saved.uuid.clone(), saved.clone());
        Ok(saved)
    }

    async fn athlete_for_polar_user(
        &self,
        user: PolarUserId,
    ) -> Result<Option<AthleteUuid>, StoreError> {
        let state = self.state()?;
        Ok(preferred_for_polar_user(
            state
                .athletes
                .values()
                .filter(|a| a.polar_user_id == Some(user)),
        ))
    }

    async fn due_athletes(&self, now: DateTime<Utc>) -> Result<DueListing, StoreError> {
        let state = self.state()?;
        let mut due: Vec<DueAthlete> = state
            .athletes
            .values()
            .filter_map(|a| {
                DueAthlete::at(
                    &a.uuid,
                    a.status,
                    a.next_sync_due,
                    a.queued_until,
                    a.last_sync_at,
                    now,
                )
            })
            .collect();
        DueAthlete::sort(&mut due);
        Ok(DueListing { due, skipped: 0 })
    }

    async fn list_athletes(
        &self,
        status: Option<AthleteStatus>,
        page: Option<PageToken>,
        limit: usize,
    ) -> Result<Page<Athlete>, StoreError> {
        let state = self.state()?;
        let rank = |s: AthleteStatus| AthleteStatus::ALL.iter().position(|x| *x == s);
        // Status order, then UUID, as the status index lists them; the position is "<rank>#<uuid>".
        let after = page_after(page);
        let mut listed: Vec<(String, Athlete)> = state
            .athletes
            .values()
            .filter(|a| status.is_none_or(|s| a.status == s))
            .filter_map(|a| rank(a.status).map(|r| (format!("{r}#{}", a.uuid), a.clone())))
            .filter(|(k, _)| after.as_ref().is_none_or(|after| k > after))
            .collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(paged(listed, limit))
    }

    async fn mark_queued(
        &self,
        uuid: &AthleteUuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.mark_queued_where(uuid, until, now, |_| true)
    }

    async fn mark_due_queued(
        &self,
        uuid: &AthleteUuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.mark_queued_where(uuid, until, now, |a| {
            a.next_sync_due.is_some_and(|due| due <= now)
        })
    }

    async fn clear_queued(&self, uuid: &AthleteUuid) -> Result<(), StoreError> {
        if let Some(a) = self.state()?.athletes.get_mut(uuid) {
            a.queued_until = None;
            a.version += 1;
        }
        Ok(())
    }
}

/// The first `limit` (at least 1) of `sorted`, with the last one's position as the next page's start.
fn paged<T>(sorted: Vec<(String, T)>, limit: usize) -> Page<T> {
    let limit = limit.max(1);
    let more = sorted.len() > limit;
    let mut items = Vec::with_capacity(limit.min(sorted.len()));
    let mut last = None;
    for (position, item) in sorted.into_iter().take(limit) {
        last = Some(position);
        items.push(item);
    }
    Page {
        items,
        next: if more { last.map(PageToken) } else { None },
    }
}

impl TokenStore for MemoryStore {
    async fn put_token(&self, uuid: &AthleteUuid, token: &StoredToken) -> Result<(), StoreError> {
        let mut state = self.state()?;
        if state.failing_token_writes > 0 {
            state.failing_token_writes -= 1;
            return Err(StoreError::unavailable("token write set to fail"));
        }
        state.tokens.insert(uuid.clone(), token.clone());
        Ok(())
    }

    async fn get_token(&self, uuid: &AthleteUuid) -> Result<Option<StoredToken>, StoreError> {
        Ok(self.state()?.tokens.get(uuid).cloned())
    }

    async fn delete_token(&self, uuid: &AthleteUuid) -> Result<(), StoreError> {
        self.state()?.tokens.remove(uuid);
        Ok(())
    }

    async fn put_pending_link(&self, link: &PendingLink) -> Result<(), StoreError> {
        self.state()?.pending_links.insert(
            schema::pending_link_sk(&link.athlete, &link.token.fingerprint),
            link.clone(),
        );
        Ok(())
    }

    async fn pending_link(
        &self,
        uuid: &AthleteUuid,
        fingerprint: &str,
    ) -> Result<Option<PendingLink>, StoreError> {
        Ok(self
            .state()?
            .pending_links
            .get(&schema::pending_link_sk(uuid, fingerprint))
            .cloned())
    }

    async fn pending_links(
        &self,
        page: Option<PageToken>,
        limit: usize,
    ) -> Result<Page<PendingLink>, StoreError> {
        let after = page_after(page);
        let listed: Vec<(String, PendingLink)> = self
            .state()?
            .pending_links
            .iter()
            .filter(|(k, _)| after.as_ref().is_none_or(|after| *k > after))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(paged(listed, limit))
    }

    async fn delete_pending_link(
        &self,
        uuid: &AthleteUuid,
        fingerprint: &str,
    ) -> Result<(), StoreError> {
        let mut state = self.state()?;
        if state.failing_pending_link_deletes > 0 {
            state.failing_pending_link_deletes -= 1;
            return Err(StoreError::unavailable("pending-link delete set to fail"));
        }
        state
            .pending_links
            .remove(&schema::pending_link_sk(uuid, fingerprint));
        Ok(())
    }
}

impl AuthStateStore for MemoryStore {
    async fn put_state(
        &self,
        state: &AuthState,
        athlete: &AthleteUuid,
        browser_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut store = self.state()?;
        if store.auth_states.contains_key(state.as_str()) {
            return Err(StoreError::Conflict("auth state".to_string()));
        }
        let stored = StoredState {
            athlete: athlete.clone(),
            browser_hash: Some(browser_hash.to_string()),
        };
        store.auth_states.insert(
            state.as_str().to_string(),
            (stored, schema::epoch_seconds(expires_at)),
        );
        Ok(())
    }

    async fn get_state(
        &self,
        state: &AuthState,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredState>, StoreError> {
        Ok(self
            .state()?
            .auth_states
            .get(state.as_str())
            .filter(|(_, expires)| *expires > schema::epoch_seconds(now))
            .map(|(stored, _)| stored.clone()))
    }

    async fn take_state(
        &self,
        state: &AuthState,
        now: DateTime<Utc>,
    ) -> Result<Option<AthleteUuid>, StoreError> {
        Ok(self
            .state()?
            .auth_states
            .remove(state.as_str())
            .filter(|(_, expires)| *expires > schema::epoch_seconds(now))
            .map(|(stored, _)| stored.athlete))
    }
}

impl LedgerStore for MemoryStore {
    async fn ledger_get(
        &self,
        uuid: &AthleteUuid,
        keys: &[LedgerKey],
    ) -> Result<HashMap<LedgerKey, LedgerEntry>, StoreError> {
        let state = self.state()?;
        let Some(ledger) = state.ledger.get(uuid) else {
            return Ok(HashMap::new());
        };
        Ok(keys
            .iter()
            .filter_map(|k| ledger.get(k).map(|e| (k.clone(), e.clone())))
            .collect())
    }

    async fn ledger_put(
        &self,
        uuid: &AthleteUuid,
        entries: &[(LedgerKey, LedgerEntry)],
    ) -> Result<(), StoreError> {
        let mut state = self.state()?;
        let ledger = state.ledger.entry(uuid.clone()).or_default();
        for (key, entry) in entries {
            ledger.insert(key.clone(), entry.clone());
        }
        Ok(())
    }

    async fn ledger_counts(&self, uuid: &AthleteUuid) -> Result<HashMap<String, u64>, StoreError> {
        let state = self.state()?;
        let ledger = state.ledger.get(uuid);
        Ok(DataKind::ALL
            .into_iter()
            .map(|kind| {
                let count = ledger.map_or(0, |l| l.keys().filter(|k| k.kind == kind).count());
                (kind.as_str().to_string(), count as u64)
            })
            .collect())
    }
}

impl LockStore for MemoryStore {
    async fn try_lock(
        &self,
        uuid: &AthleteUuid,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Locking, StoreError> {
        let mut state = self.state()?;
        let Some(athlete) = state.athletes.get_mut(uuid) else {
            return Ok(Locking::NoAthlete);
        };
        if athlete.lock_held(now) {
            return Ok(Locking::Busy);
        }
        athlete.sync_lock = Some(SyncLock {
            owner: owner.to_string(),
            until,
        });
        athlete.locks_taken += 1;
        athlete.version += 1;
        Ok(Locking::Taken(Box::new(athlete.clone())))
    }

    async fn lock_unchanged(
        &self,
        uuid: &AthleteUuid,
        version: u64,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<Option<Athlete>, StoreError> {
        let mut state = self.state()?;
        let Some(athlete) = state
            .athletes
            .get_mut(uuid)
            .filter(|a| a.version == version)
        else {
            return Ok(None);
        };
        athlete.sync_lock = Some(SyncLock {
            owner: owner.to_string(),
            until,
        });
        athlete.locks_taken += 1;
        athlete.version += 1;
        Ok(Some(athlete.clone()))
    }

    async fn unlock(
        &self,
        uuid: &AthleteUuid,
        owner: &str,
        queued_until: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let mut state = self.state()?;
        if let Some(athlete) = state.athletes.get_mut(uuid)
            && athlete.locked_by(owner)
        {
            athlete.sync_lock = None;
            if queued_until.is_some() {
                athlete.queued_until = queued_until;
            }
            athlete.version += 1;
        }
        Ok(())
    }
}

impl BudgetStore for MemoryStore {
    async fn load_budget<T: DeserializeOwned + Send>(
        &self,
    ) -> Result<Option<(T, u64)>, StoreError> {
        let Some((document, version)) = self.state()?.budget.clone() else {
            return Ok(None);
        };
        let state = serde_json::from_str(&document).map_err(|e| StoreError::Corrupt {
            key: "BUDGET/POLAR".to_string(),
            reason: format!("budget state: {e}"),
        })?;
        Ok(Some((state, version)))
    }

    async fn save_budget<T: Serialize + Sync>(
        &self,
        budget: &T,
        expected_version: u64,
    ) -> Result<u64, StoreError> {
        let document = serde_json::to_string(budget).map_err(|e| StoreError::Corrupt {
            key: "BUDGET/POLAR".to_string(),
            reason: format!("budget state: {e}"),
        })?;
        let mut state = self.state()?;
        let stored = state.budget.as_ref().map_or(0, |(_, v)| *v);
        if stored != expected_version {
            return Err(StoreError::Conflict("polar rate budget".to_string()));
        }
        let version = expected_version + 1;
        state.budget = Some((document, version));
        Ok(version)
    }
}

impl MarkerStore for MemoryStore {
    async fn claim(
        &self,
        key: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.state()?;
        let free = state
            .markers
            .get(key)
            .is_none_or(|held_until| *held_until < schema::epoch_seconds(now));
        if free {
            state
                .markers
                .insert(key.to_string(), schema::epoch_seconds(until));
        }
        Ok(free)
    }
}

impl SettingsStore for MemoryStore {
    async fn get_setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.state()?.settings.get(name).cloned())
    }

    async fn put_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.state()?
            .settings
            .insert(name.to_string(), value.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unavailable_store_fails_every_call_until_restored() {
        let store = MemoryStore::new();
        let uuid = AthleteUuid::parse("a").unwrap();
        store
            .save_athlete(&Athlete::new(uuid.clone()))
            .await
            .unwrap();
        store.set_unavailable(true);
        assert!(matches!(
            store.get_athlete(&uuid).await,
            Err(StoreError::Unavailable { .. })
        ));
        assert!(matches!(
            store.put_setting("x", "y").await,
            Err(StoreError::Unavailable { .. })
        ));
        store.set_unavailable(false);
        assert_eq!(store.athletes().len(), 1);
        assert_eq!(
            store.get_setting("x").await.unwrap(),
            None,
            "nothing was written"
        );
    }
}
