//! DynamoDB store (being written).
/// DynamoDB store.
pub struct DynamoStore;
