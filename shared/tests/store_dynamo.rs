//! What only `DynamoStore` has: the table's schema, the raw item layout the indexes rely on, and how
//! SDK failures and undecodable items surface (moto stands in for DynamoDB).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, KeyType, ProjectionType, TimeToLiveStatus,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use shared::ids::{AthleteUuid, AuthState, PolarUserId};
use shared::model::{Athlete, AthleteStatus};
use shared::store::schema::{self, TableSetup};
use shared::store::{
    AthleteStore, AuthStateStore, DynamoStore, LockStore, Locking, PageToken, StoreError,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
}

async fn fresh_table() -> (Client, String, DynamoStore) {
    let moto = testkit::moto::shared().await;
    let table = testkit::moto::unique_name("dyn");
    moto.create_table(&table).await.unwrap();
    let client = Client::new(&moto.sdk_config().await);
    let store = DynamoStore::new(client.clone(), table.clone());
    (client, table, store)
}

async fn raw_item(
    client: &Client,
    table: &str,
    pk: &str,
    sk: &str,
) -> HashMap<String, AttributeValue> {
    client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_default()
}

/// An index as described: its key schema, projection type and projected non-key attributes.
type IndexShape<'a> = (Vec<(&'a str, KeyType)>, ProjectionType, Vec<String>);

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

#[tokio::test]
async fn table_has_the_schema_the_template_mirrors_and_creation_is_idempotent() {
    let (client, table, _) = fresh_table().await;
    let described = client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let description = described.table().unwrap();
    let keys: Vec<(&str, KeyType)> = description
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().clone()))
        .collect();
    assert_eq!(keys, [("pk", KeyType::Hash), ("sk", KeyType::Range)]);
    assert_eq!(
        description
            .billing_mode_summary()
            .and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );

    let mut indexes: HashMap<&str, IndexShape> = HashMap::new();
    for index in description.global_secondary_indexes() {
        let projection = index.projection().unwrap();
        indexes.insert(
            index.index_name().unwrap(),
            (
                index
                    .key_schema()
                    .iter()
                    .map(|k| (k.attribute_name(), k.key_type().clone()))
                    .collect(),
                projection.projection_type().unwrap().clone(),
                projection.non_key_attributes().to_vec(),
            ),
        );
    }
    // No index keyed by the due time: its entry would move (two index writes) on every sync.
    assert_eq!(indexes.len(), 2);
    assert_eq!(
        indexes["polar_user"],
        (
            vec![("polar_user_key", KeyType::Hash)],
            ProjectionType::Include,
            vec!["uuid".to_string()]
        )
    );
    assert_eq!(
        indexes["status"],
        (
            vec![("status_key", KeyType::Hash), ("uuid", KeyType::Range)],
            ProjectionType::KeysOnly,
            vec![]
        )
    );

    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));

    assert_eq!(
        schema::create_table(&client, &table).await.unwrap(),
        TableSetup {
            created: false,
            ttl_enabled: false
        }
    );
}

#[tokio::test]
async fn athlete_items_carry_exactly_the_index_keys_their_state_calls_for() {
    let (client, table, store) = fresh_table().await;
    let uuid = AthleteUuid::parse("test-uuid-123").unwrap();
    let due = t0() + Duration::minutes(60);
    let mut athlete = Athlete::new(uuid.clone());
    athlete.set_status(AthleteStatus::Linked, t0());
    athlete.polar_user_id = Some(PolarUserId::new(42).unwrap());
    athlete.next_sync_due = Some(due);
    let saved = store.save_athlete(&athlete).await.unwrap();

    let item = raw_item(&client, &table, "ATHLETE#test-uuid-123", "ATHLETE").await;
    assert_eq!(text(&item, "uuid").as_deref(), Some("test-uuid-123"));
    assert_eq!(text(&item, "status_key").as_deref(), Some("linked"));
    assert_eq!(text(&item, "polar_user_key").as_deref(), Some("POLAR#42"));
    assert_eq!(
        text(&item, "next_sync_due").as_deref(),
        Some("2026-11-27T13:00:00.000000000Z")
    );
    assert!(!item.contains_key("due_pk") && !item.contains_key("due_sk"));
    assert_eq!(item.get("version"), Some(&AttributeValue::N("1".into())));

    let mut revoked = saved;
    revoked.set_status(AthleteStatus::Revoked, t0());
    revoked.polar_user_id = None;
    store.save_athlete(&revoked).await.unwrap();
    let item = raw_item(&client, &table, "ATHLETE#test-uuid-123", "ATHLETE").await;
    assert_eq!(text(&item, "status_key").as_deref(), Some("revoked"));
    for gone in ["polar_user_key", "next_sync_due"] {
        assert!(!item.contains_key(gone), "{gone} still set");
    }
}

#[tokio::test]
async fn expiring_items_carry_the_ttl_attribute() {
    let (client, table, store) = fresh_table().await;
    let state = AuthState::generate();
    let uuid = AthleteUuid::parse("ttl-owner").unwrap();
    let expires = t0() + Duration::minutes(15);
    store
        .put_state(&state, &uuid, &"ab".repeat(32), expires)
        .await
        .unwrap();
    let item = raw_item(
        &client,
        &table,
        &format!("STATE#{}", state.as_str()),
        "STATE",
    )
    .await;
    assert_eq!(
        item.get("expires_at"),
        Some(&AttributeValue::N(expires.timestamp().to_string()))
    );
}

#[tokio::test]
async fn a_sync_lock_is_two_attributes_of_the_athlete_item_and_moves_its_version() {
    let (client, table, store) = fresh_table().await;
    let uuid = AthleteUuid::parse("lock-owner").unwrap();
    store
        .save_athlete(&Athlete::new(uuid.clone()))
        .await
        .unwrap();
    let until = t0() + Duration::minutes(3);
    assert!(matches!(
        store.try_lock(&uuid, "worker", t0(), until).await.unwrap(),
        Locking::Taken(_)
    ));
    let item = raw_item(&client, &table, "ATHLETE#lock-owner", "ATHLETE").await;
    assert_eq!(text(&item, "lock_owner").as_deref(), Some("worker"));
    assert_eq!(
        text(&item, "lock_until"),
        Some(schema::format_instant(until))
    );
    assert_eq!(item.get("version"), Some(&AttributeValue::N("2".into())));

    store.unlock(&uuid, "worker", None).await.unwrap();
    let item = raw_item(&client, &table, "ATHLETE#lock-owner", "ATHLETE").await;
    for gone in ["lock_owner", "lock_until"] {
        assert!(!item.contains_key(gone), "{gone} still set");
    }
    assert_eq!(item.get("version"), Some(&AttributeValue::N("3".into())));
}

#[tokio::test]
async fn undecodable_items_are_reported_corrupt_with_their_key() {
    let (client, table, store) = fresh_table().await;
    client
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("ATHLETE#broken".into()))
        .item("sk", AttributeValue::S("ATHLETE".into()))
        .item("uuid", AttributeValue::S("broken".into()))
        .item("version", AttributeValue::N("1".into()))
        .item("status", AttributeValue::S("banana".into()))
        .item("status_key", AttributeValue::S("linked".into()))
        .item(
            "next_sync_due",
            AttributeValue::S("2026-11-27T00:00:00Z".into()),
        )
        .item("cursors", AttributeValue::S("{}".into()))
        .send()
        .await
        .unwrap();
    match store
        .get_athlete(&AthleteUuid::parse("broken").unwrap())
        .await
    {
        Err(StoreError::Corrupt { key, reason }) => {
            assert_eq!(key, "ATHLETE#broken/ATHLETE");
            assert!(reason.contains("banana"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }

    // The fan-out's due listing skips the unreadable athlete and still lists everyone else.
    let mut fine = Athlete::new(AthleteUuid::parse("fine").unwrap());
    fine.set_status(AthleteStatus::Linked, t0());
    fine.next_sync_due = Some(t0());
    store.save_athlete(&fine).await.unwrap();
    let listing = store.due_athletes(t0()).await.unwrap();
    assert_eq!(
        listing
            .due
            .iter()
            .map(|d| d.uuid.as_str())
            .collect::<Vec<_>>(),
        ["fine"]
    );
    assert_eq!(listing.skipped, 1);

    assert!(matches!(
        store
            .list_athletes(
                Some(AthleteStatus::Linked),
                Some(PageToken("not a key".into())),
                10
            )
            .await,
        Err(StoreError::Corrupt { .. })
    ));
}

#[tokio::test]
async fn cursors_are_stored_deflated_and_items_with_cursors_as_text_still_read() {
    let (client, table, store) = fresh_table().await;
    // An athlete item as earlier versions wrote it: the cursors as JSON text.
    let put = |uuid: &str, cursors: AttributeValue, name: &str| {
        client
            .put_item()
            .table_name(&table)
            .item("pk", AttributeValue::S(format!("ATHLETE#{uuid}")))
            .item("sk", AttributeValue::S("ATHLETE".into()))
            .item("uuid", AttributeValue::S(uuid.into()))
            .item("version", AttributeValue::N("4".into()))
            .item("status", AttributeValue::S("linked".into()))
            .item("status_key", AttributeValue::S("linked".into()))
            .item(name, cursors)
            .send()
    };
    let text =
        r#"{"exercises_uploaded_since":"2026-11-27T00:00:00Z","confirmed_lists":{"sleep":"5f0c"}}"#;
    put("old", AttributeValue::S(text.into()), "cursors")
        .await
        .unwrap();
    let uuid = AthleteUuid::parse("old").unwrap();
    let old = store.get_athlete(&uuid).await.unwrap().unwrap();
    assert_eq!(
        old.cursors.exercises_uploaded_since,
        Some(Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap())
    );
    // Digests stored without the lock count they hold at are never trusted (a job may have written
    // since); they are known, to be taken out before a write.
    assert!(old.cursors.confirmed_lists.is_empty());
    assert_eq!(old.cursors.uncounted_lists.len(), 1);

    // Written again, the cursors are deflated, the text is gone and so are the uncounted digests; the
    // rest reads back the same.
    let mut old = old;
    old.cursors
        .confirmed_lists
        .insert(shared::model::DataKind::Sleep, "5f0c".into());
    old.cursors.confirmed_lists_at_lock = Some(3);
    store.save_athlete(&old).await.unwrap();
    old.cursors.uncounted_lists.clear();
    let item = raw_item(&client, &table, "ATHLETE#old", "ATHLETE").await;
    assert!(!item.contains_key("cursors"));
    let deflated = item["cursors_deflated"].as_b().unwrap().as_ref().len();
    let json = serde_json::to_vec(&old.cursors).unwrap().len();
    assert!(deflated < json, "{deflated} bytes deflated, {json} as JSON");
    assert_eq!(
        store.get_athlete(&uuid).await.unwrap().unwrap().cursors,
        old.cursors
    );

    // Bytes that do not inflate are reported, not taken for empty cursors.
    put(
        "garbled",
        AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(vec![0xff; 40])),
        "cursors_deflated",
    )
    .await
    .unwrap();
    assert!(matches!(
        store.get_athlete(&AthleteUuid::parse("garbled").unwrap()).await,
        Err(StoreError::Corrupt { reason, .. }) if reason.starts_with("cursors_deflated")
    ));
}

#[tokio::test]
async fn service_failures_are_unavailable_and_carry_only_the_code() {
    let moto = testkit::moto::shared().await;
    let missing = DynamoStore::from_config(
        &moto.sdk_config().await,
        testkit::moto::unique_name("missing"),
    );
    match missing
        .get_athlete(&AthleteUuid::parse("anyone").unwrap())
        .await
    {
        Err(StoreError::Unavailable {
            message: reason,
            source,
        }) => {
            assert_eq!(reason, "GetItem: ResourceNotFoundException");
            // The modelled service error is kept; the raw response is not.
            let source = source.expect("the service error is kept");
            assert!(
                source
                    .downcast_ref::<aws_sdk_dynamodb::operation::get_item::GetItemError>()
                    .is_some_and(|e| e.is_resource_not_found_exception()),
                "{source:?}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(
        missing.try_lock(&AthleteUuid::parse("anyone").unwrap(), "w", t0(), t0()).await,
        Err(StoreError::Unavailable { message: reason, .. }) if reason.starts_with("UpdateItem: ")
    ));
}

#[tokio::test]
async fn an_unreachable_table_is_unavailable_and_keeps_the_connector_s_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://{closed}"))
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        // One attempt: the SDK's retries of a refused connection only slow the test.
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let store = DynamoStore::from_config(&config, "unreachable");

    let error = store
        .get_athlete(&AthleteUuid::parse("anyone").unwrap())
        .await
        .unwrap_err();

    let StoreError::Unavailable {
        message,
        source: Some(source),
    } = &error
    else {
        panic!("expected Unavailable with a source, got {error:?}");
    };
    assert_eq!(message, "GetItem: dispatch failure");
    let cause = source
        .downcast_ref::<aws_sdk_dynamodb::error::ConnectorError>()
        .expect("the connector's error is the source");
    assert!(cause.is_io(), "{cause:?}");
}
