//! The file-status handler fed IoT rule events (fixtures: what the rule SQL hands it, the
//! camera's message base64 with `camera_id`/`mqtt_topic` from the topic) against moto, and fed by a stand-in rule
//! subscribed to `+/file/status` on the real Mosquitto broker: request items read back from
//! DynamoDB, notifications from the IoT data plane.

use anpr_aws::{DynamoRequestStore, IotDataPublisher, S3UrlSigner};
use anpr_core::model::{FileRequestRecord, StatusChange};
use anpr_core::ports::RequestStore;
use anpr_core::status::{Outcome, StatusConfig, StatusUpdates};
use anpr_protocol::{
    CameraId, FileName, FileStatus, FileStatusKind, Notification, ReasonCode, RequestId,
    RequestState, decode, encode,
};
use anpr_test_support::broker::{Broker, CLOUD_IDENTITY};
use anpr_test_support::moto;
use file_status::{Handled, handle};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use serde_json::Value;
use std::time::Duration;

const A: &str = "01JDQ2Y7ZK8M3W5T0G9H4N6P2R";

type Svc = StatusUpdates<DynamoRequestStore, IotDataPublisher, S3UrlSigner>;

struct Env {
    svc: Svc,
    store: DynamoRequestStore,
    user: String,
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn env(camera: &str) -> (Env, FileRequestRecord) {
    let clients = moto::clients();
    let table = moto::fresh_table(&clients.dynamo).await;
    let store = DynamoRequestStore::new(clients.dynamo.clone(), &table);
    let svc = StatusUpdates::new(
        store.clone(),
        IotDataPublisher::new(clients.iot.clone()),
        S3UrlSigner::new(clients.s3.clone(), "unused-by-statuses"),
        StatusConfig::default(),
    );
    let user = anpr_test_support::unique("user");
    let r = FileRequestRecord {
        request_id: RequestId::parse(A).unwrap(),
        camera_id: CameraId::parse(camera).unwrap(),
        file: FileName::parse("clips/a.mp4").unwrap(),
        note: None,
        requested_by: user.clone(),
        requested_at: 1000,
        expires_at: 90_000,
        state: RequestState::Requested,
        progress: None,
        size: None,
        object_key: None,
        checksum: None,
        sequencer: None,
        reason: None,
        history: vec![StatusChange {
            state: RequestState::Requested,
            at: 1000,
            progress: None,
            reason: None,
        }],
        version: 1,
        retain_until: 99_999,
        // One organisation per test (the user id doubles as it): the topic is the test's own.
        org: Some(anpr_core::OrgId::parse(&user).unwrap()),
    };
    store.create(&r, None).await.unwrap();
    (Env { svc, store, user }, r)
}

impl Env {
    async fn get(&self) -> FileRequestRecord {
        self.store
            .get(&RequestId::parse(A).unwrap())
            .await
            .unwrap()
            .unwrap()
    }

    fn notifications(&self) -> Vec<Notification> {
        moto::iot_published(&anpr_protocol::topics::org_notifications(&self.user))
            .into_iter()
            .map(|p| {
                assert_eq!(p.qos, Some(1));
                decode(&p.payload).unwrap()
            })
            .collect()
    }
}

#[tokio::test]
async fn camera_statuses_move_the_request_along_and_notify_its_user() {
    let (env, _) = env("gate-7").await;
    for (name, t) in [
        ("accepted.json", 1100),
        ("uploading_40.json", 1110),
        ("uploaded.json", 1120),
    ] {
        let h = handle(&env.svc, &fixture(name), t).await.unwrap();
        assert!(
            matches!(h, Handled::Outcome(Outcome::Applied { .. })),
            "{name}: {h:?}"
        );
    }
    let rec = env.get().await;
    assert_eq!(rec.state, RequestState::Uploading);
    assert_eq!(rec.progress, Some(100));
    assert_eq!(rec.version, 4);
    let hist: Vec<_> = rec.history.iter().map(|h| (h.state, h.at)).collect();
    assert_eq!(
        hist,
        [
            (RequestState::Requested, 1000),
            (RequestState::Accepted, 1100),
            (RequestState::Uploading, 1110)
        ]
    );
    let n: Vec<_> = env
        .notifications()
        .into_iter()
        .map(|n| (n.state, n.progress, n.at))
        .collect();
    assert_eq!(
        n,
        [
            (RequestState::Accepted, None, 1100),
            (RequestState::Uploading, Some(40), 1110),
            (RequestState::Uploading, Some(100), 1110),
        ]
    );
    // A redelivered older status changes nothing (the current state is notified again).
    let h = handle(&env.svc, &fixture("uploading_40.json"), 1130)
        .await
        .unwrap();
    assert_eq!(
        h,
        Handled::Outcome(Outcome::Duplicate {
            state: RequestState::Uploading
        })
    );
    assert_eq!(env.get().await, rec);
}

#[tokio::test]
async fn failed_rejected_and_expired_are_terminal_with_their_reason() {
    for (name, state, reason) in [
        (
            "failed.json",
            RequestState::Failed,
            Some(ReasonCode::UploadFailed),
        ),
        (
            "rejected.json",
            RequestState::Rejected,
            Some(ReasonCode::ForbiddenPath),
        ),
        ("expired.json", RequestState::Expired, None),
    ] {
        let (env, _) = env("gate-7").await;
        handle(&env.svc, &fixture(name), 1200).await.unwrap();
        let rec = env.get().await;
        assert_eq!((rec.state, rec.reason), (state, reason), "{name}");
        let n = env.notifications();
        assert_eq!(n.len(), 1, "{name}");
        assert_eq!(
            n[0].reason.as_deref(),
            reason.map(ReasonCode::as_str),
            "{name}"
        );
        // Nothing leaves a terminal state.
        let h = handle(&env.svc, &fixture("accepted.json"), 1300)
            .await
            .unwrap();
        assert!(
            matches!(h, Handled::Outcome(Outcome::Refused { .. })),
            "{name}: {h:?}"
        );
        assert_eq!(env.get().await, rec);
    }
}

#[tokio::test]
async fn a_status_for_another_cameras_request_is_refused_and_changes_nothing() {
    let (env, before) = env("gate-7").await;
    // From gate-8's topic; the second names gate-7 inside its message, which the rule passes
    // opaque: the topic decides.
    for name in [
        "accepted_from_another_camera.json",
        "camera_id_spoofed_in_payload.json",
    ] {
        let h = handle(&env.svc, &fixture(name), 1100).await.unwrap();
        assert_eq!(
            h,
            Handled::Outcome(Outcome::WrongCamera {
                expected: CameraId::parse("gate-7").unwrap()
            }),
            "{name}"
        );
    }
    assert_eq!(env.get().await, before);
    assert!(env.notifications().is_empty());
}

#[tokio::test]
async fn malformed_or_spoofed_events_are_dropped_without_error() {
    let (env, before) = env("gate-7").await;
    for name in [
        "unknown_kind.json",
        "no_camera_id.json",
        "topic_disagrees_with_camera_id.json",
        "merged_fields_of_the_old_rule.json",
    ] {
        assert_eq!(
            handle(&env.svc, &fixture(name), 1100).await.unwrap(),
            Handled::Dropped,
            "{name}"
        );
    }
    assert_eq!(
        handle(&env.svc, &serde_json::json!("not an object"), 1)
            .await
            .unwrap(),
        Handled::Dropped
    );
    assert_eq!(env.get().await, before);
    assert!(env.notifications().is_empty());
}

#[tokio::test]
async fn a_transient_failure_is_returned_for_lambda_to_retry() {
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&moto::sdk_config())
            .endpoint_url("http://127.0.0.1:9")
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build(),
    );
    let clients = moto::clients();
    let svc = StatusUpdates::new(
        DynamoRequestStore::new(dynamo, "anything"),
        IotDataPublisher::new(clients.iot.clone()),
        S3UrlSigner::new(clients.s3.clone(), "b"),
        StatusConfig::default(),
    );
    let err = handle(&svc, &fixture("accepted.json"), 1)
        .await
        .unwrap_err();
    assert!(err.0.is_retryable());
}

async fn next_packet(ev: &mut EventLoop) -> Packet {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ev.poll()).await {
            Ok(Ok(Event::Incoming(p))) => return p,
            Ok(Ok(Event::Outgoing(_))) => continue,
            Ok(Err(e)) => panic!("connection error: {e:?}"),
            Err(_) => panic!("no packet within 10 s"),
        }
    }
}

async fn connect(opts: rumqttc::v5::MqttOptions) -> (AsyncClient, EventLoop) {
    let (c, mut ev) = AsyncClient::new(opts, 16);
    match next_packet(&mut ev).await {
        Packet::ConnAck(_) => (c, ev),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn statuses_published_by_a_camera_over_mqtt_reach_the_request_only_for_its_own_requests() {
    let broker = Broker::start();
    let cam_a = broker.identity("cam-a");
    broker.identity("cam-b");
    let rule_id = broker.identity(CLOUD_IDENTITY);
    // The request belongs to cam-b.
    let (env, before) = env("cam-b").await;

    let (rule, mut rule_ev) = connect(broker.v5_options(&rule_id)).await;
    rule.subscribe("+/file/status", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert!(matches!(next_packet(&mut rule_ev).await, Packet::SubAck(_)));

    let (cam, mut cam_ev) = connect(broker.v5_options(&cam_a)).await;
    let msg = encode(&FileStatus {
        id: RequestId::parse(A).unwrap(),
        kind: FileStatusKind::Accepted,
    })
    .unwrap();
    // Speaking on cam-b's topic is refused by the broker (the IoT policy)...
    cam.publish("cam-b/file/status", QoS::AtLeastOnce, false, msg.clone())
        .await
        .unwrap();
    match next_packet(&mut cam_ev).await {
        Packet::PubAck(p) => assert_eq!(p.reason, PubAckReason::NotAuthorized),
        other => panic!("{other:?}"),
    }
    // ...and on its own topic, about cam-b's request, by the function.
    cam.publish("cam-a/file/status", QoS::AtLeastOnce, false, msg)
        .await
        .unwrap();
    match next_packet(&mut cam_ev).await {
        Packet::PubAck(p) => assert_eq!(p.reason, PubAckReason::Success),
        other => panic!("{other:?}"),
    }
    let publish = loop {
        match next_packet(&mut rule_ev).await {
            Packet::Publish(p) => break p,
            _ => continue,
        }
    };
    let topic = String::from_utf8(publish.topic.to_vec()).unwrap();
    assert_eq!(
        topic, "cam-a/file/status",
        "only the allowed publish reached the rule"
    );
    let h = handle(
        &env.svc,
        &file_status::rule_event(&topic, &publish.payload),
        1100,
    )
    .await
    .unwrap();
    assert_eq!(
        h,
        Handled::Outcome(Outcome::WrongCamera {
            expected: CameraId::parse("cam-b").unwrap()
        })
    );
    assert_eq!(env.get().await, before);

    // cam-b's own status is applied.
    let cam_b = broker.identity("cam-b");
    let (cam, mut cam_ev) = connect(broker.v5_options(&cam_b)).await;
    let msg = encode(&FileStatus {
        id: RequestId::parse(A).unwrap(),
        kind: FileStatusKind::Uploading { pct: 30 },
    })
    .unwrap();
    cam.publish("cam-b/file/status", QoS::AtLeastOnce, false, msg)
        .await
        .unwrap();
    match next_packet(&mut cam_ev).await {
        Packet::PubAck(p) => assert_eq!(p.reason, PubAckReason::Success),
        other => panic!("{other:?}"),
    }
    let publish = loop {
        match next_packet(&mut rule_ev).await {
            Packet::Publish(p) => break p,
            _ => continue,
        }
    };
    let topic = String::from_utf8(publish.topic.to_vec()).unwrap();
    let h = handle(
        &env.svc,
        &file_status::rule_event(&topic, &publish.payload),
        1200,
    )
    .await
    .unwrap();
    assert_eq!(
        h,
        Handled::Outcome(Outcome::Applied {
            state: RequestState::Uploading
        })
    );
    let rec = env.get().await;
    assert_eq!(
        (rec.state, rec.progress),
        (RequestState::Uploading, Some(30))
    );
    let n = env.notifications();
    assert_eq!(n.len(), 1);
    assert_eq!(
        (n[0].camera_id.as_str(), n[0].progress),
        ("cam-b", Some(30))
    );
}

/// Two writers of the same request at the same time against moto's DynamoDB: the conditional
/// write lets exactly one of two replaces from the same version through and tells the other;
/// two status handlers racing on one request both finish, and no update is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_status_writers_at_once_never_lose_an_update() {
    let (env, r) = env("gate-7").await;
    let mut a = r.clone();
    a.state = RequestState::Accepted;
    a.version = 2;
    let mut b = r.clone();
    b.state = RequestState::Rejected;
    b.version = 2;
    let (ra, rb) = tokio::join!(env.store.replace(&a, 1), env.store.replace(&b, 1));
    let winner = match (&ra, &rb) {
        (Ok(()), Err(anpr_core::StoreError::Conflict)) => &a,
        (Err(anpr_core::StoreError::Conflict), Ok(())) => &b,
        other => panic!("exactly one conditional write must win: {other:?}"),
    };
    assert_eq!(&env.get().await, winner);

    // The service: "accepted" and "uploading 40 %" handled at once, on fresh requests, many
    // times over so that the writes really race.
    for round in 0..10 {
        let (env, _) = self::env("gate-7").await;
        let (accepted, uploading) = (fixture("accepted.json"), fixture("uploading_40.json"));
        let (ha, hu) = tokio::join!(
            handle(&env.svc, &accepted, 1100),
            handle(&env.svc, &uploading, 1110)
        );
        let (ha, hu) = (ha.unwrap(), hu.unwrap());
        let rec = env.get().await;
        assert_eq!(
            (rec.state, rec.progress),
            (RequestState::Uploading, Some(40)),
            "round {round}: {ha:?} {hu:?}"
        );
        assert!(
            matches!(hu, Handled::Outcome(Outcome::Applied { .. })),
            "round {round}: the newer status is applied: {hu:?}"
        );
        // Every applied change is in the history: the version counts them.
        let applied = [&ha, &hu]
            .iter()
            .filter(|h| matches!(h, Handled::Outcome(Outcome::Applied { .. })))
            .count() as u64;
        assert_eq!(rec.version, 1 + applied, "round {round}: {rec:?}");
        assert_eq!(
            rec.history.len() as u64,
            rec.version,
            "round {round}: {rec:?}"
        );
    }
}
