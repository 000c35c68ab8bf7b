//! The whole "video is ready" story, local: a web user's request through the request API
//! handler (a real API Gateway v2 event) → published to the camera over Mosquitto (standing in
//! for IoT Core, the cloud side publishing as `cloud-backend`) → the `anpr-camera` agent (run in
//! this process, its own certificate, persistent session and ACL) receives it on its own topic,
//! reports `accepted`/`uploading`/`uploaded` (through a stand-in for the IoT rule to the
//! file-status handler), gets S3 credentials from the IoT credentials provider stand-in (mutual
//! TLS) and uploads the file to moto's S3 under its upload key, multipart → S3's ObjectCreated
//! event, delivered by moto's bucket notification to an SQS queue and read from there → the
//! upload-completed handler → the notification, read back from moto's IoT data plane → its
//! presigned URL downloads exactly the file on the camera, and `GET /file-requests/{id}` shows
//! the life cycle.

use anpr_aws::{
    AwsClients, DynamoAuditLog, DynamoCameraRegistry, DynamoPlateReadStore, DynamoRequestStore,
    IotConfigShadows, IotDataPublisher, S3UrlSigner,
};
use anpr_core::model::Camera;
use anpr_core::ports::{DevicePublisher, RequestStore};
use anpr_core::status::{StatusConfig, StatusUpdates};
use anpr_core::{CameraConfigs, FileRequests, PublishError, RequestsConfig};
use anpr_protocol::{CameraId, Notification, RequestState, decode, topics};
use anpr_test_support::broker::{Broker, CLOUD_IDENTITY};
use anpr_test_support::creds::CredsServer;
use anpr_test_support::moto;
use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use aws_sdk_s3::types::{Event as S3Event, NotificationConfiguration, QueueConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tower::ServiceExt as _;

/// The IoT data plane's stand-in towards devices: publishes over MQTT to the test broker as the
/// cloud identity.
#[derive(Clone)]
struct BrokerPublisher(AsyncClient);

impl DevicePublisher for BrokerPublisher {
    async fn publish(&self, topic: &str, payload: Vec<u8>, qos: u8) -> Result<(), PublishError> {
        let qos = if qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        self.0
            .publish(topic, qos, false, payload)
            .await
            .map_err(|e| PublishError {
                topic: topic.to_owned(),
                retryable: true,
                source: Box::new(e),
            })
    }
}

/// Polls an event loop in the background, forwarding incoming publishes (topic, payload).
fn pump(mut ev: EventLoop) -> mpsc::UnboundedReceiver<(String, Vec<u8>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic).into_owned();
                    if tx.send((topic, p.payload.to_vec())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    rx
}

/// The media bucket, created in moto with its ObjectCreated events sent to a new SQS queue
/// (moto's bucket notification); returns the queue's URL.
async fn bucket_with_events(
    s3: &aws_sdk_s3::Client,
    sqs: &aws_sdk_sqs::Client,
    bucket: &str,
) -> String {
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    let queue_url = sqs
        .create_queue()
        .queue_name(anpr_test_support::unique("uploads"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(
                    QueueConfiguration::builder()
                        .id("anpr-upload-completed")
                        .queue_arn(queue_arn)
                        .events(S3Event::from("s3:ObjectCreated:*"))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    queue_url
}

async fn connect_and_subscribe(
    opts: rumqttc::v5::MqttOptions,
    filter: &str,
) -> (AsyncClient, mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
    let (client, mut ev) = AsyncClient::new(opts, 16);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    // Wait for the SUBACK before anything is published.
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => panic!("connecting to the broker: {other:?}"),
        }
    }
    (client, pump(ev))
}

async fn recv(
    rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    what: &str,
) -> (String, Vec<u8>) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no {what} within 10 s"))
        .unwrap_or_else(|| panic!("connection closed waiting for {what}"))
}

fn api_event(name: &str) -> Value {
    let path = format!(
        "{}/../functions/request-api/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn call(router: &axum::Router, event: Value) -> (u16, Value) {
    let req = lambda_http::request::from_str(&event.to_string()).unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// The request API as the Lambda serves it, over moto's table, IoT data plane and `bucket`,
/// publishing file requests to the cameras through `devices` (the broker).
fn api_over_moto(
    clients: &AwsClients,
    table: &str,
    bucket: &str,
    devices: BrokerPublisher,
    config: RequestsConfig,
) -> axum::Router {
    request_api::app(request_api::Services {
        requests: FileRequests::new(
            DynamoRequestStore::new(clients.dynamo.clone(), table),
            DynamoCameraRegistry::new(clients.dynamo.clone(), table),
            devices,
            config,
        ),
        reads: DynamoPlateReadStore::new(clients.dynamo.clone(), table),
        configs: CameraConfigs::new(
            DynamoCameraRegistry::new(clients.dynamo.clone(), table),
            IotConfigShadows::new(clients.iot.clone()),
        ),
        audit: DynamoAuditLog::new(clients.dynamo.clone(), table),
        downloads: request_api::Downloads {
            signer: S3UrlSigner::new(clients.s3.clone(), bucket),
            valid_for_secs: 120,
        },
    })
}

#[tokio::test]
async fn a_requested_file_uploaded_by_the_camera_is_announced_with_a_url_that_downloads_it() {
    // --- the cloud's stand-ins: moto (DynamoDB, S3, SQS, IoT data plane) and Mosquitto.
    let clients = moto::clients();
    let sqs = aws_sdk_sqs::Client::new(&moto::sdk_config());
    let table = moto::fresh_table(&clients.dynamo).await;
    let bucket = anpr_test_support::unique("media");
    let user = anpr_test_support::unique("user");
    let camera = "gate-e2e";
    DynamoCameraRegistry::new(clients.dynamo.clone(), &table)
        .register(&Camera {
            camera_id: CameraId::parse(camera).unwrap(),
            name: Some("gate".into()),
            registered_at: 1,
            org: Some(anpr_core::OrgId::parse("acme").unwrap()),
            presence: None,
        })
        .await
        .unwrap();
    let queue_url = bucket_with_events(&clients.s3, &sqs, &bucket).await;

    let broker = Broker::start();
    let cloud_id = broker.identity(CLOUD_IDENTITY);
    let cam_id = broker.identity(camera);

    // --- the cloud: request API publishing to devices through the broker; the file-status
    // rule's stand-in subscribed to `+/file/status`; upload-completed and file-status
    // services publishing notifications through moto's IoT data plane.
    let (cloud, mut rule_rx) =
        connect_and_subscribe(broker.v5_options(&cloud_id), "+/file/status").await;
    let router = api_over_moto(
        &clients,
        &table,
        &bucket,
        BrokerPublisher(cloud),
        RequestsConfig::default(),
    );
    let statuses = StatusUpdates::new(
        DynamoRequestStore::new(clients.dynamo.clone(), &table),
        IotDataPublisher::new(clients.iot.clone()),
        S3UrlSigner::new(clients.s3.clone(), &bucket),
        StatusConfig {
            download_url_secs: 120,
        },
    );

    // --- the camera: the real agent, with its media directory, state directory, certificate
    // and the IoT credentials provider stand-in; uploads go multipart (2 parts of 5 MiB).
    let media = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let file = "clips/gate 1 été.mp4";
    let mut x: u32 = 0x9E37_79B9;
    let video: Vec<u8> = (0..6 * 1024 * 1024 + 12_345)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    std::fs::create_dir_all(media.path().join("clips")).unwrap();
    std::fs::write(media.path().join(file), &video).unwrap();
    let creds = CredsServer::start(&broker, "anpr-camera");
    let ca = broker.pki.ca_path();
    let moto_url = moto::url();
    let local = anpr_test_support::agent_config::AgentConfig {
        camera,
        media: media.path(),
        state: state.path(),
        mqtt_port: broker.port,
        ca: &ca,
        cert: &cam_id.cert_path,
        key: &cam_id.key_path,
        bucket: &bucket,
        s3_endpoint: &moto_url,
        creds_port: creds.port,
    };
    let agent_config = local
        .builder()
        .mqtt(anpr_camera::config::MqttSection {
            reconnect_initial_ms: 200,
            reconnect_max_secs: 2,
            ..local.mqtt()
        })
        .build()
        .expect("the camera config is valid");
    let (stop_agent, stop_rx) = tokio::sync::watch::channel(false);
    let agent = tokio::spawn(
        anpr_camera::agent::Agent::builder(agent_config)
            .run(anpr_camera::agent::Shutdown::new(stop_rx)),
    );
    // The agent's first connect subscribes; its presence message says it is online.
    let mut watch_opts = broker.v5_options(&cloud_id);
    watch_opts.set_client_id(anpr_test_support::unique("presence-watch"));
    let (_watch, mut presence_rx) = connect_and_subscribe(
        watch_opts,
        &topics::presence(&CameraId::parse(camera).unwrap()),
    )
    .await;
    loop {
        let (_, payload) = recv(&mut presence_rx, "camera online").await;
        if decode::<anpr_protocol::Presence>(&payload).is_ok_and(|p| p.on) {
            break;
        }
    }

    // The IoT rule's stand-in, in the background: `SELECT topic(1) AS camera_id, topic() AS
    // mqtt_topic, encode(*, 'base64') AS payload FROM '+/file/status'` → the file-status handler.
    let statuses = std::sync::Arc::new(statuses);
    let applied = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let rule = {
        let (statuses, applied) = (statuses.clone(), applied.clone());
        tokio::spawn(async move {
            while let Some((topic, payload)) = rule_rx.recv().await {
                let rule_event = file_status::rule_event(&topic, &payload);
                let handled =
                    file_status::handle(&*statuses, &rule_event, anpr_protocol::clock::now_secs())
                        .await
                        .unwrap();
                let status: Value = serde_json::from_slice(&payload).unwrap();
                applied
                    .lock()
                    .unwrap()
                    .push(format!("{} {handled:?}", status["s"]));
            }
        })
    };

    // 1. The web user asks for a file.
    let mut post = api_event("post_file_request.json");
    let path = format!("/cameras/{camera}/file-requests");
    post["rawPath"] = json!(path);
    post["requestContext"]["http"]["path"] = json!(path);
    post["pathParameters"]["camera_id"] = json!(camera);
    post["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(user);
    post["requestContext"]["authorizer"]["jwt"]["claims"]["custom:org"] = json!("acme");
    post["requestContext"]["authorizer"]["jwt"]["claims"]["cognito:groups"] = json!("[operator]");
    let body = json!({ "file": file }).to_string();
    post["headers"]["content-length"] = json!(body.len().to_string());
    post["headers"]
        .as_object_mut()
        .unwrap()
        .remove("idempotency-key");
    post["body"] = json!(body);
    let (status, created) = call(&router, post).await;
    assert_eq!(status, 202, "{created}");
    let request_id = created["request_id"].as_str().unwrap().to_owned();

    // 2. The agent receives it over MQTT, accepts it, uploads it: nothing else to do here.

    // 3. S3's event, from the queue, to the upload-completed handler.
    // moto queues every event of an upload during the S3 call that completes it, so once one is
    // applied the rest are in the queue: drained until a receive comes back empty.
    let mut summary = upload_completed::Summary::default();
    let mut completed_at_ms = None;
    let mut sequencers = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "no ObjectCreated event in the queue"
        );
        let out = sqs
            .receive_message()
            .queue_url(&queue_url)
            .wait_time_seconds(1)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() && summary.applied > 0 {
            break;
        }
        for m in messages {
            let event: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            if let Some(t) = event["Records"][0]["eventTime"].as_str() {
                completed_at_ms = completed_at_ms.or(Some(iso_ms(t)));
            }
            // (S3's `s3:TestEvent` on configuring the bucket has no records.)
            for r in event["Records"].as_array().into_iter().flatten() {
                sequencers.push(r["s3"]["object"]["sequencer"].as_str().map(str::to_owned));
            }
            let s = upload_completed::handle(&*statuses, &bucket, &event)
                .await
                .unwrap();
            summary.applied += s.applied;
            summary.duplicates += s.duplicates;
            summary.skipped += s.skipped;
            sqs.delete_message()
                .queue_url(&queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    let notified_at_ms = unix_ms();
    // Like S3's, every event names its object write; a second delivery of one is a duplicate.
    assert!(
        sequencers
            .iter()
            .all(|s| s.as_deref().is_some_and(|s| !s.is_empty())),
        "every S3 event carries a sequencer: {sequencers:?}"
    );
    assert!(
        sequencers.windows(2).all(|w| w[0] == w[1]),
        "one object written: {sequencers:?}"
    );
    assert_eq!(summary.applied, 1, "{sequencers:?}");
    assert_eq!(summary.duplicates, sequencers.len() - 1, "{sequencers:?}");
    assert_eq!(summary.skipped, 0, "{sequencers:?}");
    let completed_at_ms = completed_at_ms.expect("the S3 event carries its eventTime");
    eprintln!(
        "measured: upload completed (S3 eventTime) -> notification published: {} ms",
        notified_at_ms.saturating_sub(completed_at_ms)
    );

    // 4. The web user's notifications: accepted, then ready with a working URL.
    let notes: Vec<Notification> = moto::iot_published(&topics::org_notifications("acme"))
        .into_iter()
        .map(|p| decode(&p.payload).unwrap())
        .filter(|n: &Notification| n.request_id.as_str() == request_id)
        .collect();
    let states: Vec<_> = notes.iter().map(|n| n.state).collect();
    // In order, never backwards. moto delivers two ObjectCreated events for one multipart
    // completion (`Put` and `CompleteMultipartUpload`) with one sequencer
    // (scripts/moto_server.py): the second is a duplicate, which notifies `ready` again
    // (notifications are at least once, docs/upload-completed.md) and changes nothing.
    let rank = |s: &RequestState| match s {
        RequestState::Requested => 0,
        RequestState::Accepted => 1,
        RequestState::Uploading => 2,
        _ => 3,
    };
    assert_eq!(states.first(), Some(&RequestState::Accepted), "{states:?}");
    assert!(
        states.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])),
        "{states:?}"
    );
    assert!(
        states
            .iter()
            .all(|s| rank(s) < 3 || *s == RequestState::Ready),
        "{states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| **s == RequestState::Ready).count(),
        1 + summary.duplicates,
        "{states:?}"
    );
    let ready = notes.last().unwrap();
    assert_eq!(ready.state, RequestState::Ready, "{states:?}");
    assert_eq!(ready.camera_id.as_str(), camera);
    assert_eq!(ready.file, file);
    assert_eq!(ready.size, Some(video.len() as u64));
    let url = ready.url.as_deref().unwrap();
    assert!(url.contains("X-Amz-Expires=120"), "{url}");
    let got = reqwest::get(url).await.unwrap();
    assert_eq!(got.status(), 200);
    assert!(
        got.bytes().await.unwrap().to_vec() == video,
        "the URL serves exactly the file on the camera"
    );

    // 5. The API shows the life cycle.
    let mut get = api_event("get_file_request.json");
    let path = format!("/file-requests/{request_id}");
    get["rawPath"] = json!(path);
    get["requestContext"]["http"]["path"] = json!(path);
    get["pathParameters"]["request_id"] = json!(request_id);
    let (status, view) = call(&router, get).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"], "ready");
    assert_eq!(view["size"], json!(video.len()));
    let history: Vec<&str> = view["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap())
        .collect();
    assert_eq!(history.first(), Some(&"requested"), "{history:?}");
    assert_eq!(history.get(1), Some(&"accepted"), "{history:?}");
    assert_eq!(history.last(), Some(&"ready"), "{history:?}");
    assert!(
        history
            .iter()
            .all(|h| ["requested", "accepted", "uploading", "ready"].contains(h)),
        "{history:?}"
    );

    // The camera said so too, and the rule stand-in applied each of its statuses.
    let _ = stop_agent.send(true);
    tokio::time::timeout(Duration::from_secs(60), agent)
        .await
        .expect("the agent stops")
        .unwrap()
        .unwrap();
    assert!(
        creds.granted() >= 1,
        "S3 credentials came from the provider"
    );
    // A panic in the rule stand-in (a status it could not decode or apply) fails the test
    // here instead of vanishing with the aborted task.
    if rule.is_finished() {
        rule.await.expect("the rule stand-in failed");
    } else {
        rule.abort();
    }
    let applied = applied.lock().unwrap().clone();
    assert!(
        applied.iter().any(|a| a.starts_with("\"accepted\"")),
        "{applied:?}"
    );
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `2026-11-25T16:00:00.123Z` (RFC 3339, as S3 events write it) → Unix milliseconds.
fn iso_ms(t: &str) -> u64 {
    let parsed = DateTime::from_str(t, DateTimeFormat::DateTime)
        .unwrap_or_else(|e| panic!("S3 eventTime {t:?}: {e}"));
    parsed
        .to_millis()
        .unwrap_or_else(|e| panic!("S3 eventTime {t:?}: {e}")) as u64
}

#[test]
fn s3_event_times_convert_to_unix_milliseconds() {
    assert_eq!(iso_ms("1970-01-01T00:00:00.000Z"), 0);
    assert_eq!(iso_ms("2026-11-25T16:00:00.123Z"), 1_795_622_400_123);
    assert_eq!(iso_ms("2000-03-01T00:00:01Z"), 951_868_801_000);
}

/// The IoT data plane towards everyone: web notifications to moto's IoT data plane (read back
/// with `moto::iot_published`), camera topics through the broker.
#[derive(Clone)]
struct DataPlane {
    web: IotDataPublisher,
    devices: BrokerPublisher,
}

impl DevicePublisher for DataPlane {
    async fn publish(&self, topic: &str, payload: Vec<u8>, qos: u8) -> Result<(), PublishError> {
        if topic.starts_with(&format!("{}/", topics::WEB_PREFIX)) {
            self.web.publish(topic, payload, qos).await
        } else {
            self.devices.publish(topic, payload, qos).await
        }
    }
}

/// Waits for the camera's retained presence to say `on`.
async fn wait_online(rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
    loop {
        let (_, payload) = recv(rx, "camera online").await;
        if decode::<anpr_protocol::Presence>(&payload).is_ok_and(|p| p.on) {
            return;
        }
    }
}

/// A camera offline longer than its broker session: the requests made meanwhile were
/// published into nothing (no session, no subscription). One expires while the camera is away:
/// the API shows it `expired`, the sweep writes it and notifies the user. On reconnect the
/// broker has no session, the camera sends its sync message, the file-status handler (through
/// the sync rule's stand-in) publishes the open request again — not the expired one, which is
/// never uploaded — and the file becomes `ready`. A later sync publishes nothing (the request
/// is done), and the request published once more is answered from the camera's journal with
/// its final status, not uploaded again.
#[tokio::test]
async fn a_request_made_while_the_cameras_session_expired_is_recovered_when_it_reconnects() {
    let clients = moto::clients();
    let sqs = aws_sdk_sqs::Client::new(&moto::sdk_config());
    let table = moto::fresh_table(&clients.dynamo).await;
    let bucket = anpr_test_support::unique("media");
    let user = anpr_test_support::unique("user");
    let camera = "gate-sync";
    let cam = CameraId::parse(camera).unwrap();
    DynamoCameraRegistry::new(clients.dynamo.clone(), &table)
        .register(&Camera {
            camera_id: cam.clone(),
            name: None,
            registered_at: 1,
            org: Some(anpr_core::OrgId::parse("acme").unwrap()),
            presence: None,
        })
        .await
        .unwrap();
    let queue_url = bucket_with_events(&clients.s3, &sqs, &bucket).await;
    let broker = Broker::start();
    let cloud_id = broker.identity(CLOUD_IDENTITY);
    let cam_id = broker.identity(camera);

    // The cloud: the request API, and the rules' stand-in on `+/file/+` (statuses and syncs;
    // the requests the cloud itself publishes there are not for it).
    let (cloud, mut rule_rx) =
        connect_and_subscribe(broker.v5_options(&cloud_id), "+/file/+").await;
    let router = api_over_moto(
        &clients,
        &table,
        &bucket,
        BrokerPublisher(cloud.clone()),
        RequestsConfig::default(),
    );
    let statuses = std::sync::Arc::new(StatusUpdates::new(
        DynamoRequestStore::new(clients.dynamo.clone(), &table),
        DataPlane {
            web: IotDataPublisher::new(clients.iot.clone()),
            devices: BrokerPublisher(cloud.clone()),
        },
        S3UrlSigner::new(clients.s3.clone(), &bucket),
        StatusConfig::default(),
    ));
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<(String, String, Instant)>();
    let rule = {
        let statuses = statuses.clone();
        tokio::spawn(async move {
            while let Some((topic, payload)) = rule_rx.recv().await {
                let Ok((_, rest)) = topics::parse_camera_topic(&topic) else {
                    continue;
                };
                // Each rule's SQL: the status rule passes the topic and the message opaque, the
                // sync rule the topic only.
                if rest != topics::FILE_STATUS && rest != topics::FILE_SYNC {
                    continue;
                }
                let event = file_status::rule_event(&topic, &payload);
                let handled =
                    file_status::handle(&*statuses, &event, anpr_protocol::clock::now_secs())
                        .await
                        .unwrap();
                let what = match rest {
                    topics::FILE_SYNC => format!("sync {handled:?}"),
                    _ => serde_json::from_slice::<Value>(&payload).unwrap()["s"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                };
                let _ = seen_tx.send((topic, what, Instant::now()));
            }
        })
    };
    let mut watch_opts = broker.v5_options(&cloud_id);
    watch_opts.set_client_id(anpr_test_support::unique("presence-watch"));
    let (_watch, mut presence_rx) =
        connect_and_subscribe(watch_opts, &topics::presence(&cam)).await;

    // The camera: a session that expires one second after it goes offline.
    let media = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let file = "clips/while away.mp4";
    let video: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::create_dir_all(media.path().join("clips")).unwrap();
    std::fs::write(media.path().join(file), &video).unwrap();
    let creds = CredsServer::start(&broker, "anpr-camera");
    let ca = broker.pki.ca_path();
    let moto_url = moto::url();
    let local = anpr_test_support::agent_config::AgentConfig {
        camera,
        media: media.path(),
        state: state.path(),
        mqtt_port: broker.port,
        ca: &ca,
        cert: &cam_id.cert_path,
        key: &cam_id.key_path,
        bucket: &bucket,
        s3_endpoint: &moto_url,
        creds_port: creds.port,
    };
    let agent_config = local
        .builder()
        .mqtt(anpr_camera::config::MqttSection {
            reconnect_initial_ms: 200,
            reconnect_max_secs: 2,
            session_expiry_secs: 1,
            ..local.mqtt()
        })
        .build()
        .expect("the camera config is valid");
    let run = |cfg: anpr_camera::Config| {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        (
            stop,
            tokio::spawn(
                anpr_camera::agent::Agent::builder(cfg)
                    .run(anpr_camera::agent::Shutdown::new(stop_rx)),
            ),
        )
    };
    let stop_agent =
        |stop: tokio::sync::watch::Sender<bool>,
         agent: tokio::task::JoinHandle<Result<(), anpr_camera::agent::AgentError>>| async move {
            let _ = stop.send(true);
            tokio::time::timeout(Duration::from_secs(60), agent)
                .await
                .expect("the agent stops")
                .unwrap()
                .unwrap();
        };

    // 1. The camera connects once (its session is made), then goes offline, and its session
    //    expires on the broker.
    let (stop, agent) = run(agent_config.clone());
    wait_online(&mut presence_rx).await;
    // Its first session was new too: it synced, with nothing open.
    let (_, first, _) = tokio::time::timeout(Duration::from_secs(10), seen.recv())
        .await
        .expect("a sync on the first session")
        .unwrap();
    assert_eq!(first, "sync Resent(0)");
    stop_agent(stop, agent).await;

    // 2. While it is away, a request that expires after a second (an API with a 1 s expiry),
    //    then, once its session is gone, one that does not: both published into nothing.
    let post = |file: &str| {
        let mut post = api_event("post_file_request.json");
        let path = format!("/cameras/{camera}/file-requests");
        post["rawPath"] = json!(path);
        post["requestContext"]["http"]["path"] = json!(path);
        post["pathParameters"]["camera_id"] = json!(camera);
        post["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(user);
        post["requestContext"]["authorizer"]["jwt"]["claims"]["custom:org"] = json!("acme");
        post["requestContext"]["authorizer"]["jwt"]["claims"]["cognito:groups"] =
            json!("[operator]");
        let body = json!({ "file": file }).to_string();
        post["headers"]["content-length"] = json!(body.len().to_string());
        post["headers"]
            .as_object_mut()
            .unwrap()
            .remove("idempotency-key");
        post["body"] = json!(body);
        post
    };
    let short_lived = api_over_moto(
        &clients,
        &table,
        &bucket,
        BrokerPublisher(cloud.clone()),
        RequestsConfig {
            request_expiry_secs: 1,
            ..RequestsConfig::default()
        },
    );
    let (status, created) = call(&short_lived, post(file)).await;
    assert_eq!(status, 202, "{created}");
    let stale_id = created["request_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, created) = call(&router, post(file)).await;
    assert_eq!(status, 202, "{created}");
    let request_id = created["request_id"].as_str().unwrap().to_owned();
    let get = |id: &str| {
        let mut get = api_event("get_file_request.json");
        let path = format!("/file-requests/{id}");
        get["rawPath"] = json!(path);
        get["requestContext"]["http"]["path"] = json!(path);
        get["pathParameters"]["request_id"] = json!(id);
        get["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(user);
        get["requestContext"]["authorizer"]["jwt"]["claims"]["custom:org"] = json!("acme");
        get["requestContext"]["authorizer"]["jwt"]["claims"]["cognito:groups"] = json!("[viewer]");
        get
    };
    // Past its deadline the API already says `expired`; the sweep writes it and tells the
    // user.
    let (_, view) = call(&router, get(&stale_id)).await;
    assert_eq!(view["state"], "expired", "{view}");
    let sweep: Value = serde_json::from_str(file_status::SWEEP_INPUT).unwrap();
    let swept = file_status::handle(&*statuses, &sweep, anpr_protocol::clock::now_secs())
        .await
        .unwrap();
    assert_eq!(swept, file_status::Handled::Expired(1));
    let stored = statuses
        .store()
        .get(&anpr_protocol::RequestId::parse(&stale_id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, RequestState::Expired);
    let told: Vec<Notification> = moto::iot_published(&topics::org_notifications("acme"))
        .into_iter()
        .map(|p| decode(&p.payload).unwrap())
        .filter(|n: &Notification| n.request_id.as_str() == stale_id)
        .collect();
    assert_eq!(
        told.iter().map(|n| n.state).collect::<Vec<_>>(),
        vec![RequestState::Expired]
    );

    // 3. The camera comes back: no session on the broker; it syncs, gets the request again,
    //    accepts and uploads it.
    let (stop, agent) = run(agent_config.clone());
    wait_online(&mut presence_rx).await;
    let online = Instant::now();
    let mut trail = Vec::new();
    let accepted_at = loop {
        let (topic, what, at) = tokio::time::timeout(Duration::from_secs(20), seen.recv())
            .await
            .unwrap_or_else(|_| panic!("the request never reached the camera: {trail:?}"))
            .unwrap();
        trail.push(format!("{topic} {what}"));
        if what == "accepted" {
            break at;
        }
    };
    assert_eq!(
        trail.first().map(String::as_str),
        Some("gate-sync/file/sync sync Resent(1)"),
        "{trail:?}"
    );
    eprintln!(
        "measured: reconnect without a session (presence seen) -> recovered request accepted (upload starts): {} ms",
        accepted_at.saturating_duration_since(online).as_millis()
    );

    // 4. S3's event makes it ready.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut applied = 0;
    while applied == 0 {
        assert!(Instant::now() < deadline, "no ObjectCreated event");
        applied += take_upload_events(&sqs, &queue_url, &*statuses, &bucket)
            .await
            .1;
    }
    let (status, view) = call(&router, get(&request_id)).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"], "ready", "{view}");
    assert_eq!(view["size"], json!(video.len()));
    // The expired request was never sent again, so never uploaded.
    let stale_objects = clients
        .s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(format!("media/{camera}/{stale_id}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale_objects.key_count(), Some(0));

    // 5. Done is done: a later sync publishes nothing; the request published once more is
    //    answered `uploaded` from the journal, and nothing is uploaded again.
    assert_eq!(
        statuses
            .resend_open(&cam, anpr_protocol::clock::now_secs())
            .await
            .unwrap(),
        0
    );
    let again = statuses
        .store()
        .get(&anpr_protocol::RequestId::parse(&request_id).unwrap())
        .await
        .unwrap()
        .expect("the request is stored");
    cloud
        .publish(
            topics::file_request(&cam),
            QoS::AtLeastOnce,
            false,
            anpr_protocol::encode(&again.message()).unwrap(),
        )
        .await
        .unwrap();
    loop {
        let (_, what, _) = tokio::time::timeout(Duration::from_secs(20), seen.recv())
            .await
            .expect("the repeated request is answered")
            .unwrap();
        if what == "uploaded" {
            break;
        }
        assert_ne!(what, "accepted", "the journal knew the request");
    }
    assert_eq!(
        take_upload_events(&sqs, &queue_url, &*statuses, &bucket)
            .await
            .0,
        0,
        "uploaded once only (one PUT, one event, taken above)"
    );
    stop_agent(stop, agent).await;
    rule.abort();
}

/// Feeds the ObjectCreated events waiting in the queue (one long poll of a second) to the
/// upload-completed handler; returns how many events came and how many applied.
async fn take_upload_events<P: DevicePublisher>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    statuses: &StatusUpdates<DynamoRequestStore, P, S3UrlSigner>,
    bucket: &str,
) -> (usize, usize) {
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .wait_time_seconds(1)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let (mut events, mut applied) = (0, 0);
    for m in out.messages.unwrap_or_default() {
        events += 1;
        let event: Value = serde_json::from_str(m.body().unwrap()).unwrap();
        applied += upload_completed::handle(statuses, bucket, &event)
            .await
            .unwrap()
            .applied;
        sqs.delete_message()
            .queue_url(queue_url)
            .receipt_handle(m.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
    (events, applied)
}
