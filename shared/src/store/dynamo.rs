//! `DynamoStore`: every store port on the single table of [`super::schema`], with conditional writes for
//! optimistic concurrency, single-use states, locks and markers.
//!
//! Errors: a failed condition is [`StoreError::Conflict`] (or `Ok(false)`/`None` where the port says
//! so); throttling, transport and service failures are [`StoreError::Unavailable`] carrying only the
//! operation and the SDK's error code; an item that does not decode is [`StoreError::Corrupt`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration as StdDuration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, PutRequest, ReturnValue, Select, WriteRequest,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::schema::{
    self, BUDGET_PK, BUDGET_SK, DUE_INDEX, DUE_PARTITION, DUE_PK, DUE_SK, EXPIRES_AT,
    LEDGER_PREFIX, PENDING_LINKS_PK, PK, POLAR_USER_INDEX, POLAR_USER_KEY, SK, SK_ATHLETE, SK_LOCK,
    SK_MARKER, SK_SETTING, SK_STATE, SK_TOKEN, STATUS_INDEX, STATUS_KEY, UUID,
};
use super::{
    AthleteStore, AuthStateStore, BudgetStore, LedgerStore, LockStore, MarkerStore, Page,
    PageToken, SettingsStore, StoreError, StoredState, TokenStore,
};
use crate::budget::BudgetState;
use crate::crypto::SealedToken;
use crate::ids::{AthleteUuid, AuthState, EventId, PolarUserId, SmartabaseUserId};
use crate::model::{
    Athlete, AthleteStatus, DataKind, LedgerEntry, LedgerKey, LedgerState, PendingLink,
    StoredToken, SyncCursors, TokenSource,
};

type Item = HashMap<String, AttributeValue>;

/// BatchGetItem's limit.
const BATCH_GET_MAX: usize = 100;
/// BatchWriteItem's limit.
const BATCH_WRITE_MAX: usize = 25;
/// Rounds of retrying unprocessed batch keys before giving up as `Unavailable`.
const BATCH_ATTEMPTS: u32 = 8;

// Attribute names of the items (the key and index attributes live in `schema`).
const VERSION: &str = "version";
const STATUS: &str = "status";
const SMARTABASE_USER_ID: &str = "smartabase_user_id";
const POLAR_USER_ID: &str = "polar_user_id";
const LINKED_AT: &str = "linked_at";
const STATUS_CHANGED_AT: &str = "status_changed_at";
const LAST_SYNC_AT: &str = "last_sync_at";
const NEXT_SYNC_DUE: &str = "next_sync_due";
const QUEUED_UNTIL: &str = "queued_until";
const ROSTER_SEEN_AT: &str = "roster_seen_at";
const CURSORS: &str = "cursors";
const LAST_ERROR: &str = "last_error";
const SEALED: &str = "sealed";
const ISSUED_AT: &str = "issued_at";
const TOKEN_EXPIRES_AT: &str = "expires_at_token";
const SOURCE: &str = "source";
const FINGERPRINT: &str = "fingerprint";
const ATHLETE: &str = "athlete";
const BROWSER_HASH: &str = "browser_hash";
const REPLACES: &str = "replaces_polar_user_id";
const CONTENT_HASH: &str = "content_hash";
const EVENT_ID: &str = "event_id";
const LEDGER_STATE: &str = "state";
const EVENT_START_DATE: &str = "event_start_date";
const UPDATED_AT: &str = "updated_at";
const OWNER: &str = "owner";
const LOCK_UNTIL: &str = "lock_until";
const UNTIL: &str = "until";
const BUDGET_STATE: &str = "state";
const VALUE: &str = "value";

/// The production store: one DynamoDB table laid out as [`super::schema`] describes.
///
/// Reads of single items and batches are strongly consistent; index queries (due athletes, Polar user,
/// listings) are eventually consistent, as GSIs are. Listings re-read the athletes and drop entries whose
/// status moved on, so an athlete appears under its current status only.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    /// A store on `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// A store on `table` with a client built from `config`.
    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(config), table)
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", &e))?;
        Ok(out.item)
    }

    async fn put_item(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| unavailable("PutItem", &e))?;
        Ok(())
    }

    /// A conditional PutItem: `Ok(false)` when the condition failed.
    async fn put_if(
        &self,
        item: Item,
        condition: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition);
        for (placeholder, name) in names {
            request = request.expression_attribute_names(*placeholder, *name);
        }
        for (placeholder, value) in values {
            request = request.expression_attribute_values(placeholder, value);
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(unavailable("PutItem", &e)),
        }
    }

    /// Fetches items by key (consistent), in chunks of 100, retrying unprocessed keys. Keys must be distinct.
    async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET_MAX) {
            let mut pending = KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Unavailable(format!("BatchGetItem: {e}")))?;
            let mut attempt = 0;
            loop {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| unavailable("BatchGetItem", &e))?;
                if let Some(items) = out.responses.and_then(|mut r| r.remove(&self.table)) {
                    found.extend(items);
                }
                match out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|rest| !rest.keys().is_empty())
                {
                    None => break,
                    Some(rest) => {
                        attempt += 1;
                        if attempt >= BATCH_ATTEMPTS {
                            return Err(StoreError::Unavailable(
                                "BatchGetItem: keys still unprocessed after retries".to_string(),
                            ));
                        }
                        tokio::time::sleep(backoff(attempt)).await;
                        pending = rest;
                    }
                }
            }
        }
        Ok(found)
    }

    /// Writes items in chunks of 25, retrying unprocessed ones. Keys must be distinct.
    async fn batch_put(&self, items: Vec<Item>) -> Result<(), StoreError> {
        let mut requests = Vec::with_capacity(items.len());
        for item in items {
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| StoreError::Unavailable(format!("BatchWriteItem: {e}")))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        for chunk in requests.chunks(BATCH_WRITE_MAX) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            loop {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| unavailable("BatchWriteItem", &e))?;
                match out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|rest| !rest.is_empty())
                {
                    None => break,
                    Some(rest) => {
                        attempt += 1;
                        if attempt >= BATCH_ATTEMPTS {
                            return Err(StoreError::Unavailable(
                                "BatchWriteItem: items still unprocessed after retries".to_string(),
                            ));
                        }
                        tokio::time::sleep(backoff(attempt)).await;
                        pending = rest;
                    }
                }
            }
        }
        Ok(())
    }

    /// One page of the status index for `status`.
    async fn status_keys(
        &self,
        status: AthleteStatus,
        after: Option<Item>,
        limit: usize,
    ) -> Result<(Vec<AthleteUuid>, Option<Item>), StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(STATUS_INDEX)
            .key_condition_expression("#status_key = :status")
            .expression_attribute_names("#status_key", STATUS_KEY)
            .expression_attribute_values(":status", s(status.as_str()))
            .limit(query_limit(limit))
            .set_exclusive_start_key(after)
            .send()
            .await
            .map_err(|e| unavailable("Query", &e))?;
        let uuids = out
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| Reader::new(item).uuid(UUID))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((uuids, out.last_evaluated_key))
    }

    /// Athletes by UUID in the order given; missing ones are skipped.
    async fn athletes_by_uuid(&self, uuids: &[AthleteUuid]) -> Result<Vec<Athlete>, StoreError> {
        let keys = uuids
            .iter()
            .map(|u| key(schema::athlete_pk(u), SK_ATHLETE))
            .collect();
        let mut by_uuid: HashMap<AthleteUuid, Athlete> = self
            .batch_get(keys)
            .await?
            .iter()
            .map(|item| athlete_from_item(item).map(|a| (a.uuid.clone(), a)))
            .collect::<Result<_, _>>()?;
        Ok(uuids.iter().filter_map(|u| by_uuid.remove(u)).collect())
    }
}

impl AthleteStore for DynamoStore {
    async fn get_athlete(&self, uuid: &AthleteUuid) -> Result<Option<Athlete>, StoreError> {
        self.get_item(schema::athlete_pk(uuid), SK_ATHLETE)
            .await?
            .map(|item| athlete_from_item(&item))
            .transpose()
    }

    async fn save_athlete(&self, athlete: &Athlete) -> Result<Athlete, StoreError> {
        let version = athlete
            .version
            .checked_add(1)
            .ok_or_else(|| StoreError::Corrupt {
                key: item_name(&schema::athlete_pk(&athlete.uuid), SK_ATHLETE),
                reason: "version overflow".to_string(),
            })?;
        let item = athlete_item(athlete, version)?;
        let written = if athlete.version == 0 {
            self.put_if(item, "attribute_not_exists(#pk)", &[("#pk", PK)], vec![])
                .await?
        } else {
            self.put_if(
                item,
                "#version = :expected",
                &[("#version", VERSION)],
                vec![(":expected", n(athlete.version))],
            )
            .await?
        };
        if !written {
            return Err(StoreError::Conflict(format!("athlete {}", athlete.uuid)));
        }
        Ok(Athlete {
            version,
            ..athlete.clone()
        })
    }

    async fn athlete_for_polar_user(
        &self,
        user: PolarUserId,
    ) -> Result<Option<AthleteUuid>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(POLAR_USER_INDEX)
            .key_condition_expression("#polar_user_key = :user")
            .expression_attribute_names("#polar_user_key", POLAR_USER_KEY)
            .expression_attribute_values(":user", s(schema::polar_user_key(user)))
            .send()
            .await
            .map_err(|e| unavailable("Query", &e))?;
        let mut uuids = out
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| Reader::new(item).uuid(UUID))
            .collect::<Result<Vec<_>, _>>()?;
        if uuids.len() <= 1 {
            return Ok(uuids.pop());
        }
        // Rare: an older athlete still carries the id. Re-read them and prefer the linked one.
        uuids.sort();
        uuids.dedup();
        let candidates = self.athletes_by_uuid(&uuids).await?;
        Ok(preferred_for_polar_user(
            candidates.iter().filter(|a| a.polar_user_id == Some(user)),
        ))
    }

    async fn due_athletes(
        &self,
        now: DateTime<Utc>,
        page: Option<PageToken>,
        limit: usize,
    ) -> Result<Page<AthleteUuid>, StoreError> {
        let after = page.map(|p| decode_key(&p.0)).transpose()?;
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .key_condition_expression("#due_pk = :due AND #due_sk <= :upper")
            .expression_attribute_names("#due_pk", DUE_PK)
            .expression_attribute_names("#due_sk", DUE_SK)
            .expression_attribute_values(":due", s(DUE_PARTITION))
            .expression_attribute_values(":upper", s(schema::due_upper_bound(now)))
            .scan_index_forward(true)
            .limit(query_limit(limit))
            .set_exclusive_start_key(after)
            .send()
            .await
            .map_err(|e| unavailable("Query", &e))?;
        let items = out
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let reader = Reader::new(item);
                let pk = reader.string(PK)?;
                schema::uuid_from_athlete_pk(pk).ok_or_else(|| reader.corrupt("not an athlete key"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let next = out
            .last_evaluated_key
            .map(|k| encode_key(&k).map(PageToken))
            .transpose()?;
        Ok(Page { items, next })
    }

    async fn list_athletes(
        &self,
        status: Option<AthleteStatus>,
        page: Option<PageToken>,
        limit: usize,
    ) -> Result<Page<Athlete>, StoreError> {
        let limit = limit.max(1);
        let statuses: Vec<AthleteStatus> = match status {
            Some(s) => vec![s],
            None => AthleteStatus::ALL.to_vec(),
        };
        let (mut index, mut after) = match page {
            None => (0, None),
            Some(token) => {
                let position: ListPosition = serde_json::from_str(&token.0)
                    .map_err(|_| bad_page_token("not a listing position"))?;
                let index = statuses
                    .iter()
                    .position(|s| s.as_str() == position.status)
                    .ok_or_else(|| bad_page_token("status does not match the listing"))?;
                let after = position.after.map(|a| string_key(&a));
                (index, after)
            }
        };

        // (status the index listed the athlete under, athlete)
        let mut listed: Vec<(AthleteStatus, AthleteUuid)> = Vec::new();
        let mut next = None;
        while let Some(&current) = statuses.get(index) {
            let (uuids, last) = self
                .status_keys(current, after.take(), limit - listed.len())
                .await?;
            listed.extend(uuids.into_iter().map(|u| (current, u)));
            match last {
                Some(last) => {
                    if listed.len() >= limit {
                        next = Some(ListPosition {
                            status: current.as_str().to_string(),
                            after: Some(plain_key(&last)?),
                        });
                        break;
                    }
                    after = Some(last);
                }
                None => {
                    index += 1;
                    if listed.len() >= limit {
                        next = statuses.get(index).map(|s| ListPosition {
                            status: s.as_str().to_string(),
                            after: None,
                        });
                        break;
                    }
                }
            }
        }

        let uuids: Vec<AthleteUuid> = listed.iter().map(|(_, u)| u.clone()).collect();
        let athletes = self.athletes_by_uuid(&uuids).await?;
        let listed_under: HashMap<&AthleteUuid, AthleteStatus> =
            listed.iter().map(|(s, u)| (u, *s)).collect();
        // The index lags writes: keep each athlete only under the status it has now.
        let items = athletes
            .into_iter()
            .filter(|a| listed_under.get(&a.uuid) == Some(&a.status))
            .collect();
        let next = next
            .map(|position| {
                serde_json::to_string(&position)
                    .map(PageToken)
                    .map_err(|_| bad_page_token("cannot encode"))
            })
            .transpose()?;
        Ok(Page { items, next })
    }

    async fn mark_queued(
        &self,
        uuid: &AthleteUuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(schema::athlete_pk(uuid), SK_ATHLETE)))
            .update_expression("SET #queued_until = :until")
            .condition_expression(
                "#status = :linked AND (attribute_not_exists(#queued_until) OR #queued_until < :now)",
            )
            .expression_attribute_names("#queued_until", QUEUED_UNTIL)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_values(":until", s(schema::format_instant(until)))
            .expression_attribute_values(":linked", s(AthleteStatus::Linked.as_str()))
            .expression_attribute_values(":now", s(schema::format_instant(now)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(unavailable("UpdateItem", &e)),
        }
    }

    async fn clear_queued(&self, uuid: &AthleteUuid) -> Result<(), StoreError> {
        // The condition keeps UpdateItem from creating a stub item for an unknown athlete.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(schema::athlete_pk(uuid), SK_ATHLETE)))
            .update_expression("REMOVE #queued_until")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#queued_until", QUEUED_UNTIL)
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(unavailable("UpdateItem", &e)),
        }
    }
}

impl TokenStore for DynamoStore {
    async fn put_token(&self, uuid: &AthleteUuid, token: &StoredToken) -> Result<(), StoreError> {
        let mut item = key(schema::athlete_pk(uuid), SK_TOKEN);
        item.extend(token_attributes(token));
        self.put_item(item).await
    }

    async fn get_token(&self, uuid: &AthleteUuid) -> Result<Option<StoredToken>, StoreError> {
        let Some(item) = self.get_item(schema::athlete_pk(uuid), SK_TOKEN).await? else {
            return Ok(None);
        };
        token_from_item(&item).map(Some)
    }

    async fn delete_token(&self, uuid: &AthleteUuid) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(schema::athlete_pk(uuid), SK_TOKEN)))
            .send()
            .await
            .map_err(|e| unavailable("DeleteItem", &e))?;
        Ok(())
    }

    async fn put_pending_link(&self, link: &PendingLink) -> Result<(), StoreError> {
        let mut item = key(
            PENDING_LINKS_PK.to_string(),
            &schema::pending_link_sk(&link.athlete, &link.token.fingerprint),
        );
        item.extend(token_attributes(&link.token));
        item.insert(ATHLETE.into(), s(link.athlete.as_str()));
        if let Some(user) = link.replaces {
            item.insert(REPLACES.into(), n(user.get()));
        }
        self.put_item(item).await
    }

    async fn pending_link(
        &self,
        uuid: &AthleteUuid,
        fingerprint: &str,
    ) -> Result<Option<PendingLink>, StoreError> {
        self.get_item(
            PENDING_LINKS_PK.to_string(),
            &schema::pending_link_sk(uuid, fingerprint),
        )
        .await?
        .map(|item| pending_link_from_item(&item))
        .transpose()
    }

    async fn pending_links(
        &self,
        page: Option<PageToken>,
        limit: usize,
    ) -> Result<Page<PendingLink>, StoreError> {
        let after = page.map(|p| decode_key(&p.0)).transpose()?;
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", s(PENDING_LINKS_PK))
            .limit(query_limit(limit))
            .set_exclusive_start_key(after)
            .send()
            .await
            .map_err(|e| unavailable("Query", &e))?;
        let items = out
            .items
            .unwrap_or_default()
            .iter()
            .map(pending_link_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next = out
            .last_evaluated_key
            .map(|k| encode_key(&k).map(PageToken))
            .transpose()?;
        Ok(Page { items, next })
    }

    async fn delete_pending_link(
        &self,
        uuid: &AthleteUuid,
        fingerprint: &str,
    ) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(
                PENDING_LINKS_PK.to_string(),
                &schema::pending_link_sk(uuid, fingerprint),
            )))
            .send()
            .await
            .map_err(|e| unavailable("DeleteItem", &e))?;
        Ok(())
    }
}

impl AuthStateStore for DynamoStore {
    async fn put_state(
        &self,
        state: &AuthState,
        athlete: &AthleteUuid,
        browser_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut item = key(schema::state_pk(state), SK_STATE);
        item.insert(ATHLETE.into(), s(athlete.as_str()));
        item.insert(BROWSER_HASH.into(), s(browser_hash));
        item.insert(EXPIRES_AT.into(), n(schema::epoch_seconds(expires_at)));
        if self
            .put_if(item, "attribute_not_exists(#pk)", &[("#pk", PK)], vec![])
            .await?
        {
            Ok(())
        } else {
            Err(StoreError::Conflict("auth state".to_string()))
        }
    }

    async fn get_state(
        &self,
        state: &AuthState,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredState>, StoreError> {
        let Some(item) = self.get_item(schema::state_pk(state), SK_STATE).await? else {
            return Ok(None);
        };
        let r = Reader::new(&item);
        // TTL deletion is lazy: an expired state may still be there, and counts as absent.
        if r.number::<i64>(EXPIRES_AT)? <= schema::epoch_seconds(now) {
            return Ok(None);
        }
        Ok(Some(StoredState {
            athlete: r.uuid(ATHLETE)?,
            browser_hash: r.opt_string(BROWSER_HASH)?.map(str::to_string),
        }))
    }

    async fn take_state(
        &self,
        state: &AuthState,
        now: DateTime<Utc>,
    ) -> Result<Option<AthleteUuid>, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(schema::state_pk(state), SK_STATE)))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(e) if condition_failed(&e) => return Ok(None),
            Err(e) => return Err(unavailable("DeleteItem", &e)),
        };
        let r = Reader::new(&old);
        // TTL deletion is lazy: an expired state may still be there, and counts as absent.
        if r.number::<i64>(EXPIRES_AT)? <= schema::epoch_seconds(now) {
            return Ok(None);
        }
        r.uuid(ATHLETE).map(Some)
    }
}

impl LedgerStore for DynamoStore {
    async fn ledger_get(
        &self,
        uuid: &AthleteUuid,
        keys: &[LedgerKey],
    ) -> Result<HashMap<LedgerKey, LedgerEntry>, StoreError> {
        let pk = schema::athlete_pk(uuid);
        let distinct: HashSet<String> = keys.iter().map(schema::ledger_sk).collect();
        let requests = distinct
            .into_iter()
            .map(|sk| key(pk.clone(), &sk))
            .collect();
        self.batch_get(requests)
            .await?
            .iter()
            .map(ledger_from_item)
            .collect()
    }

    async fn ledger_put(
        &self,
        uuid: &AthleteUuid,
        entries: &[(LedgerKey, LedgerEntry)],
    ) -> Result<(), StoreError> {
        let pk = schema::athlete_pk(uuid);
        // BatchWriteItem refuses two writes to one key in a batch: the last entry for a key wins.
        let mut by_key: BTreeMap<String, &LedgerEntry> = BTreeMap::new();
        for (k, entry) in entries {
            by_key.insert(schema::ledger_sk(k), entry);
        }
        let items = by_key
            .into_iter()
            .map(|(sk, entry)| {
                let mut item = key(pk.clone(), &sk);
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
            })
            .collect();
        self.batch_put(items).await
    }

    async fn ledger_counts(&self, uuid: &AthleteUuid) -> Result<HashMap<String, u64>, StoreError> {
        let pk = schema::athlete_pk(uuid);
        let mut counts = HashMap::new();
        for kind in DataKind::ALL {
            let prefix = format!("{LEDGER_PREFIX}{}#", kind.as_str());
            let mut total = 0u64;
            let mut after = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_names("#sk", SK)
                    .expression_attribute_values(":pk", s(&pk))
                    .expression_attribute_values(":prefix", s(&prefix))
                    .select(Select::Count)
                    .set_exclusive_start_key(after)
                    .send()
                    .await
                    .map_err(|e| unavailable("Query", &e))?;
                total += u64::try_from(out.count).unwrap_or(0);
                after = out.last_evaluated_key;
                if after.is_none() {
                    break;
                }
            }
            counts.insert(kind.as_str().to_string(), total);
        }
        Ok(counts)
    }
}

impl LockStore for DynamoStore {
    async fn try_lock(
        &self,
        uuid: &AthleteUuid,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut item = key(schema::athlete_pk(uuid), SK_LOCK);
        item.insert(OWNER.into(), s(owner));
        item.insert(LOCK_UNTIL.into(), n(schema::epoch_seconds(until)));
        item.insert(EXPIRES_AT.into(), n(schema::epoch_seconds(until)));
        self.put_if(
            item,
            "attribute_not_exists(#pk) OR #lock_until < :now",
            &[("#pk", PK), ("#lock_until", LOCK_UNTIL)],
            vec![(":now", n(schema::epoch_seconds(now)))],
        )
        .await
    }

    async fn unlock(&self, uuid: &AthleteUuid, owner: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(schema::athlete_pk(uuid), SK_LOCK)))
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_values(":me", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Someone else holds it now (ours lapsed), or nobody does: nothing to release.
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(unavailable("DeleteItem", &e)),
        }
    }
}

impl BudgetStore for DynamoStore {
    async fn load_budget(&self) -> Result<Option<(BudgetState, u64)>, StoreError> {
        let Some(item) = self.get_item(BUDGET_PK.to_string(), BUDGET_SK).await? else {
            return Ok(None);
        };
        let r = Reader::new(&item);
        let state = serde_json::from_str(r.string(BUDGET_STATE)?)
            .map_err(|e| r.corrupt(format!("budget state: {e}")))?;
        Ok(Some((state, r.number(VERSION)?)))
    }

    async fn save_budget(
        &self,
        state: &BudgetState,
        expected_version: u64,
    ) -> Result<u64, StoreError> {
        let version = expected_version + 1;
        let mut item = key(BUDGET_PK.to_string(), BUDGET_SK);
        let json = serde_json::to_string(state).map_err(|e| StoreError::Corrupt {
            key: item_name(BUDGET_PK, BUDGET_SK),
            reason: format!("budget state: {e}"),
        })?;
        item.insert(BUDGET_STATE.into(), s(json));
        item.insert(VERSION.into(), n(version));
        let written = if expected_version == 0 {
            self.put_if(item, "attribute_not_exists(#pk)", &[("#pk", PK)], vec![])
                .await?
        } else {
            self.put_if(
                item,
                "#version = :expected",
                &[("#version", VERSION)],
                vec![(":expected", n(expected_version))],
            )
            .await?
        };
        if written {
            Ok(version)
        } else {
            Err(StoreError::Conflict("polar rate budget".to_string()))
        }
    }
}

impl MarkerStore for DynamoStore {
    async fn claim(
        &self,
        marker: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut item = key(schema::marker_pk(marker), SK_MARKER);
        item.insert(UNTIL.into(), n(schema::epoch_seconds(until)));
        item.insert(EXPIRES_AT.into(), n(schema::epoch_seconds(until)));
        self.put_if(
            item,
            "attribute_not_exists(#pk) OR #until < :now",
            &[("#pk", PK), ("#until", UNTIL)],
            vec![(":now", n(schema::epoch_seconds(now)))],
        )
        .await
    }
}

impl SettingsStore for DynamoStore {
    async fn get_setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        let Some(item) = self.get_item(schema::setting_pk(name), SK_SETTING).await? else {
            return Ok(None);
        };
        Reader::new(&item)
            .string(VALUE)
            .map(|v| Some(v.to_string()))
    }

    async fn put_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let mut item = key(schema::setting_pk(name), SK_SETTING);
        item.insert(VALUE.into(), s(value));
        self.put_item(item).await
    }
}

/// Of several athletes carrying one Polar user id, the one a webhook means: the linked one, else the
/// most recently linked, ties by UUID. `MemoryStore` applies the same rule.
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

/// Where a listing continues: the status being listed and the status index's last key.
#[derive(Debug, Serialize, Deserialize)]
struct ListPosition {
    status: String,
    #[serde(default)]
    after: Option<BTreeMap<String, String>>,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn instant(at: DateTime<Utc>) -> AttributeValue {
    s(schema::format_instant(at))
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([(PK.to_string(), s(pk)), (SK.to_string(), s(sk))])
}

fn item_name(pk: &str, sk: &str) -> String {
    format!("{pk}/{sk}")
}

fn query_limit(limit: usize) -> i32 {
    i32::try_from(limit.max(1)).unwrap_or(i32::MAX)
}

fn backoff(attempt: u32) -> StdDuration {
    StdDuration::from_millis(25u64 << attempt.min(6))
}

/// Whether a request failed only because its condition did not hold (every DynamoDB operation reports it
/// with this code).
fn condition_failed<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error().and_then(ProvideErrorMetadata::code)
        == Some("ConditionalCheckFailedException")
}

fn unavailable<E: ProvideErrorMetadata, R>(operation: &str, err: &SdkError<E, R>) -> StoreError {
    StoreError::Unavailable(format!("{operation}: {}", crate::aws::error_code(err)))
}

fn bad_page_token(reason: &str) -> StoreError {
    StoreError::Corrupt {
        key: "page token".to_string(),
        reason: reason.to_string(),
    }
}

/// A key of string attributes as plain strings (every key attribute of the table is a string).
fn plain_key(key: &Item) -> Result<BTreeMap<String, String>, StoreError> {
    key.iter()
        .map(|(name, value)| match value {
            AttributeValue::S(v) => Ok((name.clone(), v.clone())),
            _ => Err(bad_page_token("key attribute is not a string")),
        })
        .collect()
}

fn string_key(key: &BTreeMap<String, String>) -> Item {
    key.iter().map(|(k, v)| (k.clone(), s(v))).collect()
}

fn encode_key(key: &Item) -> Result<String, StoreError> {
    serde_json::to_string(&plain_key(key)?).map_err(|_| bad_page_token("cannot encode"))
}

fn decode_key(token: &str) -> Result<Item, StoreError> {
    serde_json::from_str::<BTreeMap<String, String>>(token)
        .map(|k| string_key(&k))
        .map_err(|_| bad_page_token("not a key"))
}

/// The attributes of a stored token (the token item's, and a pending link's).
fn token_attributes(token: &StoredToken) -> Item {
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

fn token_from_item(item: &Item) -> Result<StoredToken, StoreError> {
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

fn pending_link_from_item(item: &Item) -> Result<PendingLink, StoreError> {
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

fn token_source_name(source: TokenSource) -> &'static str {
    match source {
        TokenSource::WebFlow => "web_flow",
        TokenSource::AthleteApp => "athlete_app",
    }
}

fn token_source_from_name(name: &str) -> Option<TokenSource> {
    [TokenSource::WebFlow, TokenSource::AthleteApp]
        .into_iter()
        .find(|s| token_source_name(*s) == name)
}

fn ledger_state_name(state: LedgerState) -> &'static str {
    match state {
        LedgerState::Pending => "pending",
        LedgerState::Confirmed => "confirmed",
        LedgerState::LookedUp => "looked-up",
    }
}

fn ledger_state_from_name(name: &str) -> Option<LedgerState> {
    [
        LedgerState::Pending,
        LedgerState::Confirmed,
        LedgerState::LookedUp,
    ]
    .into_iter()
    .find(|s| ledger_state_name(*s) == name)
}

fn athlete_item(athlete: &Athlete, version: u64) -> Result<Item, StoreError> {
    let pk = schema::athlete_pk(&athlete.uuid);
    let cursors = serde_json::to_string(&athlete.cursors).map_err(|e| StoreError::Corrupt {
        key: item_name(&pk, SK_ATHLETE),
        reason: format!("cursors: {e}"),
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
    item.insert(CURSORS.into(), s(cursors));
    if let Some(error) = &athlete.last_error {
        item.insert(LAST_ERROR.into(), s(error));
    }
    // The due index is sparse: only linked athletes with a next sync time are in it.
    if let (AthleteStatus::Linked, Some(due)) = (athlete.status, athlete.next_sync_due) {
        item.insert(DUE_PK.into(), s(DUE_PARTITION));
        item.insert(DUE_SK.into(), s(schema::due_sort_key(due, &athlete.uuid)));
    }
    Ok(item)
}

fn athlete_from_item(item: &Item) -> Result<Athlete, StoreError> {
    let r = Reader::new(item);
    let status_name = r.string(STATUS)?;
    let cursors: SyncCursors =
        serde_json::from_str(r.string(CURSORS)?).map_err(|e| r.corrupt(format!("cursors: {e}")))?;
    Ok(Athlete {
        uuid: r.uuid(UUID)?,
        smartabase_user_id: r
            .opt_number::<i64>(SMARTABASE_USER_ID)?
            .map(|id| SmartabaseUserId::new(id).map_err(|e| r.corrupt(e)))
            .transpose()?,
        status: AthleteStatus::parse(status_name)
            .ok_or_else(|| r.corrupt(format!("unknown status {status_name:?}")))?,
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
        last_error: r.opt_string(LAST_ERROR)?.map(str::to_string),
        version: r.number(VERSION)?,
    })
}

fn ledger_from_item(item: &Item) -> Result<(LedgerKey, LedgerEntry), StoreError> {
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

/// Typed access to one item's attributes; every failure names the item and the attribute.
struct Reader<'a> {
    item: &'a Item,
}

impl<'a> Reader<'a> {
    fn new(item: &'a Item) -> Self {
        Self { item }
    }

    fn corrupt(&self, reason: impl ToString) -> StoreError {
        let part = |name: &str| match self.item.get(name) {
            Some(AttributeValue::S(v)) => v.as_str(),
            _ => "?",
        };
        StoreError::Corrupt {
            key: item_name(part(PK), part(SK)),
            reason: reason.to_string(),
        }
    }

    fn opt_string(&self, name: &str) -> Result<Option<&'a str>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v.as_str())),
            Some(_) => Err(self.corrupt(format!("{name} is not a string"))),
        }
    }

    fn string(&self, name: &str) -> Result<&'a str, StoreError> {
        self.opt_string(name)?
            .ok_or_else(|| self.corrupt(format!("{name} is missing")))
    }

    fn opt_number<T: FromStr>(&self, name: &str) -> Result<Option<T>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(v)) => v
                .parse()
                .map(Some)
                .map_err(|_| self.corrupt(format!("{name} is out of range"))),
            Some(_) => Err(self.corrupt(format!("{name} is not a number"))),
        }
    }

    fn number<T: FromStr>(&self, name: &str) -> Result<T, StoreError> {
        self.opt_number(name)?
            .ok_or_else(|| self.corrupt(format!("{name} is missing")))
    }

    fn opt_instant(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.opt_string(name)?
            .map(|v| {
                schema::parse_instant(v)
                    .ok_or_else(|| self.corrupt(format!("{name} is not an RFC 3339 instant")))
            })
            .transpose()
    }

    fn instant(&self, name: &str) -> Result<DateTime<Utc>, StoreError> {
        self.opt_instant(name)?
            .ok_or_else(|| self.corrupt(format!("{name} is missing")))
    }

    fn uuid(&self, name: &str) -> Result<AthleteUuid, StoreError> {
        AthleteUuid::parse(self.string(name)?).map_err(|e| self.corrupt(format!("{name}: {e}")))
    }
}
