//! plate-ingest fed rule events (`tests/fixtures/rule_event.json` shape) against moto's
//! DynamoDB: items with the keys of the design, one item per read whatever the re-deliveries,
//! and the number of DynamoDB calls per 1,000 reads.

use anpr_aws::{DynamoCameraRegistry, DynamoPlateReadStore};
use anpr_core::plates::{IngestPolicy, RejectReason};
use anpr_core::{Camera, OrgId};
use anpr_protocol::{CameraId, PlateRead, PlateReadBatch, ReadId, encode};
use anpr_test_support::moto;
use aws_sdk_dynamodb::types::AttributeValue;
use plate_ingest::{RuleEvent, handle, now_ms};

fn read(id: &str, t: u64, p: &str) -> PlateRead {
    PlateRead {
        id: ReadId::parse(id).unwrap(),
        t,
        p: p.into(),
        c: 91,
        img: None,
        bb: None,
    }
}

fn event(camera: &CameraId, reads: Vec<PlateRead>) -> serde_json::Value {
    serde_json::to_value(RuleEvent::new(
        camera,
        &encode(&PlateReadBatch { r: reads }).unwrap(),
    ))
    .unwrap()
}

async fn setup() -> (
    aws_sdk_dynamodb::Client,
    String,
    DynamoPlateReadStore,
    DynamoCameraRegistry,
) {
    let clients = moto::clients();
    let table = moto::fresh_table(&clients.dynamo).await;
    let store = DynamoPlateReadStore::new(clients.dynamo.clone(), &table);
    let cameras = DynamoCameraRegistry::new(clients.dynamo.clone(), &table);
    (clients.dynamo, table, store, cameras)
}

async fn count_items(dynamo: &aws_sdk_dynamodb::Client, table: &str) -> usize {
    let mut n = 0;
    let mut start = None;
    loop {
        let out = dynamo
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        n += out.items.unwrap_or_default().len();
        start = out.last_evaluated_key;
        if start.is_none() {
            return n;
        }
    }
}

#[tokio::test]
async fn the_fixture_event_of_the_rule_is_stored_with_the_keys_of_the_design() {
    let (dynamo, table, store, cameras) = setup().await;
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/rule_event.json")).unwrap();
    // The fixture's reads are from 2025-11-25; judge them from an hour later.
    let now = 1_764_086_400_123 + 3_600_000;
    cameras
        .register(&Camera {
            camera_id: CameraId::parse("123456").unwrap(),
            name: None,
            registered_at: 1,
            org: Some(OrgId::parse("acme").unwrap()),
        })
        .await
        .unwrap();
    let report = handle(&store, &cameras, &IngestPolicy::default(), &fixture, now)
        .await
        .unwrap();
    assert_eq!(report.stored, 2, "{report:?}");
    let item = dynamo
        .get_item()
        .table_name(&table)
        .key("PK", AttributeValue::S("READS#123456".into()))
        .key("SK", AttributeValue::S("1764086400123#0kq3h7x2m1".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the read's item");
    assert_eq!(item["GSI1PK"].as_s().unwrap(), "PLATE#acme#AB123CD");
    assert_eq!(item["org"].as_s().unwrap(), "acme");
    assert_eq!(
        item["GSI1SK"].as_s().unwrap(),
        "1764086400123#123456#0kq3h7x2m1"
    );
    assert_eq!(item["plate_raw"].as_s().unwrap(), "ab-123 cd");
    assert_eq!(item["img"].as_s().unwrap(), "reads/0kq3h7x2m1.jpg");
    let ttl: u64 = item[anpr_aws::schema::TTL_ATTR]
        .as_n()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ttl, 1_764_086_400 + IngestPolicy::default().retention_secs);
}

#[tokio::test]
async fn a_thousand_reads_take_forty_batch_writes_and_redelivery_adds_no_item() {
    let (dynamo, table, store, cameras) = setup().await;
    let camera = CameraId::parse("cam-thousand").unwrap();
    let now = now_ms();
    let events: Vec<_> = (0..4)
        .map(|b| {
            event(
                &camera,
                (0..250)
                    .map(|i| read(&format!("b{b}r{i}"), now - 100_000 + b * 1000 + i, "AB 123"))
                    .collect(),
            )
        })
        .collect();
    let policy = IngestPolicy::default();
    let mut stored = 0;
    for ev in &events {
        stored += handle(&store, &cameras, &policy, ev, now)
            .await
            .unwrap()
            .stored;
    }
    assert_eq!(stored, 1000);
    let calls = store.calls();
    assert!(calls <= 40, "{calls} DynamoDB calls for 1,000 reads");
    println!("measured: {calls} DynamoDB calls for 1000 reads");
    assert_eq!(count_items(&dynamo, &table).await, 1000);

    // The camera re-sends everything (it lost the PUBACKs): still 1,000 items.
    for ev in &events {
        handle(&store, &cameras, &policy, ev, now).await.unwrap();
    }
    assert_eq!(count_items(&dynamo, &table).await, 1000);
}

#[tokio::test]
async fn future_ancient_and_malformed_reads_are_reported_and_the_valid_ones_stored() {
    let (dynamo, table, store, cameras) = setup().await;
    let camera = CameraId::parse("cam-mixed").unwrap();
    let now = now_ms();
    let policy = IngestPolicy {
        retention_secs: 86_400,
        max_future_skew_ms: 60_000,
    };
    let ev = event(
        &camera,
        vec![
            read("ok", now - 1000, "AB1"),
            read("future", now + 3_600_000, "AB2"),
            read("ancient", now - 2 * 86_400_000, "AB3"),
            read("noplate", now, " - "),
        ],
    );
    let report = handle(&store, &cameras, &policy, &ev, now).await.unwrap();
    assert_eq!(report.stored, 1);
    let reasons: Vec<_> = report.rejected.iter().map(|r| r.reason).collect();
    assert_eq!(
        reasons,
        [
            RejectReason::FutureTimestamp,
            RejectReason::Expired,
            RejectReason::InvalidPlate
        ]
    );
    assert_eq!(count_items(&dynamo, &table).await, 1);
}

#[tokio::test]
async fn a_batch_naming_another_camera_in_its_payload_is_stored_under_the_topics_camera() {
    let (_dynamo, _table, store, cameras) = setup().await;
    let publisher = CameraId::parse("cam-honest").unwrap();
    let now = now_ms();
    let body = format!(
        r#"{{"v":1,"camera_id":"cam-victim","r":[{{"id":"x1","t":{now},"p":"ZZ9","c":80}}]}}"#
    );
    let ev = serde_json::to_value(RuleEvent::new(&publisher, body.as_bytes())).unwrap();
    handle(&store, &cameras, &IngestPolicy::default(), &ev, now)
        .await
        .unwrap();
    use anpr_core::plates::{PlateReadStore, TimeRange};
    let victim = CameraId::parse("cam-victim").unwrap();
    let victims = store
        .reads_by_camera(&victim, TimeRange::ALL, 10, None)
        .await
        .unwrap();
    assert!(victims.items.is_empty());
    let own = store
        .reads_by_camera(&publisher, TimeRange::ALL, 10, None)
        .await
        .unwrap();
    assert_eq!(own.items.len(), 1);
}

#[tokio::test]
async fn reads_of_a_camera_without_organisation_are_kept_but_not_in_the_plate_index() {
    let (dynamo, table, store, cameras) = setup().await;
    let camera = CameraId::parse("cam-orphan").unwrap();
    let now = now_ms();
    let report = handle(
        &store,
        &cameras,
        &IngestPolicy::default(),
        &event(&camera, vec![read("o1", now - 1000, "AB 123")]),
        now,
    )
    .await
    .unwrap();
    assert_eq!(report.stored, 1);
    let item = dynamo
        .query()
        .table_name(&table)
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("READS#cam-orphan".into()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap()
        .remove(0);
    assert!(!item.contains_key("GSI1PK"), "{item:?}");
    assert!(!item.contains_key("org"), "{item:?}");
}
