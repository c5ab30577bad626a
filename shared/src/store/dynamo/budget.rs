//! The app-wide rate budget: one versioned document the store keeps without interpreting it.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::super::schema::{BUDGET_PK, BUDGET_SK, PK};
use super::super::{BudgetStore, StoreError};
use super::DynamoStore;
use super::codec::{VERSION, budget_from_item, budget_item, item_name, n};

impl BudgetStore for DynamoStore {
    async fn load_budget<T: DeserializeOwned + Send>(
        &self,
    ) -> Result<Option<(T, u64)>, StoreError> {
        let Some(item) = self.get_item(BUDGET_PK.to_string(), BUDGET_SK).await? else {
            return Ok(None);
        };
        let (document, version) = budget_from_item(&item)?;
        let state = serde_json::from_str(document).map_err(|e| StoreError::Corrupt {
            key: item_name(BUDGET_PK, BUDGET_SK),
            reason: format!("budget state: {e}"),
        })?;
        Ok(Some((state, version)))
    }

    async fn save_budget<T: Serialize + Sync>(
        &self,
        state: &T,
        expected_version: u64,
    ) -> Result<u64, StoreError> {
        let version = expected_version + 1;
        let document = serde_json::to_string(state).map_err(|e| StoreError::Corrupt {
            key: item_name(BUDGET_PK, BUDGET_SK),
            reason: format!("budget state: {e}"),
        })?;
        let item = budget_item(document, version);
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
