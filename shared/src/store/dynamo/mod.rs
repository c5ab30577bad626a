//! `DynamoStore`: every store port on the single table of [`super::schema`], with conditional writes for
//! optimistic concurrency, single-use states, locks and markers. One module per aggregate sends its
//! requests; `codec` decides what each item looks like.
//!
//! Errors: a failed condition is [`StoreError::Conflict`] (or `Ok(false)`/`None` where the port says
//! so); throttling, transport and service failures are [`StoreError::Unavailable`] carrying the
//! operation and the SDK's error code, with the SDK's failure (never its raw response) as the source; an
//! item that does not decode is [`StoreError::Corrupt`].

mod athletes;
mod auth_states;
mod budget;
mod codec;
mod ledger;
mod locks;
mod settings;
mod tokens;

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};

use super::StoreError;
use codec::{Item, key, s};

/// The bytes DynamoDB bills for `athlete`'s item as this store writes it (the benchmarks' meter charges
/// its writes by them).
pub fn athlete_item_bytes(athlete: &crate::model::Athlete) -> Result<usize, StoreError> {
    Ok(codec::item_bytes(&codec::athlete_item(
        athlete,
        athlete.version,
    )?))
}

/// BatchGetItem's limit.
pub(super) const BATCH_GET_MAX: usize = 100;
/// BatchWriteItem's limit.
const BATCH_WRITE_MAX: usize = 25;
/// Rounds of retrying unprocessed batch keys before giving up as `Unavailable`.
const BATCH_ATTEMPTS: u32 = 8;

/// The production store: one DynamoDB table laid out as [`super::schema`] describes.
///
/// Reads of single items and batches are strongly consistent, except the fan-out's due listing; index
/// queries (Polar user, status) are eventually consistent, as GSIs are. Listings re-read the athletes
/// and drop entries whose status moved on, so an athlete appears under its current status only.
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

    pub(super) async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        Ok(out.item)
    }

    pub(super) async fn put_item(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| unavailable("PutItem", e))?;
        Ok(())
    }

    /// A conditional PutItem: `Ok(false)` when the condition failed.
    pub(super) async fn put_if(
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
            Err(e) => Err(unavailable("PutItem", e)),
        }
    }

    /// Fetches items by key (consistent), in chunks of 100, retrying unprocessed keys. Keys must be distinct.
    pub(super) async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        self.batch_get_attributes(keys, true, &[]).await
    }

    /// Like [`Self::batch_get`], but only `attributes` of each item (all when empty), and eventually
    /// consistent unless `consistent` (half the read units).
    pub(super) async fn batch_get_attributes(
        &self,
        keys: Vec<Item>,
        consistent: bool,
        attributes: &[&str],
    ) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET_MAX) {
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .consistent_read(consistent);
            if !attributes.is_empty() {
                let placeholders: Vec<String> =
                    (0..attributes.len()).map(|i| format!("#a{i}")).collect();
                request = request.projection_expression(placeholders.join(", "));
                for (placeholder, name) in placeholders.into_iter().zip(attributes) {
                    request = request.expression_attribute_names(placeholder, *name);
                }
            }
            let mut pending = request
                .build()
                .map_err(|e| StoreError::unavailable_from(format!("BatchGetItem: {e}"), e))?;
            let mut attempt = 0;
            loop {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| unavailable("BatchGetItem", e))?;
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
                            return Err(StoreError::unavailable(
                                "BatchGetItem: keys still unprocessed after retries",
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
    pub(super) async fn batch_put(&self, items: Vec<Item>) -> Result<(), StoreError> {
        let mut requests = Vec::with_capacity(items.len());
        for item in items {
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| StoreError::unavailable_from(format!("BatchWriteItem: {e}"), e))?;
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
                    .map_err(|e| unavailable("BatchWriteItem", e))?;
                match out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|rest| !rest.is_empty())
                {
                    None => break,
                    Some(rest) => {
                        attempt += 1;
                        if attempt >= BATCH_ATTEMPTS {
                            return Err(StoreError::unavailable(
                                "BatchWriteItem: items still unprocessed after retries",
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
}

pub(super) fn query_limit(limit: usize) -> i32 {
    i32::try_from(limit.max(1)).unwrap_or(i32::MAX)
}

pub(super) fn backoff(attempt: u32) -> StdDuration {
    StdDuration::from_millis(25u64 << attempt.min(6))
}

/// Whether a request failed only because its condition did not hold (every DynamoDB operation reports it
/// with this code).
pub(super) fn condition_failed<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error().and_then(ProvideErrorMetadata::code)
        == Some("ConditionalCheckFailedException")
}

/// [`StoreError::Unavailable`] naming the operation and the SDK's error code, keeping what of the SDK's
/// failure is safe to keep ([`crate::aws::sdk_source`]).
pub(super) fn unavailable<E, R>(operation: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    StoreError::Unavailable {
        message: format!("{operation}: {}", crate::aws::error_code(&err)),
        source: crate::aws::sdk_source(err),
    }
}

pub(super) fn bad_page_token(reason: &str) -> StoreError {
    StoreError::Corrupt {
        key: "page token".to_string(),
        reason: reason.to_string(),
    }
}

/// A key of string attributes as plain strings (every key attribute of the table is a string).
pub(super) fn plain_key(key: &Item) -> Result<BTreeMap<String, String>, StoreError> {
    key.iter()
        .map(|(name, value)| match value {
            AttributeValue::S(v) => Ok((name.clone(), v.clone())),
            _ => Err(bad_page_token("key attribute is not a string")),
        })
        .collect()
}

pub(super) fn string_key(key: &BTreeMap<String, String>) -> Item {
    key.iter().map(|(k, v)| (k.clone(), s(v))).collect()
}

pub(super) fn encode_key(key: &Item) -> Result<String, StoreError> {
    serde_json::to_string(&plain_key(key)?).map_err(|_| bad_page_token("cannot encode"))
}

pub(super) fn decode_key(token: &str) -> Result<Item, StoreError> {
    serde_json::from_str::<BTreeMap<String, String>>(token)
        .map(|k| string_key(&k))
        .map_err(|_| bad_page_token("not a key"))
}
