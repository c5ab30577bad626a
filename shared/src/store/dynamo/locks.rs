//! Per-athlete sync locks, as two attributes of the athlete item.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};

use super::super::schema::{self, PK, SK_ATHLETE};
use super::super::{LockStore, Locking, StoreError};
use super::codec::{
    LOCK_OWNER, LOCK_UNTIL, LOCKS_TAKEN, QUEUED_UNTIL, VERSION, athlete_from_item, instant, key, n,
    s,
};
use super::{DynamoStore, condition_failed, unavailable};
use crate::ids::AthleteUuid;
use crate::model::Athlete;

impl DynamoStore {
    /// Takes the athlete's lock for `owner` where `condition` holds (over `#version` and `#until`, with
    /// `values` for its placeholders), and hands back the athlete as locked; `Ok(None)` when the condition
    /// failed. Taking it moves the version like every write of the item (a writer that read the athlete
    /// before cannot put it back unlocked, nor one that read it locked put back a released lock) and
    /// counts the lock taken.
    async fn take_lock(
        &self,
        uuid: &AthleteUuid,
        owner: &str,
        until: DateTime<Utc>,
        condition: &str,
        values: [(&str, AttributeValue); 1],
    ) -> Result<Option<Athlete>, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(schema::athlete_pk(uuid), SK_ATHLETE)))
            .update_expression("SET #owner = :me, #until = :until ADD #version :one, #locks :one")
            .condition_expression(condition)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#locks", LOCKS_TAKEN)
            .expression_attribute_names("#owner", LOCK_OWNER)
            .expression_attribute_names("#until", LOCK_UNTIL)
            .expression_attribute_names("#version", VERSION)
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":until", instant(until))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew);
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(out) => match athlete_from_item(&out.attributes.unwrap_or_default()) {
                Ok(athlete) => Ok(Some(athlete)),
                Err(e) => {
                    // Nobody can sync an athlete whose item does not decode; the lock need not wait
                    // to lapse for the next attempt to say so.
                    let _ = self.unlock(uuid, owner, None).await;
                    Err(e)
                }
            },
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(unavailable("UpdateItem", e)),
        }
    }
}

impl LockStore for DynamoStore {
    async fn try_lock(
        &self,
        uuid: &AthleteUuid,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Locking, StoreError> {
        let free = "attribute_exists(#pk) AND (attribute_not_exists(#until) OR #until < :now)";
        if let Some(athlete) = self
            .take_lock(uuid, owner, until, free, [(":now", instant(now))])
            .await?
        {
            return Ok(Locking::Taken(Box::new(athlete)));
        }
        // Rare (a duplicate delivery, or an athlete removed): one read tells which.
        match self.get_item(schema::athlete_pk(uuid), SK_ATHLETE).await? {
            Some(_) => Ok(Locking::Busy),
            None => Ok(Locking::NoAthlete),
        }
    }

    async fn lock_unchanged(
        &self,
        uuid: &AthleteUuid,
        version: u64,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<Option<Athlete>, StoreError> {
        // The version the job read says the lock was free then, and that nobody took it since.
        let unchanged = "attribute_exists(#pk) AND #version = :expected";
        self.take_lock(uuid, owner, until, unchanged, [(":expected", n(version))])
            .await
    }

    async fn unlock(
        &self,
        uuid: &AthleteUuid,
        owner: &str,
        queued_until: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(schema::athlete_pk(uuid), SK_ATHLETE)))
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", LOCK_OWNER)
            .expression_attribute_names("#until", LOCK_UNTIL)
            .expression_attribute_names("#version", VERSION)
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":one", n(1));
        let request = match queued_until {
            Some(queued_until) => request
                .update_expression(
                    "REMOVE #owner, #until SET #queued_until = :queued_until ADD #version :one",
                )
                .expression_attribute_names("#queued_until", QUEUED_UNTIL)
                .expression_attribute_values(":queued_until", instant(queued_until)),
            None => request.update_expression("REMOVE #owner, #until ADD #version :one"),
        };
        let result = request.send().await;
        match result {
            Ok(_) => Ok(()),
            // Someone else holds it now (ours lapsed), or nobody does: nothing to release.
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(unavailable("UpdateItem", e)),
        }
    }
}
