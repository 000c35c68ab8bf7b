//! plate-ingest fed rule events (`tests/fixtures/rule_event.json` shape) against moto's
//! DynamoDB: items with the keys of the design, one item per read whatever the re-deliveries,
//! and the number of DynamoDB calls per 1,000 reads.

use anpr_aws::{DynamoCameraRegistry, DynamoPlateReadStore};
use anpr_core::plates::{IngestPolicy, RejectReason};
use anpr_core::{Camera, OrgId};
use anpr_protocol::clock::now_ms;
use anpr_protocol::{CameraId, PlateRead, PlateReadBatch, ReadId, encode};
use anpr_test_support::moto;
use aws_sdk_dynamodb::types::AttributeValue;
use plate_ingest::{RuleEvent, handle};

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
            presence: None,
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
        // The camera's shard of this read (one of 16 partition keys per camera).
        .key(
            "PK",
            AttributeValue::S(format!(
                "READS#123456#{:x}",
                anpr_aws::plates::read_shard("1764086400123#0kq3h7x2m1")
            )),
        )
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
        .scan()
        .table_name(&table)
        .filter_expression("begins_with(PK, :pk)")
        .expression_attribute_values(":pk", AttributeValue::S("READS#cam-orphan#".into()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap()
        .remove(0);
    assert!(!item.contains_key("GSI1PK"), "{item:?}");
    assert!(!item.contains_key("org"), "{item:?}");
}

/// Every item of the table, as `(PK, SK)`.
async fn keys(dynamo: &aws_sdk_dynamodb::Client, table: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = dynamo
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items.unwrap_or_default() {
            let s = |k: &str| item[k].as_s().unwrap().clone();
            out.push((s("PK"), s("SK")));
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return out;
        }
    }
}

#[tokio::test]
async fn a_cameras_reads_spread_over_its_shards_and_come_back_newest_first_page_by_page() {
    use anpr_core::StoreError;
    use anpr_core::plates::{PlateReadStore, TimeRange};
    let (dynamo, table, store, cameras) = setup().await;
    let acme = OrgId::parse("acme").unwrap();
    let zeta = OrgId::parse("zeta").unwrap();
    let (cam, other, foreign) = (
        CameraId::parse("cam-shards").unwrap(),
        CameraId::parse("cam-other").unwrap(),
        CameraId::parse("cam-zeta").unwrap(),
    );
    for (c, org) in [(&cam, &acme), (&other, &acme), (&foreign, &zeta)] {
        cameras
            .register(&Camera {
                camera_id: c.clone(),
                name: None,
                registered_at: 1,
                org: Some(org.clone()),
                presence: None,
            })
            .await
            .unwrap();
    }
    let now = now_ms();
    let t0 = now - 1_000_000;
    // 160 reads of one camera, two sharing each millisecond (the id breaks the tie), every
    // third of plate AB123; the other cameras see AB123 too.
    let reads: Vec<_> = (0..160u64)
        .map(|i| {
            let plate = if i % 3 == 0 { "AB123" } else { "CD456" };
            read(&format!("r{i:03}"), t0 + i / 2 * 1000, plate)
        })
        .collect();
    let policy = IngestPolicy::default();
    for chunk in reads.chunks(80) {
        let r = handle(&store, &cameras, &policy, &event(&cam, chunk.to_vec()), now)
            .await
            .unwrap();
        assert_eq!(r.stored, 80);
    }
    for c in [&other, &foreign] {
        let ev = event(c, vec![read("x1", t0 + 5000, "AB123")]);
        handle(&store, &cameras, &policy, &ev, now).await.unwrap();
    }

    // Spread: the camera's 160 items over all 16 of its partition keys, none holding a
    // quarter of them.
    let mut per_pk = std::collections::BTreeMap::<String, usize>::new();
    for (pk, _) in keys(&dynamo, &table).await {
        if pk.starts_with("READS#cam-shards#") {
            *per_pk.entry(pk).or_default() += 1;
        }
    }
    assert_eq!(per_pk.len(), 16, "{per_pk:?}");
    assert_eq!(per_pk.values().sum::<usize>(), 160);
    let busiest = per_pk.values().max().copied().unwrap();
    assert!(busiest < 160 / 4, "{per_pk:?}");
    println!(
        "measured: 160 reads of one camera over {} partition keys, at most {busiest} on one",
        per_pk.len()
    );

    // Newest first, page by page (17 at a time), each read once, nothing of another camera.
    let mut want: Vec<_> = reads
        .iter()
        .map(|r| (format!("{:013}#{}", r.t, r.id), r.id.to_string()))
        .collect();
    want.sort();
    want.reverse();
    let page_through = |range: TimeRange, limit: u32| {
        let store = store.clone();
        let cam = cam.clone();
        async move {
            let mut got = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = store
                    .reads_by_camera(&cam, range, limit, cursor.as_deref())
                    .await
                    .unwrap();
                assert!(page.items.len() <= limit as usize);
                got.extend(page.items.into_iter().map(|r| {
                    assert_eq!(r.camera_id, cam);
                    r.read_id.to_string()
                }));
                cursor = page.next_cursor;
                if cursor.is_none() {
                    return got;
                }
            }
        }
    };
    let all = page_through(TimeRange::ALL, 17).await;
    assert_eq!(all, want.iter().map(|w| w.1.clone()).collect::<Vec<_>>());
    // One page holding everything has no cursor.
    let whole = store
        .reads_by_camera(&cam, TimeRange::ALL, 500, None)
        .await
        .unwrap();
    assert_eq!(whole.items.len(), 160);
    assert!(whole.next_cursor.is_none());

    // A time range: the reads of t0+10 s ..= t0+20 s (22 reads), pages of 5.
    let range = TimeRange {
        from_ms: t0 + 10_000,
        to_ms: t0 + 20_000,
    };
    let inside: Vec<_> = reads
        .iter()
        .filter(|r| (range.from_ms..=range.to_ms).contains(&r.t))
        .collect();
    assert_eq!(inside.len(), 22);
    let mut in_want: Vec<_> = inside
        .iter()
        .map(|r| (format!("{:013}#{}", r.t, r.id), r.id.to_string()))
        .collect();
    in_want.sort();
    in_want.reverse();
    assert_eq!(
        page_through(range, 5).await,
        in_want.into_iter().map(|w| w.1).collect::<Vec<_>>()
    );

    // Another camera's cursor does not open this camera's reads.
    let theirs = store
        .reads_by_camera(&other, TimeRange::ALL, 1, None)
        .await
        .unwrap();
    assert!(theirs.next_cursor.is_none(), "one read: no next page");
    let first = store
        .reads_by_camera(&cam, TimeRange::ALL, 3, None)
        .await
        .unwrap();
    let cursor = first.next_cursor.expect("more pages");
    assert!(matches!(
        store
            .reads_by_camera(&other, TimeRange::ALL, 3, Some(&cursor))
            .await,
        Err(StoreError::BadCursor)
    ));
    // A cursor below a range that changed between pages: an empty last page, not an error,
    // and no query sent (DynamoDB refuses a BETWEEN whose bounds are reversed; moto does not).
    let later = TimeRange {
        from_ms: now,
        to_ms: TimeRange::ALL.to_ms,
    };
    let calls = store.calls();
    let past = store
        .reads_by_camera(&cam, later, 3, Some(&cursor))
        .await
        .unwrap();
    assert!(past.items.is_empty() && past.next_cursor.is_none());
    assert_eq!(store.calls(), calls, "no query with reversed bounds");

    // By plate within the organisation: the 54 AB123 reads of the camera and the other
    // acme camera's, never zeta's.
    let mut by_plate = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .reads_by_plate(&acme, "AB123", TimeRange::ALL, 40, cursor.as_deref())
            .await
            .unwrap();
        by_plate.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(by_plate.len(), 55);
    assert!(
        by_plate
            .iter()
            .all(|r| r.org.as_ref() == Some(&acme) && r.plate == "AB123")
    );
    assert_eq!(by_plate.iter().filter(|r| r.camera_id == other).count(), 1);
    assert!(
        by_plate
            .windows(2)
            .all(|w| w[0].plate_sort_key() >= w[1].plate_sort_key())
    );
}
