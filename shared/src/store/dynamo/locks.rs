//! Per-athlete sync locks.

use chrono::{DateTime, Utc};

use super::super::schema::{self, PK, SK_LOCK};
use super::super::{LockStore, StoreError};
use super::codec::{LOCK_UNTIL, OWNER, key, lock_item, n, s};
use super::{DynamoStore, condition_failed, unavailable};
use crate::ids::AthleteUuid;

impl LockStore for DynamoStore {
    async fn try_lock(
        &self,
        uuid: &AthleteUuid,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.put_if(
            lock_item(uuid, owner, until),
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
