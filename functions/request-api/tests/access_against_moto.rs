//! Organisations and roles on every route, from the attacker's side, against moto: each route
//! is called by a user of the camera's organisation, by an admin of another organisation, with
//! a role too low, with claims naming no organisation or role, and with no claims at all; the
//! status is checked, and then what was (not) written to the table, published to the camera
//! or changed in its shadow.

mod common;

use anpr_aws::{
    DynamoAuditLog, DynamoCameraRegistry, DynamoPlateReadStore, DynamoRequestStore,
    IotConfigShadows, IotDataPublisher,
};
use anpr_core::model::Camera;
use anpr_core::plates::{IngestPolicy, PlateReadStore, prepare};
use anpr_core::ports::RequestStore as _;
use anpr_core::{CameraConfigs, FileRequests, OrgId, RequestsConfig};
use anpr_protocol::{CameraId, PlateRead, ReadId};
use anpr_test_support::moto;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};

struct World {
    router: axum::Router,
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
    /// acme's camera.
    cam: String,
    /// globex's camera.
    other: String,
    /// A request on `cam`, made by acme.
    request: String,
}

/// Who calls: claims as API Gateway's JWT authorizer passes them (`None`: no authorizer
/// context at all).
#[derive(Debug, Clone, Copy)]
enum Who {
    Own(&'static str),
    OtherOrgAdmin,
    NoOrg,
    UnknownRole,
    Anonymous,
}

fn claims(who: Who) -> Option<Value> {
    let (org, groups) = match who {
        Who::Own(role) => (Some("acme"), format!("[{role}]")),
        Who::OtherOrgAdmin => (Some("globex"), "[admin]".into()),
        Who::NoOrg => (None, "[admin]".into()),
        Who::UnknownRole => (Some("acme"), "[superuser]".into()),
        Who::Anonymous => return None,
    };
    let mut c = json!({"sub": format!("user-{who:?}"), "cognito:groups": groups});
    if let Some(o) = org {
        c["custom:org"] = json!(o);
    }
    Some(c)
}

fn short(prefix: &str) -> String {
    let id = anpr_test_support::unique(prefix).replace('-', "");
    id[..id.len().min(20)].to_owned()
}

fn read(id: &str, t: u64) -> PlateRead {
    PlateRead {
        id: ReadId::parse(id).unwrap(),
        t,
        p: "AB123CD".into(),
        c: 90,
        img: None,
        bb: None,
    }
}

/// An API Gateway v2 event (the POST fixture's shape) for `method path?query` by `who`.
fn event(method: &str, path: &str, query: &str, body: Option<&str>, who: Who) -> Value {
    let fixture = std::fs::read_to_string(format!(
        "{}/tests/fixtures/post_file_request.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut e: Value = serde_json::from_str(&fixture).unwrap();
    e["rawPath"] = json!(path);
    e["rawQueryString"] = json!(query);
    e["queryStringParameters"] = Value::Object(
        serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect(),
    );
    e["requestContext"]["http"]["path"] = json!(path);
    e["requestContext"]["http"]["method"] = json!(method);
    e.as_object_mut().unwrap().remove("pathParameters");
    e.as_object_mut().unwrap().remove("routeKey");
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
    e["headers"]
        .as_object_mut()
        .unwrap()
        .remove("idempotency-key");
    match claims(who) {
        Some(c) => e["requestContext"]["authorizer"]["jwt"]["claims"] = c,
        None => {
            e["requestContext"]
                .as_object_mut()
                .unwrap()
                .remove("authorizer");
        }
    }
    e
}

async fn world() -> World {
    let clients = moto::clients();
    let table = moto::fresh_table(&clients.dynamo).await;
    let (cam, other) = (short("cama"), short("camb"));
    let registry = DynamoCameraRegistry::new(clients.dynamo.clone(), &table);
    for (id, org) in [(&cam, "acme"), (&other, "globex")] {
        registry
            .register(&Camera {
                camera_id: CameraId::parse(id).unwrap(),
                name: None,
                registered_at: 1,
                org: Some(OrgId::parse(org).unwrap()),
                presence: None,
            })
            .await
            .unwrap();
        moto::create_thing(id).await;
    }
    // The same plate seen by both organisations' cameras, stored as plate-ingest stores it.
    let reads = DynamoPlateReadStore::new(clients.dynamo.clone(), &table);
    let now = 1_764_086_400_000;
    for (id, org, rid) in [(&cam, "acme", "r-acme"), (&other, "globex", "r-globex")] {
        let mut p = prepare(
            &CameraId::parse(id).unwrap(),
            vec![(0, read(rid, now - 1000))],
            vec![],
            now,
            &IngestPolicy::default(),
        );
        p.assign_org(Some(&OrgId::parse(org).unwrap()));
        reads.put_reads(&p.accepted).await.unwrap();
    }
    let requests = FileRequests::new(
        DynamoRequestStore::new(clients.dynamo.clone(), &table),
        DynamoCameraRegistry::new(clients.dynamo.clone(), &table),
        IotDataPublisher::new(clients.iot.clone()),
        RequestsConfig::default(),
    );
    let configs = CameraConfigs::new(
        DynamoCameraRegistry::new(clients.dynamo.clone(), &table),
        IotConfigShadows::new(clients.iot.clone()),
    );
    let audit = DynamoAuditLog::new(clients.dynamo.clone(), &table);
    let downloads = request_api::Downloads {
        signer: anpr_aws::S3UrlSigner::new(clients.s3.clone(), "anpr-media-access"),
        valid_for_secs: 60,
    };
    let router = request_api::app(request_api::Services {
        requests,
        reads,
        configs,
        audit,
        downloads,
    });
    let mut w = World {
        router,
        dynamo: clients.dynamo,
        table,
        cam,
        other,
        request: String::new(),
    };
    let path = format!("/cameras/{}/file-requests", w.cam);
    let (s, b) = w
        .call(event(
            "POST",
            &path,
            "",
            Some(r#"{"file":"clips/a.mp4"}"#),
            Who::Own("operator"),
        ))
        .await;
    assert_eq!(s, 202, "{b}");
    w.request = b["request_id"].as_str().unwrap().to_owned();
    w
}

impl World {
    async fn call(&self, e: Value) -> (u16, Value) {
        common::call(&self.router, e).await
    }

    async fn request_items(&self) -> usize {
        self.dynamo
            .scan()
            .table_name(&self.table)
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default()
            .iter()
            .filter(|i| {
                i.get("PK")
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|s| s.starts_with("REQ#"))
            })
            .count()
    }

    async fn shadow_version(&self) -> u64 {
        let path = format!("/cameras/{}/config", self.cam);
        let (s, b) = self
            .call(event("GET", &path, "", None, Who::Own("viewer")))
            .await;
        assert_eq!(s, 200, "{b}");
        b["version"].as_u64().unwrap()
    }
}

#[tokio::test]
async fn every_route_refuses_other_organisations_low_roles_bad_claims_and_no_token() {
    let w = world().await;
    let (cam, other) = (w.cam.clone(), w.other.clone());
    let req_path = format!("/file-requests/{}", w.request);
    let download = format!("{req_path}/download");
    let create = format!("/cameras/{cam}/file-requests");
    let reads = format!("/cameras/{cam}/plate-reads");
    let config = format!("/cameras/{cam}/config");
    let file = Some(r#"{"file":"clips/b.mp4"}"#);
    let setting = Some(r#"{"keep_alive_secs": 600}"#);
    use Who::*;
    // (method, path, query, body, who, expected status)
    type Case<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Who, u16);
    let cases: Vec<Case> = vec![
        // create a file request: operator and up, own organisation
        ("POST", &create, "", file, OtherOrgAdmin, 404),
        ("POST", &create, "", file, Own("viewer"), 403),
        ("POST", &create, "", file, NoOrg, 403),
        ("POST", &create, "", file, UnknownRole, 403),
        ("POST", &create, "", file, Anonymous, 401),
        // one request
        ("GET", &req_path, "", None, Own("viewer"), 200),
        ("GET", &req_path, "", None, OtherOrgAdmin, 404),
        ("GET", &req_path, "", None, NoOrg, 403),
        ("GET", &req_path, "", None, Anonymous, 401),
        // its download link: the setup's request is not ready yet
        ("GET", &download, "", None, Own("viewer"), 409),
        ("GET", &download, "", None, OtherOrgAdmin, 404),
        ("GET", &download, "", None, NoOrg, 403),
        ("GET", &download, "", None, Anonymous, 401),
        // a camera's requests
        ("GET", &create, "", None, Own("viewer"), 200),
        ("GET", &create, "", None, OtherOrgAdmin, 404),
        ("GET", &create, "", None, UnknownRole, 403),
        ("GET", &create, "", None, Anonymous, 401),
        // a camera's plate reads
        ("GET", &reads, "", None, Own("viewer"), 200),
        ("GET", &reads, "", None, OtherOrgAdmin, 404),
        ("GET", &reads, "", None, NoOrg, 403),
        ("GET", &reads, "", None, Anonymous, 401),
        // plate search
        (
            "GET",
            "/plate-reads",
            "plate=AB123CD",
            None,
            Own("viewer"),
            200,
        ),
        ("GET", "/plate-reads", "plate=AB123CD", None, NoOrg, 403),
        ("GET", "/plate-reads", "plate=AB123CD", None, Anonymous, 401),
        // configuration: read by any role, changed by admins
        ("GET", "/cameras", "", None, Own("viewer"), 200),
        ("GET", "/cameras", "", None, OtherOrgAdmin, 200),
        ("GET", "/cameras", "", None, NoOrg, 403),
        ("GET", "/cameras", "", None, UnknownRole, 403),
        ("GET", "/cameras", "", None, Anonymous, 401),
        ("GET", "/cameras", "limit=0", None, Own("viewer"), 400),
        ("GET", &config, "", None, Own("viewer"), 200),
        ("GET", &config, "", None, OtherOrgAdmin, 404),
        ("GET", &config, "", None, UnknownRole, 403),
        ("GET", &config, "", None, Anonymous, 401),
        ("PUT", &config, "", setting, Own("operator"), 403),
        ("PUT", &config, "", setting, OtherOrgAdmin, 404),
        ("PUT", &config, "", setting, NoOrg, 403),
        ("PUT", &config, "", setting, Anonymous, 401),
    ];
    let version = w.shadow_version().await;
    for (method, path, query, body, who, want) in cases {
        let (s, b) = w.call(event(method, path, query, body, who)).await;
        assert_eq!(s, want, "{method} {path}?{query} as {who:?}: {b}");
        if s >= 400 {
            assert!(b["error"]["code"].is_string(), "{method} {path}: {b}");
        }
        if s == 200 && method == "GET" && path == "/cameras" {
            // Each organisation lists its own camera only.
            let cams: Vec<&str> = b["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["camera_id"].as_str().unwrap())
                .collect();
            let own = if matches!(who, OtherOrgAdmin) {
                other.as_str()
            } else {
                cam.as_str()
            };
            assert_eq!(cams, [own], "{who:?}: {b}");
        }
        if s == 200 && method == "GET" && path == reads {
            let cams: Vec<&str> = b["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["camera_id"].as_str().unwrap())
                .collect();
            assert_eq!(cams, [cam.as_str()]);
        }
    }
    // Nothing written, published or changed by any refused call.
    assert_eq!(w.request_items().await, 1, "only the setup's request");
    assert_eq!(
        moto::iot_published(&format!("{cam}/file/request")).len(),
        1,
        "only the setup's publish"
    );
    assert_eq!(w.shadow_version().await, version, "the shadow is unchanged");
    // The other organisation's own camera is its own business: 404 for acme.
    let (s, _) = w
        .call(event(
            "GET",
            &format!("/cameras/{other}/plate-reads"),
            "",
            None,
            Own("admin"),
        ))
        .await;
    assert_eq!(s, 404);
    // And the allowed change goes through.
    let (s, b) = w
        .call(event("PUT", &config, "", setting, Own("admin")))
        .await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn a_ready_requests_file_downloads_through_a_fresh_link_for_its_organisation_only() {
    let w = world().await;
    let clients = moto::clients();
    let bucket = "anpr-media-access";
    let _ = clients.s3.create_bucket().bucket(bucket).send().await;
    let store = DynamoRequestStore::new(clients.dynamo.clone(), &w.table);
    let id = anpr_protocol::RequestId::parse(&w.request).unwrap();
    let mut rec = store.get(&id).await.unwrap().unwrap();
    let key = anpr_protocol::topics::upload_key(&rec.camera_id, &rec.request_id, &rec.file);
    let body = b"the camera's clip".to_vec();
    clients
        .s3
        .put_object()
        .bucket(bucket)
        .key(&key)
        .body(body.clone().into())
        .send()
        .await
        .unwrap();
    // S3's event made it ready (what upload-completed writes).
    let version = rec.version;
    rec.state = anpr_protocol::RequestState::Ready;
    rec.size = Some(body.len() as u64);
    rec.object_key = Some(key);
    rec.version += 1;
    store.replace(&rec, version).await.unwrap();

    let path = format!("/file-requests/{}/download", w.request);
    let (s, b) = w
        .call(event("GET", &path, "", None, Who::Own("viewer")))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["size"], body.len());
    let url = b["url"].as_str().expect("a link");
    assert!(url.contains("X-Amz-Expires=60"), "{url}");
    let got = reqwest::get(url).await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), body);
    // Another organisation's admin learns nothing; no claims, nothing.
    let (s, b) = w
        .call(event("GET", &path, "", None, Who::OtherOrgAdmin))
        .await;
    assert_eq!(s, 404, "{b}");
    assert!(b.get("url").is_none());
    let (s, _) = w.call(event("GET", &path, "", None, Who::Anonymous)).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn a_plate_seen_by_both_organisations_is_found_only_by_each_ones_users() {
    let w = world().await;
    for (who, cam, read) in [
        (Who::Own("viewer"), &w.cam, "r-acme"),
        (Who::OtherOrgAdmin, &w.other, "r-globex"),
    ] {
        let (s, b) = w
            .call(event("GET", "/plate-reads", "plate=ab-123+cd", None, who))
            .await;
        assert_eq!(s, 200, "{b}");
        let items = b["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{who:?}: {b}");
        assert_eq!(items[0]["camera_id"].as_str(), Some(cam.as_str()));
        assert_eq!(items[0]["read_id"], read);
    }
    // The organisation is in the index's partition key, not a filter after the query.
    let item = w
        .dynamo
        .scan()
        .table_name(&w.table)
        .filter_expression("begins_with(PK, :pk)")
        .expression_attribute_values(":pk", AttributeValue::S(format!("READS#{}#", w.cam)))
        .send()
        .await
        .unwrap()
        .items
        .unwrap()
        .remove(0);
    assert_eq!(item["GSI1PK"].as_s().unwrap(), "PLATE#acme#AB123CD");
}

#[tokio::test]
async fn dangerous_settings_are_refused_with_400_naming_the_setting_and_nothing_is_desired() {
    let w = world().await;
    let path = format!("/cameras/{}/config", w.cam);
    let version = w.shadow_version().await;
    for (doc, setting) in [
        (r#"{"media_quota_bytes": 1}"#, "media_quota_bytes"),
        (
            r#"{"upload_max_bytes_per_sec": 1}"#,
            "upload_max_bytes_per_sec",
        ),
        (
            r#"{"recognizer_min_confidence": 100}"#,
            "recognizer_min_confidence",
        ),
    ] {
        let (s, b) = w
            .call(event("PUT", &path, "", Some(doc), Who::Own("admin")))
            .await;
        assert_eq!(s, 400, "{doc}: {b}");
        assert_eq!(b["error"]["field"], setting, "{doc}: {b}");
    }
    assert_eq!(w.shadow_version().await, version, "nothing desired");
}

#[tokio::test]
async fn answers_are_consistent_405_json_unknown_camera_404_and_a_doubled_key_refused() {
    let w = world().await;
    let (s, b) = w
        .call(event(
            "DELETE",
            &format!("/cameras/{}/config", w.cam),
            "",
            None,
            Who::Own("admin"),
        ))
        .await;
    assert_eq!(s, 405);
    assert_eq!(b["error"]["code"], "method_not_allowed", "{b}");
    let (s, b) = w
        .call(event(
            "GET",
            "/cameras/nosuchcamera/plate-reads",
            "",
            None,
            Who::Own("admin"),
        ))
        .await;
    assert_eq!(s, 404);
    assert_eq!(b["error"]["code"], "camera_not_found", "{b}");
    // API Gateway v2 joins a repeated header with ',': `K,K` is refused, not a new key.
    let mut e = event(
        "POST",
        &format!("/cameras/{}/file-requests", w.cam),
        "",
        Some(r#"{"file":"clips/a.mp4"}"#),
        Who::Own("operator"),
    );
    e["headers"]["idempotency-key"] = json!("k1,k1");
    let (s, b) = w.call(e).await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["field"], "Idempotency-Key");
    assert_eq!(w.request_items().await, 1);
}

#[tokio::test]
async fn config_changes_and_plate_searches_are_audited_and_read_by_the_organisations_admins_only() {
    let w = world().await;
    let config = format!("/cameras/{}/config", w.cam);
    let calls = [
        (
            "PUT",
            config.as_str(),
            "",
            Some(r#"{"keep_alive_secs": 600}"#),
            Who::Own("admin"),
            200,
        ),
        (
            "PUT",
            &config,
            "",
            Some(r#"{"keep_alive_secs": 600}"#),
            Who::Own("operator"),
            403,
        ),
        (
            "PUT",
            &config,
            "",
            Some(r#"{"media_quota_bytes": 1}"#),
            Who::Own("admin"),
            400,
        ),
        (
            "GET",
            "/plate-reads",
            "plate=ab123cd",
            None,
            Who::Own("viewer"),
            200,
        ),
        (
            "GET",
            "/plate-reads",
            "plate=AB123CD",
            None,
            Who::OtherOrgAdmin,
            200,
        ),
    ];
    for (method, path, query, body, who, want) in calls {
        let (s, b) = w.call(event(method, path, query, body, who)).await;
        assert_eq!(s, want, "{method} {path} as {who:?}: {b}");
    }
    let (s, trail) = w
        .call(event("GET", "/audit", "limit=10", None, Who::Own("admin")))
        .await;
    assert_eq!(s, 200, "{trail}");
    let items = trail["items"].as_array().unwrap();
    let seen: Vec<(String, String, u64, Option<u64>)> = items
        .iter()
        .map(|i| {
            (
                i["action"].as_str().unwrap().to_owned(),
                i["who"].as_str().unwrap().to_owned(),
                i["status"].as_u64().unwrap(),
                i["results"].as_u64(),
            )
        })
        .collect();
    let who = |w: Who| format!("user-{w:?}");
    assert_eq!(
        seen,
        [
            ("plate_search".into(), who(Who::Own("viewer")), 200, Some(1)),
            ("config_change".into(), who(Who::Own("admin")), 400, None),
            ("config_change".into(), who(Who::Own("operator")), 403, None),
            ("config_change".into(), who(Who::Own("admin")), 200, None),
        ],
        "newest first, acme's only: {trail}"
    );
    assert_eq!(items[1]["error"], "invalid_field");
    assert_eq!(items[1]["asked"]["media_quota_bytes"], 1);
    assert_eq!(items[0]["target"], "ab123cd");
    assert!(items.iter().all(|i| i["org"] == "acme"));
    let ttl = items[0]["expires_at"].as_u64().unwrap() - items[0]["at_ms"].as_u64().unwrap() / 1000;
    assert_eq!(ttl, anpr_core::audit::DEFAULT_AUDIT_RETENTION_SECS);
    // The item carries the table's TTL attribute.
    let stored = w
        .dynamo
        .query()
        .table_name(&w.table)
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("AUDIT#acme".into()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap();
    assert_eq!(stored.len(), 4);
    assert!(
        stored
            .iter()
            .all(|i| i.contains_key(anpr_aws::schema::TTL_ATTR))
    );

    // Paginated.
    let (_, first) = w
        .call(event("GET", "/audit", "limit=3", None, Who::Own("admin")))
        .await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let (s, second) = w
        .call(event(
            "GET",
            "/audit",
            &format!("limit=3&cursor={cursor}"),
            None,
            Who::Own("admin"),
        ))
        .await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(second["items"].as_array().unwrap().len(), 1);

    // globex's admin sees globex's trail only; acme's operator and anonymous see none.
    let (s, g) = w
        .call(event("GET", "/audit", "", None, Who::OtherOrgAdmin))
        .await;
    assert_eq!(s, 200);
    assert_eq!(g["items"].as_array().unwrap().len(), 1, "{g}");
    assert_eq!(g["items"][0]["org"], "globex");
    for (who, want) in [(Who::Own("operator"), 403), (Who::Anonymous, 401)] {
        let (s, _) = w.call(event("GET", "/audit", "", None, who)).await;
        assert_eq!(s, want, "{who:?}");
    }
}
