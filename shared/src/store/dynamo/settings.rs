//! Small named items: one-shot markers and settings.

use chrono::{DateTime, Utc};

use super::super::schema::{self, PK, SK_SETTING};
use super::super::{MarkerStore, SettingsStore, StoreError};
use super::DynamoStore;
use super::codec::{UNTIL, marker_item, n, setting_from_item, setting_item};

impl MarkerStore for DynamoStore {
    async fn claim(
        &self,
        marker: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.put_if(
            marker_item(marker, until),
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
        setting_from_item(&item).map(Some)
    }

    async fn put_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.put_item(setting_item(name, value)).await
    }
}
