//! Athletes and their two indexes: Polar user, status.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::error;

use super::super::schema::{
    self, PK, POLAR_USER_INDEX, POLAR_USER_KEY, SK_ATHLETE, STATUS_INDEX, STATUS_KEY, UUID,
};
use super::super::{
    AthleteStore, DueAthlete, DueListing, Page, PageToken, StoreError, preferred_for_polar_user,
};
use super::codec::{
    DUE_ENTRY_ATTRIBUTES, Item, NEXT_SYNC_DUE, QUEUED_UNTIL, Reader, STATUS, VERSION,
    athlete_from_item, athlete_item, due_entry_from_item, item_name, key, n, s,
};
use super::{
    BATCH_GET_MAX, DynamoStore, bad_page_token, condition_failed, plain_key, query_limit,
    string_key, unavailable,
};
use crate::ids::{AthleteUuid, PolarUserId};
use crate::model::{Athlete, AthleteStatus};

/// Keys per status-index query of the due listing (a query returns at most 1 MB anyway).
const DUE_LISTING_PAGE: usize = 1000;

impl DynamoStore {
    /// Sets the queued marker if the athlete is `Linked` and not queued at `now` (and, if `only_if_due`,
    /// due at `now`: stored instants are fixed-width, so they compare as strings).
    async fn mark_queued_where(
        &self,
        uuid: &AthleteUuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
        only_if_due: bool,
    ) -> Result<bool, StoreError> {
        let mut condition =
            "#status = :linked AND (attribute_not_exists(#queued_until) OR #queued_until < :now)"
                .to_string();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(schema::athlete_pk(uuid), SK_ATHLETE)))
            // The marker moves the version like every write of the item, so a job that read the athlete
            // before it cannot write the old marker back.
            .update_expression("SET #queued_until = :until ADD #version :one")
            .expression_attribute_names("#queued_until", QUEUED_UNTIL)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#version", VERSION)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":until", s(schema::format_instant(until)))
            .expression_attribute_values(":linked", s(AthleteStatus::Linked.as_str()))
            .expression_attribute_values(":now", s(schema::format_instant(now)));
        if only_if_due {
            condition.push_str(" AND #next_sync_due <= :now");
            request = request.expression_attribute_names("#next_sync_due", NEXT_SYNC_DUE);
        }
        match request.condition_expression(condition).send().await {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(unavailable("UpdateItem", e)),
        }
    }

    /// One page of the status index for `status`.
    async fn status_keys(
        &self,
        status: AthleteStatus,
        after: Option<Item>,
        limit: usize,
    ) -> Result<(Vec<AthleteUuid>, Option<Item>), StoreError> {
        let (entries, last) = self.status_page(status, after, limit).await?;
        let uuids = entries
            .iter()
            .map(|item| Reader::new(item).uuid(UUID))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((uuids, last))
    }

    /// One page of the status index's entries for `status`, undecoded.
    async fn status_page(
        &self,
        status: AthleteStatus,
        after: Option<Item>,
        limit: usize,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
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
            .map_err(|e| unavailable("Query", e))?;
        Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
    }

    /// Athletes by UUID in the order given; missing ones are skipped.
    pub(super) async fn athletes_by_uuid(
        &self,
        uuids: &[AthleteUuid],
    ) -> Result<Vec<Athlete>, StoreError> {
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
            .map_err(|e| unavailable("Query", e))?;
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

    async fn due_athletes(&self, now: DateTime<Utc>) -> Result<DueListing, StoreError> {
        // No due-time index: its entry would move on every sync and cost two index writes each time.
        // The fan-out reads the linked athletes' keys from the status index and their due times and
        // markers by BatchGetItem (eventually consistent, like the index query it replaces). An entry or
        // item that cannot be decoded is skipped and logged: one bad item must not stop everyone's syncs.
        let mut listing = DueListing::default();
        let mut after = None;
        loop {
            let (entries, last) = self
                .status_page(AthleteStatus::Linked, after.take(), DUE_LISTING_PAGE)
                .await?;
            let mut uuids = Vec::with_capacity(entries.len());
            for entry in &entries {
                match Reader::new(entry).uuid(UUID) {
                    Ok(uuid) => uuids.push(uuid),
                    Err(e) => {
                        listing.skipped += 1;
                        error!(error = %e, "due listing skipped an unreadable status-index entry");
                    }
                }
            }
            for chunk in uuids.chunks(BATCH_GET_MAX) {
                let keys = chunk
                    .iter()
                    .map(|u| key(schema::athlete_pk(u), SK_ATHLETE))
                    .collect();
                // A read that keeps failing (throttling) fails the run: its alarm fires and the next
                // run lists everyone again.
                let items = self
                    .batch_get_attributes(keys, false, &DUE_ENTRY_ATTRIBUTES)
                    .await?;
                for item in items {
                    match due_entry_from_item(&item, now) {
                        Ok(entry) => listing.due.extend(entry),
                        Err(e) => {
                            listing.skipped += 1;
                            error!(error = %e, "due listing skipped an unreadable athlete item");
                        }
                    }
                }
            }
            match last {
                Some(last) => after = Some(last),
                None => break,
            }
        }
        DueAthlete::sort(&mut listing.due);
        Ok(listing)
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
        self.mark_queued_where(uuid, until, now, false).await
    }

    async fn mark_due_queued(
        &self,
        uuid: &AthleteUuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.mark_queued_where(uuid, until, now, true).await
    }

    async fn clear_queued(&self, uuid: &AthleteUuid) -> Result<(), StoreError> {
        // The condition keeps UpdateItem from creating a stub item for an unknown athlete.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(schema::athlete_pk(uuid), SK_ATHLETE)))
            .update_expression("REMOVE #queued_until ADD #version :one")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#queued_until", QUEUED_UNTIL)
            .expression_attribute_names("#version", VERSION)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(unavailable("UpdateItem", e)),
        }
    }
}

/// Where a listing continues: the status being listed and the status index's last key.
#[derive(Debug, Serialize, Deserialize)]
struct ListPosition {
    status: String,
    #[serde(default)]
    after: Option<BTreeMap<String, String>>,
}
