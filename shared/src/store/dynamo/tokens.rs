//! Sealed Polar tokens and pending links.

use super::super::schema::{self, PENDING_LINKS_PK, PK, SK_TOKEN};
use super::super::{Page, PageToken, StoreError, TokenStore};
use super::codec::{
    key, pending_link_from_item, pending_link_item, s, token_from_item, token_item,
};
use super::{DynamoStore, decode_key, encode_key, query_limit, unavailable};
use crate::ids::AthleteUuid;
use crate::model::{PendingLink, StoredToken};

impl TokenStore for DynamoStore {
    async fn put_token(&self, uuid: &AthleteUuid, token: &StoredToken) -> Result<(), StoreError> {
        self.put_item(token_item(uuid, token)).await
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
            .map_err(|e| unavailable("DeleteItem", e))?;
        Ok(())
    }

    async fn put_pending_link(&self, link: &PendingLink) -> Result<(), StoreError> {
        self.put_item(pending_link_item(link)).await
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
            .map_err(|e| unavailable("Query", e))?;
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
            .map_err(|e| unavailable("DeleteItem", e))?;
        Ok(())
    }
}
