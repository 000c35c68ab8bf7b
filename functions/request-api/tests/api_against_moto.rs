//! The request API handler, fed real API Gateway HTTP API v2 events, against moto: DynamoDB
//! items and IoT data-plane publishes are read back from the real stand-in.

use anpr_aws::{
    DynamoAuditLog, DynamoCameraRegistry, DynamoPlateReadStore, DynamoRequestStore,
    IotConfigShadows, IotDataPublisher, S3UrlSigner,
};
use anpr_core::model::Camera;
use anpr_core::{CameraConfigs, FileRequests, RequestsConfig};
use anpr_protocol::{CameraId, FileName, FileRequest, RequestId, decode, encode};
use anpr_test_support::moto;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use tower::ServiceExt as _;

struct Api {
    router: axum::Router,
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
    camera: String,
}

/// A fresh table with one registered camera (a unique id per test, so IoT read-backs don't
/// mix), and the API over the real adapters.
async fn api() -> Api {
    let clients = moto::clients();
    let table = moto::fresh_table(&clients.dynamo).await;
    let camera = anpr_test_support::unique("cam").replace('-', "");
    let camera = camera[..camera.len().min(20)].to_owned();
    DynamoCameraRegistry::new(clients.dynamo.clone(), &table)
        .register(&Camera {
            camera_id: CameraId::parse(&camera).unwrap(),
            name: Some("gate".into()),
            registered_at: 1,
            org: Some(anpr_core::OrgId::parse("acme").unwrap()),
            presence: None,
        })
        .await
        .unwrap();
    let router = request_api::app(request_api::Services {
        requests: FileRequests::new(
            DynamoRequestStore::new(clients.dynamo.clone(), &table),
            DynamoCameraRegistry::new(clients.dynamo.clone(), &table),
            IotDataPublisher::new(clients.iot.clone()),
            RequestsConfig::default(),
        ),
        reads: DynamoPlateReadStore::new(clients.dynamo.clone(), &table),
        configs: CameraConfigs::new(
            DynamoCameraRegistry::new(clients.dynamo.clone(), &table),
            IotConfigShadows::new(clients.iot.clone()),
        ),
        audit: DynamoAuditLog::new(clients.dynamo.clone(), &table),
        downloads: request_api::Downloads {
            signer: S3UrlSigner::new(clients.s3.clone(), "anpr-media-api"),
            valid_for_secs: 60,
        },
    });
    Api {
        router,
        dynamo: clients.dynamo,
        table,
        camera,
    }
}

fn fixture(name: &str) -> Value {
    let s = std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    serde_json::from_str(&s).unwrap()
}

/// The POST fixture for `camera` with `body` (raw string) and optional header overrides.
fn post_event(camera: &str, body: &str) -> Value {
    let mut e = fixture("post_file_request.json");
    let path = format!("/cameras/{camera}/file-requests");
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["path"] = json!(path);
    e["pathParameters"]["camera_id"] = json!(camera);
    e["body"] = json!(body);
    e["headers"]["content-length"] = json!(body.len().to_string());
    e
}

impl Api {
    async fn call(&self, event: Value) -> (u16, Value, http::HeaderMap) {
        let req =
            lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway event");
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, body, headers)
    }

    /// Every item of the table (a scan is fine in a test).
    async fn items(&self) -> Vec<std::collections::HashMap<String, AttributeValue>> {
        self.dynamo
            .scan()
            .table_name(&self.table)
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default()
    }

    async fn request_items(&self) -> usize {
        self.items()
            .await
            .iter()
            .filter(|i| i["PK"].as_s().unwrap().starts_with("REQ#"))
            .count()
    }
}

#[tokio::test]
async fn a_file_request_is_recorded_and_published_to_the_camera_with_qos_1() {
    let api = api().await;
    let (status, body, _) = api
        .call(post_event(
            &api.camera,
            r#"{"file":"clips/gate 1.mp4","note":"blue van"}"#,
        ))
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["request_id"].as_str().unwrap().to_owned();
    assert_eq!(body["state"], "requested");
    assert_eq!(body["requested_by"], "3f6c1d2e-7a8b-4c9d-8e0f-1a2b3c4d5e6f");

    // The item, with the keys of the design.
    let item = api
        .dynamo
        .get_item()
        .table_name(&api.table)
        .key("PK", AttributeValue::S(format!("REQ#{id}")))
        .key("SK", AttributeValue::S("REQ".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("request item");
    assert_eq!(
        item["GSI1PK"].as_s().unwrap(),
        &format!("CAMREQ#{}", api.camera)
    );
    assert_eq!(item["GSI1SK"].as_s().unwrap(), &id);
    assert_eq!(item["state"].as_s().unwrap(), "requested");
    assert_eq!(item["file"].as_s().unwrap(), "clips/gate 1.mp4");
    let ttl: u64 = item["ttl"].as_n().unwrap().parse().unwrap();
    let at: u64 = item["requested_at"].as_n().unwrap().parse().unwrap();
    assert_eq!(ttl, at + RequestsConfig::default().retention_secs);

    // The publish, exactly.
    let published = moto::iot_published(&format!("{}/file/request", api.camera));
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].qos, Some(1));
    let expected = encode(&FileRequest {
        id: RequestId::parse(&id).unwrap(),
        file: FileName::parse("clips/gate 1.mp4").unwrap(),
        at,
        exp: at + RequestsConfig::default().request_expiry_secs,
    })
    .unwrap();
    assert_eq!(published[0].payload, expected);
    // The camera side's types parse it.
    let msg: FileRequest = decode(&published[0].payload).unwrap();
    assert_eq!(msg.id.as_str(), id);
}

#[tokio::test]
async fn a_retried_post_with_the_same_idempotency_key_creates_nothing_new() {
    let api = api().await;
    let ev = post_event(&api.camera, r#"{"file":"clips/a.mp4"}"#);
    let (s1, b1, _) = api.call(ev.clone()).await;
    let (s2, b2, h2) = api.call(ev).await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(b1["request_id"], b2["request_id"]);
    assert_eq!(h2.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(api.request_items().await, 1);

    // The same key with another body is a conflict, and writes nothing.
    let (s3, b3, _) = api
        .call(post_event(&api.camera, r#"{"file":"clips/b.mp4"}"#))
        .await;
    assert_eq!(s3, 409, "{b3}");
    assert_eq!(b3["error"]["code"], "idempotency_key_reused");
    assert_eq!(api.request_items().await, 1);
}

#[tokio::test]
async fn an_unknown_camera_gets_404_and_nothing_is_written_or_published() {
    let api = api().await;
    let (status, body, _) = api
        .call(post_event("nosuchcam42", r#"{"file":"a.mp4"}"#))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "camera_not_found");
    assert_eq!(api.request_items().await, 0);
    assert!(moto::iot_published("nosuchcam42/file/request").is_empty());
}

#[tokio::test]
async fn every_malformed_input_gets_a_4xx_and_nothing_is_written() {
    let api = api().await;
    let cam = api.camera.clone();
    let big = format!(r#"{{"file":"{}"}}"#, "a".repeat(20_000));
    let cases: Vec<(&str, Value, u16, Option<&str>)> = vec![
        ("bad json", post_event(&cam, "{\"file\":"), 400, None),
        ("not an object", post_event(&cam, "[1,2]"), 400, None),
        ("missing file", post_event(&cam, "{}"), 400, Some("file")),
        (
            "file not a string",
            post_event(&cam, r#"{"file":42}"#),
            400,
            Some("file"),
        ),
        (
            "note not a string",
            post_event(&cam, r#"{"file":"a","note":{"x":1}}"#),
            400,
            Some("note"),
        ),
        ("oversized body", post_event(&cam, &big), 413, None),
        (
            "dot-dot traversal",
            post_event(&cam, r#"{"file":"../../etc/shadow"}"#),
            400,
            Some("file"),
        ),
        (
            "absolute path",
            post_event(&cam, r#"{"file":"/etc/shadow"}"#),
            400,
            Some("file"),
        ),
        (
            "NUL byte",
            post_event(&cam, r#"{"file":"a\u0000.mp4"}"#),
            400,
            Some("file"),
        ),
        (
            "RTL override",
            post_event(&cam, r#"{"file":"clip\u202e4pm.exe"}"#),
            400,
            Some("file"),
        ),
        (
            "fullwidth dots",
            post_event(&cam, r#"{"file":"\uff0e\uff0e/x"}"#),
            400,
            Some("file"),
        ),
        (
            "zero-width space",
            post_event(&cam, r#"{"file":"a\u200b.mp4"}"#),
            400,
            Some("file"),
        ),
        (
            "bad camera id",
            post_event("cam%2Fother", r#"{"file":"a.mp4"}"#),
            400,
            Some("camera_id"),
        ),
        (
            "note too long",
            post_event(
                &cam,
                &format!(r#"{{"file":"a","note":"{}"}}"#, "n".repeat(501)),
            ),
            400,
            Some("note"),
        ),
    ];
    for (what, ev, want, field) in cases {
        let (status, body, _) = api.call(ev).await;
        assert_eq!(status, want, "{what}: {body}");
        assert_eq!(body["error"]["field"].as_str(), field, "{what}: {body}");
        assert!(body["error"]["message"].is_string(), "{what}");
    }

    let mut no_claims = post_event(&cam, r#"{"file":"a.mp4"}"#);
    no_claims["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    assert_eq!(api.call(no_claims).await.0, 401);

    let mut empty_sub = post_event(&cam, r#"{"file":"a.mp4"}"#);
    empty_sub["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!("");
    assert_eq!(api.call(empty_sub).await.0, 401);

    let mut wrong_type = post_event(&cam, r#"{"file":"a.mp4"}"#);
    wrong_type["headers"]["content-type"] = json!("text/plain");
    assert_eq!(api.call(wrong_type).await.0, 415);

    let mut base64_garbage = post_event(&cam, "////");
    base64_garbage["isBase64Encoded"] = json!(true);
    let (s, _, _) = api.call(base64_garbage).await;
    assert!((400..500).contains(&s), "{s}");

    assert_eq!(api.request_items().await, 0, "nothing written");
    assert!(
        moto::iot_published(&format!("{cam}/file/request")).is_empty(),
        "nothing published"
    );
}

#[tokio::test]
async fn a_request_is_read_back_with_its_history_and_listed_newest_first() {
    let api = api().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut ev = post_event(&api.camera, &format!(r#"{{"file":"clips/{i}.mp4"}}"#));
        ev["headers"]["idempotency-key"] = json!(format!("key-{i}"));
        let (s, b, _) = api.call(ev).await;
        assert_eq!(s, 202);
        ids.push(b["request_id"].as_str().unwrap().to_owned());
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }

    let mut get = fixture("get_file_request.json");
    get["rawPath"] = json!(format!("/file-requests/{}", ids[0]));
    get["requestContext"]["http"]["path"] = get["rawPath"].clone();
    get["pathParameters"]["request_id"] = json!(ids[0]);
    let (s, b, _) = api.call(get.clone()).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["file"], "clips/0.mp4");
    assert_eq!(b["history"][0]["state"], "requested");

    get["rawPath"] = json!("/file-requests/01JDQ2Y7ZK8M3W5T0G9H4N6P2R");
    assert_eq!(api.call(get.clone()).await.0, 404);
    get["rawPath"] = json!("/file-requests/not..valid");
    assert_eq!(api.call(get).await.0, 400);

    let mut list = fixture("list_file_requests.json");
    let path = format!("/cameras/{}/file-requests", api.camera);
    list["rawPath"] = json!(path);
    list["pathParameters"]["camera_id"] = json!(api.camera);
    let mut got = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let q = match &cursor {
            Some(c) => format!("limit=2&cursor={c}"),
            None => "limit=2".into(),
        };
        list["rawQueryString"] = json!(q);
        let (s, b, _) = api.call(list.clone()).await;
        assert_eq!(s, 200, "{b}");
        got.extend(
            b["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["request_id"].as_str().unwrap().to_owned()),
        );
        match b["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(got, ids, "newest first, every request once");

    list["rawQueryString"] = json!("cursor=garbage");
    let (s, b, _) = api.call(list.clone()).await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("cursor")));
    list["rawQueryString"] = json!("limit=abc");
    let (s, b, _) = api.call(list).await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("limit")));
}

/// `post_event` with its own `Idempotency-Key`.
fn keyed(camera: &str, body: &str, key: &str) -> Value {
    let mut e = post_event(camera, body);
    e["headers"]["idempotency-key"] = json!(key);
    e
}

#[tokio::test]
async fn open_requests_behind_a_long_history_count_and_a_retry_at_the_limit_replays() {
    let api = api().await;
    let store = DynamoRequestStore::new(moto::clients().dynamo, &api.table);
    let max = RequestsConfig::default().max_open_per_camera;
    // The camera's open requests first…
    let mut open = Vec::new();
    for i in 0..max {
        let (s, b, _) = api
            .call(keyed(
                &api.camera,
                &format!(r#"{{"file":"clips/o{i}.mp4"}}"#),
                &format!("open-{i}"),
            ))
            .await;
        assert_eq!(s, 202, "{b}");
        open.push(b["request_id"].as_str().unwrap().to_owned());
    }
    // …then 150 newer ones, finished: the open ones are no longer among the newest hundred.
    use anpr_core::ports::RequestStore as _;
    let template = store
        .get(&RequestId::parse(&open[0]).unwrap())
        .await
        .unwrap()
        .unwrap();
    // Ids sort newest last (ULIDs); these sort after every open one.
    let newest = open.iter().max().unwrap().clone();
    for i in 0..150 {
        let mut r = template.clone();
        r.request_id = RequestId::parse(&format!("{newest}z{i:03}")).unwrap();
        r.file = FileName::parse(&format!("clips/done{i}.mp4")).unwrap();
        r.state = anpr_protocol::RequestState::Ready;
        store.create(&r, None).await.unwrap();
    }
    let items = api.request_items().await;
    assert_eq!(items, max as usize + 150);
    let topic = format!("{}/file/request", api.camera);
    let published = moto::iot_published(&topic).len();

    // One more is refused: all ten open ones were counted.
    let (s, b, _) = api
        .call(keyed(&api.camera, r#"{"file":"clips/more.mp4"}"#, "more"))
        .await;
    assert_eq!(s, 429, "{b}");
    assert_eq!(b["error"]["code"], "too_many_open_requests");
    assert_eq!(api.request_items().await, items, "nothing written");
    assert_eq!(moto::iot_published(&topic).len(), published, "nothing sent");

    // A retry of one of the open ones (same key, same body) replays its answer.
    let (s, b, h) = api
        .call(keyed(&api.camera, r#"{"file":"clips/o3.mp4"}"#, "open-3"))
        .await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(b["request_id"], json!(open[3]), "the original request");
    assert_eq!(h.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(api.request_items().await, items, "nothing new written");
    // Still `requested`: published again (the camera drops duplicates by id).
    let sent = moto::iot_published(&topic);
    assert_eq!(sent.len(), published + 1);
    let msg: FileRequest = decode(&sent.last().unwrap().payload).unwrap();
    assert_eq!(msg.id.as_str(), open[3]);

    // The same key with another body is still a conflict, not a way past the limit.
    let (s, b, _) = api
        .call(keyed(
            &api.camera,
            r#"{"file":"clips/other.mp4"}"#,
            "open-3",
        ))
        .await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["error"]["code"], "idempotency_key_reused");
    assert_eq!(api.request_items().await, items);

    // One finishes (the oldest, far behind the finished ones): room for exactly one more.
    let id = RequestId::parse(&open[0]).unwrap();
    let mut done = store.get(&id).await.unwrap().unwrap();
    let v = done.version;
    done.state = anpr_protocol::RequestState::Failed;
    done.version = v + 1;
    store.replace(&done, v).await.unwrap();
    let (s, b, _) = api
        .call(keyed(&api.camera, r#"{"file":"clips/more.mp4"}"#, "more"))
        .await;
    assert_eq!(s, 202, "{b}");
    let (s, b, _) = api
        .call(keyed(&api.camera, r#"{"file":"clips/more2.mp4"}"#, "more2"))
        .await;
    assert_eq!(s, 429, "{b}");
}
