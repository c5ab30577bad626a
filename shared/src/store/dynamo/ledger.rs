//! The exactly-once write ledger: one item per (athlete, form, record).

use std::collections::{BTreeMap, HashMap, HashSet};

use aws_sdk_dynamodb::types::Select;

use super::super::schema::{self, LEDGER_PREFIX, PK, SK};
use super::super::{LedgerStore, StoreError};
use super::codec::{key, ledger_from_item, ledger_item, s};
use super::{DynamoStore, unavailable};
use crate::ids::AthleteUuid;
use crate::model::{DataKind, LedgerEntry, LedgerKey};

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
        // BatchWriteItem refuses two writes to one key in a batch: the last entry for a key wins.
        let mut by_key: BTreeMap<String, &LedgerEntry> = BTreeMap::new();
        for (k, entry) in entries {
            by_key.insert(schema::ledger_sk(k), entry);
        }
        let items = by_key
            .into_iter()
            .map(|(sk, entry)| ledger_item(uuid, &sk, entry))
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
                    .map_err(|e| unavailable("Query", e))?;
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
