//! Single-use OAuth states.

use aws_sdk_dynamodb::types::ReturnValue;
use chrono::{DateTime, Utc};

use super::super::schema::{self, PK, SK_STATE};
use super::super::{AuthStateStore, StoreError, StoredState};
use super::codec::{key, state_from_item, state_item};
use super::{DynamoStore, condition_failed, unavailable};
use crate::ids::{AthleteUuid, AuthState};

impl AuthStateStore for DynamoStore {
    async fn put_state(
        &self,
        state: &AuthState,
        athlete: &AthleteUuid,
        browser_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let item = state_item(state, athlete, browser_hash, expires_at);
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
        Ok(
            state_from_item(&item, now)?.map(|(athlete, browser_hash)| StoredState {
                athlete,
                browser_hash,
            }),
        )
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
            Err(e) => return Err(unavailable("DeleteItem", e)),
        };
        Ok(state_from_item(&old, now)?.map(|(athlete, _)| athlete))
    }
}
