//! The connector's single DynamoDB table: attribute and index names, item keys, the fixed-width time
//! format that makes stored instants sort as strings, and idempotent table creation for `connector init`
//! and tests. `infra/template.yaml` mirrors [`create_table`] exactly.
//!
//! | item | `pk` | `sk` |
//! |---|---|---|
//! | athlete (and its sync lock) | `ATHLETE#<uuid>` | `ATHLETE` |
//! | token | `ATHLETE#<uuid>` | `TOKEN` |
//! | ledger entry | `ATHLETE#<uuid>` | `LEDGER#<LedgerKey::encode()>` |
//! | pending link | `PENDING_LINKS` | `<uuid>#<token fingerprint>` |
//! | auth state | `STATE#<state>` | `STATE` |
//! | rate budget | `BUDGET` | `POLAR` |
//! | marker | `MARKER#<key>` | `MARKER` |
//! | setting | `SETTING#<name>` | `SETTING` |
//!
//! Indexes (both sparse, only athlete items carry their keys):
//! - `polar_user` (`polar_user_key` = `POLAR#<id>`, INCLUDE `uuid`): webhook user → athlete.
//! - `status` (`status_key` = status name, range `uuid`, KEYS_ONLY): listings page through the keys and
//!   fetch the athletes with BatchGetItem, which keeps every athlete write cheap (the index holds keys
//!   only) at the price of one extra read per page of a rare listing. The fan-out reads the `Linked`
//!   athletes' due times the same way each run: no index is keyed by the due time, whose entry would
//!   move (two index writes) on every sync.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters as _;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification, TimeToLiveStatus,
};
use chrono::{DateTime, SecondsFormat, Utc};

use crate::aws::provision::ProvisionError;
use crate::ids::{AthleteUuid, AuthState, PolarUserId};
use crate::model::LedgerKey;

/// Partition key attribute.
pub const PK: &str = "pk";
/// Sort key attribute.
pub const SK: &str = "sk";
/// TTL attribute (epoch seconds); DynamoDB deletes expired items lazily, so readers check it too.
pub const EXPIRES_AT: &str = "expires_at";

/// The Polar-user index.
pub const POLAR_USER_INDEX: &str = "polar_user";
/// Hash key of the Polar-user index: [`polar_user_key`].
pub const POLAR_USER_KEY: &str = "polar_user_key";

/// The status index.
pub const STATUS_INDEX: &str = "status";
/// Hash key of the status index: `AthleteStatus::as_str()`.
pub const STATUS_KEY: &str = "status_key";
/// The athlete's UUID as an attribute; range key of the status index, projected into the Polar-user index.
pub const UUID: &str = "uuid";

/// Sort key of an athlete item.
pub const SK_ATHLETE: &str = "ATHLETE";
/// Sort key of a token item.
pub const SK_TOKEN: &str = "TOKEN";
/// Sort key of an auth-state item.
pub const SK_STATE: &str = "STATE";
/// Sort key of a marker item.
pub const SK_MARKER: &str = "MARKER";
/// Sort key of a setting item.
pub const SK_SETTING: &str = "SETTING";
/// Prefix of ledger sort keys.
pub const LEDGER_PREFIX: &str = "LEDGER#";
/// Partition key of every pending link: the scan lists them all with one query.
pub const PENDING_LINKS_PK: &str = "PENDING_LINKS";
/// Partition key of the rate budget.
pub const BUDGET_PK: &str = "BUDGET";
/// Sort key of the rate budget.
pub const BUDGET_SK: &str = "POLAR";

const ATHLETE_PREFIX: &str = "ATHLETE#";

/// `ATHLETE#<uuid>`: the partition of everything one athlete owns.
pub fn athlete_pk(uuid: &AthleteUuid) -> String {
    format!("{ATHLETE_PREFIX}{uuid}")
}

/// The athlete's UUID back from [`athlete_pk`].
pub fn uuid_from_athlete_pk(pk: &str) -> Option<AthleteUuid> {
    pk.strip_prefix(ATHLETE_PREFIX)
        .and_then(|uuid| AthleteUuid::parse(uuid).ok())
}

/// `LEDGER#<kind>#<record>`.
pub fn ledger_sk(key: &LedgerKey) -> String {
    format!("{LEDGER_PREFIX}{}", key.encode())
}

/// `<uuid>#<fingerprint>`: a pending link's sort key (a UUID never holds `#`).
pub fn pending_link_sk(uuid: &AthleteUuid, fingerprint: &str) -> String {
    format!("{uuid}#{fingerprint}")
}

/// `STATE#<state>`.
pub fn state_pk(state: &AuthState) -> String {
    format!("STATE#{}", state.as_str())
}

/// `MARKER#<key>`.
pub fn marker_pk(key: &str) -> String {
    format!("MARKER#{key}")
}

/// `SETTING#<name>`.
pub fn setting_pk(name: &str) -> String {
    format!("SETTING#{name}")
}

/// `POLAR#<id>`.
pub fn polar_user_key(user: PolarUserId) -> String {
    format!("POLAR#{user}")
}

/// How every instant is stored: RFC 3339 in UTC with nanoseconds, fixed width, so that string order is
/// time order (`2026-11-27T12:00:00.000000000Z`). Conditions such as `queued_until < :now` rely on it.
pub fn format_instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Parses [`format_instant`] (and any RFC 3339 instant).
pub fn parse_instant(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// Seconds since the epoch, as the TTL attribute and the lock/marker expiry hold them.
pub fn epoch_seconds(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

/// What [`create_table`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSetup {
    /// The table was created now (`false`: it already existed).
    pub created: bool,
    /// TTL on [`EXPIRES_AT`] was switched on now (`false`: it already was).
    pub ttl_enabled: bool,
}

fn schema_error<E>(
    table: &str,
    operation: &'static str,
    err: aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> ProvisionError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    ProvisionError::sdk(format!("table {table}"), operation, err)
}

fn key(
    name: &str,
    key_type: KeyType,
) -> Result<KeySchemaElement, aws_sdk_dynamodb::error::BuildError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
}

fn string_attribute(
    name: &str,
) -> Result<AttributeDefinition, aws_sdk_dynamodb::error::BuildError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
}

fn index(
    name: &str,
    keys: Vec<KeySchemaElement>,
    projection: Projection,
) -> Result<GlobalSecondaryIndex, aws_sdk_dynamodb::error::BuildError> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .set_key_schema(Some(keys))
        .projection(projection)
        .build()
}

fn build_error(table: &str, err: aws_sdk_dynamodb::error::BuildError) -> ProvisionError {
    ProvisionError::invalid_request(format!("table {table}"), "CreateTable", err)
}

/// Creates the table with its two indexes (PAY_PER_REQUEST) and switches TTL on, idempotently: an
/// existing table is left as it is (`ResourceInUseException` = already there) and only TTL is checked.
pub async fn create_table(client: &Client, table: &str) -> Result<TableSetup, ProvisionError> {
    let keys_only = Projection::builder()
        .projection_type(ProjectionType::KeysOnly)
        .build();
    let with_uuid = Projection::builder()
        .projection_type(ProjectionType::Include)
        .non_key_attributes(UUID)
        .build();
    let definition = (|| {
        Ok::<_, aws_sdk_dynamodb::error::BuildError>((
            [PK, SK, POLAR_USER_KEY, STATUS_KEY, UUID]
                .into_iter()
                .map(string_attribute)
                .collect::<Result<Vec<_>, _>>()?,
            vec![key(PK, KeyType::Hash)?, key(SK, KeyType::Range)?],
            vec![
                index(
                    POLAR_USER_INDEX,
                    vec![key(POLAR_USER_KEY, KeyType::Hash)?],
                    with_uuid,
                )?,
                index(
                    STATUS_INDEX,
                    vec![key(STATUS_KEY, KeyType::Hash)?, key(UUID, KeyType::Range)?],
                    keys_only,
                )?,
            ],
        ))
    })();
    let (attributes, key_schema, indexes) = definition.map_err(|e| build_error(table, e))?;

    let created = match client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attributes))
        .set_key_schema(Some(key_schema))
        .set_global_secondary_indexes(Some(indexes))
        .send()
        .await
    {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            false
        }
        Err(e) => return Err(schema_error(table, "CreateTable", e)),
    };

    // TTL can only be changed on an ACTIVE table; a new table takes a few seconds on AWS.
    client
        .wait_until_table_exists()
        .table_name(table)
        .wait(std::time::Duration::from_secs(300))
        .await
        .map_err(|_| {
            ProvisionError::new(
                format!("table {table}"),
                "DescribeTable",
                "the table did not become ACTIVE within 5 minutes".to_string(),
            )
        })?;

    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| schema_error(table, "DescribeTimeToLive", e))?;
    let already_on = ttl.time_to_live_description().is_some_and(|d| {
        d.attribute_name() == Some(EXPIRES_AT)
            && matches!(
                d.time_to_live_status(),
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            )
    });
    if !already_on {
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(EXPIRES_AT)
            .enabled(true)
            .build()
            .map_err(|e| build_error(table, e))?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| schema_error(table, "UpdateTimeToLive", e))?;
    }
    Ok(TableSetup {
        created,
        ttl_enabled: !already_on,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    #[test]
    fn stored_instants_are_fixed_width_and_sort_as_time() {
        let a = Utc.with_ymd_and_hms(2026, 11, 27, 9, 5, 0).unwrap();
        let b = a + Duration::nanoseconds(1);
        let c = a + Duration::hours(3);
        let formatted = [a, b, c].map(format_instant);
        assert_eq!(formatted[0], "2026-11-27T09:05:00.000000000Z");
        assert!(formatted.iter().all(|f| f.len() == formatted[0].len()));
        assert!(formatted[0] < formatted[1] && formatted[1] < formatted[2]);
        assert_eq!(parse_instant(&formatted[1]), Some(b));
    }

    #[test]
    fn keys_round_trip() {
        let uuid = AthleteUuid::parse("test-uuid-123").unwrap();
        assert_eq!(athlete_pk(&uuid), "ATHLETE#test-uuid-123");
        assert_eq!(uuid_from_athlete_pk(&athlete_pk(&uuid)), Some(uuid));
        assert_eq!(uuid_from_athlete_pk("STATE#x"), None);
        assert_eq!(polar_user_key(PolarUserId::new(42).unwrap()), "POLAR#42");
    }
}
