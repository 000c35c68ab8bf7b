//! The configuration routes, fed real API Gateway events, against moto's IoT data plane: the
//! desired state is written with UpdateThingShadow to the named shadow `config`, and moto
//! computes the pending delta.

mod common;

use anpr_aws::{DynamoCameraRegistry, IotConfigShadows};
use anpr_core::CameraConfigs;
use anpr_core::model::Camera;
use anpr_protocol::CameraId;
use anpr_test_support::moto;
use aws_sdk_iotdataplane::primitives::Blob;
use serde_json::{Value, json};

struct Api {
    router: axum::Router,
    iot: aws_sdk_iotdataplane::Client,
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
    camera: String,
}

async fn api() -> Api {
    let clients = moto::clients();
    let table = moto::fresh_table(&clients.dynamo).await;
    let camera = anpr_test_support::unique("cfg").replace('-', "");
    let camera = camera[..camera.len().min(20)].to_owned();
    DynamoCameraRegistry::new(clients.dynamo.clone(), &table)
        .register(&Camera {
            camera_id: CameraId::parse(&camera).unwrap(),
            name: None,
            registered_at: 1,
            org: Some(anpr_core::OrgId::parse("acme").unwrap()),
            presence: None,
        })
        .await
        .unwrap();
    moto::create_thing(&camera).await;
    let configs = CameraConfigs::new(
        DynamoCameraRegistry::new(clients.dynamo.clone(), &table),
        IotConfigShadows::new(clients.iot.clone()),
    );
    Api {
        router: request_api::config::routes(
            configs,
            anpr_aws::DynamoAuditLog::new(clients.dynamo.clone(), &table),
        ),
        iot: clients.iot,
        dynamo: clients.dynamo,
        table,
        camera,
    }
}

fn event(method: &str, camera: &str, body: Option<&str>, if_match: Option<&str>) -> Value {
    let path = format!("/cameras/{camera}/config");
    let fixture = std::fs::read_to_string(format!(
        "{}/tests/fixtures/post_file_request.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut e: Value = serde_json::from_str(&fixture).unwrap();
    e["rawPath"] = json!(path);
    e["routeKey"] = json!(format!("{method} /cameras/{{camera_id}}/config"));
    e["requestContext"]["http"]["path"] = json!(path);
    e["requestContext"]["http"]["method"] = json!(method);
    e["pathParameters"]["camera_id"] = json!(camera);
    match body {
        Some(b) => {
            e["body"] = json!(b);
            e["headers"]["content-length"] = json!(b.len().to_string());
        }
        None => {
            e["body"] = Value::Null;
            e["headers"]["content-length"] = json!("0");
        }
    }
    if let Some(v) = if_match {
        e["headers"]["if-match"] = json!(v);
    }
    e
}

impl Api {
    async fn call(&self, event: Value) -> (u16, Value) {
        common::call(&self.router, event).await
    }

    async fn put(&self, body: &str, if_match: Option<&str>) -> (u16, Value) {
        self.call(event("PUT", &self.camera, Some(body), if_match))
            .await
    }

    async fn get(&self) -> (u16, Value) {
        self.call(event("GET", &self.camera, None, None)).await
    }

    /// What the camera does: reports through UpdateThingShadow.
    async fn report(&self, reported: Value) {
        let body = json!({"state": {"reported": reported}}).to_string();
        self.iot
            .update_thing_shadow()
            .thing_name(&self.camera)
            .shadow_name("config")
            .payload(Blob::new(body))
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_camera_without_a_shadow_has_an_empty_configuration() {
    let api = api().await;
    let (status, body) = api.get().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 0);
    assert_eq!(body["desired"], json!({}));
    assert_eq!(body["pending"], json!({}));
}

#[tokio::test]
async fn a_partial_update_writes_desired_and_shows_it_pending_until_reported() {
    let api = api().await;
    let (status, body) = api
        .put(r#"{"keep_alive_secs":600,"recognizer_region":"eu"}"#, None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["pending"],
        json!({"keep_alive_secs":600,"recognizer_region":"eu"})
    );
    let (_, body) = api.put(r#"{"upload_max_bytes_per_sec":50000}"#, None).await;
    assert_eq!(
        body["desired"],
        json!({"keep_alive_secs":600,"recognizer_region":"eu","upload_max_bytes_per_sec":50000}),
        "the second update kept the first's settings"
    );
    api.report(
        json!({"keep_alive_secs":600,"recognizer_region":"eu","health_interval_secs":21600}),
    )
    .await;
    let (status, body) = api.get().await;
    assert_eq!(status, 200);
    assert_eq!(body["pending"], json!({"upload_max_bytes_per_sec":50000}));
    assert_eq!(body["reported"]["health_interval_secs"], 21600);
}

#[tokio::test]
async fn an_invalid_setting_is_refused_with_400_naming_it_and_nothing_is_written() {
    let api = api().await;
    for (body, named) in [
        (r#"{"keep_alive_secs":5}"#, "keep_alive_secs"),
        (r#"{"mqtt_port":"8883"}"#, "mqtt_port"),
        (r#"{"certificate":"x"}"#, "certificate"),
        (r#"{"recognizer_region":"mars"}"#, "recognizer_region"),
    ] {
        let (status, resp) = api.put(body, None).await;
        assert_eq!(status, 400, "{body}: {resp}");
        assert!(
            resp["error"]["message"].as_str().unwrap().contains(named),
            "{body}: {resp}"
        );
    }
    let (status, resp) = api.put("[1,2]", None).await;
    assert_eq!(status, 400, "{resp}");
    let (_, body) = api.get().await;
    assert_eq!(body["version"], 0, "no shadow was written: {body}");
}

#[tokio::test]
async fn a_conditional_update_on_a_stale_version_is_a_409_conflict() {
    let api = api().await;
    let (_, first) = api.put(r#"{"health_interval_secs":600}"#, None).await;
    let v = first["version"].as_u64().unwrap();
    let (status, _) = api
        .put(r#"{"health_interval_secs":900}"#, Some(&format!("\"{v}\"")))
        .await;
    assert_eq!(status, 200, "the current version is accepted");
    let (status, body) = api
        .put(r#"{"health_interval_secs":300}"#, Some(&format!("\"{v}\"")))
        .await;
    assert_eq!(status, 409, "{body}");
    let (_, body) = api.get().await;
    assert_eq!(body["desired"]["health_interval_secs"], 900);
    let (status, body) = api
        .put(r#"{"health_interval_secs":300}"#, Some("soon"))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "If-Match");
}

#[tokio::test]
async fn a_camera_error_is_shown_apart_from_the_reported_settings() {
    let api = api().await;
    api.put(r#"{"mqtt_port":9999}"#, None).await;
    api.report(json!({"mqtt_port":8883,"config_error":{"version":1,"setting":"mqtt_port","reason":"no connection within 300 s","rolled_back":true}}))
        .await;
    let (_, body) = api.get().await;
    assert_eq!(body["reported"], json!({"mqtt_port":8883}));
    assert_eq!(body["error"]["rolled_back"], true);
    assert_eq!(body["pending"], json!({"mqtt_port":9999}));
}

#[tokio::test]
async fn an_unregistered_camera_is_a_404() {
    let api = api().await;
    let (status, body) = api
        .call(event(
            "PUT",
            "nosuchcam",
            Some(r#"{"keep_alive_secs":600}"#),
            None,
        ))
        .await;
    assert_eq!(status, 404, "{body}");
}

impl Api {
    /// The registry item's time of the last connection change.
    async fn connection_changed_at(&self) -> Option<u64> {
        let item = self
            .dynamo
            .get_item()
            .table_name(&self.table)
            .set_key(Some(anpr_aws::dynamo::camera_key(
                &CameraId::parse(&self.camera).unwrap(),
            )))
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
        item.get(anpr_aws::dynamo::CONNECTION_CHANGED_AT)
            .map(|v| v.as_n().unwrap().parse().unwrap())
    }

    /// Moves the last connection change `secs` into the past (time passing, for the bound).
    async fn age_connection_change(&self, secs: u64) {
        let t = self.connection_changed_at().await.unwrap() - secs;
        self.dynamo
            .update_item()
            .table_name(&self.table)
            .set_key(Some(anpr_aws::dynamo::camera_key(
                &CameraId::parse(&self.camera).unwrap(),
            )))
            .update_expression("SET #t = :t")
            .expression_attribute_names("#t", anpr_aws::dynamo::CONNECTION_CHANGED_AT)
            .expression_attribute_values(
                ":t",
                aws_sdk_dynamodb::types::AttributeValue::N(t.to_string()),
            )
            .send()
            .await
            .unwrap();
    }

    /// The audit records of configuration changes, oldest first: (status, error code, asked).
    async fn audited(&self) -> Vec<(u64, Option<String>, Value)> {
        use anpr_core::audit::AuditLog as _;
        let log = anpr_aws::DynamoAuditLog::new(self.dynamo.clone(), &self.table);
        let page = log
            .list(&anpr_core::OrgId::parse("acme").unwrap(), 100, None)
            .await
            .unwrap();
        page.items
            .into_iter()
            .rev()
            .map(|r| (u64::from(r.status), r.error, r.asked))
            .collect()
    }
}

#[tokio::test]
async fn connection_settings_change_at_most_once_an_hour_and_a_refusal_is_audited() {
    let hour = anpr_protocol::config::MIN_CONNECTION_CHANGE_INTERVAL_SECS;
    let api = api().await;
    let (status, first) = api.put(r#"{"keep_alive_secs":600}"#, None).await;
    assert_eq!(status, 200, "{first}");
    let changed = api.connection_changed_at().await.expect("recorded");

    // A second change within the hour: refused naming the setting and when the next is
    // allowed; nothing written to the shadow.
    let (status, body) = api.put(r#"{"mqtt_port":443,"mqtt_alpn":true}"#, None).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "connection_change_too_soon");
    assert_eq!(body["error"]["field"], "mqtt_port");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains(&(changed + hour).to_string()), "{msg}");
    let (_, view) = api.get().await;
    assert_eq!(view["version"], first["version"], "the shadow is unchanged");
    assert_eq!(view["desired"], json!({"keep_alive_secs":600}));
    assert_eq!(api.connection_changed_at().await, Some(changed));

    // The value already desired, with other settings, is no connection change.
    let (status, body) = api
        .put(
            r#"{"keep_alive_secs":600,"health_interval_secs":600}"#,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // The refusal is in the audit trail, with what was asked.
    let trail = api.audited().await;
    assert_eq!(trail.len(), 3, "{trail:?}");
    assert_eq!(trail[0].0, 200);
    assert_eq!(
        trail[1],
        (
            429,
            Some("connection_change_too_soon".to_owned()),
            json!({"mqtt_port":443,"mqtt_alpn":true})
        )
    );

    // An hour later it is allowed. A change the shadow then refuses (a stale If-Match) does
    // not use up the hour: the next one goes through at once.
    api.age_connection_change(hour).await;
    let (status, body) = api
        .put(r#"{"mqtt_port":443,"mqtt_alpn":true}"#, Some("\"1\""))
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = api.put(r#"{"mqtt_port":443,"mqtt_alpn":true}"#, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(api.connection_changed_at().await.unwrap() >= changed);
    let (status, body) = api.put(r#"{"keep_alive_secs":900}"#, None).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["field"], "keep_alive_secs");
}
