//! Measurement (not a test): one camera's backlog drained through the buffered path locally —
//! plate read messages in moto's SQS, consumed by plate-ingest's SQS handler (`handle_sqs`)
//! with `CONSUMERS` concurrent consumers (the event source mapping's MaximumConcurrency; each
//! with its own store, paced as in Lambda), into a fresh table in moto's DynamoDB. Prints
//! reads/s end to end and the write rate on each of the camera's partition keys.
//!
//! ```sh
//! # moto running, ANPR_MOTO_URL set (scripts/test starts one)
//! cargo run --example queue_drain -- [MESSAGES=40] [READS_PER_MESSAGE=250] [CONSUMERS=4] [PACE_MS=25]
//! ```

use anpr_aws::{DynamoCameraRegistry, DynamoPlateReadStore};
use anpr_core::plates::IngestPolicy;
use anpr_protocol::clock::now_ms;
use anpr_protocol::{CameraId, PlateRead, PlateReadBatch, ReadId, encode};
use anpr_test_support::{moto, queue};
use plate_ingest::{RuleEvent, SqsEvent, SqsMessage, handle_sqs};
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .map(|a| a.parse().expect("a number"))
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let (messages, per, consumers, pace_ms) = (arg(1, 40), arg(2, 250), arg(3, 4), arg(4, 25));
    let camera = CameraId::parse("cam-drain").unwrap();
    let clients = moto::clients();
    let table = moto::fresh_table(&clients.dynamo).await;
    let q = queue::fresh(5).await;
    let now = now_ms();
    let bodies: Vec<String> = (0..messages)
        .map(|k| {
            let reads = (0..per)
                .map(|i| PlateRead {
                    id: ReadId::parse(&format!("m{k}r{i}")).unwrap(),
                    t: now - 3_600_000 + (k * per + i) * 100,
                    p: format!("DR{i:04}"),
                    c: 90,
                    img: None,
                    bb: None,
                })
                .collect();
            let payload = encode(&PlateReadBatch { r: reads }).unwrap();
            serde_json::to_string(&RuleEvent::new(&camera, &payload)).unwrap()
        })
        .collect();
    q.send(&q.queue, &bodies).await;

    let policy = IngestPolicy::default();
    let cameras = DynamoCameraRegistry::new(clients.dynamo.clone(), &table);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..consumers {
        let (q, cameras, policy) = (q.clone(), cameras.clone(), policy);
        let store = DynamoPlateReadStore::new(clients.dynamo.clone(), &table)
            .with_min_call_interval(Duration::from_millis(pace_ms));
        tasks.spawn(async move {
            q.consume(|batch| {
                let (store, cameras, policy) = (&store, &cameras, &policy);
                async move {
                    let event = SqsEvent {
                        records: batch
                            .into_iter()
                            .map(|(message_id, body)| SqsMessage { message_id, body })
                            .collect(),
                    };
                    let (r, _) =
                        handle_sqs(store, cameras, policy, &event, now_ms() + 600_000).await;
                    r.batch_item_failures
                        .into_iter()
                        .map(|f| f.item_identifier)
                        .collect()
                }
            })
            .await
        });
    }
    let mut reported = 0;
    while let Some(done) = tasks.join_next().await {
        reported += done.expect("consumer").reported;
    }
    let secs = started.elapsed().as_secs_f64();

    // What the table holds, per partition key and per second of handling (`received_ms`).
    let mut per_pk: HashMap<String, u64> = HashMap::new();
    let mut per_pk_second: HashMap<(String, u64), u64> = HashMap::new();
    let mut start = None;
    loop {
        let out = clients
            .dynamo
            .scan()
            .table_name(&table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        for item in out.items.unwrap_or_default() {
            let pk = item["PK"].as_s().expect("PK").clone();
            if !pk.starts_with("READS#") {
                continue;
            }
            let at: u64 = item["received_ms"]
                .as_n()
                .expect("received_ms")
                .parse()
                .unwrap();
            *per_pk.entry(pk.clone()).or_default() += 1;
            *per_pk_second.entry((pk, at / 1000)).or_default() += 1;
        }
        start = out.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    let total: u64 = per_pk.values().sum();
    assert_eq!(total, messages * per, "every read stored once");
    let busiest = per_pk.values().max().copied().unwrap_or(0);
    let peak = per_pk_second.values().max().copied().unwrap_or(0);
    println!(
        "{messages} messages x {per} reads, {consumers} consumers, pace {pace_ms} ms: {total} reads in {secs:.2} s = {:.0} reads/s ({reported} messages returned to the queue)",
        total as f64 / secs
    );
    println!(
        "one camera over {} partition keys: busiest {busiest} items = {:.0} writes/s averaged over the drain; peak {peak} writes in one second (by handling second) on one key",
        per_pk.len(),
        busiest as f64 / secs
    );
}
