//! `anpr-stack replay-plate-reads` against moto's SQS and DynamoDB: messages that plate-ingest
//! could not store reach the dead-letter queue through the queue's redrive policy; the replay
//! moves them back (one of them twice, as an interrupted replay leaves it), plate-ingest's
//! handler consumes them, and the dead-letter queue ends empty with every read stored once.

use anpr_aws::DynamoPlateReadStore;
use anpr_core::plates::IngestPolicy;
use anpr_protocol::clock::now_ms;
use anpr_protocol::{CameraId, PlateRead, PlateReadBatch, ReadId, encode};
use anpr_provision::replay::replay_plate_reads;
use anpr_test_support::{moto, plates, queue};
use plate_ingest::{RuleEvent, SqsEvent, SqsMessage, handle_sqs};

fn body(camera: &CameraId, batch: usize) -> String {
    let now = now_ms();
    let reads = (0..5)
        .map(|i| PlateRead {
            id: ReadId::parse(&format!("b{batch}r{i}")).unwrap(),
            t: now - 60_000 + i,
            p: "AB 123".into(),
            c: 91,
            img: None,
            bb: None,
        })
        .collect();
    let payload = encode(&PlateReadBatch { r: reads }).unwrap();
    serde_json::to_string(&RuleEvent::new(camera, &payload)).unwrap()
}

fn sqs_event(batch: Vec<(String, String)>) -> SqsEvent {
    SqsEvent {
        records: batch
            .into_iter()
            .map(|(message_id, body)| SqsMessage { message_id, body })
            .collect(),
    }
}

#[tokio::test]
async fn dead_letters_replayed_are_consumed_once_each_and_the_dead_letter_queue_ends_empty() {
    let q = queue::fresh(2).await;
    let (store, cameras) = plates::fresh_store().await;
    let cams = [
        CameraId::parse("cam-replay-1").unwrap(),
        CameraId::parse("cam-replay-2").unwrap(),
    ];
    let bodies: Vec<String> = (0..12).map(|b| body(&cams[b % 2], b)).collect();
    q.send(&q.queue, &bodies).await;

    // The table is unreachable (another name): every message fails, is delivered twice and
    // then moved to the dead-letter queue by the redrive policy.
    let broken = DynamoPlateReadStore::new(moto::clients().dynamo, "no-such-table");
    let policy = IngestPolicy::default();
    let far = || now_ms() + 60_000;
    let failing = q
        .consume(|batch| {
            let (broken, cameras, policy) = (&broken, &cameras, &policy);
            async move {
                let (r, _) = handle_sqs(broken, cameras, policy, &sqs_event(batch), far()).await;
                r.batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier)
                    .collect()
            }
        })
        .await;
    assert_eq!(failing.deleted, 0, "{failing:?}");
    assert_eq!(q.depth(&q.dead_letters).await, 12);
    for c in &cams {
        assert!(plates::stored_ids(&store, c).await.is_empty());
    }
    // An interrupted replay sent one message without deleting it: it is there twice.
    q.send(&q.dead_letters, &bodies[..1]).await;

    let moved = replay_plate_reads(&q.sqs, &q.dead_letters, &q.queue, None)
        .await
        .unwrap();
    assert_eq!(moved.moved, 13);
    assert_eq!(moved.left_in_dead_letter_queue, 0);
    assert_eq!(q.depth(&q.dead_letters).await, 0);

    let consumed = q
        .consume(|batch| {
            let (store, cameras, policy) = (&store, &cameras, &policy);
            async move {
                let (r, _) = handle_sqs(store, cameras, policy, &sqs_event(batch), far()).await;
                r.batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier)
                    .collect()
            }
        })
        .await;
    assert_eq!(
        (consumed.deleted, consumed.reported),
        (13, 0),
        "{consumed:?}"
    );
    assert_eq!(q.depth(&q.queue).await, 0);
    assert_eq!(q.depth(&q.dead_letters).await, 0);
    for (k, c) in cams.iter().enumerate() {
        let mut got = plates::stored_ids(&store, c).await;
        got.sort();
        let mut want: Vec<String> = (0..12)
            .filter(|b| b % 2 == k)
            .flat_map(|b| (0..5).map(move |i| format!("b{b}r{i}")))
            .collect();
        want.sort();
        assert_eq!(got, want, "each read of {c} once");
    }
    // Nothing left to replay.
    let again = replay_plate_reads(&q.sqs, &q.dead_letters, &q.queue, None)
        .await
        .unwrap();
    assert_eq!(again.moved, 0);
}
