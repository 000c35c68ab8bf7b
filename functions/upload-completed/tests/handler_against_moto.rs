//! The upload-completed handler fed real S3 event JSON (fixtures) against moto: request items
//! read back from DynamoDB, notifications read back from the IoT data plane, and the presigned
//! URL fetched from moto's S3.

use anpr_aws::{DynamoRequestStore, IotDataPublisher, S3UrlSigner};
use anpr_core::model::{FileRequestRecord, StatusChange};
use anpr_core::ports::RequestStore;
use anpr_core::status::{StatusConfig, StatusUpdates};
use anpr_protocol::{CameraId, FileName, Notification, RequestId, RequestState, decode};
use anpr_test_support::moto;
use serde_json::Value;
use upload_completed::{Summary, handle};

const BUCKET: &str = "anpr-media-fixtures";
const A: &str = "01JDQ2Y7ZK8M3W5T0G9H4N6P2R";
const B: &str = "01JDQ3A1B2C3D4E5F6G7H8J9K0";
const C: &str = "01JDQ3A1B2C3D4E5F6G7H8J9K1";
/// 2026-11-25T16:00:00Z, the fixtures' event time (seconds).
const EVENT_T: u64 = 1_795_622_400;

type Svc = StatusUpdates<DynamoRequestStore, IotDataPublisher, S3UrlSigner>;

struct Env {
    svc: Svc,
    store: DynamoRequestStore,
    s3: aws_sdk_s3::Client,
    /// A user unique to the test, so notification read-backs don't mix.
    user: String,
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn env() -> Env {
    let clients = moto::clients();
    let table = moto::fresh_table(&clients.dynamo).await;
    // Shared by the tests of this file; creating it again is fine in us-east-1.
    clients.s3.create_bucket().bucket(BUCKET).send().await.ok();
    let store = DynamoRequestStore::new(clients.dynamo.clone(), &table);
    let svc = StatusUpdates::new(
        store.clone(),
        IotDataPublisher::new(clients.iot.clone()),
        S3UrlSigner::new(clients.s3.clone(), BUCKET),
        StatusConfig {
            download_url_secs: 60,
        },
    );
    Env {
        svc,
        store,
        s3: clients.s3,
        user: anpr_test_support::unique("user"),
    }
}

impl Env {
    async fn request(&self, id: &str, camera: &str, file: &str) -> FileRequestRecord {
        let r = FileRequestRecord {
            request_id: RequestId::parse(id).unwrap(),
            camera_id: CameraId::parse(camera).unwrap(),
            file: FileName::parse(file).unwrap(),
            note: None,
            requested_by: self.user.clone(),
            requested_at: EVENT_T - 60,
            expires_at: EVENT_T + 3600,
            state: RequestState::Requested,
            progress: None,
            size: None,
            object_key: None,
            checksum: None,
            sequencer: None,
            reason: None,
            history: vec![StatusChange {
                state: RequestState::Requested,
                at: EVENT_T - 60,
                progress: None,
                reason: None,
            }],
            version: 1,
            retain_until: EVENT_T + 86_400,
            // One organisation per test (the user id doubles as it): the topic is the test's own.
            org: Some(anpr_core::OrgId::parse(&self.user).unwrap()),
        };
        self.store.create(&r, None).await.unwrap();
        r
    }

    async fn get(&self, id: &str) -> FileRequestRecord {
        self.store
            .get(&RequestId::parse(id).unwrap())
            .await
            .unwrap()
            .unwrap()
    }

    fn notifications(&self) -> Vec<(Option<u8>, Notification)> {
        moto::iot_published(&anpr_protocol::topics::org_notifications(&self.user))
            .into_iter()
            .map(|p| (p.qos, decode(&p.payload).unwrap()))
            .collect()
    }
}

#[test]
fn every_fixture_has_the_real_s3_event_shape() {
    for name in [
        "put_key_with_spaces_unicode_and_plus.json",
        "multi_record.json",
        "duplicates_out_of_order.json",
        "foreign_camera.json",
    ] {
        let ev: aws_lambda_events::event::s3::S3Event =
            serde_json::from_value(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!ev.records.is_empty(), "{name}");
    }
}

#[tokio::test]
async fn a_key_with_spaces_unicode_and_plus_marks_the_request_ready_and_the_url_downloads_it() {
    let env = env().await;
    let file = "clips/gate 1 été + 東.mp4";
    env.request(A, "gate-7", file).await;
    let key = format!("media/gate-7/{A}/{file}");
    let bytes = b"hello video".to_vec();
    env.s3
        .put_object()
        .bucket(BUCKET)
        .key(&key)
        .body(bytes.clone().into())
        .send()
        .await
        .unwrap();

    let summary = handle(
        &env.svc,
        BUCKET,
        &fixture("put_key_with_spaces_unicode_and_plus.json"),
    )
    .await
    .unwrap();
    assert_eq!(
        summary,
        Summary {
            applied: 1,
            ..Summary::default()
        }
    );

    let rec = env.get(A).await;
    assert_eq!(rec.state, RequestState::Ready);
    assert_eq!(rec.size, Some(11));
    assert_eq!(
        rec.checksum.as_deref(),
        Some("d41d8cd98f00b204e9800998ecf8427e")
    );
    assert_eq!(rec.sequencer.as_deref(), Some("0055B988B5C2B3F0C6"));
    assert_eq!(rec.object_key.as_deref(), Some(key.as_str()));
    assert_eq!(rec.version, 2);
    let last = rec.history.last().unwrap();
    assert_eq!((last.state, last.at), (RequestState::Ready, EVENT_T));

    let n = env.notifications();
    assert_eq!(n.len(), 1);
    let (qos, n) = &n[0];
    assert_eq!(*qos, Some(1));
    assert_eq!(n.request_id.as_str(), A);
    assert_eq!(n.camera_id.as_str(), "gate-7");
    assert_eq!(n.file, file);
    assert_eq!(n.state, RequestState::Ready);
    assert_eq!(n.size, Some(11));
    let url = n.url.as_deref().expect("a download URL");
    assert!(url.contains("X-Amz-Expires=60"), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let got = reqwest::get(url).await.unwrap();
    assert_eq!(got.status(), 200, "{url}");
    assert_eq!(got.bytes().await.unwrap().to_vec(), bytes);
}

#[tokio::test]
async fn a_multi_record_event_applies_each_upload_and_skips_what_does_not_apply() {
    let env = env().await;
    env.request(A, "gate-7", "clips/a.mp4").await;
    env.request(B, "gate-7", "clips/night shift.mp4").await;
    let c_before = env.request(C, "gate-7", "clips/c.mp4").await;

    let summary = handle(&env.svc, BUCKET, &fixture("multi_record.json"))
        .await
        .unwrap();
    // Skipped: a key outside the layout, a delete, another bucket.
    assert_eq!(
        summary,
        Summary {
            applied: 2,
            skipped: 3,
            ..Summary::default()
        }
    );

    let a = env.get(A).await;
    assert_eq!((a.state, a.size), (RequestState::Ready, Some(1024)));
    let b = env.get(B).await;
    assert_eq!((b.state, b.size), (RequestState::Ready, Some(52_428_800)));
    assert_eq!(
        b.checksum.as_deref(),
        Some("3858f62230ac3c915f300c664312c11f-7")
    );
    assert_eq!(
        env.get(C).await,
        c_before,
        "the delete and the other bucket change nothing"
    );

    let mut ids: Vec<String> = env
        .notifications()
        .iter()
        .map(|(_, n)| n.request_id.to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, [A, B]);
}

#[tokio::test]
async fn duplicate_and_out_of_order_records_change_nothing_twice_and_never_go_backwards() {
    let env = env().await;
    env.request(A, "gate-7", "clips/a.mp4").await;

    let summary = handle(&env.svc, BUCKET, &fixture("duplicates_out_of_order.json"))
        .await
        .unwrap();
    assert_eq!(
        summary,
        Summary {
            applied: 1,
            duplicates: 1,
            skipped: 1,
            failed: 0
        }
    );
    let once = env.get(A).await;
    assert_eq!(
        once.size,
        Some(2048),
        "the older (smaller) object never overwrites the newer"
    );
    assert_eq!(once.sequencer.as_deref(), Some("0055B988B5C2B3F0C7"));
    assert_eq!(once.version, 2);
    assert_eq!(once.history.len(), 2);

    // S3 delivering the whole event again changes nothing either.
    let again = handle(&env.svc, BUCKET, &fixture("duplicates_out_of_order.json"))
        .await
        .unwrap();
    assert_eq!(
        again,
        Summary {
            applied: 0,
            duplicates: 2,
            skipped: 1,
            failed: 0
        }
    );
    assert_eq!(env.get(A).await, once);

    // Every notification is of the one ready state: once when applied, then again for each
    // of the three duplicates (at-least-once delivery to the web UI).
    let n = env.notifications();
    assert_eq!(n.len(), 4);
    assert!(
        n.iter()
            .all(|(_, n)| n.state == RequestState::Ready && n.size == Some(2048))
    );
}

#[tokio::test]
async fn an_upload_under_another_cameras_prefix_does_not_touch_the_request() {
    let env = env().await;
    let before = env.request(A, "gate-7", "clips/a.mp4").await;
    let summary = handle(&env.svc, BUCKET, &fixture("foreign_camera.json"))
        .await
        .unwrap();
    assert_eq!(
        summary,
        Summary {
            skipped: 1,
            ..Summary::default()
        }
    );
    assert_eq!(env.get(A).await, before);
    assert!(env.notifications().is_empty());
}

#[tokio::test]
async fn the_s3_test_event_and_garbage_are_handled_without_error() {
    let env = env().await;
    let before = env.request(A, "gate-7", "clips/a.mp4").await;
    assert_eq!(
        handle(&env.svc, BUCKET, &fixture("s3_test_event.json"))
            .await
            .unwrap(),
        Summary::default()
    );
    let garbage = serde_json::json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": 5}, 7]});
    assert_eq!(
        handle(&env.svc, BUCKET, &garbage).await.unwrap(),
        Summary {
            failed: 2,
            ..Summary::default()
        }
    );
    assert_eq!(env.get(A).await, before);
}

#[tokio::test]
async fn a_transient_dynamodb_failure_fails_the_invocation_so_lambda_retries() {
    let env = env().await;
    // DynamoDB unreachable (nothing listens on port 9), SDK retries off to keep the test short.
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&moto::sdk_config())
            .endpoint_url("http://127.0.0.1:9")
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build(),
    );
    let svc = StatusUpdates::new(
        DynamoRequestStore::new(dynamo, "anything"),
        IotDataPublisher::new(moto::clients().iot),
        S3UrlSigner::new(env.s3.clone(), BUCKET),
        StatusConfig::default(),
    );
    let err = handle(&svc, BUCKET, &fixture("multi_record.json"))
        .await
        .unwrap_err();
    assert_eq!(err.count, 2, "both uploads failed transiently");
    assert!(err.first.is_retryable());
}

#[tokio::test]
async fn a_permanent_dynamodb_failure_is_logged_and_not_retried() {
    let env = env().await;
    let clients = moto::clients();
    let svc = StatusUpdates::new(
        DynamoRequestStore::new(clients.dynamo.clone(), "no-such-table"),
        IotDataPublisher::new(clients.iot.clone()),
        S3UrlSigner::new(env.s3.clone(), BUCKET),
        StatusConfig::default(),
    );
    let summary = handle(
        &svc,
        BUCKET,
        &fixture("put_key_with_spaces_unicode_and_plus.json"),
    )
    .await
    .unwrap();
    assert_eq!(
        summary,
        Summary {
            failed: 1,
            ..Summary::default()
        }
    );
}
