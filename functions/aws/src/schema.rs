//! The table definition: key names, index names, TTL attribute. The SAM template declares the
//! same (a contract test compares them); tests and the local stack create tables with
//! [`create_table`].

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};

/// Partition key attribute.
pub const PK: &str = "PK";
/// Sort key attribute.
pub const SK: &str = "SK";
/// The global secondary index of camera listings (requests, plate reads).
pub const GSI1: &str = "GSI1";
/// Its partition key attribute.
pub const GSI1PK: &str = "GSI1PK";
/// Its sort key attribute.
pub const GSI1SK: &str = "GSI1SK";
/// The sparse index of open requests by expiry (only requests not terminal carry its keys),
/// which the expiry sweep queries.
pub const GSI2: &str = "GSI2";
/// Its partition key attribute: [`OPEN_PARTITION`].
pub const GSI2PK: &str = "GSI2PK";
/// Its sort key attribute: `{expires_at, 20 digits}#{request id}`.
pub const GSI2SK: &str = "GSI2SK";
/// The one partition of the open-requests index: open requests are few (web users' requests
/// still being served), written at human rate, far under a partition's 1,000 writes/s.
pub const OPEN_PARTITION: &str = "OPEN";

/// The open-requests index sort key of a request expiring at `expires_at`.
pub fn open_sort_key(expires_at: u64, id: &str) -> String {
    format!("{expires_at:020}#{id}")
}

/// TTL attribute (Unix seconds).
pub const TTL_ATTR: &str = "ttl";

/// Creates the table with its index and TTL, as the template does. For tests and the local
/// stack; production tables come from the SAM template.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), aws_sdk_dynamodb::Error> {
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute name and type are set")
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .expect("key name and type are set")
    };
    // A global secondary index on `pk`/`sk`, projecting every attribute.
    let index = |name: &str, pk: &str, sk: &str| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(pk, KeyType::Hash))
            .key_schema(key(sk, KeyType::Range))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .expect("index name and keys are set")
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(PK))
        .attribute_definitions(attr(SK))
        .attribute_definitions(attr(GSI1PK))
        .attribute_definitions(attr(GSI1SK))
        .attribute_definitions(attr(GSI2PK))
        .attribute_definitions(attr(GSI2SK))
        .key_schema(key(PK, KeyType::Hash))
        .key_schema(key(SK, KeyType::Range))
        .global_secondary_indexes(index(GSI1, GSI1PK, GSI1SK))
        .global_secondary_indexes(index(GSI2, GSI2PK, GSI2SK))
        .send()
        .await?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL_ATTR)
                .build()
                .expect("ttl spec is complete"),
        )
        .send()
        .await?;
    Ok(())
}
