//! plate-ingest's DynamoDB path under DynamoDB's own faults, against moto: an SDK interceptor
//! between the store and moto holds items of a `BatchWriteItem` back (they never reach moto)
//! and answers them as `UnprocessedItems`, or answers a call with
//! `ProvisionedThroughputExceededException` (the call's items never reach moto either). The
//! store's own retry and the SDK's retry are the code under fault; what is in moto's table at
//! the end is what counts: every read once, or the invocation fails (retryably) and its
//! redelivery writes what was missing.

use anpr_aws::DynamoPlateReadStore;
use anpr_aws::plates::RetryPolicy;
use anpr_core::plates::IngestPolicy;
use anpr_protocol::clock::now_ms;
use anpr_protocol::{CameraId, PlateRead, PlateReadBatch, ReadId, encode};
use anpr_test_support::moto;
use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_types::body::SdkBody;
use plate_ingest::{RuleEvent, handle};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the interceptor did to the attempt in progress.
#[derive(Debug, Default)]
enum Attempt {
    #[default]
    Pass,
    /// These write requests (of this table) were taken out of the call.
    Held(String, Vec<Value>),
    Throttled,
}

/// The faults to inject into the next `BatchWriteItem` attempts.
#[derive(Debug, Default)]
struct Faults {
    /// Attempts left in which half of the items are held back.
    hold_half: AtomicU32,
    /// Hold one item back in every attempt.
    hold_one_always: AtomicBool,
    /// Attempts left that are throttled.
    throttle: AtomicU32,
    /// `BatchWriteItem` attempts seen.
    attempts: AtomicU32,
    /// Items held back, in total.
    held: AtomicU32,
    attempt: Mutex<Attempt>,
}

fn take_one(n: &AtomicU32) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

#[derive(Debug, Clone)]
struct Injector(Arc<Faults>);

impl Intercept for Injector {
    fn name(&self) -> &'static str {
        "dynamodb-fault-injector"
    }

    fn modify_before_signing(
        &self,
        ctx: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let f = &self.0;
        let req = ctx.request_mut();
        let is_batch_write = req
            .headers()
            .get("x-amz-target")
            .is_some_and(|t| t.ends_with(".BatchWriteItem"));
        let mut attempt = f.attempt.lock().unwrap();
        *attempt = Attempt::Pass;
        if !is_batch_write {
            return Ok(());
        }
        f.attempts.fetch_add(1, Ordering::SeqCst);
        let mut body: Value =
            serde_json::from_slice(req.body().bytes().ok_or("a streaming body")?)?;
        if take_one(&f.throttle) {
            // Nothing of it reaches moto; the answer is replaced below.
            *attempt = Attempt::Throttled;
            body = json!({"RequestItems": {}});
        } else {
            let items = body["RequestItems"]
                .as_object_mut()
                .ok_or("no RequestItems")?;
            let (table, writes) = items.iter_mut().next().ok_or("no table")?;
            let writes = writes.as_array_mut().ok_or("RequestItems not a list")?;
            let held = if take_one(&f.hold_half) {
                let keep = writes.len().div_ceil(2);
                writes.split_off(keep)
            } else if f.hold_one_always.load(Ordering::SeqCst) && !writes.is_empty() {
                writes.split_off(writes.len() - 1)
            } else {
                return Ok(());
            };
            if held.is_empty() {
                return Ok(());
            }
            f.held.fetch_add(held.len() as u32, Ordering::SeqCst);
            *attempt = Attempt::Held(table.clone(), held);
        }
        let bytes = serde_json::to_vec(&body)?;
        req.headers_mut()
            .insert("content-length", bytes.len().to_string());
        *req.body_mut() = SdkBody::from(bytes);
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        ctx: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let attempt = std::mem::take(&mut *self.0.attempt.lock().unwrap());
        let resp = ctx.response_mut();
        let (status, body): (u16, Value) = match attempt {
            Attempt::Pass => return Ok(()),
            Attempt::Held(table, held) => {
                assert_eq!(resp.status().as_u16(), 200, "moto refused the rest");
                (200, json!({"UnprocessedItems": {table: held}}))
            }
            Attempt::Throttled => (
                400,
                json!({
                    "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                    "message": "injected: the level of configured provisioned throughput was exceeded"
                }),
            ),
        };
        let bytes = serde_json::to_vec(&body)?;
        *resp.status_mut() = status.try_into()?;
        resp.headers_mut()
            .insert("content-length", bytes.len().to_string());
        *resp.body_mut() = SdkBody::from(bytes);
        Ok(())
    }
}

struct Env {
    faults: Arc<Faults>,
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
}

/// A table in moto and a client whose calls go through the injector; the SDK retries
/// throttling three times with short back-off (the production client retries the same way,
/// with longer back-off).
async fn env() -> Env {
    let faults = Arc::new(Faults::default());
    let plain = moto::clients().dynamo;
    let table = moto::fresh_table(&plain).await;
    let conf = aws_sdk_dynamodb::config::Builder::from(&moto::sdk_config())
        .interceptor(Injector(faults.clone()))
        .retry_config(
            aws_sdk_dynamodb::config::retry::RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(10))
                .with_max_backoff(Duration::from_millis(50)),
        )
        .build();
    Env {
        faults,
        dynamo: aws_sdk_dynamodb::Client::from_conf(conf),
        table,
    }
}

impl Env {
    fn store(&self, retry: RetryPolicy) -> DynamoPlateReadStore {
        DynamoPlateReadStore::new(self.dynamo.clone(), &self.table).with_retry(retry)
    }

    /// Item count, read without the injector.
    async fn items(&self) -> usize {
        let plain = moto::clients().dynamo;
        let mut n = 0;
        let mut start = None;
        loop {
            let out = plain
                .scan()
                .table_name(&self.table)
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
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        max_retries: 4,
        first_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

/// A rule event of `n` valid reads (60 = three BatchWriteItem calls of 25, 25 and 10).
fn event(n: u64) -> Value {
    let camera = CameraId::parse("cam-faults").unwrap();
    let now = now_ms();
    let reads = (0..n)
        .map(|i| PlateRead {
            id: ReadId::parse(&format!("f{i:05}")).unwrap(),
            t: now - 60_000 + i,
            p: format!("FA{i:04}"),
            c: 90,
            img: None,
            bb: None,
        })
        .collect();
    serde_json::to_value(RuleEvent::new(
        &camera,
        &encode(&PlateReadBatch { r: reads }).unwrap(),
    ))
    .unwrap()
}

#[tokio::test]
async fn unprocessed_items_are_retried_until_every_read_is_in_the_table() {
    let env = env().await;
    let store = env.store(quick());
    env.faults.hold_half.store(4, Ordering::SeqCst);
    let report = handle(
        &store,
        &anpr_core::memory::MemoryCameraRegistry::default(),
        &IngestPolicy::default(),
        &event(60),
        now_ms(),
    )
    .await
    .unwrap();
    assert_eq!(report.stored, 60, "{report:?}");
    assert!(
        env.faults.held.load(Ordering::SeqCst) > 0,
        "faults injected"
    );
    assert_eq!(env.items().await, 60, "every read in the table, once");
    let attempts = env.faults.attempts.load(Ordering::SeqCst);
    assert!(
        attempts > 3,
        "unprocessed items were sent again: {attempts} calls"
    );
    assert_eq!(
        u64::from(attempts),
        store.calls(),
        "the store counts its retries"
    );
}

#[tokio::test]
async fn items_never_processed_fail_the_invocation_and_its_redelivery_writes_them() {
    let env = env().await;
    let store = env.store(quick());
    env.faults.hold_one_always.store(true, Ordering::SeqCst);
    let ev = event(60);
    let e = handle(
        &store,
        &anpr_core::memory::MemoryCameraRegistry::default(),
        &IngestPolicy::default(),
        &ev,
        now_ms(),
    )
    .await
    .expect_err("items left unprocessed must fail the invocation");
    let plate_ingest::IngestError::Store(anpr_core::StoreError::Backend { retryable, .. }) = &e
    else {
        panic!("{e:?}");
    };
    assert!(retryable, "the rule retries it: {e:?}");
    assert!(env.items().await < 60, "some reads really were missing");
    // The rule delivers the event again once DynamoDB recovers: nothing lost, nothing twice.
    env.faults.hold_one_always.store(false, Ordering::SeqCst);
    let report = handle(
        &store,
        &anpr_core::memory::MemoryCameraRegistry::default(),
        &IngestPolicy::default(),
        &ev,
        now_ms(),
    )
    .await
    .unwrap();
    assert_eq!(report.stored, 60);
    assert_eq!(env.items().await, 60);
}

#[tokio::test]
async fn throttled_calls_are_retried_by_the_sdk_and_a_throttled_invocation_fails_retryably() {
    let env = env().await;
    let store = env.store(quick());
    // Two throttled attempts: the SDK's third attempt goes through.
    env.faults.throttle.store(2, Ordering::SeqCst);
    let report = handle(
        &store,
        &anpr_core::memory::MemoryCameraRegistry::default(),
        &IngestPolicy::default(),
        &event(60),
        now_ms(),
    )
    .await
    .unwrap();
    assert_eq!(report.stored, 60);
    assert_eq!(env.items().await, 60);
    assert_eq!(env.faults.attempts.load(Ordering::SeqCst), 3 + 2);

    // Throttled beyond the SDK's attempts: the invocation fails retryably, and its
    // redelivery later stores everything.
    let env = self::env().await;
    let store = env.store(quick());
    env.faults.throttle.store(3, Ordering::SeqCst);
    let ev = event(60);
    let e = handle(
        &store,
        &anpr_core::memory::MemoryCameraRegistry::default(),
        &IngestPolicy::default(),
        &ev,
        now_ms(),
    )
    .await
    .expect_err("throttled three times in a row");
    assert!(
        matches!(
            &e,
            plate_ingest::IngestError::Store(anpr_core::StoreError::Backend {
                retryable: true,
                ..
            })
        ),
        "{e:?}"
    );
    assert_eq!(env.items().await, 0, "the throttled calls wrote nothing");
    let report = handle(
        &store,
        &anpr_core::memory::MemoryCameraRegistry::default(),
        &IngestPolicy::default(),
        &ev,
        now_ms(),
    )
    .await
    .unwrap();
    assert_eq!(report.stored, 60);
    assert_eq!(env.items().await, 60);
}

/// The body of queue message `k` of a burst: `n` reads of camera `cam-burst`, ids `m{k}r{i}`.
fn burst_message(k: usize, n: u64) -> String {
    let camera = CameraId::parse("cam-burst").unwrap();
    let now = now_ms();
    let reads = (0..n)
        .map(|i| PlateRead {
            id: ReadId::parse(&format!("m{k}r{i}")).unwrap(),
            t: now - 600_000 + k as u64 * 1000 + i,
            p: format!("BU{i:04}"),
            c: 90,
            img: None,
            bb: None,
        })
        .collect();
    serde_json::to_string(&RuleEvent::new(
        &camera,
        &encode(&PlateReadBatch { r: reads }).unwrap(),
    ))
    .unwrap()
}

#[tokio::test]
async fn a_burst_through_the_queue_survives_a_throttling_store_each_read_stored_once() {
    use anpr_test_support::{plates, queue};
    use plate_ingest::{SqsEvent, SqsMessage, handle_sqs};
    let env = env().await;
    let store = env.store(quick());
    let q = queue::fresh(10).await;
    // A camera's backlog: 10 messages of 30 reads in the queue.
    let bodies: Vec<String> = (0..10).map(|k| burst_message(k, 30)).collect();
    q.send(&q.queue, &bodies).await;
    // DynamoDB throttles for a while: calls refused (some beyond the SDK's three attempts)
    // and items left unprocessed (some beyond the store's retries).
    env.faults.throttle.store(8, Ordering::SeqCst);
    env.faults.hold_half.store(12, Ordering::SeqCst);
    let registry = anpr_core::memory::MemoryCameraRegistry::default();
    let policy = IngestPolicy::default();
    let consumed = q
        .consume(|batch| {
            let (store, registry, policy) = (&store, &registry, &policy);
            async move {
                let event = SqsEvent {
                    records: batch
                        .into_iter()
                        .map(|(message_id, body)| SqsMessage { message_id, body })
                        .collect(),
                };
                let (r, _) = handle_sqs(store, registry, policy, &event, now_ms() + 60_000).await;
                r.batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier)
                    .collect()
            }
        })
        .await;
    println!("measured: {consumed:?}");
    assert!(
        consumed.reported > 0,
        "some messages failed and were reported for redelivery: {consumed:?}"
    );
    assert_eq!(consumed.deleted, 10, "each message handled once in the end");
    assert_eq!(consumed.deliveries, 10 + consumed.reported);
    assert!(
        env.faults.held.load(Ordering::SeqCst) > 0,
        "faults injected"
    );
    assert_eq!(q.depth(&q.queue).await, 0);
    assert_eq!(q.depth(&q.dead_letters).await, 0, "nothing gave up");
    // Every read once: 300 items, and the camera's query returns each id once.
    assert_eq!(env.items().await, 300);
    let plain = DynamoPlateReadStore::new(moto::clients().dynamo, &env.table);
    let mut got = plates::stored_ids(&plain, &CameraId::parse("cam-burst").unwrap()).await;
    got.sort();
    let mut want: Vec<String> = (0..10)
        .flat_map(|k| (0..30).map(move |i| format!("m{k}r{i}")))
        .collect();
    want.sort();
    assert_eq!(got, want);
}
